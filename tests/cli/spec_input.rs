//! What `jobs/` may hold that is not a spec, and what a spec may hold that must not reach a terminal or
//! a problem message: FIFOs, sockets, directories and devices are problems, never a hang; env values
//! and files that are not specs are never echoed; control characters are escaped in human output;
//! `every` below a second is refused, also in a last good version checked by an older binary.

use std::path::Path;
use std::process::Stdio;

use crate::common::{Outcome, TestHome, manual_spec, start_scheduler, stop, wait_exit, wait_until};

/// Runs `jobs <args>`, failing the test if it does not exit within `seconds` (a hang is the bug).
fn run_within(home: &TestHome, args: &[&str], seconds: u64) -> Outcome {
    let out_path = home.path().join(".test-stdout");
    let err_path = home.path().join(".test-stderr");
    let stdout = std::fs::File::create(&out_path).expect("stdout file");
    let stderr = std::fs::File::create(&err_path).expect("stderr file");
    let mut child = home
        .command(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start jobs");
    let status = wait_exit(&mut child, seconds);
    Outcome {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out_path).expect("read stdout"),
        stderr: std::fs::read_to_string(&err_path).expect("read stderr"),
    }
}

fn mkfifo(path: &Path) {
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .expect("mkfifo");
}

/// The problems `validate --json` reports for the file whose path ends with `name`.
fn problems_of(validate: &serde_json::Value, name: &str) -> Vec<serde_json::Value> {
    validate["data"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"].as_str().is_some_and(|p| p.ends_with(name)))
        .unwrap_or_else(|| panic!("{name} is not in {validate:#}"))["problems"]
        .as_array()
        .expect("problems")
        .clone()
}

#[test]
fn a_fifo_in_jobs_is_a_problem_and_blocks_no_command() {
    let home = TestHome::new();
    home.spec("ok.yaml", manual_spec("ok"));
    mkfifo(&home.jobs_dir().join("pipe.yaml"));

    let validate = run_within(&home, &["--json", "validate"], 20);
    assert_eq!(validate.code, 4, "{}", validate.stderr);
    let problems = problems_of(&validate.json(), "pipe.yaml");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["code"], "not_a_regular_file");
    assert_eq!(problems[0]["line"], 1);
    assert_eq!(problems[0]["column"], 1);
    assert!(
        problems[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("named pipe")),
        "{problems:?}"
    );

    let list = run_within(&home, &["list"], 20);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(list.stdout.contains("not_a_regular_file") || list.stdout.contains("named pipe"));
    let run = run_within(&home, &["run", "ok"], 20);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let explicit = run_within(
        &home,
        &[
            "validate",
            &home.jobs_dir().join("pipe.yaml").display().to_string(),
        ],
        20,
    );
    assert_eq!(explicit.code, 4, "{}", explicit.stderr);
}

#[test]
fn a_fifo_in_jobs_does_not_stop_the_scheduler() {
    let home = TestHome::new();
    home.spec(
        "tick.yaml",
        "id: tick\nschedule:\n  every: 1s\nrun:\n  command: [\"true\"]\n",
    );
    mkfifo(&home.jobs_dir().join("pipe.yaml"));
    let scheduler = start_scheduler(&home, &[]);
    wait_until("two runs of the other job", 15, || {
        home.count("SELECT COUNT(*) FROM runs WHERE job_id = 'tick' AND status = 'succeeded'") >= 2
    });
    assert_eq!(stop(scheduler), 0);
}

#[test]
fn directories_sockets_and_devices_named_as_specs_are_problems() {
    let home = TestHome::new();
    home.spec("ok.yaml", manual_spec("ok"));
    std::fs::create_dir(home.jobs_dir().join("dir.yaml")).expect("mkdir");
    let _socket = std::os::unix::net::UnixListener::bind(home.jobs_dir().join("sock.yaml"))
        .expect("bind a socket");
    // A link to a device: followed like any linked spec, then refused for what it is, never read.
    std::os::unix::fs::symlink("/dev/zero", home.jobs_dir().join("zero.yaml")).expect("link");

    let validate = run_within(&home, &["--json", "validate"], 20);
    assert_eq!(validate.code, 4, "{}", validate.stderr);
    let document = validate.json();
    for (name, says) in [
        ("dir.yaml", "a directory"),
        ("sock.yaml", "a socket"),
        ("zero.yaml", "a device"),
    ] {
        let problems = problems_of(&document, name);
        assert_eq!(problems.len(), 1, "{name}: {problems:?}");
        assert_eq!(problems[0]["code"], "not_a_regular_file", "{name}");
        assert!(
            problems[0]["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{name}: {problems:?}"
        );
    }
    assert!(problems_of(&document, "ok.yaml").is_empty());
}
