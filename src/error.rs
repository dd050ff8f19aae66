//! The one error type of `jobs`: every failure a command can report, its stable code, its exit code and
//! its wording. Messages live here and only here, so they stay consistent and reviewable in one place.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Process exit codes. Documented in the README; scripts depend on them, so they never change meaning.
pub mod exit {
    /// Everything asked for was done.
    pub const OK: u8 = 0;
    /// A run failed or timed out.
    pub const RUN_FAILED: u8 = 1;
    /// The command line was wrong.
    pub const USAGE: u8 = 2;
    /// A job or run does not exist.
    pub const NOT_FOUND: u8 = 3;
    /// A spec file is invalid.
    pub const INVALID_SPEC: u8 = 4;
    /// The request conflicts with the current state (disabled job, scheduler already running, ...).
    pub const CONFLICT: u8 = 5;
    /// The store or the file system failed.
    pub const STORE_OR_IO: u8 = 6;
    /// A bug in `jobs` itself.
    pub const INTERNAL: u8 = 70;
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug)]
pub enum Error {
    /// The command line parsed but asks for something meaningless.
    Usage {
        message: String,
    },
    /// An HTTP request whose path or query does not fit its route (a run number that is not a
    /// number, `?limit=abc`).
    BadRequest {
        message: String,
    },
    JobNotFound {
        id: String,
        close: Vec<String>,
    },
    RunNotFound {
        id: String,
        seq: i64,
    },
    /// `jobsctl cancel` of a job with no run queued, running or waiting to retry.
    NoRunInFlight {
        id: String,
    },
    /// `jobsctl cancel --run N` of a run that has ended already.
    RunNotInFlight {
        id: String,
        seq: i64,
        status: &'static str,
    },
    /// `jobsctl cancel` recorded its requests, but these runs were not recorded as ended within the
    /// wait: their owner has not carried the request out yet.
    CancelPending {
        runs: Vec<String>,
        waited: std::time::Duration,
    },
    /// `seq` is a record of slots that did not run (skipped, missed): there is nothing to replay or tail.
    NotARun {
        id: String,
        seq: i64,
        /// `skipped` or `missed`.
        status: &'static str,
        /// Why, as recorded (`overlap`, `paused`, `misfire`).
        reason: String,
    },
    /// `count` spec files failed validation; their problems were already printed.
    InvalidSpecs {
        count: usize,
    },
    /// A job whose spec file is invalid and that has no last good version to fall back on.
    InvalidSpec {
        id: String,
        path: PathBuf,
        first_problem: String,
    },
    /// The store failed; `fault` says how, for the hint. The source is the backend's own error.
    Store {
        action: String,
        fault: StoreFault,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Another process has held the store's write lock for longer than the busy timeout.
    StoreBusy {
        action: String,
        waited: std::time::Duration,
    },
    /// A tick's claims were refused because this node no longer holds the leadership in `term`:
    /// another node was elected while this one could not renew its lease.
    NotLeader {
        node: String,
        term: i64,
    },
    /// No node leads the shared store (none is elected, or the leader's lease ran out): nothing is
    /// being claimed.
    NoLeader {
        /// The node whose lease ran out, and how long ago (by the store's clock), if one held it.
        last: Option<(String, i64)>,
        nodes: usize,
    },
    /// A node of a shared store by this name is alive (its heartbeat is recent): names are unique.
    NodeNameTaken {
        node: String,
        owner: String,
        seen_ms: i64,
    },
    /// The store was written by a newer `jobs` whose schema this one does not know.
    StoreTooNew {
        found: i64,
        known: i64,
    },
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// Runs ended in failure (failed, timed out, cancelled, interrupted); the report says which.
    RunsFailed {
        failed: usize,
        total: usize,
    },
    /// `jobsctl notify test`: some of the job's notifiers did not take the test; the report says why.
    NotifyFailed {
        failed: usize,
        total: usize,
    },
    /// `jobsctl notify test` of a job that has no notifiers.
    NoNotifiers {
        id: String,
    },
    /// The job's `max_instances` runs are in flight and its overlap policy does not queue another.
    MaxInstancesReached {
        id: String,
        running: i64,
        max: u32,
    },
    /// A run would go past the limit its job shares with others: its group's, or the home's
    /// `max_running` (`group` is then `None`).
    GroupFull {
        id: String,
        group: Option<String>,
        running: i64,
        max: u32,
    },
    JobDisabled {
        id: String,
    },
    /// A file the command would write exists already.
    FileExists {
        path: PathBuf,
    },
    /// `jobsctl replay` of a run whose job's `run` section has changed since.
    SpecChanged {
        id: String,
        seq: i64,
        fields: Vec<&'static str>,
    },
    /// `jobsctl status` found no live scheduler.
    SchedulerNotRunning,
    /// A scheduler holds the home's lock but has not written a heartbeat for `age_s` seconds: stopped
    /// (SIGSTOP, a debugger), hung, or starved.
    SchedulerUnresponsive {
        owner: String,
        age_s: i64,
    },
    /// Another scheduler holds this home's lock; `owner` is its `pid@host`.
    SchedulerAlreadyRunning {
        owner: String,
    },
    /// The job's spec file is gone; its history is kept but it cannot run.
    JobRemoved {
        id: String,
    },
    /// The store file the scheduler opened was deleted or replaced while it ran: it stops claiming.
    StoreReplaced {
        path: PathBuf,
        what: &'static str,
    },
    /// The store is missing while a scheduler still owns the home: it was deleted under it.
    StoreMissing {
        path: PathBuf,
        owner: String,
    },
    /// A run directory or artifact could not be written.
    ArtifactWrite {
        path: PathBuf,
        source: io::Error,
    },
    /// The directory a command would work in has neither `jobs/` nor a store: not a home.
    NotAHome {
        path: PathBuf,
    },
    Internal {
        message: String,
    },
}

/// How the store failed, as far as the operator's next step depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFault {
    /// The store's file is damaged or is not a store at all: restore a backup.
    Damaged,
    /// Anything else (a full disk, a read-only file system, a bug).
    Other,
    /// A PostgreSQL store's server failed or could not be reached.
    Database,
}

impl Error {
    /// Whether this is the store's write lock being held by another process.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::StoreBusy { .. })
    }

    /// A store error names the store's file, so the operator knows which file to check or restore
    /// (errors from opening it name it already).
    pub fn naming_store(self, path: &Path) -> Self {
        match self {
            Self::Store {
                action,
                fault,
                source,
            } if !action.contains(&*path.to_string_lossy()) => Self::Store {
                action: format!("{action} in {}", path.display()),
                fault,
                source,
            },
            other => other,
        }
    }

    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The stable snake_case code shown in `--json` output and in the store.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Usage { .. } => "usage",
            Self::BadRequest { .. } => "bad_request",
            Self::JobNotFound { .. } => "job_not_found",
            Self::RunNotFound { .. }
            | Self::NotARun { .. }
            | Self::NoRunInFlight { .. }
            | Self::RunNotInFlight { .. } => "run_not_found",
            Self::CancelPending { .. } => "cancel_pending",
            Self::InvalidSpecs { .. } | Self::InvalidSpec { .. } => "job_invalid_spec",
            Self::Store { .. } | Self::StoreTooNew { .. } => "store_error",
            Self::StoreBusy { .. } => "store_busy",
            Self::NotLeader { .. } => "not_leader",
            Self::NoLeader { .. } => "no_leader",
            Self::NodeNameTaken { .. } => "node_name_taken",
            Self::Io { .. } => "io_error",
            Self::RunsFailed { .. } => "run_failed",
            Self::NotifyFailed { .. } => "notify_failed",
            Self::NoNotifiers { .. } => "no_notifiers",
            Self::MaxInstancesReached { .. } => "max_instances_reached",
            Self::GroupFull { .. } => "group_full",
            Self::JobDisabled { .. } => "job_disabled",
            Self::SpecChanged { .. } => "spec_changed",
            Self::FileExists { .. } => "file_exists",
            Self::SchedulerAlreadyRunning { .. } => "scheduler_already_running",
            Self::SchedulerNotRunning => "scheduler_not_running",
            Self::SchedulerUnresponsive { .. } => "scheduler_unresponsive",
            Self::JobRemoved { .. } => "job_not_found",
            Self::StoreReplaced { .. } | Self::StoreMissing { .. } => "store_replaced",
            Self::ArtifactWrite { .. } => "artifact_write_failed",
            Self::NotAHome { .. } => "not_a_home",
            Self::Internal { .. } => "internal",
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage { .. } | Self::BadRequest { .. } | Self::NotAHome { .. } => exit::USAGE,
            Self::JobNotFound { .. }
            | Self::RunNotFound { .. }
            | Self::NotARun { .. }
            | Self::NoRunInFlight { .. }
            | Self::RunNotInFlight { .. } => exit::NOT_FOUND,
            Self::InvalidSpecs { .. } | Self::InvalidSpec { .. } => exit::INVALID_SPEC,
            Self::Store { .. }
            | Self::StoreBusy { .. }
            | Self::StoreTooNew { .. }
            | Self::Io { .. } => exit::STORE_OR_IO,
            Self::RunsFailed { .. } | Self::NotifyFailed { .. } => exit::RUN_FAILED,
            Self::NoNotifiers { .. } => exit::CONFLICT,
            Self::MaxInstancesReached { .. }
            | Self::GroupFull { .. }
            | Self::JobDisabled { .. }
            | Self::SpecChanged { .. }
            | Self::FileExists { .. }
            | Self::SchedulerAlreadyRunning { .. }
            | Self::SchedulerNotRunning
            | Self::SchedulerUnresponsive { .. }
            | Self::CancelPending { .. }
            | Self::NotLeader { .. }
            | Self::NoLeader { .. }
            | Self::NodeNameTaken { .. } => exit::CONFLICT,
            Self::JobRemoved { .. } => exit::NOT_FOUND,
            Self::ArtifactWrite { .. } | Self::StoreReplaced { .. } | Self::StoreMissing { .. } => {
                exit::STORE_OR_IO
            }
            Self::Internal { .. } => exit::INTERNAL,
        }
    }

    /// What the operator can do about it, when there is something useful to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Usage { .. } => Some("run `jobsctl --help` for usage".into()),
            Self::BadRequest { .. } => Some(
                "the README's table of the HTTP API says what each route takes".into(),
            ),
            Self::JobNotFound { close, .. } if !close.is_empty() => {
                Some(format!("did you mean: {}?", close.join(", ")))
            }
            Self::JobNotFound { .. } => Some("run `jobsctl list` to see the known jobs".into()),
            Self::RunNotFound { id, .. }
            | Self::NotARun { id, .. }
            | Self::NoRunInFlight { id }
            | Self::RunNotInFlight { id, .. } => {
                Some(format!("run `jobsctl history {id}` to see its runs"))
            }
            Self::CancelPending { .. } => Some(
                "the request stays and the owner stops the run when it sees it; follow it with `jobsctl tail ID --run N -f`, and if its owner is hung see runbooks/stuck-run.md".into(),
            ),
            Self::InvalidSpecs { .. } | Self::InvalidSpec { .. } => {
                Some("run `jobsctl validate` for every problem with its position".into())
            }
            Self::Store {
                fault: StoreFault::Damaged,
                ..
            } => {
                Some("the store is damaged: stop the scheduler and restore a backup (see runbooks/backup-restore.md)".into())
            }
            Self::Store {
                fault: StoreFault::Database,
                ..
            } => Some(
                "check that the PostgreSQL server the store's URL names (see `jobsctl status`, or the config's store:) is up and reachable, and that its user may write; the message above is the server's".into(),
            ),
            Self::Store { .. } => Some(
                "check that db/ under JOBS_HOME is writable and not on a network file system"
                    .into(),
            ),
            Self::StoreBusy { .. } => Some(
                "another process holds the store's write lock: find it with `fuser db/jobs.sqlite3` (a `sqlite3` shell left in a transaction, a stopped jobs process) and end it, then try again".into(),
            ),
            Self::StoreTooNew { .. } => {
                Some("upgrade jobs, or restore a backup of the store".into())
            }
            Self::NotLeader { .. } => Some(
                "the node that leads now claims the slots; `jobsctl status` names it".into(),
            ),
            Self::NoLeader { nodes: 0, .. } => Some(
                "no scheduler runs on this store: start `jobsctl scheduler` on a node".into(),
            ),
            Self::NoLeader { .. } => Some(
                "a node whose jobs/ and config.yaml differ from the catalog never leads: see each node's spec_hash in `jobsctl status` and runbooks/cluster.md; otherwise an election follows within a lease".into(),
            ),
            Self::NodeNameTaken { .. } => Some(
                "give this scheduler another name with --node, or stop the one that has it; a node that died gives its name up once its heartbeat is older than its lease".into(),
            ),
            Self::Io { .. } => Some("check that the path exists and is readable".into()),
            Self::NotifyFailed { .. } => Some(
                "each failed notifier's line says why; fix its URL or command in the spec (or in config.yaml's defaults), then test again".into(),
            ),
            Self::NoNotifiers { .. } => Some(
                "add `notify:` to the job's spec, or `defaults: notify:` to the home's config.yaml".into(),
            ),
            Self::RunsFailed { .. } => Some(
                "see the run directories (summary.md, stderr.log), or find such runs with \
                 `jobsctl history --status failed,timed_out,cancelled,interrupted`"
                    .into(),
            ),
            Self::GroupFull { group: Some(group), .. } => Some(format!(
                "wait for the group's runs to finish (`jobsctl status` lists them), or raise groups.{group}.max_running in config.yaml"
            )),
            Self::GroupFull { group: None, .. } => Some(
                "wait for runs in flight to finish (`jobsctl status` lists them), or raise max_running in config.yaml".into(),
            ),
            Self::MaxInstancesReached { id, .. } => Some(format!(
                "wait for the run in flight to finish (`jobsctl history {id} --status running`), or raise policy.max_instances"
            )),
            Self::JobDisabled { id } => Some(format!("run `jobsctl enable {id}`, or pass --force to run it once anyway")),
            Self::SchedulerUnresponsive { owner, .. } => Some(format!(
                "check the process (pid {}): `ps -o stat= -p PID` shows T when it is stopped (send SIGCONT), otherwise restart the scheduler",
                owner.split('@').next().unwrap_or_default()
            )),
            Self::SchedulerNotRunning => Some("start it with `jobsctl scheduler` (see runbooks/ for a systemd unit)".into()),
            Self::SchedulerAlreadyRunning { owner } => Some(format!(
                "only one scheduler runs per home; stop the other one (pid {}) first, or see `jobsctl status`",
                owner.split('@').next().unwrap_or_default()
            )),
            Self::FileExists { .. } => Some("choose another path, or pass --force to replace it".into()),
            Self::SpecChanged { .. } => Some(
                "pass --force to replay the original command with the spec's current environment".into(),
            ),
            Self::JobRemoved { .. } => Some("restore the spec file to run it again; its history is kept".into()),
            Self::ArtifactWrite { .. } => Some("check free space and permissions under runs/".into()),
            Self::StoreMissing { .. } => Some(
                "the scheduler stops once it notices; restore the store or wait for it to exit, then \
                 start it again"
                    .into(),
            ),
            Self::StoreReplaced { .. } => Some(
                "the scheduler stopped claiming so that no slot runs twice; find out who removed or replaced \
                 the store, restore it if needed, then start the scheduler again"
                    .into(),
            ),
            Self::NotAHome { .. } => Some(
                "run jobsctl inside a home (a directory with jobs/), pass --home DIR or set JOBS_HOME; \
                 to make this directory a home, create jobs/ in it"
                    .into(),
            ),
            Self::Internal { .. } => Some("this is a bug in jobs; please report it".into()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage { message } | Self::BadRequest { message } => write!(f, "{message}"),
            Self::JobNotFound { id, .. } => write!(f, "no job with id `{id}`"),
            Self::RunNotFound { id, seq } => write!(f, "job `{id}` has no run {seq}"),
            Self::NoRunInFlight { id } => write!(
                f,
                "job `{id}` has no run in flight (queued, running or waiting to retry): nothing to cancel"
            ),
            Self::RunNotInFlight { id, seq, status } => {
                write!(
                    f,
                    "{id}#{seq} is not in flight (it is {status}): nothing to cancel"
                )
            }
            Self::CancelPending { runs, waited } => write!(
                f,
                "cancel requested, but {} not recorded as ended within {} s",
                match runs.as_slice() {
                    [one] => format!("{one} was"),
                    several => format!("{} were", several.join(", ")),
                },
                waited.as_secs_f64()
            ),
            Self::NotARun {
                id,
                seq,
                status,
                reason,
            } => write!(
                f,
                "{id}#{seq} is a {status} record ({reason}), not a run: nothing ran, so there is nothing to replay or tail"
            ),
            Self::InvalidSpecs { count: 1 } => write!(f, "1 spec file is invalid"),
            Self::InvalidSpecs { count } => write!(f, "{count} spec files are invalid"),
            Self::InvalidSpec {
                id,
                path,
                first_problem,
            } => write!(
                f,
                "job `{id}` has no valid spec: {}:{first_problem}",
                path.display()
            ),
            Self::Store { action, source, .. } => write!(f, "failed to {action}: {source}"),
            Self::StoreBusy { action, waited } => write!(
                f,
                "failed to {action}: the store is busy, another process has held its write lock for over {} s",
                waited.as_secs_f64()
            ),
            Self::NotLeader { node, term } => write!(
                f,
                "node {node} no longer leads the store (its term {term} has ended): nothing was claimed"
            ),
            Self::NoLeader {
                last: Some((node, ago_ms)),
                nodes,
            } => write!(
                f,
                "no node leads the store: the lease of {node} ran out {:.1} s ago ({nodes} node(s) alive)",
                *ago_ms as f64 / 1000.0
            ),
            Self::NoLeader { last: None, nodes } => {
                write!(f, "no node leads the store ({nodes} node(s) alive)")
            }
            Self::NodeNameTaken {
                node,
                owner,
                seen_ms,
            } => write!(
                f,
                "a node named {node} is alive ({owner}, heartbeat {:.1} s ago)",
                *seen_ms as f64 / 1000.0
            ),
            Self::StoreTooNew { found, known } => write!(
                f,
                "the store is at schema version {found} but this jobs knows only up to {known}"
            ),
            Self::Io {
                action,
                path,
                source,
            } => {
                write!(f, "failed to {action} {}: {source}", path.display())
            }
            Self::RunsFailed {
                failed: 1,
                total: 1,
            } => write!(f, "the run did not succeed"),
            Self::NotifyFailed { failed, total } => {
                write!(
                    f,
                    "{failed} of {total} notifiers did not take the test notification"
                )
            }
            Self::NoNotifiers { id } => write!(f, "job `{id}` has no notifiers to test"),
            Self::RunsFailed { failed, total } => {
                write!(f, "{failed} of {total} runs did not succeed")
            }
            Self::MaxInstancesReached { id, running, max } => write!(
                f,
                "job `{id}` already has {running} run(s) in flight, its max_instances is {max}"
            ),
            Self::GroupFull {
                id,
                group: Some(group),
                running,
                max,
            } => write!(
                f,
                "group `{group}` of job `{id}` already has {running} run(s) in flight, its max_running is {max}"
            ),
            Self::GroupFull { running, max, .. } => write!(
                f,
                "the home already has {running} run(s) in flight, its max_running is {max}"
            ),
            Self::JobDisabled { id } => write!(f, "job `{id}` is disabled"),
            Self::FileExists { path } => write!(f, "{} exists already", path.display()),
            Self::SpecChanged { id, seq, fields } => write!(
                f,
                "the run section of `{id}` changed since {id}#{seq} ({})",
                fields.join(", ")
            ),
            Self::SchedulerAlreadyRunning { owner } => {
                write!(f, "a scheduler is already running for this home: {owner}")
            }
            Self::SchedulerNotRunning => write!(f, "no scheduler is running for this home"),
            Self::SchedulerUnresponsive { owner, age_s } => write!(
                f,
                "the scheduler {owner} holds the home's lock but has not written a heartbeat for {age_s} s: it is stopped or hung"
            ),
            Self::JobRemoved { id } => write!(f, "job `{id}` was removed: its spec file is gone"),
            Self::ArtifactWrite { path, source } => {
                write!(f, "failed to write {}: {source}", path.display())
            }
            Self::StoreMissing { path, owner } => write!(
                f,
                "the store {} is missing while a scheduler ({owner}) owns this home; not making a new one",
                path.display()
            ),
            Self::StoreReplaced { path, what } => write!(
                f,
                "the store {} was {what} while the scheduler had it open",
                path.display()
            ),
            Self::NotAHome { path } => write!(
                f,
                "{} is not a jobs home: it has no jobs/ directory and no db/jobs.sqlite3",
                path.display()
            ),
            Self::Internal { message } => write!(f, "internal error: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Store { source, .. } => Some(source.as_ref()),
            Self::Io { source, .. } | Self::ArtifactWrite { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_exit_codes_follow_the_design_table() {
        let cases: Vec<(Error, &str, u8)> = vec![
            (
                Error::Usage {
                    message: "x".into(),
                },
                "usage",
                2,
            ),
            (
                Error::BadRequest {
                    message: "x".into(),
                },
                "bad_request",
                2,
            ),
            (
                Error::JobNotFound {
                    id: "a".into(),
                    close: vec![],
                },
                "job_not_found",
                3,
            ),
            (Error::InvalidSpecs { count: 2 }, "job_invalid_spec", 4),
            (
                Error::Store {
                    action: "open the store".into(),
                    fault: StoreFault::Other,
                    source: "boom".into(),
                },
                "store_error",
                6,
            ),
            (
                Error::io("read", "x", io::Error::other("boom")),
                "io_error",
                6,
            ),
            (
                Error::Internal {
                    message: "x".into(),
                },
                "internal",
                70,
            ),
        ];
        for (error, code, exit_code) in cases {
            assert_eq!(error.code(), code, "{error}");
            assert_eq!(error.exit_code(), exit_code, "{error}");
            let message = error.to_string();
            assert!(
                message.chars().next().is_some_and(|c| !c.is_uppercase()),
                "messages are lowercase: {message}"
            );
        }
    }

    #[test]
    fn job_not_found_hint_lists_close_ids() {
        let error = Error::JobNotFound {
            id: "hartbeat".into(),
            close: vec!["heartbeat".into()],
        };
        assert_eq!(error.hint().as_deref(), Some("did you mean: heartbeat?"));
    }
}
