//! `jobsctl cancel`, and `pause`/`disable` stopping what is in flight: the request travels through the
//! store to whichever process owns the run (a foreground `jobsctl run`, the scheduler, a detached run),
//! which stops the run's process group and records it cancelled, with who and why; nothing retries a
//! cancelled run.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{
    KillOnDrop, TestHome, process_alive, scheduler_log, signal, start_scheduler, stop, wait_exit,
    wait_until,
};

const EVERY_SECOND: &str = "schedule:\n  cron: \"* * * * * *\"\n  timezone: UTC\n";

/// A job whose command writes its shell's pid (the attempt's pgid) to `pid.<seq>` and sleeps.
fn long_job(id: &str, extra: &str) -> String {
    format!(
        "id: {id}\n{extra}run:\n  shell: \"echo $$ > pid.$JOBS_RUN_SEQ; sleep 30\"\n  kill_grace: 1s\n"
    )
}

fn pid_of(home: &TestHome, seq: i64) -> i32 {
    let path = home.path().join(format!("pid.{seq}"));
    wait_until("the command to write its pid", 10, || {
        std::fs::read_to_string(&path).is_ok_and(|t| t.ends_with('\n'))
    });
    std::fs::read_to_string(&path)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid")
}

fn spawn(home: &TestHome, args: &[&str]) -> KillOnDrop {
    home.command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .expect("spawn jobs")
}

/// The store's message of a run.
fn message(home: &TestHome, job: &str, seq: i64) -> String {
    home.db()
        .query_row(
            "SELECT COALESCE(message, '') FROM runs WHERE job_id = ?1 AND seq = ?2",
            rusqlite::params![job, seq],
            |r| r.get(0),
        )
        .expect("run row")
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

fn host() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// The store, the receipt and the last event agree that the run was cancelled, and say `message`.
fn assert_recorded_cancelled(home: &TestHome, job: &str, seq: i64, expected_message: &str) {
    let (status, _, _, error_code) = home.run_row(job, seq);
    assert_eq!(
        (status.as_str(), error_code.as_deref()),
        ("cancelled", Some("cancelled"))
    );
    assert_eq!(message(home, job, seq), expected_message);
    let receipt = home.receipt(job, seq);
    assert_eq!(receipt["status"], "cancelled", "{receipt:#}");
    assert_eq!(receipt["message"], expected_message, "{receipt:#}");
    let events = home.checked_artifacts(job, seq);
    let last = events.last().expect("events");
    assert_eq!(last["type"], "run_finished");
    assert_eq!(last["status"], "cancelled");
    assert_eq!(last["error_code"], "cancelled");
    assert_eq!(last["message"], expected_message);
}

#[test]
fn a_foreground_run_is_cancelled_from_another_process_and_says_who_and_why() {
    let home = TestHome::new();
    home.spec("long.yaml", long_job("long", ""));
    let mut foreground = spawn(&home, &["run", "long"]);
    let pgid = pid_of(&home, 1);

    // Without $USER (cron, systemd units), the user is the real uid's name.
    let started = Instant::now();
    let output = home
        .command(&["--json", "cancel", "long", "--reason", "wrong input file"])
        .env_remove("USER")
        .output()
        .expect("run jobs cancel");
    let took = started.elapsed();
    let json: Value = serde_json::from_slice(&output.stdout).expect("cancel prints JSON");
    assert_eq!(output.status.code(), Some(0), "{json:#}");
    let user = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("id -un");
    let user = String::from_utf8_lossy(&user.stdout).trim().to_owned();
    let by = format!("{user}@{}", host());
    assert_eq!(json["ok"], true);
    assert_eq!(json["data"]["by"], by.as_str(), "{json:#}");
    assert_eq!(json["data"]["waited"], true);
    assert_eq!(json["data"]["total"], 1);
    let entry = &json["data"]["runs"][0];
    assert_eq!(
        (&entry["run"], &entry["was"], &entry["status"]),
        (
            &Value::from(1),
            &Value::from("running"),
            &Value::from("cancelled")
        ),
        "{json:#}"
    );
    // Within a second (the owner's poll) plus kill_grace (1 s), with room for a loaded machine.
    assert!(
        took < Duration::from_secs(4),
        "cancel returned after {took:?}"
    );

    let status = wait_exit(&mut foreground, 5);
    assert_eq!(status.code(), Some(1), "a cancelled foreground run exits 1");
    wait_until("the run's processes to be gone", 3, || !process_alive(pgid));
    assert_recorded_cancelled(
        &home,
        "long",
        1,
        &format!("cancelled by {by}: wrong input file"),
    );
    let (history, _) = home.json(&["history", "long"]);
    assert_eq!(
        history["data"]["entries"][0]["error"]["message"],
        format!("cancelled by {by}: wrong input file")
    );
}

#[test]
fn one_of_two_runs_of_one_foreground_process_is_cancelled_alone() {
    let home = TestHome::new();
    home.spec("a.yaml", long_job("a", ""));
    home.spec(
        "b.yaml",
        "id: b\nrun:\n  shell: \"echo $$ > b.pid; sleep 2\"\n",
    );
    let mut foreground = spawn(&home, &["run", "a", "b"]);
    pid_of(&home, 1);
    wait_until("b to start", 10, || home.path().join("b.pid").exists());
    let outcome = home.run(&["cancel", "a", "--reason", "only a"]);
    assert_eq!(outcome.code, 0, "{}{}", outcome.stdout, outcome.stderr);
    assert!(
        outcome.stdout.contains("a#1 cancelled"),
        "{}",
        outcome.stdout
    );
    assert_eq!(wait_exit(&mut foreground, 10).code(), Some(1));
    assert_eq!(home.run_row("a", 1).0, "cancelled");
    assert_eq!(
        home.run_row("b", 1).0,
        "succeeded",
        "b was not asked to stop"
    );
}

#[test]
fn a_run_the_scheduler_owns_is_cancelled_and_the_scheduler_keeps_firing() {
    let home = TestHome::new();
    // Only the first run lasts; the later ones show that the schedule goes on.
    home.spec(
        "tick.yaml",
        format!(
            "id: tick\n{EVERY_SECOND}run:\n  shell: \"echo $$ > pid.$JOBS_RUN_SEQ; if [ $JOBS_RUN_SEQ = 1 ]; then sleep 30; fi\"\n  kill_grace: 1s\n"
        ),
    );
    let scheduler = start_scheduler(&home, &[]);
    let pgid = pid_of(&home, 1);
    let (json, code) = home.json(&["cancel", "tick", "--run", "1", "--reason", "stuck"]);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["data"]["runs"][0]["status"], "cancelled", "{json:#}");
    wait_until("the run's processes to be gone", 3, || !process_alive(pgid));
    let by_prefix = "cancelled by ";
    let recorded = message(&home, "tick", 1);
    assert!(
        recorded.starts_with(by_prefix) && recorded.ends_with(": stuck"),
        "{recorded}"
    );
    assert_recorded_cancelled(&home, "tick", 1, &recorded);
    wait_until("scheduled runs after the cancel", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE seq > 1 AND status = 'succeeded'") >= 2
    });
    assert!(
        scheduler_log(&home).contains("cancel requested"),
        "{}",
        scheduler_log(&home)
    );
    assert_eq!(stop(scheduler), 0);
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'cancelled'"),
        1,
        "only the run asked for was cancelled"
    );
}

#[test]
fn a_detached_run_is_cancelled() {
    let home = TestHome::new();
    home.spec("long.yaml", long_job("long", ""));
    let (started, code) = home.json(&["run", "--detach", "long"]);
    assert_eq!(code, 0, "{started:#}");
    let owner =
        i32::try_from(started["data"]["started"][0]["pid"].as_u64().expect("pid")).expect("pid");
    let pgid = pid_of(&home, 1);
    let outcome = home.run(&["cancel", "long"]);
    assert_eq!(outcome.code, 0, "{}{}", outcome.stdout, outcome.stderr);
    assert!(
        outcome.stdout.contains("long#1 cancelled"),
        "{}",
        outcome.stdout
    );
    wait_until("the background owner to exit", 5, || !process_alive(owner));
    wait_until("the run's processes to be gone", 3, || !process_alive(pgid));
    let recorded = message(&home, "long", 1);
    assert!(recorded.starts_with("cancelled by "), "{recorded}");
    assert_recorded_cancelled(&home, "long", 1, &recorded);
}

/// A job that fails at once and retries after 10 s; `attempts.log` gets a line per attempt.
const FLAKY: &str = "run:\n  shell: \"echo attempt >> attempts.log; exit 1\"\nretry:\n  max_attempts: 3\n  backoff: 10s\n  retry_on: [failed]\n";

fn wait_for_backoff(home: &TestHome, job: &str) {
    wait_until(
        "the first attempt to fail and a retry to be scheduled",
        10,
        || {
            std::fs::read_to_string(home.run_dir(job, 1).join("events.jsonl"))
                .is_ok_and(|t| t.contains("\"retry_scheduled\""))
        },
    );
}

fn attempts_started(home: &TestHome, job: &str, seq: i64) -> usize {
    types(&home.events(job, seq))
        .iter()
        .filter(|t| **t == "attempt_started")
        .count()
}

#[test]
fn a_run_in_backoff_is_cancelled_with_no_further_attempt() {
    let home = TestHome::new();
    home.spec("flaky.yaml", format!("id: flaky\n{FLAKY}"));
    let mut foreground = spawn(&home, &["run", "flaky"]);
    wait_for_backoff(&home, "flaky");
    let started = Instant::now();
    let outcome = home.run(&["cancel", "flaky"]);
    assert_eq!(outcome.code, 0, "{}{}", outcome.stdout, outcome.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a run in backoff stops at once, not after the backoff"
    );
    assert_eq!(wait_exit(&mut foreground, 5).code(), Some(1));
    let (status, attempts, _, code) = home.run_row("flaky", 1);
    assert_eq!(
        (status.as_str(), attempts, code.as_deref()),
        ("cancelled", 1, Some("cancelled"))
    );
    assert_eq!(attempts_started(&home, "flaky", 1), 1);
    let log = std::fs::read_to_string(home.path().join("attempts.log")).expect("log");
    assert_eq!(log.lines().count(), 1, "no second attempt");
}

#[test]
fn disable_during_backoff_starts_no_further_attempt() {
    let home = TestHome::new();
    home.spec("flaky.yaml", format!("id: flaky\n{FLAKY}"));
    let mut foreground = spawn(&home, &["run", "flaky"]);
    wait_for_backoff(&home, "flaky");
    let outcome = home.run(&["disable", "flaky", "--reason", "upstream broken"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    // Within a second, well before the 10 s backoff ends.
    assert_eq!(wait_exit(&mut foreground, 3).code(), Some(1));
    let (status, attempts, _, _) = home.run_row("flaky", 1);
    assert_eq!((status.as_str(), attempts), ("cancelled", 1));
    let recorded = message(&home, "flaky", 1);
    assert!(
        recorded.starts_with("cancelled by ")
            && recorded.contains("disabled")
            && recorded.contains("upstream broken"),
        "{recorded}"
    );
    assert_recorded_cancelled(&home, "flaky", 1, &recorded);
    assert_eq!(attempts_started(&home, "flaky", 1), 1);
}

#[test]
fn pause_during_backoff_of_a_scheduled_run_starts_no_further_attempt() {
    let home = TestHome::new();
    home.spec("flaky.yaml", format!("id: flaky\n{EVERY_SECOND}{FLAKY}"));
    let scheduler = start_scheduler(&home, &[]);
    wait_for_backoff(&home, "flaky");
    assert_eq!(home.run(&["pause", "flaky"]).code, 0);
    wait_until("the run in backoff to end", 3, || {
        home.run_row("flaky", 1).0 != "running"
    });
    let (status, attempts, _, _) = home.run_row("flaky", 1);
    assert_eq!((status.as_str(), attempts), ("cancelled", 1));
    assert!(message(&home, "flaky", 1).contains("paused"));
    assert_eq!(stop(scheduler), 0);
    assert_eq!(attempts_started(&home, "flaky", 1), 1);
}

#[test]
fn nothing_in_flight_is_exit_3() {
    let home = TestHome::new();
    home.spec("quick.yaml", "id: quick\nrun:\n  command: [\"true\"]\n");
    let (json, code) = home.json(&["cancel", "quick"]);
    assert_eq!(code, 3, "{json:#}");
    assert_eq!(json["error"]["code"], "run_not_found");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no run in flight")),
        "{json:#}"
    );
    assert_eq!(home.run(&["run", "quick"]).code, 0);
    let (json, code) = home.json(&["cancel", "quick", "--run", "1"]);
    assert_eq!(code, 3, "{json:#}");
    assert_eq!(json["error"]["code"], "run_not_found");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("succeeded")),
        "{json:#}"
    );
    let (json, code) = home.json(&["cancel", "quick", "--run", "9"]);
    assert_eq!(
        (code, &json["error"]["code"]),
        (3, &Value::from("run_not_found"))
    );
    let (json, code) = home.json(&["cancel", "nosuch"]);
    assert_eq!(
        (code, &json["error"]["code"]),
        (3, &Value::from("job_not_found"))
    );
    assert_eq!(
        home.run(&["cancel", "quick", "--run", "1", "--all"]).code,
        2
    );
    assert_eq!(
        home.count("SELECT COUNT(*) FROM cancel_requests"),
        0,
        "nothing was asked"
    );
}

#[test]
fn several_in_flight_without_run_or_all_is_refused_and_listed() {
    let home = TestHome::new();
    home.spec(
        "long.yaml",
        long_job("long", "policy:\n  max_instances: 2\n"),
    );
    let mut first = spawn(&home, &["run", "long"]);
    pid_of(&home, 1);
    let mut second = spawn(&home, &["run", "long"]);
    pid_of(&home, 2);

    let outcome = home.run(&["cancel", "long"]);
    assert_eq!(outcome.code, 2, "{}{}", outcome.stdout, outcome.stderr);
    assert!(
        outcome.stdout.contains("long#1") && outcome.stdout.contains("long#2"),
        "both are listed: {}",
        outcome.stdout
    );
    assert!(outcome.stderr.contains("--run"), "{}", outcome.stderr);
    let (json, code) = home.json(&["cancel", "long"]);
    assert_eq!(code, 2);
    assert_eq!(json["error"]["code"], "usage");
    assert_eq!(json["data"]["in_flight"].as_array().map(Vec::len), Some(2));
    assert_eq!(home.count("SELECT COUNT(*) FROM cancel_requests"), 0);
    assert_eq!(home.run_row("long", 1).0, "running");

    let (json, code) = home.json(&["cancel", "long", "--run", "2", "--no-wait"]);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["data"]["runs"][0]["status"], Value::Null);
    assert_eq!(wait_exit(&mut second, 5).code(), Some(1));
    assert_eq!(home.run_row("long", 2).0, "cancelled");
    assert_eq!(
        home.run_row("long", 1).0,
        "running",
        "only --run 2 was asked"
    );

    let (json, code) = home.json(&["cancel", "long", "--all"]);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["data"]["runs"][0]["status"], "cancelled");
    assert_eq!(wait_exit(&mut first, 5).code(), Some(1));
}

#[test]
fn pause_with_cancel_stops_the_run_in_flight_and_without_it_the_run_goes_on() {
    let home = TestHome::new();
    home.spec("long.yaml", long_job("long", ""));
    let mut foreground = spawn(&home, &["run", "long"]);
    pid_of(&home, 1);
    let outcome = home.run(&["pause", "long"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert!(outcome.stdout.contains("goes on"), "{}", outcome.stdout);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        home.run_row("long", 1).0,
        "running",
        "a plain pause stops nothing"
    );
    assert!(matches!(foreground.try_wait(), Ok(None)));

    let (json, code) = home.json(&["pause", "long", "--cancel", "--reason", "maintenance"]);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["data"]["state"], "paused");
    assert_eq!(
        json["data"]["cancelled"][0]["status"], "cancelled",
        "{json:#}"
    );
    assert_eq!(wait_exit(&mut foreground, 5).code(), Some(1));
    let recorded = message(&home, "long", 1);
    assert!(
        recorded.starts_with("cancelled by ") && recorded.ends_with(": job paused: maintenance"),
        "{recorded}"
    );
    assert_recorded_cancelled(&home, "long", 1, &recorded);
}

#[test]
fn a_cancelled_run_is_not_retried_even_when_its_command_fails_on_sigterm() {
    let home = TestHome::new();
    // The command turns SIGTERM into exit 1, which looks like any failure to the retry policy.
    home.spec(
        "stubborn.yaml",
        "id: stubborn\nrun:\n  shell: \"echo $$ > pid.$JOBS_RUN_SEQ; trap 'exit 1' TERM; sleep 30 & wait\"\n  kill_grace: 1s\nretry:\n  max_attempts: 3\n  backoff: 100ms\n  retry_on: [failed, timed_out, interrupted]\n",
    );
    let mut foreground = spawn(&home, &["run", "stubborn"]);
    pid_of(&home, 1);
    assert_eq!(home.run(&["cancel", "stubborn"]).code, 0);
    assert_eq!(wait_exit(&mut foreground, 5).code(), Some(1));
    let (status, attempts, _, _) = home.run_row("stubborn", 1);
    assert_eq!((status.as_str(), attempts), ("cancelled", 1));
    assert_eq!(attempts_started(&home, "stubborn", 1), 1);
}

#[test]
fn a_cancelled_run_whose_scheduler_died_is_not_retried_as_interrupted() {
    let home = TestHome::new();
    home.spec(
        "once.yaml",
        format!(
            "id: once\n{EVERY_SECOND}run:\n  shell: \"if [ $JOBS_RUN_SEQ = 1 ]; then echo $$ > pid.1; exec sleep 30; fi\"\nretry:\n  max_attempts: 3\n  retry_on: [interrupted]\n"
        ),
    );
    let mut scheduler = start_scheduler(&home, &[]);
    let pgid = pid_of(&home, 1);
    // The scheduler is frozen, so the request stays unserved; then it dies.
    signal(&scheduler, rustix::process::Signal::STOP);
    let (json, code) = home.json(&["cancel", "once", "--no-wait", "--reason", "not wanted"]);
    assert_eq!(code, 0, "{json:#}");
    scheduler.kill().expect("SIGKILL the scheduler");
    scheduler.wait().expect("reap");
    if let Some(group) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }

    let scheduler = start_scheduler(&home, &[]);
    wait_until("the dead run to be settled", 10, || {
        home.run_row("once", 1).0 == "interrupted"
    });
    wait_until("the schedule to go on", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE seq > 1 AND status = 'succeeded'") >= 2
    });
    assert_eq!(stop(scheduler), 0);
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs WHERE replay_of = 1"),
        0,
        "a run someone cancelled is not run again; log:\n{}",
        scheduler_log(&home)
    );
}

#[test]
fn a_queued_run_is_cancelled_before_it_starts() {
    let home = TestHome::new();
    home.spec(
        "line.yaml",
        long_job("line", "policy:\n  max_instances: 1\n  overlap: queue\n"),
    );
    let mut first = spawn(&home, &["run", "line"]);
    pid_of(&home, 1);
    let mut second = spawn(&home, &["run", "line"]);
    wait_until("the second run to be queued", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE seq = 2 AND status = 'queued'") == 1
    });
    let (json, code) = home.json(&["cancel", "line", "--run", "2"]);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["data"]["runs"][0]["was"], "queued");
    assert_eq!(json["data"]["runs"][0]["status"], "cancelled");
    assert_eq!(wait_exit(&mut second, 5).code(), Some(1));
    let (status, attempts, _, _) = home.run_row("line", 2);
    assert_eq!((status.as_str(), attempts), ("cancelled", 0));
    assert!(!home.path().join("pid.2").exists(), "its command never ran");
    assert_eq!(
        home.run_row("line", 1).0,
        "running",
        "the run ahead goes on"
    );
    assert_eq!(home.run(&["cancel", "line"]).code, 0);
    assert_eq!(wait_exit(&mut first, 5).code(), Some(1));
}
