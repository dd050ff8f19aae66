//! The start-up pass of the scheduler over run directories: those numbered past their job's run
//! counter have no record in the store (a claim that never committed, or a store restored from an
//! older backup), and are set aside under `runs/<job>/.orphaned/` with their numbers kept taken.
//! Settling runs whose owner died is not here: see `runner::recover`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::artifacts::rundir::{job_dir, set_aside_root};
use crate::error::Result;
use crate::home::Home;
use crate::store::Store;

/// A run directory numbered past its job's run counter, so the store has no record of it: left by a
/// claim that never committed (a process killed inside the claim transaction), or made by runs a
/// restored (older) store never heard of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownDir {
    pub job_id: String,
    pub seq: i64,
    pub path: PathBuf,
}

/// The run directories past each job's run counter that have no row and no live owner, oldest first
/// per job. Changes nothing (`--dry-run` shows them). One listing per job directory: gaps are normal
/// (skipped and missed records take numbers but make no directory), so stopping at the first absent
/// number would miss the rest.
pub fn unknown_run_dirs(store: &dyn Store, home: &Home) -> Result<Vec<UnknownDir>> {
    let runs_root = home.runs_dir();
    let mut found = Vec::new();
    // One listing instead of a failed `stat` for every job that never ran.
    let Ok(entries) = std::fs::read_dir(&runs_root) else {
        return Ok(found);
    };
    let present: std::collections::HashSet<std::ffi::OsString> =
        entries.flatten().map(|e| e.file_name()).collect();
    for (id, run_counter) in store.run_counters()? {
        if !present.contains(std::ffi::OsStr::new(&id)) {
            continue;
        }
        let job_dir = job_dir(home, &id);
        // Never walk through a linked job directory: what it points to is not ours.
        if std::fs::symlink_metadata(&job_dir).is_ok_and(|m| m.file_type().is_symlink()) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&job_dir) else {
            continue;
        };
        let mut seqs: Vec<i64> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i64>().ok())
            .filter(|seq| *seq > run_counter)
            .collect();
        seqs.sort_unstable();
        for seq in seqs {
            let dir = job_dir.join(seq.to_string());
            if !dir.is_dir()
                || crate::artifacts::RunDir::is_locked(&dir)
                || store.run_exists(&id, seq)?
            {
                continue;
            }
            found.push(UnknownDir {
                job_id: id.clone(),
                seq,
                path: dir,
            });
        }
    }
    Ok(found)
}

/// Moves the run directories the store does not know (see [`unknown_run_dirs`]) to
/// `runs/<job>/.orphaned/<seq>`, after raising each job's run counter past them, so their numbers are
/// never handed out again and nothing a run wrote is deleted: they may be runs that really happened,
/// recorded in a store that was since replaced by an older backup. Returns what was moved, and where.
pub fn set_aside_unknown_dirs(
    store: &mut dyn Store,
    home: &Home,
) -> Result<Vec<(UnknownDir, PathBuf)>> {
    let found = unknown_run_dirs(store, home)?;
    let mut highest: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for dir in &found {
        let top = highest.entry(dir.job_id.as_str()).or_insert(dir.seq);
        *top = (*top).max(dir.seq);
    }
    // The counter first: a death before the moves leaves directories at or below it, which no claim
    // reuses and `jobsctl prune` reports as leftovers.
    for (job_id, seq) in &highest {
        store.raise_run_counter(job_id, *seq)?;
    }
    let mut moved = Vec::new();
    for dir in found {
        let aside = set_aside_root(home, &dir.job_id);
        if let Err(e) = std::fs::create_dir_all(&aside) {
            tracing::warn!(path = %aside.display(), "cannot make the directory for run directories the store does not know: {e}");
            continue;
        }
        let target = free_name(&aside, dir.seq);
        match std::fs::rename(&dir.path, &target) {
            Ok(()) => moved.push((dir, target)),
            Err(e) => {
                tracing::warn!(path = %dir.path.display(), "cannot move a run directory the store does not know: {e}");
            }
        }
    }
    Ok(moved)
}

/// Moves one run directory the store does not know to `runs/<job>/.orphaned/`: what a node's
/// worker finds in the way of a run it took from a shared store (left by a store this home used
/// before, say). A directory whose lock is held belongs to a live run and stays.
pub fn set_aside_one(home: &Home, job_id: &str, seq: i64) -> Result<PathBuf> {
    let dir = job_dir(home, job_id).join(seq.to_string());
    let refuse = |why: &str| crate::error::Error::ArtifactWrite {
        path: dir.clone(),
        source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, why.to_owned()),
    };
    if std::fs::symlink_metadata(&dir).is_ok_and(|m| !m.is_dir()) {
        return Err(refuse("not a directory"));
    }
    if crate::artifacts::RunDir::is_locked(&dir) {
        return Err(refuse("a live run holds it"));
    }
    let aside = set_aside_root(home, job_id);
    std::fs::create_dir_all(&aside).map_err(|e| crate::error::Error::io("create", &aside, e))?;
    let target = free_name(&aside, seq);
    std::fs::rename(&dir, &target).map_err(|e| crate::error::Error::io("move aside", &dir, e))?;
    tracing::warn!(from = %dir.display(), to = %target.display(), "a run directory the store does not know was in the way of a run taken from the queue; set aside");
    Ok(target)
}

/// `<aside>/<seq>`, or `<seq>.2`, `<seq>.3`... when an earlier restore set aside a directory of the
/// same number.
fn free_name(aside: &Path, seq: i64) -> PathBuf {
    let plain = aside.join(seq.to_string());
    if std::fs::symlink_metadata(&plain).is_err() {
        return plain;
    }
    (2..)
        .map(|n| aside.join(format!("{seq}.{n}")))
        .find(|p| std::fs::symlink_metadata(p).is_err())
        .unwrap_or(plain)
}
