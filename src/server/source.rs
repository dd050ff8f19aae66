//! What the server asks of the home it serves: the JSON of each read route (the same documents as
//! `--json`), two artifacts of a run, a run's events from an offset on, the gauges of `/metrics`,
//! whether it is ready. The CLI implements it over a home; the server knows no store, spec or
//! command. Every method may block: the server calls them from blocking threads.

use crate::error::Result;
use crate::metrics::Gauges;
use crate::run::RunStatus;

/// A read route of the JSON API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/api/overview`: every job with its state, schedule in words, next slot, last outcomes and
    /// failure streak; the document the dashboard's job list is drawn from.
    Overview,
    /// `/api/jobs`: as `jobsctl --json list`.
    Jobs,
    /// `/api/jobs/<id>`: as `jobsctl --json show <id>`.
    Job { id: String },
    /// `/api/jobs/<id>/runs?status=&limit=&before=`: as `jobsctl --json history <id>`.
    Runs {
        id: String,
        statuses: Vec<String>,
        limit: Option<u32>,
        before: Option<i64>,
    },
    /// `/api/jobs/<id>/runs/<n>`: as `jobsctl --json show <id> --run <n>`.
    Run { id: String, seq: i64 },
    /// `/api/jobs/<id>/runs/<n>/events`: the run's `events.jsonl`, whole lines as written.
    Events { id: String, seq: i64 },
    /// `/api/graph`: as `jobsctl --json graph`, which jobs' runs trigger which.
    Graph,
}

/// What a route answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// An HTTP status and the JSON envelope (`{"ok":...,"data":...}` or `{"ok":false,"error":...}`).
    Json(u16, serde_json::Value),
    /// JSON lines, one event each.
    Lines(String),
}

/// The artifacts of a run the dashboard shows whole (the events it streams).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact {
    /// `run_receipt.json`.
    Receipt,
    /// `summary.md`.
    Summary,
}

/// A run's event lines from a byte offset of its `events.jsonl` on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventChunk {
    /// Whole lines only, as written.
    pub lines: Vec<String>,
    /// Where the next read starts: just after the last whole line.
    pub offset: u64,
    /// The run's last event (`run_finished`) is among what was read up to `offset`.
    pub finished: bool,
}

pub trait Source: Send + Sync + 'static {
    fn answer(&self, route: &Route) -> Answer;

    /// An artifact of run `id#seq`, `None` when the run has none (yet, or any more).
    fn artifact(&self, id: &str, seq: i64, which: Artifact) -> Result<Option<String>>;

    /// The event lines of run `id#seq` written from `offset` on. The server asked for the run by
    /// [`Route::Run`] first, so `id` names a job.
    fn events_from(&self, id: &str, seq: i64, offset: u64) -> Result<EventChunk>;

    /// The status of run `id#seq` as the store has it now, a run whose owner died settled first;
    /// `None` when there is no such run (any more). What decides whether a run is live: its
    /// `events.jsonl` may never get a `run_finished` line (a skipped or missed slot has no events, a
    /// settled run's directory may be unwritable), but its record always ends.
    fn run_status(&self, id: &str, seq: i64) -> Result<Option<RunStatus>>;

    /// The home as the store has it now, for `/metrics`.
    fn gauges(&self) -> Result<Gauges>;

    /// Whether the server can do its job: the store answers (and, for a scheduler, it owns the home
    /// and beats). `Err` says why not.
    fn ready(&self) -> std::result::Result<(), String>;
}
