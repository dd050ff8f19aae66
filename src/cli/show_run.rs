//! `jobsctl show <id> <run>`: one run in detail, with the notifications it owed and every try of
//! each, the same value for people and for `--json`. Must not change the run or its outbox.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Ctx;
use super::history::RunEntry;
use super::output::{Output, Report, Style, View, relative};
use crate::error::{Error, Result};
use crate::run::run_name;
use crate::store::{DeliveryState, NotificationRecord};
use crate::text::escape_controls;

pub fn run(ctx: &Ctx, id: &str, seq: i64) -> Result<Report> {
    let now = ctx.clock.now();
    let catalog = ctx.catalog_with_runs(Some(id))?;
    let row = catalog
        .store
        .run_row(id, seq)?
        .ok_or_else(|| Error::RunNotFound {
            id: id.to_owned(),
            seq,
        })?;
    let notifications = catalog.store.notifications_of_run(id, seq)?;
    let view = RunDetail {
        run: RunEntry::new(&row),
        notifications,
        now,
    };
    Report::view(&view, &ctx.out)
}

#[derive(Serialize)]
struct RunDetail<'a> {
    run: RunEntry<'a>,
    notifications: Vec<NotificationRecord>,
    #[serde(skip)]
    now: DateTime<Utc>,
}

fn safe(text: &str) -> String {
    escape_controls(text).into_owned()
}

impl View for RunDetail<'_> {
    fn render(&self, out: &Output) -> String {
        let run = &self.run;
        let mut lines: Vec<(&str, String)> = vec![
            ("status", run.status.as_str().to_owned()),
            ("trigger", run.trigger.as_str().to_owned()),
        ];
        if let Some(slot) = run.slot {
            lines.push(("slot", crate::clock::rfc3339(slot)));
        }
        if let Some(started) = run.started_at {
            lines.push((
                "started",
                format!(
                    "{} ({})",
                    crate::clock::rfc3339(started),
                    relative(started, self.now)
                ),
            ));
        }
        if let Some(ms) = run.duration_ms {
            let ms = u64::try_from(ms).unwrap_or(0);
            lines.push((
                "duration",
                crate::duration::SpecDuration::from_millis(ms).to_string(),
            ));
        }
        match (run.exit_code, run.signal) {
            (Some(code), _) => lines.push(("exit", code.to_string())),
            (None, Some(signal)) => lines.push(("exit", format!("signal {signal}"))),
            (None, None) => {}
        }
        lines.push(("attempts", run.attempts.to_string()));
        if let Some(node) = run.node {
            lines.push(("node", safe(node)));
        }
        if let Some(error) = &run.error {
            let text = match error.message {
                Some(message) => format!("{}: {}", error.code, message),
                None => error.code.to_owned(),
            };
            lines.push(("error", safe(&text)));
        }
        if let Some(dir) = run.run_dir {
            lines.push(("run dir", safe(dir)));
        }
        if self.notifications.is_empty() {
            lines.push(("notified", "nothing owed".into()));
        }
        for (i, notification) in self.notifications.iter().enumerate() {
            lines.push((
                if i == 0 { "notified" } else { "" },
                self.notification_text(notification, out),
            ));
            for tried in &notification.tries {
                let how = match (tried.http_status, &tried.detail) {
                    (_, Some(detail)) => safe(detail),
                    (Some(status), None) => format!("HTTP {status}"),
                    (None, None) => "ok".to_owned(),
                };
                lines.push((
                    "",
                    format!(
                        "  {} {} by {} in {} ms: {how}",
                        tried.event,
                        relative(tried.at, self.now),
                        safe(&tried.by),
                        tried.took_ms
                    ),
                ));
            }
        }
        let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut human = format!(
            "{}\n",
            out.paint(Style::Bold, &run_name(run.job_id, run.run))
        );
        for (key, value) in &lines {
            human.push_str(&format!("  {key:width$}  {value}\n"));
        }
        human
    }
}

impl RunDetail<'_> {
    fn notification_text(&self, notification: &NotificationRecord, out: &Output) -> String {
        let state = match notification.state {
            DeliveryState::Delivered => out.paint(Style::Green, "delivered"),
            DeliveryState::GivenUp => out.paint(Style::Red, "given up"),
            DeliveryState::Pending => {
                let next = notification
                    .next_try_at
                    .map(|at| format!(", next try {}", relative(at, self.now)))
                    .unwrap_or_default();
                out.paint(Style::Yellow, &format!("pending{next}"))
            }
        };
        format!(
            "{} to {}: {state} after {} tries",
            notification.event,
            safe(&notification.notifier),
            notification.tries.len()
        )
    }
}
