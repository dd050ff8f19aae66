//! `jobs pause | resume | disable | enable <id>`: the operator's state of a job, recorded with who,
//! when and why. A running scheduler sees the change within a second.

use serde_json::json;

use super::entry::Ctx;
use super::output::Report;
use crate::catalog::Catalog;
use crate::clock::millis;
use crate::error::Result;
use crate::store::StateChange;

pub fn run(ctx: &Ctx, id: &str, change: StateChange<'_>, reason: Option<&str>) -> Result<Report> {
    let now = ctx.clock.now();
    let mut catalog = Catalog::open(&ctx.home, now)?;
    catalog.job(id)?;
    let by = operator();
    let before = catalog
        .store
        .change_state(id, change, &by, reason, millis(now))?;
    let (verb, after) = match change {
        StateChange::Pause => ("paused", "paused"),
        StateChange::Resume { .. } => ("resumed", "active"),
        StateChange::Disable => ("disabled", "disabled"),
        StateChange::Enable => ("enabled", "active"),
    };
    if !change.changes(&before) {
        let hint = if before == "disabled" && verb == "resumed" {
            "; `jobs enable` starts it again"
        } else {
            ""
        };
        let human = if verb == "resumed" {
            format!("{id} is not paused (it is {before}): nothing changed{hint}\n")
        } else {
            format!(
                "{id} is {before} already: nothing changed (who, when and why are kept; see `jobs show {id}`)\n"
            )
        };
        let data = json!({ "id": id, "state": before, "previous": before, "changed": false, "catchup": null });
        return Ok(Report::ok(data, human));
    }
    let mut human = format!("{id} {verb} (was {before})\n");
    match change {
        StateChange::Pause => human.push_str(
            "its slots are recorded as skipped until `jobs resume`; manual runs still work\n",
        ),
        StateChange::Resume {
            catchup: Some(mode),
        } => {
            human.push_str(&format!(
                "the scheduler makes up for the slots skipped while paused ({mode})\n"
            ));
        }
        StateChange::Disable => {
            human.push_str("nothing runs until `jobs enable`; `jobs run --force` overrides\n")
        }
        _ => {}
    }
    let catchup = match change {
        StateChange::Resume { catchup } => catchup,
        _ => None,
    };
    let data = json!({ "id": id, "state": after, "previous": before, "changed": true, "by": by, "reason": reason, "catchup": catchup });
    Ok(Report::ok(data, human))
}

/// Who made the change: the name of the real user (from /etc/passwd, since `$USER` is unset under
/// cron, systemd and `env -i`, and stale under some `su`), and the host.
fn operator() -> String {
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
