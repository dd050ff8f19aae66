//! Retention that must not delete kept runs, Ctrl-C during sequential runs, concurrent backups and
//! backups onto the live store, env names that break a one-line format, anchors at the end of time.

use std::collections::BTreeSet;

use crate::common::{TestHome, start_scheduler, stop, wait_until};

/// The numeric run directories of `job`, as seqs.
fn run_dirs(home: &TestHome, job: &str) -> BTreeSet<i64> {
    std::fs::read_dir(home.path().join("runs").join(job))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The seqs of `job`'s rows, newest first, with their status.
fn rows(home: &TestHome, job: &str) -> Vec<(i64, String)> {
    let db = home.db();
    let mut statement = db
        .prepare("SELECT seq, status FROM runs WHERE job_id = ?1 ORDER BY seq DESC")
        .expect("prepare");
    statement
        .query_map([job], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

fn did_not_run(status: &str) -> bool {
    matches!(status, "skipped" | "missed")
}

/// A job due every second whose runs last 2.5 s, so most of its slots do not run; the scheduler goes
/// until `slots` slots have a row (several runs among them), then the prune applies `keep_last`.
fn retention_with_overlap(overlap: &str, keep_last: usize, slots: i64) -> TestHome {
    let home = TestHome::new();
    home.spec(
        "k.yaml",
        format!(
            "id: k\nschedule:\n  every: 1s\nrun:\n  command: [\"sleep\", \"2.5\"]\npolicy:\n  overlap: {overlap}\nretention:\n  keep_last: {keep_last}\n"
        ),
    );
    let scheduler = start_scheduler(&home, &[]);
    // Counted by seq, not by rows: retention removes rows as the scheduler goes. Stopped just after a
    // skipped slot, so that the newest row is a record and the runs that ran are older.
    wait_until("slots with a row, the newest skipped", 40, || {
        home.count("SELECT COALESCE(MAX(seq), 0) FROM runs WHERE job_id = 'k'") >= slots
            && home.count(
                "SELECT status = 'skipped' FROM runs WHERE job_id = 'k' ORDER BY seq DESC LIMIT 1",
            ) == 1
    });
    assert_eq!(stop(scheduler), 0);
    let pruned = home.run(&["prune", "k"]);
    assert_eq!(pruned.code, 0, "{pruned:?}");
    let rows = rows(&home, "k");
    let kept_runs: Vec<i64> = rows
        .iter()
        .filter(|(_, status)| !did_not_run(status))
        .map(|(seq, _)| *seq)
        .collect();
    assert_eq!(
        kept_runs.len(),
        keep_last,
        "keep_last counts runs that ran: {rows:?}"
    );
    assert_eq!(
        run_dirs(&home, "k"),
        kept_runs.iter().copied().collect::<BTreeSet<_>>(),
        "every kept run keeps its directory: {rows:?}"
    );
    // The records newer than the oldest kept run stay: they tell what happened meanwhile.
    let oldest = kept_runs.iter().min().copied().unwrap_or_default();
    let total = home.count("SELECT COALESCE(MAX(seq), 0) FROM runs WHERE job_id = 'k'");
    let newer: Vec<i64> = rows
        .iter()
        .map(|(seq, _)| *seq)
        .filter(|s| *s > oldest)
        .collect();
    assert_eq!(
        newer,
        ((oldest + 1)..=total).rev().collect::<Vec<_>>(),
        "no row newer than the oldest kept run is pruned: {rows:?}"
    );
    home
}

#[test]
fn keep_last_with_overlap_skip_keeps_the_runs_that_ran() {
    let home = retention_with_overlap("skip", 2, 8);
    assert!(
        rows(&home, "k").iter().any(|(_, s)| s == "skipped"),
        "skipped records are kept beside the runs"
    );
}

#[test]
fn keep_last_one_with_overlap_queue_keeps_the_last_run_and_its_directory() {
    let home = retention_with_overlap("queue", 1, 7);
    let rows = rows(&home, "k");
    let newest_run = rows
        .iter()
        .find(|(_, s)| !did_not_run(s))
        .map(|(seq, _)| *seq);
    let history = home.run(&["history", "k"]);
    assert!(
        newest_run.is_some_and(|seq| home.run_dir("k", seq).join("run_receipt.json").is_file()),
        "the last run keeps its artifacts: {rows:?}\n{}",
        history.stdout
    );
}

#[test]
fn ctrl_c_during_a_sequential_run_starts_none_of_the_remaining_jobs() {
    let home = TestHome::new();
    let side = |id: &str| home.path().join(format!("side-{id}"));
    // Ids sort the long job first; the others would leave their side effect at once if started.
    home.spec(
        "a-long.yaml",
        format!(
            "id: a-long\nrun:\n  shell: \"touch '{}'; sleep 5\"\n",
            side("a-long").display()
        ),
    );
    let later: Vec<String> = (1..=8).map(|i| format!("b{i}")).collect();
    for id in &later {
        home.spec(
            &format!("{id}.yaml"),
            format!(
                "id: {id}\nrun:\n  command: [\"touch\", \"{}\"]\n",
                side(id).display()
            ),
        );
    }
    let mut child = home
        .command(&["--json", "run", "--all", "--sequential"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(crate::common::KillOnDrop)
        .expect("start jobs run");
    wait_until("the first job to start", 20, || side("a-long").exists());
    std::thread::sleep(std::time::Duration::from_millis(300));
    crate::common::signal(&child, rustix::process::Signal::INT);
    let status = crate::common::wait_exit(&mut child, 30);
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().expect("stdout piped"), &mut stdout)
        .expect("read stdout");
    assert_eq!(status.code(), Some(1), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    let entries = report["data"]["jobs_run"].as_array().expect("jobs_run");
    assert_eq!(entries.len(), 9, "{report:#}");
    assert_eq!(entries[0]["job_id"], "a-long");
    assert_eq!(entries[0]["status"], "cancelled", "{report:#}");
    assert_ne!(
        entries[0]["exit_code"],
        serde_json::json!(0),
        "a killed command did not exit 0: {report:#}"
    );
    for (id, entry) in later.iter().zip(&entries[1..]) {
        assert_eq!(entry["job_id"], id.as_str());
        assert_eq!(entry["status"], "not_run", "{report:#}");
        assert!(entry["run"].is_null() && entry["exit_code"].is_null());
    }
    assert_eq!(report["data"]["not_run"], 8);
    std::thread::sleep(std::time::Duration::from_millis(200));
    for id in &later {
        assert!(!side(id).exists(), "{id} was started after the stop signal");
    }
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs WHERE job_id LIKE 'b%'"),
        0,
        "no run is claimed after the stop signal"
    );
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'cancelled' AND exit_code = 0"),
        0,
        "no cancelled record says exit 0"
    );
}

#[test]
fn a_misfire_grace_of_zero_with_overlap_queue_runs_the_queued_slots() {
    let home = TestHome::new();
    home.spec(
        "q.yaml",
        "id: q\nschedule:\n  every: 1s\nrun:\n  command: [\"sleep\", \"1.5\"]\npolicy:\n  overlap: queue\n  misfire_grace: 0s\n",
    );
    let scheduler = start_scheduler(&home, &[]);
    // Every slot claimed while a run is in flight is claimed when due, a few ms after it.
    wait_until("slots claimed", 40, || {
        home.count("SELECT COUNT(*) FROM runs WHERE job_id = 'q'") >= 5
    });
    assert_eq!(stop(scheduler), 0);
    let rows = rows(&home, "q");
    assert!(
        rows.iter().all(|(_, status)| status != "missed"),
        "no slot claimed on time is recorded as missed: {rows:?}"
    );
    assert!(
        home.count("SELECT COUNT(*) FROM runs WHERE job_id = 'q' AND status = 'succeeded'") >= 2,
        "the queued slots ran: {rows:?}"
    );
}

#[test]
fn concurrent_backups_to_one_path_all_succeed_and_leave_a_valid_database() {
    let home = TestHome::new();
    for i in 0..20 {
        home.spec(
            &format!("j{i}.yaml"),
            crate::common::manual_spec(&format!("j{i}")),
        );
    }
    assert_eq!(home.run(&["run", "--all"]).code, 0);
    let target = home.path().join("copy.sqlite3");
    let target_arg = target.to_str().expect("utf-8 path");
    for round in 0..3 {
        let children: Vec<_> = (0..8)
            .map(|_| {
                home.command(&["backup", target_arg, "--force"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("start backup")
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().expect("backup exits");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                output.status.success() && !stderr.contains("disk I/O error"),
                "round {round}: a backup failed: {stderr}"
            );
        }
    }
    let copy =
        rusqlite::Connection::open_with_flags(&target, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the backup");
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check");
    assert_eq!(check, "ok");
    let runs: i64 = copy
        .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0))
        .expect("count runs");
    assert_eq!(runs, 20);
    let leftovers: Vec<_> = std::fs::read_dir(home.path())
        .expect("list the home")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn a_backup_onto_the_live_stores_own_files_is_refused() {
    let home = TestHome::new();
    home.spec("a.yaml", crate::common::manual_spec("a"));
    assert_eq!(home.run(&["run", "a"]).code, 0);
    let store = home.path().join("db/jobs.sqlite3");
    let before = std::fs::read(&store).expect("read the store");
    std::fs::hard_link(&store, home.path().join("linked.sqlite3")).expect("hard link");
    for target in [
        "db/jobs.sqlite3-wal",
        "db/jobs.sqlite3-shm",
        "db/../db/jobs.sqlite3",
        "linked.sqlite3",
    ] {
        let path = home.path().join(target);
        let outcome = home.run(&["--json", "backup", path.to_str().expect("utf-8"), "--force"]);
        assert_eq!(outcome.code, 2, "{target}: {outcome:?}");
        let error = &outcome.json()["error"];
        assert_eq!(error["code"], "usage", "{target}");
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains("live store")),
            "{target}: {error}"
        );
    }
    assert_eq!(std::fs::read(&store).expect("read the store"), before);
    assert_eq!(home.run(&["history", "a"]).code, 0, "the store still works");
}

#[test]
fn validate_keeps_a_problem_on_one_line_when_an_env_name_holds_a_newline() {
    let home = TestHome::new();
    home.spec(
        "e.yaml",
        "id: e\nrun:\n  command: [\"true\"]\n  env:\n    \"A\\nB\": x\n",
    );
    let outcome = home.run(&["validate"]);
    assert_eq!(outcome.code, 4, "{outcome:?}");
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "one problem line and the summary: {lines:?}"
    );
    assert!(
        lines[0].starts_with("jobs/e.yaml:5:5: /run/env/A\\nB: "),
        "{lines:?}"
    );
    // The JSON keeps the name as it is.
    let (report, _) = home.json(&["validate"]);
    assert_eq!(
        report["data"]["files"][0]["problems"][0]["pointer"],
        "/run/env/A\nB"
    );
}

#[test]
fn an_anchor_in_the_year_9999_is_refused_and_next_never_prints_past_it() {
    let home = TestHome::new();
    home.spec(
        "far.yaml",
        "id: far\nschedule:\n  every: 1s\n  anchor: 9999-12-31T23:59:56Z\nrun:\n  command: [\"true\"]\n",
    );
    home.spec(
        "tick.yaml",
        "id: tick\nschedule:\n  every: 1s\n  anchor: 8999-01-01T00:00:00Z\nrun:\n  command: [\"true\"]\n",
    );
    let (report, code) = home.json(&["validate"]);
    assert_eq!(code, 4);
    let far = report["data"]["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["path"] == "jobs/far.yaml"))
        .expect("far.yaml is reported");
    let problem = &far["problems"][0];
    assert_eq!(problem["code"], "invalid_anchor", "{far}");
    assert_eq!(
        (problem["line"].as_u64(), problem["column"].as_u64()),
        (Some(4), Some(3))
    );
    assert_eq!(problem["pointer"], "/schedule/anchor");
    let next = home.run(&["next", "far"]);
    assert_eq!(next.code, 4, "{next:?}");
    assert!(!next.stdout.contains("+10000"), "{next:?}");
    // Slots at the very end of the range: printed while RFC 3339 can write them, then none.
    let rfc3339 = |text: &str| chrono::DateTime::parse_from_rfc3339(text).is_ok();
    let (report, code) = home.json(&["next", "tick", "-n", "5", "--after", "9999-12-31T23:59:57Z"]);
    assert_eq!(code, 0, "{report}");
    let slots = report["data"]["slots"].as_array().expect("slots");
    assert_eq!(slots.len(), 2, "{report}");
    for slot in slots {
        for key in ["utc", "local"] {
            let text = slot[key].as_str().expect("a time");
            assert!(rfc3339(text), "{key} {text} is RFC 3339");
        }
    }
    let human = home.run(&["next", "tick", "-n", "5", "--after", "9999-12-31T23:59:57Z"]);
    assert_eq!(human.code, 0);
    assert!(!human.stdout.contains("10000"), "{}", human.stdout);
    assert!(
        human.stdout.contains("no further slots"),
        "{}",
        human.stdout
    );
}
