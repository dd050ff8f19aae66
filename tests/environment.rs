//! The scheduler against a hostile environment: spec files others could have written (as root), a
//! full disk under `runs/`, and a wall clock that jumps. Some of these need root (mount) or Debian's
//! libfaketime; without them a test says so and passes, unless `JOBS_TEST_STRICT` is set (CI sets it),
//! in which case a missing capability fails the test rather than hiding it.

#![expect(
    clippy::expect_used,
    reason = "a test helper that cannot set up must fail the test loudly"
)]

#[path = "cli/common.rs"]
#[expect(
    dead_code,
    reason = "the shared builder has helpers these tests do not use"
)]
mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{TestHome, scheduler_log, start_scheduler, stop, wait_until};
use serde_json::Value;

fn strict() -> bool {
    std::env::var_os("JOBS_TEST_STRICT").is_some()
}

/// Skips the test (or fails it in strict mode) when a capability is missing. The test harness
/// captures `eprintln!` of a passing test, so a skip said that way is never seen; a write to the
/// stderr handle itself goes past the capture and shows beside the test's `ok`.
fn unavailable(what: &str) {
    assert!(!strict(), "{what}, and JOBS_TEST_STRICT is set");
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {what}");
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn every_second(id: &str, extra: &str) -> String {
    format!(
        "id: {id}\nschedule:\n  cron: \"* * * * * *\"\n  timezone: UTC\nrun:\n  command: [\"true\"]\n{extra}"
    )
}

fn integrity(home: &TestHome) -> String {
    home.db()
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity check")
}

fn assert_no_slot_twice(home: &TestHome) {
    let twice = home.count(
        "SELECT COUNT(*) FROM (SELECT job_id, slot FROM runs WHERE slot IS NOT NULL \
         GROUP BY job_id, slot HAVING COUNT(*) > 1)",
    );
    assert_eq!(twice, 0, "a (job, slot) has two runs");
}

#[test]
fn as_root_specs_others_could_write_are_refused() {
    if !is_root() {
        unavailable("not running as root");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let home = TestHome::new();
    home.spec("safe.yaml", common::manual_spec("safe"));
    home.spec("group.yaml", common::manual_spec("group"));
    home.spec("world.yaml", common::manual_spec("world"));
    home.spec("foreign.yaml", common::manual_spec("foreign"));
    let set_mode = |name: &str, mode: u32| {
        std::fs::set_permissions(
            home.jobs_dir().join(name),
            std::fs::Permissions::from_mode(mode),
        )
        .expect("chmod");
    };
    set_mode("safe.yaml", 0o644);
    set_mode("group.yaml", 0o664);
    set_mode("world.yaml", 0o646);
    std::os::unix::fs::chown(home.jobs_dir().join("foreign.yaml"), Some(65534), None)
        .expect("chown");

    let out = home.run(&["validate"]);
    assert_eq!(out.code, 4, "{out:?}");
    for (name, words) in [
        ("group.yaml", "writable by its group"),
        ("world.yaml", "writable by others"),
        ("foreign.yaml", "owned by uid 65534"),
    ] {
        let line = out
            .stdout
            .lines()
            .chain(out.stderr.lines())
            .find(|line| line.contains(name))
            .unwrap_or_else(|| panic!("no problem reported for {name}: {out:?}"));
        assert!(line.contains(":1:1:"), "a position: {line}");
        assert!(line.contains(words), "{line}");
    }
    let (json, _) = home.json(&["validate"]);
    let codes: Vec<&str> = json["data"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .flat_map(|f| f["problems"].as_array().into_iter().flatten())
        .filter_map(|p| p["code"].as_str())
        .collect();
    assert_eq!(codes, ["unsafe_permissions"; 3], "{json}");

    // The safe job still runs; the refused ones never run their command.
    assert_eq!(home.run(&["run", "safe"]).code, 0);
    let refused = home.run(&["run", "group"]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs WHERE job_id != 'safe'"),
        0
    );

    // Fixing the mode is enough.
    set_mode("group.yaml", 0o640);
    assert_eq!(home.run(&["run", "group"]).code, 0);
}

/// A size-limited tmpfs mounted over a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(at).expect("mount point");
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Self(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system under `dir` with one file until it refuses more bytes.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler");
    let block = vec![0u8; 64 * 1024];
    loop {
        if file.write_all(&block).is_err() {
            break;
        }
    }
    // Whatever a smaller write can still squeeze in, too.
    while file.write_all(&[0u8; 512]).is_ok() {}
    path
}

#[test]
fn a_full_disk_fails_runs_cleanly_and_the_scheduler_recovers_when_space_returns() {
    let home = TestHome::new();
    let runs = home.path().join("runs");
    let Some(_tmpfs) = Tmpfs::mount(&runs, "2m") else {
        unavailable("cannot mount a tmpfs here (needs root)");
        return;
    };
    home.spec("tick.yaml", every_second("tick", ""));
    let scheduler = start_scheduler(&home, &[]);
    wait_until("a first good run", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'") >= 1
    });

    let filler = fill(&runs);
    let full_since = home.count("SELECT COALESCE(MAX(seq), 0) FROM runs");
    wait_until("runs failing on the full disk", 15, || {
        home.count(&format!(
            "SELECT COUNT(*) FROM runs WHERE seq > {full_since} AND status = 'failed' \
             AND error_code = 'artifact_write_failed'"
        )) >= 2
    });
    let message: String = home
        .db()
        .query_row(
            "SELECT message FROM runs WHERE error_code = 'artifact_write_failed' LIMIT 1",
            [],
            |row| row.get(0),
        )
        .expect("a failed run's message");
    assert!(
        message.contains("runs/tick"),
        "the message names the path: {message}"
    );

    std::fs::remove_file(&filler).expect("free the space");
    let freed_at = home.count("SELECT COALESCE(MAX(seq), 0) FROM runs");
    wait_until("runs succeeding again", 15, || {
        home.count(&format!(
            "SELECT COUNT(*) FROM runs WHERE seq > {freed_at} AND status = 'succeeded'"
        )) >= 2
    });
    assert_eq!(
        stop(scheduler),
        0,
        "the scheduler stayed up:\n{}",
        scheduler_log(&home)
    );

    assert_eq!(integrity(&home), "ok");
    assert_no_slot_twice(&home);
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs WHERE status IN ('running', 'queued')"),
        0,
        "nothing left in flight"
    );
    // Every run directory has its row and every row naming a directory has it: a claim that could
    // not make its directory left none behind half-made.
    let rows: std::collections::BTreeSet<String> = home
        .db()
        .prepare("SELECT run_dir FROM runs WHERE run_dir IS NOT NULL")
        .expect("query")
        .query_map([], |row| row.get::<_, String>(0))
        .expect("rows")
        .flatten()
        .collect();
    let dirs: std::collections::BTreeSet<String> = std::fs::read_dir(runs.join("tick"))
        .expect("runs/tick")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| format!("runs/tick/{}", e.file_name().to_string_lossy()))
        .collect();
    assert_eq!(rows, dirs, "run directories and rows agree");
    // A run that succeeded after the disk came back left whole artifacts.
    let last_good = home.count("SELECT MAX(seq) FROM runs WHERE status = 'succeeded'");
    home.checked_artifacts("tick", last_good);
}

#[test]
fn a_full_store_disk_never_records_the_outage_as_overlap() {
    let home = TestHome::new();
    let db = home.path().join("db");
    let Some(_tmpfs) = Tmpfs::mount(&db, "4m") else {
        unavailable("cannot mount a tmpfs here (needs root)");
        return;
    };
    // Every second, 0.3 s long: never two at once, so never a slot skipped for overlap, unless a run
    // whose end could not be recorded is taken to be still running.
    home.spec(
        "tick.yaml",
        "id: tick\nschedule:\n  every: 1s\nrun:\n  shell: \"sleep 0.3\"\npolicy:\n  overlap: skip\n",
    );
    let scheduler = start_scheduler(&home, &[]);
    wait_until("a first good run", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'") >= 1
    });
    // Fill the disk while a run is in flight, so that its end cannot be recorded.
    wait_until("a run in flight", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'running'") >= 1
    });
    let filler = fill(&db);
    wait_until("the scheduler failing to write", 15, || {
        scheduler_log(&home).contains("full")
    });
    // Shorter than the 5 s between the loop's sweeps for dead runs, so the store's stale row is still
    // there at the first claim after the outage.
    std::thread::sleep(Duration::from_millis(1200));
    std::fs::remove_file(&filler).expect("free the space");
    let freed_at = home.count("SELECT COALESCE(MAX(seq), 0) FROM runs");
    wait_until("runs succeeding again", 20, || {
        home.count(&format!(
            "SELECT COUNT(*) FROM runs WHERE seq > {freed_at} AND status = 'succeeded'"
        )) >= 2
    });
    assert_eq!(stop(scheduler), 0, "{}", scheduler_log(&home));
    // The job never overlaps itself: a slot of the outage is run late (coalesced) or missed, never
    // "skipped: overlap" with nothing in flight.
    let overlaps = home.count("SELECT COUNT(*) FROM runs WHERE error_code = 'skipped_overlap'");
    assert_eq!(overlaps, 0, "{}", scheduler_log(&home));
    assert_eq!(integrity(&home), "ok");
    assert_no_slot_twice(&home);
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs WHERE status IN ('running', 'queued')"),
        0,
        "nothing left in flight"
    );
}

/// Debian's libfaketime, if installed.
fn libfaketime() -> Option<PathBuf> {
    let mut dirs = vec![PathBuf::from("/usr/lib/faketime")];
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        dirs.extend(entries.flatten().map(|e| e.path().join("faketime")));
    }
    dirs.into_iter()
        .map(|dir| dir.join("libfaketime.so.1"))
        .find(|lib| lib.is_file())
}

fn millis(text: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text.as_str().expect("a time"))
        .expect("rfc 3339")
        .timestamp_millis()
}

#[test]
fn clock_jumps_forward_like_downtime_and_backward_without_repeats() {
    let Some(lib) = libfaketime() else {
        unavailable("libfaketime is not installed (Debian package faketime)");
        return;
    };
    let home = TestHome::new();
    // `late` may start a slot up to 10 minutes late and folds a gap into one run; `strict` allows
    // 1 s, so after a jump its slots are missed and recorded.
    home.spec(
        "late.yaml",
        every_second("late", "policy:\n  coalesce: true\n  misfire_grace: 10m\n"),
    );
    home.spec(
        "strict.yaml",
        every_second(
            "strict",
            "policy:\n  coalesce: false\n  misfire_grace: 1s\n",
        ),
    );
    let offset = home.path().join("faketime");
    std::fs::write(&offset, "+0\n").expect("offset file");
    let lib = lib.to_string_lossy().into_owned();
    let offset_path = offset.to_string_lossy().into_owned();
    // Only the wall clock moves, as when NTP steps it; the monotonic clock tokio sleeps on does not.
    let scheduler = start_scheduler(
        &home,
        &[
            ("LD_PRELOAD", lib.as_str()),
            ("FAKETIME_TIMESTAMP_FILE", offset_path.as_str()),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let runs = |job: &str| {
        home.count(&format!("SELECT COUNT(*) FROM runs WHERE job_id = '{job}' AND slot IS NOT NULL AND status != 'skipped' AND status != 'missed'"))
    };
    wait_until("runs before the jump", 15, || {
        runs("late") >= 2 && runs("strict") >= 2
    });
    let before_jump: i64 = home.count("SELECT MAX(slot) FROM runs WHERE slot IS NOT NULL");

    std::fs::write(&offset, "+3600\n").expect("jump forward");
    wait_until("runs after the forward jump", 15, || {
        home.count(&format!(
            "SELECT COUNT(*) FROM runs WHERE slot > {} AND status = 'succeeded'",
            before_jump + 3_590_000
        )) >= 4
    });
    // The hour nobody was there for: `late` folded it into one run, `strict` recorded it as missed.
    let late_in_gap = home.count(&format!(
        "SELECT COUNT(*) FROM runs WHERE job_id = 'late' AND status NOT IN ('skipped', 'missed') \
         AND slot > {before_jump} AND slot < {}",
        before_jump + 3_590_000
    ));
    assert!(
        late_in_gap <= 1,
        "late ran {late_in_gap} slots of the gap; coalesce folds them into one"
    );
    let strict_missed = home.count(&format!(
        "SELECT COALESCE(SUM(slot_count), 0) FROM runs WHERE job_id = 'strict' AND status = 'missed' \
         AND last_slot > {before_jump}"
    ));
    assert!(
        strict_missed >= 3500,
        "strict's gap is recorded as missed ({strict_missed} slots):\n{}",
        scheduler_log(&home)
    );
    let after_forward: i64 = home.count("SELECT MAX(slot) FROM runs WHERE slot IS NOT NULL");

    std::fs::write(&offset, "+0\n").expect("jump back");
    let runs_at_jump_back = home.count("SELECT COUNT(*) FROM runs");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(stop(scheduler), 0, "{}", scheduler_log(&home));
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs WHERE status NOT IN ('skipped', 'missed')"),
        home.count(&format!(
            "SELECT COUNT(*) FROM runs WHERE status NOT IN ('skipped', 'missed') AND slot <= {after_forward}"
        )),
        "after the clock went back an hour, no slot before it was run again"
    );
    assert!(
        home.count("SELECT COUNT(*) FROM runs") <= runs_at_jump_back + 2,
        "nothing new was claimed while the clock was behind the last slot:\n{}",
        scheduler_log(&home)
    );
    assert_no_slot_twice(&home);
    // Never early: every run started at or after its slot, on the clock the scheduler saw.
    let mut checked = 0;
    for (job, seq) in home
        .db()
        .prepare("SELECT job_id, seq FROM runs WHERE status = 'succeeded' AND slot IS NOT NULL")
        .expect("query")
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .expect("rows")
        .flatten()
        .collect::<Vec<_>>()
    {
        let receipt = home.receipt(&job, seq);
        let started = millis(&receipt["attempts"][0]["started_at"]);
        let slot = millis(&receipt["slot"]);
        assert!(started >= slot, "{job}#{seq} started before its slot");
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} runs to check");
}

#[test]
fn as_root_run_user_runs_the_command_as_that_user() {
    if !is_root() {
        unavailable("not root: run.user needs jobs to run as root");
        return;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let Some(nobody) = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 7 && fields[0] == "nobody")
            .then(|| (fields[2].to_owned(), fields[5].to_owned()))
    }) else {
        unavailable("no user nobody in /etc/passwd");
        return;
    };
    let home = TestHome::new();
    // The command changes into the home as nobody, after switching user.
    std::fs::set_permissions(
        home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("let others into the home");
    home.spec(
        "as-nobody.yaml",
        "id: as-nobody\nrun:\n  shell: \"id -u; id -g; echo $HOME $USER $LOGNAME\"\n  user: nobody\n",
    );
    home.spec(
        "no-such.yaml",
        "id: no-such\nrun:\n  command: [\"true\"]\n  user: no-such-user-here\n",
    );
    let run = home.run(&["run", "as-nobody"]);
    assert_eq!(run.code, 0, "{run:?}");
    let stdout = std::fs::read_to_string(home.path().join("runs/as-nobody/1/stdout.log"))
        .expect("stdout.log");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.first(), Some(&nobody.0.as_str()), "{stdout}");
    assert_eq!(
        lines.get(2).copied(),
        Some(format!("{} nobody nobody", nobody.1).as_str()),
        "{stdout}"
    );
    let (json, code) = home.json(&["validate"]);
    assert_eq!(code, 4, "{json}");
    let problem = json["data"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .flat_map(|f| f["problems"].as_array().cloned().unwrap_or_default())
        .find(|p| p["code"] == "unknown_user")
        .unwrap_or_else(|| panic!("an unknown user is a spec problem: {json}"));
    assert_eq!(problem["pointer"], "/run/user");
    assert_eq!(problem["line"], 4);
}

#[test]
fn as_another_user_a_spec_with_run_user_is_refused_with_its_position() {
    if !is_root() {
        unavailable("not root: cannot run jobs as another user");
        return;
    }
    if !Path::new("/usr/sbin/runuser").exists() {
        unavailable("no runuser to run jobs as nobody");
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("let nobody read it");
    let spec = dir.path().join("as-root.yaml");
    std::fs::write(
        &spec,
        "id: as-root\nrun:\n  command: [\"true\"]\n  user: root\n",
    )
    .expect("write the spec");
    let output = std::process::Command::new("/usr/sbin/runuser")
        .args(["-u", "nobody", "--"])
        .arg(assert_cmd::cargo::cargo_bin("jobs"))
        .arg("--json")
        .arg("validate")
        .arg(&spec)
        .output()
        .expect("run jobs as nobody");
    let json: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {output:?}"));
    assert_eq!(output.status.code(), Some(4), "{json}");
    let problem = &json["data"]["files"][0]["problems"][0];
    assert_eq!(problem["code"], "run_user_needs_root", "{json}");
    assert_eq!(problem["pointer"], "/run/user", "{json}");
    assert_eq!(problem["line"], 4, "{json}");
}
