//! Integration tests of `jobs::policy`: what happens to a job's due slots (fire, queue, replace, skip,
//! coalesce, miss), catch-up on resume, the pending slot after a spec change, jitter, DST days and the
//! per-tick slot cap.
//!
//! Time is an input: every test starts from fixed RFC 3339 instants, never the clock, and never sleeps.
//! Every expected decision and next slot below was worked out by hand from the policy's documented rules
//! and the calendar, not recorded from the code's output. Unless a row says otherwise the day is
//! Thursday 2026-01-15 (UTC, no DST anywhere near) and `every` schedules use the default anchor (the
//! Unix epoch), so an `every 1m` job has a slot at every whole UTC minute.
//!
//! DST facts used (2026):
//! - America/New_York: EST = UTC-5, EDT = UTC-4. Spring forward Sun 2026-03-08 at 02:00 EST (07:00Z):
//!   local 02:00-02:59 does not exist. Fall back Sun 2026-11-01 at 02:00 EDT (06:00Z) to 01:00 EST:
//!   local 01:00-01:59 happens twice, first as EDT (05:00Z-05:59Z), then as EST (06:00Z-06:59Z).
//! - Europe/Berlin: CET = UTC+1, CEST = UTC+2. Spring forward Sun 2026-03-29 at 02:00 CET (01:00Z):
//!   local 02:00-02:59 does not exist. Fall back Sun 2026-10-25 at 03:00 CEST (01:00Z) to 02:00 CET:
//!   local 02:00-02:59 happens twice, as CEST (00:00Z-00:59Z), then as CET (01:00Z-01:59Z).
//!
//! Jitter values: the delay is FNV-1a-64 over `job_id ++ [0] ++ slot millis (i64 LE)`, modulo the window
//! (the jitter, narrowed to the gap to the next slot). Computed independently (Python) for the job
//! `cache-warm`:
//! - 2026-06-10T08:00:00Z (1781078400000): hash 0x47e2c04a6942a399; mod 30 000 = 19 545.
//! - 2026-06-10T08:15:00Z (1781079300000): hash 0x33cd5e9484d6c0be; mod 120 000 = 46 526, mod 1 000 = 526.
//! - 2026-06-10T08:30:00Z (1781080200000): hash 0xcc3d1773c00862b8; mod 120 000 = 101 880.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jobs::policy::{
    Catchup, Decision, Fire, InFlight, Input, MAX_SLOTS_PER_TICK, Operator, Plan, SkipReason,
    catch_up, claim_at, decide, due_at, pending_slot,
};
use jobs::run::Trigger;
use jobs::schedule::Schedule;
use jobs::spec::duration::{Limit, SpecDuration};
use jobs::spec::model::{Overlap, PolicySpec, ScheduleSpec};

// ---------------------------------------------------------------------------------------------------
// Helpers (they panic with a message rather than unwrap: the crate denies unwrap/expect outside tests)
// ---------------------------------------------------------------------------------------------------

const SCHEDULE: Trigger = Trigger::Schedule;
const CATCHUP: Trigger = Trigger::Catchup;

/// A fixed instant from RFC 3339 text (any offset; the instant is what counts).
fn at(text: &str) -> DateTime<Utc> {
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => t.with_timezone(&Utc),
        Err(e) => panic!("bad test instant {text:?}: {e}"),
    }
}

/// A UTC time of day on Thursday 2026-01-15: `"10:02"` or `"10:02:30"` or `"10:02:30.500"`.
fn jan(time: &str) -> DateTime<Utc> {
    if time.len() == 5 {
        at(&format!("2026-01-15T{time}:00Z"))
    } else {
        at(&format!("2026-01-15T{time}Z"))
    }
}

fn duration(text: &str) -> SpecDuration {
    match text.parse::<SpecDuration>() {
        Ok(d) => d,
        Err(e) => panic!("bad test duration {text:?}: {e}"),
    }
}

fn build(spec: &ScheduleSpec) -> Schedule {
    match Schedule::from_spec(spec) {
        Ok(s) => s,
        Err(e) => panic!("schedule {spec:?} was rejected: {e}"),
    }
}

/// A cron schedule read in `timezone`.
fn cron(pattern: &str, timezone: &str) -> Schedule {
    build(&ScheduleSpec {
        cron: Some(pattern.to_owned()),
        timezone: Some(timezone.to_owned()),
        every: None,
        anchor: None,
        jitter: None,
    })
}

/// An interval schedule; `anchor` and `timezone` default as the spec says (epoch, UTC).
fn every(interval: &str, anchor: Option<&str>, timezone: Option<&str>) -> Schedule {
    build(&ScheduleSpec {
        cron: None,
        timezone: timezone.map(str::to_owned),
        every: Some(duration(interval)),
        anchor: anchor.map(at),
        jitter: None,
    })
}

/// `grace` is a duration such as `"5m"`, or `"unlimited"`.
fn policy(max_instances: u32, overlap: Overlap, coalesce: bool, grace: &str) -> PolicySpec {
    PolicySpec {
        max_instances,
        overlap,
        coalesce,
        misfire_grace: if grace == "unlimited" {
            Limit::Unlimited
        } else {
            Limit::Within(duration(grace))
        },
        group: None,
    }
}

/// A run for `slot` standing for `count` slots from `first_slot`, due at its slot (no jitter).
fn run(slot: DateTime<Utc>, trigger: Trigger, first_slot: DateTime<Utc>, count: u64) -> Fire {
    Fire {
        slot,
        due_at: slot,
        trigger,
        first_slot,
        count,
    }
}

/// A run for exactly one slot, due at its slot.
fn single(slot: DateTime<Utc>, trigger: Trigger) -> Fire {
    run(slot, trigger, slot, 1)
}

fn skip(first: DateTime<Utc>, last: DateTime<Utc>, count: u64, reason: SkipReason) -> Decision {
    Decision::Skip {
        first_slot: first,
        last_slot: last,
        count,
        reason,
    }
}

fn overlap_skip(slot: DateTime<Utc>) -> Decision {
    skip(slot, slot, 1, SkipReason::Overlap)
}

fn miss(first: DateTime<Utc>, last: DateTime<Utc>, count: u64) -> Decision {
    Decision::Miss {
        first_slot: first,
        last_slot: last,
        count,
    }
}

/// One scenario for `decide`: the job's state and `now`, and the hand-computed plan.
struct Case<'a> {
    name: &'a str,
    job_id: &'a str,
    schedule: &'a Schedule,
    policy: PolicySpec,
    jitter: Option<Duration>,
    operator: Operator,
    in_flight: InFlight,
    next_slot: DateTime<Utc>,
    now: DateTime<Utc>,
    decisions: Vec<Decision>,
    next: Option<DateTime<Utc>>,
}

/// An active job with nothing in flight and no jitter; the expected plan is set with `expect`.
fn case<'a>(
    name: &'a str,
    schedule: &'a Schedule,
    policy: PolicySpec,
    next_slot: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Case<'a> {
    Case {
        name,
        job_id: "job",
        schedule,
        policy,
        jitter: None,
        operator: Operator::Active,
        in_flight: InFlight::default(),
        next_slot,
        now,
        decisions: Vec::new(),
        next: None,
    }
}

impl<'a> Case<'a> {
    fn in_flight(mut self, running: u32, queued: u32) -> Self {
        self.in_flight = InFlight { running, queued };
        self
    }

    fn paused(mut self) -> Self {
        self.operator = Operator::Paused;
        self
    }

    fn jittered(mut self, job_id: &'a str, jitter: Duration) -> Self {
        self.job_id = job_id;
        self.jitter = Some(jitter);
        self
    }

    fn expect(mut self, decisions: Vec<Decision>, next: DateTime<Utc>) -> Self {
        self.decisions = decisions;
        self.next = Some(next);
        self
    }

    fn input(&self) -> Input<'_> {
        Input {
            job_id: self.job_id,
            schedule: self.schedule,
            policy: &self.policy,
            jitter: self.jitter,
            operator: self.operator,
            next_slot: self.next_slot,
            in_flight: self.in_flight,
        }
    }

    fn check(&self) {
        let got = decide(&self.input(), self.now);
        let expected = Plan {
            decisions: self.decisions.clone(),
            next_slot: self.next,
        };
        assert_eq!(
            got, expected,
            "\n{}\n  next_slot {}, now {}\n  got:      {got:#?}\n  expected: {expected:#?}",
            self.name, self.next_slot, self.now
        );
    }
}

fn check_all(cases: &[Case<'_>]) {
    for case in cases {
        case.check();
    }
}

/// One row of the catch-up table: the slots skipped while paused, and the runs owed on resume.
struct Resume<'a> {
    name: &'a str,
    mode: Catchup,
    slots: &'a [DateTime<Utc>],
    expected: Vec<Fire>,
}

fn resume<'a>(
    name: &'a str,
    mode: Catchup,
    slots: &'a [DateTime<Utc>],
    expected: Vec<Fire>,
) -> Resume<'a> {
    Resume {
        name,
        mode,
        slots,
        expected,
    }
}

/// One row of the reload table: `pending_slot(kept, changed, schedule, now)` and its expected answer.
struct Reload<'a> {
    name: &'a str,
    kept: Option<DateTime<Utc>>,
    changed: bool,
    schedule: &'a Schedule,
    now: DateTime<Utc>,
    expected: Option<DateTime<Utc>>,
}

fn reload<'a>(
    name: &'a str,
    kept: Option<DateTime<Utc>>,
    changed: bool,
    schedule: &'a Schedule,
    now: DateTime<Utc>,
    expected: Option<DateTime<Utc>>,
) -> Reload<'a> {
    Reload {
        name,
        kept,
        changed,
        schedule,
        now,
        expected,
    }
}

// ---------------------------------------------------------------------------------------------------
// 1. Coalesce on/off x one, three, many due slots
// ---------------------------------------------------------------------------------------------------

#[test]
fn coalesce_on_and_off_with_one_three_and_many_due_slots() {
    let m1 = every("1m", None, None);
    let skip1 = |coalesce| policy(1, Overlap::Skip, coalesce, "5m");
    check_all(&[
        // Nothing due yet.
        case(
            "next slot 10:00, now 09:59:59.999: nothing due, the slot stays pending",
            &m1,
            skip1(true),
            jan("10:00"),
            jan("09:59:59.999"),
        )
        .expect(vec![], jan("10:00")),
        // One slot.
        case(
            "one slot due at exactly now, coalesce on -> Fire(Schedule, count 1)",
            &m1,
            skip1(true),
            jan("10:00"),
            jan("10:00"),
        )
        .expect(vec![Decision::Fire(single(jan("10:00"), SCHEDULE))], jan("10:01")),
        case(
            "one slot due (10:00, now 10:00:30), coalesce on -> Fire(Schedule, count 1)",
            &m1,
            skip1(true),
            jan("10:00"),
            jan("10:00:30"),
        )
        .expect(vec![Decision::Fire(single(jan("10:00"), SCHEDULE))], jan("10:01")),
        case(
            "one slot due (10:00, now 10:00:30), coalesce off -> Fire(Schedule, count 1)",
            &m1,
            skip1(false),
            jan("10:00"),
            jan("10:00:30"),
        )
        .expect(vec![Decision::Fire(single(jan("10:00"), SCHEDULE))], jan("10:01")),
        // Three slots: 10:00, 10:01, 10:02 (10:03 is still ahead).
        case(
            "three slots due, coalesce on -> one Catchup run for 10:02 standing for 10:00..10:02",
            &m1,
            skip1(true),
            jan("10:00"),
            jan("10:02:30"),
        )
        .expect(
            vec![Decision::Fire(run(jan("10:02"), CATCHUP, jan("10:00"), 3))],
            jan("10:03"),
        ),
        case(
            "three slots due, coalesce off, max 1, overlap skip -> 10:00 fires, 10:01 and 10:02 skipped as one record",
            &m1,
            skip1(false),
            jan("10:00"),
            jan("10:02:30"),
        )
        .expect(
            vec![
                Decision::Fire(single(jan("10:00"), CATCHUP)),
                skip(jan("10:01"), jan("10:02"), 2, SkipReason::Overlap),
            ],
            jan("10:03"),
        ),
        case(
            "three slots due, coalesce off, max 3 -> three runs, 10:00/10:01 Catchup, 10:02 Schedule",
            &m1,
            policy(3, Overlap::Skip, false, "5m"),
            jan("10:00"),
            jan("10:02:30"),
        )
        .expect(
            vec![
                Decision::Fire(single(jan("10:00"), CATCHUP)),
                Decision::Fire(single(jan("10:01"), CATCHUP)),
                Decision::Fire(single(jan("10:02"), SCHEDULE)),
            ],
            jan("10:03"),
        ),
        case(
            "three slots due, coalesce off, max 1, overlap queue -> fire, queue one, skip the third",
            &m1,
            policy(1, Overlap::Queue, false, "5m"),
            jan("10:00"),
            jan("10:02:30"),
        )
        .expect(
            vec![
                Decision::Fire(single(jan("10:00"), CATCHUP)),
                Decision::Queue(single(jan("10:01"), CATCHUP)),
                overlap_skip(jan("10:02")),
            ],
            jan("10:03"),
        ),
        case(
            "three slots due, coalesce off, max 1, overlap replace -> fire, then each later slot replaces",
            &m1,
            policy(1, Overlap::Replace, false, "5m"),
            jan("10:00"),
            jan("10:02:30"),
        )
        .expect(
            vec![
                Decision::Fire(single(jan("10:00"), CATCHUP)),
                Decision::Replace(single(jan("10:01"), CATCHUP)),
                Decision::Replace(single(jan("10:02"), SCHEDULE)),
            ],
            jan("10:03"),
        ),
        case(
            "three slots due, coalesce off, max 2, one running -> one fires, two skipped",
            &m1,
            policy(2, Overlap::Skip, false, "5m"),
            jan("10:00"),
            jan("10:02:30"),
        )
        .in_flight(1, 0)
        .expect(
            vec![
                Decision::Fire(single(jan("10:00"), CATCHUP)),
                skip(jan("10:01"), jan("10:02"), 2, SkipReason::Overlap),
            ],
            jan("10:03"),
        ),
        // Many slots: 10:00..10:59 is 60 slots; the latest (10:59) is 59 s late, inside the 5m grace.
        case(
            "60 slots due, coalesce on -> one Catchup run for 10:59 standing for 60 slots",
            &m1,
            skip1(true),
            jan("10:00"),
            jan("10:59:59"),
        )
        .expect(
            vec![Decision::Fire(run(jan("10:59"), CATCHUP, jan("10:00"), 60))],
            jan("11:00"),
        ),
        // Coalesce off: a slot is late when now - slot > 5m, i.e. slot < 10:54:59: 10:00..10:54 (55 slots,
        // 10:54 is 5m59s late) are missed; 10:55 (4m59s late) .. 10:59 are on time.
        case(
            "60 slots due, coalesce off, grace 5m, max 5 -> one Miss range of 55, five runs",
            &m1,
            policy(5, Overlap::Skip, false, "5m"),
            jan("10:00"),
            jan("10:59:59"),
        )
        .expect(
            vec![
                miss(jan("10:00"), jan("10:54"), 55),
                Decision::Fire(single(jan("10:55"), CATCHUP)),
                Decision::Fire(single(jan("10:56"), CATCHUP)),
                Decision::Fire(single(jan("10:57"), CATCHUP)),
                Decision::Fire(single(jan("10:58"), CATCHUP)),
                Decision::Fire(single(jan("10:59"), SCHEDULE)),
            ],
            jan("11:00"),
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------------
// 2. max_instances reached x overlap skip / queue / replace
// ---------------------------------------------------------------------------------------------------

#[test]
fn max_instances_reached_under_each_overlap_policy() {
    let m1 = every("1m", None, None);
    // One slot due: 10:00, now 10:00:30, next 10:01.
    let one = |name, max, overlap, running, queued, decision| {
        case(
            name,
            &m1,
            policy(max, overlap, true, "5m"),
            jan("10:00"),
            jan("10:00:30"),
        )
        .in_flight(running, queued)
        .expect(vec![decision], jan("10:01"))
    };
    let fire = single(jan("10:00"), SCHEDULE);
    check_all(&[
        one(
            "max 1, one running, overlap skip -> Skip(Overlap)",
            1,
            Overlap::Skip,
            1,
            0,
            overlap_skip(jan("10:00")),
        ),
        one(
            "max 1, one running, nothing queued, overlap queue -> Queue",
            1,
            Overlap::Queue,
            1,
            0,
            Decision::Queue(fire),
        ),
        one(
            "max 1, one running, one already queued, overlap queue -> Skip(Overlap)",
            1,
            Overlap::Queue,
            1,
            1,
            overlap_skip(jan("10:00")),
        ),
        one(
            "max 1, one running, overlap replace -> Replace",
            1,
            Overlap::Replace,
            1,
            0,
            Decision::Replace(fire),
        ),
        one(
            "max 2, one running, overlap skip -> Fire (an instance is free)",
            2,
            Overlap::Skip,
            1,
            0,
            Decision::Fire(fire),
        ),
        one(
            "max 2, one running, overlap queue -> Fire, not Queue",
            2,
            Overlap::Queue,
            1,
            0,
            Decision::Fire(fire),
        ),
        one(
            "max 2, one running, overlap replace -> Fire, not Replace",
            2,
            Overlap::Replace,
            1,
            0,
            Decision::Fire(fire),
        ),
        one(
            "max 2, two running, overlap skip -> Skip(Overlap)",
            2,
            Overlap::Skip,
            2,
            0,
            overlap_skip(jan("10:00")),
        ),
        one(
            "max 2, two running, overlap replace -> Replace",
            2,
            Overlap::Replace,
            2,
            0,
            Decision::Replace(fire),
        ),
        one(
            "max 2, one running and one queued, overlap skip -> Skip (the queued run takes the free instance)",
            2,
            Overlap::Skip,
            1,
            1,
            overlap_skip(jan("10:00")),
        ),
        one(
            "max 2, one running and one queued, overlap replace -> Skip: an instance is free, nothing to stop",
            2,
            Overlap::Replace,
            1,
            1,
            overlap_skip(jan("10:00")),
        ),
        // Coalesced slots go through max_instances as one run.
        case(
            "two slots due, coalesce on, one instance running, overlap queue -> one queued run, one coalesced slot",
            &m1,
            policy(1, Overlap::Queue, true, "5m"),
            jan("10:00"),
            jan("10:01:30"),
        )
        .in_flight(1, 0)
        .expect(
            vec![Decision::Queue(run(jan("10:01"), CATCHUP, jan("10:00"), 2))],
            jan("10:02"),
        ),
        case(
            "three slots due, coalesce on, one running, overlap skip -> one Skip range of 3",
            &m1,
            policy(1, Overlap::Skip, true, "5m"),
            jan("10:00"),
            jan("10:02:30"),
        )
        .in_flight(1, 0)
        .expect(
            vec![skip(jan("10:00"), jan("10:02"), 3, SkipReason::Overlap)],
            jan("10:03"),
        ),
        case(
            "three slots due, coalesce on, one running, overlap replace -> one Replace for 10:02",
            &m1,
            policy(1, Overlap::Replace, true, "5m"),
            jan("10:00"),
            jan("10:02:30"),
        )
        .in_flight(1, 0)
        .expect(
            vec![Decision::Replace(run(jan("10:02"), CATCHUP, jan("10:00"), 3))],
            jan("10:03"),
        ),
        case(
            "two slots due, coalesce off, one running, overlap queue -> queue 10:00, skip 10:01",
            &m1,
            policy(1, Overlap::Queue, false, "5m"),
            jan("10:00"),
            jan("10:01:30"),
        )
        .in_flight(1, 0)
        .expect(
            vec![
                Decision::Queue(single(jan("10:00"), CATCHUP)),
                overlap_skip(jan("10:01")),
            ],
            jan("10:02"),
        ),
        case(
            "two slots due, coalesce off, one running, overlap replace -> two Replaces",
            &m1,
            policy(1, Overlap::Replace, false, "5m"),
            jan("10:00"),
            jan("10:01:30"),
        )
        .in_flight(1, 0)
        .expect(
            vec![
                Decision::Replace(single(jan("10:00"), CATCHUP)),
                Decision::Replace(single(jan("10:01"), SCHEDULE)),
            ],
            jan("10:02"),
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------------
// 3. Lateness inside / outside misfire_grace, and unlimited
// ---------------------------------------------------------------------------------------------------

#[test]
fn lateness_inside_and_outside_the_misfire_grace() {
    let h1 = every("1h", None, None);
    let m1 = every("1m", None, None);
    let yearly = cron("0 0 10 15 1 *", "UTC"); // 10:00Z every 15 January
    let grace = |g| policy(1, Overlap::Skip, true, g);
    check_all(&[
        case(
            "grace 5m, slot 10:00, now 10:04:59 -> Fire",
            &h1,
            grace("5m"),
            jan("10:00"),
            jan("10:04:59"),
        )
        .expect(vec![Decision::Fire(single(jan("10:00"), SCHEDULE))], jan("11:00")),
        case(
            "grace 5m, slot 10:00, now 10:05:00 (exactly the grace) -> Fire",
            &h1,
            grace("5m"),
            jan("10:00"),
            jan("10:05:00"),
        )
        .expect(vec![Decision::Fire(single(jan("10:00"), SCHEDULE))], jan("11:00")),
        case(
            "grace 5m, slot 10:00, now 10:05:01 -> Miss, next slot 11:00",
            &h1,
            grace("5m"),
            jan("10:00"),
            jan("10:05:01"),
        )
        .expect(vec![miss(jan("10:00"), jan("10:00"), 1)], jan("11:00")),
        case(
            "grace 5m, coalesce off, slot 10:00, now 10:05:01 -> Miss",
            &h1,
            policy(1, Overlap::Skip, false, "5m"),
            jan("10:00"),
            jan("10:05:01"),
        )
        .expect(vec![miss(jan("10:00"), jan("10:00"), 1)], jan("11:00")),
        case(
            "grace 0s, now exactly the slot -> Fire",
            &h1,
            grace("0s"),
            jan("10:00"),
            jan("10:00"),
        )
        .expect(vec![Decision::Fire(single(jan("10:00"), SCHEDULE))], jan("11:00")),
        case(
            "grace 0s, now 1 ms after the slot -> Fire: a grace below the claim latency counts as 1 s",
            &h1,
            grace("0s"),
            jan("10:00"),
            jan("10:00:00.001"),
        )
        .expect(vec![Decision::Fire(single(jan("10:00"), SCHEDULE))], jan("11:00")),
        case(
            "grace 0s, now 1.001 s after the slot -> Miss",
            &h1,
            grace("0s"),
            jan("10:00"),
            jan("10:00:01.001"),
        )
        .expect(vec![miss(jan("10:00"), jan("10:00"), 1)], jan("11:00")),
        case(
            "a late slot is missed even when no instance is free (Miss, not Skip(Overlap))",
            &h1,
            grace("5m"),
            jan("10:00"),
            jan("10:05:01"),
        )
        .in_flight(1, 0)
        .expect(vec![miss(jan("10:00"), jan("10:00"), 1)], jan("11:00")),
        // One yearly slot, 3 days late: 2026-01-15T10:00Z claimed at 2026-01-18T10:00Z.
        case(
            "unlimited grace, a single slot 3 days late -> Fire(Schedule); next is 2027-01-15",
            &yearly,
            grace("unlimited"),
            jan("10:00"),
            at("2026-01-18T10:00:00Z"),
        )
        .expect(
            vec![Decision::Fire(single(jan("10:00"), SCHEDULE))],
            at("2027-01-15T10:00:00Z"),
        ),
        case(
            "grace 2d, the same slot 3 days late -> Miss",
            &yearly,
            grace("2d"),
            jan("10:00"),
            at("2026-01-18T10:00:00Z"),
        )
        .expect(
            vec![miss(jan("10:00"), jan("10:00"), 1)],
            at("2027-01-15T10:00:00Z"),
        ),
        // Hourly from 2026-01-12T10:00Z to 2026-01-15T10:00Z inclusive: 3 x 24 + 1 = 73 slots.
        case(
            "unlimited grace, hourly job 3 days behind, coalesce on -> one Catchup run for 73 slots",
            &h1,
            grace("unlimited"),
            at("2026-01-12T10:00:00Z"),
            jan("10:00:30"),
        )
        .expect(
            vec![Decision::Fire(run(
                jan("10:00"),
                CATCHUP,
                at("2026-01-12T10:00:00Z"),
                73,
            ))],
            jan("11:00"),
        ),
        // Coalesce on: the latest slot decides.
        case(
            "coalesce on, 10 slots due, only the latest (10:09) inside grace -> one Fire for all 10",
            &m1,
            grace("5m"),
            jan("10:00"),
            jan("10:09:30"),
        )
        .expect(
            vec![Decision::Fire(run(jan("10:09"), CATCHUP, jan("10:00"), 10))],
            jan("10:10"),
        ),
        case(
            "coalesce on, latest (12:00) 30m late -> everything is one Miss range 10:00..12:00",
            &h1,
            grace("5m"),
            jan("10:00"),
            jan("12:30"),
        )
        .expect(vec![miss(jan("10:00"), jan("12:00"), 3)], jan("13:00")),
        case(
            "coalesce on, latest late, one running -> still one Miss range",
            &h1,
            grace("5m"),
            jan("10:00"),
            jan("12:30"),
        )
        .in_flight(1, 0)
        .expect(vec![miss(jan("10:00"), jan("12:00"), 3)], jan("13:00")),
        // Coalesce off, now 10:07:30: late when slot < 10:02:30, so 10:00, 10:01, 10:02 are missed;
        // 10:03..10:07 are on time.
        case(
            "coalesce off, 3 late + 5 on-time slots, max 5 -> Miss 10:00..10:02 and five runs",
            &m1,
            policy(5, Overlap::Skip, false, "5m"),
            jan("10:00"),
            jan("10:07:30"),
        )
        .expect(
            vec![
                miss(jan("10:00"), jan("10:02"), 3),
                Decision::Fire(single(jan("10:03"), CATCHUP)),
                Decision::Fire(single(jan("10:04"), CATCHUP)),
                Decision::Fire(single(jan("10:05"), CATCHUP)),
                Decision::Fire(single(jan("10:06"), CATCHUP)),
                Decision::Fire(single(jan("10:07"), SCHEDULE)),
            ],
            jan("10:08"),
        ),
        case(
            "coalesce off, 3 late + 5 on-time slots, max 1 skip -> Miss range, one run, one record of four skips",
            &m1,
            policy(1, Overlap::Skip, false, "5m"),
            jan("10:00"),
            jan("10:07:30"),
        )
        .expect(
            vec![
                miss(jan("10:00"), jan("10:02"), 3),
                Decision::Fire(single(jan("10:03"), CATCHUP)),
                skip(jan("10:04"), jan("10:07"), 4, SkipReason::Overlap),
            ],
            jan("10:08"),
        ),
        case(
            "coalesce off, every slot late -> one Miss range and nothing else",
            &h1,
            policy(3, Overlap::Skip, false, "5m"),
            jan("10:00"),
            jan("12:30"),
        )
        .expect(vec![miss(jan("10:00"), jan("12:00"), 3)], jan("13:00")),
        case(
            "coalesce off, unlimited grace, 3 slots hours late, max 3 -> three runs",
            &h1,
            policy(3, Overlap::Skip, false, "unlimited"),
            jan("10:00"),
            jan("12:30"),
        )
        .expect(
            vec![
                Decision::Fire(single(jan("10:00"), CATCHUP)),
                Decision::Fire(single(jan("11:00"), CATCHUP)),
                Decision::Fire(single(jan("12:00"), SCHEDULE)),
            ],
            jan("13:00"),
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------------
// 4. Paused, then catch-up on resume
// ---------------------------------------------------------------------------------------------------

#[test]
fn paused_jobs_skip_every_due_slot_as_one_range() {
    let m1 = every("1m", None, None);
    let h1 = every("1h", None, None);
    check_all(&[
        case(
            "paused, 5 slots due (10:00..10:04) -> one Skip(Paused) range of 5, next 10:05",
            &m1,
            policy(1, Overlap::Skip, true, "5m"),
            jan("10:00"),
            jan("10:04:30"),
        )
        .paused()
        .expect(
            vec![skip(jan("10:00"), jan("10:04"), 5, SkipReason::Paused)],
            jan("10:05"),
        ),
        case(
            "paused, coalesce off, queue, one running -> the same single Skip(Paused) range",
            &m1,
            policy(1, Overlap::Queue, false, "5m"),
            jan("10:00"),
            jan("10:04:30"),
        )
        .paused()
        .in_flight(1, 0)
        .expect(
            vec![skip(jan("10:00"), jan("10:04"), 5, SkipReason::Paused)],
            jan("10:05"),
        ),
        case(
            "paused, slots hours past the grace -> Skip(Paused), not Miss",
            &h1,
            policy(1, Overlap::Skip, false, "5m"),
            jan("07:00"),
            jan("10:00:30"),
        )
        .paused()
        .expect(
            vec![skip(jan("07:00"), jan("10:00"), 4, SkipReason::Paused)],
            jan("11:00"),
        ),
        case(
            "paused, one slot due -> Skip(Paused) count 1",
            &h1,
            policy(1, Overlap::Skip, true, "5m"),
            jan("10:00"),
            jan("10:00"),
        )
        .paused()
        .expect(
            vec![skip(jan("10:00"), jan("10:00"), 1, SkipReason::Paused)],
            jan("11:00"),
        ),
        case(
            "paused, nothing due -> nothing, the slot stays",
            &h1,
            policy(1, Overlap::Skip, true, "5m"),
            jan("10:00"),
            jan("09:59:59"),
        )
        .paused()
        .expect(vec![], jan("10:00")),
    ]);
}

#[test]
fn catch_up_on_resume_for_each_mode() {
    // The job was paused over 10:00..10:04 (see above) and is resumed at 10:06:10.
    let paused: Vec<DateTime<Utc>> = ["10:00", "10:01", "10:02", "10:03", "10:04"]
        .into_iter()
        .map(jan)
        .collect();
    let now = jan("10:06:10");
    let owed = |slot, first_slot, count| Fire {
        slot,
        due_at: now,
        trigger: CATCHUP,
        first_slot,
        count,
    };
    let cases = [
        resume(
            "None: the skipped slots stay skipped",
            Catchup::None,
            &paused,
            vec![],
        ),
        resume(
            "Latest: one run for 10:04 standing for all 5, first 10:00",
            Catchup::Latest,
            &paused,
            vec![owed(jan("10:04"), jan("10:00"), 5)],
        ),
        resume(
            "All: one run per slot, oldest first, count 1 each",
            Catchup::All,
            &paused,
            vec![
                owed(jan("10:00"), jan("10:00"), 1),
                owed(jan("10:01"), jan("10:01"), 1),
                owed(jan("10:02"), jan("10:02"), 1),
                owed(jan("10:03"), jan("10:03"), 1),
                owed(jan("10:04"), jan("10:04"), 1),
            ],
        ),
        resume(
            "Latest with a single paused slot: one Catchup run, count 1",
            Catchup::Latest,
            &paused[2..3],
            vec![owed(jan("10:02"), jan("10:02"), 1)],
        ),
        resume(
            "All with a single paused slot: one Catchup run",
            Catchup::All,
            &paused[4..],
            vec![owed(jan("10:04"), jan("10:04"), 1)],
        ),
        resume("None, nothing skipped", Catchup::None, &[], vec![]),
        resume("Latest, nothing skipped", Catchup::Latest, &[], vec![]),
        resume("All, nothing skipped", Catchup::All, &[], vec![]),
    ];
    for row in cases {
        assert_eq!(
            catch_up(row.mode, row.slots, now),
            row.expected,
            "{}",
            row.name
        );
    }
}

#[test]
fn pause_then_resume_end_to_end() {
    // Paused over 10:00..10:04, resumed at 10:05:20 with Catchup::Latest: the decide() on resume only
    // sees 10:05 (the paused slots were consumed), catch_up owes one run for 10:04 standing for 5 slots.
    let m1 = every("1m", None, None);
    let spec = policy(2, Overlap::Skip, true, "5m");
    let paused = case("paused", &m1, spec.clone(), jan("10:00"), jan("10:04:30")).paused();
    let plan = decide(&paused.input(), paused.now);
    assert_eq!(
        plan,
        Plan {
            decisions: vec![skip(jan("10:00"), jan("10:04"), 5, SkipReason::Paused)],
            next_slot: Some(jan("10:05")),
        }
    );
    let skipped: Vec<_> = ["10:00", "10:01", "10:02", "10:03", "10:04"]
        .into_iter()
        .map(jan)
        .collect();
    let resumed_at = jan("10:05:20");
    assert_eq!(
        catch_up(Catchup::Latest, &skipped, resumed_at),
        vec![Fire {
            slot: jan("10:04"),
            due_at: resumed_at,
            trigger: CATCHUP,
            first_slot: jan("10:00"),
            count: 5,
        }]
    );
    case("resumed", &m1, spec, jan("10:05"), resumed_at)
        .expect(
            vec![Decision::Fire(single(jan("10:05"), SCHEDULE))],
            jan("10:06"),
        )
        .check();
}

// ---------------------------------------------------------------------------------------------------
// 5. A spec change between slots: pending_slot
// ---------------------------------------------------------------------------------------------------

#[test]
fn a_changed_schedule_resumes_after_the_last_slot_recorded() {
    let m5 = every("5m", None, None);
    // (name, kept, changed, last consumed, now, expected)
    let cases = [
        (
            "changed during downtime: the new schedule's slots after the last recorded one (09:30) are owed",
            Some(jan("09:35")),
            true,
            Some(jan("09:30")),
            jan("10:03"),
            Some(jan("09:35")),
        ),
        (
            "changed, last recorded between new slots: the first new slot after it",
            None,
            true,
            Some(jan("09:31")),
            jan("10:03"),
            Some(jan("09:35")),
        ),
        (
            "unchanged: the kept slot wins whatever was consumed",
            Some(jan("10:07")),
            false,
            Some(jan("09:30")),
            jan("10:03"),
            Some(jan("10:07")),
        ),
        (
            "a consumed slot in the future (a clock stepped back) is no start: from now",
            None,
            true,
            Some(jan("11:00")),
            jan("10:03"),
            Some(jan("10:05")),
        ),
    ];
    for (name, kept, changed, consumed, now, expected) in cases {
        assert_eq!(
            pending_slot(kept, changed, consumed, &m5, now),
            expected,
            "{name}"
        );
    }
}

#[test]
fn pending_slot_after_a_spec_reload() {
    let m5 = every("5m", None, None);
    let ny_nine = cron("0 0 9 * * *", "America/New_York");
    let feb_30 = cron("0 0 30 2 *", "UTC");
    let from_february = every("1d", Some("2026-02-01T00:00:00Z"), None);
    let cases = [
        reload(
            "unchanged keeps its slot (10:07) though the new schedule's next would be 10:05",
            Some(jan("10:07")),
            false,
            &m5,
            jan("10:03"),
            Some(jan("10:07")),
        ),
        reload(
            "unchanged keeps an overdue slot (09:50) so decide() can judge it",
            Some(jan("09:50")),
            false,
            &m5,
            jan("10:03"),
            Some(jan("09:50")),
        ),
        reload(
            "changed: the first slot of the new schedule after now (10:03 -> 10:05)",
            Some(jan("10:07")),
            true,
            &m5,
            jan("10:03"),
            Some(jan("10:05")),
        ),
        reload(
            "changed, now exactly on a new slot: the next one strictly after now",
            Some(jan("10:07")),
            true,
            &m5,
            jan("10:05"),
            Some(jan("10:10")),
        ),
        reload(
            "changed, an overdue kept slot is dropped",
            Some(jan("09:50")),
            true,
            &m5,
            jan("10:03"),
            Some(jan("10:05")),
        ),
        reload(
            "new job (nothing kept), flag unchanged: computed from now",
            None,
            false,
            &m5,
            jan("10:03"),
            Some(jan("10:05")),
        ),
        reload(
            "new job (nothing kept), flag changed: computed from now",
            None,
            true,
            &m5,
            jan("10:03"),
            Some(jan("10:05")),
        ),
        reload(
            "changed to 09:00 New York at 10:00 EST (15:00Z): tomorrow 09:00 EST = 14:00Z",
            Some(jan("10:05")),
            true,
            &ny_nine,
            jan("15:00"),
            Some(at("2026-01-16T14:00:00Z")),
        ),
        reload(
            "changed to an impossible date (30 February): no slot",
            Some(jan("10:05")),
            true,
            &feb_30,
            jan("10:03"),
            None,
        ),
        reload(
            "new interval job anchored in the future: its anchor",
            None,
            true,
            &from_february,
            jan("10:03"),
            Some(at("2026-02-01T00:00:00Z")),
        ),
    ];
    for row in cases {
        assert_eq!(
            pending_slot(row.kept, row.changed, None, row.schedule, row.now),
            row.expected,
            "{}",
            row.name
        );
    }
}

// ---------------------------------------------------------------------------------------------------
// 6. Jitter: never crossing the next slot, deterministic, and honoured by decide()
// ---------------------------------------------------------------------------------------------------

#[test]
fn jitter_on_an_every_second_job_stays_before_the_next_slot() {
    let s1 = every("1s", None, None);
    let base = at("2026-06-10T08:15:00Z");
    let mut delays = BTreeSet::new();
    for i in 0..1000 {
        let slot = base + chrono::Duration::seconds(i);
        for job in ["cache-warm", "heartbeat", "a"] {
            let due = due_at(job, &s1, slot, Some(Duration::from_secs(60)));
            assert!(due >= slot, "{job} {slot}: due {due} before its slot");
            assert!(
                due < slot + chrono::Duration::seconds(1),
                "{job} {slot}: due {due} reaches the next slot"
            );
            delays.insert(due - slot);
        }
    }
    assert!(delays.len() > 1, "the 1m jitter was not applied at all");
    // Independently computed: 0x33cd5e9484d6c0be mod 1 000 (the window narrowed to 1 s) = 526 ms.
    assert_eq!(
        due_at("cache-warm", &s1, base, Some(Duration::from_secs(60))),
        at("2026-06-10T08:15:00.526Z")
    );
}

#[test]
fn jitter_on_an_hourly_job_lies_in_the_jitter_window() {
    let h1 = every("1h", None, None);
    let base = at("2026-06-10T08:00:00Z");
    let jitter = Some(Duration::from_secs(30));
    let mut longest = chrono::Duration::zero();
    for i in 0..200 {
        let slot = base + chrono::Duration::hours(i);
        let due = due_at("cache-warm", &h1, slot, jitter);
        assert!(due >= slot, "{slot}: due {due} before its slot");
        assert!(
            due < slot + chrono::Duration::seconds(30),
            "{slot}: due {due} outside [slot, slot + 30s)"
        );
        longest = longest.max(due - slot);
    }
    // 200 delays spread over 30 s: some exceed the 1 s a narrowed window would allow.
    assert!(longest > chrono::Duration::seconds(1), "longest {longest}");
    // Independently computed: 0x47e2c04a6942a399 mod 30 000 = 19 545 ms.
    assert_eq!(
        due_at("cache-warm", &h1, base, jitter),
        at("2026-06-10T08:00:19.545Z")
    );
}

#[test]
fn jitter_is_deterministic_per_job_and_slot() {
    let m15 = every("15m", None, None);
    let slot = at("2026-06-10T08:15:00Z");
    let two_minutes = Some(Duration::from_secs(120));
    let first = due_at("cache-warm", &m15, slot, two_minutes);
    let second = due_at("cache-warm", &m15, slot, two_minutes);
    assert_eq!(first, second);
    // 0x33cd5e9484d6c0be mod 120 000 = 46 526 ms.
    assert_eq!(first, at("2026-06-10T08:15:46.526Z"));
    // Another job gets another delay for the same slot (at least one of 20 differs).
    let others: BTreeSet<_> = (0..20)
        .map(|i| due_at(&format!("job-{i}"), &m15, slot, two_minutes))
        .collect();
    assert!(others.len() > 1);
    // No jitter, or a zero one: due at the slot itself.
    assert_eq!(due_at("cache-warm", &m15, slot, None), slot);
    assert_eq!(due_at("cache-warm", &m15, slot, Some(Duration::ZERO)), slot);
}

#[test]
fn decide_waits_for_the_jittered_due_time() {
    // cache-warm, every 15m, jitter 2m: 08:15 is due at 08:15:46.526, 08:30 at 08:31:41.880.
    let m15 = every("15m", None, None);
    let jitter = Duration::from_secs(120);
    let t = |time: &str| at(&format!("2026-06-10T{time}Z"));
    let due_0815 = t("08:15:46.526");
    let due_0830 = t("08:31:41.880");
    let fire_0815 = |trigger| Fire {
        slot: t("08:15:00"),
        due_at: due_0815,
        trigger,
        first_slot: t("08:15:00"),
        count: 1,
    };
    check_all(&[
        case(
            "slot 08:15 passed but its jittered due time is 1 ms ahead -> nothing, next slot stays",
            &m15,
            policy(1, Overlap::Skip, true, "5m"),
            t("08:15:00"),
            t("08:15:46.525"),
        )
        .jittered("cache-warm", jitter)
        .expect(vec![], t("08:15:00")),
        case(
            "at the jittered due time -> Fire with due_at 08:15:46.526",
            &m15,
            policy(1, Overlap::Skip, true, "5m"),
            t("08:15:00"),
            due_0815,
        )
        .jittered("cache-warm", jitter)
        .expect(vec![Decision::Fire(fire_0815(SCHEDULE))], t("08:30:00")),
        case(
            "lateness counts from the due time: 5m after 08:15:46.526 is still on time",
            &m15,
            policy(1, Overlap::Skip, true, "5m"),
            t("08:15:00"),
            t("08:20:46.526"),
        )
        .jittered("cache-warm", jitter)
        .expect(vec![Decision::Fire(fire_0815(SCHEDULE))], t("08:30:00")),
        case(
            "1 ms later it is missed",
            &m15,
            policy(1, Overlap::Skip, true, "5m"),
            t("08:15:00"),
            t("08:20:46.527"),
        )
        .jittered("cache-warm", jitter)
        .expect(vec![miss(t("08:15:00"), t("08:15:00"), 1)], t("08:30:00")),
        case(
            "now 08:31: slot 08:30 passed but is due at 08:31:41.880 -> only 08:15 is decided",
            &m15,
            policy(2, Overlap::Skip, false, "unlimited"),
            t("08:15:00"),
            t("08:31:00"),
        )
        .jittered("cache-warm", jitter)
        .expect(vec![Decision::Fire(fire_0815(SCHEDULE))], t("08:30:00")),
        case(
            "now 08:31:41.880, coalesce on -> one Catchup run for 08:30 (due 08:31:41.880) standing for 2",
            &m15,
            policy(1, Overlap::Skip, true, "unlimited"),
            t("08:15:00"),
            due_0830,
        )
        .jittered("cache-warm", jitter)
        .expect(
            vec![Decision::Fire(Fire {
                slot: t("08:30:00"),
                due_at: due_0830,
                trigger: CATCHUP,
                first_slot: t("08:15:00"),
                count: 2,
            })],
            t("08:45:00"),
        ),
    ]);

    // Every second, jitter 1m (narrowed to 1 s): 08:15:00 is due at 08:15:00.526.
    let s1 = every("1s", None, None);
    check_all(&[
        case(
            "every 1s, 1 ms before the jittered due time -> nothing",
            &s1,
            policy(1, Overlap::Skip, true, "5m"),
            t("08:15:00"),
            t("08:15:00.525"),
        )
        .jittered("cache-warm", Duration::from_secs(60))
        .expect(vec![], t("08:15:00")),
        case(
            "every 1s, at the jittered due time -> Fire, next slot 08:15:01",
            &s1,
            policy(1, Overlap::Skip, true, "5m"),
            t("08:15:00"),
            t("08:15:00.526"),
        )
        .jittered("cache-warm", Duration::from_secs(60))
        .expect(
            vec![Decision::Fire(Fire {
                slot: t("08:15:00"),
                due_at: t("08:15:00.526"),
                trigger: SCHEDULE,
                first_slot: t("08:15:00"),
                count: 1,
            })],
            t("08:15:01"),
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------------
// 7. DST gap and fold days, cron and every
// ---------------------------------------------------------------------------------------------------

#[test]
fn new_york_spring_forward() {
    let daily_0230 = cron("0 30 2 * * *", "America/New_York");
    let hourly = cron("0 0 * * * *", "America/New_York");
    let two_and_fourteen = cron("0 0 2,14 * * *", "America/New_York");
    let every_hour = every("1h", None, Some("America/New_York"));
    // Anchored at local midnight 2026-03-07 00:00 EST = 05:00Z; real 24 h steps.
    let every_day = every(
        "1d",
        Some("2026-03-07T00:00:00-05:00"),
        Some("America/New_York"),
    );

    // The pending slot of the 02:30 job on the day before: 02:30 does not exist on 03-08, so 03:00 EDT.
    assert_eq!(
        pending_slot(None, true, None, &daily_0230, at("2026-03-07T12:00:00Z")),
        Some(at("2026-03-08T07:00:00Z"))
    );
    let unlimited = |max, coalesce| policy(max, Overlap::Skip, coalesce, "unlimited");
    check_all(&[
        case(
            "daily 02:30 pending on the gap day fires once at 03:00 EDT (07:00Z); next 03-09 02:30 EDT",
            &daily_0230,
            policy(1, Overlap::Skip, true, "5m"),
            at("2026-03-08T07:00:00Z"),
            at("2026-03-08T07:00:01Z"),
        )
        .expect(
            vec![Decision::Fire(single(at("2026-03-08T07:00:00Z"), SCHEDULE))],
            at("2026-03-09T06:30:00Z"),
        ),
        case(
            "daily 02:30, coalesce off, claimed at 04:00 EDT: still one run (no second 02:30)",
            &daily_0230,
            unlimited(2, false),
            at("2026-03-08T07:00:00Z"),
            at("2026-03-08T08:00:00Z"),
        )
        .expect(
            vec![Decision::Fire(single(at("2026-03-08T07:00:00Z"), SCHEDULE))],
            at("2026-03-09T06:30:00Z"),
        ),
        case(
            "hourly cron: 01:00 EST (06:00Z) and 03:00 EDT (07:00Z) are consecutive, coalesced",
            &hourly,
            policy(1, Overlap::Skip, true, "5m"),
            at("2026-03-08T06:00:00Z"),
            at("2026-03-08T07:00:10Z"),
        )
        .expect(
            vec![Decision::Fire(run(
                at("2026-03-08T07:00:00Z"),
                CATCHUP,
                at("2026-03-08T06:00:00Z"),
                2,
            ))],
            at("2026-03-08T08:00:00Z"),
        ),
        case(
            "02:00 and 14:00 daily: 02:00 on the gap day is skipped; 03-07 14:00 EST and 03-08 14:00 EDT",
            &two_and_fourteen,
            unlimited(2, false),
            at("2026-03-07T19:00:00Z"),
            at("2026-03-08T18:00:30Z"),
        )
        .expect(
            vec![
                Decision::Fire(single(at("2026-03-07T19:00:00Z"), CATCHUP)),
                Decision::Fire(single(at("2026-03-08T18:00:00Z"), SCHEDULE)),
            ],
            at("2026-03-09T06:00:00Z"),
        ),
        case(
            "every 1h: 01:00 EST, 03:00 EDT, 04:00 EDT are 06:00Z, 07:00Z, 08:00Z, one real hour apart",
            &every_hour,
            unlimited(3, false),
            at("2026-03-08T06:00:00Z"),
            at("2026-03-08T08:00:00Z"),
        )
        .expect(
            vec![
                Decision::Fire(single(at("2026-03-08T06:00:00Z"), CATCHUP)),
                Decision::Fire(single(at("2026-03-08T07:00:00Z"), CATCHUP)),
                Decision::Fire(single(at("2026-03-08T08:00:00Z"), SCHEDULE)),
            ],
            at("2026-03-08T09:00:00Z"),
        ),
        case(
            "every 1d from local midnight: 03-08 00:00 EST (05:00Z), then 03-09 05:00Z = 01:00 EDT",
            &every_day,
            policy(1, Overlap::Skip, true, "5m"),
            at("2026-03-08T05:00:00Z"),
            at("2026-03-09T05:00:00Z"),
        )
        .expect(
            vec![Decision::Fire(run(
                at("2026-03-09T05:00:00Z"),
                CATCHUP,
                at("2026-03-08T05:00:00Z"),
                2,
            ))],
            at("2026-03-10T05:00:00Z"),
        ),
    ]);
}

#[test]
fn new_york_fall_back() {
    let hourly = cron("0 0 * * * *", "America/New_York");
    let daily_0130 = cron("0 30 1 * * *", "America/New_York");
    let every_hour = every("1h", None, Some("America/New_York"));
    check_all(&[
        case(
            "hourly cron, 01:00 EDT (05:00Z) and 01:00 EST (06:00Z) both due -> one Catchup run for 2",
            &hourly,
            policy(1, Overlap::Skip, true, "5m"),
            at("2026-11-01T05:00:00Z"),
            at("2026-11-01T06:00:30Z"),
        )
        .expect(
            vec![Decision::Fire(run(
                at("2026-11-01T06:00:00Z"),
                CATCHUP,
                at("2026-11-01T05:00:00Z"),
                2,
            ))],
            at("2026-11-01T07:00:00Z"),
        ),
        case(
            "hourly cron, both passes of 01:00, coalesce off, unlimited, max 2 -> two distinct runs",
            &hourly,
            policy(2, Overlap::Skip, false, "unlimited"),
            at("2026-11-01T05:00:00Z"),
            at("2026-11-01T06:00:30Z"),
        )
        .expect(
            vec![
                Decision::Fire(single(at("2026-11-01T05:00:00Z"), CATCHUP)),
                Decision::Fire(single(at("2026-11-01T06:00:00Z"), SCHEDULE)),
            ],
            at("2026-11-01T07:00:00Z"),
        ),
        case(
            "hourly cron, first pass only due (now 05:30Z) -> one run, next is the second pass 06:00Z",
            &hourly,
            policy(1, Overlap::Skip, true, "unlimited"),
            at("2026-11-01T05:00:00Z"),
            at("2026-11-01T05:30:00Z"),
        )
        .expect(
            vec![Decision::Fire(single(at("2026-11-01T05:00:00Z"), SCHEDULE))],
            at("2026-11-01T06:00:00Z"),
        ),
        case(
            "hourly cron, both passes due, coalesce off, grace 5m: 05:00Z is 60m30s late -> Miss it, run 06:00Z",
            &hourly,
            policy(2, Overlap::Skip, false, "5m"),
            at("2026-11-01T05:00:00Z"),
            at("2026-11-01T06:00:30Z"),
        )
        .expect(
            vec![
                miss(at("2026-11-01T05:00:00Z"), at("2026-11-01T05:00:00Z"), 1),
                Decision::Fire(single(at("2026-11-01T06:00:00Z"), SCHEDULE)),
            ],
            at("2026-11-01T07:00:00Z"),
        ),
        case(
            "daily 01:30 fires at the first pass (05:30Z) only, even when claimed after the second",
            &daily_0130,
            policy(2, Overlap::Skip, false, "unlimited"),
            at("2026-11-01T05:30:00Z"),
            at("2026-11-01T06:30:30Z"),
        )
        .expect(
            vec![Decision::Fire(single(at("2026-11-01T05:30:00Z"), SCHEDULE))],
            at("2026-11-02T06:30:00Z"),
        ),
        case(
            "every 1h across the fold: 01:00 EDT, 01:00 EST, 02:00 EST = 05:00Z, 06:00Z, 07:00Z",
            &every_hour,
            policy(1, Overlap::Skip, true, "5m"),
            at("2026-11-01T05:00:00Z"),
            at("2026-11-01T07:00:00Z"),
        )
        .expect(
            vec![Decision::Fire(run(
                at("2026-11-01T07:00:00Z"),
                CATCHUP,
                at("2026-11-01T05:00:00Z"),
                3,
            ))],
            at("2026-11-01T08:00:00Z"),
        ),
    ]);
}

#[test]
fn berlin_spring_forward() {
    let daily_0230 = cron("0 30 2 * * *", "Europe/Berlin");
    let hourly = cron("0 0 * * * *", "Europe/Berlin");
    let half_hour = every("30m", None, Some("Europe/Berlin"));
    check_all(&[
        case(
            "daily 02:30 on the gap day fires once at 03:00 CEST (01:00Z); next 03-30 02:30 CEST",
            &daily_0230,
            policy(1, Overlap::Skip, true, "5m"),
            at("2026-03-29T01:00:00Z"),
            at("2026-03-29T01:00:01Z"),
        )
        .expect(
            vec![Decision::Fire(single(at("2026-03-29T01:00:00Z"), SCHEDULE))],
            at("2026-03-30T00:30:00Z"),
        ),
        case(
            "hourly cron: 01:00 CET (00:00Z) and 03:00 CEST (01:00Z) are consecutive, coalesced",
            &hourly,
            policy(1, Overlap::Skip, true, "5m"),
            at("2026-03-29T00:00:00Z"),
            at("2026-03-29T01:00:05Z"),
        )
        .expect(
            vec![Decision::Fire(run(
                at("2026-03-29T01:00:00Z"),
                CATCHUP,
                at("2026-03-29T00:00:00Z"),
                2,
            ))],
            at("2026-03-29T02:00:00Z"),
        ),
        case(
            "every 30m: 01:00, 01:30 CET, 03:00, 03:30 CEST = 00:00Z..01:30Z, four runs 30 min apart",
            &half_hour,
            policy(4, Overlap::Skip, false, "unlimited"),
            at("2026-03-29T00:00:00Z"),
            at("2026-03-29T01:30:00Z"),
        )
        .expect(
            vec![
                Decision::Fire(single(at("2026-03-29T00:00:00Z"), CATCHUP)),
                Decision::Fire(single(at("2026-03-29T00:30:00Z"), CATCHUP)),
                Decision::Fire(single(at("2026-03-29T01:00:00Z"), CATCHUP)),
                Decision::Fire(single(at("2026-03-29T01:30:00Z"), SCHEDULE)),
            ],
            at("2026-03-29T02:00:00Z"),
        ),
    ]);
}

#[test]
fn berlin_fall_back() {
    let daily_0230 = cron("0 30 2 * * *", "Europe/Berlin");
    let hourly = cron("0 0 * * * *", "Europe/Berlin");
    let half_hour = every("30m", None, Some("Europe/Berlin"));
    // 00:00Z..02:00Z inclusive at 30 real minutes: 00:00Z (02:00 CEST), 00:30Z (02:30 CEST), 01:00Z
    // (02:00 CET), 01:30Z (02:30 CET), 02:00Z (03:00 CET): five slots.
    let fold_slots = [
        "2026-10-25T00:00:00Z",
        "2026-10-25T00:30:00Z",
        "2026-10-25T01:00:00Z",
        "2026-10-25T01:30:00Z",
        "2026-10-25T02:00:00Z",
    ];
    check_all(&[
        case(
            "every 30m across the fold, 00:00Z..02:00Z, coalesce off, max 5 -> five runs",
            &half_hour,
            policy(5, Overlap::Skip, false, "unlimited"),
            at(fold_slots[0]),
            at(fold_slots[4]),
        )
        .expect(
            vec![
                Decision::Fire(single(at(fold_slots[0]), CATCHUP)),
                Decision::Fire(single(at(fold_slots[1]), CATCHUP)),
                Decision::Fire(single(at(fold_slots[2]), CATCHUP)),
                Decision::Fire(single(at(fold_slots[3]), CATCHUP)),
                Decision::Fire(single(at(fold_slots[4]), SCHEDULE)),
            ],
            at("2026-10-25T02:30:00Z"),
        ),
        case(
            "every 30m across the fold, coalesce on -> one Catchup run standing for 5",
            &half_hour,
            policy(1, Overlap::Skip, true, "unlimited"),
            at(fold_slots[0]),
            at(fold_slots[4]),
        )
        .expect(
            vec![Decision::Fire(run(
                at(fold_slots[4]),
                CATCHUP,
                at(fold_slots[0]),
                5,
            ))],
            at("2026-10-25T02:30:00Z"),
        ),
        case(
            "hourly cron from 01:00 CEST (23:00Z): 02:00 CEST, 02:00 CET, 03:00 CET -> 4 slots coalesced",
            &hourly,
            policy(1, Overlap::Skip, true, "5m"),
            at("2026-10-24T23:00:00Z"),
            at("2026-10-25T02:00:00Z"),
        )
        .expect(
            vec![Decision::Fire(run(
                at("2026-10-25T02:00:00Z"),
                CATCHUP,
                at("2026-10-24T23:00:00Z"),
                4,
            ))],
            at("2026-10-25T03:00:00Z"),
        ),
        case(
            "daily 02:30 fires at its first pass (00:30Z) only; next 10-26 02:30 CET = 01:30Z",
            &daily_0230,
            policy(2, Overlap::Skip, false, "unlimited"),
            at("2026-10-25T00:30:00Z"),
            at("2026-10-25T01:30:30Z"),
        )
        .expect(
            vec![Decision::Fire(single(at("2026-10-25T00:30:00Z"), SCHEDULE))],
            at("2026-10-26T01:30:00Z"),
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------------
// 8. MAX_SLOTS_PER_TICK
// ---------------------------------------------------------------------------------------------------

// An every-1s job whose pending slot is 10:00:00 and now 14:59:59: slots 10:00:00 + k s for
// k = 0..17 999, i.e. 18 000 due slots (5 h). The first tick takes k = 0..9 999: the 10 000th slot is
// 10:00:00 + 9 999 s = 12:46:39 and the 10 001st, 12:46:40, is the next slot. The second tick takes the
// remaining 8 000 (12:46:40..14:59:59); the next slot is then 15:00:00.

#[test]
fn at_most_max_slots_per_tick_are_decided() {
    assert_eq!(MAX_SLOTS_PER_TICK, 10_000);
    let s1 = every("1s", None, None);
    check_all(&[
        case(
            "5 h behind, coalesce on, unlimited -> one Catchup run for 10 000 slots, the rest wait",
            &s1,
            policy(1, Overlap::Skip, true, "unlimited"),
            jan("10:00:00"),
            jan("14:59:59"),
        )
        .expect(
            vec![Decision::Fire(run(
                jan("12:46:39"),
                CATCHUP,
                jan("10:00:00"),
                10_000,
            ))],
            jan("12:46:40"),
        ),
        case(
            "next tick, nothing in flight -> one Catchup run for the remaining 8 000",
            &s1,
            policy(1, Overlap::Skip, true, "unlimited"),
            jan("12:46:40"),
            jan("14:59:59"),
        )
        .expect(
            vec![Decision::Fire(run(
                jan("14:59:59"),
                CATCHUP,
                jan("12:46:40"),
                8_000,
            ))],
            jan("15:00:00"),
        ),
        case(
            "5 h behind, coalesce on, grace 5m -> the first 10 000 are one Miss range",
            &s1,
            policy(1, Overlap::Skip, true, "5m"),
            jan("10:00:00"),
            jan("14:59:59"),
        )
        .expect(
            vec![miss(jan("10:00:00"), jan("12:46:39"), 10_000)],
            jan("12:46:40"),
        ),
        case(
            "next tick, grace 5m -> the latest (14:59:59) is on time: one Catchup run for 8 000",
            &s1,
            policy(1, Overlap::Skip, true, "5m"),
            jan("12:46:40"),
            jan("14:59:59"),
        )
        .expect(
            vec![Decision::Fire(run(
                jan("14:59:59"),
                CATCHUP,
                jan("12:46:40"),
                8_000,
            ))],
            jan("15:00:00"),
        ),
        case(
            "5 h behind, paused -> one Skip(Paused) range of 10 000",
            &s1,
            policy(1, Overlap::Skip, true, "5m"),
            jan("10:00:00"),
            jan("14:59:59"),
        )
        .paused()
        .expect(
            vec![skip(
                jan("10:00:00"),
                jan("12:46:39"),
                10_000,
                SkipReason::Paused,
            )],
            jan("12:46:40"),
        ),
        // Exactly 10 000 due (10:00:00..12:46:39, now 12:46:39.999): all decided, none left over.
        case(
            "exactly 10 000 due -> one run for all of them, next slot 12:46:40",
            &s1,
            policy(1, Overlap::Skip, true, "unlimited"),
            jan("10:00:00"),
            jan("12:46:39.999"),
        )
        .expect(
            vec![Decision::Fire(run(
                jan("12:46:39"),
                CATCHUP,
                jan("10:00:00"),
                10_000,
            ))],
            jan("12:46:40"),
        ),
    ]);
}

#[test]
fn capped_tick_without_coalesce_decides_10_000_slots_one_by_one() {
    // Coalesce off, max 1, overlap skip: 10:00:00 fires, the other 9 999 of the tick are overlap skips,
    // recorded as one range.
    let s1 = every("1s", None, None);
    let c = case(
        "5 h behind, coalesce off",
        &s1,
        policy(1, Overlap::Skip, false, "unlimited"),
        jan("10:00:00"),
        jan("14:59:59"),
    );
    let plan = decide(&c.input(), c.now);
    assert_eq!(plan.next_slot, Some(jan("12:46:40")));
    assert_eq!(
        plan.decisions,
        [
            Decision::Fire(single(jan("10:00:00"), CATCHUP)),
            skip(jan("10:00:01"), jan("12:46:39"), 9_999, SkipReason::Overlap),
        ]
    );
}

/// The latest slot of a tick is labelled `Schedule` (coalesce off) because it is the latest *due* slot.
/// When the tick is cut at MAX_SLOTS_PER_TICK that is no longer true: 8 000 later slots are due, and
/// 12:46:39 is fired 2 h 13 min after its time, which is a catch-up by the `Trigger` docs.
#[test]
fn capped_tick_without_coalesce_labels_every_run_catchup() {
    let s1 = every("1s", None, None);
    let c = case(
        "5 h behind, coalesce off, max 20 000",
        &s1,
        policy(20_000, Overlap::Skip, false, "unlimited"),
        jan("10:00:00"),
        jan("14:59:59"),
    );
    let plan = decide(&c.input(), c.now);
    assert_eq!(plan.next_slot, Some(jan("12:46:40")));
    assert_eq!(plan.decisions.len(), 10_000);
    assert_eq!(
        plan.decisions[9_999],
        Decision::Fire(single(jan("12:46:39"), CATCHUP))
    );
}

// ---------------------------------------------------------------------------------------------------
// Claiming ahead of the slot
// ---------------------------------------------------------------------------------------------------

#[test]
fn slots_are_claimed_ahead_only_when_no_run_is_in_flight() {
    let ahead = chrono::TimeDelta::milliseconds(150);
    let due = jan("10:02");
    // (now, in flight, expected: judged as of)
    let rows = [
        // more than `ahead` early: not yet
        ("10:01:59.800", false, None),
        // within `ahead`: claimed now, judged as of the due time (the command waits for it)
        ("10:01:59.850", false, Some(due)),
        ("10:01:59.999", false, Some(due)),
        // a run in flight: wait for the due time, whatever the lead
        ("10:01:59.900", true, None),
        // due or late: judged as of now, in flight or not
        ("10:02", true, Some(due)),
        ("10:02:00.300", false, Some(jan("10:02:00.300"))),
        ("10:02:05", true, Some(jan("10:02:05"))),
    ];
    for (now, in_flight, expected) in rows {
        assert_eq!(
            claim_at(due, jan(now), ahead, in_flight),
            expected,
            "now {now}, in flight {in_flight}"
        );
    }
}
