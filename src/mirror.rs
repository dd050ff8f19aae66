//! Mirroring what runs write into a store several hosts share, so that a run executed on one node
//! can be read from any other: each event line (output lines capped per run) and each final
//! receipt goes through a channel to a thread with a store connection of its own, which writes
//! what has arrived in one transaction every [`MIRROR_EVERY`] (a group commit, off the runs' path).
//! Must not decide anything, nor hold a run back: a store that fails only delays the mirror (what
//! could not be written is tried again, up to a bound) and is logged.

use std::collections::HashMap;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::artifacts::events::{Event, EventKind, Observer};
use crate::error::{Error, Result};
use crate::store::{Location, Store};

/// How often what has arrived is written.
const MIRROR_EVERY: Duration = Duration::from_millis(250);

/// Output lines mirrored per run: the run directory keeps them all, the store the first ones.
pub const OUTPUT_LINES_MIRRORED: u32 = 1_000;

/// What waits to be written beyond this is dropped (a store away for long): the run directories
/// keep everything.
const MAX_PENDING: usize = 100_000;

#[derive(Debug)]
enum Item {
    Event {
        job: String,
        seq: i64,
        n: i64,
        line: String,
        output: bool,
        last: bool,
    },
    Receipt {
        job: String,
        seq: i64,
        json: String,
    },
    /// Write what is left and end: senders may outlive the mirror's owner (the supervisor keeps one).
    Stop,
}

/// The sending side, cloned into every run.
#[derive(Clone, Debug)]
pub struct MirrorTx(mpsc::Sender<Item>);

impl MirrorTx {
    /// An observer of a run's events that mirrors each of them.
    pub fn observer(&self) -> Observer {
        let tx = self.0.clone();
        Box::new(move |event: &Event| {
            let Ok(line) = serde_json::to_string(event) else {
                return;
            };
            let _ = tx.send(Item::Event {
                job: event.job_id.clone(),
                seq: event.run,
                n: i64::try_from(event.seq).unwrap_or(i64::MAX),
                line,
                output: matches!(event.kind, EventKind::Output { .. }),
                last: matches!(event.kind, EventKind::RunFinished { .. }),
            });
        })
    }

    /// Mirrors the run's receipt as just written.
    pub fn receipt(&self, job: &str, seq: i64, receipt: &impl serde::Serialize) {
        if let Ok(json) = serde_json::to_string(receipt) {
            let _ = self.0.send(Item::Receipt {
                job: job.to_owned(),
                seq,
                json,
            });
        }
    }
}

/// `observer` (a manual run's live output), and the mirror's too when there is one.
pub fn observing(observer: Option<Observer>, mirror: Option<&MirrorTx>) -> Option<Observer> {
    match (observer, mirror.map(MirrorTx::observer)) {
        (Some(first), Some(second)) => Some(Box::new(move |event: &Event| {
            first(event);
            second(event);
        })),
        (first, second) => first.or(second),
    }
}

/// The mirror's thread.
pub struct Mirror {
    tx: MirrorTx,
    thread: JoinHandle<()>,
}

impl Mirror {
    /// Starts the mirror of a store several hosts share; `None` for a store of one host, which
    /// mirrors nothing.
    pub fn start(location: &Location) -> Result<Option<Self>> {
        if matches!(location, Location::Sqlite(_)) {
            return Ok(None);
        }
        let store = crate::store::open_at(location.clone())?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("mirror".into())
            .spawn(move || write_loop(store, &rx))
            .map_err(|e| Error::Internal {
                message: format!("cannot start the mirror's thread: {e}"),
            })?;
        Ok(Some(Self {
            tx: MirrorTx(tx),
            thread,
        }))
    }

    pub fn sender(&self) -> MirrorTx {
        self.tx.clone()
    }

    /// Writes what is left and ends the thread (after the runs have ended, so nothing more comes).
    pub fn stop(self) {
        let _ = self.tx.0.send(Item::Stop);
        if self.thread.join().is_err() {
            tracing::error!("the mirror's thread failed");
        }
    }
}

/// Takes what arrives, and writes it every [`MIRROR_EVERY`] until every sender is gone.
fn write_loop(mut store: Box<dyn Store>, rx: &mpsc::Receiver<Item>) {
    let mut events: Vec<(String, i64, i64, String)> = Vec::new();
    let mut receipts: Vec<(String, i64, String)> = Vec::new();
    let mut output_lines: HashMap<(String, i64), u32> = HashMap::new();
    let mut last_write = Instant::now();
    loop {
        let wait = MIRROR_EVERY.saturating_sub(last_write.elapsed());
        let closed = match rx.recv_timeout(wait) {
            Ok(item) => {
                let mut stop = take(item, &mut events, &mut receipts, &mut output_lines);
                while !stop && let Ok(item) = rx.try_recv() {
                    stop = take(item, &mut events, &mut receipts, &mut output_lines);
                }
                stop
            }
            Err(mpsc::RecvTimeoutError::Timeout) => false,
            Err(mpsc::RecvTimeoutError::Disconnected) => true,
        };
        if closed || last_write.elapsed() >= MIRROR_EVERY {
            last_write = Instant::now();
            if !events.is_empty() || !receipts.is_empty() {
                match store.mirror(&events, &receipts) {
                    Ok(()) => {
                        events.clear();
                        receipts.clear();
                    }
                    Err(e) => {
                        tracing::warn!("run artifacts are not mirrored into the store yet: {e}");
                        if events.len() + receipts.len() > MAX_PENDING {
                            tracing::error!(
                                lines = events.len(),
                                receipts = receipts.len(),
                                "dropping what waits to be mirrored: the run directories keep it"
                            );
                            events.clear();
                            receipts.clear();
                        }
                    }
                }
            }
        }
        if closed {
            return;
        }
    }
}

fn take(
    item: Item,
    events: &mut Vec<(String, i64, i64, String)>,
    receipts: &mut Vec<(String, i64, String)>,
    output_lines: &mut HashMap<(String, i64), u32>,
) -> bool {
    match item {
        Item::Event {
            job,
            seq,
            n,
            line,
            output,
            last,
        } => {
            let key = (job, seq);
            if output {
                let count = output_lines.entry(key.clone()).or_default();
                *count += 1;
                if *count > OUTPUT_LINES_MIRRORED {
                    return false;
                }
            }
            if last {
                output_lines.remove(&key);
            }
            events.push((key.0, key.1, n, line));
        }
        Item::Receipt { job, seq, json } => receipts.push((job, seq, json)),
        Item::Stop => return true,
    }
    false
}
