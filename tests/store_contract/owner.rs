//! The owner part of the store's contract.
