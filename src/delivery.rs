//! Delivering the outbox: the courier takes due notifications from the store, makes each try on a
//! thread of its own, and records how it went (and when to try again). The scheduler runs one for the
//! whole home; a manual `jobsctl run` with no scheduler delivers its own runs' notifications for a
//! bounded time. Must not decide what is owed (the store writes that with the event) nor hold a run,
//! a claim or the scheduler's loop while an endpoint takes its time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::artifacts::events::{EventKind, read_events};
use crate::clock::Clock;
use crate::error::Result;
use crate::home::Home;
use crate::notifier::deliver::{self, run_uuid, uuid_from};
use crate::notifier::{NextTry, Notification, Outcome, OutputLine, PingSignal, next_try};
use crate::spec::model::{HttpUrl, NotifierSpec, NotifyTarget};
use crate::store::{DeliveryTry, DueNotification, Store};

/// Tries in flight at once to one endpoint: a slow or hung endpoint holds at most these.
const PER_ENDPOINT: usize = 2;

/// Tries in flight at once in all.
const IN_FLIGHT: usize = 16;

/// How often the courier looks for due notifications when nothing woke it: notifications written by
/// other processes (a manual run while the scheduler runs) and retries coming due.
const POLL: Duration = Duration::from_millis(500);

/// How often a manual run's courier looks for its runs' due notifications.
const OWN_POLL: Duration = Duration::from_millis(100);

/// How often the home's `heartbeat_ping` is sent.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(60);

/// The timeout of one heartbeat ping.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the courier's thread hears.
enum Message {
    /// Something may be due now (a run ended, a slot was recorded missed).
    Wake,
    /// The home's heartbeat URL, as of the last reload.
    Heartbeat(Option<HttpUrl>),
    /// A try ended.
    Tried(Tried),
    /// A heartbeat ping ended.
    Pinged(Outcome),
    /// Stop taking notifications; wait for the tries in flight until the instant given. To an
    /// [`OwnCourier`]: its runs ended; deliver what they owe until the instant given.
    Stop(Instant),
    /// To an [`OwnCourier`]: the notifications of this run are its to deliver.
    Run(String, i64),
}

/// How one try went, as its thread reports it.
struct Tried {
    delivery_id: String,
    endpoint: String,
    tries_before: u32,
    started: DateTime<Utc>,
    took: Duration,
    outcome: Outcome,
}

/// The scheduler's courier: a thread of its own with a store connection of its own, so that no
/// delivery ever waits on the loop's store lock, nor the loop on a delivery.
pub struct Courier {
    tx: Sender<Message>,
    thread: Option<JoinHandle<()>>,
}

impl Courier {
    /// Starts delivering the home's outbox as `by`, and pinging `heartbeat` every minute.
    pub fn start(
        home: &Home,
        by: String,
        clock: Arc<dyn Clock>,
        heartbeat: Option<HttpUrl>,
    ) -> Result<Self> {
        let store = crate::store::open_home(home)?;
        let (tx, rx) = mpsc::channel();
        let mut engine = Engine::new(store, by, clock, home, tx.clone(), rx);
        engine.heartbeat = heartbeat;
        let thread = std::thread::Builder::new()
            .name("courier".into())
            .spawn(move || engine.serve())
            .map_err(|e| crate::error::Error::Internal {
                message: format!("the notification courier could not start: {e}"),
            })?;
        Ok(Self {
            tx,
            thread: Some(thread),
        })
    }

    /// Looks for due notifications now rather than at the next poll.
    pub fn wake(&self) {
        let _ = self.tx.send(Message::Wake);
    }

    /// The heartbeat URL changed (the config was reloaded).
    pub fn set_heartbeat(&self, url: Option<HttpUrl>) {
        let _ = self.tx.send(Message::Heartbeat(url));
    }

    /// Stops: takes nothing more, waits up to `grace` for the tries in flight (so that what was owed
    /// just before, `scheduler_stopped` among it, can still go out), then gives back the leases of
    /// anything left, for the next scheduler.
    pub fn stop(mut self, grace: Duration) {
        let _ = self.tx.send(Message::Stop(Instant::now() + grace));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Courier {
    fn drop(&mut self) {
        let _ = self.tx.send(Message::Stop(Instant::now()));
    }
}

/// What a manual run's own delivery came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnDelivery {
    pub delivered: usize,
    pub failed: usize,
    /// Left in the outbox for the next scheduler (or the next manual run).
    pub left: u64,
}

/// A manual run's courier, when no scheduler runs: delivers the notifications of the runs it is
/// given while they execute (a `started` ping goes out when the run starts, not when it ends), then,
/// told the runs ended, for at most a bounded time more. Whatever is still pending when it stops
/// stays in the outbox (its leases given back) for whoever delivers next.
pub struct OwnCourier {
    tx: Sender<Message>,
    thread: JoinHandle<OwnDelivery>,
}

/// Stops an [`OwnCourier`] at once, from anywhere (a second Ctrl-C while it finishes).
#[derive(Clone)]
pub struct Abandon(Sender<Message>);

impl Abandon {
    pub fn now(&self) {
        let _ = self.0.send(Message::Stop(Instant::now()));
    }
}

impl OwnCourier {
    pub fn start(home: &Home, by: &str, clock: Arc<dyn Clock>) -> Result<Self> {
        let store = crate::store::open_home(home)?;
        let (tx, rx) = mpsc::channel();
        let mut engine = Engine::new(store, by.to_owned(), clock, home, tx.clone(), rx);
        let thread = std::thread::Builder::new()
            .name("own-courier".into())
            .spawn(move || engine.serve_own())
            .map_err(|e| crate::error::Error::Internal {
                message: format!("delivering the run's notifications could not start: {e}"),
            })?;
        Ok(Self { tx, thread })
    }

    /// The notifications of run `job_id#seq` are this courier's to deliver.
    pub fn deliver_for(&self, job_id: &str, seq: i64) {
        let _ = self.tx.send(Message::Run(job_id.to_owned(), seq));
    }

    pub fn abandoner(&self) -> Abandon {
        Abandon(self.tx.clone())
    }

    /// The runs ended: delivers what they still owe for at most `budget` (less when all is
    /// delivered, or when abandoned), and says how it went.
    pub fn finish(self, budget: Duration) -> OwnDelivery {
        let _ = self.tx.send(Message::Stop(Instant::now() + budget));
        self.thread.join().unwrap_or_default()
    }
}

/// The delivering itself, shared by the courier's thread and a manual run's [`OwnCourier`].
struct Engine {
    store: Box<dyn Store>,
    by: String,
    clock: Arc<dyn Clock>,
    home_root: PathBuf,
    /// Tries in flight, by endpoint.
    busy: HashMap<String, usize>,
    tx: Sender<Message>,
    rx: Receiver<Message>,
    heartbeat: Option<HttpUrl>,
    next_heartbeat: Instant,
    heartbeat_in_flight: bool,
}

impl Engine {
    fn new(
        store: Box<dyn Store>,
        by: String,
        clock: Arc<dyn Clock>,
        home: &Home,
        tx: Sender<Message>,
        rx: Receiver<Message>,
    ) -> Self {
        Self {
            store,
            by,
            clock,
            home_root: home.root().to_path_buf(),
            busy: HashMap::new(),
            tx,
            rx,
            heartbeat: None,
            next_heartbeat: Instant::now(),
            heartbeat_in_flight: false,
        }
    }

    /// The courier's loop: settle what ended, take what is due, ping the heartbeat, wait.
    fn serve(&mut self) {
        let mut stopping: Option<Instant> = None;
        loop {
            if let Some(until) = stopping {
                if self.in_flight() == 0 || Instant::now() >= until {
                    break;
                }
            } else {
                self.dispatch(None);
                self.ping_heartbeat();
            }
            let wait = match stopping {
                Some(until) => until.saturating_duration_since(Instant::now()),
                // Without a heartbeat URL its instant means nothing: waiting for it would spin.
                None if self.heartbeat.is_none() => POLL,
                None => POLL.min(
                    self.next_heartbeat
                        .saturating_duration_since(Instant::now()),
                ),
            };
            match self.next_message(wait) {
                Some(Message::Tried(tried)) => self.settle(tried),
                Some(Message::Pinged(outcome)) => self.heartbeat_sent(&outcome),
                Some(Message::Heartbeat(url)) => {
                    if url != self.heartbeat {
                        self.next_heartbeat = Instant::now();
                    }
                    self.heartbeat = url;
                }
                Some(Message::Stop(until)) => {
                    stopping = Some(stopping.map_or(until, |before| before.min(until)));
                    // Whatever was owed up to now may still go out within the grace.
                    if Instant::now() < until {
                        self.dispatch(None);
                    }
                }
                Some(Message::Wake | Message::Run(..)) | None => {}
            }
        }
        self.release();
    }

    /// An [`OwnCourier`]'s loop: deliver its runs' notifications as they come due (looking every
    /// [`OWN_POLL`]: the runs are in this process, and a `started` ping should not wait), until told
    /// the runs ended and then until all is delivered or the instant given.
    fn serve_own(&mut self) -> OwnDelivery {
        let mut runs: Vec<(String, i64)> = Vec::new();
        let mut until: Option<Instant> = None;
        let mut report = OwnDelivery::default();
        loop {
            for (job, seq) in &runs {
                self.dispatch(Some((job, *seq)));
            }
            if let Some(until) = until {
                let done = self.in_flight() == 0 && self.pending_of(&runs) == 0;
                if done || Instant::now() >= until {
                    break;
                }
            }
            let wait = until.map_or(OWN_POLL, |until| {
                until
                    .saturating_duration_since(Instant::now())
                    .min(OWN_POLL)
            });
            match self.next_message(wait) {
                Some(Message::Tried(tried)) => {
                    if tried.outcome.is_delivered() {
                        report.delivered += 1;
                    } else {
                        report.failed += 1;
                    }
                    self.settle(tried);
                }
                Some(Message::Run(job, seq)) => runs.push((job, seq)),
                Some(Message::Stop(at)) => until = Some(until.map_or(at, |before| before.min(at))),
                Some(Message::Wake | Message::Heartbeat(_) | Message::Pinged(_)) | None => {}
            }
        }
        self.release();
        report.left = self.pending_of(&runs);
        report
    }

    /// The next message, within `wait`; `None` when none came.
    fn next_message(&self, wait: Duration) -> Option<Message> {
        // Never disconnected: the engine holds a sender of its own.
        self.rx.recv_timeout(wait).ok()
    }

    fn in_flight(&self) -> usize {
        self.busy.values().sum()
    }

    /// Takes what is due (of one run only, when `run` says so), as many as the limits allow, and
    /// starts a try of each on its own thread.
    fn dispatch(&mut self, run: Option<(&str, i64)>) {
        let room = IN_FLIGHT.saturating_sub(self.in_flight());
        if room == 0 {
            return;
        }
        let now = self.clock.now();
        let mut taking = self.busy.clone();
        let mut admit = |endpoint: &str| {
            let count = taking.entry(endpoint.to_owned()).or_insert(0);
            if *count >= PER_ENDPOINT {
                return false;
            }
            *count += 1;
            true
        };
        let due = match self
            .store
            .take_due(&self.by, now, run, room, PER_ENDPOINT, &mut admit)
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!("taking due notifications failed: {e}");
                return;
            }
        };
        for notification in due {
            let endpoint = notification.endpoint.clone();
            *self.busy.entry(endpoint.clone()).or_insert(0) += 1;
            let tx = self.tx.clone();
            let clock = Arc::clone(&self.clock);
            let home_root = self.home_root.clone();
            let spawned = std::thread::Builder::new()
                .name("notify".into())
                .spawn(move || {
                    let started = clock.now();
                    let began = Instant::now();
                    let outcome = try_once(&notification, &home_root);
                    let _ = tx.send(Message::Tried(Tried {
                        delivery_id: notification.delivery_id,
                        endpoint: notification.endpoint,
                        tries_before: notification.tries,
                        started,
                        took: began.elapsed(),
                        outcome,
                    }));
                });
            if let Err(e) = spawned {
                // Its lease runs out and it is taken again; nothing is lost. Its place at the
                // endpoint is free again, or the endpoint would look busy for ever.
                tracing::warn!("a notification try could not start: {e}");
                self.free_place(&endpoint);
            }
        }
    }

    /// Records a try that ended, and what follows it.
    fn settle(&mut self, tried: Tried) {
        self.free_place(&tried.endpoint);
        let ended = tried.started
            + chrono::Duration::from_std(tried.took).unwrap_or(chrono::Duration::zero());
        let tries = tried.tries_before + 1;
        let took_ms = u64::try_from(tried.took.as_millis()).unwrap_or(u64::MAX);
        let record = match &tried.outcome {
            Outcome::Delivered { http_status } => DeliveryTry {
                at: tried.started,
                delivered: true,
                http_status: *http_status,
                detail: None,
                took_ms,
                next_try_at: None,
            },
            Outcome::Failed {
                reason,
                retryable,
                http_status,
            } => {
                let next = match next_try(tries, ended, *retryable) {
                    NextTry::At(at) => Some(at),
                    NextTry::GiveUp => None,
                };
                match next {
                    Some(at) => tracing::warn!(
                        delivery = %tried.delivery_id,
                        "a notification was not delivered ({reason}); trying again at {}",
                        crate::clock::rfc3339(at)
                    ),
                    None => tracing::error!(
                        delivery = %tried.delivery_id,
                        "a notification was given up after {tries} tries: {reason}"
                    ),
                }
                DeliveryTry {
                    at: tried.started,
                    delivered: false,
                    http_status: *http_status,
                    detail: Some(reason.clone()),
                    took_ms,
                    next_try_at: next,
                }
            }
        };
        if let Err(e) = self.store.record_try(&tried.delivery_id, &self.by, &record) {
            // The lease runs out and the notification is tried again: at least once, never zero.
            tracing::warn!(delivery = %tried.delivery_id, "recording a notification try failed: {e}");
        }
    }

    /// One try at `endpoint` is no longer in flight.
    fn free_place(&mut self, endpoint: &str) {
        if let Some(count) = self.busy.get_mut(endpoint) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.busy.remove(endpoint);
            }
        }
    }

    /// Sends the heartbeat ping when one is due and none is in flight.
    fn ping_heartbeat(&mut self) {
        let Some(url) = self.heartbeat.clone() else {
            return;
        };
        if self.heartbeat_in_flight || Instant::now() < self.next_heartbeat {
            return;
        }
        self.heartbeat_in_flight = true;
        self.next_heartbeat = Instant::now() + HEARTBEAT_EVERY;
        let tx = self.tx.clone();
        let id = uuid_from(&format!("heartbeat:{}:{}", self.by, self.clock.now()));
        let spawned = std::thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || {
                let outcome =
                    deliver::ping(&url, PingSignal::Success, None, &id, HEARTBEAT_TIMEOUT);
                let _ = tx.send(Message::Pinged(outcome));
            });
        if spawned.is_err() {
            self.heartbeat_in_flight = false;
        }
    }

    fn heartbeat_sent(&mut self, outcome: &Outcome) {
        self.heartbeat_in_flight = false;
        if let Outcome::Failed { reason, .. } = outcome {
            tracing::warn!("the heartbeat ping failed: {reason}");
        }
    }

    /// Of `runs`' notifications, how many are pending.
    fn pending_of(&self, runs: &[(String, i64)]) -> u64 {
        runs.iter()
            .map(|(job, seq)| self.store.pending_of_run(job, *seq).unwrap_or(0))
            .sum()
    }

    /// Gives back the leases of what was taken and not tried, for whoever delivers next.
    fn release(&mut self) {
        if let Err(e) = self.store.release_leases(&self.by) {
            tracing::warn!("giving back notification leases failed: {e}");
        }
    }
}

/// One try of `due`, by its notifier's kind.
fn try_once(due: &DueNotification, home_root: &Path) -> Outcome {
    try_notifier(&due.notifier, &due.body, home_root)
}

/// One try of sending `body` through `notifier`, bounded by the notifier's timeout: what the courier
/// makes of a due notification, and what `jobsctl notify test` sends directly. A command runs in
/// the home; a webhook quotes its run's output when it asks to.
pub fn try_notifier(notifier: &NotifierSpec, body: &Notification, home_root: &Path) -> Outcome {
    let timeout = notifier.timeout.as_duration();
    match &notifier.target {
        NotifyTarget::Webhook {
            url,
            format,
            include_output,
        } => {
            let body = with_output(body, *include_output, home_root);
            deliver::webhook(url, &body, *format, timeout)
        }
        NotifyTarget::Command { argv } => deliver::command(argv, home_root, body, timeout),
        NotifyTarget::Ping { url } => {
            let Some(signal) = PingSignal::for_event(body.event, body.exit_code) else {
                // The fan-out owes a ping only for events with a signal; one without is done.
                return Outcome::Delivered { http_status: None };
            };
            let rid = match (&body.job_id, body.run) {
                (Some(job), Some(run)) => Some(run_uuid(job, run)),
                _ => None,
            };
            deliver::ping(url, signal, rid.as_deref(), &body.delivery_id, timeout)
        }
    }
}

/// `body` with the last `lines` lines of its run's output, read from the run's `events.jsonl` now
/// (the outbox never holds a copy of a run's output).
fn with_output(body: &Notification, lines: Option<u32>, home_root: &Path) -> Notification {
    let Some(lines) = lines.filter(|n| *n > 0) else {
        return body.clone();
    };
    let mut body = body.clone();
    let output = body
        .run_dir
        .as_deref()
        .map(|dir| last_output(&home_root.join(dir).join("events.jsonl"), lines))
        .unwrap_or_default();
    body.output = Some(output);
    body
}

/// The last `lines` output lines recorded in `events`; none when it cannot be read (a pruned run).
fn last_output(events: &Path, lines: u32) -> Vec<OutputLine> {
    let Ok((events, _)) = read_events(events) else {
        return Vec::new();
    };
    let mut output: Vec<OutputLine> = events
        .into_iter()
        .filter_map(|event| match event.kind {
            EventKind::Output { stream, line, .. } => Some(OutputLine { stream, line }),
            _ => None,
        })
        .collect();
    let keep = usize::try_from(lines).unwrap_or(usize::MAX);
    output.drain(..output.len().saturating_sub(keep));
    output
}
