//! `jobsctl prune [<id>] [--dry-run]`: applies the specs' retention (`keep_last`, `keep_days`), oldest runs
//! first, never a run in flight or one whose lock is held; also removes directories left without a row
//! and those a scheduler start set aside under `runs/<job>/.orphaned/`.

use serde::Serialize;

use super::Ctx;
use super::output::{Output, Report, Style, View};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::retention::prune_job;
use crate::run::run_name;
use crate::spec::model::RetentionSpec;

pub fn run(ctx: &Ctx, id: Option<&str>, dry_run: bool) -> Result<Report> {
    let now = ctx.clock.now();
    let mut catalog = Catalog::open(&ctx.home, now)?;
    let retention_of = |job: &crate::catalog::Job| {
        job.spec
            .as_ref()
            .map(|s| s.retention.clone())
            .unwrap_or_default()
    };
    let targets: Vec<(String, RetentionSpec)> = match id {
        Some(id) => vec![(id.to_owned(), retention_of(catalog.job(id)?))],
        None => catalog
            .jobs
            .iter()
            .map(|job| (job.id().to_owned(), retention_of(job)))
            .collect(),
    };
    let runs_root = ctx.home.runs_dir();
    let mut jobs = Vec::new();
    for (id, retention) in targets {
        let pruned = prune_job(
            &mut *catalog.store,
            &runs_root,
            &id,
            &retention,
            now,
            dry_run,
        )?;
        // Set aside at a scheduler start because the store had no record of them; only an explicit
        // prune removes them (the scheduler's own retention never does).
        let set_aside = crate::artifacts::rundir::set_aside_dirs(&ctx.home, &id);
        if !dry_run {
            for dir in &set_aside {
                std::fs::remove_dir_all(dir).map_err(|e| Error::io("remove", dir, e))?;
            }
        }
        jobs.push(PrunedJob {
            job_id: id,
            keep_last: retention.keep_last,
            keep_days: retention.keep_days,
            runs: pruned.runs,
            orphans: pruned
                .orphans
                .iter()
                .map(|p| ctx.home.display_path(p))
                .collect(),
            set_aside: set_aside.iter().map(|p| ctx.home.display_path(p)).collect(),
        });
    }
    let view = PruneView {
        dry_run,
        runs: jobs.iter().map(|j| j.runs.len()).sum(),
        orphans: jobs.iter().map(|j| j.orphans.len()).sum(),
        set_aside: jobs.iter().map(|j| j.set_aside.len()).sum(),
        jobs,
    };
    Report::view(&view, &ctx.out)
}

/// What went (or, with `--dry-run`, would go), per job and in all.
#[derive(Serialize)]
struct PruneView {
    dry_run: bool,
    jobs: Vec<PrunedJob>,
    runs: usize,
    orphans: usize,
    set_aside: usize,
}

#[derive(Serialize)]
struct PrunedJob {
    job_id: String,
    keep_last: Option<u32>,
    keep_days: Option<u32>,
    /// The seqs of the runs removed, oldest first.
    runs: Vec<i64>,
    /// Directories with no run recorded, as the home shows them.
    orphans: Vec<String>,
    /// Directories a scheduler start set aside, as the home shows them.
    set_aside: Vec<String>,
}

impl View for PruneView {
    fn render(&self, out: &Output) -> String {
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        let mut human = String::new();
        for job in &self.jobs {
            for seq in &job.runs {
                human.push_str(&format!("{verb} {}\n", run_name(&job.job_id, *seq)));
            }
            for orphan in &job.orphans {
                human.push_str(&format!(
                    "{verb} {orphan} (a directory with no run recorded)\n"
                ));
            }
            for dir in &job.set_aside {
                human.push_str(&format!(
                    "{verb} {dir} (set aside at a scheduler start: the store had no record of it)\n"
                ));
            }
        }
        let (runs, leftovers) = (self.runs, self.orphans + self.set_aside);
        let summary = match (runs + leftovers, self.dry_run) {
            (0, _) => "nothing to prune".to_owned(),
            (_, true) => {
                format!("dry run: {runs} run(s) and {leftovers} leftover directory(ies) would go")
            }
            (_, false) => format!("removed {runs} run(s) and {leftovers} leftover directory(ies)"),
        };
        human.push_str(&out.paint(Style::Bold, &summary));
        human.push('\n');
        human
    }
}
