//! What a new user hit on the first day: an idle `tail -f` spinning a core, a second pause wiping the
//! first, problems shown without their field, a directory that is not a home quietly becoming one,
//! `history --status` taking one value, and the smaller wording slips. Also `run.limits`.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::common::{KillOnDrop, TestHome, manual_spec, stop, wait_until};

/// User plus system CPU time of a process so far, from `/proc/<pid>/stat` (in USER_HZ, 100 a second).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/<pid>/stat");
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    let rest = stat.rsplit(')').next().expect("fields after the name");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}

#[test]
fn an_idle_tail_follow_costs_no_cpu_while_it_waits() {
    let home = TestHome::new();
    home.spec("done.yaml", manual_spec("done"));
    home.spec("slow.yaml", "id: slow\nrun:\n  shell: \"sleep 12\"\n");
    assert_eq!(home.run(&["run", "done"]).code, 0);
    // `jobsctl run` of the slow job stays in flight while the follower of its run waits for output.
    let slow = home
        .command(&["run", "slow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .expect("start jobs run");
    wait_until("the slow run to start", 10, || {
        home.run_dir("slow", 1).join("events.jsonl").exists()
    });
    let followers: Vec<(&str, KillOnDrop)> = [
        (
            "tail -f waiting for the next run",
            vec!["tail", "done", "-f"],
        ),
        ("tail --forever", vec!["tail", "done", "--forever"]),
        ("tail -f of a run in flight", vec!["tail", "slow", "-f"]),
    ]
    .into_iter()
    .map(|(what, args)| {
        let child = home
            .command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(KillOnDrop)
            .expect("start jobs tail");
        (what, child)
    })
    .collect();
    // Past start-up (loading specs, opening the store), the waiting is what is measured.
    std::thread::sleep(Duration::from_secs(1));
    let before: Vec<f64> = followers.iter().map(|(_, c)| cpu_seconds(c.id())).collect();
    std::thread::sleep(Duration::from_secs(5));
    for ((what, child), before) in followers.iter().zip(before) {
        let used = cpu_seconds(child.id()) - before;
        assert!(
            used < 0.3,
            "{what} used {used:.2} s of CPU in 5 s of waiting"
        );
    }
    drop(followers);
    stop(slow);
}

#[test]
fn pausing_a_paused_job_keeps_who_when_and_why_and_names_the_real_user() {
    let home = TestHome::new();
    home.spec("nightly.yaml", manual_spec("nightly"));
    let pause = |reason: Option<&str>| {
        let mut args = vec!["--json", "pause", "nightly"];
        if let Some(reason) = reason {
            args.extend(["--reason", reason]);
        }
        let output = home
            .command(&args)
            .env_remove("USER")
            .env_remove("LOGNAME")
            .output()
            .expect("run jobs pause");
        assert!(output.status.success(), "pause: {output:?}");
        serde_json::from_slice::<Value>(&output.stdout).expect("JSON")
    };
    let first = pause(Some("database migration"));
    assert_eq!(first["data"]["changed"], true);
    let by = first["data"]["by"].as_str().expect("by").to_owned();
    assert!(
        !by.starts_with("unknown@"),
        "the pauser is the real user, not {by}"
    );
    let uid = rustix::process::getuid().as_raw();
    let name = std::fs::read_to_string("/etc/passwd")
        .expect("read /etc/passwd")
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() > 2 && fields[2] == uid.to_string()).then(|| fields[0].to_owned())
        });
    if let Some(name) = name {
        assert!(by.starts_with(&format!("{name}@")), "{by} names {name}");
    }
    let state = |home: &TestHome| {
        home.db()
            .query_row(
                "SELECT state_by, state_reason, state_at, paused_at FROM jobs WHERE id = 'nightly'",
                [],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                },
            )
            .expect("the job's row")
    };
    let before = state(&home);
    std::thread::sleep(Duration::from_millis(20));
    let second = pause(None);
    assert_eq!(second["data"]["changed"], false, "{second}");
    assert_eq!(state(&home), before, "a second pause changes nothing");
    assert_eq!(before.1.as_deref(), Some("database migration"));
    let shown = home.run(&["show", "nightly"]);
    assert!(
        shown.stdout.contains("database migration"),
        "{}",
        shown.stdout
    );
}

#[test]
fn a_catchup_retry_reads_as_a_retry_in_history() {
    let home = TestHome::new();
    home.spec("beat.yaml", manual_spec("beat"));
    assert_eq!(home.run(&["run", "beat"]).code, 0);
    assert_eq!(home.run(&["run", "beat"]).code, 0);
    // What the scheduler records for the retry of an interrupted run: trigger catchup, linked to it.
    rusqlite::Connection::open(home.path().join("db/jobs.sqlite3"))
        .expect("open the store")
        .execute(
            "UPDATE runs SET trigger = 'catchup', replay_of = 1 WHERE job_id = 'beat' AND seq = 2",
            [],
        )
        .expect("make run 2 a catch-up retry");
    let history = home.run(&["history", "beat"]);
    assert!(history.stdout.contains("retry of #1"), "{}", history.stdout);
    assert!(!history.stdout.contains("replay of"), "{}", history.stdout);
}

#[test]
fn problems_keep_their_field_and_a_never_valid_spec_is_not_manual() {
    let home = TestHome::new();
    home.spec(
        "bad.yaml",
        "id: bad\nschedule:\n  every: 0s\nrun:\n  command: [\"true\"]\n",
    );
    let field = "/schedule/every: must be longer than zero";
    let run = home.run(&["run", "bad"]);
    assert_eq!(run.code, 4);
    assert!(
        run.stderr.contains(&format!("jobs/bad.yaml:3:3: {field}")),
        "{}",
        run.stderr
    );
    let list = home.run(&["list"]);
    assert!(list.stdout.contains(field), "{}", list.stdout);
    let row = list
        .stdout
        .lines()
        .find(|l| l.starts_with("bad "))
        .expect("the job's row");
    assert!(!row.contains("manual"), "{row}");
    assert!(row.contains("invalid"), "{row}");
    let show = home.run(&["show", "bad"]);
    assert!(show.stdout.contains(field), "{}", show.stdout);
    assert!(!show.stdout.contains("manual"), "{}", show.stdout);
    let status = home.run(&["status"]);
    assert!(status.stdout.contains(field), "{}", status.stdout);
}

#[test]
fn a_directory_that_is_not_a_home_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let jobs = || {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("jobs"));
        command
            .current_dir(dir.path())
            .env_remove("JOBS_HOME")
            .env("NO_COLOR", "1");
        command
    };
    for args in [
        vec!["status"],
        vec!["list"],
        vec!["history"],
        vec!["run", "x"],
        vec!["prune"],
        vec!["validate"],
        vec!["scheduler", "--dry-run"],
    ] {
        let output = jobs().arg("--json").args(&args).output().expect("run jobs");
        let json: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        assert_eq!(output.status.code(), Some(2), "{args:?}: {json}");
        assert_eq!(json["error"]["code"], "not_a_home", "{args:?}: {json}");
        let hint = json["error"]["hint"].as_str().unwrap_or_default();
        assert!(
            hint.contains("--home") && hint.contains("JOBS_HOME"),
            "{hint}"
        );
    }
    let human = jobs().arg("status").output().expect("run jobs");
    assert!(
        String::from_utf8_lossy(&human.stderr).contains("is not a jobs home"),
        "{human:?}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read the directory")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "nothing is created: {left:?}");

    // A file named on the command line needs no home; nor does the schema.
    std::fs::write(dir.path().join("one.yaml"), manual_spec("one")).expect("write a spec");
    assert_eq!(
        jobs()
            .args(["validate", "one.yaml"])
            .output()
            .expect("run")
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        jobs().arg("schema").output().expect("run").status.code(),
        Some(0)
    );
    // A store from earlier use makes a home even without jobs/.
    let home = TestHome::new();
    home.spec("one.yaml", manual_spec("one"));
    assert_eq!(home.run(&["run", "one"]).code, 0);
    std::fs::remove_file(home.jobs_dir().join("one.yaml")).expect("remove the spec");
    std::fs::remove_dir(home.jobs_dir()).expect("remove jobs/");
    assert_eq!(home.run(&["history"]).code, 0);
}

#[test]
fn history_status_takes_a_list_and_the_failure_hint_finds_those_runs() {
    let home = TestHome::new();
    home.spec("fails.yaml", "id: fails\nrun:\n  shell: \"exit 3\"\n");
    home.spec(
        "hangs.yaml",
        "id: hangs\nrun:\n  shell: \"sleep 5\"\n  timeout: 200ms\n  kill_grace: 100ms\n",
    );
    home.spec("fine.yaml", manual_spec("fine"));
    let failed = home.run(&["run", "fails"]);
    assert_eq!(failed.code, 1);
    let timed_out = home.run(&["run", "hangs"]);
    assert_eq!(timed_out.code, 1);
    assert_eq!(home.run(&["run", "fine"]).code, 0);
    // The hint's command, run as given, finds both runs.
    let command = timed_out
        .stderr
        .split('`')
        .find(|part| part.starts_with("jobsctl history"))
        .unwrap_or_else(|| panic!("the hint names a history command: {}", timed_out.stderr))
        .to_owned();
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let (json, code) = home.json(&args);
    assert_eq!(code, 0, "{json}");
    let found: Vec<&str> = json["data"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["job_id"].as_str().expect("job id"))
        .collect();
    assert!(
        found.contains(&"fails") && found.contains(&"hangs"),
        "`{command}` finds {found:?}"
    );
    assert!(!found.contains(&"fine"), "{found:?}");
    let (json, code) = home.json(&["history", "--status", "failed,timed_out"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["data"]["total"], 2, "{json}");
    let (json, code) = home.json(&["history", "--status", "failed,nonsense"]);
    assert_eq!(code, 2, "{json}");
}

#[test]
fn one_line_of_output_is_one_line_and_status_shows_the_next_slot_of_each_job() {
    let home = TestHome::new();
    home.spec("hello.yaml", "id: hello\nrun:\n  shell: \"echo hi\"\n");
    assert_eq!(home.run(&["run", "hello"]).code, 0);
    let summary =
        std::fs::read_to_string(home.run_dir("hello", 1).join("summary.md")).expect("summary");
    assert!(summary.contains("Last 1 line of output"), "{summary}");

    home.spec(
        "busy.yaml",
        "id: busy\nschedule:\n  every: 1s\nrun:\n  command: [\"true\"]\n",
    );
    home.spec(
        "hourly.yaml",
        "id: hourly\nschedule:\n  every: 1h\nrun:\n  command: [\"true\"]\n",
    );
    let (json, _) = home.json(&["status"]);
    let ids: Vec<&str> = json["data"]["next_slots"]
        .as_array()
        .expect("next slots")
        .iter()
        .map(|s| s["job_id"].as_str().expect("job id"))
        .collect();
    assert_eq!(ids, ["busy", "hourly"], "{json}");
}

#[test]
fn run_limits_nofile_stops_a_job_that_opens_too_many_files() {
    let home = TestHome::new();
    // paste keeps every file it reads open at once. The sleep keeps the opens out of the instant
    // between the start and the limit being set (see run.limits in the README).
    let opener = "sleep 0.3; paste $(yes /dev/null | head -n 40)";
    home.spec(
        "limited.yaml",
        format!("id: limited\nrun:\n  shell: \"{opener}\"\n  limits:\n    nofile: 16\n"),
    );
    home.spec(
        "free.yaml",
        format!("id: free\nrun:\n  shell: \"{opener}\"\n"),
    );
    assert_eq!(
        home.run(&["run", "free"]).code,
        0,
        "without a limit it succeeds"
    );
    let limited = home.run(&["run", "limited"]);
    assert_eq!(limited.code, 1, "{limited:?}");
    let stderr =
        std::fs::read_to_string(home.run_dir("limited", 1).join("stderr.log")).expect("stderr.log");
    assert!(
        stderr.to_lowercase().contains("too many open files"),
        "{stderr}"
    );
    let (json, _) = home.json(&["history", "limited"]);
    assert_eq!(json["data"]["entries"][0]["status"], "failed", "{json}");
    let (json, _) = home.json(&["show", "limited"]);
    assert_eq!(json["data"]["run"]["limits"]["nofile"], 16, "{json}");
}

#[test]
fn run_limits_are_checked_with_positions() {
    let home = TestHome::new();
    home.spec(
        "wrong.yaml",
        "id: wrong\nrun:\n  command: [\"true\"]\n  limits:\n    nofile: 0\n    as: 12XB\n    cpu: 500ms\n",
    );
    let (json, code) = home.json(&["validate"]);
    assert_eq!(code, 4, "{json}");
    let problems = json["data"]["files"][0]["problems"]
        .as_array()
        .expect("problems");
    let pointers: Vec<&str> = problems
        .iter()
        .map(|p| p["pointer"].as_str().expect("pointer"))
        .collect();
    for pointer in ["/run/limits/nofile", "/run/limits/as", "/run/limits/cpu"] {
        assert!(pointers.contains(&pointer), "{pointer} in {problems:?}");
    }
    assert!(
        problems.iter().all(|p| p["line"].as_u64() > Some(3)),
        "{problems:?}"
    );
}
