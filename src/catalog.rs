//! The jobs of a home as commands see them: the spec files on disk merged with their store rows. Opening
//! a catalog loads every spec and syncs it into the store, so every command works on current state.

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::home::Home;
use crate::schedule::Schedule;
use crate::spec::{JobSpec, Problem, SpecFile, load_dir};
use crate::store::{JobRow, Store, SyncReport};

pub struct Catalog {
    pub files: Vec<SpecFile>,
    pub store: Store,
    pub jobs: Vec<Job>,
    pub sync: SyncReport,
}

/// The effective state of a job, as `jobs list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Active,
    Paused,
    /// Disabled by the operator (`jobs disable`) or by `enabled: false` in the spec.
    Disabled,
    /// The spec file is gone; history is kept.
    Removed,
    /// The spec has never been valid, so there is nothing to run.
    Invalid,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Disabled => "disabled",
            Self::Removed => "removed",
            Self::Invalid => "invalid",
        }
    }
}

/// One job: its store row, and the spec it runs with (the file's if valid, else the last good one).
#[derive(Debug, Clone)]
pub struct Job {
    pub row: JobRow,
    pub spec: Option<JobSpec>,
    pub schedule: Option<Schedule>,
    /// The file's current problems; non-empty means the job runs its last good version, if any.
    pub problems: Vec<Problem>,
}

impl Job {
    pub fn id(&self) -> &str {
        &self.row.id
    }

    pub fn state(&self) -> JobState {
        if !self.row.present {
            JobState::Removed
        } else if self.spec.is_none() {
            JobState::Invalid
        } else if self.row.state == "disabled" || self.spec.as_ref().is_some_and(|s| !s.enabled) {
            JobState::Disabled
        } else if self.row.state == "paused" {
            JobState::Paused
        } else {
            JobState::Active
        }
    }

    /// The next slot the job would fire at after `now`, when it is active and scheduled.
    pub fn next_slot(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.state() {
            JobState::Active => self.schedule.as_ref()?.next_after(now),
            _ => None,
        }
    }
}

impl Catalog {
    /// Loads `jobs/`, syncs it into the store and merges the two.
    pub fn open(home: &Home, now: DateTime<Utc>) -> Result<Self> {
        let files = load_dir(&home.jobs_dir(), now)?;
        let mut store = Store::open(&home.db_path())?;
        let sync = store.sync_specs(
            &files,
            |f| home.display_path(&f.path),
            now.timestamp_millis(),
        )?;
        let jobs = store
            .job_rows()?
            .into_iter()
            .map(|row| merge(row, &files))
            .collect();
        Ok(Self {
            files,
            store,
            jobs,
            sync,
        })
    }

    /// The job with `id`, or `job_not_found` naming the closest ids.
    pub fn job(&self, id: &str) -> Result<&Job> {
        self.jobs
            .iter()
            .find(|j| j.id() == id)
            .ok_or_else(|| Error::JobNotFound {
                id: id.to_owned(),
                close: crate::text::closest(id, self.jobs.iter().map(Job::id), 3),
            })
    }

    /// Spec files that are not jobs at all (their name is not a valid id) and so appear in no row.
    pub fn stray_files(&self) -> impl Iterator<Item = &SpecFile> {
        self.files.iter().filter(|f| f.stem_id.is_none())
    }
}

fn merge(row: JobRow, files: &[SpecFile]) -> Job {
    let file = files
        .iter()
        .find(|f| f.stem_id.as_deref() == Some(row.id.as_str()));
    let (spec, schedule, problems) = match file.map(|f| &f.outcome) {
        Some(Ok(loaded)) => (
            Some(loaded.spec.clone()),
            loaded.schedule.clone(),
            Vec::new(),
        ),
        other => {
            let problems = match other {
                Some(Err(problems)) => problems.clone(),
                _ => Vec::new(),
            };
            // Fall back on the last good version the store kept.
            let spec: Option<JobSpec> = row
                .spec_json
                .clone()
                .and_then(|v| serde_json::from_value(v).ok());
            let schedule = spec
                .as_ref()
                .and_then(|s| s.schedule.as_ref())
                .and_then(|s| Schedule::from_spec(s).ok());
            (spec, schedule, problems)
        }
    };
    Job {
        row,
        spec,
        schedule,
        problems,
    }
}
