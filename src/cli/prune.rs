//! `jobsctl prune [<id>] [--dry-run]`: applies the specs' retention (`keep_last`, `keep_days`), oldest runs
//! first, never a run in flight or one whose lock is held; also removes directories left without a row
//! and those a scheduler start set aside under `runs/<job>/.orphaned/`.

use serde_json::json;

use super::entry::Ctx;
use super::output::{Report, Style};
use crate::catalog::Catalog;
use crate::error::Result;
use crate::retention::prune_job;
use crate::run::run_name;

pub fn run(ctx: &Ctx, id: Option<&str>, dry_run: bool) -> Result<Report> {
    let now = ctx.clock.now();
    let mut catalog = Catalog::open(&ctx.home, now)?;
    let mut targets = Vec::new();
    match id {
        Some(id) => {
            let job = catalog.job(id)?;
            targets.push((
                id.to_owned(),
                job.spec
                    .as_ref()
                    .map(|s| s.retention.clone())
                    .unwrap_or_default(),
            ));
        }
        None => {
            for job in &catalog.jobs {
                targets.push((
                    job.id().to_owned(),
                    job.spec
                        .as_ref()
                        .map(|s| s.retention.clone())
                        .unwrap_or_default(),
                ));
            }
        }
    }
    let runs_root = ctx.home.runs_dir();
    let mut human = String::new();
    let mut entries = Vec::new();
    let (mut total_runs, mut total_orphans, mut total_set_aside) = (0, 0, 0);
    for (id, retention) in targets {
        let pruned = prune_job(
            &mut *catalog.store,
            &runs_root,
            &id,
            &retention,
            now,
            dry_run,
        )?;
        for seq in &pruned.runs {
            human.push_str(&format!(
                "{} {}\n",
                if dry_run { "would remove" } else { "removed" },
                run_name(&id, *seq)
            ));
        }
        for orphan in &pruned.orphans {
            human.push_str(&format!(
                "{} {} (a directory with no run recorded)\n",
                if dry_run { "would remove" } else { "removed" },
                ctx.home.display_path(orphan)
            ));
        }
        // Set aside at a scheduler start because the store had no record of them; only an explicit
        // prune removes them (the scheduler's own retention never does).
        let set_aside = crate::artifacts::rundir::set_aside_dirs(&ctx.home, &id);
        for dir in &set_aside {
            if !dry_run {
                std::fs::remove_dir_all(dir)
                    .map_err(|e| crate::error::Error::io("remove", dir, e))?;
            }
            human.push_str(&format!(
                "{} {} (set aside at a scheduler start: the store had no record of it)\n",
                if dry_run { "would remove" } else { "removed" },
                ctx.home.display_path(dir)
            ));
        }
        total_runs += pruned.runs.len();
        total_orphans += pruned.orphans.len();
        total_set_aside += set_aside.len();
        entries.push(json!({
            "job_id": id,
            "keep_last": retention.keep_last,
            "keep_days": retention.keep_days,
            "runs": pruned.runs,
            "orphans": pruned.orphans.iter().map(|p| ctx.home.display_path(p)).collect::<Vec<_>>(),
            "set_aside": set_aside.iter().map(|p| ctx.home.display_path(p)).collect::<Vec<_>>(),
        }));
    }
    let leftovers = total_orphans + total_set_aside;
    let summary = match (total_runs + leftovers, dry_run) {
        (0, _) => "nothing to prune".to_owned(),
        (_, true) => {
            format!("dry run: {total_runs} run(s) and {leftovers} leftover directory(ies) would go")
        }
        (_, false) => {
            format!("removed {total_runs} run(s) and {leftovers} leftover directory(ies)")
        }
    };
    human.push_str(&ctx.out.paint(Style::Bold, &summary));
    human.push('\n');
    Ok(Report::ok(
        json!({ "dry_run": dry_run, "jobs": entries, "runs": total_runs, "orphans": total_orphans, "set_aside": total_set_aside }),
        human,
    ))
}
