//! The log of slots that did not become runs, `runs/<job>/scheduler.jsonl`: what a tick recorded as
//! skipped or missed, one writer per job, opened on first use. Must not write a run's own events (the
//! runner does) nor decide what is skipped (the planner does).

use std::collections::HashMap;
use std::sync::Arc;

use crate::artifacts::{EventKind, EventLog};
use crate::clock::{Clock, rfc3339};
use crate::error::Error;
use crate::home::Home;
use crate::store::TickRecord;

pub struct SlotLog {
    home: Home,
    clock: Arc<dyn Clock>,
    logs: HashMap<String, EventLog>,
}

impl SlotLog {
    pub fn new(home: Home, clock: Arc<dyn Clock>) -> Self {
        Self {
            home,
            clock,
            logs: HashMap::new(),
        }
    }

    /// Logs a committed record of slots that did not run (a run's record is not logged here).
    pub fn record(&mut self, record: &TickRecord, seq: i64) {
        let kind = match record {
            TickRecord::Skipped {
                first_slot,
                last_slot,
                count,
                reason,
                ..
            } => {
                tracing::info!(job = %record.job_id(), count, reason = %reason, "slot(s) skipped");
                let reason = if first_slot == last_slot {
                    reason.clone()
                } else {
                    format!("{reason} ({count} slots from {})", rfc3339(*first_slot))
                };
                EventKind::SlotSkipped {
                    slot: rfc3339(*last_slot),
                    reason,
                }
            }
            TickRecord::Missed {
                first_slot,
                last_slot,
                count,
                message,
                ..
            } => {
                tracing::warn!(job = %record.job_id(), count, "{message}");
                EventKind::SlotMissed {
                    first_slot: rfc3339(*first_slot),
                    last_slot: rfc3339(*last_slot),
                    count: *count,
                }
            }
            TickRecord::Run { .. } => return,
        };
        self.emit(record.job_id(), seq, kind);
    }

    fn emit(&mut self, job_id: &str, seq: i64, kind: EventKind) {
        if !self.logs.contains_key(job_id) {
            match self.open(job_id) {
                Ok(log) => {
                    self.logs.insert(job_id.to_owned(), log);
                }
                Err(e) => {
                    tracing::error!("{e}");
                    return;
                }
            }
        }
        if let Some(log) = self.logs.get(job_id) {
            log.emit_for_run(seq, kind);
        }
    }

    fn open(&self, job_id: &str) -> Result<EventLog, Error> {
        let dir = crate::artifacts::rundir::job_dir(&self.home, job_id);
        std::fs::create_dir_all(&dir)
            .and_then(|()| crate::artifacts::rundir::ensure_real_dir(&dir))
            .map_err(|source| Error::ArtifactWrite {
                path: dir.clone(),
                source,
            })?;
        EventLog::append_to(
            &dir.join("scheduler.jsonl"),
            job_id,
            0,
            Arc::clone(&self.clock),
        )
    }
}
