//! Crash torture: a scheduler with 50 jobs due every second is killed with SIGKILL again and again, at
//! random moments and (debug builds) at the fault-injection points of `src/fault.rs`, restarted each
//! time, and finally stopped cleanly. What it leaves behind must still hold together: one record per
//! slot, nothing left in flight, run directories and rows in step, artifacts that parse and agree with
//! the store, and a store that passes SQLite's own check.
//!
//! `JOBS_TORTURE_CYCLES` sets the number of kill cycles (a short run by default, so that `cargo test`
//! stays quick; `just torture` runs 20). `JOBS_TORTURE_SEED` repeats a run: the seed is printed.

#![expect(
    clippy::expect_used,
    reason = "a test helper that cannot set up must fail the test loudly"
)]

#[expect(
    dead_code,
    reason = "the torture test needs only part of the shared builder"
)]
#[path = "cli/common.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use serde_json::Value;

use common::{KillOnDrop, SchedulerStart, TestHome, process_alive, schema, wait_exit, wait_until};

const JOBS: usize = 50;
const DEFAULT_CYCLES: u32 = 3;
/// Each point is passed many times a second under this load, so a cycle with faults armed ends within
/// a second or two; the probabilities spread the deaths over all four points.
const FAULTS: &str = "claim-before-commit=0.05,event-torn=0.01,receipt-before-rename=0.02,finish-before-commit=0.02,finish-after-commit=0.01";
/// A cycle whose armed faults have not struck by then is ended by an ordinary kill.
const FAULT_PATIENCE: Duration = Duration::from_secs(10);
/// What `src/run.rs` calls terminal: every status but queued and running.
const TERMINAL: [&str; 7] = [
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
    "interrupted",
    "skipped",
    "missed",
];

/// xorshift64*: enough to pick kill moments and fault seeds repeatably, without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

/// Five kinds of job, ten of each, so that every path of a run is crossed while it is being killed:
/// plain successes, output on both streams, failures with retries, timeouts (a kill of the process
/// group, retried, also after an interruption), and a queue behind a slow run. The failing and the
/// timing-out kinds notify (the default events) through a command that appends the delivery id to
/// `notified.log` in the home. Two of the slow ones share the group `tg` of one place (see
/// [`GROUP_CONFIG`]), so a full group is crossed too.
fn spec(index: usize) -> String {
    let head = format!("id: t{index:02}\nschedule:\n  cron: \"* * * * * *\"\n  timezone: UTC\n");
    let body = match index % 5 {
        0 => "run:\n  command: [\"true\"]\n",
        1 => "run:\n  shell: \"echo out; echo err >&2\"\n",
        2 => {
            "run:\n  shell: \"echo failing; exit 3\"\nretry:\n  max_attempts: 3\n  backoff: 200ms\n  retry_on: [failed]\nnotify:\n  - command: [sh, -c, \"echo $JOBS_NOTIFY_DELIVERY >> notified.log\"]\n"
        }
        3 => {
            "run:\n  shell: \"sleep 5\"\n  timeout: 400ms\n  kill_grace: 200ms\npolicy:\n  coalesce: false\n  misfire_grace: 2s\nretry:\n  max_attempts: 2\n  backoff: 100ms\n  retry_on: [timed_out, interrupted]\nnotify:\n  - command: [sh, -c, \"echo $JOBS_NOTIFY_DELIVERY >> notified.log\"]\n"
        }
        _ if GROUPED.contains(&index) => {
            "run:\n  shell: \"sleep 1.5\"\npolicy:\n  max_instances: 1\n  overlap: queue\n  group: tg\n"
        }
        _ => "run:\n  shell: \"sleep 1.5\"\npolicy:\n  max_instances: 1\n  overlap: queue\n",
    };
    format!("{head}{body}")
}

/// A job triggered by every success of `t00`, with no schedule of its own: the chain whose
/// decisions the kills must neither lose nor double.
const DOWNSTREAM: &str = "id: t50\nafter:\n  - job: t00\nrun:\n  command: [\"true\"]\n";

/// The jobs in the group `tg`, and the home's config that defines it.
const GROUPED: [usize; 2] = [4, 9];
const GROUP_CONFIG: &str = "groups:\n  tg:\n    max_running: 1\n";

fn start(home: &TestHome, faults: Option<u64>) -> KillOnDrop {
    let start = SchedulerStart::new(home.path()).append();
    match faults {
        Some(seed) => start
            .env("JOBS_FAULT", FAULTS)
            .env("JOBS_FAULT_SEED", &seed.to_string()),
        None => start.env_remove("JOBS_FAULT"),
    }
    .start()
}

/// Waits until the scheduler just started has settled what it found (it logs "scheduler started"
/// after that), or has died trying (a fault point struck); true in the first case.
fn started(home: &TestHome, scheduler: &mut KillOnDrop) -> bool {
    let count = |home: &TestHome| {
        std::fs::read_to_string(home.path().join("scheduler.log"))
            .unwrap_or_default()
            .matches("scheduler started")
            .count()
    };
    let before = count(home);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if count(home) > before {
            return true;
        }
        if scheduler.try_wait().expect("poll").is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Processes still alive in the process group of a run the store records as ended, each as a line
/// that names the run. A process being killed as the run ends may take a moment to go: whatever is
/// found is looked at again half a second later.
fn processes_of_settled_runs(home: &TestHome) -> Vec<String> {
    let db = home.db();
    let mut statement = db
        .prepare(
            "SELECT job_id, seq, status, pgid FROM runs
             WHERE pgid IS NOT NULL AND status NOT IN ('queued', 'running')",
        )
        .expect("prepare");
    let ended: Vec<(String, i64, String, i64)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let find = || {
        let groups = live_groups();
        ended
            .iter()
            .filter_map(|(job, seq, status, pgid)| {
                groups.get(pgid).map(|pids| {
                    format!("{job}#{seq} is {status}, but processes {pids:?} of its group {pgid} are alive")
                })
            })
            .collect::<Vec<String>>()
    };
    let found = find();
    if found.is_empty() {
        return found;
    }
    std::thread::sleep(Duration::from_millis(500));
    find()
}

/// Every process that has not ended, by process group.
fn live_groups() -> BTreeMap<i64, Vec<i64>> {
    let mut groups: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let live = fields
            .first()
            .is_some_and(|state| *state != "Z" && *state != "X");
        if let (true, Some(pgrp)) = (live, fields.get(2).and_then(|f| f.parse().ok())) {
            groups.entry(pgrp).or_default().push(pid);
        }
    }
    groups
}

fn log_tail(home: &TestHome) -> String {
    let log = std::fs::read_to_string(home.path().join("scheduler.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[test]
fn fifty_jobs_survive_repeated_kill_9() {
    let cycles: u32 = std::env::var("JOBS_TORTURE_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CYCLES);
    let seed: u64 = std::env::var("JOBS_TORTURE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("torture: seed {seed} (JOBS_TORTURE_SEED repeats this run)");
    let mut rng = Rng(seed | 1);
    let home = TestHome::new();
    std::fs::write(home.path().join("config.yaml"), GROUP_CONFIG).expect("write config.yaml");
    for index in 0..JOBS {
        home.spec(&format!("t{index:02}.yaml"), spec(index));
    }
    home.spec("t50.yaml", DOWNSTREAM);
    let mut violations: Vec<String> = Vec::new();
    let (mut plain_kills, mut fault_kills, mut patience_kills) = (0, 0, 0);
    let began = Instant::now();
    for cycle in 0..cycles {
        // Odd cycles arm the fault points (debug builds only; in a release build they never strike and
        // the cycle ends by an ordinary kill after FAULT_PATIENCE).
        let armed = cfg!(debug_assertions) && cycle % 2 == 1;
        let mut scheduler = start(&home, armed.then(|| rng.next()));
        // The start settles the runs the last kill left in flight: none of their processes may remain.
        if started(&home, &mut scheduler) {
            for offender in processes_of_settled_runs(&home) {
                violations.push(format!("cycle {cycle}: {offender}"));
            }
        }
        if armed {
            let deadline = Instant::now() + FAULT_PATIENCE;
            while Instant::now() < deadline && scheduler.try_wait().expect("poll").is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            match scheduler.try_wait().expect("poll") {
                Some(status) => {
                    use std::os::unix::process::ExitStatusExt;
                    if status.signal() == Some(9) {
                        fault_kills += 1;
                    } else {
                        violations.push(format!(
                            "cycle {cycle}: the scheduler ended by itself with {status}, not at a fault point; log:\n{}",
                            log_tail(&home)
                        ));
                    }
                }
                None => {
                    scheduler.kill().expect("kill -9");
                    scheduler.wait().expect("reap");
                    patience_kills += 1;
                }
            }
        } else {
            std::thread::sleep(Duration::from_millis(rng.between(300, 2500)));
            if let Some(status) = scheduler.try_wait().expect("poll") {
                violations.push(format!(
                    "cycle {cycle}: the scheduler exited early with {status}; log:\n{}",
                    log_tail(&home)
                ));
            } else {
                scheduler.kill().expect("kill -9");
                scheduler.wait().expect("reap");
                plain_kills += 1;
            }
        }
    }

    // One clean start: it reconciles what the last kill left, runs for a while, and stops on SIGTERM.
    let mut scheduler = start(&home, None);
    if started(&home, &mut scheduler) {
        for offender in processes_of_settled_runs(&home) {
            violations.push(format!("after the clean start: {offender}"));
        }
    }
    std::thread::sleep(Duration::from_millis(2000));
    assert!(
        matches!(scheduler.try_wait(), Ok(None)),
        "the clean scheduler is running; log:\n{}",
        log_tail(&home)
    );
    let pid = Pid::from_raw(i32::try_from(scheduler.id()).expect("pid")).expect("pid");
    kill_process(pid, Signal::TERM).expect("SIGTERM");
    let status = wait_exit(&mut scheduler, 30);
    if status.code() != Some(0) {
        violations.push(format!(
            "the clean scheduler exited with {status} on SIGTERM; log:\n{}",
            log_tail(&home)
        ));
    }
    assert!(!process_alive(pid.as_raw_nonzero().get()));

    for offender in processes_of_settled_runs(&home) {
        violations.push(format!("after the clean stop: {offender}"));
    }
    let report = check(&home, &mut violations);
    let notified = check_notifications(&home, &mut violations);
    println!(
        "torture: {cycles} cycles survived in {:.1} s, {} runs ({}), {plain_kills} plain kills, {fault_kills} kills at fault points, {patience_kills} armed cycles ended by a plain kill, {} directories without a row after the final start, {notified} notifications delivered, violations: {}",
        began.elapsed().as_secs_f64(),
        report.runs,
        report.by_status,
        report.leftover_dirs,
        violations.len()
    );
    assert!(
        violations.is_empty(),
        "{} violations (seed {seed}):\n{}",
        violations.len(),
        violations.join("\n")
    );
}

/// Each fault point on its own, struck on its first pass by a manual run: what is left must be set
/// right by the next command that reads runs (or, for a claim that never committed, by `prune`), to
/// the outcome the run really had.
#[cfg(debug_assertions)]
#[test]
fn each_fault_point_is_set_right_by_the_next_command() {
    use std::os::unix::process::ExitStatusExt;
    // The point, and how the run must be recorded after it (None: no run was recorded at all).
    let cases = [
        ("claim-before-commit", None),
        ("event-torn", Some("interrupted")),
        ("receipt-before-rename", Some("interrupted")),
        ("finish-before-commit", Some("succeeded")),
        ("finish-after-commit", Some("succeeded")),
    ];
    let mut violations = Vec::new();
    for (point, expected) in cases {
        let home = TestHome::new();
        home.spec("f.yaml", "id: f\nrun:\n  shell: \"echo hi\"\n");
        let status = home
            .command(&["run", "f"])
            .env("JOBS_FAULT", format!("{point}=1"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run jobs");
        assert_eq!(status.signal(), Some(9), "{point}: the run dies there");
        let (history, code) = home.json(&["history", "f"]);
        assert_eq!(code, 0, "{point}: {history}");
        let Some(expected) = expected else {
            assert_eq!(history["data"]["total"], 0, "{point}: nothing recorded");
            assert!(
                home.run_dir("f", 1).exists(),
                "{point}: the claim's directory is left"
            );
            let (pruned, code) = home.json(&["prune"]);
            assert_eq!(code, 0, "{point}: {pruned}");
            assert_eq!(pruned["data"]["orphans"], 1, "{point}: {pruned}");
            assert!(!home.run_dir("f", 1).exists(), "{point}: prune removes it");
            let outcome = home.run(&["run", "f"]);
            assert_eq!(
                outcome.code, 0,
                "{point}: the next run works: {}",
                outcome.stderr
            );
            continue;
        };
        let status = history["data"]["entries"][0]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(status, expected, "{point}: {history}");
        check_artifacts(&home, "f", 1, &status, &mut violations);
        if !home.run_dir("f", 1).join("summary.md").exists() {
            violations.push(format!("{point}: no summary.md"));
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

struct Report {
    runs: i64,
    by_status: String,
    leftover_dirs: usize,
}

/// Checks every invariant over what the cycles left, adding what breaks to `violations`.
fn check(home: &TestHome, violations: &mut Vec<String>) -> Report {
    let db = home.db();
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check");
    if integrity != "ok" {
        violations.push(format!("PRAGMA integrity_check: {integrity}"));
    }

    let mut statement = db
        .prepare(
            "SELECT job_id, slot, COUNT(*) FROM runs WHERE slot IS NOT NULL
             GROUP BY job_id, slot HAVING COUNT(*) > 1",
        )
        .expect("prepare");
    let doubles: Vec<(String, i64, i64)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    for (job, slot, count) in doubles {
        violations.push(format!("{job}: slot {slot} has {count} records"));
    }

    // No instant with more runs of the group in flight than its one place: the runs' recorded
    // lives (from the spawn to the recorded end, which for a killed owner's run is when the next
    // start settled it, after its processes were stopped) never overlap.
    let mut statement = db
        .prepare(
            "SELECT job_id, seq, started_at, finished_at FROM runs
             WHERE run_group = 'tg' AND started_at IS NOT NULL ORDER BY started_at, job_id, seq",
        )
        .expect("prepare");
    let lives: Vec<(String, i64, i64, Option<i64>)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    for pair in lives.windows(2) {
        let ((a, a_seq, _, a_end), (b, b_seq, b_start, _)) = (&pair[0], &pair[1]);
        if a_end.is_none_or(|end| end > *b_start) {
            violations.push(format!(
                "group tg over its limit: {a}#{a_seq} (ended {a_end:?}) still in flight when {b}#{b_seq} started at {b_start}"
            ));
        }
    }
    let grouped_runs = lives.len();

    // The chain: every success of t00 owes t50 exactly one run, written with the end, whatever
    // the kills; nothing else owes one; each owed run taken became exactly one record of t50; t50
    // has no run that nothing owed.
    for (what, sql) in [
        (
            "a success of t00 without exactly one decision for t50",
            "SELECT COUNT(*) FROM runs u WHERE u.job_id = 't00' AND u.status = 'succeeded'
             AND (SELECT COUNT(*) FROM triggers t WHERE t.job_id = 't50' AND t.upstream_job = 't00'
                  AND t.upstream_seq = u.seq) != 1",
        ),
        (
            "a trigger of t50 by a run of t00 that did not succeed",
            "SELECT COUNT(*) FROM triggers t WHERE t.job_id = 't50' AND NOT EXISTS (
                 SELECT 1 FROM runs u WHERE u.job_id = 't00' AND u.seq = t.upstream_seq
                 AND u.status = 'succeeded')",
        ),
        (
            "a taken trigger without exactly one record of t50",
            "SELECT COUNT(*) FROM triggers t WHERE t.job_id = 't50' AND t.state = 'taken'
             AND (SELECT COUNT(*) FROM runs d WHERE d.job_id = 't50'
                  AND d.upstream = 't00#' || t.upstream_seq) != 1",
        ),
        (
            "a run of t50 that no trigger owed",
            "SELECT COUNT(*) FROM runs d WHERE d.job_id = 't50' AND NOT EXISTS (
                 SELECT 1 FROM triggers t WHERE t.job_id = 't50'
                 AND d.upstream = 't00#' || t.upstream_seq)",
        ),
    ] {
        let found: i64 = db
            .query_row(sql, [], |r| r.get(0))
            .expect("the chain check");
        if found > 0 {
            violations.push(format!("{what}: {found}"));
        }
    }

    let mut statement = db
        .prepare("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status")
        .expect("prepare");
    let statuses: Vec<(String, i64)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    for (status, count) in &statuses {
        if !TERMINAL.contains(&status.as_str()) {
            violations.push(format!(
                "{count} run(s) still {status} after a clean stop (no owner is alive)"
            ));
        }
    }
    let runs: i64 = statuses.iter().map(|(_, n)| n).sum();
    let by_status = statuses
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    assert!(
        statuses.iter().any(|(s, n)| s == "succeeded" && *n > 0),
        "the scheduler made progress at all: {by_status}"
    );
    assert!(grouped_runs > 0, "the group's jobs ran at all");
    let chained: i64 = db
        .query_row("SELECT COUNT(*) FROM runs WHERE job_id = 't50'", [], |r| {
            r.get(0)
        })
        .expect("count the chain's runs");
    assert!(chained > 0, "the chain's downstream ran at all");

    // Rows with a run directory, with the status the store gives them.
    let mut statement = db
        .prepare("SELECT job_id, seq, status, run_dir FROM runs WHERE run_dir IS NOT NULL")
        .expect("prepare");
    let rows: BTreeMap<(String, i64), (String, String)> = statement
        .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, r.get(3)?))))
        .expect("query")
        .map(|row| row.expect("row"))
        .collect();

    // A claim killed before its commit leaves a directory without a row; the next scheduler start
    // moves it to `runs/<job>/.orphaned/` (not a number, so `run_dirs` does not count it), so after
    // the final clean start there must be none left among the run directories.
    let leftovers: BTreeSet<(String, i64)> = run_dirs(home)
        .difference(&rows.keys().cloned().collect())
        .cloned()
        .collect();
    let (pruned, code) = home.json(&["prune", "--dry-run"]);
    assert_eq!(code, 0, "prune --dry-run: {pruned}");
    let orphans: BTreeSet<String> = pruned["data"]["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|job| job["orphans"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    let expected: BTreeSet<String> = leftovers
        .iter()
        .map(|(job, seq)| format!("runs/{job}/{seq}"))
        .collect();
    if !expected.is_empty() {
        violations.push(format!(
            "directories without a row after a clean restart: {expected:?}"
        ));
    }
    if orphans != expected {
        violations.push(format!(
            "prune --dry-run finds {orphans:?} as leftover directories; without a row are {expected:?}"
        ));
    }
    if pruned["data"]["runs"] != 0 {
        violations.push(format!(
            "prune would delete runs without retention: {pruned}"
        ));
    }
    let outcome = home.run(&["prune"]);
    assert_eq!(outcome.code, 0, "prune: {}", outcome.stderr);
    let dirs = run_dirs(home);
    for (job, seq) in dirs.iter().filter(|key| !rows.contains_key(*key)) {
        violations.push(format!("runs/{job}/{seq} has no row, even after prune"));
    }
    for ((job, seq), (status, run_dir)) in &rows {
        if run_dir != &format!("runs/{job}/{seq}") {
            violations.push(format!("{job}#{seq}: run_dir is {run_dir}"));
        }
        if !dirs.contains(&(job.clone(), *seq)) {
            violations.push(format!("{job}#{seq} ({status}) has no run directory"));
            continue;
        }
        check_artifacts(home, job, *seq, status, violations);
    }
    for job in 0..JOBS {
        check_scheduler_log(home, &format!("t{job:02}"), violations);
    }
    Report {
        runs,
        by_status,
        leftover_dirs: leftovers.len(),
    }
}

/// The kinds of job that notify (see [`spec`]), and the run statuses they are told of by default.
const NOTIFYING: [usize; 2] = [2, 3];
const TOLD: [&str; 4] = ["failed", "timed_out", "interrupted", "missed"];

/// Every notification the kills could have lost: each run of a notifying job that ended in a status
/// its notifier hears owes exactly one notification, written with the end it reports; once a last
/// scheduler (with every job disabled, so that it owes nothing new) has drained the outbox, every
/// one is delivered, and its delivery id reached the command at least once. Returns how many.
fn check_notifications(home: &TestHome, violations: &mut Vec<String>) -> usize {
    let db = home.db();
    let mut statement = db
        .prepare(
            "SELECT r.job_id, r.seq, r.status, COUNT(n.delivery_id), COALESCE(MAX(n.event), '')
             FROM runs r LEFT JOIN notifications n ON n.job_id = r.job_id AND n.seq = r.seq
             GROUP BY r.job_id, r.seq",
        )
        .expect("prepare");
    let runs: Vec<(String, i64, String, i64, String)> = statement
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    for (job, seq, status, owed, event) in &runs {
        let index: usize = job[1..].parse().expect("a torture job id");
        let told = NOTIFYING.contains(&(index % 5)) && TOLD.contains(&status.as_str());
        match (told, owed) {
            (true, 1) if event == status => {}
            (false, 0) => {}
            _ => violations.push(format!(
                "{job}#{seq} ({status}) owes {owed} notification(s) (event {event:?}); expected {}",
                u8::from(told)
            )),
        }
    }
    drop(statement);
    drop(db);

    for index in 0..JOBS {
        let outcome = home.run(&["disable", &format!("t{index:02}")]);
        assert_eq!(outcome.code, 0, "disable: {}", outcome.stderr);
    }
    let pending = || home.count("SELECT COUNT(*) FROM notifications WHERE state = 'pending'");
    let mut scheduler = start(home, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while pending() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = Pid::from_raw(i32::try_from(scheduler.id()).expect("pid")).expect("pid");
    kill_process(pid, Signal::TERM).expect("SIGTERM");
    wait_exit(&mut scheduler, 30);

    let sent: BTreeSet<String> = std::fs::read_to_string(home.path().join("notified.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    let db = home.db();
    let mut statement = db
        .prepare("SELECT delivery_id, state, job_id, seq FROM notifications")
        .expect("prepare");
    let rows: Vec<(String, String, String, i64)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    for (id, state, job, seq) in &rows {
        if state != "delivered" {
            violations.push(format!(
                "{job}#{seq}: notification {id} is {state} after the outbox was drained"
            ));
        }
        if !sent.contains(id) {
            violations.push(format!(
                "{job}#{seq}: notification {id} never reached its command"
            ));
        }
    }
    let known: BTreeSet<&String> = rows.iter().map(|(id, ..)| id).collect();
    for id in sent.iter().filter(|id| !known.contains(id)) {
        violations.push(format!("the command got {id}, which no notification has"));
    }
    rows.len()
}

/// Every `runs/<job>/<seq>/` directory.
fn run_dirs(home: &TestHome) -> BTreeSet<(String, i64)> {
    let mut dirs = BTreeSet::new();
    for job in std::fs::read_dir(home.path().join("runs"))
        .expect("runs/")
        .flatten()
    {
        if !job.path().is_dir() {
            continue;
        }
        let name = job.file_name().to_string_lossy().into_owned();
        for run in std::fs::read_dir(job.path()).expect("job dir").flatten() {
            if let Ok(seq) = run.file_name().to_string_lossy().parse::<i64>() {
                dirs.insert((name.clone(), seq));
            }
        }
    }
    dirs
}

/// The receipt validates and agrees with the store; the events are whole lines, valid, with `seq`
/// strictly increasing, and a finished run's last event says how it ended, as the store does.
fn check_artifacts(home: &TestHome, job: &str, seq: i64, status: &str, out: &mut Vec<String>) {
    let dir = home.run_dir(job, seq);
    let name = format!("{job}#{seq} ({status})");
    let receipt_validator = schema("run_receipt");
    match std::fs::read(dir.join("run_receipt.json")) {
        Err(e) => out.push(format!("{name}: no receipt: {e}")),
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Err(e) => out.push(format!("{name}: receipt is not JSON: {e}")),
            Ok(receipt) => {
                let errors: Vec<String> = receipt_validator
                    .iter_errors(&receipt)
                    .map(|e| format!("{e} at {}", e.instance_path()))
                    .collect();
                if !errors.is_empty() {
                    out.push(format!("{name}: receipt breaks its schema: {errors:?}"));
                }
                if receipt["status"] != status {
                    out.push(format!(
                        "{name}: the receipt says {}, the store {status}",
                        receipt["status"]
                    ));
                }
                check_times(home, job, seq, &receipt, &name, out);
            }
        },
    }
    let events = check_event_lines(&dir.join("events.jsonl"), &name, false, out);
    let finished: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "run_finished")
        .collect();
    match finished.as_slice() {
        [] => out.push(format!("{name}: no run_finished event")),
        [only] => {
            if only["status"] != status {
                out.push(format!(
                    "{name}: run_finished says {}, the store {status}",
                    only["status"]
                ));
            }
            if events.last().map(|e| &e["type"]) != Some(&Value::from("run_finished")) {
                out.push(format!("{name}: events follow run_finished"));
            }
        }
        more => out.push(format!("{name}: {} run_finished events", more.len())),
    }
}

/// Every time the store keeps for a run is the one its receipt says, to the millisecond: its slot and
/// due time, when it was claimed, when its command started (neither has one if it never started) and
/// when it ended.
fn check_times(
    home: &TestHome,
    job: &str,
    seq: i64,
    receipt: &Value,
    name: &str,
    out: &mut Vec<String>,
) {
    let row: (i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>) = home
        .db()
        .query_row(
            "SELECT claimed_at, started_at, finished_at, slot, due_at FROM runs WHERE job_id = ?1 AND seq = ?2",
            rusqlite::params![job, seq],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .expect("the run's row");
    let at = |field: &str| {
        receipt[field].as_str().map(|text| {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| t.timestamp_millis())
                .unwrap_or(i64::MIN)
        })
    };
    for (field, store) in [
        ("claimed_at", Some(row.0)),
        ("started_at", row.1),
        ("finished_at", row.2),
        ("slot", row.3),
        ("due_at", row.4),
    ] {
        if at(field) != store {
            out.push(format!(
                "{name}: the receipt's {field} is {:?}, the store's {store:?}",
                at(field)
            ));
        }
    }
    if let (Some(started), Some(finished)) = (row.1, row.2)
        && finished < started
    {
        out.push(format!(
            "{name}: finished {} ms before it started",
            started - finished
        ));
    }
}

/// A job's `scheduler.jsonl` follows the same rules, but its last line may be torn: it is cut off by
/// the next append, and readers hold it back until then.
fn check_scheduler_log(home: &TestHome, job: &str, out: &mut Vec<String>) {
    let path = home.path().join("runs").join(job).join("scheduler.jsonl");
    if path.exists() {
        check_event_lines(&path, &format!("{job} scheduler.jsonl"), true, out);
    }
}

fn check_event_lines(
    path: &Path,
    name: &str,
    torn_tail_allowed: bool,
    out: &mut Vec<String>,
) -> Vec<Value> {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            out.push(format!("{name}: no events.jsonl: {e}"));
            return Vec::new();
        }
    };
    let validator = schema("event");
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    if lines.last().is_some_and(|l| !l.ends_with('\n')) {
        let torn = lines.pop().unwrap_or_default();
        if !torn_tail_allowed {
            out.push(format!("{name}: torn last line left unrepaired: {torn:?}"));
        }
    }
    let mut events = Vec::new();
    let mut last_seq = 0;
    for (index, line) in lines.iter().enumerate() {
        let event: Value = match serde_json::from_str(line) {
            Ok(event) => event,
            Err(e) => {
                out.push(format!(
                    "{name}: line {} is not JSON ({e}): {line:?}",
                    index + 1
                ));
                continue;
            }
        };
        let errors: Vec<String> = validator
            .iter_errors(&event)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        if !errors.is_empty() {
            out.push(format!(
                "{name}: line {} breaks the event schema: {errors:?}",
                index + 1
            ));
        }
        let seq = event["seq"].as_u64().unwrap_or(0);
        if seq <= last_seq {
            out.push(format!("{name}: seq {seq} after {last_seq}"));
        }
        last_seq = seq;
        events.push(event);
    }
    events
}

/// A claim killed before its commit leaves a run directory with no row; the next scheduler start
/// sets it aside under `runs/<job>/.orphaned/` (never deleting what may be a real run's output), keeps
/// its number taken, and `jobsctl prune` removes it.
#[cfg(debug_assertions)]
#[test]
fn the_next_scheduler_start_sets_aside_a_claim_that_never_committed() {
    use std::os::unix::process::ExitStatusExt;
    let home = TestHome::new();
    home.spec("f.yaml", "id: f\nrun:\n  shell: \"echo hi\"\n");
    let status = home
        .command(&["run", "f"])
        .env("JOBS_FAULT", "claim-before-commit=1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run jobs");
    assert_eq!(status.signal(), Some(9), "the claim dies before its commit");
    assert!(
        home.run_dir("f", 1).exists(),
        "the claim's directory is left"
    );
    let scheduler = common::start_scheduler(&home, &[]);
    wait_until("the scheduler to start", 10, || {
        log_tail(&home).contains("scheduler started")
    });
    assert_eq!(common::stop(scheduler), 0);
    assert!(
        !home.run_dir("f", 1).exists() && home.path().join("runs/f/.orphaned/1").is_dir(),
        "set aside at start; log:\n{}",
        log_tail(&home)
    );
    assert!(log_tail(&home).contains("has no record of"));
    assert_eq!(home.run(&["run", "f"]).code, 0);
    assert_eq!(home.run_row("f", 2).0, "succeeded", "number 1 stays taken");
    let (pruned, code) = home.json(&["prune"]);
    assert_eq!(
        (code, &pruned["data"]["set_aside"]),
        (0, &serde_json::json!(1)),
        "{pruned}"
    );
    assert!(!home.path().join("runs/f/.orphaned/1").exists());
}
