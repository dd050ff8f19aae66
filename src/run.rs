//! What a run is, in words every part shares: how it was triggered, the statuses it moves through, and
//! how it is named (`nightly-report#42`).

use std::fmt;

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
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Schedule, Self::Catchup, Self::Manual, Self::Replay]
            .into_iter()
            .find(|t| t.as_str() == text)
    }
}

/// How a run is named to people: `job#seq`.
pub fn run_name(job_id: &str, seq: i64) -> String {
    format!("{job_id}#{seq}")
}

/// `pid@host` of this process, recorded as the owner of what it claims.
pub fn owner() -> String {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    format!("{}@{host}", std::process::id())
}
