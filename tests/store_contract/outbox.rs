//! The outbox part of the store's contract.
