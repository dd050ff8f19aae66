//! Integration tests of `jobs::schedule`: cron patterns read in IANA zones (DST gaps and folds included),
//! fixed intervals counted from an anchor, and the per-slot jitter.
//!
//! Time is an input: every test starts from fixed RFC 3339 instants, never the clock. Every expected slot
//! below was worked out by hand from the calendar (2026-01-01 is a Thursday; month starts in 2026: Feb 1
//! Sun, Mar 1 Sun, Apr 1 Wed, May 1 Fri, Jun 1 Mon, Jul 1 Wed, Aug 1 Sat, Sep 1 Tue, Oct 1 Thu, Nov 1 Sun,
//! Dec 1 Tue) and the zones' rules, not recorded from the code's output.
//!
//! DST facts used (2026):
//! - America/New_York: EST = UTC-5, EDT = UTC-4. Spring forward Sun 2026-03-08 at 02:00 EST (07:00Z):
//!   local 02:00-02:59 does not exist. Fall back Sun 2026-11-01 at 02:00 EDT (06:00Z) to 01:00 EST:
//!   local 01:00-01:59 happens twice, first as EDT (05:00Z-05:59Z), then as EST (06:00Z-06:59Z).
//! - Europe/Berlin: CET = UTC+1, CEST = UTC+2. Spring forward Sun 2026-03-29 at 02:00 CET (01:00Z):
//!   local 02:00-02:59 does not exist. Fall back Sun 2026-10-25 at 03:00 CEST (01:00Z) to 02:00 CET:
//!   local 02:00-02:59 happens twice, as CEST (00:00Z-00:59Z), then as CET (01:00Z-01:59Z).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jobs::schedule::{DstNote, Schedule, Slot, jitter_delay};
use jobs::spec::duration::SpecDuration;
use jobs::spec::model::ScheduleSpec;

// ---------------------------------------------------------------------------------------------------
// Helpers (they panic with a message rather than unwrap: the crate denies unwrap/expect outside tests)
// ---------------------------------------------------------------------------------------------------

/// A fixed instant from RFC 3339 text (any offset; the instant is what counts).
fn at(text: &str) -> DateTime<Utc> {
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => t.with_timezone(&Utc),
        Err(e) => panic!("bad test instant {text:?}: {e}"),
    }
}

fn duration(text: &str) -> SpecDuration {
    match text.parse::<SpecDuration>() {
        Ok(d) => d,
        Err(e) => panic!("bad test duration {text:?}: {e}"),
    }
}

fn spec(
    cron: Option<&str>,
    timezone: Option<&str>,
    every: Option<&str>,
    anchor: Option<&str>,
) -> ScheduleSpec {
    ScheduleSpec {
        cron: cron.map(str::to_owned),
        timezone: timezone.map(str::to_owned),
        every: every.map(duration),
        anchor: anchor.map(at),
        jitter: None,
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
    build(&spec(Some(pattern), Some(timezone), None, None))
}

/// An interval schedule; `anchor` and `timezone` default as the spec says (epoch, UTC).
fn every(interval: &str, anchor: Option<&str>, timezone: Option<&str>) -> Schedule {
    build(&spec(None, timezone, Some(interval), anchor))
}

fn slot(text: &str, note: Option<DstNote>) -> Slot {
    Slot { at: at(text), note }
}

/// Checks `slots_after(after, expected.len())` against hand-computed slots, with a readable message.
fn assert_slots(what: &str, schedule: &Schedule, after: &str, expected: &[Slot]) {
    let got = schedule.slots_after(at(after), expected.len());
    assert_eq!(
        got, expected,
        "{what}: slots after {after}\n  got:      {got:?}\n  expected: {expected:?}"
    );
}

/// Hand-computed slots without DST notes, as RFC 3339 text.
fn plain(expected: &[&str]) -> Vec<Slot> {
    expected.iter().map(|t| slot(t, None)).collect()
}

const GAP: Option<DstNote> = Some(DstNote::Gap);
const FOLD: Option<DstNote> = Some(DstNote::Fold);

// ---------------------------------------------------------------------------------------------------
// 1. DST in America/New_York and Europe/Berlin
// ---------------------------------------------------------------------------------------------------

#[test]
fn new_york_daily_in_the_spring_gap_fires_at_the_first_instant_after_it() {
    // 02:30 does not exist on 2026-03-08: the slot is 03:00 EDT = 07:00Z, marked Gap. The days around it
    // are ordinary: 2026-03-09 02:30 EDT = 06:30Z.
    let s = cron("0 30 2 * * *", "America/New_York");
    assert_slots(
        "NY 02:30 daily, spring",
        &s,
        "2026-03-07T12:00:00Z",
        &[
            slot("2026-03-08T07:00:00Z", GAP),
            slot("2026-03-09T06:30:00Z", None),
            slot("2026-03-10T06:30:00Z", None),
        ],
    );
    // The day before the gap is an ordinary EST day: 2026-03-07 02:30 EST = 07:30Z.
    assert_slots(
        "NY 02:30 daily, day before the gap",
        &s,
        "2026-03-06T12:00:00Z",
        &[
            slot("2026-03-07T07:30:00Z", None),
            slot("2026-03-08T07:00:00Z", GAP),
        ],
    );
}

#[test]
fn new_york_gap_slot_is_not_repeated_on_restart() {
    let s = cron("0 30 2 * * *", "America/New_York");
    // Just before the gap (01:59:59 EST): the gap slot.
    assert_eq!(
        s.next_after(at("2026-03-08T06:59:59Z")),
        Some(at("2026-03-08T07:00:00Z"))
    );
    // Exactly on the gap slot, or after it (03:15 EDT): the next day's 02:30 EDT, not a second run.
    assert_eq!(
        s.next_after(at("2026-03-08T07:00:00Z")),
        Some(at("2026-03-09T06:30:00Z"))
    );
    assert_eq!(
        s.next_after(at("2026-03-08T07:15:00Z")),
        Some(at("2026-03-09T06:30:00Z"))
    );
}

#[test]
fn new_york_daily_outside_the_gap_does_not_gain_a_run_on_the_gap_day() {
    // 01:00 exists on 2026-03-08 (EST, 06:00Z); the next day it is EDT (05:00Z). No extra run at 03:00.
    let s = cron("0 0 1 * * *", "America/New_York");
    assert_slots(
        "NY 01:00 daily, spring",
        &s,
        "2026-03-07T12:00:00Z",
        &plain(&[
            "2026-03-08T06:00:00Z",
            "2026-03-09T05:00:00Z",
            "2026-03-10T05:00:00Z",
        ]),
    );
    // Noon: 2026-03-07 12:00 EST = 17:00Z, then 12:00 EDT = 16:00Z.
    let s = cron("0 0 12 * * *", "America/New_York");
    assert_slots(
        "NY noon daily, spring",
        &s,
        "2026-03-07T12:00:00Z",
        &plain(&[
            "2026-03-07T17:00:00Z",
            "2026-03-08T16:00:00Z",
            "2026-03-09T16:00:00Z",
        ]),
    );
}

#[test]
fn new_york_daily_0230_fires_once_on_the_fall_back_day() {
    // On 2026-11-01 the repeated hour is 01:00-01:59; 02:30 happens once, in EST: 07:30Z. (It is not
    // 06:30Z: that instant is the second 01:30.) 2026-10-31 02:30 EDT = 06:30Z is already past.
    let s = cron("0 30 2 * * *", "America/New_York");
    assert_slots(
        "NY 02:30 daily, fall",
        &s,
        "2026-10-31T12:00:00Z",
        &plain(&[
            "2026-11-01T07:30:00Z",
            "2026-11-02T07:30:00Z",
            "2026-11-03T07:30:00Z",
        ]),
    );
}

#[test]
fn new_york_daily_in_the_repeated_hour_fires_only_at_its_first_pass() {
    // 01:30 on 2026-11-01 happens at 05:30Z (EDT) and 06:30Z (EST): only the first, marked Fold.
    let s = cron("0 30 1 * * *", "America/New_York");
    assert_slots(
        "NY 01:30 daily, fall",
        &s,
        "2026-10-31T12:00:00Z",
        &[
            slot("2026-11-01T05:30:00Z", FOLD),
            slot("2026-11-02T06:30:00Z", None),
            slot("2026-11-03T06:30:00Z", None),
        ],
    );
    // A restart anywhere after the first pass (still EDT at 01:45, or already EST at 01:10 in the second
    // pass) must not pick up the second 01:30.
    for restart in [
        "2026-11-01T05:30:00Z",
        "2026-11-01T05:45:00Z",
        "2026-11-01T06:10:00Z",
    ] {
        assert_eq!(
            s.next_after(at(restart)),
            Some(at("2026-11-02T06:30:00Z")),
            "restart at {restart}"
        );
    }
}

#[test]
fn new_york_interval_patterns_fire_in_both_passes_of_the_repeated_hour() {
    let s = cron("0 */30 * * * *", "America/New_York");
    // From 00:30 EDT (04:30Z): 01:00 and 01:30 EDT, then 01:00 and 01:30 EST, then 02:00 EST.
    assert_slots(
        "NY every 30 min, fall",
        &s,
        "2026-11-01T04:30:00Z",
        &[
            slot("2026-11-01T05:00:00Z", FOLD),
            slot("2026-11-01T05:30:00Z", FOLD),
            slot("2026-11-01T06:00:00Z", FOLD),
            slot("2026-11-01T06:30:00Z", FOLD),
            slot("2026-11-01T07:00:00Z", None),
        ],
    );
    // Restarts inside the fold continue on the right pass.
    assert_eq!(
        s.next_after(at("2026-11-01T05:45:00Z")),
        Some(at("2026-11-01T06:00:00Z"))
    );
    assert_eq!(
        s.next_after(at("2026-11-01T06:10:00Z")),
        Some(at("2026-11-01T06:30:00Z"))
    );
    assert_eq!(
        s.next_after(at("2026-11-01T06:30:00Z")),
        Some(at("2026-11-01T07:00:00Z"))
    );

    let hourly = cron("0 0 * * * *", "America/New_York");
    assert_slots(
        "NY hourly, fall",
        &hourly,
        "2026-11-01T04:30:00Z",
        &[
            slot("2026-11-01T05:00:00Z", FOLD),
            slot("2026-11-01T06:00:00Z", FOLD),
            slot("2026-11-01T07:00:00Z", None),
            slot("2026-11-01T08:00:00Z", None),
        ],
    );
}

#[test]
fn new_york_interval_patterns_skip_the_missing_hour() {
    // From 00:30 EST (05:30Z): 01:00 EST = 06:00Z, then 02:00 does not exist, 03:00 EDT = 07:00Z, which
    // is a real match of the pattern (no Gap note).
    let hourly = cron("0 0 * * * *", "America/New_York");
    assert_slots(
        "NY hourly, spring",
        &hourly,
        "2026-03-08T05:30:00Z",
        &plain(&[
            "2026-03-08T06:00:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T08:00:00Z",
        ]),
    );
    let half = cron("0 */30 * * * *", "America/New_York");
    assert_slots(
        "NY every 30 min, spring",
        &half,
        "2026-03-08T05:30:00Z",
        &plain(&[
            "2026-03-08T06:00:00Z",
            "2026-03-08T06:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:30:00Z",
        ]),
    );
}

#[test]
fn berlin_spring_gap_and_fall_fold() {
    // Spring: 02:30 does not exist on 2026-03-29, so 03:00 CEST = 01:00Z (Gap); then 02:30 CEST = 00:30Z.
    let s = cron("0 30 2 * * *", "Europe/Berlin");
    assert_slots(
        "Berlin 02:30 daily, spring",
        &s,
        "2026-03-28T12:00:00Z",
        &[
            slot("2026-03-29T01:00:00Z", GAP),
            slot("2026-03-30T00:30:00Z", None),
            slot("2026-03-31T00:30:00Z", None),
        ],
    );
    // Fall: 02:30 on 2026-10-25 happens at 00:30Z (CEST) and 01:30Z (CET): only the first, Fold. Then
    // 02:30 CET = 01:30Z on the following days.
    assert_slots(
        "Berlin 02:30 daily, fall",
        &s,
        "2026-10-24T12:00:00Z",
        &[
            slot("2026-10-25T00:30:00Z", FOLD),
            slot("2026-10-26T01:30:00Z", None),
            slot("2026-10-27T01:30:00Z", None),
        ],
    );
    assert_eq!(
        s.next_after(at("2026-10-25T00:30:00Z")),
        Some(at("2026-10-26T01:30:00Z"))
    );

    // 03:00 on 2026-10-25 exists once (03:00 CEST never happens, clocks go back at that moment): 02:00Z.
    let three = cron("0 0 3 * * *", "Europe/Berlin");
    assert_slots(
        "Berlin 03:00 daily, fall",
        &three,
        "2026-10-24T12:00:00Z",
        &plain(&["2026-10-25T02:00:00Z", "2026-10-26T02:00:00Z"]),
    );
}

#[test]
fn berlin_interval_patterns_in_the_fold_and_the_gap() {
    // From 01:30 CEST (2026-10-24T23:30Z): 02:00 CEST = 00:00Z, 02:00 CET = 01:00Z, 03:00 CET = 02:00Z.
    let hourly = cron("0 0 * * * *", "Europe/Berlin");
    assert_slots(
        "Berlin hourly, fall",
        &hourly,
        "2026-10-24T23:30:00Z",
        &[
            slot("2026-10-25T00:00:00Z", FOLD),
            slot("2026-10-25T01:00:00Z", FOLD),
            slot("2026-10-25T02:00:00Z", None),
        ],
    );
    let half = cron("0 */30 * * * *", "Europe/Berlin");
    assert_slots(
        "Berlin every 30 min, fall",
        &half,
        "2026-10-24T23:45:00Z",
        &[
            slot("2026-10-25T00:00:00Z", FOLD),
            slot("2026-10-25T00:30:00Z", FOLD),
            slot("2026-10-25T01:00:00Z", FOLD),
            slot("2026-10-25T01:30:00Z", FOLD),
            slot("2026-10-25T02:00:00Z", None),
        ],
    );
    // Spring, from 00:30 CET (2026-03-28T23:30Z): 01:00 CET = 00:00Z, 03:00 CEST = 01:00Z, 04:00 CEST.
    assert_slots(
        "Berlin hourly, spring",
        &hourly,
        "2026-03-28T23:30:00Z",
        &plain(&[
            "2026-03-29T00:00:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T02:00:00Z",
        ]),
    );
}

#[test]
fn weekly_and_monthly_jobs_in_the_gap_also_move_to_its_end() {
    // 2026-03-08 is a Sunday and the 8th: both patterns name 02:30 that day, which does not exist. The
    // following runs are Sun 2026-03-15 and 2026-04-08, both 02:30 EDT = 06:30Z.
    let cases = [
        ("30 2 * * SUN", "2026-03-15T06:30:00Z"),
        ("30 2 8 * *", "2026-04-08T06:30:00Z"),
    ];
    for (pattern, following) in cases {
        let s = cron(pattern, "America/New_York");
        assert_slots(
            pattern,
            &s,
            "2026-03-01T12:00:00Z",
            &[slot("2026-03-08T07:00:00Z", GAP), slot(following, None)],
        );
    }
}

/// OCPS (and croner) give the "run once, after the gap" treatment only to fixed-time patterns: seconds,
/// minutes and hours each a single value. A pattern that lists two hours is an interval pattern: its
/// gap-time 02:00 on 2026-03-08 does not exist and is skipped, and the 14:00 run happens as usual.
#[test]
fn a_listed_hour_in_the_gap_is_skipped_as_ocps_defines() {
    let s = cron("0 0 2,14 * * *", "America/New_York");
    assert_slots(
        "NY 02:00 and 14:00, spring",
        &s,
        "2026-03-07T12:00:00Z",
        &[
            slot("2026-03-07T19:00:00Z", None),
            slot("2026-03-08T18:00:00Z", None),
            slot("2026-03-09T06:00:00Z", None),
        ],
    );
}

/// Likewise a fixed hour with listed minutes is an interval pattern: on 2026-11-01 in New York the
/// repeated 01:00-01:59 hour is lived twice, and so are its 01:00 and 01:30 slots (all four in the fold).
#[test]
fn listed_minutes_in_a_fixed_hour_fire_in_both_passes_as_ocps_defines() {
    let s = cron("0 0,30 1 * * *", "America/New_York");
    assert_slots(
        "NY 01:00 and 01:30, fall",
        &s,
        "2026-10-31T12:00:00Z",
        &[
            slot("2026-11-01T05:00:00Z", FOLD),
            slot("2026-11-01T05:30:00Z", FOLD),
            slot("2026-11-01T06:00:00Z", FOLD),
            slot("2026-11-01T06:30:00Z", FOLD),
            slot("2026-11-02T06:00:00Z", None),
        ],
    );
}

#[test]
fn dst_note_classifies_single_instants() {
    let gap_daily = cron("0 30 2 * * *", "America/New_York");
    assert_eq!(gap_daily.dst_note(at("2026-03-08T07:00:00Z")), GAP);
    assert_eq!(gap_daily.dst_note(at("2026-03-09T06:30:00Z")), None);
    let fold_daily = cron("0 30 1 * * *", "America/New_York");
    // Both passes of 01:30 lie in the repeated hour.
    assert_eq!(fold_daily.dst_note(at("2026-11-01T05:30:00Z")), FOLD);
    assert_eq!(fold_daily.dst_note(at("2026-11-01T06:30:00Z")), FOLD);
    // dst_note is asked about slots of the schedule. For an hourly pattern, 00:00 EDT (04:00Z) and
    // 02:00 EST (07:00Z) lie outside the repeated hour, and 03:00 EDT after the spring gap (07:00Z on
    // 2026-03-08) is an ordinary match, not a moved slot.
    let hourly = cron("0 0 * * * *", "America/New_York");
    assert_eq!(hourly.dst_note(at("2026-11-01T04:00:00Z")), None);
    assert_eq!(hourly.dst_note(at("2026-11-01T05:00:00Z")), FOLD);
    assert_eq!(hourly.dst_note(at("2026-11-01T06:00:00Z")), FOLD);
    assert_eq!(hourly.dst_note(at("2026-11-01T07:00:00Z")), None);
    assert_eq!(hourly.dst_note(at("2026-03-08T07:00:00Z")), None);
    // UTC has neither gaps nor folds.
    let utc = cron("0 30 1 * * *", "UTC");
    assert_eq!(utc.dst_note(at("2026-11-01T01:30:00Z")), None);
    assert_eq!(utc.dst_note(at("2026-03-08T01:30:00Z")), None);
}

// ---------------------------------------------------------------------------------------------------
// 2. `every` schedules
// ---------------------------------------------------------------------------------------------------

#[test]
fn every_counts_from_the_unix_epoch_by_default() {
    // 86 400 s is a multiple of 900 s, so 15-minute slots fall on :00, :15, :30 and :45 of every UTC hour.
    let s = every("15m", None, None);
    assert_slots(
        "every 15m",
        &s,
        "2026-05-05T10:07:13Z",
        &plain(&[
            "2026-05-05T10:15:00Z",
            "2026-05-05T10:30:00Z",
            "2026-05-05T10:45:00Z",
        ]),
    );
    // Strictly after: an instant exactly on a slot gives the following one; 1 ms before gives the slot.
    assert_eq!(
        s.next_after(at("2026-05-05T10:15:00Z")),
        Some(at("2026-05-05T10:30:00Z"))
    );
    assert_eq!(
        s.next_after(at("2026-05-05T10:14:59.999Z")),
        Some(at("2026-05-05T10:15:00Z"))
    );
    // Before the anchor (the epoch), the first slot is the anchor itself.
    assert_eq!(
        s.next_after(at("1969-12-31T23:59:00Z")),
        Some(at("1970-01-01T00:00:00Z"))
    );
}

#[test]
fn every_seven_minutes_stays_on_the_epoch_grid_across_restarts() {
    // 2026-01-01 is 20 454 days after 1970-01-01 (56 years, 14 leap days) = 2 922 weeks exactly, so
    // 2026-01-01T00:00Z is on the 7-minute grid.
    let s = every("7m", None, None);
    assert_slots(
        "every 7m from new year",
        &s,
        "2026-01-01T00:00:00Z",
        &plain(&[
            "2026-01-01T00:07:00Z",
            "2026-01-01T00:14:00Z",
            "2026-01-01T00:21:00Z",
        ]),
    );
    // A "restart" at arbitrary instants lands on the same grid: 00:10 -> 00:14; 01:00 -> 01:03 (9 x 7m).
    assert_eq!(
        s.next_after(at("2026-01-01T00:10:00Z")),
        Some(at("2026-01-01T00:14:00Z"))
    );
    assert_slots(
        "every 7m after a restart at 01:00",
        &s,
        "2026-01-01T01:00:00Z",
        &plain(&["2026-01-01T01:03:00Z", "2026-01-01T01:10:00Z"]),
    );
    // Months later: 2026-06-10 is day 160 of the year; 160 x 1440 = 230 400 minutes = 2 (mod 7), so the
    // grid on that day sits at minutes = 5 (mod 7) after midnight. After 08:07:30 (minute 487.5): 488 =
    // 08:08, then 08:15, 08:22.
    assert_slots(
        "every 7m after a restart in June",
        &s,
        "2026-06-10T08:07:30Z",
        &plain(&[
            "2026-06-10T08:08:00Z",
            "2026-06-10T08:15:00Z",
            "2026-06-10T08:22:00Z",
        ]),
    );
}

#[test]
fn every_with_a_custom_anchor() {
    // Slots: 2026-03-01T00:10Z + k x 90 min. From the anchor to 2026-03-02T05:00Z is 1 730 min; k = 19 is
    // 04:40Z (before), k = 20 is 06:10Z.
    let s = every("1h30m", Some("2026-03-01T00:10:00Z"), None);
    assert_slots(
        "every 1h30m from an anchor",
        &s,
        "2026-03-02T05:00:00Z",
        &plain(&[
            "2026-03-02T06:10:00Z",
            "2026-03-02T07:40:00Z",
            "2026-03-02T09:10:00Z",
        ]),
    );
    // Before the anchor: the anchor first.
    assert_slots(
        "every 1h30m before its anchor",
        &s,
        "2026-02-01T00:00:00Z",
        &plain(&[
            "2026-03-01T00:10:00Z",
            "2026-03-01T01:40:00Z",
            "2026-03-01T03:10:00Z",
        ]),
    );
    assert_eq!(
        s.next_after(at("2026-03-01T00:09:59.999Z")),
        Some(at("2026-03-01T00:10:00Z"))
    );
    // Exactly on the anchor: strictly after it.
    assert_eq!(
        s.next_after(at("2026-03-01T00:10:00Z")),
        Some(at("2026-03-01T01:40:00Z"))
    );
    // An anchor written with an offset is the same instant: 01:10+01:00 = 00:10Z.
    let same = every("1h30m", Some("2026-03-01T01:10:00+01:00"), None);
    assert_eq!(
        same.next_after(at("2026-03-02T05:00:00Z")),
        Some(at("2026-03-02T06:10:00Z"))
    );
}

/// Slots are anchor + k x every in whole milliseconds, so an anchor finer than a millisecond is refused
/// rather than silently truncated onto a different grid.
#[test]
fn every_refuses_a_sub_millisecond_anchor() {
    let error = Schedule::from_spec(&spec(
        None,
        None,
        Some("1h30m"),
        Some("2026-03-01T00:10:00.0005Z"),
    ))
    .expect_err("sub-millisecond anchor");
    assert!(error.contains("whole milliseconds"), "{error}");
    let fine = every("1h30m", Some("2026-03-01T00:10:00.250Z"), None);
    assert_eq!(
        fine.next_after(at("2026-03-01T00:10:00.250Z")),
        Some(at("2026-03-01T01:40:00.250Z"))
    );
}

#[test]
fn every_with_millisecond_intervals() {
    let s = every("500ms", None, None);
    assert_slots(
        "every 500ms",
        &s,
        "2026-01-01T00:00:00.250Z",
        &plain(&[
            "2026-01-01T00:00:00.500Z",
            "2026-01-01T00:00:01Z",
            "2026-01-01T00:00:01.500Z",
        ]),
    );
}

#[test]
fn every_keeps_utc_intervals_across_dst_and_marks_the_repeated_hour() {
    // Fall back in New York: hourly slots stay one real hour apart; 05:00Z (01:00 EDT) and 06:00Z
    // (01:00 EST) lie in the repeated hour.
    let hourly = every("1h", None, Some("America/New_York"));
    assert_slots(
        "every 1h in NY, fall",
        &hourly,
        "2026-11-01T03:30:00Z",
        &[
            slot("2026-11-01T04:00:00Z", None),
            slot("2026-11-01T05:00:00Z", FOLD),
            slot("2026-11-01T06:00:00Z", FOLD),
            slot("2026-11-01T07:00:00Z", None),
        ],
    );
    let half = every("30m", None, Some("America/New_York"));
    assert_slots(
        "every 30m in NY, fall",
        &half,
        "2026-11-01T04:45:00Z",
        &[
            slot("2026-11-01T05:00:00Z", FOLD),
            slot("2026-11-01T05:30:00Z", FOLD),
            slot("2026-11-01T06:00:00Z", FOLD),
            slot("2026-11-01T06:30:00Z", FOLD),
            slot("2026-11-01T07:00:00Z", None),
        ],
    );
    // Spring forward: an instant always exists, so intervals never get a Gap note.
    assert_slots(
        "every 1h in NY, spring",
        &hourly,
        "2026-03-08T05:30:00Z",
        &plain(&[
            "2026-03-08T06:00:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T08:00:00Z",
        ]),
    );
    // A daily interval anchored at 02:30 EST keeps 07:30Z: 03:30 EDT on the spring-forward day.
    let daily = every("1d", Some("2026-03-07T07:30:00Z"), Some("America/New_York"));
    assert_slots(
        "every 1d in NY across spring forward",
        &daily,
        "2026-03-07T08:00:00Z",
        &plain(&["2026-03-08T07:30:00Z", "2026-03-09T07:30:00Z"]),
    );
    // Berlin fall back: 02:00 CEST = 00:00Z and 02:00 CET = 01:00Z are both in the repeated hour.
    let berlin = every("1h", None, Some("Europe/Berlin"));
    assert_slots(
        "every 1h in Berlin, fall",
        &berlin,
        "2026-10-24T23:30:00Z",
        &[
            slot("2026-10-25T00:00:00Z", FOLD),
            slot("2026-10-25T01:00:00Z", FOLD),
            slot("2026-10-25T02:00:00Z", None),
        ],
    );
}

// ---------------------------------------------------------------------------------------------------
// 3. February 29
// ---------------------------------------------------------------------------------------------------

#[test]
fn february_29_waits_for_leap_years() {
    let s = cron("0 0 29 2 *", "UTC");
    assert_slots(
        "Feb 29",
        &s,
        "2026-01-01T00:00:00Z",
        &plain(&[
            "2028-02-29T00:00:00Z",
            "2032-02-29T00:00:00Z",
            "2036-02-29T00:00:00Z",
        ]),
    );
    // Exactly on a Feb 29 slot: the next leap year's.
    assert_eq!(
        s.next_after(at("2028-02-29T00:00:00Z")),
        Some(at("2032-02-29T00:00:00Z"))
    );
}

#[test]
fn february_29_skips_2100_which_is_not_a_leap_year() {
    // 2100 is divisible by 100 but not by 400: after 2096 the next Feb 29 is in 2104.
    let s = cron("0 0 29 2 *", "UTC");
    assert_eq!(
        s.next_after(at("2096-03-01T00:00:00Z")),
        Some(at("2104-02-29T00:00:00Z"))
    );
}

#[test]
fn impossible_dates_have_no_slot() {
    for pattern in ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4 *"] {
        let s = cron(pattern, "UTC");
        assert_eq!(s.next_after(at("2026-01-01T00:00:00Z")), None, "{pattern}");
        assert!(
            s.slots_after(at("2026-01-01T00:00:00Z"), 3).is_empty(),
            "{pattern}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------
// 4. L, W and # patterns
// ---------------------------------------------------------------------------------------------------

#[test]
fn last_day_of_month() {
    let s = cron("0 0 L * *", "UTC");
    assert_slots(
        "L",
        &s,
        "2026-02-01T00:00:00Z",
        &plain(&[
            "2026-02-28T00:00:00Z",
            "2026-03-31T00:00:00Z",
            "2026-04-30T00:00:00Z",
        ]),
    );
    assert_slots(
        "L in a leap year",
        &s,
        "2028-02-01T00:00:00Z",
        &plain(&["2028-02-29T00:00:00Z", "2028-03-31T00:00:00Z"]),
    );
}

#[test]
fn last_weekday_of_month() {
    // Jan 31 2026 is a Saturday -> Fri Jan 30; Feb 28 is a Saturday -> Fri Feb 27; Mar 31 is a Tuesday.
    let s = cron("0 0 LW * *", "UTC");
    assert_slots(
        "LW",
        &s,
        "2026-01-01T00:00:00Z",
        &plain(&[
            "2026-01-30T00:00:00Z",
            "2026-02-27T00:00:00Z",
            "2026-03-31T00:00:00Z",
        ]),
    );
}

#[test]
fn nearest_weekday_to_the_15th() {
    let s = cron("0 0 15W * *", "UTC");
    // Aug 15 2026 is a Saturday -> Fri Aug 14; Sep 15 is a Tuesday; Oct 15 is a Thursday.
    assert_slots(
        "15W from August",
        &s,
        "2026-08-01T00:00:00Z",
        &plain(&[
            "2026-08-14T00:00:00Z",
            "2026-09-15T00:00:00Z",
            "2026-10-15T00:00:00Z",
        ]),
    );
    // Mar 15 2026 is a Sunday -> Mon Mar 16; Apr 15 is a Wednesday; May 15 is a Friday.
    assert_slots(
        "15W from March",
        &s,
        "2026-03-01T00:00:00Z",
        &plain(&[
            "2026-03-16T00:00:00Z",
            "2026-04-15T00:00:00Z",
            "2026-05-15T00:00:00Z",
        ]),
    );
}

#[test]
fn nearest_weekday_does_not_leave_the_month() {
    // 1W: Aug 1 2026 is a Saturday -> Mon Aug 3 (not Fri Jul 31); Sep 1 Tue; Oct 1 Thu; Nov 1 Sunday ->
    // Mon Nov 2.
    let first = cron("0 0 1W * *", "UTC");
    assert_slots(
        "1W",
        &first,
        "2026-07-15T00:00:00Z",
        &plain(&[
            "2026-08-03T00:00:00Z",
            "2026-09-01T00:00:00Z",
            "2026-10-01T00:00:00Z",
            "2026-11-02T00:00:00Z",
        ]),
    );
    // 31W: Jan 31 2026 is a Saturday -> Fri Jan 30; Feb and Apr have no 31st; Mar 31 Tue; May 31 is a
    // Sunday -> Fri May 29 (not Mon Jun 1); Jul 31 Fri.
    let last = cron("0 0 31W * *", "UTC");
    assert_slots(
        "31W",
        &last,
        "2026-01-01T00:00:00Z",
        &plain(&[
            "2026-01-30T00:00:00Z",
            "2026-03-31T00:00:00Z",
            "2026-05-29T00:00:00Z",
            "2026-07-31T00:00:00Z",
        ]),
    );
}

#[test]
fn nth_weekday_of_month() {
    // Second Monday: Jan 2026 Mondays are 5, 12; Feb 2, 9; Mar 2, 9.
    for pattern in ["0 0 * * MON#2", "0 0 * * 1#2"] {
        let s = cron(pattern, "UTC");
        assert_slots(
            pattern,
            &s,
            "2026-01-01T00:00:00Z",
            &plain(&[
                "2026-01-12T00:00:00Z",
                "2026-02-09T00:00:00Z",
                "2026-03-09T00:00:00Z",
            ]),
        );
    }
    // Fifth Sunday: only months with five Sundays. Jan (4..25) and Feb (1..22) have four; Mar 1..29 has
    // five; Apr (5..26) four; May 3..31 five; Jun (7..28) and Jul (5..26) four; Aug 2..30 five.
    let fifth = cron("0 0 * * SUN#5", "UTC");
    assert_slots(
        "SUN#5",
        &fifth,
        "2026-01-01T00:00:00Z",
        &plain(&[
            "2026-03-29T00:00:00Z",
            "2026-05-31T00:00:00Z",
            "2026-08-30T00:00:00Z",
        ]),
    );
}

#[test]
fn last_weekday_of_a_kind_in_month() {
    // Last Friday: Jan 2026 Fridays 2..30 -> 30; Feb 6..27 -> 27; Mar 6..27 -> 27.
    let s = cron("0 0 * * 5#L", "UTC");
    assert_slots(
        "5#L",
        &s,
        "2026-01-01T00:00:00Z",
        &plain(&[
            "2026-01-30T00:00:00Z",
            "2026-02-27T00:00:00Z",
            "2026-03-27T00:00:00Z",
        ]),
    );
    // Jul 31 2026 is a Friday; Aug Fridays 7..28; Sep Fridays 4..25.
    assert_slots(
        "5#L from July",
        &s,
        "2026-07-01T00:00:00Z",
        &plain(&[
            "2026-07-31T00:00:00Z",
            "2026-08-28T00:00:00Z",
            "2026-09-25T00:00:00Z",
        ]),
    );
}

// ---------------------------------------------------------------------------------------------------
// 5. 5 fields, 6 fields and aliases
// ---------------------------------------------------------------------------------------------------

#[test]
fn five_fields_count_minutes_six_fields_count_seconds() {
    let after = "2026-06-10T08:07:30Z";
    assert_slots(
        "*/15 minutes",
        &cron("*/15 * * * *", "UTC"),
        after,
        &plain(&[
            "2026-06-10T08:15:00Z",
            "2026-06-10T08:30:00Z",
            "2026-06-10T08:45:00Z",
        ]),
    );
    assert_slots(
        "*/15 seconds",
        &cron("*/15 * * * * *", "UTC"),
        after,
        &plain(&[
            "2026-06-10T08:07:45Z",
            "2026-06-10T08:08:00Z",
            "2026-06-10T08:08:15Z",
        ]),
    );
}

#[test]
fn aliases() {
    // 2026-06-10 is a Wednesday.
    let after = "2026-06-10T08:07:30Z";
    let cases: [(&str, [&str; 3]); 5] = [
        (
            "@hourly",
            [
                "2026-06-10T09:00:00Z",
                "2026-06-10T10:00:00Z",
                "2026-06-10T11:00:00Z",
            ],
        ),
        (
            "@daily",
            [
                "2026-06-11T00:00:00Z",
                "2026-06-12T00:00:00Z",
                "2026-06-13T00:00:00Z",
            ],
        ),
        (
            // Sundays at midnight.
            "@weekly",
            [
                "2026-06-14T00:00:00Z",
                "2026-06-21T00:00:00Z",
                "2026-06-28T00:00:00Z",
            ],
        ),
        (
            "@monthly",
            [
                "2026-07-01T00:00:00Z",
                "2026-08-01T00:00:00Z",
                "2026-09-01T00:00:00Z",
            ],
        ),
        (
            "@yearly",
            [
                "2027-01-01T00:00:00Z",
                "2028-01-01T00:00:00Z",
                "2029-01-01T00:00:00Z",
            ],
        ),
    ];
    for (alias, expected) in cases {
        assert_slots(alias, &cron(alias, "UTC"), after, &plain(&expected));
    }
    // An alias is read in the schedule's zone: @daily in Tokyo is 00:00 JST = 15:00Z the day before.
    assert_slots(
        "@daily in Tokyo",
        &cron("@daily", "Asia/Tokyo"),
        after,
        &plain(&["2026-06-10T15:00:00Z", "2026-06-11T15:00:00Z"]),
    );
}

#[test]
fn cron_slots_are_strictly_after_and_whole_seconds() {
    let hourly = cron("0 0 * * * *", "UTC");
    // Exactly on a slot: the next one.
    assert_eq!(
        hourly.next_after(at("2026-06-10T08:00:00Z")),
        Some(at("2026-06-10T09:00:00Z"))
    );
    // 1 ms before a slot: that slot, with no fraction of a second carried over.
    assert_eq!(
        hourly.next_after(at("2026-06-10T08:59:59.999Z")),
        Some(at("2026-06-10T09:00:00Z"))
    );
    // 1 ms after a slot: the next one.
    assert_eq!(
        hourly.next_after(at("2026-06-10T09:00:00.001Z")),
        Some(at("2026-06-10T10:00:00Z"))
    );
    let every_second = cron("* * * * * *", "UTC");
    assert_eq!(
        every_second.next_after(at("2026-06-10T08:00:00.500Z")),
        Some(at("2026-06-10T08:00:01Z"))
    );
}

// ---------------------------------------------------------------------------------------------------
// 6. Ordinary patterns (no DST change in the window)
// ---------------------------------------------------------------------------------------------------

struct Case {
    pattern: &'static str,
    timezone: &'static str,
    after: &'static str,
    /// Hand-computed slots; written with the zone's own offset where that is easier to check.
    expected: &'static [&'static str],
}

/// 2026-06-10T08:07:30Z, a Wednesday (17:07:30 in Tokyo, 13:37:30 in Kolkata, 04:07:30 EDT in New York).
const WED: &str = "2026-06-10T08:07:30Z";

const ORDINARY: &[Case] = &[
    // Ranges, lists, steps.
    Case {
        pattern: "30 8-10 * * *",
        timezone: "UTC",
        after: WED,
        expected: &[
            "2026-06-10T08:30:00Z",
            "2026-06-10T09:30:00Z",
            "2026-06-10T10:30:00Z",
            "2026-06-11T08:30:00Z",
        ],
    },
    Case {
        pattern: "0,20,40 * * * *",
        timezone: "UTC",
        after: WED,
        expected: &[
            "2026-06-10T08:20:00Z",
            "2026-06-10T08:40:00Z",
            "2026-06-10T09:00:00Z",
        ],
    },
    Case {
        // Minutes 5, 7, 9; 08:07 is already past at 08:07:30.
        pattern: "5-10/2 * * * *",
        timezone: "UTC",
        after: WED,
        expected: &[
            "2026-06-10T08:09:00Z",
            "2026-06-10T09:05:00Z",
            "2026-06-10T09:07:00Z",
        ],
    },
    Case {
        // Hours 0, 2, ..., 20 at minute 23; 20:23 is past at 20:30.
        pattern: "23 0-20/2 * * *",
        timezone: "UTC",
        after: "2026-06-10T20:30:00Z",
        expected: &[
            "2026-06-11T00:23:00Z",
            "2026-06-11T02:23:00Z",
            "2026-06-11T04:23:00Z",
        ],
    },
    Case {
        // Seconds 30 of minutes 0, 5, 10, ... (6 fields).
        pattern: "30 */5 * * * *",
        timezone: "UTC",
        after: WED,
        expected: &[
            "2026-06-10T08:10:30Z",
            "2026-06-10T08:15:30Z",
            "2026-06-10T08:20:30Z",
        ],
    },
    // Names and weekdays.
    Case {
        // From Friday 2026-06-12 10:00: the weekend is skipped.
        pattern: "0 9 * * MON-FRI",
        timezone: "UTC",
        after: "2026-06-12T10:00:00Z",
        expected: &[
            "2026-06-15T09:00:00Z",
            "2026-06-16T09:00:00Z",
            "2026-06-17T09:00:00Z",
        ],
    },
    Case {
        // Exactly on Friday's slot: next is Monday.
        pattern: "0 22 * * 1-5",
        timezone: "UTC",
        after: "2026-06-12T22:00:00Z",
        expected: &[
            "2026-06-15T22:00:00Z",
            "2026-06-16T22:00:00Z",
            "2026-06-17T22:00:00Z",
        ],
    },
    Case {
        // Lower-case names; Wednesday 08:00 is already past.
        pattern: "0 8 * * mon,wed,fri",
        timezone: "UTC",
        after: WED,
        expected: &[
            "2026-06-12T08:00:00Z",
            "2026-06-15T08:00:00Z",
            "2026-06-17T08:00:00Z",
        ],
    },
    Case {
        pattern: "0 0 * * SUN",
        timezone: "UTC",
        after: WED,
        expected: &[
            "2026-06-14T00:00:00Z",
            "2026-06-21T00:00:00Z",
            "2026-06-28T00:00:00Z",
        ],
    },
    Case {
        // 7 is Sunday too.
        pattern: "0 0 * * 7",
        timezone: "UTC",
        after: WED,
        expected: &[
            "2026-06-14T00:00:00Z",
            "2026-06-21T00:00:00Z",
            "2026-06-28T00:00:00Z",
        ],
    },
    Case {
        pattern: "0 0 ? * MON",
        timezone: "UTC",
        after: WED,
        expected: &[
            "2026-06-15T00:00:00Z",
            "2026-06-22T00:00:00Z",
            "2026-06-29T00:00:00Z",
        ],
    },
    Case {
        pattern: "0 0 0 * * SAT,SUN",
        timezone: "UTC",
        after: WED,
        expected: &[
            "2026-06-13T00:00:00Z",
            "2026-06-14T00:00:00Z",
            "2026-06-20T00:00:00Z",
        ],
    },
    // Days of month and months.
    Case {
        pattern: "0 0 1,15 * *",
        timezone: "UTC",
        after: WED,
        expected: &[
            "2026-06-15T00:00:00Z",
            "2026-07-01T00:00:00Z",
            "2026-07-15T00:00:00Z",
        ],
    },
    Case {
        pattern: "15 14 1 * *",
        timezone: "UTC",
        after: WED,
        expected: &[
            "2026-07-01T14:15:00Z",
            "2026-08-01T14:15:00Z",
            "2026-09-01T14:15:00Z",
        ],
    },
    Case {
        pattern: "0 12 1 JAN,JUL *",
        timezone: "UTC",
        after: WED,
        expected: &[
            "2026-07-01T12:00:00Z",
            "2027-01-01T12:00:00Z",
            "2027-07-01T12:00:00Z",
        ],
    },
    Case {
        pattern: "0 0 1 JAN-MAR *",
        timezone: "UTC",
        after: "2026-02-15T00:00:00Z",
        expected: &[
            "2026-03-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
            "2027-02-01T00:00:00Z",
        ],
    },
    Case {
        pattern: "59 23 31 12 *",
        timezone: "UTC",
        after: WED,
        expected: &[
            "2026-12-31T23:59:00Z",
            "2027-12-31T23:59:00Z",
            "2028-12-31T23:59:00Z",
        ],
    },
    Case {
        // Only months with 31 days: Feb, Apr, Jun are skipped; Jul and Aug both have 31.
        pattern: "0 0 31 * *",
        timezone: "UTC",
        after: "2026-01-31T12:00:00Z",
        expected: &[
            "2026-03-31T00:00:00Z",
            "2026-05-31T00:00:00Z",
            "2026-07-31T00:00:00Z",
            "2026-08-31T00:00:00Z",
        ],
    },
    Case {
        pattern: "0 0 30 * *",
        timezone: "UTC",
        after: "2026-01-31T12:00:00Z",
        expected: &[
            "2026-03-30T00:00:00Z",
            "2026-04-30T00:00:00Z",
            "2026-05-30T00:00:00Z",
        ],
    },
    // Day of month OR day of week (Vixie cron) when both are restricted.
    Case {
        // Fridays Jan 2, 9, 16, 23 and Tuesday the 13th.
        pattern: "0 0 13 * FRI",
        timezone: "UTC",
        after: "2026-01-01T00:00:00Z",
        expected: &[
            "2026-01-02T00:00:00Z",
            "2026-01-09T00:00:00Z",
            "2026-01-13T00:00:00Z",
            "2026-01-16T00:00:00Z",
            "2026-01-23T00:00:00Z",
        ],
    },
    Case {
        // Friday Feb 13 2026 matches both fields and fires once; then Fridays; Mar 13 is a Friday too.
        pattern: "0 0 13 * FRI",
        timezone: "UTC",
        after: "2026-02-10T00:00:00Z",
        expected: &[
            "2026-02-13T00:00:00Z",
            "2026-02-20T00:00:00Z",
            "2026-02-27T00:00:00Z",
            "2026-03-06T00:00:00Z",
            "2026-03-13T00:00:00Z",
        ],
    },
    Case {
        // Days 1-7 or Mondays: Sun Jun 7 (day 7), Mondays Jun 8..29, then Wed Jul 1 (day 1), Thu Jul 2.
        pattern: "0 0 1-7 * MON",
        timezone: "UTC",
        after: "2026-06-06T12:00:00Z",
        expected: &[
            "2026-06-07T00:00:00Z",
            "2026-06-08T00:00:00Z",
            "2026-06-15T00:00:00Z",
            "2026-06-22T00:00:00Z",
            "2026-06-29T00:00:00Z",
            "2026-07-01T00:00:00Z",
            "2026-07-02T00:00:00Z",
        ],
    },
    Case {
        // Day of month is *, so only the weekday counts: Mondays of February (2026: 2, 9, 16, 23; 2027
        // starts on a Friday, so 2027-02-01 is a Monday).
        pattern: "0 6 * FEB MON",
        timezone: "UTC",
        after: "2026-01-01T00:00:00Z",
        expected: &[
            "2026-02-02T06:00:00Z",
            "2026-02-09T06:00:00Z",
            "2026-02-16T06:00:00Z",
            "2026-02-23T06:00:00Z",
            "2027-02-01T06:00:00Z",
        ],
    },
    // Zones without a DST change in the window.
    Case {
        // Wednesday 17:07:30 JST: Thu, Fri, then Mon at 09:00 JST.
        pattern: "0 9 * * MON-FRI",
        timezone: "Asia/Tokyo",
        after: WED,
        expected: &[
            "2026-06-11T09:00:00+09:00",
            "2026-06-12T09:00:00+09:00",
            "2026-06-15T09:00:00+09:00",
        ],
    },
    Case {
        // Sunday 08:00 JST is Saturday 23:00Z: the weekday is read in the zone.
        pattern: "0 8 * * SUN",
        timezone: "Asia/Tokyo",
        after: WED,
        expected: &[
            "2026-06-13T23:00:00Z",
            "2026-06-20T23:00:00Z",
            "2026-06-27T23:00:00Z",
        ],
    },
    Case {
        // Last day of the month, Tokyo midnight = 15:00Z the day before.
        pattern: "0 0 L * *",
        timezone: "Asia/Tokyo",
        after: "2026-01-15T00:00:00Z",
        expected: &[
            "2026-01-30T15:00:00Z",
            "2026-02-27T15:00:00Z",
            "2026-03-30T15:00:00Z",
        ],
    },
    Case {
        // 09:00 IST = 03:30Z; 13:37:30 IST has passed 09:00.
        pattern: "0 9 * * *",
        timezone: "Asia/Kolkata",
        after: WED,
        expected: &[
            "2026-06-11T03:30:00Z",
            "2026-06-12T03:30:00Z",
            "2026-06-13T03:30:00Z",
        ],
    },
    Case {
        // Minutes 0 and 45 of IST hours, which are :15 and :30 of UTC hours.
        pattern: "*/45 * * * *",
        timezone: "Asia/Kolkata",
        after: WED,
        expected: &[
            "2026-06-10T13:45:00+05:30",
            "2026-06-10T14:00:00+05:30",
            "2026-06-10T14:45:00+05:30",
        ],
    },
    Case {
        // Midnight on the 1st in Kolkata is 18:30Z on the last day of the previous month.
        pattern: "0 0 1 * *",
        timezone: "Asia/Kolkata",
        after: "2026-06-30T12:00:00Z",
        expected: &[
            "2026-06-30T18:30:00Z",
            "2026-07-31T18:30:00Z",
            "2026-08-31T18:30:00Z",
        ],
    },
    Case {
        // New York in June is EDT (UTC-4) throughout.
        pattern: "0 17 * * FRI",
        timezone: "America/New_York",
        after: WED,
        expected: &[
            "2026-06-12T21:00:00Z",
            "2026-06-19T21:00:00Z",
            "2026-06-26T21:00:00Z",
        ],
    },
];

#[test]
fn ordinary_patterns_give_their_hand_computed_slots() {
    assert!(ORDINARY.len() >= 20);
    let mut failures = Vec::new();
    for case in ORDINARY {
        let schedule = cron(case.pattern, case.timezone);
        let expected = plain(case.expected);
        let got = schedule.slots_after(at(case.after), expected.len());
        if got != expected {
            failures.push(format!(
                "{} in {} after {}:\n  got:      {:?}\n  expected: {:?}",
                case.pattern,
                case.timezone,
                case.after,
                got.iter()
                    .map(|s| (s.at.to_rfc3339(), s.note))
                    .collect::<Vec<_>>(),
                expected
                    .iter()
                    .map(|s| s.at.to_rfc3339())
                    .collect::<Vec<_>>(),
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_cron_schedule_without_a_timezone_reads_utc() {
    let s = build(&spec(Some("0 9 * * *"), None, None, None));
    assert_eq!(s.timezone(), chrono_tz::Tz::UTC);
    assert_eq!(s.next_after(at(WED)), Some(at("2026-06-10T09:00:00Z")));
}

#[test]
fn from_spec_rejects_what_is_not_a_schedule() {
    let bad = [
        (
            "both cron and every",
            spec(Some("0 9 * * *"), Some("UTC"), Some("1h"), None),
        ),
        ("neither", spec(None, Some("UTC"), None, None)),
        ("zero interval", spec(None, None, Some("0s"), None)),
        (
            "unknown zone",
            spec(Some("0 9 * * *"), Some("Mars/Olympus_Mons"), None, None),
        ),
        (
            "zone in the wrong case",
            spec(Some("0 9 * * *"), Some("america/new_york"), None, None),
        ),
        (
            "minute out of range",
            spec(Some("61 * * * *"), Some("UTC"), None, None),
        ),
        ("@reboot", spec(Some("@reboot"), Some("UTC"), None, None)),
        (
            "too few fields",
            spec(Some("0 9 *"), Some("UTC"), None, None),
        ),
    ];
    for (what, spec) in bad {
        assert!(Schedule::from_spec(&spec).is_err(), "{what}: {spec:?}");
    }
    let ny = cron("0 9 * * *", "America/New_York");
    assert_eq!(ny.timezone(), chrono_tz::America::New_York);
}

// ---------------------------------------------------------------------------------------------------
// 7. Jitter
// ---------------------------------------------------------------------------------------------------

const TWO_MINUTES: Duration = Duration::from_secs(120);

#[test]
fn jitter_is_deterministic() {
    let slot = at("2026-06-10T08:15:00Z");
    let next = Some(at("2026-06-10T08:30:00Z"));
    let first = jitter_delay("cache-warm", slot, TWO_MINUTES, next);
    let second = jitter_delay("cache-warm", slot, TWO_MINUTES, next);
    assert_eq!(first, second);
    assert!(first < TWO_MINUTES);
}

#[test]
fn jitter_matches_an_independent_fnv1a_computation() {
    // The delay must not change between releases (restarts would move runs). Computed independently
    // (Python) as FNV-1a-64 over b"cache-warm" + b"\0" + i64 LE milliseconds of the slot
    // (1781079300000 for 2026-06-10T08:15:00Z) = 0x33cd5e9484d6c0be; mod 120 000 ms = 46 526; mod
    // 1 000 ms = 526.
    let slot = at("2026-06-10T08:15:00Z");
    assert_eq!(
        jitter_delay(
            "cache-warm",
            slot,
            TWO_MINUTES,
            Some(at("2026-06-10T08:30:00Z"))
        ),
        Duration::from_millis(46_526)
    );
    assert_eq!(
        jitter_delay(
            "cache-warm",
            slot,
            Duration::from_secs(60),
            Some(at("2026-06-10T08:15:01Z"))
        ),
        Duration::from_millis(526)
    );
}

#[test]
fn jitter_stays_in_range_and_spreads_over_many_slots() {
    let s = every("15m", None, None);
    let slots = s.slots_after(at("2026-06-10T00:00:00Z"), 101);
    assert_eq!(slots.len(), 101);
    let mut delays = Vec::new();
    for pair in slots.windows(2) {
        let (slot, next) = (pair[0].at, pair[1].at);
        let delay = jitter_delay("cache-warm", slot, TWO_MINUTES, Some(next));
        assert!(delay < TWO_MINUTES, "{slot}: {delay:?}");
        delays.push(delay);
    }
    let distinct: BTreeSet<Duration> = delays.iter().copied().collect();
    assert!(distinct.len() > 1, "all 100 delays are {:?}", delays[0]);
    // A spread, not a clump: some in the first half of the window and some in the second.
    assert!(delays.iter().any(|d| *d < Duration::from_secs(60)));
    assert!(delays.iter().any(|d| *d >= Duration::from_secs(60)));
}

#[test]
fn jitter_differs_between_jobs_for_the_same_slot() {
    let slot = at("2026-06-10T08:15:00Z");
    let delays: BTreeSet<Duration> = (0..100)
        .map(|i| jitter_delay(&format!("job-{i}"), slot, TWO_MINUTES, None))
        .collect();
    assert!(delays.len() > 1);
    assert!(delays.iter().all(|d| *d < TWO_MINUTES));
}

#[test]
fn jitter_never_reaches_the_next_slot() {
    // Next slot 1 s away, jitter 1 min: the delay stays under 1 s, for every job and slot tried.
    let base = at("2026-06-10T08:00:00Z");
    for i in 0..100 {
        let slot = base + chrono::Duration::seconds(i);
        let next = slot + chrono::Duration::seconds(1);
        for job in ["a", "heartbeat", "cache-warm"] {
            let delay = jitter_delay(job, slot, Duration::from_secs(60), Some(next));
            assert!(delay < Duration::from_secs(1), "{job} at {slot}: {delay:?}");
        }
    }
    // Without a next slot the jitter alone bounds it.
    let delay = jitter_delay("a", base, TWO_MINUTES, None);
    assert!(delay < TWO_MINUTES);
}

#[test]
fn jitter_degenerate_windows_give_no_delay() {
    let slot = at("2026-06-10T08:15:00Z");
    let next = Some(at("2026-06-10T08:30:00Z"));
    assert_eq!(
        jitter_delay("cache-warm", slot, Duration::ZERO, next),
        Duration::ZERO
    );
    assert_eq!(
        jitter_delay("cache-warm", slot, Duration::ZERO, None),
        Duration::ZERO
    );
    // A 1 ms window allows only 0 ms.
    assert_eq!(
        jitter_delay("cache-warm", slot, Duration::from_millis(1), next),
        Duration::ZERO
    );
    // A next slot at, or (nonsensically) before, this one leaves no room.
    assert_eq!(
        jitter_delay("cache-warm", slot, TWO_MINUTES, Some(slot)),
        Duration::ZERO
    );
    assert_eq!(
        jitter_delay(
            "cache-warm",
            slot,
            TWO_MINUTES,
            Some(at("2026-06-10T08:00:00Z"))
        ),
        Duration::ZERO
    );
}

// ---------------------------------------------------------------------------------------------------
// Remembered successors
// ---------------------------------------------------------------------------------------------------

/// Schedules with the same pattern and zone share remembered next slots. Walking the same stretch
/// twice (the second walk answered from memory) and once by croner directly, across both DST changes
/// of 2026 in New York, must give the same slots; a schedule in another zone must not see them.
#[test]
fn remembered_successors_agree_with_croner() {
    let pattern = "30 */20 1,2,3 * * *";
    let first = cron(pattern, "America/New_York");
    let second = cron(pattern, "America/New_York");
    let elsewhere = cron(pattern, "Europe/Berlin");
    let direct = match <croner::Cron as std::str::FromStr>::from_str(pattern) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let tz: chrono_tz::Tz = chrono_tz::America::New_York;
    let walk = |schedule: &Schedule| {
        let mut slots = Vec::new();
        let mut cursor = at("2026-03-01T00:00:00Z");
        while cursor < at("2026-11-15T00:00:00Z") {
            match schedule.next_after(cursor) {
                Some(next) => {
                    slots.push(next);
                    cursor = next;
                }
                None => panic!("no slot after {cursor}"),
            }
        }
        slots
    };
    let mut expected = Vec::new();
    let mut cursor = at("2026-03-01T00:00:00Z");
    while cursor < at("2026-11-15T00:00:00Z") {
        match direct.find_next_occurrence(&cursor.with_timezone(&tz), false) {
            Ok(next) => {
                cursor = next.with_timezone(&Utc);
                expected.push(cursor);
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(expected.len() > 2000, "a long walk: {}", expected.len());
    assert_eq!(walk(&first), expected);
    assert_eq!(walk(&second), expected, "answered from memory");
    assert_ne!(walk(&elsewhere), expected, "another zone has its own slots");
}
