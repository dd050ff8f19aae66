//! `jobsctl cancel <id> [--run N | --all]`: asks for runs in flight to be cancelled, through the store, so
//! that whichever process owns them (the scheduler, a `jobsctl run` in another terminal, a detached run)
//! stops them; then waits, within a bound, until they are recorded as ended.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use super::Ctx;
use super::lifecycle::operator;
use super::output::{Output, Report, View, escape_controls, ser};
use crate::error::{Error, Result};
use crate::run::{RunStatus, Trigger, run_name};
use crate::runner::recover::{owner_is_alive, reconcile_runs};
use crate::store::{Requested, RunRow, Store};

pub struct CancelArgs {
    pub run: Option<i64>,
    pub all: bool,
    pub reason: Option<String>,
    /// Wait until the runs are recorded as ended (`--no-wait` turns it off).
    pub wait: bool,
}

/// Beyond the run's `kill_grace`, how long the wait allows for the owner to notice the request (a
/// quarter of a second), its command's output to drain and the end to be recorded.
const WAIT_MARGIN: Duration = Duration::from_secs(10);

/// How often the wait reads the runs' rows.
const WAIT_POLL: Duration = Duration::from_millis(50);

pub fn run(ctx: &Ctx, id: &str, args: &CancelArgs) -> Result<Report> {
    // Runs whose owner died are settled first: they are not in flight, and no one would carry out a
    // request for them.
    let mut catalog = ctx.catalog_with_runs(Some(id))?;
    let kill_grace = catalog
        .job(id)?
        .spec
        .as_ref()
        .map(|spec| spec.run.kill_grace.as_duration());
    let in_flight = in_flight(&*catalog.store, id)?;
    let targets = match (args.run, args.all) {
        (Some(seq), _) => match in_flight.iter().find(|run| run.seq == seq) {
            Some(run) => vec![run.clone()],
            None => {
                return Err(match catalog.store.run_row(id, seq)? {
                    Some(row) => Error::RunNotInFlight {
                        id: id.to_owned(),
                        seq,
                        status: row.status.as_str(),
                    },
                    None => Error::RunNotFound {
                        id: id.to_owned(),
                        seq,
                    },
                });
            }
        },
        (None, _) if in_flight.is_empty() => {
            return Err(Error::NoRunInFlight { id: id.to_owned() });
        }
        (None, true) => in_flight,
        (None, false) if in_flight.len() == 1 => in_flight,
        (None, false) => return several_in_flight(ctx, id, &in_flight),
    };
    let by = operator();
    let wait = args.wait.then(|| wait_bound(kill_grace));
    let cancelled = cancel_runs(
        ctx,
        &mut *catalog.store,
        id,
        &targets,
        &by,
        args.reason.as_deref(),
        wait,
    )?;
    let view = CancelView {
        job_id: id,
        total: cancelled.runs.len(),
        runs: &cancelled,
        by: &by,
        reason: args.reason.as_deref(),
        waited: cancelled.waited,
    };
    Ok(Report::view(&view, &ctx.out)?.with_error(cancelled.error()))
}

/// The job's runs queued or running (a run waiting to retry is running), oldest first.
pub(super) fn in_flight(store: &dyn Store, id: &str) -> Result<Vec<RunRow>> {
    Ok(store
        .active_runs()?
        .into_iter()
        .filter(|run| run.job_id == id)
        .collect())
}

/// How long to wait for runs stopped with this `kill_grace` to be recorded as ended.
pub(super) fn wait_bound(kill_grace: Option<Duration>) -> Duration {
    kill_grace.unwrap_or(Duration::from_secs(10)) + WAIT_MARGIN
}

/// `jobsctl cancel`: what was asked, by whom, and what became of each run.
#[derive(Serialize)]
struct CancelView<'a> {
    job_id: &'a str,
    runs: &'a Cancelled<'a>,
    total: usize,
    by: &'a str,
    reason: Option<&'a str>,
    waited: bool,
}

impl View for CancelView<'_> {
    fn render(&self, _: &Output) -> String {
        self.runs.render()
    }
}

/// Several runs in flight and neither `--run` nor `--all`: which one is meant is not ours to guess.
fn several_in_flight(ctx: &Ctx, id: &str, runs: &[RunRow]) -> Result<Report> {
    let view = SeveralInFlight {
        job_id: id,
        in_flight: runs
            .iter()
            .map(|run| InFlightEntry {
                run: RunInFlight::new(run),
                status: run.status,
            })
            .collect(),
        total: runs.len(),
    };
    let error = Error::Usage {
        message: format!(
            "job `{id}` has {} runs in flight: name one with --run N, or pass --all to cancel them all",
            runs.len()
        ),
    };
    Ok(Report::view(&view, &ctx.out)?.with_error(Some(error)))
}

#[derive(Serialize)]
struct SeveralInFlight<'a> {
    job_id: &'a str,
    in_flight: Vec<InFlightEntry<'a>>,
    total: usize,
}

#[derive(Serialize)]
struct InFlightEntry<'a> {
    #[serde(flatten)]
    run: RunInFlight<'a>,
    status: RunStatus,
}

impl View for SeveralInFlight<'_> {
    fn render(&self, _: &Output) -> String {
        let mut human = format!("{} has {} runs in flight:\n", self.job_id, self.total);
        for entry in &self.in_flight {
            human.push_str(&format!(
                "  {}  {}  owner {}\n",
                run_name(self.job_id, entry.run.run),
                entry.status,
                entry.run.owner
            ));
        }
        human
    }
}

/// A run in flight as the cancel answers name it (its status is the answer's own).
#[derive(Serialize)]
struct RunInFlight<'a> {
    job_id: &'a str,
    run: i64,
    trigger: Trigger,
    owner: &'a str,
    #[serde(serialize_with = "ser::instant")]
    claimed_at: DateTime<Utc>,
    #[serde(serialize_with = "ser::instant_opt")]
    started_at: Option<DateTime<Utc>>,
}

impl<'a> RunInFlight<'a> {
    fn new(run: &'a RunRow) -> Self {
        Self {
            job_id: &run.job_id,
            run: run.seq,
            trigger: run.trigger,
            owner: &run.owner,
            claimed_at: run.claimed_at,
            started_at: run.started_at,
        }
    }
}

/// What asking for runs to be cancelled came to: one entry per run, in the order asked.
#[derive(Serialize)]
#[serde(transparent)]
pub(super) struct Cancelled<'a> {
    runs: Vec<CancelEntry<'a>>,
    /// Whether the ends were waited for (`status` is then known, or `stopping`).
    #[serde(skip)]
    waited: bool,
    #[serde(skip)]
    bound: Duration,
}

#[derive(Serialize)]
struct CancelEntry<'a> {
    #[serde(flatten)]
    run: RunInFlight<'a>,
    status: RunNow,
    /// The status when the request was made.
    was: RunStatus,
    request: Request,
    /// Who asked, and why, when a request stands (this one or an earlier one).
    #[serde(flatten)]
    requester: Option<Requester>,
    /// The run's message, once it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<Option<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Request {
    New,
    Already,
    NotInFlight,
}

#[derive(Serialize)]
struct Requester {
    requested_by: String,
    reason: Option<String>,
}

/// Where a run stands as far as this command knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunNow {
    /// Asked to stop, not waited for: null.
    Unknown,
    /// Waited for, still in flight.
    Stopping,
    /// No row at all.
    Gone,
    Is(RunStatus),
}

impl Serialize for RunNow {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::Unknown => s.serialize_none(),
            Self::Stopping => s.serialize_str("stopping"),
            Self::Gone => s.serialize_str("gone"),
            Self::Is(status) => status.serialize(s),
        }
    }
}

impl CancelEntry<'_> {
    fn name(&self) -> String {
        run_name(self.run.job_id, self.run.run)
    }

    /// The line saying what the request itself came to.
    fn request_line(&self) -> String {
        let name = self.name();
        match (&self.request, &self.requester) {
            (Request::New, _) => format!(
                "cancel requested for {name} ({}, owner {})\n",
                self.was, self.run.owner
            ),
            (Request::Already, Some(earlier)) => format!(
                "{name}: cancel already requested by {}\n",
                escape_controls(&earlier.requested_by)
            ),
            (Request::Already, None) => format!("{name}: cancel already requested\n"),
            (Request::NotInFlight, _) => {
                let status = match self.status {
                    RunNow::Is(status) => status.as_str(),
                    _ => "gone",
                };
                format!("{name} had ended already ({status})\n")
            }
        }
    }

    /// The line saying how a run waited for ended; none while it is still stopping.
    fn end_line(&self) -> Option<String> {
        let name = self.name();
        let RunNow::Is(status) = self.status else {
            return None;
        };
        Some(match status {
            RunStatus::Cancelled => format!("{name} cancelled\n"),
            RunStatus::Interrupted => format!(
                "{name} interrupted: its owner ended before carrying out the cancel ({})\n",
                escape_controls(
                    self.message
                        .as_ref()
                        .and_then(Option::as_deref)
                        .unwrap_or("no message")
                )
            ),
            other => format!("{name} ended {other} before the cancel reached it\n"),
        })
    }

    fn asked(&self) -> bool {
        !matches!(self.request, Request::NotInFlight)
    }
}

impl Cancelled<'_> {
    pub(super) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Set when the wait ended with runs still in flight.
    pub(super) fn error(&self) -> Option<Error> {
        let pending: Vec<String> = self
            .runs
            .iter()
            .filter(|entry| entry.status == RunNow::Stopping)
            .map(CancelEntry::name)
            .collect();
        (!pending.is_empty()).then(|| Error::CancelPending {
            runs: pending,
            waited: self.bound,
        })
    }

    pub(super) fn render(&self) -> String {
        let mut human: String = self.runs.iter().map(CancelEntry::request_line).collect();
        let asked = self.runs.iter().filter(|entry| entry.asked());
        if self.waited {
            human.extend(asked.filter_map(CancelEntry::end_line));
        } else if asked.count() > 0 {
            human.push_str(
                "not waiting: the owner stops each run within about a second, plus the job's kill_grace; `jobsctl history` then shows it cancelled\n",
            );
        }
        human
    }
}

/// Records a cancel request for each of `runs` (one transaction), then, with `wait`, waits up to that
/// long for each to be recorded as ended, settling any whose owner dies meanwhile.
pub(super) fn cancel_runs<'a>(
    ctx: &Ctx,
    store: &mut dyn Store,
    id: &str,
    runs: &'a [RunRow],
    by: &str,
    reason: Option<&str>,
    wait: Option<Duration>,
) -> Result<Cancelled<'a>> {
    let keys: Vec<(String, i64)> = runs.iter().map(|r| (r.job_id.clone(), r.seq)).collect();
    let answers = store.request_cancel(&keys, by, reason, ctx.clock.now())?;
    let mut entries: Vec<CancelEntry<'a>> = runs
        .iter()
        .zip(answers)
        .map(|(run, answer)| {
            let (request, requester, status) = match answer {
                Requested::New => (
                    Request::New,
                    Some(Requester {
                        requested_by: by.to_owned(),
                        reason: reason.map(str::to_owned),
                    }),
                    RunNow::Unknown,
                ),
                Requested::Already(earlier) => (
                    Request::Already,
                    Some(Requester {
                        requested_by: earlier.by,
                        reason: earlier.reason,
                    }),
                    RunNow::Unknown,
                ),
                Requested::NotInFlight(status) => (
                    Request::NotInFlight,
                    None,
                    status.map_or(RunNow::Gone, RunNow::Is),
                ),
            };
            CancelEntry {
                run: RunInFlight::new(run),
                status,
                was: run.status,
                request,
                requester,
                message: None,
            }
        })
        .collect();
    let Some(bound) = wait else {
        return Ok(Cancelled {
            runs: entries,
            waited: false,
            bound: Duration::ZERO,
        });
    };
    let seqs: Vec<i64> = entries
        .iter()
        .filter(|entry| entry.asked())
        .map(|entry| entry.run.run)
        .collect();
    let ended = wait_for_end(ctx, store, id, &seqs, bound)?;
    for (entry, (_, row)) in entries.iter_mut().filter(|e| e.asked()).zip(ended) {
        match row.filter(|row| !row.status.is_active()) {
            Some(row) => {
                entry.status = RunNow::Is(row.status);
                entry.message = Some(row.message);
            }
            None => entry.status = RunNow::Stopping,
        }
    }
    Ok(Cancelled {
        runs: entries,
        waited: true,
        bound,
    })
}

/// Reads the rows of `seqs` until none is in flight or `bound` passes; a run whose owner died
/// meanwhile is settled (recorded interrupted) as any reading command would. Returns each run's last
/// row.
fn wait_for_end(
    ctx: &Ctx,
    store: &mut dyn Store,
    id: &str,
    seqs: &[i64],
    bound: Duration,
) -> Result<Vec<(i64, Option<RunRow>)>> {
    let deadline = Instant::now() + bound;
    loop {
        let mut rows = Vec::with_capacity(seqs.len());
        let mut orphaned = false;
        for &seq in seqs {
            let row = store.run_row(id, seq)?;
            if let Some(row) = &row
                && row.status.is_active()
                // The owner died before carrying the request out: settle the run here (its processes
                // are stopped by the settling), rather than waiting for an owner that will never act.
                && !owner_is_alive(&ctx.home, row)
            {
                orphaned = true;
            }
            rows.push((seq, row));
        }
        let done = rows
            .iter()
            .all(|(_, row)| row.as_ref().is_none_or(|row| !row.status.is_active()));
        if done || Instant::now() >= deadline {
            return Ok(rows);
        }
        if orphaned {
            match reconcile_runs(store, &ctx.home, &ctx.clock, Some(id)) {
                Ok(_) => continue,
                Err(e) if e.is_busy() => {}
                Err(e) => return Err(e),
            }
        }
        std::thread::sleep(WAIT_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(run: &RunRow, request: Request, requester: Option<Requester>) -> CancelEntry<'_> {
        CancelEntry {
            run: RunInFlight::new(run),
            status: RunNow::Unknown,
            was: run.status,
            request,
            requester,
            message: None,
        }
    }

    fn row(seq: i64) -> RunRow {
        RunRow {
            job_id: "sleepy".into(),
            seq,
            trigger: Trigger::Manual,
            slot: None,
            due_at: None,
            claimed_at: chrono::DateTime::UNIX_EPOCH,
            started_at: chrono::DateTime::from_timestamp_millis(1),
            finished_at: None,
            status: RunStatus::Running,
            attempts: 1,
            exit_code: None,
            signal: None,
            error_code: None,
            message: None,
            spec_hash: None,
            owner: "7@host".into(),
            slot_count: 1,
            replay_of: None,
            run_dir: None,
            owner_start: None,
            boot_id: None,
            pgid: None,
            leader_start: None,
            kill_grace: None,
            retry_owed: false,
            group: None,
            upstream: None,
            owner_silent: false,
            node: None,
        }
    }

    #[test]
    fn each_answer_names_what_it_knows_and_leaves_out_the_rest() {
        let (one, two) = (row(1), row(2));
        let mut ended = entry(
            &one,
            Request::New,
            Some(Requester {
                requested_by: "me@host".into(),
                reason: None,
            }),
        );
        ended.status = RunNow::Is(RunStatus::Interrupted);
        ended.message = Some(None);
        let mut gone = entry(&two, Request::NotInFlight, None);
        gone.status = RunNow::Gone;
        let cancelled = Cancelled {
            runs: vec![ended, gone],
            waited: true,
            bound: Duration::from_secs(1),
        };
        let json = serde_json::to_value(&cancelled).expect("serializes");
        assert_eq!(json[0]["status"], "interrupted");
        assert_eq!(json[0]["requested_by"], "me@host");
        assert_eq!(json[0]["reason"], serde_json::Value::Null);
        assert_eq!(json[0]["message"], serde_json::Value::Null);
        assert_eq!(json[0]["claimed_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(json[1]["status"], "gone");
        assert_eq!(json[1]["request"], "not_in_flight");
        for absent in ["requested_by", "reason", "message"] {
            assert!(json[1].get(absent).is_none(), "{absent} in {}", json[1]);
        }
        assert_eq!(
            cancelled.render(),
            "cancel requested for sleepy#1 (running, owner 7@host)\n\
             sleepy#2 had ended already (gone)\n\
             sleepy#1 interrupted: its owner ended before carrying out the cancel (no message)\n"
        );
        assert!(cancelled.error().is_none());
    }
}
