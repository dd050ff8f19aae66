//! The tick planner: what one tick claims, as a value. From the jobs as the loop keeps them, the runs in
//! flight and `now`, it computes a [`TickPlan`]: the claims (fire, queue, replace, skip, miss, catch-up,
//! retry), the cursors that move, the jobs held until due, and the next deadline. Pure: it never reads
//! the clock, the disk or the store (the daemon gathers the inputs, the store commits the plan in one
//! transaction, the supervisor starts the runs); `scheduler --dry-run` renders the same plan. The
//! decisions about a job's due slots are `policy`'s; this layer applies them to every job due.

use std::collections::{BTreeMap, HashMap};
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
    /// The limit of each group of the config (`max_running`); a group missing here has none.
    pub groups: &'a BTreeMap<String, u32>,
}

/// What a tick does: its claims are committed in one store transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TickPlan {
    #[serde(serialize_with = "crate::clock::as_rfc3339::instant")]
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
    #[serde(serialize_with = "crate::clock::as_rfc3339::option")]
    pub next_deadline: Option<DateTime<Utc>>,
}

/// One record of a tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claim {
    pub job_id: String,
    /// The instant the claim is judged as of: `now`, or for a slot claimed ahead its due time.
    #[serde(serialize_with = "crate::clock::as_rfc3339::instant")]
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
        #[serde(serialize_with = "crate::clock::as_rfc3339::option")]
        slot: Option<DateTime<Utc>>,
        queued: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cursor {
    pub job_id: String,
    /// `None` when the schedule has no further slot.
    #[serde(serialize_with = "crate::clock::as_rfc3339::option")]
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

    /// A plan of nothing at `now`: where a tick's plan starts, and what records claimed outside the
    /// planner (triggered runs) are committed and applied with.
    pub fn empty(now: DateTime<Utc>) -> Self {
        Self {
            now,
            claims: Vec::new(),
            cursors: Vec::new(),
            catchups_done: Vec::new(),
            hold: Vec::new(),
            notes: Vec::new(),
            next_deadline: None,
        }
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
    let mut plan = TickPlan::empty(input.now);
    let mut in_flight = input.in_flight.clone();
    plan_retries(input, &mut in_flight, &mut plan);
    // A full group is busy for every job in it, as a job's own run makes the job busy: its slots
    // are judged when due, so a run in flight has had its chance to end (and the group then goes to
    // whichever of its jobs ran least recently: the store's order). A group with room is not busy:
    // its jobs are claimed ahead, on time, like any other.
    let mut group_load: HashMap<&str, u32> = HashMap::new();
    for (id, tally) in &in_flight {
        if let Some(group) = input
            .jobs
            .get(id)
            .and_then(|e| e.spec.policy.group.as_deref())
        {
            *group_load.entry(group).or_default() += tally.running + tally.queued;
        }
    }
    let busy_groups: std::collections::HashSet<String> = group_load
        .into_iter()
        .filter(|(group, load)| input.groups.get(*group).is_some_and(|max| load >= max))
        .map(|(group, _)| group.to_owned())
        .collect();
    let horizon = input.now + input.ahead;
    // Jobs past the horizon keep their place in the index: the first of them is a candidate deadline.
    let mut next_deadline = input.jobs.first_wake_after(horizon);
    for (id, entry) in input.jobs.waking_by(horizon) {
        let tally = in_flight.entry(id.to_owned()).or_default();
        let caught_up = plan_catch_up(id, entry, input, tally, &mut plan);
        let group_busy = entry
            .spec
            .policy
            .group
            .as_ref()
            .is_some_and(|group| busy_groups.contains(group));
        let planned = plan_slots(id, entry, input, *tally, group_busy, &mut plan);
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
    group_busy: bool,
    plan: &mut TickPlan,
) -> Planned {
    let (Some(next_slot), Some(due)) = (entry.next_slot, entry.due(id)) else {
        return Planned::Untouched;
    };
    let busy = in_flight.running > 0 || in_flight.queued > 0 || group_busy;
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

#[cfg(test)]
mod tests {
    //! The planner with fixed instants. Every expected claim was worked out by hand from the policy's
    //! rules and the calendar. Unless a test says otherwise the day is Thursday 2026-01-15 (UTC).
    //! DST facts (2026, America/New_York): spring forward Sun 03-08 at 02:00 EST (07:00Z), so local
    //! 02:00-02:59 does not exist; fall back Sun 11-01 at 02:00 EDT (06:00Z), so local 01:00-01:59
    //! happens twice, as EDT (05:00Z-05:59Z) and then as EST (06:00Z-06:59Z).

    use super::*;
    use crate::policy::{Operator, SkipReason};
    use crate::run::Trigger;
    use crate::spec::load_source;

    fn at(text: &str) -> DateTime<Utc> {
        match DateTime::parse_from_rfc3339(text) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => panic!("bad test instant {text:?}: {e}"),
        }
    }

    /// A time of day on 2026-01-15, UTC: `"10:02"` or `"10:02:30.500"`.
    fn jan(time: &str) -> DateTime<Utc> {
        if time.len() == 5 {
            at(&format!("2026-01-15T{time}:00Z"))
        } else {
            at(&format!("2026-01-15T{time}Z"))
        }
    }

    /// An active job pending at `next_slot`, from its `schedule:` and `policy:` as YAML flow mappings.
    fn entry(id: &str, schedule: &str, policy: &str, next_slot: DateTime<Utc>) -> Entry {
        let text = format!(
            "id: {id}\nschedule: {schedule}\nrun:\n  command: [\"true\"]\npolicy: {policy}\n"
        );
        let loaded = match load_source(&text, id, at("2026-01-01T00:00:00Z")) {
            Ok(loaded) => loaded,
            Err(problems) => panic!("{text}: {problems:?}"),
        };
        Entry {
            schedule: loaded.schedule.expect("the spec has a schedule"),
            spec: loaded.spec,
            spec_hash: "hash".into(),
            operator: Operator::Active,
            next_slot: Some(next_slot),
            catchup: None,
            paused_at: None,
            claim_when_due: false,
        }
    }

    fn table(entries: impl IntoIterator<Item = (&'static str, Entry)>) -> Jobs {
        let mut jobs = Jobs::default();
        for (id, entry) in entries {
            jobs.insert(id.to_owned(), entry);
        }
        jobs
    }

    /// The inputs of a tick beyond the jobs; nothing in flight, nothing owed.
    #[derive(Default)]
    struct World {
        in_flight: HashMap<String, InFlight>,
        retries: Vec<OwedRetry>,
        paused: HashMap<String, Vec<SlotRange>>,
        groups: BTreeMap<String, u32>,
    }

    impl World {
        fn running(mut self, id: &str, running: u32, queued: u32) -> Self {
            self.in_flight
                .insert(id.to_owned(), InFlight { running, queued });
            self
        }

        fn plan(&self, jobs: &Jobs, now: DateTime<Utc>) -> TickPlan {
            plan_tick(&TickInput {
                jobs,
                in_flight: &self.in_flight,
                retries: &self.retries,
                paused: &self.paused,
                now,
                ahead: super::super::jobs::ahead(),
                groups: &self.groups,
            })
        }
    }

    fn whats<'a>(plan: &'a TickPlan, id: &str) -> Vec<&'a What> {
        plan.claims
            .iter()
            .filter(|claim| claim.job_id == id)
            .map(|claim| &claim.what)
            .collect()
    }

    fn fire(slot: DateTime<Utc>, trigger: Trigger, first_slot: DateTime<Utc>, count: u64) -> Fire {
        Fire {
            slot,
            due_at: slot,
            trigger,
            first_slot,
            count,
        }
    }

    fn one(slot: DateTime<Utc>) -> Fire {
        fire(slot, Trigger::Schedule, slot, 1)
    }

    fn skipped(first: DateTime<Utc>, last: DateTime<Utc>, count: u64, reason: SkipReason) -> What {
        What::Slots(Decision::Skip {
            first_slot: first,
            last_slot: last,
            count,
            reason,
        })
    }

    /// One scenario of an `every: 1m` job: its policy, the runs in flight, its pending slot and `now`,
    /// and the claims expected.
    struct Row {
        name: &'static str,
        policy: &'static str,
        in_flight: (u32, u32),
        next_slot: &'static str,
        now: &'static str,
        expect: Vec<What>,
        cursor: &'static str,
    }

    #[test]
    fn overlap_and_coalesce_as_a_table() {
        let rows = [
            Row {
                name: "one slot due, nothing running -> one scheduled run",
                policy: "{}",
                in_flight: (0, 0),
                next_slot: "10:00",
                now: "10:00",
                expect: vec![What::Slots(Decision::Fire(one(jan("10:00"))))],
                cursor: "10:01",
            },
            Row {
                name: "two slots due, coalesce on, nothing running -> one catch-up run for both",
                policy: "{coalesce: true}",
                in_flight: (0, 0),
                next_slot: "10:00",
                now: "10:01:10.000",
                expect: vec![What::Slots(Decision::Fire(fire(
                    jan("10:01"),
                    Trigger::Catchup,
                    jan("10:00"),
                    2,
                )))],
                cursor: "10:02",
            },
            Row {
                name: "two slots due, coalesce on, one running, overlap queue -> one queued run, one coalesced slot",
                policy: "{coalesce: true, overlap: queue}",
                in_flight: (1, 0),
                next_slot: "10:00",
                now: "10:01:10.000",
                expect: vec![What::Slots(Decision::Queue(fire(
                    jan("10:01"),
                    Trigger::Catchup,
                    jan("10:00"),
                    2,
                )))],
                cursor: "10:02",
            },
            Row {
                name: "two slots due, coalesce off, one running, overlap queue -> one queued run, one skipped slot",
                policy: "{coalesce: false, overlap: queue}",
                in_flight: (1, 0),
                next_slot: "10:00",
                now: "10:01:10.000",
                expect: vec![
                    What::Slots(Decision::Queue(fire(
                        jan("10:00"),
                        Trigger::Catchup,
                        jan("10:00"),
                        1,
                    ))),
                    skipped(jan("10:01"), jan("10:01"), 1, SkipReason::Overlap),
                ],
                cursor: "10:02",
            },
            Row {
                name: "one slot due, one running, overlap skip -> skipped for overlap",
                policy: "{overlap: skip}",
                in_flight: (1, 0),
                next_slot: "10:00",
                now: "10:00:00.100",
                expect: vec![skipped(jan("10:00"), jan("10:00"), 1, SkipReason::Overlap)],
                cursor: "10:01",
            },
            Row {
                name: "one slot due, one running, overlap replace -> the oldest run is replaced",
                policy: "{overlap: replace}",
                in_flight: (1, 0),
                next_slot: "10:00",
                now: "10:00:00.100",
                expect: vec![What::Slots(Decision::Replace(one(jan("10:00"))))],
                cursor: "10:01",
            },
            Row {
                name: "one slot due, one of two instances taken -> a second run starts",
                policy: "{max_instances: 2, overlap: skip}",
                in_flight: (1, 0),
                next_slot: "10:00",
                now: "10:00:00.100",
                expect: vec![What::Slots(Decision::Fire(one(jan("10:00"))))],
                cursor: "10:01",
            },
            Row {
                name: "one slot due, a run waiting in the queue -> the queue is full, skipped",
                policy: "{max_instances: 2, overlap: queue}",
                in_flight: (1, 1),
                next_slot: "10:00",
                now: "10:00:00.100",
                expect: vec![skipped(jan("10:00"), jan("10:00"), 1, SkipReason::Overlap)],
                cursor: "10:01",
            },
        ];
        for row in rows {
            let jobs = table([(
                "job",
                entry("job", "{every: 1m}", row.policy, jan(row.next_slot)),
            )]);
            let world = World::default().running("job", row.in_flight.0, row.in_flight.1);
            let plan = world.plan(&jobs, jan(row.now));
            let expected: Vec<&What> = row.expect.iter().collect();
            assert_eq!(whats(&plan, "job"), expected, "{}", row.name);
            assert_eq!(
                plan.cursors,
                [Cursor {
                    job_id: "job".into(),
                    next_slot: Some(jan(row.cursor)),
                }],
                "{}",
                row.name
            );
            let replaced: Vec<&str> = plan.replaced().collect();
            let replaces = row
                .expect
                .iter()
                .any(|what| matches!(what, What::Slots(Decision::Replace(_))));
            assert_eq!(replaced == ["job"], replaces, "{}", row.name);
        }
    }

    #[test]
    fn a_paused_job_records_its_due_slots_as_one_paused_skip() {
        let mut paused = entry("job", "{every: 1m}", "{}", jan("10:00"));
        paused.operator = Operator::Paused;
        let jobs = table([("job", paused)]);
        let plan = World::default().plan(&jobs, jan("10:02:30.000"));
        assert_eq!(
            whats(&plan, "job"),
            [&skipped(jan("10:00"), jan("10:02"), 3, SkipReason::Paused)]
        );
    }

    #[test]
    fn a_slot_claimed_past_its_misfire_grace_is_missed_and_the_record_says_by_how_much() {
        let job = || entry("job", "{every: 1h}", "{misfire_grace: 5m}", jan("10:00"));
        let jobs = table([("job", job())]);
        // Within the grace (4 min late): it runs.
        let plan = World::default().plan(&jobs, jan("10:04"));
        assert_eq!(
            whats(&plan, "job"),
            [&What::Slots(Decision::Fire(one(jan("10:00"))))]
        );
        // Past it (6 min late): missed, and the cursor moves on all the same.
        let plan = World::default().plan(&jobs, jan("10:06"));
        let missed = What::Slots(Decision::Miss {
            first_slot: jan("10:00"),
            last_slot: jan("10:00"),
            count: 1,
        });
        assert_eq!(whats(&plan, "job"), [&missed]);
        assert_eq!(plan.cursors[0].next_slot, Some(jan("11:00")));
        let records =
            super::super::commit::records(&plan, &jobs, &crate::config::HomeConfig::default());
        let crate::store::TickRecord::Missed { message, .. } = &records[0] else {
            panic!("a missed record: {records:?}");
        };
        assert!(
            message.contains("claimed 360.0 s after the last was due, past misfire_grace 5m"),
            "{message}"
        );
    }

    #[test]
    fn jitter_is_deterministic_within_its_window_and_claimed_ahead_of_its_due_time() {
        // cache-warm's 08:15 slot: FNV-1a-64 of the job and slot, mod 120 000 ms = 46 526 ms.
        let slot = at("2026-06-10T08:15:00Z");
        let due = at("2026-06-10T08:15:46.526Z");
        let jobs = table([(
            "cache-warm",
            entry("cache-warm", "{every: 15m, jitter: 2m}", "{}", slot),
        )]);
        // Before due - 500 ms nothing is claimed, and that instant is the next deadline.
        let plan = World::default().plan(&jobs, at("2026-06-10T08:15:46.000Z"));
        assert!(plan.claims.is_empty(), "{plan:?}");
        assert_eq!(plan.next_deadline, Some(at("2026-06-10T08:15:46.026Z")));
        assert_eq!(jobs.next_wake(), plan.next_deadline);
        // Inside the window it is claimed ahead, judged as of its due time.
        let plan = World::default().plan(&jobs, at("2026-06-10T08:15:46.100Z"));
        let expected = Fire {
            due_at: due,
            ..one(slot)
        };
        assert_eq!(
            plan.claims,
            [Claim {
                job_id: "cache-warm".into(),
                judged_at: due,
                what: What::Slots(Decision::Fire(expected)),
            }]
        );
        assert_eq!(
            World::default().plan(&jobs, at("2026-06-10T08:15:46.100Z")),
            plan,
            "the same inputs plan the same"
        );
        // Any job's delay stays inside [0, jitter).
        for n in 0..200 {
            let id = format!("job-{n}");
            let entry = entry(&id, "{every: 15m, jitter: 2m}", "{}", slot);
            let delay = entry.due(&id).expect("a due time") - slot;
            assert!(
                delay >= TimeDelta::zero() && delay < TimeDelta::minutes(2),
                "{id}: {delay}"
            );
        }
    }

    #[test]
    fn a_job_with_a_run_in_flight_is_held_until_due_then_claimed_when_due() {
        let jobs = &mut table([("job", entry("job", "{every: 1m}", "{}", jan("10:01")))]);
        let busy = World::default().running("job", 1, 0);
        let plan = busy.plan(jobs, jan("10:00:59.800"));
        assert!(
            plan.claims.is_empty() && plan.cursors.is_empty(),
            "{plan:?}"
        );
        assert_eq!(plan.hold, ["job"]);
        assert_eq!(
            plan.next_deadline,
            Some(jan("10:01")),
            "held: wakes when due"
        );
        jobs.hold(&plan);
        assert_eq!(jobs.next_wake(), plan.next_deadline);
        // At the slot the run has ended: the slot runs, judged as of now.
        let plan = World::default().plan(jobs, jan("10:01"));
        assert_eq!(
            whats(&plan, "job"),
            [&What::Slots(Decision::Fire(one(jan("10:01"))))]
        );
        jobs.advance(&plan);
        assert_eq!(jobs.next_wake(), Some(jan("10:01:59.500")));
    }

    #[test]
    fn a_full_group_holds_its_jobs_until_due_as_their_own_runs_would_and_one_with_room_does_not() {
        let group = "{group: db}";
        let jobs = &mut table([
            ("a", entry("a", "{every: 1m}", group, jan("10:01"))),
            ("b", entry("b", "{every: 1m}", group, jan("10:01"))),
            ("loner", entry("loner", "{every: 1m}", "{}", jan("10:01"))),
        ]);
        // With room for two, `a`'s run in flight holds `a` alone; `b` is claimed ahead, on time.
        let mut roomy = World::default().running("a", 1, 0);
        roomy.groups.insert("db".into(), 2);
        let plan = roomy.plan(jobs, jan("10:00:59.800"));
        assert_eq!(plan.hold, ["a"], "{plan:?}");
        assert_eq!(
            whats(&plan, "b"),
            [&What::Slots(Decision::Fire(one(jan("10:01"))))]
        );
        // With room for one, `a`'s run fills the group: both jobs of it wait until due, the job
        // outside it does not.
        let mut busy = World::default().running("a", 1, 0);
        busy.groups.insert("db".into(), 1);
        let plan = busy.plan(jobs, jan("10:00:59.800"));
        let mut held = plan.hold.clone();
        held.sort();
        assert_eq!(held, ["a", "b"], "{plan:?}");
        assert_eq!(
            whats(&plan, "loner"),
            [&What::Slots(Decision::Fire(one(jan("10:01"))))]
        );
        jobs.hold(&plan);
        // When due, with the group's run ended, both are claimed: the store gives the place to one.
        let plan = World::default().plan(jobs, jan("10:01"));
        assert_eq!(whats(&plan, "a").len(), 1);
        assert_eq!(whats(&plan, "b").len(), 1);
    }

    #[test]
    fn catch_up_after_a_pause_latest_all_and_none() {
        // Paused over the 01:00, 02:00 and 03:00 slots of an hourly job; resumed at 03:30, its next
        // slot 04:00 not due yet.
        let now = jan("03:30");
        let world = |mode| {
            let mut resumed = entry("job", "{every: 1h}", "{}", jan("04:00"));
            resumed.catchup = Some(mode);
            let mut world = World::default();
            world.paused.insert(
                "job".into(),
                vec![SlotRange {
                    first: jan("01:00"),
                    last: jan("03:00"),
                }],
            );
            (table([("job", resumed)]), world)
        };
        let catch_up = |slot: &str, first: &str, count, queued| What::CatchUp {
            fire: Fire {
                due_at: now,
                ..fire(jan(slot), Trigger::Catchup, jan(first), count)
            },
            queued,
        };

        let (jobs, latest) = world(Catchup::Latest);
        let plan = latest.plan(&jobs, now);
        assert_eq!(whats(&plan, "job"), [&catch_up("03:00", "01:00", 3, false)]);
        assert_eq!(plan.catchups_done, ["job"]);
        assert!(plan.cursors.is_empty(), "04:00 is not due: {plan:?}");
        assert_eq!(plan.next_deadline, Some(jan("03:59:59.500")));

        let (jobs, all) = world(Catchup::All);
        let plan = all.plan(&jobs, now);
        assert_eq!(
            whats(&plan, "job"),
            [
                &catch_up("01:00", "01:00", 1, false),
                &catch_up("02:00", "02:00", 1, true),
                &catch_up("03:00", "03:00", 1, true),
            ],
            "one run per slot, one after another"
        );

        // With the job's instance taken, even the first waits.
        let (jobs, busy) = world(Catchup::Latest);
        let plan = busy.running("job", 1, 0).plan(&jobs, now);
        assert_eq!(whats(&plan, "job"), [&catch_up("03:00", "01:00", 3, true)]);

        let (jobs, none) = world(Catchup::None);
        let plan = none.plan(&jobs, now);
        assert!(plan.claims.is_empty(), "{plan:?}");
        assert_eq!(
            plan.catchups_done,
            ["job"],
            "the request is taken all the same"
        );
    }

    #[test]
    fn catch_up_all_makes_up_for_the_latest_hundred_slots_and_says_so() {
        let mut resumed = entry("job", "{every: 1m}", "{}", jan("12:00"));
        resumed.catchup = Some(Catchup::All);
        let jobs = table([("job", resumed)]);
        let mut world = World::default();
        // 08:00 to 09:59: 120 slots.
        world.paused.insert(
            "job".into(),
            vec![SlotRange {
                first: jan("08:00"),
                last: jan("09:59"),
            }],
        );
        let plan = world.plan(&jobs, jan("11:00"));
        assert_eq!(plan.claims.len(), MAX_CATCHUP_RUNS);
        assert!(
            matches!(&plan.claims[0].what, What::CatchUp { fire, .. } if fire.slot == jan("08:20")),
            "the oldest 20 stay skipped: {:?}",
            plan.claims[0]
        );
        assert_eq!(
            plan.notes,
            [Note::CatchupLimited {
                job_id: "job".into(),
                slots: 120,
            }]
        );
    }

    #[test]
    fn a_retry_owed_counts_against_max_instances_for_the_slot_due_with_it() {
        let jobs = table([("job", entry("job", "{every: 1m}", "{}", jan("10:00")))]);
        let mut world = World::default();
        world.retries.push(OwedRetry {
            job_id: "job".into(),
            seq: 7,
            slot: Some(jan("09:59")),
        });
        world.retries.push(OwedRetry {
            job_id: "gone".into(),
            seq: 3,
            slot: None,
        });
        let plan = world.plan(&jobs, jan("10:00"));
        assert_eq!(
            whats(&plan, "job"),
            [
                &What::Retry {
                    of: 7,
                    slot: Some(jan("09:59")),
                    queued: false,
                },
                &skipped(jan("10:00"), jan("10:00"), 1, SkipReason::Overlap),
            ]
        );
        assert!(whats(&plan, "gone").is_empty(), "a job no longer scheduled");
    }

    #[test]
    fn a_daily_slot_in_the_spring_gap_runs_once_at_the_end_of_the_gap() {
        // 02:30 does not exist in New York on 2026-03-08: the slot is 03:00 EDT (07:00Z).
        let schedule = "{cron: \"30 2 * * *\", timezone: America/New_York}";
        let jobs = table([(
            "job",
            entry("job", schedule, "{}", at("2026-03-08T07:00:00Z")),
        )]);
        let plan = World::default().plan(&jobs, at("2026-03-08T07:00:00Z"));
        assert_eq!(
            whats(&plan, "job"),
            [&What::Slots(Decision::Fire(one(at(
                "2026-03-08T07:00:00Z"
            ))))]
        );
        assert_eq!(plan.cursors[0].next_slot, Some(at("2026-03-09T06:30:00Z")));

        // Down from before the gap until after the next day's slot: three slots, one run for all.
        let jobs = table([(
            "job",
            entry(
                "job",
                schedule,
                "{misfire_grace: unlimited}",
                at("2026-03-07T07:30:00Z"),
            ),
        )]);
        let plan = World::default().plan(&jobs, at("2026-03-09T07:00:00Z"));
        assert_eq!(
            whats(&plan, "job"),
            [&What::Slots(Decision::Fire(fire(
                at("2026-03-09T06:30:00Z"),
                Trigger::Catchup,
                at("2026-03-07T07:30:00Z"),
                3,
            )))]
        );
        assert_eq!(plan.cursors[0].next_slot, Some(at("2026-03-10T06:30:00Z")));
    }

    #[test]
    fn the_fall_fold_runs_a_daily_slot_once_and_an_interval_in_both_passes() {
        // 01:30 happens twice on 2026-11-01: a daily 01:30 job runs in the first pass (05:30Z) only.
        let daily = "{cron: \"30 1 * * *\", timezone: America/New_York}";
        let jobs = table([("job", entry("job", daily, "{}", at("2026-11-01T05:30:00Z")))]);
        let plan = World::default().plan(&jobs, at("2026-11-01T05:30:00Z"));
        assert_eq!(
            whats(&plan, "job"),
            [&What::Slots(Decision::Fire(one(at(
                "2026-11-01T05:30:00Z"
            ))))]
        );
        assert_eq!(
            plan.cursors[0].next_slot,
            Some(at("2026-11-02T06:30:00Z")),
            "not the second 01:30 (06:30Z the same day)"
        );

        // Every 30 minutes, down over the whole fold, coalesce off: each of the four slots runs.
        let half_hourly = "{cron: \"*/30 * * * *\", timezone: America/New_York}";
        let jobs = table([(
            "job",
            entry(
                "job",
                half_hourly,
                "{coalesce: false, misfire_grace: unlimited, max_instances: 4}",
                at("2026-11-01T05:00:00Z"),
            ),
        )]);
        let plan = World::default().plan(&jobs, at("2026-11-01T06:30:00Z"));
        let slot =
            |text: &str, trigger| What::Slots(Decision::Fire(fire(at(text), trigger, at(text), 1)));
        assert_eq!(
            whats(&plan, "job"),
            [
                &slot("2026-11-01T05:00:00Z", Trigger::Catchup),
                &slot("2026-11-01T05:30:00Z", Trigger::Catchup),
                &slot("2026-11-01T06:00:00Z", Trigger::Catchup),
                &slot("2026-11-01T06:30:00Z", Trigger::Schedule),
            ]
        );
        assert_eq!(plan.cursors[0].next_slot, Some(at("2026-11-01T07:00:00Z")));
    }

    #[test]
    fn a_thousand_jobs_due_at_once_make_a_thousand_claims_and_the_index_moves_them_all() {
        let mut jobs = table([("later", entry("later", "{every: 1h}", "{}", jan("11:00")))]);
        for n in 0..1000 {
            let id = format!("job-{n:04}");
            jobs.insert(id.clone(), entry(&id, "{every: 1m}", "{}", jan("10:00")));
        }
        assert_eq!(jobs.next_wake(), Some(jan("09:59:59.500")));
        let plan = World::default().plan(&jobs, jan("10:00"));
        assert_eq!(plan.claims.len(), 1000);
        assert!(
            plan.claims
                .iter()
                .all(|claim| claim.what == What::Slots(Decision::Fire(one(jan("10:00"))))),
            "every job starts its run"
        );
        assert_eq!(plan.cursors.len(), 1000, "the later job is not visited");
        assert_eq!(plan.next_deadline, Some(jan("10:00:59.500")));
        jobs.advance(&plan);
        assert_eq!(jobs.next_wake(), plan.next_deadline);
        assert_eq!(jobs.waking_by(jan("10:00:00.500")).count(), 0);
        assert_eq!(jobs.waking_by(jan("10:00:59.500")).count(), 1000);
        assert_eq!(jobs.len(), 1001);
    }

    #[test]
    fn a_dry_run_judges_as_of_now_and_claims_nothing_ahead() {
        let jobs = table([("job", entry("job", "{every: 1m}", "{}", jan("10:01")))]);
        let plan = plan_tick(&TickInput {
            jobs: &jobs,
            in_flight: &HashMap::new(),
            retries: &[],
            paused: &HashMap::new(),
            now: jan("10:00:59.800"),
            ahead: TimeDelta::zero(),
            groups: &BTreeMap::new(),
        });
        assert!(plan.is_empty() && plan.hold.is_empty(), "{plan:?}");
    }
}
