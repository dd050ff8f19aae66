//! `jobs scheduler [--dry-run]`: runs the daemon in the foreground until SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::entry::Ctx;
use super::output::Report;
use super::run::stop_signal;
use crate::clock::SystemClock;
use crate::error::Result;
use crate::scheduler::{Options, run as run_scheduler};

pub fn run(ctx: &Ctx, dry_run: bool, shutdown_grace: Duration) -> Result<Report> {
    let runtime = super::entry::async_runtime()?;
    let options = Options {
        dry_run,
        shutdown_grace,
        ..Options::default()
    };
    let home = ctx.home.clone();
    let stop = {
        let _inside = runtime.enter();
        stop_signal()
    };
    let summary = runtime.block_on(run_scheduler(home, options, Arc::new(SystemClock), stop))?;
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
