//! The jobs on a schedule as the loop keeps them, and their deadline index: an ordered set of (wake
//! time, job) kept in step with the table by every change, so the next wake-up is the set's first entry
//! and a tick visits only the jobs whose time has come. Must not do I/O, nor decide what a due slot
//! becomes (the planner and `policy` do).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::plan::{CLAIM_AHEAD, Cursor, TickPlan};
use crate::catalog::{Catalog, Job, JobState};
use crate::policy::{self, Catchup, Operator};
use crate::schedule::Schedule;
use crate::spec::JobSpec;

/// A scheduled job as the loop keeps it. Read-only outside this module: a change goes through
/// [`Jobs`], which moves the job's place in the deadline index with it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub spec: JobSpec,
    pub schedule: Schedule,
    pub spec_hash: String,
    pub operator: Operator,
    /// The first slot not yet consumed; `None` when the schedule has no further slot.
    pub next_slot: Option<DateTime<Utc>>,
    /// A catch-up asked for on resume, not yet claimed.
    pub catchup: Option<Catchup>,
    /// When the job was paused: the skips since then are
    /// what a catch-up makes up for.
    pub paused_at: Option<DateTime<Utc>>,
    /// The job had a run in flight when its next slot could have been claimed ahead: it is claimed
    /// when due instead, so the overlap policy sees whether that run has ended by then.
    pub claim_when_due: bool,
}

impl Entry {
    /// The job as the loop keeps it, when it is active or paused and on a schedule; its pending slot
    /// is left for the caller to set.
    pub fn of(job: &Job) -> Option<Self> {
        let operator = match job.state() {
            JobState::Active => Operator::Active,
            JobState::Paused => Operator::Paused,
            JobState::Disabled | JobState::Removed | JobState::Invalid => return None,
        };
        let (Some(spec), Some(schedule)) = (job.spec.clone(), job.schedule.clone()) else {
            return None;
        };
        let catchup = job.row.catchup.filter(|mode| *mode != Catchup::None);
        Some(Self {
            spec_hash: job.spec_hash().to_owned(),
            spec,
            schedule,
            operator,
            next_slot: None,
            catchup,
            paused_at: job.row.paused_at,
            claim_when_due: false,
        })
    }

    pub fn jitter(&self) -> Option<Duration> {
        self.spec
            .schedule
            .as_ref()
            .and_then(|s| s.jitter)
            .map(|j| j.as_duration())
    }

    /// When the run of the pending slot is due (the slot plus its jitter).
    pub fn due(&self, id: &str) -> Option<DateTime<Utc>> {
        let slot = self.next_slot?;
        Some(policy::due_at(id, &self.schedule, slot, self.jitter()))
    }

    /// When the loop must look at the job next.
    fn wake_at(&self, id: &str) -> Option<DateTime<Utc>> {
        wake_at(
            self,
            id,
            self.next_slot,
            self.claim_when_due,
            self.catchup.is_some(),
        )
    }
}

/// When the loop must look at a job in the given state: at once for a catch-up owed, else when its
/// pending slot may be claimed (ahead of its due time, or at it for a job held until due).
pub(super) fn wake_at(
    entry: &Entry,
    id: &str,
    next_slot: Option<DateTime<Utc>>,
    claim_when_due: bool,
    catchup_owed: bool,
) -> Option<DateTime<Utc>> {
    if catchup_owed {
        return Some(DateTime::<Utc>::MIN_UTC);
    }
    let due = policy::due_at(id, &entry.schedule, next_slot?, entry.jitter());
    if claim_when_due {
        Some(due)
    } else {
        Some(due.checked_sub_signed(ahead()).unwrap_or(due))
    }
}

/// How long before its due time a slot is claimed.
pub fn ahead() -> TimeDelta {
    TimeDelta::from_std(CLAIM_AHEAD).unwrap_or_default()
}

/// The scheduled jobs by id, with the deadline index.
#[derive(Debug, Default)]
pub struct Jobs {
    entries: HashMap<String, Entry>,
    /// `(wake time, job id)` of every job that has one: the job's next slot's claim time, or the
    /// earliest instant for a catch-up owed. Changed only together with `entries`.
    deadlines: BTreeSet<(DateTime<Utc>, String)>,
}

impl Jobs {
    /// The table of the catalog's scheduled jobs. `kept` gives each job's pending slot as recorded; a
    /// job without one starts after the last slot its records account for. Also returns the jobs whose
    /// pending slot was computed here, for the store to record.
    pub fn from_catalog(
        catalog: &Catalog,
        now: DateTime<Utc>,
        kept: impl Fn(&Job) -> Option<DateTime<Utc>>,
    ) -> (Self, Vec<Cursor>) {
        let mut jobs = Self::default();
        let mut computed = Vec::new();
        for job in &catalog.jobs {
            let Some(mut entry) = Entry::of(job) else {
                continue;
            };
            entry.next_slot = kept(job).or_else(|| {
                let consumed = job.row.last_slot;
                let slot = policy::pending_slot(None, true, consumed, &entry.schedule, now);
                computed.push(Cursor {
                    job_id: job.id().to_owned(),
                    next_slot: slot,
                });
                slot
            });
            jobs.insert(job.id().to_owned(), entry);
        }
        (jobs, computed)
    }

    pub fn insert(&mut self, id: String, entry: Entry) {
        if let Some(old) = self.entries.get(&id)
            && let Some(wake) = old.wake_at(&id)
        {
            self.deadlines.remove(&(wake, id.clone()));
        }
        if let Some(wake) = entry.wake_at(&id) {
            self.deadlines.insert((wake, id.clone()));
        }
        self.entries.insert(id, entry);
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn ids(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }

    /// The jobs whose wake time is at or before `at`, earliest first.
    pub fn waking_by(&self, at: DateTime<Utc>) -> impl Iterator<Item = (&str, &Entry)> {
        self.deadlines
            .iter()
            .take_while(move |(wake, _)| *wake <= at)
            .filter_map(|(_, id)| self.entries.get(id).map(|entry| (id.as_str(), entry)))
    }

    /// The earliest wake time after `at`.
    pub fn first_wake_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.deadlines
            .iter()
            .map(|(wake, _)| *wake)
            .find(|wake| *wake > at)
    }

    /// The jobs with a catch-up owed.
    pub fn catching_up(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.waking_by(DateTime::<Utc>::MIN_UTC)
    }

    /// When the loop must look at the jobs next: the index's first entry.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.deadlines.first().map(|(wake, _)| *wake)
    }

    /// The jobs the plan holds until their slot is due (whether committed or not).
    pub fn hold(&mut self, plan: &TickPlan) {
        for id in &plan.hold {
            self.update(id, |entry| entry.claim_when_due = true);
        }
    }

    /// Moves the cursors and clears the catch-ups of a committed plan.
    pub fn advance(&mut self, plan: &TickPlan) {
        for cursor in &plan.cursors {
            self.update(&cursor.job_id, |entry| {
                entry.next_slot = cursor.next_slot;
                entry.claim_when_due = false;
            });
        }
        for id in &plan.catchups_done {
            self.update(id, |entry| {
                entry.catchup = None;
                entry.paused_at = None;
            });
        }
    }

    fn update(&mut self, id: &str, change: impl FnOnce(&mut Entry)) {
        let Some(entry) = self.entries.get_mut(id) else {
            return;
        };
        if let Some(wake) = entry.wake_at(id) {
            self.deadlines.remove(&(wake, id.to_owned()));
        }
        change(entry);
        if let Some(wake) = entry.wake_at(id) {
            self.deadlines.insert((wake, id.to_owned()));
        }
    }
}
