//! The run supervisor: the runs this scheduler started, each a task in one `JoinSet` with its stop
//! channel. It starts them, stops them (replace, cancel requests, shutdown), records their starts in
//! batches and hears them finish. Must not decide what runs (the planner does) nor apply retention
//! (the retention component does, when told a run ended).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinSet};

use super::shutdown::Shutdown;
use crate::clock::Clock;
use crate::error::Result;
use crate::policy::InFlight;
use crate::run::{RunEnd, RunStatus, run_name};
use crate::runner::execute;
use crate::runner::execute::{RunControl, RunOutcome, RunPlan, Started};
use crate::store::{RunRow, Store};

/// How often the runs left at shutdown are checked for cancel requests while the grace lasts.
const CANCEL_POLL_AT_SHUTDOWN: Duration = Duration::from_millis(250);

pub struct Supervisor {
    store: Arc<Mutex<Box<dyn Store>>>,
    clock: Arc<dyn Clock>,
    /// This scheduler as the store names run owners.
    me: String,
    runs: JoinSet<RunOutcome>,
    stops: HashMap<(String, i64), watch::Sender<Option<RunStatus>>>,
    /// Runs report here when their command starts; the starts are recorded in one batch.
    starts_tx: mpsc::UnboundedSender<Started>,
    starts: mpsc::UnboundedReceiver<Started>,
    /// Set at shutdown: runs that have not started by then never do.
    hold: watch::Sender<bool>,
    started: usize,
    /// For a node of a shared store: until when its last heartbeat vouches for it, for the runs it
    /// took from the queue (see `RunControl::alive_until`).
    alive_until: Option<watch::Sender<Option<std::time::Instant>>>,
    /// For a store several hosts share: where the runs' events and receipts are mirrored.
    mirror: Option<crate::mirror::MirrorTx>,
    /// For a node of a shared store: the reaper that stops the runs' processes should this
    /// scheduler die outright.
    reaper: Option<crate::reaper::Reaper>,
    /// Ends of runs the store could not record when they ended: written again until it takes them
    /// (no other process settles a run whose owner is alive).
    ends_owed: Vec<(String, i64, RunEnd)>,
}

impl Supervisor {
    pub fn new(store: Arc<Mutex<Box<dyn Store>>>, clock: Arc<dyn Clock>, me: String) -> Self {
        let (starts_tx, starts) = mpsc::unbounded_channel();
        Self {
            store,
            clock,
            me,
            runs: JoinSet::new(),
            stops: HashMap::new(),
            starts_tx,
            starts,
            hold: watch::Sender::new(false),
            started: 0,
            alive_until: None,
            mirror: None,
            reaper: None,
            ends_owed: Vec::new(),
        }
    }

    /// How many runs this scheduler started.
    pub fn started(&self) -> usize {
        self.started
    }

    /// One call of the store, off the async workers (see [`crate::store::call`]).
    fn with_store<T>(&self, f: impl FnOnce(&mut dyn Store) -> Result<T>) -> Result<T> {
        crate::store::call(&self.store, f)
    }

    /// Starts a claimed run; its control (start reports, the shutdown hold) and stop channel are the
    /// supervisor's.
    pub fn start(&mut self, mut plan: RunPlan) {
        plan.control = RunControl {
            starts: Some(self.starts_tx.clone()),
            hold: Some(self.hold.subscribe()),
            alive_until: self.alive_until.as_ref().map(watch::Sender::subscribe),
            mirror: self.mirror.clone(),
        };
        let (stop_tx, stop) = watch::channel(None);
        self.stops.insert((plan.job_id.clone(), plan.seq), stop_tx);
        self.runs.spawn(execute(
            plan,
            Arc::clone(&self.store),
            Arc::clone(&self.clock),
            self.mirror.as_ref().map(crate::mirror::MirrorTx::observer),
            stop,
        ));
        self.started += 1;
    }

    /// Until when this node's last heartbeat vouches for it: the runs it took from the queue start
    /// only within it. Called only by a node of a shared store.
    pub fn set_alive_until(&mut self, until: Option<std::time::Instant>) {
        match &self.alive_until {
            Some(alive) => {
                alive.send_replace(until);
            }
            None => self.alive_until = Some(watch::Sender::new(until)),
        }
    }

    /// Mirrors the events and receipts of the runs started from now on (a store several hosts
    /// share).
    pub fn mirror_to(&mut self, mirror: crate::mirror::MirrorTx) {
        self.mirror = Some(mirror);
    }

    /// Tells `reaper` of every process group started from now on.
    pub fn reap_with(&mut self, reaper: crate::reaper::Reaper) {
        self.reaper = Some(reaper);
    }

    /// The reaper, to be told goodbye once the runs are over.
    pub fn take_reaper(&mut self) -> Option<crate::reaper::Reaper> {
        self.reaper.take()
    }

    /// How many of the runs this scheduler started are still in flight.
    pub fn in_flight_count(&self) -> usize {
        self.runs.len()
    }

    /// Stops every run in flight, recorded as `status`: a node that can no longer tell the store
    /// its runs are alive stops them before other nodes could take them for dead.
    pub fn stop_all(&mut self, status: RunStatus) {
        for stop in self.stops.values() {
            let _ = stop.send(Some(status));
        }
    }

    /// Overlap `replace`: stops the oldest run of the job that this scheduler started.
    pub fn stop_oldest(&mut self, job_id: &str) {
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

    /// An end the store could not record, to write again with each heartbeat (see
    /// [`Supervisor::record_owed_ends`]).
    pub fn owe_end(&mut self, job_id: String, seq: i64, end: RunEnd) {
        self.ends_owed.push((job_id, seq, end));
    }

    /// Stops one run of this scheduler as replaced by a newer one; false when it is not this
    /// scheduler's.
    pub fn replace_run(&mut self, job_id: &str, seq: i64) -> bool {
        let Some(stop) = self.stops.get(&(job_id.to_owned(), seq)) else {
            return false;
        };
        tracing::info!(run = %run_name(job_id, seq), "replaced by a newer run");
        let _ = stop.send(Some(RunStatus::Cancelled));
        true
    }

    /// Stops the runs of this scheduler that someone asked to cancel (`jobsctl cancel`, from any
    /// process): each is stopped as a timeout would stop it, and recorded cancelled.
    pub fn deliver_cancels(&mut self) {
        let requested = self.with_store(|s| s.cancels_for_owner(&self.me));
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

    /// The runs in flight by job, as the overlap policy must see them. A row of this scheduler's
    /// whose task has ended is not in flight, whatever the store says: its end could not be recorded
    /// (a full disk, a store error) and is settled later. Counting it would turn every slot of an
    /// outage into "skipped: overlap" with nothing running.
    pub fn in_flight(&self, active: &[RunRow]) -> HashMap<String, InFlight> {
        let mut in_flight: HashMap<String, InFlight> = HashMap::new();
        for run in active {
            let ours = run.owner == self.me;
            if ours && !self.stops.contains_key(&(run.job_id.clone(), run.seq)) {
                continue;
            }
            let tally = in_flight.entry(run.job_id.clone()).or_default();
            if run.status == RunStatus::Queued {
                tally.queued += 1;
            } else {
                tally.running += 1;
            }
        }
        in_flight
    }

    /// Waits for the next run to finish, recording the starts reported meanwhile; `None` at once when
    /// no run is in flight.
    pub async fn next_finished(&mut self) -> Option<std::result::Result<RunOutcome, JoinError>> {
        loop {
            tokio::select! {
                // Starts first: a run that started and ended at once has its start recorded before
                // its end is heard of.
                biased;
                Some(first) = self.starts.recv() => self.record_starts(first),
                finished = self.runs.join_next() => return finished,
            }
        }
    }

    /// Takes in a finished task: the run it ended, unless it never started (it gave its slot back).
    pub fn finished(
        &mut self,
        finished: std::result::Result<RunOutcome, JoinError>,
    ) -> Option<RunOutcome> {
        match finished {
            Ok(outcome) => {
                self.stops.remove(&(outcome.job_id.clone(), outcome.seq));
                if outcome.unrecorded {
                    self.ends_owed
                        .push((outcome.job_id.clone(), outcome.seq, outcome.end.clone()));
                }
                (!outcome.released).then_some(outcome)
            }
            Err(e) => {
                tracing::error!("a run task failed: {e}");
                None
            }
        }
    }

    /// Writes the ends the store could not record before, oldest first; those it still refuses wait
    /// for the next try.
    pub fn record_owed_ends(&mut self) {
        if self.ends_owed.is_empty() {
            return;
        }
        let owed = std::mem::take(&mut self.ends_owed);
        for (job_id, seq, end) in owed {
            match self.with_store(|s| s.finish_run(&job_id, seq, &end)) {
                Ok(()) => {
                    tracing::info!(run = %run_name(&job_id, seq), status = %end.status, "the run's end is recorded at last");
                }
                Err(e) => {
                    tracing::warn!(run = %run_name(&job_id, seq), "its end is still not recorded: {e}");
                    self.ends_owed.push((job_id, seq, end));
                }
            }
        }
    }

    /// Records the starts reported since the last batch (`first` and whatever else is waiting) in one
    /// commit: the store's start time is the real one, not the slot, and 200 runs starting at once
    /// cost one write.
    fn record_starts(&mut self, first: Started) {
        let mut batch = Vec::new();
        let mut processes = Vec::new();
        let more = std::iter::from_fn(|| self.starts.try_recv().ok());
        for started in std::iter::once(first).chain(more) {
            match started.process {
                Some(process) => processes.push(process),
                None => batch.push((started.job_id, started.seq, started.at)),
            }
        }
        if let Some(reaper) = &mut self.reaper {
            for process in &processes {
                reaper.watch(process);
            }
        }
        let recorded = self.with_store(|s| {
            s.record_starts(&batch)?;
            s.record_processes(&processes)
        });
        if let Err(e) = recorded {
            tracing::error!("{e}");
        }
    }

    /// Stops starting runs, lets those in flight finish within `grace`, then stops the rest as
    /// interrupted; `ended` hears of every run that ends meanwhile. Returns how many were stopped.
    pub async fn shut_down(
        &mut self,
        grace: Duration,
        shutdown: &mut Shutdown,
        mut ended: impl FnMut(&RunOutcome),
    ) -> usize {
        // Runs claimed ahead (or queued) that have not started never start now: they give their
        // slots back. Those running get the grace.
        self.hold.send_replace(true);
        self.log_shutdown(grace);
        let mut stopped_early = false;
        let mut cancels = tokio::time::interval(CANCEL_POLL_AT_SHUTDOWN);
        let waited = tokio::time::timeout(grace, async {
            loop {
                tokio::select! {
                    // A cancel asked for during the grace still stops its run.
                    _ = cancels.tick() => self.deliver_cancels(),
                    finished = self.next_finished() => match finished {
                        Some(finished) => {
                            if let Some(outcome) = self.finished(finished) {
                                ended(&outcome);
                            }
                        }
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
        while let Some(finished) = self.next_finished().await {
            if let Some(outcome) = self.finished(finished) {
                ended(&outcome);
            }
        }
        while let Ok(next) = self.starts.try_recv() {
            self.record_starts(next);
        }
        left
    }

    fn log_shutdown(&self, grace: Duration) {
        if self.stops.is_empty() {
            tracing::info!("shutting down: no run in flight");
            return;
        }
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
