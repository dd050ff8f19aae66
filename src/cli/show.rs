//! `jobsctl show <id>`: one job in detail: its schedule in words, next slots, operator state, spec and
//! run record.

use serde_json::json;

use super::entry::Ctx;
use super::history;
use super::list::state_style;
use super::output::{Report, Style, escape_controls, local, relative, utc, zoned};
use crate::error::Result;
use crate::run::run_name;
use crate::store::RunRow;

const NEXT_SLOTS: usize = 5;

pub fn run(ctx: &Ctx, id: &str) -> Result<Report> {
    let now = ctx.clock.now();
    let catalog = super::entry::catalog_with_runs(ctx, Some(id))?;
    let stats = catalog.store.run_stats(id)?;
    let job = catalog.job(id)?;
    let out = &ctx.out;
    let state = job.state();
    let row = &job.row;
    let spec = job.spec.as_ref();
    let schedule = job.schedule.as_ref();
    let tz = schedule.map(|s| s.timezone());
    let slots = match (schedule, job.next_slot(now)) {
        (Some(schedule), Some(_)) => schedule.slots_after(now, NEXT_SLOTS),
        _ => Vec::new(),
    };

    // Every value below is safe to print: text from the spec or the store (a description, a reason, a
    // command) goes through `safe`, since it can hold ESC and the terminal would act on it.
    let safe = |text: &str| escape_controls(text).into_owned();
    let mut lines: Vec<(&str, String)> = Vec::new();
    lines.push((
        "description",
        spec.and_then(|s| s.description.as_deref())
            .map_or_else(|| "-".into(), safe),
    ));
    lines.push(("spec", safe(&row.spec_path)));
    let mut state_text = out.paint(state_style(state, !job.problems.is_empty()), state.as_str());
    if let Some(by) = &row.state_by {
        state_text.push_str(&format!(" (by {}", safe(by)));
        if let Some(at) = row.state_at {
            state_text.push_str(&format!(", {}", relative(at, now)));
        }
        if let Some(reason) = &row.state_reason {
            state_text.push_str(&format!(": {}", safe(reason)));
        }
        state_text.push(')');
    }
    if spec.is_some_and(|s| !s.enabled) {
        state_text.push_str(" (enabled: false in the spec)");
    }
    lines.push(("state", state_text));
    match (schedule, tz) {
        (Some(schedule), Some(tz)) => {
            lines.push((
                "schedule",
                format!("{} ({})", safe(&schedule.expression()), tz.name()),
            ));
            lines.push(("in words", safe(&schedule.describe())));
        }
        _ if spec.is_none() => lines.push((
            "schedule",
            "unknown: the spec has never been valid (see problems below)".into(),
        )),
        _ => lines.push(("schedule", "manual: runs only with `jobsctl run`".into())),
    }
    if let Some(jitter) = spec
        .and_then(|s| s.schedule.as_ref())
        .and_then(|s| s.jitter)
    {
        lines.push(("jitter", format!("up to {jitter}, fixed per slot")));
    }
    if let Some(tz) = tz {
        for (i, slot) in slots.iter().enumerate() {
            let note = slot
                .note
                .map(|n| format!("  [{}]", n.code()))
                .unwrap_or_default();
            let text = format!(
                "{}  {}  ({}){note}",
                local(slot.at, tz),
                utc(slot.at),
                relative(slot.at, now)
            );
            lines.push((if i == 0 { "next slots" } else { "" }, text));
        }
    }
    if let Some(spec) = spec {
        let run = &spec.run;
        let command = match (&run.command, &run.shell) {
            (Some(argv), _) => argv.join(" "),
            (None, Some(shell)) => format!("sh -c {shell:?}"),
            (None, None) => "-".into(),
        };
        lines.push(("command", safe(&command)));
        lines.push(("cwd", safe(&run.cwd)));
        if !run.env.is_empty() {
            lines.push((
                "env",
                safe(&run.env.keys().cloned().collect::<Vec<_>>().join(", ")),
            ));
        }
        if let Some(user) = &run.user {
            let group = run
                .group
                .as_ref()
                .map(|g| format!(", group {}", safe(g)))
                .unwrap_or_default();
            lines.push(("runs as", format!("{}{group}", safe(user))));
        }
        if !run.limits.is_empty() {
            let limits = &run.limits;
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
            run.timeout.map_or("none".into(), |t| {
                format!("{t}, then SIGTERM, SIGKILL after {}", run.kill_grace)
            }),
        ));
        let policy = &spec.policy;
        lines.push((
            "policy",
            format!(
                "max_instances {}, overlap {}, coalesce {}, misfire_grace {}",
                policy.max_instances,
                json!(policy.overlap).as_str().unwrap_or_default(),
                policy.coalesce,
                policy.misfire_grace
            ),
        ));
        let retry = &spec.retry;
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
        if !spec.tags.is_empty() {
            lines.push(("tags", safe(&spec.tags.join(", "))));
        }
    }
    let describe = |row: &Option<RunRow>| {
        row.as_ref().map_or_else(
            || "-".to_owned(),
            |r| {
                let at = r.finished_at.or(r.started_at).unwrap_or(r.claimed_at);
                let when = relative(at, now);
                format!("{} {} ({when})", run_name(&r.job_id, r.seq), r.status)
            },
        )
    };
    lines.push(("last run", describe(&stats.last_run)));
    lines.push(("last success", describe(&stats.last_success)));
    lines.push(("last failure", describe(&stats.last_failure)));
    lines.push(("failure streak", stats.failure_streak.to_string()));
    lines.push((
        "counts",
        format!(
            "{} runs ({} succeeded, {} failed), {} slots skipped, {} missed",
            stats.runs, stats.succeeded, stats.failed, stats.skipped, stats.missed
        ),
    ));
    for (i, problem) in job.problems.iter().enumerate() {
        let text = format!("{}:{}", row.spec_path, problem.located());
        lines.push((
            if i == 0 { "problems" } else { "" },
            out.paint(Style::Yellow, &safe(&text)),
        ));
    }

    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut human = format!("{}\n", out.paint(Style::Bold, id));
    for (key, value) in &lines {
        human.push_str(&format!("  {key:width$}  {value}\n"));
    }

    let data = json!({
        "id": id,
        "description": spec.and_then(|s| s.description.clone()),
        "spec_path": row.spec_path,
        "state": state.as_str(),
        "operator_state": {
            "state": row.state,
            "reason": row.state_reason,
            "by": row.state_by,
            "at": row.state_at.map(utc),
        },
        "enabled": spec.is_some_and(|s| s.enabled),
        "schedule": schedule.map(|s| json!({
            "expression": s.expression(),
            "kind": if spec.and_then(|x| x.schedule.as_ref()).is_some_and(|x| x.cron.is_some()) { "cron" } else { "every" },
            "description": s.describe(),
            "timezone": s.timezone().name(),
            "jitter": spec.and_then(|x| x.schedule.as_ref()).and_then(|x| x.jitter).map(|j| j.to_string()),
        })),
        "next_slots": tz.map(|tz| slots.iter().map(|slot| json!({
            "local": zoned(slot.at, tz),
            "utc": utc(slot.at),
            "note": slot.note.map(|n| n.code()),
        })).collect::<Vec<_>>()).unwrap_or_default(),
        // Env values stay out of every output; only their names are shown.
        "run": spec.map(|s| json!({
            "command": s.run.command,
            "shell": s.run.shell,
            "cwd": s.run.cwd,
            "env_names": s.run.env.keys().collect::<Vec<_>>(),
            "timeout": s.run.timeout.map(|t| t.to_string()),
            "kill_grace": s.run.kill_grace.to_string(),
            "user": s.run.user,
            "group": s.run.group,
            "limits": s.run.limits,
        })),
        "policy": spec.map(|s| json!(s.policy)),
        "retry": spec.map(|s| json!(s.retry)),
        "retention": spec.map(|s| json!(s.retention)),
        "tags": spec.map(|s| s.tags.clone()).unwrap_or_default(),
        "last_run": stats.last_run.as_ref().map(history::entry),
        "last_success": stats.last_success.as_ref().map(history::entry),
        "last_failure": stats.last_failure.as_ref().map(history::entry),
        "failure_streak": stats.failure_streak,
        "counts": {
            "runs": stats.runs,
            "succeeded": stats.succeeded,
            "failed": stats.failed,
            "skipped": stats.skipped,
            "missed": stats.missed,
        },
        "problems": job.problems,
    });
    Ok(Report::ok(data, human))
}
