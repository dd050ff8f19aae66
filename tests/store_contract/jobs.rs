//! The jobs part of the store's contract.
