//! `jobsctl pause | resume | disable | enable <id>`: the operator's state of a job, recorded with who,
//! when and why. A running scheduler sees the change within a second. `pause` and `disable` with
//! `--cancel` also cancel the job's runs in flight, as `jobsctl cancel --all` does.

use serde_json::json;

use super::cancel::{cancel_runs, in_flight, wait_bound};
use super::entry::Ctx;
use super::output::Report;
use crate::catalog::Catalog;
use crate::error::Result;
use crate::store::{OperatorState, StateChange};

/// `--cancel` of `pause` and `disable`: whether to wait for the runs to end.
#[derive(Debug, Clone, Copy)]
pub struct Cancelling {
    pub wait: bool,
}

pub fn cancelling(cancel: bool, no_wait: bool) -> Option<Cancelling> {
    cancel.then_some(Cancelling { wait: !no_wait })
}

pub fn run(
    ctx: &Ctx,
    id: &str,
    change: StateChange,
    reason: Option<&str>,
    cancel: Option<Cancelling>,
) -> Result<Report> {
    let now = ctx.clock.now();
    let mut catalog = Catalog::open(&ctx.home, now)?;
    let kill_grace = catalog
        .job(id)?
        .spec
        .as_ref()
        .map(|spec| spec.run.kill_grace.as_duration());
    let by = operator();
    let before = catalog.store.change_state(id, change, &by, reason, now)?;
    let (verb, after) = match change {
        StateChange::Pause => ("paused", "paused"),
        StateChange::Resume { .. } => ("resumed", "active"),
        StateChange::Disable => ("disabled", "disabled"),
        StateChange::Enable => ("enabled", "active"),
    };
    let changed = change.changes(before);
    let mut human = if changed {
        format!("{id} {verb} (was {before})\n")
    } else if verb == "resumed" {
        let hint = if before == OperatorState::Disabled {
            "; `jobsctl enable` starts it again"
        } else {
            ""
        };
        format!("{id} is not paused (it is {before}): nothing changed{hint}\n")
    } else {
        format!(
            "{id} is {before} already: nothing changed (who, when and why are kept; see `jobsctl show {id}`)\n"
        )
    };
    match change {
        _ if !changed => {}
        StateChange::Pause => human.push_str(
            "its slots are recorded as skipped until `jobsctl resume`; manual runs still work\n",
        ),
        StateChange::Resume {
            catchup: Some(mode),
        } => {
            human.push_str(&format!(
                "the scheduler makes up for the slots skipped while paused ({mode})\n"
            ));
        }
        StateChange::Disable => {
            human.push_str("nothing runs until `jobsctl enable`; `jobsctl run --force` overrides\n")
        }
        _ => {}
    }
    let catchup = match change {
        StateChange::Resume { catchup } => catchup,
        _ => None,
    };
    // An unchanged state keeps who, when and why as first recorded: nothing new is reported for them.
    let (state, shown_by, shown_reason, catchup) = if changed {
        (after, Some(by.as_str()), reason, catchup)
    } else {
        (before.as_str(), None, None, None)
    };
    let mut data = json!({ "id": id, "state": state, "previous": before, "changed": changed, "by": shown_by, "reason": shown_reason, "catchup": catchup });
    let mut error = None;
    if let Some(Cancelling { wait }) = cancel {
        // Read after the change: a run claimed up to it is in the list, and none can be claimed by the
        // scheduler after it.
        let runs = in_flight(&*catalog.store, id)?;
        let why = match reason {
            Some(reason) => format!("job {verb}: {reason}"),
            None => format!("job {verb}"),
        };
        let cancelled = cancel_runs(
            ctx,
            &mut *catalog.store,
            id,
            &runs,
            &by,
            Some(&why),
            wait.then(|| wait_bound(kill_grace)),
        )?;
        if runs.is_empty() {
            human.push_str("no run was in flight\n");
        }
        human.push_str(&cancelled.human);
        data["cancelled"] = json!(cancelled.entries);
        error = cancelled.error;
    } else if matches!(change, StateChange::Pause | StateChange::Disable)
        && !in_flight(&*catalog.store, id)?.is_empty()
    {
        let (command, retries) = if change == StateChange::Pause {
            ("pause", "a scheduled run starts no further retry")
        } else {
            ("disable", "it starts no further retry")
        };
        human.push_str(&format!(
            "its run in flight goes on ({retries}); `jobsctl cancel {id}` (or `jobs {command} {id} --cancel`) stops it\n"
        ));
    }
    Ok(Report { data, human, error })
}

/// Who made the change: the name of the real user (from /etc/passwd, since `$USER` is unset under
/// cron, systemd and `env -i`, and stale under some `su`), and the host.
pub(super) fn operator() -> String {
    let uid = rustix::process::getuid().as_raw();
    let user = crate::users::user_by_uid(uid)
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .unwrap_or_else(|| format!("uid {uid}"));
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    format!("{user}@{host}")
}
