//! The store's interface: every operation the rest of `jobs` asks of the store, and nothing of how a
//! backend does it. SQLite implements it today (`sqlite`); a store shared by processes on several
//! hosts (PostgreSQL) is meant to implement the same traits. Nothing outside `store/` names a backend.
//!
//! The operations, by group:
//! - [`Store`]: [`open`]; a change token (`data_version`); an online `backup_to`.
//! - [`JobStore`], the jobs: `sync_specs`, `job_rows`, `job_row`; operator state (`change_state`:
//!   pause, resume, disable, enable); pending slots (`set_next_slots`); run numbers (`run_counters`,
//!   `raise_run_counter`).
//! - [`RunStore`], a run's life: claiming (`claim` for a manual run, `commit_tick` for everything a
//!   tick decided, `start_queued` for a run waiting for an instance), what happens meanwhile
//!   (`record_starts`, `record_processes`), its end (`finish_run`, `finish_orphaned`,
//!   `release_unstarted`, `reap_dead_runs`), the retries owed (`owed_retries`) and retention's
//!   deletes (`delete_runs`).
//! - [`HistoryStore`], reading runs: `run_row`, `run_exists`, `active_runs`, `in_flight`,
//!   `paused_skips`, `recent_failures`, `history`, `run_stats`, `retention_view`.
//! - [`CancelStore`], requests to cancel a run in flight: `request_cancel`, `cancels_for_owner`,
//!   `cancel_request`.
//! - [`ConfigStore`], the last good version of the home's `config.yaml`: `kept_config`,
//!   `keep_config`.
//! - [`OutboxStore`], the notifications owed: those of a run are written by the operations that
//!   record the run's start and end (and a missed or skipped slot), in the same transaction, for the
//!   notifiers of the job's last good spec; those of the home by `enqueue` and `sync_specs`. Then
//!   `take_due`, `record_try`, `release_leases`; `notifications_of_run` and `outbox_counts` read it.
//! - [`OwnerStore`], the scheduler that owns the home: `claim_owner`, `heartbeat`, `release_owner`,
//!   `owner`. Informational today (the flock on `db/scheduler.lock` decides); the row is the lease a
//!   store shared between hosts will grant as leadership.
//!
//! What every backend guarantees, and every caller may rely on:
//! - The caller is never assumed to be the only writer: other processes (on other hosts, for a shared
//!   store) claim, finish and change jobs at any moment. Every decision that reads before it writes
//!   (a claim under `max_instances`, a state change, a request) reads again under the write lock, in
//!   the same transaction as the write.
//! - Each method that changes something is one transaction: it happens whole or not at all.
//! - Times cross as `DateTime<Utc>`, to the millisecond. Where one process judges another by time
//!   (the owner's heartbeat, the lease to come), the store stamps its own clock, not the caller's.
//! - The interface is synchronous and may block (on the disk, on another process's lock, on the
//!   network): call it from a blocking thread (`tokio::task::spawn_blocking`, or a thread of its own),
//!   never from an async worker.
//! - Errors are `Error::Store` (with a kind: damaged, or other), `Error::StoreBusy` when another
//!   process held the write lock past the busy timeout, or the errors a `prepare` callback returned.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::records::{
    AttemptProcess, CancelRequest, ClaimRequest, Claimed, DeliveryTry, DueNotification, Fence,
    HistoryFilter, JobRow, KeptConfig, LastEnds, LeaderRow, Lease, NodeBeat, NodeRow,
    NotificationRecord, OperatorState, OutboxCounts, Owner, QueuedStart, Requested, RetainedRun,
    RunRow, RunStats, StateChange, SyncReport, Take, TakenRun, TickRecord, TickResult,
};
use crate::error::{Error, Result};
use crate::notifier::fanout::Outgoing;
use crate::run::{RunEnd, RunStatus};
use crate::spec::SpecFile;
use crate::spec::model::NotifierSpec;

/// Whether a run in flight still has a live owner (see `runner::recover::run_is_alive`): runs for
/// which it says no are settled as interrupted by the operations that take it.
pub type IsAlive<'a> = &'a dyn Fn(&RunRow) -> bool;

/// Makes what a claimed run needs before anyone can see its record (its run directory, created and
/// locked), called inside the claim's transaction with the job and the run's number; returns where it
/// is, as the store records it. An `Error::ArtifactWrite` of a directory that exists already makes the
/// store step over that number (it is never reused); any other error is the claim's.
pub type Prepare<'a> = &'a mut dyn FnMut(&str, i64) -> Result<String>;

/// The whole store. `Send`, so that it can move to a blocking thread; not `Sync`: one caller at a time
/// (share it behind a `Mutex`).
pub trait Store:
    JobStore
    + RunStore
    + HistoryStore
    + CancelStore
    + OwnerStore
    + NodeStore
    + QueueStore
    + MirrorStore
    + ConfigStore
    + OutboxStore
    + Send
{
    /// A number that changes whenever another process commits to the store (never for this one's own
    /// commits): a cheap way to learn that what was read may be stale. Only equality means anything.
    fn data_version(&self) -> Result<i64>;

    /// Writes a consistent copy of the store to `path` while other processes go on reading and
    /// writing. `path` is either left absent or is a complete store; concurrent backups to the same
    /// path never write into each other's file.
    fn backup_to(&self, path: &Path) -> Result<()>;
}

/// The jobs: their specs as last synced, and the operator's state of each.
pub trait JobStore {
    /// Brings the jobs in line with the spec files just loaded, in one transaction: new jobs are added,
    /// changed specs replace the last good version (a changed schedule drops the pending slot and keeps
    /// the last slot the job's records account for), invalid files keep the last good version and
    /// record their problems, and jobs whose file is gone are marked removed with their history kept.
    /// Idempotent: the changes are planned again under the write lock, so a sync another process made
    /// meanwhile is not made twice, and nothing is written when nothing changed. A file found invalid
    /// (a version not recorded before) owes `spec_invalid` to the home's `notifiers`, in the same
    /// transaction.
    fn sync_specs(
        &mut self,
        files: &[SpecFile],
        display_path: &dyn Fn(&SpecFile) -> String,
        notifiers: &[NotifierSpec],
        now: DateTime<Utc>,
    ) -> Result<SyncReport>;

    /// Every job, by id.
    fn job_rows(&self) -> Result<Vec<JobRow>>;

    fn job_row(&self, id: &str) -> Result<Option<JobRow>>;

    /// Applies an operator's state change in one transaction, judged against the state read under the
    /// write lock; returns that state (before the change). A change that changes nothing (pausing a
    /// paused job, resuming one that is not paused) writes nothing, so who, when and why stay as first
    /// recorded, and the same slots are never owed twice.
    fn change_state(
        &mut self,
        id: &str,
        change: StateChange,
        by: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<OperatorState>;

    /// Sets the pending slot of jobs, in one transaction.
    fn set_next_slots(&mut self, slots: &[(String, Option<DateTime<Utc>>)]) -> Result<()>;

    /// Each job's id and run counter (the last run number handed out).
    fn run_counters(&self) -> Result<Vec<(String, i64)>>;

    /// Raises a job's run counter to `seq` if it is lower, so that no claim hands out `seq` or any
    /// number below it again. Never lowers it, whoever raised it meanwhile.
    fn raise_run_counter(&mut self, job_id: &str, seq: i64) -> Result<()>;
}

/// A run's life in the store, from its claim to its end.
pub trait RunStore {
    /// Claims a run of a job (manual, replay) in one transaction holding the write lock: runs of the
    /// job whose owner is gone (`is_alive`) are first marked interrupted, then `max_instances` and the
    /// overlap policy decide (`Error::MaxInstancesReached` when they refuse). `prepare` runs inside
    /// the transaction with the new number, so no other process sees the record before the run's lock
    /// is held; if it fails, nothing is recorded. A number is never handed out twice.
    fn claim(
        &mut self,
        request: &ClaimRequest<'_>,
        is_alive: IsAlive<'_>,
        prepare: Prepare<'_>,
    ) -> Result<Claimed>;

    /// Writes a tick's records, the jobs' new pending slots and the catch-ups carried out (cleared) in
    /// one transaction: one durable commit for everything due at the same moment. One result per
    /// record, in order. A slot that already has a record, or a retry whose debt another claim took,
    /// is `AlreadyClaimed`: never twice, whichever scheduler asks. `max_instances` is counted again
    /// inside the transaction (a manual run may have taken an instance). A run whose `prepare` fails
    /// is recorded failed with that error, and the other records go on.
    fn commit_tick(
        &mut self,
        records: &[TickRecord],
        next_slots: &[(String, Option<DateTime<Utc>>)],
        catchups_done: &[String],
        owner: &str,
        now: DateTime<Utc>,
        prepare: Prepare<'_>,
    ) -> Result<Vec<TickResult>>;

    /// Starts a queued run if an instance is free and it is the oldest one waiting, in one transaction
    /// (dead runs of the job settled first, as by `claim`). A queued run of a job disabled meanwhile
    /// (or, for a scheduled run, paused) is `Dropped`: it must not start after the operator said stop.
    fn start_queued(
        &mut self,
        job_id: &str,
        seq: i64,
        max_instances: u32,
        shared: &super::records::SharedLimits,
        is_alive: IsAlive<'_>,
        now: DateTime<Utc>,
    ) -> Result<QueuedStart>;

    /// Records when runs' commands really started, in one transaction, keeping a start recorded
    /// before. May be less durable than other commits (a start lost to a power cut is written again
    /// with the run's end).
    fn record_starts(&mut self, starts: &[(String, i64, DateTime<Utc>)]) -> Result<()>;

    /// Records the process group of each attempt that just started, in one transaction. May be less
    /// durable than other commits: a power cut that loses it also ended the processes it names.
    fn record_processes(&mut self, processes: &[AttemptProcess]) -> Result<()>;

    /// Records how a run ended, by its owner, in one statement. Writing the same end again changes
    /// nothing.
    fn finish_run(&mut self, job_id: &str, seq: i64, end: &RunEnd) -> Result<()>;

    /// Records how a run whose owner died ended (see `runner::recover`), in one statement: an
    /// interrupted run also records whether it owes a retry (its job retries interruptions, it is
    /// not itself a retry or replay, and no one asked for it to be cancelled).
    fn finish_orphaned(&mut self, job_id: &str, seq: i64, end: &RunEnd) -> Result<()>;

    /// Gives back the slot of a scheduled run whose owner died (or shut down) after claiming it and
    /// before starting it, in one transaction: the record goes, and the job's pending slot moves back
    /// to it, so the next tick judges the slot afresh. Returns whether it was released; a run that is
    /// not such a claim (any more) is left alone.
    fn release_unstarted(&mut self, job_id: &str, seq: i64) -> Result<bool>;

    /// Marks the runs in flight (all jobs, or one) whose owner is gone (`is_alive`) as interrupted, in
    /// one transaction, recording whether each owes a retry. Returns them. Asks for no write lock when
    /// nothing is in flight.
    fn reap_dead_runs(
        &mut self,
        job_id: Option<&str>,
        is_alive: IsAlive<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>>;

    /// Runs settled as interrupted whose retry is owed and not claimed yet, oldest first. Claiming the
    /// retry (`commit_tick` with `retry_of`) takes the debt.
    fn owed_retries(&self) -> Result<Vec<RunRow>>;

    /// The downstream runs that upstream runs' ends owe and no scheduler has taken yet, oldest first.
    fn owed_triggers(&self) -> Result<Vec<super::records::OwedTrigger>>;

    /// Deletes runs' records (and their cancel requests) in one transaction, never one in flight,
    /// whatever the caller read before. Returns how many went.
    fn delete_runs(&mut self, job_id: &str, seqs: &[i64]) -> Result<usize>;
}

/// Reading runs. Each answer is consistent in itself; it may be stale the moment it returns.
pub trait HistoryStore {
    fn run_row(&self, job_id: &str, seq: i64) -> Result<Option<RunRow>>;

    fn run_exists(&self, job_id: &str, seq: i64) -> Result<bool>;

    /// Runs in flight (queued or running), oldest claim first.
    fn active_runs(&self) -> Result<Vec<RunRow>>;

    /// Running and queued runs per job, manual ones included.
    fn in_flight(&self) -> Result<HashMap<String, crate::policy::InFlight>>;

    /// The slot ranges `(first, last)` of a job skipped because it was paused, recorded since `since`,
    /// oldest first.
    fn paused_skips(
        &self,
        job_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>>;

    /// The latest failed, timed-out or interrupted runs, newest first.
    fn recent_failures(&self, limit: i64) -> Result<Vec<RunRow>>;

    /// Runs newest first (by claim time, then seq), and how many match the filter in all, counted up
    /// to `HISTORY_COUNT_CAP` + 1 (a count above the cap means "more than the cap").
    fn history(&self, filter: &HistoryFilter) -> Result<(Vec<RunRow>, i64)>;

    /// Last run, last success, last failure, failure streak and counts of one job.
    fn run_stats(&self, job_id: &str) -> Result<RunStats>;

    /// When each job's last success and last failure (failed, timed out, cancelled, interrupted)
    /// ended, in one read for every job: what `/metrics` shows.
    fn last_ends(&self) -> Result<Vec<LastEnds>>;

    /// Each job's last `per_job` runs, newest first, as (job, run, status), in one read for every job:
    /// the strip of outcomes the dashboard shows beside each job.
    fn recent_outcomes(&self, per_job: usize) -> Result<Vec<(String, i64, RunStatus)>>;

    /// Every run of a job as retention weighs it.
    fn retention_view(&self, job_id: &str) -> Result<Vec<RetainedRun>>;
}

/// Requests to cancel runs in flight: written by anyone, carried out by the run's owner.
pub trait CancelStore {
    /// Records a request to cancel each of `runs` that is still in flight, in one transaction that
    /// reads each run's status under the write lock. A run asked for already keeps its first request
    /// (`Already`), so asking twice is harmless.
    fn request_cancel(
        &mut self,
        runs: &[(String, i64)],
        by: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Requested>>;

    /// The runs in flight owned by `owner` (`pid@host`) that someone asked to cancel.
    fn cancels_for_owner(&self, owner: &str) -> Result<Vec<(String, i64)>>;

    /// The request to cancel a run, if there is one.
    fn cancel_request(&self, job_id: &str, seq: i64) -> Result<Option<CancelRequest>>;
}

/// The scheduler that owns the home. The row is keyed by `owner` (`pid@host`), so that processes on
/// several hosts never mistake one another; its times are the store's clock.
pub trait OwnerStore {
    /// Records `owner` (running `version`) as the home's scheduler, started and last seen now by the
    /// store's clock, in one statement. Today it replaces any row: who really owns the home was decided
    /// by its lock before. A store shared between hosts grants this as a lease instead: only when the
    /// row is free, or its heartbeat older than the lease by the store's clock.
    fn claim_owner(&mut self, owner: &str, version: &str) -> Result<()>;

    /// Renews the owner's heartbeat (the store's clock), only while the row is `owner`'s: returns
    /// whether it still is.
    fn heartbeat(&mut self, owner: &str) -> Result<bool>;

    /// Clears the row, only if it is `owner`'s: a successor's row is never removed.
    fn release_owner(&mut self, owner: &str) -> Result<()>;

    fn owner(&self) -> Result<Option<Owner>>;
}

/// The schedulers of a store several hosts share, and which one of them leads: plans the ticks and
/// claims the slots. Leadership is a lease on the store's clock, so that hosts whose clocks disagree
/// still agree on who leads; every term is new, and a tick is committed only under the term that
/// planned it ([`NodeStore::fence`]). A store of one host (SQLite, under the home's lock) has one
/// node, the scheduler that holds the lock: it always leads, and has no rows to show.
pub trait NodeStore {
    /// Records `beat.node` as a live node run by `beat.owner`, in one transaction. A row of that
    /// name whose heartbeat is younger than `live_for` and whose owner is another process is a live
    /// node: `Error::NodeNameTaken`, unless `gone` says that owner is gone for sure (a process of
    /// this host whose pid is no more: a node restarted at once after a crash). Returns the
    /// previous owner of the name, when the row was another process's (a node that died or
    /// stopped), so that the caller can take over what it left.
    fn join_node(
        &mut self,
        beat: &NodeBeat,
        live_for: Duration,
        gone: &dyn Fn(&str) -> bool,
    ) -> Result<Option<String>>;

    /// Renews the node's heartbeat, and the last sign of life of every run in flight it owns, by the
    /// store's clock, in one transaction. Returns whether the row is still `beat.owner`'s.
    fn node_heartbeat(&mut self, beat: &NodeBeat) -> Result<bool>;

    /// Renews the last sign of life of the runs in flight `owner` owns (by the store's clock),
    /// promising that they are stopped before `dead_after` passes without another: what a process
    /// that runs runs and is no node (a manual run) does instead of a heartbeat.
    fn renew_runs(&mut self, owner: &str, dead_after: Duration) -> Result<()>;

    /// Removes the node's row (only if `owner` still holds it): a node that stops cleanly leaves no
    /// heartbeat for others to wait on.
    fn leave_node(&mut self, node: &str, owner: &str) -> Result<()>;

    /// Every node, by name.
    fn nodes(&self) -> Result<Vec<NodeRow>>;

    /// Takes or renews the leadership for `node`, in one transaction, by the store's clock: renews
    /// it for `lease` when `node` holds it in `term`; else elects `node` in a new term when the
    /// leadership is free (resigned, or its lease run out) and `spec_hash` is the catalog's (or
    /// the catalog has none yet, which this election then records). `None`: another node leads,
    /// or this one's specs differ from the catalog's.
    fn lead(
        &mut self,
        node: &str,
        term: Option<i64>,
        lease: Duration,
        spec_hash: &str,
    ) -> Result<Option<Lease>>;

    /// Gives the leadership up at once (only if `node` holds it in `term`): the next node to ask is
    /// elected without waiting for the lease to run out.
    fn resign(&mut self, node: &str, term: i64) -> Result<()>;

    /// The leadership, if any node holds or held it.
    fn leader(&self) -> Result<Option<LeaderRow>>;

    /// The fingerprint of the specs the leader last synced into the store: the catalog's.
    fn catalog_hash(&self) -> Result<Option<String>>;

    /// Records `spec_hash` as the catalog's, right after the leader synced its specs (only while
    /// `node` leads in `term`), so that the catalog follows the sync at once rather than at the
    /// next renewal.
    fn publish_catalog(&mut self, node: &str, term: i64, spec_hash: &str) -> Result<()>;

    /// From now on, this handle commits a tick's claims (`commit_tick`) only while `fence` holds
    /// the leadership, checked inside the claim's transaction (`Error::NotLeader` otherwise).
    /// `None` lifts the check (a store of one host).
    fn fence(&mut self, fence: Option<Fence>);
}

/// The runs a shared store's leader claimed for any node to execute, and the workers that take them.
/// A store of one host has no such queue: its one scheduler executes what it claims.
pub trait QueueStore {
    /// Takes up to `take.limit` runs no node has taken yet (owner [`crate::store::NO_OWNER`]) whose
    /// spec's `run.nodes` the node's labels satisfy, soonest due first, in one transaction that
    /// skips the rows another worker is taking at that moment (so two workers never take one run).
    /// `prepare` makes each run's directory on this node before the run is recorded as the
    /// worker's; a run whose directory cannot be made here stays in the queue for another node,
    /// nothing more is taken, and that error is returned when nothing was.
    fn take_runs(&mut self, take: &Take<'_>, prepare: Prepare<'_>) -> Result<Vec<TakenRun>>;

    /// Gives a run `owner` took but never started back to the queue (its directory on this node is
    /// the caller's to remove), for another node to take: what a node shutting down, or one that
    /// could not renew its heartbeat in time, does with the runs still waiting for their slot.
    /// `queued`: the run was taken waiting for an instance, and waits for one again (it may have
    /// been let through meanwhile without starting). Returns whether the run was `owner`'s and
    /// unstarted.
    fn hand_back(&mut self, job_id: &str, seq: i64, owner: &str, queued: bool) -> Result<bool>;

    /// What the last node of a cluster to stop does: when no node but `owner`'s may be alive (every
    /// other node row's heartbeat is older than its own promise, judged by the store's clock in the
    /// same transaction), gives back the slots of the scheduled runs no node has taken (their rows
    /// go, and each job's pending slot moves back to the earliest slot they stood for), so that the
    /// next leader judges them afresh (misfire grace, coalesce) rather than a node starting them
    /// whenever it comes. While another node may live, nothing changes: its leader keeps the
    /// cursors, and its worker takes the runs. Other runs waiting for a node (retries, triggered
    /// and queued runs) stay for the next one. Returns the runs given back.
    fn release_untaken(&mut self, owner: &str) -> Result<Vec<(String, i64)>>;

    /// A signal raised whenever runs are queued for the nodes (PostgreSQL's LISTEN/NOTIFY, on a
    /// connection of its own), so that idle workers take them at once; `None` for a store of one
    /// host. Polling stays the fallback: a lost notification only delays a run to the next poll.
    fn work_signal(&self) -> Result<Option<std::sync::Arc<tokio::sync::Notify>>>;
}

/// What runs leave in their directories, mirrored into a store several hosts share, so that a run
/// executed on one node can be read from any other (`tail`, `show`). A store of one host mirrors
/// nothing: every run's directory is on this host.
pub trait MirrorStore {
    /// Records event lines (`(job, run, the event's seq, the line)`) and receipts (`(job, run, the
    /// receipt's JSON)`) in one transaction: a line already recorded is kept, a receipt replaces the
    /// one before. Lines and receipts of a run deleted meanwhile are dropped.
    fn mirror(
        &mut self,
        events: &[(String, i64, i64, String)],
        receipts: &[(String, i64, String)],
    ) -> Result<()>;

    /// Whether this store mirrors anything (false for a store of one host).
    fn mirrors(&self) -> bool;

    /// The run's mirrored event lines after the event `after` (0: all), in order.
    fn mirrored_events(&self, job_id: &str, seq: i64, after: i64) -> Result<Vec<(i64, String)>>;

    /// The run's mirrored receipt, if any.
    fn mirrored_receipt(&self, job_id: &str, seq: i64) -> Result<Option<String>>;
}

/// Opens the store at `path` (SQLite, the only backend today), creating it if needed and bringing its
/// schema up to date.
pub fn open(path: &Path) -> Result<Box<dyn Store>> {
    Ok(Box::new(super::sqlite::SqliteStore::open(path)?))
}

/// Opens the PostgreSQL store at `url` (`password`: the content of `store_password_file`, when the
/// config names one), bringing its schema up to date.
pub fn open_postgres(url: &str, password: Option<&str>) -> Result<Box<dyn Store>> {
    let config = super::postgres::url::config(url, password)?;
    Ok(Box::new(super::postgres::PgStore::open(
        &config,
        &super::postgres::url::masked(url),
    )?))
}

/// Whether a `prepare` failed because the number's directory exists already: the claim then takes the
/// next number.
pub(super) fn number_taken(error: &Error) -> bool {
    matches!(error, Error::ArtifactWrite { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists)
}

impl dyn Store + '_ {
    /// [`RunStore::claim`], keeping what `prepare` made (the run's locked directory) for the caller.
    pub fn claim_with<T>(
        &mut self,
        request: &ClaimRequest<'_>,
        is_alive: impl Fn(&RunRow) -> bool,
        mut prepare: impl FnMut(i64) -> Result<(T, String)>,
    ) -> Result<(Claimed, T)> {
        let mut made = None;
        let claimed = self.claim(request, &is_alive, &mut |_, seq| {
            let (prepared, stored) = prepare(seq)?;
            made = Some(prepared);
            Ok(stored)
        })?;
        let made = made.ok_or_else(|| Error::Internal {
            message: format!("the claim of {} prepared nothing", request.job_id),
        })?;
        Ok((claimed, made))
    }

    /// [`RunStore::commit_tick`], with what `prepare` made for each run recorded in its result.
    pub fn commit_tick_with<T>(
        &mut self,
        records: &[TickRecord],
        next_slots: &[(String, Option<DateTime<Utc>>)],
        catchups_done: &[String],
        owner: &str,
        now: DateTime<Utc>,
        mut prepare: impl FnMut(&str, i64) -> Result<(T, String)>,
    ) -> Result<Vec<TickResult<T>>> {
        let mut made: HashMap<(String, i64), T> = HashMap::new();
        let results = self.commit_tick(
            records,
            next_slots,
            catchups_done,
            owner,
            now,
            &mut |job_id, seq| {
                let (prepared, stored) = prepare(job_id, seq)?;
                made.insert((job_id.to_owned(), seq), prepared);
                Ok(stored)
            },
        )?;
        Ok(records
            .iter()
            .zip(results)
            .map(|(record, result)| match result {
                TickResult::Recorded {
                    seq,
                    prepared,
                    queued,
                } => TickResult::Recorded {
                    seq,
                    prepared: prepared
                        .and_then(|()| made.remove(&(record.job_id().to_owned(), seq))),
                    queued,
                },
                TickResult::AlreadyClaimed => TickResult::AlreadyClaimed,
                TickResult::Refused { seq, reason } => TickResult::Refused { seq, reason },
                TickResult::Failed { seq, error } => TickResult::Failed { seq, error },
            })
            .collect())
    }
}

/// The last good version of the home's `config.yaml`, which stays in force while the file is invalid.
pub trait ConfigStore {
    /// The last good config, if the home ever had one (and has not removed it since).
    fn kept_config(&self) -> Result<Option<KeptConfig>>;

    /// Keeps `config` as the last good version, in one statement that writes nothing when the same
    /// version is kept already; `None` forgets it (the file was removed, so no defaults are in force).
    fn keep_config(&mut self, config: Option<&KeptConfig>, now: DateTime<Utc>) -> Result<()>;
}

/// The outbox: notifications owed, their delivery tries, and leases that keep two processes from
/// sending the same one at once (a lease that runs out makes it anyone's again: at least once).
pub trait OutboxStore {
    /// Writes notifications of home events, in one transaction. One owed already (the same delivery
    /// id) is left as it is.
    fn enqueue(&mut self, notifications: &[Outgoing]) -> Result<()>;

    /// Records that the config file with content `hash` is invalid and writes `notifications`, in one
    /// transaction, unless that version was recorded already. Returns whether it was new.
    fn config_turned_invalid(&mut self, hash: &str, notifications: &[Outgoing]) -> Result<bool>;

    /// Takes up to `limit` pending notifications due at `now` (of one run only, when `run` says so),
    /// oldest first and at most `per_endpoint` of any one endpoint, that no one holds a live lease on
    /// and that `admit` accepts (it sees each one's endpoint, and counts what it accepts), leasing
    /// each to `by` for its notifier's timeout and a margin, in one transaction. However many are
    /// due to one endpoint, the others' are still taken.
    fn take_due(
        &mut self,
        by: &str,
        now: DateTime<Utc>,
        run: Option<(&str, i64)>,
        limit: usize,
        per_endpoint: usize,
        admit: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Vec<DueNotification>>;

    /// Records one try of a notification `by` took, and what follows (done, or the next try), in one
    /// transaction; the lease ends. A delivered notification stays delivered whatever comes after.
    fn record_try(&mut self, delivery_id: &str, by: &str, tried: &DeliveryTry) -> Result<()>;

    /// Gives back every lease `by` holds on notifications it did not try, so another process can
    /// take them at once (a process stopping, a manual run leaving the rest to the scheduler).
    fn release_leases(&mut self, by: &str) -> Result<()>;

    /// The notifications of a run, oldest first, each with its tries.
    fn notifications_of_run(&self, job_id: &str, seq: i64) -> Result<Vec<NotificationRecord>>;

    /// Of one run's notifications, how many are still pending.
    fn pending_of_run(&self, job_id: &str, seq: i64) -> Result<u64>;

    /// The notifications given up most recently, newest first, up to `limit` (without their tries).
    fn given_up(&self, limit: usize) -> Result<Vec<NotificationRecord>>;

    fn outbox_counts(&self) -> Result<OutboxCounts>;

    /// Deletes the notifications of home events (not of a run) that were done (delivered or given
    /// up) before `before`, with their tries; returns how many.
    fn forget_home_events(&mut self, before: DateTime<Utc>) -> Result<usize>;
}

/// Calls the store behind `shared` from async code without holding up the async workers (see
/// [`blocking`]).
pub fn call<T>(
    shared: &std::sync::Mutex<Box<dyn Store>>,
    f: impl FnOnce(&mut dyn Store) -> Result<T>,
) -> Result<T> {
    blocking(|| {
        let mut store = shared.lock().map_err(|_| Error::Internal {
            message: "the store lock was poisoned".into(),
        })?;
        f(&mut **store)
    })
}

/// Runs `f`, which calls the store (and may block), from async code: on a multi-threaded runtime in
/// place of a blocking thread (`block_in_place`, which also leaves the runtime's context, so a backend
/// with a runtime of its own may block on it); anywhere else (a blocking thread, a plain thread, a
/// current-thread runtime) as a plain call.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
