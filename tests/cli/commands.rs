//! `jobsctl list`, `show`, `schema` and the shared conventions: global flags anywhere, the `--json`
//! envelope, error codes and exit codes.

use crate::common::{TestHome, manual_spec};

const NIGHTLY: &str = "id: nightly\ndescription: Build the report\nschedule:\n  cron: \"30 2 * * *\"\n  timezone: America/New_York\n  jitter: 30s\nrun:\n  command: [\"true\"]\n  env:\n    API_TOKEN: s3cr3t-value\n";

#[test]
fn list_shows_schedule_zone_next_state_and_description() {
    let home = TestHome::new();
    home.spec("nightly.yaml", NIGHTLY)
        .spec("manual.yaml", manual_spec("manual"));
    let outcome = home.run(&["list"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("NEXT") && lines[0].contains("DESCRIPTION")
    );
    assert!(
        lines[1].starts_with("manual ")
            && lines[1].contains("manual")
            && lines[1].contains("active")
    );
    assert!(lines[2].starts_with("nightly "), "{}", outcome.stdout);
    assert!(lines[2].contains("30 2 * * *") && lines[2].contains("America/New_York"));
    assert!(
        lines[2].contains(":30:00 ES") || lines[2].contains(":30:00 ED"),
        "local time with zone: {}",
        lines[2]
    );
    assert!(lines[2].contains("(in "), "relative time: {}", lines[2]);
    assert!(lines[2].contains("Build the report"));

    let (list, code) = home.json(&["list"]);
    assert_eq!(code, 0);
    assert_eq!(list["ok"], true);
    assert_eq!(list["data"]["total"], 2);
    let nightly = &list["data"]["jobs"][1];
    assert_eq!(nightly["id"], "nightly");
    assert_eq!(nightly["timezone"], "America/New_York");
    assert!(
        nightly["next_slot"]
            .as_str()
            .is_some_and(|s| s.ends_with(":30:00.000Z")),
        "{nightly}"
    );
    assert_eq!(
        list["data"]["jobs"][0]["next_slot"],
        serde_json::Value::Null,
        "manual jobs have no next slot"
    );
}

#[test]
fn list_of_an_empty_home_says_where_specs_go() {
    let home = TestHome::new();
    let outcome = home.run(&["list"]);
    assert_eq!(
        (outcome.code, outcome.stdout.as_str()),
        (0, "no jobs: add a spec file to jobs\n")
    );
}

#[test]
fn show_describes_the_schedule_and_never_prints_env_values() {
    let home = TestHome::new();
    home.spec("nightly.yaml", NIGHTLY);
    let outcome = home.run(&["show", "nightly"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    for needle in [
        "nightly",
        "Build the report",
        "30 2 * * * (America/New_York)",
        "at 02:30",
        "next slots",
        "API_TOKEN",
        "failure streak",
    ] {
        assert!(
            outcome.stdout.contains(needle),
            "missing {needle:?} in\n{}",
            outcome.stdout
        );
    }
    assert!(!outcome.stdout.contains("s3cr3t"), "env values never shown");

    let (show, code) = home.json(&["show", "nightly"]);
    assert_eq!(code, 0);
    let data = &show["data"];
    assert_eq!(data["state"], "active");
    assert_eq!(data["schedule"]["kind"], "cron");
    assert_eq!(data["schedule"]["timezone"], "America/New_York");
    assert_eq!(data["schedule"]["jitter"], "30s");
    assert_eq!(data["next_slots"].as_array().map(Vec::len), Some(5));
    assert_eq!(data["run"]["env_names"][0], "API_TOKEN");
    for empty in ["last_run", "last_success", "last_failure"] {
        assert!(
            data[empty].is_null(),
            "{empty} present and empty until runs exist"
        );
    }
    assert_eq!(data["failure_streak"], 0);
    assert!(
        !show.to_string().contains("s3cr3t"),
        "env values never in --json"
    );
}

#[test]
fn unknown_jobs_are_not_found_with_close_ids() {
    let home = TestHome::new();
    home.spec("heartbeat.yaml", manual_spec("heartbeat"));
    let outcome = home.run(&["show", "hartbeat"]);
    assert_eq!(outcome.code, 3);
    assert_eq!(
        outcome.stderr,
        "error: no job with id `hartbeat`\nhint: did you mean: heartbeat?\n"
    );

    let (error, code) = home.json(&["next", "nope"]);
    assert_eq!(code, 3);
    assert_eq!(error["ok"], false);
    assert_eq!(error["error"]["code"], "job_not_found");
    assert_eq!(
        error["error"]["hint"],
        "run `jobsctl list` to see the known jobs"
    );
}

#[test]
fn global_flags_work_before_and_after_the_subcommand() {
    let home = TestHome::new();
    home.spec("a.yaml", manual_spec("a"));
    let before = home.run(&["--json", "list"]);
    let after = home.run(&["list", "--json"]);
    assert_eq!(before.code, 0);
    assert_eq!(before.stdout, after.stdout);
    let verbose = home.run(&["list", "-v", "--color", "never"]);
    assert_eq!(verbose.code, 0, "{}", verbose.stderr);
}

#[test]
fn usage_errors_exit_2_and_speak_json_when_asked() {
    let home = TestHome::new();
    let outcome = home.run(&["frobnicate"]);
    assert_eq!(outcome.code, 2);
    let (error, code) = home.json(&["next", "a", "-n", "0"]);
    assert_eq!(code, 2);
    assert_eq!(error["error"]["code"], "usage");
    let (error, code) = home.json(&["next", "a", "--after", "tomorrow"]);
    assert_eq!(code, 2);
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("RFC 3339")),
        "{error}"
    );
}

#[test]
fn schema_prints_the_shipped_schema() {
    let home = TestHome::new();
    let outcome = home.run(&["schema"]);
    assert_eq!(outcome.code, 0);
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/job.schema.json"
    ))
    .expect("read schema");
    assert_eq!(outcome.stdout, shipped);
}

#[test]
fn home_comes_from_the_environment_too() {
    let home = TestHome::new();
    home.spec("envhome.yaml", manual_spec("envhome"));
    let output = assert_cmd::Command::cargo_bin("jobsctl")
        .expect("binary")
        .args(["--json", "list"])
        .env("JOBS_HOME", home.path())
        .output()
        .expect("run");
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(list["data"]["jobs"][0]["id"], "envhome");
}

#[test]
fn a_store_that_is_not_a_database_is_a_store_error() {
    let home = TestHome::new();
    std::fs::create_dir_all(home.path().join("db")).expect("mkdir");
    std::fs::write(home.path().join("db/jobs.sqlite3"), vec![b'x'; 4096]).expect("write garbage");
    let (error, code) = home.json(&["list"]);
    assert_eq!(code, 6);
    assert_eq!(error["error"]["code"], "store_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("jobs.sqlite3")),
        "{error}"
    );
}

#[test]
fn a_home_that_does_not_exist_is_an_error_not_a_new_home() {
    let home = TestHome::new();
    let missing = home.path().join("no-such-home");
    let output = assert_cmd::Command::cargo_bin("jobsctl")
        .expect("binary")
        .args([
            "--json",
            "--home",
            missing.to_str().expect("utf-8"),
            "status",
        ])
        .output()
        .expect("run");
    assert_eq!(
        output.status.code(),
        Some(2),
        "a missing home is not a home"
    );
    let error: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(error["error"]["code"], "not_a_home", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no-such-home")),
        "{error}"
    );
    assert!(!missing.exists(), "nothing was created");
}

#[test]
fn the_store_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let home = TestHome::new();
    home.spec("a.yaml", manual_spec("a"));
    assert_eq!(home.run(&["list"]).code, 0);
    let mode = |p: &str| {
        std::fs::metadata(home.path().join(p))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("db"), 0o700);
    assert_eq!(mode("db/jobs.sqlite3"), 0o600);
    let copy = home.path().join("copy.sqlite3");
    assert_eq!(home.run(&["backup", copy.to_str().expect("utf-8")]).code, 0);
    assert_eq!(mode("copy.sqlite3"), 0o600, "backups too");
}
