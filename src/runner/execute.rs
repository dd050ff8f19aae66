//! A whole run: wait for an instance if queued, then attempts with retries and backoff, each step an
//! event; the receipt at the start and, atomically replaced, at the end; the summary; and the store's
//! record of how it ended. Artifacts are finished before the store, so a crash in between leaves a
//! terminal receipt beside an unfinished row, which reconciliation can read. The store is called on
//! blocking threads only (see `blocking`): its calls wait on the disk and on other processes' locks.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use tokio::sync::watch;

use super::attempt::{AttemptSpec, OutputSinks, Stop, run_attempt, stop_reason, stop_requested};
use super::recover::run_is_alive;
use crate::artifacts::events::Observer;
use crate::artifacts::receipt::ClaimFacts;
use crate::artifacts::rundir::{EVENTS_FILE, STDERR_FILE, STDOUT_FILE, open_append};
use crate::artifacts::{AttemptRecord, EventKind, EventLog, Receipt, RunDir, summary};
use crate::clock::{Clock, rfc3339};
use crate::error::Error;
use crate::home::Home;
use crate::process::Identity;
use crate::run::{RunEnd, RunStatus, Trigger, run_name};
use crate::spec::JobSpec;
use crate::spec::model::RetryOn;
use crate::store::{AttemptProcess, CancelRequest, OperatorState, QueuedStart, Store};

/// The store as the runs of one process share it.
pub type SharedStore = Arc<Mutex<Box<dyn Store>>>;

/// How often a queued run checks whether an instance has freed up.
const QUEUE_POLL: Duration = Duration::from_millis(100);

/// How often a run waiting to retry checks whether its job was paused or disabled meanwhile.
const JOB_STATE_POLL: Duration = Duration::from_millis(250);

/// Everything a claimed run needs to execute.
pub struct RunPlan {
    pub job_id: String,
    pub seq: i64,
    pub trigger: Trigger,
    pub slot: Option<DateTime<Utc>>,
    /// The slot the run is for: its own, or for a catch-up run (which has none of its own, the slot's
    /// record being the skipped one) the slot it makes up for. `JOBS_SLOT` and the receipt say it.
    pub stands_for: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub replay_of: Option<i64>,
    /// For a run standing for several slots (coalesced, or a catch-up): the first of them.
    pub first_slot: Option<DateTime<Utc>>,
    pub slot_count: u64,
    pub claimed_at: DateTime<Utc>,
    /// The claim put the run in the queue: it starts when an instance frees up.
    pub queued: bool,
    /// Taken by this node's worker from a shared store's queue: a run that cannot start here
    /// (shutdown, a heartbeat too old) goes back to the queue for another node.
    pub from_queue: bool,
    /// The limits shared with other jobs the run was claimed under; a queued run waits for them too.
    pub shared: crate::store::SharedLimits,
    /// For a triggered run: the upstream run(s), `job#seq`, comma-separated.
    pub upstream: Option<String>,
    pub spec: JobSpec,
    pub spec_hash: String,
    pub owner: String,
    /// JOBS_HOME: `cwd` is relative to it, and so are stored run directories.
    pub home: Home,
    pub run_dir: RunDir,
    pub control: RunControl,
}

/// How a run's owner hears of it and holds it back, beyond the stop channel.
#[derive(Debug, Default)]
pub struct RunControl {
    /// Where the run reports the instant its command starts, for the owner to record in one batch
    /// with the others of the moment. Without it, the run records its start in the store itself.
    pub starts: Option<tokio::sync::mpsc::UnboundedSender<Started>>,
    /// Becomes true when the owner is shutting down: a scheduled run that has not started by then never
    /// starts, and gives its slot back to be judged by the next scheduler.
    pub hold: Option<watch::Receiver<bool>>,
    /// For a node of a shared store: until when its last heartbeat vouches for it (`None`: never). A
    /// run taken from the queue whose slot comes after that never starts here and goes back to the
    /// queue: the node may have slept (a pause, a partition) while other nodes went on, and another
    /// node starts it at once rather than this one late.
    pub alive_until: Option<watch::Receiver<Option<std::time::Instant>>>,
    /// For a store several hosts share: where the run's final receipt is mirrored (its events are
    /// mirrored by its observer).
    pub mirror: Option<crate::mirror::MirrorTx>,
}

/// A run's command started at `at`; with `process`, an attempt's process group started, to be recorded
/// so that it can be stopped should the owner die.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub job_id: String,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub process: Option<AttemptProcess>,
}

/// What became of a run, for its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub job_id: String,
    pub seq: i64,
    pub end: RunEnd,
    pub run_dir: PathBuf,
    /// The run never started and gave its slot back (its owner shut down first): it has no record.
    pub released: bool,
    /// The store could not record its end (the database was unreachable): its owner must write
    /// `end` again until it is, since no one else settles a run whose owner lives.
    pub unrecorded: bool,
}

pub async fn execute(
    plan: RunPlan,
    store: SharedStore,
    clock: Arc<dyn Clock>,
    observer: Option<Observer>,
    mut stop: Stop,
) -> RunOutcome {
    let dir = plan.run_dir.path().to_owned();
    let spec = &plan.spec;
    let run = &spec.run;
    let attempt_spec = attempt_spec(&plan, &dir);
    let cwd = attempt_spec.cwd.clone();
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut receipt = Receipt::for_claim(
        &ClaimFacts {
            job_id: &plan.job_id,
            seq: plan.seq,
            trigger: plan.trigger,
            slot: plan.slot,
            due_at: plan.due_at,
            replay_of: plan.replay_of,
            upstream: plan.upstream.as_deref(),
            claimed_at: plan.claimed_at,
            started_at: None,
            status: if plan.queued {
                RunStatus::Queued
            } else {
                RunStatus::Running
            },
            slot_count: plan.slot_count,
            spec_hash: &plan.spec_hash,
            owner: &plan.owner,
        },
        spec,
        &cwd,
    );

    let mut artifact_error: Option<Error> = None;
    let events = match EventLog::create(
        &dir.join(EVENTS_FILE),
        &plan.job_id,
        plan.seq,
        Arc::clone(&clock),
        observer,
    ) {
        Ok(events) => Arc::new(events),
        Err(e) => {
            // Without an events log there is nothing to watch; record the failure and stop.
            return finish_unstarted(
                &plan,
                &store,
                &clock,
                &mut receipt,
                None,
                RunStatus::Failed,
                Some(e),
            )
            .await;
        }
    };
    let sinks = match (
        open_append(&dir.join(STDOUT_FILE)),
        open_append(&dir.join(STDERR_FILE)),
    ) {
        (Ok(stdout_log), Ok(stderr_log)) => OutputSinks {
            stdout_log,
            stderr_log,
            max_log_size: run.max_log_size,
            tail_len: summary::TAIL_LINES,
            captured: Arc::default(),
        },
        (Err(e), _) | (_, Err(e)) => {
            return finish_unstarted(
                &plan,
                &store,
                &clock,
                &mut receipt,
                Some(&events),
                RunStatus::Failed,
                Some(e),
            )
            .await;
        }
    };
    if let Err(e) = receipt.write(&dir, false) {
        artifact_error.get_or_insert(e);
    }

    if plan.queued {
        events.emit(EventKind::RunQueued {
            trigger: plan.trigger,
            upstream: plan.upstream.clone(),
        });
        if let Some(status) = wait_in_queue(&plan, &store, &clock, &mut receipt, &mut stop).await {
            // Still waiting when its node shuts down: taken from a shared store's queue, it goes
            // back there, to wait on another node.
            if plan.from_queue
                && status == RunStatus::Interrupted
                && held(&plan.control)
                && let Some(outcome) = give_back(&plan, &store, &clock).await
            {
                return outcome;
            }
            return finish_unstarted(
                &plan,
                &store,
                &clock,
                &mut receipt,
                Some(&events),
                status,
                artifact_error,
            )
            .await;
        }
    }

    if plan.slot_count > 1 {
        let last = plan.slot.or(plan.first_slot);
        if let (Some(first), Some(last)) = (plan.first_slot, last) {
            events.emit(EventKind::SlotsCoalesced {
                first_slot: rfc3339(first),
                last_slot: rfc3339(last),
                count: plan.slot_count,
            });
        }
    }
    // A run claimed ahead of its slot starts when the slot is due, never before.
    if let Some(wait) = plan
        .due_at
        .and_then(|due| (due - clock.now()).to_std().ok())
    {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = wait_for_hold(&plan.control) => {}
            requested = stop_requested(&mut stop) => {
                return finish_unstarted(&plan, &store, &clock, &mut receipt, Some(&events), requested, artifact_error).await;
            }
        }
    }
    // The owner began to shut down before the slot came, or its node's last heartbeat is too old to
    // vouch for it (it may have slept while others went on): the run never starts here, and gives
    // its slot (or, taken from the queue, itself) back when it can.
    let lapsed = heartbeat_lapsed(&plan.control);
    if lapsed || held(&plan.control) {
        if let Some(outcome) = give_back(&plan, &store, &clock).await {
            return outcome;
        }
        if lapsed {
            receipt.error_code = Some("node_silent".into());
            receipt.message = Some(
                "not started: its node's heartbeat was too old at its slot, and the store could not take the run back"
                    .into(),
            );
        }
        return finish_unstarted(
            &plan,
            &store,
            &clock,
            &mut receipt,
            Some(&events),
            RunStatus::Interrupted,
            artifact_error,
        )
        .await;
    }
    // To the millisecond, as the receipt and the store keep it, so the duration agrees with both.
    let started_at = clock.now().trunc_subsecs(3);
    if let Some(recording) = record_start(&plan, &store, started_at, None) {
        let _ = recording.await;
    }
    receipt.started_at = Some(rfc3339(started_at));
    receipt.status = RunStatus::Running;
    events.emit(EventKind::RunStarted {
        trigger: plan.trigger,
        upstream: plan.upstream.clone(),
        slot: plan.slot.map(rfc3339),
        max_attempts: spec.retry.max_attempts,
    });
    if plan.queued
        && let Err(e) = receipt.write(&dir, false)
    {
        artifact_error.get_or_insert(e);
    }

    let mut status = RunStatus::Failed;
    let mut attempt = 0;
    while attempt < spec.retry.max_attempts.max(1) {
        attempt += 1;
        let attempt_started = clock.now();
        let extra = [("JOBS_ATTEMPT".to_owned(), attempt.to_string())];
        let mut listed = false;
        let mut recording = None;
        let mut spawned = |pid: u32, leader: Option<&Identity>| {
            // The receipt lists the attempt as soon as it runs, and the store learns its process
            // group, so that whoever settles the run after its owner died can stop it.
            receipt.attempts.push(AttemptRecord {
                attempt,
                pid: Some(pid),
                pgid: Some(pid),
                leader_start: leader.map(|l| l.start),
                boot_id: leader.map(|l| l.boot.clone()),
                started_at: rfc3339(attempt_started),
                finished_at: None,
                duration_ms: None,
                status: RunStatus::Running,
                exit_code: None,
                signal: None,
                error_code: None,
                message: None,
            });
            if let Err(e) = receipt.write(&dir, false) {
                artifact_error.get_or_insert(e);
            }
            if let Some(leader) = leader {
                let process = AttemptProcess {
                    job_id: plan.job_id.clone(),
                    seq: plan.seq,
                    leader: leader.clone(),
                    kill_grace: attempt_spec.kill_grace,
                };
                // Recorded on a blocking thread while the attempt goes on; waited for once it ends.
                recording = record_start(&plan, &store, started_at, Some(process));
            }
            listed = true;
        };
        let mut result = run_attempt(
            &attempt_spec,
            attempt,
            &extra,
            &events,
            &sinks,
            &mut stop,
            &mut spawned,
        )
        .await;
        if let Some(recording) = recording {
            let _ = recording.await;
        }
        if listed {
            // Listed while it ran: replaced below by how it ended.
            receipt.attempts.pop();
        }
        // A cancel asked for through the store says who and why in the attempt too, not only the run.
        if result.status == RunStatus::Cancelled
            && let Some(request) = cancel_request_of(&plan, &store).await
        {
            result.message = Some(request.message());
        }
        let duration_ms = ms(result.duration);
        events.emit(EventKind::AttemptFinished {
            attempt,
            status: result.status,
            exit_code: result.exit_code,
            signal: result.signal,
            duration_ms,
            error_code: result.error_code.clone(),
            message: result.message.clone(),
        });
        receipt.attempts.push(AttemptRecord {
            attempt,
            pid: result.pid,
            pgid: result.pid,
            leader_start: result.leader.as_ref().map(|l| l.start),
            boot_id: result.leader.as_ref().map(|l| l.boot.clone()),
            started_at: rfc3339(attempt_started),
            finished_at: Some(rfc3339(clock.now())),
            duration_ms: Some(duration_ms),
            status: result.status,
            exit_code: result.exit_code,
            signal: result.signal,
            error_code: result.error_code.clone(),
            message: result.message.clone(),
        });
        status = result.status;
        let retryable = match status {
            RunStatus::Failed => spec.retry.retry_on.contains(&RetryOn::Failed),
            RunStatus::TimedOut => spec.retry.retry_on.contains(&RetryOn::TimedOut),
            _ => false,
        };
        if !retryable || attempt >= spec.retry.max_attempts {
            break;
        }
        let delay = backoff(
            spec.retry.backoff.as_duration(),
            spec.retry.max_backoff.as_duration(),
            attempt,
        );
        events.emit(EventKind::RetryScheduled {
            next_attempt: attempt + 1,
            delay_ms: ms(delay),
        });
        // Waiting to retry is where an operator's pause or disable must take effect: the next
        // attempt would start a command they asked to stop.
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            requested = stop_requested(&mut stop) => {
                status = requested;
                break;
            }
            () = job_halts(&plan, &store, &clock) => {
                status = RunStatus::Cancelled;
                break;
            }
        }
        if halted_by_job(&plan, &store, &clock).await {
            status = RunStatus::Cancelled;
            break;
        }
    }
    if let Some(e) = events.error() {
        artifact_error.get_or_insert(e);
    }
    let output = sinks
        .captured
        .lock()
        .map(|c| c.summary(run.max_log_size))
        .unwrap_or_default();
    finish(
        &plan,
        &store,
        &clock,
        Some(started_at),
        &mut receipt,
        Some(&events),
        &output,
        status,
        artifact_error,
    )
    .await
}

/// Calls the store on a blocking thread, so that its waits (the disk, another process's write lock)
/// never hold up the async workers that run the other runs.
async fn blocking<R: Send + 'static>(
    store: &SharedStore,
    call: impl FnOnce(&mut dyn Store) -> crate::error::Result<R> + Send + 'static,
) -> crate::error::Result<R> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || {
        let mut store = store.lock().map_err(|_| Error::Internal {
            message: "the store lock was poisoned".into(),
        })?;
        call(&mut **store)
    })
    .await
    .map_err(|e| Error::Internal {
        message: format!("a store call failed: {e}"),
    })?
}

/// What each attempt runs: the command (or the shell line), where, with the spec's environment and the
/// run's own `JOBS_*` variables, under the spec's limits.
/// For a triggered run, what it is told of the run(s) that triggered it: `JOBS_UPSTREAM_JOB` and
/// `JOBS_UPSTREAM_RUN` (the last of them, the one whose end triggered), `JOBS_UPSTREAM_RUNS` (all,
/// `job#seq` comma-separated) and `JOBS_UPSTREAM_RUN_DIR` when that run's directory is on this
/// machine, so the run can read what the upstream wrote.
fn upstream_env(plan: &RunPlan) -> Vec<(String, String)> {
    let Some(upstreams) = plan.upstream.as_deref() else {
        return Vec::new();
    };
    let mut env = vec![("JOBS_UPSTREAM_RUNS".to_owned(), upstreams.to_owned())];
    let last = upstreams
        .rsplit(',')
        .next()
        .and_then(|name| name.rsplit_once('#'))
        .and_then(|(job, seq)| Some((job, seq.parse::<i64>().ok()?)));
    if let Some((job, seq)) = last {
        env.push(("JOBS_UPSTREAM_JOB".into(), job.to_owned()));
        env.push(("JOBS_UPSTREAM_RUN".into(), seq.to_string()));
        let dir = crate::artifacts::rundir::run_path(&plan.home, job, seq);
        if crate::spec::checks::is_valid_id(job) && dir.is_dir() {
            env.push(("JOBS_UPSTREAM_RUN_DIR".into(), dir.display().to_string()));
        }
    }
    env
}

fn attempt_spec(plan: &RunPlan, dir: &std::path::Path) -> AttemptSpec {
    let run = &plan.spec.run;
    let cwd = plan.home.working_dir(&run.cwd);
    let argv = match (&run.command, &run.shell) {
        (Some(argv), _) => argv.clone(),
        (None, Some(line)) => vec!["/bin/sh".into(), "-c".into(), line.clone()],
        (None, None) => Vec::new(),
    };
    let mut env: Vec<(String, String)> = run
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.push(("JOBS_JOB_ID".into(), plan.job_id.clone()));
    env.push(("JOBS_RUN_SEQ".into(), plan.seq.to_string()));
    env.push(("JOBS_RUN_DIR".into(), dir.display().to_string()));
    if let Some(slot) = plan.stands_for {
        env.push(("JOBS_SLOT".into(), rfc3339(slot)));
    }
    env.extend(upstream_env(plan));
    // So that a job can call `jobs` itself (e.g. `"$JOBS_BIN" backup ...`) without relying on PATH,
    // where the shell's own `jobs` builtin would win anyway.
    if let Ok(exe) = std::env::current_exe() {
        env.push(("JOBS_BIN".into(), exe.display().to_string()));
    }
    AttemptSpec {
        argv,
        cwd,
        env,
        timeout: run.timeout.map(|t| t.as_duration()),
        kill_grace: run.kill_grace.as_duration(),
        setup: super::identity_limits::ProcessSetup::from_spec(run),
        leftovers: run.leftovers,
    }
}

/// Waits in the queue until an instance is free and this run is the oldest waiting; `Some` ends the
/// run before it starts: dropped (its job was paused or disabled meanwhile), interrupted (its owner
/// is shutting down) or stopped.
async fn wait_in_queue(
    plan: &RunPlan,
    store: &SharedStore,
    clock: &Arc<dyn Clock>,
    receipt: &mut Receipt,
    stop: &mut Stop,
) -> Option<RunStatus> {
    let spec = &plan.spec;
    let home = plan.home.clone();
    // A store that keeps failing must not leave the run polling in silence: each failure in a row
    // up to the tenth is logged, then one in a hundred.
    let mut failures: u32 = 0;
    loop {
        let (job_id, seq, home) = (plan.job_id.clone(), plan.seq, home.clone());
        let (max_instances, now) = (spec.policy.max_instances, clock.now());
        let shared = plan.shared.clone();
        let started = blocking(store, move |store| {
            store.start_queued(
                &job_id,
                seq,
                max_instances,
                &shared,
                &|d| run_is_alive(&home, d),
                now,
            )
        })
        .await;
        let started = match started {
            Ok(started) => {
                failures = 0;
                Ok(started)
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures <= 10 || failures.is_multiple_of(100) {
                    tracing::error!(run = %run_name(&plan.job_id, plan.seq), failures, "a queued run cannot check for a free instance: {e}");
                }
                Err(())
            }
        };
        let ended = match started {
            Ok(QueuedStart::Started) => return None,
            Ok(QueuedStart::Dropped { reason }) => {
                tracing::info!(run = %run_name(&plan.job_id, plan.seq), "dropped from the queue: the job is {reason}");
                receipt.error_code = Some(format!("skipped_{reason}"));
                receipt.message = Some(format!(
                    "skipped: the job was {reason} while this run waited in the queue"
                ));
                Some(RunStatus::Skipped)
            }
            // A queued run was decided (overlap `queue`), not just claimed early: at shutdown it
            // is recorded as interrupted before it began, rather than starting during the grace.
            Ok(QueuedStart::Waiting) | Err(()) if held(&plan.control) => {
                Some(RunStatus::Interrupted)
            }
            Ok(QueuedStart::Waiting) | Err(()) => None,
        };
        if ended.is_some() {
            return ended;
        }
        tokio::select! {
            () = tokio::time::sleep(QUEUE_POLL) => {}
            () = wait_for_hold(&plan.control) => {}
            requested = stop_requested(stop) => return Some(requested),
        }
    }
}

/// Resolves once the run's job is disabled (or, for a scheduled run, paused), having recorded that
/// as a request to cancel the run, by whoever changed the job's state.
async fn job_halts(plan: &RunPlan, store: &SharedStore, clock: &Arc<dyn Clock>) {
    while !halted_by_job(plan, store, clock).await {
        tokio::time::sleep(JOB_STATE_POLL).await;
    }
}

/// Whether the run's job is in a state that stops its retries: disabled, or paused for a run the
/// scheduler started (manual runs work while a job is paused, as in the queue). When it is, a cancel
/// request naming who changed the state is recorded, so the run ends cancelled with who and why, and
/// nothing later retries it. A store that cannot be read stops nothing.
async fn halted_by_job(plan: &RunPlan, store: &SharedStore, clock: &Arc<dyn Clock>) -> bool {
    let (job_id, seq, now) = (plan.job_id.clone(), plan.seq, clock.now());
    let scheduled = matches!(plan.trigger, Trigger::Schedule | Trigger::Catchup);
    let halted = blocking(store, move |store| {
        let job = match store.job_row(&job_id) {
            Ok(Some(job)) => job,
            Ok(None) => return Ok(false),
            Err(e) => {
                tracing::warn!(run = %run_name(&job_id, seq), "cannot read the job's state before a retry: {e}");
                return Ok(false);
            }
        };
        let halts = job.state == OperatorState::Disabled
            || (job.state == OperatorState::Paused && scheduled);
        if !halts {
            return Ok(false);
        }
        let reason = match &job.state_reason {
            Some(why) => format!(
                "the job was {} while the run waited to retry ({why}); no further attempt",
                job.state
            ),
            None => format!(
                "the job was {} while the run waited to retry; no further attempt",
                job.state
            ),
        };
        let by = job.state_by.as_deref().unwrap_or("unknown");
        let runs = [(job_id.clone(), seq)];
        if let Err(e) = store.request_cancel(&runs, by, Some(&reason), now) {
            tracing::error!(run = %run_name(&job_id, seq), "{e}");
        }
        tracing::info!(run = %run_name(&job_id, seq), "no further attempt: the job is {}", job.state);
        Ok(true)
    })
    .await;
    halted.unwrap_or(false)
}

/// Why a cancelled run was cancelled, when someone asked for it through the store.
async fn cancel_request_of(plan: &RunPlan, store: &SharedStore) -> Option<CancelRequest> {
    let (job_id, seq) = (plan.job_id.clone(), plan.seq);
    match blocking(store, move |store| store.cancel_request(&job_id, seq)).await {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(run = %run_name(&plan.job_id, plan.seq), "{e}");
            None
        }
    }
}

/// Whether the run's owner is shutting down.
fn held(control: &RunControl) -> bool {
    control.hold.as_ref().is_some_and(|hold| *hold.borrow())
}

/// Whether the leadership the run was claimed under has run out here (see [`RunControl::lease`]).
fn heartbeat_lapsed(control: &RunControl) -> bool {
    control.alive_until.as_ref().is_some_and(|until| {
        until
            .borrow()
            .is_none_or(|until| std::time::Instant::now() >= until)
    })
}

/// Resolves once the owner begins to shut down; never, for an owner that does not hold runs back.
async fn wait_for_hold(control: &RunControl) {
    let Some(hold) = control.hold.as_ref() else {
        return std::future::pending().await;
    };
    let mut hold = hold.clone();
    if hold.wait_for(|held| *held).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Tells the owner when the command started, or which process group an attempt runs in. Without an
/// owner batching them (a run of `jobsctl run`), the run records it in the store itself, on a blocking
/// thread whose handle is returned: the caller awaits it before it goes on past the attempt, so the
/// record is never written after the run's end.
fn record_start(
    plan: &RunPlan,
    store: &SharedStore,
    at: DateTime<Utc>,
    process: Option<AttemptProcess>,
) -> Option<tokio::task::JoinHandle<()>> {
    let started = Started {
        job_id: plan.job_id.clone(),
        seq: plan.seq,
        at,
        process,
    };
    if let Some(starts) = &plan.control.starts
        && starts.send(started.clone()).is_ok()
    {
        return None;
    }
    // No owner batching the starts: one small commit of its own.
    let store = Arc::clone(store);
    Some(tokio::task::spawn_blocking(move || {
        let recorded = store.lock().map(|mut store| match started.process {
            Some(process) => store.record_processes(&[process]),
            None => store.record_starts(&[(started.job_id.clone(), started.seq, started.at)]),
        });
        if let Ok(Err(e)) = recorded {
            tracing::error!(run = %run_name(&started.job_id, started.seq), "{e}");
        }
    }))
}

/// Gives back a run that never started: taken from a shared store's queue, to the queue; else its
/// slot, if it has one (see [`release`]).
async fn give_back(
    plan: &RunPlan,
    store: &SharedStore,
    clock: &Arc<dyn Clock>,
) -> Option<RunOutcome> {
    if !plan.from_queue {
        return release(plan, store, clock).await;
    }
    let dir = plan.run_dir.path().to_owned();
    let (shared, job_id, seq, owner, queued) = (
        Arc::clone(store),
        plan.job_id.clone(),
        plan.seq,
        plan.owner.clone(),
        plan.queued,
    );
    // The directory goes first: the run may come back to this node, whose next directory of it
    // must not find this one in the way.
    let given = tokio::task::spawn_blocking(move || {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(path = %dir.display(), "cannot remove the run directory of a run given back: {e}");
            return false;
        }
        let Ok(mut store) = shared.lock() else {
            return false;
        };
        match store.hand_back(&job_id, seq, &owner, queued) {
            Ok(given) => given,
            Err(e) => {
                tracing::error!(run = %run_name(&job_id, seq), "{e}");
                // The store may have taken it back before its answer was lost: then another
                // node may own it now, and nothing of it is this node's to record.
                matches!(store.run_row(&job_id, seq), Ok(Some(row)) if row.owner != owner)
            }
        }
    })
    .await
    .unwrap_or(false);
    if !given {
        return None;
    }
    tracing::info!(run = %run_name(&plan.job_id, plan.seq), "not started here; given back to the queue for another node");
    Some(unstarted_outcome(plan, clock))
}

/// What the owner hears of a run that never started and left no record of its own here.
fn unstarted_outcome(plan: &RunPlan, clock: &Arc<dyn Clock>) -> RunOutcome {
    RunOutcome {
        job_id: plan.job_id.clone(),
        seq: plan.seq,
        end: RunEnd {
            status: RunStatus::Interrupted,
            attempts: 0,
            exit_code: None,
            signal: None,
            error_code: None,
            message: None,
            started_at: None,
            finished_at: clock.now(),
            duration_ms: 0,
        },
        run_dir: plan.run_dir.path().to_owned(),
        released: true,
        unrecorded: false,
    }
}

/// Gives back the slot of a scheduled run that never started: its directory goes first, then its row,
/// and the job's pending slot moves back to it, so the next scheduler judges the slot afresh instead
/// of it ending as a run that never ran. `None` when it cannot be (not a scheduled run with a slot,
/// or its directory cannot be removed): the run is then recorded as interrupted.
async fn release(
    plan: &RunPlan,
    store: &SharedStore,
    clock: &Arc<dyn Clock>,
) -> Option<RunOutcome> {
    if plan.trigger != Trigger::Schedule || plan.slot.is_none() {
        return None;
    }
    let dir = plan.run_dir.path().to_owned();
    let (store, job_id, seq) = (Arc::clone(store), plan.job_id.clone(), plan.seq);
    let released = tokio::task::spawn_blocking(move || {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(path = %dir.display(), "cannot remove the run directory of an unstarted claim: {e}");
            return false;
        }
        match store.lock().map(|mut s| s.release_unstarted(&job_id, seq)) {
            Ok(Ok(released)) => released,
            Ok(Err(e)) => {
                tracing::error!(run = %run_name(&job_id, seq), "{e}");
                false
            }
            Err(_) => false,
        }
    })
    .await
    .unwrap_or(false);
    if !released {
        return None;
    }
    tracing::info!(run = %run_name(&plan.job_id, plan.seq), "not started before shutdown; its slot is judged again at the next start");
    Some(unstarted_outcome(plan, clock))
}

/// The delay before attempt `after + 1`: `backoff` doubled for each attempt after the first, at most
/// `max`.
pub fn backoff(backoff: Duration, max: Duration, after: u32) -> Duration {
    let factor = 2u32.saturating_pow(after.saturating_sub(1));
    backoff.saturating_mul(factor).min(max)
}
/// Ends a run that never started its command (artifacts that could not be made, stopped or dropped
/// while it waited): no start time, no output.
async fn finish_unstarted(
    plan: &RunPlan,
    store: &SharedStore,
    clock: &Arc<dyn Clock>,
    receipt: &mut Receipt,
    events: Option<&EventLog>,
    status: RunStatus,
    artifact_error: Option<Error>,
) -> RunOutcome {
    let no_output = summary::Output::default();
    finish(
        plan,
        store,
        clock,
        None,
        receipt,
        events,
        &no_output,
        status,
        artifact_error,
    )
    .await
}

/// Ends a run: the last event, the summary, the durable receipt, then the store. `started_at` is when
/// its command started, if it did.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site per way a run can end, all in this file"
)]
async fn finish(
    plan: &RunPlan,
    store: &SharedStore,
    clock: &Arc<dyn Clock>,
    started_at: Option<DateTime<Utc>>,
    receipt: &mut Receipt,
    events: Option<&EventLog>,
    output: &summary::Output,
    mut status: RunStatus,
    artifact_error: Option<Error>,
) -> RunOutcome {
    let finished_at = clock.now();
    let last = receipt.attempts.last().cloned();
    // Without an attempt, a reason set on the receipt beforehand (a run dropped from the queue) stands.
    let mut error_code = match &last {
        Some(attempt) => attempt.error_code.clone(),
        None => receipt.error_code.clone(),
    };
    let mut message = match &last {
        Some(attempt) => attempt.message.clone(),
        None => receipt.message.clone(),
    };
    let reason_set = last.is_none() && receipt.error_code.is_some();
    if matches!(status, RunStatus::Cancelled | RunStatus::Interrupted)
        && last.as_ref().is_none_or(|a| a.status != status)
        && !reason_set
    {
        let (code, text) = stop_reason(status);
        error_code = Some(code.into());
        message = Some(text.into());
    }
    if status == RunStatus::Cancelled
        && let Some(request) = cancel_request_of(plan, store).await
    {
        error_code = Some("cancelled".into());
        message = Some(request.message());
    }
    if let Some(error) = &artifact_error {
        // A run whose record could not be written is not a success, whatever the command did.
        if status == RunStatus::Succeeded {
            status = RunStatus::Failed;
        }
        error_code = Some(error.code().into());
        message = Some(error.to_string());
    }
    let last_attempt = last.as_ref();
    let end = RunEnd {
        status,
        attempts: u32::try_from(receipt.attempts.len()).unwrap_or(u32::MAX),
        exit_code: last_attempt.and_then(|a| a.exit_code),
        signal: last_attempt.and_then(|a| a.signal),
        error_code,
        message,
        started_at,
        finished_at,
        duration_ms: started_at.map_or(0, |s| {
            u64::try_from((finished_at - s).num_milliseconds()).unwrap_or(0)
        }),
    };
    if let Some(events) = events {
        events.emit(EventKind::run_finished(&end));
    }
    receipt.record_end(&end);
    let dir = plan.run_dir.path();
    // The summary, the durable receipt (two fsyncs) and the store's commit wait on the disk: on a
    // blocking thread they leave the async workers free to start the runs that are due meanwhile.
    let written = {
        let (dir, receipt, output) = (dir.to_owned(), receipt.clone(), output.clone());
        let recorded = end.clone();
        let (store, job_id, seq) = (Arc::clone(store), plan.job_id.clone(), plan.seq);
        tokio::task::spawn_blocking(move || {
            if let Err(e) =
                summary::write_run(&dir, &receipt, &output).and_then(|()| receipt.write(&dir, true))
            {
                tracing::error!(run = %run_name(&job_id, seq), "{e}");
            }
            let recorded = store
                .lock()
                .map_err(|_| "the store lock was poisoned".to_owned())
                .and_then(|mut store| {
                    store
                        .finish_run(&job_id, seq, &recorded)
                        .map_err(|e| e.to_string())
                });
            match recorded {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(run = %run_name(&job_id, seq), "{e}");
                    false
                }
            }
        })
        .await
    };
    if let Some(mirror) = &plan.control.mirror {
        mirror.receipt(&plan.job_id, plan.seq, &receipt);
    }
    let unrecorded = match written {
        Ok(recorded) => !recorded,
        Err(e) => {
            tracing::error!(run = %run_name(&plan.job_id, plan.seq), "recording the end of the run failed: {e}");
            true
        }
    };
    RunOutcome {
        job_id: plan.job_id.clone(),
        seq: plan.seq,
        end,
        run_dir: dir.to_owned(),
        released: false,
        unrecorded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let (base, cap) = (Duration::from_secs(10), Duration::from_secs(60));
        let delays: Vec<u64> = (1..=5)
            .map(|after| backoff(base, cap, after).as_secs())
            .collect();
        assert_eq!(delays, [10, 20, 40, 60, 60]);
        assert_eq!(
            backoff(base, cap, 200),
            cap,
            "no overflow for long runs of retries"
        );
    }
}
