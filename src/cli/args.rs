//! The command line as clap parses it. These types are the wire format only: commands turn them into
//! plain values before doing anything.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use clap_complete::engine::ArgValueCandidates;

use super::completions::job_ids;

#[derive(Debug, Parser)]
#[command(
    name = "jobsctl",
    version,
    about = "Run jobs from spec files on cron or interval schedules, and keep a record of every run.",
    propagate_version = true
)]
pub struct Cli {
    /// The directory holding jobs/, db/ and runs/ [default: the current directory]
    #[arg(long, global = true, env = "JOBS_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// The store: a PostgreSQL URL, with no password in it (give that in PGPASSWORD or the config's
    /// store_password_file) [default: JOBS_STORE, then the config's store:, then db/jobs.sqlite3]
    #[arg(long, global = true, value_name = "URL")]
    pub store: Option<String>,

    /// Print one JSON document to stdout instead of human output
    #[arg(long, global = true)]
    pub json: bool,

    /// When to colour human output
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// Log more to stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check spec files against the schema and report every problem with its position
    Validate {
        /// Files or directories to check [default: jobs/]
        paths: Vec<PathBuf>,
    },
    /// List the jobs with their schedule, next slot and state
    List,
    /// Show one job in detail: schedule in words, next slots, state, runs
    Show {
        /// The job's id
        #[arg(add = ArgValueCandidates::new(job_ids))]
        id: String,
        /// One of its runs instead: the run in detail, with its notifications and their tries
        #[arg(long)]
        run: Option<i64>,
    },
    /// Print which jobs trigger which (after: and after_all:), or the graph for Graphviz
    Graph {
        /// Print the graph in Graphviz's DOT language (`jobsctl graph --dot | dot -Tsvg`)
        #[arg(long)]
        dot: bool,
    },
    /// Print the next slots of a job in its time zone and in UTC, marking DST changes
    Next {
        /// The job's id
        #[arg(add = ArgValueCandidates::new(job_ids))]
        id: String,
        /// How many slots
        #[arg(short = 'n', long = "count", default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
        count: u16,
        /// Start after this instant instead of now (RFC 3339, e.g. 2026-03-08T00:00:00-05:00)
        #[arg(long, value_name = "TIME", value_parser = parse_instant)]
        after: Option<DateTime<Utc>>,
    },
    /// Print the JSON Schema of job specs
    Schema,
    /// Run jobs now and stream their output; exits 0 only if every run succeeded
    Run {
        /// The jobs to run
        #[arg(add = ArgValueCandidates::new(job_ids))]
        ids: Vec<String>,
        /// Run every job that is not disabled
        #[arg(long)]
        all: bool,
        /// One job after another instead of all at once
        #[arg(long)]
        sequential: bool,
        /// Start each run in the background and return at once, printing the run ids
        #[arg(long)]
        detach: bool,
        /// Trigger no downstream job (`after:`) when these runs end
        #[arg(long, conflicts_with = "detach")]
        no_trigger: bool,
        /// Run a disabled job anyway
        #[arg(long)]
        force: bool,
    },
    /// Past runs, newest first
    History {
        /// Only this job's runs
        #[arg(add = ArgValueCandidates::new(job_ids))]
        id: Option<String>,
        /// Only runs with one of these statuses, separated by commas: queued, running, succeeded,
        /// failed, timed_out, cancelled, interrupted, skipped or missed
        #[arg(long, value_parser = parse_status, value_delimiter = ',', value_name = "STATUS,...")]
        status: Vec<crate::run::RunStatus>,
        /// How many runs to show
        #[arg(short = 'n', long = "limit", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
        /// Only runs claimed since this time: RFC 3339, or a duration ago such as 2h or 7d
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only runs numbered below N (with a job id): the page after one that ended at run N
        #[arg(long, value_name = "N", requires = "id")]
        before: Option<i64>,
        /// Only runs triggered by this upstream run, e.g. extract#41
        #[arg(long, value_name = "JOB#RUN")]
        upstream: Option<String>,
    },
    /// Run the scheduler: fire every job on its schedule until stopped (SIGINT or SIGTERM)
    Scheduler {
        /// Print what starting would do (interrupted runs, missed and due slots) and exit
        #[arg(long)]
        dry_run: bool,
        /// How long to wait for runs in flight when stopping before interrupting them
        #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
        shutdown_grace: crate::duration::SpecDuration,
        /// Log lines as text or as JSON objects
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Serve the dashboard, /metrics, /healthz, /readyz and the JSON API at this address
        /// (loopback unless a token file is given), e.g. 127.0.0.1:9180; by default config.yaml's
        /// server.listen, if any
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// The bearer token clients must send, in a file only you can read (required for an address
        /// other machines can reach)
        #[arg(long, value_name = "FILE", requires = "listen")]
        token_file: Option<PathBuf>,
        /// With a PostgreSQL store: this scheduler's node name, unique among the live nodes of the
        /// store (by default the host name)
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        /// With a PostgreSQL store: how long a leader's lease lasts on the database's clock; it is
        /// renewed every third of it, and a failover takes at most about this long
        #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
        lease: crate::duration::SpecDuration,
        /// With a PostgreSQL store: how long this node may fail to renew its heartbeat before other
        /// nodes take its runs for dead (it stops them itself a lease before that); at least twice
        /// the lease
        #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_duration)]
        node_dead_after: crate::duration::SpecDuration,
        /// With a PostgreSQL store: this node's labels, comma-separated (e.g. gpu,eu); a job whose
        /// spec names labels in run.nodes runs only on nodes with all of them
        #[arg(long, value_name = "LABELS", value_delimiter = ',')]
        labels: Vec<String>,
        /// With a PostgreSQL store: at most this many runs at once on this node (by default no
        /// limit); runs beyond it wait in the queue for this node or another
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_runs: Option<u32>,
    },
    /// Serve a home's dashboard, /metrics, health and JSON API, read-only, without running its jobs
    Serve {
        /// Where to listen, e.g. 127.0.0.1:9180 (loopback unless a token file is given); by
        /// default config.yaml's server.listen
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// The bearer token clients must send, in a file only you can read
        #[arg(long, value_name = "FILE", requires = "listen")]
        token_file: Option<PathBuf>,
    },
    /// Stop scheduling a job's slots; they are recorded as skipped. Manual runs still work
    Pause {
        #[arg(add = ArgValueCandidates::new(job_ids))]
        id: String,
        /// Why, for `jobsctl show` and the next person on call
        #[arg(long)]
        reason: Option<String>,
        /// Also cancel the job's runs in flight (by default they finish)
        #[arg(long)]
        cancel: bool,
        /// With --cancel: return once the cancel is requested, without waiting for the runs to end
        #[arg(long, requires = "cancel")]
        no_wait: bool,
    },
    /// Schedule a paused job again
    Resume {
        #[arg(add = ArgValueCandidates::new(job_ids))]
        id: String,
        /// Make up for the slots skipped while paused: none, one run for the latest, or one run each
        #[arg(long, value_enum, default_value_t = CatchupArg::None)]
        catchup: CatchupArg,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Stop a job entirely: no scheduled runs, and manual runs need --force
    Disable {
        #[arg(add = ArgValueCandidates::new(job_ids))]
        id: String,
        #[arg(long)]
        reason: Option<String>,
        /// Also cancel the job's runs in flight (by default they finish)
        #[arg(long)]
        cancel: bool,
        /// With --cancel: return once the cancel is requested, without waiting for the runs to end
        #[arg(long, requires = "cancel")]
        no_wait: bool,
    },
    /// Re-enable a disabled job; it continues from its next slot after now
    Enable {
        #[arg(add = ArgValueCandidates::new(job_ids))]
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Cancel a job's run in flight (running, queued or waiting to retry), whichever process owns it;
    /// waits until it is recorded cancelled
    Cancel {
        id: String,
        /// This run (required when several are in flight)
        #[arg(long, conflicts_with = "all")]
        run: Option<i64>,
        /// Every run of the job in flight
        #[arg(long)]
        all: bool,
        /// Why, recorded with the run
        #[arg(long)]
        reason: Option<String>,
        /// Return once the request is recorded, without waiting for the runs to end
        #[arg(long)]
        no_wait: bool,
    },
    /// Is a scheduler running, what is in flight, what comes next, what is broken
    Status,
    /// Remove old runs as the specs' retention says (keep_last, keep_days); never one in flight
    Prune {
        /// Only this job
        #[arg(add = ArgValueCandidates::new(job_ids))]
        id: Option<String>,
        /// Show what would go, change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Copy the store to a file, consistently, while the scheduler keeps running
    Backup {
        /// Where to write the copy
        path: PathBuf,
        /// Replace the file if it exists
        #[arg(long)]
        force: bool,
    },
    /// Run an earlier run again: its command, cwd and env names, the spec as it is now
    Replay {
        #[arg(add = ArgValueCandidates::new(job_ids))]
        id: String,
        /// The run to repeat
        #[arg(long)]
        run: i64,
        /// Replay even though the spec's run section changed since (or the job is disabled)
        #[arg(long)]
        force: bool,
    },
    /// Move the store: `store copy --to URL` copies this home's SQLite store into an empty PostgreSQL one
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Check a job's notifiers: send each a test notification now and say how it went
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
    /// Show a run's events: the run in flight, or the latest; follow it with -f
    Tail {
        #[arg(add = ArgValueCandidates::new(job_ids))]
        id: String,
        /// This run instead of the current one
        #[arg(long)]
        run: Option<i64>,
        /// Follow the run until it finishes (waiting for the next one if none is in flight); exit with
        /// its status
        #[arg(short, long)]
        follow: bool,
        /// Follow run after run until interrupted
        #[arg(long)]
        forever: bool,
    },
    /// Print a shell's completion script: subcommands, options, and the job ids of the home
    Completions {
        /// The shell to complete in
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Print the man page, or write one page per subcommand into a directory
    Man {
        /// Write jobsctl.1, jobsctl-run.1, ... into this existing directory instead
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print a shell function `jobs` that runs this program when the first word is one of its commands,
    /// and the shell's own builtin for everything else (`jobs`, `jobs -l`, `jobs %1`)
    ShellInit {
        /// The shell to define the function in
        #[arg(value_enum)]
        shell: InitShell,
    },
    /// A scheduler's reaper: stops its runs' processes if it dies (started by the scheduler)
    #[command(name = "__reaper", hide = true)]
    Reaper,
    /// The background side of `jobsctl run --detach`
    #[command(name = "__exec", hide = true)]
    Exec {
        id: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CatchupArg {
    None,
    Latest,
    All,
}

fn parse_duration(text: &str) -> Result<crate::duration::SpecDuration, String> {
    text.parse()
        .map_err(|e| format!("not a duration such as 30s or 2m: {e}"))
}

fn parse_status(text: &str) -> Result<crate::run::RunStatus, String> {
    crate::run::RunStatus::parse(text).ok_or_else(|| {
        let all: Vec<&str> = crate::run::ALL_STATUSES
            .iter()
            .map(|s| s.as_str())
            .collect();
        format!("not a run status; use one of {}", all.join(", "))
    })
}

fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 time such as 2026-03-08T00:00:00Z: {e}"))
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy this home's SQLite store (jobs, runs, history, notifications) into an empty PostgreSQL
    /// store, then point the home at it with store: in config.yaml. The SQLite store is left as it
    /// was; stop the scheduler first
    Copy {
        /// The PostgreSQL store, with no password in it (PGPASSWORD or the config's store_password_file)
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a test notification through each of a job's notifiers (a ping sends `/log`), straight to
    /// them rather than through the outbox, and print each result
    Test {
        #[arg(add = ArgValueCandidates::new(job_ids))]
        id: String,
    },
}
