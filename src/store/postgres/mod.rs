//! The store in a PostgreSQL database, shared by schedulers and commands on any number of hosts:
//! the same tables and rules as the SQLite store, one advisory write lock for every read-then-write
//! transaction, migrations embedded and applied under an advisory lock.

mod cancel;
mod column;
mod config;
mod connection;
mod history;
mod jobs;
mod nodes;
mod outbox;
mod owner;
mod queue;
mod runs;
mod tls;
mod triggers;
pub mod url;

pub use connection::PgStore;
pub(in crate::store) use connection::{in_place, pg_error};
