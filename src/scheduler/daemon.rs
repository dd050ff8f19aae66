//! The scheduler's loop. It sleeps until the next deadline of the job table, a spec change, a store
//! change made by another process (`PRAGMA data_version`), a finished run, or shutdown; it never polls
//! for work. Each wake-up is one named step; a tick plans (`plan`), commits the plan in one transaction
//! (`commit`) and hands the claimed runs to the supervisor. Must not decide what a slot becomes (the
//! planner and `policy` do) nor run commands (the runner does).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::cluster::{ClusterOptions, Leadership, Node};
use super::commit::{self, Claimed};
use super::jobs::{Jobs, ahead};
use super::lock::{OwnerLock, StoreIdentity};
use super::plan::{self, Note, OwedRetry, SlotRange, TickInput, TickPlan, What};
use super::reload::{Census, reload};
use super::retention::Retention;
use super::set_aside::set_aside_unknown_dirs;
use super::shutdown::Shutdown;
use super::slot_log::SlotLog;
use super::supervisor::Supervisor;
use super::watch::SpecWatch;
use crate::artifacts::RunDir;
use crate::clock::Clock;
use crate::delivery::Courier;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::metrics::Metrics;
use crate::notifier::{Event, HomeFacts, fanout};
use crate::run::{owner, run_name};
use crate::runner::execute::RunOutcome;
use crate::runner::recover::reconcile_runs;
use crate::server::{Listen, Server, Source};
use crate::spec::model::NotifierSpec;
use crate::store::{RunRow, Store, TickRecord, TickResult};

#[derive(Debug, Clone)]
pub struct Options {
    /// How long shutdown waits for runs in flight before stopping them.
    pub shutdown_grace: Duration,
    /// How often specs are rescanned even without a file event.
    pub rescan_every: Duration,
    /// How often the store is checked for changes made by other processes.
    pub store_poll: Duration,
    /// The HTTP server to run beside the loop (`--listen`), if any.
    pub server: Option<ServerSetup>,
    /// How this scheduler takes part in a store several hosts share (PostgreSQL).
    pub cluster: ClusterOptions,
}

/// Where the scheduler's HTTP server listens and what it answers from.
#[derive(Clone)]
pub struct ServerSetup {
    pub listen: Listen,
    pub source: Arc<dyn Source>,
}

impl std::fmt::Debug for ServerSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSetup")
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            shutdown_grace: Duration::from_secs(30),
            rescan_every: Duration::from_secs(30),
            store_poll: Duration::from_millis(250),
            server: None,
            cluster: ClusterOptions::default(),
        }
    }
}

/// What `run` reports when it returns.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub interrupted_at_start: usize,
    pub runs_started: usize,
    pub interrupted_at_shutdown: usize,
}

/// How often the loop looks for runs whose owner died (manual runs killed while the scheduler runs).
/// How long the notifications of home events are kept once done.
const HOME_EVENTS_KEPT: chrono::Duration = chrono::Duration::days(90);

const REAP_EVERY: Duration = Duration::from_secs(5);

/// The longest the loop sleeps without looking at the clock, so a wall clock that jumps is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// After a failed claim, the loop waits this long before trying again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// After a failed take from the queue, how long a node's worker leaves the queue to the others.
const TAKE_PAUSE: Duration = Duration::from_secs(5);

/// How long the courier may go on at shutdown delivering what is owed (`scheduler_stopped` among
/// it); what it cannot deliver stays in the outbox for the next start.
const COURIER_GRACE: Duration = Duration::from_secs(3);

/// The daemon's parts besides the tick. The loop polls or tells each; all of them stop on the one
/// shutdown path, [`Daemon::shut_down`], after the supervisor, so nothing they report outlives the
/// runs it reports on.
struct Components {
    supervisor: Supervisor,
    watch: SpecWatch,
    retention: Retention,
    slot_log: SlotLog,
    /// Delivers the outbox on a thread of its own; stopped after the supervisor, so the
    /// notifications of the runs stopped at shutdown are owed before it winds down.
    courier: Option<Courier>,
    /// `/metrics`, health and the JSON API (`--listen`); stopped last, so it can be watched to the end.
    server: Option<Server>,
    /// Mirrors the runs' events and receipts into a store several hosts share; stopped after the
    /// supervisor, so the last lines of the runs stopped at shutdown are written.
    mirror: Option<crate::mirror::Mirror>,
    /// Raised when runs are queued for the nodes of a shared store: this node's worker looks at once.
    work: Option<Arc<tokio::sync::Notify>>,
}

struct Daemon {
    home: Home,
    clock: Arc<dyn Clock>,
    me: String,
    store: Arc<Mutex<Box<dyn Store>>>,
    jobs: Jobs,
    parts: Components,
    data_version: i64,
    /// After a failed claim, when to try again: a store that keeps failing must not spin the loop.
    retry_at: Option<tokio::time::Instant>,
    /// Runs found interrupted whose policy retries interruptions: each gets one new run.
    retries: Vec<OwedRetry>,
    last_reap: tokio::time::Instant,
    /// The store file opened at start; checked before every claim and with every heartbeat.
    store_identity: StoreIdentity,
    /// Set when the scheduler must stop and exit with an error (its store was replaced).
    fatal: Option<Error>,
    /// The jobs of the home by kind, as of the last reload.
    census: Census,
    /// The home's notifiers (for `scheduler_started` and `scheduler_stopped`), as of the last reload.
    home_notifiers: Vec<NotifierSpec>,
    /// The config in force, for the limits runs share (groups, the home's `max_running`).
    config: crate::config::HomeConfig,
    /// The jobs other jobs' runs trigger, and the triggered runs owed to them, not yet claimed.
    downstream: HashMap<String, super::reload::Downstream>,
    triggers: Vec<crate::store::OwedTrigger>,
    /// When this scheduler took the home: names its start and stop in their delivery ids.
    started_at: DateTime<Utc>,
    /// What this process saw, for `/metrics`.
    metrics: Arc<Metrics>,
    /// The slots of the scheduled runs started and not ended yet: how late each started is known at
    /// its end.
    slots: HashMap<(String, i64), DateTime<Utc>>,
    /// This scheduler as a node of a store several hosts share; `None` for a store of one host,
    /// whose scheduler (the holder of the home's lock) always leads.
    node: Option<Node>,
    /// After a failed take (this node cannot make run directories, the store is away), when the
    /// worker may take again.
    take_paused_until: Option<std::time::Instant>,
    /// The metadata stamp of the specs and config as of the last reload (see `catalog::stamp`).
    spec_stamp: Option<u64>,
}

/// Resolves when runs are queued for the nodes; never without a queue to listen to.
async fn work_queued(work: Option<&tokio::sync::Notify>) {
    match work {
        Some(work) => work.notified().await,
        None => std::future::pending().await,
    }
}

/// Runs the scheduler of `home` until `shutdown` resolves.
pub async fn run(
    home: Home,
    options: Options,
    clock: Arc<dyn Clock>,
    mut shutdown: Shutdown,
) -> Result<Summary> {
    let me = owner();
    let _lock = OwnerLock::acquire(&home, &me)?;
    let location = crate::store::locate(&home)?;
    let mut store = crate::store::open_at(location.clone())?;
    let store_identity = StoreIdentity::of(&location)?;
    let mut node = match &location {
        crate::store::Location::Postgres { .. } => {
            Some(join(&mut *store, &home, &me, &options.cluster)?)
        }
        crate::store::Location::Sqlite(_) => {
            let previous = store.owner()?;
            store.claim_owner(&me, env!("CARGO_PKG_VERSION"))?;
            take_over_leases(&mut *store, previous.as_ref());
            None
        }
    };
    let interrupted = settle_at_start(&mut *store, &home, &clock)?;
    // Only the leader syncs its specs into a shared store: a node asks for the lease before it loads.
    if let Some(node) = &mut node {
        elect_at_start(&mut *store, node, &me)?;
    }
    let work = if node.is_some() {
        store.work_signal()?
    } else {
        None
    };
    let store = Arc::new(Mutex::new(store));
    let (spec_stamp, pass) = timed_stamp(&home);
    let first = if node
        .as_ref()
        .is_none_or(|n| n.leads(std::time::Instant::now()))
    {
        reload(&home, &store, clock.now(), None)?
    } else {
        super::reload::follower(&home, &store)?
    };
    // The watch starts once the specs are loaded: the first load is not a change.
    let courier = Courier::start(
        &home,
        me.clone(),
        Arc::clone(&clock),
        first.config.heartbeat_ping.clone(),
    );
    // A scheduler that cannot deliver would leave every notification owed and tell no one: it does
    // not start (a thread that cannot be made means the machine is out of them anyway).
    let courier = Some(courier?);
    let parts = Components {
        supervisor: Supervisor::new(Arc::clone(&store), Arc::clone(&clock), me.clone()),
        watch: SpecWatch::start(&home.jobs_dir(), &home.config_path(), options.rescan_every),
        retention: Retention::new(Arc::clone(&store), home.runs_dir(), Arc::clone(&clock)),
        slot_log: SlotLog::new(home.clone(), Arc::clone(&clock)),
        courier,
        server: None,
        mirror: crate::mirror::Mirror::start(&location)?,
        work,
    };
    let started_at = clock.now();
    let metrics = Arc::new(Metrics::new());
    let server = match &options.server {
        Some(setup) => Some(
            Server::start(
                &setup.listen,
                Arc::clone(&setup.source),
                Arc::clone(&metrics),
            )
            .await?,
        ),
        None => None,
    };
    let mut daemon = Daemon {
        home,
        clock,
        me,
        store,
        jobs: first.jobs,
        parts,
        data_version: first.data_version,
        retry_at: None,
        retries: Vec::new(),
        last_reap: tokio::time::Instant::now(),
        store_identity,
        fatal: None,
        census: first.census,
        home_notifiers: first.config.notify.clone(),
        config: first.config,
        downstream: first.downstream,
        triggers: Vec::new(),
        started_at,
        metrics,
        slots: HashMap::new(),
        node,
        take_paused_until: None,
        spec_stamp,
    };
    daemon.parts.server = server;
    daemon.parts.watch.pace(pass);
    if let Some(mirror) = &daemon.parts.mirror {
        let sender = mirror.sender();
        daemon.parts.supervisor.mirror_to(sender);
    }
    // A node's runs must end with it even when it is killed outright: another host would retry them
    // once its promise has passed.
    if daemon.node.is_some() {
        let reaper = crate::reaper::Reaper::start()?;
        daemon.parts.supervisor.reap_with(reaper);
    }
    if let Some(node) = &daemon.node {
        let until = node.alive_until();
        daemon.parts.supervisor.set_alive_until(Some(until));
    }
    daemon.take_owed_retries();
    daemon.log_start();
    daemon.announce(Event::SchedulerStarted, None);
    daemon.forget_old_home_events();
    daemon.run_loop(&options, &mut shutdown).await;
    // With its store gone, nothing the runs in flight record can be kept, and a new store at the path
    // knows nothing of them (a `jobsctl run` there would start a second instance beside them): they are
    // stopped at once rather than given the grace.
    let grace = if daemon.fatal.is_some() {
        Duration::ZERO
    } else {
        daemon.node.as_ref().map_or(options.shutdown_grace, |node| {
            // The heartbeat stops with the loop: runs still winding down past the node's promise
            // would be taken for dead elsewhere, and run twice.
            let most = node.options.dead_after.saturating_sub(node.options.lease);
            if options.shutdown_grace > most {
                tracing::warn!(
                    grace = ?options.shutdown_grace,
                    "the shutdown grace is cut to {most:?}: a node's runs must end before its heartbeat is old enough for other nodes to take them for dead (raise --node-dead-after for a longer grace)"
                );
            }
            options.shutdown_grace.min(most)
        })
    };
    let interrupted_at_shutdown = daemon.shut_down(grace, &mut shutdown).await;
    if let Some(error) = daemon.fatal.take() {
        tracing::error!("scheduler stopped: {error}");
        return Err(error);
    }
    tracing::info!("scheduler stopped");
    Ok(Summary {
        interrupted_at_start: interrupted,
        runs_started: daemon.parts.supervisor.started(),
        interrupted_at_shutdown,
    })
}

/// Joins a shared store as a node: its name must not be a live node's.
fn join(store: &mut dyn Store, home: &Home, me: &str, options: &ClusterOptions) -> Result<Node> {
    let node = Node::new(
        options.clone(),
        me.to_owned(),
        crate::catalog::fingerprint(home)?,
        std::time::Instant::now(),
    );
    // A scheduler of this host whose pid is gone has died: its name is free at once, so that a
    // node restarted right after a crash (systemd's Restart=) is not refused for a lease.
    let gone = |owner: &str| {
        owner.split_once('@').is_some_and(|(pid, host)| {
            host == crate::run::host()
                && pid
                    .parse::<u32>()
                    .is_ok_and(|pid| crate::process::Identity::of(pid).is_none())
        })
    };
    if let Some(previous) = store.join_node(&node.beat(0), options.lease, &gone)? {
        tracing::info!(node = %node.name, previous = %previous, "took over the name of a node that stopped");
    }
    tracing::info!(node = %node.name, lease = ?options.lease, node_dead_after = ?options.dead_after, "joined the store as a node");
    Ok(node)
}

/// The first lease call of a node, before its first load. A node that is elected here is the
/// scheduler `status` names.
fn elect_at_start(store: &mut dyn Store, node: &mut Node, me: &str) -> Result<()> {
    let sent = std::time::Instant::now();
    let answer = store.lead(&node.name, None, node.options.lease, &node.spec_hash)?;
    if let Leadership::Elected(term) = node.lease_answered(sent, answer) {
        store.fence(Some(crate::store::Fence {
            node: node.name.clone(),
            term,
        }));
        store.claim_owner(me, env!("CARGO_PKG_VERSION"))?;
        tracing::info!(node = %node.name, term, "elected leader");
    } else {
        tracing::info!(node = %node.name, "another node leads; following");
    }
    Ok(())
}

/// A scheduler that died (we hold the home's lock, so it is gone) leaves the notifications it was
/// trying leased to it: they are taken back at once rather than when their leases run out, so that
/// what it could not finish goes out within a second of this start.
fn take_over_leases(store: &mut dyn Store, previous: Option<&crate::store::Owner>) {
    let Some(previous) = previous else {
        return;
    };
    let name = format!("{}@{}", previous.pid, previous.host);
    if let Err(e) = store.release_leases(&name) {
        tracing::warn!(
            "the notifications {name} was delivering wait for their leases to run out: {e}"
        );
    }
}

/// Settles the runs whose owner died and sets aside run directories the store has no record of;
/// returns how many runs were found interrupted.
fn settle_at_start(store: &mut dyn Store, home: &Home, clock: &Arc<dyn Clock>) -> Result<usize> {
    let interrupted = reconcile_runs(store, home, clock, None)?;
    for (job, seq) in &interrupted {
        tracing::warn!(run = %run_name(job, *seq), "its process is gone; marked interrupted");
    }
    for (dir, aside) in set_aside_unknown_dirs(store, home)? {
        tracing::warn!(
            run = %run_name(&dir.job_id, dir.seq),
            moved_to = %home.display_path(&aside),
            "found a run directory the store has no record of (a claim that never committed, or a run recorded only in a store since restored from an older backup): moved aside, its number stays taken; `jobsctl prune` removes it"
        );
    }
    Ok(interrupted.len())
}

impl Daemon {
    /// The loop: every wake-up is one named step, until shutdown or a fatal error.
    async fn run_loop(&mut self, options: &Options, shutdown: &mut Shutdown) {
        let mut store_poll = tokio::time::interval(options.store_poll);
        let mut heartbeat = tokio::time::interval(
            self.node
                .as_ref()
                .map_or(Duration::from_secs(2), |n| n.options.renew_every()),
        );
        let mut work_poll = tokio::time::interval(super::worker::POLL_EVERY);
        let work = self.parts.work.clone();
        loop {
            let sleep = self.time_to_next_deadline();
            tokio::select! {
                () = tokio::time::sleep(sleep) => self.plan_and_commit_tick(),
                () = work_queued(work.as_deref()) => self.take_work(),
                _ = work_poll.tick(), if work.is_some() => self.take_work(),
                why = self.parts.watch.changed() => self.reload_and_deliver_cancels(why),
                _ = store_poll.tick() => self.poll_store(),
                _ = heartbeat.tick() => self.renew(),
                Some(finished) = self.parts.supervisor.next_finished() => self.reap_finished(finished),
                () = shutdown.requested(1) => break,
            }
            if self.fatal.is_some() {
                break;
            }
        }
    }

    /// One call of the store, off the async workers (see [`crate::store::call`]).
    fn with_store<T>(&self, f: impl FnOnce(&mut dyn Store) -> Result<T>) -> Result<T> {
        crate::store::call(&self.store, f)
    }

    /// As a node of a shared store: takes the queued runs this node may execute, as many as its
    /// `--max-runs` leaves room for, and starts them. A node whose last heartbeat no longer vouches
    /// for it takes nothing (it could not keep what it took alive in others' eyes).
    fn take_work(&mut self) {
        let Some(node) = self.node.as_ref() else {
            return;
        };
        let (name, labels, dead_after) = (
            node.name.clone(),
            node.options.labels.clone(),
            node.options.dead_after,
        );
        let now = std::time::Instant::now();
        if now >= node.alive_until()
            || self.take_paused_until.is_some_and(|until| now < until)
            || !self.store_still_ours()
        {
            return;
        }
        loop {
            let running = self.parts.supervisor.in_flight_count();
            let room = self
                .node
                .as_ref()
                .map_or(0, |n| n.room(running))
                .min(super::worker::TAKE_BATCH);
            if room == 0 {
                return;
            }
            let take = crate::store::Take {
                owner: &self.me,
                node: &name,
                labels: &labels,
                limit: room,
                dead_after,
            };
            let taken = self.with_store(|store| super::worker::take(store, &self.home, &take));
            let taken = match taken {
                Ok(taken) => taken,
                Err(e) => {
                    // The runs stay in the queue, for another node or for this one a little later.
                    tracing::error!(
                        "taking runs from the queue failed: {e}; not taking any for {} s",
                        TAKE_PAUSE.as_secs()
                    );
                    self.take_paused_until = Some(std::time::Instant::now() + TAKE_PAUSE);
                    return;
                }
            };
            let count = taken.len();
            for (run, dir) in taken {
                let slot = run.row.slot;
                let key = (run.row.job_id.clone(), run.row.seq);
                match super::worker::plan(run, dir, &self.me, &self.home, &self.config) {
                    Ok(plan) => {
                        if let Some(slot) = slot {
                            self.slots.insert(key, slot);
                        }
                        self.parts.supervisor.start(plan);
                    }
                    Err(ended) => {
                        let (dir, end) = *ended;
                        tracing::warn!(run = %crate::run::run_name(&key.0, key.1), "not started: {}", end.message.as_deref().unwrap_or("-"));
                        let _ = std::fs::remove_dir_all(dir.path());
                        // Written again with each heartbeat until the store takes it: a row left
                        // running here would hold an instance of its job across the cluster.
                        if let Err(e) = self.with_store(|s| s.finish_run(&key.0, key.1, &end)) {
                            tracing::error!("{e}");
                            self.parts.supervisor.owe_end(key.0, key.1, end);
                        }
                    }
                }
            }
            // A cancel asked for while a run waited in the queue is this node's to deliver now.
            if count > 0 {
                self.parts.supervisor.deliver_cancels();
            }
            if count < room {
                return;
            }
        }
    }

    fn log_start(&self) {
        let census = self.census;
        tracing::info!(
            scheduled = self.jobs.len(),
            manual_only = census.manual_only,
            paused = census.paused,
            disabled = census.disabled,
            invalid = census.invalid,
            "scheduler started: {} job(s) on a schedule",
            self.jobs.len()
        );
    }

    /// Whether this scheduler plans and claims now: always with a store of one host; as a node,
    /// while its lease lasts.
    fn leads(&self) -> bool {
        self.node
            .as_ref()
            .is_none_or(|n| n.leads(std::time::Instant::now()))
    }

    /// Rebuilds the job table from the specs and the store; a node that does not lead only reads
    /// its files' fingerprint (it never syncs them).
    fn reload(&mut self) -> Result<()> {
        if let Some(node) = &mut self.node {
            node.spec_hash = crate::catalog::fingerprint(&self.home)?;
        }
        if !self.leads() {
            // What it runs follows the config the leader synced (its groups' limits, say).
            let store = &self.store;
            let home = &self.home;
            let followed = crate::store::blocking(|| super::reload::follower(home, store))?;
            self.config = followed.config;
            return Ok(());
        }
        // Loading the specs opens the store too: all of it off the async workers.
        let reloaded = crate::store::blocking(|| {
            reload(&self.home, &self.store, self.clock.now(), Some(&self.jobs))
        })?;
        self.jobs = reloaded.jobs;
        self.census = reloaded.census;
        self.data_version = reloaded.data_version;
        self.home_notifiers = reloaded.config.notify.clone();
        if let Some(courier) = &self.parts.courier {
            courier.set_heartbeat(reloaded.config.heartbeat_ping.clone());
        }
        self.config = reloaded.config;
        self.downstream = reloaded.downstream;
        self.publish_catalog();
        // Another process may have settled an interrupted run whose retry is owed, or ended a run
        // that triggers one of ours.
        self.take_owed_retries();
        self.take_owed_triggers();
        Ok(())
    }

    /// A leader's specs just synced are the catalog's from now on.
    fn publish_catalog(&self) {
        let Some(node) = &self.node else {
            return;
        };
        let Some(term) = node.term() else {
            return;
        };
        let (name, hash) = (node.name.clone(), node.spec_hash.clone());
        if let Err(e) = self.with_store(|s| s.publish_catalog(&name, term, &hash)) {
            tracing::warn!("the catalog's fingerprint follows at the next renewal: {e}");
        }
    }

    /// Interrupted runs are retried once, as a new run linked to them, when their job retries
    /// `interrupted` outcomes. Whoever settled the run (this scheduler, or any command before it)
    /// recorded that the retry is owed (unless someone had asked for it to be cancelled); claiming the
    /// retry takes the debt in the same transaction, so it happens exactly once. A retry that is itself
    /// interrupted owes none, so a job that keeps taking the scheduler down cannot loop.
    fn take_owed_retries(&mut self) {
        match self.with_store(|s| s.owed_retries()) {
            Ok(owed) => {
                self.retries = owed
                    .iter()
                    .filter(|row| self.jobs.contains(&row.job_id))
                    .map(owed_retry)
                    .collect();
            }
            Err(e) => tracing::error!("{e}"),
        }
    }

    /// The triggered runs owed to jobs this scheduler knows, as the store has them now.
    fn take_owed_triggers(&mut self) {
        if self.downstream.is_empty() {
            self.triggers.clear();
            return;
        }
        match self.with_store(|s| s.owed_triggers()) {
            Ok(owed) => {
                self.triggers = owed
                    .into_iter()
                    .filter(|t| self.downstream.contains_key(&t.job_id))
                    .collect();
            }
            Err(e) => tracing::error!("{e}"),
        }
    }

    /// Claims the runs upstream runs' ends owe (or records them skipped), each in the transaction
    /// that takes its trigger, so each runs once however many schedulers try.
    fn claim_triggered(&mut self) {
        if self.triggers.is_empty() {
            return;
        }
        let now = self.clock.now();
        let records: Vec<TickRecord> = std::mem::take(&mut self.triggers)
            .into_iter()
            .filter_map(|owed| {
                let down = self.downstream.get(&owed.job_id)?;
                Some(commit::triggered_record(
                    owed,
                    &down.spec,
                    &down.spec_hash,
                    &self.config,
                ))
            })
            .collect();
        let plan = TickPlan::empty(now);
        let Some(results) = self.commit(&plan, &records) else {
            // Nothing was taken: they are read again for the next try.
            self.take_owed_triggers();
            return;
        };
        self.apply(&plan, records, results);
    }

    /// Reloads, then delivers the cancel requests: a reload takes in the store's data version, so a
    /// request committed before it would otherwise go unseen by [`Self::poll_store`].
    fn reload_and_deliver_cancels(&mut self, why: &str) {
        // The periodic rescan reads every spec only when something in `jobs/` or the config
        // changed by their metadata: at 100,000 jobs, reading them all every 30 s cost a sixth of
        // a core. The stamp is taken before the reload, so a change made while it reads is seen
        // at the next rescan.
        let (stamp, pass) = timed_stamp(&self.home);
        self.parts.watch.pace(pass);
        let unchanged = why == super::watch::RESCAN && stamp.is_some() && stamp == self.spec_stamp;
        let reloaded = if unchanged {
            Ok(())
        } else {
            tracing::debug!("reading the specs again after {why}");
            self.reload()
        };
        self.parts.supervisor.deliver_cancels();
        match reloaded {
            Ok(()) => self.spec_stamp = stamp,
            Err(e) => tracing::error!("reload after {why} failed: {e}"),
        }
    }

    /// Another process changed the store (pause, resume, a manual run, a cancel...): reload what it
    /// may affect.
    fn poll_store(&mut self) {
        let version = self.with_store(|s| s.data_version());
        match version {
            Ok(version) if version != self.data_version && !self.leads() => {
                self.data_version = version;
                self.parts.supervisor.deliver_cancels();
            }
            Ok(version) if version != self.data_version => {
                self.reload_and_deliver_cancels("a store change");
            }
            Ok(_) => {}
            Err(e) => tracing::error!("{e}"),
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

    /// The heartbeat: the owner row's of a store of one host; a node's, with its lease. Ends the
    /// store could not record before are written again first.
    fn renew(&mut self) {
        if !self.store_still_ours() {
            return;
        }
        self.parts.supervisor.record_owed_ends();
        if self.node.is_some() {
            self.beat_as_node();
            // A node whose name was taken over stops: it asks for no lease on its way out.
            if self.fatal.is_none() {
                self.renew_lease();
            }
            return;
        }
        let me = self.me.clone();
        if let Err(e) = self.with_store(|s| s.heartbeat(&me)) {
            tracing::error!("{e}");
        }
    }

    /// Renews the node's heartbeat and its runs' sign of life. A node that has not been able to for
    /// its promise less a lease stops its runs, before any other node could take them for dead.
    fn beat_as_node(&mut self) {
        let Some(node) = self.node.as_mut() else {
            return;
        };
        let beat = node.beat(self.parts.supervisor.in_flight_count());
        let sent = std::time::Instant::now();
        match crate::store::call(&self.store, |s| s.node_heartbeat(&beat)) {
            Ok(true) => {
                node.beat_taken(sent);
                self.parts
                    .supervisor
                    .set_alive_until(Some(node.alive_until()));
            }
            Ok(false) => {
                // Silent for longer than a lease, the name was taken by a new process: this one
                // is no longer the node, and stops.
                tracing::error!(node = %node.name, "another process took this node's name while its heartbeat was late; stopping");
                self.fatal = Some(Error::NodeNameTaken {
                    node: node.name.clone(),
                    owner: "another process".into(),
                    seen_ms: 0,
                });
            }
            Err(e) => {
                tracing::error!(node = %node.name, "cannot renew this node's heartbeat: {e}");
                if node.must_fence(std::time::Instant::now()) {
                    tracing::error!(
                        node = %node.name,
                        runs = self.parts.supervisor.in_flight_count(),
                        "the heartbeat has failed for too long: stopping this node's runs before other nodes take them for dead"
                    );
                    self.parts
                        .supervisor
                        .stop_all(crate::run::RunStatus::Interrupted);
                }
            }
        }
    }

    /// Renews the lease, or asks for it: a node elected syncs its specs and starts planning; a node
    /// whose term ended stops planning (its runs in flight go on to their end).
    fn renew_lease(&mut self) {
        let Some(node) = self.node.as_mut() else {
            return;
        };
        let (name, term, lease, hash) = (
            node.name.clone(),
            node.term(),
            node.options.lease,
            node.spec_hash.clone(),
        );
        let sent = std::time::Instant::now();
        let me = self.me.clone();
        let answer = crate::store::call(&self.store, |s| {
            let lease = s.lead(&name, term, lease, &hash)?;
            // The leader is the scheduler the owner row (and so `status`) names.
            if lease.is_some() {
                s.heartbeat(&me)?;
            }
            Ok(lease)
        });
        let change = match answer {
            Ok(answer) => node.lease_answered(sent, answer),
            Err(e) => {
                tracing::error!(node = %name, "cannot renew the lease: {e}");
                if node.term().is_some() && !node.leads(std::time::Instant::now()) {
                    node.step_down()
                        .map_or(Leadership::Follower, Leadership::Lost)
                } else {
                    Leadership::Renewed
                }
            }
        };
        match change {
            Leadership::Elected(term) => self.became_leader(term),
            Leadership::Lost(term) => self.lost_leadership(term),
            Leadership::Renewed | Leadership::Follower => {}
        }
    }

    /// Elected in `term`: claims are fenced by it, the owner row names this scheduler, and the
    /// specs are synced and the job table built from the store's cursors, as a start would.
    fn became_leader(&mut self, term: i64) {
        let Some(name) = self.node.as_ref().map(|n| n.name.clone()) else {
            return;
        };
        let me = self.me.clone();
        let fenced = self.with_store(|s| {
            s.fence(Some(crate::store::Fence {
                node: name.clone(),
                term,
            }));
            s.claim_owner(&me, env!("CARGO_PKG_VERSION"))
        });
        if let Err(e) = fenced {
            tracing::error!("{e}");
        }
        tracing::info!(node = %name, term, "elected leader");
        // The runs of a leader that died are settled first: its claims made ahead of their slots
        // give their slots back (moving the cursors in the store), and the table is then built
        // from those cursors.
        self.last_reap = tokio::time::Instant::now() - REAP_EVERY;
        self.settle_dead_runs();
        if let Err(e) = self.reload() {
            tracing::error!("loading the specs as the new leader failed: {e}");
        }
    }

    /// The term ended: nothing more is planned or claimed here until this node is elected again.
    fn lost_leadership(&mut self, term: i64) {
        let name = self
            .node
            .as_ref()
            .map(|n| n.name.clone())
            .unwrap_or_default();
        tracing::warn!(node = %name, term, "no longer the leader: planning stops here, the runs in flight go on");
        self.jobs = Jobs::default();
        self.retries.clear();
        self.triggers.clear();
        self.downstream.clear();
    }

    /// How long until the job table's next deadline (owed retries are due at once), at most
    /// [`MAX_SLEEP`], and never before a failed claim may be tried again.
    fn time_to_next_deadline(&self) -> Duration {
        let now = self.clock.now();
        let next = if self.retries.is_empty() && self.triggers.is_empty() {
            self.jobs.next_wake()
        } else {
            Some(now)
        };
        let wait = next.map_or(MAX_SLEEP, |at| {
            (at - now).to_std().unwrap_or(Duration::ZERO).min(MAX_SLEEP)
        });
        match self.retry_at {
            Some(retry) => wait.max(retry.saturating_duration_since(tokio::time::Instant::now())),
            None => wait,
        }
    }

    /// The tick: plans what is due, commits the plan in one transaction, then applies it.
    fn plan_and_commit_tick(&mut self) {
        if !self.store_still_ours() || !self.leads() {
            return;
        }
        self.settle_dead_runs();
        let Some(in_flight) = self.in_flight() else {
            return;
        };
        let paused = self.paused_slots();
        let now = self.clock.now();
        let groups = self.config.group_limits();
        let plan = plan::plan_tick(&TickInput {
            jobs: &self.jobs,
            in_flight: &in_flight,
            retries: &self.retries,
            paused: &paused,
            now,
            ahead: ahead(),
            groups: &groups,
        });
        self.jobs.hold(&plan);
        self.claim_triggered();
        if plan.is_empty() {
            return;
        }
        log_plan(&plan);
        let records = commit::records(&plan, &self.jobs, &self.config);
        let Some(results) = self.commit(&plan, &records) else {
            return;
        };
        self.apply(&plan, records, results);
    }

    /// A manual run whose process died must not hold an instance of its job forever. Checking every
    /// run's lock costs time on a busy tick, so it is done every few seconds, not every tick.
    fn settle_dead_runs(&mut self) {
        if self.last_reap.elapsed() < REAP_EVERY {
            return;
        }
        self.last_reap = tokio::time::Instant::now();
        let reaped = self.with_store(|store| reconcile_runs(store, &self.home, &self.clock, None));
        match reaped {
            Ok(reaped) if !reaped.is_empty() => {
                self.wake_courier();
                self.take_owed_retries();
            }
            Ok(_) => {}
            Err(e) => tracing::error!("{e}"),
        }
    }

    /// The runs in flight by job; `None` (and a pause before the next try) when the store fails.
    fn in_flight(&mut self) -> Option<HashMap<String, crate::policy::InFlight>> {
        match self.with_store(|s| s.active_runs()) {
            Ok(active) => Some(self.parts.supervisor.in_flight(&active)),
            Err(e) => {
                tracing::error!("{e}");
                self.retry_at = Some(tokio::time::Instant::now() + RETRY_AFTER_FAILURE);
                None
            }
        }
    }

    /// The slots each job owed a catch-up skipped while paused. A store error makes up for nothing
    /// (the request is taken all the same, as before: the slots stay recorded as skipped).
    fn paused_slots(&self) -> HashMap<String, Vec<SlotRange>> {
        let mut paused = HashMap::new();
        for (id, entry) in self.jobs.catching_up() {
            let since = entry.paused_at.unwrap_or(DateTime::UNIX_EPOCH);
            match self.with_store(|s| s.paused_skips(id, since)) {
                Ok(ranges) => {
                    paused.insert(id.to_owned(), slot_ranges(&ranges));
                }
                Err(e) => tracing::error!("{e}"),
            }
        }
        paused
    }

    /// Commits the plan; on failure nothing was recorded, and its slots are judged again a second
    /// later.
    fn commit(
        &mut self,
        plan: &TickPlan,
        records: &[TickRecord],
    ) -> Option<Vec<TickResult<RunDir>>> {
        // A node claims for whichever node's worker takes the run (its own included).
        let owner = if self.node.is_some() {
            crate::store::NO_OWNER
        } else {
            self.me.as_str()
        };
        let committed =
            self.with_store(|store| commit::commit(store, &self.home, owner, plan, records));
        match committed {
            Ok(results) => {
                self.retry_at = None;
                Some(results)
            }
            Err(e) => {
                tracing::error!("claiming due slots failed: {e}");
                self.retry_at = Some(tokio::time::Instant::now() + RETRY_AFTER_FAILURE);
                None
            }
        }
    }

    /// Carries out a committed plan: the cursors move, replaced runs stop, claimed runs start and the
    /// slots that did not become runs are logged.
    fn apply(
        &mut self,
        plan: &TickPlan,
        records: Vec<TickRecord>,
        results: Vec<TickResult<RunDir>>,
    ) {
        self.retries.clear();
        self.jobs.advance(plan);
        // Missed and skipped slots, and runs started, may owe notifications.
        self.wake_courier();
        // Replace stops the oldest run only once the new one is safely claimed.
        for id in plan.replaced() {
            self.replace_oldest(id);
        }
        for (record, result) in records.into_iter().zip(results) {
            self.carry_out(record, result, plan.now);
        }
    }

    /// Overlap `replace`: stops the job's oldest run. On a shared store it may run on any node: one
    /// of this node's is stopped here, another node's is asked to stop through the store (its node
    /// delivers the request as it would a `jobsctl cancel`), and one no node has taken yet ends
    /// with the request.
    fn replace_oldest(&mut self, job_id: &str) {
        if self.node.is_none() {
            self.parts.supervisor.stop_oldest(job_id);
            return;
        }
        let oldest = self.with_store(|s| s.active_runs()).map(|active| {
            active
                .into_iter()
                .filter(|run| run.job_id == job_id && run.status == crate::run::RunStatus::Running)
                .map(|run| run.seq)
                .min()
        });
        let seq = match oldest {
            Ok(Some(seq)) => seq,
            Ok(None) => return,
            Err(e) => {
                tracing::error!("cannot find the run to replace: {e}");
                return;
            }
        };
        if self.parts.supervisor.replace_run(job_id, seq) {
            return;
        }
        let now = self.clock.now();
        let asked = self.with_store(|s| {
            s.request_cancel(
                &[(job_id.to_owned(), seq)],
                "scheduler",
                Some("replaced by a newer run (overlap replace)"),
                now,
            )
        });
        match asked {
            Ok(_) => {
                tracing::info!(run = %run_name(job_id, seq), "replaced by a newer run; its node is asked to stop it")
            }
            Err(e) => {
                tracing::error!(run = %run_name(job_id, seq), "cannot ask its node to stop it for a newer run: {e}")
            }
        }
    }

    fn carry_out(&mut self, record: TickRecord, result: TickResult<RunDir>, now: DateTime<Utc>) {
        let (seq, prepared, queued) = match result {
            TickResult::AlreadyClaimed => {
                tracing::warn!(job = %record.job_id(), "slot already claimed; not running it twice");
                return;
            }
            TickResult::Refused { seq, reason } => {
                // Recorded skipped by the store: logged and counted as the planner's skips are.
                match record.refused(reason) {
                    Some(skipped) => {
                        self.count_slots(&skipped);
                        self.parts.slot_log.record(&skipped, seq);
                    }
                    None => {
                        tracing::info!(run = %run_name(record.job_id(), seq), "triggered run skipped ({reason})")
                    }
                }
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
            } => (seq, prepared, queued),
        };
        let Some(run_dir) = prepared else {
            if matches!(record, TickRecord::Run { .. }) {
                // Claimed for the nodes: a worker (this node's, or another's) takes it.
                tracing::info!(run = %run_name(record.job_id(), seq), queued, "run claimed for the nodes");
                return;
            }
            self.count_slots(&record);
            self.parts.slot_log.record(&record, seq);
            return;
        };
        if let TickRecord::Run {
            slot: Some(slot), ..
        } = &record
        {
            self.slots.insert((record.job_id().to_owned(), seq), *slot);
        }
        let (spec, spec_hash) = match (
            self.jobs.get(record.job_id()),
            self.downstream.get(record.job_id()),
        ) {
            (Some(entry), _) => (&entry.spec, entry.spec_hash.as_str()),
            (None, Some(down)) => (&down.spec, down.spec_hash.as_str()),
            (None, None) => return,
        };
        let claimed = Claimed {
            seq,
            queued,
            run_dir,
            spec,
            spec_hash,
            owner: &self.me,
            home: &self.home,
            now,
        };
        if let Some(run) = commit::run_plan(record, claimed) {
            self.parts.supervisor.start(run);
        }
    }

    /// A run task ended: its job's retention applies.
    fn reap_finished(&mut self, finished: std::result::Result<RunOutcome, tokio::task::JoinError>) {
        if let Some(outcome) = self.parts.supervisor.finished(finished) {
            run_ended(&self.jobs, &self.parts.retention, &outcome);
            self.count_end(&outcome);
            self.wake_courier();
            // Its end may owe downstream runs, written in the same transaction.
            self.take_owed_triggers();
        }
    }

    /// Slots recorded skipped or missed, for `/metrics`.
    fn count_slots(&self, record: &TickRecord) {
        match record {
            TickRecord::Skipped {
                job_id,
                count,
                reason,
                ..
            } => self.metrics.slots_skipped(job_id, reason, *count),
            TickRecord::Missed { job_id, count, .. } => {
                self.metrics.slots_missed(job_id, *count);
            }
            TickRecord::Run { .. } => {}
        }
    }

    /// A run's end, for `/metrics`: its status and duration, and how late a scheduled run started.
    fn count_end(&mut self, outcome: &RunOutcome) {
        let slot = self.slots.remove(&(outcome.job_id.clone(), outcome.seq));
        if outcome.released {
            return;
        }
        let lateness = slot
            .zip(outcome.end.started_at)
            .map(|(slot, started)| (started - slot).num_milliseconds());
        self.metrics.run_finished(
            &outcome.job_id,
            outcome.end.status.as_str(),
            outcome.end.duration_ms,
            lateness,
        );
    }

    fn wake_courier(&self) {
        if let Some(courier) = &self.parts.courier {
            courier.wake();
        }
    }

    /// Owes the home's notifiers `event` (the scheduler's start or stop), in the outbox like any
    /// other notification. Best effort: a store that fails here must not stop the start or the stop.
    fn announce(&self, event: Event, message: Option<String>) {
        let facts = HomeFacts {
            job_id: None,
            path: None,
            message,
        };
        let key = format!("{}:{}", self.me, crate::clock::rfc3339(self.started_at));
        let owed = fanout::for_home(
            event,
            &facts,
            &key,
            &self.home_notifiers,
            &crate::run::host(),
            self.clock.now(),
        );
        if owed.is_empty() {
            return;
        }
        if let Err(e) = self.with_store(|store| store.enqueue(&owed)) {
            tracing::warn!("the {event} notification could not be written: {e}");
        }
        self.wake_courier();
    }

    /// Deletes the home events (starts, stops, specs turned invalid) delivered or given up more
    /// than [`HOME_EVENTS_KEPT`] ago: a run's notifications go with the run, and these would
    /// otherwise pile up, a few per restart, for ever.
    fn forget_old_home_events(&self) {
        let before = self.clock.now() - HOME_EVENTS_KEPT;
        match self.with_store(|store| store.forget_home_events(before)) {
            Ok(0) => {}
            Ok(n) => tracing::info!(notifications = n, "old home event notifications deleted"),
            Err(e) => tracing::warn!("deleting old home event notifications failed: {e}"),
        }
    }

    /// The one shutdown path: stops claiming, lets the supervisor wind the runs down within `grace`,
    /// then gives up the home. Returns how many runs were stopped at shutdown.
    async fn shut_down(&mut self, grace: Duration, shutdown: &mut Shutdown) -> usize {
        self.resign();
        let (jobs, retention) = (&self.jobs, &self.parts.retention);
        let stopped = self
            .parts
            .supervisor
            .shut_down(grace, shutdown, |outcome| {
                run_ended(jobs, retention, outcome)
            })
            .await;
        let why = match &self.fatal {
            Some(error) => format!("stopped on an error: {error}"),
            None => "stopped on request".to_owned(),
        };
        if let Some(reaper) = self.parts.supervisor.take_reaper() {
            crate::store::blocking(|| reaper.stop());
        }
        self.announce(Event::SchedulerStopped, Some(why));
        if let Some(mirror) = self.parts.mirror.take() {
            crate::store::blocking(|| mirror.stop());
        }
        if let Some(courier) = self.parts.courier.take() {
            crate::store::blocking(|| courier.stop(COURIER_GRACE));
        }
        self.parts.supervisor.record_owed_ends();
        let _ = self.with_store(|store| store.release_owner(&self.me));
        if let Some(node) = &self.node {
            let (name, me) = (node.name.clone(), self.me.clone());
            if let Err(e) = self.with_store(|s| s.leave_node(&name, &me)) {
                tracing::warn!("this node's row stays until its heartbeat is old: {e}");
            }
            self.release_if_last();
        }
        if let Some(server) = self.parts.server.take() {
            server.stop().await;
        }
        stopped
    }
}

impl Daemon {
    /// The last node of a cluster to stop gives back the scheduled slots no node took (the claims
    /// its leader made ahead, the runs given back at shutdown): the next leader judges them afresh.
    /// While another node may live, they stay for its worker, which starts them on time (the store
    /// decides, in the release's own transaction).
    fn release_if_last(&self) {
        match self.with_store(|s| s.release_untaken(&self.me)) {
            Ok(released) if !released.is_empty() => tracing::info!(
                count = released.len(),
                "no other node is alive: the slots no node took are given back, for the next leader to judge"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("the runs no node took wait in the queue for the next node: {e}")
            }
        }
    }

    /// A leader that stops hands the leadership over at once: the next node to ask is elected
    /// without waiting for the lease to run out, while this one winds its runs down.
    fn resign(&mut self) {
        let Some(node) = self.node.as_mut() else {
            return;
        };
        let name = node.name.clone();
        let Some(term) = node.step_down() else {
            return;
        };
        let me = self.me.clone();
        let resigned = crate::store::call(&self.store, |s| {
            s.resign(&name, term)?;
            s.release_owner(&me)
        });
        match resigned {
            Ok(()) => tracing::info!(node = %name, term, "resigned the leadership"),
            Err(e) => {
                tracing::warn!(node = %name, "the leadership passes when its lease runs out: {e}")
            }
        }
    }
}

/// What follows a run's end: its job's retention, then the log line.
fn run_ended(jobs: &Jobs, retention: &Retention, outcome: &RunOutcome) {
    if let Some(entry) = jobs.get(&outcome.job_id) {
        retention.after_run(&outcome.job_id, &entry.spec.retention);
    }
    tracing::info!(run = %run_name(&outcome.job_id, outcome.seq), status = %outcome.end.status, duration_ms = outcome.end.duration_ms, "run finished");
}

/// Logs what an operator should hear of before the plan is committed.
fn log_plan(plan: &TickPlan) {
    for note in &plan.notes {
        match note {
            Note::CatchupLimited { job_id, slots } => tracing::warn!(
                job = %job_id,
                slots,
                "catch-up limited to the latest {} slots",
                plan::MAX_CATCHUP_RUNS
            ),
        }
    }
    for claim in &plan.claims {
        if let What::Retry { of, .. } = claim.what {
            tracing::info!(run = %run_name(&claim.job_id, of), "retrying the interrupted run");
        }
    }
}

fn owed_retry(row: &RunRow) -> OwedRetry {
    OwedRetry {
        job_id: row.job_id.clone(),
        seq: row.seq,
        slot: row.slot,
    }
}

/// Slot ranges `(first, last)` as the store returns them, for the planner.
pub(super) fn slot_ranges(ranges: &[(DateTime<Utc>, DateTime<Utc>)]) -> Vec<SlotRange> {
    ranges
        .iter()
        .map(|&(first, last)| SlotRange { first, last })
        .collect()
}

/// The specs' metadata stamp (`catalog::stamp`) and how long taking it took, which paces the
/// periodic rescan.
fn timed_stamp(home: &Home) -> (Option<u64>, std::time::Duration) {
    let began = std::time::Instant::now();
    let stamp = crate::catalog::stamp(home);
    (stamp, began.elapsed())
}
