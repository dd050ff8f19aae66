//! The `runs` table, a run's life: claiming runs under the job's `max_instances` (one at a time, or a
//! whole tick at once), recording their starts and processes, finishing them, settling runs whose owner
//! died, and deleting old ones for retention.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::column::{Millis, millis, signed};
use super::connection::{SqliteStore, store_error};
use super::history::{RUN_COLUMNS, run_row};
use super::outbox::{RunEventKind, owe_for_run};
use crate::error::{Error, Result};
use crate::run::{RunEnd, RunStatus, Trigger};
use crate::spec::model::Overlap;
use crate::store::interface::{IsAlive, Prepare, RunStore, number_taken};
use crate::store::records::{
    AttemptProcess, ClaimRequest, Claimed, LimitReached, OWNER_GONE, OperatorState, QueuedStart,
    RunRow, SharedLimits, SlotRecord, TickRecord, TickResult,
};

impl RunStore for SqliteStore {
    fn claim(
        &mut self,
        request: &ClaimRequest<'_>,
        is_alive: IsAlive<'_>,
        prepare: Prepare<'_>,
    ) -> Result<Claimed> {
        let fail = |e| store_error(format!("claim a run of {}", request.job_id), e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        reap(&tx, Some(request.job_id), is_alive, Millis(request.now)).map_err(fail)?;
        let (running, queued) = active_counts(&tx, request.job_id).map_err(fail)?;
        let max = i64::from(request.max_instances);
        let mut queue = running >= max || queued > 0;
        if queue && (request.overlap != Overlap::Queue || queued > 0) {
            return Err(Error::MaxInstancesReached {
                id: request.job_id.to_owned(),
                running,
                max: request.max_instances,
            });
        }
        if let Some(limit) = shared_limit_reached(&tx, &request.shared).map_err(fail)? {
            if request.overlap != Overlap::Queue {
                return Err(limit.into_error(request.job_id));
            }
            queue = true;
        }
        let mut skipped = 0;
        let (seq, run_dir) = loop {
            let seq = next_seq(&tx, request.job_id).map_err(fail)?;
            match prepare(request.job_id, seq) {
                Ok(prepared) => break (seq, prepared),
                // A directory of that number exists already (a store restored from an older backup, or a
                // claim whose transaction failed): never reuse it, take the next number.
                Err(e) if number_taken(&e) && skipped < MAX_SKIPPED_SEQS => skipped += 1,
                Err(e) => return Err(e),
            }
        };
        // The start is recorded when the command is spawned (`record_starts`), not at the claim.
        let (status, started_at) = if queue {
            (RunStatus::Queued, None::<Millis>)
        } else {
            (RunStatus::Running, None)
        };
        let (owner_start, boot_id) = crate::store::records::claim_identity(request.owner);
        tx.execute(
            "INSERT INTO runs (job_id, seq, trigger, slot, due_at, claimed_at, started_at, status, spec_hash, owner,
                               replay_of, run_dir, owner_start, boot_id, run_group, no_trigger)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                request.job_id,
                seq,
                request.trigger,
                millis(request.slot),
                millis(request.due_at),
                Millis(request.now),
                started_at,
                status,
                request.spec_hash,
                request.owner,
                request.replay_of,
                run_dir,
                owner_start,
                boot_id,
                request.shared.group.as_ref().map(|(name, _)| name),
                request.no_trigger,
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
        Ok(claimed)
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
        let now = Millis(now);
        let fail = |e| store_error("record the scheduler's claims", e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let mut results = Vec::with_capacity(records.len());
        let (owner_start, boot_id) = crate::store::records::claim_identity(owner);
        for index in fair_order(&tx, records).map_err(fail)? {
            let record = &records[index];
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
                    results.push((index, TickResult::AlreadyClaimed));
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
                        params![job_id, Millis(*slot)],
                        |row| row.get(0),
                    )
                    .map_err(fail)?;
                if taken {
                    results.push((index, TickResult::AlreadyClaimed));
                    continue;
                }
            }
            let mut seq = next_seq(&tx, record.job_id()).map_err(fail)?;
            let mut held_by_limit = false;
            // A triggered run takes its trigger in this transaction: taken already (another tick,
            // another scheduler), it is not run again. The job's own state and limits decide the
            // rest: paused or disabled, or full with overlap other than `queue`, the trigger is
            // recorded skipped; full with `queue`, the run waits.
            if let TickRecord::Run {
                job_id,
                upstream: Some(owed),
                overlap,
                max_instances,
                shared,
                ..
            } = record
            {
                if !super::triggers::pending(&tx, owed).map_err(fail)? {
                    results.push((index, TickResult::AlreadyClaimed));
                    continue;
                }
                let state: Option<OperatorState> = tx
                    .query_row("SELECT state FROM jobs WHERE id = ?1", [job_id], |row| {
                        row.get(0)
                    })
                    .optional()
                    .map_err(fail)?;
                let (running, _) = active_counts(&tx, job_id).map_err(fail)?;
                let full = running >= i64::from(*max_instances);
                let limit = shared_limit_reached(&tx, shared).map_err(fail)?;
                let waits = *overlap == Overlap::Queue;
                let skipped = match state {
                    Some(OperatorState::Disabled) | None => Some("disabled"),
                    Some(OperatorState::Paused) => Some("paused"),
                    Some(OperatorState::Active) if full && !waits => Some("overlap"),
                    Some(OperatorState::Active) if !waits => {
                        limit.as_ref().map(LimitReached::reason)
                    }
                    Some(OperatorState::Active) => None,
                };
                if let Some(reason) = skipped {
                    tx.execute(
                        "INSERT INTO runs (job_id, seq, trigger, claimed_at, finished_at, status, owner,
                                           error_code, message, upstream)
                         VALUES (?1, ?2, 'after', ?3, ?3, 'skipped', ?4, ?5, ?6, ?7)",
                        params![job_id, seq, now, owner, format!("skipped_{reason}"),
                                format!("skipped: triggered by {} while the job was {}", owed.upstreams,
                                        if reason == "overlap" { "full" } else { reason }),
                                owed.upstreams],
                    )
                    .map_err(fail)?;
                    super::triggers::take(&tx, owed, seq).map_err(fail)?;
                    owe_for_run(&tx, job_id, seq, RunEventKind::Ended, now).map_err(fail)?;
                    results.push((index, TickResult::Refused { seq, reason }));
                    continue;
                }
                held_by_limit = full || limit.is_some();
            }
            // A limit shared with other jobs is known only here, across every process: full, a
            // slot's run is queued (overlap `queue`) or the slot recorded skipped; a run owed
            // without a slot of its own (a catch-up, a retry) always waits in the queue.
            if let TickRecord::Run {
                job_id,
                slot,
                first_slot,
                count,
                shared,
                overlap,
                queued,
                upstream: None,
                ..
            } = record
                && !*queued
                && let Some(limit) = shared_limit_reached(&tx, shared).map_err(fail)?
            {
                match slot {
                    Some(slot) if *overlap != Overlap::Queue => {
                        let code = format!("skipped_{}", limit.reason());
                        let message = limit.message();
                        let record = SlotRecord {
                            job_id,
                            seq,
                            first: first_slot.unwrap_or(*slot),
                            last: *slot,
                            count: *count,
                            status: "skipped",
                            error_code: &code,
                            message: &message,
                        };
                        let inserted = insert_slots(&tx, &record, owner, now).map_err(fail)?;
                        if inserted == 0 {
                            results.push((index, TickResult::AlreadyClaimed));
                        } else {
                            owe_for_run(&tx, job_id, seq, RunEventKind::Ended, now)
                                .map_err(fail)?;
                            results.push((
                                index,
                                TickResult::Refused {
                                    seq,
                                    reason: limit.reason(),
                                },
                            ));
                        }
                        continue;
                    }
                    _ => held_by_limit = true,
                }
            }
            // A run's directory is made before its row, under the same write lock; a number whose
            // directory exists already is skipped, never reused.
            let mut prepared_run = None;
            if matches!(record, TickRecord::Run { .. }) {
                let mut skipped = 0;
                loop {
                    match prepare(record.job_id(), seq) {
                        Err(e) if number_taken(&e) && skipped < MAX_SKIPPED_SEQS => {
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
                    shared,
                    upstream,
                    ..
                } => {
                    let (running, _) = active_counts(&tx, job_id).map_err(fail)?;
                    queue_run = *queued || held_by_limit || running >= i64::from(*max_instances);
                    // No start time yet: a run claimed ahead of its slot starts when it is due, and its
                    // real start is recorded when the command is spawned (`record_starts`).
                    let (status, started_at) = if queue_run {
                        ("queued", None::<Millis>)
                    } else {
                        ("running", None)
                    };
                    tx.execute(
                        "INSERT INTO runs (job_id, seq, trigger, slot, due_at, claimed_at, started_at, status, spec_hash,
                                           owner, slot_count, first_slot, last_slot, replay_of, owner_start, boot_id,
                                           run_group, upstream)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) ON CONFLICT DO NOTHING",
                        params![job_id, seq, trigger, millis(*slot), millis(*due_at), now, started_at, status, spec_hash,
                                owner, signed(*count), millis(*first_slot), millis(*last_slot), retry_of, owner_start,
                                boot_id, shared.group.as_ref().map(|(name, _)| name),
                                upstream.as_ref().map(|o| &o.upstreams)],
                    )
                    .map_err(fail)?
                }
                TickRecord::Skipped {
                    job_id,
                    first_slot,
                    last_slot,
                    count,
                    reason,
                } => {
                    let (code, message) =
                        (format!("skipped_{reason}"), format!("skipped: {reason}"));
                    let record = SlotRecord {
                        job_id,
                        seq,
                        first: *first_slot,
                        last: *last_slot,
                        count: *count,
                        status: "skipped",
                        error_code: &code,
                        message: &message,
                    };
                    insert_slots(&tx, &record, owner, now).map_err(fail)?
                }
                TickRecord::Missed {
                    job_id,
                    first_slot,
                    last_slot,
                    count,
                    message,
                } => {
                    let record = SlotRecord {
                        job_id,
                        seq,
                        first: *first_slot,
                        last: *last_slot,
                        count: *count,
                        status: "missed",
                        error_code: "misfire",
                        message,
                    };
                    insert_slots(&tx, &record, owner, now).map_err(fail)?
                }
            };
            if inserted == 0 {
                results.push((index, TickResult::AlreadyClaimed));
                continue;
            }
            if let TickRecord::Run {
                upstream: Some(owed),
                ..
            } = record
            {
                super::triggers::take(&tx, owed, seq).map_err(fail)?;
            }
            match prepared_run {
                Some(Ok(run_dir)) => {
                    tx.execute(
                        "UPDATE runs SET run_dir = ?3 WHERE job_id = ?1 AND seq = ?2",
                        params![record.job_id(), seq, run_dir],
                    )
                    .map_err(fail)?;
                    results.push((
                        index,
                        TickResult::Recorded {
                            seq,
                            prepared: Some(()),
                            queued: queue_run,
                        },
                    ));
                }
                Some(Err(error)) => {
                    // One job's unwritable run directory must not stop the others' claims.
                    tx.execute(
                        "UPDATE runs SET status = 'failed', finished_at = ?3, error_code = ?4, message = ?5
                         WHERE job_id = ?1 AND seq = ?2",
                        params![record.job_id(), seq, now, error.code(), error.to_string()],
                    )
                    .map_err(fail)?;
                    owe_for_run(&tx, record.job_id(), seq, RunEventKind::Ended, now)
                        .map_err(fail)?;
                    super::triggers::owe_triggers(
                        &tx,
                        record.job_id(),
                        seq,
                        RunStatus::Failed,
                        now,
                    )
                    .map_err(fail)?;
                    results.push((index, TickResult::Failed { seq, error }));
                }
                None => {
                    // A skipped or missed slot is an end in itself.
                    owe_for_run(&tx, record.job_id(), seq, RunEventKind::Ended, now)
                        .map_err(fail)?;
                    results.push((
                        index,
                        TickResult::Recorded {
                            seq,
                            prepared: None,
                            queued: false,
                        },
                    ));
                }
            }
        }
        {
            let mut statement = tx
                .prepare_cached("UPDATE jobs SET next_slot = ?2 WHERE id = ?1")
                .map_err(fail)?;
            for (id, slot) in next_slots {
                statement
                    .execute(params![id, millis(*slot)])
                    .map_err(fail)?;
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
        results.sort_by_key(|(index, _)| *index);
        Ok(results.into_iter().map(|(_, result)| result).collect())
    }

    fn start_queued(
        &mut self,
        job_id: &str,
        seq: i64,
        max_instances: u32,
        shared: &SharedLimits,
        is_alive: IsAlive<'_>,
        now: DateTime<Utc>,
    ) -> Result<QueuedStart> {
        let fail = |e| store_error(format!("start queued run {job_id}#{seq}"), e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let (state, trigger): (OperatorState, Trigger) = tx
            .query_row(
                "SELECT jobs.state, runs.trigger FROM runs JOIN jobs ON jobs.id = runs.job_id
                 WHERE runs.job_id = ?1 AND runs.seq = ?2",
                params![job_id, seq],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(fail)?;
        let scheduled = !matches!(trigger, Trigger::Manual | Trigger::Replay);
        match state {
            OperatorState::Disabled => return Ok(QueuedStart::Dropped { reason: "disabled" }),
            OperatorState::Paused if scheduled => {
                return Ok(QueuedStart::Dropped { reason: "paused" });
            }
            OperatorState::Active | OperatorState::Paused => {}
        }
        // A run waiting on a shared limit waits behind the other jobs' runs queued before it, so
        // it must see theirs settled if their owners died.
        let shares = shared.group.is_some() || shared.home.is_some();
        let reap_of = if shares { None } else { Some(job_id) };
        reap(&tx, reap_of, is_alive, Millis(now)).map_err(fail)?;
        let (running, _) = active_counts(&tx, job_id).map_err(fail)?;
        let oldest: Option<i64> = tx
            .query_row(
                "SELECT MIN(seq) FROM runs WHERE job_id = ?1 AND status = 'queued'",
                [job_id],
                |row| row.get(0),
            )
            .map_err(fail)?;
        let limited = running < i64::from(max_instances)
            && oldest == Some(seq)
            && (shared_limit_reached(&tx, shared).map_err(fail)?.is_some()
                || queued_before(&tx, job_id, seq, shared).map_err(fail)?);
        if running >= i64::from(max_instances) || oldest != Some(seq) || limited {
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

    fn record_starts(&mut self, starts: &[(String, i64, DateTime<Utc>)]) -> Result<()> {
        if starts.is_empty() {
            return Ok(());
        }
        self.unsynced("record when runs started", |tx| {
            let mut statement = tx.prepare_cached(
                "UPDATE runs SET started_at = ?3 WHERE job_id = ?1 AND seq = ?2 AND started_at IS NULL",
            )?;
            for (job_id, seq, at) in starts {
                if statement.execute(params![job_id, seq, Millis(*at)])? > 0 {
                    owe_for_run(tx, job_id, *seq, RunEventKind::Started, Millis(*at))?;
                }
            }
            Ok(())
        })
    }

    fn record_processes(&mut self, processes: &[AttemptProcess]) -> Result<()> {
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
                    signed(p.leader.start),
                    p.leader.boot,
                    i64::try_from(p.kill_grace.as_millis()).unwrap_or(i64::MAX)
                ])?;
            }
            Ok(())
        })
    }

    fn finish_run(&mut self, job_id: &str, seq: i64, end: &RunEnd) -> Result<()> {
        self.record_end(job_id, seq, end, "")
    }

    fn finish_orphaned(&mut self, job_id: &str, seq: i64, end: &RunEnd) -> Result<()> {
        let owes =
            format!(", retry_owed = CASE WHEN ?3 = 'interrupted' THEN {OWES_RETRY} ELSE 0 END");
        self.record_end(job_id, seq, end, &owes)
    }

    fn release_unstarted(&mut self, job_id: &str, seq: i64) -> Result<bool> {
        let fail = |e| store_error(format!("release the claim of {job_id}#{seq}"), e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let slot: Option<Millis> = tx
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

    fn reap_dead_runs(
        &mut self,
        job_id: Option<&str>,
        is_alive: IsAlive<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>> {
        let fail = |e| store_error("check runs in flight", e);
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
        let reaped = reap(&tx, job_id, is_alive, Millis(now)).map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(reaped)
    }

    fn owed_triggers(&self) -> Result<Vec<crate::store::records::OwedTrigger>> {
        self.read_owed_triggers()
    }

    fn owed_retries(&self) -> Result<Vec<RunRow>> {
        self.select_runs(
            "retry_owed = 1 ORDER BY claimed_at, seq",
            "read the retries owed",
        )
    }

    fn delete_runs(&mut self, job_id: &str, seqs: &[i64]) -> Result<usize> {
        let fail = |e| store_error(format!("delete runs of {job_id}"), e);
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
            // A run's delivered (or given up) notifications go with it; one still owed is delivered
            // all the same.
            let mut notifications = tx
                .prepare_cached(
                    "DELETE FROM notifications WHERE job_id = ?1 AND seq = ?2 AND state != 'pending'",
                )
                .map_err(fail)?;
            for seq in seqs {
                let gone = statement.execute(params![job_id, seq]).map_err(fail)?;
                if gone > 0 {
                    notifications.execute(params![job_id, seq]).map_err(fail)?;
                }
                deleted += gone;
            }
        }
        tx.commit().map_err(fail)?;
        Ok(deleted)
    }
}

impl SqliteStore {
    /// One transaction committed without an fsync of its own (`synchronous = NORMAL` for it, `FULL`
    /// again after): for records that the next synced commit makes durable anyway, and whose loss to a
    /// power cut costs nothing (a start time written again at the run's end; a process group that the
    /// power cut ended).
    fn unsynced(
        &mut self,
        what: &str,
        write: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<()>,
    ) -> Result<()> {
        let fail = |e| store_error(what, e);
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

    /// The one statement that records a run's end; `also` sets more columns in the same statement.
    fn record_end(&mut self, job_id: &str, seq: i64, end: &RunEnd, also: &str) -> Result<()> {
        crate::fault::point(crate::fault::Point::FinishBeforeCommit);
        let fail = |e| store_error(format!("record the end of run {job_id}#{seq}"), e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        // The same end written again (a run finished twice) owes nothing more: the outbox keeps one
        // notification per delivery id.
        let changed = tx
            .execute(
                &format!(
                    "UPDATE runs SET status = ?3, finished_at = ?4, attempts = ?5, exit_code = ?6, signal = ?7,
                         error_code = ?8, message = ?9, started_at = COALESCE(?10, started_at){also}
                     WHERE job_id = ?1 AND seq = ?2"
                ),
                params![
                    job_id,
                    seq,
                    end.status,
                    Millis(end.finished_at),
                    end.attempts,
                    end.exit_code,
                    end.signal,
                    end.error_code,
                    end.message,
                    millis(end.started_at),
                ],
            )
            .map_err(fail)?;
        if changed > 0 {
            owe_for_run(
                &tx,
                job_id,
                seq,
                RunEventKind::Ended,
                Millis(end.finished_at),
            )
            .map_err(fail)?;
            // What the end triggers is decided with it: a crash after this commit loses none,
            // and the key of each trigger makes a second write of the same end owe nothing more.
            super::triggers::owe_triggers(&tx, job_id, seq, end.status, Millis(end.finished_at))
                .map_err(fail)?;
        }
        tx.commit().map_err(fail)?;
        crate::fault::point(crate::fault::Point::FinishAfterCommit);
        Ok(())
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
    is_alive: IsAlive<'_>,
    now: Millis,
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
            owe_for_run(tx, &run.job_id, run.seq, RunEventKind::Ended, now)?;
            super::triggers::owe_triggers(tx, &run.job_id, run.seq, RunStatus::Interrupted, now)?;
            reaped.push((run.job_id, run.seq));
        }
    }
    Ok(reaped)
}

/// The order a tick's records are written in: as planned, except that runs sharing a group go
/// from the job that last ran in the group longest ago (or never) to the most recent, so that a
/// full group takes turns among its jobs rather than always giving its place to the first one.
fn fair_order(tx: &Transaction<'_>, records: &[TickRecord]) -> rusqlite::Result<Vec<usize>> {
    let mut last_ran = tx.prepare_cached(
        "SELECT MAX(claimed_at) FROM runs WHERE job_id = ?1 AND run_group = ?2 AND status != 'skipped'",
    )?;
    let mut keys: Vec<(usize, Option<i64>)> = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        let key = match record {
            TickRecord::Run {
                job_id,
                shared:
                    SharedLimits {
                        group: Some((group, _)),
                        ..
                    },
                ..
            } => Some(
                last_ran
                    .query_row(params![job_id, group], |row| row.get::<_, Option<i64>>(0))?
                    .unwrap_or(i64::MIN),
            ),
            _ => None,
        };
        keys.push((index, key));
    }
    // Stable: records outside any group keep their place ahead of the grouped ones.
    keys.sort_by_key(|(_, key)| *key);
    Ok(keys.into_iter().map(|(index, _)| index).collect())
}

/// The limit shared with other jobs that one more running run would go past, if any: the group's
/// (its runs in flight, of every job in it) or the home's (all runs in flight).
fn shared_limit_reached(
    tx: &Transaction<'_>,
    shared: &SharedLimits,
) -> rusqlite::Result<Option<LimitReached>> {
    if let Some((name, max)) = &shared.group {
        let running: i64 = tx
            .prepare_cached(
                "SELECT COUNT(*) FROM runs WHERE run_group = ?1 AND status = 'running'",
            )?
            .query_row([name], |row| row.get(0))?;
        if running >= i64::from(*max) {
            return Ok(Some(LimitReached::Group {
                name: name.clone(),
                running,
                max: *max,
            }));
        }
    }
    if let Some(max) = shared.home {
        let running: i64 = tx
            .prepare_cached("SELECT COUNT(*) FROM runs WHERE status = 'running'")?
            .query_row([], |row| row.get(0))?;
        if running >= i64::from(max) {
            return Ok(Some(LimitReached::Home { running, max }));
        }
    }
    Ok(None)
}

/// Whether another job's run waits on the same shared limit as `job_id#seq` and was queued
/// before it: a freed place goes to the runs in the order they were queued, not to whichever polls
/// first. Only a run at the head of its own job's queue, with no run of its job running, counts:
/// one waiting on its own `max_instances` must not hold the place of the others.
fn queued_before(
    tx: &Transaction<'_>,
    job_id: &str,
    seq: i64,
    shared: &SharedLimits,
) -> rusqlite::Result<bool> {
    let mut scopes: Vec<Option<&str>> = Vec::new();
    if let Some((group, _)) = &shared.group {
        scopes.push(Some(group.as_str()));
    }
    if shared.home.is_some() {
        scopes.push(None);
    }
    let mut ahead = tx.prepare_cached(
        "SELECT EXISTS (
             SELECT 1 FROM runs me, runs o
             WHERE me.job_id = ?1 AND me.seq = ?2 AND o.status = 'queued' AND o.job_id != me.job_id
               AND (?3 IS NULL OR o.run_group = ?3)
               AND (o.claimed_at < me.claimed_at OR (o.claimed_at = me.claimed_at AND o.job_id < me.job_id))
               AND NOT EXISTS (SELECT 1 FROM runs q WHERE q.job_id = o.job_id AND q.status = 'queued' AND q.seq < o.seq)
               AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.job_id = o.job_id AND r.status = 'running'))",
    )?;
    for scope in scopes {
        if ahead.query_row(params![job_id, seq, scope], |row| row.get::<_, bool>(0))? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn active_counts(tx: &Transaction<'_>, job_id: &str) -> rusqlite::Result<(i64, i64)> {
    tx.query_row(
        "SELECT COALESCE(SUM(status = 'running'), 0), COALESCE(SUM(status = 'queued'), 0)
         FROM runs WHERE job_id = ?1 AND status IN ('queued', 'running')",
        [job_id],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
}

/// Inserts a record of slots that did not become a run; 0 when its slot has a record already.
fn insert_slots(
    tx: &Transaction<'_>,
    record: &SlotRecord<'_>,
    owner: &str,
    now: Millis,
) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT INTO runs (job_id, seq, trigger, slot, claimed_at, finished_at, status, owner, slot_count,
                           first_slot, last_slot, error_code, message)
         VALUES (?1, ?2, 'schedule', ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?3, ?9, ?10) ON CONFLICT DO NOTHING",
        params![
            record.job_id,
            record.seq,
            Millis(record.last),
            now,
            record.status,
            owner,
            signed(record.count),
            Millis(record.first),
            record.error_code,
            record.message
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::interface::Store;
    use crate::store::records::{ClaimRequest, Claimed};

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap_or_default()
    }

    fn group() -> SharedLimits {
        SharedLimits {
            group: Some(("db".into(), 1)),
            home: None,
        }
    }

    fn claim(store: &mut SqliteStore, job: &str, ms: i64) -> Claimed {
        let store: &mut dyn Store = store;
        let (claimed, ()) = store
            .claim_with(
                &ClaimRequest {
                    job_id: job,
                    trigger: Trigger::Manual,
                    slot: None,
                    due_at: None,
                    spec_hash: "h",
                    owner: "1@h",
                    now: at(ms),
                    max_instances: 1,
                    overlap: crate::spec::model::Overlap::Queue,
                    replay_of: None,
                    shared: group(),
                    no_trigger: true,
                },
                |_| true,
                |seq| Ok(((), format!("runs/{job}/{seq}"))),
            )
            .unwrap_or_else(|e| panic!("claim {job}: {e}"));
        claimed
    }

    #[test]
    fn a_freed_group_place_goes_to_the_run_queued_first_whichever_polls_first() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut store =
            SqliteStore::open(&dir.path().join("jobs.sqlite3")).unwrap_or_else(|e| panic!("{e}"));
        for job in ["a", "b", "c"] {
            store
                .conn
                .execute(
                    "INSERT INTO jobs (id, spec_path, spec_hash, state, created_at, updated_at)
                     VALUES (?1, 'jobs/x.yaml', 'h', 'active', 0, 0)",
                    [job],
                )
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(matches!(claim(&mut store, "a", 0), Claimed::Running(1)));
        assert!(matches!(claim(&mut store, "b", 10), Claimed::Queued(1)));
        assert!(matches!(claim(&mut store, "c", 20), Claimed::Queued(1)));
        let start = |store: &mut SqliteStore, job: &str| {
            store
                .start_queued(job, 1, 1, &group(), &|_| true, at(40))
                .unwrap_or_else(|e| panic!("start {job}: {e}"))
        };
        assert_eq!(start(&mut store, "c"), QueuedStart::Waiting);
        store
            .conn
            .execute(
                "UPDATE runs SET status = 'succeeded' WHERE job_id = 'a'",
                [],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        // c asks first once the place is free, but b was queued before it.
        assert_eq!(start(&mut store, "c"), QueuedStart::Waiting);
        assert_eq!(start(&mut store, "b"), QueuedStart::Started);
        assert_eq!(start(&mut store, "c"), QueuedStart::Waiting);
    }
}
