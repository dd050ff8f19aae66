//! `jobsctl history [<id>]`: past runs, newest first (ties broken by seq), filtered by job, status and
//! time. Owns [`RunEntry`], a run as every command's `--json` shows it.

use chrono::{DateTime, Local, Utc};
use serde::Serialize;

use super::Ctx;
use super::output::{Output, Report, Style, Table, View, relative, ser};
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
    before: Option<i64>,
    upstream: Option<String>,
) -> Result<Report> {
    let now = ctx.clock.now();
    let since = since.map(|text| parse_since(text, now)).transpose()?;
    // Runs whose process died show as interrupted, not as running forever.
    let catalog = ctx.catalog_with_runs(id)?;
    let filtered =
        !statuses.is_empty() || since.is_some() || before.is_some() || upstream.is_some();
    let filter = HistoryFilter {
        job_id: id.map(str::to_owned),
        statuses,
        since,
        // Run numbers are per job: below N means something only within one job's runs.
        before: before.filter(|_| id.is_some()),
        upstream,
        limit: i64::from(limit),
    };
    let (rows, total) = catalog.store.history(&filter)?;
    let view = HistoryView {
        entries: rows.iter().map(RunEntry::new).collect(),
        total: total.min(HISTORY_COUNT_CAP),
        total_capped: total > HISTORY_COUNT_CAP,
        filtered,
        now,
    };
    Report::view(&view, &ctx.out)
}

/// The runs that matched, and how many there are in all (counted up to a cap).
#[derive(Serialize)]
struct HistoryView<'a> {
    entries: Vec<RunEntry<'a>>,
    total: i64,
    total_capped: bool,
    /// A status or `--since` filter was given: no entries means none matched, not none yet.
    #[serde(skip)]
    filtered: bool,
    #[serde(skip)]
    now: DateTime<Utc>,
}

impl View for HistoryView<'_> {
    fn render(&self, out: &Output) -> String {
        if self.entries.is_empty() {
            return if self.filtered {
                "no runs match\n"
            } else {
                "no runs yet\n"
            }
            .to_owned();
        }
        let mut table = Table::new(vec![
            "RUN", "TRIGGER", "STATUS", "STARTED", "DURATION", "EXIT", "ATTEMPTS", "ERROR",
        ]);
        for entry in &self.entries {
            let started = entry.started_at.unwrap_or(entry.claimed_at);
            table.row(vec![
                (run_name(entry.job_id, entry.run), Style::Bold),
                (entry.trigger_text(), Style::Plain),
                (entry.status.as_str().to_owned(), status_style(entry.status)),
                (
                    format!(
                        "{} ({})",
                        started.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"),
                        relative(started, self.now)
                    ),
                    Style::Plain,
                ),
                (
                    entry
                        .duration_ms
                        .map_or("-".into(), |ms| format!("{:.3} s", ms as f64 / 1000.0)),
                    Style::Plain,
                ),
                (entry.exit_text(), Style::Plain),
                (entry.attempts.to_string(), Style::Plain),
                (entry.message.unwrap_or_default().to_owned(), Style::Dim),
            ]);
        }
        let mut text = table.render(out);
        let shown = self.entries.len();
        if self.total_capped {
            text.push_str(&out.paint(
                Style::Dim,
                &format!("{shown} of more than {HISTORY_COUNT_CAP} runs shown; -n for more\n"),
            ));
        } else if self.total > shown as i64 {
            text.push_str(&out.paint(
                Style::Dim,
                &format!("{shown} of {} runs shown; -n for more\n", self.total),
            ));
        }
        text
    }
}

/// One run as `--json` shows it in `history`, `status` and `show`.
#[derive(Serialize)]
pub struct RunEntry<'a> {
    pub job_id: &'a str,
    pub run: i64,
    pub trigger: Trigger,
    #[serde(serialize_with = "ser::instant_opt")]
    pub slot: Option<DateTime<Utc>>,
    pub status: RunStatus,
    #[serde(serialize_with = "ser::instant")]
    pub claimed_at: DateTime<Utc>,
    #[serde(serialize_with = "ser::instant_opt")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ser::instant_opt")]
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub attempts: u32,
    pub slot_count: u64,
    pub replay_of: Option<i64>,
    pub run_dir: Option<&'a str>,
    /// The concurrency group the run holds a place in while in flight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<&'a str>,
    /// For a triggered run: the upstream run(s) that triggered it, `job#seq` comma-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<&'a str>,
    /// On a store several schedulers share: the node whose scheduler ran it (none for a manual run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<&'a str>,
    pub error: Option<RunError<'a>>,
    /// The run's message, with or without an error code (`history` shows it either way).
    #[serde(skip)]
    pub message: Option<&'a str>,
}

/// Why a run did not succeed: a stable code and the message for people.
#[derive(Serialize)]
pub struct RunError<'a> {
    pub code: &'a str,
    pub message: Option<&'a str>,
}

impl<'a> RunEntry<'a> {
    pub fn new(row: &'a RunRow) -> Self {
        let started_at = row.started_at;
        let finished_at = row.finished_at;
        Self {
            job_id: &row.job_id,
            run: row.seq,
            trigger: row.trigger,
            slot: row.slot,
            status: row.status,
            claimed_at: row.claimed_at,
            started_at,
            finished_at,
            duration_ms: finished_at
                .zip(started_at)
                .map(|(end, start)| (end - start).num_milliseconds()),
            exit_code: row.exit_code,
            signal: row.signal,
            attempts: row.attempts,
            slot_count: row.slot_count,
            replay_of: row.replay_of,
            run_dir: row.run_dir.as_deref(),
            group: row.group.as_deref(),
            upstream: row.upstream.as_deref(),
            node: row.node.as_deref(),
            error: row.error_code.as_deref().map(|code| RunError {
                code,
                message: row.message.as_deref(),
            }),
            message: row.message.as_deref(),
        }
    }

    /// The instant the run last moved: its end, else its start, else its claim.
    pub fn last_moved(&self) -> DateTime<Utc> {
        self.finished_at
            .or(self.started_at)
            .unwrap_or(self.claimed_at)
    }

    /// `replay_of` links both a replay and the catch-up retry of an interrupted run to their
    /// original; only the trigger says which of the two a run is.
    fn trigger_text(&self) -> String {
        match (self.replay_of, self.trigger, self.upstream) {
            (Some(original), Trigger::Catchup, _) => format!("retry of #{original}"),
            (Some(original), _, _) => format!("replay of #{original}"),
            (None, Trigger::After, Some(upstream)) => format!("after {upstream}"),
            (None, trigger, _) => trigger.as_str().to_owned(),
        }
    }

    fn exit_text(&self) -> String {
        match (self.exit_code, self.signal) {
            (Some(code), _) => code.to_string(),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => "-".into(),
        }
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
