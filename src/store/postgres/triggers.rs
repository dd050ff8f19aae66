//! Jobs triggered by other jobs' runs, on PostgreSQL: the edges rebuilt from the stored specs, what
//! an upstream's end owes, and the owed runs taken by their claims.

#![allow(
    unused_variables,
    unused_imports,
    dead_code,
    reason = "a stub until the port lands"
)]

use postgres::Transaction;

use super::column::Millis;
use super::connection::PgStore;
use crate::error::Result;
use crate::run::RunStatus;
use crate::store::records::OwedTrigger;

/// Rebuilds the edges from the jobs' stored specs, inside the caller's transaction.
pub(super) fn rebuild_edges(tx: &mut Transaction<'_>) -> std::result::Result<(), postgres::Error> {
    Ok(())
}

/// Writes what the end of run `job_id#seq` with `status` owes its downstream jobs, inside the
/// transaction that records the end.
pub(super) fn owe_triggers(
    tx: &mut Transaction<'_>,
    job_id: &str,
    seq: i64,
    status: RunStatus,
    now: Millis,
) -> std::result::Result<(), postgres::Error> {
    Ok(())
}

/// Whether the owed run is still pending.
pub(super) fn pending(
    tx: &mut Transaction<'_>,
    owed: &OwedTrigger,
) -> std::result::Result<bool, postgres::Error> {
    Ok(false)
}

/// Marks the owed run taken by run `seq`.
pub(super) fn take(
    tx: &mut Transaction<'_>,
    owed: &OwedTrigger,
    seq: i64,
) -> std::result::Result<(), postgres::Error> {
    Ok(())
}

impl PgStore {
    /// The owed runs not taken yet, oldest first.
    pub(super) fn read_owed_triggers(&self) -> Result<Vec<OwedTrigger>> {
        Ok(Vec::new())
    }
}
