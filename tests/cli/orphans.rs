//! No process outlives its run: when a run's owner dies (`jobsctl run`, the detached background process,
//! the scheduler, each killed with SIGKILL), the next command that settles the run stops its process
//! group; a pid handed out again is never signalled; a deleted run directory never lets a second
//! instance start; processes a command leaves behind end with its attempt (unless the spec keeps
//! them); the receipt lists an attempt while it runs; a start failure says why on stderr; and a retry
//! owed to an interrupted run happens exactly once, whoever settled it.

use std::os::unix::process::CommandExt;
use std::process::Stdio;

use rustix::process::{Pid, Signal};
use serde_json::Value;

use crate::common::{
    KillOnDrop, TestHome, process_alive, start_scheduler, stop, wait_exit, wait_until,
};

/// The processes of group `pgid` that have not ended (zombies count as ended).
fn group(pgid: i64) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rsplit(')').next() else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let state = fields.first().copied().unwrap_or("Z");
        let pgrp: i64 = fields.get(2).and_then(|f| f.parse().ok()).unwrap_or(0);
        if pgrp == pgid && state != "Z" && state != "X" {
            found.push(pid);
        }
    }
    found
}

fn kill_group(pgid: i64) {
    if let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    }
}

/// The pgid of a run's latest attempt, once its `attempt_started` event is written.
fn wait_for_attempt(home: &TestHome, job: &str, seq: i64) -> i64 {
    let mut pgid = 0;
    wait_until(&format!("{job}#{seq} to start its command"), 20, || {
        let Ok(text) = std::fs::read_to_string(home.run_dir(job, seq).join("events.jsonl")) else {
            return false;
        };
        for line in text.lines() {
            let event: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            if event["type"] == "attempt_started" {
                pgid = event["pgid"].as_i64().unwrap_or(0);
            }
        }
        pgid > 0
    });
    pgid
}

/// A `jobsctl run <job>` in the background, its output discarded.
fn run_in_background(home: &TestHome, job: &str) -> KillOnDrop {
    home.command(&["run", job])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .expect("start jobs run")
}

fn sigkill(pid: u32) {
    let pid = Pid::from_raw(i32::try_from(pid).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, Signal::KILL).expect("send SIGKILL");
}

/// A shell command that starts a child and a grandchild, both of which ignore SIGTERM, so that only
/// SIGKILL after the grace ends them.
const STUBBORN: &str = "run:\n  shell: \"trap '' TERM; sleep 300 & sleep 300\"\n  kill_grace: 1s\n";

#[test]
fn kill_9_of_jobs_run_leaves_no_process_after_the_next_command() {
    let home = TestHome::new();
    home.spec("slow.yaml", format!("id: slow\n{STUBBORN}"));
    let mut owner = run_in_background(&home, "slow");
    let pgid = wait_for_attempt(&home, "slow", 1);
    wait_until("the command's processes", 10, || group(pgid).len() >= 2);
    let running = group(pgid).len();
    sigkill(owner.id());
    wait_exit(&mut owner, 10);
    // At least those seen before the kill: the shell may still be starting its second child.
    assert!(
        group(pgid).len() >= running,
        "the command outlives its owner until settled"
    );

    let status = home.run(&["status"]);
    assert_eq!(status.code, 5, "no scheduler: {}", status.stderr);
    let left = group(pgid);
    kill_group(pgid);
    assert!(
        left.is_empty(),
        "processes of the dead run still alive: {left:?}"
    );
    assert_eq!(home.run_row("slow", 1).0, "interrupted");
    let events = home.checked_artifacts("slow", 1);
    let stopped: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "processes_left")
        .collect();
    assert_eq!(stopped.len(), 1, "{events:#?}");
    assert_eq!(stopped[0]["cause"], "owner_gone");
    assert_eq!(
        stopped[0]["processes"].as_array().map(Vec::len),
        Some(running)
    );
    let signals: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "kill_sent")
        .map(|e| &e["signal"])
        .collect();
    assert_eq!(
        signals,
        ["SIGTERM", "SIGKILL"],
        "TERM, the grace, then KILL"
    );
    assert_eq!(
        events.last().map(|e| &e["type"]),
        Some(&Value::from("run_finished"))
    );
    let receipt = home.receipt("slow", 1);
    assert_eq!(
        receipt["attempts"][0]["status"], "interrupted",
        "{receipt:#}"
    );
}

#[test]
fn kill_9_of_the_detached_process_leaves_no_process_after_the_next_command() {
    let home = TestHome::new();
    home.spec(
        "slow.yaml",
        "id: slow\nrun:\n  command: [\"sleep\", \"300\"]\n",
    );
    let (started, code) = home.json(&["run", "--detach", "slow"]);
    assert_eq!(code, 0, "{started}");
    let owner = started["data"]["started"][0]["pid"].as_u64().expect("pid");
    let pgid = wait_for_attempt(&home, "slow", 1);
    assert_eq!(group(pgid).len(), 1);
    sigkill(u32::try_from(owner).expect("pid"));
    wait_until("the background owner to die", 10, || {
        !process_alive(i32::try_from(owner).expect("pid"))
    });

    let history = home.run(&["history"]);
    assert_eq!(history.code, 0, "{}", history.stderr);
    let left = group(pgid);
    kill_group(pgid);
    assert!(
        left.is_empty(),
        "processes of the dead run still alive: {left:?}"
    );
    assert_eq!(home.run_row("slow", 1).0, "interrupted");
}

#[test]
fn kill_9_of_the_scheduler_leaves_no_process_of_its_runs_after_the_next_command() {
    let home = TestHome::new();
    home.spec(
        "slow.yaml",
        format!(
            "id: slow\nschedule:\n  every: 1h\n  anchor: {}\n{STUBBORN}",
            soon()
        ),
    );
    home.spec(
        "plain.yaml",
        format!("id: plain\nschedule:\n  every: 1h\n  anchor: {}\nrun:\n  command: [\"sleep\", \"300\"]\n", soon()),
    );
    let mut scheduler = start_scheduler(&home, &[]);
    let slow = wait_for_attempt(&home, "slow", 1);
    let plain = wait_for_attempt(&home, "plain", 1);
    wait_until("every process of the runs", 10, || {
        group(slow).len() >= 2 && group(plain).len() == 1
    });
    wait_until("the store to know both groups", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE pgid IS NOT NULL AND status = 'running'") == 2
    });
    sigkill(scheduler.id());
    wait_exit(&mut scheduler, 10);

    let status = home.run(&["status"]);
    assert_eq!(status.code, 5, "{}", status.stderr);
    let left = [group(slow), group(plain)];
    kill_group(slow);
    kill_group(plain);
    assert!(
        left.iter().all(Vec::is_empty),
        "processes of the dead runs still alive: {left:?}"
    );
    assert_eq!(home.run_row("slow", 1).0, "interrupted");
    assert_eq!(home.run_row("plain", 1).0, "interrupted");
}

/// An anchor two seconds from now, so that an `every: 1h` job has exactly one slot soon.
fn soon() -> String {
    (chrono::Utc::now() + chrono::TimeDelta::seconds(2))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[test]
fn a_recorded_identity_that_now_names_another_process_is_never_signalled() {
    let home = TestHome::new();
    home.spec(
        "slow.yaml",
        "id: slow\nrun:\n  command: [\"sleep\", \"300\"]\n",
    );
    let mut owner = run_in_background(&home, "slow");
    let pgid = wait_for_attempt(&home, "slow", 1);
    sigkill(owner.id());
    wait_exit(&mut owner, 10);
    // A stranger that leads its own group: a kill of that group would reach it.
    let mut stranger = std::process::Command::new("sleep")
        .arg("300")
        .process_group(0)
        .spawn()
        .map(KillOnDrop)
        .expect("start a stranger");
    let stranger_pid = i64::from(stranger.id());
    // The store and the run directory now name the stranger's pid, with the start time of the
    // process that had it before: as if both pids had been handed out again.
    std::fs::remove_dir_all(home.run_dir("slow", 1)).expect("remove the run directory");
    let db = rusqlite::Connection::open(home.path().join("db/jobs.sqlite3")).expect("open store");
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let changed = db
        .execute(
            "UPDATE runs SET owner = ?1, owner_start = owner_start - 1, pgid = ?2,
                 leader_start = leader_start - 1 WHERE job_id = 'slow' AND seq = 1",
            rusqlite::params![format!("{stranger_pid}@{host}"), stranger_pid],
        )
        .expect("edit the identity");
    assert_eq!(changed, 1);
    drop(db);

    let status = home.run(&["status"]);
    assert_eq!(status.code, 5, "{}", status.stderr);
    assert!(
        process_alive(i32::try_from(stranger_pid).expect("pid")),
        "a process that merely got a recorded pid was signalled"
    );
    assert_eq!(
        home.run_row("slow", 1).0,
        "interrupted",
        "an owner whose pid now names another process is gone"
    );
    // What the edit hid from the settling is still running: not ours to find any more.
    kill_group(pgid);
    let _ = stranger.kill();
}

#[test]
fn deleting_the_run_directory_never_lets_a_second_instance_start() {
    let home = TestHome::new();
    home.spec(
        "slow.yaml",
        "id: slow\nschedule:\n  cron: \"* * * * * *\"\n  timezone: UTC\nrun:\n  command: [\"sleep\", \"300\"]\n",
    );
    // A manual run holds the only instance; its directory goes.
    let mut manual = run_in_background(&home, "slow");
    let pgid = wait_for_attempt(&home, "slow", 1);
    std::fs::remove_dir_all(home.path().join("runs/slow")).expect("rm -rf runs/slow");
    let second = home.run(&["run", "slow"]);
    assert_eq!(
        second.code, 5,
        "a second `jobsctl run` started: {}",
        second.stderr
    );
    assert!(second.stderr.contains("max_instances"), "{}", second.stderr);

    // Neither does the scheduler, through slots and its periodic look for dead runs (every 5 s).
    let scheduler = start_scheduler(&home, &[]);
    wait_until(
        "the scheduler to skip slots for the run in flight",
        20,
        || home.count("SELECT COUNT(*) FROM runs WHERE status = 'skipped'") >= 1,
    );
    std::thread::sleep(std::time::Duration::from_secs(6));
    let running = home.count("SELECT COUNT(*) FROM runs WHERE status IN ('running', 'queued')");
    let others = home
        .count("SELECT COUNT(*) FROM runs WHERE seq > 1 AND status NOT IN ('skipped', 'missed')");
    assert_eq!(stop(scheduler), 0);
    assert_eq!((running, others), (1, 0), "only the first run ever ran");
    assert_eq!(group(pgid).len(), 1, "its command still runs");
    assert!(
        matches!(manual.try_wait(), Ok(None)),
        "its owner still runs"
    );
    let _ = manual.kill();
    let _ = manual.wait();
    let _ = home.run(&["status"]);
    let left = group(pgid);
    kill_group(pgid);
    assert!(left.is_empty(), "settled once its owner died: {left:?}");
}

/// The pids a run's `processes_left` events name, with the action taken.
fn processes_left(home: &TestHome, job: &str, seq: i64) -> Vec<(i32, String)> {
    home.events(job, seq)
        .iter()
        .filter(|e| e["type"] == "processes_left")
        .flat_map(|e| {
            let action = e["action"].as_str().unwrap_or_default().to_owned();
            e["processes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |p| (p["pid"].as_i64().unwrap_or(0) as i32, action.clone()))
        })
        .collect()
}

#[test]
fn a_process_left_behind_ends_with_its_attempt_unless_the_spec_keeps_it() {
    let home = TestHome::new();
    let shell = "  shell: \"sleep 100 & echo started\"\n";
    home.spec("bg.yaml", format!("id: bg\nrun:\n{shell}"));
    home.spec(
        "daemon.yaml",
        format!("id: daemon\nrun:\n{shell}  leftovers: keep\n"),
    );

    let started = std::time::Instant::now();
    let outcome = home.run(&["run", "bg"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert!(outcome.stdout.contains("started"), "{}", outcome.stdout);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1900),
        "the run ends when its leftovers are killed, not when the output pipes time out"
    );
    let killed = processes_left(&home, "bg", 1);
    assert_eq!(killed.len(), 1, "{killed:?}");
    assert_eq!(killed[0].1, "killed");
    assert!(
        !process_alive(killed[0].0),
        "the background sleep was killed"
    );
    let events = home.checked_artifacts("bg", 1);
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "kill_sent" && e["signal"] == "SIGTERM")
    );

    let outcome = home.run(&["run", "daemon"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let kept = processes_left(&home, "daemon", 1);
    assert_eq!(kept.len(), 1, "{kept:?}");
    let alive = process_alive(kept[0].0);
    if let Some(pid) = Pid::from_raw(kept[0].0) {
        let _ = rustix::process::kill_process(pid, Signal::KILL);
    }
    assert_eq!(kept[0].1, "kept");
    assert!(alive, "leftovers: keep leaves it running");
    home.checked_artifacts("daemon", 1);
}

#[test]
fn a_program_that_cannot_start_says_why_on_stderr() {
    let home = TestHome::new();
    home.spec(
        "missing.yaml",
        "id: missing\nrun:\n  command: [\"/nonexistent/tool\"]\n",
    );
    let outcome = home.run(&["run", "missing"]);
    assert_eq!(outcome.code, 1);
    assert!(
        outcome
            .stderr
            .contains("failed to start /nonexistent/tool: no such file or directory"),
        "stderr: {}",
        outcome.stderr
    );
}

#[test]
fn the_receipt_lists_an_attempt_while_it_runs() {
    let home = TestHome::new();
    home.spec(
        "slow.yaml",
        "id: slow\nrun:\n  command: [\"sleep\", \"300\"]\n",
    );
    let owner = run_in_background(&home, "slow");
    let pgid = wait_for_attempt(&home, "slow", 1);
    let receipt = home.receipt("slow", 1);
    let attempts = receipt["attempts"].as_array().cloned().unwrap_or_default();
    assert_eq!(attempts.len(), 1, "{receipt:#}");
    assert_eq!(attempts[0]["status"], "running");
    assert_eq!(attempts[0]["pid"], pgid);
    assert_eq!(attempts[0]["pgid"], pgid);
    assert!(
        attempts[0]["leader_start"].as_u64().is_some(),
        "{receipt:#}"
    );
    assert!(attempts[0]["finished_at"].is_null());
    let errors: Vec<String> = crate::common::schema("run_receipt")
        .iter_errors(&receipt)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(stop(owner), 1, "cancelled");
    let receipt = home.receipt("slow", 1);
    assert_eq!(receipt["attempts"].as_array().map(Vec::len), Some(1));
    assert_eq!(receipt["attempts"][0]["status"], "cancelled");
}

#[test]
fn a_retry_owed_to_an_interrupted_run_happens_once_whoever_settled_it() {
    let home = TestHome::new();
    home.spec(
        "flaky.yaml",
        format!(
            "id: flaky\nschedule:\n  every: 1h\n  anchor: {}\nrun:\n  command: [\"sleep\", \"300\"]\nretry:\n  max_attempts: 2\n  retry_on: [interrupted]\n",
            soon()
        ),
    );
    let mut scheduler = start_scheduler(&home, &[]);
    let first = wait_for_attempt(&home, "flaky", 1);
    sigkill(scheduler.id());
    wait_exit(&mut scheduler, 10);
    // Another command settles the dead run before the scheduler is back.
    let _ = home.run(&["status"]);
    assert_eq!(home.run_row("flaky", 1).0, "interrupted");
    assert!(group(first).is_empty());

    let retries = "SELECT COUNT(*) FROM runs WHERE job_id = 'flaky' AND replay_of = 1";
    let scheduler = start_scheduler(&home, &[]);
    wait_until("the retry of the interrupted run", 20, || {
        home.count(retries) >= 1
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(stop(scheduler), 0);
    let scheduler = start_scheduler(&home, &[]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(stop(scheduler), 0);
    assert_eq!(home.count(retries), 1, "exactly one retry");
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs WHERE job_id = 'flaky' AND trigger = 'catchup'"),
        1
    );
}
