//! A node's worker on a store several hosts share: it takes the runs the leader queued for the
//! nodes (those its labels allow, as many as its `--max-runs` leaves room for), makes each run's
//! directory on this node, and turns each into the runner's plan with the spec it was claimed
//! with. Must not decide what is claimed (the leader's planner does) nor start anything (the
//! supervisor does).

use std::collections::HashMap;
use std::time::Duration;

use crate::artifacts::RunDir;
use crate::clock::rfc3339;
use crate::config::HomeConfig;
use crate::error::Result;
use crate::home::Home;
use crate::run::{RunEnd, RunStatus, Trigger, run_name};
use crate::runner::execute::{RunControl, RunPlan};
use crate::spec::JobSpec;
use crate::store::{Store, Take, TakenRun};

/// The most runs taken in one transaction: several nodes woken at once take turns in batches, so
/// a burst of due runs spreads over them rather than going whole to the first to wake.
pub const TAKE_BATCH: usize = 16;

/// How often an idle worker looks at the queue when no notification came (one lost while its
/// listening connection was down, say).
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// Takes what `take` allows from the queue, each run with its directory made on this node. On
/// failure nothing was taken, and the directories made for it are gone again.
pub fn take(
    store: &mut dyn Store,
    home: &Home,
    take: &Take<'_>,
) -> Result<Vec<(TakenRun, RunDir)>> {
    let mut made: HashMap<(String, i64), RunDir> = HashMap::new();
    let taken = store.take_runs(take, &mut |job, seq| {
        // The store gave this number to this run: a directory of it here is from another store
        // (or an older one), and is set aside rather than failing the run.
        let (dir, stored) = match RunDir::create_for_claim(home, job, seq) {
            Err(crate::error::Error::ArtifactWrite { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                super::set_aside::set_aside_one(home, job, seq)?;
                RunDir::create_for_claim(home, job, seq)?
            }
            made => made?,
        };
        made.insert((job.to_owned(), seq), dir);
        Ok(stored)
    });
    match taken {
        Ok(runs) => Ok(runs
            .into_iter()
            .filter_map(|run| {
                let dir = made.remove(&(run.row.job_id.clone(), run.row.seq))?;
                Some((run, dir))
            })
            .collect()),
        Err(e) => {
            for dir in made.into_values() {
                let _ = std::fs::remove_dir_all(dir.path());
            }
            Err(e)
        }
    }
}

/// The runner's plan of a run taken from the queue; or the end to record instead, with the run's
/// directory to remove: when the spec it was claimed with cannot be read (a store an older `jobs`
/// wrote, say), or its slot is past its misfire grace.
pub fn plan(
    taken: TakenRun,
    run_dir: RunDir,
    owner: &str,
    home: &Home,
    config: &HomeConfig,
) -> std::result::Result<RunPlan, Box<(RunDir, RunEnd)>> {
    let TakenRun {
        row,
        first_slot,
        last_slot,
        spec_json,
        taken_at: now,
    } = taken;
    let spec: Option<JobSpec> = spec_json
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok());
    let Some(spec) = spec else {
        let end = RunEnd {
            status: RunStatus::Failed,
            attempts: 0,
            exit_code: None,
            signal: None,
            error_code: Some("spec_unavailable".into()),
            message: Some(
                "the spec this run was claimed with is not in the store; nothing was started"
                    .into(),
            ),
            started_at: None,
            finished_at: now,
            duration_ms: 0,
        };
        return Err(Box::new((run_dir, end)));
    };
    // Claimed for a slot and waiting since for a node (all of them were down): past the job's
    // misfire grace, the slot is missed rather than run that late. A run the queue held back for an
    // instance (overlap `queue`) waited as asked, and starts.
    if row.trigger == Trigger::Schedule
        && row.status == RunStatus::Running
        && let Some(due) = row.due_at
        && crate::policy::past_misfire_grace(&spec.policy.misfire_grace, due, now)
    {
        let late = (now - due).num_milliseconds() as f64 / 1000.0;
        let end = RunEnd {
            status: RunStatus::Missed,
            attempts: 0,
            exit_code: None,
            signal: None,
            error_code: Some("misfire".into()),
            message: Some(format!(
                "missed: no node took it until {late:.1} s after it was due, past misfire_grace {}",
                spec.policy.misfire_grace
            )),
            started_at: None,
            finished_at: now,
            duration_ms: 0,
        };
        return Err(Box::new((run_dir, end)));
    }
    let lateness = row.due_at.map_or(0, |due| (now - due).num_milliseconds());
    tracing::info!(run = %run_name(&row.job_id, row.seq), trigger = %row.trigger.as_str(), slot = %row.slot.map(rfc3339).unwrap_or_else(|| "-".into()), lateness_ms = lateness, "run taken from the queue");
    Ok(RunPlan {
        shared: config.shared_limits(&spec),
        job_id: row.job_id,
        seq: row.seq,
        trigger: row.trigger,
        slot: row.slot,
        stands_for: row.slot.or(last_slot),
        due_at: row.due_at,
        replay_of: row.replay_of,
        first_slot,
        slot_count: row.slot_count,
        claimed_at: row.claimed_at,
        queued: row.status == RunStatus::Queued,
        from_queue: true,
        upstream: row.upstream,
        spec,
        spec_hash: row.spec_hash.unwrap_or_default(),
        owner: owner.to_owned(),
        home: home.clone(),
        run_dir,
        control: RunControl::default(),
    })
}
