//! `jobsctl replay <id> --run N`: a new run (trigger `replay`, linked to the original) with the original's
//! command, working directory and environment names, and the rest of the spec as it is now. Refused
//! when the spec's `run` section has changed since, unless `--force`.

use std::collections::BTreeMap;

use super::Ctx;
use super::output::Report;
use super::run::{Target, report, run_targets};
use crate::artifacts::Receipt;
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::run::Trigger;
use crate::runner::ClaimOf;

pub fn run(ctx: &Ctx, id: &str, seq: i64, force: bool) -> Result<Report> {
    let now = ctx.clock.now();
    let catalog = Catalog::open(&ctx.home, now)?;
    let (job, spec) = catalog.runnable(id, force)?;
    let dir = crate::artifacts::rundir::run_path(&ctx.home, id, seq);
    // A run executed on another node of a shared store has its receipt in the store's mirror. Its
    // working directory is a path of that node's home: the replay here works in this home's
    // `run.cwd` instead, and only the command and the environment's names are compared.
    let (receipt, elsewhere) = match Receipt::read(&dir) {
        Ok(receipt) => (receipt, false),
        Err(_) => match catalog
            .store
            .mirrored_receipt(id, seq)?
            .and_then(|json| serde_json::from_str::<Receipt>(&json).ok())
        {
            Some(receipt) => (receipt, true),
            None => return Err(not_a_run(&*catalog.store, id, seq)),
        },
    };

    let run = &spec.run;
    let cwd_now = ctx.home.working_dir(&run.cwd);
    let mut changed = Vec::new();
    if receipt.command.argv != run.command || receipt.command.shell != run.shell {
        changed.push("command");
    }
    if !elsewhere && std::path::Path::new(&receipt.cwd) != cwd_now {
        changed.push("cwd");
    }
    if receipt.env_names != run.env.keys().cloned().collect::<Vec<_>>() {
        changed.push("env");
    }
    if !changed.is_empty() && !force {
        return Err(Error::SpecChanged {
            id: id.to_owned(),
            seq,
            fields: changed,
        });
    }

    let mut replayed = spec.clone();
    replayed.run.command = receipt.command.argv.clone();
    replayed.run.shell = receipt.command.shell.clone();
    if !elsewhere {
        replayed.run.cwd = receipt.cwd.clone();
    }
    // Values are never recorded: the original's names take their values from the spec as it is now.
    replayed.run.env = run
        .env
        .iter()
        .filter(|(name, _)| receipt.env_names.contains(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect::<BTreeMap<_, _>>();
    let target = Target {
        id: id.to_owned(),
        spec: replayed,
        spec_hash: job.spec_hash().to_owned(),
        of: ClaimOf {
            trigger: Trigger::Replay,
            slot: None,
            due_at: None,
            replay_of: Some(seq),
            slot_count: 1,
            no_trigger: false,
        },
    };
    let Catalog { store, .. } = catalog;
    let outcomes = run_targets(ctx, store, vec![target], true)?;
    report(ctx, outcomes)
}

/// Why `id#seq` has no run to show: the number is a record of slots that did not run, or nothing at all.
pub fn not_a_run(store: &dyn crate::store::Store, id: &str, seq: i64) -> Error {
    let not_found = Error::RunNotFound {
        id: id.to_owned(),
        seq,
    };
    let Ok(Some(row)) = store.run_row(id, seq) else {
        return not_found;
    };
    let status = match row.status {
        crate::run::RunStatus::Skipped => "skipped",
        crate::run::RunStatus::Missed => "missed",
        _ => return not_found,
    };
    // Recorded as `skipped_overlap`, `skipped_paused`, `misfire`.
    let reason = row
        .error_code
        .as_deref()
        .map(|code| code.strip_prefix("skipped_").unwrap_or(code).to_owned())
        .unwrap_or_else(|| status.to_owned());
    Error::NotARun {
        id: id.to_owned(),
        seq,
        status,
        reason,
    }
}
