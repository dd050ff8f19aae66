//! A spec's `notify:` list: what it accepts, how the model reads it, and every way it can be wrong,
//! each with a stable code, its line and column and its JSON pointer, as `jobsctl validate` shows them.

#![expect(
    clippy::expect_used,
    reason = "a test helper that cannot set up must fail the test loudly"
)]

#[expect(
    dead_code,
    reason = "these tests need only the home and the validate command of the shared builder"
)]
#[path = "cli/common.rs"]
mod common;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use jobs::spec::load_source;
use jobs::spec::model::{NotifyOn, NotifyTarget, WebhookFormat};

use common::TestHome;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
        .expect("valid")
        .with_timezone(&Utc)
}

/// A job that runs `true`, with `notify` as given (YAML, indented as under `notify:`).
fn with_notify(id: &str, notify: &str) -> String {
    format!("id: {id}\nrun:\n  command: [\"true\"]\nnotify:\n{notify}")
}

#[test]
fn each_kind_of_notifier_loads_with_its_defaults() {
    let source = with_notify(
        "n",
        "  - webhook: https://hooks.slack.com/services/T0/B0/x\n    format: slack\n    include_output: 20\n    on: [failed, recovered]\n  - command: [\"./page.sh\", \"--team\", \"ops\"]\n    timeout: 30s\n  - ping: https://hc-ping.com/5f2a\n",
    );
    let loaded = load_source(&source, "n", now()).unwrap_or_else(|p| panic!("{p:#?}"));
    let notify = &loaded.spec.notify;
    assert_eq!(notify.len(), 3);

    let NotifyTarget::Webhook {
        url,
        format,
        include_output,
    } = &notify[0].target
    else {
        panic!("a webhook: {:?}", notify[0]);
    };
    assert_eq!(url.as_str(), "https://hooks.slack.com/services/T0/B0/x");
    assert_eq!(*format, WebhookFormat::Slack);
    assert_eq!(*include_output, Some(20));
    assert_eq!(notify[0].on, [NotifyOn::Failed, NotifyOn::Recovered]);
    assert_eq!(notify[0].timeout.to_string(), "10s", "the default timeout");

    assert!(matches!(&notify[1].target, NotifyTarget::Command { argv } if argv[0] == "./page.sh"));
    assert_eq!(
        notify[1].on,
        [
            NotifyOn::Failed,
            NotifyOn::TimedOut,
            NotifyOn::Interrupted,
            NotifyOn::Missed
        ],
        "the default events"
    );
    assert_eq!(notify[1].timeout.to_string(), "30s");

    assert!(matches!(&notify[2].target, NotifyTarget::Ping { .. }));
    assert!(notify[2].on.is_empty(), "a ping has no on:");

    // What the store keeps has every default filled in, and loads again as the same spec.
    let stored = loaded.json();
    assert_eq!(
        stored["notify"][1],
        json!({ "command": ["./page.sh", "--team", "ops"], "timeout": "30s", "on": ["failed", "timed_out", "interrupted", "missed"] })
    );
    assert_eq!(
        stored["notify"][2],
        json!({ "ping": "https://hc-ping.com/5f2a", "timeout": "10s" })
    );
    let again = jobs::spec::load::recheck_stored(&stored.to_string(), "n", now())
        .unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(again.spec, loaded.spec);
}

#[test]
fn a_spec_without_notify_is_stored_as_before() {
    let loaded =
        load_source("id: plain\nrun:\n  command: [\"true\"]\n", "plain", now()).expect("valid");
    assert!(loaded.spec.notify.is_empty());
    assert!(loaded.json().get("notify").is_none());
}

#[test]
fn a_notifier_listening_for_succeeded_hears_recovered() {
    let loaded = load_source(
        &with_notify(
            "r",
            "  - webhook: http://127.0.0.1:9/a\n    on: [succeeded]\n  - webhook: http://127.0.0.1:9/b\n  - ping: http://127.0.0.1:9/c\n",
        ),
        "r",
        now(),
    )
    .expect("valid");
    let [on_success, by_default, ping] = &loaded.spec.notify[..] else {
        panic!("three notifiers");
    };
    assert!(on_success.listens_for(NotifyOn::Recovered));
    assert!(on_success.listens_for(NotifyOn::Succeeded));
    assert!(!on_success.listens_for(NotifyOn::Failed));
    assert!(by_default.listens_for(NotifyOn::Missed));
    assert!(!by_default.listens_for(NotifyOn::Succeeded));
    assert!(!by_default.listens_for(NotifyOn::Recovered));
    assert!(
        !ping.listens_for(NotifyOn::Failed),
        "a ping follows its protocol, not on:"
    );
}

/// One invalid `notify:` and the problem it must produce.
struct Case {
    notify: &'static str,
    code: &'static str,
    line: u64,
    column: u64,
    pointer: &'static str,
    says: &'static str,
}

const fn case(
    notify: &'static str,
    code: &'static str,
    (line, column): (u64, u64),
    pointer: &'static str,
    says: &'static str,
) -> Case {
    Case {
        notify,
        code,
        line,
        column,
        pointer,
        says,
    }
}

/// Line 4 is `notify:`; the first notifier starts on line 5, its dash at column 3.
const CASES: &[Case] = &[
    case(
        "  - on: [failed]\n",
        "notify_target_empty",
        (5, 5),
        "/notify/0",
        "a notifier needs one of webhook",
    ),
    case(
        "  - webhook: https://a.example/x\n    ping: https://b.example/y\n",
        "notify_target_conflict",
        (6, 5),
        "/notify/0/ping",
        "not both webhook and ping",
    ),
    case(
        "  - webhook: ftp://files.example/x\n",
        "notify_url_scheme",
        (5, 5),
        "/notify/0/webhook",
        "\"ftp\" is not http or https",
    ),
    case(
        "  - webhook: hooks.slack.com/services/x\n",
        "notify_url_invalid",
        (5, 5),
        "/notify/0/webhook",
        "it has no scheme",
    ),
    case(
        "  - ping: \"https://hc-ping.com/a b\"\n",
        "notify_url_invalid",
        (5, 5),
        "/notify/0/ping",
        "percent-encode it",
    ),
    case(
        "  - webhook: \"https:///path\"\n",
        "notify_url_invalid",
        (5, 5),
        "/notify/0/webhook",
        "it has no host",
    ),
    case(
        "  - webhook: \"http://127.0.0.1:99999/x\"\n",
        "notify_url_invalid",
        (5, 5),
        "/notify/0/webhook",
        "its port is not a number from 1 to 65535",
    ),
    case(
        "  - ping: https://hc-ping.com/x\n    on: [failed]\n",
        "notify_ping_on",
        (6, 5),
        "/notify/0/on",
        "a ping ignores on:",
    ),
    case(
        "  - command: [\"./page.sh\"]\n    format: slack\n",
        "notify_option_conflict",
        (6, 5),
        "/notify/0/format",
        "format applies to a webhook only",
    ),
    case(
        "  - ping: https://hc-ping.com/x\n    include_output: 5\n",
        "notify_option_conflict",
        (6, 5),
        "/notify/0/include_output",
        "include_output applies to a webhook only",
    ),
    case(
        "  - webhook: https://a.example/x\n    on: [failed, spec_invalid]\n",
        "notify_home_event",
        (6, 18),
        "/notify/0/on/1",
        "spec_invalid is an event of the home",
    ),
    case(
        "  - webhook: https://a.example/x\n    timeout: 0s\n",
        "invalid_duration",
        (6, 5),
        "/notify/0/timeout",
        "must be longer than zero",
    ),
    case(
        "  - webhook: https://a.example/x\n    timeout: 10m\n",
        "invalid_duration",
        (6, 5),
        "/notify/0/timeout",
        "longer than the limit of 5m",
    ),
    case(
        "  - command: [\"a\\0b\"]\n",
        "nul_byte",
        (5, 15),
        "/notify/0/command/0",
        "contains a NUL character",
    ),
    case(
        "  - webhook: https://a.example/x\n    on: [failure]\n",
        "schema",
        (6, 10),
        "/notify/0/on/0",
        "\"failure\" is not one of",
    ),
    case(
        "  - webhook: https://a.example/x\n    on: []\n",
        "schema",
        (6, 5),
        "/notify/0/on",
        "the list must not be empty",
    ),
    case(
        "  - webhook: https://a.example/x\n    format: teams\n",
        "schema",
        (6, 5),
        "/notify/0/format",
        "\"teams\" is not one of \"json\", \"slack\"",
    ),
    case(
        "  - webhook: https://a.example/x\n    include_output: 0\n",
        "schema",
        (6, 5),
        "/notify/0/include_output",
        "0 is less than the minimum of 1",
    ),
    case(
        "  - webhook: https://a.example/x\n    timeout: soon\n",
        "schema",
        (6, 5),
        "/notify/0/timeout",
        "\"soon\" is not a duration",
    ),
    case(
        "  - webhook: https://a.example/x\n    retries: 3\n",
        "schema",
        (6, 5),
        "/notify/0/retries",
        "unknown field \"retries\"",
    ),
    case(
        "  webhook: https://a.example/x\n",
        "schema",
        (4, 1),
        "/notify",
        "expected a list, found a mapping",
    ),
    case(
        "  - https://a.example/x\n",
        "schema",
        (5, 5),
        "/notify/0",
        "expected a mapping, found text, which is not shown",
    ),
    case(
        "  - command: ./page.sh\n",
        "schema",
        (5, 5),
        "/notify/0/command",
        "expected a list, found the text",
    ),
];

#[test]
fn every_invalid_notifier_gets_its_code_position_and_pointer() {
    let mut failures = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let id = format!("n{i}");
        let problems = match load_source(&with_notify(&id, case.notify), &id, now()) {
            Ok(_) => {
                failures.push(format!("{:?}: loaded", case.notify));
                continue;
            }
            Err(problems) => problems,
        };
        let first = &problems[0];
        let got = (
            first.code,
            first.line as u64,
            first.column as u64,
            first.pointer.as_str(),
        );
        if got != (case.code, case.line, case.column, case.pointer)
            || !first.message.contains(case.says)
        {
            failures.push(format!(
                "{:?}: expected {} {}:{} {:?} containing {:?}\n      got {} {}:{} {:?} {:?}",
                case.notify,
                case.code,
                case.line,
                case.column,
                case.pointer,
                case.says,
                got.0,
                got.1,
                got.2,
                got.3,
                first.message
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn no_problem_quotes_a_webhook_url_it_refuses() {
    for url in [
        "https://hooks.example.com/services/T0/B0/sEcReT token",
        "hooks.example.com/services/T0/B0/sEcReT",
        "https:///services/T0/B0/sEcReT",
    ] {
        let source = with_notify("q", &format!("  - webhook: \"{url}\"\n"));
        let problems = load_source(&source, "q", now()).err().unwrap_or_default();
        assert!(!problems.is_empty(), "{url} refused");
        for problem in problems {
            assert!(
                !problem.message.contains("sEcReT"),
                "{url}: {}",
                problem.message
            );
        }
    }
}

#[test]
fn a_notifier_written_as_a_bare_url_is_not_quoted() {
    for notify in [
        "  - https://hooks.example.com/services/T0/B0/sEcReT\n",
        "  https://hooks.example.com/services/T0/B0/sEcReT\n",
    ] {
        let problems = load_source(&with_notify("b", notify), "b", now())
            .err()
            .unwrap_or_default();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(!problems[0].message.contains("sEcReT"), "{problems:#?}");
        assert!(
            problems[0].message.contains("- webhook: URL"),
            "{problems:#?}"
        );
    }
}

#[test]
fn jobsctl_validate_reports_a_bad_notifier_where_it_is_written() {
    let home = TestHome::new();
    home.spec(
        "alerting.yaml",
        with_notify(
            "alerting",
            "  - webhook: https://hooks.example.com/services/x\n  - ping: gopher://hc.example/x\n",
        ),
    );
    home.spec(
        "fine.yaml",
        with_notify("fine", "  - ping: https://hc-ping.com/5f2a\n"),
    );
    let (report, code) = home.json(&["validate"]);
    assert_eq!(code, 4, "an invalid spec exits 4: {report:#}");
    let files = report["data"]["files"].as_array().expect("data.files");
    let file = |name: &str| {
        files
            .iter()
            .find(|f| {
                f["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&format!("jobs/{name}")))
            })
            .unwrap_or_else(|| panic!("{name} missing from {report:#}"))
    };
    assert_eq!(file("fine.yaml")["ok"], true);
    let problems = file("alerting.yaml")["problems"]
        .as_array()
        .expect("problems");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0]["code"], "notify_url_scheme");
    assert_eq!(problems[0]["pointer"], "/notify/1/ping");
    assert_eq!(
        (problems[0]["line"].as_u64(), problems[0]["column"].as_u64()),
        (Some(6), Some(5))
    );
}

/// Values to try in a notifier's fields: some right, most wrong in some way.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(null)),
        Just(json!(true)),
        Just(json!(0)),
        Just(json!(5)),
        Just(json!("")),
        Just(json!("5s")),
        Just(json!("0s")),
        Just(json!("1h")),
        Just(json!("slack")),
        Just(json!("https://hooks.example.com/services/x")),
        Just(json!("http://127.0.0.1:8080")),
        Just(json!("ftp://x.example/y")),
        Just(json!("https://")),
        Just(json!("http://[::1]:80/a")),
        Just(json!("http://[zz]/a")),
        Just(json!(["./page.sh"])),
        Just(json!([])),
        Just(json!(["failed"])),
        Just(json!(["scheduler_started"])),
        Just(json!(["failed", "failed"])),
        Just(json!({})),
        "[a-z0-9 :/@.\\[\\]?#%-]{0,16}".prop_map(Value::String),
    ]
}

const NOTIFIER_FIELDS: &[&str] = &[
    "webhook",
    "command",
    "ping",
    "format",
    "include_output",
    "timeout",
    "on",
    "bogus",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever a notifier holds, loading never panics and every problem is the schema's or a
    /// check's, never serde's ("internal"); a spec with no problems loads and survives its own
    /// recheck.
    #[test]
    fn mutated_notifiers_are_judged_by_the_schema_and_the_checks_not_by_serde(
        edits in proptest::collection::vec((0..NOTIFIER_FIELDS.len(), field_value()), 0..5)
    ) {
        let mut notifier = json!({ "webhook": "https://hooks.example.com/a" });
        for (field, value) in edits {
            notifier[NOTIFIER_FIELDS[field]] = value;
        }
        let spec = json!({ "id": "fuzz", "run": { "command": ["true"] }, "notify": [notifier] });
        match load_source(&spec.to_string(), "fuzz", now()) {
            Ok(loaded) => {
                let again = jobs::spec::load::recheck_stored(&loaded.json().to_string(), "fuzz", now());
                prop_assert!(again.is_ok(), "{:?} for {}", again.err(), spec);
            }
            Err(problems) => {
                prop_assert!(!problems.is_empty());
                for problem in problems {
                    prop_assert_ne!(problem.code, "internal", "{:?} for {}", problem, spec);
                    prop_assert!(problem.line >= 1 && problem.column >= 1);
                }
            }
        }
    }
}
