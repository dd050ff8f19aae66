//! The `runs` table on PostgreSQL, a run's life: claiming runs under the job's `max_instances` (one
//! at a time, or a whole tick at once), recording their starts and processes, finishing them,
//! settling runs whose owner died, and deleting old ones for retention. Every write holds the
//! store's write lock ([`PgStore::write`]), so each count a claim judges by is the one it commits
//! against.
//!
//! PostgreSQL aborts the whole transaction on any failed statement, so nothing here lets a unique
//! index refuse a row: a slot already recorded is looked for first (race free under the write lock),
//! and every insert of a tick's record says `ON CONFLICT DO NOTHING` and reads the row count, so one
//! record's conflict never takes the tick's other records with it.

use chrono::{DateTime, Utc};
use postgres::Transaction;

use super::column::{Millis, millis, signed};
use super::connection::{PgStore, pg_error};
use super::history::{RUN_COLUMNS, run_row};
use super::outbox::{RunEventKind, owe_for_run};
use crate::error::{Error, Result};
use crate::run::{RunEnd, RunStatus, Trigger};
use crate::spec::model::Overlap;
use crate::store::interface::{IsAlive, Prepare, RunStore, number_taken};
use crate::store::records::{
    AttemptProcess, ClaimRequest, Claimed, LimitReached, NO_OWNER, OWNER_GONE, OperatorState,
    OwedTrigger, QueuedStart, RunRow, SharedLimits, SlotRecord, TickRecord, TickResult,
};

type PgResult<T> = std::result::Result<T, postgres::Error>;

impl RunStore for PgStore {
    fn claim(
        &mut self,
        request: &ClaimRequest<'_>,
        is_alive: IsAlive<'_>,
        prepare: Prepare<'_>,
    ) -> Result<Claimed> {
        super::connection::in_place(|| {
            let fail = |e| pg_error(format!("claim a run of {}", request.job_id), e);
            let mut tx = self.write().map_err(fail)?;
            reap(&mut tx, Some(request.job_id), is_alive, Millis(request.now)).map_err(fail)?;
            let (running, queued) = active_counts(&mut tx, request.job_id).map_err(fail)?;
            let max = i64::from(request.max_instances);
            let mut queue = running >= max || queued > 0;
            if queue && (request.overlap != Overlap::Queue || queued > 0) {
                return Err(Error::MaxInstancesReached {
                    id: request.job_id.to_owned(),
                    running,
                    max: request.max_instances,
                });
            }
            if let Some(limit) = shared_limit_reached(&mut tx, &request.shared).map_err(fail)? {
                if request.overlap != Overlap::Queue {
                    return Err(limit.into_error(request.job_id));
                }
                queue = true;
            }
            let mut skipped = 0;
            let (seq, run_dir) = loop {
                let seq = next_seq(&mut tx, request.job_id).map_err(fail)?;
                match prepare(request.job_id, seq) {
                    Ok(prepared) => break (seq, prepared),
                    // The number's directory is there already (the store was restored from an older
                    // backup, or a claim's transaction failed after its directory was made): that
                    // number stays spent, and the claim moves on to the next.
                    Err(e) if number_taken(&e) && skipped < MAX_SKIPPED_SEQS => skipped += 1,
                    Err(e) => return Err(e),
                }
            };
            // No start time at the claim: it is written when the command is spawned (`record_starts`).
            let status = if queue {
                RunStatus::Queued
            } else {
                RunStatus::Running
            };
            let (owner_start, boot_id) = crate::store::records::claim_identity(request.owner);
            tx.execute(
            "INSERT INTO runs (job_id, seq, trigger, slot, due_at, claimed_at, started_at, status, spec_hash, owner,
                               replay_of, run_dir, owner_start, boot_id, run_group, no_trigger)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            &[
                &request.job_id,
                &seq,
                &request.trigger,
                &millis(request.slot),
                &millis(request.due_at),
                &Millis(request.now),
                &None::<Millis>,
                &status,
                &request.spec_hash,
                &request.owner,
                &request.replay_of,
                &run_dir,
                &owner_start,
                &boot_id,
                &request.shared.group.as_ref().map(|(name, _)| name),
                &i64::from(request.no_trigger),
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
        })
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
        super::connection::in_place(|| {
            let now = Millis(now);
            let fail = |e| pg_error("record the scheduler's claims", e);
            let fence = self.fence.clone();
            let mut tx = self.write().map_err(fail)?;
            // A leader that slept through its lease (a pause, a partition) wakes up here with a term
            // that has ended: it claims nothing.
            if let Some(refused) =
                super::nodes::check_fence(&mut tx, fence.as_ref()).map_err(fail)?
            {
                return Err(refused);
            }
            let mut results = Vec::with_capacity(records.len());
            let (owner_start, boot_id) = crate::store::records::claim_identity(owner);
            // The leader of several nodes claims its runs for whichever node's worker takes them:
            // no directory is made here, and the workers are woken once the claims are committed.
            let for_workers = owner == NO_OWNER;
            let mut queued_for_workers = false;
            for index in fair_order(&mut tx, records).map_err(fail)? {
                let record = &records[index];
                // The retry an interrupted run is owed is claimed once: taking it clears the debt in
                // this very transaction, so any later claim of it (another tick, another scheduler)
                // finds nothing to take.
                if let TickRecord::Run {
                    job_id,
                    retry_of: Some(of),
                    ..
                } = record
                {
                    let taken = tx
                    .execute(
                        "UPDATE runs SET retry_owed = 0 WHERE job_id = $1 AND seq = $2 AND retry_owed = 1",
                        &[job_id, of],
                    )
                    .map_err(fail)?;
                    if taken == 0 {
                        results.push((index, TickResult::AlreadyClaimed));
                        continue;
                    }
                }
                // A slot recorded already is looked for before anything is written: a violated unique
                // index would abort the whole transaction, and with it the tick's other records.
                if let TickRecord::Run {
                    job_id,
                    slot: Some(slot),
                    ..
                } = record
                    && slot_taken(&mut tx, job_id, *slot).map_err(fail)?
                {
                    results.push((index, TickResult::AlreadyClaimed));
                    continue;
                }
                let mut seq = next_seq(&mut tx, record.job_id()).map_err(fail)?;
                let mut held_by_limit = false;
                // A triggered run takes its trigger in this transaction, so a trigger taken already
                // (by another tick or scheduler) is not run twice. The job's own state and limits decide
                // the rest: paused or disabled, or full with an overlap other than `queue`, the trigger
                // is recorded skipped; full with `queue`, the run waits.
                if let TickRecord::Run {
                    job_id,
                    upstream: Some(owed),
                    overlap,
                    max_instances,
                    shared,
                    ..
                } = record
                {
                    if !super::triggers::pending(&mut tx, owed).map_err(fail)? {
                        results.push((index, TickResult::AlreadyClaimed));
                        continue;
                    }
                    let state: Option<OperatorState> = tx
                        .query_opt("SELECT state FROM jobs WHERE id = $1", &[job_id])
                        .map_err(fail)?
                        .map(|row| row.try_get(0))
                        .transpose()
                        .map_err(fail)?;
                    let (running, _) = active_counts(&mut tx, job_id).map_err(fail)?;
                    let full = running >= i64::from(*max_instances);
                    let limit = shared_limit_reached(&mut tx, shared).map_err(fail)?;
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
                        refuse_trigger(&mut tx, job_id, seq, owed, reason, owner, now)
                            .map_err(fail)?;
                        results.push((index, TickResult::Refused { seq, reason }));
                        continue;
                    }
                    held_by_limit = full || limit.is_some();
                }
                // A limit shared with other jobs can only be judged here, across every process: when
                // it is full, a slot's run waits in the queue (overlap `queue`) or its slot is recorded
                // skipped; a run owed without a slot of its own (a catch-up, a retry) always waits.
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
                    && let Some(limit) = shared_limit_reached(&mut tx, shared).map_err(fail)?
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
                            let inserted =
                                insert_slots(&mut tx, &record, owner, now).map_err(fail)?;
                            if inserted == 0 {
                                results.push((index, TickResult::AlreadyClaimed));
                            } else {
                                owe_for_run(&mut tx, job_id, seq, RunEventKind::Ended, now)
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
                // The run's directory is made before its row, under the same write lock; a number
                // whose directory is there already is stepped over, never reused.
                let mut prepared_run = None;
                if matches!(record, TickRecord::Run { .. }) && !for_workers {
                    let mut skipped = 0;
                    loop {
                        match prepare(record.job_id(), seq) {
                            Err(e) if number_taken(&e) && skipped < MAX_SKIPPED_SEQS => {
                                skipped += 1;
                                seq = next_seq(&mut tx, record.job_id()).map_err(fail)?;
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
                        let (running, _) = active_counts(&mut tx, job_id).map_err(fail)?;
                        queue_run =
                            *queued || held_by_limit || running >= i64::from(*max_instances);
                        // No start time yet: a run claimed ahead of its slot starts when it is due, and
                        // the real start is written when its command is spawned (`record_starts`).
                        let status = if queue_run { "queued" } else { "running" };
                        tx.execute(
                        "INSERT INTO runs (job_id, seq, trigger, slot, due_at, claimed_at, started_at, status, spec_hash,
                                           owner, slot_count, first_slot, last_slot, replay_of, owner_start, boot_id,
                                           run_group, upstream, spec_json)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                                 (SELECT spec_json FROM jobs WHERE id = $1 AND good_hash = $9))
                         ON CONFLICT DO NOTHING",
                        &[
                            job_id,
                            &seq,
                            trigger,
                            &millis(*slot),
                            &millis(*due_at),
                            &now,
                            &None::<Millis>,
                            &status,
                            spec_hash,
                            &owner,
                            &signed(*count),
                            &millis(*first_slot),
                            &millis(*last_slot),
                            retry_of,
                            &owner_start,
                            &boot_id,
                            &shared.group.as_ref().map(|(name, _)| name),
                            &upstream.as_ref().map(|o| &o.upstreams),
                        ],
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
                        insert_slots(&mut tx, &record, owner, now).map_err(fail)?
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
                        insert_slots(&mut tx, &record, owner, now).map_err(fail)?
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
                    super::triggers::take(&mut tx, owed, seq).map_err(fail)?;
                }
                match prepared_run {
                    Some(Ok(run_dir)) => {
                        tx.execute(
                            "UPDATE runs SET run_dir = $3 WHERE job_id = $1 AND seq = $2",
                            &[&record.job_id(), &seq, &run_dir],
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
                        // A job whose run directory cannot be written fails that run alone; the
                        // others' claims still land.
                        tx.execute(
                        "UPDATE runs SET status = 'failed', finished_at = $3, error_code = $4, message = $5
                         WHERE job_id = $1 AND seq = $2",
                        &[
                            &record.job_id(),
                            &seq,
                            &now,
                            &error.code(),
                            &error.to_string(),
                        ],
                    )
                    .map_err(fail)?;
                        owe_for_run(&mut tx, record.job_id(), seq, RunEventKind::Ended, now)
                            .map_err(fail)?;
                        super::triggers::owe_triggers(
                            &mut tx,
                            record.job_id(),
                            seq,
                            RunStatus::Failed,
                            now,
                        )
                        .map_err(fail)?;
                        results.push((index, TickResult::Failed { seq, error }));
                    }
                    None if for_workers && matches!(record, TickRecord::Run { .. }) => {
                        queued_for_workers = true;
                        results.push((
                            index,
                            TickResult::Recorded {
                                seq,
                                prepared: None,
                                queued: queue_run,
                            },
                        ));
                    }
                    None => {
                        // A skipped or missed slot ends as it is recorded.
                        owe_for_run(&mut tx, record.job_id(), seq, RunEventKind::Ended, now)
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
            // One statement for every job's cursor: a round trip per job would cost a tick of 200
            // jobs 200 round trips to the database.
            let (ids, slots): (Vec<&str>, Vec<Option<i64>>) = next_slots
                .iter()
                .map(|(id, slot)| (id.as_str(), slot.map(|at| at.timestamp_millis())))
                .unzip();
            if !ids.is_empty() {
                tx.execute(
                    "UPDATE jobs SET next_slot = u.slot
                     FROM unnest($1::text[], $2::bigint[]) AS u (id, slot) WHERE jobs.id = u.id",
                    &[&ids, &slots],
                )
                .map_err(fail)?;
            }
            // The node that leads claims the runs and runs them: `history` names it.
            if let Some(fence) = &fence {
                let (jobs, seqs): (Vec<&str>, Vec<i64>) = results
                    .iter()
                    .filter_map(|(index, result)| match result {
                        TickResult::Recorded {
                            seq,
                            prepared: Some(_),
                            ..
                        } => Some((records[*index].job_id(), *seq)),
                        _ => None,
                    })
                    .unzip();
                if !jobs.is_empty() {
                    tx.execute(
                        "UPDATE runs SET node = $1
                         FROM unnest($2::text[], $3::bigint[]) AS u (job_id, seq)
                         WHERE runs.job_id = u.job_id AND runs.seq = u.seq",
                        &[&fence.node, &jobs, &seqs],
                    )
                    .map_err(fail)?;
                }
            }
            for id in catchups_done {
                tx.execute(
                    "UPDATE jobs SET catchup = NULL, paused_at = NULL WHERE id = $1",
                    &[id],
                )
                .map_err(fail)?;
            }
            if queued_for_workers {
                // Delivered at the commit, to every node listening (see `QueueStore::work_signal`).
                tx.execute(&format!("NOTIFY {}", super::queue::WORK_CHANNEL), &[])
                    .map_err(fail)?;
            }
            crate::fault::point(crate::fault::Point::ClaimBeforeCommit);
            tx.commit().map_err(fail)?;
            results.sort_by_key(|(index, _)| *index);
            Ok(results.into_iter().map(|(_, result)| result).collect())
        })
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
        super::connection::in_place(|| {
            let fail = |e| pg_error(format!("start queued run {job_id}#{seq}"), e);
            let mut tx = self.write().map_err(fail)?;
            let row = tx
                .query_one(
                    "SELECT jobs.state, runs.trigger FROM runs JOIN jobs ON jobs.id = runs.job_id
                 WHERE runs.job_id = $1 AND runs.seq = $2",
                    &[&job_id, &seq],
                )
                .map_err(fail)?;
            let state: OperatorState = row.try_get(0).map_err(fail)?;
            let trigger: Trigger = row.try_get(1).map_err(fail)?;
            let scheduled = !matches!(trigger, Trigger::Manual | Trigger::Replay);
            match state {
                OperatorState::Disabled => return Ok(QueuedStart::Dropped { reason: "disabled" }),
                OperatorState::Paused if scheduled => {
                    return Ok(QueuedStart::Dropped { reason: "paused" });
                }
                OperatorState::Active | OperatorState::Paused => {}
            }
            // A run held by a shared limit waits behind other jobs' runs queued before it, so those
            // must be settled first if their owners died, or a dead run would hold the place for ever.
            let shares = shared.group.is_some() || shared.home.is_some();
            let reap_of = if shares { None } else { Some(job_id) };
            reap(&mut tx, reap_of, is_alive, Millis(now)).map_err(fail)?;
            let (running, _) = active_counts(&mut tx, job_id).map_err(fail)?;
            let oldest: Option<i64> = tx
                .query_one(
                    "SELECT MIN(seq) FROM runs WHERE job_id = $1 AND status = 'queued'",
                    &[&job_id],
                )
                .map_err(fail)?
                .try_get(0)
                .map_err(fail)?;
            let limited = running < i64::from(max_instances)
                && oldest == Some(seq)
                && (shared_limit_reached(&mut tx, shared)
                    .map_err(fail)?
                    .is_some()
                    || queued_before(&mut tx, job_id, seq, shared).map_err(fail)?);
            if running >= i64::from(max_instances) || oldest != Some(seq) || limited {
                // Whatever the reaping above settled stays settled.
                tx.commit().map_err(fail)?;
                return Ok(QueuedStart::Waiting);
            }
            tx.execute(
            "UPDATE runs SET status = 'running' WHERE job_id = $1 AND seq = $2 AND status = 'queued'",
            &[&job_id, &seq],
        )
        .map_err(fail)?;
            tx.commit().map_err(fail)?;
            Ok(QueuedStart::Started)
        })
    }

    fn record_starts(&mut self, starts: &[(String, i64, DateTime<Utc>)]) -> Result<()> {
        super::connection::in_place(|| {
            if starts.is_empty() {
                return Ok(());
            }
            self.unsynced("record when runs started", |tx| {
            for (job_id, seq, at) in starts {
                let written = tx.execute(
                    "UPDATE runs SET started_at = $3 WHERE job_id = $1 AND seq = $2 AND started_at IS NULL",
                    &[job_id, seq, &Millis(*at)],
                )?;
                if written > 0 {
                    owe_for_run(tx, job_id, *seq, RunEventKind::Started, Millis(*at))?;
                }
            }
            Ok(())
        })
        })
    }

    fn record_processes(&mut self, processes: &[AttemptProcess]) -> Result<()> {
        super::connection::in_place(|| {
            if processes.is_empty() {
                return Ok(());
            }
            // Durable, unlike in SQLite: there, a power cut that loses the record ended the processes it
            // names, as they ran on the same machine; here the database may be on another host, and a
            // crash of it alone would leave the processes running with no record of their group.
            self.durable("record the processes of runs", |tx| {
            for p in processes {
                tx.execute(
                    "UPDATE runs SET pgid = $3, leader_start = $4, boot_id = COALESCE(boot_id, $5), kill_grace_ms = $6
                     WHERE job_id = $1 AND seq = $2",
                    &[
                        &p.job_id,
                        &p.seq,
                        &i64::from(p.leader.pid),
                        &signed(p.leader.start),
                        &p.leader.boot,
                        &i64::try_from(p.kill_grace.as_millis()).unwrap_or(i64::MAX),
                    ],
                )?;
            }
            Ok(())
        })
        })
    }

    fn finish_run(&mut self, job_id: &str, seq: i64, end: &RunEnd) -> Result<()> {
        super::connection::in_place(|| self.record_end(job_id, seq, end, ""))
    }

    fn finish_orphaned(&mut self, job_id: &str, seq: i64, end: &RunEnd) -> Result<()> {
        super::connection::in_place(|| {
            let owes =
                format!(", retry_owed = CASE WHEN $3 = 'interrupted' THEN {OWES_RETRY} ELSE 0 END");
            self.record_end(job_id, seq, end, &owes)
        })
    }

    fn release_unstarted(&mut self, job_id: &str, seq: i64) -> Result<bool> {
        super::connection::in_place(|| {
            let fail = |e| pg_error(format!("release the claim of {job_id}#{seq}"), e);
            let mut tx = self.write().map_err(fail)?;
            let slot: Option<Millis> = tx
                .query_opt(
                    "SELECT slot FROM runs WHERE job_id = $1 AND seq = $2 AND trigger = 'schedule'
                   AND status IN ('running', 'queued') AND slot IS NOT NULL",
                    &[&job_id, &seq],
                )
                .map_err(fail)?
                .map(|row| row.try_get(0))
                .transpose()
                .map_err(fail)?;
            let Some(slot) = slot else {
                return Ok(false);
            };
            give_slot_back(&mut tx, job_id, seq, slot).map_err(fail)?;
            tx.commit().map_err(fail)?;
            Ok(true)
        })
    }

    fn reap_dead_runs(
        &mut self,
        job_id: Option<&str>,
        is_alive: IsAlive<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>> {
        super::connection::in_place(|| {
            let fail = |e| pg_error("check runs in flight", e);
            // Most of the time nothing is in flight: a plain read first spares the write lock.
            let active: i64 = self
                .client
                .get_mut()
                .query_one(
                    "SELECT COUNT(*) FROM runs WHERE status IN ('queued', 'running')",
                    &[],
                )
                .map_err(fail)?
                .try_get(0)
                .map_err(fail)?;
            if active == 0 {
                return Ok(Vec::new());
            }
            let mut tx = self.write().map_err(fail)?;
            let reaped = reap(&mut tx, job_id, is_alive, Millis(now)).map_err(fail)?;
            tx.commit().map_err(fail)?;
            Ok(reaped)
        })
    }

    fn owed_triggers(&self) -> Result<Vec<OwedTrigger>> {
        super::connection::in_place(|| self.read_owed_triggers())
    }

    fn owed_retries(&self) -> Result<Vec<RunRow>> {
        super::connection::in_place(|| {
            self.select_runs(
                "retry_owed = 1 ORDER BY claimed_at, seq",
                "read the retries owed",
            )
        })
    }

    fn delete_runs(&mut self, job_id: &str, seqs: &[i64]) -> Result<usize> {
        super::connection::in_place(|| {
            let fail = |e| pg_error(format!("delete runs of {job_id}"), e);
            let mut tx = self.write().map_err(fail)?;
            let mut deleted = 0;
            for seq in seqs {
                let gone = tx
                .execute(
                    "DELETE FROM runs WHERE job_id = $1 AND seq = $2 AND status NOT IN ('queued', 'running')",
                    &[&job_id, seq],
                )
                .map_err(fail)?;
                if gone > 0 {
                    // A run's notifications delivered (or given up) go with it; one still owed is
                    // delivered all the same.
                    tx.execute(
                    "DELETE FROM notifications WHERE job_id = $1 AND seq = $2 AND state != 'pending'",
                    &[&job_id, seq],
                )
                .map_err(fail)?;
                }
                deleted += usize::try_from(gone).unwrap_or(usize::MAX);
            }
            tx.commit().map_err(fail)?;
            Ok(deleted)
        })
    }
}

impl PgStore {
    /// One write transaction committed without waiting for its WAL to reach the disk
    /// (`synchronous_commit = off` for it alone): for records that the next durable commit carries
    /// anyway, and whose loss to a crash of the database costs nothing (a start time, written again
    /// with the run's end). The database stays consistent: such a commit is lost whole or kept
    /// whole.
    fn unsynced(
        &mut self,
        what: &str,
        write: impl FnOnce(&mut Transaction<'_>) -> PgResult<()>,
    ) -> Result<()> {
        let fail = |e| pg_error(what, e);
        let mut tx = self.write().map_err(fail)?;
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .map_err(fail)?;
        write(&mut tx).map_err(fail)?;
        tx.commit().map_err(fail)
    }

    /// One write transaction, committed as durably as any other.
    fn durable(
        &mut self,
        what: &str,
        write: impl FnOnce(&mut Transaction<'_>) -> PgResult<()>,
    ) -> Result<()> {
        let fail = |e| pg_error(what, e);
        let mut tx = self.write().map_err(fail)?;
        write(&mut tx).map_err(fail)?;
        tx.commit().map_err(fail)
    }

    /// The one statement that records a run's end; `also` sets more columns in the same statement.
    fn record_end(&mut self, job_id: &str, seq: i64, end: &RunEnd, also: &str) -> Result<()> {
        crate::fault::point(crate::fault::Point::FinishBeforeCommit);
        let fail = |e| pg_error(format!("record the end of run {job_id}#{seq}"), e);
        let mut tx = self.write().map_err(fail)?;
        let changed = tx
            .execute(
                &format!(
                    "UPDATE runs SET status = $3, finished_at = $4, attempts = $5, exit_code = $6, signal = $7,
                         error_code = $8, message = $9, started_at = COALESCE($10, started_at){also}
                     WHERE job_id = $1 AND seq = $2"
                ),
                &[
                    &job_id,
                    &seq,
                    &end.status,
                    &Millis(end.finished_at),
                    &i64::from(end.attempts),
                    &end.exit_code.map(i64::from),
                    &end.signal.map(i64::from),
                    &end.error_code,
                    &end.message,
                    &millis(end.started_at),
                ],
            )
            .map_err(fail)?;
        // The statement matches the run whether or not its end was written before; what it owes is
        // written either way, and the keys of the outbox (one notification per delivery id) and of
        // the triggers (one per upstream run) make a second write of the same end owe nothing more.
        if changed > 0 {
            owe_for_run(
                &mut tx,
                job_id,
                seq,
                RunEventKind::Ended,
                Millis(end.finished_at),
            )
            .map_err(fail)?;
            // What the end triggers is decided in the same transaction, so a crash after the
            // commit loses none of it.
            super::triggers::owe_triggers(
                &mut tx,
                job_id,
                seq,
                end.status,
                Millis(end.finished_at),
            )
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
fn next_seq(tx: &mut Transaction<'_>, job_id: &str) -> PgResult<i64> {
    tx.query_one(
        "UPDATE jobs SET run_counter = run_counter + 1 WHERE id = $1 RETURNING run_counter",
        &[&job_id],
    )?
    .try_get(0)
}

/// Whether the job has a record of `slot` already.
fn slot_taken(tx: &mut Transaction<'_>, job_id: &str, slot: DateTime<Utc>) -> PgResult<bool> {
    tx.query_one(
        "SELECT EXISTS (SELECT 1 FROM runs WHERE job_id = $1 AND slot = $2)",
        &[&job_id, &Millis(slot)],
    )?
    .try_get(0)
}

/// A triggered run the job cannot take (paused, disabled, or full without `queue`), recorded
/// skipped for `reason`, its trigger taken and its end owed, inside the tick's transaction.
fn refuse_trigger(
    tx: &mut Transaction<'_>,
    job_id: &str,
    seq: i64,
    owed: &OwedTrigger,
    reason: &str,
    owner: &str,
    now: Millis,
) -> PgResult<()> {
    let was = if reason == "overlap" { "full" } else { reason };
    tx.execute(
        "INSERT INTO runs (job_id, seq, trigger, claimed_at, finished_at, status, owner,
                           error_code, message, upstream)
         VALUES ($1, $2, 'after', $3, $3, 'skipped', $4, $5, $6, $7)",
        &[
            &job_id,
            &seq,
            &now,
            &owner,
            &format!("skipped_{reason}"),
            &format!(
                "skipped: triggered by {} while the job was {was}",
                owed.upstreams
            ),
            &owed.upstreams,
        ],
    )?;
    super::triggers::take(tx, owed, seq)?;
    owe_for_run(tx, job_id, seq, RunEventKind::Ended, now)
}

/// Whether a run settled as interrupted now owes a retry: its job's last good spec retries
/// `interrupted` outcomes with attempts to spare, it is not itself a retry (or a replay), so a job
/// that keeps taking its owner down cannot loop, and no one asked for it to be cancelled. Decided
/// as the run is settled, by whoever settles it, so whichever command settles it first cannot make
/// the retry be forgotten. An integer (0 or 1), as `retry_owed` is.
const OWES_RETRY: &str = "(replay_of IS NULL AND EXISTS (
        SELECT 1 FROM jobs, jsonb_array_elements_text(jobs.spec_json::jsonb -> 'retry' -> 'retry_on') AS retry_on (value)
        WHERE jobs.id = runs.job_id AND retry_on.value = 'interrupted'
          AND (jobs.spec_json::jsonb -> 'retry' ->> 'max_attempts')::numeric >= 2)
        AND NOT EXISTS (SELECT 1 FROM cancel_requests AS c WHERE c.job_id = runs.job_id AND c.seq = runs.seq))::int";

/// Marks the active runs (of one job, or all) whose owner is gone as interrupted.
/// Removes an unstarted claim and moves its job's pending slot back to `slot` (never forward), so
/// that the next planner judges the slot afresh.
pub(super) fn give_slot_back(
    tx: &mut Transaction<'_>,
    job_id: &str,
    seq: i64,
    slot: Millis,
) -> PgResult<()> {
    tx.execute(
        "UPDATE jobs SET next_slot = $2 WHERE id = $1 AND next_slot IS NOT NULL AND next_slot > $2",
        &[&job_id, &slot],
    )?;
    tx.execute(
        "DELETE FROM runs WHERE job_id = $1 AND seq = $2",
        &[&job_id, &seq],
    )?;
    Ok(())
}

fn reap(
    tx: &mut Transaction<'_>,
    job_id: Option<&str>,
    is_alive: IsAlive<'_>,
    now: Millis,
) -> PgResult<Vec<(String, i64)>> {
    let active: Vec<RunRow> = tx
        .query(
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE status IN ('queued', 'running') AND ($1::text IS NULL OR job_id = $1)
                 ORDER BY job_id, seq"
            ),
            &[&job_id],
        )?
        .iter()
        .map(run_row)
        .collect::<PgResult<_>>()?;
    let mut reaped = Vec::new();
    for run in active {
        if !is_alive(&run) {
            let settled = tx.execute(
                &format!(
                    "UPDATE runs SET status = 'interrupted', finished_at = $3, error_code = 'owner_gone', message = $4,
                         retry_owed = {OWES_RETRY}
                     WHERE job_id = $1 AND seq = $2 AND owner = $5 AND status IN ('queued', 'running')"
                ),
                &[&run.job_id, &run.seq, &now, &OWNER_GONE, &run.owner],
            )?;
            // A worker took it (or it ended) since it was read: it is not the dead owner's any more.
            if settled == 0 {
                continue;
            }
            owe_for_run(tx, &run.job_id, run.seq, RunEventKind::Ended, now)?;
            super::triggers::owe_triggers(tx, &run.job_id, run.seq, RunStatus::Interrupted, now)?;
            reaped.push((run.job_id, run.seq));
        }
    }
    Ok(reaped)
}

/// The order a tick's records are written in: as planned, except that runs sharing a group go from
/// the job that last ran in the group longest ago (or never) to the most recent, so that a full
/// group takes turns among its jobs instead of always giving its place to the same first one.
fn fair_order(tx: &mut Transaction<'_>, records: &[TickRecord]) -> PgResult<Vec<usize>> {
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
            } => {
                let last: Option<i64> = tx
                    .query_one(
                        "SELECT MAX(claimed_at) FROM runs
                         WHERE job_id = $1 AND run_group = $2 AND status != 'skipped'",
                        &[job_id, group],
                    )?
                    .try_get(0)?;
                Some(last.unwrap_or(i64::MIN))
            }
            _ => None,
        };
        keys.push((index, key));
    }
    // A stable sort: the records outside any group keep their places, ahead of the grouped ones.
    keys.sort_by_key(|(_, key)| *key);
    Ok(keys.into_iter().map(|(index, _)| index).collect())
}

/// The limit shared with other jobs that one more running run would go past, if any: the group's
/// (its runs running, of every job in it) or the home's (every run running).
fn shared_limit_reached(
    tx: &mut Transaction<'_>,
    shared: &SharedLimits,
) -> PgResult<Option<LimitReached>> {
    if let Some((name, max)) = &shared.group {
        let running: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM runs WHERE run_group = $1 AND status = 'running'",
                &[name],
            )?
            .try_get(0)?;
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
            .query_one("SELECT COUNT(*) FROM runs WHERE status = 'running'", &[])?
            .try_get(0)?;
        if running >= i64::from(max) {
            return Ok(Some(LimitReached::Home { running, max }));
        }
    }
    Ok(None)
}

/// Whether another job's run waits on the same shared limit as `job_id#seq` and was queued before
/// it: a freed place goes to the runs in the order they were queued, not to whichever asks first.
/// Only a run at the head of its own job's queue, with no run of its job running, counts: one
/// waiting on its own `max_instances` must not hold the place of the others. Job ids break a tie
/// in byte order (`COLLATE "C"`), as SQLite compares them, whatever the database's collation.
fn queued_before(
    tx: &mut Transaction<'_>,
    job_id: &str,
    seq: i64,
    shared: &SharedLimits,
) -> PgResult<bool> {
    let mut scopes: Vec<Option<&str>> = Vec::new();
    if let Some((group, _)) = &shared.group {
        scopes.push(Some(group.as_str()));
    }
    if shared.home.is_some() {
        scopes.push(None);
    }
    for scope in scopes {
        let ahead: bool = tx
            .query_one(
                r#"SELECT EXISTS (
                     SELECT 1 FROM runs me, runs o
                     WHERE me.job_id = $1 AND me.seq = $2 AND o.status = 'queued' AND o.job_id != me.job_id
                       AND ($3::text IS NULL OR o.run_group = $3)
                       AND (o.claimed_at < me.claimed_at
                            OR (o.claimed_at = me.claimed_at AND o.job_id COLLATE "C" < me.job_id COLLATE "C"))
                       AND NOT EXISTS (SELECT 1 FROM runs q WHERE q.job_id = o.job_id AND q.status = 'queued' AND q.seq < o.seq)
                       AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.job_id = o.job_id AND r.status = 'running'))"#,
                &[&job_id, &seq, &scope],
            )?
            .try_get(0)?;
        if ahead {
            return Ok(true);
        }
    }
    Ok(false)
}

/// How many runs of the job are running, and how many queued.
fn active_counts(tx: &mut Transaction<'_>, job_id: &str) -> PgResult<(i64, i64)> {
    let row = tx.query_one(
        "SELECT COUNT(*) FILTER (WHERE status = 'running'), COUNT(*) FILTER (WHERE status = 'queued')
         FROM runs WHERE job_id = $1 AND status IN ('queued', 'running')",
        &[&job_id],
    )?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// Inserts a record of slots that did not become a run; 0 when its slot has a record already.
fn insert_slots(
    tx: &mut Transaction<'_>,
    record: &SlotRecord<'_>,
    owner: &str,
    now: Millis,
) -> std::result::Result<u64, postgres::Error> {
    tx.execute(
        "INSERT INTO runs (job_id, seq, trigger, slot, claimed_at, finished_at, status, owner, slot_count,
                           first_slot, last_slot, error_code, message)
         VALUES ($1, $2, 'schedule', $3, $4, $4, $5, $6, $7, $8, $3, $9, $10)
         ON CONFLICT DO NOTHING",
        &[
            &record.job_id,
            &record.seq,
            &Millis(record.last),
            &now,
            &record.status,
            &owner,
            &signed(record.count),
            &Millis(record.first),
            &record.error_code,
            &record.message,
        ],
    )
}
