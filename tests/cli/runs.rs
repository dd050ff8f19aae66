//! `jobsctl run`: the runner through the real binary. Each test checks the exit code, the store's row and
//! the run directory, whose every artifact is validated against the published schemas.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{KillOnDrop, TestHome, killed_run, process_alive, wait_exit, wait_until};

fn job(id: &str, run: &str) -> String {
    format!("id: {id}\n{run}")
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

fn output_lines<'a>(events: &'a [Value], stream: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e["type"] == "output" && e["stream"] == stream)
        .filter_map(|e| e["line"].as_str())
        .collect()
}

#[test]
fn a_successful_run_leaves_every_artifact() {
    let home = TestHome::new();
    home.spec(
        "hello.yaml",
        job("hello", "run:\n  shell: \"echo hello; echo warning >&2; echo $JOBS_JOB_ID $JOBS_RUN_SEQ $JOBS_ATTEMPT\"\n"),
    );
    let outcome = home.run(&["run", "hello"]);
    assert_eq!(outcome.code, 0, "{}{}", outcome.stdout, outcome.stderr);
    assert!(
        outcome.stdout.starts_with("hello\nhello 1 1\n"),
        "output streams live:\n{}",
        outcome.stdout
    );
    assert!(outcome.stderr.contains("warning"), "stderr goes to stderr");
    assert!(outcome.stdout.contains("hello#1") && outcome.stdout.contains("succeeded"));

    assert_eq!(
        home.run_row("hello", 1),
        ("succeeded".into(), 1, Some(0), None)
    );
    let events = home.checked_artifacts("hello", 1);
    assert_eq!(types(&events).first(), Some(&"run_started"));
    assert_eq!(types(&events).last(), Some(&"run_finished"));
    assert_eq!(output_lines(&events, "stdout"), ["hello", "hello 1 1"]);
    assert_eq!(output_lines(&events, "stderr"), ["warning"]);
    let receipt = home.receipt("hello", 1);
    assert_eq!(receipt["status"], "succeeded");
    assert_eq!(receipt["trigger"], "manual");
    assert_eq!(receipt["name"], "hello#1");
    assert_eq!(
        std::fs::read_to_string(home.run_dir("hello", 1).join("stdout.log")).expect("log"),
        "hello\nhello 1 1\n"
    );
    let summary =
        std::fs::read_to_string(home.run_dir("hello", 1).join("summary.md")).expect("summary");
    assert!(summary.starts_with("# hello#1 — succeeded"), "{summary}");
    assert!(
        summary.contains("hello 1 1"),
        "the summary quotes the last lines"
    );
}

#[test]
fn a_non_zero_exit_fails_the_run_and_the_command() {
    let home = TestHome::new();
    home.spec(
        "bad.yaml",
        job("bad", "run:\n  command: [\"sh\", \"-c\", \"exit 3\"]\n"),
    );
    let (report, code) = home.json(&["run", "bad"]);
    assert_eq!(code, 1);
    assert_eq!(report["ok"], false);
    assert_eq!(report["error"]["code"], "run_failed");
    let run = &report["data"]["jobs_run"][0];
    assert_eq!(
        (run["status"].as_str(), run["exit_code"].as_i64()),
        (Some("failed"), Some(3))
    );
    assert_eq!(
        (
            report["data"]["total"].as_i64(),
            report["data"]["failed"].as_i64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(
        home.run_row("bad", 1),
        ("failed".into(), 1, Some(3), Some("exit_nonzero".into()))
    );
    home.checked_artifacts("bad", 1);
}

#[test]
fn a_command_killed_by_a_signal_is_recorded_with_it() {
    let home = TestHome::new();
    home.spec(
        "killed.yaml",
        job("killed", "run:\n  shell: \"kill -9 $$\"\n"),
    );
    assert_eq!(home.run(&["run", "killed"]).code, 1);
    let receipt = home.receipt("killed", 1);
    assert_eq!(
        (receipt["status"].as_str(), receipt["signal"].as_i64()),
        (Some("failed"), Some(9))
    );
    assert_eq!(receipt["error_code"], "killed_by_signal");
    home.checked_artifacts("killed", 1);
}

#[test]
fn a_timeout_stops_the_whole_group_even_a_grandchild_ignoring_sigterm() {
    let home = TestHome::new();
    home.spec(
        "stuck.yaml",
        job(
            "stuck",
            "run:\n  shell: \"trap '' TERM; sh -c 'trap \\\"\\\" TERM; echo $$ > grandchild.pid; sleep 30' & sleep 30\"\n  timeout: 1s\n  kill_grace: 1s\n",
        ),
    );
    let started = Instant::now();
    let outcome = home.run(&["run", "stuck"]);
    let took = started.elapsed();
    assert_eq!(outcome.code, 1);
    assert!(
        took < Duration::from_secs(3),
        "timeout + kill_grace + 1 s, took {took:?}"
    );
    assert_eq!(home.run_row("stuck", 1).0, "timed_out");
    let events = home.checked_artifacts("stuck", 1);
    let kinds = types(&events);
    assert!(kinds.contains(&"timeout"), "{kinds:?}");
    let signals: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "kill_sent")
        .filter_map(|e| e["signal"].as_str())
        .collect();
    assert_eq!(
        signals,
        ["SIGTERM", "SIGKILL"],
        "TERM first, KILL after the grace"
    );
    let pid: i32 = std::fs::read_to_string(home.path().join("grandchild.pid"))
        .expect("grandchild pid")
        .trim()
        .parse()
        .expect("pid");
    wait_until("the grandchild to be gone", 2, || !process_alive(pid));
}

#[test]
fn retries_can_succeed_on_the_third_attempt() {
    let home = TestHome::new();
    home.spec(
        "flaky.yaml",
        job("flaky", "run:\n  shell: \"echo attempt $JOBS_ATTEMPT; test $JOBS_ATTEMPT -ge 3\"\nretry:\n  max_attempts: 5\n  backoff: 50ms\n"),
    );
    let outcome = home.run(&["run", "flaky"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stdout);
    assert_eq!(
        home.run_row("flaky", 1),
        ("succeeded".into(), 3, Some(0), None)
    );
    let events = home.checked_artifacts("flaky", 1);
    let delays: Vec<i64> = events
        .iter()
        .filter(|e| e["type"] == "retry_scheduled")
        .filter_map(|e| e["delay_ms"].as_i64())
        .collect();
    assert_eq!(delays, [50, 100], "the backoff doubles");
    assert_eq!(
        home.receipt("flaky", 1)["attempts"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
}

#[test]
fn retries_that_exhaust_end_failed_with_every_attempt_recorded() {
    let home = TestHome::new();
    home.spec(
        "never.yaml",
        job("never", "run:\n  shell: \"exit 2\"\nretry:\n  max_attempts: 3\n  backoff: 10ms\n  max_backoff: 15ms\n"),
    );
    assert_eq!(home.run(&["run", "never"]).code, 1);
    assert_eq!(
        home.run_row("never", 1),
        ("failed".into(), 3, Some(2), Some("exit_nonzero".into()))
    );
    let events = home.checked_artifacts("never", 1);
    let delays: Vec<i64> = events
        .iter()
        .filter(|e| e["type"] == "retry_scheduled")
        .filter_map(|e| e["delay_ms"].as_i64())
        .collect();
    assert_eq!(delays, [10, 15], "capped by max_backoff");
    let summary =
        std::fs::read_to_string(home.run_dir("never", 1).join("summary.md")).expect("summary");
    assert!(summary.contains("## Attempts"), "{summary}");
}

#[test]
fn retry_on_decides_which_outcomes_are_retried() {
    let home = TestHome::new();
    home.spec(
        "once.yaml",
        job("once", "run:\n  shell: \"exit 1\"\nretry:\n  max_attempts: 3\n  backoff: 10ms\n  retry_on: [timed_out]\n"),
    );
    assert_eq!(home.run(&["run", "once"]).code, 1);
    assert_eq!(
        home.run_row("once", 1).1,
        1,
        "a failure is not retried when only timeouts are"
    );
}

#[test]
fn a_missing_binary_and_a_bad_cwd_are_failed_attempts_not_crashes() {
    let home = TestHome::new();
    home.spec(
        "missing.yaml",
        job(
            "missing",
            "run:\n  command: [\"/nonexistent/tool\", \"--flag\"]\n",
        ),
    );
    home.spec(
        "nowhere.yaml",
        job(
            "nowhere",
            "run:\n  command: [\"true\"]\n  cwd: does/not/exist\n",
        ),
    );
    let (report, code) = home.json(&["run", "missing", "nowhere"]);
    assert_eq!(code, 1);
    let runs = report["data"]["jobs_run"].as_array().expect("jobs_run");
    let by_id = |id: &str| runs.iter().find(|r| r["job_id"] == id).expect("entry");
    assert_eq!(by_id("missing")["error"]["code"], "spawn_failed");
    assert!(
        by_id("missing")["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("failed to start /nonexistent/tool"))
    );
    assert_eq!(by_id("nowhere")["error"]["code"], "bad_cwd");
    home.checked_artifacts("missing", 1);
    home.checked_artifacts("nowhere", 1);
}

#[test]
fn invalid_utf8_is_replaced_in_events_and_kept_raw_in_the_log() {
    let home = TestHome::new();
    home.spec(
        "bytes.yaml",
        job("bytes", "run:\n  shell: \"printf 'caf\\\\351 ok\\\\n'\"\n"),
    );
    assert_eq!(home.run(&["run", "bytes"]).code, 0);
    let events = home.checked_artifacts("bytes", 1);
    assert_eq!(output_lines(&events, "stdout"), ["caf\u{fffd} ok"]);
    let raw = std::fs::read(home.run_dir("bytes", 1).join("stdout.log")).expect("log");
    assert_eq!(raw, b"caf\xe9 ok\n");
}

#[test]
fn ten_megabytes_of_output_and_an_overlong_line() {
    let home = TestHome::new();
    home.spec(
        "loud.yaml",
        job("loud", "run:\n  shell: \"head -c 20000 /dev/zero | tr '\\\\0' b; echo; head -c 10000000 /dev/zero | tr '\\\\0' a | fold -w 100; echo\"\n"),
    );
    let outcome = home.run(&["--json", "run", "loud"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let log = std::fs::metadata(home.run_dir("loud", 1).join("stdout.log"))
        .expect("log")
        .len();
    assert_eq!(log, 20_001 + 10_100_000, "the log keeps every byte");
    let events = home.events("loud", 1);
    let outputs: Vec<&Value> = events.iter().filter(|e| e["type"] == "output").collect();
    assert_eq!(outputs.len(), 10_000, "output events stop at their cap");
    let long = outputs[0];
    assert_eq!(long["truncated"], true);
    assert_eq!(long["line"].as_str().map(str::len), Some(16 * 1024));
    assert_eq!(outputs[1]["truncated"], false);
}

#[test]
fn two_runs_at_once_on_max_instances_one_start_exactly_one() {
    let home = TestHome::new();
    home.spec("solo.yaml", job("solo", "run:\n  shell: \"sleep 1\"\n"));
    let first = home
        .command(&["--json", "run", "solo"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let second = home
        .command(&["--json", "run", "solo"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let outputs = [
        first.wait_with_output().expect("wait"),
        second.wait_with_output().expect("wait"),
    ];
    let mut codes: Vec<i32> = outputs
        .iter()
        .map(|o| o.status.code().unwrap_or(-1))
        .collect();
    codes.sort();
    assert_eq!(codes, [0, 5], "one runs, the other is refused");
    let refused = outputs
        .iter()
        .find(|o| o.status.code() == Some(5))
        .expect("refused one");
    let report: Value = serde_json::from_slice(&refused.stdout).expect("json");
    assert_eq!(report["error"]["code"], "max_instances_reached");
    let runs: i64 = home
        .db()
        .query_row("SELECT COUNT(*) FROM runs WHERE job_id = 'solo'", [], |r| {
            r.get(0)
        })
        .expect("count");
    assert_eq!(runs, 1, "the refused claim left no row");
}

#[test]
fn with_overlap_queue_the_second_run_waits_its_turn() {
    let home = TestHome::new();
    home.spec(
        "line.yaml",
        job(
            "line",
            "run:\n  shell: \"while [ ! -f go ]; do sleep 0.05; done\"\npolicy:\n  overlap: queue\n",
        ),
    );
    let first = KillOnDrop(home.command(&["run", "line"]).spawn().expect("spawn"));
    wait_until("the first run to start", 10, || {
        home.run_dir("line", 1).join("events.jsonl").exists()
    });
    let second = KillOnDrop(home.command(&["run", "line"]).spawn().expect("spawn"));
    wait_until("the second run to queue", 10, || {
        std::fs::read_to_string(home.run_dir("line", 2).join("events.jsonl"))
            .is_ok_and(|t| t.contains("run_queued"))
    });
    std::fs::write(home.path().join("go"), "").expect("open the gate");
    for mut child in [first, second] {
        assert_eq!(wait_exit(&mut child, 20).code(), Some(0));
    }
    let events = home.checked_artifacts("line", 2);
    assert_eq!(types(&events)[..2], ["run_queued", "run_started"]);
    let started = |seq| {
        home.receipt("line", seq)["started_at"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let finished_first = home.receipt("line", 1)["finished_at"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        started(2) >= finished_first,
        "the queued run started after the first finished"
    );
}

#[test]
fn sigint_cancels_the_run_and_leaves_no_child_behind() {
    let home = TestHome::new();
    home.spec(
        "long.yaml",
        job(
            "long",
            "run:\n  shell: \"sleep 30 & echo $! > child.pid; wait\"\n  kill_grace: 1s\n",
        ),
    );
    let mut jobs = home.command(&["run", "long"]).spawn().expect("spawn");
    wait_until("the child to start", 5, || {
        home.path().join("child.pid").exists()
    });
    let pid = i32::try_from(jobs.id()).expect("pid");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).expect("pid"),
        rustix::process::Signal::INT,
    )
    .expect("send SIGINT");
    let status = jobs.wait().expect("wait");
    assert_eq!(status.code(), Some(1));
    assert_eq!(home.run_row("long", 1).0, "cancelled");
    let events = home.checked_artifacts("long", 1);
    assert_eq!(types(&events).last(), Some(&"run_finished"));
    let child: i32 = std::fs::read_to_string(home.path().join("child.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    wait_until("the job's child to be gone", 2, || !process_alive(child));
}

/// The killed run's artifacts agree with the store: repaired, not left saying "running".
fn assert_repaired(home: &TestHome) {
    assert_eq!(home.run_row("doomed", 1).0, "interrupted");
    assert_eq!(home.receipt("doomed", 1)["status"], "interrupted");
    let events = home.checked_artifacts("doomed", 1);
    let last = events.last().expect("events");
    assert_eq!(
        (last["type"].as_str(), last["attempts"].as_i64()),
        (Some("run_finished"), Some(1))
    );
}

#[test]
fn a_run_whose_process_was_killed_is_seen_as_interrupted() {
    let home = killed_run();
    // Reading history notices and records it.
    let (history, code) = home.json(&["history", "doomed"]);
    assert_eq!(code, 0);
    assert_eq!(history["data"]["entries"][0]["status"], "interrupted");
    assert_eq!(history["data"]["entries"][0]["error"]["code"], "owner_gone");
    assert_repaired(&home);
}

#[test]
fn the_next_run_of_a_job_repairs_its_killed_run_first() {
    let home = killed_run();
    // No history in between: the claim of run 2 is the first to see run 1's owner gone.
    assert_eq!(home.run(&["run", "doomed"]).code, 0);
    assert_eq!(home.run_row("doomed", 2).0, "succeeded");
    assert_repaired(&home);
}

#[test]
fn env_values_never_reach_an_artifact() {
    let home = TestHome::new();
    home.spec(
        "secret.yaml",
        job("secret", "run:\n  shell: \"test \\\"$API_TOKEN\\\" = \\\"$(cat expected)\\\" && echo token ok\"\n  env:\n    API_TOKEN: hunter2-0xDEADBEEF\n"),
    );
    std::fs::write(home.path().join("expected"), "hunter2-0xDEADBEEF")
        .expect("write expected value");
    let outcome = home.run(&["--json", "run", "secret"]);
    assert_eq!(
        outcome.code, 0,
        "the command saw the value: {}",
        outcome.stdout
    );
    assert!(!outcome.stdout.contains("hunter2"));
    assert_eq!(home.receipt("secret", 1)["env_names"][0], "API_TOKEN");
    for entry in std::fs::read_dir(home.run_dir("secret", 1)).expect("run dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read artifact");
        assert!(
            !String::from_utf8_lossy(&bytes).contains("hunter2"),
            "{} holds the secret",
            path.display()
        );
    }
}

#[test]
fn disabled_jobs_run_only_when_forced() {
    let home = TestHome::new();
    home.spec(
        "off.yaml",
        job("off", "enabled: false\nrun:\n  command: [\"true\"]\n"),
    );
    let (report, code) = home.json(&["run", "off"]);
    assert_eq!(
        (code, report["error"]["code"].as_str()),
        (5, Some("job_disabled"))
    );
    assert_eq!(home.run(&["run", "off", "--force"]).code, 0);
}

#[test]
fn run_all_runs_every_job_that_is_not_disabled() {
    let home = TestHome::new();
    home.spec("a.yaml", job("a", "run:\n  command: [\"true\"]\n"));
    home.spec("b.yaml", job("b", "run:\n  command: [\"true\"]\n"));
    home.spec(
        "c.yaml",
        job("c", "enabled: false\nrun:\n  command: [\"true\"]\n"),
    );
    let (report, code) = home.json(&["run", "--all", "--sequential"]);
    assert_eq!(code, 0);
    let ids: Vec<&str> = report["data"]["jobs_run"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["job_id"].as_str())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(report["data"]["succeeded"], 2);
    let usage = home.run(&["run"]);
    assert_eq!(usage.code, 2, "nothing to run is a usage error");
}

#[test]
fn detach_returns_at_once_and_the_run_finishes_in_the_background() {
    let home = TestHome::new();
    // The run cannot end before the test opens the gate.
    home.spec(
        "bg.yaml",
        job(
            "bg",
            "run:\n  shell: \"while [ ! -f go ]; do sleep 0.05; done; echo done\"\n",
        ),
    );
    let (report, code) = home.json(&["run", "--detach", "bg"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        home.run_row("bg", 1).0,
        "running",
        "the command returned while its run goes on"
    );
    std::fs::write(home.path().join("go"), "").expect("open the gate");
    assert_eq!(report["data"]["started"][0]["run"], 1);
    wait_until("the background run to finish", 10, || {
        home.run_row("bg", 1).0 == "succeeded"
    });
    let events = home.checked_artifacts("bg", 1);
    assert_eq!(output_lines(&events, "stdout"), ["done"]);
}

#[test]
fn history_lists_newest_first_and_filters() {
    let home = TestHome::new();
    home.spec("ok.yaml", job("ok", "run:\n  command: [\"true\"]\n"));
    home.spec("no.yaml", job("no", "run:\n  command: [\"false\"]\n"));
    for args in [["run", "ok"], ["run", "no"], ["run", "ok"]] {
        home.run(&args);
    }
    let (history, code) = home.json(&["history"]);
    assert_eq!(code, 0);
    let runs: Vec<(String, i64)> = history["data"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["job_id"].as_str().unwrap_or_default().to_owned(),
                e["run"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(runs, [("ok".into(), 2), ("no".into(), 1), ("ok".into(), 1)]);
    assert_eq!(history["data"]["total"], 3);
    let entry = &history["data"]["entries"][1];
    assert_eq!(entry["error"]["code"], "exit_nonzero");

    let (failed, _) = home.json(&["history", "--status", "failed"]);
    assert_eq!(failed["data"]["total"], 1);
    let (one, _) = home.json(&["history", "ok", "-n", "1"]);
    assert_eq!(
        (
            one["data"]["entries"].as_array().map(Vec::len),
            one["data"]["total"].as_i64()
        ),
        (Some(1), Some(2))
    );
    let (future, _) = home.json(&["history", "--since", "2999-01-01T00:00:00Z"]);
    assert_eq!(future["data"]["total"], 0);
    let (recent, _) = home.json(&["history", "--since", "1h"]);
    assert_eq!(recent["data"]["total"], 3);
    let (missing, code) = home.json(&["history", "nope"]);
    assert_eq!(
        (code, missing["error"]["code"].as_str()),
        (3, Some("job_not_found"))
    );
    let human = home.run(&["history"]);
    assert!(
        human
            .stdout
            .lines()
            .next()
            .is_some_and(|l| l.starts_with("RUN")),
        "{}",
        human.stdout
    );
}

#[test]
fn show_fills_in_the_run_record() {
    let home = TestHome::new();
    home.spec(
        "mixed.yaml",
        job("mixed", "run:\n  shell: \"test -f ok\"\n"),
    );
    home.run(&["run", "mixed"]);
    std::fs::write(home.path().join("ok"), "").expect("touch");
    home.run(&["run", "mixed"]);
    std::fs::remove_file(home.path().join("ok")).expect("rm");
    home.run(&["run", "mixed"]);
    home.run(&["run", "mixed"]);
    let (show, code) = home.json(&["show", "mixed"]);
    assert_eq!(code, 0);
    let data = &show["data"];
    assert_eq!(data["last_run"]["run"], 4);
    assert_eq!(data["last_success"]["run"], 2);
    assert_eq!(data["last_failure"]["run"], 4);
    assert_eq!(data["failure_streak"], 2);
    assert_eq!(data["counts"]["runs"], 4);
    assert_eq!(data["counts"]["succeeded"], 1);
    assert_eq!(data["counts"]["failed"], 3);
    let human = home.run(&["show", "mixed"]);
    assert!(human.stdout.contains("mixed#4"), "{}", human.stdout);
}

#[test]
fn a_leftover_run_directory_is_never_reused() {
    let home = TestHome::new();
    home.spec("again.yaml", job("again", "run:\n  command: [\"true\"]\n"));
    // As after restoring an older store: the directory of the next number exists already.
    std::fs::create_dir_all(home.run_dir("again", 1)).expect("leftover");
    std::fs::write(home.run_dir("again", 1).join("keep.txt"), "old").expect("old file");
    let (report, code) = home.json(&["run", "again"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["data"]["jobs_run"][0]["run"], 2,
        "the next free number"
    );
    assert_eq!(
        std::fs::read_to_string(home.run_dir("again", 1).join("keep.txt")).expect("old file"),
        "old"
    );
    home.checked_artifacts("again", 2);
}

#[test]
fn a_broken_job_directory_is_an_error_not_a_hang() {
    let home = TestHome::new();
    home.spec(
        "broken.yaml",
        job("broken", "run:\n  command: [\"true\"]\n"),
    );
    std::fs::create_dir_all(home.path().join("runs")).expect("runs/");
    // A dangling symlink where the job's run directories should be (a disk that is not mounted).
    std::os::unix::fs::symlink(
        home.path().join("not-mounted/broken"),
        home.path().join("runs/broken"),
    )
    .expect("symlink");
    let mut child = KillOnDrop(
        home.command(&["--json", "run", "broken"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run"),
    );
    let status = wait_exit(&mut child, 10);
    assert_eq!(status.code(), Some(6));
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut stdout)
        .expect("read");
    let report: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report["error"]["code"], "artifact_write_failed");
    assert!(
        report["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("runs/broken")),
        "{report}"
    );
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs"),
        0,
        "nothing recorded"
    );
}

#[test]
fn a_detached_run_refused_for_max_instances_says_how_many_are_in_flight() {
    let home = TestHome::new();
    home.spec(
        "gate.yaml",
        job(
            "gate",
            "run:\n  shell: \"while [ ! -f go ]; do sleep 0.05; done\"\n",
        ),
    );
    assert_eq!(home.json(&["run", "--detach", "gate"]).1, 0);
    let (refused, code) = home.json(&["run", "--detach", "gate"]);
    std::fs::write(home.path().join("go"), "").expect("open the gate");
    assert_eq!(
        (code, refused["error"]["code"].as_str()),
        (5, Some("max_instances_reached"))
    );
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("1 run(s) in flight, its max_instances is 1"),
        "{message}"
    );
    wait_until("the first run to finish", 10, || {
        home.run_row("gate", 1).0 == "succeeded"
    });
}

#[test]
fn history_counts_up_to_a_cap_and_says_so() {
    let home = TestHome::new();
    home.spec("many.yaml", job("many", "run:\n  command: [\"true\"]\n"));
    assert_eq!(home.run(&["run", "many"]).code, 0);
    // Rows as the scheduler would leave them, written directly: 10,050 runs, every tenth failed.
    let mut db = rusqlite::Connection::open(home.path().join("db/jobs.sqlite3")).expect("store");
    let tx = db.transaction().expect("transaction");
    for seq in 2..=10_051_i64 {
        let status = if seq % 10 == 0 { "failed" } else { "succeeded" };
        tx.execute(
            "INSERT INTO runs (job_id, seq, trigger, claimed_at, status, owner) \
             VALUES ('many', ?1, 'manual', 4000000000000 + ?1, ?2, 'test')",
            rusqlite::params![seq, status],
        )
        .expect("insert");
    }
    tx.execute("UPDATE jobs SET run_counter = 10051 WHERE id = 'many'", [])
        .expect("counter");
    tx.commit().expect("commit");

    let (all, _) = home.json(&["history", "-n", "3"]);
    assert_eq!(
        (&all["data"]["total"], &all["data"]["total_capped"]),
        (&serde_json::json!(10_000), &serde_json::json!(true))
    );
    assert_eq!(all["data"]["entries"][0]["run"], 10_051);
    let human = home.run(&["history", "-n", "3"]);
    assert!(
        human.stdout.contains("3 of more than 10000 runs shown"),
        "{}",
        human.stdout
    );
    let (failed, _) = home.json(&["history", "many", "--status", "failed", "-n", "3"]);
    assert_eq!(
        (&failed["data"]["total"], &failed["data"]["total_capped"]),
        (&serde_json::json!(1_005), &serde_json::json!(false))
    );
    assert_eq!(failed["data"]["entries"][0]["run"], 10_050);
}
