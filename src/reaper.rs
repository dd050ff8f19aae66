//! A node's reaper: a small child process that a scheduler on a shared store starts beside itself.
//! The scheduler tells it, down a pipe, every process group it starts; when the pipe closes without
//! a goodbye (the scheduler was killed outright, or crashed), the reaper stops what is left of
//! those groups (SIGTERM, each run's `kill_grace`, SIGKILL) and exits. A scheduler killed that way
//! cannot stop its runs itself, and no node on another host can: without this they would run on
//! beside the retry another node starts once the dead node's promise has passed. Must not touch
//! the store or the home.

use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::process::{Identity, stop_group};
use crate::store::AttemptProcess;

/// What the scheduler sends last when it stops on purpose: its runs are over, nothing is stopped.
const GOODBYE: &str = "goodbye";

/// The scheduler's side.
pub struct Reaper {
    stdin: Option<ChildStdin>,
    child: Child,
}

impl Reaper {
    /// Starts the reaper (this same program, `__reaper`), in a process group of its own, so that a
    /// signal to the scheduler's group does not reach it.
    pub fn start() -> Result<Self> {
        let exe = std::env::current_exe().map_err(|e| Error::Internal {
            message: format!("cannot find this program to start the node's reaper: {e}"),
        })?;
        let mut command = Command::new(exe);
        let mut child = child_command(&mut command)
            .spawn()
            .map_err(|e| Error::Internal {
                message: format!("cannot start the node's reaper: {e}"),
            })?;
        let stdin = child.stdin.take();
        Ok(Self { stdin, child })
    }

    /// Tells the reaper of a process group just started.
    pub fn watch(&mut self, process: &AttemptProcess) {
        let leader = &process.leader;
        let line = format!(
            "{} {} {} {}\n",
            leader.pid,
            leader.start,
            leader.boot,
            process.kill_grace.as_millis()
        );
        if let Some(stdin) = &mut self.stdin
            && let Err(e) = stdin.write_all(line.as_bytes())
        {
            tracing::warn!(
                "the node's reaper is gone; runs of a scheduler killed outright would outlive it: {e}"
            );
            self.stdin = None;
        }
    }

    /// Says goodbye (the runs are over) and waits for the reaper to exit.
    pub fn stop(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(format!("{GOODBYE}\n").as_bytes());
        }
        let _ = self.child.wait();
    }
}

fn child_command(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    command
        .arg("__reaper")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
}

/// The reaper itself: reads the groups until a goodbye (exit, stopping nothing) or the end of its
/// input (the scheduler is gone: stop every group still there, at once, each with its grace).
pub fn run() -> Result<()> {
    let mut groups: Vec<(Identity, Duration)> = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else {
            break;
        };
        if line == GOODBYE {
            return Ok(());
        }
        if let Some(group) = parse(&line) {
            groups.push(group);
        }
    }
    let stoppers: Vec<_> = groups
        .into_iter()
        .map(|(leader, grace)| std::thread::spawn(move || stop_group(&leader, grace)))
        .collect();
    let mut stopped = 0;
    for stopper in stoppers {
        if stopper.join().is_ok_and(|s| !s.found.is_empty()) {
            stopped += 1;
        }
    }
    if stopped > 0 {
        tracing::warn!(
            groups = stopped,
            "the scheduler died: stopped what was left of its runs' processes"
        );
    }
    Ok(())
}

/// `pid start boot grace_ms`.
fn parse(line: &str) -> Option<(Identity, Duration)> {
    let mut words = line.split(' ');
    let pid = words.next()?.parse().ok()?;
    let start = words.next()?.parse().ok()?;
    let boot = words.next()?.to_owned();
    let grace = Duration::from_millis(words.next()?.parse().ok()?);
    Some((Identity { pid, start, boot }, grace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_a_group_and_its_grace() {
        let (leader, grace) = parse("41 9000 b00t 1500").expect("parses");
        assert_eq!(
            (leader.pid, leader.start, leader.boot.as_str()),
            (41, 9000, "b00t")
        );
        assert_eq!(grace, Duration::from_millis(1500));
        assert!(parse("41 9000 b00t").is_none());
        assert!(parse("x 9000 b00t 1").is_none());
    }
}
