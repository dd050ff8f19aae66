//! The `jobs` table: syncing loaded spec files into it, the operator's state, and reading it back.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};
use serde_json::Value;

use super::column::{Millis, catchup_column, instant, millis};
use super::connection::{SqliteStore, store_error};
use super::outbox;
use crate::error::Result;
use crate::policy::Catchup;
use crate::spec::SpecFile;
use crate::spec::load::loader_fingerprint;
use crate::spec::model::NotifierSpec;
use crate::store::interface::JobStore;
use crate::store::records::{JobRow, OperatorState, StateChange, SyncReport};
use crate::store::sync::{Change, SyncState, announce_invalid, plan};

const JOB_COLUMNS: &str = "id, spec_path, spec_hash, spec_json, load_error, present, state, state_reason, \
     state_by, state_at, next_slot, last_slot, schedule_changed_at, run_counter, created_at, updated_at, removed_at, \
     good_hash, checked_by, paused_at, catchup";

impl JobStore for SqliteStore {
    fn sync_specs(
        &mut self,
        files: &[SpecFile],
        display_path: &dyn Fn(&SpecFile) -> String,
        notifiers: &[NotifierSpec],
        now: DateTime<Utc>,
    ) -> Result<SyncReport> {
        let fail = |e| store_error("sync the specs into the store", e);
        // Without the stored specs (only a changed job needs its old one): at 100,000 jobs they are
        // most of what this read would copy.
        let changes = plan(
            &read_sync_state(&self.conn, false).map_err(fail)?,
            files,
            display_path,
        );
        if changes.is_empty() {
            return Ok(SyncReport::default());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        // Plan again under the write lock: another process may have synced in between.
        let changes = plan(
            &read_sync_state(&tx, true).map_err(fail)?,
            files,
            display_path,
        );
        let mut report = SyncReport::default();
        for change in changes {
            apply(&tx, &change, Millis(now), &mut report).map_err(fail)?;
            if let Some(owed) = announce_invalid(&change, notifiers, now) {
                outbox::insert(&tx, &owed).map_err(fail)?;
            }
        }
        super::triggers::rebuild_edges(&tx).map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(report)
    }

    fn run_counters(&self) -> Result<Vec<(String, i64)>> {
        let fail = |e| store_error("read the jobs' run counters", e);
        let mut statement = self
            .conn
            .prepare_cached("SELECT id, run_counter FROM jobs")
            .map_err(fail)?;
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(fail)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(fail)
    }

    fn raise_run_counter(&mut self, job_id: &str, seq: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE jobs SET run_counter = ?2 WHERE id = ?1 AND run_counter < ?2",
                rusqlite::params![job_id, seq],
            )
            .map_err(|e| store_error(format!("raise the run counter of {job_id}"), e))?;
        Ok(())
    }

    fn job_rows(&self) -> Result<Vec<JobRow>> {
        let fail = |e| store_error("read the jobs", e);
        let mut statement = self
            .conn
            .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id"))
            .map_err(fail)?;
        let rows = statement.query_map([], job_row).map_err(fail)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(fail)
    }

    fn job_row(&self, id: &str) -> Result<Option<JobRow>> {
        self.conn
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                job_row,
            )
            .optional()
            .map_err(|e| store_error(format!("read job {id}"), e))
    }

    fn change_state(
        &mut self,
        id: &str,
        change: StateChange,
        by: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<OperatorState> {
        let fail = |e| store_error(format!("change the state of {id}"), e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let before: OperatorState = tx
            .query_row("SELECT state FROM jobs WHERE id = ?1", [id], |r| r.get(0))
            .map_err(fail)?;
        if !change.changes(before) {
            // Only a pause owes slots. Resuming anything else again would make up the same paused slots
            // a second time (they are still recorded as skipped), so it changes nothing at all. Pausing
            // a paused job (or disabling a disabled one) again would wipe who did it, when and why.
            return Ok(before);
        }
        let sql = match change {
            StateChange::Pause => {
                "UPDATE jobs SET state = 'paused', paused_at = CASE WHEN state = 'paused' THEN paused_at ELSE ?4 END,
                     catchup = NULL, state_by = ?2, state_reason = ?3, state_at = ?4 WHERE id = ?1"
            }
            StateChange::Resume { .. } => {
                "UPDATE jobs SET state = 'active', catchup = ?5, state_by = ?2, state_reason = ?3, state_at = ?4,
                     paused_at = CASE WHEN ?5 IS NULL THEN NULL ELSE paused_at END WHERE id = ?1"
            }
            StateChange::Disable => {
                "UPDATE jobs SET state = 'disabled', catchup = NULL, paused_at = NULL, state_by = ?2, state_reason = ?3,
                     state_at = ?4 WHERE id = ?1"
            }
            StateChange::Enable => {
                "UPDATE jobs SET state = 'active', next_slot = CASE WHEN state = 'disabled' THEN NULL ELSE next_slot END,
                     last_slot = CASE WHEN state = 'disabled' THEN NULL ELSE last_slot END,
                     catchup = NULL, paused_at = NULL, state_by = ?2, state_reason = ?3, state_at = ?4 WHERE id = ?1"
            }
        };
        let catchup = match change {
            StateChange::Resume { catchup } => catchup_column(catchup),
            _ => None,
        };
        let now = Millis(now);
        let changed = match change {
            StateChange::Resume { .. } => tx.execute(sql, params![id, by, reason, now, catchup]),
            _ => tx.execute(sql, params![id, by, reason, now]),
        };
        changed.map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(before)
    }

    fn set_next_slots(&mut self, slots: &[(String, Option<DateTime<Utc>>)]) -> Result<()> {
        if slots.is_empty() {
            return Ok(());
        }
        let fail = |e| store_error("record the next slots", e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        {
            let mut statement = tx
                .prepare_cached("UPDATE jobs SET next_slot = ?2 WHERE id = ?1")
                .map_err(fail)?;
            for (id, slot) in slots {
                statement
                    .execute(params![id, millis(*slot)])
                    .map_err(fail)?;
            }
        }
        tx.commit().map_err(fail)
    }
}

fn job_row(row: &Row<'_>) -> rusqlite::Result<JobRow> {
    let json = |index: usize| -> rusqlite::Result<Option<Value>> {
        let text: Option<String> = row.get(index)?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    };
    Ok(JobRow {
        id: row.get(0)?,
        spec_path: row.get(1)?,
        spec_hash: row.get(2)?,
        spec_json: row.get(3)?,
        load_error: json(4)?,
        present: row.get::<_, i64>(5)? == 1,
        state: row.get(6)?,
        state_reason: row.get(7)?,
        state_by: row.get(8)?,
        state_at: instant(row, 9)?,
        next_slot: instant(row, 10)?,
        last_slot: instant(row, 11)?,
        schedule_changed_at: instant(row, 12)?,
        run_counter: row.get(13)?,
        created_at: row.get::<_, Millis>(14)?.0,
        updated_at: row.get::<_, Millis>(15)?.0,
        removed_at: instant(row, 16)?,
        good_hash: row.get(17)?,
        checked_by: row.get(18)?,
        paused_at: instant(row, 19)?,
        catchup: row.get::<_, Option<Catchup>>(20)?,
    })
}

/// What the sync compares, each job's stored spec only `with_specs`.
fn read_sync_state(
    conn: &rusqlite::Connection,
    with_specs: bool,
) -> rusqlite::Result<HashMap<String, SyncState>> {
    let spec = if with_specs { "spec_json" } else { "NULL" };
    let mut statement = conn.prepare_cached(&format!(
        "SELECT id, spec_path, spec_hash, good_hash, {spec}, load_error IS NOT NULL, present, checked_by FROM jobs"
    ))?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            SyncState {
                spec_path: row.get(1)?,
                spec_hash: row.get(2)?,
                good_hash: row.get(3)?,
                spec_json: row.get(4)?,
                invalid: row.get(5)?,
                present: row.get::<_, i64>(6)? == 1,
                checked_by: row.get(7)?,
            },
        ))
    })?;
    rows.collect()
}

fn apply(
    tx: &rusqlite::Transaction<'_>,
    change: &Change,
    now: Millis,
    report: &mut SyncReport,
) -> rusqlite::Result<()> {
    match change {
        Change::Insert {
            id,
            path,
            hash,
            spec,
            problems,
        } => {
            tx.execute(
                "INSERT INTO jobs (id, spec_path, spec_hash, spec_json, good_hash, checked_by, load_error, created_at,
                                   updated_at)
                 VALUES (?1, ?2, ?3, ?4, CASE WHEN ?4 IS NULL THEN NULL ELSE ?3 END,
                         CASE WHEN ?4 IS NULL THEN NULL ELSE ?7 END, ?5, ?6, ?6)",
                params![id, path, hash, spec, problems, now, loader_fingerprint()],
            )?;
            if problems.is_some() {
                report.invalid.push(id.clone());
            } else {
                report.added.push(id.clone());
            }
        }
        Change::Good {
            id,
            path,
            hash,
            spec,
            schedule_changed,
        } => {
            tx.execute(
                "UPDATE jobs SET spec_path = ?2, spec_hash = ?3, good_hash = ?3, spec_json = ?4, load_error = NULL,
                     checked_by = ?7,
                     present = 1, removed_at = NULL, updated_at = ?5,
                     next_slot = CASE WHEN ?6 THEN NULL ELSE next_slot END,
                     last_slot = CASE WHEN ?6 THEN COALESCE(
                         (SELECT MAX(COALESCE(runs.last_slot, runs.slot)) FROM runs WHERE runs.job_id = ?1),
                         next_slot - 1, last_slot) ELSE last_slot END,
                     schedule_changed_at = CASE WHEN ?6 THEN ?5 ELSE schedule_changed_at END
                 WHERE id = ?1",
                params![id, path, hash, spec, now, schedule_changed, loader_fingerprint()],
            )?;
            report.updated.push(id.clone());
            if *schedule_changed {
                report.rescheduled.push(id.clone());
            }
        }
        Change::Invalid {
            id,
            path,
            hash,
            problems,
        } => {
            tx.execute(
                "UPDATE jobs SET spec_path = ?2, spec_hash = ?3, load_error = ?4, present = 1, removed_at = NULL,
                     updated_at = ?5
                 WHERE id = ?1",
                params![id, path, hash, problems, now],
            )?;
            report.invalid.push(id.clone());
        }
        Change::Removed { id } => {
            tx.execute(
                "UPDATE jobs SET present = 0, removed_at = ?2, updated_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            report.removed.push(id.clone());
        }
    }
    Ok(())
}
