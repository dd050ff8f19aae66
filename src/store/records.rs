//! The values that cross the store's interface: rows as read back, requests, and what became of them.
//! Backend-neutral: times are `DateTime<Utc>`, states and modes are enums; how a backend keeps them
//! (the SQLite columns hold milliseconds and words) is its own business and never shows here.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::error::Error;
use crate::policy::Catchup;
use crate::process::Identity;
use crate::run::{RunStatus, Trigger};
use crate::spec::model::Overlap;

/// The state an operator put a job in (`jobsctl pause`, `disable`...), as the store records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorState {
    Active,
    Paused,
    Disabled,
}

impl OperatorState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Paused, Self::Disabled]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for OperatorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: String,
    pub spec_path: String,
    pub spec_hash: String,
    /// The content hash of the file that produced `spec_json`.
    pub good_hash: Option<String>,
    /// The loader fingerprint that checked `spec_json` (see `spec::load::loader_fingerprint`).
    pub checked_by: Option<String>,
    pub paused_at: Option<DateTime<Utc>>,
    /// A catch-up requested by `jobsctl resume --catchup`, not carried out yet.
    pub catchup: Option<Catchup>,
    /// The last good spec, defaults filled in, as stored (JSON text).
    pub spec_json: Option<String>,
    /// The file's current problems (a JSON array), when it is invalid.
    pub load_error: Option<Value>,
    pub present: bool,
    pub state: OperatorState,
    pub state_reason: Option<String>,
    pub state_by: Option<String>,
    pub state_at: Option<DateTime<Utc>>,
    pub next_slot: Option<DateTime<Utc>>,
    /// Set when a schedule change drops `next_slot`: the last slot the job's records account for, from
    /// which the new schedule's slots are judged. Cleared by `enable` (nothing from a disabled time runs).
    pub last_slot: Option<DateTime<Utc>>,
    pub schedule_changed_at: Option<DateTime<Utc>>,
    pub run_counter: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub removed_at: Option<DateTime<Utc>>,
}

/// What a sync changed, by job id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    /// Jobs whose schedule changed: their pending slot was dropped and the last slot their records
    /// account for kept (`last_slot`), so that the new schedule's slots since then are judged.
    pub rescheduled: Vec<String>,
    pub invalid: Vec<String>,
    pub removed: Vec<String>,
}

impl SyncReport {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.updated.is_empty()
            && self.invalid.is_empty()
            && self.removed.is_empty()
    }
}

/// An operator's change of a job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateChange {
    Pause,
    /// Back to active; with `catchup`, the slots skipped while paused are owed.
    Resume {
        catchup: Option<Catchup>,
    },
    Disable,
    /// Back to active; the pending slot is recomputed from now, so nothing from the disabled time runs.
    Enable,
}

impl StateChange {
    /// Whether this change does anything to a job in state `before`.
    pub fn changes(self, before: OperatorState) -> bool {
        match self {
            Self::Resume { .. } => before == OperatorState::Paused,
            Self::Pause => before != OperatorState::Paused,
            Self::Disable => before != OperatorState::Disabled,
            Self::Enable => true,
        }
    }
}

/// A run as the store records it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub job_id: String,
    pub seq: i64,
    pub trigger: Trigger,
    pub slot: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub claimed_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub attempts: u32,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    pub spec_hash: Option<String>,
    pub owner: String,
    pub slot_count: u64,
    pub replay_of: Option<i64>,
    pub run_dir: Option<String>,
    /// The owner's start time (see `process::Identity`), with `boot_id`.
    pub owner_start: Option<u64>,
    pub boot_id: Option<String>,
    /// The latest attempt's process group and its leader's start time, once it started.
    pub pgid: Option<u32>,
    pub leader_start: Option<u64>,
    /// The spec's `kill_grace` the run was claimed with, once an attempt started.
    pub kill_grace: Option<Duration>,
    /// Settled as interrupted after its owner died, and its retry is not claimed yet.
    pub retry_owed: bool,
    /// The concurrency group the run was claimed in, whose limit it holds while in flight.
    pub group: Option<String>,
    /// For a triggered run: the upstream run(s), `job#seq`, comma-separated.
    pub upstream: Option<String>,
    /// Whether its owner has given no sign of life for longer than it promised (by the store's
    /// clock): what decides about a run owned on another host, whose process cannot be looked at
    /// from here. Always false in a store of one host.
    pub owner_silent: bool,
    /// The node of a shared store whose scheduler claimed and ran it (`None` for a manual run, and in
    /// a store of one host).
    pub node: Option<String>,
}

impl RunRow {
    /// The process that owns the run, as recorded when it claimed it.
    pub fn owner_identity(&self) -> Option<Identity> {
        let pid = self.owner.split_once('@')?.0.parse().ok()?;
        Some(Identity {
            pid,
            start: self.owner_start?,
            boot: self.boot_id.clone()?,
        })
    }

    /// The run as a notification reports it, from its record. No env value is in a record.
    pub fn facts(&self) -> crate::notifier::RunFacts {
        let duration_ms = match (self.started_at, self.finished_at) {
            (Some(start), Some(end)) => Some((end - start).num_milliseconds().max(0)),
            _ => None,
        };
        crate::notifier::RunFacts {
            job_id: self.job_id.clone(),
            run: self.seq,
            status: self.status,
            trigger: self.trigger,
            slot: self.slot,
            started_at: self.started_at,
            finished_at: self.finished_at,
            duration_ms,
            exit_code: self.exit_code,
            signal: self.signal,
            error: self
                .error_code
                .clone()
                .map(|code| crate::notifier::ErrorFacts {
                    code,
                    message: self.message.clone().unwrap_or_default(),
                }),
            attempts: self.attempts,
            run_dir: self.run_dir.clone(),
            output: Vec::new(),
        }
    }

    /// The leader of the latest attempt's process group, as recorded when it started.
    pub fn leader_identity(&self) -> Option<Identity> {
        Some(Identity {
            pid: self.pgid?,
            start: self.leader_start?,
            boot: self.boot_id.clone()?,
        })
    }
}

/// An attempt's process group, recorded so that whoever settles the run after its owner died can stop
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptProcess {
    pub job_id: String,
    pub seq: i64,
    pub leader: Identity,
    pub kill_grace: Duration,
}

/// What a process asks for when it wants to start a run outside a tick (`jobsctl run`, `replay`).
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    pub job_id: &'a str,
    pub trigger: Trigger,
    pub slot: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub spec_hash: &'a str,
    /// `pid@host` of the process that will run it.
    pub owner: &'a str,
    pub now: DateTime<Utc>,
    pub max_instances: u32,
    pub overlap: Overlap,
    pub replay_of: Option<i64>,
    pub shared: SharedLimits,
    /// The run's end triggers no downstream run (`jobsctl run --no-trigger`).
    pub no_trigger: bool,
}

/// The limits a claim must respect besides its job's own `max_instances`: those it shares with other
/// jobs, its group's and the home's, from `config.yaml`. Checked inside the claim transaction, so
/// they hold across every process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedLimits {
    /// The job's group and the group's `max_running`.
    pub group: Option<(String, u32)>,
    /// The home's `max_running`.
    pub home: Option<u32>,
}

/// Which shared limit a claim would go past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitReached {
    Group {
        name: String,
        running: i64,
        max: u32,
    },
    Home {
        running: i64,
        max: u32,
    },
}

impl LimitReached {
    /// The reason a slot skipped for it is recorded with.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Group { .. } => "group",
            Self::Home { .. } => "max_running",
        }
    }

    /// The message a slot skipped for it is recorded with.
    pub fn message(&self) -> String {
        match self {
            Self::Group { name, running, max } => format!(
                "skipped: group {name} had {running} run(s) in flight, its max_running is {max}"
            ),
            Self::Home { running, max } => {
                format!(
                    "skipped: the home had {running} run(s) in flight, its max_running is {max}"
                )
            }
        }
    }

    /// The error a manual claim refused by it fails with (`group_full`).
    pub fn into_error(self, job_id: &str) -> Error {
        let (group, running, max) = match self {
            Self::Group { name, running, max } => (Some(name), running, max),
            Self::Home { running, max } => (None, running, max),
        };
        Error::GroupFull {
            id: job_id.to_owned(),
            group,
            running,
            max,
        }
    }
}

/// The owner start time and boot to record with a claim by `owner`. A run is always claimed by the
/// process that runs it, so the identity is this process's; an owner naming another pid (a test, a
/// benchmark) gets none, and its liveness is judged by the run's lock alone.
pub(crate) fn claim_identity(owner: &str) -> (Option<i64>, Option<String>) {
    let ours = owner
        .split_once('@')
        .and_then(|(pid, _)| pid.parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    match Identity::own().filter(|_| ours) {
        Some(own) => (i64::try_from(own.start).ok(), Some(own.boot)),
        None => (None, None),
    }
}

/// A downstream run owed by an upstream run's end (`after:`, or a complete `after_all:`), not yet
/// taken by a scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedTrigger {
    /// The downstream job.
    pub job_id: String,
    /// The upstream run whose end owes it (for a fan-in, the one that completed it).
    pub upstream_job: String,
    pub upstream_seq: i64,
    /// Every upstream run it stands for, `job#seq`, comma-separated.
    pub upstreams: String,
    pub created_at: DateTime<Utc>,
}

/// The outcome of a claim that was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// The run may start now.
    Running(i64),
    /// The run waits behind the ones in flight (overlap `queue`); see `RunStore::start_queued`.
    Queued(i64),
}

impl Claimed {
    pub fn seq(self) -> i64 {
        match self {
            Self::Running(seq) | Self::Queued(seq) => seq,
        }
    }
}

/// What `RunStore::start_queued` found.
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

/// One record a scheduler tick writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickRecord {
    /// A run to start (or to queue). `slot` is `None` for catch-up runs of slots already recorded.
    Run {
        job_id: String,
        trigger: Trigger,
        slot: Option<DateTime<Utc>>,
        due_at: Option<DateTime<Utc>>,
        first_slot: Option<DateTime<Utc>>,
        last_slot: Option<DateTime<Utc>>,
        count: u64,
        spec_hash: String,
        queued: bool,
        /// For a retry of an interrupted run: the run it repeats.
        retry_of: Option<i64>,
        /// The job's limit, checked again inside the transaction: a manual run may have claimed an
        /// instance since the scheduler counted.
        max_instances: u32,
        /// The limits shared with other jobs, checked only inside the transaction (the planner
        /// knows one job at a time); one that is full queues the run (overlap `queue`) or records
        /// the slot skipped.
        shared: SharedLimits,
        overlap: Overlap,
        /// For a run triggered by upstream runs: the trigger it takes, in the same transaction,
        /// so it runs once.
        upstream: Option<OwedTrigger>,
    },
    /// Slots that did not run, and why.
    Skipped {
        job_id: String,
        first_slot: DateTime<Utc>,
        last_slot: DateTime<Utc>,
        count: u64,
        reason: String,
    },
    /// Slots claimed past their misfire grace.
    Missed {
        job_id: String,
        first_slot: DateTime<Utc>,
        last_slot: DateTime<Utc>,
        count: u64,
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

    /// A run record of a slot as the skipped record the store made of it when a shared limit was
    /// full (`reason`); `None` for anything else.
    pub fn refused(&self, reason: &str) -> Option<TickRecord> {
        match self {
            Self::Run {
                job_id,
                slot: Some(slot),
                first_slot,
                count,
                ..
            } => Some(Self::Skipped {
                job_id: job_id.clone(),
                first_slot: first_slot.unwrap_or(*slot),
                last_slot: *slot,
                count: *count,
                reason: reason.to_owned(),
            }),
            _ => None,
        }
    }
}

/// What became of one record of a tick.
#[derive(Debug)]
pub enum TickResult<T = ()> {
    /// Recorded with this seq; for a run, with what `prepare` made (its locked directory).
    /// `queued` says whether a run waits for an instance (asked for, or because the job was full).
    Recorded {
        seq: i64,
        prepared: Option<T>,
        queued: bool,
    },
    /// The slot already has a record: it was claimed before (never twice).
    AlreadyClaimed,
    /// Not run: a limit shared with other jobs was full, or (for a triggered run) the job was
    /// paused, disabled or full; recorded skipped with this seq and reason.
    Refused { seq: i64, reason: &'static str },
    /// The run directory could not be made; the run is recorded as failed with this error.
    Failed { seq: i64, error: Error },
}

/// Which runs `jobsctl history` lists.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub job_id: Option<String>,
    /// Any of these statuses; empty means every status.
    pub statuses: Vec<RunStatus>,
    pub since: Option<DateTime<Utc>>,
    /// Only runs numbered below this (of the one job given): the next page.
    pub before: Option<i64>,
    /// Only runs triggered by this upstream run (`job#seq`).
    pub upstream: Option<String>,
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

/// A run as retention weighs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainedRun {
    pub seq: i64,
    /// When it finished, or for a run that has not, when it was claimed.
    pub at: DateTime<Utc>,
    pub in_flight: bool,
}

/// The message recorded on a run whose owner died without finishing it.
pub const OWNER_GONE: &str = "the process running it is gone: no one holds its run lock";

/// Someone's request to cancel a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    pub job_id: String,
    pub seq: i64,
    pub requested_at: DateTime<Utc>,
    /// user@host.
    pub by: String,
    pub reason: Option<String>,
}

impl CancelRequest {
    /// How the end of a run cancelled on this request is worded in the store, the receipt and events.
    pub fn message(&self) -> String {
        match &self.reason {
            Some(reason) => format!("cancelled by {}: {reason}", self.by),
            None => format!("cancelled by {}", self.by),
        }
    }
}

/// What became of asking to cancel one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// Recorded now; the owner stops the run when it sees it.
    New,
    /// Someone asked before; that request (its author and reason) stands.
    Already(CancelRequest),
    /// The run ended (or never was) before the request could be recorded.
    NotInFlight(Option<RunStatus>),
}

/// The scheduler that owns the home, as its owner row says: who, since when, and its last heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: i64,
    pub host: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

/// Slots of a tick that did not become a run, recorded as one row standing for `first..=last`
/// (`status` skipped or missed), with why: what both backends insert for a skipped or missed record
/// and for a slot refused by a full shared limit.
pub(in crate::store) struct SlotRecord<'a> {
    pub job_id: &'a str,
    pub seq: i64,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    pub count: u64,
    pub status: &'static str,
    pub error_code: &'a str,
    pub message: &'a str,
}

/// How long a run's owner may stay silent before a process on another host takes the run for dead,
/// when the owner promised nothing (a manual run): as long as Kubernetes waits before it evicts the
/// pods of a node it lost. The PostgreSQL store's run columns spell the same number.
pub const DEFAULT_DEAD_AFTER: std::time::Duration = std::time::Duration::from_secs(300);

/// A scheduler of a store shared by several hosts, as its row in `nodes` says (times: the store's
/// clock).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeRow {
    pub node: String,
    /// `pid@host` of the scheduler that holds the name.
    pub owner: String,
    pub version: String,
    pub labels: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// How long the node may stay silent before its runs are taken for dead: its own promise, kept
    /// by stopping them itself first.
    pub dead_after_ms: i64,
    pub runs_in_flight: i64,
    /// The fingerprint of the specs and config in its home, as last loaded.
    pub spec_hash: Option<String>,
    /// How old its heartbeat is by the store's clock.
    pub heartbeat_age_ms: i64,
}

/// What a node says of itself when it joins, and with every heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeBeat {
    pub node: String,
    pub owner: String,
    pub version: String,
    pub labels: Vec<String>,
    pub dead_after_ms: i64,
    pub runs_in_flight: i64,
    pub spec_hash: Option<String>,
}

/// The leadership as the store records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaderRow {
    pub node: String,
    pub term: i64,
    pub elected_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// How long the lease has left by the store's clock; zero or less once it ran out (a leader
    /// that died, or stopped renewing, without resigning).
    pub remaining_ms: i64,
}

/// A lease held: the term it was granted in, and whether this call granted it (an election) or
/// renewed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub term: i64,
    pub elected: bool,
}

/// The leadership a tick's claims are made under: the store commits them only while `node` holds
/// the lease in `term`, so a leader that slept through its lease claims nothing when it wakes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub node: String,
    pub term: i64,
}

/// A config text that passed every check, and its content hash: the home's last good `config.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptConfig {
    pub hash: String,
    pub source: String,
}

/// A notification taken from the outbox for one delivery try, leased to the taker until its lease
/// ends (then anyone may take it again, with the same delivery id).
#[derive(Debug, Clone)]
pub struct DueNotification {
    pub delivery_id: String,
    pub run: Option<(String, i64)>,
    pub notifier: crate::spec::model::NotifierSpec,
    pub endpoint: String,
    pub body: crate::notifier::Notification,
    /// Tries made before this one.
    pub tries: u32,
}

/// How one delivery try went, and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryTry {
    pub at: DateTime<Utc>,
    pub delivered: bool,
    pub http_status: Option<u16>,
    /// Why it failed (short, URLs masked); `None` when delivered.
    pub detail: Option<String>,
    pub took_ms: u64,
    /// `None`: done (delivered, or given up); `Some(at)`: try again at `at`.
    pub next_try_at: Option<DateTime<Utc>>,
}

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    GivenUp,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::GivenUp => "given_up",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::GivenUp]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A notification as `show` reports it: where it stands and every try so far. Its target is shown
/// masked (`notifier::mask_url`), never as stored.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationRecord {
    pub delivery_id: String,
    pub event: String,
    /// The notifier, as people may see it: `webhook https://hooks.example.com/…`.
    pub notifier: String,
    /// The run it is about; `None` for an event of the home.
    pub job_id: Option<String>,
    pub run: Option<i64>,
    pub state: DeliveryState,
    #[serde(serialize_with = "crate::clock::as_rfc3339::instant")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::clock::as_rfc3339::option")]
    pub next_try_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::clock::as_rfc3339::option")]
    pub done_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub tries: Vec<TryRecord>,
}

/// One delivery try as recorded: the `notify_sent` or `notify_failed` event of a run.
#[derive(Debug, Clone, Serialize)]
pub struct TryRecord {
    pub event: &'static str,
    #[serde(serialize_with = "crate::clock::as_rfc3339::instant")]
    pub at: DateTime<Utc>,
    pub http_status: Option<u16>,
    pub detail: Option<String>,
    pub took_ms: u64,
    pub by: String,
}

/// When a job last succeeded and last failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastEnds {
    pub job_id: String,
    pub success: Option<DateTime<Utc>>,
    pub failure: Option<DateTime<Utc>>,
}

/// The outbox at a glance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: u64,
    pub given_up: u64,
}

/// The owner of a run the leader of a shared store claimed for any node to execute: no process owns
/// it until a node's worker takes it (`QueueStore::take_runs`). Such a run is never settled as dead.
pub const NO_OWNER: &str = "";

/// What a node's worker asks of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Take<'a> {
    /// `pid@host` of the scheduler that takes them, and its node's name.
    pub owner: &'a str,
    pub node: &'a str,
    /// The node's labels: a run whose spec asks for labels (`run.nodes`) is taken only by a node
    /// with every one of them.
    pub labels: &'a [String],
    /// At most this many runs.
    pub limit: usize,
    /// The node's promise: its runs are taken for dead only after this long without a sign of life.
    pub dead_after: Duration,
}

/// A run a worker took from the queue: its row (now owned by the worker, with the directory
/// `prepare` made), what the row's other columns say of the slots it stands for, and the spec it
/// was claimed with.
#[derive(Debug, Clone)]
pub struct TakenRun {
    pub row: RunRow,
    pub first_slot: Option<DateTime<Utc>>,
    pub last_slot: Option<DateTime<Utc>>,
    /// `None` when the version it was claimed with is no longer the job's good one and was not
    /// stored with it (a store written by an older `jobs`).
    pub spec_json: Option<String>,
    /// When it was taken, by the store's clock: what its lateness is judged by (the leader's due
    /// time and this node's clock need not agree).
    pub taken_at: DateTime<Utc>,
}
