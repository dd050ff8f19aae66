//! One attempt: start the command in its own process group, copy its output to the `.log` files and
//! to `output` events, both bounded, and stop the whole group on timeout or cancellation (SIGTERM, a
//! grace period, SIGKILL). When the main process exits, what is left of its group is stopped the same
//! way (unless the spec keeps it), so a run never leaves processes behind. Failing to start is a failed
//! attempt, never a crash.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::watch;

use super::identity_limits::ProcessSetup;
use crate::artifacts::events::ProcessInfo;
use crate::artifacts::summary::Output;
use crate::artifacts::{EventKind, EventLog, Stream};
use crate::process::{Identity, members};
use crate::run::RunStatus;
use crate::spec::model::Leftovers;
use crate::spec::size::ByteSize;

/// Output lines longer than this are cut in their `output` event (the `.log` file keeps them whole).
pub const MAX_EVENT_LINE: usize = 16 * 1024;

/// A run writes at most this many `output` events, over all its attempts and both streams, or this
/// many bytes of lines in them, whichever comes first; then one `output_truncated`. Each event costs
/// about 100 bytes around its line, so without a cap `events.jsonl` grew to many times the output,
/// and the `.log` files are the place for all of it anyway.
pub const MAX_OUTPUT_EVENTS: u64 = 10_000;
pub const MAX_OUTPUT_EVENT_BYTES: u64 = 8 << 20;

/// How long output pipes may stay open after the command exited normally: a background process that
/// inherited them would otherwise keep the run open forever.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// With `leftovers: keep`, what the main process wrote just before it exited is read for this long;
/// output of the processes kept after that is not the run's.
const DRAIN_KEPT: Duration = Duration::from_millis(200);

/// How often a stop looks whether the group has emptied.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// What to execute, resolved from the spec.
#[derive(Debug, Clone)]
pub struct AttemptSpec {
    /// Program and arguments; a shell command is `["/bin/sh", "-c", line]`.
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    pub kill_grace: Duration,
    /// `run.user`, `run.group` and `run.limits`.
    pub setup: ProcessSetup,
    /// What becomes of the group's other processes when the main one exits.
    pub leftovers: Leftovers,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    /// Succeeded, Failed, TimedOut or Cancelled.
    pub status: RunStatus,
    pub pid: Option<u32>,
    /// The process as `/proc` named it when it started (see [`Identity`]).
    pub leader: Option<Identity>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration: Duration,
    pub error_code: Option<String>,
    pub message: Option<String>,
}

/// Where an attempt's output goes besides the events: the raw logs and what the run captured so far,
/// which lives as long as the run so that its caps hold over all attempts.
pub struct OutputSinks {
    pub stdout_log: File,
    pub stderr_log: File,
    /// Each log stops growing here (`run.max_log_size`).
    pub max_log_size: ByteSize,
    pub tail_len: usize,
    pub captured: Arc<Mutex<Captured>>,
}

/// A run's output as far as it was recorded, shared by the readers of both pipes.
#[derive(Debug, Default)]
pub struct Captured {
    /// The last lines, for the summary.
    pub tail: VecDeque<(Stream, String)>,
    pub event_lines: u64,
    pub event_bytes: u64,
    /// Output events reached their cap; no more are written in this run.
    pub events_truncated: bool,
    pub capped_logs: Vec<Stream>,
}

impl Captured {
    /// What the summary reports of the output.
    pub fn summary(&self, max_log_size: ByteSize) -> Output {
        Output {
            tail: self.tail.iter().cloned().collect(),
            events_truncated_after: self.events_truncated.then_some(self.event_lines),
            capped_logs: self
                .capped_logs
                .iter()
                .map(|stream| (*stream, max_log_size))
                .collect(),
        }
    }
}

/// Runs one attempt. A status arriving on `stop` (Cancelled, or Interrupted at shutdown) stops it like a
/// timeout does, and becomes the attempt's status. `spawned` hears of the process as soon as it runs
/// (its pid, and its identity when `/proc` gives it), before anything else happens.
pub async fn run_attempt(
    spec: &AttemptSpec,
    attempt: u32,
    extra_env: &[(String, String)],
    events: &Arc<EventLog>,
    sinks: &OutputSinks,
    stop: &mut Stop,
    spawned: &mut (dyn FnMut(u32, Option<&Identity>) + Send),
) -> AttemptResult {
    let started = Instant::now();
    let failed = |code: &str, message: String| AttemptResult {
        status: RunStatus::Failed,
        pid: None,
        leader: None,
        exit_code: None,
        signal: None,
        duration: started.elapsed(),
        error_code: Some(code.to_owned()),
        message: Some(message),
    };
    if !spec.cwd.is_dir() {
        return failed(
            "bad_cwd",
            format!(
                "working directory {} does not exist or is not a directory",
                spec.cwd.display()
            ),
        );
    }
    let Some((program, args)) = spec.argv.split_first() else {
        return failed("spawn_failed", "the command is empty".into());
    };
    let (Ok(stdout_log), Ok(stderr_log)) =
        (sinks.stdout_log.try_clone(), sinks.stderr_log.try_clone())
    else {
        return failed(
            "artifact_write_failed",
            "cannot open the output logs".into(),
        );
    };
    let mut command = Command::new(program);
    if let Err((code, message)) = spec.setup.configure(&mut command) {
        return failed(code, message);
    }
    // The store's password is the scheduler's, never a job's: a run inherits the environment, and
    // any command of any spec could read the database's password from it.
    for name in crate::store::store_secrets() {
        command.env_remove(name);
    }
    command
        .args(args)
        .current_dir(&spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .envs(extra_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: signals reach everything it started, and the terminal's Ctrl-C
        // reaches only us, so we decide how the run ends.
        .process_group(0)
        .kill_on_drop(false);
    // A stop that came before the start means the command never runs: starting it only to kill it
    // would let its side effects happen, and record an exit status it never had a chance to give.
    if let Some(requested) = *stop.borrow() {
        let (code, message) = stop_reason(requested);
        return AttemptResult {
            status: requested,
            error_code: Some(code.to_owned()),
            message: Some(format!("{message} before the command started")),
            ..failed(code, String::new())
        };
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return failed(
                "spawn_failed",
                format!("failed to start {program}: {}", io_cause(&e)),
            );
        }
    };
    let pid = child.id();
    if let Err((code, message)) = spec.setup.limit(pid) {
        // Running on without the limits it asked for is worse than not running.
        if let Some(group) = pid
            .and_then(|p| i32::try_from(p).ok())
            .and_then(Pid::from_raw)
        {
            let _ = kill_process_group(group, Signal::KILL);
        }
        let _ = child.wait().await;
        return failed(code, message);
    }
    // Read now, while the child cannot have been reaped: with its start time, the pid names this
    // process for good, and whoever settles the run after its owner died can tell its group from a
    // stranger's that got the pid later.
    let leader = pid.and_then(Identity::of);
    events.emit(EventKind::AttemptStarted {
        attempt,
        pid,
        pgid: pid,
        leader_start: leader.as_ref().map(|l| l.start),
        boot_id: leader.as_ref().map(|l| l.boot.clone()),
    });
    if let Some(pid) = pid {
        spawned(pid, leader.as_ref());
    }

    let mut readers = Vec::with_capacity(2);
    if let Some(pipe) = child.stdout.take() {
        readers.push(tokio::spawn(pump(
            pipe,
            Stream::Stdout,
            stdout_log,
            attempt,
            events,
            sinks,
        )));
    }
    if let Some(pipe) = child.stderr.take() {
        readers.push(tokio::spawn(pump(
            pipe,
            Stream::Stderr,
            stderr_log,
            attempt,
            events,
            sinks,
        )));
    }

    let group = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(Pid::from_raw);
    let signal_group = |signal: Signal, name: &str| {
        if let Some(group) = group {
            // ESRCH only means everyone is gone already.
            let _ = kill_process_group(group, signal);
            events.emit(EventKind::KillSent {
                attempt,
                signal: name.to_owned(),
            });
        }
    };

    let timeout = spec.timeout.map(|t| tokio::time::sleep(t));
    let (mut wait, mut stopped) = tokio::select! {
        status = child.wait() => (Some(status), None),
        () = async { match timeout { Some(t) => t.await, None => std::future::pending().await } } => (None, Some(RunStatus::TimedOut)),
        requested = stop_requested(stop) => (None, Some(requested)),
    };
    // The command may have exited before the deadline or the request and still be unseen: when this
    // process was frozen (SIGSTOP, a suspended machine), its timer and the child's exit wake it
    // together. An exit that already happened is how the attempt ended; nothing is left to stop.
    if stopped.is_some()
        && let Ok(Some(status)) = child.try_wait()
    {
        wait = Some(Ok(status));
        stopped = None;
    }
    if stopped == Some(RunStatus::TimedOut) {
        let timeout_ms = spec
            .timeout
            .map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        events.emit(EventKind::Timeout {
            attempt,
            timeout_ms,
        });
    }
    let status = match wait {
        Some(status) => status,
        None => {
            signal_group(Signal::TERM, "SIGTERM");
            match tokio::time::timeout(spec.kill_grace, child.wait()).await {
                Ok(status) => status,
                // The same late timer as above: a group that obeyed SIGTERM needs no SIGKILL.
                Err(_) => match child.try_wait() {
                    Ok(Some(status)) => Ok(status),
                    Ok(None) | Err(_) => {
                        signal_group(Signal::KILL, "SIGKILL");
                        child.wait().await
                    }
                },
            }
        }
    };
    let duration = started.elapsed();
    if stopped.is_some() {
        // Whatever the group left behind (a grandchild ignoring SIGTERM) goes too, so nothing survives
        // a stopped run and the output pipes close.
        if let Some(group) = group {
            let _ = kill_process_group(group, Signal::KILL);
        }
    }
    // The main process exited by itself: what it left running in its group (a daemon it started, a
    // background job holding the pipes) ends with the attempt, unless the spec keeps it.
    let mut kept = false;
    if stopped.is_none()
        && let Some(pgid) = pid
    {
        let left = members(pgid);
        if !left.is_empty() {
            kept = spec.leftovers == Leftovers::Keep;
            events.emit(EventKind::ProcessesLeft {
                attempt,
                cause: "main_exited".into(),
                action: if kept { "kept" } else { "killed" }.into(),
                processes: left
                    .iter()
                    .map(|m| ProcessInfo {
                        pid: m.pid,
                        name: m.name.clone(),
                    })
                    .collect(),
            });
            if !kept {
                signal_group(Signal::TERM, "SIGTERM");
                let deadline = tokio::time::Instant::now() + spec.kill_grace;
                while tokio::time::Instant::now() < deadline && !members(pgid).is_empty() {
                    tokio::time::sleep(GROUP_POLL).await;
                }
                if !members(pgid).is_empty() {
                    signal_group(Signal::KILL, "SIGKILL");
                }
            }
        }
    }
    let drain = if kept { DRAIN_KEPT } else { DRAIN_AFTER_EXIT };
    let drained = tokio::time::timeout(drain, async {
        for reader in readers.iter_mut() {
            let _ = reader.await;
        }
    })
    .await
    .is_ok();
    if !drained {
        // Stop reading: nothing may be written into a finished run's events or logs.
        for reader in &readers {
            reader.abort();
        }
    }

    let (exit_code, signal) = match &status {
        Ok(status) => (status.code(), status.signal()),
        Err(_) => (None, None),
    };
    let (run_status, error_code, mut message) = match (stopped, &status) {
        (Some(RunStatus::TimedOut), _) => (
            RunStatus::TimedOut,
            Some("timed_out"),
            Some(format!(
                "stopped after the timeout of {} s",
                spec.timeout.map_or(0.0, |t| t.as_secs_f64())
            )),
        ),
        (Some(requested), _) => {
            let (code, message) = stop_reason(requested);
            (requested, Some(code), Some(message.to_owned()))
        }
        (None, Err(e)) => (
            RunStatus::Failed,
            Some("wait_failed"),
            Some(format!("lost track of the process: {e}")),
        ),
        (None, Ok(s)) if s.success() => (RunStatus::Succeeded, None, None),
        (None, Ok(s)) => match (s.code(), s.signal()) {
            (Some(code), _) => (
                RunStatus::Failed,
                Some("exit_nonzero"),
                Some(format!("exited with code {code}")),
            ),
            (None, Some(signal)) => (
                RunStatus::Failed,
                Some("killed_by_signal"),
                Some(format!("killed by signal {signal}")),
            ),
            (None, None) => (
                RunStatus::Failed,
                Some("exit_unknown"),
                Some("ended without an exit code".to_owned()),
            ),
        },
    };
    if kept {
        let note = "processes of its group were kept running (leftovers: keep); their output is not captured";
        message = Some(message.map_or_else(|| note.to_owned(), |m| format!("{m}; {note}")));
    } else if !drained {
        let note = "a background process still held the output pipes open; output after the exit was not captured";
        message = Some(message.map_or_else(|| note.to_owned(), |m| format!("{m}; {note}")));
    }
    AttemptResult {
        status: run_status,
        pid,
        leader,
        exit_code,
        signal,
        duration,
        error_code: error_code.map(str::to_owned),
        message,
    }
}

/// An I/O error's cause as a message fragment: `no such file or directory`, without the OS error number.
fn io_cause(error: &std::io::Error) -> String {
    let text = error.to_string();
    let cause = text.split(" (os error").next().unwrap_or_default();
    let mut chars = cause.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => cause.to_owned(),
    }
}

/// Tells a run to stop, and which status to record: Cancelled (on request) or Interrupted (the scheduler
/// is shutting down).
pub type Stop = watch::Receiver<Option<RunStatus>>;

/// Resolves with the requested status once a stop is requested. A closed channel means no one can stop
/// the run any more: it then never resolves.
pub async fn stop_requested(stop: &mut Stop) -> RunStatus {
    // Copy the status out at once: the borrow of the channel must not live across an await.
    let requested = stop
        .wait_for(Option::is_some)
        .await
        .map(|r| r.unwrap_or(RunStatus::Cancelled));
    match requested {
        Ok(requested) => requested,
        Err(_) => std::future::pending().await,
    }
}

/// The error code and message recorded for a stopped run.
pub fn stop_reason(status: RunStatus) -> (&'static str, &'static str) {
    match status {
        RunStatus::Interrupted => ("interrupted", "stopped because the scheduler shut down"),
        _ => ("cancelled", "stopped on request"),
    }
}

/// Copies one pipe to its log file byte for byte up to the size limit, and to `output` events line by
/// line up to theirs. Past both it goes on reading, so the command never blocks on a full pipe.
fn pump<R: AsyncRead + Unpin + Send + 'static>(
    mut pipe: R,
    stream: Stream,
    log: File,
    attempt: u32,
    events: &Arc<EventLog>,
    sinks: &OutputSinks,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let events = Arc::clone(events);
    let captured = Arc::clone(&sinks.captured);
    let tail_len = sinks.tail_len;
    let mut log = CappedLog::new(log, stream, sinks.max_log_size);
    async move {
        let mut buffer = vec![0u8; 64 * 1024];
        let mut line: Vec<u8> = Vec::new();
        let mut truncated = false;
        let emit = |line: &mut Vec<u8>, truncated: &mut bool| {
            let text = String::from_utf8_lossy(line).into_owned();
            // Held while the event is written, so that the cap and the order of events in the file
            // agree even with both streams at it at once.
            let mut captured = match captured.lock() {
                Ok(captured) => captured,
                Err(poisoned) => poisoned.into_inner(),
            };
            if captured.tail.len() == tail_len {
                captured.tail.pop_front();
            }
            captured.tail.push_back((stream, text.clone()));
            let bytes = u64::try_from(line.len()).unwrap_or(u64::MAX);
            let within_cap = captured.event_lines < MAX_OUTPUT_EVENTS
                && captured.event_bytes.saturating_add(bytes) <= MAX_OUTPUT_EVENT_BYTES;
            if captured.events_truncated {
                // Counted and kept in the tail only: the events already say where output stopped.
            } else if within_cap {
                captured.event_lines += 1;
                captured.event_bytes += bytes;
                events.emit(EventKind::Output {
                    attempt,
                    stream,
                    line: text,
                    truncated: *truncated,
                });
            } else {
                captured.events_truncated = true;
                events.emit(EventKind::OutputTruncated {
                    attempt,
                    stream,
                    lines: captured.event_lines,
                    bytes: captured.event_bytes,
                });
            }
            line.clear();
            *truncated = false;
        };
        loop {
            let n = match pipe.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buffer[..n];
            if log.write(chunk)
                && let Ok(mut captured) = captured.lock()
            {
                captured.capped_logs.push(stream);
            }
            for piece in chunk.split_inclusive(|b| *b == b'\n') {
                let (body, complete) = match piece.split_last() {
                    Some((b'\n', body)) => (body, true),
                    _ => (piece, false),
                };
                let room = MAX_EVENT_LINE.saturating_sub(line.len());
                if body.len() > room {
                    line.extend_from_slice(&body[..room]);
                    truncated = true;
                } else {
                    line.extend_from_slice(body);
                }
                if complete {
                    emit(&mut line, &mut truncated);
                }
            }
        }
        if !line.is_empty() || truncated {
            emit(&mut line, &mut truncated);
        }
    }
}

/// One stream's `.log` file, which takes bytes until it holds `max` of them, then a marker line, then
/// nothing more.
struct CappedLog {
    file: File,
    stream: Stream,
    max: ByteSize,
    /// What the file holds, earlier attempts included.
    written: u64,
    full: bool,
    at_line_start: bool,
}

impl CappedLog {
    fn new(file: File, stream: Stream, max: ByteSize) -> Self {
        // The file is the run's, shared by its attempts: an earlier attempt may have filled it.
        let written = file.metadata().map_or(0, |m| m.len());
        Self {
            file,
            stream,
            max,
            written,
            full: written > max.bytes(),
            at_line_start: true,
        }
    }

    /// Appends what fits of `chunk`; true when this is the write that reached the limit. A failed write
    /// shows as a shorter log, never a stuck run.
    fn write(&mut self, chunk: &[u8]) -> bool {
        if self.full {
            return false;
        }
        let room = self.max.bytes().saturating_sub(self.written);
        let fits = usize::try_from(room).map_or(chunk.len(), |room| room.min(chunk.len()));
        let kept = &chunk[..fits];
        let _ = self.file.write_all(kept);
        self.written += u64::try_from(kept.len()).unwrap_or(u64::MAX);
        if let Some(last) = kept.last() {
            self.at_line_start = *last == b'\n';
        }
        if fits == chunk.len() {
            return false;
        }
        let name = match self.stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        let marker = format!(
            "{}[jobs] {name}.log reached run.max_log_size ({}); the rest of {name} was discarded\n",
            if self.at_line_start { "" } else { "\n" },
            self.max
        );
        let _ = self.file.write_all(marker.as_bytes());
        self.written += u64::try_from(marker.len()).unwrap_or(u64::MAX);
        self.full = true;
        true
    }
}
