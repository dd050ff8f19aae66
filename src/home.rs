//! The layout of a JOBS_HOME: where specs, the store and run directories live. Every path `jobs` touches
//! comes from here, so tests (and operators) move all of them by pointing `--home` elsewhere.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
    /// The store named by `--store` or `JOBS_STORE`, over the config's `store:`.
    store: Option<String>,
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            store: None,
        }
    }

    /// This home with its store named from outside it (`--store`, `JOBS_STORE`).
    pub fn with_store(mut self, store: Option<String>) -> Self {
        self.store = store;
        self
    }

    /// The store named from outside the home, if any.
    pub fn store_override(&self) -> Option<&str> {
        self.store.as_deref()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Spec files, one job each: `jobs/<id>.yaml`.
    pub fn jobs_dir(&self) -> PathBuf {
        self.root.join("jobs")
    }

    /// The home's optional `config.yaml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join(crate::config::CONFIG_FILE)
    }

    pub fn db_dir(&self) -> PathBuf {
        self.root.join("db")
    }

    /// The SQLite store.
    pub fn db_path(&self) -> PathBuf {
        self.db_dir().join("jobs.sqlite3")
    }

    /// Held (flock) by the one running scheduler.
    /// The spec files' stamp cache (`spec::stamps`).
    pub fn spec_stamps_path(&self) -> PathBuf {
        self.db_dir().join("spec-stamps")
    }

    pub fn scheduler_lock_path(&self) -> PathBuf {
        self.db_dir().join("scheduler.lock")
    }

    /// Run directories: `runs/<job_id>/<seq>/`.
    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// A run's working directory: the spec's `cwd`, relative to the home. `.` components add nothing but
    /// noise to the receipt, so they are dropped.
    pub fn working_dir(&self, cwd: &str) -> PathBuf {
        self.root
            .join(cwd)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect()
    }

    /// Whether this directory is a home: it has `jobs/`, or a store from earlier use. Anything else
    /// (a mistyped `--home`, a shell in the wrong directory) must not quietly grow a `db/` of its own.
    pub fn exists(&self) -> bool {
        self.jobs_dir().is_dir() || self.db_path().is_file()
    }

    /// A path as the operator should see it: relative to the home when it lies inside.
    pub fn display_path(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}
