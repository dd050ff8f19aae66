//! A home whose store is a PostgreSQL database: how the store is named (and a password never on
//! the command line or on the screen), a bad store refused by every command, and the real binary's
//! runs, history and scheduler on the database `.ci/postgres` starts (`JOBS_TEST_PG_URL`).

use std::time::{Duration, Instant};

use crate::common::{
    TestHome, fresh_pg_database as fresh_database, manual_spec, start_scheduler, stop,
};

#[test]
fn a_password_on_the_command_line_is_refused_and_never_shown() {
    let home = TestHome::new();
    home.spec("a.yaml", manual_spec("a"));
    let out = home.run(&[
        "--store",
        "postgres://jobs:s3cretpw@127.0.0.1:1/jobs",
        "list",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("has a password in it"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("s3cretpw"), "{}", out.stderr);
    assert!(
        out.stderr.contains("postgres://jobs:***@127.0.0.1:1/jobs"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_bad_store_refuses_every_command_rather_than_open_another() {
    let home = TestHome::new();
    home.spec("a.yaml", manual_spec("a"));
    // Not a PostgreSQL URL.
    let out = home.run(&["--store", "mysql://db/jobs", "list"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("is not a PostgreSQL URL"),
        "{}",
        out.stderr
    );
    // A server that is not there: a store error, with the password given by the environment
    // masked nowhere because it never appears.
    let out = home
        .command(&[
            "--store",
            "postgres://jobs@127.0.0.1:1/jobs?connect_timeout=2",
            "run",
            "a",
        ])
        .env("PGPASSWORD", "s3cretpw")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("connect to the store postgres://jobs@127.0.0.1:1/jobs"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cretpw"), "{stderr}");
    // The hint speaks of the server, not of a file under db/.
    assert!(
        stderr.contains("check that the PostgreSQL server") && !stderr.contains("db/ under"),
        "{stderr}"
    );
    assert!(
        !home.path().join("db/jobs.sqlite3").exists(),
        "no SQLite store made instead"
    );
    // The config names the store, but is invalid elsewhere: refused, not a guess.
    std::fs::write(
        home.path().join("config.yaml"),
        "store: postgres://jobs@127.0.0.1:1/jobs\nmax_running: zero\n",
    )
    .expect("config");
    let out = home.run(&["list"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("config.yaml names a store but is invalid"),
        "{}",
        out.stderr
    );
    // A password in the config's URL is a problem of the config, with its position.
    std::fs::write(
        home.path().join("config.yaml"),
        "store: postgres://jobs:pw@127.0.0.1:1/jobs\n",
    )
    .expect("config");
    let out = home.run(&["validate"]);
    assert_eq!(out.code, 4, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("config.yaml:1:1: /store: postgres://jobs:***@127.0.0.1:1/jobs is not"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(":pw@"), "{}", out.stdout);
}

#[test]
fn two_homes_share_one_database_runs_history_and_status() {
    let Some(url) = fresh_database() else { return };
    let (a, b) = (TestHome::new(), TestHome::new());
    for home in [&a, &b] {
        home.spec("report.yaml", manual_spec("report"));
    }
    let ran = a.run(&["--store", &url, "run", "report"]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert!(
        !a.path().join("db/jobs.sqlite3").exists(),
        "the runs went to PostgreSQL"
    );
    // The other home sees the run, by the environment's name for the store.
    let history = b
        .command(&["--json", "history", "report"])
        .env("JOBS_STORE", &url)
        .output()
        .expect("history");
    let doc: serde_json::Value = serde_json::from_slice(&history.stdout).expect("json");
    assert_eq!(doc["data"]["entries"][0]["run"], 1, "{doc}");
    assert_eq!(doc["data"]["entries"][0]["status"], "succeeded", "{doc}");
    // Its directory is in the first home; the other home tails it from the store's mirror.
    assert!(!b.run_dir("report", 1).exists());
    let tail = b.run(&["--store", &url, "tail", "report", "--run", "1"]);
    assert_eq!(tail.code, 0, "{}{}", tail.stdout, tail.stderr);
    assert!(
        tail.stdout.contains("> report#1 started") && tail.stdout.contains("= report#1 succeeded"),
        "{}",
        tail.stdout
    );
    // A second run from the other home takes the next number.
    let ran = b.run(&["--store", &url, "run", "report"]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let (doc, _) = a.json(&["--store", &url, "history", "report"]);
    assert_eq!(doc["data"]["entries"][0]["run"], 2, "{doc}");
    let (status, _) = a.json(&["--store", &url, "status"]);
    assert_eq!(status["data"]["store"], serde_json::json!(url), "{status}");
}

#[test]
fn a_tail_from_another_home_says_where_the_mirrored_output_stops() {
    let Some(url) = fresh_database() else { return };
    let (a, b) = (TestHome::new(), TestHome::new());
    let spec = "id: chatty\nrun:\n  shell: \"seq 1 1200\"\n";
    a.spec("chatty.yaml", spec);
    b.spec("chatty.yaml", spec);
    let ran = a.run(&["--store", &url, "run", "chatty"]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let tail = b.run(&["--store", &url, "tail", "chatty", "--run", "1"]);
    assert_eq!(tail.code, 0, "{}{}", tail.stdout, tail.stderr);
    assert!(tail.stdout.contains("1000"), "{}", tail.stdout);
    assert!(!tail.stdout.contains("1001"), "capped: {}", tail.stdout);
    assert!(
        tail.stderr
            .contains("the store keeps the first 1000 output lines of chatty#1"),
        "{}",
        tail.stderr
    );
}

#[test]
fn the_scheduler_runs_a_job_every_second_on_postgresql_with_every_slot_once() {
    let Some(url) = fresh_database() else { return };
    let home = TestHome::new();
    home.spec(
        "tick.yaml",
        "id: tick\nschedule: {every: 1s}\nrun:\n  command: [\"true\"]\n",
    );
    let scheduler = start_scheduler(&home, &[("JOBS_STORE", &url)]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut runs = Vec::new();
    while Instant::now() < deadline {
        let (doc, _) = home.json(&["--store", &url, "history", "tick", "--status", "succeeded"]);
        runs = doc["data"]["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if runs.len() >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(stop(scheduler), 0);
    assert!(runs.len() >= 4, "{runs:?}");
    let mut slots: Vec<&str> = runs.iter().filter_map(|r| r["slot"].as_str()).collect();
    let all = slots.len();
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len(), all, "no slot twice: {runs:?}");
    assert!(!home.path().join("db/jobs.sqlite3").exists());
}

#[test]
fn store_copy_moves_a_homes_jobs_and_history_into_an_empty_database_once() {
    let home = TestHome::new();
    home.spec("report.yaml", manual_spec("report"));
    home.spec(
        "nightly.yaml",
        "id: nightly\nschedule: {every: 1h}\nrun:\n  command: [\"true\"]\n",
    );
    for _ in 0..2 {
        let ran = home.run(&["run", "report"]);
        assert_eq!(ran.code, 0, "{}", ran.stderr);
    }
    assert_eq!(home.run(&["pause", "nightly"]).code, 0);
    let refused = home.run(&["store", "copy", "--to", "postgres://jobs:pw@127.0.0.1:1/x"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(!refused.stderr.contains(":pw@"), "{}", refused.stderr);
    let Some(url) = fresh_database() else { return };
    let (copied, code) = home.json(&["store", "copy", "--to", &url]);
    assert_eq!(code, 0, "{copied}");
    let rows = |table: &str| {
        copied["data"]["tables"]
            .as_array()
            .and_then(|t| t.iter().find(|e| e["table"] == table))
            .map(|e| e["rows"].clone())
    };
    assert_eq!(rows("jobs"), Some(serde_json::json!(2)), "{copied}");
    assert_eq!(rows("runs"), Some(serde_json::json!(2)), "{copied}");
    // The copy is the store: same runs, same numbers, same operator state; the next run is #3.
    let (history, _) = home.json(&["--store", &url, "history", "report"]);
    let seqs: Vec<i64> = history["data"]["entries"]
        .as_array()
        .map(|e| e.iter().filter_map(|r| r["run"].as_i64()).collect())
        .unwrap_or_default();
    assert_eq!(seqs, [2, 1], "{history}");
    let (list, _) = home.json(&["--store", &url, "list"]);
    let nightly = list["data"]["jobs"]
        .as_array()
        .and_then(|j| j.iter().find(|j| j["id"] == "nightly"))
        .map(|j| j["state"].clone());
    assert_eq!(nightly, Some(serde_json::json!("paused")), "{list}");
    let ran = home.run(&["--store", &url, "--json", "run", "report"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).expect("json");
    assert_eq!(doc["data"]["jobs_run"][0]["run"], 3, "{doc}");
    // A second copy would merge two histories: refused, and the copy stays as it was.
    let again = home.run(&["store", "copy", "--to", &url]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(
        again.stderr.contains("already has 2 job(s)"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_nul_in_any_text_of_a_spec_is_its_problem_and_never_the_homes() {
    let home = TestHome::new();
    home.spec("fine.yaml", manual_spec("fine"));
    home.spec(
        "hostile.yaml",
        "id: hostile\ndescription: \"a \\u0000 b\"\nrun:\n  command: [\"true\"]\n",
    );
    let checked = home.run(&["validate"]);
    assert_eq!(checked.code, 4, "{}", checked.stdout);
    assert!(
        checked
            .stdout
            .contains("jobs/hostile.yaml:2:1: /description: contains a NUL character"),
        "{}",
        checked.stdout
    );
    let Some(url) = fresh_database() else { return };
    let ran = home.run(&["--store", &url, "run", "fine"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let (list, code) = home.json(&["--store", &url, "list"]);
    assert_eq!(code, 0, "{list}");
}

#[test]
fn a_run_never_inherits_the_stores_password() {
    let Some(url) = fresh_database() else { return };
    let home = TestHome::new();
    home.spec(
        "peek.yaml",
        "id: peek\nrun:\n  shell: 'echo \"password=${PGPASSWORD-unset} store=${JOBS_STORE-unset}\"'\nnotify:\n  - command: [sh, -c, 'echo \"password=${PGPASSWORD-unset} store=${JOBS_STORE-unset}\" > \"$JOBS_HOME_FOR_TEST/notified.txt\"']\n    on: [succeeded]\n",
    );
    // The server trusts loopback connections, so a password in the environment is ignored by it.
    let with_secret = url.replacen("://jobs@", "://jobs:hunter2@", 1);
    let ran = home
        .command(&["run", "peek"])
        .env("JOBS_STORE", &with_secret)
        .env("PGPASSWORD", "hunter2")
        .env("JOBS_HOME_FOR_TEST", home.path())
        .output()
        .expect("run");
    assert_eq!(
        ran.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let out = std::fs::read_to_string(home.run_dir("peek", 1).join("stdout.log")).expect("log");
    assert_eq!(out, "password=unset store=unset\n");
    // Nor does a notifier's command, which the run's own process delivers when no scheduler runs.
    let notified = std::fs::read_to_string(home.path().join("notified.txt")).expect("notified");
    assert_eq!(notified, "password=unset store=unset\n");
}

#[test]
fn the_most_verbose_log_never_shows_the_drivers_statements_and_their_parameters() {
    let Some(url) = fresh_database() else { return };
    let home = TestHome::new();
    home.spec(
        "secret.yaml",
        "id: secret\nrun:\n  command: [\"true\"]\n  env:\n    API_TOKEN: tok-7f3a9c\n",
    );
    let out = home.run(&["--store", &url, "-vvv", "list"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("TRACE") || out.stderr.contains("DEBUG"),
        "-vvv logs: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("tok-7f3a9c"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("executing statement"),
        "{}",
        out.stderr
    );
}
