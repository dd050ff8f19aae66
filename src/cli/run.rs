//! `jobsctl run <id>... | --all`: run jobs now, in parallel or one after another, streaming their output;
//! or with `--detach`, hand each run to a background process of its own and return at once.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::Ctx;
use super::ctx::async_runtime;
use super::output::{Output, Report, Style, Table, View};
use crate::artifacts::Stream;
use crate::artifacts::events::Observer;
use crate::catalog::{Catalog, JobState};
use crate::clock::{Clock, SystemClock};
use crate::delivery::OwnCourier;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::run::{RunStatus, owner, run_name};
use crate::runner::attempt::Stop;
use crate::runner::execute::RunPlan;
use crate::runner::{ClaimOf, RunOutcome, claim_run, execute};
use crate::spec::JobSpec;
use crate::store::Store;
use chrono::{DateTime, Utc};

pub struct RunArgs {
    pub ids: Vec<String>,
    pub all: bool,
    pub sequential: bool,
    pub detach: bool,
    pub no_trigger: bool,
    pub force: bool,
}

pub fn run(ctx: &Ctx, args: &RunArgs) -> Result<Report> {
    let now = ctx.clock.now();
    let catalog = Catalog::open(&ctx.home, now)?;
    let ids = targets(&catalog, args)?;
    if args.detach {
        return detach(ctx, &ids, args.force);
    }
    let Catalog { jobs, store, .. } = catalog;
    let mut targets = Vec::new();
    for id in ids {
        let Some(job) = jobs.iter().find(|j| j.id() == id) else {
            continue;
        };
        let Some(spec) = job.spec.clone() else {
            continue;
        };
        targets.push(Target {
            id,
            spec,
            spec_hash: job.spec_hash().to_owned(),
            of: ClaimOf {
                no_trigger: args.no_trigger,
                ..ClaimOf::manual()
            },
        });
    }
    let outcomes = run_targets(ctx, store, targets, args.sequential)?;
    report(ctx, outcomes)
}

/// One run to claim and execute.
pub struct Target {
    pub id: String,
    pub spec: JobSpec,
    pub spec_hash: String,
    pub of: ClaimOf,
}

/// What became of one target of `jobsctl run`.
pub enum TargetResult {
    Ran(RunOutcome),
    /// Not claimed: refused (disabled, `max_instances_reached`, a store error...).
    Refused(Error),
    /// Not claimed because a stop signal came first: nothing was started or recorded.
    NotRun,
}

/// Claims and executes runs in the foreground, streaming their output unless `--json`; Ctrl-C or
/// SIGTERM stops the runs in flight (recorded cancelled), and no further run is claimed or started.
pub fn run_targets(
    ctx: &Ctx,
    store: Box<dyn Store>,
    targets: Vec<Target>,
    sequential: bool,
) -> Result<Vec<(String, TargetResult)>> {
    let store = Arc::new(Mutex::new(store));
    let runtime = async_runtime()?;
    let several = targets.len() > 1;
    let out = ctx.out;
    let home = ctx.home.clone();
    let clock = Arc::clone(&ctx.clock);
    let results = runtime.block_on(async move {
        let stops = Stops::default();
        let stop = stop_signal();
        let on_signal = stops.clone();
        tokio::spawn(async move {
            stop.await;
            on_signal.stop_all();
        });
        let me = owner();
        tokio::spawn(watch_cancel_requests(
            Arc::clone(&store),
            me.clone(),
            stops.clone(),
        ));
        // A run owes notifications only to its spec's notifiers: without any, a courier (a thread and
        // a store connection of its own: 107 of the 880 system calls of `jobsctl run` of `true`)
        // would have nothing to deliver.
        let courier = if targets.iter().any(|t| !t.spec.notify.is_empty()) {
            own_courier(&home, &me, &clock)
        } else {
            None
        };
        let mirror = start_mirror(&home);
        let mut results: Vec<(String, TargetResult)> = Vec::new();
        let mut pending = Vec::new();
        for target in targets {
            // Checked before every claim: after Ctrl-C in a sequential run, the jobs still waiting
            // must not start, and a claim would only record a run that never ran.
            if stops.stopping() {
                results.push((target.id, TargetResult::NotRun));
                continue;
            }
            let mut plan = match claim_target(&store, &home, &target, &me, clock.now()) {
                Ok(plan) => plan,
                Err(e) => {
                    results.push((target.id, TargetResult::Refused(e)));
                    continue;
                }
            };
            let id = target.id;
            if let Some(courier) = &courier {
                courier.deliver_for(&id, plan.seq);
            }
            let sender = mirror.as_ref().map(crate::mirror::Mirror::sender);
            let observer = crate::mirror::observing(
                (!out.json).then(|| live_output(&id, several)),
                sender.as_ref(),
            );
            plan.control.mirror = sender;
            let stop = stops.register(&id, plan.seq);
            let run = execute(plan, Arc::clone(&store), Arc::clone(&clock), observer, stop);
            if sequential {
                results.push((id, TargetResult::Ran(run.await)));
            } else {
                pending.push((id, tokio::spawn(run)));
            }
        }
        for (id, task) in pending {
            let outcome = match task.await {
                Ok(outcome) => TargetResult::Ran(outcome),
                Err(e) => TargetResult::Refused(Error::Internal {
                    message: format!("run task failed: {e}"),
                }),
            };
            results.push((id, outcome));
        }
        finish_delivery(courier, stop_signal()).await;
        if let Some(mirror) = mirror {
            crate::store::blocking(|| mirror.stop());
        }
        results
    });
    Ok(results)
}

/// The mirror of this process's runs into a store several hosts share, when the home's store is
/// one. Best effort: without it the runs go on, readable from their directories on this host.
fn start_mirror(home: &Home) -> Option<crate::mirror::Mirror> {
    let started =
        crate::store::locate(home).and_then(|location| crate::mirror::Mirror::start(&location));
    match started {
        Ok(mirror) => mirror,
        Err(e) => {
            tracing::warn!("this run's events are not mirrored into the store: {e}");
            None
        }
    }
}

/// How long a manual run goes on delivering its own notifications when no scheduler runs.
const OWN_DELIVERY_BUDGET: Duration = Duration::from_secs(10);

/// Starts delivering the notifications of this process's runs as they execute, unless a scheduler
/// owns the home (its courier delivers them within a second). Best effort: the runs are recorded
/// whatever becomes of their notifications, which stay in the outbox for the scheduler.
fn own_courier(home: &Home, me: &str, clock: &Arc<dyn Clock>) -> Option<OwnCourier> {
    if crate::scheduler::lock::OwnerLock::holder(home).is_some() {
        return None;
    }
    match OwnCourier::start(home, me, Arc::clone(clock)) {
        Ok(courier) => Some(courier),
        Err(e) => {
            tracing::warn!("{e}; the run's notifications stay in the outbox for the scheduler");
            None
        }
    }
}

/// The runs ended: lets `courier` deliver what they still owe for at most
/// [`OWN_DELIVERY_BUDGET`], or until `interrupted` (Ctrl-C, SIGTERM) comes, and says what it left.
async fn finish_delivery(
    courier: Option<OwnCourier>,
    interrupted: impl std::future::Future<Output = ()>,
) {
    let Some(courier) = courier else { return };
    let abandon = courier.abandoner();
    let finishing = tokio::task::spawn_blocking(move || courier.finish(OWN_DELIVERY_BUDGET));
    tokio::pin!(finishing, interrupted);
    let report = tokio::select! {
        report = &mut finishing => report,
        () = &mut interrupted => {
            abandon.now();
            finishing.await
        }
    };
    match report {
        Ok(report) if report.left > 0 => tracing::warn!(
            "{} notification(s) not delivered yet; they stay in the outbox for the scheduler (`jobsctl show <id> --run <n>` shows their tries)",
            report.left
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(
            "delivering the run's notifications failed: {e}; they stay in the outbox for the scheduler"
        ),
    }
}

/// Claims the run of one target, under the store's lock.
fn claim_target(
    store: &Mutex<Box<dyn Store>>,
    home: &Home,
    target: &Target,
    me: &str,
    now: DateTime<Utc>,
) -> Result<RunPlan> {
    let mut store = store.lock().map_err(|_| poisoned())?;
    claim_run(
        &mut **store,
        home,
        &target.id,
        &target.spec,
        &target.spec_hash,
        target.of,
        me,
        now,
    )
}

/// The stop channels of the runs this process owns: a signal stops them all (and nothing more
/// starts), a cancel request in the store only its run.
#[derive(Clone, Default)]
struct Stops(Arc<Mutex<StopsInner>>);

#[derive(Default)]
struct StopsInner {
    /// Set by SIGINT or SIGTERM.
    all: bool,
    runs: HashMap<(String, i64), watch::Sender<Option<RunStatus>>>,
}

impl Stops {
    fn lock(&self) -> std::sync::MutexGuard<'_, StopsInner> {
        match self.0.lock() {
            Ok(inner) => inner,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The stop channel of a run just claimed. Under the same lock as [`Self::stop_all`], so a signal
    /// that came between the claim and now still reaches it.
    fn register(&self, job_id: &str, seq: i64) -> Stop {
        let mut inner = self.lock();
        let (tx, rx) = watch::channel(inner.all.then_some(RunStatus::Cancelled));
        inner.runs.insert((job_id.to_owned(), seq), tx);
        rx
    }

    fn stop_all(&self) {
        let mut inner = self.lock();
        inner.all = true;
        for tx in inner.runs.values() {
            cancel(tx);
        }
    }

    fn stop(&self, job_id: &str, seq: i64) -> bool {
        let inner = self.lock();
        inner
            .runs
            .get(&(job_id.to_owned(), seq))
            .is_some_and(cancel)
    }

    fn stopping(&self) -> bool {
        self.lock().all
    }
}

/// Asks a run to stop as cancelled, unless it was asked already; true when this asked.
fn cancel(tx: &watch::Sender<Option<RunStatus>>) -> bool {
    tx.send_if_modified(|status| {
        if status.is_some() {
            return false;
        }
        *status = Some(RunStatus::Cancelled);
        true
    })
}

/// How often a process running runs checks the store for requests to cancel them.
const CANCEL_POLL: Duration = Duration::from_millis(250);

/// How often a manual run tells a store shared by several hosts that its runs are alive.
const SIGN_OF_LIFE_EVERY: Duration = Duration::from_secs(10);

/// Renews the sign of life of this process's runs, so that a process on another host does not take
/// them for dead (see `store::DEFAULT_DEAD_AFTER`). A failure is only logged: the next try may pass.
fn renew_sign_of_life(store: &Arc<Mutex<Box<dyn Store>>>, me: &str) {
    let renewed = store
        .lock()
        .ok()
        .map(|mut s| s.renew_runs(me, crate::store::DEFAULT_DEAD_AFTER));
    if let Some(Err(e)) = renewed {
        tracing::warn!("{e}");
    }
}

/// Carries out `jobsctl cancel` (from any process) for the runs this process owns, and renews
/// their sign of life: when the store
/// changed (`PRAGMA data_version`, a cheap read), the requests for our runs in flight are read and
/// their runs stopped. Runs until the runtime ends.
async fn watch_cancel_requests(store: Arc<Mutex<Box<dyn Store>>>, me: String, stops: Stops) {
    let version =
        |store: &Arc<Mutex<Box<dyn Store>>>| store.lock().ok().and_then(|s| s.data_version().ok());
    let mut seen = version(&store);
    let mut poll = tokio::time::interval(CANCEL_POLL);
    let mut renewed = tokio::time::Instant::now();
    loop {
        poll.tick().await;
        if renewed.elapsed() >= SIGN_OF_LIFE_EVERY {
            renewed = tokio::time::Instant::now();
            renew_sign_of_life(&store, &me);
        }
        let now = version(&store);
        if now == seen {
            continue;
        }
        // Read before the requests: a request committed after this read changes the version again.
        seen = now;
        let requested = store.lock().ok().map(|s| s.cancels_for_owner(&me));
        match requested {
            Some(Ok(requested)) => {
                for (job_id, seq) in requested {
                    if stops.stop(&job_id, seq) {
                        tracing::info!(run = %run_name(&job_id, seq), "cancel requested; stopping it");
                    }
                }
            }
            Some(Err(e)) => tracing::warn!("{e}"),
            None => {}
        }
    }
}

/// The ids to run, checked: each exists, can run, and is not disabled unless forced.
fn targets(catalog: &Catalog, args: &RunArgs) -> Result<Vec<String>> {
    if args.all {
        if !args.ids.is_empty() {
            return Err(Error::Usage {
                message: "give job ids or --all, not both".into(),
            });
        }
        return Ok(catalog
            .jobs
            .iter()
            .filter(|j| matches!(j.state(), JobState::Active | JobState::Paused))
            .map(|j| j.id().to_owned())
            .collect());
    }
    if args.ids.is_empty() {
        return Err(Error::Usage {
            message: "name at least one job to run, or pass --all".into(),
        });
    }
    let mut ids: Vec<String> = Vec::new();
    for id in &args.ids {
        catalog.runnable(id, args.force)?;
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    Ok(ids)
}

/// Prints each output line as it arrives: stdout to stdout, stderr to stderr, prefixed by the job id
/// when several jobs run at once.
fn live_output(id: &str, prefixed: bool) -> Observer {
    let prefix = if prefixed {
        format!("[{id}] ")
    } else {
        String::new()
    };
    Box::new(move |event| {
        if let Some((stream, text)) = super::tail::output_line(event, &prefix) {
            let _ = match stream {
                Stream::Stdout => std::io::stdout().lock().write_all(text.as_bytes()),
                Stream::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
            };
        }
    })
}

/// Resolves on SIGINT or SIGTERM: the runs in flight are then stopped and recorded as cancelled.
/// Installs the SIGINT and SIGTERM handlers now, and returns a future that resolves at the first of
/// them. Installing at call time rather than at first poll matters: a signal that arrives while the
/// scheduler is still starting would otherwise meet the default action and kill the process outright.
/// Must be called inside the runtime.
pub fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let streams = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    async move {
        let (Ok(mut interrupt), Ok(mut terminate)) = streams else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    }
}

const NOT_RUN_MESSAGE: &str = "not started: a stop signal came first";

fn poisoned() -> Error {
    Error::Internal {
        message: "the store lock was poisoned by a panic".into(),
    }
}

/// What `jobsctl run` (or `replay`) came to: one row per target, and the error that decides the exit
/// code.
pub fn report(ctx: &Ctx, results: Vec<(String, TargetResult)>) -> Result<Report> {
    let mut refusals = Vec::new();
    let jobs_run: Vec<RunResult> = results
        .into_iter()
        .map(|(id, result)| match result {
            TargetResult::NotRun => RunResult::not_run(id),
            TargetResult::Ran(outcome) => RunResult::ran(ctx, id, &outcome),
            TargetResult::Refused(error) => {
                let entry = RunResult::refused(id, &error);
                refusals.push(error);
                entry
            }
        })
        .collect();
    let count = |kind: fn(&ResultKind) -> bool| jobs_run.iter().filter(|r| kind(&r.kind)).count();
    let view = RunReport {
        total: jobs_run.len(),
        succeeded: count(|k| *k == ResultKind::Ran(RunStatus::Succeeded)),
        failed: count(|k| matches!(k, ResultKind::Ran(s) if *s != RunStatus::Succeeded)),
        not_run: count(|k| *k == ResultKind::NotRun),
        jobs_run,
    };
    let (failed, not_run, total) = (view.failed, view.not_run, view.total);
    let error = if failed + not_run > 0 {
        Some(Error::RunsFailed {
            failed: failed + not_run + refusals.len(),
            total,
        })
    } else if refusals.len() == 1 && total == 1 {
        refusals.pop()
    } else {
        // Several refused and nothing failed: the conflict is the answer, with its own exit code.
        refusals.into_iter().next()
    };
    Ok(Report::view(&view, &ctx.out)?.with_error(error))
}

#[derive(Serialize)]
struct RunReport {
    jobs_run: Vec<RunResult>,
    total: usize,
    succeeded: usize,
    failed: usize,
    not_run: usize,
}

/// One target of `jobsctl run`. A refused target never had a process: it has no `signal` or
/// `attempts` at all.
#[derive(Serialize)]
struct RunResult {
    job_id: String,
    run: Option<i64>,
    status: &'static str,
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<Option<i32>>,
    duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<u32>,
    run_dir: Option<String>,
    error: Option<ResultError>,
    #[serde(skip)]
    kind: ResultKind,
}

#[derive(Serialize)]
struct ResultError {
    code: String,
    message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResultKind {
    NotRun,
    Ran(RunStatus),
    Refused,
}

impl RunResult {
    fn not_run(job_id: String) -> Self {
        Self {
            job_id,
            run: None,
            status: "not_run",
            exit_code: None,
            signal: Some(None),
            duration_ms: None,
            attempts: Some(0),
            run_dir: None,
            error: Some(ResultError {
                code: "cancelled".into(),
                message: Some(NOT_RUN_MESSAGE.into()),
            }),
            kind: ResultKind::NotRun,
        }
    }

    fn ran(ctx: &Ctx, job_id: String, outcome: &RunOutcome) -> Self {
        let end = &outcome.end;
        Self {
            job_id,
            run: Some(outcome.seq),
            status: end.status.as_str(),
            exit_code: end.exit_code,
            signal: Some(end.signal),
            duration_ms: Some(end.duration_ms),
            attempts: Some(end.attempts),
            run_dir: Some(ctx.home.display_path(&outcome.run_dir)),
            error: end.error_code.as_ref().map(|code| ResultError {
                code: code.clone(),
                message: end.message.clone(),
            }),
            kind: ResultKind::Ran(end.status),
        }
    }

    fn refused(job_id: String, error: &Error) -> Self {
        Self {
            job_id,
            run: None,
            status: "refused",
            exit_code: None,
            signal: None,
            duration_ms: None,
            attempts: None,
            run_dir: None,
            error: Some(ResultError {
                code: error.code().into(),
                message: Some(error.to_string()),
            }),
            kind: ResultKind::Refused,
        }
    }

    fn row(&self) -> Vec<(String, Style)> {
        let id = (self.job_id.clone(), Style::Bold);
        let none = || ("-".to_owned(), Style::Plain);
        let message = || {
            let text = self.error.as_ref().and_then(|e| e.message.clone());
            (text.unwrap_or_default(), Style::Dim)
        };
        match self.kind {
            ResultKind::NotRun => vec![
                id,
                none(),
                ("not run".into(), Style::Yellow),
                none(),
                none(),
                message(),
            ],
            ResultKind::Refused => vec![
                id,
                none(),
                ("refused".into(), Style::Yellow),
                none(),
                none(),
                message(),
            ],
            ResultKind::Ran(status) => {
                let exit = match (self.exit_code, self.signal.flatten()) {
                    (Some(code), _) => code.to_string(),
                    (None, Some(signal)) => format!("signal {signal}"),
                    (None, None) => "-".into(),
                };
                let style = if status == RunStatus::Succeeded {
                    Style::Green
                } else {
                    Style::Red
                };
                let duration = self.duration_ms.unwrap_or_default() as f64 / 1000.0;
                vec![
                    id,
                    (
                        run_name(&self.job_id, self.run.unwrap_or_default()),
                        Style::Plain,
                    ),
                    (status.as_str().to_owned(), style),
                    (exit, Style::Plain),
                    (format!("{duration:.3} s"), Style::Plain),
                    (self.run_dir.clone().unwrap_or_default(), Style::Dim),
                ]
            }
        }
    }
}

impl View for RunReport {
    fn render(&self, out: &Output) -> String {
        if self.jobs_run.is_empty() {
            return String::new();
        }
        let mut table = Table::new(vec!["JOB", "RUN", "STATUS", "EXIT", "DURATION", "RUN DIR"]);
        for result in &self.jobs_run {
            table.row(result.row());
        }
        format!("\n{}", table.render(out))
    }
}

/// `--detach`: each run goes to a background process of its own (`jobsctl __exec`), in a new process
/// group that ignores the terminal's hangup, so it outlives this command and the terminal. Each child
/// claims its run and reports the run id on its stdout before it starts executing.
fn detach(ctx: &Ctx, ids: &[String], force: bool) -> Result<Report> {
    let exe =
        std::env::current_exe().map_err(|e| Error::io("find the jobs executable", "jobs", e))?;
    let mut started = Vec::new();
    let mut errors = Vec::new();
    for id in ids {
        let mut command = std::process::Command::new(&exe);
        command
            .arg("--home")
            .arg(ctx.home.root())
            .arg("__exec")
            .arg(id);
        if force {
            command.arg("--force");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => {
                errors.push(Error::io("start a background run of", id.as_str(), e));
                continue;
            }
        };
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        let reply: ExecReply = serde_json::from_str(&line).unwrap_or_default();
        if reply.ok {
            started.push(Started {
                job_id: id.clone(),
                run: reply.run,
                run_dir: reply.run_dir,
                pid: child.id(),
            });
        } else {
            errors.push(detached_error(id, reply.error.unwrap_or_default()));
        }
        // The child carries on alone; it is reaped by init when this process exits.
        drop(child);
    }
    let view = DetachView {
        total: started.len(),
        started,
    };
    Ok(Report::view(&view, &ctx.out)?.with_error(errors.into_iter().next()))
}

/// The runs handed to background processes.
#[derive(Serialize)]
struct DetachView {
    started: Vec<Started>,
    total: usize,
}

#[derive(Serialize)]
struct Started {
    job_id: String,
    run: Option<i64>,
    run_dir: Option<String>,
    pid: u32,
}

impl View for DetachView {
    fn render(&self, _: &Output) -> String {
        let mut human = String::new();
        for entry in &self.started {
            let (id, run) = (&entry.job_id, entry.run.unwrap_or_default());
            human.push_str(&format!(
                "started {} in the background: {} (follow it with `jobsctl tail {id} --run {run} -f`)\n",
                run_name(id, run),
                entry.run_dir.as_deref().unwrap_or_default()
            ));
        }
        human
    }
}

/// The one line `jobsctl __exec` writes for its parent: the run it claimed, or why it claimed none.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct ExecReply {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    run: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ExecError>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct ExecError {
    code: String,
    message: Option<String>,
    /// With `max_instances_reached` and `group_full`: how many run, and the most allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    running: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<u32>,
}

impl ExecReply {
    fn refused(error: &Error) -> Self {
        let (running, max) = match error {
            Error::MaxInstancesReached { running, max, .. }
            | Error::GroupFull { running, max, .. } => (Some(*running), Some(*max)),
            _ => (None, None),
        };
        Self {
            ok: false,
            error: Some(ExecError {
                code: error.code().to_owned(),
                message: Some(error.to_string()),
                running,
                max,
            }),
            ..Self::default()
        }
    }

    fn send(&self) {
        let line = serde_json::to_string(self).unwrap_or_else(|_| r#"{"ok":false}"#.to_owned());
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    }
}

fn detached_error(id: &str, error: ExecError) -> Error {
    match error.code.as_str() {
        "max_instances_reached" => Error::MaxInstancesReached {
            id: id.to_owned(),
            running: error.running.unwrap_or_default(),
            max: error.max.unwrap_or_default(),
        },
        "job_disabled" => Error::JobDisabled { id: id.to_owned() },
        "group_full" => Error::GroupFull {
            id: id.to_owned(),
            // The message names the group; the code and the counts are what a caller acts on.
            group: error
                .message
                .as_deref()
                .and_then(|m| m.strip_prefix("group `"))
                .and_then(|m| m.split('`').next())
                .map(str::to_owned),
            running: error.running.unwrap_or_default(),
            max: error.max.unwrap_or_default(),
        },
        _ => Error::Internal {
            message: format!(
                "background run of {id}: {}",
                error
                    .message
                    .as_deref()
                    .unwrap_or("the background run did not start")
            ),
        },
    }
}

/// `jobsctl __exec <id>`: the background side of `--detach`. Claims the run, tells the parent its id on
/// stdout (one JSON line), then executes it with nothing attached to the terminal.
pub fn exec_detached(ctx: &Ctx, id: &str, force: bool) -> Result<Report> {
    let now = ctx.clock.now();
    let prepared = Catalog::open(&ctx.home, now).and_then(|catalog| {
        let (job, spec) = catalog.runnable(id, force)?;
        let (spec, hash) = (spec.clone(), job.spec_hash().to_owned());
        let Catalog { mut store, .. } = catalog;
        let plan = claim_run(
            &mut *store,
            &ctx.home,
            id,
            &spec,
            &hash,
            ClaimOf::manual(),
            &owner(),
            now,
        )?;
        Ok((store, plan))
    });
    let (store, plan) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            ExecReply::refused(&error).send();
            return Err(error);
        }
    };
    ExecReply {
        ok: true,
        run: Some(plan.seq),
        run_dir: Some(ctx.home.display_path(plan.run_dir.path())),
        error: None,
    }
    .send();
    let runtime = async_runtime()?;
    let home = ctx.home.clone();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let outcome = runtime.block_on(async move {
        let store = Arc::new(Mutex::new(store));
        let courier = own_courier(&home, &plan.owner, &clock);
        if let Some(courier) = &courier {
            courier.deliver_for(&plan.job_id, plan.seq);
        }
        let stops = Stops::default();
        let stop = stops.register(&plan.job_id, plan.seq);
        let on_signal = stops.clone();
        tokio::spawn(async move {
            detached_stop_signal().await;
            on_signal.stop_all();
        });
        tokio::spawn(watch_cancel_requests(
            Arc::clone(&store),
            plan.owner.clone(),
            stops,
        ));
        let mirror = start_mirror(&home);
        let mut plan = plan;
        let sender = mirror.as_ref().map(crate::mirror::Mirror::sender);
        let observer = crate::mirror::observing(None, sender.as_ref());
        plan.control.mirror = sender;
        let outcome = execute(plan, store, clock, observer, stop).await;
        finish_delivery(courier, detached_stop_signal()).await;
        if let Some(mirror) = mirror {
            crate::store::blocking(|| mirror.stop());
        }
        outcome
    });
    let error = (outcome.end.status != RunStatus::Succeeded).then_some(Error::RunsFailed {
        failed: 1,
        total: 1,
    });
    Ok(Report::view(
        &ExecView {
            status: outcome.end.status,
        },
        &ctx.out,
    )?
    .with_error(error))
}

/// How the background run ended (no one reads it: the parent stopped listening after the reply).
#[derive(Serialize)]
struct ExecView {
    status: RunStatus,
}

impl View for ExecView {
    fn render(&self, _: &Output) -> String {
        String::new()
    }
}

/// As [`stop_signal`], and a hangup (the terminal closing) is ignored rather than fatal.
async fn detached_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        return stop_signal().await;
    };
    tokio::select! {
        () = stop_signal() => {}
        () = async {
            // A hangup is ignored: keep listening, so the default action (exit) never applies.
            while hangup.recv().await.is_some() {}
            std::future::pending::<()>().await;
        } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_target_has_no_signal_or_attempts_and_one_not_run_has_both() {
        let refused = RunResult::refused("a".into(), &Error::JobDisabled { id: "a".into() });
        let json = serde_json::to_value(&refused).expect("serializes");
        assert_eq!(json["status"], "refused");
        assert!(json.get("signal").is_none() && json.get("attempts").is_none());
        assert_eq!(json["error"]["code"], "job_disabled");
        let not_run = serde_json::to_value(RunResult::not_run("b".into())).expect("serializes");
        assert_eq!(not_run["signal"], serde_json::Value::Null);
        assert_eq!(not_run["attempts"], 0);
        assert_eq!(not_run["error"]["code"], "cancelled");
    }

    #[test]
    fn the_reply_of_a_background_run_reads_back_as_written() {
        let error = Error::MaxInstancesReached {
            id: "a".into(),
            running: 2,
            max: 2,
        };
        let line = serde_json::to_string(&ExecReply::refused(&error)).expect("serializes");
        let reply: ExecReply = serde_json::from_str(&line).expect("parses");
        assert!(!reply.ok);
        let back = detached_error("a", reply.error.unwrap_or_default());
        assert!(matches!(
            back,
            Error::MaxInstancesReached {
                running: 2,
                max: 2,
                ..
            }
        ));
        let garbled: ExecReply = serde_json::from_str("not json").unwrap_or_default();
        assert!(matches!(
            detached_error("a", garbled.error.unwrap_or_default()),
            Error::Internal { .. }
        ));
    }
}
