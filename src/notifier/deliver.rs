//! One delivery try of one notification: a webhook POST, a notifier command, a healthchecks ping.
//! Synchronous and bounded by its timeout, for a blocking thread; answers with what happened and
//! whether another try could help. Must not retry, sleep between tries or record anything (the
//! caller keeps the outbox), and must never put a URL's token into what it answers.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process_group, waitid};
use ureq::tls::{RootCerts, TlsConfig};

use super::mask::mask_in;
use super::payload::{Event, Notification};
use crate::spec::model::{HttpUrl, WebhookFormat};

/// The header that names a notification's event.
pub const EVENT_HEADER: &str = "X-Jobs-Event";
/// The header that carries the delivery id, the same on every try.
pub const DELIVERY_HEADER: &str = "X-Jobs-Delivery";

/// How much of an endpoint's answer or a command's stderr a failure quotes.
const QUOTED_BYTES: usize = 300;

/// What one try came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint took it (HTTP 2xx), or the command exited 0 (`http_status` is then `None`).
    Delivered { http_status: Option<u16> },
    /// It did not. `reason` is short, lowercase and safe to show (URLs masked); `retryable` says
    /// whether another try could go otherwise (a 503, a timeout) or not (a 404, no such program).
    Failed {
        reason: String,
        retryable: bool,
        http_status: Option<u16>,
    },
}

impl Outcome {
    pub fn is_delivered(&self) -> bool {
        matches!(self, Self::Delivered { .. })
    }

    fn failed(reason: impl Into<String>, retryable: bool) -> Self {
        Self::Failed {
            reason: reason.into(),
            retryable,
            http_status: None,
        }
    }
}

/// POSTs `notification` to `url`: the notification as JSON, or `{"text": ...}` for `format: slack`,
/// with [`EVENT_HEADER`] and [`DELIVERY_HEADER`], within `timeout` for the whole exchange.
pub fn webhook(
    url: &HttpUrl,
    notification: &Notification,
    format: WebhookFormat,
    timeout: Duration,
) -> Outcome {
    let body = match format {
        WebhookFormat::Json => notification.to_json(),
        WebhookFormat::Slack => notification.slack_body(),
    };
    let answer = agent()
        .post(url.as_str())
        .config()
        .timeout_global(Some(timeout))
        .build()
        .header("Content-Type", "application/json")
        .header(EVENT_HEADER, notification.event.as_str())
        .header(DELIVERY_HEADER, notification.delivery_id.as_str())
        .send(body.as_str());
    judge(url, answer, timeout)
}

/// A signal of the healthchecks.io pinging protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingSignal {
    /// `URL/start`: a run started; the check times how long it takes.
    Start,
    /// `URL`: a run succeeded.
    Success,
    /// `URL/fail`: a run failed without an exit code, timed out, was cancelled or interrupted, or
    /// its slot was missed.
    Fail,
    /// `URL/<code>`: a run exited with this non-zero code, which the check records.
    ExitCode(u8),
    /// `URL/log`: recorded by the check without changing its state; what a test sends.
    Log,
}

impl PingSignal {
    /// The signal a ping sends for `event`, or `None` when it sends nothing (a skipped slot, whose
    /// run is still in flight and will signal; a home event). `on:` plays no part.
    pub fn for_event(event: Event, exit_code: Option<i32>) -> Option<Self> {
        Some(match event {
            Event::Started => Self::Start,
            Event::Succeeded | Event::Recovered => Self::Success,
            Event::Failed => match exit_code.and_then(|code| u8::try_from(code).ok()) {
                Some(code @ 1..) => Self::ExitCode(code),
                _ => Self::Fail,
            },
            Event::TimedOut | Event::Cancelled | Event::Interrupted | Event::Missed => Self::Fail,
            Event::Test => Self::Log,
            Event::Skipped
            | Event::SpecInvalid
            | Event::SchedulerStarted
            | Event::SchedulerStopped => return None,
        })
    }

    fn suffix(self) -> Option<String> {
        match self {
            Self::Start => Some("start".into()),
            Self::Success => None,
            Self::Fail => Some("fail".into()),
            Self::ExitCode(code) => Some(code.to_string()),
            Self::Log => Some("log".into()),
        }
    }
}

/// The URL a ping sends `signal` to: the signal appended to the path, before any query, and the run
/// id (`rid`, a UUID) added to the query so that a check can pair a start with its end when runs
/// overlap.
pub fn ping_url(url: &HttpUrl, signal: PingSignal, rid: Option<&str>) -> String {
    let text = url.as_str();
    let text = text.split('#').next().unwrap_or(text);
    let (base, query) = match text.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (text, None),
    };
    let mut out = base.trim_end_matches('/').to_owned();
    if let Some(suffix) = signal.suffix() {
        out.push('/');
        out.push_str(&suffix);
    }
    let mut params: Vec<String> = query
        .into_iter()
        .filter(|q| !q.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(rid) = rid {
        params.push(format!("rid={rid}"));
    }
    if !params.is_empty() {
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// A run id for [`ping_url`]: a UUID derived from the job and the run, the same for a run's start
/// and its end, and for every try.
pub fn run_uuid(job_id: &str, run: i64) -> String {
    uuid_from(&format!("rid:{}", crate::run::run_name(job_id, run)))
}

/// A UUID (version 4 in form) derived from `name`: the same name always gives the same UUID.
pub fn uuid_from(name: &str) -> String {
    let high = crate::digest::content_hash(format!("{name}:a").as_bytes());
    let low = crate::digest::content_hash(format!("{name}:b").as_bytes());
    let hex: Vec<char> = format!("{high}{low}").chars().collect();
    // Version 4 and the RFC 4122 variant, so that services that check the form accept it.
    let mut hex = hex;
    hex[12] = '4';
    hex[16] = match hex[16] {
        '0' | '4' | '8' | 'c' => '8',
        '1' | '5' | '9' | 'd' => '9',
        '2' | '6' | 'a' | 'e' => 'a',
        _ => 'b',
    };
    let hex: String = hex.into_iter().collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Sends `signal` to the healthchecks-style check at `url` (a GET, which every such service takes).
pub fn ping(
    url: &HttpUrl,
    signal: PingSignal,
    rid: Option<&str>,
    delivery_id: &str,
    timeout: Duration,
) -> Outcome {
    let target = ping_url(url, signal, rid);
    let answer = agent()
        .get(&target)
        .config()
        .timeout_global(Some(timeout))
        .build()
        .header(DELIVERY_HEADER, delivery_id)
        .call();
    judge(url, answer, timeout)
}

/// The one HTTP client: connections are pooled across deliveries. rustls with the platform's
/// verifier, so https trusts what the system trusts (its CA bundle, an operator's own CA), not a
/// list compiled into `jobs`. Redirects are not followed: a POST would turn into a GET or be
/// refused, and a moved webhook should be written down where it now is.
fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(concat!("jobs/", env!("CARGO_PKG_VERSION")))
            .tls_config(
                TlsConfig::builder()
                    .root_certs(RootCerts::PlatformVerifier)
                    .build(),
            )
            .build()
            .new_agent()
    })
}

fn judge(
    url: &HttpUrl,
    answer: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    timeout: Duration,
) -> Outcome {
    let mut response = match answer {
        Ok(response) => response,
        Err(error) => {
            let (reason, retryable) = transport_failure(&error, timeout);
            return Outcome::failed(mask_in(&reason, url), retryable);
        }
    };
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Outcome::Delivered {
            http_status: Some(status),
        };
    }
    let mut quoted = Vec::new();
    // What the endpoint said, for the reason; an endpoint that says nothing or too slowly is
    // judged by its status alone.
    let _ = response
        .body_mut()
        .as_reader()
        .take(QUOTED_BYTES as u64)
        .read_to_end(&mut quoted);
    let said = String::from_utf8_lossy(&quoted);
    let said = crate::text::escape_controls(said.trim());
    let (what, retryable) = match status {
        300..=399 => (
            "the endpoint redirects; write down the URL it redirects to",
            false,
        ),
        408 | 425 | 429 => ("the endpoint asks to try later", true),
        400..=499 => ("the endpoint refused the notification", false),
        _ => ("the endpoint failed", true),
    };
    let reason = if said.is_empty() {
        format!("HTTP {status}: {what}")
    } else {
        format!("HTTP {status}: {what}: {said}")
    };
    Outcome::Failed {
        reason: mask_in(&reason, url),
        retryable,
        http_status: Some(status),
    }
}

/// A failure before any answer, in words that never quote the URL.
fn transport_failure(error: &ureq::Error, timeout: Duration) -> (String, bool) {
    use ureq::Error as E;
    match error {
        E::Timeout(_) => (
            format!(
                "no answer within the timeout of {}",
                crate::duration::SpecDuration::from_millis(
                    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
                )
            ),
            true,
        ),
        E::HostNotFound => ("the host name does not resolve".into(), true),
        E::Io(io) => (format!("the connection failed: {io}"), true),
        E::Tls(why) => (format!("the TLS handshake failed: {why}"), true),
        E::BadUri(_) | E::RequireHttpsOnly(_) => ("the URL cannot be requested".into(), false),
        other => (format!("the request failed: {other}"), true),
    }
}

/// Runs `argv` in `cwd` with `notification` as JSON on its stdin and `JOBS_NOTIFY_*` set, in its own
/// process group, killed (the whole group) at `timeout`. Exit 0 is delivered; any other end is a
/// failure another try may mend, except a program that cannot be started.
pub fn command(
    argv: &[String],
    cwd: &Path,
    notification: &Notification,
    timeout: Duration,
) -> Outcome {
    let Some((program, args)) = argv.split_first() else {
        return Outcome::failed("the notifier command is empty", false);
    };
    let mut command = Command::new(program);
    // The store's password is the scheduler's, never a notifier's (see `store::store_secrets`).
    for name in crate::store::store_secrets() {
        command.env_remove(name);
    }
    command
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("JOBS_NOTIFY_EVENT", notification.event.as_str())
        .env("JOBS_NOTIFY_DELIVERY", &notification.delivery_id)
        .env("JOBS_NOTIFY_SUMMARY", &notification.summary)
        .env(
            "JOBS_NOTIFY_JOB_ID",
            notification.job_id.as_deref().unwrap_or_default(),
        )
        .env(
            "JOBS_NOTIFY_RUN",
            notification.run.map(|r| r.to_string()).unwrap_or_default(),
        )
        .env(
            "JOBS_NOTIFY_STATUS",
            notification.status.map(|s| s.as_str()).unwrap_or_default(),
        );
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Outcome::failed(
                format!("the notifier command {program:?} could not start: {e}"),
                false,
            );
        }
    };
    let pid = child.id();
    // Written from a thread: a command that never reads its stdin must not block us past the pipe's
    // buffer. A command that exits without reading makes the write fail, which is its business.
    if let Some(mut stdin) = child.stdin.take() {
        let json = notification.to_json();
        std::thread::spawn(move || {
            let _ = stdin.write_all(json.as_bytes());
        });
    }
    let (stderr_tx, stderr_rx) = mpsc::channel();
    if let Some(stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            let _ = stderr_tx.send(last_bytes(stderr, QUOTED_BYTES));
        });
    }
    let ended = wait_without_reaping(pid, timeout);
    // Whatever the command left in its group ends with it, and at the timeout the command too. The
    // leader is not reaped yet, so its pid, and with it the group's id, cannot have been reused.
    if let Some(group) = Pid::from_raw(i32::try_from(pid).unwrap_or(0)) {
        let _ = kill_process_group(group, Signal::KILL);
    }
    let status = child.wait();
    let stderr = || {
        let text = stderr_rx
            .recv_timeout(Duration::from_millis(500))
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let text = super::mask::mask_stderr(text.trim(), args);
        crate::text::escape_controls(&text).into_owned()
    };
    let with_stderr = |what: String| {
        let said = stderr();
        if said.is_empty() {
            what
        } else {
            format!("{what}: {said}")
        }
    };
    match (ended, status) {
        (_, Err(e)) => Outcome::failed(
            format!("waiting for the notifier command failed: {e}"),
            true,
        ),
        (true, Ok(status)) if status.success() => Outcome::Delivered { http_status: None },
        (true, Ok(status)) => {
            let what = match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(code), _) => format!("the notifier command exited with {code}"),
                (None, Some(signal)) => {
                    format!("the notifier command was killed by signal {signal}")
                }
                (None, None) => "the notifier command failed".into(),
            };
            Outcome::failed(with_stderr(what), true)
        }
        (false, Ok(_)) => Outcome::failed(
            with_stderr(format!(
                "the notifier command did not finish within the timeout of {}; it was killed",
                crate::duration::SpecDuration::from_millis(
                    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
                )
            )),
            true,
        ),
    }
}

/// Whether the child `pid` exited within `timeout`, leaving it unreaped (a zombie) so that its group
/// can still be signalled safely.
fn wait_without_reaping(pid: u32, timeout: Duration) -> bool {
    let Some(pid) = Pid::from_raw(i32::try_from(pid).unwrap_or(0)) else {
        return false;
    };
    let deadline = Instant::now() + timeout;
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT | WaitIdOptions::NOHANG;
    loop {
        match waitid(WaitId::Pid(pid), options) {
            Ok(Some(_)) => return true,
            Ok(None) => {}
            // Not our child any more (reaped elsewhere): it has ended.
            Err(_) => return true,
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        // Notifier commands take milliseconds to seconds; a 10 ms poll costs nothing beside them.
        std::thread::sleep((deadline - now).min(Duration::from_millis(10)));
    }
}

/// The last `keep` bytes `reader` yields before its end.
fn last_bytes(mut reader: impl Read, keep: usize) -> Vec<u8> {
    let mut tail = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&buffer[..n]);
                if tail.len() > keep {
                    tail.drain(..tail.len() - keep);
                }
            }
        }
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> HttpUrl {
        HttpUrl::parse(text).expect("a URL")
    }

    #[test]
    fn ping_urls_follow_the_healthchecks_protocol() {
        let check = url("https://hc-ping.com/5f2a");
        let rows = [
            (PingSignal::Start, "https://hc-ping.com/5f2a/start"),
            (PingSignal::Success, "https://hc-ping.com/5f2a"),
            (PingSignal::Fail, "https://hc-ping.com/5f2a/fail"),
            (PingSignal::ExitCode(3), "https://hc-ping.com/5f2a/3"),
            (PingSignal::Log, "https://hc-ping.com/5f2a/log"),
        ];
        for (signal, expected) in rows {
            assert_eq!(ping_url(&check, signal, None), expected);
        }
        let slug = url("https://hc-ping.com/key/backup/?create=1");
        assert_eq!(
            ping_url(&slug, PingSignal::Start, Some("r")),
            "https://hc-ping.com/key/backup/start?create=1&rid=r"
        );
    }

    #[test]
    fn each_event_has_its_ping_signal() {
        let rows = [
            (Event::Started, None, Some(PingSignal::Start)),
            (Event::Succeeded, Some(0), Some(PingSignal::Success)),
            (Event::Recovered, Some(0), Some(PingSignal::Success)),
            (Event::Failed, Some(2), Some(PingSignal::ExitCode(2))),
            (Event::Failed, None, Some(PingSignal::Fail)),
            (Event::Failed, Some(300), Some(PingSignal::Fail)),
            (Event::TimedOut, None, Some(PingSignal::Fail)),
            (Event::Cancelled, None, Some(PingSignal::Fail)),
            (Event::Interrupted, None, Some(PingSignal::Fail)),
            (Event::Missed, None, Some(PingSignal::Fail)),
            (Event::Skipped, None, None),
            (Event::SchedulerStopped, None, None),
            (Event::Test, None, Some(PingSignal::Log)),
        ];
        for (event, code, expected) in rows {
            assert_eq!(
                PingSignal::for_event(event, code),
                expected,
                "{event} {code:?}"
            );
        }
    }

    #[test]
    fn a_run_uuid_is_stable_and_well_formed() {
        let a = run_uuid("backup", 42);
        assert_eq!(a, run_uuid("backup", 42));
        assert_ne!(a, run_uuid("backup", 43));
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{a}");
        assert_eq!(a.as_bytes()[14], b'4', "{a}");
        assert!(matches!(a.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "{a}");
    }
}
