//! The typed job spec: what a validated spec file means. Field names, defaults and ranges mirror
//! `schemas/job.schema.json`; a test keeps the two in step.

use std::collections::BTreeMap;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};

use super::size::ByteSize;
use crate::duration::{Limit, SpecDuration};
use crate::schedule::{Schedule, parse_cron, parse_timezone};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    /// Upstream jobs whose runs trigger this one, each with the outcomes that do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<AfterSpec>,
    /// Fan-in: one run once every one of these has succeeded since this job's last such run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after_all: Vec<String>,
    pub run: RunSpec,
    #[serde(default)]
    pub policy: PolicySpec,
    #[serde(default)]
    pub retry: RetrySpec,
    #[serde(default)]
    pub retention: RetentionSpec,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Who is told about the job's runs, and of which events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<NotifierSpec>,
}

/// One upstream of `after:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AfterSpec {
    pub job: String,
    #[serde(default = "succeeded_only")]
    pub on: Vec<UpstreamOutcome>,
}

/// An upstream run's end that can trigger a downstream run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamOutcome {
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Interrupted,
}

impl UpstreamOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
        }
    }
}

fn succeeded_only() -> Vec<UpstreamOutcome> {
    vec![UpstreamOutcome::Succeeded]
}

impl JobSpec {
    /// The jobs whose runs can trigger this one, `after:` and `after_all:` together, each once.
    pub fn upstreams(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .after
            .iter()
            .map(|a| a.job.as_str())
            .chain(self.after_all.iter().map(String::as_str))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<SpecDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<SpecDuration>,
}

// The schedule module knows time, not specs: reading a spec's schedule fields into a `Schedule` lives
// here, so `spec` depends on `schedule` and never the reverse.
impl Schedule {
    /// Builds the schedule of a spec whose fields were already checked by the loader.
    pub fn from_spec(spec: &ScheduleSpec) -> Result<Self, String> {
        Self::build(spec, None)
    }

    /// As [`Schedule::from_spec`], reusing `cron` when the caller already parsed the pattern.
    pub fn build(spec: &ScheduleSpec, cron: Option<Arc<Cron>>) -> Result<Self, String> {
        let tz = match &spec.timezone {
            Some(name) => parse_timezone(name)?,
            None => Tz::UTC,
        };
        match (&spec.cron, spec.every) {
            (Some(pattern), None) => {
                let cron = match cron {
                    Some(cron) => cron,
                    None => parse_cron(pattern)?,
                };
                Ok(Self::cron(pattern, cron, tz))
            }
            (None, Some(every)) => {
                Self::every(every, spec.anchor.unwrap_or(DateTime::UNIX_EPOCH), tz)
            }
            _ => Err("a schedule needs exactly one of cron or every".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    #[serde(default = "dot")]
    pub cwd: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<SpecDuration>,
    #[serde(default = "ten_seconds")]
    pub kill_grace: SpecDuration,
    /// Each of `stdout.log` and `stderr.log` of a run stops growing here.
    #[serde(default = "two_hundred_fifty_six_mebibytes")]
    pub max_log_size: ByteSize,
    /// Run as this user (from /etc/passwd); only when `jobs` runs as root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// With `user`: this group (from /etc/group) instead of the user's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "RunLimits::is_empty")]
    pub limits: RunLimits,
    /// What becomes of processes an attempt leaves in its group when its main process exits.
    #[serde(default)]
    pub leftovers: Leftovers,
    /// On a shared store, the labels a node needs (all of them) to execute the job's runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

/// Resource limits set on each attempt's process (and inherited by what it starts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunLimits {
    /// Open file descriptors (RLIMIT_NOFILE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nofile: Option<u64>,
    /// Address space (RLIMIT_AS).
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub address_space: Option<ByteSize>,
    /// CPU time (RLIMIT_CPU), whole seconds; SIGXCPU at the limit, SIGKILL a second later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<SpecDuration>,
}

impl RunLimits {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// `run.leftovers`: a run's processes end with it (`kill`, the default), or, for the rare job that
/// means to start a daemon, are left running (`keep`), and output capture stops when the main process
/// exits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Leftovers {
    #[default]
    Kill,
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    Skip,
    Queue,
    Replace,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    #[serde(default = "one")]
    pub max_instances: u32,
    #[serde(default = "skip")]
    pub overlap: Overlap,
    #[serde(default = "yes")]
    pub coalesce: bool,
    #[serde(default = "five_minutes")]
    pub misfire_grace: Limit,
    /// The concurrency group (of the home's `config.yaml`) whose limit this job's runs count against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Default for PolicySpec {
    fn default() -> Self {
        Self {
            max_instances: one(),
            overlap: skip(),
            coalesce: true,
            misfire_grace: five_minutes(),
            group: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryOn {
    Failed,
    TimedOut,
    Interrupted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    #[serde(default = "one")]
    pub max_attempts: u32,
    #[serde(default = "ten_seconds")]
    pub backoff: SpecDuration,
    #[serde(default = "ten_minutes")]
    pub max_backoff: SpecDuration,
    #[serde(default = "failed_or_timed_out")]
    pub retry_on: Vec<RetryOn>,
}

impl Default for RetrySpec {
    fn default() -> Self {
        Self {
            max_attempts: one(),
            backoff: ten_seconds(),
            max_backoff: ten_minutes(),
            retry_on: failed_or_timed_out(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_days: Option<u32>,
}

fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn dot() -> String {
    ".".into()
}
fn skip() -> Overlap {
    Overlap::Skip
}
fn ten_seconds() -> SpecDuration {
    SpecDuration::from_millis(10_000)
}
fn ten_minutes() -> SpecDuration {
    SpecDuration::from_millis(600_000)
}
fn two_hundred_fifty_six_mebibytes() -> ByteSize {
    ByteSize::from_bytes(256 << 20)
}
fn five_minutes() -> Limit {
    Limit::Within(SpecDuration::from_millis(300_000))
}
fn failed_or_timed_out() -> Vec<RetryOn> {
    vec![RetryOn::Failed, RetryOn::TimedOut]
}

/// The events a notifier can listen for (`on:`). The first nine are a run's, the last three the
/// home's; a job's own notifiers take only a run's (a check refuses the others), and the home's
/// config names the home's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyOn {
    Started,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Interrupted,
    Missed,
    Skipped,
    /// The first success after one or more runs that did not succeed. A run's end is one event, so
    /// such a success is `recovered` and not also `succeeded`; a notifier listening for either hears it.
    Recovered,
    SpecInvalid,
    SchedulerStarted,
    SchedulerStopped,
}

impl NotifyOn {
    pub const ALL: [Self; 12] = [
        Self::Started,
        Self::Succeeded,
        Self::Failed,
        Self::TimedOut,
        Self::Cancelled,
        Self::Interrupted,
        Self::Missed,
        Self::Skipped,
        Self::Recovered,
        Self::SpecInvalid,
        Self::SchedulerStarted,
        Self::SchedulerStopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
            Self::Missed => "missed",
            Self::Skipped => "skipped",
            Self::Recovered => "recovered",
            Self::SpecInvalid => "spec_invalid",
            Self::SchedulerStarted => "scheduler_started",
            Self::SchedulerStopped => "scheduler_stopped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == text)
    }

    /// An event of the home (a spec turned invalid, the scheduler started or stopped), not of a run.
    pub fn is_home_event(self) -> bool {
        matches!(
            self,
            Self::SpecInvalid | Self::SchedulerStarted | Self::SchedulerStopped
        )
    }
}

/// What `on:` means when a notifier leaves it out: the outcomes someone must act on.
pub const DEFAULT_NOTIFY_ON: [NotifyOn; 4] = [
    NotifyOn::Failed,
    NotifyOn::TimedOut,
    NotifyOn::Interrupted,
    NotifyOn::Missed,
];

/// How long one delivery try may take when a notifier does not say.
pub const DEFAULT_NOTIFY_TIMEOUT: SpecDuration = SpecDuration::from_millis(10_000);

/// One entry of `notify:`. Written flat (`webhook: URL` beside its options), read into a target and
/// its options; the checks guarantee exactly one target, so the conversion never fails on a checked spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "NotifierFields", into = "NotifierFields")]
pub struct NotifierSpec {
    pub target: NotifyTarget,
    /// The events this notifier is sent. Empty for a ping, which follows its own protocol.
    pub on: Vec<NotifyOn>,
    /// How long one delivery try may take.
    pub timeout: SpecDuration,
}

impl NotifierSpec {
    /// Whether this notifier is sent `event`. A ping is not decided here: it is sent what its
    /// protocol has a signal for, whatever `on:` would say.
    pub fn listens_for(&self, event: NotifyOn) -> bool {
        if matches!(self.target, NotifyTarget::Ping { .. }) {
            return false;
        }
        self.on.contains(&event)
            || (event == NotifyOn::Recovered && self.on.contains(&NotifyOn::Succeeded))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum NotifyTarget {
    /// POST the notification as JSON (or as a chat message) to a URL.
    Webhook {
        url: HttpUrl,
        format: WebhookFormat,
        /// Quote this many of the run's last output lines.
        include_output: Option<u32>,
    },
    /// Run a program with the notification as JSON on its stdin.
    Command { argv: Vec<String> },
    /// A dead-man's-switch check, pinged by the healthchecks.io protocol.
    Ping { url: HttpUrl },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// The notification itself, per `schemas/notification.schema.json`.
    #[default]
    Json,
    /// `{"text": ...}`, as Slack, Mattermost and Rocket.Chat incoming webhooks take it.
    Slack,
}

/// A notifier as written: every field optional, so that the checks, not serde, say what is missing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifierFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    webhook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ping: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<WebhookFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    include_output: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout: Option<SpecDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on: Option<Vec<NotifyOn>>,
}

impl TryFrom<NotifierFields> for NotifierSpec {
    type Error = String;

    fn try_from(fields: NotifierFields) -> Result<Self, Self::Error> {
        let url = |text: String| HttpUrl::parse(&text).map_err(|(_, message)| message);
        let target = match (fields.webhook, fields.command, fields.ping) {
            (Some(webhook), None, None) => NotifyTarget::Webhook {
                url: url(webhook)?,
                format: fields.format.unwrap_or_default(),
                include_output: fields.include_output,
            },
            (None, Some(argv), None) => NotifyTarget::Command { argv },
            (None, None, Some(ping)) => NotifyTarget::Ping { url: url(ping)? },
            _ => return Err("a notifier needs exactly one of webhook, command or ping".into()),
        };
        let on = match (&target, fields.on) {
            (NotifyTarget::Ping { .. }, _) => Vec::new(),
            (_, Some(on)) => on,
            (_, None) => DEFAULT_NOTIFY_ON.to_vec(),
        };
        Ok(Self {
            target,
            on,
            timeout: fields.timeout.unwrap_or(DEFAULT_NOTIFY_TIMEOUT),
        })
    }
}

impl From<NotifierSpec> for NotifierFields {
    fn from(spec: NotifierSpec) -> Self {
        let mut fields = Self {
            timeout: Some(spec.timeout),
            ..Self::default()
        };
        match spec.target {
            NotifyTarget::Webhook {
                url,
                format,
                include_output,
            } => {
                fields.webhook = Some(url.into_string());
                fields.format = Some(format);
                fields.include_output = include_output;
                fields.on = Some(spec.on);
            }
            NotifyTarget::Command { argv } => {
                fields.command = Some(argv);
                fields.on = Some(spec.on);
            }
            NotifyTarget::Ping { url } => fields.ping = Some(url.into_string()),
        }
        fields
    }
}

/// A webhook or ping URL: `http` or `https`, a host, and nothing a request line cannot carry. Kept
/// as written; the parts are found again on demand, since a URL is read far less often than stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl(String);

/// The parts of an [`HttpUrl`], borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// `http` or `https`, as written.
    pub scheme: &'a str,
    /// What stood before `@` in the authority, if anything did.
    pub userinfo: Option<&'a str>,
    /// The host and its port, as written (`[::1]:8080`).
    pub host_port: &'a str,
    /// From the first `/` up to `?` or `#`; empty when there is none.
    pub path: &'a str,
    /// After `?`, up to `#`.
    pub query: Option<&'a str>,
}

impl HttpUrl {
    /// The URL, or a stable problem code and a message that completes "webhook: ...".
    pub fn parse(text: &str) -> Result<Self, (&'static str, String)> {
        parts_of(text)?;
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    pub fn parts(&self) -> UrlParts<'_> {
        // Only a parsed text becomes an `HttpUrl`, so splitting it again cannot fail; the fallback
        // keeps that a matter of this type rather than of a panic.
        parts_of(&self.0).unwrap_or(UrlParts {
            scheme: "",
            userinfo: None,
            host_port: "",
            path: "",
            query: None,
        })
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longer than any webhook or ping URL in use, and short enough for every server's request line.
const MAX_URL_LEN: usize = 2048;

fn parts_of(text: &str) -> Result<UrlParts<'_>, (&'static str, String)> {
    // A webhook's URL is its password: no message quotes it, since messages reach logs.
    let invalid = |why: &str| {
        (
            "notify_url_invalid",
            format!("not a URL such as https://hooks.example.com/path: {why}"),
        )
    };
    if text.len() > MAX_URL_LEN {
        return Err(invalid(&format!(
            "it is longer than {MAX_URL_LEN} characters"
        )));
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(invalid("it has no scheme (https://)"));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err((
            "notify_url_scheme",
            format!(
                "\"{scheme}\" is not http or https; notifications are sent by HTTP, so use an http:// or https:// URL"
            ),
        ));
    }
    if let Some(c) = rest
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
    {
        return Err(invalid(&format!(
            "it holds {}, which a URL cannot carry; percent-encode it",
            if c.is_whitespace() {
                "a space".to_string()
            } else {
                format!("the character {}", c.escape_default())
            }
        )));
    }
    let end_of_authority = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(end_of_authority);
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let Some((inside, after_bracket)) = bracketed.split_once(']') else {
            return Err(invalid("its IPv6 address has no closing ]"));
        };
        if inside.is_empty()
            || !inside
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(invalid("what is in [] is not an IPv6 address"));
        }
        match after_bracket.strip_prefix(':') {
            Some(port) => (inside, Some(port)),
            None if after_bracket.is_empty() => (inside, None),
            None => {
                return Err(invalid(
                    "something follows the IPv6 address that is not a port",
                ));
            }
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("it has no host"));
    }
    if !host_port.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '~' | '%'))
    {
        return Err(invalid("its host has characters no host name has"));
    }
    if let Some(port) = port
        && !(port.bytes().all(|b| b.is_ascii_digit()) && matches!(port.parse::<u16>(), Ok(1..)))
    {
        return Err(invalid("its port is not a number from 1 to 65535"));
    }
    let before_fragment = after.split('#').next().unwrap_or_default();
    let (path, query) = match before_fragment.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (before_fragment, None),
    };
    Ok(UrlParts {
        scheme,
        userinfo,
        host_port,
        path,
        query,
    })
}
