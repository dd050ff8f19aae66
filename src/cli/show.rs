//! `jobsctl show <id>`: one job in detail: its schedule in words, next slots, operator state, spec and
//! run record.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::Ctx;
use super::history::RunEntry;
use super::list::state_style;
use super::output::{
    Output, Report, Style, View, Zoned, escape_controls, local, relative, ser, utc,
};
use crate::catalog::{Job, JobState};
use crate::duration::SpecDuration;
use crate::error::Result;
use crate::run::run_name;
use crate::schedule::DstNote;
use crate::spec::model::{NotifierSpec, Overlap, PolicySpec, RetentionSpec, RetrySpec, RunLimits};
use crate::spec::{JobSpec, Problem};
use crate::store::RunStats;

const NEXT_SLOTS: usize = 5;

pub fn run(ctx: &Ctx, id: &str) -> Result<Report> {
    let now = ctx.clock.now();
    let catalog = ctx.catalog_with_runs(Some(id))?;
    let stats = catalog.store.run_stats(id)?;
    let job = catalog.job(id)?;
    let edges = crate::triggers::edges(catalog.jobs.iter().filter_map(|j| j.spec.as_ref()));
    let mut view = ShowView::new(id, job, &stats, now);
    view.upstream = edges.iter().filter(|e| e.to == id).cloned().collect();
    view.downstream = edges.into_iter().filter(|e| e.from == id).collect();
    Report::view(&view, &ctx.out)
}

/// Everything known of one job.
#[derive(Serialize)]
struct ShowView<'a> {
    id: &'a str,
    description: Option<&'a str>,
    spec_path: &'a str,
    #[serde(serialize_with = "ser::job_state")]
    state: JobState,
    operator_state: OperatorState<'a>,
    enabled: bool,
    schedule: Option<ScheduleView>,
    next_slots: Vec<SlotEntry>,
    // Env values stay out of every output; only their names are shown.
    run: Option<RunView<'a>>,
    policy: Option<&'a PolicySpec>,
    retry: Option<&'a RetrySpec>,
    retention: Option<&'a RetentionSpec>,
    tags: &'a [String],
    /// The jobs whose runs trigger this one's, and the jobs this one's runs trigger.
    upstream: Vec<crate::triggers::Edge>,
    downstream: Vec<crate::triggers::Edge>,
    last_run: Option<RunEntry<'a>>,
    last_success: Option<RunEntry<'a>>,
    last_failure: Option<RunEntry<'a>>,
    failure_streak: i64,
    counts: Counts,
    problems: &'a [Problem],
    /// Whether a spec (the file's or its last good version) is known at all.
    #[serde(skip)]
    has_spec: bool,
    #[serde(skip)]
    now: DateTime<Utc>,
}

/// Who set the job's state, when and why.
#[derive(Serialize)]
struct OperatorState<'a> {
    state: &'a str,
    reason: Option<&'a str>,
    by: Option<&'a str>,
    #[serde(serialize_with = "ser::instant_opt")]
    at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct ScheduleView {
    expression: String,
    kind: &'static str,
    description: String,
    #[serde(serialize_with = "ser::zone")]
    timezone: Tz,
    jitter: Option<SpecDuration>,
}

#[derive(Serialize)]
struct SlotEntry {
    local: Zoned,
    #[serde(serialize_with = "ser::instant")]
    utc: DateTime<Utc>,
    #[serde(serialize_with = "ser::dst_note")]
    note: Option<DstNote>,
}

#[derive(Serialize)]
struct RunView<'a> {
    command: Option<&'a [String]>,
    shell: Option<&'a str>,
    cwd: &'a str,
    env_names: Vec<&'a str>,
    timeout: Option<SpecDuration>,
    kill_grace: SpecDuration,
    user: Option<&'a str>,
    group: Option<&'a str>,
    limits: &'a RunLimits,
    /// The job's notifiers, their URLs masked (they carry tokens).
    notify: Vec<NotifierView>,
}

/// A notifier as people may see it.
#[derive(Serialize)]
struct NotifierView {
    notifier: String,
    /// The events it is sent; a ping follows its own protocol and names none.
    on: Vec<&'static str>,
    timeout: SpecDuration,
}

impl NotifierView {
    fn new(notifier: &NotifierSpec) -> Self {
        Self {
            notifier: crate::notifier::shown(&notifier.target),
            on: notifier.on.iter().map(|on| on.as_str()).collect(),
            timeout: notifier.timeout,
        }
    }
}

#[derive(Serialize)]
struct Counts {
    runs: i64,
    succeeded: i64,
    failed: i64,
    skipped: i64,
    missed: i64,
}

impl<'a> ShowView<'a> {
    fn new(id: &'a str, job: &'a Job, stats: &'a RunStats, now: DateTime<Utc>) -> Self {
        let row = &job.row;
        let spec = job.spec.as_ref();
        Self {
            id,
            description: spec.and_then(|s| s.description.as_deref()),
            spec_path: &row.spec_path,
            state: job.state(),
            operator_state: OperatorState {
                state: row.state.as_str(),
                reason: row.state_reason.as_deref(),
                by: row.state_by.as_deref(),
                at: row.state_at,
            },
            enabled: spec.is_some_and(|s| s.enabled),
            schedule: ScheduleView::new(job),
            next_slots: next_slots(job, now),
            run: spec.map(RunView::new),
            policy: spec.map(|s| &s.policy),
            retry: spec.map(|s| &s.retry),
            retention: spec.map(|s| &s.retention),
            tags: spec.map_or(&[], |s| &s.tags),
            upstream: Vec::new(),
            downstream: Vec::new(),
            last_run: stats.last_run.as_ref().map(RunEntry::new),
            last_success: stats.last_success.as_ref().map(RunEntry::new),
            last_failure: stats.last_failure.as_ref().map(RunEntry::new),
            failure_streak: stats.failure_streak,
            counts: Counts {
                runs: stats.runs,
                succeeded: stats.succeeded,
                failed: stats.failed,
                skipped: stats.skipped,
                missed: stats.missed,
            },
            problems: &job.problems,
            has_spec: spec.is_some(),
            now,
        }
    }
}

impl ScheduleView {
    fn new(job: &Job) -> Option<Self> {
        let schedule = job.schedule.as_ref()?;
        let spec = job.spec.as_ref().and_then(|s| s.schedule.as_ref());
        Some(Self {
            expression: schedule.expression(),
            kind: if spec.is_some_and(|s| s.cron.is_some()) {
                "cron"
            } else {
                "every"
            },
            description: schedule.describe(),
            timezone: schedule.timezone(),
            jitter: spec.and_then(|s| s.jitter),
        })
    }
}

/// The next slots, when the job will fire any (it is active and scheduled).
fn next_slots(job: &Job, now: DateTime<Utc>) -> Vec<SlotEntry> {
    let (Some(schedule), Some(_)) = (&job.schedule, job.next_slot(now)) else {
        return Vec::new();
    };
    let tz = schedule.timezone();
    schedule
        .slots_after(now, NEXT_SLOTS)
        .into_iter()
        .map(|slot| SlotEntry {
            local: Zoned { at: slot.at, tz },
            utc: slot.at,
            note: slot.note,
        })
        .collect()
}

impl<'a> RunView<'a> {
    fn new(spec: &'a JobSpec) -> Self {
        let run = &spec.run;
        Self {
            command: run.command.as_deref(),
            shell: run.shell.as_deref(),
            cwd: &run.cwd,
            env_names: run.env.keys().map(String::as_str).collect(),
            timeout: run.timeout,
            kill_grace: run.kill_grace,
            user: run.user.as_deref(),
            group: run.group.as_deref(),
            limits: &run.limits,
            notify: spec.notify.iter().map(NotifierView::new).collect(),
        }
    }
}

/// Text from the spec or the store (a description, a reason, a command) can hold ESC, and the
/// terminal would act on it: every such value goes through here.
fn safe(text: &str) -> String {
    escape_controls(text).into_owned()
}

/// The lines of the human rendering: a key (empty to continue the one above) and its value.
type Lines = Vec<(&'static str, String)>;

impl View for ShowView<'_> {
    fn render(&self, out: &Output) -> String {
        let mut lines: Lines = vec![
            (
                "description",
                self.description.map_or_else(|| "-".into(), safe),
            ),
            ("spec", safe(self.spec_path)),
            ("state", self.state_text(out)),
        ];
        self.schedule_lines(&mut lines);
        if let Some(run) = &self.run {
            run.lines(&mut lines);
        }
        self.policy_lines(&mut lines);
        self.record_lines(&mut lines);
        for (i, problem) in self.problems.iter().enumerate() {
            let text = format!("{}:{}", self.spec_path, problem.located());
            lines.push((
                if i == 0 { "problems" } else { "" },
                out.paint(Style::Yellow, &safe(&text)),
            ));
        }
        let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut human = format!("{}\n", out.paint(Style::Bold, self.id));
        for (key, value) in &lines {
            human.push_str(&format!("  {key:width$}  {value}\n"));
        }
        human
    }
}

impl ShowView<'_> {
    fn state_text(&self, out: &Output) -> String {
        let operator = &self.operator_state;
        let mut text = out.paint(
            state_style(self.state, !self.problems.is_empty()),
            self.state.as_str(),
        );
        if let Some(by) = operator.by {
            text.push_str(&format!(" (by {}", safe(by)));
            if let Some(at) = operator.at {
                text.push_str(&format!(", {}", relative(at, self.now)));
            }
            if let Some(reason) = operator.reason {
                text.push_str(&format!(": {}", safe(reason)));
            }
            text.push(')');
        }
        if self.has_spec && !self.enabled {
            text.push_str(" (enabled: false in the spec)");
        }
        text
    }

    fn schedule_lines(&self, lines: &mut Lines) {
        let Some(schedule) = &self.schedule else {
            lines.push((
                "schedule",
                if self.has_spec {
                    "manual: runs only with `jobsctl run`".into()
                } else {
                    "unknown: the spec has never been valid (see problems below)".into()
                },
            ));
            return;
        };
        lines.push((
            "schedule",
            format!(
                "{} ({})",
                safe(&schedule.expression),
                schedule.timezone.name()
            ),
        ));
        lines.push(("in words", safe(&schedule.description)));
        if let Some(jitter) = schedule.jitter {
            lines.push(("jitter", format!("up to {jitter}, fixed per slot")));
        }
        for (i, slot) in self.next_slots.iter().enumerate() {
            let note = slot
                .note
                .map(|n| format!("  [{}]", n.code()))
                .unwrap_or_default();
            let text = format!(
                "{}  {}  ({}){note}",
                local(slot.utc, schedule.timezone),
                utc(slot.utc),
                relative(slot.utc, self.now)
            );
            lines.push((if i == 0 { "next slots" } else { "" }, text));
        }
    }

    fn policy_lines(&self, lines: &mut Lines) {
        if let Some(policy) = self.policy {
            lines.push((
                "policy",
                format!(
                    "max_instances {}, overlap {}, coalesce {}, misfire_grace {}",
                    policy.max_instances,
                    overlap_name(policy.overlap),
                    policy.coalesce,
                    policy.misfire_grace
                ),
            ));
        }
        if let Some(retry) = self.retry {
            lines.push((
                "retry",
                if retry.max_attempts <= 1 {
                    "none (1 attempt)".into()
                } else {
                    format!(
                        "{} attempts, backoff {} doubling up to {}",
                        retry.max_attempts, retry.backoff, retry.max_backoff
                    )
                },
            ));
        }
        if self.has_spec && !self.tags.is_empty() {
            lines.push(("tags", safe(&self.tags.join(", "))));
        }
        let edge = |e: &crate::triggers::Edge, other: &str| {
            if e.all {
                format!("{other} (all of after_all succeeded)")
            } else {
                let on: Vec<&str> = e.on.iter().map(|o| o.as_str()).collect();
                format!("{other} (on {})", on.join(", "))
            }
        };
        if !self.upstream.is_empty() {
            let after: Vec<String> = self.upstream.iter().map(|e| edge(e, &e.from)).collect();
            lines.push(("runs after", after.join(", ")));
        }
        if !self.downstream.is_empty() {
            let next: Vec<String> = self.downstream.iter().map(|e| edge(e, &e.to)).collect();
            lines.push(("triggers", next.join(", ")));
        }
    }

    /// The job's runs: the last of each kind, the streak and the counts.
    fn record_lines(&self, lines: &mut Lines) {
        let describe = |entry: &Option<RunEntry<'_>>| {
            entry.as_ref().map_or_else(
                || "-".to_owned(),
                |r| {
                    let when = relative(r.last_moved(), self.now);
                    format!("{} {} ({when})", run_name(r.job_id, r.run), r.status)
                },
            )
        };
        lines.push(("last run", describe(&self.last_run)));
        lines.push(("last success", describe(&self.last_success)));
        lines.push(("last failure", describe(&self.last_failure)));
        lines.push(("failure streak", self.failure_streak.to_string()));
        let c = &self.counts;
        lines.push((
            "counts",
            format!(
                "{} runs ({} succeeded, {} failed), {} slots skipped, {} missed",
                c.runs, c.succeeded, c.failed, c.skipped, c.missed
            ),
        ));
    }
}

impl RunView<'_> {
    fn lines(&self, lines: &mut Lines) {
        let command = match (self.command, self.shell) {
            (Some(argv), _) => argv.join(" "),
            (None, Some(shell)) => format!("sh -c {shell:?}"),
            (None, None) => "-".into(),
        };
        lines.push(("command", safe(&command)));
        lines.push(("cwd", safe(self.cwd)));
        if !self.env_names.is_empty() {
            lines.push(("env", safe(&self.env_names.join(", "))));
        }
        if let Some(user) = self.user {
            let group = self
                .group
                .map(|g| format!(", group {}", safe(g)))
                .unwrap_or_default();
            lines.push(("runs as", format!("{}{group}", safe(user))));
        }
        if !self.limits.is_empty() {
            let limits = self.limits;
            let text = [
                limits.nofile.map(|n| format!("nofile {n}")),
                limits.address_space.map(|s| format!("as {s}")),
                limits.cpu.map(|c| format!("cpu {c}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
            lines.push(("limits", text));
        }
        lines.push((
            "timeout",
            self.timeout.map_or("none".into(), |t| {
                format!("{t}, then SIGTERM, SIGKILL after {}", self.kill_grace)
            }),
        ));
        for (i, notifier) in self.notify.iter().enumerate() {
            let on = if notifier.on.is_empty() {
                "start, success, fail".to_owned()
            } else {
                notifier.on.join(", ")
            };
            lines.push((
                if i == 0 { "notify" } else { "" },
                format!("{} on {on}", safe(&notifier.notifier)),
            ));
        }
    }
}

/// The spec's word for an overlap policy.
fn overlap_name(overlap: Overlap) -> &'static str {
    match overlap {
        Overlap::Skip => "skip",
        Overlap::Queue => "queue",
        Overlap::Replace => "replace",
    }
}
