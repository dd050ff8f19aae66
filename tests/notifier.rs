//! Delivery through the library's notifier API to real endpoints: a webhook to an HTTP server on
//! 127.0.0.1 (headers, a body valid against `schemas/notification.schema.json`, the chat format, a
//! 500, a hung endpoint), a command fed the JSON on stdin, healthchecks pings, masking, and no env
//! value of a spec in anything sent.

#![expect(
    clippy::expect_used,
    reason = "a test helper that cannot set up must fail the test loudly"
)]

#[path = "support/receiver.rs"]
#[expect(
    dead_code,
    reason = "the receiver serves the CLI tests too (answering again after a hang, bodies that are not JSON), which these do not use"
)]
mod receiver;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use jobs::artifacts::Stream;
use jobs::notifier::deliver::{self, DELIVERY_HEADER, EVENT_HEADER, Outcome, PingSignal};
use jobs::notifier::{
    Envelope, ErrorFacts, Event, HomeFacts, NextTry, Notification, OutputLine, RunFacts, mask_url,
    next_try,
};
use jobs::run::{RunStatus, Trigger};
use jobs::spec::model::{HttpUrl, NotifierSpec, WebhookFormat};

use receiver::Receiver;

const TEN_SECONDS: Duration = Duration::from_secs(10);

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("an instant")
        .with_timezone(&Utc)
}

fn url(text: &str) -> HttpUrl {
    HttpUrl::parse(text).unwrap_or_else(|(code, message)| panic!("{text}: {code}: {message}"))
}

fn envelope(delivery_id: &str) -> Envelope {
    Envelope {
        delivery_id: delivery_id.into(),
        at: at("2026-11-22T03:02:05.750Z"),
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
        error: Some(ErrorFacts {
            code: "exit_nonzero".into(),
            message: "exited with 3".into(),
        }),
        attempts: 2,
        run_dir: Some("/srv/jobs/runs/backup/42".into()),
        output: vec![
            OutputLine {
                stream: Stream::Stdout,
                line: "dumping".into(),
            },
            OutputLine {
                stream: Stream::Stderr,
                line: "pg_dump: connection refused".into(),
            },
        ],
    }
}

fn failed(include_output: Option<u32>) -> Notification {
    Notification::for_run(
        Event::Failed,
        &envelope("backup#42/failed/0"),
        &failed_run(),
        include_output,
    )
}

fn validator() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/notification.schema.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read the schema"))
            .expect("the schema is JSON");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles")
}

#[track_caller]
fn assert_valid(payload: &Value) {
    let validator = validator();
    let errors: Vec<String> = validator
        .iter_errors(payload)
        .map(|e| format!("{}: {e}", e.instance_path().as_str()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{payload:#}");
}

#[test]
fn a_webhook_gets_the_notification_as_json_with_its_event_and_delivery_id() {
    let receiver = Receiver::start();
    let notification = failed(Some(1));
    let outcome = deliver::webhook(
        &url(&receiver.url("/hooks/abc")),
        &notification,
        WebhookFormat::Json,
        TEN_SECONDS,
    );
    assert_eq!(
        outcome,
        Outcome::Delivered {
            http_status: Some(200)
        }
    );
    let requests = receiver.wait_for(1, TEN_SECONDS);
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks/abc");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header(EVENT_HEADER), Some("failed"));
    assert_eq!(request.header(DELIVERY_HEADER), Some("backup#42/failed/0"));
    assert!(
        request
            .header("user-agent")
            .is_some_and(|ua| ua.starts_with("jobs/")),
        "{request:?}"
    );
    let body = request.json();
    assert_valid(&body);
    assert_eq!(body["event"], "failed");
    assert_eq!(body["name"], "backup#42");
    assert_eq!(body["exit_code"], 3);
    assert_eq!(body["delivery_id"], "backup#42/failed/0");
    assert_eq!(
        body["summary"],
        "backup#42 failed: exit code 3 after 2 attempts (2m5s)"
    );
    assert_eq!(
        body["output"],
        serde_json::json!([{ "stream": "stderr", "line": "pg_dump: connection refused" }]),
        "include_output: 1 quotes the last line"
    );
}

#[test]
fn every_kind_of_notification_is_valid_against_the_schema() {
    let mut payloads = Vec::new();
    for event in [
        Event::Started,
        Event::Succeeded,
        Event::Recovered,
        Event::Failed,
        Event::TimedOut,
        Event::Cancelled,
        Event::Interrupted,
    ] {
        payloads.push(Notification::for_run(
            event,
            &envelope("d"),
            &failed_run(),
            Some(5),
        ));
    }
    let missed = RunFacts {
        status: RunStatus::Missed,
        trigger: Trigger::Catchup,
        started_at: None,
        finished_at: None,
        duration_ms: None,
        exit_code: None,
        error: None,
        attempts: 0,
        run_dir: None,
        output: Vec::new(),
        ..failed_run()
    };
    for event in [Event::Missed, Event::Skipped] {
        payloads.push(Notification::for_run(event, &envelope("d"), &missed, None));
    }
    let invalid = HomeFacts {
        job_id: Some("backup".into()),
        path: Some("jobs/backup.yaml".into()),
        message: Some("3:5: /run/timeout: must be longer than zero".into()),
    };
    payloads.push(Notification::for_home(
        Event::SpecInvalid,
        &envelope("d"),
        &invalid,
    ));
    for event in [Event::SchedulerStarted, Event::SchedulerStopped] {
        payloads.push(Notification::for_home(
            event,
            &envelope("d"),
            &HomeFacts::default(),
        ));
    }
    payloads.push(Notification::for_home(
        Event::Test,
        &envelope("d"),
        &HomeFacts {
            job_id: Some("backup".into()),
            ..HomeFacts::default()
        },
    ));
    for payload in payloads {
        let json: Value = serde_json::from_str(&payload.to_json()).expect("JSON");
        assert_valid(&json);
        let back: Notification = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, payload, "what the outbox keeps is what is sent");
    }
}

#[test]
fn a_500_is_a_retryable_failure_and_every_try_carries_the_same_delivery_id() {
    let receiver = Receiver::start();
    receiver.fail_next(2);
    let target = url(&receiver.url("/hook"));
    let notification = failed(None);
    let mut outcomes = Vec::new();
    let mut failed_at = at("2026-11-22T03:02:06Z");
    let mut planned = Vec::new();
    for tries in 1..=3 {
        let outcome = deliver::webhook(&target, &notification, WebhookFormat::Json, TEN_SECONDS);
        if let Outcome::Failed { retryable, .. } = &outcome {
            match next_try(tries, failed_at, *retryable) {
                NextTry::At(next) => {
                    planned.push(next);
                    failed_at = next;
                }
                NextTry::GiveUp => panic!("a 500 is retried"),
            }
        }
        outcomes.push(outcome);
    }
    assert_eq!(
        outcomes[0],
        Outcome::Failed {
            reason: "HTTP 500: the endpoint failed: boom".into(),
            retryable: true,
            http_status: Some(500)
        }
    );
    assert_eq!(outcomes[1], outcomes[0]);
    assert!(outcomes[2].is_delivered(), "{:?}", outcomes[2]);
    assert_eq!(
        planned,
        [at("2026-11-22T03:02:07Z"), at("2026-11-22T03:02:12Z")],
        "1 s, then 5 s"
    );
    let requests = receiver.wait_for(3, TEN_SECONDS);
    let ids: Vec<_> = requests.iter().map(|r| r.header(DELIVERY_HEADER)).collect();
    assert_eq!(ids, [Some("backup#42/failed/0"); 3]);
    let bodies: Vec<_> = requests.iter().map(|r| r.body.clone()).collect();
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "the same body each time"
    );
}

#[test]
fn a_hung_endpoint_fails_within_its_timeout() {
    let receiver = Receiver::start();
    receiver.hang();
    let started = Instant::now();
    let outcome = deliver::webhook(
        &url(&receiver.url("/hook")),
        &failed(None),
        WebhookFormat::Json,
        Duration::from_secs(1),
    );
    let took = started.elapsed();
    assert_eq!(
        outcome,
        Outcome::Failed {
            reason: "no answer within the timeout of 1s".into(),
            retryable: true,
            http_status: None
        }
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(receiver.requests().len(), 1, "the request did arrive");
}

#[test]
fn a_refusal_is_not_retried_and_an_unreachable_endpoint_is() {
    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let target = url(&format!(
        "http://127.0.0.1:{closed}/services/T0/B0/sEcReT?token=sEcReT"
    ));
    let Outcome::Failed {
        reason, retryable, ..
    } = deliver::webhook(&target, &failed(None), WebhookFormat::Json, TEN_SECONDS)
    else {
        panic!("nothing listens there");
    };
    assert!(retryable, "{reason}");
    assert!(reason.starts_with("the connection failed"), "{reason}");
    assert!(!reason.contains("sEcReT"), "{reason}");

    // A 404 will be a 404 again; a 429 or a redirect is judged by its status too.
    let receiver = Receiver::start();
    let target = url(&receiver.url("/services/T0/B0/gone"));
    let rows = [
        (
            404,
            "HTTP 404: the endpoint refused the notification: no_service",
            false,
        ),
        (
            429,
            "HTTP 429: the endpoint asks to try later: slow down",
            true,
        ),
        (
            301,
            "HTTP 301: the endpoint redirects; write down the URL it redirects to",
            false,
        ),
    ];
    for (status, reason, retryable) in rows {
        receiver.answer_next(1, status);
        assert_eq!(
            deliver::webhook(&target, &failed(None), WebhookFormat::Json, TEN_SECONDS),
            Outcome::Failed {
                reason: reason.into(),
                retryable,
                http_status: Some(status)
            }
        );
    }
}

#[test]
fn https_to_an_endpoint_that_speaks_no_tls_fails_as_a_retryable_try() {
    // The TLS stack (rustls, the platform's verifier with the system's roots) is set up on the
    // first https request: it must answer with a failure, never panic or hang past the timeout.
    let receiver = Receiver::start();
    let plain = receiver.url("/hook").replacen("http://", "https://", 1);
    let started = Instant::now();
    let outcome = deliver::webhook(
        &url(&plain),
        &failed(None),
        WebhookFormat::Json,
        Duration::from_secs(2),
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let Outcome::Failed {
        retryable, reason, ..
    } = outcome
    else {
        panic!("no TLS there: {outcome:?}");
    };
    assert!(retryable, "{reason}");
}

#[test]
fn a_slack_webhook_gets_a_text_message() {
    let receiver = Receiver::start();
    let outcome = deliver::webhook(
        &url(&receiver.url("/services/T0/B0/x")),
        &failed(Some(5)),
        WebhookFormat::Slack,
        TEN_SECONDS,
    );
    assert!(outcome.is_delivered(), "{outcome:?}");
    let request = &receiver.wait_for(1, TEN_SECONDS)[0];
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header(EVENT_HEADER), Some("failed"));
    let body = request.json();
    let object = body.as_object().expect("an object");
    assert_eq!(
        object.keys().collect::<Vec<_>>(),
        ["text"],
        "Slack takes {{\"text\": ...}}"
    );
    let text = body["text"].as_str().expect("text");
    assert!(
        text.starts_with("*backup#42 failed: exit code 3 after 2 attempts (2m5s)*\n"),
        "{text}"
    );
    assert!(text.contains("host web1"), "{text}");
    assert!(
        text.contains("```\ndumping\npg_dump: connection refused\n```"),
        "{text}"
    );
}

#[test]
fn a_command_notifier_reads_the_json_on_stdin_with_the_jobs_notify_variables() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let argv: Vec<String> = [
        "sh",
        "-c",
        "cat > stdin.json; env | grep '^JOBS_NOTIFY_' | sort > env.txt",
    ]
    .map(String::from)
    .to_vec();
    let notification = failed(None);
    let outcome = deliver::command(&argv, dir.path(), &notification, TEN_SECONDS);
    assert_eq!(outcome, Outcome::Delivered { http_status: None });
    let stdin: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("stdin.json")).expect("stdin was saved"),
    )
    .expect("stdin is JSON");
    assert_valid(&stdin);
    assert_eq!(stdin, serde_json::to_value(&notification).expect("JSON"));
    let env = std::fs::read_to_string(dir.path().join("env.txt")).expect("env was saved");
    let env: Vec<&str> = env.lines().collect();
    assert_eq!(
        env,
        [
            "JOBS_NOTIFY_DELIVERY=backup#42/failed/0",
            "JOBS_NOTIFY_EVENT=failed",
            "JOBS_NOTIFY_JOB_ID=backup",
            "JOBS_NOTIFY_RUN=42",
            "JOBS_NOTIFY_STATUS=failed",
            "JOBS_NOTIFY_SUMMARY=backup#42 failed: exit code 3 after 2 attempts (2m5s)",
        ]
    );
}

#[test]
fn a_command_notifier_that_fails_hangs_or_cannot_start_says_so() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let notification = failed(None);
    let sh = |script: &str| -> Vec<String> { ["sh", "-c", script].map(String::from).to_vec() };

    let outcome = deliver::command(
        &sh("echo 'no route to pager' >&2; exit 3"),
        dir.path(),
        &notification,
        TEN_SECONDS,
    );
    assert_eq!(
        outcome,
        Outcome::Failed {
            reason: "the notifier command exited with 3: no route to pager".into(),
            retryable: true,
            http_status: None
        }
    );

    // A command that outlives its timeout is killed, with what it started (which holds stderr).
    let started = Instant::now();
    let outcome = deliver::command(
        &sh("sleep 30 & sleep 30"),
        dir.path(),
        &notification,
        Duration::from_secs(1),
    );
    let took = started.elapsed();
    let Outcome::Failed {
        reason, retryable, ..
    } = outcome
    else {
        panic!("a hung command fails");
    };
    assert!(retryable);
    assert!(
        reason.contains("did not finish within the timeout of 1s"),
        "{reason}"
    );
    assert!(took < Duration::from_secs(4), "{took:?}");

    let outcome = deliver::command(
        &["./no-such-notifier".to_string()],
        dir.path(),
        &notification,
        TEN_SECONDS,
    );
    let Outcome::Failed {
        reason, retryable, ..
    } = outcome
    else {
        panic!("a missing program fails");
    };
    assert!(!retryable, "another try would not find it either: {reason}");
    assert!(reason.contains("could not start"), "{reason}");
}

#[test]
fn a_ping_signals_start_success_and_failure_by_the_healthchecks_paths() {
    let receiver = Receiver::start();
    let check = url(&receiver.url("/ping/5f2a"));
    let rid = deliver::run_uuid("backup", 42);
    let mut sent = Vec::new();
    for (event, exit_code) in [
        (Event::Started, None),
        (Event::Succeeded, Some(0)),
        (Event::Failed, Some(3)),
        (Event::Failed, None),
        (Event::TimedOut, None),
        (Event::Missed, None),
    ] {
        let signal = PingSignal::for_event(event, exit_code).expect("a signal");
        let outcome = deliver::ping(&check, signal, Some(&rid), "d", TEN_SECONDS);
        assert!(outcome.is_delivered(), "{event}: {outcome:?}");
        sent.push(format!("{signal:?}"));
    }
    assert_eq!(PingSignal::for_event(Event::Skipped, None), None);
    let requests = receiver.wait_for(6, TEN_SECONDS);
    let paths: Vec<_> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let q = format!("?rid={rid}");
    assert_eq!(
        paths,
        [
            format!("GET /ping/5f2a/start{q}"),
            format!("GET /ping/5f2a{q}"),
            format!("GET /ping/5f2a/3{q}"),
            format!("GET /ping/5f2a/fail{q}"),
            format!("GET /ping/5f2a/fail{q}"),
            format!("GET /ping/5f2a/fail{q}"),
        ],
        "{sent:?}"
    );
}

#[test]
fn urls_are_shown_masked() {
    let rows = [
        (
            "https://hooks.slack.com/services/T000/B000/XXXX",
            "https://hooks.slack.com/services/***",
        ),
        (
            "https://hc-ping.com/5f2a1c9e-1d2e-4f00-8000-000000000000",
            "https://hc-ping.com/***",
        ),
        (
            "https://user:pw@chat.example.com/hooks/abc?x=1",
            "https://***@chat.example.com/hooks/***",
        ),
    ];
    for (text, shown) in rows {
        assert_eq!(mask_url(&url(text)), shown, "{text}");
    }
}

/// One try through `notifier`, as the courier makes it.
fn send(notifier: &NotifierSpec, run: &RunFacts, event: Event, cwd: &Path) -> Outcome {
    let body = Notification::for_run(event, &envelope("d-env"), run, None);
    jobs::delivery::try_notifier(notifier, &body, cwd)
}

#[test]
fn no_env_value_of_the_spec_is_in_any_request() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let secret = "s3cr3t-VALUE-77";
    let source = format!(
        "id: backup\nrun:\n  command: [\"./backup.sh\", \"--quiet\"]\n  env:\n    API_TOKEN: {secret}\n    DB_PASSWORD: also-{secret}\nnotify:\n  - webhook: {json}\n    include_output: 10\n    on: [failed, started]\n  - webhook: {slack}\n    format: slack\n    include_output: 10\n  - ping: {ping}\n  - command: [\"sh\", \"-c\", \"cat > stdin.json; env > env.txt\"]\n",
        json = receiver.url("/json"),
        slack = receiver.url("/slack"),
        ping = receiver.url("/ping"),
    );
    let now = at("2026-11-22T12:00:00Z");
    let loaded = jobs::spec::load_source(&source, "backup", now).expect("a valid spec");
    for event in [Event::Started, Event::Failed] {
        for notifier in &loaded.spec.notify {
            let outcome = send(notifier, &failed_run(), event, dir.path());
            assert!(outcome.is_delivered(), "{notifier:?}: {outcome:?}");
        }
    }
    let requests = receiver.wait_for(6, TEN_SECONDS);
    assert_eq!(requests.len(), 6, "two webhooks and a ping, twice");
    for request in &requests {
        let everything = format!(
            "{} {} {:?} {}",
            request.method,
            request.path,
            request.headers,
            request.body_text()
        );
        assert!(!everything.contains(secret), "{everything}");
        assert!(
            !everything.contains("backup.sh"),
            "nor the command: {everything}"
        );
    }
    let stdin = std::fs::read_to_string(dir.path().join("stdin.json")).expect("stdin was saved");
    assert!(!stdin.contains(secret), "{stdin}");
    let env = std::fs::read_to_string(dir.path().join("env.txt")).expect("env was saved");
    assert!(
        !env.contains(secret),
        "the command notifier does not get the run's env"
    );
}
