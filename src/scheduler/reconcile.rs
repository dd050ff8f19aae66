//! What a (re)starting scheduler finds and sets right: runs left queued or running by a process that is
//! gone become interrupted, in the store and in their artifacts (a torn last event line is cut off, a
//! `run_finished` event is appended, the receipt says interrupted). Missed slots need nothing here: the
//! first tick judges them by misfire grace and coalesce.

use std::path::Path;
use std::sync::Arc;

use crate::artifacts::events::read_events;
use crate::artifacts::{EventKind, EventLog, Receipt};
use crate::clock::{Clock, millis, rfc3339};
use crate::error::Result;
use crate::run::RunStatus;
use crate::runner::execute::run_is_alive;
use crate::store::runs::OWNER_GONE;
use crate::store::{RunRow, Store};

/// Runs in flight whose owner is gone, without changing anything (for `--dry-run`).
pub fn orphaned_runs(store: &Store, home: &Path) -> Result<Vec<RunRow>> {
    Ok(store
        .active_runs()?
        .into_iter()
        .filter(|run| {
            run.run_dir
                .as_deref()
                .is_none_or(|dir| !run_is_alive(home, dir))
        })
        .collect())
}

/// Marks orphaned runs (of one job, or all) interrupted and repairs their artifacts. Every command
/// that reads runs calls this, so a run is never shown as running forever, and its artifacts always
/// agree with the store. Returns the runs as `(job, seq)`.
pub fn reconcile_runs(
    store: &mut Store,
    home: &Path,
    clock: &Arc<dyn Clock>,
    job: Option<&str>,
) -> Result<Vec<(String, i64)>> {
    let orphans = orphaned_runs(store, home)?;
    let reaped = store.reap_dead_runs(job, |dir| run_is_alive(home, dir), millis(clock.now()))?;
    for run in orphans.iter().filter(|run| {
        reaped
            .iter()
            .any(|(job, seq)| *job == run.job_id && *seq == run.seq)
    }) {
        if let Some(dir) = &run.run_dir {
            repair(&home.join(dir), run, clock);
        }
    }
    Ok(reaped)
}

/// Brings an interrupted run's artifacts in line with the store. Best effort: a run directory that is
/// gone or unwritable leaves the store's record as the word on it.
fn repair(dir: &Path, run: &RunRow, clock: &Arc<dyn Clock>) {
    let now = clock.now();
    // What the events say happened before the owner died: attempts started, and since when.
    let (events, _) = read_events(&dir.join("events.jsonl")).unwrap_or_default();
    let attempts = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::AttemptStarted { .. }))
        .count();
    let started = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::RunStarted { .. }))
        .and_then(|e| chrono::DateTime::parse_from_rfc3339(&e.ts).ok());
    let duration_ms = started.map_or(0, |t| {
        u64::try_from((now - t.with_timezone(&chrono::Utc)).num_milliseconds()).unwrap_or(0)
    });
    if let Ok(events) = EventLog::append_to(
        &dir.join("events.jsonl"),
        &run.job_id,
        run.seq,
        Arc::clone(clock),
    ) {
        events.emit(EventKind::RunFinished {
            status: RunStatus::Interrupted,
            attempts: u32::try_from(attempts).unwrap_or(0),
            exit_code: None,
            signal: None,
            duration_ms,
            error_code: Some("owner_gone".into()),
            message: Some(OWNER_GONE.into()),
        });
    }
    if let Ok(mut receipt) = Receipt::read(dir)
        && receipt.status.is_active()
    {
        receipt.status = RunStatus::Interrupted;
        receipt.finished_at = Some(rfc3339(now));
        receipt.duration_ms = Some(duration_ms);
        receipt.error_code = Some("owner_gone".into());
        receipt.message = Some(OWNER_GONE.into());
        let written = crate::artifacts::summary::write(dir, &receipt, &[])
            .and_then(|()| receipt.write(dir, true));
        if let Err(e) = written {
            tracing::warn!("cannot update the artifacts in {}: {e}", dir.display());
        }
    }
}
