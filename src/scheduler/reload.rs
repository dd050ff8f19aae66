//! Reloading the job table: the specs are loaded and synced (a `Catalog`), the scheduled jobs become
//! the loop's table, pending slots computed here are recorded, and what changed is logged. Must not
//! claim anything (the tick does).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::jobs::Jobs;
use crate::catalog::{Catalog, Job, JobState};
use crate::config::HomeConfig;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::store::Store;

/// How many jobs of each kind the home has, for the start-up line: the loop's table holds only those
/// on a schedule, which alone would read as if the others were lost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Census {
    pub manual_only: usize,
    pub paused: usize,
    pub disabled: usize,
    pub invalid: usize,
}

impl Census {
    fn count(&mut self, job: &Job) {
        match job.state() {
            JobState::Paused => self.paused += 1,
            JobState::Disabled => self.disabled += 1,
            JobState::Invalid => self.invalid += 1,
            JobState::Active if job.schedule.is_none() => self.manual_only += 1,
            JobState::Active | JobState::Removed => {}
        }
    }
}

/// A reloaded table.
pub struct Reloaded {
    pub jobs: Jobs,
    /// The jobs other jobs' runs can trigger, with the spec a triggered run executes.
    pub downstream: HashMap<String, Downstream>,
    pub census: Census,
    /// The store's data version read before the specs were loaded.
    pub data_version: i64,
    /// The home's config in force.
    pub config: HomeConfig,
}

/// A job that other jobs' runs trigger, as a triggered run of it executes.
#[derive(Debug, Clone)]
pub struct Downstream {
    pub spec: crate::spec::JobSpec,
    pub spec_hash: String,
}

/// Loads the specs, syncs them into the store and builds the job table; pending slots come from the
/// store, and jobs without one (new, or whose schedule changed) get the first slot after the last one
/// recorded (or after now). `previous` is the table before, `None` at start.
pub fn reload(
    home: &Home,
    store: &Mutex<Box<dyn Store>>,
    now: DateTime<Utc>,
    previous: Option<&Jobs>,
) -> Result<Reloaded> {
    let locked = || {
        store.lock().map_err(|_| Error::Internal {
            message: "the store lock was poisoned".into(),
        })
    };
    // Read before loading: a commit by another process from here on triggers one more reload rather
    // than going unseen. The catalog syncs through a connection of its own, whose commit would
    // read as another process's: when it writes, the version is read again right after that
    // commit and before the jobs are read back, so whatever it includes is in this table, and
    // 100,000 specs are not read a second time for the scheduler's own sync.
    let data_version = locked()?.data_version()?;
    let mut after_sync = None;
    let catalog = Catalog::open_leading(home, now, &mut || {
        after_sync = Some(locked().and_then(|store| store.data_version()));
    })?;
    let data_version = match after_sync {
        Some(version) => version?,
        None => data_version,
    };
    let census = log_problems(&catalog, previous.is_none());
    for id in &catalog.sync.rescheduled {
        tracing::info!(job = %id, "schedule changed; its slots since the last one recorded are judged");
    }
    let (jobs, computed) = Jobs::from_catalog(&catalog, now, |job| job.row.next_slot);
    let computed: Vec<(String, Option<DateTime<Utc>>)> = computed
        .into_iter()
        .map(|cursor| (cursor.job_id, cursor.next_slot))
        .collect();
    locked()?.set_next_slots(&computed)?;
    if let Some(previous) = previous {
        log_changes(previous, &jobs, &catalog);
    }
    let downstream = catalog
        .jobs
        .iter()
        .filter_map(|job| {
            let spec = job.spec.as_ref()?;
            (!spec.after.is_empty() || !spec.after_all.is_empty()).then(|| {
                (
                    job.id().to_owned(),
                    Downstream {
                        spec: spec.clone(),
                        spec_hash: job.spec_hash().to_owned(),
                    },
                )
            })
        })
        .collect();
    Ok(Reloaded {
        jobs,
        downstream,
        census,
        data_version,
        config: catalog.in_force,
    })
}

/// What a node that does not lead starts with: no jobs (it plans nothing and syncs nothing), the
/// config in force for what it does run (its courier), and the store's data version.
pub fn follower(home: &Home, store: &Mutex<Box<dyn Store>>) -> Result<Reloaded> {
    let store = store.lock().map_err(|_| Error::Internal {
        message: "the store lock was poisoned".into(),
    })?;
    let kept = store.kept_config()?;
    let in_force = crate::config::in_force(&crate::config::load(home), kept.as_ref());
    Ok(Reloaded {
        jobs: Jobs::default(),
        downstream: HashMap::new(),
        census: Census::default(),
        data_version: store.data_version()?,
        config: in_force.config,
    })
}

/// Counts the jobs by kind and warns of invalid specs: those that just turned invalid, or all of them
/// at start. What is logged is what changed in this loop's own view, whoever synced the files (a
/// client such as `jobsctl list` may have synced a new spec before the scheduler saw it).
fn log_problems(catalog: &Catalog, first_load: bool) -> Census {
    let mut census = Census::default();
    if first_load && let Err(problems) = &catalog.config.outcome {
        for problem in problems {
            tracing::warn!(
                problem = %format!("{}:{}:{}: {}", catalog.config.path.display(), problem.line, problem.column, problem.brief()),
                "the home's config is invalid; its last good version (or none) is in force"
            );
        }
    }
    for job in &catalog.jobs {
        census.count(job);
        if let Some(problem) = job.problems.first()
            && (catalog.sync.invalid.iter().any(|id| id == job.id()) || first_load)
        {
            tracing::warn!(
                job = %job.id(),
                problem = %format!("{}:{}: {}: {}", job.row.spec_path, problem.line, problem.pointer, problem.message),
                "spec is invalid; {}",
                if job.spec.is_some() { "keeping its last good version" } else { "it has never been valid, so it does not run" }
            );
        }
    }
    census
}

/// Logs the jobs that joined or left the table.
fn log_changes(previous: &Jobs, jobs: &Jobs, catalog: &Catalog) {
    let mut added: Vec<&String> = jobs.ids().filter(|id| !previous.contains(id)).collect();
    added.sort();
    for id in added {
        tracing::info!(job = %id, "new job scheduled");
    }
    let mut gone: Vec<&String> = previous.ids().filter(|id| !jobs.contains(id)).collect();
    gone.sort();
    for id in gone {
        let why = catalog
            .jobs
            .iter()
            .find(|job| job.id() == id.as_str())
            .map_or("its spec is gone", |job| match job.state() {
                JobState::Removed => "its spec file was removed",
                JobState::Disabled => "it is disabled",
                _ => "it has no schedule any more",
            });
        tracing::info!(job = %id, "job no longer scheduled: {why}");
    }
}
