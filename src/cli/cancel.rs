//! `jobsctl cancel <id> [--run N | --all]`: asks for runs in flight to be cancelled, through the store, so
//! that whichever process owns them (the scheduler, a `jobsctl run` in another terminal, a detached run)
//! stops them; then waits, within a bound, until they are recorded as ended.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::entry::{Ctx, catalog_with_runs};
use super::lifecycle::operator;
use super::output::{Report, escape_controls};
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::run::{RunStatus, run_name};
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
    let mut catalog = catalog_with_runs(ctx, Some(id))?;
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
        (None, false) => return Ok(several_in_flight(id, &in_flight)),
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
    let data = json!({
        "job_id": id,
        "runs": cancelled.entries,
        "total": cancelled.entries.len(),
        "by": by,
        "reason": args.reason,
        "waited": wait.is_some(),
    });
    Ok(Report {
        data,
        human: cancelled.human,
        error: cancelled.error,
    })
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

/// Several runs in flight and neither `--run` nor `--all`: which one is meant is not ours to guess.
fn several_in_flight(id: &str, runs: &[RunRow]) -> Report {
    let mut human = format!("{id} has {} runs in flight:\n", runs.len());
    for run in runs {
        human.push_str(&format!(
            "  {}  {}  owner {}\n",
            run_name(id, run.seq),
            run.status,
            run.owner
        ));
    }
    let listed: Vec<Value> = runs.iter().map(describe).collect();
    Report {
        data: json!({ "job_id": id, "in_flight": listed, "total": runs.len() }),
        human,
        error: Some(Error::Usage {
            message: format!(
                "job `{id}` has {} runs in flight: name one with --run N, or pass --all to cancel them all",
                runs.len()
            ),
        }),
    }
}

fn describe(run: &RunRow) -> Value {
    json!({
        "job_id": run.job_id,
        "run": run.seq,
        "status": run.status.as_str(),
        "trigger": run.trigger.as_str(),
        "owner": run.owner,
        "claimed_at": rfc3339(run.claimed_at),
        "started_at": run.started_at.map(rfc3339),
    })
}

/// What asking for runs to be cancelled came to.
pub(super) struct Cancelled {
    /// One object per run, for `--json`.
    pub entries: Vec<Value>,
    pub human: String,
    /// Set when the wait ended with runs still in flight.
    pub error: Option<Error>,
}

/// Records a cancel request for each of `runs` (one transaction), then, with `wait`, waits up to that
/// long for each to be recorded as ended, settling any whose owner dies meanwhile.
pub(super) fn cancel_runs(
    ctx: &Ctx,
    store: &mut dyn Store,
    id: &str,
    runs: &[RunRow],
    by: &str,
    reason: Option<&str>,
    wait: Option<Duration>,
) -> Result<Cancelled> {
    let keys: Vec<(String, i64)> = runs.iter().map(|r| (r.job_id.clone(), r.seq)).collect();
    let answers = store.request_cancel(&keys, by, reason, ctx.clock.now())?;
    let mut human = String::new();
    let mut entries = Vec::new();
    let mut asked = Vec::new();
    for (run, answer) in runs.iter().zip(answers) {
        let name = run_name(id, run.seq);
        let mut entry = describe(run);
        entry["was"] = json!(run.status.as_str());
        match &answer {
            Requested::New => {
                entry["request"] = json!("new");
                entry["requested_by"] = json!(by);
                entry["reason"] = json!(reason);
                human.push_str(&format!(
                    "cancel requested for {name} ({}, owner {})\n",
                    run.status, run.owner
                ));
                asked.push(entries.len());
            }
            Requested::Already(earlier) => {
                entry["request"] = json!("already");
                entry["requested_by"] = json!(earlier.by);
                entry["reason"] = json!(earlier.reason);
                human.push_str(&format!(
                    "{name}: cancel already requested by {}\n",
                    escape_controls(&earlier.by)
                ));
                asked.push(entries.len());
            }
            Requested::NotInFlight(status) => {
                let status = status.map_or("gone", RunStatus::as_str);
                entry["request"] = json!("not_in_flight");
                entry["status"] = json!(status);
                human.push_str(&format!("{name} had ended already ({status})\n"));
            }
        }
        entries.push(entry);
    }
    let Some(bound) = wait else {
        for &index in &asked {
            entries[index]["status"] = Value::Null;
        }
        if !asked.is_empty() {
            human.push_str(
                "not waiting: the owner stops each run within about a second, plus the job's kill_grace; `jobsctl history` then shows it cancelled\n",
            );
        }
        return Ok(Cancelled {
            entries,
            human,
            error: None,
        });
    };
    let seqs: Vec<i64> = asked
        .iter()
        .filter_map(|&i| entries[i]["run"].as_i64())
        .collect();
    let ended = wait_for_end(ctx, store, id, &seqs, bound)?;
    let mut pending = Vec::new();
    for (&index, (seq, row)) in asked.iter().zip(ended) {
        let name = run_name(id, seq);
        let Some(row) = row.filter(|row| !row.status.is_active()) else {
            entries[index]["status"] = json!("stopping");
            pending.push(name);
            continue;
        };
        entries[index]["status"] = json!(row.status.as_str());
        entries[index]["message"] = json!(row.message);
        let line = match row.status {
            RunStatus::Cancelled => format!("{name} cancelled\n"),
            RunStatus::Interrupted => format!(
                "{name} interrupted: its owner ended before carrying out the cancel ({})\n",
                escape_controls(row.message.as_deref().unwrap_or("no message"))
            ),
            other => format!("{name} ended {other} before the cancel reached it\n"),
        };
        human.push_str(&line);
    }
    let error = (!pending.is_empty()).then(|| Error::CancelPending {
        runs: pending,
        waited: bound,
    });
    Ok(Cancelled {
        entries,
        human,
        error,
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
