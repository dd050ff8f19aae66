//! The `runs` table: claiming runs under the job's `max_instances`, finishing them, finding runs whose
//! owner died, and reading history.

use rusqlite::{OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::Store;
use crate::error::{Error, Result};
use crate::process::Identity;
use crate::run::{RunStatus, Trigger};
use crate::spec::model::Overlap;

/// A run as the store records it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub job_id: String,
    pub seq: i64,
    pub trigger: Trigger,
    pub slot: Option<i64>,
    pub due_at: Option<i64>,
    pub claimed_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub status: RunStatus,
    pub attempts: i64,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    pub spec_hash: Option<String>,
    pub owner: String,
    pub slot_count: i64,
    pub replay_of: Option<i64>,
    pub run_dir: Option<String>,
    /// The owner's start time (see [`crate::process::Identity`]), with `boot_id`.
    pub owner_start: Option<i64>,
    pub boot_id: Option<String>,
    /// The latest attempt's process group and its leader's start time, once it started.
    pub pgid: Option<i64>,
    pub leader_start: Option<i64>,
    /// The spec's `kill_grace` the run was claimed with, once an attempt started.
    pub kill_grace_ms: Option<i64>,
    /// Settled as interrupted after its owner died, and its retry is not claimed yet.
    pub retry_owed: bool,
}

impl RunRow {
    /// The process that owns the run, as recorded when it claimed it.
    pub fn owner_identity(&self) -> Option<Identity> {
        let pid = self.owner.split_once('@')?.0.parse().ok()?;
        Some(Identity {
            pid,
            start: u64::try_from(self.owner_start?).ok()?,
            boot: self.boot_id.clone()?,
        })
    }

    /// The leader of the latest attempt's process group, as recorded when it started.
    pub fn leader_identity(&self) -> Option<Identity> {
        Some(Identity {
            pid: u32::try_from(self.pgid?).ok()?,
            start: u64::try_from(self.leader_start?).ok()?,
            boot: self.boot_id.clone()?,
        })
    }
}

/// An attempt's process group as [`Store::record_processes`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptProcess {
    pub job_id: String,
    pub seq: i64,
    pub leader: Identity,
    pub kill_grace_ms: i64,
}

/// The owner start time and boot to record with a claim by `owner`. A run is always claimed by the
/// process that runs it, so the identity is this process's; an owner naming another pid (a test, a
/// benchmark) gets none, and its liveness is judged by the run's lock alone.
fn claim_identity(owner: &str) -> (Option<i64>, Option<String>) {
    let ours = owner
        .split_once('@')
        .and_then(|(pid, _)| pid.parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    match Identity::own().filter(|_| ours) {
        Some(own) => (i64::try_from(own.start).ok(), Some(own.boot)),
        None => (None, None),
    }
}

/// What a process asks for when it wants to start a run.
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    pub job_id: &'a str,
    pub trigger: Trigger,
    pub slot: Option<i64>,
    pub due_at: Option<i64>,
    pub spec_hash: &'a str,
    pub owner: &'a str,
    pub now: i64,
    pub max_instances: u32,
    pub overlap: Overlap,
    pub replay_of: Option<i64>,
}

/// The outcome of a claim that was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// The run may start now.
    Running(i64),
    /// The run waits behind the ones in flight (overlap `queue`); see [`Store::start_queued`].
    Queued(i64),
}

impl Claimed {
    pub fn seq(self) -> i64 {
        match self {
            Self::Running(seq) | Self::Queued(seq) => seq,
        }
    }
}

/// How a run ended, as recorded by [`Store::finish_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    pub status: RunStatus,
    /// When the command really started, if it did; `None` keeps what the store has (a run that never
    /// started has no start time).
    pub started_at: Option<i64>,
    pub finished_at: i64,
    pub attempts: i64,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub error_code: Option<String>,
    pub message: Option<String>,
}

/// What [`Store::start_queued`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueuedStart {
    Started,
    /// No instance is free yet, or an older queued run goes first.
    Waiting,
    /// The job was disabled (or paused) while the run waited: it is dropped, recorded as skipped.
    Dropped {
        reason: &'static str,
    },
}

/// Which runs `jobsctl history` lists.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub job_id: Option<String>,
    /// Any of these statuses; empty means every status.
    pub statuses: Vec<RunStatus>,
    pub since: Option<i64>,
    pub limit: i64,
}

/// Counting matching runs stops here: an exact count of a million rows costs more than the page of
/// history itself, and "more than 10000" says all an operator needs.
pub const HISTORY_COUNT_CAP: i64 = 10_000;

/// What `jobsctl show` says about a job's runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunStats {
    pub last_run: Option<RunRow>,
    pub last_success: Option<RunRow>,
    pub last_failure: Option<RunRow>,
    /// Failed, timed-out or interrupted runs since the last success.
    pub failure_streak: i64,
    pub runs: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
    pub missed: i64,
}

const RUN_COLUMNS: &str = "job_id, seq, trigger, slot, due_at, claimed_at, started_at, finished_at, status, \
     attempts, exit_code, signal, error_code, message, spec_hash, owner, slot_count, replay_of, run_dir, \
     owner_start, boot_id, pgid, leader_start, kill_grace_ms, retry_owed";

/// The message recorded on a run whose owner died without finishing it.
pub const OWNER_GONE: &str = "the process running it is gone: no one holds its run lock";

impl Store {
    /// Claims a run of a job in one IMMEDIATE transaction: runs whose owner is gone (`is_alive` says
    /// so: see `runner::recover::run_is_alive`) are first marked interrupted, then `max_instances` and the
    /// overlap policy decide. `prepare` runs inside the transaction with the new seq (it creates and
    /// locks the run directory), so no other process can see the row before its lock is held; if it
    /// fails, nothing is recorded.
    pub fn claim<T>(
        &mut self,
        request: &ClaimRequest<'_>,
        is_alive: impl Fn(&RunRow) -> bool,
        prepare: impl FnMut(i64) -> Result<(T, String)>,
    ) -> Result<(Claimed, T)> {
        let fail = |e| Error::store(format!("claim a run of {}", request.job_id), e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        reap(&tx, Some(request.job_id), &is_alive, request.now).map_err(fail)?;
        let (running, queued) = active_counts(&tx, request.job_id).map_err(fail)?;
        let max = i64::from(request.max_instances);
        let queue = running >= max || queued > 0;
        if queue && (request.overlap != Overlap::Queue || queued > 0) {
            return Err(Error::MaxInstancesReached {
                id: request.job_id.to_owned(),
                running,
                max: request.max_instances,
            });
        }
        let mut prepare = prepare;
        let mut skipped = 0;
        let (seq, (prepared, run_dir)) = loop {
            let seq = next_seq(&tx, request.job_id).map_err(fail)?;
            match prepare(seq) {
                Ok(prepared) => break (seq, prepared),
                // A directory of that number exists already (a store restored from an older backup, or a
                // claim whose transaction failed): never reuse it, take the next number.
                Err(e) if is_already_there(&e) && skipped < MAX_SKIPPED_SEQS => skipped += 1,
                Err(e) => return Err(e),
            }
        };
        // The start is recorded when the command is spawned (`record_starts`), not at the claim.
        let (status, started_at) = if queue {
            (RunStatus::Queued, None::<i64>)
        } else {
            (RunStatus::Running, None)
        };
        let (owner_start, boot_id) = claim_identity(request.owner);
        tx.execute(
            "INSERT INTO runs (job_id, seq, trigger, slot, due_at, claimed_at, started_at, status, spec_hash, owner,
                               replay_of, run_dir, owner_start, boot_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                request.job_id,
                seq,
                request.trigger.as_str(),
                request.slot,
                request.due_at,
                request.now,
                started_at,
                status.as_str(),
                request.spec_hash,
                request.owner,
                request.replay_of,
                run_dir,
                owner_start,
                boot_id,
            ],
        )
        .map_err(fail)?;
        crate::fault::point(crate::fault::Point::ClaimBeforeCommit);
        tx.commit().map_err(fail)?;
        let claimed = if queue {
            Claimed::Queued(seq)
        } else {
            Claimed::Running(seq)
        };
        Ok((claimed, prepared))
    }

    /// Starts a queued run if an instance is free and it is the oldest one waiting. A queued run of a
    /// job disabled meanwhile (or, for a scheduled run, paused) is dropped instead: it must not start
    /// after the operator said stop.
    pub fn start_queued(
        &mut self,
        job_id: &str,
        seq: i64,
        max_instances: u32,
        is_alive: impl Fn(&RunRow) -> bool,
        now: i64,
    ) -> Result<QueuedStart> {
        let fail = |e| Error::store(format!("start queued run {job_id}#{seq}"), e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let (state, trigger): (String, String) = tx
            .query_row(
                "SELECT jobs.state, runs.trigger FROM runs JOIN jobs ON jobs.id = runs.job_id
                 WHERE runs.job_id = ?1 AND runs.seq = ?2",
                params![job_id, seq],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(fail)?;
        let scheduled = trigger != Trigger::Manual.as_str() && trigger != Trigger::Replay.as_str();
        if state == "disabled" || (state == "paused" && scheduled) {
            return Ok(QueuedStart::Dropped {
                reason: if state == "disabled" {
                    "disabled"
                } else {
                    "paused"
                },
            });
        }
        reap(&tx, Some(job_id), &is_alive, now).map_err(fail)?;
        let (running, _) = active_counts(&tx, job_id).map_err(fail)?;
        let oldest: Option<i64> = tx
            .query_row(
                "SELECT MIN(seq) FROM runs WHERE job_id = ?1 AND status = 'queued'",
                [job_id],
                |row| row.get(0),
            )
            .map_err(fail)?;
        if running >= i64::from(max_instances) || oldest != Some(seq) {
            // The reaping above may have settled dead runs: keep that.
            tx.commit().map_err(fail)?;
            return Ok(QueuedStart::Waiting);
        }
        tx.execute(
            "UPDATE runs SET status = 'running' WHERE job_id = ?1 AND seq = ?2 AND status = 'queued'",
            params![job_id, seq],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(QueuedStart::Started)
    }

    /// Records when runs' commands really started, in one transaction. Without an fsync of its own
    /// (`synchronous = NORMAL` for this commit): a start time lost to a power cut is written again with
    /// the run's end, which is synced, so a batch of starts costs no disk flush on a busy tick.
    pub fn record_starts(&mut self, starts: &[(String, i64, i64)]) -> Result<()> {
        if starts.is_empty() {
            return Ok(());
        }
        self.unsynced("record when runs started", |tx| {
            let mut statement = tx.prepare_cached(
                "UPDATE runs SET started_at = ?3 WHERE job_id = ?1 AND seq = ?2 AND started_at IS NULL",
            )?;
            for (job_id, seq, at) in starts {
                statement.execute(params![job_id, seq, at])?;
            }
            Ok(())
        })
    }

    /// One transaction committed without an fsync of its own (`synchronous = NORMAL` for it, `FULL`
    /// again after): for records that the next synced commit makes durable anyway, and whose loss to a
    /// power cut costs nothing (a start time written again at the run's end; a process group that the
    /// power cut ended).
    fn unsynced(
        &mut self,
        what: &str,
        write: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<()>,
    ) -> Result<()> {
        let fail = |e| Error::store(what, e);
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(fail)?;
        let written = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .and_then(|tx| {
                write(&tx)?;
                tx.commit()
            });
        let restored = self.conn.pragma_update(None, "synchronous", "FULL");
        written.map_err(fail)?;
        restored.map_err(fail)
    }

    /// Records how a run ended, in one transaction.
    pub fn finish_run(&mut self, job_id: &str, seq: i64, finish: &Finish) -> Result<()> {
        self.record_end(job_id, seq, finish, "")
    }

    /// Records how a run whose owner died ended (see `runner::recover`), in one statement: an
    /// interrupted run also records whether it owes a retry (see [`OWES_RETRY`]).
    pub fn finish_orphaned(&mut self, job_id: &str, seq: i64, finish: &Finish) -> Result<()> {
        let owes =
            format!(", retry_owed = CASE WHEN ?3 = 'interrupted' THEN {OWES_RETRY} ELSE 0 END");
        self.record_end(job_id, seq, finish, &owes)
    }

    /// The one statement that records a run's end; `also` sets more columns in the same statement.
    fn record_end(&mut self, job_id: &str, seq: i64, finish: &Finish, also: &str) -> Result<()> {
        crate::fault::point(crate::fault::Point::FinishBeforeCommit);
        self.conn
            .execute(
                &format!(
                    "UPDATE runs SET status = ?3, finished_at = ?4, attempts = ?5, exit_code = ?6, signal = ?7,
                         error_code = ?8, message = ?9, started_at = COALESCE(?10, started_at){also}
                     WHERE job_id = ?1 AND seq = ?2"
                ),
                params![
                    job_id,
                    seq,
                    finish.status.as_str(),
                    finish.finished_at,
                    finish.attempts,
                    finish.exit_code,
                    finish.signal,
                    finish.error_code,
                    finish.message,
                    finish.started_at,
                ],
            )
            .map_err(|e| Error::store(format!("record the end of run {job_id}#{seq}"), e))?;
        Ok(())
    }

    /// Records the process group of each attempt that just started, in one transaction, without an
    /// fsync of its own (as [`Store::record_starts`]): a power cut that loses it also ended the
    /// processes it names.
    pub fn record_processes(&mut self, processes: &[AttemptProcess]) -> Result<()> {
        if processes.is_empty() {
            return Ok(());
        }
        self.unsynced("record the processes of runs", |tx| {
            let mut statement = tx.prepare_cached(
                "UPDATE runs SET pgid = ?3, leader_start = ?4, boot_id = COALESCE(boot_id, ?5), kill_grace_ms = ?6
                 WHERE job_id = ?1 AND seq = ?2",
            )?;
            for p in processes {
                statement.execute(params![
                    p.job_id,
                    p.seq,
                    p.leader.pid,
                    i64::try_from(p.leader.start).unwrap_or(i64::MAX),
                    p.leader.boot,
                    p.kill_grace_ms
                ])?;
            }
            Ok(())
        })
    }

    /// Runs settled as interrupted whose retry is owed and not claimed yet, oldest first.
    pub fn owed_retries(&self) -> Result<Vec<RunRow>> {
        self.select_runs(
            "retry_owed = 1 ORDER BY claimed_at, seq",
            "read the retries owed",
        )
    }

    /// Gives back the slot of a scheduled run whose owner died after claiming it and before starting
    /// it (runs are claimed ahead of their slot): the row goes, and the job's pending slot moves back
    /// to it, so the next scheduler judges the slot afresh (runs it, or records it missed) instead of
    /// it ending as an interruption of something that never began. Returns whether it was released.
    pub fn release_unstarted(&mut self, job_id: &str, seq: i64) -> Result<bool> {
        let fail = |e| Error::store(format!("release the claim of {job_id}#{seq}"), e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let slot: Option<i64> = tx
            .query_row(
                "SELECT slot FROM runs WHERE job_id = ?1 AND seq = ?2 AND trigger = 'schedule'
                   AND status IN ('running', 'queued') AND slot IS NOT NULL",
                params![job_id, seq],
                |row| row.get(0),
            )
            .optional()
            .map_err(fail)?;
        let Some(slot) = slot else {
            return Ok(false);
        };
        tx.execute(
            "UPDATE jobs SET next_slot = ?2 WHERE id = ?1 AND next_slot IS NOT NULL AND next_slot > ?2",
            params![job_id, slot],
        )
        .map_err(fail)?;
        tx.execute(
            "DELETE FROM runs WHERE job_id = ?1 AND seq = ?2",
            params![job_id, seq],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(true)
    }

    /// Marks active runs whose owner is gone as interrupted (all jobs, or one). Returns them.
    pub fn reap_dead_runs(
        &mut self,
        job_id: Option<&str>,
        is_alive: impl Fn(&RunRow) -> bool,
        now: i64,
    ) -> Result<Vec<(String, i64)>> {
        let fail = |e| Error::store("check runs in flight", e);
        // A cheap read first: most of the time nothing is in flight and no write lock is needed.
        let active: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM runs WHERE status IN ('queued', 'running')",
                [],
                |r| r.get(0),
            )
            .map_err(fail)?;
        if active == 0 {
            return Ok(Vec::new());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let reaped = reap(&tx, job_id, &is_alive, now).map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(reaped)
    }

    pub fn run_row(&self, job_id: &str, seq: i64) -> Result<Option<RunRow>> {
        self.conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE job_id = ?1 AND seq = ?2"),
                params![job_id, seq],
                run_row,
            )
            .optional()
            .map_err(|e| Error::store(format!("read run {job_id}#{seq}"), e))
    }

    /// Runs newest first (by claim time, then seq), and how many match the filter in all, counted up
    /// to [`HISTORY_COUNT_CAP`] + 1 (a count above the cap means "more than the cap").
    pub fn history(&self, filter: &HistoryFilter) -> Result<(Vec<RunRow>, i64)> {
        let fail = |e| Error::store("read the run history", e);
        // Only the filters given become conditions: `(?1 IS NULL OR job_id = ?1)` would keep SQLite
        // from using the job and status indexes, which at a million runs is the difference between a
        // millisecond and a tenth of a second.
        let mut conditions = Vec::new();
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(job_id) = &filter.job_id {
            conditions.push("job_id = ?");
            values.push(job_id.clone().into());
        }
        let statuses = vec!["?"; filter.statuses.len()].join(", ");
        let status_condition = format!("status IN ({statuses})");
        if !filter.statuses.is_empty() {
            conditions.push(&status_condition);
            values.extend(
                filter
                    .statuses
                    .iter()
                    .map(|status| status.as_str().to_owned().into()),
            );
        }
        if let Some(since) = filter.since {
            conditions.push("claimed_at >= ?");
            values.push(since.into());
        }
        let condition = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs {condition}
                 ORDER BY claimed_at DESC, seq DESC, job_id LIMIT ?"
            ))
            .map_err(fail)?;
        let mut with_limit = values.clone();
        with_limit.push(filter.limit.into());
        let rows = statement
            .query_map(rusqlite::params_from_iter(with_limit), run_row)
            .map_err(fail)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(fail)?;
        let total = self
            .conn
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM runs {condition} LIMIT {})",
                HISTORY_COUNT_CAP + 1
            ))
            .map_err(fail)?
            .query_row(rusqlite::params_from_iter(values), |row| row.get(0))
            .map_err(fail)?;
        Ok((rows, total))
    }

    /// Last run, last success, last failure, failure streak and counts of one job.
    pub fn run_stats(&self, job_id: &str) -> Result<RunStats> {
        let fail = |e| Error::store(format!("read the runs of {job_id}"), e);
        let latest = |condition: &str| -> Result<Option<RunRow>> {
            self.conn
                .query_row(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE job_id = ?1 AND {condition} ORDER BY seq DESC LIMIT 1"
                    ),
                    [job_id],
                    run_row,
                )
                .optional()
                .map_err(fail)
        };
        let last_run = latest("status NOT IN ('skipped', 'missed')")?;
        let last_success = latest("status = 'succeeded'")?;
        let last_failure = latest("status IN ('failed', 'timed_out', 'interrupted')")?;
        let failure_streak = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM runs WHERE job_id = ?1 AND status IN ('failed', 'timed_out', 'interrupted')
                   AND seq > COALESCE((SELECT MAX(seq) FROM runs WHERE job_id = ?1 AND status = 'succeeded'), 0)",
                [job_id],
                |row| row.get(0),
            )
            .map_err(fail)?;
        let (runs, succeeded, failed, skipped, missed) = self
            .conn
            .query_row(
                "SELECT COALESCE(SUM(status NOT IN ('skipped', 'missed')), 0), COALESCE(SUM(status = 'succeeded'), 0),
                        COALESCE(SUM(status IN ('failed', 'timed_out', 'interrupted')), 0),
                        COALESCE(SUM(CASE WHEN status = 'skipped' THEN slot_count END), 0),
                        COALESCE(SUM(CASE WHEN status = 'missed' THEN slot_count END), 0)
                 FROM runs WHERE job_id = ?1",
                [job_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
            )
            .map_err(fail)?;
        Ok(RunStats {
            last_run,
            last_success,
            last_failure,
            failure_streak,
            runs,
            succeeded,
            failed,
            skipped,
            missed,
        })
    }
}

/// How many taken run numbers a claim steps over before it gives up and reports the error.
const MAX_SKIPPED_SEQS: u32 = 1000;

/// The job's next run number.
fn next_seq(tx: &Transaction<'_>, job_id: &str) -> rusqlite::Result<i64> {
    tx.query_row(
        "UPDATE jobs SET run_counter = run_counter + 1 WHERE id = ?1 RETURNING run_counter",
        [job_id],
        |row| row.get(0),
    )
}

fn is_already_there(error: &Error) -> bool {
    matches!(error, Error::ArtifactWrite { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists)
}

/// Whether a run settled as interrupted now owes a retry: its job's last good spec retries
/// `interrupted` outcomes with attempts to spare, and it is not itself a retry (or a replay), so a
/// job that keeps taking its owner down cannot loop. Decided when the run is settled, by whoever
/// settles it, so that no command settling it first can make the retry be forgotten.
const OWES_RETRY: &str = "(replay_of IS NULL AND EXISTS (
        SELECT 1 FROM jobs, json_each(jobs.spec_json, '$.retry.retry_on') AS retry_on
        WHERE jobs.id = runs.job_id AND retry_on.value = 'interrupted'
          AND json_extract(jobs.spec_json, '$.retry.max_attempts') >= 2)
        AND NOT EXISTS (SELECT 1 FROM cancel_requests AS c WHERE c.job_id = runs.job_id AND c.seq = runs.seq))";

/// Marks the active runs (of one job, or all) whose owner is gone as interrupted.
fn reap(
    tx: &Transaction<'_>,
    job_id: Option<&str>,
    is_alive: &dyn Fn(&RunRow) -> bool,
    now: i64,
) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut statement = tx.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM runs
         WHERE status IN ('queued', 'running') AND (?1 IS NULL OR job_id = ?1)"
    ))?;
    let active: Vec<RunRow> = statement
        .query_map([job_id], run_row)?
        .collect::<rusqlite::Result<_>>()?;
    let mut reaped = Vec::new();
    for run in active {
        if !is_alive(&run) {
            tx.execute(
                &format!(
                    "UPDATE runs SET status = 'interrupted', finished_at = ?3, error_code = 'owner_gone', message = ?4,
                         retry_owed = {OWES_RETRY}
                     WHERE job_id = ?1 AND seq = ?2"
                ),
                params![run.job_id, run.seq, now, OWNER_GONE],
            )?;
            reaped.push((run.job_id, run.seq));
        }
    }
    Ok(reaped)
}

fn active_counts(tx: &Transaction<'_>, job_id: &str) -> rusqlite::Result<(i64, i64)> {
    tx.query_row(
        "SELECT COALESCE(SUM(status = 'running'), 0), COALESCE(SUM(status = 'queued'), 0)
         FROM runs WHERE job_id = ?1 AND status IN ('queued', 'running')",
        [job_id],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
}

fn run_row(row: &Row<'_>) -> rusqlite::Result<RunRow> {
    let text = |index: usize| -> rusqlite::Result<String> { row.get(index) };
    let invalid = |index: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            what.to_owned().into(),
        )
    };
    Ok(RunRow {
        job_id: row.get(0)?,
        seq: row.get(1)?,
        trigger: Trigger::parse(&text(2)?).ok_or_else(|| invalid(2, "unknown trigger"))?,
        slot: row.get(3)?,
        due_at: row.get(4)?,
        claimed_at: row.get(5)?,
        started_at: row.get(6)?,
        finished_at: row.get(7)?,
        status: RunStatus::parse(&text(8)?).ok_or_else(|| invalid(8, "unknown status"))?,
        attempts: row.get(9)?,
        exit_code: row.get(10)?,
        signal: row.get(11)?,
        error_code: row.get(12)?,
        message: row.get(13)?,
        spec_hash: row.get(14)?,
        owner: row.get(15)?,
        slot_count: row.get(16)?,
        replay_of: row.get(17)?,
        run_dir: row.get(18)?,
        owner_start: row.get(19)?,
        boot_id: row.get(20)?,
        pgid: row.get(21)?,
        leader_start: row.get(22)?,
        kill_grace_ms: row.get(23)?,
        retry_owed: row.get::<_, i64>(24)? != 0,
    })
}

/// One record a scheduler tick writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickRecord {
    /// A run to start (or to queue). `slot` is NULL for catch-up runs of slots already recorded.
    Run {
        job_id: String,
        trigger: Trigger,
        slot: Option<i64>,
        due_at: Option<i64>,
        first_slot: Option<i64>,
        last_slot: Option<i64>,
        count: i64,
        spec_hash: String,
        queued: bool,
        /// For a retry of an interrupted run: the run it repeats.
        retry_of: Option<i64>,
        /// The job's limit, checked again inside the transaction: a manual run may have claimed an
        /// instance since the scheduler counted.
        max_instances: u32,
    },
    /// Slots that did not run, and why.
    Skipped {
        job_id: String,
        first_slot: i64,
        last_slot: i64,
        count: i64,
        reason: String,
    },
    /// Slots claimed past their misfire grace.
    Missed {
        job_id: String,
        first_slot: i64,
        last_slot: i64,
        count: i64,
        message: String,
    },
}

impl TickRecord {
    pub fn job_id(&self) -> &str {
        match self {
            Self::Run { job_id, .. }
            | Self::Skipped { job_id, .. }
            | Self::Missed { job_id, .. } => job_id,
        }
    }
}

/// What became of one record of a tick.
#[derive(Debug)]
pub enum TickResult<T> {
    /// Recorded with this seq; for a run, with what `prepare` made (its locked directory).
    /// `queued` says whether a run waits for an instance (asked for, or because the job was full).
    Recorded {
        seq: i64,
        prepared: Option<T>,
        queued: bool,
    },
    /// The slot already has a record: it was claimed before (never twice).
    AlreadyClaimed,
    /// The run directory could not be made; the run is recorded as failed with this error.
    Failed { seq: i64, error: Error },
}

impl Store {
    /// Writes a tick's records, the jobs' new pending slots and cleared catch-up requests in one
    /// transaction: one fsync for everything due at the same moment. `prepare` creates and locks a run's
    /// directory while the write lock is held.
    pub fn commit_tick<T>(
        &mut self,
        records: &[TickRecord],
        next_slots: &[(String, Option<i64>)],
        catchups_done: &[String],
        owner: &str,
        now: i64,
        mut prepare: impl FnMut(&str, i64) -> Result<(T, String)>,
    ) -> Result<Vec<TickResult<T>>> {
        let fail = |e| Error::store("record the scheduler's claims", e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let mut results = Vec::with_capacity(records.len());
        let (owner_start, boot_id) = claim_identity(owner);
        for record in records {
            // A retry owed to an interrupted run is claimed once: the claim takes the debt, in this
            // transaction, and a second claim of it (another tick, another scheduler) finds none.
            if let TickRecord::Run {
                job_id,
                retry_of: Some(of),
                ..
            } = record
            {
                let taken = tx
                    .execute(
                        "UPDATE runs SET retry_owed = 0 WHERE job_id = ?1 AND seq = ?2 AND retry_owed = 1",
                        params![job_id, of],
                    )
                    .map_err(fail)?;
                if taken == 0 {
                    results.push(TickResult::AlreadyClaimed);
                    continue;
                }
            }
            if let TickRecord::Run {
                job_id,
                slot: Some(slot),
                ..
            } = record
            {
                let taken: bool = tx
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM runs WHERE job_id = ?1 AND slot = ?2)",
                        params![job_id, slot],
                        |row| row.get(0),
                    )
                    .map_err(fail)?;
                if taken {
                    results.push(TickResult::AlreadyClaimed);
                    continue;
                }
            }
            let mut seq = next_seq(&tx, record.job_id()).map_err(fail)?;
            // A run's directory is made before its row, under the same write lock; a number whose
            // directory exists already is skipped, never reused.
            let mut prepared_run = None;
            if matches!(record, TickRecord::Run { .. }) {
                let mut skipped = 0;
                loop {
                    match prepare(record.job_id(), seq) {
                        Err(e) if is_already_there(&e) && skipped < MAX_SKIPPED_SEQS => {
                            skipped += 1;
                            seq = next_seq(&tx, record.job_id()).map_err(fail)?;
                        }
                        made => {
                            prepared_run = Some(made);
                            break;
                        }
                    }
                }
            }
            let mut queue_run = false;
            let inserted = match record {
                TickRecord::Run {
                    job_id,
                    trigger,
                    slot,
                    due_at,
                    first_slot,
                    last_slot,
                    count,
                    spec_hash,
                    queued,
                    retry_of,
                    max_instances,
                } => {
                    let (running, _) = active_counts(&tx, job_id).map_err(fail)?;
                    queue_run = *queued || running >= i64::from(*max_instances);
                    // No start time yet: a run claimed ahead of its slot starts when it is due, and its
                    // real start is recorded when the command is spawned (`record_starts`).
                    let (status, started_at) = if queue_run { ("queued", None::<i64>) } else { ("running", None) };
                    tx.execute(
                        "INSERT INTO runs (job_id, seq, trigger, slot, due_at, claimed_at, started_at, status, spec_hash,
                                           owner, slot_count, first_slot, last_slot, replay_of, owner_start, boot_id)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) ON CONFLICT DO NOTHING",
                        params![job_id, seq, trigger.as_str(), slot, due_at, now, started_at, status, spec_hash, owner,
                                count, first_slot, last_slot, retry_of, owner_start, boot_id],
                    )
                    .map_err(fail)?
                }
                TickRecord::Skipped { job_id, first_slot, last_slot, count, reason } => tx
                    .execute(
                        "INSERT INTO runs (job_id, seq, trigger, slot, claimed_at, finished_at, status, owner, slot_count,
                                           first_slot, last_slot, error_code, message)
                         VALUES (?1, ?2, 'schedule', ?3, ?4, ?4, 'skipped', ?5, ?6, ?7, ?3, ?8, ?9) ON CONFLICT DO NOTHING",
                        params![job_id, seq, last_slot, now, owner, count, first_slot, format!("skipped_{reason}"),
                                format!("skipped: {reason}")],
                    )
                    .map_err(fail)?,
                TickRecord::Missed { job_id, first_slot, last_slot, count, message } => tx
                    .execute(
                        "INSERT INTO runs (job_id, seq, trigger, slot, claimed_at, finished_at, status, owner, slot_count,
                                           first_slot, last_slot, error_code, message)
                         VALUES (?1, ?2, 'schedule', ?3, ?4, ?4, 'missed', ?5, ?6, ?7, ?3, 'misfire', ?8) ON CONFLICT DO NOTHING",
                        params![job_id, seq, last_slot, now, owner, count, first_slot, message],
                    )
                    .map_err(fail)?,
            };
            if inserted == 0 {
                results.push(TickResult::AlreadyClaimed);
                continue;
            }
            match prepared_run {
                Some(Ok((prepared, run_dir))) => {
                    tx.execute(
                        "UPDATE runs SET run_dir = ?3 WHERE job_id = ?1 AND seq = ?2",
                        params![record.job_id(), seq, run_dir],
                    )
                    .map_err(fail)?;
                    results.push(TickResult::Recorded {
                        seq,
                        prepared: Some(prepared),
                        queued: queue_run,
                    });
                }
                Some(Err(error)) => {
                    // One job's unwritable run directory must not stop the others' claims.
                    tx.execute(
                        "UPDATE runs SET status = 'failed', finished_at = ?3, error_code = ?4, message = ?5
                         WHERE job_id = ?1 AND seq = ?2",
                        params![record.job_id(), seq, now, error.code(), error.to_string()],
                    )
                    .map_err(fail)?;
                    results.push(TickResult::Failed { seq, error });
                }
                None => results.push(TickResult::Recorded {
                    seq,
                    prepared: None,
                    queued: false,
                }),
            }
        }
        {
            let mut statement = tx
                .prepare_cached("UPDATE jobs SET next_slot = ?2 WHERE id = ?1")
                .map_err(fail)?;
            for (id, slot) in next_slots {
                statement.execute(params![id, slot]).map_err(fail)?;
            }
            let mut statement = tx
                .prepare_cached("UPDATE jobs SET catchup = NULL, paused_at = NULL WHERE id = ?1")
                .map_err(fail)?;
            for id in catchups_done {
                statement.execute([id]).map_err(fail)?;
            }
        }
        crate::fault::point(crate::fault::Point::ClaimBeforeCommit);
        tx.commit().map_err(fail)?;
        Ok(results)
    }

    /// Running and queued runs per job, manual ones included.
    pub fn in_flight(&self) -> Result<std::collections::HashMap<String, (u32, u32)>> {
        let fail = |e| Error::store("count the runs in flight", e);
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT job_id, SUM(status = 'running'), SUM(status = 'queued') FROM runs
                 WHERE status IN ('queued', 'running') GROUP BY job_id",
            )
            .map_err(fail)?;
        let rows = statement
            .query_map([], |row| {
                let count = |i: usize| -> rusqlite::Result<u32> {
                    Ok(u32::try_from(row.get::<_, i64>(i)?).unwrap_or(u32::MAX))
                };
                Ok((row.get::<_, String>(0)?, (count(1)?, count(2)?)))
            })
            .map_err(fail)?;
        rows.collect::<rusqlite::Result<_>>().map_err(fail)
    }

    /// The slot ranges of a job skipped because it was paused, since `since`, oldest first.
    pub fn paused_skips(&self, job_id: &str, since: i64) -> Result<Vec<(i64, i64)>> {
        let fail = |e| Error::store(format!("read the paused slots of {job_id}"), e);
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT COALESCE(first_slot, slot), slot FROM runs
                 WHERE job_id = ?1 AND status = 'skipped' AND error_code = 'skipped_paused' AND claimed_at >= ?2
                 ORDER BY seq",
            )
            .map_err(fail)?;
        let rows = statement
            .query_map(params![job_id, since], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(fail)?;
        rows.collect::<rusqlite::Result<_>>().map_err(fail)
    }

    /// Runs in flight, oldest first.
    pub fn active_runs(&self) -> Result<Vec<RunRow>> {
        self.select_runs(
            "status IN ('queued', 'running') ORDER BY claimed_at, seq",
            "read the runs in flight",
        )
    }

    /// The latest failed, timed-out or interrupted runs, newest first.
    pub fn recent_failures(&self, limit: i64) -> Result<Vec<RunRow>> {
        self.select_runs(
            &format!("status IN ('failed', 'timed_out', 'interrupted') ORDER BY claimed_at DESC, seq DESC LIMIT {limit}"),
            "read the recent failures",
        )
    }

    fn select_runs(&self, condition: &str, action: &str) -> Result<Vec<RunRow>> {
        let fail = |e| Error::store(action.to_owned(), e);
        let mut statement = self
            .conn
            .prepare(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE {condition}"))
            .map_err(fail)?;
        let rows = statement.query_map([], run_row).map_err(fail)?;
        rows.collect::<rusqlite::Result<_>>().map_err(fail)
    }
}

impl Store {
    /// Every run of a job as retention sees it: `(seq, finished or claimed at, in flight)`.
    pub fn retention_view(&self, job_id: &str) -> Result<Vec<(i64, i64, bool)>> {
        let fail = |e| Error::store(format!("read the runs of {job_id}"), e);
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT seq, COALESCE(finished_at, claimed_at), status IN ('queued', 'running')
                 FROM runs WHERE job_id = ?1",
            )
            .map_err(fail)?;
        let rows = statement
            .query_map([job_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(fail)?;
        rows.collect::<rusqlite::Result<_>>().map_err(fail)
    }

    /// Deletes runs' rows in one transaction, never one in flight.
    pub fn delete_runs(&mut self, job_id: &str, seqs: &[i64]) -> Result<usize> {
        let fail = |e| Error::store(format!("delete runs of {job_id}"), e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let mut deleted = 0;
        {
            let mut statement = tx
                .prepare_cached(
                    "DELETE FROM runs WHERE job_id = ?1 AND seq = ?2 AND status NOT IN ('queued', 'running')",
                )
                .map_err(fail)?;
            for seq in seqs {
                deleted += statement.execute(params![job_id, seq]).map_err(fail)?;
            }
        }
        tx.commit().map_err(fail)?;
        Ok(deleted)
    }

    /// Whether a run row exists.
    pub fn run_exists(&self, job_id: &str, seq: i64) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT 1 FROM runs WHERE job_id = ?1 AND seq = ?2",
                params![job_id, seq],
                |_| Ok(()),
            )
            .optional()
            .map(|row| row.is_some())
            .map_err(|e| Error::store(format!("read run {job_id}#{seq}"), e))
    }
}
