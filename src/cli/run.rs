//! `jobsctl run <id>... | --all`: run jobs now, in parallel or one after another, streaming their output;
//! or with `--detach`, hand each run to a background process of its own and return at once.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use super::entry::Ctx;
use super::output::{Report, Style, Table};
use crate::artifacts::Stream;
use crate::artifacts::events::Observer;
use crate::catalog::{Catalog, JobState};
use crate::clock::SystemClock;
use crate::error::{Error, Result};
use crate::run::{RunStatus, owner, run_name};
use crate::runner::attempt::Stop;
use crate::runner::{ClaimOf, RunOutcome, claim_run, execute};
use crate::spec::JobSpec;
use crate::store::Store;

pub struct RunArgs {
    pub ids: Vec<String>,
    pub all: bool,
    pub sequential: bool,
    pub detach: bool,
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
            of: ClaimOf::manual(),
        });
    }
    let outcomes = run_targets(ctx, store, targets, args.sequential)?;
    Ok(report(ctx, outcomes))
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
    let runtime = super::entry::async_runtime()?;
    let several = targets.len() > 1;
    let out = ctx.out;
    let home = ctx.home.clone();
    let clock = Arc::clone(&ctx.clock);
    Ok(runtime.block_on(async move {
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
        let mut results: Vec<(String, TargetResult)> = Vec::new();
        let mut pending = Vec::new();
        for target in targets {
            let Target {
                id,
                spec,
                spec_hash,
                of,
            } = target;
            // Checked before every claim: after Ctrl-C in a sequential run, the jobs still waiting
            // must not start, and a claim would only record a run that never ran.
            if stops.stopping() {
                results.push((id, TargetResult::NotRun));
                continue;
            }
            let plan = store.lock().map_err(|_| poisoned()).and_then(|mut store| {
                claim_run(
                    &mut **store,
                    &home,
                    &id,
                    &spec,
                    &spec_hash,
                    of,
                    &me,
                    clock.now(),
                )
            });
            let plan = match plan {
                Ok(plan) => plan,
                Err(e) => {
                    results.push((id, TargetResult::Refused(e)));
                    continue;
                }
            };
            let observer = (!out.json).then(|| live_output(&id, several));
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
        results
    }))
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

/// Carries out `jobsctl cancel` (from any process) for the runs this process owns: when the store
/// changed (`PRAGMA data_version`, a cheap read), the requests for our runs in flight are read and
/// their runs stopped. Runs until the runtime ends.
async fn watch_cancel_requests(store: Arc<Mutex<Box<dyn Store>>>, me: String, stops: Stops) {
    let version =
        |store: &Arc<Mutex<Box<dyn Store>>>| store.lock().ok().and_then(|s| s.data_version().ok());
    let mut seen = version(&store);
    let mut poll = tokio::time::interval(CANCEL_POLL);
    loop {
        poll.tick().await;
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

pub fn report(ctx: &Ctx, results: Vec<(String, TargetResult)>) -> Report {
    let out = &ctx.out;
    let mut table = Table::new(vec!["JOB", "RUN", "STATUS", "EXIT", "DURATION", "RUN DIR"]);
    let mut entries = Vec::new();
    let (mut succeeded, mut failed, mut not_run) = (0, 0, 0);
    let mut refusals = Vec::new();
    for (id, result) in results {
        match result {
            TargetResult::NotRun => {
                not_run += 1;
                table.row(vec![
                    (id.clone(), Style::Bold),
                    ("-".into(), Style::Plain),
                    ("not run".into(), Style::Yellow),
                    ("-".into(), Style::Plain),
                    ("-".into(), Style::Plain),
                    (NOT_RUN_MESSAGE.into(), Style::Dim),
                ]);
                entries.push(json!({
                    "job_id": id,
                    "run": null,
                    "status": "not_run",
                    "exit_code": null,
                    "signal": null,
                    "duration_ms": null,
                    "attempts": 0,
                    "run_dir": null,
                    "error": { "code": "cancelled", "message": NOT_RUN_MESSAGE },
                }));
            }
            TargetResult::Ran(outcome) => {
                if outcome.end.status == RunStatus::Succeeded {
                    succeeded += 1;
                } else {
                    failed += 1;
                }
                let exit = match (outcome.end.exit_code, outcome.end.signal) {
                    (Some(code), _) => code.to_string(),
                    (None, Some(signal)) => format!("signal {signal}"),
                    (None, None) => "-".into(),
                };
                let style = if outcome.end.status == RunStatus::Succeeded {
                    Style::Green
                } else {
                    Style::Red
                };
                let run_dir = ctx.home.display_path(&outcome.run_dir);
                table.row(vec![
                    (id.clone(), Style::Bold),
                    (run_name(&id, outcome.seq), Style::Plain),
                    (outcome.end.status.as_str().to_owned(), style),
                    (exit, Style::Plain),
                    (
                        format!("{:.3} s", outcome.end.duration_ms as f64 / 1000.0),
                        Style::Plain,
                    ),
                    (run_dir.clone(), Style::Dim),
                ]);
                entries.push(json!({
                    "job_id": id,
                    "run": outcome.seq,
                    "status": outcome.end.status.as_str(),
                    "exit_code": outcome.end.exit_code,
                    "signal": outcome.end.signal,
                    "duration_ms": outcome.end.duration_ms,
                    "attempts": outcome.end.attempts,
                    "run_dir": run_dir,
                    "error": outcome.end.error_code.as_ref().map(|code| json!({ "code": code, "message": outcome.end.message })),
                }));
            }
            TargetResult::Refused(error) => {
                table.row(vec![
                    (id.clone(), Style::Bold),
                    ("-".into(), Style::Plain),
                    ("refused".into(), Style::Yellow),
                    ("-".into(), Style::Plain),
                    ("-".into(), Style::Plain),
                    (error.to_string(), Style::Dim),
                ]);
                entries.push(json!({
                    "job_id": id,
                    "run": null,
                    "status": "refused",
                    "exit_code": null,
                    "duration_ms": null,
                    "run_dir": null,
                    "error": { "code": error.code(), "message": error.to_string() },
                }));
                refusals.push(error);
            }
        }
    }
    let total = entries.len();
    let data = json!({ "jobs_run": Value::Array(entries), "total": total, "succeeded": succeeded, "failed": failed, "not_run": not_run });
    let mut human = String::new();
    if total > 0 {
        human.push('\n');
        human.push_str(&table.render(out));
    }
    let error = if failed + not_run > 0 {
        Some(Error::RunsFailed {
            failed: failed + not_run + refusals.len(),
            total,
        })
    } else if refusals.len() == 1 && total == 1 {
        refusals.pop()
    } else if !refusals.is_empty() {
        // Several refused and nothing failed: the conflict is the answer, with its own exit code.
        refusals.into_iter().next()
    } else {
        None
    };
    Report { data, human, error }
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
        let reply: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if reply["ok"] == true {
            started.push(json!({ "job_id": id, "run": reply["run"], "run_dir": reply["run_dir"], "pid": child.id() }));
        } else {
            errors.push(detached_error(id, &reply));
        }
        // The child carries on alone; it is reaped by init when this process exits.
        drop(child);
    }
    let mut human = String::new();
    for entry in &started {
        let id = entry["job_id"].as_str().unwrap_or_default();
        let run = entry["run"].as_i64().unwrap_or_default();
        human.push_str(&format!(
            "started {} in the background: {} (follow it with `jobsctl tail {id} --run {run} -f`)\n",
            run_name(id, run),
            entry["run_dir"].as_str().unwrap_or_default()
        ));
    }
    let total = started.len();
    let data = json!({ "started": started, "total": total });
    Ok(Report {
        data,
        human,
        error: errors.into_iter().next(),
    })
}

fn detached_error(id: &str, reply: &Value) -> Error {
    let code = reply["error"]["code"].as_str().unwrap_or_default();
    let message = reply["error"]["message"]
        .as_str()
        .unwrap_or("the background run did not start")
        .to_owned();
    match code {
        "max_instances_reached" => Error::MaxInstancesReached {
            id: id.to_owned(),
            running: reply["error"]["running"].as_i64().unwrap_or_default(),
            max: reply["error"]["max"]
                .as_u64()
                .and_then(|m| u32::try_from(m).ok())
                .unwrap_or_default(),
        },
        "job_disabled" => Error::JobDisabled { id: id.to_owned() },
        _ => Error::Internal {
            message: format!("background run of {id}: {message}"),
        },
    }
}

/// `jobsctl __exec <id>`: the background side of `--detach`. Claims the run, tells the parent its id on
/// stdout (one JSON line), then executes it with nothing attached to the terminal.
pub fn exec_detached(ctx: &Ctx, id: &str, force: bool) -> Result<Report> {
    let reply = |value: Value| {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{value}").and_then(|()| stdout.flush());
    };
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
            let mut answer = json!({ "ok": false, "error": { "code": error.code(), "message": error.to_string() } });
            if let Error::MaxInstancesReached { running, max, .. } = &error {
                answer["error"]["running"] = json!(running);
                answer["error"]["max"] = json!(max);
            }
            reply(answer);
            return Err(error);
        }
    };
    reply(
        json!({ "ok": true, "run": plan.seq, "run_dir": ctx.home.display_path(plan.run_dir.path()) }),
    );
    let runtime = super::entry::async_runtime()?;
    let outcome = runtime.block_on(async move {
        let store = Arc::new(Mutex::new(store));
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
        execute(plan, store, Arc::new(SystemClock), None, stop).await
    });
    Ok(Report {
        data: json!({ "status": outcome.end.status.as_str() }),
        human: String::new(),
        error: (outcome.end.status != RunStatus::Succeeded).then_some(Error::RunsFailed {
            failed: 1,
            total: 1,
        }),
    })
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
