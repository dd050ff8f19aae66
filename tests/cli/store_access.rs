//! The store as other processes see it: commands that only read answer while another process holds the
//! write lock, a held lock gets its own error, a stopped scheduler is reported as such, and a run
//! number that is a record of slots that did not run says so.

use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::common::{Outcome, TestHome, manual_spec, signal, start_scheduler, stop, wait_until};

/// A read-write connection of the test process, for holding the write lock or editing a row.
fn writer(home: &TestHome) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(home.path().join("db/jobs.sqlite3")).expect("open");
    conn.busy_timeout(Duration::from_secs(10)).expect("timeout");
    conn
}

/// `jobs --home <home> <args>` with extra environment variables, and how long it took.
fn run_with(home: &TestHome, envs: &[(&str, &str)], args: &[&str]) -> (Outcome, Duration) {
    let mut command = home.command(args);
    for (key, value) in envs {
        command.env(key, value);
    }
    let started = Instant::now();
    let output = command.output().expect("run jobs");
    let outcome = Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    (outcome, started.elapsed())
}

#[test]
fn read_commands_answer_while_another_process_holds_the_write_lock() {
    let home = TestHome::new();
    home.spec("a.yaml", manual_spec("a"));
    assert_eq!(home.run(&["run", "a"]).code, 0);
    let lock = writer(&home);
    lock.execute_batch("BEGIN IMMEDIATE")
        .expect("hold the write lock");

    for args in [
        &["--json", "history"][..],
        &["--json", "status"],
        &["--json", "list"],
        &["--json", "show", "a"],
    ] {
        let (outcome, took) = run_with(&home, &[], args);
        assert!(
            took < Duration::from_secs(5),
            "{args:?} took {took:?} under a held lock: {}",
            outcome.stderr
        );
        let json = outcome.json();
        match args[1] {
            "history" => {
                assert_eq!(outcome.code, 0, "{json}");
                assert_eq!(json["data"]["total"], 1, "{json}");
                assert_eq!(json["data"]["entries"][0]["status"], "succeeded", "{json}");
            }
            // No scheduler runs: status says so (exit 5), not a store failure.
            "status" => assert_eq!(json["error"]["code"], "scheduler_not_running", "{json}"),
            "list" => {
                assert_eq!(outcome.code, 0, "{json}");
                assert_eq!(json["data"]["total"], 1, "{json}");
            }
            _ => {
                assert_eq!(outcome.code, 0, "{json}");
                assert_eq!(json["data"]["id"], "a", "{json}");
            }
        }
    }

    // A spec change cannot be recorded now: the command still answers, and says so.
    home.spec("b.yaml", manual_spec("b"));
    let (outcome, _) = run_with(&home, &[("JOBS_BUSY_TIMEOUT", "300ms")], &["list"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("not recorded in the store yet"),
        "{}",
        outcome.stderr
    );

    // A write waits for the lock, then fails as busy: not as a migration, not as a file system.
    let (outcome, _) = run_with(
        &home,
        &[("JOBS_BUSY_TIMEOUT", "300ms")],
        &["--json", "pause", "a"],
    );
    let json = outcome.json();
    assert_eq!(outcome.code, 6, "{json}");
    assert_eq!(json["error"]["code"], "store_busy", "{json}");
    let message = json["error"]["message"].as_str().expect("message");
    assert!(message.contains("write lock"), "{message}");
    assert!(
        !message.contains("migrate") && !json["error"]["hint"].to_string().contains("network"),
        "{json}"
    );

    lock.execute_batch("COMMIT").expect("release");
    let (json, code) = home.json(&["list"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(
        json["data"]["total"], 2,
        "the next command records b: {json}"
    );
}

#[test]
fn a_pending_migration_under_a_held_lock_is_reported_busy() {
    let home = TestHome::new();
    home.spec("a.yaml", manual_spec("a"));
    assert_eq!(home.run(&["list"]).code, 0);
    let lock = writer(&home);
    let version: i64 = lock
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    lock.pragma_update(None, "user_version", version - 1)
        .expect("pretend one migration is pending");
    lock.execute_batch("BEGIN IMMEDIATE")
        .expect("hold the write lock");
    let (outcome, took) = run_with(
        &home,
        &[("JOBS_BUSY_TIMEOUT", "300ms")],
        &["--json", "history"],
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let json = outcome.json();
    assert_eq!(outcome.code, 6, "{json}");
    assert_eq!(json["error"]["code"], "store_busy", "{json}");
    lock.execute_batch("ROLLBACK").expect("release");
}

#[test]
fn a_bad_busy_timeout_is_a_usage_error() {
    let home = TestHome::new();
    let (outcome, _) = run_with(&home, &[("JOBS_BUSY_TIMEOUT", "soon")], &["--json", "list"]);
    let json = outcome.json();
    assert_eq!(outcome.code, 2, "{json}");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("JOBS_BUSY_TIMEOUT")),
        "{json}"
    );
}

#[test]
fn status_of_a_stopped_scheduler_is_unresponsive() {
    let home = TestHome::new();
    let scheduler = start_scheduler(&home, &[]);
    wait_until("the scheduler to record itself", 10, || {
        home.count("SELECT COUNT(*) FROM scheduler_owner") == 1
    });
    let (json, code) = home.json(&["status"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["data"]["scheduler"]["responsive"], true, "{json}");

    signal(&scheduler, Signal::STOP);
    // As if it had been stopped for two minutes, without waiting for them.
    let two_minutes_ago = chrono::Utc::now().timestamp_millis() - 120_000;
    writer(&home)
        .execute(
            "UPDATE scheduler_owner SET heartbeat_at = ?1",
            [two_minutes_ago],
        )
        .expect("age the heartbeat");
    let (json, code) = home.json(&["status"]);
    signal(&scheduler, Signal::CONT);
    assert_eq!(code, 5, "{json}");
    assert_eq!(json["error"]["code"], "scheduler_unresponsive", "{json}");
    assert_eq!(json["data"]["scheduler"]["responsive"], false, "{json}");
    let human = home.run(&["status"]);
    // Running again, it beats within 2 s; until then the text says what is wrong.
    assert!(
        human.code == 0 || human.stdout.contains("unresponsive"),
        "{human:?}"
    );
    assert_eq!(stop(scheduler), 0);
}

#[test]
fn replay_and_tail_of_a_skipped_record_say_what_it_is() {
    let home = TestHome::new();
    home.spec(
        "k.yaml",
        "id: k\nschedule:\n  cron: \"* * * * * *\"\n  timezone: UTC\nrun:\n  command: [\"sleep\", \"3\"]\npolicy:\n  overlap: skip\n",
    );
    let scheduler = start_scheduler(&home, &[]);
    wait_until("a skipped slot", 15, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'skipped'") >= 1
    });
    assert_eq!(stop(scheduler), 0);
    let seq = home.count("SELECT MIN(seq) FROM runs WHERE status = 'skipped'");
    let run = seq.to_string();
    for args in [
        &["--json", "replay", "k", "--run", &run][..],
        &["--json", "tail", "k", "--run", &run],
    ] {
        let outcome = home.run(args);
        let json = outcome.json();
        assert_eq!(outcome.code, 3, "{args:?}: {json}");
        assert_eq!(json["error"]["code"], "run_not_found", "{json}");
        assert_eq!(
            json["error"]["message"],
            format!(
                "k#{seq} is a skipped record (overlap), not a run: nothing ran, so there is nothing to replay or tail"
            ),
            "{json}"
        );
    }
    // A number that is nothing at all keeps the plain message.
    let outcome = home.run(&["--json", "replay", "k", "--run", "9999"]);
    assert_eq!(
        outcome.json()["error"]["message"],
        "job `k` has no run 9999"
    );
}
