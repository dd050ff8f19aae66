//! `jobsctl status`: whether a scheduler is running, what is in flight, what comes next, what is broken.
//! Exits 0 when a live scheduler holds the lock, 5 when none does or when its heartbeat is over 60 s
//! old (`scheduler_unresponsive`).

use serde_json::json;

use super::entry::Ctx;
use super::history::entry;
use super::output::{Report, Style, escape_controls, local, relative, utc};
use crate::catalog::JobState;
use crate::error::{Error, Result};
use crate::run::run_name;
use crate::scheduler::lock::OwnerLock;

/// A heartbeat older than this means the scheduler is stopped or hung. It beats every 2 s; a beat can
/// wait up to the store's 30 s busy timeout behind another process's write lock, so only an age past
/// twice that is not explained by a held lock alone.
const UNRESPONSIVE_AFTER_S: i64 = 60;

/// The next slots shown, the soonest first, one per job.
const NEXT_SLOTS_SHOWN: usize = 10;

pub fn run(ctx: &Ctx) -> Result<Report> {
    let now = ctx.clock.now();
    let catalog = super::entry::catalog_with_runs(ctx, None)?;
    let out = &ctx.out;
    let holder = OwnerLock::holder(&ctx.home);
    let owner = catalog.store.owner()?;
    let mut human = String::new();
    let mut unresponsive = None;
    let scheduler = match (&holder, &owner) {
        (Some(holder), Some(owner)) => {
            let started = Some(owner.started_at);
            let beat = Some(owner.heartbeat_at);
            let age_s = beat.map_or(i64::MAX, |t| (now - t).num_seconds());
            let state = if age_s > UNRESPONSIVE_AFTER_S {
                unresponsive = Some(Error::SchedulerUnresponsive {
                    owner: holder.clone(),
                    age_s,
                });
                out.paint(Style::Red, "unresponsive")
            } else {
                out.paint(Style::Green, "running")
            };
            human.push_str(&format!(
                "scheduler: {state} (pid {}, host {}, version {}), up since {}, last heartbeat {}\n",
                owner.pid,
                owner.host,
                owner.version,
                started.map_or("?".into(), |t| relative(t, now)),
                beat.map_or("?".into(), |t| relative(t, now)),
            ));
            json!({
                "running": true,
                "responsive": unresponsive.is_none(),
                "owner": holder,
                "pid": owner.pid,
                "host": owner.host,
                "version": owner.version,
                "started_at": started.map(utc),
                "uptime_s": started.map(|t| (now - t).num_seconds()),
                "heartbeat_at": beat.map(utc),
                "heartbeat_age_s": beat.map(|t| (now - t).num_milliseconds() as f64 / 1000.0),
            })
        }
        (Some(holder), None) => {
            human.push_str(&format!(
                "scheduler: {} ({holder}), starting up\n",
                out.paint(Style::Green, "running")
            ));
            json!({ "running": true, "owner": holder })
        }
        (None, _) => {
            human.push_str(&format!(
                "scheduler: {}\n",
                out.paint(Style::Red, "not running")
            ));
            json!({ "running": false })
        }
    };

    let mut by_state = std::collections::BTreeMap::new();
    for job in &catalog.jobs {
        *by_state.entry(job.state().as_str()).or_insert(0) += 1;
    }
    human.push_str(&format!(
        "jobs: {}\n",
        by_state
            .iter()
            .map(|(state, n)| format!("{n} {state}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let in_flight = catalog.store.active_runs()?;
    human.push_str(&format!("in flight: {}\n", in_flight.len()));
    for run in &in_flight {
        human.push_str(&format!(
            "  {} {}\n",
            run_name(&run.job_id, run.seq),
            run.status
        ));
    }

    let mut upcoming = Vec::new();
    for job in catalog
        .jobs
        .iter()
        .filter(|j| j.state() == JobState::Active)
    {
        // One slot per job: a job due every second would otherwise fill the list on its own.
        if let Some(schedule) = &job.schedule
            && let Some(slot) = schedule.slots_after(now, 1).first()
        {
            upcoming.push((slot.at, job.id().to_owned(), schedule.timezone()));
        }
    }
    upcoming.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let later = upcoming.len().saturating_sub(NEXT_SLOTS_SHOWN);
    upcoming.truncate(NEXT_SLOTS_SHOWN);
    human.push_str("next slots:\n");
    for (at, id, tz) in &upcoming {
        human.push_str(&format!(
            "  {}  {id}  ({})\n",
            local(*at, *tz),
            relative(*at, now)
        ));
    }
    if later > 0 {
        human.push_str(&format!(
            "  and {later} more job(s) later; `jobsctl list` shows every next slot\n"
        ));
    }

    let broken: Vec<_> = catalog
        .jobs
        .iter()
        .filter(|j| !j.problems.is_empty())
        .collect();
    if !broken.is_empty() {
        human.push_str(&out.paint(Style::Yellow, "spec problems:\n"));
        for job in &broken {
            if let Some(problem) = job.problems.first() {
                human.push_str(&format!(
                    "  {}:{}\n",
                    escape_controls(&job.row.spec_path),
                    escape_controls(&problem.located())
                ));
            }
        }
    }
    let failures = catalog.store.recent_failures(5)?;
    if !failures.is_empty() {
        human.push_str("last failures:\n");
        for run in &failures {
            human.push_str(&format!(
                "  {} {} {}\n",
                run_name(&run.job_id, run.seq),
                out.paint(Style::Red, run.status.as_str()),
                run.message.as_deref().unwrap_or_default()
            ));
        }
    }

    let data = json!({
        "scheduler": scheduler,
        "jobs": by_state,
        "in_flight": in_flight.iter().map(entry).collect::<Vec<_>>(),
        "next_slots": upcoming.iter().map(|(at, id, _)| json!({ "job_id": id, "slot": utc(*at) })).collect::<Vec<_>>(),
        "spec_problems": broken.iter().map(|j| json!({ "job_id": j.id(), "spec_path": j.row.spec_path, "problems": j.problems })).collect::<Vec<_>>(),
        "last_failures": failures.iter().map(entry).collect::<Vec<_>>(),
    });
    let error = match holder {
        None => Some(Error::SchedulerNotRunning),
        Some(_) => unresponsive,
    };
    Ok(Report { data, human, error })
}
