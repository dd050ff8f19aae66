//! Settling dead runs: runs left queued or running by a process that is gone, found by whoever looks
//! (the scheduler, a claim, every command that reads runs). What is left of their processes is stopped first (SIGTERM, `kill_grace`, SIGKILL: a run's
//! processes end with its owner, as a unit's do under systemd), then their artifacts are set right (a torn last event line is cut off, a `run_finished` event
//! is appended, the receipt and summary say how the run ended), then the store records the same
//! outcome. Missed slots need nothing here: the first tick judges them by misfire grace and coalesce.
//!
//! Artifacts go first and every step can be done twice: a process killed half-way through leaves the
//! run still active in the store, so the next reconciliation finds it and finishes the job. A run whose
//! owner died while it was writing down how it ended (a `run_finished` event or a final receipt beside
//! an unfinished row) keeps that outcome; only a run that really was cut short becomes interrupted.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::sync::Arc;

use crate::artifacts::events::{ProcessInfo, read_events};
use crate::artifacts::receipt::ClaimFacts;
use crate::artifacts::rundir::{EVENTS_FILE, LOCK_FILE, open_read, resolve};
use crate::artifacts::{Event, EventKind, EventLog, Receipt};
use crate::clock::{Clock, parse_rfc3339, rfc3339};
use crate::error::Result;
use crate::home::Home;
use crate::process::{Identity, remaining, stop_group};
use crate::run::{RunEnd, RunStatus, Trigger, run_name};
use crate::spec::JobSpec;
use crate::store::{OWNER_GONE, RunRow, Store};

/// The grace between SIGTERM and SIGKILL for the processes of a dead run when nothing recorded says
/// (the spec's default).
const DEFAULT_KILL_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a run in flight still has a live owner, or live processes: either keeps it from being
/// settled, so that no claim counts a job's instances as free while a command of it still runs.
pub fn run_is_alive(home: &Home, run: &RunRow) -> bool {
    owner_is_alive(home, run)
        || (!owned_elsewhere(run)
            && run
                .leader_identity()
                .is_some_and(|leader| !remaining(&leader).is_empty()))
}

/// Whether the run's owner runs on another host (a store several hosts share): its lock, its pid
/// and its processes are that host's, and nothing here can look at them.
fn owned_elsewhere(run: &RunRow) -> bool {
    run.owner
        .split_once('@')
        .is_some_and(|(_, host)| host != crate::run::host())
}

/// Whether the process that owns the run is still there. Its run lock says so when the lock file is
/// there: held, the owner lives; free, the owner let go of it or died (flock ends with its holder). A
/// missing lock file or run directory (deleted under a running run) proves nothing: then the owner's
/// recorded identity decides (its pid, with the start time and boot recorded at the claim, so that a
/// pid handed out again is not taken for the owner).
///
/// An owner on another host is alive as long as it renews the run's sign of life in the store within
/// what it promised (`node_dead_after`), judged by the store's clock. Its node stops the run itself
/// before that promise runs out, so a run taken for dead here has no process left there.
pub fn owner_is_alive(home: &Home, run: &RunRow) -> bool {
    // Waiting in a shared store's queue for a node to take it: no one owns it yet, and no one may
    // settle it (the node that takes it runs it, whenever that is).
    if run.owner == crate::store::NO_OWNER {
        return true;
    }
    if owned_elsewhere(run) {
        return !run.owner_silent;
    }
    if let Some(dir) = run.run_dir.as_deref()
        && let Ok(lock) = open_read(&resolve(home, dir).join(LOCK_FILE))
    {
        return matches!(lock.try_lock(), Err(TryLockError::WouldBlock));
    }
    run.owner_identity().is_some_and(|owner| owner.is_running())
}

/// Runs in flight whose owner is gone, without changing anything (for `--dry-run`).
pub fn orphaned_runs(store: &dyn Store, home: &Home) -> Result<Vec<RunRow>> {
    Ok(store
        .active_runs()?
        .into_iter()
        .filter(|run| !owner_is_alive(home, run))
        .collect())
}

/// Finishes orphaned runs (of one job, or all) and repairs their artifacts. Every command that reads
/// runs calls this, so a run is never shown as running forever, and its artifacts always agree with
/// the store. Returns the runs now recorded as interrupted, as `(job, seq)`.
pub fn reconcile_runs(
    store: &mut dyn Store,
    home: &Home,
    clock: &Arc<dyn Clock>,
    job: Option<&str>,
) -> Result<Vec<(String, i64)>> {
    let mut interrupted = Vec::new();
    let orphaned = orphaned_runs(store, home)?;
    // Nothing dead, nothing to write: no write lock is asked for, so readers go on while another
    // process holds it.
    if orphaned.is_empty() {
        return Ok(interrupted);
    }
    for run in orphaned {
        if job.is_some_and(|id| id != run.job_id) {
            continue;
        }
        // Its directory and processes are on its owner's host: nothing here is its to repair or
        // stop (a path or pid of this host would name something else). The store alone records
        // its end, below.
        if owned_elsewhere(&run) {
            continue;
        }
        let Some(stored) = &run.run_dir else {
            stop_processes(&run, None, store);
            continue;
        };
        let dir = resolve(home, stored);
        // Holding the run's lock while setting it right makes the run look alive to every other
        // process: one reconciling at the same moment leaves it alone rather than repairing it twice.
        // A lock held by someone else means they are at it; a directory that is gone leaves only
        // the processes to stop here, and the store to settle below.
        let _lock = match take_lock(&dir) {
            Lock::Taken(lock) => lock,
            Lock::Busy => continue,
            Lock::Missing => {
                stop_processes(&run, None, store);
                continue;
            }
        };
        // Another process may have finished it between the listing and the lock.
        let Some(row) = store.run_row(&run.job_id, run.seq)? else {
            continue;
        };
        if !row.status.is_active() {
            continue;
        }
        // Nothing of a dead run may go on running: its processes are stopped before it is settled.
        stop_processes(&row, Some((&dir, clock)), store);
        if row.trigger == Trigger::Schedule && row.slot.is_some() && !began(&dir) {
            // Claimed (ahead of its slot) but never begun: the slot is given back, not lost. The
            // directory goes first; a death in between leaves a row that is released next time.
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(path = %dir.display(), "cannot remove the run directory of an unstarted claim: {e}");
            } else if store.release_unstarted(&row.job_id, row.seq)? {
                tracing::info!(run = %run_name(&row.job_id, row.seq), "its owner died before it started; the slot is judged again");
                continue;
            }
        }
        let spec = spec_of(store, &row);
        let end = repair(&dir, home, &row, spec.as_ref(), clock);
        store.finish_orphaned(&row.job_id, row.seq, &end)?;
        if end.status == RunStatus::Interrupted {
            interrupted.push((row.job_id.clone(), row.seq));
        }
    }
    // What is left: rows without a run directory, or whose directory is gone. Nothing to repair there.
    let reaped = store.reap_dead_runs(job, &|dir| run_is_alive(home, dir), clock.now())?;
    interrupted.extend(reaped);
    Ok(interrupted)
}

/// Whether a run got as far as starting (its `run_started` event is written). When the events cannot
/// be read for another reason than being absent, it is taken to have begun: nothing is given back
/// on a guess.
pub fn began(dir: &Path) -> bool {
    match read_events(&dir.join(EVENTS_FILE)) {
        Ok((events, _)) => events
            .iter()
            .any(|e| matches!(e.kind, EventKind::RunStarted { .. })),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// What [`take_lock`] found.
enum Lock {
    Taken(File),
    /// Someone holds it (or it cannot be locked).
    Busy,
    /// No lock file to take: the run directory, or its lock, was deleted.
    Missing,
}

/// Takes the lock of the run directory `dir`, if it exists and no one holds it.
fn take_lock(dir: &Path) -> Lock {
    let file = match open_read(&dir.join(LOCK_FILE)) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lock::Missing,
        Err(_) => return Lock::Busy,
    };
    match file.try_lock() {
        Ok(()) => Lock::Taken(file),
        Err(TryLockError::WouldBlock | TryLockError::Error(_)) => Lock::Busy,
    }
}

/// Stops what is left of a dead run's processes: the process group of its latest attempt, as the store
/// recorded it, and as its events name it (the owner may have died between starting the attempt and
/// telling the store). A group whose leader's pid now belongs to another process is never signalled.
/// With the run directory (`artifacts`), the events say what was found and which signals were sent,
/// unless the run had already written how it ended.
fn stop_processes(run: &RunRow, artifacts: Option<(&Path, &Arc<dyn Clock>)>, store: &dyn Store) {
    let events = artifacts
        .map(|(dir, _)| read_events(&dir.join(EVENTS_FILE)).map_or_else(|_| Vec::new(), |(e, _)| e))
        .unwrap_or_default();
    let from_events = events.iter().rev().find_map(|e| match &e.kind {
        EventKind::AttemptStarted {
            attempt,
            pid: Some(pid),
            leader_start: Some(start),
            boot_id: Some(boot),
            ..
        } => Some((
            *attempt,
            Identity {
                pid: *pid,
                start: *start,
                boot: boot.clone(),
            },
        )),
        _ => None,
    });
    let attempt = from_events.as_ref().map_or(1, |(attempt, _)| *attempt);
    let mut leaders: Vec<Identity> = from_events.into_iter().map(|(_, id)| id).collect();
    if let Some(recorded) = run.leader_identity()
        && !leaders.contains(&recorded)
    {
        leaders.push(recorded);
    }
    if leaders.is_empty() {
        return;
    }
    let grace = run
        .kill_grace
        .or_else(|| {
            artifacts
                .and_then(|(dir, _)| Receipt::read(dir).ok())
                .map(|r| std::time::Duration::from_millis(r.kill_grace_ms))
        })
        .or_else(|| spec_of(store, run).map(|spec| spec.run.kill_grace.as_duration()))
        .unwrap_or(DEFAULT_KILL_GRACE);
    let finished = ends_with_run_finished(&events);
    for leader in leaders {
        let stopped = stop_group(&leader, grace);
        if stopped.found.is_empty() {
            continue;
        }
        tracing::warn!(
            run = %run_name(&run.job_id, run.seq),
            pgid = leader.pid,
            processes = stopped.found.len(),
            "its owner is gone; stopped what was left of its processes"
        );
        let Some((dir, clock)) = artifacts.filter(|_| !finished) else {
            continue;
        };
        let path = dir.join(EVENTS_FILE);
        append_event(
            &path,
            run,
            clock,
            EventKind::ProcessesLeft {
                attempt,
                cause: "owner_gone".into(),
                action: "killed".into(),
                processes: stopped
                    .found
                    .iter()
                    .map(|m| ProcessInfo {
                        pid: m.pid,
                        name: m.name.clone(),
                    })
                    .collect(),
            },
        );
        for signal in stopped.signals {
            append_event(
                &path,
                run,
                clock,
                EventKind::KillSent {
                    attempt,
                    signal: signal.to_owned(),
                },
            );
        }
    }
}

/// The spec the run was claimed with, when the store still has it (its last good version is the same).
fn spec_of(store: &dyn Store, run: &RunRow) -> Option<JobSpec> {
    let row = store.job_row(&run.job_id).ok()??;
    if row.good_hash.is_none() || row.good_hash != run.spec_hash {
        return None;
    }
    serde_json::from_str(row.spec_json.as_deref()?).ok()
}

/// Brings an orphaned run's artifacts to their end and says how it ended. A run finishes its
/// artifacts in a fixed order (the `run_finished` event, then the summary, then the final receipt, then
/// the store), so the furthest of them that is complete says how the run ended; with none of them, the
/// run was cut short and is interrupted. Best effort: a run directory that is unwritable leaves the
/// store's record as the word on it.
fn repair(
    dir: &Path,
    home: &Home,
    run: &RunRow,
    spec: Option<&JobSpec>,
    clock: &Arc<dyn Clock>,
) -> RunEnd {
    let now = clock.now();
    let events_path = dir.join(EVENTS_FILE);
    // A torn last line is held back by the reader and cut off by the append below.
    let (events, _) = read_events(&events_path).unwrap_or_default();
    let receipt = Receipt::read(dir).ok();
    // The store's start is the instant the command was spawned; the `run_started` event, written just
    // after, stands in when the owner died before the store heard of the start.
    let started = run.started_at.or_else(|| {
        events
            .iter()
            .find(|e| matches!(e.kind, EventKind::RunStarted { .. }))
            .and_then(|e| parse_rfc3339(&e.ts))
    });
    if let Some(receipt) = receipt.as_ref().filter(|r| !r.status.is_active()) {
        let end = receipt.end(now);
        if !ends_with_run_finished(&events) {
            append_event(&events_path, run, clock, EventKind::run_finished(&end));
        }
        return end;
    }
    let last = events.last();
    let end = match last.map(|e| &e.kind) {
        Some(EventKind::RunFinished {
            status,
            attempts,
            exit_code,
            signal,
            duration_ms,
            error_code,
            message,
        }) => RunEnd {
            status: *status,
            attempts: *attempts,
            exit_code: *exit_code,
            signal: *signal,
            error_code: error_code.clone(),
            message: message.clone(),
            started_at: started,
            finished_at: last.and_then(|e| parse_rfc3339(&e.ts)).unwrap_or(now),
            duration_ms: *duration_ms,
        },
        _ => {
            let attempts = events
                .iter()
                .filter(|e| matches!(e.kind, EventKind::AttemptStarted { .. }))
                .count();
            // The run ended at its last recorded sign of life (every output line is an event), not
            // when someone found it: a store restored from a backup, or a scheduler down for a day,
            // would otherwise turn a 3 ms run into one of hours.
            let last_seen = last.and_then(|e| parse_rfc3339(&e.ts));
            let finished_at = match (started, last_seen) {
                (Some(started), Some(seen)) => seen.max(started),
                _ => now,
            };
            let end = RunEnd {
                status: RunStatus::Interrupted,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                exit_code: None,
                signal: None,
                error_code: Some("owner_gone".into()),
                message: Some(OWNER_GONE.into()),
                started_at: started,
                finished_at,
                duration_ms: started.map_or(0, |t| {
                    u64::try_from((finished_at - t).num_milliseconds()).unwrap_or(0)
                }),
            };
            append_event(&events_path, run, clock, EventKind::run_finished(&end));
            end
        }
    };
    // The receipt as it was, or, if the owner died before writing it, one made from the store's row
    // and the spec the run was claimed with.
    let receipt = receipt.or_else(|| spec.map(|spec| new_receipt(home, run, spec)));
    if let Some(mut receipt) = receipt {
        // An attempt listed as running when the owner died ended with it.
        for attempt in receipt
            .attempts
            .iter_mut()
            .filter(|a| a.finished_at.is_none())
        {
            let started = parse_rfc3339(&attempt.started_at).unwrap_or(end.finished_at);
            attempt.status = end.status;
            attempt.finished_at = Some(rfc3339(end.finished_at.max(started)));
            attempt.duration_ms =
                Some(u64::try_from((end.finished_at - started).num_milliseconds()).unwrap_or(0));
            attempt.error_code.clone_from(&end.error_code);
            attempt.message.clone_from(&end.message);
        }
        receipt.record_end(&end);
        let written = crate::artifacts::summary::write(dir, &receipt, &[])
            .and_then(|()| receipt.write(dir, true));
        if let Err(e) = written {
            tracing::warn!("cannot update the artifacts in {}: {e}", dir.display());
        }
    }
    end
}

fn ends_with_run_finished(events: &[Event]) -> bool {
    events
        .last()
        .is_some_and(|e| matches!(e.kind, EventKind::RunFinished { .. }))
}

fn append_event(path: &Path, run: &RunRow, clock: &Arc<dyn Clock>, kind: EventKind) {
    match EventLog::append_to(path, &run.job_id, run.seq, Arc::clone(clock)) {
        Ok(events) => {
            events.emit(kind);
        }
        Err(e) => tracing::warn!("cannot repair {}: {e}", path.display()),
    }
}

/// The receipt a run would have written at its start, for a run whose owner died before it could.
fn new_receipt(home: &Home, run: &RunRow, spec: &JobSpec) -> Receipt {
    let claim = ClaimFacts {
        job_id: &run.job_id,
        seq: run.seq,
        trigger: run.trigger,
        slot: run.slot,
        due_at: run.due_at,
        replay_of: run.replay_of,
        upstream: run.upstream.as_deref(),
        claimed_at: run.claimed_at,
        started_at: run.started_at,
        status: run.status,
        slot_count: run.slot_count,
        spec_hash: run.spec_hash.as_deref().unwrap_or_default(),
        owner: &run.owner,
    };
    Receipt::for_claim(&claim, spec, &home.working_dir(&spec.run.cwd))
}
