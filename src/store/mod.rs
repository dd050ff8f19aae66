//! The SQLite store: the only code that speaks SQL. Opening applies migrations; every state change is
//! one transaction, and read-then-write decisions take the write lock first (`BEGIN IMMEDIATE`).

pub(crate) mod cancel;
pub(crate) mod config;
pub(crate) mod connection;
pub(crate) mod jobs;
pub(crate) mod owner;
pub(crate) mod runs;

pub use cancel::{CancelRequest, Requested};
pub use config::KeptConfig;
pub use connection::Store;
pub use jobs::{JobRow, StateChange, SyncReport};
pub use runs::{
    AttemptProcess, ClaimRequest, Claimed, Finish, HISTORY_COUNT_CAP, HistoryFilter, QueuedStart,
    RunRow, RunStats, TickRecord, TickResult,
};
