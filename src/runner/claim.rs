//! Claiming a run: the store decides under its write lock whether the job has a free instance, and the
//! run directory is created and locked inside that same transaction.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::execute::RunControl;
use super::execute::RunPlan;
use super::recover::{reconcile_runs, run_is_alive};
use crate::artifacts::RunDir;
use crate::clock::{Clock, FixedClock};
use crate::error::Result;
use crate::home::Home;
use crate::run::Trigger;
use crate::spec::JobSpec;
use crate::store::{ClaimRequest, Claimed, Store};

/// What is being claimed, beyond the job itself.
#[derive(Debug, Clone, Copy)]
pub struct ClaimOf {
    pub trigger: Trigger,
    pub slot: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub replay_of: Option<i64>,
    pub slot_count: u64,
    /// The run's end triggers no downstream run.
    pub no_trigger: bool,
}

impl ClaimOf {
    pub fn manual() -> Self {
        Self {
            trigger: Trigger::Manual,
            slot: None,
            due_at: None,
            replay_of: None,
            slot_count: 1,
            no_trigger: false,
        }
    }
}

/// Claims a run of `job_id` and returns its plan, or `max_instances_reached`.
#[expect(
    clippy::too_many_arguments,
    reason = "the claim needs each of these and they have no common owner"
)]
pub fn claim_run(
    store: &mut dyn Store,
    home: &Home,
    job_id: &str,
    spec: &JobSpec,
    spec_hash: &str,
    of: ClaimOf,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<RunPlan> {
    let request = ClaimRequest {
        job_id,
        trigger: of.trigger,
        slot: of.slot,
        due_at: of.due_at,
        spec_hash,
        owner,
        now,
        max_instances: spec.policy.max_instances,
        overlap: spec.policy.overlap,
        replay_of: of.replay_of,
        shared: crate::config::shared_limits_now(home, store, spec),
        no_trigger: of.no_trigger,
    };
    // A run of this job whose process died is settled first, artifacts included: the claim below
    // would otherwise only mark its row, leaving a receipt that still says "running".
    let at: Arc<dyn Clock> = Arc::new(FixedClock(now));
    reconcile_runs(store, home, &at, Some(job_id))?;
    let (claimed, run_dir) = store.claim_with(
        &request,
        |dir| run_is_alive(home, dir),
        |seq| RunDir::create_for_claim(home, job_id, seq),
    )?;
    Ok(RunPlan {
        job_id: job_id.to_owned(),
        seq: claimed.seq(),
        trigger: of.trigger,
        slot: of.slot,
        stands_for: of.slot,
        due_at: of.due_at,
        replay_of: of.replay_of,
        first_slot: None,
        slot_count: of.slot_count,
        claimed_at: now,
        queued: matches!(claimed, Claimed::Queued(_)),
        from_queue: false,
        shared: request.shared.clone(),
        upstream: None,
        spec: spec.clone(),
        spec_hash: spec_hash.to_owned(),
        owner: owner.to_owned(),
        home: home.clone(),
        run_dir,
        control: RunControl::default(),
    })
}
