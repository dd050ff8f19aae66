//! Reading runs on PostgreSQL, and the one way a run row is read.

#![allow(
    unused_variables,
    unused_imports,
    dead_code,
    reason = "a stub until the port lands"
)]

use std::collections::HashMap;
use std::path::Path;

use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::types::{FromSql, Type, accepts};

use super::column::{Millis, instant};
use super::connection::{PgStore, not_yet, pg_error};
use crate::error::Result;
use crate::notifier::fanout::Outgoing;
use crate::run::{RunEnd, RunStatus};
use crate::spec::SpecFile;
use crate::spec::model::NotifierSpec;
use crate::store::interface::*;
use crate::store::records::*;

/// The columns [`run_row`] reads, in its order.
pub(super) const RUN_COLUMNS: &str = "job_id, seq, trigger, slot, due_at, claimed_at, started_at, finished_at, status, \
     attempts, exit_code, signal, error_code, message, spec_hash, owner, slot_count, replay_of, run_dir, \
     owner_start, boot_id, pgid, leader_start, kill_grace_ms, retry_owed, run_group, upstream";

/// An integer of a BIGINT column as the narrower or unsigned type a record holds. A value that does
/// not fit is an error, never a wrapped or clamped number: the SQLite store's checked conversions
/// refuse the same values.
struct Fits<T>(T);

impl<'a, T: TryFrom<i64>> FromSql<'a> for Fits<T> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let n = i64::from_sql(ty, raw)?;
        T::try_from(n)
            .map(Self)
            .map_err(|_| format!("{n} is out of range for {}", std::any::type_name::<T>()).into())
    }
    accepts!(INT8);
}

/// Reads a nullable integer column as `T`, checked (see [`Fits`]).
fn fits<T: TryFrom<i64>>(
    row: &postgres::Row,
    index: usize,
) -> std::result::Result<Option<T>, postgres::Error> {
    Ok(row.try_get::<_, Option<Fits<T>>>(index)?.map(|n| n.0))
}

/// A run row selected with [`RUN_COLUMNS`].
pub(super) fn run_row(row: &postgres::Row) -> std::result::Result<RunRow, postgres::Error> {
    Ok(RunRow {
        job_id: row.try_get(0)?,
        seq: row.try_get(1)?,
        trigger: row.try_get(2)?,
        slot: instant(row, 3)?,
        due_at: instant(row, 4)?,
        claimed_at: row.try_get::<_, Millis>(5)?.0,
        started_at: instant(row, 6)?,
        finished_at: instant(row, 7)?,
        status: row.try_get(8)?,
        attempts: row.try_get::<_, Fits<u32>>(9)?.0,
        exit_code: fits(row, 10)?,
        signal: fits(row, 11)?,
        error_code: row.try_get(12)?,
        message: row.try_get(13)?,
        spec_hash: row.try_get(14)?,
        owner: row.try_get(15)?,
        // NOT NULL with a default of 1; read as optional anyway, as the SQLite store does.
        slot_count: fits(row, 16)?.unwrap_or(1),
        replay_of: row.try_get(17)?,
        run_dir: row.try_get(18)?,
        owner_start: fits(row, 19)?,
        boot_id: row.try_get(20)?,
        pgid: fits(row, 21)?,
        leader_start: fits(row, 22)?,
        kill_grace: fits(row, 23)?.map(Duration::from_millis),
        retry_owed: row.try_get::<_, i64>(24)? != 0,
        group: row.try_get(25)?,
        upstream: row.try_get(26)?,
    })
}

impl PgStore {
    /// The runs that `condition` (the rest of a statement after `WHERE`, with no parameters)
    /// selects, in its order.
    pub(super) fn select_runs(&self, condition: &str, action: &str) -> Result<Vec<RunRow>> {
        let fail = |e| pg_error(action.to_owned(), e);
        self.client
            .borrow_mut()
            .query(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE {condition}"),
                &[],
            )
            .map_err(fail)?
            .iter()
            .map(run_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(fail)
    }
}

impl HistoryStore for PgStore {
    fn run_row(&self, job_id: &str, seq: i64) -> Result<Option<RunRow>> {
        Err(not_yet("run_row"))
    }
    fn run_exists(&self, job_id: &str, seq: i64) -> Result<bool> {
        Err(not_yet("run_exists"))
    }
    fn active_runs(&self) -> Result<Vec<RunRow>> {
        Err(not_yet("active_runs"))
    }
    fn in_flight(&self) -> Result<HashMap<String, crate::policy::InFlight>> {
        Err(not_yet("in_flight"))
    }
    fn paused_skips(
        &self,
        job_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
        Err(not_yet("paused_skips"))
    }
    fn recent_failures(&self, limit: i64) -> Result<Vec<RunRow>> {
        Err(not_yet("recent_failures"))
    }
    fn history(&self, filter: &HistoryFilter) -> Result<(Vec<RunRow>, i64)> {
        Err(not_yet("history"))
    }
    fn run_stats(&self, job_id: &str) -> Result<RunStats> {
        Err(not_yet("run_stats"))
    }
    fn last_ends(&self) -> Result<Vec<LastEnds>> {
        Err(not_yet("last_ends"))
    }
    fn recent_outcomes(&self, per_job: usize) -> Result<Vec<(String, i64, RunStatus)>> {
        Err(not_yet("recent_outcomes"))
    }
    fn retention_view(&self, job_id: &str) -> Result<Vec<RetainedRun>> {
        Err(not_yet("retention_view"))
    }
}
