//! `run_receipt.json`: everything known about a run in one document. Written when the run starts
//! (status running), replaced atomically when each attempt starts (listing it, still running) and when
//! the run ends; the final version is synced to disk.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::rundir::write_atomic;
use chrono::{DateTime, Utc};

use crate::clock::{parse_rfc3339, rfc3339};
use crate::error::Result;
use crate::run::{RunEnd, RunStatus, Trigger, run_name};
use crate::spec::JobSpec;

/// Bumped when a field changes meaning or goes away; new fields do not bump it.
pub const RECEIPT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub receipt_version: u32,
    pub job_id: String,
    pub run: i64,
    /// `job#run`, as people write it.
    pub name: String,
    pub trigger: Trigger,
    pub slot: Option<String>,
    pub due_at: Option<String>,
    /// For a replay: the run it repeats.
    pub replay_of: Option<i64>,
    /// For a run triggered by other runs (`after`): those runs, `job#seq` comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    pub claimed_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    /// How many slots this run stands for (catch-up runs coalesce several).
    pub slot_count: u64,
    pub spec_hash: String,
    /// `pid@host` of the process that ran it.
    pub owner: String,
    pub command: Command,
    /// Absolute working directory.
    pub cwd: String,
    /// Names of the variables the spec sets; values are never recorded.
    pub env_names: Vec<String>,
    pub timeout_ms: Option<u64>,
    pub kill_grace_ms: u64,
    pub max_attempts: u32,
    pub attempts: Vec<AttemptRecord>,
}

/// What was executed: an argv, or a shell command line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub argv: Option<Vec<String>>,
    pub shell: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub pid: Option<u32>,
    /// The attempt's process group, its leader's start time (clock ticks after boot) and the boot:
    /// what names its processes for whoever must stop them after the owner died.
    #[serde(default)]
    pub pgid: Option<u32>,
    #[serde(default)]
    pub leader_start: Option<u64>,
    #[serde(default)]
    pub boot_id: Option<String>,
    pub started_at: String,
    /// `None` (and status running) while the attempt runs: the receipt lists each attempt as it starts.
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error_code: Option<String>,
    pub message: Option<String>,
}

/// What a claim fixed about a run: the facts its first receipt records beside the spec's.
#[derive(Debug, Clone, Copy)]
pub struct ClaimFacts<'a> {
    pub job_id: &'a str,
    pub seq: i64,
    pub trigger: Trigger,
    pub slot: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub replay_of: Option<i64>,
    pub upstream: Option<&'a str>,
    pub claimed_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub slot_count: u64,
    pub spec_hash: &'a str,
    pub owner: &'a str,
}

impl Receipt {
    /// The receipt of a run as claimed, before any attempt: written by the run at its start, or made
    /// up by whoever settles a run whose owner died before it could. `cwd` is the run's working
    /// directory (see `Home::working_dir`).
    pub fn for_claim(claim: &ClaimFacts<'_>, spec: &JobSpec, cwd: &Path) -> Self {
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let run = &spec.run;
        Self {
            receipt_version: RECEIPT_VERSION,
            job_id: claim.job_id.to_owned(),
            run: claim.seq,
            name: run_name(claim.job_id, claim.seq),
            trigger: claim.trigger,
            slot: claim.slot.map(rfc3339),
            due_at: claim.due_at.map(rfc3339),
            replay_of: claim.replay_of,
            upstream: claim.upstream.map(str::to_owned),
            claimed_at: rfc3339(claim.claimed_at),
            started_at: claim.started_at.map(rfc3339),
            finished_at: None,
            duration_ms: None,
            status: claim.status,
            exit_code: None,
            signal: None,
            error_code: None,
            message: None,
            slot_count: claim.slot_count,
            spec_hash: claim.spec_hash.to_owned(),
            owner: claim.owner.to_owned(),
            command: Command {
                argv: run.command.clone(),
                shell: run.shell.clone(),
            },
            cwd: cwd.display().to_string(),
            env_names: run.env.keys().cloned().collect(),
            timeout_ms: run.timeout.map(|t| ms(t.as_duration())),
            kill_grace_ms: ms(run.kill_grace.as_duration()),
            max_attempts: spec.retry.max_attempts,
            attempts: Vec::new(),
        }
    }

    /// Writes how the run ended into the receipt (a start it has already is kept).
    pub fn record_end(&mut self, end: &RunEnd) {
        self.status = end.status;
        if self.started_at.is_none() {
            self.started_at = end.started_at.map(rfc3339);
        }
        self.finished_at = Some(rfc3339(end.finished_at));
        self.duration_ms = Some(end.duration_ms);
        self.exit_code = end.exit_code;
        self.signal = end.signal;
        self.error_code.clone_from(&end.error_code);
        self.message.clone_from(&end.message);
    }

    /// How the run ended, as a terminal receipt says; `now` stands in for an end it has no time of.
    pub fn end(&self, now: DateTime<Utc>) -> RunEnd {
        RunEnd {
            status: self.status,
            attempts: u32::try_from(self.attempts.len()).unwrap_or(u32::MAX),
            exit_code: self.exit_code,
            signal: self.signal,
            error_code: self.error_code.clone(),
            message: self.message.clone(),
            started_at: self.started_at.as_deref().and_then(parse_rfc3339),
            finished_at: self
                .finished_at
                .as_deref()
                .and_then(parse_rfc3339)
                .unwrap_or(now),
            duration_ms: self.duration_ms.unwrap_or(0),
        }
    }

    /// Writes the receipt into `dir`, replacing any earlier version in one step. `durable` syncs it.
    pub fn write(&self, dir: &Path, durable: bool) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        write_atomic(&dir.join(super::rundir::RECEIPT_FILE), &bytes, durable)
    }

    pub fn read(dir: &Path) -> std::io::Result<Self> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut super::rundir::open_read(&dir.join(super::rundir::RECEIPT_FILE))?,
            &mut bytes,
        )?;
        serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}
