//! Who a process is, beyond its pid: its start time (field 22 of `/proc/<pid>/stat`, clock ticks since
//! boot) and the boot it belongs to. A pid alone names a different process once the kernel hands it
//! out again; pid, start time and boot together name one process for good. Also: finding what is left
//! of a process group and stopping it (SIGTERM, a grace period, SIGKILL) without ever signalling a group
//! that is no longer the one recorded. Linux only; elsewhere nothing matches and nothing is signalled.

use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

/// A process as recorded when it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub pid: u32,
    /// Clock ticks after boot at which it started.
    pub start: u64,
    /// `/proc/sys/kernel/random/boot_id` at the time: ticks after boot mean nothing across boots.
    pub boot: String,
}

impl Identity {
    /// The identity of the live process `pid`, if it exists (a zombie counts: its pid is still taken).
    pub fn of(pid: u32) -> Option<Self> {
        Some(Self {
            pid,
            start: stat(pid)?.start,
            boot: boot_id()?,
        })
    }

    /// This process.
    pub fn own() -> Option<Self> {
        static OWN: std::sync::OnceLock<Option<Identity>> = std::sync::OnceLock::new();
        OWN.get_or_init(|| Self::of(std::process::id())).clone()
    }

    /// Whether this process is still running (not a zombie: a zombie has ended, whoever reaps it).
    pub fn is_running(&self) -> bool {
        self.same_boot()
            && stat(self.pid)
                .is_some_and(|s| s.start == self.start && s.state != 'Z' && s.state != 'X')
    }

    fn same_boot(&self) -> bool {
        boot_id().is_some_and(|boot| boot == self.boot)
    }
}

/// What `/proc/<pid>/stat` says that matters here.
struct Stat {
    state: char,
    pgrp: u32,
    start: u64,
    name: String,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name (field 2) is in parentheses and may itself hold spaces and parentheses: the fields
    // after it start after the last ')'.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // `rest[0]` is field 3 (state), so field N is `rest[N - 3]`.
    Some(Stat {
        state: rest.first()?.chars().next()?,
        pgrp: rest.get(2)?.parse().ok()?,
        start: rest.get(19)?.parse().ok()?,
        name,
    })
}

fn boot_id() -> Option<String> {
    static BOOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    })
    .clone()
}

/// A process still running in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub pid: u32,
    /// Its command name (`comm`), for the events.
    pub name: String,
}

/// The processes of group `pgid` that have not ended (zombies are left out: they have ended, and
/// whether anyone reaps them is not ours to wait for).
pub fn members(pgid: u32) -> Vec<Member> {
    // A group with no process at all (the usual end of an attempt) is known from one signal-0
    // probe, without reading the stat of every process on the machine (a few hundred files on a
    // busy host, most of a manual run's system calls). Permission refused, or a group that exists,
    // is looked at in full.
    if let Some(group) = i32::try_from(pgid).ok().and_then(Pid::from_raw)
        && rustix::process::test_kill_process_group(group) == Err(rustix::io::Errno::SRCH)
    {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<Member> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = stat(pid)?;
            (stat.pgrp == pgid && stat.state != 'Z' && stat.state != 'X').then_some(Member {
                pid,
                name: stat.name,
            })
        })
        .collect();
    found.sort_by_key(|m| m.pid);
    found
}

/// Whether the recorded group `leader` is still ours to signal: its leader is the process recorded
/// (same start time, same boot), or the leader is gone and processes of its group remain. Linux never
/// hands out a pid that is still in use as a process group id, so a group whose leader's pid is free
/// is still the group recorded. When the pid now belongs to another process, the group is not ours.
pub fn group_is_ours(leader: &Identity) -> bool {
    if !leader.same_boot() {
        return false;
    }
    match stat(leader.pid) {
        Some(now) if now.start == leader.start => true,
        Some(_) => false,
        None => !members(leader.pid).is_empty(),
    }
}

/// The processes of the recorded group that are still running, if the group is still ours.
pub fn remaining(leader: &Identity) -> Vec<Member> {
    if group_is_ours(leader) {
        members(leader.pid)
    } else {
        Vec::new()
    }
}

/// Signals every process of the group led by `pgid`. ESRCH only means they are all gone already.
pub fn signal_group(pgid: u32, signal: Signal) {
    if let Some(group) = i32::try_from(pgid).ok().and_then(Pid::from_raw) {
        let _ = kill_process_group(group, signal);
    }
}

/// How often a stop looks whether the group has emptied.
const POLL: Duration = Duration::from_millis(20);

/// What [`stop_group`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stopped {
    /// The processes found running when it began.
    pub found: Vec<Member>,
    /// The signals sent, in order ("SIGTERM", "SIGKILL").
    pub signals: Vec<&'static str>,
}

/// Stops what is left of the recorded group: SIGTERM, up to `grace` for it to empty, then SIGKILL.
/// Nothing is signalled when the group is not ours any more (see [`group_is_ours`]). Blocking: for
/// the settling of a dead run, where no event loop waits on it.
pub fn stop_group(leader: &Identity, grace: Duration) -> Stopped {
    let found = remaining(leader);
    if found.is_empty() {
        return Stopped::default();
    }
    let mut stopped = Stopped {
        found,
        signals: vec!["SIGTERM"],
    };
    signal_group(leader.pid, Signal::TERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        std::thread::sleep(POLL);
        if members(leader.pid).is_empty() {
            return stopped;
        }
    }
    // Checked again: in the grace the pid may have been freed and handed to someone else.
    if group_is_ours(leader) && !members(leader.pid).is_empty() {
        signal_group(leader.pid, Signal::KILL);
        stopped.signals.push("SIGKILL");
    }
    stopped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_an_identity_that_is_running() {
        let own = Identity::own().expect("/proc is there");
        assert_eq!(own.pid, std::process::id());
        assert!(own.is_running());
        let other = Identity {
            start: own.start + 1,
            ..own.clone()
        };
        assert!(!other.is_running(), "another start time is another process");
        let elsewhere = Identity {
            boot: "another-boot".into(),
            ..own
        };
        assert!(
            !elsewhere.is_running(),
            "ticks of another boot match nothing"
        );
    }

    #[test]
    fn a_group_is_listed_while_it_has_a_process_and_empty_once_it_has_none() {
        use std::os::unix::process::CommandExt;
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("start sleep");
        let pgid = sleeper.id();
        let found = members(pgid);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].pid, pgid);
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        assert!(members(pgid).is_empty(), "reaped: the group is gone");
    }

    #[test]
    fn a_recycled_pid_is_never_signalled() {
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("start sleep");
        let real = Identity::of(sleeper.id()).expect("identity");
        let recycled = Identity {
            start: real.start.saturating_sub(1),
            ..real.clone()
        };
        assert!(!group_is_ours(&recycled));
        let stopped = stop_group(&recycled, Duration::from_millis(10));
        assert_eq!(stopped, Stopped::default());
        assert!(
            Identity::of(sleeper.id()).is_some_and(|i| i == real),
            "still alive"
        );
        let _ = sleeper.kill();
        let _ = sleeper.wait();
    }
}
