//! What a notification says: the facts of a run's event or of a home event, as the JSON of
//! `schemas/notification.schema.json`, its one-line summary, and the `{"text": ...}` body of a chat
//! webhook. Pure: must not read the clock, the disk or the store (the caller gathers the facts).
//!
//! Env values never enter a notification: no field of the facts or of the payload can hold one, and
//! the run's command is not part of it either (a command line can carry a token as well).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::artifacts::Stream;
use crate::duration::SpecDuration;
use crate::run::{RunStatus, Trigger, run_name};
use crate::spec::model::NotifyOn;

/// The version of the payload's shape; raised when a field changes meaning or goes away.
pub const NOTIFICATION_VERSION: u32 = 1;

/// What a notification is about: an event a notifier can listen for, or a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Started,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Interrupted,
    Missed,
    Skipped,
    Recovered,
    SpecInvalid,
    SchedulerStarted,
    SchedulerStopped,
    /// Sent by `jobsctl notify test` through every notifier of a job, whatever its `on:`.
    Test,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self.listened() {
            Some(on) => on.as_str(),
            None => "test",
        }
    }

    /// The `on:` value that selects this event; `None` for a test, which no `on:` names.
    pub fn listened(self) -> Option<NotifyOn> {
        Some(match self {
            Self::Started => NotifyOn::Started,
            Self::Succeeded => NotifyOn::Succeeded,
            Self::Failed => NotifyOn::Failed,
            Self::TimedOut => NotifyOn::TimedOut,
            Self::Cancelled => NotifyOn::Cancelled,
            Self::Interrupted => NotifyOn::Interrupted,
            Self::Missed => NotifyOn::Missed,
            Self::Skipped => NotifyOn::Skipped,
            Self::Recovered => NotifyOn::Recovered,
            Self::SpecInvalid => NotifyOn::SpecInvalid,
            Self::SchedulerStarted => NotifyOn::SchedulerStarted,
            Self::SchedulerStopped => NotifyOn::SchedulerStopped,
            Self::Test => return None,
        })
    }

    /// The event a run's end is: its status, except that a success after runs that did not
    /// succeed is `recovered`. `None` for a status that is not an end (queued, running).
    pub fn of_run_end(status: RunStatus, previous_failed: bool) -> Option<Self> {
        Some(match status {
            RunStatus::Succeeded if previous_failed => Self::Recovered,
            RunStatus::Succeeded => Self::Succeeded,
            RunStatus::Failed => Self::Failed,
            RunStatus::TimedOut => Self::TimedOut,
            RunStatus::Cancelled => Self::Cancelled,
            RunStatus::Interrupted => Self::Interrupted,
            RunStatus::Skipped => Self::Skipped,
            RunStatus::Missed => Self::Missed,
            RunStatus::Queued | RunStatus::Running => return None,
        })
    }
}

impl From<NotifyOn> for Event {
    fn from(on: NotifyOn) -> Self {
        match on {
            NotifyOn::Started => Self::Started,
            NotifyOn::Succeeded => Self::Succeeded,
            NotifyOn::Failed => Self::Failed,
            NotifyOn::TimedOut => Self::TimedOut,
            NotifyOn::Cancelled => Self::Cancelled,
            NotifyOn::Interrupted => Self::Interrupted,
            NotifyOn::Missed => Self::Missed,
            NotifyOn::Skipped => Self::Skipped,
            NotifyOn::Recovered => Self::Recovered,
            NotifyOn::SpecInvalid => Self::SpecInvalid,
            NotifyOn::SchedulerStarted => Self::SchedulerStarted,
            NotifyOn::SchedulerStopped => Self::SchedulerStopped,
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What every notification carries, whatever it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The same on every try of one notification, so that a receiver can drop repeats.
    pub delivery_id: String,
    /// When the event happened (a run's end, a start, a spec found invalid).
    pub at: DateTime<Utc>,
    /// The host the scheduler (or the manual run) ran on.
    pub host: String,
}

/// The facts of a run that a run's notification reports. No field holds an env value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFacts {
    pub job_id: String,
    pub run: i64,
    pub status: RunStatus,
    pub trigger: Trigger,
    pub slot: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: Option<ErrorFacts>,
    /// Attempts made so far (0 for a slot that never ran).
    pub attempts: u32,
    /// Where the run's directory is, as the caller wants it shown.
    pub run_dir: Option<String>,
    /// The run's last output lines, oldest first; only as many as a notifier's `include_output` asks
    /// are sent.
    pub output: Vec<OutputLine>,
}

/// The error a run ended with: its stable code and its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFacts {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputLine {
    pub stream: Stream,
    pub line: String,
}

/// The facts of a home event (`spec_invalid`, `scheduler_started`, `scheduler_stopped`) or of a test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HomeFacts {
    /// The job it concerns, if one: the spec that turned invalid, the job a test is sent for.
    pub job_id: Option<String>,
    /// The file it concerns, if one: the spec or config that turned invalid.
    pub path: Option<String>,
    /// What happened, for people: the problems of an invalid spec, why the scheduler stopped.
    pub message: Option<String>,
}

/// One notification, as sent to a webhook or on a command's stdin. Every field is always present
/// (null when it does not apply), so every notification has the same shape. Its fields are facts of
/// the run or the home, never its spec's env values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub notification_version: u32,
    pub event: Event,
    pub delivery_id: String,
    pub at: String,
    pub host: String,
    /// One line for people: `nightly-report#42 failed: exit code 1 after 3 attempts (2m5s)`.
    pub summary: String,
    pub job_id: Option<String>,
    pub run: Option<i64>,
    pub name: Option<String>,
    pub status: Option<RunStatus>,
    pub trigger: Option<Trigger>,
    pub slot: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: Option<ErrorFacts>,
    pub attempts: Option<u32>,
    pub run_dir: Option<String>,
    /// The last output lines, when the notifier asked for them; null otherwise.
    pub output: Option<Vec<OutputLine>>,
    pub path: Option<String>,
    pub message: Option<String>,
}

/// Instants as everywhere else in `jobs`: RFC 3339, UTC, milliseconds.
fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Notification {
    /// The notification of a run's `event`, quoting the last `include_output` lines of its output.
    pub fn for_run(
        event: Event,
        envelope: &Envelope,
        run: &RunFacts,
        include_output: Option<u32>,
    ) -> Self {
        let output = include_output.map(|n| {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            run.output[run.output.len().saturating_sub(n)..].to_vec()
        });
        let mut notification = Self {
            notification_version: NOTIFICATION_VERSION,
            event,
            delivery_id: envelope.delivery_id.clone(),
            at: instant(envelope.at),
            host: envelope.host.clone(),
            summary: String::new(),
            job_id: Some(run.job_id.clone()),
            run: Some(run.run),
            name: Some(run_name(&run.job_id, run.run)),
            status: Some(run.status),
            trigger: Some(run.trigger),
            slot: run.slot.map(instant),
            started_at: run.started_at.map(instant),
            finished_at: run.finished_at.map(instant),
            duration_ms: run.duration_ms,
            exit_code: run.exit_code,
            signal: run.signal,
            error: run.error.clone(),
            attempts: Some(run.attempts),
            run_dir: run.run_dir.clone(),
            output,
            path: None,
            message: None,
        };
        notification.summary = notification.describe();
        notification
    }

    /// The notification of a home event, or of a test.
    pub fn for_home(event: Event, envelope: &Envelope, home: &HomeFacts) -> Self {
        let mut notification = Self {
            notification_version: NOTIFICATION_VERSION,
            event,
            delivery_id: envelope.delivery_id.clone(),
            at: instant(envelope.at),
            host: envelope.host.clone(),
            summary: String::new(),
            job_id: home.job_id.clone(),
            run: None,
            name: None,
            status: None,
            trigger: None,
            slot: None,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            exit_code: None,
            signal: None,
            error: None,
            attempts: None,
            run_dir: None,
            output: None,
            path: home.path.clone(),
            message: home.message.clone(),
        };
        notification.summary = notification.describe();
        notification
    }

    /// The JSON body of a webhook and the stdin of a command.
    pub fn to_json(&self) -> String {
        // A struct of strings, numbers and enums always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The body of a `format: slack` webhook: `{"text": ...}`, which Slack, Mattermost and Rocket.Chat
    /// incoming webhooks accept.
    pub fn slack_body(&self) -> String {
        serde_json::json!({ "text": self.slack_text() }).to_string()
    }

    /// The message of a chat webhook: the summary in bold, a line of facts, the output in a code
    /// block. `&`, `<` and `>` are escaped as Slack asks, so nothing a job printed becomes a mention
    /// or a link.
    pub fn slack_text(&self) -> String {
        let mut text = format!("*{}*", slack_escape(&self.summary));
        let mut facts = vec![format!("host {}", self.host)];
        if let Some(trigger) = self.trigger {
            facts.push(format!("trigger {}", trigger.as_str()));
        }
        if let Some(slot) = &self.slot {
            facts.push(format!("slot {slot}"));
        }
        if let Some(dir) = &self.run_dir {
            facts.push(format!("run directory {dir}"));
        }
        if let Some(path) = &self.path {
            facts.push(format!("file {path}"));
        }
        text.push('\n');
        text.push_str(&slack_escape(&facts.join(" · ")));
        if let Some(message) = &self.message {
            text.push('\n');
            text.push_str(&slack_escape(message));
        }
        if let Some(output) = self.output.as_ref().filter(|lines| !lines.is_empty()) {
            text.push_str("\n```\n");
            for line in output {
                // A line of backticks would end the block early.
                text.push_str(&slack_escape(&line.line).replace("```", "`\u{200b}``"));
                text.push('\n');
            }
            text.push_str("```");
        }
        text
    }

    fn describe(&self) -> String {
        let name = self
            .name
            .clone()
            .or_else(|| self.job_id.clone())
            .unwrap_or_default();
        let took = self
            .duration_ms
            .map(|ms| format!(" ({})", human_duration(ms)))
            .unwrap_or_default();
        let attempts = match self.attempts {
            Some(n) if n > 1 => format!(" after {n} attempts"),
            _ => String::new(),
        };
        let why = if let Some(code) = self.exit_code {
            format!("exit code {code}")
        } else if let Some(signal) = self.signal {
            format!("killed by signal {signal}")
        } else if let Some(error) = &self.error {
            error.message.clone()
        } else {
            "no exit status recorded".into()
        };
        let slot = self.slot.as_deref().unwrap_or("-");
        match self.event {
            Event::Started => format!("{name} started"),
            Event::Succeeded => format!("{name} succeeded{took}"),
            Event::Recovered => format!("{name} succeeded again{took}, after runs that did not"),
            Event::Failed => format!("{name} failed: {why}{attempts}{took}"),
            Event::TimedOut => format!("{name} timed out{attempts}{took}"),
            Event::Cancelled => format!("{name} was cancelled{took}"),
            Event::Interrupted => match &self.error {
                Some(error) => format!("{name} was interrupted: {}", error.message),
                None => format!("{name} was interrupted"),
            },
            Event::Missed => format!("{name}: the slot {slot} was missed"),
            Event::Skipped => format!("{name}: the slot {slot} was skipped"),
            Event::SpecInvalid => {
                let what = match (&self.job_id, &self.path) {
                    (Some(job), _) => format!("the spec of {job}"),
                    (None, Some(path)) => path.clone(),
                    (None, None) => "a spec".into(),
                };
                format!("{what} turned invalid; the last good version stays in use")
            }
            Event::SchedulerStarted => format!("the scheduler started on {}", self.host),
            Event::SchedulerStopped => format!("the scheduler on {} stopped", self.host),
            Event::Test => match &self.job_id {
                Some(job) => format!("a test notification for {job}, sent by jobsctl notify test"),
                None => "a test notification, sent by jobsctl notify test".into(),
            },
        }
    }
}

/// A duration as people read it: whole seconds past a second (`2m5s`), milliseconds below.
fn human_duration(ms: i64) -> String {
    let ms = u64::try_from(ms).unwrap_or(0);
    let shown = if ms >= 1000 { ms / 1000 * 1000 } else { ms };
    SpecDuration::from_millis(shown).to_string()
}

fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The problems of an invalid file as one line for people, each with its line number where it has
/// one: what a `spec_invalid` notification says happened.
pub fn problems_message<'a>(problems: impl IntoIterator<Item = (Option<u64>, &'a str)>) -> String {
    let parts: Vec<String> = problems
        .into_iter()
        .map(|(line, message)| match line {
            Some(line) => format!("line {line}: {message}"),
            None => message.to_owned(),
        })
        .collect();
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn envelope() -> Envelope {
        Envelope {
            delivery_id: "d-1".into(),
            at: at("2026-11-22T03:00:05Z"),
            host: "web1".into(),
        }
    }

    fn failed_run() -> RunFacts {
        RunFacts {
            job_id: "backup".into(),
            run: 42,
            status: RunStatus::Failed,
            trigger: Trigger::Schedule,
            slot: Some(at("2026-11-22T03:00:00Z")),
            started_at: Some(at("2026-11-22T03:00:00.250Z")),
            finished_at: Some(at("2026-11-22T03:02:05.750Z")),
            duration_ms: Some(125_500),
            exit_code: Some(3),
            signal: None,
            error: None,
            attempts: 2,
            run_dir: Some("runs/backup/42".into()),
            output: (1..=5)
                .map(|i| OutputLine {
                    stream: Stream::Stderr,
                    line: format!("line {i}"),
                })
                .collect(),
        }
    }

    #[test]
    fn a_failed_run_reads_as_one_line() {
        let n = Notification::for_run(Event::Failed, &envelope(), &failed_run(), None);
        assert_eq!(
            n.summary,
            "backup#42 failed: exit code 3 after 2 attempts (2m5s)"
        );
        assert_eq!(n.slot.as_deref(), Some("2026-11-22T03:00:00.000Z"));
        assert_eq!(n.output, None, "no output unless asked");
    }

    #[test]
    fn include_output_quotes_the_last_lines_only() {
        let n = Notification::for_run(Event::Failed, &envelope(), &failed_run(), Some(2));
        let lines: Vec<_> = n
            .output
            .unwrap_or_default()
            .into_iter()
            .map(|l| l.line)
            .collect();
        assert_eq!(lines, ["line 4", "line 5"]);
        let all = Notification::for_run(Event::Failed, &envelope(), &failed_run(), Some(1000));
        assert_eq!(all.output.map(|o| o.len()), Some(5));
    }

    #[test]
    fn every_field_is_present_even_when_null() {
        let n = Notification::for_home(Event::SchedulerStarted, &envelope(), &HomeFacts::default());
        let json: serde_json::Value = serde_json::from_str(&n.to_json()).unwrap_or_default();
        let object = json.as_object().cloned().unwrap_or_default();
        assert_eq!(object.len(), 23, "{json}");
        assert!(json["run"].is_null() && json["output"].is_null());
        assert_eq!(json["summary"], "the scheduler started on web1");
    }

    #[test]
    fn a_run_end_is_one_event_and_a_success_after_failures_is_recovered() {
        assert_eq!(
            Event::of_run_end(RunStatus::Succeeded, true),
            Some(Event::Recovered)
        );
        assert_eq!(
            Event::of_run_end(RunStatus::Succeeded, false),
            Some(Event::Succeeded)
        );
        assert_eq!(Event::of_run_end(RunStatus::Running, false), None);
        for on in NotifyOn::ALL {
            assert_eq!(Event::from(on).listened(), Some(on));
            assert_eq!(Event::from(on).as_str(), on.as_str());
        }
        assert_eq!(Event::Test.as_str(), "test");
    }

    #[test]
    fn the_slack_text_escapes_what_slack_would_read_as_markup() {
        let mut run = failed_run();
        run.output = vec![OutputLine {
            stream: Stream::Stdout,
            line: "<!channel> a & b ```".into(),
        }];
        let n = Notification::for_run(Event::Failed, &envelope(), &run, Some(10));
        let text = n.slack_text();
        assert!(text.starts_with("*backup#42 failed: exit code 3"), "{text}");
        assert!(text.contains("&lt;!channel&gt; a &amp; b"), "{text}");
        assert!(!text.contains("<!channel>"), "{text}");
        assert_eq!(text.matches("```").count(), 2, "{text}");
        let body: serde_json::Value = serde_json::from_str(&n.slack_body()).unwrap_or_default();
        assert_eq!(body["text"], text);
        assert_eq!(body.as_object().map(|o| o.len()), Some(1));
    }
}
