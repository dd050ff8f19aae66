//! Security properties through the real binary: job ids never place anything outside `runs/`, run
//! directories and artifacts are owner-only whatever the umask, and env values never leave the spec
//! and the store (no artifact, log or command output shows them).

#![expect(
    clippy::expect_used,
    reason = "a test that cannot set up must fail loudly"
)]

#[path = "cli/common.rs"]
#[expect(
    dead_code,
    reason = "the shared builder has helpers these tests do not need"
)]
mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{Outcome, SchedulerStart, TestHome, stop, wait_until};

fn outcome_of(output: &std::process::Output) -> Outcome {
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `jobsctl --home <home> <args>` for a home that is not a `TestHome` (one nested in a directory the test
/// watches), optionally under a given umask.
fn jobs_cmd(home: &Path, umask: Option<&str>, args: &[&str]) -> std::process::Command {
    let bin = assert_cmd::cargo::cargo_bin("jobsctl");
    let mut command = match umask {
        Some(mask) => {
            let mut sh = std::process::Command::new("sh");
            sh.arg("-c")
                .arg(format!("umask {mask}; exec \"$0\" \"$@\""))
                .arg(bin);
            sh
        }
        None => std::process::Command::new(bin),
    };
    command
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("JOBS_HOME")
        .env("NO_COLOR", "1");
    command
}

fn jobs_at(home: &Path, umask: Option<&str>, args: &[&str]) -> Outcome {
    let output = jobs_cmd(home, umask, args).output().expect("run jobs");
    let outcome = outcome_of(&output);
    assert!(
        !outcome.stderr.contains("panicked") && outcome.code != 101 && outcome.code >= 0,
        "jobs {args:?} crashed (exit {}):\n{}",
        outcome.code,
        outcome.stderr
    );
    outcome
}

/// Every path under `dir` (symlinks not followed) with its kind, size and content.
fn snapshot(dir: &Path, skip: &Path) -> BTreeMap<PathBuf, (String, Vec<u8>)> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).expect("read dir").flatten() {
            let path = entry.path();
            if path == skip {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            let (kind, content) = if meta.is_dir() {
                stack.push(path.clone());
                ("dir".to_owned(), Vec::new())
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).expect("read link");
                (
                    "link".to_owned(),
                    target.into_os_string().into_encoded_bytes(),
                )
            } else {
                ("file".to_owned(), std::fs::read(&path).expect("read"))
            };
            found.insert(
                path,
                (format!("{kind} {:o}", meta.permissions().mode()), content),
            );
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------------
// Job ids never escape runs/
// ---------------------------------------------------------------------------------------------------

const ESCAPING_IDS: &[&str] = &[
    "../victim/pwn",
    "../../pwn",
    "..",
    ".",
    "a/../../victim",
    "ok/../../victim",
    "ok/../../../victim/x",
    "../home/jobs",
    "..\\victim",
    "victim\\0",
    "",
];

#[test]
fn hostile_ids_never_place_a_file_outside_runs() {
    let outer = tempfile::tempdir().expect("temp dir");
    let home = outer.path().join("home");
    let victim = outer.path().join("victim");
    std::fs::create_dir_all(home.join("jobs")).expect("jobs/");
    std::fs::create_dir_all(victim.join("1")).expect("victim/");
    std::fs::write(victim.join("1/data"), "keep").expect("victim file");
    let absolute = victim.join("abs").display().to_string();
    let mut ids: Vec<&str> = ESCAPING_IDS.to_vec();
    ids.push(&absolute);
    for (n, id) in ids.iter().enumerate() {
        let spec = format!(
            "id: \"{id}\"\nschedule:\n  cron: \"*/1 * * * * *\"\n  timezone: UTC\nrun:\n  command: [\"true\"]\n"
        );
        std::fs::write(home.join(format!("jobs/h{n}.yaml")), spec).expect("spec");
    }
    std::fs::write(
        home.join("jobs/ok.yaml"),
        "id: ok\nschedule:\n  cron: \"*/1 * * * * *\"\n  timezone: UTC\nrun:\n  command: [\"true\"]\n",
    )
    .expect("spec");
    // A spec file that is a link to a file outside is read, never written.
    std::os::unix::fs::symlink(victim.join("1/data"), home.join("jobs/linked.yaml")).expect("link");
    let before = snapshot(outer.path(), &home);

    let outcome = jobs_at(&home, None, &["--json", "validate"]);
    assert_eq!(outcome.code, 4, "{}", outcome.stdout);
    let report = outcome.json();
    for file in report["data"]["files"].as_array().expect("files") {
        let ok = file["path"] == "jobs/ok.yaml";
        assert_eq!(file["ok"], ok, "{file}");
    }
    let outcome = jobs_at(&home, None, &["run", "--all"]);
    assert_eq!(
        outcome.code, 0,
        "only ok runs: {}{}",
        outcome.stdout, outcome.stderr
    );
    jobs_at(&home, None, &["scheduler", "--dry-run"]);
    // Every command for a few ids; the cheap refusals stand for the others.
    for (n, id) in ids.iter().enumerate() {
        let all_commands = n % 4 == 0;
        for args in [
            &["run", id][..],
            &["run", "--force", id],
            &["run", "--detach", id],
            &["show", id],
            &["history", id],
            &["tail", id],
            &["tail", id, "--run", "1"],
            &["next", id],
            &["pause", id],
            &["resume", id],
            &["disable", id],
            &["enable", id],
            &["prune", id],
            &["replay", id, "--run", "1"],
        ] {
            if !all_commands && !matches!(args[0], "run" | "prune" | "replay") {
                continue;
            }
            let outcome = jobs_at(&home, None, args);
            assert!(
                [2, 3].contains(&outcome.code),
                "{args:?} is refused as usage or not found, got {}: {}{}",
                outcome.code,
                outcome.stdout,
                outcome.stderr
            );
        }
    }
    let scheduler = SchedulerStart::new(&home).start();
    let db = home.join("db/jobs.sqlite3");
    wait_until("a scheduled run of ok", 15, || {
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| {
                c.query_row(
                    "SELECT COUNT(*) FROM runs WHERE trigger = 'schedule' AND status = 'succeeded'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
            })
            .is_ok_and(|n| n >= 1)
    });
    assert_eq!(stop(scheduler), 0);
    jobs_at(&home, None, &["prune"]);

    assert_eq!(
        snapshot(outer.path(), &home),
        before,
        "nothing outside the home changed"
    );
    let mut top: Vec<String> = std::fs::read_dir(&home)
        .expect("home")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["db", "jobs", "runs", "scheduler.log"]);
    let under_runs: Vec<String> = std::fs::read_dir(home.join("runs"))
        .expect("runs")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(under_runs, ["ok"], "only the valid job has a run directory");
}

#[test]
fn prune_never_deletes_through_a_linked_job_directory() {
    let outer = tempfile::tempdir().expect("temp dir");
    let home = outer.path().join("home");
    let victim = outer.path().join("victim");
    std::fs::create_dir_all(home.join("jobs")).expect("jobs/");
    std::fs::create_dir_all(victim.join("7")).expect("victim/");
    std::fs::write(victim.join("7/data"), "keep").expect("victim file");
    std::fs::write(home.join("jobs/ghost.yaml"), common::manual_spec("ghost")).expect("spec");
    std::fs::write(home.join("jobs/ok.yaml"), common::manual_spec("ok")).expect("spec");
    assert_eq!(jobs_at(&home, None, &["run", "ok"]).code, 0);
    std::os::unix::fs::symlink(&victim, home.join("runs/ghost")).expect("link");
    let before = snapshot(outer.path(), &home);
    jobs_at(&home, None, &["prune"]);
    assert_eq!(
        snapshot(outer.path(), &home),
        before,
        "victim/7 is still there"
    );
}

// ---------------------------------------------------------------------------------------------------
// Owner-only permissions under a permissive umask
// ---------------------------------------------------------------------------------------------------

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// Every directory and file under `dir`, with its permission bits.
fn modes(dir: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut found = vec![(dir.to_owned(), true, mode(dir))];
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).expect("read dir").flatten() {
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir {
                stack.push(path.clone());
            }
            found.push((path.clone(), is_dir, mode(&path)));
        }
    }
    found
}

#[test]
fn run_directories_and_artifacts_are_owner_only_under_umask_000() {
    let home = TestHome::new();
    // The wrapper really hands umask 000 on.
    let probe = std::process::Command::new("sh")
        .args(["-c", "umask 000; exec \"$0\" \"$@\"", "sh", "-c", "umask"])
        .output()
        .expect("sh");
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "0000");

    home.spec(
        "perm.yaml",
        "id: perm\nrun:\n  shell: \"echo out; echo err >&2; exit 3\"\nretry:\n  max_attempts: 2\n  backoff: 50ms\n",
    );
    home.spec(
        "tick.yaml",
        "id: tick\nschedule:\n  cron: \"*/1 * * * * *\"\n  timezone: UTC\nrun:\n  shell: \"echo tick; sleep 1.5\"\npolicy:\n  overlap: skip\n",
    );
    // The scheduler is the first to touch the home, so it creates db/ and runs/ itself.
    let scheduler = SchedulerStart::new(home.path())
        .umask("000")
        .grace("2s")
        .start();
    wait_until("a finished tick and a skipped slot", 15, || {
        home.count("SELECT COUNT(*) FROM runs WHERE job_id = 'tick' AND status = 'succeeded'") >= 1
            && home.count("SELECT COUNT(*) FROM runs WHERE job_id = 'tick' AND status = 'skipped'")
                >= 1
    });
    assert_eq!(stop(scheduler), 0);
    let outcome = jobs_at(home.path(), Some("000"), &["run", "perm"]);
    assert_eq!(
        outcome.code, 1,
        "the job fails on purpose: {}",
        outcome.stderr
    );
    let outcome = jobs_at(home.path(), Some("000"), &["run", "--detach", "perm"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    wait_until("the detached run to finish", 15, || {
        home.count("SELECT COUNT(*) FROM runs WHERE job_id = 'perm' AND status = 'failed'") >= 2
    });

    assert!(
        home.path().join("runs/tick/scheduler.jsonl").exists(),
        "the skipped slot was logged"
    );
    let all = modes(&home.path().join("runs"));
    assert!(
        all.len() > 15,
        "runs, artifacts and logs were written: {all:?}"
    );
    for (path, is_dir, bits) in &all {
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*bits, want, "{} is {bits:o}, want {want:o}", path.display());
    }
    // The store keeps specs, env values included: it must be owner-only as well.
    for entry in std::fs::read_dir(home.path().join("db"))
        .expect("db")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("jobs.sqlite3") {
            assert_eq!(mode(&entry.path()), 0o600, "db/{name}");
        }
    }
}

#[test]
fn the_store_directory_is_owner_only_when_the_scheduler_creates_it() {
    let home = TestHome::new();
    home.spec("a.yaml", common::manual_spec("a"));
    let outcome = jobs_at(home.path(), Some("000"), &["scheduler", "--dry-run"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(mode(&home.path().join("db")), 0o700, "db/");
    assert_eq!(
        mode(&home.path().join("db/scheduler.lock")) & 0o077,
        0,
        "db/scheduler.lock"
    );
}

// ---------------------------------------------------------------------------------------------------
// Env values stay secret
// ---------------------------------------------------------------------------------------------------

const SECRET: &str = "s3cr3t-Zq8vX1";

fn contains_secret(bytes: &[u8]) -> bool {
    bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes())
}

/// Files under the home that may hold the secret by design: the specs, the store and its copy.
fn may_hold_the_secret(home: &Path, path: &Path) -> bool {
    let relative = path.strip_prefix(home).unwrap_or(path);
    relative.starts_with("jobs")
        || relative
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("jobs.sqlite3"))
        || relative == Path::new("backup.sqlite3")
}

#[test]
fn env_values_never_reach_an_artifact_a_log_or_any_output() {
    let home = TestHome::new();
    let every_second = "schedule:\n  cron: \"*/1 * * * * *\"\n  timezone: UTC\n";
    // The commands check that the value arrived (its length) without printing it.
    home.spec(
        "sec.yaml",
        format!(
            "id: sec\n{every_second}run:\n  shell: \"test ${{#APP_TOKEN}} -eq 13 && echo token-set\"\n  env:\n    APP_TOKEN: {SECRET}\n    OTHER: \"{SECRET}-2\"\n"
        ),
    );
    home.spec(
        "fails.yaml",
        format!(
            "id: fails\nrun:\n  shell: \"echo failing >&2; exit 3\"\n  env:\n    DB_PASSWORD: \"{SECRET}\"\nretry:\n  max_attempts: 2\n  backoff: 50ms\n"
        ),
    );
    home.spec(
        "slow.yaml",
        format!(
            "id: slow\nrun:\n  command: [\"sleep\", \"5\"]\n  timeout: 200ms\n  kill_grace: 100ms\n  env:\n    API_KEY: '{SECRET}'\n"
        ),
    );
    // Invalid specs whose problems sit right next to the value.
    home.spec(
        "torn.yaml",
        format!("id: torn\nrun:\n  command: [\"true\"]\n  env:\n    TOKEN: \"{SECRET}\n"),
    );
    home.spec(
        "typed.yaml",
        format!(
            "id: typed\nrun:\n  command: [\"true\"]\n  env:\n    TOKEN: [{SECRET}]\n    OTHER: {{ v: {SECRET} }}\n    BAD-NAME: {SECRET}\n"
        ),
    );
    home.spec(
        "reserved.yaml",
        format!("id: reserved\nrun:\n  command: [\"true\"]\n  env:\n    JOBS_TOKEN: {SECRET}\npolicy:\n  max_instances: 0\n"),
    );

    let mut outputs: Vec<(String, Outcome)> = Vec::new();
    let mut run = |args: &[&str]| {
        for json in [false, true] {
            let mut full = Vec::new();
            if json {
                full.push("--json");
            }
            full.extend_from_slice(args);
            let outcome = jobs_at(home.path(), None, &full);
            outputs.push((full.join(" "), outcome));
        }
    };
    run(&["validate"]);
    run(&["-v", "run", "sec", "fails", "slow"]);
    run(&["list"]);
    run(&["show", "sec"]);
    run(&["show", "typed"]);
    run(&["next", "sec"]);
    run(&["history"]);
    run(&["history", "sec"]);
    run(&["status"]);
    run(&["tail", "sec"]);
    run(&["tail", "fails", "--run", "1"]);
    run(&["replay", "sec", "--run", "1"]);
    run(&["scheduler", "--dry-run"]);
    run(&["prune", "--dry-run"]);

    // The scheduler, with verbose text logs and then JSON logs, while other commands look on.
    for format in ["text", "json"] {
        let scheduler = SchedulerStart::new(home.path())
            .global(&["-v"])
            .args(&["--log-format", format])
            .log(Some(&format!("scheduler-{format}.log")))
            .start();
        let before =
            home.count("SELECT COUNT(*) FROM runs WHERE job_id = 'sec' AND trigger = 'schedule'");
        wait_until("a scheduled run", 15, || {
            home.count(
                "SELECT COUNT(*) FROM runs WHERE job_id = 'sec' AND trigger = 'schedule' AND status = 'succeeded'",
            ) > before
        });
        run(&["status"]);
        run(&["tail", "sec"]);
        assert_eq!(stop(scheduler), 0);
    }
    run(&[
        "backup",
        &home.path().join("backup.sqlite3").display().to_string(),
    ]);

    // Positive controls: the value reached the commands, and the search finds it where it is kept.
    let receipt = home.receipt("sec", 1);
    assert_eq!(receipt["status"], "succeeded", "{receipt}");
    assert!(
        receipt["env_names"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n == "APP_TOKEN")),
        "names are recorded: {receipt}"
    );
    let log = std::fs::read_to_string(home.run_dir("sec", 1).join("stdout.log")).expect("log");
    assert_eq!(log, "token-set\n");
    assert!(contains_secret(
        &std::fs::read(home.jobs_dir().join("sec.yaml")).expect("spec")
    ));

    // The commands did their work (a refusal would print little worth searching).
    for (command, code) in [
        ("replay sec --run 1", 0),
        ("--json replay sec --run 1", 0),
        ("-v run sec fails slow", 1),
        ("show sec", 0),
        ("history", 0),
        ("tail sec", 0),
        ("scheduler --dry-run", 0),
    ] {
        let (_, outcome) = outputs
            .iter()
            .find(|(c, _)| c == command)
            .unwrap_or_else(|| panic!("`jobs {command}` ran"));
        assert_eq!(outcome.code, code, "jobs {command}: {}", outcome.stderr);
    }
    for (command, outcome) in &outputs {
        assert!(
            !contains_secret(outcome.stdout.as_bytes())
                && !contains_secret(outcome.stderr.as_bytes()),
            "`jobs {command}` printed the secret:\n{}\n{}",
            outcome.stdout,
            outcome.stderr
        );
    }
    let mut checked = 0;
    let mut stack = vec![home.path().to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else if !may_hold_the_secret(home.path(), &path) {
                let bytes = std::fs::read(&path).expect("read");
                assert!(
                    !contains_secret(&bytes),
                    "{} holds the secret",
                    path.display()
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked > 20,
        "receipts, summaries, events, logs were searched ({checked})"
    );
}
