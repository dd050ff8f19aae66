//! Retention as the daemon applies it: when one of a job's runs ends, the job's `retention:` prunes its
//! old runs. Must not choose what goes (`policy::prune_plan` does) nor carry it out itself
//! (`crate::retention` does).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::clock::Clock;
use crate::spec::model::RetentionSpec;
use crate::store::Store;

pub struct Retention {
    store: Arc<Mutex<Box<dyn Store>>>,
    runs_root: PathBuf,
    clock: Arc<dyn Clock>,
}

impl Retention {
    pub fn new(
        store: Arc<Mutex<Box<dyn Store>>>,
        runs_root: PathBuf,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            runs_root,
            clock,
        }
    }

    /// Applies `retention` to the job after one of its runs ended.
    pub fn after_run(&self, job_id: &str, retention: &RetentionSpec) {
        if retention.keep_last.is_none() && retention.keep_days.is_none() {
            return;
        }
        let now = self.clock.now();
        let pruned = crate::store::call(&self.store, |store| {
            crate::retention::prune_job(store, &self.runs_root, job_id, retention, now, false)
        });
        match pruned {
            Ok(pruned) if !pruned.runs.is_empty() => {
                tracing::info!(job = %job_id, runs = pruned.runs.len(), "old runs pruned");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(job = %job_id, "pruning failed: {e}"),
        }
    }
}
