//! The schema and the typed model agree: what the schema accepts deserializes, what it rejects is
//! reported as the schema's problem, and defaults match on both sides.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use jobs::spec::load::JOB_SCHEMA;
use jobs::spec::load_source;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
        .expect("valid")
        .with_timezone(&Utc)
}

fn schema() -> Value {
    serde_json::from_str(JOB_SCHEMA).expect("schema is JSON")
}

/// A spec that sets every field the schema knows.
fn maximal() -> Value {
    json!({
        "id": "maximal",
        "description": "every field set",
        "enabled": false,
        "schedule": { "every": "15m", "timezone": "Europe/Berlin", "anchor": "2026-01-01T00:00:00Z", "jitter": "30s" },
        "run": {
            "command": ["./report.sh", "--date", "yesterday"],
            "cwd": "work",
            "env": { "REPORT_FORMAT": "pdf" },
            "timeout": "10m",
            "kill_grace": "5s",
            "max_log_size": "64MiB",
            "limits": { "nofile": 256, "as": "512MiB", "cpu": "1m" },
            "leftovers": "keep",
            "nodes": ["gpu", "eu"]
        },
        "after": [{ "job": "extract", "on": ["succeeded", "failed"] }],
        "after_all": ["extract-eu", "extract-us"],
        "policy": { "max_instances": 2, "overlap": "queue", "coalesce": false, "misfire_grace": "unlimited", "group": "db" },
        "retry": { "max_attempts": 3, "backoff": "10s", "max_backoff": "1m", "retry_on": ["failed", "timed_out", "interrupted"] },
        "retention": { "keep_last": 200, "keep_days": 30 },
        "tags": ["reports", "nightly"],
        "notify": [
            { "webhook": "https://hooks.example.com/services/T0/B0/x", "format": "slack", "include_output": 20, "timeout": "5s", "on": ["failed", "recovered"] },
            { "command": ["./page.sh", "--team", "ops"], "timeout": "30s", "on": ["started", "succeeded", "failed", "timed_out", "cancelled", "interrupted", "missed", "skipped"] },
            { "ping": "https://hc-ping.example.com/0b1c", "timeout": "10s" }
        ]
    })
}

/// Every property path the schema defines, e.g. `/policy/max_instances`.
fn schema_paths(node: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            let path = format!("{prefix}/{name}");
            out.push(path.clone());
            schema_paths(child, &path, out);
        }
    }
}

/// The alternatives the maximal spec cannot hold at once: cron instead of every, shell instead of command.
fn maximal_alternatives() -> Value {
    let mut spec = maximal();
    spec["schedule"] =
        json!({ "cron": "0 30 2 * * *", "timezone": "America/New_York", "jitter": "1m" });
    spec["run"] = json!({ "shell": "pg_dump app | gzip > app.gz", "cwd": ".", "env": {}, "kill_grace": "10s", "max_log_size": "256MiB", "leftovers": "kill" });
    // Changing user is for root only: as anyone else a spec with run.user is refused on loading.
    if rustix::process::geteuid().is_root() {
        spec["run"]["user"] = json!("root");
        spec["run"]["group"] = json!("root");
    }
    spec
}

#[test]
fn the_maximal_specs_cover_the_schema_and_round_trip_through_the_model() {
    let mut paths = Vec::new();
    schema_paths(&schema(), "", &mut paths);
    let specs = [maximal(), maximal_alternatives()];
    for path in &paths {
        if !rustix::process::geteuid().is_root()
            && ["/run/user", "/run/group"].contains(&path.as_str())
        {
            continue;
        }
        assert!(
            specs.iter().any(|s| s.pointer(path).is_some()),
            "no maximal spec sets {path}"
        );
    }
    for spec in specs {
        let loaded =
            load_source(&spec.to_string(), "maximal", now()).unwrap_or_else(|p| panic!("{p:#?}"));
        assert_eq!(
            loaded.json(),
            spec,
            "nothing lost or renamed between the schema and the model"
        );
    }
}

#[test]
fn schema_defaults_are_the_model_defaults() {
    let loaded = load_source(
        "id: minimal\nrun:\n  command: [\"true\"]\n",
        "minimal",
        now(),
    )
    .expect("valid");
    let mut paths = Vec::new();
    let schema = schema();
    schema_paths(&schema, "", &mut paths);
    let mut checked = 0;
    for path in paths {
        let schema_pointer: String = path
            .split('/')
            .skip(1)
            .map(|p| format!("/properties/{p}"))
            .collect();
        let Some(default) = schema
            .pointer(&schema_pointer)
            .and_then(|n| n.get("default"))
        else {
            continue;
        };
        if path.starts_with("/schedule") {
            continue; // a minimal spec has no schedule to fill in
        }
        assert_eq!(
            loaded.json().pointer(&path),
            Some(default),
            "default of {path}"
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} defaults compared");
}

#[test]
fn the_filled_in_model_is_valid_under_the_schema() {
    let loaded = load_source(&maximal().to_string(), "maximal", now()).expect("valid");
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema())
        .expect("schema compiles");
    assert!(validator.is_valid(&loaded.json()));
    let minimal = load_source("id: m\nrun:\n  shell: \"true\"\n", "m", now()).expect("valid");
    assert!(validator.is_valid(&minimal.json()));
}

/// Values to try at each field: some right, most wrong in some way.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(null)),
        Just(json!(true)),
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(-1)),
        Just(json!(64)),
        Just(json!(1.5)),
        Just(json!("")),
        Just(json!("5m")),
        Just(json!("0s")),
        Just(json!("999999999999d")),
        Just(json!("1KiB")),
        Just(json!("1000B")),
        Just(json!("64MB")),
        Just(json!("99999999999GiB")),
        Just(json!("unlimited")),
        Just(json!("skip")),
        Just(json!("UTC")),
        Just(json!("Mars/Olympus")),
        Just(json!("*/5 * * * *")),
        Just(json!("0 0 31 2 *")),
        Just(json!("2026-01-01T00:00:00Z")),
        Just(json!(["true"])),
        Just(json!([])),
        Just(json!(["failed"])),
        Just(json!({})),
        Just(json!({ "A": "b" })),
        "[a-z0-9 :*/@-]{0,12}".prop_map(Value::String),
    ]
}

const FIELDS: &[&str] = &[
    "/id",
    "/description",
    "/enabled",
    "/schedule/cron",
    "/schedule/timezone",
    "/schedule/every",
    "/schedule/anchor",
    "/schedule/jitter",
    "/run/command",
    "/run/shell",
    "/run/cwd",
    "/run/env",
    "/run/timeout",
    "/run/kill_grace",
    "/run/max_log_size",
    "/run/leftovers",
    "/policy/max_instances",
    "/policy/overlap",
    "/policy/coalesce",
    "/policy/misfire_grace",
    "/retry/max_attempts",
    "/retry/backoff",
    "/retry/max_backoff",
    "/retry/retry_on",
    "/retention/keep_last",
    "/retention/keep_days",
    "/tags",
    "/bogus",
];

fn set(spec: &mut Value, pointer: &str, value: Value) {
    let mut node = spec;
    let parts: Vec<&str> = pointer.split('/').skip(1).collect();
    for (i, part) in parts.iter().enumerate() {
        if !node.is_object() {
            return;
        }
        if i + 1 == parts.len() {
            node[*part] = value;
            return;
        }
        if node.get(*part).is_none() {
            node[*part] = json!({});
        }
        node = &mut node[*part];
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever the fields hold, loading never panics and never reports a problem the schema or the
    /// semantic checks should have caught as an "internal" (serde) one; a spec with no problems loads.
    #[test]
    fn mutated_specs_are_judged_by_the_schema_not_by_serde(
        edits in proptest::collection::vec((0..FIELDS.len(), field_value()), 0..4)
    ) {
        let mut spec = json!({ "id": "fuzz", "schedule": { "every": "1h" }, "run": { "command": ["true"] } });
        for (field, value) in edits {
            set(&mut spec, FIELDS[field], value);
        }
        match load_source(&spec.to_string(), "fuzz", now()) {
            Ok(loaded) => prop_assert_eq!(loaded.spec.id, "fuzz"),
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

/// The `--json` shapes the README documents, checked on real output.
#[test]
fn json_outputs_have_the_documented_shapes() {
    use crate::common::{TestHome, manual_spec};
    let has = |value: &Value, keys: &[&str], what: &str| {
        for key in keys {
            assert!(value.get(key).is_some(), "{what} lacks {key}: {value}");
        }
    };
    let home = TestHome::new();
    home.spec("a.yaml", manual_spec("a"));
    let (run, _) = home.json(&["run", "a"]);
    has(
        &run["data"],
        &["jobs_run", "total", "succeeded", "failed"],
        "run",
    );
    has(
        &run["data"]["jobs_run"][0],
        &[
            "job_id",
            "run",
            "status",
            "exit_code",
            "duration_ms",
            "run_dir",
        ],
        "jobs_run[]",
    );
    let (history, _) = home.json(&["history"]);
    has(&history["data"], &["entries", "total"], "history");
    has(
        &history["data"]["entries"][0],
        &[
            "job_id",
            "run",
            "trigger",
            "slot",
            "status",
            "started_at",
            "finished_at",
            "duration_ms",
            "exit_code",
            "attempts",
            "error",
        ],
        "entries[]",
    );
    let (list, _) = home.json(&["list"]);
    has(&list["data"], &["jobs", "total"], "list");
    let (validate, _) = home.json(&["validate"]);
    has(
        &validate["data"]["files"][0],
        &["path", "ok", "problems"],
        "files[]",
    );
    let (error, _) = home.json(&["show", "nope"]);
    has(&error["error"], &["code", "message", "hint"], "error");
    assert_eq!(error["ok"], false);
}
