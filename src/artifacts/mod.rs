//! Run directories and what they hold: the receipt (replaced atomically), the events log (one whole JSON
//! line per write), the summary, the raw output, and the lock that tells whether a run has a live owner.

pub(crate) mod events;
pub(crate) mod receipt;
pub(crate) mod rundir;
pub(crate) mod summary;

pub use events::{Event, EventKind, EventLog, Stream};
pub use receipt::{AttemptRecord, Receipt};
pub use rundir::RunDir;
