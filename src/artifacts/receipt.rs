//! `run_receipt.json`: everything known about a run in one document. Written when the run starts
//! (status running), replaced atomically when each attempt starts (listing it, still running) and when
//! the run ends; the final version is synced to disk.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::rundir::write_atomic;
use crate::error::Result;
use crate::run::{RunStatus, Trigger};

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

impl Receipt {
    /// Writes the receipt into `dir`, replacing any earlier version in one step. `durable` syncs it.
    pub fn write(&self, dir: &Path, durable: bool) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        write_atomic(&dir.join(super::rundir::RECEIPT_FILE), &bytes, durable)
    }

    pub fn read(dir: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(dir.join(super::rundir::RECEIPT_FILE))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}
