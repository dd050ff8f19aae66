//! A run's records stay true and bounded: a frozen owner does not turn a finished command into a
//! timeout, and a chatty command cannot grow its events or logs without limit.

use std::process::Stdio;
use std::time::Duration;

use rustix::process::Signal;
use serde_json::Value;

use crate::common::{KillOnDrop, TestHome, signal, wait_exit, wait_until};

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

#[test]
fn a_command_that_exited_while_its_owner_was_stopped_keeps_its_real_exit() {
    let home = TestHome::new();
    home.spec(
        "nap.yaml",
        "id: nap\nrun:\n  shell: \"sleep 1\"\n  timeout: 2s\n",
    );
    let mut jobs = KillOnDrop(
        home.command(&["run", "nap"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let events_file = home.run_dir("nap", 1).join("events.jsonl");
    wait_until("the attempt to start", 10, || {
        std::fs::read_to_string(&events_file).is_ok_and(|t| t.contains("\"attempt_started\""))
    });
    // Frozen past the timeout: when it wakes, the deadline has passed and the command is long gone.
    signal(&jobs, Signal::STOP);
    std::thread::sleep(Duration::from_secs(5));
    signal(&jobs, Signal::CONT);
    let status = wait_exit(&mut jobs, 30);
    assert_eq!(status.code(), Some(0), "the run succeeded");
    let events = home.checked_artifacts("nap", 1);
    let kinds = types(&events);
    assert!(
        !kinds.contains(&"timeout") && !kinds.contains(&"kill_sent"),
        "no timeout and no signal for a command that had exited: {kinds:?}"
    );
    let receipt = home.receipt("nap", 1);
    assert_eq!(receipt["status"], "succeeded");
    assert_eq!(receipt["exit_code"], 0);
    assert_eq!(receipt["error_code"], Value::Null);
    assert_eq!(
        home.run_row("nap", 1),
        ("succeeded".to_owned(), 1, Some(0), None)
    );
}
