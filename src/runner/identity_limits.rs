//! Who an attempt runs as (`run.user`, `run.group`) and the resource limits it runs under
//! (`run.limits`). The user is resolved when the attempt starts, so a change to /etc/passwd applies
//! from the next attempt on. Never spawns or waits; the attempt does both.
//!
//! Two things std and rustix cannot do without `unsafe` (which this crate forbids): set the user's
//! supplementary groups (std's `CommandExt::groups` is unstable, `initgroups` needs a `pre_exec`),
//! and set limits in the child before it execs. So a run as another user has its primary group (or
//! `run.group`) only, std dropping root's supplementary groups, and limits are set with `prlimit`
//! on the child's pid right after it started: the first instant of the program runs without them.

use rustix::process::{Pid, Resource, Rlimit, prlimit};
use tokio::process::Command;

use crate::spec::model::{RunLimits, RunSpec};
use crate::users;

/// What an attempt's process is set up with, from the spec's `run`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessSetup {
    user: Option<String>,
    group: Option<String>,
    limits: RunLimits,
}

/// Why an attempt cannot start as asked: a stable code and a message for the record.
pub type SetupError = (&'static str, String);

impl ProcessSetup {
    pub fn from_spec(run: &RunSpec) -> Self {
        Self {
            user: run.user.clone(),
            group: run.group.clone(),
            limits: run.limits.clone(),
        }
    }

    /// Sets the user and group to switch to, and `HOME`, `USER` and `LOGNAME` for that user. Call it
    /// before the spec's env is applied, so that the spec can still set any of the three itself.
    pub fn configure(&self, command: &mut Command) -> Result<(), SetupError> {
        let Some(name) = &self.user else {
            return Ok(());
        };
        if !rustix::process::geteuid().is_root() {
            return Err((
                "run_user_needs_root",
                format!("running as user {name:?} needs jobs to run as root"),
            ));
        }
        let user = users::user_by_name(name)
            .ok_or_else(|| ("unknown_user", format!("no user {name:?} in /etc/passwd")))?;
        let gid = match &self.group {
            Some(group) => {
                users::group_by_name(group)
                    .ok_or_else(|| ("unknown_group", format!("no group {group:?} in /etc/group")))?
                    .gid
            }
            None => user.gid,
        };
        command
            .uid(user.uid)
            .gid(gid)
            .env("HOME", &user.home)
            .env("USER", &user.name)
            .env("LOGNAME", &user.name);
        Ok(())
    }

    /// Sets `run.limits` on the started process, soft and hard alike so that it cannot raise them
    /// again (the CPU limit's hard one a second later, so that SIGXCPU comes before SIGKILL).
    pub fn limit(&self, pid: Option<u32>) -> Result<(), SetupError> {
        if self.limits.is_empty() {
            return Ok(());
        }
        let pid = pid
            .and_then(|p| i32::try_from(p).ok())
            .and_then(Pid::from_raw)
            .ok_or_else(|| ("limits_failed", "the started process has no pid".to_owned()))?;
        let mut wanted = Vec::new();
        if let Some(nofile) = self.limits.nofile {
            wanted.push(("nofile", Resource::Nofile, nofile, nofile));
        }
        if let Some(size) = self.limits.address_space {
            wanted.push(("as", Resource::As, size.bytes(), size.bytes()));
        }
        if let Some(cpu) = self.limits.cpu {
            let seconds = u64::try_from(cpu.as_millis() / 1000)
                .unwrap_or(u64::MAX)
                .max(1);
            wanted.push(("cpu", Resource::Cpu, seconds, seconds.saturating_add(1)));
        }
        for (name, resource, soft, hard) in wanted {
            prlimit(
                Some(pid),
                resource,
                Rlimit {
                    current: Some(soft),
                    maximum: Some(hard),
                },
            )
            .map_err(|e| {
                (
                    "limits_failed",
                    format!("failed to set run.limits.{name} to {soft}: {e}"),
                )
            })?;
        }
        Ok(())
    }
}
