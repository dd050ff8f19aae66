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

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["type"] == kind).count()
}

fn summary(home: &TestHome, job: &str) -> String {
    std::fs::read_to_string(home.run_dir(job, 1).join("summary.md")).expect("read summary")
}

#[test]
fn output_events_stop_at_ten_thousand_lines_and_the_run_goes_on() {
    let home = TestHome::new();
    home.spec(
        "chatty.yaml",
        // One stream only: lines of two streams reach the cap in whatever order the pipes deliver them.
        "id: chatty\nrun:\n  shell: \"seq 1 20000; echo done\"\n",
    );
    let outcome = home.run(&["run", "chatty"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let events = home.checked_artifacts("chatty", 1);
    assert_eq!(count(&events, "output"), 10_000);
    assert_eq!(count(&events, "output_truncated"), 1);
    let kinds = types(&events);
    let cut = kinds
        .iter()
        .position(|k| *k == "output_truncated")
        .expect("output_truncated");
    assert_eq!(
        &kinds[cut..],
        ["output_truncated", "attempt_finished", "run_finished"],
        "only lifecycle events after the cap"
    );
    let truncated = &events[cut];
    assert_eq!(truncated["lines"], 10_000);
    assert_eq!(truncated["stream"], "stdout");
    // 1..=9 take 2 bytes with the newline, 10..=99 three...: the events hold the lines without it.
    assert_eq!(truncated["bytes"], 9 + 90 * 2 + 900 * 3 + 9000 * 4 + 5);
    let last_output = events[..cut]
        .iter()
        .rev()
        .find(|e| e["type"] == "output")
        .expect("an output event");
    assert_eq!(last_output["line"], "10000");

    let log = std::fs::read_to_string(home.run_dir("chatty", 1).join("stdout.log")).expect("log");
    assert_eq!(log.lines().count(), 20_001, "the log keeps every line");
    assert!(log.ends_with("20000\ndone\n"));
    let summary = summary(&home, "chatty");
    assert!(
        summary.contains("- **output events:** stopped after 10000 lines"),
        "{summary}"
    );
    assert!(
        summary.contains("  done"),
        "the summary's tail is the real end of the output:\n{summary}"
    );
    assert!(
        outcome
            .stderr
            .contains("[jobs] output events stop here after 10000 lines"),
        "jobs run says where its live output stops: {}",
        outcome.stderr
    );
    let tail = home.run(&["tail", "chatty"]);
    assert_eq!(tail.code, 0, "{}", tail.stderr);
    assert!(
        tail.stdout
            .contains("! output events stop here after 10000 lines"),
        "{}",
        tail.stdout
    );
}

#[test]
fn output_events_stop_at_eight_mebibytes_of_lines() {
    let home = TestHome::new();
    // 9000 lines of 999 bytes and a newline: 9 MB, below the line cap but above the byte cap.
    home.spec(
        "wide.yaml",
        "id: wide\nrun:\n  shell: \"head -c 8991000 /dev/zero | tr '\\\\0' w | fold -w 999\"\n",
    );
    let outcome = home.run(&["run", "wide"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let events = home.checked_artifacts("wide", 1);
    let lines = (8 << 20) / 999;
    assert_eq!(count(&events, "output"), lines);
    let truncated = events
        .iter()
        .find(|e| e["type"] == "output_truncated")
        .expect("output_truncated");
    assert_eq!(truncated["lines"], lines);
    assert_eq!(truncated["bytes"], lines * 999);
    let size = std::fs::metadata(home.run_dir("wide", 1).join("events.jsonl"))
        .expect("events")
        .len();
    assert!(size < 10 << 20, "events.jsonl is {size} bytes");
}

#[test]
fn a_log_stops_at_max_log_size_with_a_marker_and_the_run_succeeds() {
    let home = TestHome::new();
    // 3000 lines of "line NNNN\n" go far past 1KiB; the command must not block on its pipe.
    home.spec(
        "big.yaml",
        "id: big\nrun:\n  shell: \"for i in $(seq 1000 3999); do echo line $i; done; echo fine >&2\"\n  max_log_size: 1KiB\n",
    );
    let outcome = home.run(&["--json", "run", "big"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let events = home.checked_artifacts("big", 1);
    assert_eq!(count(&events, "output"), 3001, "events have their own cap");
    assert_eq!(count(&events, "output_truncated"), 0);
    let log = std::fs::read(home.run_dir("big", 1).join("stdout.log")).expect("log");
    let marker =
        b"[jobs] stdout.log reached run.max_log_size (1KiB); the rest of stdout was discarded\n";
    assert!(log.ends_with(marker), "{}", String::from_utf8_lossy(&log));
    let kept = &log[..log.len() - marker.len()];
    // 102 whole lines of 10 bytes, then 4 bytes of the next, then a newline before the marker.
    let expected: String = (1000..1102).map(|i| format!("line {i}\n")).collect();
    assert_eq!(
        String::from_utf8_lossy(kept),
        format!("{expected}line\n"),
        "the first 1024 bytes, whole"
    );
    assert_eq!(
        std::fs::read_to_string(home.run_dir("big", 1).join("stderr.log")).expect("log"),
        "fine\n",
        "each stream has its own limit"
    );
    assert_eq!(home.receipt("big", 1)["status"], "succeeded");
    let summary = summary(&home, "big");
    assert!(
        summary.contains("- **stdout.log:** cut at run.max_log_size (1KiB)"),
        "{summary}"
    );
    assert!(!summary.contains("stderr.log:**"), "{summary}");
}

#[test]
fn a_log_limit_holds_over_all_attempts_of_a_run() {
    let home = TestHome::new();
    home.spec(
        "again.yaml",
        "id: again\nrun:\n  shell: \"seq 1000 1400; exit 1\"\n  max_log_size: 1KiB\nretry:\n  max_attempts: 2\n  backoff: 0s\n",
    );
    assert_eq!(home.run(&["run", "again"]).code, 1);
    home.checked_artifacts("again", 1);
    let log = std::fs::read_to_string(home.run_dir("again", 1).join("stdout.log")).expect("log");
    assert_eq!(log.matches("[jobs] stdout.log reached").count(), 1, "{log}");
    assert!(log.ends_with("the rest of stdout was discarded\n"), "{log}");
    assert_eq!(log.len(), 1024 + 1 + "[jobs] stdout.log reached run.max_log_size (1KiB); the rest of stdout was discarded\n".len());
}

#[test]
fn max_log_size_is_checked_with_its_position() {
    let home = TestHome::new();
    let cases = [
        (
            "spelled",
            "10MB",
            "schema",
            "\"10MB\" is not a size such as 64KiB, 256MiB or 1GiB",
        ),
        (
            "tiny",
            "512B",
            "invalid_size",
            "\"512B\" is not a valid size: it is smaller than the minimum of 1KiB",
        ),
        (
            "huge",
            "2048GiB",
            "invalid_size",
            "it is larger than the limit of 1024GiB",
        ),
        ("number", "1e9GiB", "schema", "is not a size"),
    ];
    for (id, size, _, _) in cases {
        home.spec(
            &format!("{id}.yaml"),
            format!("id: {id}\nrun:\n  command: [\"true\"]\n  max_log_size: {size}\n"),
        );
    }
    home.spec(
        "fine.yaml",
        "id: fine\nrun:\n  command: [\"true\"]\n  max_log_size: 64MiB\n",
    );
    let (report, code) = home.json(&["validate"]);
    assert_eq!(code, 4, "{report}");
    assert_eq!(report["data"]["invalid"], cases.len());
    for (id, _, expected_code, says) in cases {
        let file = report["data"]["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|f| {
                f["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&format!("{id}.yaml")))
            })
            .unwrap_or_else(|| panic!("{id} in {report}"));
        let problem = &file["problems"][0];
        assert_eq!(problem["code"], expected_code, "{id}: {problem}");
        assert_eq!(problem["pointer"], "/run/max_log_size", "{id}");
        assert_eq!(
            (&problem["line"], &problem["column"]),
            (&Value::from(4), &Value::from(3)),
            "{id}"
        );
        assert!(
            problem["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{id}: {problem}"
        );
    }
}
