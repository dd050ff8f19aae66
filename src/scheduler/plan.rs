//! The tick planner: what one tick claims, as a value. From the jobs as the loop keeps them, the runs in
//! flight and `now`, it computes a [`TickPlan`]: the claims (fire, queue, replace, skip, miss, catch-up,
//! retry), the cursors that move, the jobs held until due, and the next deadline. Pure: it never reads
//! the clock, the disk or the store (the daemon gathers the inputs, the store commits the plan in one
//! transaction, the supervisor starts the runs); `scheduler --dry-run` renders the same plan. The
//! decisions about a job's due slots are `policy`'s; this layer applies them to every job due.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::jobs::{Entry, Jobs, wake_at};
use crate::policy::{self, Catchup, Decision, Fire, InFlight, Input};
use crate::schedule::Schedule;

/// Runs are claimed up to this long before their slot: the claim transaction, the run directory and
/// the artifacts are made ahead, and the command starts when the slot comes. Without it the last of
/// 200 runs due at the same second waits for 200 directories and a few hundred files to be created.
pub const CLAIM_AHEAD: Duration = Duration::from_millis(500);

/// `resume --catchup all` makes up for at most this many slots, the latest ones: each becomes a queued
/// run waiting for its turn, and thousands of them would only bury the job.
pub const MAX_CATCHUP_RUNS: usize = 100;

/// A run that was interrupted (its owner died) whose job retries interruptions: it is owed one new run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedRetry {
    pub job_id: String,
    pub seq: i64,
    pub slot: Option<DateTime<Utc>>,
}

/// Slots a job skipped while paused, `first` to `last` of its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRange {
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

/// Everything a tick depends on.
#[derive(Debug, Clone, Copy)]
pub struct TickInput<'a> {
    pub jobs: &'a Jobs,
    /// Runs that hold or wait for an instance, by job, as the overlap policy must see them.
    pub in_flight: &'a HashMap<String, InFlight>,
    pub retries: &'a [OwedRetry],
    /// For each job with a catch-up owed: the slot ranges it skipped while paused, oldest first. A
    /// job missing here makes up for nothing.
    pub paused: &'a HashMap<String, Vec<SlotRange>>,
    pub now: DateTime<Utc>,
    /// How long before its due time a slot may be claimed: [`CLAIM_AHEAD`] for the loop, zero for a
    /// dry run (which judges what is due now).
    pub ahead: TimeDelta,
}

/// What a tick does: its claims are committed in one store transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TickPlan {
    pub now: DateTime<Utc>,
    /// The records to write, in order.
    pub claims: Vec<Claim>,
    /// Jobs whose pending slot moves once the claims are committed.
    pub cursors: Vec<Cursor>,
    /// Jobs whose catch-up request is taken by the claims.
    pub catchups_done: Vec<String>,
    /// Jobs with a run in flight whose slot comes within the claim-ahead window: they are claimed when
    /// due, not ahead.
    pub hold: Vec<String>,
    pub notes: Vec<Note>,
    /// When the loop must look at the jobs next, once the plan is committed; `None` when nothing is
    /// scheduled. (Owed retries are not counted: the loop claims them at once.)
    pub next_deadline: Option<DateTime<Utc>>,
}

/// One record of a tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claim {
    pub job_id: String,
    /// The instant the claim is judged as of: `now`, or for a slot claimed ahead its due time.
    pub judged_at: DateTime<Utc>,
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum What {
    /// What the policy decided for due slots of the job's schedule.
    Slots(Decision),
    /// A run making up for slots skipped while the job was paused.
    CatchUp { fire: Fire, queued: bool },
    /// The one new run owed to the interrupted run `of`.
    Retry {
        of: i64,
        slot: Option<DateTime<Utc>>,
        queued: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cursor {
    pub job_id: String,
    /// `None` when the schedule has no further slot.
    pub next_slot: Option<DateTime<Utc>>,
}

/// Something the plan did that an operator should hear of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Note {
    /// `resume --catchup all` owed more than [`MAX_CATCHUP_RUNS`] runs; only the latest are made up for.
    CatchupLimited { job_id: String, slots: usize },
}

impl TickPlan {
    /// Whether committing the plan would change nothing.
    pub fn is_empty(&self) -> bool {
        self.claims.is_empty() && self.cursors.is_empty() && self.catchups_done.is_empty()
    }

    /// The jobs whose oldest run is replaced, once per replacing claim.
    pub fn replaced(&self) -> impl Iterator<Item = &str> {
        self.claims.iter().filter_map(|claim| match claim.what {
            What::Slots(Decision::Replace(_)) => Some(claim.job_id.as_str()),
            _ => None,
        })
    }
}

/// Plans a tick: the owed retries first, then every job whose wake time has come by `now + ahead`, in
/// deadline order. Runs planned earlier in the tick count against `max_instances` for what follows.
pub fn plan_tick(input: &TickInput<'_>) -> TickPlan {
    let mut plan = TickPlan {
        now: input.now,
        claims: Vec::new(),
        cursors: Vec::new(),
        catchups_done: Vec::new(),
        hold: Vec::new(),
        notes: Vec::new(),
        next_deadline: None,
    };
    let mut in_flight = input.in_flight.clone();
    plan_retries(input, &mut in_flight, &mut plan);
    let horizon = input.now + input.ahead;
    // Jobs past the horizon keep their place in the index: the first of them is a candidate deadline.
    let mut next_deadline = input.jobs.first_wake_after(horizon);
    for (id, entry) in input.jobs.waking_by(horizon) {
        let tally = in_flight.entry(id.to_owned()).or_default();
        let caught_up = plan_catch_up(id, entry, input, tally, &mut plan);
        let planned = plan_slots(id, entry, input, *tally, &mut plan);
        let wake = match planned {
            Planned::Advanced(next_slot) => wake_at(entry, id, next_slot, false, false),
            Planned::Held => wake_at(entry, id, entry.next_slot, true, false),
            Planned::Untouched => wake_at(
                entry,
                id,
                entry.next_slot,
                entry.claim_when_due,
                entry.catchup.is_some() && !caught_up,
            ),
        };
        next_deadline = earliest(next_deadline, wake);
    }
    plan.next_deadline = next_deadline;
    plan
}

/// Each owed retry is a catch-up run for the slot of the run it repeats, queued when the job is full.
fn plan_retries(
    input: &TickInput<'_>,
    in_flight: &mut HashMap<String, InFlight>,
    plan: &mut TickPlan,
) {
    for retry in input.retries {
        let Some(entry) = input.jobs.get(&retry.job_id) else {
            continue;
        };
        let tally = in_flight.entry(retry.job_id.clone()).or_default();
        let queued = tally.running >= entry.spec.policy.max_instances || tally.queued > 0;
        count(tally, queued);
        plan.claims.push(Claim {
            job_id: retry.job_id.clone(),
            judged_at: input.now,
            what: What::Retry {
                of: retry.seq,
                slot: retry.slot,
                queued,
            },
        });
    }
}

/// The catch-up runs owed to a resumed job: the first may start, the others queue behind it. Returns
/// whether the job had a catch-up owed (its request is then taken, whatever it made up for).
fn plan_catch_up(
    id: &str,
    entry: &Entry,
    input: &TickInput<'_>,
    tally: &mut InFlight,
    plan: &mut TickPlan,
) -> bool {
    let Some(mode) = entry.catchup else {
        return false;
    };
    let ranges = input.paused.get(id).map_or(&[][..], Vec::as_slice);
    let mut slots = expand(&entry.schedule, ranges);
    if mode == Catchup::All && slots.len() > MAX_CATCHUP_RUNS {
        // The older slots stay recorded as skipped; only the latest are made up for.
        plan.notes.push(Note::CatchupLimited {
            job_id: id.to_owned(),
            slots: slots.len(),
        });
        slots.drain(..slots.len() - MAX_CATCHUP_RUNS);
    }
    for (index, fire) in policy::catch_up(mode, &slots, input.now)
        .into_iter()
        .enumerate()
    {
        let queued =
            index > 0 || tally.running >= entry.spec.policy.max_instances || tally.queued > 0;
        count(tally, queued);
        plan.claims.push(Claim {
            job_id: id.to_owned(),
            judged_at: input.now,
            what: What::CatchUp { fire, queued },
        });
    }
    plan.catchups_done.push(id.to_owned());
    true
}

/// What planning did to a job's pending slot.
enum Planned {
    /// Judged; the cursor moves to this slot.
    Advanced(Option<DateTime<Utc>>),
    /// Due within the claim-ahead window with a run in flight: claimed when due.
    Held,
    Untouched,
}

/// The job's due slots, judged by the policy as of when they are claimed.
fn plan_slots(
    id: &str,
    entry: &Entry,
    input: &TickInput<'_>,
    in_flight: InFlight,
    plan: &mut TickPlan,
) -> Planned {
    let (Some(next_slot), Some(due)) = (entry.next_slot, entry.due(id)) else {
        return Planned::Untouched;
    };
    let busy = in_flight.running > 0 || in_flight.queued > 0;
    let Some(judged_at) = policy::claim_at(due, input.now, input.ahead, busy) else {
        if due <= input.now + input.ahead {
            // Too early to tell whether the run in flight will have ended when the slot comes.
            plan.hold.push(id.to_owned());
            return Planned::Held;
        }
        return Planned::Untouched;
    };
    let decided = policy::decide(
        &Input {
            job_id: id,
            schedule: &entry.schedule,
            policy: &entry.spec.policy,
            jitter: entry.jitter(),
            operator: entry.operator,
            next_slot,
            in_flight,
        },
        judged_at,
    );
    for decision in decided.decisions {
        plan.claims.push(Claim {
            job_id: id.to_owned(),
            judged_at,
            what: What::Slots(decision),
        });
    }
    plan.cursors.push(Cursor {
        job_id: id.to_owned(),
        next_slot: decided.next_slot,
    });
    Planned::Advanced(decided.next_slot)
}

fn count(tally: &mut InFlight, queued: bool) {
    if queued {
        tally.queued += 1;
    } else {
        tally.running += 1;
    }
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The individual slots of recorded ranges, oldest first.
fn expand(schedule: &Schedule, ranges: &[SlotRange]) -> Vec<DateTime<Utc>> {
    let mut slots = Vec::new();
    for &SlotRange { first, last } in ranges {
        let mut slot = Some(first);
        while let Some(at) =
            slot.filter(|at| *at <= last && slots.len() < policy::MAX_SLOTS_PER_TICK)
        {
            slots.push(at);
            slot = schedule.next_after(at);
        }
    }
    slots
}
