//! The cancel part of the store's contract.
