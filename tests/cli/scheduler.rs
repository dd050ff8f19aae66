//! The scheduler as a real process, with sub-second schedules so each test takes seconds: firing on
//! time, crashes, the single-owner lock, lifecycle changes from other processes, hot reload, shutdown.

use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal};
use serde_json::Value;

use crate::common::{
    KillOnDrop, TestHome, process_alive, scheduler_log, signal, start_scheduler, stop, wait_exit,
    wait_until,
};

const EVERY_SECOND: &str = "schedule:\n  cron: \"* * * * * *\"\n  timezone: UTC\n";

#[test]
fn a_job_every_second_runs_on_time() {
    let home = TestHome::new();
    home.spec(
        "tick.yaml",
        format!("id: tick\n{EVERY_SECOND}run:\n  command: [\"true\"]\n"),
    );
    let scheduler = start_scheduler(&home, &[]);
    wait_until("5 runs", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'") >= 5
    });
    assert_eq!(stop(scheduler), 0);
    // Lateness: when the first attempt's process started (receipt) against the nominal slot. The first
    // run may be late while the scheduler starts up; the next four are checked.
    for seq in 2..=5 {
        let receipt = home.receipt("tick", seq);
        let at = |text: &Value| {
            chrono::DateTime::parse_from_rfc3339(text.as_str().expect("time")).expect("rfc 3339")
        };
        let late =
            (at(&receipt["attempts"][0]["started_at"]) - at(&receipt["slot"])).num_milliseconds();
        assert!(
            (0..100).contains(&late),
            "tick#{seq} started {late} ms after its slot; log:\n{}",
            scheduler_log(&home)
        );
    }
    let slots = home.count("SELECT COUNT(DISTINCT slot) FROM runs WHERE slot IS NOT NULL");
    assert_eq!(
        slots,
        home.count("SELECT COUNT(*) FROM runs WHERE slot IS NOT NULL"),
        "one record per slot"
    );
    home.checked_artifacts("tick", 2);
}

#[test]
fn two_schedulers_at_once_one_owns_the_other_exits_5() {
    let home = TestHome::new();
    let spawn = || {
        home.command(&["--json", "scheduler"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn")
    };
    let mut children = [KillOnDrop(spawn()), KillOnDrop(spawn())];
    // Wait until one has given up; the other keeps the lock.
    wait_until("one scheduler to exit", 10, || {
        children
            .iter_mut()
            .any(|c| matches!(c.try_wait(), Ok(Some(_))))
    });
    let (mut running, mut exited) = (Vec::new(), Vec::new());
    for mut child in children {
        match child.try_wait().expect("poll") {
            Some(status) => {
                let mut stdout = String::new();
                if let Some(mut pipe) = child.stdout.take() {
                    std::io::Read::read_to_string(&mut pipe, &mut stdout).expect("read");
                }
                exited.push((status.code(), stdout.into_bytes()));
            }
            None => running.push(child),
        }
    }
    assert_eq!(
        (running.len(), exited.len()),
        (1, 1),
        "exactly one owns the home"
    );
    assert_eq!(exited[0].0, Some(5));
    let report: Value = serde_json::from_slice(&exited[0].1).expect("json");
    assert_eq!(report["error"]["code"], "scheduler_already_running");
    let message = report["error"]["message"].as_str().unwrap_or_default();
    let owner_pid = running[0].id().to_string();
    assert!(
        message.contains(&format!("{owner_pid}@")),
        "names the owner's pid and host: {message}"
    );
    let (status, code) = home.json(&["status"]);
    assert_eq!(code, 0, "status exits 0 with a live scheduler");
    assert_eq!(status["data"]["scheduler"]["running"], true);
    assert_eq!(stop(running.remove(0)), 0);
    let (_, code) = home.json(&["status"]);
    assert_eq!(code, 5, "and 5 without one");
}

#[test]
fn kill_9_during_runs_then_restart_never_runs_a_slot_twice() {
    let home = TestHome::new();
    home.spec("slow.yaml", format!("id: slow\n{EVERY_SECOND}run:\n  shell: \"sleep 3\"\npolicy:\n  misfire_grace: 1s\n  coalesce: false\nretry:\n  max_attempts: 2\n  retry_on: [interrupted]\n"));
    let mut scheduler = start_scheduler(&home, &[]);
    // A run that has begun (runs are claimed ahead of their slot; one claimed but not begun would be
    // given back at the restart, not interrupted).
    let begun = || {
        format!(
            "SELECT seq FROM runs WHERE status = 'running' AND started_at < {} ORDER BY seq LIMIT 1",
            chrono::Utc::now().timestamp_millis() - 200
        )
    };
    wait_until("a run in flight", 10, || {
        home.count(&format!("SELECT COUNT(*) FROM ({})", begun())) >= 1
    });
    scheduler.kill().expect("kill -9");
    scheduler.wait().expect("reap");
    // The run in flight has just lost its owner: the restart must find it.
    let seq: i64 = home
        .db()
        .query_row(&begun(), [], |r| r.get(0))
        .expect("the run the scheduler left in flight");
    std::thread::sleep(Duration::from_millis(2500));
    let scheduler = start_scheduler(&home, &[]);
    wait_until("the restart to reconcile", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'interrupted'") >= 1
            && home.count("SELECT COUNT(*) FROM runs WHERE status = 'missed'") >= 1
    });
    assert_eq!(stop(scheduler), 0);
    assert_eq!(
        home.count("SELECT COUNT(*) FROM (SELECT slot FROM runs WHERE slot IS NOT NULL GROUP BY job_id, slot HAVING COUNT(*) > 1)"
        ),
        0,
        "no (job, slot) has two records"
    );
    let retries = home.count(&format!(
        "SELECT COUNT(*) FROM runs WHERE replay_of = {seq} AND trigger = 'catchup'"
    ));
    assert_eq!(
        retries, 1,
        "the interrupted run is retried once, as its policy asks"
    );
    let receipt = home.receipt("slow", seq);
    assert_eq!(
        receipt["status"], "interrupted",
        "reconciliation repaired the receipt"
    );
    let events = home.checked_artifacts("slow", seq);
    assert_eq!(
        events.last().and_then(|e| e["type"].as_str()),
        Some("run_finished")
    );
    let missed: (i64, i64) = home
        .db()
        .query_row("SELECT slot_count, last_slot - first_slot FROM runs WHERE status = 'missed' ORDER BY seq LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("missed record");
    assert!(
        missed.0 >= 1 && missed.1 == (missed.0 - 1) * 1000,
        "a missed record counts its slots: {missed:?}"
    );
}

#[test]
fn lifecycle_changes_from_another_process_apply_within_a_second() {
    let home = TestHome::new();
    home.spec(
        "beat.yaml",
        format!("id: beat\n{EVERY_SECOND}run:\n  command: [\"true\"]\n"),
    );
    let scheduler = start_scheduler(&home, &[]);
    wait_until("a first run", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'") >= 1
    });

    let outcome = home.run(&["pause", "beat", "--reason", "maintenance window"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    std::thread::sleep(Duration::from_millis(1000));
    let runs_at_pause = home.count("SELECT COUNT(*) FROM runs WHERE status != 'skipped'");
    wait_until("a paused slot recorded as skipped", 5, || {
        home.count(
            "SELECT COUNT(*) FROM runs WHERE status = 'skipped' AND error_code = 'skipped_paused'",
        ) >= 1
    });
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs WHERE status != 'skipped'"),
        runs_at_pause,
        "nothing runs while paused"
    );
    let (show, _) = home.json(&["show", "beat"]);
    assert_eq!(show["data"]["operator_state"]["state"], "paused");
    assert_eq!(
        show["data"]["operator_state"]["reason"],
        "maintenance window"
    );

    assert_eq!(home.run(&["resume", "beat", "--catchup", "latest"]).code, 0);
    wait_until("a catch-up run for the paused slots", 5, || {
        home.count("SELECT COUNT(*) FROM runs WHERE trigger = 'catchup' AND status = 'succeeded'")
            >= 1
    });
    let before =
        home.count("SELECT COUNT(*) FROM runs WHERE trigger = 'schedule' AND status = 'succeeded'");
    wait_until("scheduled runs again", 5, || {
        home.count("SELECT COUNT(*) FROM runs WHERE trigger = 'schedule' AND status = 'succeeded'")
            > before
    });

    assert_eq!(home.run(&["disable", "beat"]).code, 0);
    std::thread::sleep(Duration::from_millis(1000));
    let frozen = home.count("SELECT COUNT(*) FROM runs");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs"),
        frozen,
        "a disabled job records nothing"
    );
    assert_eq!(home.run(&["enable", "beat"]).code, 0);
    wait_until("runs after enable", 5, || {
        home.count("SELECT COUNT(*) FROM runs") > frozen
    });
    assert_eq!(stop(scheduler), 0);
}

#[test]
fn specs_are_hot_reloaded_and_a_broken_edit_keeps_the_last_good_version() {
    let home = TestHome::new();
    let scheduler = start_scheduler(&home, &[]);
    std::thread::sleep(Duration::from_millis(500));
    home.spec(
        "late.yaml",
        format!("id: late\n{EVERY_SECOND}run:\n  shell: \"echo first version\"\n"),
    );
    wait_until("the new spec to run", 5, || {
        home.count("SELECT COUNT(*) FROM runs WHERE job_id = 'late'") >= 1
    });

    // An editor that saves by writing a temporary file and renaming it over the spec.
    let temp = home.jobs_dir().join(".late.yaml.swp");
    std::fs::write(&temp, format!("id: late\n{EVERY_SECOND}run:\n  shell: \"echo first version\"\npolicy:\n  max_instances: 0\n"))
        .expect("write");
    std::fs::rename(&temp, home.jobs_dir().join("late.yaml")).expect("rename");
    wait_until("the problem to be recorded", 5, || {
        home.count("SELECT COUNT(*) FROM jobs WHERE id = 'late' AND load_error IS NOT NULL") == 1
    });
    let before = home.count("SELECT COUNT(*) FROM runs WHERE job_id = 'late'");
    wait_until("the last good version to keep running", 5, || {
        home.count("SELECT COUNT(*) FROM runs WHERE job_id = 'late'") > before
    });
    let (list, _) = home.json(&["list"]);
    assert_eq!(
        list["data"]["jobs"][0]["problems"][0]["pointer"],
        "/policy/max_instances"
    );
    let (status, _) = home.json(&["status"]);
    assert_eq!(status["data"]["spec_problems"][0]["job_id"], "late");

    home.remove_spec("late.yaml");
    wait_until("the removal to be seen", 5, || {
        home.count("SELECT COUNT(*) FROM jobs WHERE id = 'late' AND present = 0") == 1
    });
    std::thread::sleep(Duration::from_millis(300));
    let after = home.count("SELECT COUNT(*) FROM runs WHERE job_id = 'late'");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs WHERE job_id = 'late'"),
        after,
        "a removed job stops"
    );
    assert!(after > 0, "and keeps its history");
    assert_eq!(stop(scheduler), 0);
}

#[test]
fn sigterm_with_a_long_run_in_flight_interrupts_it_cleanly() {
    let home = TestHome::new();
    home.spec(
        "long.yaml",
        format!("id: long\n{EVERY_SECOND}run:\n  shell: \"echo $$ > pid.$JOBS_RUN_SEQ; sleep 30\"\n  kill_grace: 1s\n"),
    );
    let scheduler = start_scheduler(&home, &[]);
    // The shell creates the file before `echo` writes to it: wait for the whole line.
    wait_until("a run in flight", 10, || {
        std::fs::read_to_string(home.path().join("pid.1")).is_ok_and(|text| text.ends_with('\n'))
    });
    let pid: i32 = std::fs::read_to_string(home.path().join("pid.1"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(stop(scheduler), 0, "a clean exit");
    let (status, _, _, code) = home.run_row("long", 1);
    assert_eq!(
        (status.as_str(), code.as_deref()),
        ("interrupted", Some("interrupted"))
    );
    wait_until("the run's process to be gone", 3, || !process_alive(pid));
    home.checked_artifacts("long", 1);
}

#[test]
fn dry_run_shows_the_plan_and_changes_nothing() {
    let home = TestHome::new();
    home.spec(
        "tick.yaml",
        format!("id: tick\n{EVERY_SECOND}run:\n  command: [\"true\"]\n"),
    );
    let scheduler = start_scheduler(&home, &[]);
    wait_until("a run", 10, || home.count("SELECT COUNT(*) FROM runs") >= 1);
    assert_eq!(stop(scheduler), 0);
    std::thread::sleep(Duration::from_millis(1500));
    let before = home.count("SELECT COUNT(*) FROM runs");
    let outcome = home.run(&["scheduler", "--dry-run"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert!(
        outcome.stdout.contains("tick: would start"),
        "{}",
        outcome.stdout
    );
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs"),
        before,
        "nothing changed"
    );
}

#[test]
fn a_manual_run_killed_while_the_scheduler_runs_does_not_block_the_job() {
    let home = TestHome::new();
    home.spec(
        "beat.yaml",
        format!("id: beat\n{EVERY_SECOND}run:\n  shell: \"if test -f long; then echo $$ > manual.pid; sleep 30; fi\"\n"),
    );
    let scheduler = start_scheduler(&home, &[]);
    wait_until("a first scheduled run", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'") >= 1
    });
    std::fs::write(home.path().join("long"), "").expect("make runs long");
    // Wait until no scheduled run is in flight, then hold the instance with a manual run and kill it.
    let mut manual = KillOnDrop(
        home.command(&["run", "beat"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run"),
    );
    wait_until("the manual run to hold the instance", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE trigger = 'manual' AND status = 'running'") == 1
    });
    std::fs::remove_file(home.path().join("long")).expect("short runs again");
    manual.kill().expect("kill -9 jobs run");
    let _ = manual.wait();
    let before =
        home.count("SELECT COUNT(*) FROM runs WHERE trigger = 'schedule' AND status = 'succeeded'");
    wait_until("scheduled runs to go on", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE trigger = 'schedule' AND status = 'succeeded'")
            > before
    });
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs WHERE trigger = 'manual' AND status = 'interrupted'"),
        1
    );
    assert_eq!(stop(scheduler), 0);
    // The manual run's command lives on in its own process group: end it.
    if let Some(group) = std::fs::read_to_string(home.path().join("manual.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .and_then(Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(group, Signal::KILL);
    }
}

#[test]
fn a_claim_whose_scheduler_died_before_its_slot_is_run_after_the_restart() {
    let home = TestHome::new();
    home.spec(
        "tick.yaml",
        format!("id: tick\n{EVERY_SECOND}run:\n  command: [\"true\"]\n"),
    );
    let mut scheduler = start_scheduler(&home, &[]);
    // Runs are claimed ahead of their slot; catch one claimed and not yet begun, and kill there.
    let mut slot = 0;
    wait_until("a run claimed ahead of its slot", 10, || {
        let now = chrono::Utc::now().timestamp_millis();
        slot = home.count(&format!(
            "SELECT COALESCE(MAX(slot), 0) FROM runs WHERE status = 'running' AND slot > {}",
            now + 50
        ));
        slot > 0
    });
    signal(&scheduler, Signal::KILL);
    wait_exit(&mut scheduler, 10);
    let scheduler = start_scheduler(&home, &[]);
    wait_until("the given-back slot to run", 10, || {
        home.count(&format!(
            "SELECT COUNT(*) FROM runs WHERE slot = {slot} AND status = 'succeeded'"
        )) == 1
    });
    assert_eq!(stop(scheduler), 0);
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'interrupted'"),
        0,
        "nothing that never began is recorded as interrupted; log:\n{}",
        scheduler_log(&home)
    );
    assert!(scheduler_log(&home).contains("the slot is judged again"));
    let twice = home.count(
        "SELECT COUNT(*) FROM (SELECT slot FROM runs WHERE slot IS NOT NULL GROUP BY slot HAVING COUNT(*) > 1)",
    );
    assert_eq!(twice, 0, "no slot twice");
}
