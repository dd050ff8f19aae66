//! The store in one SQLite file: WAL, so readers go on while a process writes; `BEGIN IMMEDIATE`
//! for every read-then-write decision; migrations embedded and applied on open.

mod cancel;
mod column;
mod config;
mod connection;
mod history;
mod jobs;
mod nodes;
mod outbox;
mod owner;
mod runs;
mod triggers;

pub use connection::SqliteStore;
pub(in crate::store) use connection::{busy_timeout, store_error};
