//! What the adversarial passes broke, each driven through the real binary: a second scheduler after
//! `db/` was deleted, resumes that repeat catch-ups, links planted in the home, a schedule edited while
//! the scheduler was down, and the store's record of when a run really started.

use std::os::unix::fs::symlink;
use std::time::Duration;

use crate::common::{TestHome, scheduler_log, start_scheduler, stop, wait_exit, wait_until};

const EVERY_SECOND: &str = "schedule:\n  every: 1s\n";

/// Runs a command that should exit at once (a refused scheduler), failing the test rather than hanging
/// if it runs on: the exit code and stdout.
fn bounded(home: &TestHome, args: &[&str]) -> (Option<i32>, String) {
    let mut child = crate::common::KillOnDrop(
        home.command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start"),
    );
    let status = wait_exit(&mut child, 10);
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut stdout).expect("stdout");
    }
    (status.code(), stdout)
}

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
    let (code, stdout) = bounded(&home, &["--json", "scheduler"]);
    assert_eq!(code, Some(5), "{stdout}");
    assert!(stdout.contains("scheduler_already_running"), "{stdout}");
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
    let (code, stdout) = bounded(&home, &["--json", "scheduler"]);
    assert_eq!(code, Some(6), "{stdout}");
    assert!(
        stdout.contains("db/scheduler.lock") && stdout.contains("symbolic link"),
        "{stdout}"
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

#[test]
fn a_schedule_edited_while_the_scheduler_was_down_leaves_no_slot_without_a_record() {
    let home = TestHome::new();
    let spec = |extra: &str| {
        format!(
            "id: e\nschedule:\n  every: 1s\n{extra}run:\n  command: [\"true\"]\npolicy:\n  coalesce: false\n  misfire_grace: unlimited\n  max_instances: 10\n  overlap: queue\n"
        )
    };
    home.spec("e.yaml", spec(""));
    let scheduler = start_scheduler(&home, &[]);
    wait_until("two runs", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'") >= 2
    });
    assert_eq!(stop(scheduler), 0);
    std::thread::sleep(Duration::from_secs(4));
    // The edit changes the schedule section (a jitter), so the pending slot is dropped.
    home.spec("e.yaml", spec("  jitter: 1ms\n"));
    let scheduler = start_scheduler(&home, &[]);
    let before = home.count("SELECT COUNT(*) FROM runs");
    wait_until("the downtime made up", 15, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'") >= before + 6
    });
    assert_eq!(stop(scheduler), 0);
    let db = home.db();
    let mut statement = db
        .prepare(
            "SELECT COALESCE(first_slot, slot), COALESCE(last_slot, slot) FROM runs
             WHERE slot IS NOT NULL ORDER BY slot",
        )
        .expect("query");
    let ranges: Vec<(i64, i64)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    for pair in ranges.windows(2) {
        assert_eq!(
            pair[1].0 - pair[0].1,
            1000,
            "a slot between {} and {} has no record; log:\n{}",
            pair[0].1,
            pair[1].0,
            scheduler_log(&home)
        );
    }
}

#[test]
fn the_store_records_when_each_run_really_started_as_its_receipt_does() {
    let home = TestHome::new();
    for i in 0..20 {
        home.spec(
            &format!("j{i:02}.yaml"),
            format!("id: j{i:02}\n{EVERY_SECOND}run:\n  command: [\"true\"]\n"),
        );
    }
    let scheduler = start_scheduler(&home, &[]);
    wait_until("60 runs", 20, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'") >= 60
    });
    assert_eq!(stop(scheduler), 0);
    let db = home.db();
    let mut statement = db
        .prepare("SELECT job_id, seq, started_at, finished_at FROM runs WHERE status = 'succeeded'")
        .expect("query");
    let rows: Vec<(String, i64, Option<i64>, Option<i64>)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    let ms = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time"))
            .expect("rfc 3339")
            .timestamp_millis()
    };
    for (job, seq, started, finished) in rows {
        let receipt = home.receipt(&job, seq);
        assert_eq!(
            started,
            Some(ms(&receipt["started_at"])),
            "{job}#{seq} started_at"
        );
        assert_eq!(
            finished,
            Some(ms(&receipt["finished_at"])),
            "{job}#{seq} finished_at"
        );
    }
}

#[test]
fn sigterm_inside_the_claim_ahead_window_starts_nothing_and_records_nothing_impossible() {
    let home = TestHome::new();
    home.spec(
        "w.yaml",
        format!("id: w\n{EVERY_SECOND}run:\n  shell: \"date +%s%3N >> started.txt\"\n"),
    );
    let scheduler = start_scheduler(&home, &[]);
    wait_until("a first run", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'") >= 1
    });
    // Wait for a claim made ahead of its slot, then stop the scheduler before the slot comes.
    let mut claimed_ahead = None;
    wait_until("a claim ahead of its slot", 10, || {
        let now = chrono::Utc::now().timestamp_millis();
        let row: Option<(i64, i64)> = home
            .db()
            .query_row(
                "SELECT seq, due_at FROM runs WHERE status = 'running' AND due_at > ?1 ORDER BY seq DESC LIMIT 1",
                [now + 150],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok();
        claimed_ahead = row;
        row.is_some()
    });
    let (seq, due) = claimed_ahead.expect("claimed ahead");
    let signalled_at = chrono::Utc::now().timestamp_millis();
    assert!(signalled_at < due, "the signal comes before the slot");
    assert_eq!(stop(scheduler), 0);
    let starts = std::fs::read_to_string(home.path().join("started.txt")).expect("starts");
    for line in starts.lines() {
        let at: i64 = line.trim().parse().expect("a time");
        assert!(
            at < signalled_at,
            "a command started {} ms after SIGTERM",
            at - signalled_at
        );
    }
    let impossible = home.count(
        "SELECT COUNT(*) FROM runs WHERE (started_at IS NOT NULL AND finished_at < started_at)
            OR (attempts = 0 AND started_at IS NOT NULL)",
    );
    assert_eq!(impossible, 0, "{}", scheduler_log(&home));
    // The claim that never started gave its slot back: no record of it, and the job's pending slot is
    // at or before it, so the next start judges it.
    let (rows, next_slot): (i64, Option<i64>) = home
        .db()
        .query_row(
            "SELECT (SELECT COUNT(*) FROM runs WHERE job_id = 'w' AND seq = ?1), next_slot FROM jobs WHERE id = 'w'",
            [seq],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("row");
    assert_eq!(rows, 0, "w#{seq} never started and has no record");
    assert!(
        next_slot.is_some_and(|slot| slot <= due),
        "{next_slot:?} {due}"
    );
    assert!(!home.run_dir("w", seq).exists());
}

#[test]
fn disabling_a_job_drops_its_queued_run_recorded_as_skipped() {
    let home = TestHome::new();
    home.spec(
        "q.yaml",
        "id: q\nschedule:\n  every: 1s\nrun:\n  shell: \"sleep 2; echo ran >> ran-$JOBS_RUN_SEQ\"\npolicy:\n  overlap: queue\n",
    );
    let scheduler = start_scheduler(&home, &[]);
    wait_until("a queued run", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'queued'") >= 1
    });
    let queued = home.count("SELECT MAX(seq) FROM runs WHERE status = 'queued'");
    assert_eq!(home.run(&["disable", "q"]).code, 0);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(stop(scheduler), 0);
    let (status, code): (String, Option<String>) = home
        .db()
        .query_row(
            "SELECT status, error_code FROM runs WHERE job_id = 'q' AND seq = ?1",
            [queued],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("row");
    assert_eq!(status, "skipped", "q#{queued}: {}", scheduler_log(&home));
    assert_eq!(code.as_deref(), Some("skipped_disabled"));
    assert!(
        !home.path().join(format!("ran-{queued}")).exists(),
        "the queued command never ran"
    );
    assert_eq!(home.receipt("q", queued)["status"], "skipped");
    let events = home.events("q", queued);
    assert!(
        events.iter().all(|e| e["type"] != "run_started"),
        "{events:?}"
    );
    assert_eq!(
        events.last().map(|e| e["type"].clone()),
        Some("run_finished".into())
    );
}

#[test]
fn the_first_stop_request_says_what_it_waits_for_and_a_second_stops_the_runs_at_once() {
    let home = TestHome::new();
    home.spec(
        "long.yaml",
        format!("id: long\n{EVERY_SECOND}run:\n  shell: \"sleep 60\"\n"),
    );
    let mut scheduler = crate::common::SchedulerStart::new(home.path())
        .grace("60s")
        .start();
    wait_until("a run in flight", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'running' AND started_at IS NOT NULL")
            >= 1
    });
    crate::common::signal(&scheduler, rustix::process::Signal::INT);
    wait_until("the scheduler saying what it waits for", 10, || {
        let log = scheduler_log(&home);
        log.contains("long#1") && log.contains("60s") && log.contains("again to stop them now")
    });
    let asked = std::time::Instant::now();
    crate::common::signal(&scheduler, rustix::process::Signal::INT);
    let status = wait_exit(&mut scheduler, 20);
    assert_eq!(status.code(), Some(0), "{}", scheduler_log(&home));
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "the second request did not wait for the grace"
    );
    assert!(scheduler_log(&home).contains("second stop request"));
    let (status, started): (String, Option<i64>) = home
        .db()
        .query_row(
            "SELECT status, started_at FROM runs WHERE job_id = 'long' AND seq = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("long#1");
    assert_eq!(status, "interrupted");
    assert!(started.is_some());
}

#[test]
fn the_scheduler_logs_jobs_a_client_synced_first_and_says_what_is_wrong_with_a_spec() {
    let home = TestHome::new();
    home.spec("manual.yaml", crate::common::manual_spec("manual"));
    home.spec(
        "bad.yaml",
        "id: bad\nschedule:\n  every: 0s\nrun:\n  command: [\"true\"]\n",
    );
    let scheduler = start_scheduler(&home, &[]);
    wait_until("the start-up line", 10, || {
        scheduler_log(&home).contains("scheduler started")
    });
    let log = scheduler_log(&home);
    assert!(
        log.contains("manual_only=1") && log.contains("invalid=1"),
        "{log}"
    );
    assert!(
        log.contains("/schedule/every"),
        "the problem itself is logged: {log}"
    );
    // A client syncs the new spec before the scheduler sees it: the scheduler still says so.
    home.spec(
        "later.yaml",
        format!("id: later\n{EVERY_SECOND}run:\n  command: [\"true\"]\n"),
    );
    assert_eq!(home.run(&["list"]).code, 0);
    wait_until("the new job logged", 10, || {
        scheduler_log(&home).contains("new job scheduled") && scheduler_log(&home).contains("later")
    });
    assert_eq!(stop(scheduler), 0);
}

#[test]
fn with_the_store_deleted_under_a_running_scheduler_no_command_makes_a_new_one() {
    let home = TestHome::new();
    home.spec("m.yaml", crate::common::manual_spec("m"));
    home.spec(
        "hourly.yaml",
        "id: hourly\nschedule:\n  every: 1h\nrun:\n  command: [\"true\"]\n",
    );
    let mut scheduler = start_scheduler(&home, &[]);
    wait_until("the scheduler to own the home", 10, || {
        scheduler_log(&home).contains("scheduler started")
    });
    // Stopped, so that it cannot notice the deletion first and leave: the home is still its own.
    crate::common::signal(&scheduler, rustix::process::Signal::STOP);
    std::fs::remove_dir_all(home.path().join("db")).expect("rm -rf db/");
    let outcome = home.run(&["--json", "run", "m"]);
    crate::common::signal(&scheduler, rustix::process::Signal::CONT);
    assert_eq!(outcome.code, 6, "{outcome:?}");
    assert_eq!(
        outcome.json()["error"]["code"],
        "store_replaced",
        "{outcome:?}"
    );
    assert!(
        !home.path().join("db/jobs.sqlite3").exists(),
        "no new store beside the scheduler's"
    );
    assert!(!home.run_dir("m", 1).exists(), "nothing ran");
    let status = wait_exit(&mut scheduler, 15);
    assert_eq!(status.code(), Some(6), "{}", scheduler_log(&home));
}

#[test]
fn a_cancel_whose_owner_dies_settles_the_run_instead_of_waiting_out_its_bound() {
    let home = TestHome::new();
    home.spec(
        "ign.yaml",
        "id: ign\nrun:\n  shell: \"trap '' TERM; echo $$ > pid; sleep 60\"\n  kill_grace: 3s\n",
    );
    let mut owner = crate::common::KillOnDrop(home.command(&["run", "ign"]).spawn().expect("run"));
    wait_until("the command to start", 10, || {
        std::fs::read_to_string(home.path().join("pid")).is_ok_and(|t| t.ends_with('\n'))
    });
    let shell: i32 = std::fs::read_to_string(home.path().join("pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    let asked = std::time::Instant::now();
    let mut cancel = crate::common::KillOnDrop(
        home.command(&["--json", "cancel", "ign"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("cancel"),
    );
    // The owner has begun stopping the group (TERM is ignored, so it waits out kill_grace) when it dies.
    std::thread::sleep(Duration::from_millis(700));
    owner.kill().expect("kill -9 the owner");
    owner.wait().expect("reap");
    let status = wait_exit(&mut cancel, 20);
    assert!(
        asked.elapsed() < Duration::from_secs(9),
        "cancel settled the run rather than waiting out its bound ({:?})",
        asked.elapsed()
    );
    assert_ne!(status.code(), Some(5), "not left pending");
    assert!(
        !crate::common::process_alive(shell),
        "the run's command is stopped by the settling"
    );
    let (state, _, _, _) = home.run_row("ign", 1);
    assert!(state == "interrupted" || state == "cancelled", "{state}");
}
