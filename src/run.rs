//! What a run is, in words every part shares: how it was triggered, the statuses it moves through, how
//! it ended, and how it is named (`nightly-report#42`).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Fired by the scheduler for its slot.
    Schedule,
    /// Fired late, after downtime, possibly standing for several coalesced slots.
    Catchup,
    /// Started by `jobsctl run`.
    Manual,
    /// Started by `jobsctl replay`, repeating an earlier run.
    Replay,
    /// Started by the end of another job's run (`after:`, `after_all:`).
    After,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Interrupted,
    /// A slot that did not run because of the overlap policy or a pause.
    Skipped,
    /// A slot claimed later than its misfire grace.
    Missed,
}

pub const ALL_STATUSES: [RunStatus; 9] = [
    RunStatus::Queued,
    RunStatus::Running,
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::TimedOut,
    RunStatus::Cancelled,
    RunStatus::Interrupted,
    RunStatus::Skipped,
    RunStatus::Missed,
];

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
            Self::Skipped => "skipped",
            Self::Missed => "missed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        ALL_STATUSES.into_iter().find(|s| s.as_str() == text)
    }

    /// Queued or running: the run holds (or waits for) an instance of its job.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Catchup => "catchup",
            Self::Manual => "manual",
            Self::Replay => "replay",
            Self::After => "after",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Schedule,
            Self::Catchup,
            Self::Manual,
            Self::Replay,
            Self::After,
        ]
        .into_iter()
        .find(|t| t.as_str() == text)
    }
}

/// How a run ended: what its owner (or whoever settles it after the owner died) records in the store,
/// writes as the `run_finished` event and into the receipt, and what `jobsctl run` reports. Every
/// record of a run's end is made from one of these, so they cannot disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    pub status: RunStatus,
    /// Attempts started; 0 for a run that never started one.
    pub attempts: u32,
    /// The last attempt's exit code, when its main process exited.
    pub exit_code: Option<i32>,
    /// The signal that ended the last attempt's main process.
    pub signal: Option<i32>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    /// When the command first started, if it did. `None` leaves a start the store has as it is.
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    /// From the start to the end; 0 for a run that never started.
    pub duration_ms: u64,
}

/// How a run is named to people: `job#seq`.
pub fn run_name(job_id: &str, seq: i64) -> String {
    format!("{job_id}#{seq}")
}

/// `pid@host` of this process, recorded as the owner of what it claims.
pub fn owner() -> String {
    format!("{}@{}", std::process::id(), host())
}

/// This machine's host name, as `uname` gives it.
pub fn host() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
