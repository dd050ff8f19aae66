//! `jobsctl list`: every job with its schedule, zone, next slot, state and description.

use serde_json::{Value, json};

use super::entry::Ctx;
use super::output::{Report, Style, Table, escape_controls, local, relative, utc};
use crate::catalog::{Catalog, Job, JobState};
use crate::error::Result;

pub fn run(ctx: &Ctx) -> Result<Report> {
    let now = ctx.clock.now();
    let catalog = Catalog::open(&ctx.home, now)?;
    let out = &ctx.out;

    let mut table = Table::new(vec![
        "ID",
        "SCHEDULE",
        "TIME ZONE",
        "NEXT",
        "STATE",
        "DESCRIPTION",
    ]);
    let mut entries = Vec::new();
    for job in &catalog.jobs {
        let next = job.next_slot(now);
        let tz = job.schedule.as_ref().map(|s| s.timezone());
        let next_text = match (next, tz) {
            (Some(next), Some(tz)) => format!("{} ({})", local(next, tz), relative(next, now)),
            _ => "-".to_owned(),
        };
        let state = job.state();
        let mut state_text = state.as_str().to_owned();
        if !job.problems.is_empty() && state != JobState::Invalid {
            state_text.push_str(" (spec invalid)");
        }
        table.row(vec![
            (job.id().to_owned(), Style::Bold),
            (schedule_text(job), Style::Plain),
            (
                tz.map_or("-".to_owned(), |tz| tz.name().to_owned()),
                Style::Plain,
            ),
            (next_text, Style::Plain),
            (state_text, state_style(state, !job.problems.is_empty())),
            (
                job.spec
                    .as_ref()
                    .and_then(|s| s.description.clone())
                    .unwrap_or_default(),
                Style::Dim,
            ),
        ]);
        entries.push(json!({
            "id": job.id(),
            "description": job.spec.as_ref().and_then(|s| s.description.clone()),
            "schedule": job.schedule.as_ref().map(|s| s.expression()),
            "timezone": tz.map(|tz| tz.name()),
            "next_slot": next.map(utc),
            "state": state.as_str(),
            "enabled": job.spec.as_ref().is_some_and(|s| s.enabled),
            "spec_path": job.row.spec_path,
            "problems": job.problems,
        }));
    }

    let mut human = if table.is_empty() {
        format!(
            "no jobs: add a spec file to {}\n",
            ctx.home.display_path(&ctx.home.jobs_dir())
        )
    } else {
        table.render(out)
    };
    let broken: Vec<&Job> = catalog
        .jobs
        .iter()
        .filter(|j| !j.problems.is_empty())
        .collect();
    let stray = &catalog.stray_files;
    if !broken.is_empty() || !stray.is_empty() {
        human.push('\n');
        for job in &broken {
            let fallback = if job.spec.is_some() {
                "; running its last good version"
            } else {
                ""
            };
            let first = job.problems.first().map(|p| p.brief()).unwrap_or_default();
            human.push_str(&out.paint(
                Style::Yellow,
                &format!(
                    "{}: spec has {} problem(s){fallback}: {}\n",
                    escape_controls(&job.row.spec_path),
                    job.problems.len(),
                    escape_controls(&first),
                ),
            ));
        }
        for (path, reason) in stray {
            // A stray file's name is whatever someone managed to create in `jobs/`.
            human.push_str(&out.paint(
                Style::Yellow,
                &format!(
                    "{}: ignored: {}\n",
                    escape_controls(&ctx.home.display_path(path)),
                    escape_controls(reason)
                ),
            ));
        }
        human.push_str("run `jobsctl validate` for details\n");
    }
    let total = entries.len();
    Ok(Report::ok(
        json!({ "jobs": Value::Array(entries), "total": total }),
        human,
    ))
}

/// A job without a schedule is manual only if a valid spec says so: a spec that never loaded has no
/// known schedule at all.
pub fn schedule_text(job: &Job) -> String {
    match (&job.schedule, &job.spec) {
        (Some(schedule), _) => schedule.expression(),
        (None, Some(_)) => "manual".to_owned(),
        (None, None) => "invalid".to_owned(),
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
