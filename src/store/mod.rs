//! The store: the only code that speaks SQL. The interface the rest of `jobs` uses (`interface`), the
//! values that cross it (`records`), and its SQLite implementation (`sqlite`). Every state change is
//! one transaction, and read-then-write decisions take the write lock first.

mod copy;
mod interface;
mod location;
mod postgres;
mod records;
mod sqlite;
mod sync;

pub use copy::Copied;
pub use interface::{
    CancelStore, ConfigStore, HistoryStore, IsAlive, JobStore, MirrorStore, NodeStore, OutboxStore,
    OwnerStore, Prepare, QueueStore, RunStore, Store, blocking, call, open, open_postgres,
};
pub use location::{Location, copy_home_to, locate, open_at, open_home, store_secrets};
pub use postgres::url as postgres_url;
pub use records::{
    AttemptProcess, CancelRequest, ClaimRequest, Claimed, DEFAULT_DEAD_AFTER, DeliveryState,
    DeliveryTry, DueNotification, Fence, HISTORY_COUNT_CAP, HistoryFilter, JobRow, KeptConfig,
    LastEnds, LeaderRow, Lease, LimitReached, NO_OWNER, NodeBeat, NodeRow, NotificationRecord,
    OWNER_GONE, OperatorState, OutboxCounts, OwedTrigger, Owner, QueuedStart, Requested,
    RetainedRun, RunRow, RunStats, SharedLimits, StateChange, SyncReport, Take, TakenRun,
    TickRecord, TickResult, TryRecord,
};
pub use sync::would_change;
