//! `jobsctl scheduler [--dry-run]`: runs the daemon in the foreground until SIGINT or SIGTERM.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::Ctx;
use super::output::Report;
use crate::clock::{Clock, SystemClock, rfc3339};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::policy::{Decision, Fire};
use crate::run::run_name;
use crate::scheduler::DryRun;
use crate::scheduler::plan::{Claim, Note, What};
use crate::scheduler::{Options, Shutdown, run as run_scheduler};

pub fn run(
    ctx: &Ctx,
    dry_run: bool,
    shutdown_grace: Duration,
    listen: Option<crate::server::Listen>,
    cluster: crate::scheduler::ClusterOptions,
) -> Result<Report> {
    if dry_run {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let plan = crate::scheduler::dry_run(&ctx.home, &clock)?;
        return dry_run_report(&ctx.home, &plan);
    }
    let runtime = super::ctx::async_runtime()?;
    let server = listen.map(|listen| crate::scheduler::ServerSetup {
        listen,
        source: std::sync::Arc::new(super::serve::HomeSource::new(
            ctx.home.clone(),
            Arc::new(SystemClock),
            Some(crate::run::owner()),
        )),
    });
    let options = Options {
        shutdown_grace,
        server,
        cluster,
        ..Options::default()
    };
    let home = ctx.home.clone();
    let shutdown = {
        let _inside = runtime.enter();
        shutdown_on_signals()
    };
    let summary = runtime.block_on(run_scheduler(
        home,
        options,
        Arc::new(SystemClock),
        shutdown,
    ))?;
    // Runs still winding down must not keep the process alive past this point.
    runtime.shutdown_timeout(Duration::from_secs(1));
    let human = format!(
        "scheduler stopped: {} run(s) started, {} interrupted at start, {} interrupted at shutdown\n",
        summary.runs_started, summary.interrupted_at_start, summary.interrupted_at_shutdown
    );
    Ok(Report::ok(
        json!({
            "runs_started": summary.runs_started,
            "interrupted_at_start": summary.interrupted_at_start,
            "interrupted_at_shutdown": summary.interrupted_at_shutdown,
        }),
        human,
    ))
}

/// The dry run as lines, one a finding, each starting with the run or job it is about; `--json` has
/// the same lines beside the values they are rendered from.
fn dry_run_report(home: &Home, plan: &DryRun) -> Result<Report> {
    let lines = dry_run_lines(home, plan);
    let mut human = String::from("dry run: nothing was changed\n");
    if lines.is_empty() {
        human.push_str("no jobs are scheduled\n");
    }
    for line in &lines {
        human.push_str(line);
        human.push('\n');
    }
    let mut data = serde_json::to_value(plan).map_err(|e| Error::Internal {
        message: format!("cannot render the dry run as JSON: {e}"),
    })?;
    data["dry_run"] = json!(true);
    data["plan"] = json!(lines);
    Ok(Report::ok(data, human))
}

fn dry_run_lines(home: &Home, plan: &DryRun) -> Vec<String> {
    let mut lines = Vec::new();
    for run in &plan.settle {
        lines.push(format!(
            "{}: {} but no process holds its lock: would be settled first (kept as finished if its artifacts say so, else interrupted)",
            run_name(&run.job_id, run.seq),
            run.status
        ));
    }
    for dir in &plan.set_aside {
        lines.push(format!(
            "{}: {} has no record in the store: would be moved to runs/{}/{}/ and its number kept taken",
            run_name(&dir.job_id, dir.seq),
            home.display_path(&dir.path),
            dir.job_id,
            crate::artifacts::rundir::SET_ASIDE_DIR
        ));
    }
    let mut claims: HashMap<&str, Vec<&Claim>> = HashMap::new();
    for claim in &plan.tick.claims {
        claims.entry(claim.job_id.as_str()).or_default().push(claim);
    }
    for job in &plan.jobs {
        let id = job.job_id.as_str();
        let Some(next_slot) = job.next_slot else {
            lines.push(format!("{id}: its schedule has no further slot"));
            continue;
        };
        let mine = claims.get(id).map_or(&[][..], Vec::as_slice);
        if mine.is_empty() {
            lines.push(format!("{id}: next slot {} (not due)", rfc3339(next_slot)));
        }
        for claim in mine {
            lines.push(format!("{id}: would {}", describe(claim)));
        }
    }
    for note in &plan.tick.notes {
        match note {
            Note::CatchupLimited { job_id, slots } => lines.push(format!(
                "{job_id}: catch-up limited to the latest {} of {slots} slots",
                crate::scheduler::plan::MAX_CATCHUP_RUNS
            )),
        }
    }
    lines
}

fn describe(claim: &Claim) -> String {
    let fire = |verb: &str, f: &Fire| {
        if f.count > 1 {
            format!(
                "{verb} one {} run for {} standing for {} slots from {}",
                f.trigger.as_str(),
                rfc3339(f.slot),
                f.count,
                rfc3339(f.first_slot)
            )
        } else {
            format!(
                "{verb} a {} run for {}",
                f.trigger.as_str(),
                rfc3339(f.slot)
            )
        }
    };
    match &claim.what {
        What::Slots(Decision::Fire(f)) => fire("start", f),
        What::Slots(Decision::Queue(f)) => fire("queue", f),
        What::Slots(Decision::Replace(f)) => fire("replace the oldest run with", f),
        What::Slots(Decision::Skip {
            first_slot,
            last_slot,
            count,
            reason,
        }) => format!(
            "record {count} slot(s) {}..{} as skipped ({})",
            rfc3339(*first_slot),
            rfc3339(*last_slot),
            reason.as_str()
        ),
        What::Slots(Decision::Miss {
            first_slot,
            last_slot,
            count,
        }) => format!(
            "record {count} slot(s) {}..{} as missed (past misfire_grace)",
            rfc3339(*first_slot),
            rfc3339(*last_slot)
        ),
        What::CatchUp { fire: f, queued } => fire(if *queued { "queue" } else { "start" }, f),
        What::Retry { of, queued, .. } => format!(
            "{} a retry of the interrupted run {}",
            if *queued { "queue" } else { "start" },
            run_name(&claim.job_id, *of)
        ),
    }
}

/// Every SIGINT or SIGTERM is one shutdown request: the first lets runs finish within the grace, a
/// second stops them at once. The handlers are installed here, at call time (inside the runtime), so a
/// signal during start-up meets them rather than the default action that would kill the process.
fn shutdown_on_signals() -> Shutdown {
    use tokio::signal::unix::{SignalKind, signal};
    let (handle, shutdown) = crate::scheduler::shutdown::channel();
    let streams = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    let (Ok(mut interrupt), Ok(mut terminate)) = streams else {
        tracing::error!(
            "cannot install the SIGINT and SIGTERM handlers; stop the scheduler with SIGKILL"
        );
        return shutdown;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = interrupt.recv() => handle.request(),
                _ = terminate.recv() => handle.request(),
            }
        }
    });
    shutdown
}
