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

    fn read_gauges(&self) -> Result<Gauges> {
        let store = crate::store::open(&self.home.db_path())?;
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

/// A job's state from its row alone (a scrape must not load every spec file, as the catalog does):
/// the row keeps the last good spec, and whether the file is there and valid.
fn row_state(row: &JobRow) -> JobState {
    let enabled = row
        .spec_json
        .as_deref()
        .and_then(|spec| serde_json::from_str::<serde_json::Value>(spec).ok())
        .is_none_or(|spec| spec["enabled"] != json!(false));
    if !row.present {
        JobState::Removed
    } else if row.spec_json.is_none() {
        JobState::Invalid
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
            Route::Runs {
                id,
                statuses,
                limit,
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
                    super::history::run(&ctx, Some(id), statuses, limit.unwrap_or(20), None)
                })
            }
            Route::Run { id, seq } => super::show_run::run(&ctx, id, *seq),
            Route::Events { id, seq } => match super::tail::event_lines(&ctx, id, *seq) {
                Ok(lines) => return Answer::Lines(lines),
                Err(e) => Err(e),
            },
        };
        Answer::Json(status_of(&outcome), envelope(&outcome))
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
        let store = crate::store::open(&self.home.db_path()).map_err(|e| e.to_string())?;
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
