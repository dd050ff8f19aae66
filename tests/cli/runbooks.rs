//! The runbooks cannot rot: every command line in their ```sh blocks runs here, in a home holding the
//! bundled examples and two runs of `nightly-report`. Lines that cannot run in a sandbox say so with
//! `# not run by runbook-check: <why>`.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::TestHome;

const SKIP: &str = "# not run by runbook-check:";

/// The command lines of a runbook's ```sh blocks, with their line numbers.
fn commands(text: &str) -> Vec<(usize, String)> {
    let mut inside = false;
    let mut lines = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            inside = !inside && trimmed == "```sh";
            continue;
        }
        if inside && !trimmed.is_empty() && !trimmed.starts_with('#') {
            lines.push((number + 1, trimmed.to_owned()));
        }
    }
    lines
}

#[test]
fn every_runbook_command_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut runbooks: Vec<_> = std::fs::read_dir(root.join("runbooks"))
        .expect("runbooks/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    runbooks.sort();
    assert!(runbooks.len() >= 6, "the runbooks are there: {runbooks:?}");

    let home = TestHome::new();
    for entry in std::fs::read_dir(root.join("jobs")).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, home.jobs_dir().join(path.file_name().expect("name")))
                .expect("copy example");
        }
    }
    for _ in 0..2 {
        assert_eq!(home.run(&["run", "nightly-report"]).code, 0);
    }
    let bin = assert_cmd::cargo::cargo_bin("jobs");
    let bin_dir = bin.parent().expect("binary directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut failures = Vec::new();
    let mut ran = 0;
    for runbook in &runbooks {
        let text = std::fs::read_to_string(runbook).expect("read runbook");
        let name = runbook
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        for (number, line) in commands(&text) {
            if line.contains(SKIP) {
                continue;
            }
            ran += 1;
            // `jobs` is also a shell builtin, which wins over PATH; the runbooks tell operators to define
            // this function (or use the full path), and the check does the same.
            let script = format!("jobs() {{ \"{}\" \"$@\"; }}; {line}", bin.display());
            let mut child = std::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .current_dir(home.path())
                .env("JOBS_HOME", home.path())
                .env("PATH", &path)
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .spawn()
                .expect("spawn sh");
            let started = Instant::now();
            let status = loop {
                if let Some(status) = child.try_wait().expect("poll") {
                    break Some(status);
                }
                if started.elapsed() > Duration::from_secs(2) {
                    // A long-running command (a scheduler, a follow): it started, which is the check.
                    let group =
                        rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("pid"))
                            .expect("pid");
                    let _ =
                        rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                    let _ = child.wait();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let Some(status) = status else { continue };
            let code = status.code().unwrap_or(-1);
            let ok = if line.starts_with("jobs ") {
                code != 2 && code != 70 && code >= 0
            } else {
                code == 0
            };
            if !ok {
                let output = child.wait_with_output().expect("output");
                failures.push(format!(
                    "{name}:{number}: `{line}` exited {code}\n{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
        }
    }
    assert!(ran >= 20, "only {ran} runbook commands ran");
    assert!(
        failures.is_empty(),
        "{} runbook command(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
