//! `jobsctl serve --listen ADDR`: the read-only server of a home with no scheduler in this process
//! (a machine that only watches, or while no scheduler runs); and [`HomeSource`], what the server
//! (here or in `jobsctl scheduler --listen`) answers from: the same documents as `--json`, from the
//! same commands, and the gauges of `/metrics`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::Ctx;
use super::output::{Output, Report, envelope};
use crate::catalog::JobState;
use crate::clock::Clock;
use crate::error::{Error, Result, exit};
use crate::home::Home;
use crate::metrics::{Gauges, JobGauges, Metrics};
use crate::run::RunStatus;
use crate::scheduler::lock::OwnerLock;
use crate::server::source::{Artifact, EventChunk};
use crate::server::{Answer, Listen, Route, Server, Source};
use crate::store::{JobRow, OperatorState};

/// How long one reading of the gauges serves scrapes: a Prometheus scraping every second, or several
/// of them, cost the store one read a second.
const GAUGES_FRESH_FOR: Duration = Duration::from_secs(1);

pub fn run(ctx: &Ctx, listen: &Listen) -> Result<Report> {
    let runtime = super::ctx::async_runtime()?;
    let source: Arc<dyn Source> = Arc::new(HomeSource::new(
        ctx.home.clone(),
        Arc::clone(&ctx.clock),
        None,
    ));
    runtime.block_on(async {
        let server = Server::start(listen, source, Arc::new(Metrics::new())).await?;
        eprintln!("listening on http://{}", server.addr());
        super::run::stop_signal().await;
        server.stop().await;
        Ok::<(), Error>(())
    })?;
    Ok(Report::ok(json!({"stopped": true}), String::new()))
}

/// Where the server listens: the flags, or else the `server:` section of the home's `config.yaml`
/// (read now: a change takes a restart). A config that does not load gives no server settings, and
/// says so; `None` when neither asks for a server.
pub fn listen_from(
    ctx: &Ctx,
    listen: Option<String>,
    token_file: Option<std::path::PathBuf>,
) -> Result<Option<Listen>> {
    if let Some(addr) = listen {
        return Listen::new(&addr, token_file.as_deref()).map(Some);
    }
    let file = crate::config::load(&ctx.home);
    let server = match file.outcome {
        Ok(config) => config.server,
        Err(problems) => {
            if let Some(problem) = problems.first() {
                tracing::warn!(
                    "{} does not load ({}); its server settings are not used",
                    ctx.home.display_path(&file.path),
                    problem.brief()
                );
            }
            return Ok(None);
        }
    };
    let Some(addr) = server.listen else {
        return Ok(None);
    };
    let token = server.token_file.map(|path| ctx.home.root().join(path));
    Listen::new(&addr, token.as_deref())
        .map(Some)
        .map_err(|e| match e {
            Error::Usage { message } => Error::Usage {
                message: format!("config.yaml server: {message}"),
            },
            other => other,
        })
}

/// A home as the server sees it.
pub struct HomeSource {
    home: Home,
    clock: Arc<dyn Clock>,
    /// The scheduler this server belongs to (`pid@host`), if it is one's: then it is ready only while
    /// that scheduler owns the home.
    scheduler: Option<String>,
    gauges: Mutex<Option<(Instant, Gauges)>>,
}

impl HomeSource {
    pub fn new(home: Home, clock: Arc<dyn Clock>, scheduler: Option<String>) -> Self {
        Self {
            home,
            clock,
            scheduler,
            gauges: Mutex::new(None),
        }
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            home: self.home.clone(),
            out: Output {
                json: true,
                color: false,
            },
            clock: Arc::clone(&self.clock),
        }
    }

    /// The directory of run `id#seq`, when it is one `jobs` made: a job id that could name another
    /// path, or a link where a directory should be, has none.
    /// The events of a run executed on another node of a shared store, from its mirror; `offset`
    /// counts the run's events there rather than bytes (a run's events are read from one place or
    /// the other, never both).
    fn mirrored_events_from(&self, id: &str, seq: i64, offset: u64) -> Result<EventChunk> {
        let nothing = EventChunk {
            offset,
            ..EventChunk::default()
        };
        if !crate::spec::checks::is_valid_id(id) || seq < 1 {
            return Ok(nothing);
        }
        let store = crate::store::open_home(&self.home)?;
        if !store.mirrors() {
            return Ok(nothing);
        }
        let after = i64::try_from(offset).unwrap_or(i64::MAX);
        let events = store.mirrored_events(id, seq, after)?;
        let is_end = |line: &str| {
            serde_json::from_str::<serde_json::Value>(line)
                .is_ok_and(|event| event["type"] == "run_finished")
        };
        let Some(&(last, _)) = events.last() else {
            // Nothing new: the run may have ended at `offset` (a stream resumed after its end).
            let before = store.mirrored_events(id, seq, after.saturating_sub(1))?;
            return Ok(EventChunk {
                finished: after > 0 && before.last().is_some_and(|(_, line)| is_end(line)),
                ..nothing
            });
        };
        let finished = events.iter().any(|(_, line)| is_end(line));
        Ok(EventChunk {
            lines: events.into_iter().map(|(_, line)| line).collect(),
            offset: u64::try_from(last).unwrap_or(offset),
            finished,
        })
    }

    fn run_dir(&self, id: &str, seq: i64) -> Option<std::path::PathBuf> {
        if !crate::spec::checks::is_valid_id(id) || seq < 1 {
            return None;
        }
        let job_dir = crate::artifacts::rundir::job_dir(&self.home, id);
        let dir = job_dir.join(seq.to_string());
        let real = |d: &std::path::Path| crate::artifacts::rundir::ensure_real_dir(d).is_ok();
        (real(&job_dir) && real(&dir)).then_some(dir)
    }

    fn read_gauges(&self) -> Result<Gauges> {
        let store = crate::store::open_home(&self.home)?;
        let mut in_flight: HashMap<String, u64> = HashMap::new();
        for run in store.active_runs()? {
            *in_flight.entry(run.job_id).or_default() += 1;
        }
        let ends: HashMap<String, _> = store
            .last_ends()?
            .into_iter()
            .map(|ends| (ends.job_id.clone(), ends))
            .collect();
        let jobs = store
            .job_rows()?
            .into_iter()
            .map(|row| {
                let ends = ends.get(&row.id);
                JobGauges {
                    state: row_state(&row).as_str(),
                    runs_in_flight: in_flight.get(&row.id).copied().unwrap_or(0),
                    problems: row
                        .load_error
                        .as_ref()
                        .and_then(|e| e.as_array().map(|a| a.len() as u64))
                        .unwrap_or(0),
                    last_success: ends.and_then(|e| e.success),
                    last_failure: ends.and_then(|e| e.failure),
                    next_slot: row.next_slot,
                    job_id: row.id,
                }
            })
            .collect();
        let outbox = store.outbox_counts()?;
        Ok(Gauges {
            jobs,
            notifications_pending: outbox.pending,
            notifications_given_up: outbox.given_up,
            scheduler_up: OwnerLock::holder(&self.home).is_some(),
        })
    }
}

/// The most of a receipt or summary the dashboard shows: both are small unless something is wrong.
const ARTIFACT_SHOWN_BYTES: u64 = 1 << 20;

/// How many of each job's last runs the dashboard's strip shows.
const RECENT_OUTCOMES: usize = 20;

/// `/api/overview`: the jobs as `list` has them, with what a person scanning for trouble wants
/// beside each: the schedule in words, the next slot in the job's zone, the last outcomes (newest
/// first) and the failure streak among them, the spec's problems in brief; and whether a scheduler
/// runs.
fn overview(ctx: &Ctx, home: &Home) -> Result<Report> {
    let now = ctx.clock.now();
    let catalog = crate::catalog::Catalog::open(home, now)?;
    let mut recent: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for (job, seq, status) in catalog.store.recent_outcomes(RECENT_OUTCOMES)? {
        recent
            .entry(job)
            .or_default()
            .push(json!({"run": seq, "status": status.as_str()}));
    }
    let jobs: Vec<serde_json::Value> = catalog
        .jobs
        .iter()
        .map(|job| {
            let outcomes = recent.remove(job.id()).unwrap_or_default();
            // As `show` counts it: failures since the last success, whatever was skipped between.
            let streak = outcomes
                .iter()
                .map(|o| o["status"].as_str().unwrap_or_default())
                .take_while(|status| *status != "succeeded")
                .filter(|status| matches!(*status, "failed" | "timed_out" | "interrupted"))
                .count();
            let schedule = job.schedule.as_ref();
            let next = job.next_slot(now);
            json!({
                "id": job.id(),
                "description": job.spec.as_ref().and_then(|s| s.description.as_deref()),
                "state": job.state().as_str(),
                "schedule": schedule.map(|s| s.expression()),
                "schedule_words": schedule.map(|s| s.describe()),
                "timezone": schedule.map(|s| s.timezone().name()),
                "next_slot": next.map(crate::clock::rfc3339),
                "next_slot_local": next.zip(schedule).map(|(at, s)| super::output::local(at, s.timezone())),
                "problems": job.problems.iter().map(|p| p.brief()).collect::<Vec<_>>(),
                "recent": outcomes,
                "failure_streak": streak,
            })
        })
        .collect();
    let scheduler = OwnerLock::holder(home);
    Ok(Report::ok(
        json!({
            "jobs": jobs,
            "total": catalog.jobs.len(),
            "scheduler": {"running": scheduler.is_some(), "owner": scheduler},
            "now": crate::clock::rfc3339(now),
        }),
        String::new(),
    ))
}

/// A job's state from its row alone (a scrape must not load every spec file, as the catalog does):
/// the row keeps the last good spec, and whether the file is there and valid.
fn row_state(row: &JobRow) -> JobState {
    /// The one field of a stored spec the state needs: read without building the whole document
    /// (at 10,000 jobs, parsing each spec into a JSON value was four tenths of a scrape).
    #[derive(serde::Deserialize)]
    struct Enabled {
        #[serde(default = "enabled_by_default")]
        enabled: bool,
    }
    fn enabled_by_default() -> bool {
        true
    }
    let Some(spec) = row.spec_json.as_deref() else {
        return if row.present {
            JobState::Invalid
        } else {
            JobState::Removed
        };
    };
    let enabled = serde_json::from_str::<Enabled>(spec).map_or(true, |s| s.enabled);
    if !row.present {
        JobState::Removed
    } else if row.state == OperatorState::Disabled || !enabled {
        JobState::Disabled
    } else if row.state == OperatorState::Paused {
        JobState::Paused
    } else {
        JobState::Active
    }
}

/// The HTTP status of a command's outcome, by its exit code.
fn status_of(outcome: &Result<Report>) -> u16 {
    let error = match outcome {
        Ok(report) => report.error.as_ref(),
        Err(error) => Some(error),
    };
    match error.map(Error::exit_code) {
        None => 200,
        Some(exit::NOT_FOUND) => 404,
        Some(exit::USAGE) => 400,
        Some(exit::CONFLICT) => 409,
        // A command that completed with a finding (an invalid spec) still answered.
        Some(exit::INVALID_SPEC) => 200,
        Some(_) => 500,
    }
}

impl Source for HomeSource {
    fn answer(&self, route: &Route) -> Answer {
        let ctx = self.ctx();
        let outcome = match route {
            Route::Jobs => super::list::run(&ctx),
            Route::Job { id } => super::show::run(&ctx, id),
            Route::Overview => overview(&ctx, &self.home),
            Route::Runs {
                id,
                statuses,
                limit,
                before,
            } => {
                let parsed: std::result::Result<Vec<RunStatus>, Error> = statuses
                    .iter()
                    .map(|s| {
                        RunStatus::parse(s).ok_or_else(|| Error::Usage {
                            message: format!("status {s:?} is not a run status"),
                        })
                    })
                    .collect();
                parsed.and_then(|statuses| {
                    super::history::run(
                        &ctx,
                        Some(id),
                        statuses,
                        limit.unwrap_or(20),
                        None,
                        *before,
                        None,
                    )
                })
            }
            Route::Run { id, seq } => super::show_run::run(&ctx, id, *seq),
            Route::Graph => super::graph::run(&ctx, false),
            Route::Events { id, seq } => match super::tail::event_lines(&ctx, id, *seq) {
                Ok(lines) => return Answer::Lines(lines),
                Err(e) => Err(e),
            },
        };
        Answer::Json(status_of(&outcome), envelope(&outcome))
    }

    fn artifact(&self, id: &str, seq: i64, which: Artifact) -> Result<Option<String>> {
        let name = match which {
            Artifact::Receipt => crate::artifacts::rundir::RECEIPT_FILE,
            Artifact::Summary => crate::artifacts::rundir::SUMMARY_FILE,
        };
        let Some(dir) = self.run_dir(id, seq) else {
            // Executed on another node of a shared store: its receipt is in the store's mirror
            // (its summary is not).
            if which != Artifact::Receipt || !crate::spec::checks::is_valid_id(id) {
                return Ok(None);
            }
            let store = crate::store::open_home(&self.home)?;
            return store.mirrored_receipt(id, seq);
        };
        let path = dir.join(name);
        let file = match crate::artifacts::rundir::open_read(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(file, ARTIFACT_SHOWN_BYTES),
            &mut text,
        )
        .map_err(|e| Error::io("read", &path, e))?;
        Ok(Some(text))
    }

    fn events_from(&self, id: &str, seq: i64, offset: u64) -> Result<EventChunk> {
        let Some(dir) = self.run_dir(id, seq) else {
            return self.mirrored_events_from(id, seq, offset);
        };
        super::tail::events_from(&dir, offset)
    }

    fn run_status(&self, id: &str, seq: i64) -> Result<Option<RunStatus>> {
        let store = crate::store::open_home(&self.home)?;
        let Some(run) = store.run_row(id, seq)? else {
            return Ok(None);
        };
        if !run.status.is_active() || crate::runner::recover::run_is_alive(&self.home, &run) {
            return Ok(Some(run.status));
        }
        // Its owner is gone: settled as any read settles it, the store then has its end.
        drop(store);
        let catalog = self.ctx().catalog_with_runs(Some(id))?;
        Ok(catalog.store.run_row(id, seq)?.map(|run| run.status))
    }

    fn gauges(&self) -> Result<Gauges> {
        let mut cached = match self.gauges.lock() {
            Ok(cached) => cached,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((at, gauges)) = cached.as_ref()
            && at.elapsed() < GAUGES_FRESH_FOR
        {
            return Ok(gauges.clone());
        }
        let gauges = self.read_gauges()?;
        *cached = Some((Instant::now(), gauges.clone()));
        Ok(gauges)
    }

    fn ready(&self) -> std::result::Result<(), String> {
        let store = crate::store::open_home(&self.home).map_err(|e| e.to_string())?;
        let owner = store.owner().map_err(|e| e.to_string())?;
        let Some(me) = &self.scheduler else {
            return Ok(());
        };
        if OwnerLock::holder(&self.home).as_deref() != Some(me.as_str()) {
            return Err("this scheduler does not hold the home's lock".into());
        }
        let now = self.clock.now();
        match owner {
            Some(owner) if (now - owner.heartbeat_at).num_seconds() <= 10 => Ok(()),
            Some(owner) => Err(format!(
                "the scheduler's last heartbeat was {} s ago",
                (now - owner.heartbeat_at).num_seconds()
            )),
            None => Err("the scheduler has not recorded itself yet".into()),
        }
    }
}
