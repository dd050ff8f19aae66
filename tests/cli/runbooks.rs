//! The runbooks cannot rot: every command line in their ```sh blocks runs here, in a home holding the
//! bundled examples, two runs of `nightly-report` and a third whose process died half-way through an
//! event line. Lines that cannot run in a sandbox say so with `# not run by runbook-check: <why>`.
//! What a runbook states about a command's behaviour is checked too, where the line says it:
//! `# expect: exit 5, "scheduler: not running", not "running (pid"` (or `fails` for any exit but 0
//! and 70). Without it, a `jobsctl` line must not be a usage error or a bug, and any other line must
//! exit 0.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::TestHome;

const SKIP: &str = "# not run by runbook-check:";
const EXPECT: &str = "# expect:";

/// What a runbook line says its command does.
#[derive(Debug, Default, PartialEq)]
struct Expect {
    exit: Option<ExitExpect>,
    contains: Vec<String>,
    absent: Vec<String>,
}

#[derive(Debug, PartialEq)]
enum ExitExpect {
    Code(i32),
    /// Refused, for whatever reason the runbook gives in words: any exit but 0, and not a bug (70) or a
    /// signal.
    Fails,
}

/// Parses what follows `# expect:`: items separated by commas, each `exit N`, `fails`, `"text"` or
/// `not "text"`. A line the check cannot read is an error, never a line checked less.
fn parse_expect(text: &str) -> Result<Expect, String> {
    let mut expect = Expect::default();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let negated = rest.strip_prefix("not ").map(str::trim_start);
        let item = negated.unwrap_or(rest);
        if let Some(quoted) = item.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| format!("unterminated quote in `{text}`"))?;
            let wanted = quoted[..end].to_owned();
            if negated.is_some() {
                expect.absent.push(wanted);
            } else {
                expect.contains.push(wanted);
            }
            rest = &quoted[end + 1..];
        } else if negated.is_some() {
            return Err(format!("`not` takes a quoted text in `{text}`"));
        } else {
            let end = item.find(',').unwrap_or(item.len());
            let word = item[..end].trim();
            expect.exit = Some(if word == "fails" {
                ExitExpect::Fails
            } else if let Some(code) = word.strip_prefix("exit ") {
                ExitExpect::Code(
                    code.trim()
                        .parse()
                        .map_err(|_| format!("bad exit code in `{text}`"))?,
                )
            } else {
                return Err(format!("unknown expectation `{word}` in `{text}`"));
            });
            rest = &item[end..];
        }
        rest = rest.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Ok(expect)
}

/// Whether a command's exit code and output agree with the line; `None` when they do.
fn check(line: &str, expect: &Expect, code: i32, output: &str) -> Option<String> {
    let exit_ok = match expect.exit {
        Some(ExitExpect::Code(wanted)) => code == wanted,
        Some(ExitExpect::Fails) => code > 0 && code != 70,
        None if line.starts_with("jobsctl ") => code >= 0 && code != 2 && code != 70,
        None => code == 0,
    };
    let mut wrong = Vec::new();
    if !exit_ok {
        wrong.push(format!("exited {code}"));
    }
    for text in &expect.contains {
        if !output.contains(text.as_str()) {
            wrong.push(format!("did not print {text:?}"));
        }
    }
    for text in &expect.absent {
        if output.contains(text.as_str()) {
            wrong.push(format!("printed {text:?}"));
        }
    }
    (!wrong.is_empty()).then(|| wrong.join(", "))
}

#[test]
fn expectations_read_as_written() {
    let expect = parse_expect(r#"exit 5, "a, b", not "c""#).expect("parses");
    assert_eq!(
        expect,
        Expect {
            exit: Some(ExitExpect::Code(5)),
            contains: vec!["a, b".into()],
            absent: vec!["c".into()],
        }
    );
    assert_eq!(
        parse_expect("fails").expect("parses").exit,
        Some(ExitExpect::Fails)
    );
    for bad in [r#""open"#, "exit five", "not exit 1", "succeeds"] {
        assert!(parse_expect(bad).is_err(), "{bad} is refused");
    }
    // A line whose command did otherwise than it says is reported with what differed.
    let expect = parse_expect(r#"exit 5, "not running""#).expect("parses");
    assert!(check("jobsctl status", &expect, 5, "scheduler: not running").is_none());
    let wrong = check("jobsctl status", &expect, 0, "scheduler: running").expect("caught");
    assert!(
        wrong.contains("exited 0") && wrong.contains("not running"),
        "{wrong}"
    );
}

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
    // The repository's home has a config too: the runbooks run against all of it.
    std::fs::copy(root.join("config.yaml"), home.path().join("config.yaml")).expect("copy config");
    for _ in 0..2 {
        assert_eq!(home.run(&["run", "nightly-report"]).code, 0);
    }
    // Run 3 dies as `kill -9` would leave it, half-way through an event line.
    let died = home
        .command(&["run", "nightly-report"])
        .env("JOBS_FAULT", "event-torn=1")
        .output()
        .expect("run with a fault armed");
    assert_eq!(died.status.code(), None, "the armed run was killed");
    assert_eq!(home.run_row("nightly-report", 3).0, "running");
    let bin = assert_cmd::cargo::cargo_bin("jobsctl");
    let bin_dir = bin.parent().expect("binary directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut failures = Vec::new();
    let mut ran = 0;
    let mut checked = 0;
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
            let (command, expect) = match line.split_once(EXPECT) {
                Some((command, expect)) => match parse_expect(expect) {
                    Ok(expect) => (command.trim().to_owned(), Some(expect)),
                    Err(e) => {
                        failures.push(format!("{name}:{number}: {e}"));
                        continue;
                    }
                },
                None => (line.clone(), None),
            };
            // The bare names, as an operator's shell has them: `jobsctl` and `jobs` on PATH, where
            // `jobs` still loses to the shell's builtin.
            let mut child = std::process::Command::new("sh")
                .arg("-c")
                .arg(&command)
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
            let Some(status) = status else {
                if expect.is_some() {
                    failures.push(format!(
                        "{name}:{number}: `{command}` did not end within 2 s, so what the line expects of it cannot be checked"
                    ));
                }
                continue;
            };
            let code = status.code().unwrap_or(-1);
            let output = child.wait_with_output().expect("output");
            let printed = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            let stated = expect.is_some();
            if let Some(wrong) = check(&command, &expect.unwrap_or_default(), code, &printed) {
                failures.push(format!("{name}:{number}: `{command}` {wrong}\n{printed}"));
            } else if stated {
                checked += 1;
            }
        }
    }
    assert!(ran >= 20, "only {ran} runbook commands ran");
    assert!(
        checked >= 8,
        "only {checked} runbook lines state what they expect"
    );
    assert!(
        failures.is_empty(),
        "{} runbook command(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
