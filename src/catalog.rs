//! The jobs of a home as commands see them: the spec files on disk merged with their store rows. Opening
//! a catalog loads every spec and syncs it into the store, so every command works on current state.

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::config::{self, ConfigFile};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::schedule::Schedule;
use crate::spec::load::{load_dir_with, loader_fingerprint, recheck_stored};
use crate::spec::{JobSpec, LoadedSpec, Problem};
use crate::store::{self, JobRow, OperatorState, Store, SyncReport};

pub struct Catalog {
    /// Spec files that are not jobs (a name that is not a valid id, a second file for an id), with the
    /// reason each is ignored.
    pub stray_files: Vec<(PathBuf, String)>,
    /// The home's `config.yaml` as read; its problems, if any, mean its last good version is in force.
    pub config: ConfigFile,
    /// The config in force: the file's when it is valid, else its last good version (or none).
    pub in_force: config::HomeConfig,
    pub store: Box<dyn Store>,
    pub jobs: Vec<Job>,
    pub sync: SyncReport,
}

/// Whether the store is one host's or several schedulers share it.
#[derive(Clone, Copy)]
enum LocationKind {
    OneHost,
    Shared,
}

/// The effective state of a job, as `jobsctl list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Active,
    Paused,
    /// Disabled by the operator (`jobsctl disable`) or by `enabled: false` in the spec.
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

    /// The content hash of the spec the job runs with (its last good version).
    pub fn spec_hash(&self) -> &str {
        self.row.good_hash.as_deref().unwrap_or(&self.row.spec_hash)
    }

    pub fn state(&self) -> JobState {
        if !self.row.present {
            JobState::Removed
        } else if self.spec.is_none() {
            JobState::Invalid
        } else if self.row.state == OperatorState::Disabled
            || self.spec.as_ref().is_some_and(|s| !s.enabled)
        {
            JobState::Disabled
        } else if self.row.state == OperatorState::Paused {
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
    /// Loads `jobs/`, syncs it into the store and merges the two. A store several schedulers share
    /// is synced only while this home's files are the catalog's (see [`fingerprint`]): the leader's
    /// files are the specs, and a command run in a home whose files differ shows the catalog
    /// without changing it.
    pub fn open(home: &Home, now: DateTime<Utc>) -> Result<Self> {
        Self::open_as(home, now, false, &mut || {})
    }

    /// As [`Catalog::open`], for the scheduler that leads: its files become the catalog.
    /// `synced` is called once the sync has written into the store, before the jobs are read back:
    /// the scheduler reads its own connection's data version there, so the catalog's commit,
    /// made through a connection of its own, does not read as another process's change.
    pub fn open_leading(home: &Home, now: DateTime<Utc>, synced: &mut dyn FnMut()) -> Result<Self> {
        Self::open_as(home, now, true, synced)
    }

    fn open_as(
        home: &Home,
        now: DateTime<Utc>,
        leading: bool,
        synced: &mut dyn FnMut(),
    ) -> Result<Self> {
        // A store missing under a running scheduler was deleted from under it: a new one here would
        // know nothing of the runs in flight, and a manual run could start beside them.
        let location = store::locate(home)?;
        if matches!(location, store::Location::Sqlite(_))
            && !home.db_path().exists()
            && let Some(owner) = crate::scheduler::lock::OwnerLock::holder(home)
        {
            return Err(Error::StoreMissing {
                path: home.db_path(),
                owner,
            });
        }
        let location_kind = match &location {
            store::Location::Sqlite(_) => LocationKind::OneHost,
            store::Location::Postgres { .. } => LocationKind::Shared,
        };
        let mut store = store::open_at(location)?;
        let version = store.data_version()?;
        let rows = store.job_rows()?;
        // A file whose content the store already checked (same hash, same loader) is not parsed again.
        let known: HashMap<&str, &JobRow> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
        let trusted = |id: &str, hash: &str| -> Option<LoadedSpec> {
            let row = known.get(id)?;
            let fresh = row.good_hash.as_deref() == Some(hash)
                && row.checked_by.as_deref() == Some(loader_fingerprint())
                && row.load_error.is_none();
            if !fresh {
                return None;
            }
            let spec: JobSpec = serde_json::from_str(row.spec_json.as_deref()?).ok()?;
            let schedule = spec
                .schedule
                .as_ref()
                .map(Schedule::from_spec)
                .transpose()
                .ok()?;
            Some(LoadedSpec { spec, schedule })
        };
        let config = config::load(home);
        let kept = store.kept_config()?;
        let in_force = config::in_force(&config, kept.as_ref());
        if let Some(keep) = &in_force.keep {
            match store.keep_config(keep.as_ref(), now) {
                Ok(()) => {}
                // As with the specs below: the next command records it.
                Err(e) if e.is_busy() => {
                    tracing::warn!("the config's change is not recorded in the store yet: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        announce_invalid_config(store.as_mut(), home, &config, &in_force.config, now);
        let groups = in_force.config.group_names();
        let last_good = |id: &str| -> Option<Vec<String>> {
            let row = known.get(id)?;
            let upstreams: crate::triggers::Upstreams =
                serde_json::from_str(row.spec_json.as_deref()?).ok()?;
            Some(upstreams.jobs())
        };
        let stamps = crate::spec::stamps::Stamps::read(&home.spec_stamps_path());
        let mut files = load_dir_with(
            &home.jobs_dir(),
            now,
            &in_force.config.defaults,
            &stamps,
            &trusted,
            &crate::spec::relations::Known {
                groups: Some(&groups),
                in_force: Some(&last_good),
            },
        )?;
        let drifted = if matches!(location_kind, LocationKind::Shared) && !leading {
            let mine = fingerprint(home)?;
            store.catalog_hash()?.filter(|catalog| *catalog != mine)
        } else {
            None
        };
        let sync = if let Some(catalog) = drifted {
            tracing::warn!(
                "this home's specs differ from the catalog the leader synced ({catalog}); showing the catalog, unchanged: make jobs/ and config.yaml the same on every node"
            );
            SyncReport::default()
        } else if store.data_version()? == version
            && !store::would_change(&rows, &files, &|f| home.display_path(&f.path))
        {
            // The rows just read are the store as it stands, and they already match every file:
            // the sync would read them all again to find nothing to do.
            SyncReport::default()
        } else {
            match store.sync_specs(
                &files,
                &|f| home.display_path(&f.path),
                &in_force.config.notify,
                now,
            ) {
                Ok(sync) => sync,
                // Another process holds the write lock: the command goes on with the store as it is, and
                // the next command (or the scheduler's next rescan) records the change.
                Err(e) if e.is_busy() => {
                    tracing::warn!(
                        "spec changes not recorded in the store yet (another process holds its write lock); showing the store as it was: {e}"
                    );
                    SyncReport::default()
                }
                Err(e) => return Err(e),
            }
        };
        if !sync.is_empty() {
            synced();
        }
        // Rows read before the sync are stale if it wrote, or if another process committed meanwhile.
        let rows = if sync.is_empty() && store.data_version()? == version {
            rows
        } else {
            store.job_rows()?
        };
        let mut stray_files = Vec::new();
        // Each job's file by position: the outcomes are taken out where they lie rather than moved
        // through a map (at 100,000 files each move of them all copies 80 MB).
        let mut by_id: HashMap<String, usize> = HashMap::with_capacity(files.len());
        for (i, file) in files.iter().enumerate() {
            // The first file of an id is the job; the loader flagged any later one as a duplicate.
            match &file.stem_id {
                Some(id) if !by_id.contains_key(id) => {
                    by_id.insert(id.clone(), i);
                }
                _ => {
                    let reason = file
                        .problems()
                        .first()
                        .map(|p| p.message.clone())
                        .unwrap_or_default();
                    stray_files.push((file.path.clone(), reason));
                }
            }
        }
        let jobs = rows
            .into_iter()
            .map(|row| {
                let outcome = by_id
                    .get(&row.id)
                    .map(|&i| std::mem::replace(&mut files[i].outcome, Err(Vec::new())));
                merge(row, outcome, now)
            })
            .collect();
        Ok(Self {
            stray_files,
            config,
            in_force: in_force.config,
            store,
            jobs,
            sync,
        })
    }

    /// The job with `id` and the spec it runs with, if it can run now: not removed, valid (or with a last
    /// good version), and not disabled unless `force`.
    pub fn runnable(&self, id: &str, force: bool) -> Result<(&Job, &JobSpec)> {
        let job = self.job(id)?;
        match (job.state(), &job.spec) {
            (JobState::Removed, _) => Err(Error::JobRemoved { id: id.to_owned() }),
            (JobState::Disabled, _) if !force => Err(Error::JobDisabled { id: id.to_owned() }),
            (_, Some(spec)) => Ok((job, spec)),
            (_, None) => Err(Error::InvalidSpec {
                id: id.to_owned(),
                path: job.row.spec_path.clone().into(),
                first_problem: job
                    .problems
                    .first()
                    .map(|p| p.located())
                    .unwrap_or_default(),
            }),
        }
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
}

fn merge(
    row: JobRow,
    outcome: Option<Result<LoadedSpec, Vec<Problem>>>,
    now: DateTime<Utc>,
) -> Job {
    match outcome {
        Some(Ok(loaded)) => Job {
            row,
            spec: Some(loaded.spec),
            schedule: loaded.schedule,
            problems: Vec::new(),
        },
        other => {
            let problems = match other {
                Some(Err(problems)) => problems,
                _ => Vec::new(),
            };
            // Fall back on the last good version the store kept, checked again if an older loader
            // checked it: a spec this loader refuses (such as `every: 1ms`) must not run.
            let spec: Option<JobSpec> = row.spec_json.as_deref().and_then(|text| {
                if row.checked_by.as_deref() == Some(loader_fingerprint()) {
                    serde_json::from_str(text).ok()
                } else {
                    recheck_stored(text, &row.id, now)
                        .ok()
                        .map(|loaded| loaded.spec)
                }
            });
            let schedule = spec
                .as_ref()
                .and_then(|s| s.schedule.as_ref())
                .and_then(|s| Schedule::from_spec(s).ok());
            Job {
                row,
                spec,
                schedule,
                problems,
            }
        }
    }
}

/// Writes `spec_invalid` for a config file that is invalid, once per version of it, through the
/// notifiers of the config in force (its last good version). Best effort: a busy store records it
/// on the next command, and a failure here must not stop the command the operator asked for.
fn announce_invalid_config(
    store: &mut dyn Store,
    home: &Home,
    file: &ConfigFile,
    in_force: &config::HomeConfig,
    now: DateTime<Utc>,
) {
    let (Err(problems), Some(hash)) = (&file.outcome, &file.hash) else {
        return;
    };
    let path = home.display_path(&file.path);
    let facts = crate::notifier::HomeFacts {
        job_id: None,
        path: Some(path.clone()),
        message: Some(crate::notifier::problems_message(
            problems
                .iter()
                .map(|p| (Some(p.line as u64), p.message.as_str())),
        )),
    };
    let owed = crate::notifier::fanout::for_home(
        crate::notifier::Event::SpecInvalid,
        &facts,
        &format!("{path}:{hash}"),
        &in_force.notify,
        &crate::run::host(),
        now,
    );
    if let Err(e) = store.config_turned_invalid(hash, &owed) {
        tracing::warn!("the invalid config is not recorded in the store yet: {e}");
    }
}

/// The fingerprint of a home's specs and config: which files `jobs/` holds (by name) and what is in
/// each, with `config.yaml`. Two homes with the same files have the same fingerprint, whatever
/// their paths; a store several schedulers share keeps the leader's, so that a node whose files
/// differ never leads. Read straight from the files (as the loader reads them: regular files only,
/// bounded), without parsing them; an unreadable file counts by its error, so it differs from any
/// readable content.
pub fn fingerprint(home: &Home) -> Result<String> {
    let dir = home.jobs_dir();
    let mut names = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("read the spec directory", &dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if crate::spec::load::is_spec_file_name(&name) {
                    names.push(name);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("read the spec directory", &dir, e)),
    }
    names.sort();
    let content = |path: &std::path::Path| match crate::spec::yaml::read_limited(path) {
        Ok(bytes) => crate::digest::content_hash(&bytes),
        Err(problem) => format!("unreadable: {}", problem.message),
    };
    let mut parts = Vec::with_capacity(names.len() + 1);
    for name in &names {
        parts.push(format!("{name}\0{}\n", content(&dir.join(name))));
    }
    let config = home.config_path();
    if config.exists() {
        parts.push(format!("config.yaml\0{}\n", content(&config)));
    }
    let bytes: Vec<&[u8]> = parts.iter().map(String::as_bytes).collect();
    Ok(format!("{:016x}", crate::digest::fnv1a(&bytes)))
}

/// A stamp of what `jobs/` and `config.yaml` hold, from their metadata alone (each entry's name,
/// inode, size, and modification and change times to the nanosecond): equal stamps mean nothing
/// was written, renamed, replaced or added in between, without reading a file. What the scheduler's
/// periodic rescan looks at before it reads every spec again (the file watcher reports writes as
/// they happen; the rescan is there for what it misses). `None` when the directory cannot be
/// listed: then the files are read.
pub fn stamp(home: &Home) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let dir = home.jobs_dir();
    let mut entries: Vec<(std::ffi::OsString, std::fs::Metadata)> = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(listing) => {
            for entry in listing {
                let entry = entry.ok()?;
                // Relative to the open directory and without following a link, as
                // `symlink_metadata` of the whole path would, but without walking the path again.
                let meta = entry.metadata().ok()?;
                entries.push((entry.file_name(), meta));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) => return None,
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    if let Ok(meta) = std::fs::symlink_metadata(home.config_path()) {
        entries.push(("\0config.yaml".into(), meta));
    }
    let mut parts: Vec<Vec<u8>> = Vec::with_capacity(entries.len());
    for (name, meta) in &entries {
        let mut part = std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str()).to_vec();
        for n in [
            meta.ino(),
            meta.size(),
            meta.mtime().cast_unsigned(),
            meta.mtime_nsec().cast_unsigned(),
            meta.ctime().cast_unsigned(),
            meta.ctime_nsec().cast_unsigned(),
        ] {
            part.extend_from_slice(&n.to_le_bytes());
        }
        parts.push(part);
    }
    let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Some(crate::digest::fnv1a(&slices))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_moves_with_every_write_rename_and_new_file_and_only_then() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::new(dir.path());
        std::fs::create_dir_all(home.jobs_dir()).expect("jobs/");
        let spec = home.jobs_dir().join("a.yaml");
        std::fs::write(&spec, "id: a\n").expect("write");
        let first = stamp(&home).expect("a stamp");
        assert_eq!(stamp(&home), Some(first), "nothing changed");
        // Same size, new content: the times move.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&spec, "id: b\n").expect("rewrite");
        let rewritten = stamp(&home).expect("a stamp");
        assert_ne!(rewritten, first);
        std::fs::rename(&spec, home.jobs_dir().join("b.yaml")).expect("rename");
        let renamed = stamp(&home).expect("a stamp");
        assert_ne!(renamed, rewritten);
        std::fs::write(home.config_path(), "notify: []\n").expect("config");
        let configured = stamp(&home).expect("a stamp");
        assert_ne!(configured, renamed);
        assert_eq!(stamp(&home), Some(configured));
    }
}
