//! The triggers part of the store's contract.
