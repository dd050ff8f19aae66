//! What the server asks of the home it serves: the JSON of each read route (the same documents as
//! `--json`), the gauges of `/metrics`, whether it is ready. The CLI implements it over a home; the
//! server knows no store, spec or command. Every method may block: the server calls them from
//! blocking threads.

use crate::error::Result;
use crate::metrics::Gauges;

/// A read route of the JSON API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/api/jobs`: as `jobsctl --json list`.
    Jobs,
    /// `/api/jobs/<id>`: as `jobsctl --json show <id>`.
    Job { id: String },
    /// `/api/jobs/<id>/runs?status=&limit=`: as `jobsctl --json history <id>`.
    Runs {
        id: String,
        statuses: Vec<String>,
        limit: Option<u32>,
    },
    /// `/api/jobs/<id>/runs/<n>`: as `jobsctl --json show <id> --run <n>`.
    Run { id: String, seq: i64 },
    /// `/api/jobs/<id>/runs/<n>/events`: the run's `events.jsonl`, whole lines as written.
    Events { id: String, seq: i64 },
}

/// What a route answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// An HTTP status and the JSON envelope (`{"ok":...,"data":...}` or `{"ok":false,"error":...}`).
    Json(u16, serde_json::Value),
    /// JSON lines, one event each.
    Lines(String),
}

pub trait Source: Send + Sync + 'static {
    fn answer(&self, route: &Route) -> Answer;

    /// The home as the store has it now, for `/metrics`.
    fn gauges(&self) -> Result<Gauges>;

    /// Whether the server can do its job: the store answers (and, for a scheduler, it owns the home
    /// and beats). `Err` says why not.
    fn ready(&self) -> std::result::Result<(), String>;
}
