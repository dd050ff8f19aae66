//! `jobsctl status`: whether a scheduler is running, what is in flight, what comes next, what is broken.
//! Exits 0 when a live scheduler holds the lock, 5 when none does or when its heartbeat is over 60 s
//! old (`scheduler_unresponsive`). With a store several schedulers share, it shows the leader and
//! every node, and exits 0 while some node holds a live lease, 5 (`no_leader`) when none does.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::Ctx;
use super::history::RunEntry;
use super::output::{Output, Report, Style, View, escape_controls, local, relative, ser};
use crate::catalog::{Catalog, JobState};
use crate::error::{Error, Result};
use crate::run::run_name;
use crate::scheduler::lock::OwnerLock;
use crate::spec::Problem;
use crate::store::{NotificationRecord, OutboxCounts, Owner, RunRow};

/// A heartbeat older than this means the scheduler is stopped or hung. It beats every 2 s; a beat can
/// wait up to the store's 30 s busy timeout behind another process's write lock, so only an age past
/// twice that is not explained by a held lock alone.
const UNRESPONSIVE_AFTER_S: i64 = 60;

/// The next slots shown, the soonest first, one per job.
const NEXT_SLOTS_SHOWN: usize = 10;

pub fn run(ctx: &Ctx) -> Result<Report> {
    let now = ctx.clock.now();
    let catalog = ctx.catalog_with_runs(None)?;
    let holder = OwnerLock::holder(&ctx.home);
    let owner = catalog.store.owner()?;
    let in_flight = catalog.store.active_runs()?;
    let failures = catalog.store.recent_failures(5)?;
    let scheduler = SchedulerView::new(holder.as_deref(), owner.as_ref(), now);
    let mut view = StatusView::new(&catalog, scheduler, &in_flight, &failures, now);
    let location = crate::store::locate(&ctx.home)?;
    view.store = location.shown(&ctx.home);
    if matches!(location, crate::store::Location::Postgres { .. }) {
        view.cluster = Some(ClusterView::read(
            &*catalog.store,
            &ctx.home,
            &catalog.jobs,
        )?);
    }
    view.notifications = NotificationsView {
        counts: catalog.store.outbox_counts()?,
        recent_given_up: catalog.store.given_up(GIVEN_UP_SHOWN)?,
    };
    let error = match (&holder, &view.scheduler.detail) {
        // A shared store runs as long as some node leads it, wherever that is.
        _ if view.cluster.is_some() => view.cluster.as_ref().and_then(ClusterView::no_leader),
        (None, _) => Some(Error::SchedulerNotRunning),
        (Some(holder), Some(detail)) if !detail.responsive => Some(Error::SchedulerUnresponsive {
            owner: holder.clone(),
            age_s: detail.heartbeat_age_whole_s(now),
        }),
        (Some(_), _) => None,
    };
    Ok(Report::view(&view, &ctx.out)?.with_error(error))
}

#[derive(Serialize)]
struct StatusView<'a> {
    scheduler: SchedulerView<'a>,
    /// Where the store is: the home's file, or a PostgreSQL URL with its password masked.
    store: String,
    /// How many jobs are in each state.
    jobs: BTreeMap<&'static str, usize>,
    in_flight: Vec<RunEntry<'a>>,
    next_slots: Vec<NextSlot<'a>>,
    spec_problems: Vec<SpecProblems<'a>>,
    last_failures: Vec<RunEntry<'a>>,
    notifications: NotificationsView,
    /// A store several schedulers share: its leader and nodes.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterView>,
    /// Active jobs with a next slot beyond those shown.
    #[serde(skip)]
    later: usize,
    #[serde(skip)]
    now: DateTime<Utc>,
}

/// The outbox at a glance: what waits to be delivered, what was given up, and the latest given up.
#[derive(Serialize)]
struct NotificationsView {
    #[serde(flatten)]
    counts: OutboxCounts,
    recent_given_up: Vec<NotificationRecord>,
}

/// How many of the notifications given up most recently `status` lists.
const GIVEN_UP_SHOWN: usize = 5;

/// The scheduler as the lock and the store's owner row tell it: `owner` once a process holds the
/// lock, the rest once it has recorded itself.
#[derive(Serialize)]
struct SchedulerView<'a> {
    running: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a str>,
    #[serde(flatten)]
    detail: Option<OwnerDetail<'a>>,
}

#[derive(Serialize)]
struct OwnerDetail<'a> {
    responsive: bool,
    pid: i64,
    host: &'a str,
    version: &'a str,
    #[serde(serialize_with = "ser::instant_opt")]
    started_at: Option<DateTime<Utc>>,
    uptime_s: Option<i64>,
    #[serde(serialize_with = "ser::instant_opt")]
    heartbeat_at: Option<DateTime<Utc>>,
    heartbeat_age_s: Option<f64>,
}

/// The soonest slot of one active job.
#[derive(Serialize)]
struct NextSlot<'a> {
    job_id: &'a str,
    #[serde(serialize_with = "ser::instant")]
    slot: DateTime<Utc>,
    #[serde(skip)]
    tz: Tz,
}

#[derive(Serialize)]
struct SpecProblems<'a> {
    job_id: &'a str,
    spec_path: &'a str,
    problems: &'a [Problem],
}

impl<'a> SchedulerView<'a> {
    fn new(holder: Option<&'a str>, owner: Option<&'a Owner>, now: DateTime<Utc>) -> Self {
        let detail = holder.and(owner).map(|owner| {
            let started = Some(owner.started_at);
            let beat = Some(owner.heartbeat_at);
            let age_s = beat.map_or(i64::MAX, |t| (now - t).num_seconds());
            OwnerDetail {
                responsive: age_s <= UNRESPONSIVE_AFTER_S,
                pid: owner.pid,
                host: &owner.host,
                version: &owner.version,
                started_at: started,
                uptime_s: started.map(|t| (now - t).num_seconds()),
                heartbeat_at: beat,
                heartbeat_age_s: beat.map(|t| (now - t).num_milliseconds() as f64 / 1000.0),
            }
        });
        Self {
            running: holder.is_some(),
            owner: holder,
            detail,
        }
    }

    fn render(&self, out: &Output, now: DateTime<Utc>) -> String {
        match (self.owner, &self.detail) {
            (Some(_), Some(detail)) => {
                let state = if detail.responsive {
                    out.paint(Style::Green, "running")
                } else {
                    out.paint(Style::Red, "unresponsive")
                };
                let ago = |t: Option<DateTime<Utc>>| t.map_or("?".into(), |t| relative(t, now));
                format!(
                    "scheduler: {state} (pid {}, host {}, version {}), up since {}, last heartbeat {}\n",
                    detail.pid,
                    detail.host,
                    detail.version,
                    ago(detail.started_at),
                    ago(detail.heartbeat_at),
                )
            }
            (Some(holder), None) => format!(
                "scheduler: {} ({holder}), starting up\n",
                out.paint(Style::Green, "running")
            ),
            (None, _) => format!("scheduler: {}\n", out.paint(Style::Red, "not running")),
        }
    }
}

impl OwnerDetail<'_> {
    /// The heartbeat's age in whole seconds, as `scheduler_unresponsive` reports it.
    fn heartbeat_age_whole_s(&self, now: DateTime<Utc>) -> i64 {
        self.heartbeat_at
            .map_or(i64::MAX, |t| (now - t).num_seconds())
    }
}

impl<'a> StatusView<'a> {
    fn new(
        catalog: &'a Catalog,
        scheduler: SchedulerView<'a>,
        in_flight: &'a [RunRow],
        failures: &'a [RunRow],
        now: DateTime<Utc>,
    ) -> Self {
        let mut jobs = BTreeMap::new();
        for job in &catalog.jobs {
            *jobs.entry(job.state().as_str()).or_insert(0) += 1;
        }
        let mut next_slots = Vec::new();
        for job in catalog
            .jobs
            .iter()
            .filter(|j| j.state() == JobState::Active)
        {
            // One slot per job: a job due every second would otherwise fill the list on its own.
            if let Some(schedule) = &job.schedule
                && let Some(slot) = schedule.slots_after(now, 1).first()
            {
                next_slots.push(NextSlot {
                    job_id: job.id(),
                    slot: slot.at,
                    tz: schedule.timezone(),
                });
            }
        }
        next_slots.sort_by(|a, b| (a.slot, a.job_id).cmp(&(b.slot, b.job_id)));
        let later = next_slots.len().saturating_sub(NEXT_SLOTS_SHOWN);
        next_slots.truncate(NEXT_SLOTS_SHOWN);
        let spec_problems = catalog
            .jobs
            .iter()
            .filter(|j| !j.problems.is_empty())
            .map(|j| SpecProblems {
                job_id: j.id(),
                spec_path: &j.row.spec_path,
                problems: &j.problems,
            })
            .collect();
        Self {
            scheduler,
            store: String::new(),
            jobs,
            in_flight: in_flight.iter().map(RunEntry::new).collect(),
            next_slots,
            spec_problems,
            last_failures: failures.iter().map(RunEntry::new).collect(),
            notifications: NotificationsView {
                counts: OutboxCounts::default(),
                recent_given_up: Vec::new(),
            },
            cluster: None,
            later,
            now,
        }
    }
}

/// The nodes of a shared store and its leader, as the store has them, with this home's spec
/// fingerprint beside the catalog's.
#[derive(Serialize)]
struct ClusterView {
    leader: Option<crate::store::LeaderRow>,
    nodes: Vec<NodeView>,
    /// The fingerprint of the specs the leader synced.
    catalog_hash: Option<String>,
    /// This home's, and whether it differs from the catalog's (its node then never leads).
    home_spec_hash: String,
    home_drift: bool,
    /// Active jobs whose `run.nodes` labels no live node has all of: their runs wait in the queue.
    unplaced: Vec<Unplaced>,
}

#[derive(Serialize)]
struct Unplaced {
    job_id: String,
    labels: Vec<String>,
}

#[derive(Serialize)]
struct NodeView {
    node: String,
    leader: bool,
    labels: Vec<String>,
    #[serde(serialize_with = "ser::instant")]
    heartbeat_at: DateTime<Utc>,
    heartbeat_age_s: f64,
    /// Silent for longer than it promised: its runs are taken for dead.
    dead: bool,
    runs_in_flight: i64,
    spec_hash: Option<String>,
    /// Its specs differ from the catalog's.
    drift: bool,
    owner: String,
    version: String,
}

impl ClusterView {
    fn read(
        store: &dyn crate::store::Store,
        home: &crate::home::Home,
        jobs: &[crate::catalog::Job],
    ) -> Result<Self> {
        let leader = store.leader()?;
        let catalog_hash = store.catalog_hash()?;
        let leads = |name: &str| {
            leader
                .as_ref()
                .is_some_and(|l| l.node == name && l.remaining_ms > 0)
        };
        let drifts = |hash: Option<&str>| catalog_hash.as_deref().is_some_and(|c| Some(c) != hash);
        let nodes = store
            .nodes()?
            .into_iter()
            .map(|n| NodeView {
                leader: leads(&n.node),
                drift: drifts(n.spec_hash.as_deref()),
                dead: n.heartbeat_age_ms > n.dead_after_ms,
                heartbeat_age_s: n.heartbeat_age_ms as f64 / 1000.0,
                node: n.node,
                labels: n.labels,
                heartbeat_at: n.heartbeat_at,
                runs_in_flight: n.runs_in_flight,
                spec_hash: n.spec_hash,
                owner: n.owner,
                version: n.version,
            })
            .collect::<Vec<NodeView>>();
        let placeable = |wanted: &[String]| {
            nodes
                .iter()
                .any(|n| !n.dead && wanted.iter().all(|label| n.labels.contains(label)))
        };
        let unplaced = jobs
            .iter()
            .filter(|job| job.state() == crate::catalog::JobState::Active)
            .filter_map(|job| {
                let wanted = &job.spec.as_ref()?.run.nodes;
                (!wanted.is_empty() && !placeable(wanted)).then(|| Unplaced {
                    job_id: job.id().to_owned(),
                    labels: wanted.clone(),
                })
            })
            .collect();
        let home_spec_hash = crate::catalog::fingerprint(home)?;
        Ok(Self {
            home_drift: drifts(Some(&home_spec_hash)),
            home_spec_hash,
            leader,
            nodes,
            catalog_hash,
            unplaced,
        })
    }

    /// `no_leader` when no node holds a live lease.
    fn no_leader(&self) -> Option<Error> {
        let alive = self.nodes.iter().filter(|n| !n.dead).count();
        match &self.leader {
            Some(l) if l.remaining_ms > 0 => None,
            Some(l) => Some(Error::NoLeader {
                last: Some((l.node.clone(), -l.remaining_ms)),
                nodes: alive,
            }),
            None => Some(Error::NoLeader {
                last: None,
                nodes: alive,
            }),
        }
    }

    fn render(&self, human: &mut String) {
        match &self.leader {
            Some(l) if l.remaining_ms > 0 => human.push_str(&format!(
                "leader: {} (term {}, lease {:.1} s left)\n",
                l.node,
                l.term,
                l.remaining_ms as f64 / 1000.0
            )),
            Some(l) => human.push_str(&format!(
                "leader: none (the lease of {} ran out {:.1} s ago)\n",
                l.node,
                -l.remaining_ms as f64 / 1000.0
            )),
            None => human.push_str("leader: none\n"),
        }
        human.push_str(&format!("nodes: {}\n", self.nodes.len()));
        for n in &self.nodes {
            let mut notes = Vec::new();
            if n.leader {
                notes.push("leader".to_owned());
            }
            if n.dead {
                notes.push("dead".to_owned());
            }
            if n.drift {
                notes.push("specs differ from the catalog".to_owned());
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!(" [{}]", notes.join(", "))
            };
            human.push_str(&format!(
                "  {} {}, heartbeat {:.1} s ago, {} run(s) in flight{notes}\n",
                escape_controls(&n.node),
                escape_controls(&n.owner),
                n.heartbeat_age_s,
                n.runs_in_flight
            ));
        }
        if self.home_drift {
            human.push_str("this home's specs differ from the catalog: its node never leads, and commands here do not sync them\n");
        }
        for job in &self.unplaced {
            human.push_str(&format!(
                "warning: no live node has every label {} asks for ({}): its runs wait in the queue\n",
                escape_controls(&job.job_id),
                escape_controls(&job.labels.join(", "))
            ));
        }
    }
}

impl View for StatusView<'_> {
    fn render(&self, out: &Output) -> String {
        let mut human = self.scheduler.render(out, self.now);
        human.push_str(&format!("store: {}\n", self.store));
        if let Some(cluster) = &self.cluster {
            cluster.render(&mut human);
        }
        human.push_str(&format!(
            "jobs: {}\n",
            self.jobs
                .iter()
                .map(|(state, n)| format!("{n} {state}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        human.push_str(&format!("in flight: {}\n", self.in_flight.len()));
        for run in &self.in_flight {
            let group = run
                .group
                .map(|g| format!(" (holds group {g})"))
                .unwrap_or_default();
            human.push_str(&format!(
                "  {} {}{group}\n",
                run_name(run.job_id, run.run),
                run.status
            ));
        }
        human.push_str("next slots:\n");
        for slot in &self.next_slots {
            human.push_str(&format!(
                "  {}  {}  ({})\n",
                local(slot.slot, slot.tz),
                slot.job_id,
                relative(slot.slot, self.now)
            ));
        }
        if self.later > 0 {
            human.push_str(&format!(
                "  and {} more job(s) later; `jobsctl list` shows every next slot\n",
                self.later
            ));
        }
        if !self.spec_problems.is_empty() {
            human.push_str(&out.paint(Style::Yellow, "spec problems:\n"));
            for job in &self.spec_problems {
                if let Some(problem) = job.problems.first() {
                    human.push_str(&format!(
                        "  {}:{}\n",
                        escape_controls(job.spec_path),
                        escape_controls(&problem.located())
                    ));
                }
            }
        }
        self.render_notifications(out, &mut human);
        if !self.last_failures.is_empty() {
            human.push_str("last failures:\n");
            for run in &self.last_failures {
                human.push_str(&format!(
                    "  {} {} {}\n",
                    run_name(run.job_id, run.run),
                    out.paint(Style::Red, run.status.as_str()),
                    run.message.unwrap_or_default()
                ));
            }
        }
        human
    }
}

impl StatusView<'_> {
    fn render_notifications(&self, out: &Output, human: &mut String) {
        let counts = self.notifications.counts;
        let given_up = format!("{} given up", counts.given_up);
        human.push_str(&format!(
            "notifications: {} pending, {}\n",
            counts.pending,
            if counts.given_up > 0 {
                out.paint(Style::Red, &given_up)
            } else {
                given_up
            }
        ));
        for notification in &self.notifications.recent_given_up {
            let about = match (&notification.job_id, notification.run) {
                (Some(job), Some(run)) => run_name(job, run),
                _ => "the home".to_owned(),
            };
            let when = notification
                .done_at
                .map(|at| relative(at, self.now))
                .unwrap_or_default();
            human.push_str(&format!(
                "  {} {} to {}, given up {}: {}\n",
                escape_controls(&about),
                notification.event,
                escape_controls(&notification.notifier),
                when,
                escape_controls(notification.last_error.as_deref().unwrap_or("-"))
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn the_scheduler_says_only_what_is_known_of_it() {
        let now = at("2026-11-22T12:00:00Z");
        let json = |view: &SchedulerView<'_>| serde_json::to_value(view).expect("serializes");
        assert_eq!(
            json(&SchedulerView::new(None, None, now)),
            serde_json::json!({ "running": false })
        );
        assert_eq!(
            json(&SchedulerView::new(Some("7@host"), None, now)),
            serde_json::json!({ "running": true, "owner": "7@host" })
        );
        let owner = Owner {
            pid: 7,
            host: "host".into(),
            version: "0.1.0".into(),
            started_at: at("2026-11-22T11:00:00Z"),
            heartbeat_at: at("2026-11-22T11:58:58.500Z"),
        };
        let view = SchedulerView::new(Some("7@host"), Some(&owner), now);
        assert_eq!(
            json(&view),
            serde_json::json!({
                "running": true, "owner": "7@host", "responsive": false, "pid": 7, "host": "host",
                "version": "0.1.0", "started_at": "2026-11-22T11:00:00.000Z", "uptime_s": 3600,
                "heartbeat_at": "2026-11-22T11:58:58.500Z", "heartbeat_age_s": 61.5,
            })
        );
        let out = Output {
            json: false,
            color: false,
        };
        assert_eq!(
            view.render(&out, now),
            "scheduler: unresponsive (pid 7, host host, version 0.1.0), up since 1h 0m ago, last heartbeat 1m 1s ago\n"
        );
    }
}
