//! The `jobs` table on PostgreSQL: syncing loaded spec files into it, the operator's state, pending
//! slots and run counters, and reading it back.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use postgres::{GenericClient, Row, Transaction};
use serde_json::Value;

use super::column::{Millis, catchup_column, instant, millis};
use super::connection::{PgStore, pg_error};
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

impl JobStore for PgStore {
    fn sync_specs(
        &mut self,
        files: &[SpecFile],
        display_path: &dyn Fn(&SpecFile) -> String,
        notifiers: &[NotifierSpec],
        now: DateTime<Utc>,
    ) -> Result<SyncReport> {
        super::connection::in_place(|| {
            let fail = |e| pg_error("sync the specs into the store", e);
            // A plain read first: most syncs change nothing and need no write lock.
            // Without the stored specs (only a changed job needs its old one).
            let state = read_sync_state(&mut **self.client.borrow_mut(), false).map_err(fail)?;
            if plan(&state, files, display_path).is_empty() {
                return Ok(SyncReport::default());
            }
            let mut tx = self.write().map_err(fail)?;
            // Plan again under the write lock: another process may have synced in between.
            let changes = plan(
                &read_sync_state(&mut tx, true).map_err(fail)?,
                files,
                display_path,
            );
            let mut report = SyncReport::default();
            for change in changes {
                apply(&mut tx, &change, Millis(now), &mut report).map_err(fail)?;
                if let Some(owed) = announce_invalid(&change, notifiers, now) {
                    outbox::insert(&mut tx, &owed).map_err(fail)?;
                }
            }
            super::triggers::rebuild_edges(&mut tx).map_err(fail)?;
            tx.commit().map_err(fail)?;
            Ok(report)
        })
    }

    fn run_counters(&self) -> Result<Vec<(String, i64)>> {
        super::connection::in_place(|| {
            let rows = self
                .client
                .borrow_mut()
                .query("SELECT id, run_counter FROM jobs", &[])
                .map_err(|e| pg_error("read the jobs' run counters", e))?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        })
    }

    fn raise_run_counter(&mut self, job_id: &str, seq: i64) -> Result<()> {
        super::connection::in_place(|| {
            // One statement whose condition is judged on the row as it stands when updated, so it never
            // lowers a counter another process raised meanwhile; the write lock keeps the store's
            // single-writer order.
            let fail = |e| pg_error(format!("raise the run counter of {job_id}"), e);
            let mut tx = self.write().map_err(fail)?;
            tx.execute(
                "UPDATE jobs SET run_counter = $2 WHERE id = $1 AND run_counter < $2",
                &[&job_id, &seq],
            )
            .map_err(fail)?;
            tx.commit().map_err(fail)
        })
    }

    fn job_rows(&self) -> Result<Vec<JobRow>> {
        super::connection::in_place(|| {
            let fail = |e| pg_error("read the jobs", e);
            let rows = self
                .client
                .borrow_mut()
                .query(&format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id"), &[])
                .map_err(fail)?;
            rows.iter()
                .map(job_row)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(fail)
        })
    }

    fn job_row(&self, id: &str) -> Result<Option<JobRow>> {
        super::connection::in_place(|| {
            let fail = |e| pg_error(format!("read job {id}"), e);
            let row = self
                .client
                .borrow_mut()
                .query_opt(
                    &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"),
                    &[&id],
                )
                .map_err(fail)?;
            row.as_ref().map(job_row).transpose().map_err(fail)
        })
    }

    fn change_state(
        &mut self,
        id: &str,
        change: StateChange,
        by: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<OperatorState> {
        super::connection::in_place(|| {
            let fail = |e| pg_error(format!("change the state of {id}"), e);
            let mut tx = self.write().map_err(fail)?;
            let before: OperatorState = tx
                .query_one("SELECT state FROM jobs WHERE id = $1", &[&id])
                .and_then(|row| row.try_get(0))
                .map_err(fail)?;
            if !change.changes(before) {
                // Only a pause owes slots: resuming a job that is not paused would make up the slots
                // skipped in an earlier pause (still recorded as skipped) a second time, so it does
                // nothing; pausing again (or disabling again) would overwrite who, when and why.
                // Dropping the transaction rolls it back, with the lock.
                return Ok(before);
            }
            let sql = match change {
            StateChange::Pause => {
                "UPDATE jobs SET state = 'paused', paused_at = CASE WHEN state = 'paused' THEN paused_at ELSE $4 END,
                     catchup = NULL, state_by = $2, state_reason = $3, state_at = $4 WHERE id = $1"
            }
            StateChange::Resume { .. } => {
                "UPDATE jobs SET state = 'active', catchup = $5, state_by = $2, state_reason = $3, state_at = $4,
                     paused_at = CASE WHEN $5::text IS NULL THEN NULL ELSE paused_at END WHERE id = $1"
            }
            StateChange::Disable => {
                "UPDATE jobs SET state = 'disabled', catchup = NULL, paused_at = NULL, state_by = $2, state_reason = $3,
                     state_at = $4 WHERE id = $1"
            }
            StateChange::Enable => {
                "UPDATE jobs SET state = 'active', next_slot = CASE WHEN state = 'disabled' THEN NULL ELSE next_slot END,
                     last_slot = CASE WHEN state = 'disabled' THEN NULL ELSE last_slot END,
                     catchup = NULL, paused_at = NULL, state_by = $2, state_reason = $3, state_at = $4 WHERE id = $1"
            }
        };
            let now = Millis(now);
            match change {
                StateChange::Resume { catchup } => {
                    let catchup = catchup_column(catchup);
                    tx.execute(sql, &[&id, &by, &reason, &now, &catchup])
                }
                _ => tx.execute(sql, &[&id, &by, &reason, &now]),
            }
            .map_err(fail)?;
            tx.commit().map_err(fail)?;
            Ok(before)
        })
    }

    fn set_next_slots(&mut self, slots: &[(String, Option<DateTime<Utc>>)]) -> Result<()> {
        super::connection::in_place(|| {
            if slots.is_empty() {
                return Ok(());
            }
            let fail = |e| pg_error("record the next slots", e);
            let mut tx = self.write().map_err(fail)?;
            let statement = tx
                .prepare("UPDATE jobs SET next_slot = $2 WHERE id = $1")
                .map_err(fail)?;
            for (id, slot) in slots {
                tx.execute(&statement, &[id, &millis(*slot)])
                    .map_err(fail)?;
            }
            tx.commit().map_err(fail)
        })
    }
}

fn job_row(row: &Row) -> std::result::Result<JobRow, postgres::Error> {
    // A problem list that does not read is shown as none rather than failing every read of the jobs.
    let json = |index: usize| -> std::result::Result<Option<Value>, postgres::Error> {
        let text: Option<String> = row.try_get(index)?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    };
    Ok(JobRow {
        id: row.try_get(0)?,
        spec_path: row.try_get(1)?,
        spec_hash: row.try_get(2)?,
        spec_json: row.try_get(3)?,
        load_error: json(4)?,
        present: row.try_get::<_, i64>(5)? == 1,
        state: row.try_get(6)?,
        state_reason: row.try_get(7)?,
        state_by: row.try_get(8)?,
        state_at: instant(row, 9)?,
        next_slot: instant(row, 10)?,
        last_slot: instant(row, 11)?,
        schedule_changed_at: instant(row, 12)?,
        run_counter: row.try_get(13)?,
        created_at: row.try_get::<_, Millis>(14)?.0,
        updated_at: row.try_get::<_, Millis>(15)?.0,
        removed_at: instant(row, 16)?,
        good_hash: row.try_get(17)?,
        checked_by: row.try_get(18)?,
        paused_at: instant(row, 19)?,
        catchup: row.try_get::<_, Option<Catchup>>(20)?,
    })
}

/// What the sync compares, each job's stored spec only `with_specs`.
fn read_sync_state(
    client: &mut impl GenericClient,
    with_specs: bool,
) -> std::result::Result<HashMap<String, SyncState>, postgres::Error> {
    let spec = if with_specs {
        "spec_json"
    } else {
        "NULL::text"
    };
    let rows = client.query(
        &format!(
            "SELECT id, spec_path, spec_hash, good_hash, {spec}, load_error IS NOT NULL, present, checked_by
             FROM jobs"
        ),
        &[],
    )?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get::<_, String>(0)?,
                SyncState {
                    spec_path: row.try_get(1)?,
                    spec_hash: row.try_get(2)?,
                    good_hash: row.try_get(3)?,
                    spec_json: row.try_get(4)?,
                    invalid: row.try_get(5)?,
                    present: row.try_get::<_, i64>(6)? == 1,
                    checked_by: row.try_get(7)?,
                },
            ))
        })
        .collect()
}

fn apply(
    tx: &mut Transaction<'_>,
    change: &Change,
    now: Millis,
    report: &mut SyncReport,
) -> std::result::Result<(), postgres::Error> {
    match change {
        Change::Insert {
            id,
            path,
            hash,
            spec,
            problems,
        } => {
            // The last good hash and the loader's fingerprint only go with a good spec: a file that
            // was never valid has no version in force.
            tx.execute(
                "INSERT INTO jobs (id, spec_path, spec_hash, spec_json, good_hash, checked_by, load_error, created_at,
                                   updated_at)
                 VALUES ($1, $2, $3, $4::text, CASE WHEN $4::text IS NULL THEN NULL ELSE $3 END,
                         CASE WHEN $4::text IS NULL THEN NULL ELSE $7::text END, $5, $6, $6)",
                &[id, path, hash, spec, problems, &now, &loader_fingerprint()],
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
            // A new schedule drops the pending slot (it was the old schedule's) and keeps the last
            // slot the job's records account for (or the one before the dropped slot), from which
            // the new schedule's slots are judged.
            tx.execute(
                "UPDATE jobs SET spec_path = $2, spec_hash = $3, good_hash = $3, spec_json = $4, load_error = NULL,
                     checked_by = $7,
                     present = 1, removed_at = NULL, updated_at = $5,
                     next_slot = CASE WHEN $6 THEN NULL ELSE next_slot END,
                     last_slot = CASE WHEN $6 THEN COALESCE(
                         (SELECT MAX(COALESCE(runs.last_slot, runs.slot)) FROM runs WHERE runs.job_id = $1),
                         next_slot - 1, last_slot) ELSE last_slot END,
                     schedule_changed_at = CASE WHEN $6 THEN $5 ELSE schedule_changed_at END
                 WHERE id = $1",
                &[
                    id,
                    path,
                    hash,
                    spec,
                    &now,
                    schedule_changed,
                    &loader_fingerprint(),
                ],
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
            // The last good version stays in force: only the file's own columns change.
            tx.execute(
                "UPDATE jobs SET spec_path = $2, spec_hash = $3, load_error = $4, present = 1, removed_at = NULL,
                     updated_at = $5
                 WHERE id = $1",
                &[id, path, hash, problems, &now],
            )?;
            report.invalid.push(id.clone());
        }
        Change::Removed { id } => {
            tx.execute(
                "UPDATE jobs SET present = 0, removed_at = $2, updated_at = $2 WHERE id = $1",
                &[id, &now],
            )?;
            report.removed.push(id.clone());
        }
    }
    Ok(())
}
