//! `jobsctl prune` and `jobsctl replay`.

use std::time::Duration;

use crate::common::{SchedulerStart, TestHome, wait_exit, wait_until};

fn kept(home: &TestHome) -> Vec<i64> {
    let db = home.db();
    let mut statement = db
        .prepare("SELECT seq FROM runs ORDER BY seq")
        .expect("query");
    statement
        .query_map([], |r| r.get(0))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect()
}

#[test]
fn prune_keeps_the_newest_and_dry_run_changes_nothing() {
    let home = TestHome::new();
    home.spec(
        "keep.yaml",
        "id: keep\nrun:\n  command: [\"true\"]\nretention:\n  keep_last: 2\n",
    );
    for _ in 0..4 {
        assert_eq!(home.run(&["run", "keep"]).code, 0);
    }
    let (plan, code) = home.json(&["prune", "--dry-run"]);
    assert_eq!(code, 0);
    assert_eq!(
        plan["data"]["jobs"][0]["runs"],
        serde_json::json!([1, 2]),
        "oldest first"
    );
    assert_eq!(kept(&home), [1, 2, 3, 4], "a dry run changes nothing");
    assert!(home.run_dir("keep", 1).exists());

    let outcome = home.run(&["prune", "keep"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert!(
        outcome.stdout.contains("removed keep#1") && outcome.stdout.contains("removed keep#2"),
        "{}",
        outcome.stdout
    );
    assert_eq!(kept(&home), [3, 4]);
    assert!(
        !home.run_dir("keep", 1).exists() && !home.run_dir("keep", 2).exists(),
        "rows and directories go together"
    );
    assert!(home.run_dir("keep", 3).exists());
    let (again, _) = home.json(&["prune"]);
    assert_eq!(again["data"]["runs"], 0, "a second prune has nothing to do");
}

#[test]
fn prune_by_age_and_never_a_run_in_flight() {
    let home = TestHome::new();
    home.spec("aged.yaml", "id: aged\nrun:\n  shell: \"sleep $(cat pause 2>/dev/null || echo 0)\"\nretention:\n  keep_days: 30\n");
    for _ in 0..3 {
        assert_eq!(home.run(&["run", "aged"]).code, 0);
    }
    {
        let db = rusqlite::Connection::open(home.path().join("db/jobs.sqlite3")).expect("open");
        let forty_days = 40 * 86_400_000_i64;
        db.execute("UPDATE runs SET finished_at = finished_at - ?1, claimed_at = claimed_at - ?1 WHERE seq <= 2", [forty_days])
            .expect("age two runs");
    }
    std::fs::write(home.path().join("pause"), "3").expect("pause");
    let (started, code) = home.json(&["run", "--detach", "aged"]);
    assert_eq!(code, 0, "{started}");
    wait_until("the run to be in flight", 5, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'running'") == 1
    });
    {
        // Make the run in flight look ancient too: only its being in flight protects it.
        let db = rusqlite::Connection::open(home.path().join("db/jobs.sqlite3")).expect("open");
        db.execute(
            "UPDATE runs SET claimed_at = claimed_at - 4000000000 WHERE seq = 4",
            [],
        )
        .expect("age");
    }
    let (pruned, code) = home.json(&["prune", "aged"]);
    assert_eq!(code, 0);
    assert_eq!(pruned["data"]["jobs"][0]["runs"], serde_json::json!([1, 2]));
    assert_eq!(
        kept(&home),
        [3, 4],
        "the recent run and the one in flight stay"
    );
    assert!(home.run_dir("aged", 4).exists());
}

#[test]
fn a_prune_interrupted_between_rows_and_directories_is_finished_by_the_next() {
    let home = TestHome::new();
    home.spec(
        "crash.yaml",
        "id: crash\nrun:\n  command: [\"true\"]\nretention:\n  keep_last: 5\n",
    );
    for _ in 0..2 {
        assert_eq!(home.run(&["run", "crash"]).code, 0);
    }
    // As if a prune had deleted run 1's row and died before its directory.
    rusqlite::Connection::open(home.path().join("db/jobs.sqlite3"))
        .expect("open")
        .execute("DELETE FROM runs WHERE seq = 1", [])
        .expect("delete row");
    // And a directory half removed, with no row either.
    std::fs::create_dir_all(home.run_dir("crash", 9)).expect("leftover");
    let (plan, _) = home.json(&["prune", "--dry-run"]);
    assert_eq!(plan["data"]["orphans"], 2);
    let (done, code) = home.json(&["prune"]);
    assert_eq!((code, done["data"]["orphans"].as_i64()), (0, Some(2)));
    assert!(!home.run_dir("crash", 1).exists() && !home.run_dir("crash", 9).exists());
    assert!(
        home.run_dir("crash", 2).exists(),
        "a run with its row stays"
    );
}

#[test]
fn the_scheduler_applies_retention_after_each_run() {
    let home = TestHome::new();
    home.spec(
        "churn.yaml",
        "id: churn\nschedule:\n  cron: \"* * * * * *\"\n  timezone: UTC\nrun:\n  command: [\"true\"]\nretention:\n  keep_last: 2\n",
    );
    let mut scheduler = SchedulerStart::new(home.path()).grace("30s").start();
    wait_until("five runs", 15, || {
        home.count("SELECT run_counter FROM jobs WHERE id = 'churn'") >= 5
    });
    std::thread::sleep(Duration::from_millis(300));
    let pid =
        rustix::process::Pid::from_raw(i32::try_from(scheduler.id()).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("stop");
    wait_exit(&mut scheduler, 30);
    let rows = home.count("SELECT COUNT(*) FROM runs");
    assert!(
        rows <= 3,
        "keep_last 2 (plus at most one in flight when it last pruned), found {rows}"
    );
    let dirs = std::fs::read_dir(home.path().join("runs/churn"))
        .expect("dir")
        .filter(|e| {
            e.as_ref().is_ok_and(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.parse::<i64>().is_ok())
            })
        })
        .count();
    assert_eq!(
        dirs as i64, rows,
        "every row has its directory and no directory is left without one"
    );
}

#[test]
fn replay_repeats_a_run_and_refuses_when_the_spec_changed() {
    let home = TestHome::new();
    home.spec(
        "again.yaml",
        "id: again\nrun:\n  shell: \"echo original $GREETING\"\n  env:\n    GREETING: hi\n",
    );
    assert_eq!(home.run(&["run", "again"]).code, 0);
    let (replayed, code) = home.json(&["replay", "again", "--run", "1"]);
    assert_eq!(code, 0, "{replayed}");
    let receipt = home.receipt("again", 2);
    assert_eq!(
        (receipt["trigger"].as_str(), receipt["replay_of"].as_i64()),
        (Some("replay"), Some(1))
    );
    let events = home.checked_artifacts("again", 2);
    assert!(
        events.iter().any(|e| e["line"] == "original hi"),
        "same command, env value from the spec"
    );
    let (history, _) = home.json(&["history", "again", "-n", "1"]);
    assert_eq!(history["data"]["entries"][0]["replay_of"], 1);

    home.spec(
        "again.yaml",
        "id: again\nrun:\n  shell: \"echo changed\"\n  env:\n    GREETING: hi\n",
    );
    let (refused, code) = home.json(&["replay", "again", "--run", "1"]);
    assert_eq!(
        (code, refused["error"]["code"].as_str()),
        (5, Some("spec_changed"))
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("command")),
        "{refused}"
    );
    assert_eq!(
        home.run(&["replay", "again", "--run", "1", "--force"]).code,
        0
    );
    let forced = home.checked_artifacts("again", 3);
    assert!(
        forced.iter().any(|e| e["line"] == "original hi"),
        "--force replays the original command"
    );
    let (missing, code) = home.json(&["replay", "again", "--run", "42"]);
    assert_eq!(
        (code, missing["error"]["code"].as_str()),
        (3, Some("run_not_found"))
    );
}

#[test]
fn backup_while_the_scheduler_runs_gives_a_usable_copy() {
    let home = TestHome::new();
    home.spec(
        "tick.yaml",
        "id: tick\nschedule:\n  cron: \"* * * * * *\"\n  timezone: UTC\nrun:\n  command: [\"true\"]\n",
    );
    let mut scheduler = SchedulerStart::new(home.path())
        .grace("30s")
        .log(None)
        .start();
    wait_until("a few runs", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'") >= 2
    });
    let copy = home.path().join("backup.sqlite3");
    let outcome = home.run(&["backup", copy.to_str().expect("utf-8")]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let again = home.run(&["backup", copy.to_str().expect("utf-8")]);
    assert_eq!(
        again.code, 5,
        "an existing file is not overwritten without --force"
    );
    let pid =
        rustix::process::Pid::from_raw(i32::try_from(scheduler.id()).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("stop");
    wait_exit(&mut scheduler, 30);

    let restored = TestHome::new();
    std::fs::create_dir_all(restored.path().join("db")).expect("db dir");
    std::fs::copy(&copy, restored.path().join("db/jobs.sqlite3")).expect("restore");
    let (history, code) = restored.json(&["history", "tick"]);
    assert_eq!(code, 0);
    assert!(
        history["data"]["total"].as_i64().is_some_and(|n| n >= 2),
        "{history}"
    );
}
