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

/// `jobsctl --home <home> <args>` with extra environment variables, and how long it took.
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

    // As if it had been stopped for two minutes, without waiting for them. A scheduler stopped in the
    // middle of a commit holds the write lock while it is stopped: then let it finish and stop it again.
    let two_minutes_ago = chrono::Utc::now().timestamp_millis() - 120_000;
    let aging = writer(&home);
    aging
        .busy_timeout(Duration::from_millis(200))
        .expect("timeout");
    let mut aged = false;
    for _ in 0..50 {
        signal(&scheduler, Signal::STOP);
        match aging.execute(
            "UPDATE scheduler_owner SET heartbeat_at = ?1",
            [two_minutes_ago],
        ) {
            Ok(_) => {
                aged = true;
                break;
            }
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
                signal(&scheduler, Signal::CONT);
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("age the heartbeat: {e}"),
        }
    }
    assert!(
        aged,
        "the heartbeat could be aged while the scheduler was stopped"
    );
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

/// The highest run number with a directory under `runs/<job>/`, and every such number.
fn run_dir_seqs(home: &TestHome, job: &str) -> Vec<i64> {
    let mut seqs: Vec<i64> = std::fs::read_dir(home.path().join("runs").join(job))
        .expect("job dir")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    seqs.sort_unstable();
    seqs
}

#[test]
fn restoring_a_backup_keeps_later_runs_and_their_numbers() {
    let home = TestHome::new();
    home.spec(
        "t.yaml",
        "id: t\nschedule:\n  cron: \"* * * * * *\"\n  timezone: UTC\nrun:\n  command: [\"true\"]\n",
    );
    let scheduler = start_scheduler(&home, &[]);
    let succeeded = |n: i64| {
        move |home: &TestHome| {
            home.count("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'") >= n
        }
    };
    let two = succeeded(2);
    wait_until("two runs", 15, || two(&home));
    let backup = home.path().join("backup.sqlite3");
    let outcome = home.run(&["backup", backup.to_str().expect("path")]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let at_backup = rusqlite::Connection::open(&backup)
        .expect("open the backup")
        .query_row("SELECT run_counter FROM jobs WHERE id = 't'", [], |r| {
            r.get::<_, i64>(0)
        })
        .expect("counter");
    wait_until("three runs after the backup", 15, || {
        home.count(&format!(
            "SELECT COUNT(*) FROM runs WHERE status = 'succeeded' AND seq > {at_backup}"
        )) >= 3
    });
    assert_eq!(stop(scheduler), 0);
    let before = run_dir_seqs(&home, "t");
    let later: Vec<i64> = before.iter().copied().filter(|s| *s > at_backup).collect();
    assert!(later.len() >= 3, "{before:?} after {at_backup}");

    // The runbook's restore: the store goes aside, the backup takes its place.
    let aside = home.path().join("db-aside");
    std::fs::create_dir(&aside).expect("aside");
    for name in ["jobs.sqlite3", "jobs.sqlite3-wal", "jobs.sqlite3-shm"] {
        let from = home.path().join("db").join(name);
        if from.exists() {
            std::fs::rename(&from, aside.join(name)).expect("move aside");
        }
    }
    std::fs::copy(&backup, home.path().join("db/jobs.sqlite3")).expect("restore");

    let (plan, code) = home.json(&["scheduler", "--dry-run"]);
    assert_eq!(code, 0, "{plan}");
    let lines: Vec<&str> = plan["data"]["plan"]
        .as_array()
        .expect("plan")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    for seq in &later {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("t#{seq}: ")) && l.contains("no record")),
            "the dry run names t#{seq}: {lines:?}"
        );
    }
    assert!(
        !lines.iter().any(|l| l.contains("skipped (overlap)")),
        "{lines:?}"
    );

    let scheduler = start_scheduler(&home, &[]);
    let max_before = *before.last().expect("runs");
    wait_until("two runs after the restore", 15, || {
        home.count(&format!(
            "SELECT COUNT(*) FROM runs WHERE status = 'succeeded' AND seq > {max_before}"
        )) >= 2
    });
    assert_eq!(stop(scheduler), 0);
    let log = crate::common::scheduler_log(&home);
    assert!(
        !log.contains("removed a run directory"),
        "nothing is deleted at start:\n{log}"
    );
    for seq in &later {
        let moved = home
            .path()
            .join("runs/t/.orphaned")
            .join(seq.to_string())
            .join("run_receipt.json");
        assert!(moved.exists(), "t#{seq} is set aside, not deleted:\n{log}");
        assert!(
            log.contains(&format!("t#{seq}")),
            "the log names t#{seq}:\n{log}"
        );
    }
    // No number is used twice: every run recorded since the restore is numbered past them.
    let reused = home.count(&format!(
        "SELECT COUNT(*) FROM runs WHERE seq > {at_backup} AND seq <= {max_before}"
    ));
    assert_eq!(
        reused, 0,
        "numbers of the set-aside runs were handed out again"
    );

    // prune reports and removes what was set aside.
    let (pruned, code) = home.json(&["prune", "--dry-run"]);
    assert_eq!(code, 0, "{pruned}");
    assert_eq!(pruned["data"]["set_aside"], later.len(), "{pruned}");
    let (pruned, code) = home.json(&["prune"]);
    assert_eq!(code, 0, "{pruned}");
    for seq in &later {
        assert!(
            !home
                .path()
                .join("runs/t/.orphaned")
                .join(seq.to_string())
                .exists(),
            "{pruned}"
        );
    }
}

#[test]
fn a_run_found_interrupted_lasts_until_its_last_event_not_until_it_was_found() {
    let home = crate::common::killed_run();
    // Found long after its owner died.
    std::thread::sleep(Duration::from_millis(2500));
    let (history, code) = home.json(&["history", "doomed"]);
    assert_eq!(code, 0, "{history}");
    let entry = &history["data"]["entries"][0];
    assert_eq!(entry["status"], "interrupted", "{history}");
    let duration = entry["duration_ms"].as_i64().expect("duration");
    assert!(duration < 2000, "{duration} ms: counted until it was found");
    let receipt = home.receipt("doomed", 1)["duration_ms"]
        .as_i64()
        .expect("receipt duration");
    assert!(receipt < 2000, "the receipt says {receipt} ms");
}
