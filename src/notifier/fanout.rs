//! Which notifications an event makes: one per notifier that hears it, each with a delivery id that
//! is the same whoever computes it and however often (so an event recorded twice is owed once). Pure:
//! must not read the clock, the disk or the store; the store calls it inside the transaction that
//! records the event, and writes what it returns to the outbox.

use chrono::{DateTime, Utc};

use super::deliver::{PingSignal, uuid_from};
use super::payload::{Envelope, Event, HomeFacts, Notification, RunFacts};
use crate::spec::model::{NotifierSpec, NotifyTarget};

/// One notification owed to one notifier, as the outbox keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub delivery_id: String,
    /// The run it is about, `None` for a home event.
    pub run: Option<(String, i64)>,
    pub event: Event,
    pub notifier: NotifierSpec,
    /// Names the endpoint (a URL's scheme, host and port; a command's program), so that the deliverer
    /// can keep one slow endpoint from taking every delivery slot. Holds no secret.
    pub endpoint: String,
    pub body: Notification,
    pub at: DateTime<Utc>,
}

/// What happened to a run: its command started, or it ended (the end is its status, read from
/// `run.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEvent {
    Started,
    Ended {
        /// The job's last run before this one that ran and ended did not succeed: a success now is
        /// `recovered`.
        previous_failed: bool,
    },
}

/// The notifications `what` makes for a run of a job with `notifiers`, delivered from `host`.
pub fn for_run(
    what: RunEvent,
    run: &RunFacts,
    notifiers: &[NotifierSpec],
    host: &str,
    at: DateTime<Utc>,
) -> Vec<Outgoing> {
    let event = match what {
        RunEvent::Started => Some(Event::Started),
        RunEvent::Ended { previous_failed } => Event::of_run_end(run.status, previous_failed),
    };
    let Some(event) = event else {
        return Vec::new();
    };
    notifiers
        .iter()
        .enumerate()
        .filter(|(_, notifier)| hears(notifier, event, run.exit_code))
        .map(|(index, notifier)| {
            let delivery_id = uuid_from(&format!(
                "delivery:{}#{}:{}:{index}",
                run.job_id,
                run.run,
                event.as_str()
            ));
            let envelope = Envelope {
                delivery_id: delivery_id.clone(),
                at,
                host: host.to_owned(),
            };
            Outgoing {
                delivery_id,
                run: Some((run.job_id.clone(), run.run)),
                event,
                notifier: notifier.clone(),
                endpoint: endpoint(&notifier.target),
                // The output is quoted when the notification is sent (the deliverer reads the run's
                // events), so the outbox never holds a copy of it.
                body: Notification::for_run(event, &envelope, run, None),
                at,
            }
        })
        .collect()
}

/// The notifications of a home event for the home's `notifiers`. `key` names this occurrence of the
/// event (the file and its hash for a spec turned invalid; the scheduler and its start for a start or
/// stop), so the same occurrence is owed once however many processes record it.
pub fn for_home(
    event: Event,
    home: &HomeFacts,
    key: &str,
    notifiers: &[NotifierSpec],
    host: &str,
    at: DateTime<Utc>,
) -> Vec<Outgoing> {
    notifiers
        .iter()
        .enumerate()
        .filter(|(_, notifier)| hears(notifier, event, None))
        .map(|(index, notifier)| {
            let delivery_id = uuid_from(&format!("delivery:home:{}:{key}:{index}", event.as_str()));
            let envelope = Envelope {
                delivery_id: delivery_id.clone(),
                at,
                host: host.to_owned(),
            };
            Outgoing {
                delivery_id,
                run: None,
                event,
                notifier: notifier.clone(),
                endpoint: endpoint(&notifier.target),
                body: Notification::for_home(event, &envelope, home),
                at,
            }
        })
        .collect()
}

/// Whether `notifier` is sent `event`: by its `on:`, or for a ping, whenever its protocol has a
/// signal for the event.
fn hears(notifier: &NotifierSpec, event: Event, exit_code: Option<i32>) -> bool {
    match (&notifier.target, event.listened()) {
        (NotifyTarget::Ping { .. }, _) => PingSignal::for_event(event, exit_code).is_some(),
        (_, Some(on)) => notifier.listens_for(on),
        (_, None) => true,
    }
}

/// The endpoint a notifier sends to, without its path or query (where tokens live).
pub fn endpoint(target: &NotifyTarget) -> String {
    match target {
        NotifyTarget::Webhook { url, .. } | NotifyTarget::Ping { url } => {
            let parts = url.parts();
            format!("{}://{}", parts.scheme, parts.host_port)
        }
        NotifyTarget::Command { argv } => {
            format!("command:{}", argv.first().map_or("", String::as_str))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::SpecDuration;
    use crate::run::{RunStatus, Trigger};
    use crate::spec::model::{HttpUrl, NotifyOn, WebhookFormat};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn url(text: &str) -> HttpUrl {
        HttpUrl::parse(text).unwrap_or_else(|_| panic!("a url: {text}"))
    }

    fn webhook(on: &[NotifyOn]) -> NotifierSpec {
        NotifierSpec {
            target: NotifyTarget::Webhook {
                url: url("https://hooks.example.com/services/T0/B0/secret"),
                format: WebhookFormat::Json,
                include_output: None,
            },
            on: on.to_vec(),
            timeout: SpecDuration::from_millis(10_000),
        }
    }

    fn ping() -> NotifierSpec {
        NotifierSpec {
            target: NotifyTarget::Ping {
                url: url("https://hc.example.com/ping/abc"),
            },
            on: Vec::new(),
            timeout: SpecDuration::from_millis(10_000),
        }
    }

    fn run(status: RunStatus, exit_code: Option<i32>) -> RunFacts {
        RunFacts {
            job_id: "backup".into(),
            run: 7,
            status,
            trigger: Trigger::Schedule,
            slot: Some(at("2026-11-22T03:00:00Z")),
            started_at: None,
            finished_at: None,
            duration_ms: None,
            exit_code,
            signal: None,
            error: None,
            attempts: 1,
            run_dir: None,
            output: Vec::new(),
        }
    }

    const NOW: &str = "2026-11-22T03:00:05Z";

    fn events(out: &[Outgoing]) -> Vec<(usize, Event)> {
        out.iter()
            .map(|o| {
                let index = usize::from(matches!(o.notifier.target, NotifyTarget::Ping { .. }));
                (index, o.event)
            })
            .collect()
    }

    #[test]
    fn the_default_on_hears_failures_and_not_successes_and_a_ping_hears_both() {
        let notifiers = [webhook(&crate::spec::model::DEFAULT_NOTIFY_ON), ping()];
        let ended = RunEvent::Ended {
            previous_failed: false,
        };
        let failed = for_run(
            ended,
            &run(RunStatus::Failed, Some(2)),
            &notifiers,
            "web1",
            at(NOW),
        );
        assert_eq!(events(&failed), [(0, Event::Failed), (1, Event::Failed)]);
        let ok = for_run(
            ended,
            &run(RunStatus::Succeeded, Some(0)),
            &notifiers,
            "web1",
            at(NOW),
        );
        assert_eq!(events(&ok), [(1, Event::Succeeded)]);
        let started = for_run(
            RunEvent::Started,
            &run(RunStatus::Running, None),
            &notifiers,
            "web1",
            at(NOW),
        );
        assert_eq!(events(&started), [(1, Event::Started)]);
    }

    #[test]
    fn a_success_after_a_failure_is_recovered_for_either_listener() {
        let notifiers = [
            webhook(&[NotifyOn::Recovered]),
            webhook(&[NotifyOn::Failed]),
        ];
        let out = for_run(
            RunEvent::Ended {
                previous_failed: true,
            },
            &run(RunStatus::Succeeded, Some(0)),
            &notifiers,
            "web1",
            at(NOW),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event, Event::Recovered);
        assert_eq!(out[0].body.summary.split(' ').next(), Some("backup#7"));
    }

    #[test]
    fn delivery_ids_are_stable_and_distinct_per_notifier_and_event() {
        let notifiers = [webhook(&[NotifyOn::Failed]), webhook(&[NotifyOn::Failed])];
        let failed = run(RunStatus::Failed, Some(1));
        let ended = RunEvent::Ended {
            previous_failed: false,
        };
        let a = for_run(ended, &failed, &notifiers, "web1", at(NOW));
        let b = for_run(
            ended,
            &failed,
            &notifiers,
            "web2",
            at("2026-11-22T04:00:00Z"),
        );
        assert_eq!(a.len(), 2);
        assert_eq!(
            a[0].delivery_id, b[0].delivery_id,
            "the same event, the same id"
        );
        assert_ne!(a[0].delivery_id, a[1].delivery_id);
        assert_eq!(a[0].body.delivery_id, a[0].delivery_id);
    }

    #[test]
    fn the_endpoint_key_carries_no_path_or_token() {
        let key = endpoint(&webhook(&[]).target);
        assert_eq!(key, "https://hooks.example.com");
    }

    #[test]
    fn home_events_reach_the_notifiers_that_listen() {
        let notifiers = [webhook(&[NotifyOn::SpecInvalid]), ping()];
        let facts = HomeFacts {
            path: Some("jobs/a.yaml".into()),
            ..HomeFacts::default()
        };
        let out = for_home(
            Event::SpecInvalid,
            &facts,
            "jobs/a.yaml:h1",
            &notifiers,
            "web1",
            at(NOW),
        );
        assert_eq!(events(&out), [(0, Event::SpecInvalid)]);
        let again = for_home(
            Event::SpecInvalid,
            &facts,
            "jobs/a.yaml:h1",
            &notifiers,
            "web1",
            at(NOW),
        );
        assert_eq!(out[0].delivery_id, again[0].delivery_id);
    }
}
