//! The scheduler's loop. It sleeps until the earliest due time, a spec change, a store change made by
//! another process (`PRAGMA data_version`), a finished run, or shutdown; it never polls for work. Each
//! tick claims everything due in one transaction, then starts the runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::lock::{OwnerLock, StoreIdentity};
use super::set_aside::{set_aside_unknown_dirs, unknown_run_dirs};
use super::shutdown::Shutdown;
use crate::artifacts::{EventKind, EventLog, RunDir};
use crate::catalog::{Catalog, JobState};
use crate::clock::{Clock, rfc3339};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::policy::{self, Catchup, Decision, Fire, InFlight, Input, Operator, Plan};
use crate::run::{RunStatus, Trigger, owner, run_name};
use crate::runner::execute;
use crate::runner::execute::{RunControl, RunOutcome, RunPlan, Started};
use crate::runner::recover::{began, orphaned_runs, reconcile_runs};
use crate::schedule::Schedule;
use crate::spec::JobSpec;
use crate::store::{RunRow, Store, TickRecord, TickResult};

#[derive(Debug, Clone)]
pub struct Options {
    /// Print what reconciliation would do and exit without changing anything.
    pub dry_run: bool,
    /// How long shutdown waits for runs in flight before stopping them.
    pub shutdown_grace: Duration,
    /// How often specs are rescanned even without a file event.
    pub rescan_every: Duration,
    /// How often the store is checked for changes made by other processes.
    pub store_poll: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            dry_run: false,
            shutdown_grace: Duration::from_secs(30),
            rescan_every: Duration::from_secs(30),
            store_poll: Duration::from_millis(250),
        }
    }
}

/// What `run` reports when it returns.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub dry_run_plan: Vec<String>,
    pub interrupted_at_start: usize,
    pub runs_started: usize,
    pub interrupted_at_shutdown: usize,
}

/// A scheduled job as the loop keeps it.
struct Entry {
    spec: JobSpec,
    schedule: Schedule,
    spec_hash: String,
    operator: Operator,
    next_slot: Option<DateTime<Utc>>,
    catchup: Option<Catchup>,
    paused_at: Option<DateTime<Utc>>,
    /// The job had a run in flight when its next slot could have been claimed ahead: it is claimed
    /// when due instead, so the overlap policy sees whether that run has ended by then.
    claim_when_due: bool,
}

struct Daemon {
    home: Home,
    clock: Arc<dyn Clock>,
    me: String,
    store: Arc<Mutex<Box<dyn Store>>>,
    jobs: HashMap<String, Entry>,
    runs: JoinSet<RunOutcome>,
    stops: HashMap<(String, i64), watch::Sender<Option<RunStatus>>>,
    scheduler_logs: HashMap<String, EventLog>,
    data_version: i64,
    started: usize,
    /// After a failed claim, when to try again: a store that keeps failing must not spin the loop.
    retry_at: Option<tokio::time::Instant>,
    /// Runs found interrupted at start whose policy retries interruptions: each gets one new run.
    retries: Vec<RunRow>,
    last_reap: tokio::time::Instant,
    /// The store file opened at start; checked before every claim and with every heartbeat.
    store_identity: StoreIdentity,
    /// Set when the scheduler must stop and exit with an error (its store was replaced).
    fatal: Option<Error>,
    /// Runs report here when their command starts; the loop records the starts in one batch.
    starts: tokio::sync::mpsc::UnboundedSender<Started>,
    /// Set at shutdown: runs that have not started by then never do.
    hold: watch::Sender<bool>,
    /// The jobs of the home by kind, as of the last reload; `None` before the first.
    census: Option<Census>,
}

/// How many jobs of each kind the home has, for the start-up line: the loop's table holds only those
/// on a schedule, which alone would read as if the others were lost.
#[derive(Debug, Clone, Copy, Default)]
struct Census {
    manual_only: usize,
    paused: usize,
    disabled: usize,
    invalid: usize,
}

impl Census {
    fn count(&mut self, job: &crate::catalog::Job) {
        match job.state() {
            JobState::Paused => self.paused += 1,
            JobState::Disabled => self.disabled += 1,
            JobState::Invalid => self.invalid += 1,
            JobState::Active if job.schedule.is_none() => self.manual_only += 1,
            JobState::Active | JobState::Removed => {}
        }
    }
}

/// `resume --catchup all` makes up for at most this many slots, the latest ones: each becomes a queued
/// run waiting for its turn, and thousands of them would only bury the job.
const MAX_CATCHUP_RUNS: usize = 100;

/// Runs are claimed up to this long before their slot: the claim transaction, the run directory and
/// the artifacts are made ahead, and the command starts when the slot comes. Without it the last of
/// 200 runs due at the same second waits for 200 directories and a few hundred files to be created.
pub const CLAIM_AHEAD: Duration = Duration::from_millis(500);

/// How often the runs left at shutdown are checked for cancel requests while the grace lasts.
const CANCEL_POLL_AT_SHUTDOWN: Duration = Duration::from_millis(250);

/// How often the loop looks for runs whose owner died (manual runs killed while the scheduler runs).
const REAP_EVERY: Duration = Duration::from_secs(5);

/// Runs the scheduler of `home` until `shutdown` resolves (or, with `dry_run`, just plans).
pub async fn run(
    home: Home,
    options: Options,
    clock: Arc<dyn Clock>,
    mut shutdown: Shutdown,
) -> Result<Summary> {
    let me = owner();
    let _lock = OwnerLock::acquire(&home, &me)?;
    let store = crate::store::open(&home.db_path())?;
    let store_identity = StoreIdentity::of(&home.db_path())?;
    if options.dry_run {
        return dry_run(&home, store, &clock);
    }
    let mut store = store;
    store.claim_owner(&me, env!("CARGO_PKG_VERSION"))?;
    let interrupted = reconcile_runs(&mut *store, &home, &clock, None)?;
    for (job, seq) in &interrupted {
        tracing::warn!(run = %run_name(job, *seq), "its process is gone; marked interrupted");
    }
    for (dir, aside) in set_aside_unknown_dirs(&mut *store, &home)? {
        tracing::warn!(
            run = %run_name(&dir.job_id, dir.seq),
            moved_to = %home.display_path(&aside),
            "found a run directory the store has no record of (a claim that never committed, or a run recorded only in a store since restored from an older backup): moved aside, its number stays taken; `jobsctl prune` removes it"
        );
    }
    let data_version = store.data_version()?;
    let (starts_tx, mut starts) = tokio::sync::mpsc::unbounded_channel();
    let mut daemon = Daemon {
        home,
        clock,
        me,
        store: Arc::new(Mutex::new(store)),
        jobs: HashMap::new(),
        runs: JoinSet::new(),
        stops: HashMap::new(),
        scheduler_logs: HashMap::new(),
        data_version,
        started: 0,
        retry_at: None,
        retries: Vec::new(),
        last_reap: tokio::time::Instant::now(),
        store_identity,
        fatal: None,
        starts: starts_tx,
        hold: watch::Sender::new(false),
        census: None,
    };
    daemon.reload()?;
    let census = daemon.census.unwrap_or_default();
    tracing::info!(
        scheduled = daemon.jobs.len(),
        manual_only = census.manual_only,
        paused = census.paused,
        disabled = census.disabled,
        invalid = census.invalid,
        "scheduler started: {} job(s) on a schedule",
        daemon.jobs.len()
    );

    let watcher = super::watch::watch(&daemon.home.jobs_dir());
    let (_watch_guard, mut spec_changes) = match watcher {
        Some((guard, rx)) => (Some(guard), Some(rx)),
        None => (None, None),
    };
    let mut store_poll = tokio::time::interval(options.store_poll);
    let mut heartbeat = tokio::time::interval(Duration::from_secs(2));
    let mut rescan = tokio::time::interval(options.rescan_every);
    rescan.reset();
    loop {
        let sleep = daemon.time_to_next_due();
        tokio::select! {
            () = tokio::time::sleep(sleep) => daemon.tick(),
            Some(()) = async { match spec_changes.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                daemon.reload_logged("spec change");
            }
            _ = store_poll.tick() => daemon.poll_store(),
            _ = rescan.tick() => daemon.reload_logged("periodic rescan"),
            _ = heartbeat.tick() => daemon.heartbeat(),
            Some(first) = starts.recv() => daemon.record_starts(first, &mut starts),
            Some(finished) = daemon.runs.join_next() => daemon.finished(finished),
            () = shutdown.requested(1) => break,
        }
        if daemon.fatal.is_some() {
            break;
        }
    }
    // With its store gone, nothing the runs in flight record can be kept, and a new store at the path
    // knows nothing of them (a `jobsctl run` there would start a second instance beside them): they are
    // stopped at once rather than given the grace.
    let grace = if daemon.fatal.is_some() {
        Duration::ZERO
    } else {
        options.shutdown_grace
    };
    let interrupted_at_shutdown = daemon.shut_down(grace, &mut starts, &mut shutdown).await;
    if let Ok(mut store) = daemon.store.lock() {
        let _ = store.release_owner(&daemon.me);
    }
    if let Some(error) = daemon.fatal.take() {
        tracing::error!("scheduler stopped: {error}");
        return Err(error);
    }
    tracing::info!("scheduler stopped");
    Ok(Summary {
        dry_run_plan: Vec::new(),
        interrupted_at_start: interrupted.len(),
        runs_started: daemon.started,
        interrupted_at_shutdown,
    })
}

impl Daemon {
    fn store(&self) -> Result<std::sync::MutexGuard<'_, Box<dyn Store>>> {
        self.store.lock().map_err(|_| Error::Internal {
            message: "the store lock was poisoned".into(),
        })
    }

    /// Loads the specs, syncs them into the store and rebuilds the job table; pending slots come from
    /// the store, and jobs without one (new, or whose schedule changed) get the first slot after now.
    fn reload(&mut self) -> Result<()> {
        let now = self.clock.now();
        // Read before loading: a commit by another process from here on triggers one more reload
        // rather than going unseen. (Our own commits never change it.)
        let version = self.store()?.data_version()?;
        let catalog = Catalog::open(&self.home, now)?;
        // What is logged is what changed in this loop's own table, whoever synced the files (a client
        // such as `jobsctl list` may have synced a new spec before the scheduler saw it).
        let first_load = self.census.is_none();
        let mut census = Census::default();
        for job in &catalog.jobs {
            census.count(job);
            if let Some(problem) = job.problems.first()
                && (catalog.sync.invalid.iter().any(|id| id == job.id()) || first_load)
            {
                tracing::warn!(
                    job = %job.id(),
                    problem = %format!("{}:{}: {}: {}", job.row.spec_path, problem.line, problem.pointer, problem.message),
                    "spec is invalid; {}",
                    if job.spec.is_some() { "keeping its last good version" } else { "it has never been valid, so it does not run" }
                );
            }
        }
        for id in &catalog.sync.rescheduled {
            tracing::info!(job = %id, "schedule changed; its slots since the last one recorded are judged");
        }
        let mut jobs = HashMap::new();
        let mut missing_slots = Vec::new();
        for job in &catalog.jobs {
            let operator = match job.state() {
                JobState::Active => Operator::Active,
                JobState::Paused => Operator::Paused,
                _ => continue,
            };
            let (Some(spec), Some(schedule)) = (job.spec.clone(), job.schedule.clone()) else {
                continue;
            };
            let next_slot = match job.row.next_slot {
                Some(slot) => Some(slot),
                None => {
                    let consumed = job.row.last_slot;
                    let slot = policy::pending_slot(None, true, consumed, &schedule, now);
                    missing_slots.push((job.row.id.clone(), slot));
                    slot
                }
            };
            let catchup = job.row.catchup;
            let entry = Entry {
                spec_hash: job.spec_hash().to_owned(),
                spec,
                schedule,
                operator,
                next_slot,
                catchup,
                paused_at: job.row.paused_at,
                claim_when_due: false,
            };
            jobs.insert(job.row.id.clone(), entry);
        }
        self.store()?.set_next_slots(&missing_slots)?;
        if !first_load {
            let mut added: Vec<&String> = jobs
                .keys()
                .filter(|id| !self.jobs.contains_key(*id))
                .collect();
            added.sort();
            for id in added {
                tracing::info!(job = %id, "new job scheduled");
            }
            let mut gone: Vec<&String> = self
                .jobs
                .keys()
                .filter(|id| !jobs.contains_key(*id))
                .collect();
            gone.sort();
            for id in gone {
                let why = catalog
                    .jobs
                    .iter()
                    .find(|job| job.id() == id.as_str())
                    .map_or("its spec is gone", |job| match job.state() {
                        JobState::Removed => "its spec file was removed",
                        JobState::Disabled => "it is disabled",
                        _ => "it has no schedule any more",
                    });
                tracing::info!(job = %id, "job no longer scheduled: {why}");
            }
        }
        self.census = Some(census);
        self.data_version = version;
        self.jobs = jobs;
        // Another process may have settled an interrupted run whose retry is owed.
        self.plan_retries();
        Ok(())
    }

    /// Interrupted runs are retried once, as a new run linked to them, when their job retries
    /// `interrupted` outcomes. Whoever settled the run (this scheduler, or any command before it)
    /// recorded that the retry is owed (unless someone had asked for it to be cancelled); claiming the retry takes the debt in the same transaction, so
    /// it happens exactly once. A retry that is itself interrupted owes none, so a job that keeps
    /// taking the scheduler down cannot loop.
    fn plan_retries(&mut self) {
        match self.store().and_then(|s| s.owed_retries()) {
            Ok(owed) => {
                self.retries = owed
                    .into_iter()
                    .filter(|row| self.jobs.contains_key(&row.job_id))
                    .collect();
            }
            Err(e) => tracing::error!("{e}"),
        }
    }

    /// Reloads, then delivers the cancel requests: a reload takes in the store's data version, so a
    /// request committed before it would otherwise go unseen by [`Self::poll_store`].
    fn reload_logged(&mut self, why: &str) {
        let reloaded = self.reload();
        self.deliver_cancels();
        if let Err(e) = reloaded {
            tracing::error!("reload after {why} failed: {e}");
        }
    }

    /// Another process changed the store (pause, resume, a manual run...): reload what it may affect.
    fn poll_store(&mut self) {
        let version = self.store().and_then(|s| s.data_version());
        match version {
            Ok(version) if version != self.data_version => self.reload_logged("a store change"),
            Ok(_) => {}
            Err(e) => tracing::error!("{e}"),
        }
    }

    /// Stops the runs of this scheduler that someone asked to cancel (`jobsctl cancel`, from any
    /// process): each is stopped as a timeout would stop it, and recorded cancelled.
    fn deliver_cancels(&mut self) {
        let requested = self.store().and_then(|s| s.cancels_for_owner(&self.me));
        let requested = match requested {
            Ok(requested) => requested,
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        };
        for (job_id, seq) in requested {
            let Some(stop) = self.stops.get(&(job_id.clone(), seq)) else {
                continue;
            };
            // A stop already under way (shutdown, replace) keeps its status.
            let sent = stop.send_if_modified(|status| {
                if status.is_some() {
                    return false;
                }
                *status = Some(RunStatus::Cancelled);
                true
            });
            if sent {
                tracing::info!(run = %run_name(&job_id, seq), "cancel requested; stopping it");
            }
        }
    }

    /// The runs in flight by job, `(running, queued)`, as the overlap policy must see them. A row of
    /// this scheduler's whose task has ended is not in flight, whatever the store says: its end could
    /// not be recorded (a full disk, a store error) and is settled later. Counting it would turn every
    /// slot of an outage into "skipped: overlap" with nothing running.
    fn live_in_flight(&self, active: &[RunRow]) -> HashMap<String, (u32, u32)> {
        let mut in_flight: HashMap<String, (u32, u32)> = HashMap::new();
        for run in active {
            let ours = run.owner == self.me;
            if ours && !self.stops.contains_key(&(run.job_id.clone(), run.seq)) {
                continue;
            }
            let tally = in_flight.entry(run.job_id.clone()).or_insert((0, 0));
            if run.status == RunStatus::Queued {
                tally.1 += 1;
            } else {
                tally.0 += 1;
            }
        }
        in_flight
    }

    /// Records the starts reported since the last batch (`first` and whatever else is waiting) in one
    /// commit: the store's start time is the real one, not the slot, and 200 runs starting at once
    /// cost one write.
    fn record_starts(
        &mut self,
        first: Started,
        more: &mut tokio::sync::mpsc::UnboundedReceiver<Started>,
    ) {
        let mut batch = Vec::new();
        let mut processes = Vec::new();
        for started in std::iter::once(first).chain(std::iter::from_fn(|| more.try_recv().ok())) {
            match started.process {
                Some(process) => processes.push(process),
                None => batch.push((started.job_id, started.seq, started.at)),
            }
        }
        let recorded = self.store().and_then(|mut s| {
            s.record_starts(&batch)?;
            s.record_processes(&processes)
        });
        if let Err(e) = recorded {
            tracing::error!("{e}");
        }
    }

    /// Whether the store is still the file opened at start. When it is not, nothing more is claimed:
    /// a second scheduler may own a new store at that path, and every record written into the old,
    /// unlinked file would be lost.
    fn store_still_ours(&mut self) -> bool {
        if self.fatal.is_some() {
            return false;
        }
        match self.store_identity.check() {
            Ok(()) => true,
            Err(error) => {
                tracing::error!("{error}; no more slots are claimed, runs in flight are stopped");
                self.fatal = Some(error);
                false
            }
        }
    }

    fn heartbeat(&mut self) {
        if !self.store_still_ours() {
            return;
        }
        if let Err(e) = self.store().and_then(|mut s| s.heartbeat(&self.me)) {
            tracing::error!("{e}");
        }
    }

    /// How long until the earliest due time (a catch-up request is due at once). At most a minute, so a
    /// wall clock that jumps is noticed.
    fn time_to_next_due(&self) -> Duration {
        let now = self.clock.now();
        let mut earliest: Option<DateTime<Utc>> = None;
        for (id, entry) in &self.jobs {
            let due = if entry.catchup.is_some() || !self.retries.is_empty() {
                Some(now)
            } else {
                entry.next_slot.map(|slot| {
                    let due = policy::due_at(id, &entry.schedule, slot, jitter(&entry.spec));
                    if entry.claim_when_due {
                        due
                    } else {
                        due - ahead()
                    }
                })
            };
            earliest = match (earliest, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let cap = Duration::from_secs(60);
        let wait = earliest.map_or(cap, |at| {
            (at - now).to_std().unwrap_or(Duration::ZERO).min(cap)
        });
        // After a failed tick, wait before trying again: a store that keeps failing must not spin.
        match self.retry_at {
            Some(retry) => wait.max(retry.saturating_duration_since(tokio::time::Instant::now())),
            None => wait,
        }
    }

    /// Claims everything due now in one transaction, then starts the runs.
    fn tick(&mut self) {
        if !self.store_still_ours() {
            return;
        }
        let now = self.clock.now();
        let horizon = now + ahead();
        // A manual run whose process died must not hold an instance of its job forever. Checking every
        // run's lock costs time on a busy tick, so it is done every few seconds, not every tick.
        if self.last_reap.elapsed() >= REAP_EVERY {
            self.last_reap = tokio::time::Instant::now();
            let reaped = self
                .store()
                .and_then(|mut store| reconcile_runs(&mut **store, &self.home, &self.clock, None));
            match reaped {
                Ok(reaped) if !reaped.is_empty() => self.plan_retries(),
                Ok(_) => {}
                Err(e) => tracing::error!("{e}"),
            }
        }
        let in_flight = match self.store().and_then(|s| s.active_runs()) {
            Ok(active) => self.live_in_flight(&active),
            Err(e) => {
                tracing::error!("{e}");
                self.retry_at = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                return;
            }
        };
        let mut records: Vec<TickRecord> = Vec::new();
        let mut replace: Vec<String> = Vec::new();
        let mut next_slots = Vec::new();
        let mut catchups_done = Vec::new();
        let mut plans: Vec<(String, Plan)> = Vec::new();
        let mut hold: Vec<String> = Vec::new();
        // Runs this tick adds count against max_instances for the decisions that follow it.
        let mut in_flight = in_flight;
        let retries = self.retries.clone();
        for row in retries {
            let Some(entry) = self.jobs.get(&row.job_id) else {
                continue;
            };
            let tally = in_flight.entry(row.job_id.clone()).or_insert((0, 0));
            let queued = tally.0 >= entry.spec.policy.max_instances || tally.1 > 0;
            if queued {
                tally.1 += 1;
            } else {
                tally.0 += 1;
            }
            tracing::info!(run = %run_name(&row.job_id, row.seq), "retrying the interrupted run");
            records.push(TickRecord::Run {
                job_id: row.job_id.clone(),
                trigger: Trigger::Catchup,
                slot: None,
                due_at: Some(now),
                first_slot: row.slot,
                last_slot: row.slot,
                count: 1,
                spec_hash: entry.spec_hash.clone(),
                queued,
                retry_of: Some(row.seq),
                max_instances: entry.spec.policy.max_instances,
            });
        }
        for (id, entry) in &self.jobs {
            let (mut running, mut queued) = in_flight.get(id).copied().unwrap_or((0, 0));
            if let Some(mode) = entry.catchup {
                let since = entry.paused_at.unwrap_or(DateTime::UNIX_EPOCH);
                let mut slots = match self.store().and_then(|s| s.paused_skips(id, since)) {
                    Ok(ranges) => expand(&entry.schedule, &ranges),
                    Err(e) => {
                        tracing::error!("{e}");
                        Vec::new()
                    }
                };
                if mode == Catchup::All && slots.len() > MAX_CATCHUP_RUNS {
                    // The older slots stay recorded as skipped; only the latest are made up for.
                    tracing::warn!(job = %id, slots = slots.len(), "catch-up limited to the latest {MAX_CATCHUP_RUNS} slots");
                    slots.drain(..slots.len() - MAX_CATCHUP_RUNS);
                }
                for (index, fire) in policy::catch_up(mode, &slots, now).into_iter().enumerate() {
                    let wait =
                        index > 0 || running >= entry.spec.policy.max_instances || queued > 0;
                    if wait {
                        queued += 1;
                    } else {
                        running += 1;
                    }
                    records.push(run_record(id, entry, &fire, None, wait));
                }
                catchups_done.push(id.clone());
            }
            let Some(next_slot) = entry.next_slot else {
                continue;
            };
            let due = policy::due_at(id, &entry.schedule, next_slot, jitter(&entry.spec));
            let in_flight = running > 0 || queued > 0;
            let Some(now) = policy::claim_at(due, now, ahead(), in_flight) else {
                if due <= horizon {
                    // Too early to tell whether the run in flight will have ended when the slot comes.
                    hold.push(id.clone());
                }
                continue;
            };
            let input = Input {
                job_id: id,
                schedule: &entry.schedule,
                policy: &entry.spec.policy,
                jitter: jitter(&entry.spec),
                operator: entry.operator,
                next_slot,
                in_flight: InFlight { running, queued },
            };
            let plan = policy::decide(&input, now);
            for decision in &plan.decisions {
                match *decision {
                    Decision::Fire(fire) => {
                        records.push(run_record(id, entry, &fire, Some(fire.slot), false))
                    }
                    Decision::Queue(fire) => {
                        records.push(run_record(id, entry, &fire, Some(fire.slot), true))
                    }
                    Decision::Replace(fire) => {
                        replace.push(id.clone());
                        records.push(run_record(id, entry, &fire, Some(fire.slot), true));
                    }
                    Decision::Skip {
                        first_slot,
                        last_slot,
                        count,
                        reason,
                    } => records.push(TickRecord::Skipped {
                        job_id: id.clone(),
                        first_slot,
                        last_slot,
                        count,
                        reason: reason.as_str().to_owned(),
                    }),
                    Decision::Miss {
                        first_slot,
                        last_slot,
                        count,
                    } => {
                        let late = (now - last_slot).num_milliseconds() as f64 / 1000.0;
                        records.push(TickRecord::Missed {
                            job_id: id.clone(),
                            first_slot,
                            last_slot,
                            count,
                            message: format!(
                                "{count} slot(s) missed: claimed {late:.1} s after the last was due, past misfire_grace {}",
                                entry.spec.policy.misfire_grace
                            ),
                        });
                    }
                }
            }
            next_slots.push((id.clone(), plan.next_slot));
            plans.push((id.clone(), plan));
        }
        for id in hold {
            if let Some(entry) = self.jobs.get_mut(&id) {
                entry.claim_when_due = true;
            }
        }
        if records.is_empty() && next_slots.is_empty() && catchups_done.is_empty() {
            return;
        }
        let home = &self.home;
        let mut created = Vec::new();
        let result = self.store().and_then(|mut store| {
            store.commit_tick_with(
                &records,
                &next_slots,
                &catchups_done,
                &self.me,
                now,
                |job, seq| {
                    let (dir, stored) = RunDir::create_for_claim(home, job, seq)?;
                    created.push(dir.path().to_owned());
                    Ok((dir, stored))
                },
            )
        });
        let results = match result {
            Ok(results) => results,
            Err(e) => {
                // Nothing was recorded: the slots stay pending and are judged again, a second later.
                // The directories made for the claims go too, so the run numbers stay free.
                tracing::error!("claiming due slots failed: {e}");
                for dir in created {
                    let _ = std::fs::remove_dir_all(dir);
                }
                self.retry_at = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                return;
            }
        };
        self.retry_at = None;
        self.retries.clear();
        // Replace stops the oldest run only once the new one is safely claimed.
        for id in &replace {
            self.stop_oldest(id);
        }
        for (id, plan) in plans {
            if let Some(entry) = self.jobs.get_mut(&id) {
                entry.next_slot = plan.next_slot;
                entry.claim_when_due = false;
            }
        }
        for id in catchups_done {
            if let Some(entry) = self.jobs.get_mut(&id) {
                entry.catchup = None;
                entry.paused_at = None;
            }
        }
        for (record, result) in records.into_iter().zip(results) {
            self.carry_out(record, result, now);
        }
    }

    fn carry_out(&mut self, record: TickRecord, result: TickResult<RunDir>, now: DateTime<Utc>) {
        let seq = match result {
            TickResult::AlreadyClaimed => {
                tracing::warn!(job = %record.job_id(), "slot already claimed; not running it twice");
                return;
            }
            TickResult::Failed { seq, error } => {
                tracing::error!(run = %run_name(record.job_id(), seq), "cannot start: {error}");
                return;
            }
            TickResult::Recorded {
                seq,
                prepared,
                queued,
            } => match (record, prepared) {
                (record @ TickRecord::Run { .. }, Some(run_dir)) => {
                    self.start(record, seq, queued, run_dir, now);
                    return;
                }
                (record, _) => (record, seq),
            },
        };
        let (record, seq) = seq;
        let kind = match &record {
            TickRecord::Skipped {
                first_slot,
                last_slot,
                count,
                reason,
                ..
            } => {
                tracing::info!(job = %record.job_id(), count, reason = %reason, "slot(s) skipped");
                if first_slot == last_slot {
                    EventKind::SlotSkipped {
                        slot: rfc3339(*last_slot),
                        reason: reason.clone(),
                    }
                } else {
                    EventKind::SlotSkipped {
                        slot: rfc3339(*last_slot),
                        reason: format!("{reason} ({count} slots from {})", rfc3339(*first_slot)),
                    }
                }
            }
            TickRecord::Missed {
                first_slot,
                last_slot,
                count,
                message,
                ..
            } => {
                tracing::warn!(job = %record.job_id(), count, "{message}");
                EventKind::SlotMissed {
                    first_slot: rfc3339(*first_slot),
                    last_slot: rfc3339(*last_slot),
                    count: *count,
                }
            }
            TickRecord::Run { .. } => return,
        };
        self.scheduler_log(record.job_id(), seq, kind);
    }

    /// Appends to `runs/<job>/scheduler.jsonl`, the log of slots that did not become runs.
    fn scheduler_log(&mut self, job_id: &str, seq: i64, kind: EventKind) {
        if !self.scheduler_logs.contains_key(job_id) {
            let dir = crate::artifacts::rundir::job_dir(&self.home, job_id);
            let log = std::fs::create_dir_all(&dir)
                .and_then(|()| crate::artifacts::rundir::ensure_real_dir(&dir))
                .map_err(|source| Error::ArtifactWrite {
                    path: dir.clone(),
                    source,
                })
                .and_then(|()| {
                    EventLog::append_to(
                        &dir.join("scheduler.jsonl"),
                        job_id,
                        0,
                        Arc::clone(&self.clock),
                    )
                });
            match log {
                Ok(log) => {
                    self.scheduler_logs.insert(job_id.to_owned(), log);
                }
                Err(e) => {
                    tracing::error!("{e}");
                    return;
                }
            }
        }
        if let Some(log) = self.scheduler_logs.get(job_id) {
            log.emit_for_run(seq, kind);
        }
    }

    /// Starts a claimed run (a `TickRecord::Run`) in its locked directory.
    fn start(
        &mut self,
        record: TickRecord,
        seq: i64,
        queued: bool,
        run_dir: RunDir,
        now: DateTime<Utc>,
    ) {
        let TickRecord::Run {
            job_id,
            trigger,
            slot,
            due_at,
            first_slot,
            last_slot,
            count,
            retry_of,
            ..
        } = record
        else {
            return;
        };
        let Some(entry) = self.jobs.get(&job_id) else {
            return;
        };
        let lateness = due_at
            .map(|due| (now - due).num_milliseconds())
            .unwrap_or(0);
        tracing::info!(run = %run_name(&job_id, seq), trigger = %trigger.as_str(), slot = %slot.map(rfc3339).unwrap_or_else(|| "-".into()), lateness_ms = lateness, queued, "run claimed");
        let plan = RunPlan {
            job_id: job_id.clone(),
            seq,
            trigger,
            slot,
            stands_for: slot.or(last_slot),
            due_at,
            replay_of: retry_of,
            first_slot,
            slot_count: count,
            claimed_at: now,
            queued,
            spec: entry.spec.clone(),
            spec_hash: entry.spec_hash.clone(),
            owner: self.me.clone(),
            home: self.home.clone(),
            run_dir,
            control: RunControl {
                starts: Some(self.starts.clone()),
                hold: Some(self.hold.subscribe()),
            },
        };
        let (stop_tx, stop) = watch::channel(None);
        self.stops.insert((job_id, seq), stop_tx);
        self.runs.spawn(execute(
            plan,
            Arc::clone(&self.store),
            Arc::clone(&self.clock),
            None,
            stop,
        ));
        self.started += 1;
    }

    /// Overlap `replace`: stops the oldest run of the job that this scheduler started.
    fn stop_oldest(&mut self, job_id: &str) {
        let oldest = self
            .stops
            .keys()
            .filter(|(job, _)| job == job_id)
            .map(|(_, seq)| *seq)
            .min();
        if let Some(seq) = oldest
            && let Some(stop) = self.stops.get(&(job_id.to_owned(), seq))
        {
            tracing::info!(run = %run_name(job_id, seq), "replaced by a newer run");
            let _ = stop.send(Some(RunStatus::Cancelled));
        }
    }

    fn finished(&mut self, finished: std::result::Result<RunOutcome, tokio::task::JoinError>) {
        match finished {
            Ok(outcome) if outcome.released => {
                self.stops.remove(&(outcome.job_id, outcome.seq));
            }
            Ok(outcome) => {
                self.apply_retention(&outcome.job_id);
                tracing::info!(run = %run_name(&outcome.job_id, outcome.seq), status = %outcome.end.status, duration_ms = outcome.end.duration_ms, "run finished");
                self.stops.remove(&(outcome.job_id, outcome.seq));
            }
            Err(e) => tracing::error!("a run task failed: {e}"),
        }
    }

    /// Applies the job's retention after one of its runs finished.
    fn apply_retention(&mut self, job_id: &str) {
        let Some(retention) = self.jobs.get(job_id).map(|e| e.spec.retention.clone()) else {
            return;
        };
        if retention.keep_last.is_none() && retention.keep_days.is_none() {
            return;
        }
        let now = self.clock.now();
        let runs_root = self.home.runs_dir();
        let pruned = self.store().and_then(|mut store| {
            crate::retention::prune_job(&mut **store, &runs_root, job_id, &retention, now, false)
        });
        match pruned {
            Ok(pruned) if !pruned.runs.is_empty() => {
                tracing::info!(job = %job_id, runs = pruned.runs.len(), "old runs pruned");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(job = %job_id, "pruning failed: {e}"),
        }
    }

    /// Stops claiming, lets runs in flight finish within `grace`, then stops the rest as interrupted.
    async fn shut_down(
        &mut self,
        grace: Duration,
        starts: &mut tokio::sync::mpsc::UnboundedReceiver<Started>,
        shutdown: &mut Shutdown,
    ) -> usize {
        // Runs claimed ahead (or queued) that have not started never start now: they give their
        // slots back. Those running get the grace.
        self.hold.send_replace(true);
        if !self.stops.is_empty() {
            let mut names: Vec<String> = self
                .stops
                .keys()
                .map(|(job, seq)| run_name(job, *seq))
                .collect();
            names.sort();
            tracing::warn!(
                runs = %names.join(", "),
                grace = %humantime(grace),
                "shutting down: waiting for the runs in flight to finish, then stopping them; send SIGINT or SIGTERM again to stop them now"
            );
        } else {
            tracing::info!("shutting down: no run in flight");
        }
        let mut stopped_early = false;
        let mut cancels = tokio::time::interval(CANCEL_POLL_AT_SHUTDOWN);
        let waited = tokio::time::timeout(grace, async {
            loop {
                tokio::select! {
                    Some(first) = starts.recv() => self.record_starts(first, starts),
                    // A cancel asked for during the grace still stops its run.
                    _ = cancels.tick() => self.deliver_cancels(),
                    finished = self.runs.join_next() => match finished {
                        Some(finished) => self.finished(finished),
                        None => return true,
                    },
                    () = shutdown.requested(2) => {
                        stopped_early = true;
                        return false;
                    }
                }
            }
        })
        .await;
        if waited == Ok(true) {
            return 0;
        }
        let left = self.runs.len();
        if stopped_early {
            tracing::warn!(
                runs = left,
                "a second stop request: stopping the runs in flight now"
            );
        } else {
            tracing::warn!(
                runs = left,
                "the shutdown grace is over: stopping the runs in flight"
            );
        }
        for stop in self.stops.values() {
            let _ = stop.send(Some(RunStatus::Interrupted));
        }
        while let Some(finished) = self.runs.join_next().await {
            self.finished(finished);
        }
        while let Ok(next) = starts.try_recv() {
            self.record_starts(next, starts);
        }
        left
    }
}

/// A duration as an operator writes it (`30s`, `1500ms`).
fn humantime(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn ahead() -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(CLAIM_AHEAD).unwrap_or_default()
}

fn jitter(spec: &JobSpec) -> Option<Duration> {
    spec.schedule
        .as_ref()
        .and_then(|s| s.jitter)
        .map(|j| j.as_duration())
}

fn run_record(
    id: &str,
    entry: &Entry,
    fire: &Fire,
    slot: Option<DateTime<Utc>>,
    queued: bool,
) -> TickRecord {
    // A run that stands for other slots than its own (coalesced, or made up for a paused one) names
    // them; a catch-up run has no slot of its own, as its slot's record is the skipped one.
    let several = fire.count > 1 || slot.is_none();
    TickRecord::Run {
        job_id: id.to_owned(),
        trigger: fire.trigger,
        slot,
        due_at: Some(fire.due_at),
        first_slot: several.then_some(fire.first_slot),
        last_slot: several.then_some(fire.slot),
        count: fire.count,
        spec_hash: entry.spec_hash.clone(),
        queued,
        retry_of: None,
        max_instances: entry.spec.policy.max_instances,
    }
}

/// The individual slots of recorded `(first, last)` ranges, oldest first.
fn expand(schedule: &Schedule, ranges: &[(DateTime<Utc>, DateTime<Utc>)]) -> Vec<DateTime<Utc>> {
    let mut slots = Vec::new();
    for &(first, last) in ranges {
        let mut slot = Some(first);
        while let Some(at) =
            slot.filter(|at| *at <= last && slots.len() < policy::MAX_SLOTS_PER_TICK)
        {
            slots.push(at);
            slot = schedule.next_after(at);
        }
    }
    slots
}

/// `--dry-run`: what a start would do now, changing nothing.
fn dry_run(home: &Home, store: Box<dyn Store>, clock: &Arc<dyn Clock>) -> Result<Summary> {
    let now = clock.now();
    let mut lines = Vec::new();
    let orphaned = orphaned_runs(&*store, home)?;
    for run in &orphaned {
        lines.push(format!(
            "{}: {} but no process holds its lock: would be settled first (kept as finished if its artifacts say so, else interrupted)",
            run_name(&run.job_id, run.seq),
            run.status
        ));
    }
    for dir in unknown_run_dirs(&*store, home)? {
        lines.push(format!(
            "{}: {} has no record in the store: would be moved to runs/{}/{}/ and its number kept taken",
            run_name(&dir.job_id, dir.seq),
            home.display_path(&dir.path),
            dir.job_id,
            crate::artifacts::rundir::SET_ASIDE_DIR
        ));
    }
    // The start settles the orphaned runs before its first tick, so they hold no instance then; a
    // scheduled claim that never began gives its slot back, to be judged again.
    let mut given_back: HashMap<String, DateTime<Utc>> = HashMap::new();
    for run in &orphaned {
        if let (Trigger::Schedule, Some(slot), Some(dir)) = (run.trigger, run.slot, &run.run_dir)
            && !began(&crate::artifacts::rundir::resolve(home, dir))
        {
            let earliest = given_back.entry(run.job_id.clone()).or_insert(slot);
            *earliest = (*earliest).min(slot);
        }
    }
    let mut in_flight = store.in_flight()?;
    for run in &orphaned {
        if let Some((running, queued)) = in_flight.get_mut(&run.job_id) {
            match run.status {
                RunStatus::Queued => *queued = queued.saturating_sub(1),
                _ => *running = running.saturating_sub(1),
            }
        }
    }
    drop(store);
    let catalog = Catalog::open(home, now)?;
    for job in &catalog.jobs {
        let operator = match job.state() {
            JobState::Active => Operator::Active,
            JobState::Paused => Operator::Paused,
            _ => continue,
        };
        let (Some(spec), Some(schedule)) = (&job.spec, &job.schedule) else {
            continue;
        };
        // The same pending slot a start computes: a slot given back by a claim that never began, the
        // kept slot, or for a changed schedule the first after the last slot recorded, so its slots
        // since then are judged below, as the start would judge them.
        let kept = match (job.row.next_slot, given_back.get(job.id())) {
            (Some(next), Some(back)) => Some(next.min(*back)),
            (next, _) => next,
        };
        let consumed = job.row.last_slot;
        let Some(next_slot) =
            kept.or_else(|| policy::pending_slot(None, true, consumed, schedule, now))
        else {
            lines.push(format!("{}: its schedule has no further slot", job.id()));
            continue;
        };
        let (running, queued) = in_flight.get(job.id()).copied().unwrap_or((0, 0));
        let input = Input {
            job_id: job.id(),
            schedule,
            policy: &spec.policy,
            jitter: jitter(spec),
            operator,
            next_slot,
            in_flight: InFlight { running, queued },
        };
        let plan = policy::decide(&input, now);
        if plan.decisions.is_empty() {
            lines.push(format!(
                "{}: next slot {} (not due)",
                job.id(),
                rfc3339(next_slot)
            ));
        }
        for decision in plan.decisions {
            lines.push(format!("{}: would {}", job.id(), describe(&decision)));
        }
    }
    Ok(Summary {
        dry_run_plan: lines,
        ..Summary::default()
    })
}

fn describe(decision: &Decision) -> String {
    let fire = |verb: &str, f: &Fire| {
        if f.count > 1 {
            format!(
                "{verb} one {} run for {} standing for {} slots from {}",
                f.trigger.as_str(),
                rfc3339(f.slot),
                f.count,
                rfc3339(f.first_slot)
            )
        } else {
            format!(
                "{verb} a {} run for {}",
                f.trigger.as_str(),
                rfc3339(f.slot)
            )
        }
    };
    match decision {
        Decision::Fire(f) => fire("start", f),
        Decision::Queue(f) => fire("queue", f),
        Decision::Replace(f) => fire("replace the oldest run with", f),
        Decision::Skip {
            first_slot,
            last_slot,
            count,
            reason,
        } => {
            format!(
                "record {count} slot(s) {}..{} as skipped ({})",
                rfc3339(*first_slot),
                rfc3339(*last_slot),
                reason.as_str()
            )
        }
        Decision::Miss {
            first_slot,
            last_slot,
            count,
        } => {
            format!(
                "record {count} slot(s) {}..{} as missed (past misfire_grace)",
                rfc3339(*first_slot),
                rfc3339(*last_slot)
            )
        }
    }
}
