//! `scheduler --dry-run`: what a start would do now, as values, changing nothing. The runs it would
//! settle and the directories it would set aside, then the tick planner's plan over the jobs as a
//! start would load them. Must not write anything, nor word its findings (the CLI renders them).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::daemon::slot_ranges;
use super::jobs::Jobs;
use super::lock::OwnerLock;
use super::plan::{OwedRetry, TickInput, TickPlan, plan_tick};
use super::set_aside::{UnknownDir, unknown_run_dirs};
use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::error::Result;
use crate::home::Home;
use crate::policy::InFlight;
use crate::run::{RunStatus, Trigger, owner};
use crate::runner::recover::{began, orphaned_runs};
use crate::store::{RunRow, Store};

/// What a start would do.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    /// Runs in flight whose owner is gone: a start settles them first.
    pub settle: Vec<Unsettled>,
    /// Run directories the store has no record of: a start moves them aside.
    pub set_aside: Vec<UnknownDir>,
    /// The scheduled jobs in the catalog's order, with the pending slot a start would judge from.
    pub jobs: Vec<PlannedJob>,
    /// The first tick's plan, judged as of now (nothing is claimed ahead).
    pub tick: TickPlan,
}

#[derive(Debug, Clone, Serialize)]
pub struct Unsettled {
    pub job_id: String,
    pub seq: i64,
    pub status: RunStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedJob {
    pub job_id: String,
    /// `None` when the schedule has no further slot.
    #[serde(serialize_with = "crate::clock::as_rfc3339::option")]
    pub next_slot: Option<DateTime<Utc>>,
}

/// Plans what a start of the scheduler of `home` would do now. Like a start, it holds the home's
/// lock while it looks, so it fails the same way when a scheduler runs.
pub fn dry_run(home: &Home, clock: &Arc<dyn Clock>) -> Result<DryRun> {
    let _lock = OwnerLock::acquire(home, &owner())?;
    let store = crate::store::open_home(home)?;
    let now = clock.now();
    let orphaned = orphaned_runs(&*store, home)?;
    let set_aside = unknown_run_dirs(&*store, home)?;
    let given_back = given_back(home, &orphaned);
    let in_flight = in_flight_after_settling(&*store, &orphaned)?;
    drop(store);
    let catalog = Catalog::open(home, now)?;
    // The same pending slot a start computes: a slot given back by a claim that never began, the kept
    // slot, or for a changed schedule the first after the last slot recorded, so its slots since then
    // are judged, as the start would judge them.
    let (jobs, _) = Jobs::from_catalog(&catalog, now, |job| {
        match (job.row.next_slot, given_back.get(job.id())) {
            (Some(next), Some(back)) => Some(next.min(*back)),
            (next, _) => next,
        }
    });
    let retries: Vec<OwedRetry> = catalog
        .store
        .owed_retries()?
        .iter()
        .filter(|row| jobs.contains(&row.job_id))
        .map(|row| OwedRetry {
            job_id: row.job_id.clone(),
            seq: row.seq,
            slot: row.slot,
        })
        .collect();
    let mut paused = HashMap::new();
    for (id, entry) in jobs.catching_up() {
        let ranges = catalog
            .store
            .paused_skips(id, entry.paused_at.unwrap_or(DateTime::UNIX_EPOCH))?;
        paused.insert(id.to_owned(), slot_ranges(&ranges));
    }
    let tick = plan_tick(&TickInput {
        jobs: &jobs,
        in_flight: &in_flight,
        retries: &retries,
        paused: &paused,
        now,
        ahead: TimeDelta::zero(),
        groups: &catalog.in_force.group_limits(),
    });
    let planned = catalog
        .jobs
        .iter()
        .filter_map(|job| {
            let entry = jobs.get(job.id())?;
            Some(PlannedJob {
                job_id: job.id().to_owned(),
                next_slot: entry.next_slot,
            })
        })
        .collect();
    Ok(DryRun {
        settle: orphaned
            .iter()
            .map(|run| Unsettled {
                job_id: run.job_id.clone(),
                seq: run.seq,
                status: run.status,
            })
            .collect(),
        set_aside,
        jobs: planned,
        tick,
    })
}

/// A scheduled claim that never began gives its slot back when it is settled, to be judged again: the
/// earliest such slot by job.
fn given_back(home: &Home, orphaned: &[RunRow]) -> HashMap<String, DateTime<Utc>> {
    let mut given_back: HashMap<String, DateTime<Utc>> = HashMap::new();
    for run in orphaned {
        if let (Trigger::Schedule, Some(slot), Some(dir)) = (run.trigger, run.slot, &run.run_dir)
            && !began(&crate::artifacts::rundir::resolve(home, dir))
        {
            let earliest = given_back.entry(run.job_id.clone()).or_insert(slot);
            *earliest = (*earliest).min(slot);
        }
    }
    given_back
}

/// The runs in flight by job once the orphaned runs are settled: those hold no instance then.
fn in_flight_after_settling(
    store: &dyn Store,
    orphaned: &[RunRow],
) -> Result<HashMap<String, InFlight>> {
    let mut in_flight = store.in_flight()?;
    for run in orphaned {
        if let Some(tally) = in_flight.get_mut(&run.job_id) {
            match run.status {
                RunStatus::Queued => tally.queued = tally.queued.saturating_sub(1),
                _ => tally.running = tally.running.saturating_sub(1),
            }
        }
    }
    Ok(in_flight)
}
