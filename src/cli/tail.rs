//! `jobsctl tail <id> [--run N] [-f] [--forever]`: a run's events as they happen. Reads `events.jsonl`
//! directly, so it works while the run is being written, and holds back a line until its newline has
//! been written. Following wakes on file-system events (notify) and polls as a fallback.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Local};

use super::Ctx;
use super::output::{Output, Report, Style};
use crate::artifacts::events::ProcessInfo;
use crate::artifacts::rundir::EVENTS_FILE;
use crate::artifacts::{Event, EventKind, RunDir, Stream};
use crate::error::{Error, Result};
use crate::run::{RunStatus, run_name};

/// The longest a follower waits without a file-system event before looking again.
const POLL: Duration = Duration::from_millis(50);

/// The ends of runs that have events (skipped and missed slots are records without any).
const ENDED_WITH_EVENTS: [RunStatus; 5] = [
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::TimedOut,
    RunStatus::Cancelled,
    RunStatus::Interrupted,
];
/// How often a follower checks that the run it follows still has a live owner.
const OWNER_CHECK: Duration = Duration::from_secs(1);

pub struct TailArgs {
    pub run: Option<i64>,
    pub follow: bool,
    pub forever: bool,
}

pub fn run(ctx: &Ctx, id: &str, args: &TailArgs) -> Result<Report> {
    let catalog = ctx.catalog_with_runs(Some(id))?;
    let job_dir = crate::artifacts::rundir::job_dir(&ctx.home, id);
    let mut printer = Printer {
        out: ctx.out,
        raw: ctx.out.json,
    };
    let follow = args.follow || args.forever;
    // A run executed on another node of a shared store: its directory is there, its events are
    // mirrored here.
    // On such a store, `--forever` follows the job's runs wherever each one runs.
    let everywhere = args.forever && catalog.store.mirrors();
    if let Some(seq) = elsewhere(&*catalog.store, id, args.run, &job_dir)? {
        if everywhere {
            return follow_everywhere(&mut printer, &*catalog.store, id, &job_dir, seq);
        }
        return follow_mirrored(&mut printer, &*catalog.store, id, seq, follow);
    }
    let start = match args.run {
        Some(seq) => {
            if !job_dir.join(seq.to_string()).join(EVENTS_FILE).exists() {
                return Err(super::replay::not_a_run(&*catalog.store, id, seq));
            }
            Some(seq)
        }
        None => {
            // The oldest run in flight, or else the latest run.
            let active = catalog
                .store
                .active_runs()?
                .into_iter()
                .find(|r| r.job_id == id)
                .map(|r| r.seq);
            active.or_else(|| latest_seq(&job_dir))
        }
    };
    let Some(mut seq) = start else {
        if !follow {
            return Ok(quiet(format!("{id} has no runs yet\n")));
        }
        printer.note(&format!("{id} has no runs yet; waiting for the next one"));
        if everywhere {
            let next = wait_for_any_run(&*catalog.store, id, &job_dir, 0)?;
            return follow_everywhere(&mut printer, &*catalog.store, id, &job_dir, next);
        }
        let next = wait_for_run(&job_dir, 0);
        return follow_from(&mut printer, id, &job_dir, next, args.forever);
    };
    if !follow {
        let dir = job_dir.join(seq.to_string());
        let mut reader = EventReader::new(&dir);
        for line in reader.read_new()? {
            printer.print(&line);
        }
        return Ok(quiet(String::new()));
    }
    if args.run.is_none()
        && !run_is_active(&job_dir.join(seq.to_string()))
        && latest_seq(&job_dir) == Some(seq)
    {
        // Nothing in flight: show the last run, then wait for the next one.
        if !args.forever {
            printer.note(&format!(
                "no run of {id} in flight; waiting for the next one"
            ));
            seq = wait_for_run(&job_dir, seq);
        }
    }
    if everywhere {
        return follow_everywhere(&mut printer, &*catalog.store, id, &job_dir, seq);
    }
    follow_from(&mut printer, id, &job_dir, seq, args.forever)
}

/// `--forever` on a store several nodes share: follows run `seq`, then every later run of the job
/// in order, each from this home's directory when it ran here and from the store's mirror when it
/// ran on another node.
fn follow_everywhere(
    printer: &mut Printer,
    store: &dyn crate::store::Store,
    id: &str,
    job_dir: &Path,
    mut seq: i64,
) -> Result<Report> {
    loop {
        let dir = job_dir.join(seq.to_string());
        if dir.join(EVENTS_FILE).exists() {
            follow_run(printer, &dir)?;
        } else {
            follow_mirrored(printer, store, id, seq, true)?;
        }
        seq = wait_for_any_run(store, id, job_dir, seq)?;
    }
}

/// Waits until a run of `id` newer than `after` has events, here or in the store's mirror; returns
/// the oldest such seq. Skipped and missed slots are records without events, and are passed over.
fn wait_for_any_run(
    store: &dyn crate::store::Store,
    id: &str,
    job_dir: &Path,
    after: i64,
) -> Result<i64> {
    let filter = crate::store::HistoryFilter {
        job_id: Some(id.to_owned()),
        statuses: [&[RunStatus::Running][..], &ENDED_WITH_EVENTS].concat(),
        limit: 100,
        ..crate::store::HistoryFilter::default()
    };
    loop {
        let (rows, _) = store.history(&filter)?;
        let mut newer: Vec<i64> = rows.iter().map(|r| r.seq).filter(|s| *s > after).collect();
        newer.sort_unstable();
        for seq in newer {
            let here = job_dir.join(seq.to_string()).join(EVENTS_FILE).exists();
            if here || !store.mirrored_events(id, seq, 0)?.is_empty() {
                return Ok(seq);
            }
        }
        std::thread::sleep(MIRROR_POLL);
    }
}

/// The run to read from the store's mirror: the one asked for, or else the oldest in flight (or the
/// latest), when the store mirrors runs and this home has no directory for it.
fn elsewhere(
    store: &dyn crate::store::Store,
    id: &str,
    run: Option<i64>,
    job_dir: &Path,
) -> Result<Option<i64>> {
    if !store.mirrors() {
        return Ok(None);
    }
    let seq = match run {
        Some(seq) => seq,
        None => {
            let active = store
                .active_runs()?
                .into_iter()
                .find(|r| r.job_id == id)
                .map(|r| r.seq);
            let latest = || -> Result<Option<i64>> {
                let filter = crate::store::HistoryFilter {
                    job_id: Some(id.to_owned()),
                    // Skipped and missed slots are records without events.
                    statuses: ENDED_WITH_EVENTS.to_vec(),
                    limit: 1,
                    ..crate::store::HistoryFilter::default()
                };
                Ok(store.history(&filter)?.0.first().map(|r| r.seq))
            };
            match active.map_or_else(latest, |seq| Ok(Some(seq)))? {
                Some(seq) => seq,
                None => return Ok(None),
            }
        }
    };
    let local = job_dir.join(seq.to_string()).join(EVENTS_FILE).exists();
    Ok((!local && store.run_exists(id, seq)?).then_some(seq))
}

/// How often a mirrored run is read again while it is followed.
const MIRROR_POLL: Duration = Duration::from_millis(250);

/// Prints a run's mirrored events; with `follow`, until `run_finished`, or until the store records
/// the run's end (its owner died, or its last lines were never mirrored).
fn follow_mirrored(
    printer: &mut Printer,
    store: &dyn crate::store::Store,
    id: &str,
    seq: i64,
    follow: bool,
) -> Result<Report> {
    let mut after = 0;
    let mut ended_before = false;
    let mut output_lines = 0;
    loop {
        for (n, line) in store.mirrored_events(id, seq, after)? {
            after = n;
            printer.print(&line);
            let event = serde_json::from_str::<Event>(&line).ok();
            if event
                .as_ref()
                .is_some_and(|e| matches!(e.kind, EventKind::Output { .. }))
            {
                output_lines += 1;
                // The store keeps a run's first output lines only: say where the rest is.
                if output_lines == crate::mirror::OUTPUT_LINES_MIRRORED {
                    printer.note(&format!(
                        "the store keeps the first {output_lines} output lines of {}: the rest is in its run directory on the node that ran it",
                        run_name(id, seq)
                    ));
                }
            }
            if let Some(event) = event
                && let EventKind::RunFinished { status, .. } = event.kind
            {
                let error = (status != RunStatus::Succeeded).then_some(Error::RunsFailed {
                    failed: 1,
                    total: 1,
                });
                return Ok(Report::streamed(String::new()).with_error(error));
            }
        }
        if !follow {
            return Ok(quiet(String::new()));
        }
        // Ended in the store with no run_finished mirrored: one more read (its last lines may be on
        // their way), then say so.
        let ended = store
            .run_row(id, seq)?
            .is_none_or(|row| !row.status.is_active());
        if ended && ended_before {
            printer.note(&format!(
                "{} ended without its run_finished event reaching the store",
                run_name(id, seq)
            ));
            return Ok(
                Report::streamed(String::new()).with_error(Some(Error::RunsFailed {
                    failed: 1,
                    total: 1,
                })),
            );
        }
        ended_before = ended;
        std::thread::sleep(if ended { MIRROR_POLL * 4 } else { MIRROR_POLL });
    }
}

/// A run's event lines as written (whole lines only): what the HTTP API answers for a run's events.
pub fn event_lines(ctx: &Ctx, id: &str, seq: i64) -> Result<String> {
    // The job must exist before its id names a path.
    let catalog = ctx.catalog_with_runs(Some(id))?;
    let job_dir = crate::artifacts::rundir::job_dir(&ctx.home, id);
    let dir = job_dir.join(seq.to_string());
    // A link where a directory `jobs` made should be names no run: nothing is read through it.
    let real = |d: &Path| crate::artifacts::rundir::ensure_real_dir(d).is_ok();
    if !real(&job_dir) || !real(&dir) || !dir.join(EVENTS_FILE).exists() {
        // Executed on another node of a shared store: its events are in the store's mirror.
        let mirrored = catalog.store.mirrored_events(id, seq, 0)?;
        if mirrored.is_empty() {
            return Err(super::replay::not_a_run(&*catalog.store, id, seq));
        }
        return Ok(mirrored
            .into_iter()
            .map(|(_, line)| format!("{line}\n"))
            .collect());
    }
    let lines = EventReader::new(&dir).read_new()?;
    Ok(lines.iter().map(|line| format!("{line}\n")).collect())
}

/// The whole event lines of the run in `dir` written from byte `offset` on: what the dashboard's
/// live view streams. Never through a link planted where the file should be.
pub fn events_from(dir: &Path, offset: u64) -> Result<crate::server::source::EventChunk> {
    use std::io::{Read, Seek, SeekFrom};
    let path = dir.join(EVENTS_FILE);
    let mut file = match crate::artifacts::rundir::open_read(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(crate::server::source::EventChunk {
                offset,
                ..Default::default()
            });
        }
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| (&mut file).take(EVENTS_CHUNK_BYTES).read_to_end(&mut bytes))
        .map_err(|e| Error::io("read", &path, e))?;
    // Whole lines only: what follows the last newline is read again next time.
    let whole = bytes
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |end| end + 1);
    let lines: Vec<String> = bytes[..whole]
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect();
    let is_end = |line: &str| {
        serde_json::from_str::<serde_json::Value>(line)
            .is_ok_and(|event| event["type"] == "run_finished")
    };
    let finished = match lines.last() {
        Some(last) => is_end(last),
        // Nothing new: the run may have ended before `offset` (a stream resumed after its end).
        None => last_line_before(&mut file, offset).is_some_and(|line| is_end(&line)),
    };
    Ok(crate::server::source::EventChunk {
        lines,
        offset: offset + whole as u64,
        finished,
    })
}

/// The last whole line of `file` that ends at `offset`, if it is short enough to be an event other
/// than output (the end of a run always is).
fn last_line_before(file: &mut std::fs::File, offset: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    const LONGEST: u64 = 16 * 1024;
    let start = offset.checked_sub(1)?.saturating_sub(LONGEST);
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(start)).ok()?;
    Read::take(&mut *file, offset - start)
        .read_to_end(&mut bytes)
        .ok()?;
    let body = bytes.strip_suffix(b"\n")?;
    let begin = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    Some(String::from_utf8_lossy(&body[begin..]).into_owned())
}

/// The most of `events.jsonl` one read for the live view takes: a run with a long history of output
/// is sent in pieces, never read into memory whole. Every event line is far shorter (output lines
/// are cut at the output line limit).
const EVENTS_CHUNK_BYTES: u64 = 1 << 20;

/// `--json` prints the event lines as they are, so a report of tail has no `data` of its own.
fn quiet(human: String) -> Report {
    Report::streamed(human)
}

/// Follows run `seq`, then (with `forever`) every run after it.
fn follow_from(
    printer: &mut Printer,
    id: &str,
    job_dir: &Path,
    mut seq: i64,
    forever: bool,
) -> Result<Report> {
    loop {
        let status = follow_run(printer, &job_dir.join(seq.to_string()))?;
        if !forever {
            let error = (status != Some(RunStatus::Succeeded)).then_some(Error::RunsFailed {
                failed: 1,
                total: 1,
            });
            if status.is_none() {
                printer.note(&format!(
                    "{} lost its owner before it finished",
                    run_name(id, seq)
                ));
            }
            return Ok(Report::streamed(String::new()).with_error(error));
        }
        seq = wait_for_run(job_dir, seq);
    }
}

/// Prints a run's events until `run_finished`; returns its status, or `None` if the run's owner died
/// without finishing it.
fn follow_run(printer: &mut Printer, dir: &Path) -> Result<Option<RunStatus>> {
    let (_watcher, changes) = watch(dir);
    let mut reader = EventReader::new(dir);
    let mut last_owner_check = Instant::now();
    loop {
        for line in reader.read_new()? {
            printer.print(&line);
            if let Ok(event) = serde_json::from_str::<Event>(&line)
                && let EventKind::RunFinished { status, .. } = event.kind
            {
                return Ok(Some(status));
            }
        }
        if last_owner_check.elapsed() >= OWNER_CHECK {
            last_owner_check = Instant::now();
            if !RunDir::is_locked(dir) {
                // One more read: the owner may have written its last line and exited just now.
                let lines = reader.read_new()?;
                let finished =
                    lines
                        .iter()
                        .find_map(|line| match serde_json::from_str::<Event>(line) {
                            Ok(Event {
                                kind: EventKind::RunFinished { status, .. },
                                ..
                            }) => Some(status),
                            _ => None,
                        });
                for line in &lines {
                    printer.print(line);
                }
                return Ok(finished);
            }
        }
        // Woken by a change in the run directory, or after POLL where notify is unavailable or quiet.
        wait_for_change(&changes);
    }
}

/// Waits until a run newer than `after` has an events file; returns the oldest such seq, so that
/// `--forever` follows every run in order.
fn wait_for_run(job_dir: &Path, after: i64) -> i64 {
    let _ = std::fs::create_dir_all(job_dir);
    let (_watcher, changes) = watch(job_dir);
    loop {
        let next = std::fs::read_dir(job_dir).ok().and_then(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
                .filter(|seq| {
                    *seq > after && job_dir.join(seq.to_string()).join(EVENTS_FILE).exists()
                })
                .min()
        });
        if let Some(seq) = next {
            return seq;
        }
        wait_for_change(&changes);
    }
}

/// Waits for a file-system event, at most `POLL`. Without a watch (the channel is closed), just sleeps.
fn wait_for_change(changes: &mpsc::Receiver<()>) {
    if let Err(mpsc::RecvTimeoutError::Disconnected) = changes.recv_timeout(POLL) {
        std::thread::sleep(POLL);
    }
}

/// A watch on `dir` whose events arrive on the returned channel (nothing arrives if watching fails).
fn watch(dir: &Path) -> (Option<notify::RecommendedWatcher>, mpsc::Receiver<()>) {
    use notify::{RecursiveMode, Watcher};
    let (tx, rx) = mpsc::channel();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Opening, reading and closing a file unwritten are what the follower itself does to look:
        // waking on them made every look cause the next, and an idle `tail -f` spun a core.
        if let Ok(event) = &event
            && is_only_a_look(&event.kind)
        {
            return;
        }
        let _ = tx.send(());
    })
    .and_then(|mut w| w.watch(dir, RecursiveMode::NonRecursive).map(|()| w));
    (watcher.ok(), rx)
}

fn is_only_a_look(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    matches!(
        kind,
        EventKind::Access(
            AccessKind::Open(_)
                | AccessKind::Read
                | AccessKind::Close(AccessMode::Read | AccessMode::Execute | AccessMode::Any)
                | AccessKind::Any
                | AccessKind::Other
        )
    )
}

fn latest_seq(job_dir: &Path) -> Option<i64> {
    std::fs::read_dir(job_dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
        .max()
}

fn run_is_active(dir: &Path) -> bool {
    RunDir::is_locked(dir)
}

/// Reads complete lines appended to a run's `events.jsonl` since the last call, holding back a line
/// whose newline has not been written yet.
struct EventReader {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl EventReader {
    fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(EVENTS_FILE),
            offset: 0,
            partial: Vec::new(),
        }
    }

    fn read_new(&mut self) -> Result<Vec<String>> {
        let mut file = match crate::artifacts::rundir::open_read(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read", &self.path, e)),
        };
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(self.offset))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|e| Error::io("read", &self.path, e))?;
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(&bytes);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Ok(Vec::new());
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        Ok(complete
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .collect())
    }
}

struct Printer {
    out: Output,
    /// `--json`: the lines exactly as written.
    raw: bool,
}

impl Printer {
    fn print(&mut self, line: &str) {
        let text = if self.raw {
            format!("{line}\n")
        } else {
            match serde_json::from_str::<Event>(line) {
                Ok(event) => render(&event, &self.out),
                Err(_) => format!(
                    "{}\n",
                    self.out
                        .paint(Style::Red, &format!("unreadable event: {line}"))
                ),
            }
        };
        let mut stdout = std::io::stdout().lock();
        let _ = stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush());
    }

    fn note(&mut self, text: &str) {
        let _ = writeln!(std::io::stderr(), "{text}");
    }
}

/// One event for people: the local time, a marker, and what happened.
pub fn render(event: &Event, out: &Output) -> String {
    let time = DateTime::parse_from_rfc3339(&event.ts)
        .map(|t| t.with_timezone(&Local).format("%H:%M:%S%.3f").to_string())
        .unwrap_or_else(|_| event.ts.clone());
    let (mark, style, text) = describe(event);
    format!(
        "{} {} {}\n",
        out.paint(Style::Dim, &time),
        mark,
        out.paint(style, &text)
    )
}

/// An event's marker, its colour and its words.
type Described = (&'static str, Style, String);

fn describe(event: &Event) -> Described {
    let run = run_name(&event.job_id, event.run);
    let cut = |truncated: bool| if truncated { " [cut]" } else { "" };
    match &event.kind {
        EventKind::Output {
            stream: Stream::Stdout,
            line,
            truncated,
            ..
        } => ("|", Style::Plain, format!("{line}{}", cut(*truncated))),
        EventKind::Output {
            stream: Stream::Stderr,
            line,
            truncated,
            ..
        } => ("!", Style::Yellow, format!("{line}{}", cut(*truncated))),
        EventKind::OutputTruncated { lines, bytes, .. } => {
            ("!", Style::Yellow, truncation_note(*lines, *bytes))
        }
        EventKind::RunQueued { trigger, upstream } => (
            ">",
            Style::Dim,
            format!(
                "{run} queued ({}{})",
                trigger.as_str(),
                upstream_note(upstream.as_deref())
            ),
        ),
        EventKind::RunStarted {
            trigger,
            upstream,
            slot,
            ..
        } => (
            ">",
            Style::Bold,
            format!(
                "{run} started ({}{}{})",
                trigger.as_str(),
                upstream_note(upstream.as_deref()),
                slot.as_ref()
                    .map(|s| format!(", slot {s}"))
                    .unwrap_or_default()
            ),
        ),
        EventKind::RunFinished {
            status,
            duration_ms,
            message,
            ..
        } => (
            "=",
            if *status == RunStatus::Succeeded {
                Style::Green
            } else {
                Style::Red
            },
            format!(
                "{run} {status} in {:.3} s{}",
                *duration_ms as f64 / 1000.0,
                message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
        ),
        slot @ (EventKind::SlotSkipped { .. }
        | EventKind::SlotMissed { .. }
        | EventKind::SlotsCoalesced { .. }) => describe_slot(slot),
        attempt @ (EventKind::AttemptStarted { .. }
        | EventKind::AttemptFinished { .. }
        | EventKind::RetryScheduled { .. }
        | EventKind::Timeout { .. }
        | EventKind::KillSent { .. }
        | EventKind::ProcessesLeft { .. }) => describe_attempt(attempt),
    }
}

/// The events of one attempt: its start and end, a retry, a timeout, the signals and leftovers.
fn describe_attempt(kind: &EventKind) -> Described {
    match kind {
        EventKind::AttemptStarted { attempt, pid, .. } => (
            "#",
            Style::Dim,
            format!(
                "attempt {attempt} started (pid {})",
                pid.map_or("?".into(), |p| p.to_string())
            ),
        ),
        EventKind::AttemptFinished {
            attempt,
            status,
            message,
            ..
        } => (
            "#",
            if *status == RunStatus::Succeeded {
                Style::Dim
            } else {
                Style::Red
            },
            format!(
                "attempt {attempt} {status}{}",
                message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
        ),
        EventKind::RetryScheduled {
            next_attempt,
            delay_ms,
        } => (
            "~",
            Style::Yellow,
            format!(
                "attempt {next_attempt} in {:.1} s",
                *delay_ms as f64 / 1000.0
            ),
        ),
        EventKind::Timeout {
            attempt,
            timeout_ms,
        } => (
            "T",
            Style::Red,
            format!(
                "attempt {attempt} timed out after {:.1} s",
                *timeout_ms as f64 / 1000.0
            ),
        ),
        EventKind::KillSent { signal, .. } => (
            "K",
            Style::Red,
            format!("{signal} sent to the process group"),
        ),
        EventKind::ProcessesLeft {
            cause,
            action,
            processes,
            ..
        } => ("K", Style::Yellow, leftovers(cause, action, processes)),
        // `describe` sends only the kinds above here; it names each, so a new kind fails to compile there.
        other => ("?", Style::Dim, format!("{other:?}")),
    }
}

/// Slots that did not run as runs of their own: skipped, missed, coalesced.
fn describe_slot(kind: &EventKind) -> Described {
    match kind {
        EventKind::SlotSkipped { slot, reason } => {
            ("-", Style::Yellow, format!("slot {slot} skipped: {reason}"))
        }
        EventKind::SlotMissed {
            first_slot,
            last_slot,
            count,
        } => (
            "-",
            Style::Yellow,
            format!("{count} slot(s) {first_slot}..{last_slot} missed"),
        ),
        EventKind::SlotsCoalesced {
            first_slot,
            last_slot,
            count,
        } => (
            "+",
            Style::Dim,
            format!("{count} slots {first_slot}..{last_slot} coalesced into this run"),
        ),
        // `describe` sends only the kinds above here; it names each, so a new kind fails to compile there.
        other => ("?", Style::Dim, format!("{other:?}")),
    }
}

/// The processes an attempt left in its group, and what became of them.
fn leftovers(cause: &str, action: &str, processes: &[ProcessInfo]) -> String {
    format!(
        "{} process(es) left after {}, {action}: {}",
        processes.len(),
        if cause == "owner_gone" {
            "the owner died"
        } else {
            "the main process exited"
        },
        processes
            .iter()
            .map(|p| format!("{} ({})", p.pid, p.name))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// An output event as `jobsctl run` streams it: the line itself, prefixed when several jobs run. The
/// end of output events is said on stderr, so that a terminal does not just fall silent.
pub fn output_line(event: &Event, prefix: &str) -> Option<(Stream, String)> {
    match &event.kind {
        EventKind::Output { stream, line, .. } => Some((*stream, format!("{prefix}{line}\n"))),
        EventKind::OutputTruncated { lines, bytes, .. } => Some((
            Stream::Stderr,
            format!("{prefix}[jobs] {}\n", truncation_note(*lines, *bytes)),
        )),
        // A command that could not start has no output to explain it: the reason goes where its
        // errors would have.
        EventKind::AttemptFinished {
            error_code: Some(code),
            message: Some(message),
            ..
        } if code == "spawn_failed" || code == "bad_cwd" => {
            Some((Stream::Stderr, format!("{prefix}[jobs] {message}\n")))
        }
        _ => None,
    }
}

/// `, after extract#41` for a triggered run, nothing otherwise.
fn upstream_note(upstream: Option<&str>) -> String {
    upstream.map(|u| format!(", after {u}")).unwrap_or_default()
}

fn truncation_note(lines: u64, bytes: u64) -> String {
    format!(
        "output events stop here after {lines} lines ({bytes} bytes), the most a run records; the rest goes to stdout.log and stderr.log only"
    )
}
