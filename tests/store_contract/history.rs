//! The history part of the store's contract.
