//! A run's life on PostgreSQL, from its claim to its end.

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

impl RunStore for PgStore {
    fn claim(
        &mut self,
        request: &ClaimRequest<'_>,
        is_alive: IsAlive<'_>,
        prepare: Prepare<'_>,
    ) -> Result<Claimed> {
        Err(not_yet("claim"))
    }
    fn commit_tick(
        &mut self,
        records: &[TickRecord],
        next_slots: &[(String, Option<DateTime<Utc>>)],
        catchups_done: &[String],
        owner: &str,
        now: DateTime<Utc>,
        prepare: Prepare<'_>,
    ) -> Result<Vec<TickResult>> {
        Err(not_yet("commit_tick"))
    }
    fn start_queued(
        &mut self,
        job_id: &str,
        seq: i64,
        max_instances: u32,
        shared: &crate::store::records::SharedLimits,
        is_alive: IsAlive<'_>,
        now: DateTime<Utc>,
    ) -> Result<QueuedStart> {
        Err(not_yet("start_queued"))
    }
    fn record_starts(&mut self, starts: &[(String, i64, DateTime<Utc>)]) -> Result<()> {
        Err(not_yet("record_starts"))
    }
    fn record_processes(&mut self, processes: &[AttemptProcess]) -> Result<()> {
        Err(not_yet("record_processes"))
    }
    fn finish_run(&mut self, job_id: &str, seq: i64, end: &RunEnd) -> Result<()> {
        Err(not_yet("finish_run"))
    }
    fn finish_orphaned(&mut self, job_id: &str, seq: i64, end: &RunEnd) -> Result<()> {
        Err(not_yet("finish_orphaned"))
    }
    fn release_unstarted(&mut self, job_id: &str, seq: i64) -> Result<bool> {
        Err(not_yet("release_unstarted"))
    }
    fn reap_dead_runs(
        &mut self,
        job_id: Option<&str>,
        is_alive: IsAlive<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>> {
        Err(not_yet("reap_dead_runs"))
    }
    fn owed_retries(&self) -> Result<Vec<RunRow>> {
        Err(not_yet("owed_retries"))
    }
    fn owed_triggers(&self) -> Result<Vec<crate::store::records::OwedTrigger>> {
        Err(not_yet("owed_triggers"))
    }
    fn delete_runs(&mut self, job_id: &str, seqs: &[i64]) -> Result<usize> {
        Err(not_yet("delete_runs"))
    }
}
