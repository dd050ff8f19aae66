//! When a job fires: cron patterns read in an IANA time zone, or fixed intervals counted from an anchor.
//! Pure: every answer is a function of the schedule and the instant passed in. No clock, no I/O.
//!
//! DST follows croner, which implements the Open Cron Pattern Specification (OCPS):
//! - a fixed-time pattern (seconds, minutes and hours each one value, e.g. `0 30 2 * * *`) fires once a
//!   day: a wall time that falls in a spring-forward gap fires at the first instant after the gap, and a
//!   wall time that occurs twice in a fall-back fold fires at its first pass only;
//! - any other pattern (a list, range or step in those fields, e.g. `0 0 2,14 * * *` or `*/30 * * * *`)
//!   follows real time: times inside a gap do not exist and are skipped, and times in a fold fire in
//!   both passes.
//!
//! `every` schedules count real time from their anchor and know nothing of DST.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, LocalResult, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::digest::fnv1a;
use crate::duration::SpecDuration;
use crate::text::lowercase_first;

/// How far ahead a pattern must have an occurrence to be accepted.
pub const MAX_FIRST_SLOT_DAYS: i64 = 5 * 366;

#[derive(Debug, Clone)]
pub enum Schedule {
    Cron {
        pattern: String,
        cron: Arc<Cron>,
        tz: Tz,
        successors: Arc<Successors>,
    },
    Every {
        every: SpecDuration,
        anchor: DateTime<Utc>,
        tz: Tz,
    },
}

/// Why a slot's wall time is unusual in its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DstNote {
    /// The pattern's wall time did not exist that day; the slot is the first instant after the gap.
    Gap,
    /// The slot's wall time occurs twice that day (clocks went back).
    Fold,
}

impl DstNote {
    pub fn code(self) -> &'static str {
        match self {
            Self::Gap => "dst_gap",
            Self::Fold => "dst_fold",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub at: DateTime<Utc>,
    pub note: Option<DstNote>,
}

/// Parses a cron pattern the way specs accept it: 5 fields, 6 fields (seconds first) or an alias.
///
/// Parsed patterns are shared: croner keeps a bitfield per possible year in every pattern (about 5 KB),
/// and many jobs use the same few patterns, so 10,000 jobs cost a few parsed patterns, not 50 MB.
pub fn parse_cron(pattern: &str) -> Result<Arc<Cron>, String> {
    static PARSED: OnceLock<Mutex<HashMap<String, Arc<Cron>>>> = OnceLock::new();
    let parsed = PARSED.get_or_init(Mutex::default);
    if let Some(cron) = parsed.lock().ok().and_then(|map| map.get(pattern).cloned()) {
        return Ok(cron);
    }
    let cron = Arc::new(Cron::from_str(pattern).map_err(|e| {
        let text = e.to_string();
        // croner says "Invalid pattern: Pattern must …."; keep the part that says what is wrong.
        let detail = text
            .split_once(": ")
            .map_or(text.as_str(), |(_, rest)| rest);
        lowercase_first(detail.trim_end_matches('.'))
    })?);
    if let Ok(mut map) = parsed.lock() {
        map.insert(pattern.to_owned(), Arc::clone(&cron));
    }
    Ok(cron)
}

/// Next slots already computed for one pattern in one zone, shared by every job that has both.
///
/// A cron pattern's next occurrence costs about a microsecond. Jobs sharing a pattern and zone walk
/// the same slots: every tick asks for the same successor once per job, and a scheduler that was down
/// for a day walks 1,440 slots per every-minute job. Remembering the answers makes the first job pay
/// and the others look up (10,000 such jobs after a day's downtime: 14 million computations become
/// 1,440). Bounded: the map is emptied when it grows past `MAX_REMEMBERED`.
#[derive(Debug, Default)]
pub struct Successors {
    next: Mutex<HashMap<i64, Option<i64>>>,
}

const MAX_REMEMBERED: usize = 100_000;

impl Successors {
    fn shared(pattern: &str, tz: Tz) -> Arc<Self> {
        type ByPatternAndZone = Mutex<HashMap<(String, Tz), Arc<Successors>>>;
        static SHARED: OnceLock<ByPatternAndZone> = OnceLock::new();
        let shared = SHARED.get_or_init(Mutex::default);
        match shared.lock() {
            Ok(mut map) => Arc::clone(map.entry((pattern.to_owned(), tz)).or_default()),
            Err(_) => Arc::default(),
        }
    }

    fn get(&self, after: i64) -> Option<Option<i64>> {
        self.next.lock().ok()?.get(&after).copied()
    }

    fn remember(&self, after: i64, next: Option<i64>) {
        if let Ok(mut map) = self.next.lock() {
            if map.len() >= MAX_REMEMBERED {
                map.clear();
            }
            map.insert(after, next);
        }
    }
}

/// Resolves an IANA zone name, case-sensitively, as the tz database spells it.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    Tz::from_str(name).map_err(|_| format!("unknown time zone \"{name}\""))
}

impl Schedule {
    /// A cron schedule of `pattern`, already parsed as `cron`, read in `tz`.
    pub fn cron(pattern: &str, cron: Arc<Cron>, tz: Tz) -> Self {
        Self::Cron {
            pattern: pattern.to_owned(),
            cron,
            tz,
            successors: Successors::shared(pattern, tz),
        }
    }

    /// An interval schedule counted from `anchor`; refuses what would make slots meaningless.
    pub fn every(every: SpecDuration, anchor: DateTime<Utc>, tz: Tz) -> Result<Self, String> {
        if every.is_zero() {
            return Err("every must be longer than zero".into());
        }
        if !anchor.timestamp_subsec_nanos().is_multiple_of(1_000_000) {
            return Err("the anchor must be in whole milliseconds".into());
        }
        Ok(Self::Every { every, anchor, tz })
    }

    pub fn timezone(&self) -> Tz {
        match self {
            Self::Cron { tz, .. } | Self::Every { tz, .. } => *tz,
        }
    }

    /// The first slot strictly after `after`, or `None` when there is none (an impossible date, or
    /// past the end of representable time).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Cron {
                cron,
                tz,
                successors,
                ..
            } => {
                let key = after.timestamp_nanos_opt();
                if let Some(known) = key.and_then(|key| successors.get(key)) {
                    return known.map(DateTime::from_timestamp_nanos);
                }
                let next = cron
                    .find_next_occurrence(&after.with_timezone(tz), false)
                    .ok()
                    .map(|t| t.with_timezone(&Utc));
                // Instants past 2262 have no nanosecond count: those are computed every time.
                match (key, next.map(|t| t.timestamp_nanos_opt())) {
                    (Some(key), None) => successors.remember(key, None),
                    (Some(key), Some(Some(nanos))) => successors.remember(key, Some(nanos)),
                    _ => {}
                }
                next
            }
            Self::Every { every, anchor, .. } => {
                let every = every.as_millis();
                let anchor_ms = anchor.timestamp_millis();
                let after_ms = after.timestamp_millis();
                let slot_ms = if after_ms < anchor_ms {
                    anchor_ms
                } else {
                    let k = (after_ms - anchor_ms) / every + 1;
                    anchor_ms.checked_add(k.checked_mul(every)?)?
                };
                DateTime::from_timestamp_millis(slot_ms)
            }
        }
    }

    /// The next `count` slots after `after`, each with its DST note.
    pub fn slots_after(&self, after: DateTime<Utc>, count: usize) -> Vec<Slot> {
        let mut slots = Vec::with_capacity(count);
        let mut cursor = after;
        while slots.len() < count {
            let Some(at) = self.next_after(cursor) else {
                break;
            };
            slots.push(Slot {
                at,
                note: self.dst_note(at),
            });
            cursor = at;
        }
        slots
    }

    /// Whether `slot` was moved by a DST gap or lies in a repeated (folded) hour of its zone.
    pub fn dst_note(&self, slot: DateTime<Utc>) -> Option<DstNote> {
        let tz = self.timezone();
        let local = slot.with_timezone(&tz);
        if let Self::Cron { cron, .. } = self
            && !cron.is_time_matching(&local).unwrap_or(true)
        {
            return Some(DstNote::Gap);
        }
        match tz.from_local_datetime(&local.naive_local()) {
            LocalResult::Ambiguous(..) => Some(DstNote::Fold),
            _ => None,
        }
    }

    /// The schedule in words, for `jobsctl show`.
    pub fn describe(&self) -> String {
        match self {
            Self::Cron { cron, .. } => lowercase_first(&cron.describe()),
            Self::Every { every, anchor, .. } => {
                if *anchor == DateTime::UNIX_EPOCH {
                    format!("every {every}")
                } else {
                    format!("every {every}, counted from {}", anchor.to_rfc3339())
                }
            }
        }
    }

    /// The schedule as written, e.g. `0 30 2 * * *` or `every 15m`.
    pub fn expression(&self) -> String {
        match self {
            Self::Cron { pattern, .. } => pattern.clone(),
            Self::Every { every, .. } => format!("every {every}"),
        }
    }
}

/// The deterministic delay of a run behind its nominal `slot`: a hash of (job, slot) mapped into
/// `[0, jitter)`, narrowed so that the run still starts before `next_slot`.
pub fn jitter_delay(
    job_id: &str,
    slot: DateTime<Utc>,
    jitter: Duration,
    next_slot: Option<DateTime<Utc>>,
) -> Duration {
    let mut window = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
    if let Some(next) = next_slot {
        let gap = u64::try_from((next - slot).num_milliseconds()).unwrap_or(0);
        window = window.min(gap);
    }
    if window == 0 {
        return Duration::ZERO;
    }
    let seed = fnv1a(&[
        job_id.as_bytes(),
        &[0],
        &slot.timestamp_millis().to_le_bytes(),
    ]);
    Duration::from_millis(seed % window)
}

#[cfg(test)]
mod tests {
    /// `spec` uses `schedule` to check patterns and zones; were `schedule` to use `spec` too, the two
    /// could no longer be understood (or split into crates) one without the other.
    #[test]
    fn the_schedule_does_not_depend_on_specs() {
        let source = include_str!("schedule.rs");
        let spec_path = concat!("crate::", "spec");
        assert!(
            !source.contains(spec_path),
            "schedule.rs names {spec_path}; move what it needs out of spec"
        );
    }
}
