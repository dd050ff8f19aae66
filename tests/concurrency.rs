//! Client concurrency: while a scheduler runs 50 jobs due every second or two, 8 client threads each
//! start the real binary again and again with random commands (runs, detached runs, lifecycle changes,
//! history, status, prune). Every command must end as documented for its situation, never with a
//! locked or failing store or a panic, and afterwards every job's operator state is the one its last
//! lifecycle command set.
//!
//! `JOBS_CONCURRENCY_SECS` sets how long the clients run (a short run by default, so that `cargo test`
//! stays quick; `just torture` runs 60 s). `JOBS_CONCURRENCY_SEED` repeats the choice of commands.

#![expect(
    clippy::expect_used,
    reason = "a test helper that cannot set up must fail the test loudly"
)]

#[expect(
    dead_code,
    reason = "the concurrency test needs only part of the shared builder"
)]
#[path = "cli/common.rs"]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use serde_json::Value;

use common::{SchedulerStart, TestHome, wait_exit, wait_until};

const JOBS: usize = 50;
const CLIENTS: usize = 8;
const DEFAULT_SECS: u64 = 8;
/// A command that has not ended by then is stuck: that is a violation, and the process is killed.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// xorshift64*: enough to pick commands repeatably, without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn job_id(index: usize) -> String {
    format!("c{index:02}")
}

/// Four kinds of job: quick successes, successes with retention (so that prune deletes while others
/// read), a slow job with one instance (so manual runs meet `max_instances_reached`), and a failing job
/// every other second (so manual runs end in `run_failed`).
fn spec(index: usize) -> String {
    let id = job_id(index);
    let every = if index % 4 == 3 {
        "*/2 * * * * *"
    } else {
        "* * * * * *"
    };
    let body = match index % 4 {
        0 => "run:\n  command: [\"true\"]\n",
        1 => "run:\n  shell: \"echo hello\"\nretention:\n  keep_last: 3\n",
        2 => "run:\n  shell: \"sleep 0.4\"\npolicy:\n  max_instances: 1\n",
        _ => "run:\n  shell: \"echo broken >&2; exit 1\"\n",
    };
    format!("id: {id}\nschedule:\n  cron: \"{every}\"\n  timezone: UTC\n{body}")
}

/// A lifecycle command and the operator state it leaves the job in (`resume` only when it was paused).
const LIFECYCLE: [(&str, &str); 5] = [
    ("pause", "paused"),
    ("resume", "active"),
    ("disable", "disabled"),
    ("enable", "active"),
    ("resume --catchup latest", "active"),
];

/// What one command did.
struct Done {
    command: String,
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `jobsctl --json <args>` in the home, killing it if it runs past COMMAND_LIMIT.
fn jobs(home: &TestHome, args: &[&str]) -> Result<Done, String> {
    let mut with_json = vec!["--json"];
    with_json.extend_from_slice(args);
    let command = args.join(" ");
    let mut child = home
        .command(&with_json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn jobs");
    // Read both pipes on their own threads so that a chatty command never blocks on a full pipe.
    let mut stdout_pipe = child.stdout.take().expect("stdout");
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let stdout = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout_pipe.read_to_string(&mut text);
        text
    });
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + COMMAND_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("`{command}` did not end within {COMMAND_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(Done {
        command,
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// The error code `--json` reported (`ok` for success), or why the output is not acceptable at all.
fn judge(done: &Done, allowed: &[(&str, i32)]) -> Result<String, String> {
    let context = || {
        format!(
            "`{}` exited {}\nstdout: {}\nstderr: {}",
            done.command, done.code, done.stdout, done.stderr
        )
    };
    for forbidden in [
        "database is locked",
        "panicked",
        "store_error",
        "SQLITE_BUSY",
    ] {
        if done.stdout.contains(forbidden) || done.stderr.contains(forbidden) {
            return Err(format!("{forbidden}: {}", context()));
        }
    }
    let report: Value = serde_json::from_str(&done.stdout)
        .map_err(|e| format!("stdout is not one JSON document ({e}): {}", context()))?;
    let code = if report["ok"] == true {
        if done.code != 0 {
            return Err(format!("ok but a non-zero exit: {}", context()));
        }
        "ok".to_owned()
    } else {
        report["error"]["code"]
            .as_str()
            .ok_or_else(|| format!("neither ok nor an error code: {}", context()))?
            .to_owned()
    };
    if code == "ok" || allowed.contains(&(code.as_str(), done.code)) {
        Ok(code)
    } else {
        Err(format!("{code} is not expected here: {}", context()))
    }
}

/// Outcomes a `run` may have besides success while the job's state and its other runs change under it.
const RUN_OUTCOMES: [(&str, i32); 3] = [
    ("run_failed", 1),
    ("job_disabled", 5),
    ("max_instances_reached", 5),
];

struct Tally {
    by_code: BTreeMap<String, u64>,
    violations: Vec<String>,
    /// Per job, the state its last successful lifecycle command set.
    expected: HashMap<String, &'static str>,
}

fn client(home: &TestHome, index: usize, seed: u64, until: Instant, tally: &Mutex<Tally>) {
    let mut rng = Rng((seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
    // This client's own jobs: only it changes their state, so "the last command" is well defined.
    let own: Vec<usize> = (0..JOBS).filter(|j| j % CLIENTS == index).collect();
    while Instant::now() < until {
        let any = job_id(rng.below(JOBS));
        let mine = job_id(own[rng.below(own.len())]);
        let mut lifecycle = None;
        let args: Vec<String> = match rng.below(20) {
            0..=3 => vec!["run".into(), any],
            4..=5 => vec!["run".into(), "--detach".into(), any],
            6 => vec!["run".into(), "--force".into(), any],
            7..=11 => {
                let (words, state) = LIFECYCLE[rng.below(LIFECYCLE.len())];
                lifecycle = Some((mine.clone(), state));
                let mut args: Vec<String> = words.split(' ').map(str::to_owned).collect();
                args.insert(1, mine);
                args
            }
            12..=13 => vec!["history".into(), any, "-n".into(), "5".into()],
            14 => vec!["history".into()],
            15..=16 => vec!["status".into()],
            17 => vec!["prune".into()],
            18 => vec!["show".into(), any],
            _ => vec!["list".into()],
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let allowed: &[(&str, i32)] = if args[0] == "run" { &RUN_OUTCOMES } else { &[] };
        let verdict = jobs(home, &args).and_then(|done| judge(&done, allowed));
        let mut tally = tally.lock().expect("tally");
        match verdict {
            Ok(code) => {
                if code == "ok"
                    && let Some((job, state)) = lifecycle
                {
                    // Resuming a job that is not paused changes nothing (a disabled job stays so).
                    let before = tally.expected.get(&job).copied().unwrap_or("active");
                    let state = if args[0] == "resume" && before != "paused" {
                        before
                    } else {
                        state
                    };
                    tally.expected.insert(job, state);
                }
                *tally.by_code.entry(code).or_default() += 1;
            }
            Err(violation) => {
                *tally.by_code.entry("violation".into()).or_default() += 1;
                tally.violations.push(violation);
            }
        }
    }
}

#[test]
fn eight_clients_and_the_scheduler_share_a_home() {
    let secs: u64 = std::env::var("JOBS_CONCURRENCY_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SECS);
    let seed: u64 = std::env::var("JOBS_CONCURRENCY_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("concurrency: seed {seed} (JOBS_CONCURRENCY_SEED repeats the choice of commands)");
    let home = Arc::new(TestHome::new());
    for index in 0..JOBS {
        home.spec(&format!("{}.yaml", job_id(index)), spec(index));
    }
    let mut scheduler = SchedulerStart::new(home.path()).grace("2s").start();
    wait_until("the scheduler to run jobs", 20, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'") >= 1
    });

    let tally = Arc::new(Mutex::new(Tally {
        by_code: BTreeMap::new(),
        violations: Vec::new(),
        expected: HashMap::new(),
    }));
    let until = Instant::now() + Duration::from_secs(secs);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|index| {
            let (home, tally) = (Arc::clone(&home), Arc::clone(&tally));
            std::thread::spawn(move || client(&home, index, seed, until, &tally))
        })
        .collect();
    for client in clients {
        client.join().expect("a client thread panicked");
    }
    let mut tally = Arc::try_unwrap(tally)
        .ok()
        .expect("clients are done")
        .into_inner()
        .expect("tally");

    assert!(
        matches!(scheduler.try_wait(), Ok(None)),
        "the scheduler kept running; log:\n{}",
        std::fs::read_to_string(home.path().join("scheduler.log")).unwrap_or_default()
    );
    let pid = Pid::from_raw(i32::try_from(scheduler.id()).expect("pid")).expect("pid");
    kill_process(pid, Signal::TERM).expect("SIGTERM");
    let status = wait_exit(&mut scheduler, 30);
    if status.code() != Some(0) {
        tally
            .violations
            .push(format!("the scheduler exited with {status} on SIGTERM"));
    }
    // Detached runs live in processes of their own; they end soon after (their commands are short).
    wait_until("detached runs to end", 30, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status IN ('queued', 'running')") == 0
    });

    // Every job's operator state is what its last lifecycle command set (active if none succeeded).
    let mut checked = 0;
    for index in 0..JOBS {
        let id = job_id(index);
        let (show, code) = home.json(&["show", &id]);
        assert_eq!(code, 0, "show {id}: {show}");
        let state = &show["data"]["operator_state"]["state"];
        let expected = tally.expected.get(&id).copied().unwrap_or("active");
        if state != expected {
            tally.violations.push(format!(
                "{id}: operator state {state}, but its last lifecycle command set {expected}"
            ));
        }
        checked += 1;
    }
    let (list, code) = home.json(&["list"]);
    assert_eq!(code, 0, "list: {list}");
    assert_eq!(list["data"]["total"], JOBS, "list shows every job");
    let doubles = home.count(
        "SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE slot IS NOT NULL GROUP BY job_id, slot HAVING COUNT(*) > 1)",
    );
    if doubles > 0 {
        tally
            .violations
            .push(format!("{doubles} (job, slot) pairs have two records"));
    }
    let integrity: String = home
        .db()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check");
    if integrity != "ok" {
        tally
            .violations
            .push(format!("PRAGMA integrity_check: {integrity}"));
    }

    let issued: u64 = tally.by_code.values().sum();
    let by_code = tally
        .by_code
        .iter()
        .map(|(code, n)| format!("{code} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "concurrency: {issued} commands issued by {CLIENTS} clients in {secs} s ({by_code}); {} lifecycle states checked, {} jobs changed; {} runs recorded; violations: {}",
        checked,
        tally.expected.len(),
        home.count("SELECT COUNT(*) FROM runs"),
        tally.violations.len()
    );
    assert!(
        issued >= CLIENTS as u64,
        "the clients got commands through at all"
    );
    assert!(
        tally.violations.is_empty(),
        "{} violations (seed {seed}):\n{}",
        tally.violations.len(),
        tally.violations.join("\n\n")
    );
}
