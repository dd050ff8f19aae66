//! `jobsctl history [<id>]`: past runs, newest first (ties broken by seq), filtered by job, status and
//! time.

use chrono::{DateTime, Local, Utc};
use serde_json::{Value, json};

use super::entry::Ctx;
use super::output::{Report, Style, Table, relative};
use crate::clock::rfc3339;
use crate::duration::SpecDuration;
use crate::error::{Error, Result};
use crate::run::{RunStatus, Trigger, run_name};
use crate::store::{HISTORY_COUNT_CAP, HistoryFilter, RunRow};

pub fn run(
    ctx: &Ctx,
    id: Option<&str>,
    statuses: Vec<RunStatus>,
    limit: u32,
    since: Option<&str>,
) -> Result<Report> {
    let now = ctx.clock.now();
    let since = since.map(|text| parse_since(text, now)).transpose()?;
    // Runs whose process died show as interrupted, not as running forever.
    let catalog = super::entry::catalog_with_runs(ctx, id)?;
    let filter = HistoryFilter {
        job_id: id.map(str::to_owned),
        statuses: statuses.clone(),
        since,
        limit: i64::from(limit),
    };
    let (rows, total) = catalog.store.history(&filter)?;

    let mut table = Table::new(vec![
        "RUN", "TRIGGER", "STATUS", "STARTED", "DURATION", "EXIT", "ATTEMPTS", "ERROR",
    ]);
    for row in &rows {
        let started = row.started_at.or(Some(row.claimed_at));
        table.row(vec![
            (run_name(&row.job_id, row.seq), Style::Bold),
            (trigger_text(row), Style::Plain),
            (row.status.as_str().to_owned(), status_style(row.status)),
            (
                started.map_or("-".into(), |t| {
                    format!(
                        "{} ({})",
                        t.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"),
                        relative(t, now)
                    )
                }),
                Style::Plain,
            ),
            (
                duration_ms(row).map_or("-".into(), |ms| format!("{:.3} s", ms as f64 / 1000.0)),
                Style::Plain,
            ),
            (exit_text(row), Style::Plain),
            (row.attempts.to_string(), Style::Plain),
            (row.message.clone().unwrap_or_default(), Style::Dim),
        ]);
    }
    let filtered = !statuses.is_empty() || since.is_some();
    let human = if rows.is_empty() && filtered {
        "no runs match\n".to_owned()
    } else if rows.is_empty() {
        "no runs yet\n".to_owned()
    } else {
        let mut text = table.render(&ctx.out);
        if total > HISTORY_COUNT_CAP {
            text.push_str(&ctx.out.paint(
                Style::Dim,
                &format!(
                    "{} of more than {HISTORY_COUNT_CAP} runs shown; -n for more\n",
                    rows.len()
                ),
            ));
        } else if total > rows.len() as i64 {
            text.push_str(&ctx.out.paint(
                Style::Dim,
                &format!("{} of {total} runs shown; -n for more\n", rows.len()),
            ));
        }
        text
    };
    let entries: Vec<Value> = rows.iter().map(entry).collect();
    Ok(Report::ok(
        json!({
            "entries": entries,
            "total": total.min(HISTORY_COUNT_CAP),
            "total_capped": total > HISTORY_COUNT_CAP,
        }),
        human,
    ))
}

/// One history entry as `--json` shows it.
pub fn entry(row: &RunRow) -> Value {
    json!({
        "job_id": row.job_id,
        "run": row.seq,
        "trigger": row.trigger.as_str(),
        "slot": row.slot.map(rfc3339),
        "status": row.status.as_str(),
        "claimed_at": rfc3339(row.claimed_at),
        "started_at": row.started_at.map(rfc3339),
        "finished_at": row.finished_at.map(rfc3339),
        "duration_ms": duration_ms(row),
        "exit_code": row.exit_code,
        "signal": row.signal,
        "attempts": row.attempts,
        "slot_count": row.slot_count,
        "replay_of": row.replay_of,
        "run_dir": row.run_dir,
        "error": row.error_code.as_ref().map(|code| json!({ "code": code, "message": row.message })),
    })
}

fn duration_ms(row: &RunRow) -> Option<i64> {
    Some((row.finished_at? - row.started_at?).num_milliseconds())
}

/// `replay_of` links both a replay and the catch-up retry of an interrupted run to their original;
/// only the trigger says which of the two a run is.
fn trigger_text(row: &RunRow) -> String {
    match (row.replay_of, row.trigger) {
        (Some(original), Trigger::Catchup) => format!("retry of #{original}"),
        (Some(original), _) => format!("replay of #{original}"),
        (None, trigger) => trigger.as_str().to_owned(),
    }
}

fn exit_text(row: &RunRow) -> String {
    match (row.exit_code, row.signal) {
        (Some(code), _) => code.to_string(),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => "-".into(),
    }
}

pub fn status_style(status: RunStatus) -> Style {
    match status {
        RunStatus::Succeeded => Style::Green,
        RunStatus::Queued | RunStatus::Running => Style::Bold,
        RunStatus::Skipped | RunStatus::Missed | RunStatus::Cancelled => Style::Yellow,
        RunStatus::Failed | RunStatus::TimedOut | RunStatus::Interrupted => Style::Red,
    }
}

/// `--since`: an RFC 3339 instant, or a duration before now (`2h`, `7d`).
fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let ago: SpecDuration = text.parse().map_err(|_| Error::Usage {
        message: format!(
            "--since {text:?} is neither an RFC 3339 time nor a duration such as 2h or 7d"
        ),
    })?;
    Ok(now - chrono::Duration::milliseconds(ago.as_millis()))
}
