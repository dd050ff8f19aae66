//! The jobs on PostgreSQL: specs synced, operator state, pending slots, run counters.

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

impl JobStore for PgStore {
    fn sync_specs(
        &mut self,
        files: &[SpecFile],
        display_path: &dyn Fn(&SpecFile) -> String,
        notifiers: &[NotifierSpec],
        now: DateTime<Utc>,
    ) -> Result<SyncReport> {
        Err(not_yet("sync_specs"))
    }
    fn job_rows(&self) -> Result<Vec<JobRow>> {
        Err(not_yet("job_rows"))
    }
    fn job_row(&self, id: &str) -> Result<Option<JobRow>> {
        Err(not_yet("job_row"))
    }
    fn change_state(
        &mut self,
        id: &str,
        change: StateChange,
        by: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<OperatorState> {
        Err(not_yet("change_state"))
    }
    fn set_next_slots(&mut self, slots: &[(String, Option<DateTime<Utc>>)]) -> Result<()> {
        Err(not_yet("set_next_slots"))
    }
    fn run_counters(&self) -> Result<Vec<(String, i64)>> {
        Err(not_yet("run_counters"))
    }
    fn raise_run_counter(&mut self, job_id: &str, seq: i64) -> Result<()> {
        Err(not_yet("raise_run_counter"))
    }
}
