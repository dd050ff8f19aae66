//! Committing a tick's plan: its claims become the store's records, written in one transaction with
//! the claimed runs' directories made under its write lock, and each recorded run becomes the plan the
//! runner executes. Must not decide anything (the planner did) nor start runs (the supervisor does).

use chrono::{DateTime, Utc};

use super::jobs::{Entry, Jobs};
use super::plan::{Claim, TickPlan, What};
use crate::artifacts::RunDir;
use crate::clock::rfc3339;
use crate::config::HomeConfig;
use crate::error::Result;
use crate::home::Home;
use crate::policy::{Decision, Fire};
use crate::run::{Trigger, run_name};
use crate::runner::execute::{RunControl, RunPlan};
use crate::spec::JobSpec;
use crate::store::{OwedTrigger, SharedLimits, Store, TickRecord, TickResult};

/// The store records of the plan's claims, in order; each run with the limits it shares with other
/// jobs by `config` (checked by the store, in the transaction).
pub fn records(plan: &TickPlan, jobs: &Jobs, config: &HomeConfig) -> Vec<TickRecord> {
    plan.claims
        .iter()
        .filter_map(|claim| {
            let entry = jobs.get(&claim.job_id)?;
            let mut record = record(claim, entry, plan.now);
            if let TickRecord::Run { shared, .. } = &mut record {
                *shared = config.shared_limits(&entry.spec);
            }
            Some(record)
        })
        .collect()
}

fn record(claim: &Claim, entry: &Entry, now: DateTime<Utc>) -> TickRecord {
    let id = claim.job_id.as_str();
    match &claim.what {
        What::Retry { of, slot, queued } => TickRecord::Run {
            job_id: id.to_owned(),
            trigger: Trigger::Catchup,
            slot: None,
            due_at: Some(now),
            first_slot: *slot,
            last_slot: *slot,
            count: 1,
            spec_hash: entry.spec_hash.clone(),
            queued: *queued,
            retry_of: Some(*of),
            max_instances: entry.spec.policy.max_instances,
            shared: SharedLimits::default(),
            overlap: entry.spec.policy.overlap,
            upstream: None,
        },
        What::CatchUp { fire, queued } => run_record(id, entry, fire, None, *queued),
        What::Slots(Decision::Fire(fire)) => run_record(id, entry, fire, Some(fire.slot), false),
        What::Slots(Decision::Queue(fire) | Decision::Replace(fire)) => {
            run_record(id, entry, fire, Some(fire.slot), true)
        }
        What::Slots(Decision::Skip {
            first_slot,
            last_slot,
            count,
            reason,
        }) => TickRecord::Skipped {
            job_id: id.to_owned(),
            first_slot: *first_slot,
            last_slot: *last_slot,
            count: *count,
            reason: reason.as_str().to_owned(),
        },
        What::Slots(Decision::Miss {
            first_slot,
            last_slot,
            count,
        }) => {
            let late = (claim.judged_at - *last_slot).num_milliseconds() as f64 / 1000.0;
            TickRecord::Missed {
                job_id: id.to_owned(),
                first_slot: *first_slot,
                last_slot: *last_slot,
                count: *count,
                message: format!(
                    "{count} slot(s) missed: claimed {late:.1} s after the last was due, past misfire_grace {}",
                    entry.spec.policy.misfire_grace
                ),
            }
        }
    }
}

fn run_record(
    id: &str,
    entry: &Entry,
    fire: &Fire,
    slot: Option<DateTime<Utc>>,
    queued: bool,
) -> TickRecord {
    // A run that stands for other slots than its own (coalesced, or made up for a paused one) names
    // them; a catch-up run has no slot of its own, as its slot's record is the skipped one.
    let several = fire.count > 1 || slot.is_none();
    TickRecord::Run {
        job_id: id.to_owned(),
        trigger: fire.trigger,
        slot,
        due_at: Some(fire.due_at),
        first_slot: several.then_some(fire.first_slot),
        last_slot: several.then_some(fire.slot),
        count: fire.count,
        spec_hash: entry.spec_hash.clone(),
        queued,
        retry_of: None,
        max_instances: entry.spec.policy.max_instances,
        shared: SharedLimits::default(),
        overlap: entry.spec.policy.overlap,
        upstream: None,
    }
}

/// The record of a run owed by upstream runs' ends: claimed now, due when the trigger was written
/// (its lateness counts from the upstream's end), taking its trigger in the same transaction.
pub fn triggered_record(
    owed: OwedTrigger,
    spec: &JobSpec,
    spec_hash: &str,
    config: &HomeConfig,
) -> TickRecord {
    TickRecord::Run {
        job_id: owed.job_id.clone(),
        trigger: Trigger::After,
        slot: None,
        due_at: Some(owed.created_at),
        first_slot: None,
        last_slot: None,
        count: 1,
        spec_hash: spec_hash.to_owned(),
        queued: false,
        retry_of: None,
        max_instances: spec.policy.max_instances,
        shared: config.shared_limits(spec),
        overlap: spec.policy.overlap,
        upstream: Some(owed),
    }
}

/// Writes the records, the moved cursors and the catch-ups taken in one transaction. On failure
/// nothing is recorded, and the directories made for the claims go too, so the run numbers stay free.
pub fn commit(
    store: &mut dyn Store,
    home: &Home,
    owner: &str,
    plan: &TickPlan,
    records: &[TickRecord],
) -> Result<Vec<TickResult<RunDir>>> {
    let cursors: Vec<(String, Option<DateTime<Utc>>)> = plan
        .cursors
        .iter()
        .map(|cursor| (cursor.job_id.clone(), cursor.next_slot))
        .collect();
    let mut created = Vec::new();
    let committed = store.commit_tick_with(
        records,
        &cursors,
        &plan.catchups_done,
        owner,
        plan.now,
        |job, seq| {
            let (dir, stored) = RunDir::create_for_claim(home, job, seq)?;
            created.push(dir.path().to_owned());
            Ok((dir, stored))
        },
    );
    if committed.is_err() {
        for dir in created {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    committed
}

/// What the runner needs to execute a claimed run (a `TickRecord::Run`) in its locked directory.
pub struct Claimed<'a> {
    pub seq: i64,
    pub queued: bool,
    pub run_dir: RunDir,
    pub spec: &'a JobSpec,
    pub spec_hash: &'a str,
    pub owner: &'a str,
    pub home: &'a Home,
    pub now: DateTime<Utc>,
}

/// The runner's plan of a claimed run; `None` for a record that is not a run.
pub fn run_plan(record: TickRecord, claimed: Claimed<'_>) -> Option<RunPlan> {
    let TickRecord::Run {
        job_id,
        trigger,
        slot,
        due_at,
        first_slot,
        last_slot,
        count,
        retry_of,
        shared,
        upstream,
        ..
    } = record
    else {
        return None;
    };
    let Claimed {
        seq,
        queued,
        run_dir,
        spec,
        spec_hash,
        owner,
        home,
        now,
    } = claimed;
    let lateness = due_at.map_or(0, |due| (now - due).num_milliseconds());
    tracing::info!(run = %run_name(&job_id, seq), trigger = %trigger.as_str(), slot = %slot.map(rfc3339).unwrap_or_else(|| "-".into()), lateness_ms = lateness, queued, "run claimed");
    Some(RunPlan {
        job_id,
        seq,
        trigger,
        slot,
        stands_for: slot.or(last_slot),
        due_at,
        replay_of: retry_of,
        first_slot,
        slot_count: count,
        claimed_at: now,
        queued,
        from_queue: false,
        shared,
        upstream: upstream.map(|owed| owed.upstreams),
        spec: spec.clone(),
        spec_hash: spec_hash.to_owned(),
        owner: owner.to_owned(),
        home: home.clone(),
        run_dir,
        control: RunControl::default(),
    })
}
