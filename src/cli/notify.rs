//! `jobsctl notify test <id>`: sends a test notification through each of a job's notifiers, straight
//! to them (not through the outbox, so an operator sees at once whether the wiring works), and prints
//! how each went. Must not write to the store.

use std::time::Instant;

use serde::Serialize;

use super::Ctx;
use super::output::{Output, Report, Style, Table, View};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::notifier::deliver::uuid_from;
use crate::notifier::{Envelope, Event, HomeFacts, Notification, Outcome, shown};

pub fn test(ctx: &Ctx, id: &str) -> Result<Report> {
    let now = ctx.clock.now();
    let catalog = Catalog::open(&ctx.home, now)?;
    let job = catalog.job(id)?;
    let notifiers = job
        .spec
        .as_ref()
        .map(|spec| spec.notify.clone())
        .unwrap_or_default();
    if notifiers.is_empty() {
        return Err(Error::NoNotifiers { id: id.to_owned() });
    }
    let host = crate::run::host();
    let facts = HomeFacts {
        job_id: Some(id.to_owned()),
        path: None,
        message: Some("a test notification from `jobsctl notify test`".into()),
    };
    let home_root = ctx.home.root().to_path_buf();
    // All at once, each bounded by its own timeout: one hung endpoint costs its timeout, not the sum.
    let results: Vec<TestResult> = std::thread::scope(|scope| {
        let tries: Vec<_> = notifiers
            .iter()
            .enumerate()
            .map(|(index, notifier)| {
                let envelope = Envelope {
                    delivery_id: uuid_from(&format!(
                        "test:{id}:{}:{index}",
                        crate::clock::rfc3339(now)
                    )),
                    at: now,
                    host: host.clone(),
                };
                let body = Notification::for_home(Event::Test, &envelope, &facts);
                let home_root = &home_root;
                scope.spawn(move || {
                    let began = Instant::now();
                    let outcome = crate::delivery::try_notifier(notifier, &body, home_root);
                    TestResult::new(shown(&notifier.target), &outcome, began.elapsed())
                })
            })
            .collect();
        tries
            .into_iter()
            .zip(&notifiers)
            .map(|(handle, notifier)| {
                handle.join().unwrap_or_else(|_| TestResult {
                    notifier: shown(&notifier.target),
                    delivered: false,
                    http_status: None,
                    detail: Some("the try panicked".into()),
                    took_ms: 0,
                })
            })
            .collect()
    });
    let failed = results.iter().filter(|r| !r.delivered).count();
    let total = results.len();
    let view = TestView {
        job_id: id.to_owned(),
        results,
    };
    let error = (failed > 0).then_some(Error::NotifyFailed { failed, total });
    Ok(Report::view(&view, &ctx.out)?.with_error(error))
}

#[derive(Serialize)]
struct TestView {
    job_id: String,
    results: Vec<TestResult>,
}

/// How one notifier took the test.
#[derive(Serialize)]
struct TestResult {
    /// The notifier, its URL masked.
    notifier: String,
    delivered: bool,
    http_status: Option<u16>,
    /// Why it failed; `None` when delivered.
    detail: Option<String>,
    took_ms: u64,
}

impl TestResult {
    fn new(notifier: String, outcome: &Outcome, took: std::time::Duration) -> Self {
        let took_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        match outcome {
            Outcome::Delivered { http_status } => Self {
                notifier,
                delivered: true,
                http_status: *http_status,
                detail: None,
                took_ms,
            },
            Outcome::Failed {
                reason,
                http_status,
                ..
            } => Self {
                notifier,
                delivered: false,
                http_status: *http_status,
                detail: Some(reason.clone()),
                took_ms,
            },
        }
    }
}

impl View for TestView {
    fn render(&self, out: &Output) -> String {
        let mut table = Table::new(vec!["NOTIFIER", "RESULT", "TOOK"]);
        for result in &self.results {
            let (text, style) = match (&result.detail, result.http_status) {
                (Some(detail), _) => (format!("failed: {detail}"), Style::Red),
                (None, Some(status)) => (format!("delivered (HTTP {status})"), Style::Green),
                (None, None) => ("delivered".to_owned(), Style::Green),
            };
            table.row(vec![
                (
                    crate::text::escape_controls(&result.notifier).into_owned(),
                    Style::Plain,
                ),
                (crate::text::escape_controls(&text).into_owned(), style),
                (format!("{} ms", result.took_ms), Style::Plain),
            ]);
        }
        table.render(out)
    }
}
