//! `jobsctl list`: every job with its schedule, zone, next slot, state and description.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::Ctx;
use super::output::{Output, Report, Style, Table, View, escape_controls, local, relative, ser};
use crate::catalog::{Catalog, Job, JobState};
use crate::error::Result;
use crate::spec::Problem;

pub fn run(ctx: &Ctx) -> Result<Report> {
    let now = ctx.clock.now();
    let catalog = Catalog::open(&ctx.home, now)?;
    let jobs: Vec<ListEntry<'_>> = catalog
        .jobs
        .iter()
        .map(|job| ListEntry::new(job, now))
        .collect();
    let view = ListView {
        total: jobs.len(),
        jobs,
        stray: catalog
            .stray_files
            .iter()
            .map(|(path, reason)| (ctx.home.display_path(path), reason.as_str()))
            .collect(),
        jobs_dir: ctx.home.display_path(&ctx.home.jobs_dir()),
        now,
    };
    Report::view(&view, &ctx.out)
}

/// The jobs of the home, and the files in `jobs/` that are not jobs.
#[derive(Serialize)]
struct ListView<'a> {
    jobs: Vec<ListEntry<'a>>,
    total: usize,
    /// Spec files that are not jobs, shown as the home shows them, with the reason.
    #[serde(skip)]
    stray: Vec<(String, &'a str)>,
    #[serde(skip)]
    jobs_dir: String,
    #[serde(skip)]
    now: DateTime<Utc>,
}

#[derive(Serialize)]
struct ListEntry<'a> {
    id: &'a str,
    description: Option<&'a str>,
    schedule: Option<String>,
    #[serde(serialize_with = "ser::zone_opt")]
    timezone: Option<Tz>,
    #[serde(serialize_with = "ser::instant_opt")]
    next_slot: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ser::job_state")]
    state: JobState,
    enabled: bool,
    spec_path: &'a str,
    problems: &'a [Problem],
    /// A spec to run (the file's or its last good version): without one, no schedule is known.
    #[serde(skip)]
    has_spec: bool,
}

impl<'a> ListEntry<'a> {
    fn new(job: &'a Job, now: DateTime<Utc>) -> Self {
        Self {
            id: job.id(),
            description: job.spec.as_ref().and_then(|s| s.description.as_deref()),
            schedule: job.schedule.as_ref().map(|s| s.expression()),
            timezone: job.schedule.as_ref().map(|s| s.timezone()),
            next_slot: job.next_slot(now),
            state: job.state(),
            enabled: job.spec.as_ref().is_some_and(|s| s.enabled),
            spec_path: &job.row.spec_path,
            problems: &job.problems,
            has_spec: job.spec.is_some(),
        }
    }

    /// A job without a schedule is manual only if a valid spec says so: a spec that never loaded has
    /// no known schedule at all.
    fn schedule_text(&self) -> String {
        match (&self.schedule, self.has_spec) {
            (Some(expression), _) => expression.clone(),
            (None, true) => "manual".to_owned(),
            (None, false) => "invalid".to_owned(),
        }
    }
}

impl View for ListView<'_> {
    fn render(&self, out: &Output) -> String {
        let mut human = if self.jobs.is_empty() {
            format!("no jobs: add a spec file to {}\n", self.jobs_dir)
        } else {
            self.table(out)
        };
        let broken: Vec<&ListEntry<'_>> = self
            .jobs
            .iter()
            .filter(|j| !j.problems.is_empty())
            .collect();
        if broken.is_empty() && self.stray.is_empty() {
            return human;
        }
        human.push('\n');
        for job in &broken {
            let fallback = if job.has_spec {
                "; running its last good version"
            } else {
                ""
            };
            let first = job.problems.first().map(|p| p.brief()).unwrap_or_default();
            human.push_str(&out.paint(
                Style::Yellow,
                &format!(
                    "{}: spec has {} problem(s){fallback}: {}\n",
                    escape_controls(job.spec_path),
                    job.problems.len(),
                    escape_controls(&first),
                ),
            ));
        }
        for (path, reason) in &self.stray {
            // A stray file's name is whatever someone managed to create in `jobs/`.
            human.push_str(&out.paint(
                Style::Yellow,
                &format!(
                    "{}: ignored: {}\n",
                    escape_controls(path),
                    escape_controls(reason)
                ),
            ));
        }
        human.push_str("run `jobsctl validate` for details\n");
        human
    }
}

impl ListView<'_> {
    fn table(&self, out: &Output) -> String {
        let mut table = Table::new(vec![
            "ID",
            "SCHEDULE",
            "TIME ZONE",
            "NEXT",
            "STATE",
            "DESCRIPTION",
        ]);
        for job in &self.jobs {
            let next_text = match (job.next_slot, job.timezone) {
                (Some(next), Some(tz)) => {
                    format!("{} ({})", local(next, tz), relative(next, self.now))
                }
                _ => "-".to_owned(),
            };
            let has_problems = !job.problems.is_empty();
            let mut state_text = job.state.as_str().to_owned();
            if has_problems && job.state != JobState::Invalid {
                state_text.push_str(" (spec invalid)");
            }
            table.row(vec![
                (job.id.to_owned(), Style::Bold),
                (job.schedule_text(), Style::Plain),
                (
                    job.timezone
                        .map_or("-".to_owned(), |tz| tz.name().to_owned()),
                    Style::Plain,
                ),
                (next_text, Style::Plain),
                (state_text, state_style(job.state, has_problems)),
                (job.description.unwrap_or_default().to_owned(), Style::Dim),
            ]);
        }
        table.render(out)
    }
}

pub fn state_style(state: JobState, has_problems: bool) -> Style {
    match state {
        JobState::Active if has_problems => Style::Yellow,
        JobState::Active => Style::Green,
        JobState::Paused => Style::Yellow,
        JobState::Disabled | JobState::Removed => Style::Dim,
        JobState::Invalid => Style::Red,
    }
}
