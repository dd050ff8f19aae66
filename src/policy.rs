//! What happens to a job's due slots: fire, queue, replace, skip, coalesce or miss. Pure: a function of
//! the job's spec, its state, the runs in flight and `now`. It never reads the clock, the disk or the
//! store; the scheduler gathers the inputs and carries the decisions out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::duration::Limit;
use crate::run::Trigger;
use crate::schedule::{Schedule, jitter_delay};
use crate::spec::model::{Overlap, PolicySpec};

/// At most this many slots are looked at per job and tick; the rest wait for the next tick. Keeps one
/// job with a sub-second schedule and a long outage from stalling the others.
pub const MAX_SLOTS_PER_TICK: usize = 10_000;

/// The least lateness a slot is allowed, whatever `misfire_grace` says: the scheduler's own latency
/// in claiming a slot when it is due (a few milliseconds, hundreds under load). A smaller grace, `0s`
/// say, would otherwise record on-time slots as missed: a job with a run in flight is claimed when
/// due, not ahead, and so always a little after its due time.
pub const MIN_MISFIRE_GRACE: Duration = Duration::from_secs(1);

/// Whether a slot due at `due` is too late to start at `now` under `grace` (never less than
/// [`MIN_MISFIRE_GRACE`]). Also what a node's worker asks of a run it takes from a shared store's
/// queue long after its claim (every node was down meanwhile): such a slot is missed, not run late.
pub fn past_misfire_grace(grace: &Limit, due: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    match grace {
        Limit::Unlimited => false,
        Limit::Within(grace) => {
            let grace = grace.as_duration().max(MIN_MISFIRE_GRACE);
            now - due > chrono::TimeDelta::from_std(grace).unwrap_or(chrono::TimeDelta::MAX)
        }
    }
}

/// The operator's state of a job, as far as the scheduler cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Active,
    Paused,
}

/// Runs of the job that hold or wait for an instance, manual ones included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InFlight {
    pub running: u32,
    pub queued: u32,
}

/// Everything the decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub job_id: &'a str,
    pub schedule: &'a Schedule,
    pub policy: &'a PolicySpec,
    pub jitter: Option<Duration>,
    pub operator: Operator,
    /// The first slot not yet consumed.
    pub next_slot: DateTime<Utc>,
    pub in_flight: InFlight,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// `max_instances` runs were in flight and the overlap policy is skip (or the queue was full).
    Overlap,
    Paused,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Overlap => "overlap",
            Self::Paused => "paused",
        }
    }
}

/// A run to start, for `slot` (the latest of `count` slots it stands for, the first being `first_slot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Fire {
    #[serde(serialize_with = "crate::clock::as_rfc3339::instant")]
    pub slot: DateTime<Utc>,
    #[serde(serialize_with = "crate::clock::as_rfc3339::instant")]
    pub due_at: DateTime<Utc>,
    pub trigger: Trigger,
    #[serde(serialize_with = "crate::clock::as_rfc3339::instant")]
    pub first_slot: DateTime<Utc>,
    pub count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Start a run now.
    Fire(Fire),
    /// Claim the run as queued: it starts when an instance frees up.
    Queue(Fire),
    /// Stop the oldest run in flight, then start this one.
    Replace(Fire),
    /// Record these slots as skipped.
    Skip {
        #[serde(serialize_with = "crate::clock::as_rfc3339::instant")]
        first_slot: DateTime<Utc>,
        #[serde(serialize_with = "crate::clock::as_rfc3339::instant")]
        last_slot: DateTime<Utc>,
        count: u64,
        reason: SkipReason,
    },
    /// Record these slots as missed: claimed later than the misfire grace.
    Miss {
        #[serde(serialize_with = "crate::clock::as_rfc3339::instant")]
        first_slot: DateTime<Utc>,
        #[serde(serialize_with = "crate::clock::as_rfc3339::instant")]
        last_slot: DateTime<Utc>,
        count: u64,
    },
}

/// The decisions for the slots due at `now`, and the job's next pending slot afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub decisions: Vec<Decision>,
    /// `None` when the schedule has no further slot.
    pub next_slot: Option<DateTime<Utc>>,
}

/// When the run of `slot` is due: the slot plus its deterministic jitter, which never reaches the next
/// slot.
pub fn due_at(
    job_id: &str,
    schedule: &Schedule,
    slot: DateTime<Utc>,
    jitter: Option<Duration>,
) -> DateTime<Utc> {
    match jitter {
        Some(jitter) if !jitter.is_zero() => {
            let delay = jitter_delay(job_id, slot, jitter, schedule.next_after(slot));
            slot + chrono::Duration::milliseconds(i64::try_from(delay.as_millis()).unwrap_or(0))
        }
        _ => slot,
    }
}

/// Whether a slot due at `due` is claimed at `now`, and if so as of which instant it is judged.
///
/// A slot may be claimed up to `ahead` before it is due, so that the claim and the run's files are
/// ready when it comes; it is then judged as of `due` and its command waits for it. A job with a run
/// in flight is not claimed ahead: whether that run has ended by the slot decides the overlap policy,
/// so it is claimed when due. A slot already due is judged as of `now`.
pub fn claim_at(
    due: DateTime<Utc>,
    now: DateTime<Utc>,
    ahead: chrono::TimeDelta,
    in_flight: bool,
) -> Option<DateTime<Utc>> {
    if due <= now {
        Some(now)
    } else if due <= now + ahead && !in_flight {
        Some(due)
    } else {
        None
    }
}

/// Decides what happens to the job's slots that are due at `now` (those whose jittered due time has
/// come). Slots are judged at claim time: a slot whose due time is more than `misfire_grace` before
/// `now` is missed. With `coalesce`, all due slots stand behind one run for the latest (judged by its
/// own lateness); without, each on-time slot gets its own run.
pub fn decide(input: &Input<'_>, now: DateTime<Utc>) -> Plan {
    let (due, cursor) = due_slots(input, now);
    let (Some(&(first_slot, _)), Some(&(last_slot, _))) = (due.first(), due.last()) else {
        return Plan {
            decisions: Vec::new(),
            next_slot: Some(input.next_slot),
        };
    };
    let mut decisions = Vec::new();
    if input.operator == Operator::Paused {
        decisions.push(Decision::Skip {
            first_slot,
            last_slot,
            count: due.len() as u64,
            reason: SkipReason::Paused,
        });
    } else {
        let fires = fires_of(input, &due, cursor, now, &mut decisions);
        admit(input, fires, &mut decisions);
    }
    Plan {
        decisions,
        next_slot: cursor,
    }
}

/// A slot and the instant it is due, its jitter added.
type DueSlot = (DateTime<Utc>, DateTime<Utc>);

/// The slots due by `now`, at most [`MAX_SLOTS_PER_TICK`], and the slot after them.
fn due_slots(input: &Input<'_>, now: DateTime<Utc>) -> (Vec<DueSlot>, Option<DateTime<Utc>>) {
    let mut due = Vec::new();
    let mut cursor = Some(input.next_slot);
    while let Some(slot) = cursor {
        let at = due_at(input.job_id, input.schedule, slot, input.jitter);
        if at > now || due.len() == MAX_SLOTS_PER_TICK {
            break;
        }
        due.push((slot, at));
        cursor = input.schedule.next_after(slot);
    }
    (due, cursor)
}

/// Misfire grace and coalescing: which of the `due` slots would run, with the missed ones recorded
/// into `decisions`.
fn fires_of(
    input: &Input<'_>,
    due: &[DueSlot],
    cursor: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    decisions: &mut Vec<Decision>,
) -> Vec<Fire> {
    let (Some(&(first_slot, _)), Some(&(last_slot, last_due))) = (due.first(), due.last()) else {
        return Vec::new();
    };
    let count = due.len() as u64;
    let late = |due: DateTime<Utc>| past_misfire_grace(&input.policy.misfire_grace, due, now);
    let mut fires = Vec::new();
    if input.policy.coalesce {
        if late(last_due) {
            decisions.push(Decision::Miss {
                first_slot,
                last_slot,
                count,
            });
        } else {
            let trigger = if count > 1 {
                Trigger::Catchup
            } else {
                Trigger::Schedule
            };
            fires.push(Fire {
                slot: last_slot,
                due_at: last_due,
                trigger,
                first_slot,
                count,
            });
        }
        return fires;
    }
    let missed: Vec<_> = due.iter().filter(|(_, at)| late(*at)).collect();
    if let (Some(first), Some(last)) = (missed.first(), missed.last()) {
        decisions.push(Decision::Miss {
            first_slot: first.0,
            last_slot: last.0,
            count: missed.len() as u64,
        });
    }
    // The latest slot due is a plain scheduled run, unless the tick was cut short and later ones wait.
    let capped =
        cursor.is_some_and(|next| due_at(input.job_id, input.schedule, next, input.jitter) <= now);
    for &(slot, at) in due.iter().filter(|(_, at)| !late(*at)) {
        let trigger = if slot == last_slot && !capped {
            Trigger::Schedule
        } else {
            Trigger::Catchup
        };
        fires.push(Fire {
            slot,
            due_at: at,
            trigger,
            first_slot: slot,
            count: 1,
        });
    }
    fires
}

/// Overlap: each fire starts, queues, replaces the oldest run or is skipped, given the runs in flight.
fn admit(input: &Input<'_>, fires: Vec<Fire>, decisions: &mut Vec<Decision>) {
    let max = input.policy.max_instances;
    let mut running = input.in_flight.running;
    let mut queued = input.in_flight.queued;
    for fire in fires {
        if running < max && queued == 0 {
            decisions.push(Decision::Fire(fire));
            running += 1;
            continue;
        }
        match input.policy.overlap {
            Overlap::Queue if queued == 0 => {
                decisions.push(Decision::Queue(fire));
                queued += 1;
            }
            // Replace only when the instances are all taken: a free one (with a run queued for it) is no reason to stop anything.
            Overlap::Replace if running >= max => decisions.push(Decision::Replace(fire)),
            _ => match decisions.last_mut() {
                // Consecutive skipped slots make one record, not one each.
                Some(Decision::Skip {
                    last_slot,
                    count,
                    reason: SkipReason::Overlap,
                    ..
                }) => {
                    *last_slot = fire.slot;
                    *count += fire.count;
                }
                _ => decisions.push(Decision::Skip {
                    first_slot: fire.first_slot,
                    last_slot: fire.slot,
                    count: fire.count,
                    reason: SkipReason::Overlap,
                }),
            },
        }
    }
}

/// How a resumed job makes up for the slots it skipped while paused. Shown to people and in `--json`
/// as `none`, `latest`, `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Catchup {
    /// Nothing: the skipped slots stay skipped.
    None,
    /// One run standing for all of them, for the latest.
    Latest,
    /// One run per skipped slot, oldest first, one after another.
    All,
}

impl std::fmt::Display for Catchup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Latest => "latest",
            Self::All => "all",
        })
    }
}

/// The catch-up runs owed on resume, given the slots skipped while paused (oldest first).
pub fn catch_up(mode: Catchup, paused_slots: &[DateTime<Utc>], now: DateTime<Utc>) -> Vec<Fire> {
    let (Some(&first), Some(&last)) = (paused_slots.first(), paused_slots.last()) else {
        return Vec::new();
    };
    match mode {
        Catchup::None => Vec::new(),
        Catchup::Latest => vec![Fire {
            slot: last,
            due_at: now,
            trigger: Trigger::Catchup,
            first_slot: first,
            count: paused_slots.len() as u64,
        }],
        Catchup::All => paused_slots
            .iter()
            .map(|&slot| Fire {
                slot,
                due_at: now,
                trigger: Trigger::Catchup,
                first_slot: slot,
                count: 1,
            })
            .collect(),
    }
}

/// The pending slot after a spec was (re)loaded: an unchanged schedule keeps the slot it had. A new or
/// changed one starts after `last_consumed`, the last slot the job's records account for, when there is
/// one: the new schedule's slots since then are judged like any others that came due while the
/// scheduler was down (run, coalesced, missed), so an edit made during downtime leaves no slot without a
/// record. A job with nothing consumed starts from the first slot after `now`.
pub fn pending_slot(
    kept: Option<DateTime<Utc>>,
    schedule_changed: bool,
    last_consumed: Option<DateTime<Utc>>,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match (kept, last_consumed) {
        (Some(slot), _) if !schedule_changed => Some(slot),
        (_, Some(consumed)) if consumed < now => schedule.next_after(consumed),
        _ => schedule.next_after(now),
    }
}

/// One row of a job's history as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionRow {
    pub seq: i64,
    /// When it finished, or when it was claimed (epoch milliseconds).
    pub at: i64,
    /// Queued or running (or its lock is held): never removed.
    pub active: bool,
    /// A run that ran has a directory; a record of slots that did not run (skipped, missed) has none.
    pub ran: bool,
}

/// Which of a job's rows retention removes, oldest first.
///
/// `keep_last` counts runs that ran, never records of slots that did not: a record must not push a
/// real run's artifacts out. It keeps the newest `keep_last` runs, every record newer than the oldest
/// of those (the story of the kept runs' time), and the newest `keep_last` records in any case (so a
/// job that seldom runs keeps some of its recent history without growing for ever). `keep_days` keeps
/// runs and records alike that are younger. A limit left out keeps nothing by itself; both left out keep
/// everything. Rows in flight are never chosen.
pub fn prune_plan(
    rows: &[RetentionRow],
    keep_last: Option<u32>,
    keep_days: Option<u32>,
    now: DateTime<Utc>,
) -> Vec<i64> {
    if keep_last.is_none() && keep_days.is_none() {
        return Vec::new();
    }
    let mut newest_first: Vec<&RetentionRow> = rows.iter().collect();
    newest_first.sort_by_key(|row| std::cmp::Reverse(row.seq));
    let cutoff = keep_days.map(|days| now.timestamp_millis() - i64::from(days) * 86_400_000);
    let keep_last = keep_last.map(|n| n as usize);
    let oldest_kept_run = keep_last.and_then(|n| {
        newest_first
            .iter()
            .filter(|row| row.ran)
            .take(n)
            .last()
            .map(|row| row.seq)
    });
    let (mut runs_seen, mut records_seen) = (0, 0);
    let mut doomed = Vec::new();
    for row in newest_first {
        let rank = if row.ran {
            &mut runs_seen
        } else {
            &mut records_seen
        };
        let kept_by_rank = keep_last.is_some_and(|n| *rank < n);
        *rank += 1;
        let kept_by_count =
            kept_by_rank || (!row.ran && oldest_kept_run.is_some_and(|oldest| row.seq > oldest));
        let kept_by_age = cutoff.is_some_and(|cutoff| row.at >= cutoff);
        if !row.active && !kept_by_count && !kept_by_age {
            doomed.push(row.seq);
        }
    }
    doomed.sort_unstable();
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, ran: bool) -> RetentionRow {
        RetentionRow {
            seq,
            at: seq,
            active: false,
            ran,
        }
    }

    #[test]
    fn keep_last_counts_runs_that_ran_and_keeps_the_records_since_the_oldest_of_them() {
        // 1 ran, 2-3 skipped, 4 ran, 5 skipped, 6 ran, 7 skipped.
        let rows: Vec<_> = [true, false, false, true, false, true, false]
            .iter()
            .zip(1..)
            .map(|(ran, seq)| row(seq, *ran))
            .collect();
        let now = DateTime::<Utc>::UNIX_EPOCH;
        // Runs 6 and 4 stay with the records after run 4 (5, 7); records 2 and 3 are older than run 4
        // and not among the newest two records, so they go with run 1.
        assert_eq!(prune_plan(&rows, Some(2), None, now), [1, 2, 3]);
        // One run kept: 6, the record after it, and the newest record in any case.
        assert_eq!(prune_plan(&rows, Some(1), None, now), [1, 2, 3, 4, 5]);
        // A job that never ran keeps its newest records.
        let records: Vec<_> = (1..=5).map(|seq| row(seq, false)).collect();
        assert_eq!(prune_plan(&records, Some(2), None, now), [1, 2, 3]);
    }
}
