//! What the adversarial passes broke, each driven through the real binary: a second scheduler after
//! `db/` was deleted, resumes that repeat catch-ups, links planted in the home, a schedule edited while
//! the scheduler was down, and the store's record of when a run really started.

use std::os::unix::fs::symlink;
use std::time::Duration;

use crate::common::{TestHome, scheduler_log, start_scheduler, stop, wait_exit, wait_until};

const EVERY_SECOND: &str = "schedule:\n  every: 1s\n";

#[test]
fn deleting_db_does_not_let_a_second_scheduler_in_and_the_first_stops_with_store_replaced() {
    let home = TestHome::new();
    home.spec(
        "tick.yaml",
        format!("id: tick\n{EVERY_SECOND}run:\n  command: [\"true\"]\n"),
    );
    let mut first = start_scheduler(&home, &[]);
    wait_until("a first run", 10, || {
        home.path().join("db/jobs.sqlite3").exists()
            && home.count("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'") >= 1
    });
    std::fs::remove_dir_all(home.path().join("db")).expect("rm -rf db/");
    let second = home.run(&["--json", "scheduler"]);
    assert_eq!(second.code, 5, "{second:?}");
    assert_eq!(
        second.json()["error"]["code"],
        "scheduler_already_running",
        "{second:?}"
    );
    let status = wait_exit(&mut first, 15);
    let log = scheduler_log(&home);
    assert_eq!(status.code(), Some(6), "{log}");
    assert!(
        log.contains("store_replaced") || log.contains("was deleted"),
        "{log}"
    );
    assert!(log.contains("no more slots are claimed"), "{log}");
}

#[test]
fn planted_links_are_never_written_through() {
    let home = TestHome::new();
    let outside = tempfile::tempdir().expect("outside");
    let victim = outside.path().join("victim.txt");
    let original = "line one\nline two without newline";
    std::fs::write(&victim, original).expect("victim");
    home.spec(
        "k.yaml",
        format!("id: k\n{EVERY_SECOND}run:\n  shell: \"sleep 1.5\"\npolicy:\n  overlap: skip\n"),
    );
    // The scheduler log of a job, and the owner's name file, both linked to the victim.
    std::fs::create_dir_all(home.path().join("runs/k")).expect("runs/k");
    symlink(&victim, home.path().join("runs/k/scheduler.jsonl")).expect("link");
    std::fs::create_dir_all(home.path().join("db")).expect("db");
    symlink(&victim, home.path().join("db/scheduler.lock")).expect("link");
    let started = home.run(&["scheduler"]);
    assert_eq!(started.code, 6, "{started:?}");
    assert!(
        started.stderr.contains("db/scheduler.lock") && started.stderr.contains("symbolic link"),
        "{started:?}"
    );
    std::fs::remove_file(home.path().join("db/scheduler.lock")).expect("unlink");
    let scheduler = start_scheduler(&home, &[]);
    wait_until("a skipped slot", 15, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'skipped'") >= 1
    });
    wait_until("the scheduler's complaint", 5, || {
        scheduler_log(&home).contains("scheduler.jsonl")
    });
    assert_eq!(stop(scheduler), 0);
    let log = scheduler_log(&home);
    assert!(log.contains("symbolic link"), "{log}");
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        original,
        "the file outside the home is untouched"
    );
}

#[test]
fn settling_a_dead_run_never_cuts_or_appends_through_a_planted_link() {
    let home = TestHome::new();
    let outside = tempfile::tempdir().expect("outside");
    let victim = outside.path().join("victim.txt");
    let original = "line one\nline two without newline";
    std::fs::write(&victim, original).expect("victim");
    home.spec("m.yaml", "id: m\nrun:\n  shell: \"sleep 30\"\n");
    let mut run = crate::common::KillOnDrop(home.command(&["run", "m"]).spawn().expect("run"));
    wait_until("m#1 running", 10, || {
        home.run_dir("m", 1).join("events.jsonl").exists()
            && home.count("SELECT COUNT(*) FROM runs WHERE status = 'running'") == 1
    });
    run.kill().expect("kill -9 the owner");
    run.wait().expect("reap");
    let events = home.run_dir("m", 1).join("events.jsonl");
    std::fs::remove_file(&events).expect("unlink events");
    symlink(&victim, &events).expect("plant a link");
    // Any read command settles the dead run: its events are repaired, never through the link.
    let outcome = home.run(&["history", "m"]);
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        original,
        "the file outside the home is untouched: {outcome:?}"
    );
    assert!(
        outcome.stderr.contains("symbolic link")
            || home.count("SELECT COUNT(*) FROM runs WHERE status = 'running'") == 0,
        "{outcome:?}"
    );
}

#[test]
fn resuming_an_active_job_changes_nothing_and_catch_up_runs_name_their_slot() {
    let home = TestHome::new();
    home.spec(
        "p.yaml",
        format!("id: p\n{EVERY_SECOND}run:\n  shell: \"echo $JOBS_SLOT > slot-$JOBS_RUN_SEQ\"\npolicy:\n  overlap: queue\n  max_instances: 5\n"),
    );
    let scheduler = start_scheduler(&home, &[]);
    wait_until("a first run", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'") >= 1
    });
    assert_eq!(home.run(&["pause", "p"]).code, 0);
    wait_until("3 paused slots", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'skipped'") >= 3
    });
    assert_eq!(home.run(&["resume", "p", "--catchup", "all"]).code, 0);
    let skipped = home.count("SELECT COUNT(*) FROM runs WHERE status = 'skipped'");
    wait_until("the catch-up runs", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE trigger = 'catchup' AND status = 'succeeded'")
            >= skipped
    });
    // Resuming again (twice) an active job owes nothing.
    let again = home.run(&["--json", "resume", "p", "--catchup", "all"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(again.json()["data"]["previous"], "active", "{again:?}");
    assert_eq!(home.run(&["resume", "p", "--catchup", "latest"]).code, 0);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(stop(scheduler), 0);
    let catchups = home.count("SELECT COUNT(*) FROM runs WHERE trigger = 'catchup'");
    assert_eq!(
        catchups, skipped,
        "one catch-up run per paused slot, not more"
    );
    // Each catch-up run says which slot it stands for: in the store and in JOBS_SLOT.
    let db = home.db();
    let mut statement = db
        .prepare(
            "SELECT seq, first_slot, last_slot FROM runs WHERE trigger = 'catchup' ORDER BY seq",
        )
        .expect("query");
    let rows: Vec<(i64, Option<i64>, Option<i64>)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    let mut slots = std::collections::BTreeSet::new();
    for (seq, first, last) in rows {
        let (Some(first), Some(last)) = (first, last) else {
            panic!("catch-up run p#{seq} names no slot");
        };
        assert_eq!(first, last, "p#{seq} stands for one slot");
        assert!(slots.insert(last), "p#{seq} repeats a slot");
        let written = std::fs::read_to_string(home.path().join(format!("slot-{seq}")))
            .expect("the run wrote its JOBS_SLOT");
        let slot = chrono::DateTime::from_timestamp_millis(last).expect("slot");
        assert_eq!(
            written.trim(),
            slot.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "p#{seq}"
        );
    }
}
