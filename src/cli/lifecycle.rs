//! `jobsctl pause | resume | disable | enable <id>`: the operator's state of a job, recorded with who,
//! when and why. A running scheduler sees the change within a second. `pause` and `disable` with
//! `--cancel` also cancel the job's runs in flight, as `jobsctl cancel --all` does.

use serde::Serialize;

use super::Ctx;
use super::cancel::{Cancelled, cancel_runs, in_flight, wait_bound};
use super::output::{Output, Report, View};
use crate::catalog::Catalog;
use crate::error::Result;
use crate::store::StateChange;

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
    let changed = change.changes(before);
    // Read after the change: a run claimed up to it is in the list, and none can be claimed by the
    // scheduler after it.
    let stops_runs = matches!(change, StateChange::Pause | StateChange::Disable);
    let runs = if cancel.is_some() || stops_runs {
        in_flight(&*catalog.store, id)?
    } else {
        Vec::new()
    };
    let cancelled = match cancel {
        Some(Cancelling { wait }) => {
            let why = match reason {
                Some(reason) => format!("job {}: {reason}", verb(change)),
                None => format!("job {}", verb(change)),
            };
            Some(cancel_runs(
                ctx,
                &mut *catalog.store,
                id,
                &runs,
                &by,
                Some(&why),
                wait.then(|| wait_bound(kill_grace)),
            )?)
        }
        None => None,
    };
    let catchup = match change {
        StateChange::Resume { catchup } => catchup,
        _ => None,
    };
    // An unchanged state keeps who, when and why as first recorded: nothing new is reported for them.
    let view = LifecycleView {
        id,
        state: if changed {
            after(change)
        } else {
            before.as_str()
        },
        previous: before.as_str(),
        changed,
        by: changed.then_some(by.as_str()),
        reason: reason.filter(|_| changed),
        catchup: catchup.filter(|_| changed),
        runs_go_on: cancelled.is_none() && stops_runs && !runs.is_empty(),
        cancelled,
        change,
    };
    let error = view.cancelled.as_ref().and_then(Cancelled::error);
    Ok(Report::view(&view, &ctx.out)?.with_error(error))
}

/// The change made (or found made already), and the runs it cancelled with `--cancel`.
#[derive(Serialize)]
struct LifecycleView<'a> {
    id: &'a str,
    state: &'a str,
    previous: &'a str,
    changed: bool,
    by: Option<&'a str>,
    reason: Option<&'a str>,
    catchup: Option<crate::policy::Catchup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancelled: Option<Cancelled<'a>>,
    #[serde(skip)]
    change: StateChange,
    /// Without `--cancel`, a pause or disable leaves runs in flight going.
    #[serde(skip)]
    runs_go_on: bool,
}

fn verb(change: StateChange) -> &'static str {
    match change {
        StateChange::Pause => "paused",
        StateChange::Resume { .. } => "resumed",
        StateChange::Disable => "disabled",
        StateChange::Enable => "enabled",
    }
}

/// The state a change leads to.
fn after(change: StateChange) -> &'static str {
    match change {
        StateChange::Pause => "paused",
        StateChange::Resume { .. } | StateChange::Enable => "active",
        StateChange::Disable => "disabled",
    }
}

impl View for LifecycleView<'_> {
    fn render(&self, _: &Output) -> String {
        let mut human = self.outcome_line();
        match self.change {
            _ if !self.changed => {}
            StateChange::Pause => human.push_str(
                "its slots are recorded as skipped until `jobsctl resume`; manual runs still work\n",
            ),
            StateChange::Resume { .. } => {
                if let Some(mode) = self.catchup {
                    human.push_str(&format!(
                        "the scheduler makes up for the slots skipped while paused ({mode})\n"
                    ));
                }
            }
            StateChange::Disable => human
                .push_str("nothing runs until `jobsctl enable`; `jobsctl run --force` overrides\n"),
            StateChange::Enable => {}
        }
        if let Some(cancelled) = &self.cancelled {
            if cancelled.is_empty() {
                human.push_str("no run was in flight\n");
            }
            human.push_str(&cancelled.render());
        } else if self.runs_go_on {
            let id = self.id;
            let (command, retries) = if self.change == StateChange::Pause {
                ("pause", "a scheduled run starts no further retry")
            } else {
                ("disable", "it starts no further retry")
            };
            human.push_str(&format!(
                "its run in flight goes on ({retries}); `jobsctl cancel {id}` (or `jobs {command} {id} --cancel`) stops it\n"
            ));
        }
        human
    }
}

impl LifecycleView<'_> {
    fn outcome_line(&self) -> String {
        let (id, before) = (self.id, self.previous);
        if self.changed {
            format!("{id} {} (was {before})\n", verb(self.change))
        } else if matches!(self.change, StateChange::Resume { .. }) {
            let hint = if before == "disabled" {
                "; `jobsctl enable` starts it again"
            } else {
                ""
            };
            format!("{id} is not paused (it is {before}): nothing changed{hint}\n")
        } else {
            format!(
                "{id} is {before} already: nothing changed (who, when and why are kept; see `jobsctl show {id}`)\n"
            )
        }
    }
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
    format!("{user}@{}", crate::run::host())
}
