//! `events.jsonl`: what happened during a run, one JSON object per line. Each line is written whole with
//! a single `write` on a file opened for appending, and `seq` increases strictly, so a reader (`jobs
//! tail`) sees either a complete event or nothing of it, and a crash can only tear the very last line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::rundir::{open_append, open_read, open_regular};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::run::{RunEnd, RunStatus, Trigger};

/// One line of `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds.
    pub ts: String,
    pub job_id: String,
    pub run: i64,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The closed set of event types. Optional fields are always present (as null) so every line of a
/// type has the same shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The run waits for an instance of its job to free up (overlap `queue`).
    RunQueued {
        trigger: Trigger,
        /// For a run another job's run triggered: that run (or those, for a fan-in), `job#seq`
        /// comma-separated, so the events alone say why the run started.
        #[serde(default)]
        upstream: Option<String>,
    },
    RunStarted {
        trigger: Trigger,
        #[serde(default)]
        upstream: Option<String>,
        slot: Option<String>,
        max_attempts: u32,
    },
    AttemptStarted {
        attempt: u32,
        pid: Option<u32>,
        /// The attempt's process group: the pid, as each attempt leads a group of its own.
        #[serde(default)]
        pgid: Option<u32>,
        /// The process's start time, clock ticks after boot (field 22 of `/proc/<pid>/stat`), and the
        /// boot: with the pid they name the process for good, so a pid handed out again later is never
        /// taken for it.
        #[serde(default)]
        leader_start: Option<u64>,
        #[serde(default)]
        boot_id: Option<String>,
    },
    Output {
        attempt: u32,
        stream: Stream,
        line: String,
        /// The line was longer than the limit and was cut; the `.log` file has it whole.
        truncated: bool,
    },
    /// The run reached its cap on output events: no more `output` events follow, whatever the stream
    /// or attempt; the `.log` files go on. `lines` and `bytes` are what the `output` events hold.
    OutputTruncated {
        attempt: u32,
        stream: Stream,
        lines: u64,
        bytes: u64,
    },
    AttemptFinished {
        attempt: u32,
        status: RunStatus,
        exit_code: Option<i32>,
        signal: Option<i32>,
        duration_ms: u64,
        error_code: Option<String>,
        message: Option<String>,
    },
    RetryScheduled {
        next_attempt: u32,
        delay_ms: u64,
    },
    Timeout {
        attempt: u32,
        timeout_ms: u64,
    },
    KillSent {
        attempt: u32,
        signal: String,
    },
    /// Processes of the attempt's group were found running when they should not be: its main process
    /// had exited (`main_exited`), or the run's owner had died (`owner_gone`). `action` says what became
    /// of them: `killed` (SIGTERM, `kill_grace`, SIGKILL, each a `kill_sent` event) or `kept`
    /// (`run.leftovers: keep`).
    ProcessesLeft {
        attempt: u32,
        cause: String,
        action: String,
        processes: Vec<ProcessInfo>,
    },
    RunFinished {
        status: RunStatus,
        attempts: u32,
        exit_code: Option<i32>,
        signal: Option<i32>,
        duration_ms: u64,
        error_code: Option<String>,
        message: Option<String>,
    },
    /// Scheduler side: a slot that did not run.
    SlotSkipped {
        slot: String,
        reason: String,
    },
    SlotMissed {
        first_slot: String,
        last_slot: String,
        count: u64,
    },
    SlotsCoalesced {
        first_slot: String,
        last_slot: String,
        count: u64,
    },
}

impl EventKind {
    /// The `run_finished` event of a run that ended so (its time is the event's own).
    pub fn run_finished(end: &RunEnd) -> Self {
        Self::RunFinished {
            status: end.status,
            attempts: end.attempts,
            exit_code: end.exit_code,
            signal: end.signal,
            duration_ms: end.duration_ms,
            error_code: end.error_code.clone(),
            message: end.message.clone(),
        }
    }
}

/// A process as an event names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    /// Its command name (`comm`).
    pub name: String,
}

/// Called with every event as it is written, e.g. to stream a run's output to the terminal.
pub type Observer = Box<dyn Fn(&Event) + Send + Sync>;

/// The writer of one run's `events.jsonl`. Shared by the tasks of a run; the mutex keeps `seq` and
/// line order in step.
pub struct EventLog {
    job_id: String,
    run: i64,
    clock: Arc<dyn Clock>,
    observer: Option<Observer>,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    path: PathBuf,
    next_seq: u64,
    /// The first write that failed: the run reports `artifact_write_failed` at its end.
    error: Option<io::Error>,
}

impl EventLog {
    pub fn create(
        path: &Path,
        job_id: &str,
        run: i64,
        clock: Arc<dyn Clock>,
        observer: Option<Observer>,
    ) -> Result<Self> {
        let file = open_append(path)?;
        Ok(Self {
            job_id: job_id.to_owned(),
            run,
            clock,
            observer,
            inner: Mutex::new(Inner {
                file,
                path: path.to_owned(),
                next_seq: 1,
                error: None,
            }),
        })
    }

    /// Opens an events file to append to it, continuing its `seq`. A torn last line (a crash in the
    /// middle of a write) is cut off first, so the file stays a sequence of whole lines.
    pub fn append_to(path: &Path, job_id: &str, run: i64, clock: Arc<dyn Clock>) -> Result<Self> {
        let fail = |source: io::Error| Error::ArtifactWrite {
            path: path.to_owned(),
            source,
        };
        // Read and cut through one descriptor opened without following links, so the file cut is the
        // file checked and a planted link never lets us shorten something outside the home.
        let read = open_regular(std::fs::OpenOptions::new().read(true).write(true), path).and_then(
            |mut file| {
                let mut bytes = Vec::new();
                io::Read::read_to_end(&mut file, &mut bytes).map(|_| (file, bytes))
            },
        );
        let next_seq = match read {
            Ok((file, bytes)) => {
                let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                if whole < bytes.len() {
                    file.set_len(whole as u64).map_err(fail)?;
                }
                drop(file);
                bytes[..whole]
                    .split(|b| *b == b'\n')
                    .rev()
                    .find_map(|line| serde_json::from_slice::<Event>(line).ok())
                    .map_or(1, |event| event.seq + 1)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => 1,
            Err(e) => return Err(fail(e)),
        };
        let log = Self::create(path, job_id, run, clock, None)?;
        if let Ok(mut inner) = log.inner.lock() {
            inner.next_seq = next_seq;
        }
        Ok(log)
    }

    /// Appends one event. A failed write does not stop the run: it is remembered and reported by
    /// [`EventLog::error`].
    pub fn emit(&self, kind: EventKind) -> Event {
        self.emit_for_run(self.run, kind)
    }

    /// As [`EventLog::emit`], for a log that speaks of several runs (a job's scheduler log).
    pub fn emit_for_run(&self, run: i64, kind: EventKind) -> Event {
        let mut inner = match self.inner.lock() {
            Ok(inner) => inner,
            Err(poisoned) => poisoned.into_inner(),
        };
        let event = Event {
            seq: inner.next_seq,
            ts: crate::clock::rfc3339(self.clock.now()),
            job_id: self.job_id.clone(),
            run,
            kind,
        };
        inner.next_seq += 1;
        match serde_json::to_vec(&event) {
            Ok(mut line) => {
                line.push(b'\n');
                if crate::fault::strikes(crate::fault::Point::EventTorn) {
                    let _ = inner.file.write_all(&line[..line.len() / 2]);
                    crate::fault::die();
                }
                // One write of the whole line: a regular file opened O_APPEND takes it in one piece.
                if let Err(e) = inner.file.write_all(&line) {
                    inner.error.get_or_insert(e);
                }
            }
            Err(e) => {
                inner.error.get_or_insert(io::Error::other(e));
            }
        }
        if let Some(observer) = &self.observer {
            observer(&event);
        }
        event
    }

    /// The first write error, if any write failed.
    pub fn error(&self) -> Option<Error> {
        let inner = self.inner.lock().ok()?;
        let source = inner.error.as_ref()?;
        Some(Error::ArtifactWrite {
            path: inner.path.clone(),
            source: io::Error::new(source.kind(), source.to_string()),
        })
    }
}

/// Reads `events.jsonl`. A last line without its newline is a write in progress (or torn by a crash):
/// it is returned separately, not parsed. A complete line that does not parse is an error.
pub fn read_events(path: &Path) -> io::Result<(Vec<Event>, Option<String>)> {
    let mut reader = BufReader::new(open_read(path)?);
    let mut events = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok((events, None));
        }
        if line.last() != Some(&b'\n') {
            return Ok((events, Some(String::from_utf8_lossy(&line).into_owned())));
        }
        let event = serde_json::from_slice(&line).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("event {}: {e}", events.len() + 1),
            )
        })?;
        events.push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use chrono::DateTime;

    fn log(path: &Path) -> EventLog {
        let clock = Arc::new(FixedClock(DateTime::UNIX_EPOCH));
        EventLog::create(path, "job", 3, clock, None).expect("create")
    }

    #[test]
    fn events_are_whole_lines_with_increasing_seq() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let events = log(&path);
        events.emit(EventKind::RunStarted {
            trigger: Trigger::Manual,
            upstream: None,
            slot: None,
            max_attempts: 1,
        });
        events.emit(EventKind::Output {
            attempt: 1,
            stream: Stream::Stdout,
            line: "hi".into(),
            truncated: false,
        });
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"seq":1,"ts":"1970-01-01T00:00:00.000Z","job_id":"job","run":3,"type":"run_started","trigger":"manual","upstream":null,"slot":null,"max_attempts":1}"#
        );
        let (read, torn) = read_events(&path).expect("read");
        assert_eq!(read.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert!(torn.is_none());
    }

    #[test]
    fn a_half_written_last_line_is_held_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        log(&path).emit(EventKind::AttemptStarted {
            attempt: 1,
            pid: Some(42),
            pgid: Some(42),
            leader_start: None,
            boot_id: None,
        });
        let mut file = open_append(&path).expect("open");
        file.write_all(br#"{"seq":2,"ts":"#).expect("write");
        let (events, torn) = read_events(&path).expect("read");
        assert_eq!(events.len(), 1);
        assert_eq!(torn.as_deref(), Some(r#"{"seq":2,"ts":"#));
    }
}
