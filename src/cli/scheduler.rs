//! `jobsctl scheduler [--dry-run]`: runs the daemon in the foreground until SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::Ctx;
use super::output::Report;
use crate::clock::SystemClock;
use crate::error::Result;
use crate::scheduler::{Options, Shutdown, run as run_scheduler};

pub fn run(ctx: &Ctx, dry_run: bool, shutdown_grace: Duration) -> Result<Report> {
    let runtime = super::ctx::async_runtime()?;
    let options = Options {
        dry_run,
        shutdown_grace,
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
    if dry_run {
        let mut human = String::from("dry run: nothing was changed\n");
        if summary.dry_run_plan.is_empty() {
            human.push_str("no jobs are scheduled\n");
        }
        for line in &summary.dry_run_plan {
            human.push_str(line);
            human.push('\n');
        }
        return Ok(Report::ok(
            json!({ "dry_run": true, "plan": summary.dry_run_plan }),
            human,
        ));
    }
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
