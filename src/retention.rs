//! Applying retention: which runs go comes from `policy::prune_plan`; this removes them, rows first (one
//! transaction) and directories after. A crash in between leaves directories without rows, which the
//! next prune finds and removes (an unlocked numeric directory with no row is always an orphan), so
//! nothing is left that a later prune cannot clean.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::artifacts::RunDir;
use crate::error::{Error, Result};
use crate::policy::{RetentionRow, prune_plan};
use crate::spec::model::RetentionSpec;
use crate::store::Store;

/// What a prune of one job removes (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    pub job_id: String,
    /// Runs whose rows (and directories) go, oldest first.
    pub runs: Vec<i64>,
    /// Directories with no row and no live owner: left over by an interrupted prune or claim.
    pub orphans: Vec<PathBuf>,
}

/// Plans the prune of one job and, unless `dry_run`, carries it out.
pub fn prune_job(
    store: &mut dyn Store,
    runs_root: &Path,
    job_id: &str,
    retention: &RetentionSpec,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<Pruned> {
    let view = store.retention_view(job_id)?;
    let job_dir = runs_root.join(job_id);
    // A job directory that is a link is never walked or deleted through: what it points to is not
    // ours (run directories are never created behind one, see `RunDir::create`).
    let linked = std::fs::symlink_metadata(&job_dir).is_ok_and(|m| m.file_type().is_symlink());
    let rows: Vec<RetentionRow> = view
        .iter()
        .map(|run| {
            let dir = job_dir.join(run.seq.to_string());
            RetentionRow {
                seq: run.seq,
                // The plan weighs ages in milliseconds.
                at: run.at.timestamp_millis(),
                // A directory whose lock is held belongs to a live run, whatever its row says.
                active: run.in_flight || RunDir::is_locked(&dir),
                // Records of slots that did not run (skipped, missed) never have a directory.
                ran: !linked && std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()),
            }
        })
        .collect();
    let runs = prune_plan(&rows, retention.keep_last, retention.keep_days, now);
    let mut orphans = Vec::new();
    if !linked && let Ok(entries) = std::fs::read_dir(&job_dir) {
        for entry in entries.flatten() {
            let Some(seq) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i64>().ok())
            else {
                continue;
            };
            let path = entry.path();
            if !view.iter().any(|run| run.seq == seq)
                && !RunDir::is_locked(&path)
                && !store.run_exists(job_id, seq)?
            {
                orphans.push(path);
            }
        }
    }
    orphans.sort();
    if !dry_run {
        store.delete_runs(job_id, &runs)?;
        for seq in runs.iter().filter(|_| !linked) {
            remove_dir(&job_dir.join(seq.to_string()))?;
        }
        for orphan in &orphans {
            remove_dir(orphan)?;
        }
    }
    Ok(Pruned {
        job_id: job_id.to_owned(),
        runs,
        orphans,
    })
}

fn remove_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}
