//! Reading runs on PostgreSQL, and the one way a run row is read.

#![allow(
    unused_variables,
    unused_imports,
    dead_code,
    reason = "a stub until the port lands"
)]

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::connection::{PgStore, not_yet};
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

/// A run row selected with [`RUN_COLUMNS`].
pub(super) fn run_row(row: &postgres::Row) -> std::result::Result<RunRow, postgres::Error> {
    let _ = row;
    todo!()
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
