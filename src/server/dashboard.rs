//! The dashboard: server-rendered pages of the jobs, one job, and one run, drawn from the same
//! documents the JSON API answers (so a page never shows what the API would not), with askama's
//! HTML escaping on every value a job could have written. Must not read the home itself, nor send a
//! script or style from anywhere but `/assets/`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::extract::Page;
use super::http::{AppState, blocking};
use super::layout::{self, Drawing};
use super::source::{Answer, Artifact, Route};
use crate::clock::relative;

/// What every page is allowed to load: its own assets, nothing inline, nothing from elsewhere. A value
/// that escaped escaping still could not run.
const CONTENT_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Runs listed on one page of a job's history.
const PAGE: u32 = 50;

/// The statuses the history can be filtered by, in the order the filter offers them.
const FILTERS: [&str; 9] = [
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
    "interrupted",
    "running",
    "queued",
    "skipped",
    "missed",
];

// ---- the documents, as the API answers them ----

#[derive(Deserialize, Default)]
#[serde(default)]
struct OverviewDoc {
    jobs: Vec<OverviewJob>,
    scheduler: SchedulerDoc,
    now: Option<DateTime<Utc>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SchedulerDoc {
    running: bool,
    owner: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OverviewJob {
    id: String,
    description: Option<String>,
    state: String,
    schedule: Option<String>,
    schedule_words: Option<String>,
    timezone: Option<String>,
    next_slot: Option<DateTime<Utc>>,
    next_slot_local: Option<String>,
    problems: Vec<String>,
    recent: Vec<OutcomeDoc>,
    failure_streak: usize,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OutcomeDoc {
    run: i64,
    status: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JobDoc {
    id: String,
    description: Option<String>,
    state: String,
    spec_path: Option<String>,
    schedule: Option<ScheduleDoc>,
    next_slots: Vec<SlotDoc>,
    counts: CountsDoc,
    failure_streak: i64,
    last_success: Option<RunDoc>,
    last_failure: Option<RunDoc>,
    problems: Vec<Value>,
    run: Value,
    policy: Value,
    retry: Value,
    retention: Value,
    upstream: Vec<EdgeDoc>,
    downstream: Vec<EdgeDoc>,
}

/// `jobsctl --json graph`: the jobs on some edge, and the edges.
#[derive(Deserialize, Default)]
#[serde(default)]
struct GraphDoc {
    nodes: Vec<NodeDoc>,
    edges: Vec<EdgeDoc>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NodeDoc {
    id: String,
    state: String,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct EdgeDoc {
    from: String,
    to: String,
    on: Vec<String>,
    all: bool,
}

impl EdgeDoc {
    /// When the edge triggers, in words.
    fn when(&self) -> String {
        if self.all {
            "once every job of its after_all succeeded".into()
        } else {
            format!("on {}", self.on.join(", "))
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ScheduleDoc {
    description: Option<String>,
    expression: Option<String>,
    timezone: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SlotDoc {
    local: String,
    utc: Option<DateTime<Utc>>,
    note: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CountsDoc {
    runs: i64,
    succeeded: i64,
    failed: i64,
    skipped: i64,
    missed: i64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct HistoryDoc {
    entries: Vec<RunDoc>,
    total: i64,
    total_capped: bool,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct RunDoc {
    job_id: String,
    run: i64,
    status: String,
    trigger: String,
    slot: Option<DateTime<Utc>>,
    claimed_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    duration_ms: Option<u64>,
    exit_code: Option<i64>,
    signal: Option<Value>,
    attempts: Option<i64>,
    error: Option<ErrorDoc>,
    replay_of: Option<i64>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct ErrorDoc {
    code: String,
    message: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RunPageDoc {
    run: RunDoc,
    notifications: Vec<NotificationDoc>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NotificationDoc {
    event: String,
    notifier: String,
    state: String,
    tries: Vec<Value>,
    last_error: Option<String>,
}

// ---- the pages ----

#[derive(Template)]
#[template(path = "dashboard/jobs.html")]
struct JobsPage {
    title: String,
    scheduler: String,
    scheduler_up: bool,
    counts: Vec<(String, usize)>,
    jobs: Vec<JobRow>,
}

struct JobRow {
    id: String,
    description: String,
    state: String,
    schedule: String,
    words: String,
    next_local: String,
    next_relative: String,
    last: Option<Cell>,
    strip: Vec<Cell>,
    streak: usize,
    problems: Vec<String>,
}

/// One square of the strip of outcomes, or the last run.
struct Cell {
    href: String,
    status: String,
    title: String,
}

#[derive(Template)]
#[template(path = "dashboard/job.html")]
struct JobPage {
    title: String,
    id: String,
    description: String,
    state: String,
    spec_path: String,
    schedule: String,
    words: String,
    next_slots: Vec<(String, String, String)>,
    counts: Vec<(&'static str, i64)>,
    streak: i64,
    last_success: String,
    last_failure: String,
    problems: Vec<String>,
    spec: String,
    filters: Vec<(String, String, bool)>,
    runs: Vec<RunRow>,
    total: String,
    older: Option<String>,
    /// The jobs whose runs trigger this one's, and those this one's runs trigger: (job, when).
    upstream: Vec<(String, String)>,
    downstream: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "dashboard/graph.html")]
struct GraphPage {
    title: String,
    drawing: Drawing,
    /// The edges as text too: (upstream, downstream, when).
    edges: Vec<(String, String, String)>,
}

struct RunRow {
    name: String,
    href: String,
    trigger: String,
    status: String,
    started: String,
    duration: String,
    exit: String,
    attempts: String,
    error: String,
}

#[derive(Template)]
#[template(path = "dashboard/run.html")]
struct RunPage {
    title: String,
    job_id: String,
    job_href: String,
    name: String,
    status: String,
    trigger: String,
    slot: String,
    started: String,
    finished: String,
    duration: String,
    exit: String,
    error: String,
    attempts: Vec<AttemptRow>,
    notifications: Vec<(String, String, String, String)>,
    summary: Option<String>,
    receipt: Option<String>,
    events: Vec<EventRow>,
    live: bool,
    stream_url: String,
    run_url: String,
    offset: u64,
}

struct AttemptRow {
    attempt: String,
    status: String,
    started: String,
    duration: String,
    exit: String,
    error: String,
}

/// One line of the run's events as the page shows it; the live script draws new ones the same way.
struct EventRow {
    at: String,
    kind: String,
    text: String,
}

#[derive(Template)]
#[template(path = "dashboard/problem.html")]
struct ProblemPage {
    title: String,
    message: String,
}

// ---- handlers ----

pub(super) async fn jobs_page(State(state): State<AppState>) -> Response {
    let (status, doc) = match fetch(&state, Route::Overview).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let doc: OverviewDoc = serde_json::from_value(doc).unwrap_or_default();
    let now = doc.now.unwrap_or_else(Utc::now);
    let mut counts: Vec<(String, usize)> = Vec::new();
    for job in &doc.jobs {
        match counts.iter_mut().find(|(state, _)| *state == job.state) {
            Some((_, n)) => *n += 1,
            None => counts.push((job.state.clone(), 1)),
        }
    }
    let jobs = doc
        .jobs
        .into_iter()
        .map(|job| {
            let cell = |o: &OutcomeDoc| Cell {
                href: run_href(&job.id, o.run),
                status: o.status.clone(),
                title: format!("{}#{} {}", job.id, o.run, o.status),
            };
            let last = job.recent.first().map(cell);
            // Oldest first, so the strip reads left to right like time.
            let strip = job.recent.iter().rev().map(cell).collect();
            JobRow {
                description: job.description.clone().unwrap_or_default(),
                state: job.state.clone(),
                schedule: match (&job.schedule, &job.timezone) {
                    (Some(expression), Some(zone)) => format!("{expression} ({zone})"),
                    (Some(expression), None) => expression.clone(),
                    (None, _) if job.state == "invalid" => "invalid".into(),
                    (None, _) => "manual".into(),
                },
                words: job.schedule_words.clone().unwrap_or_default(),
                next_local: job.next_slot_local.clone().unwrap_or_else(|| "-".into()),
                next_relative: job
                    .next_slot
                    .map(|at| relative(at, now))
                    .unwrap_or_default(),
                last,
                strip,
                streak: job.failure_streak,
                problems: job.problems.clone(),
                id: job.id,
            }
        })
        .collect();
    let scheduler = match (&doc.scheduler.running, &doc.scheduler.owner) {
        (true, Some(owner)) => format!("scheduler running ({owner})"),
        (true, None) => "scheduler running".into(),
        (false, _) => "no scheduler running: nothing fires on schedule".into(),
    };
    page(
        status,
        &JobsPage {
            title: "all jobs".into(),
            scheduler,
            scheduler_up: doc.scheduler.running,
            counts,
            jobs,
        },
    )
}

#[derive(Deserialize)]
pub(super) struct JobQuery {
    status: Option<String>,
    before: Option<i64>,
}

pub(super) async fn job_page(
    State(state): State<AppState>,
    Page(Path(id)): Page<Path<String>>,
    Page(Query(query)): Page<Query<JobQuery>>,
) -> Response {
    let (status, doc) = match fetch(&state, Route::Job { id: id.clone() }).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let job: JobDoc = serde_json::from_value(doc).unwrap_or_default();
    let filter = query
        .status
        .filter(|s| FILTERS.contains(&s.as_str()))
        .map(|s| vec![s])
        .unwrap_or_default();
    let route = Route::Runs {
        id: id.clone(),
        statuses: filter.clone(),
        limit: Some(PAGE),
        before: query.before,
    };
    let history: HistoryDoc = match fetch(&state, route).await {
        Ok((_, doc)) => serde_json::from_value(doc).unwrap_or_default(),
        Err(response) => return response,
    };
    let now = Utc::now();
    let base = job_href(&id);
    let with_filter = |extra: &str| match filter.first() {
        Some(status) => format!("{base}?status={status}{extra}"),
        None if extra.is_empty() => base.clone(),
        None => format!("{base}?{}", extra.trim_start_matches('&')),
    };
    let older = (history.entries.len() == PAGE as usize)
        .then(|| history.entries.last().map(|r| r.run))
        .flatten()
        .map(|last| with_filter(&format!("&before={last}")));
    let mut filters = vec![("all".to_owned(), base.clone(), filter.is_empty())];
    filters.extend(FILTERS.iter().map(|s| {
        (
            (*s).to_owned(),
            format!("{base}?status={s}"),
            filter.first().map(String::as_str) == Some(*s),
        )
    }));
    let schedule = job.schedule.unwrap_or_default();
    let spec = serde_json::to_string_pretty(&serde_json::json!({
        "run": job.run,
        "policy": job.policy,
        "retry": job.retry,
        "retention": job.retention,
    }))
    .unwrap_or_default();
    let ended = |run: &Option<RunDoc>| {
        run.as_ref().map_or_else(
            || "-".to_owned(),
            |r| {
                let at = r.finished_at.or(r.started_at).or(r.claimed_at);
                format!(
                    "#{} {}",
                    r.run,
                    at.map(|at| relative(at, now)).unwrap_or_default()
                )
            },
        )
    };
    let total = if history.total_capped {
        format!("more than {}", history.total)
    } else {
        history.total.to_string()
    };
    page(
        status,
        &JobPage {
            title: id.clone(),
            description: job.description.unwrap_or_default(),
            state: job.state,
            spec_path: job.spec_path.unwrap_or_default(),
            schedule: match (&schedule.expression, &schedule.timezone) {
                (Some(e), Some(z)) => format!("{e} ({z})"),
                (Some(e), None) => e.clone(),
                (None, _) => "manual".into(),
            },
            words: schedule.description.unwrap_or_default(),
            next_slots: job
                .next_slots
                .iter()
                .map(|s| {
                    let when = s.utc.map(|at| relative(at, now)).unwrap_or_default();
                    let note = s.note.clone().unwrap_or_default();
                    (s.local.clone(), when, note)
                })
                .collect(),
            counts: vec![
                ("runs", job.counts.runs),
                ("succeeded", job.counts.succeeded),
                ("failed", job.counts.failed),
                ("slots skipped", job.counts.skipped),
                ("slots missed", job.counts.missed),
            ],
            streak: job.failure_streak,
            last_success: ended(&job.last_success),
            last_failure: ended(&job.last_failure),
            problems: job.problems.iter().map(problem_text).collect(),
            spec,
            filters,
            runs: history.entries.iter().map(|r| run_row(r, now)).collect(),
            total,
            older,
            upstream: job
                .upstream
                .iter()
                .map(|e| (e.from.clone(), e.when()))
                .collect(),
            downstream: job
                .downstream
                .iter()
                .map(|e| (e.to.clone(), e.when()))
                .collect(),
            id,
        },
    )
}

pub(super) async fn graph_page(State(state): State<AppState>) -> Response {
    let (status, doc) = match fetch(&state, Route::Graph).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let doc: GraphDoc = serde_json::from_value(doc).unwrap_or_default();
    let jobs: Vec<layout::Job> = doc
        .nodes
        .iter()
        .map(|n| layout::Job {
            id: n.id.clone(),
            state: n.state.clone(),
        })
        .collect();
    let links: Vec<layout::Link> = doc
        .edges
        .iter()
        .map(|e| layout::Link {
            from: e.from.clone(),
            to: e.to.clone(),
            on: e.on.clone(),
            all: e.all,
        })
        .collect();
    page(
        status,
        &GraphPage {
            title: "graph".into(),
            drawing: layout::lay_out(&jobs, &links),
            edges: doc
                .edges
                .iter()
                .map(|e| (e.from.clone(), e.to.clone(), e.when()))
                .collect(),
        },
    )
}

pub(super) async fn run_page(
    State(state): State<AppState>,
    Page(Path((id, seq))): Page<Path<(String, i64)>>,
) -> Response {
    let route = Route::Run {
        id: id.clone(),
        seq,
    };
    let (status, doc) = match fetch(&state, route).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let doc: RunPageDoc = serde_json::from_value(doc).unwrap_or_default();
    let source = Arc::clone(&state.source);
    let (job, run) = (id.clone(), seq);
    let read = blocking(move || {
        let receipt = source.artifact(&job, run, Artifact::Receipt);
        let summary = source.artifact(&job, run, Artifact::Summary);
        let events = source.events_from(&job, run, 0);
        (receipt, summary, events)
    })
    .await;
    let Some((receipt, summary, events)) = read else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "reading the run failed");
    };
    let receipt: Option<Value> = receipt
        .ok()
        .flatten()
        .and_then(|text| serde_json::from_str(&text).ok());
    let attempts = receipt
        .as_ref()
        .and_then(|r| r["attempts"].as_array())
        .map(|a| a.iter().map(attempt_row).collect())
        .unwrap_or_default();
    let events = events.unwrap_or_default();
    let run = &doc.run;
    // The store's record decides, not the events: a run can end without a `run_finished` line (a
    // skipped or missed slot has no events at all), and a page that called it live would follow it
    // for good.
    let live = matches!(run.status.as_str(), "queued" | "running");
    page(
        status,
        &RunPage {
            title: format!("{id}#{seq}"),
            job_href: job_href(&id),
            name: format!("{id}#{seq}"),
            status: run.status.clone(),
            trigger: match run.replay_of {
                Some(of) => format!("{} (replay of #{of})", run.trigger),
                None => run.trigger.clone(),
            },
            slot: instant_text(run.slot),
            started: instant_text(run.started_at),
            finished: instant_text(run.finished_at),
            duration: duration_text(run.duration_ms),
            exit: exit_text(run.exit_code, run.signal.as_ref()),
            error: run
                .error
                .as_ref()
                .map(|e| format!("{}: {}", e.code, e.message))
                .unwrap_or_default(),
            attempts,
            notifications: doc
                .notifications
                .iter()
                .map(|n| {
                    (
                        n.event.clone(),
                        n.notifier.clone(),
                        n.state.clone(),
                        format!(
                            "{} tries{}",
                            n.tries.len(),
                            n.last_error
                                .as_deref()
                                .map(|e| format!("; last: {e}"))
                                .unwrap_or_default()
                        ),
                    )
                })
                .collect(),
            summary: summary.ok().flatten(),
            receipt: receipt.and_then(|r| serde_json::to_string_pretty(&r).ok()),
            events: events.lines.iter().map(|l| event_row(l)).collect(),
            live,
            stream_url: format!("/api/jobs/{id}/runs/{seq}/events?from={}", events.offset),
            run_url: format!("/api/jobs/{id}/runs/{seq}"),
            offset: events.offset,
            job_id: id,
        },
    )
}

/// `/assets/<name>`: the stylesheet and the script, from the binary.
pub(super) async fn asset(Page(Path(name)): Page<Path<String>>) -> Response {
    let (body, kind) = match name.as_str() {
        "dashboard.css" => (
            include_str!("../../assets/dashboard.css"),
            "text/css; charset=utf-8",
        ),
        "live.js" => (
            include_str!("../../assets/live.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return super::http::not_found().await,
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

// ---- helpers ----

/// Asks the source for `route`; a failure is the error page the request answers.
async fn fetch(state: &AppState, route: Route) -> Result<(StatusCode, Value), Response> {
    let source = Arc::clone(&state.source);
    match blocking(move || source.answer(&route)).await {
        Some(Answer::Json(200, body)) => Ok((StatusCode::OK, body["data"].clone())),
        Some(Answer::Json(status, body)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = body["error"]["message"]
                .as_str()
                .unwrap_or("the request failed")
                .to_owned();
            Err(problem(status, &message))
        }
        Some(Answer::Lines(_)) | None => Err(problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request failed",
        )),
    }
}

/// The error page.
pub(super) fn problem(status: StatusCode, message: &str) -> Response {
    page(
        status,
        &ProblemPage {
            title: status.canonical_reason().unwrap_or("error").to_lowercase(),
            message: message.to_owned(),
        },
    )
}

fn page(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => {
            let mut response = (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html,
            )
                .into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_POLICY),
            );
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            headers.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            response
        }
        Err(e) => {
            tracing::error!("a dashboard page did not render: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page did not render\n",
            )
                .into_response()
        }
    }
}

fn job_href(id: &str) -> String {
    format!("/jobs/{id}")
}

fn run_href(id: &str, seq: i64) -> String {
    format!("/jobs/{id}/runs/{seq}")
}

fn run_row(run: &RunDoc, now: DateTime<Utc>) -> RunRow {
    let started = run.started_at.or(run.claimed_at);
    RunRow {
        name: format!("#{}", run.run),
        href: run_href(&run.job_id, run.run),
        trigger: run.trigger.clone(),
        status: run.status.clone(),
        started: started
            .map(|at| format!("{} ({})", crate::clock::rfc3339(at), relative(at, now)))
            .unwrap_or_default(),
        duration: duration_text(run.duration_ms),
        exit: exit_text(run.exit_code, run.signal.as_ref()),
        attempts: run.attempts.map(|a| a.to_string()).unwrap_or_default(),
        error: run
            .error
            .as_ref()
            .map(|e| e.code.clone())
            .unwrap_or_default(),
    }
}

fn attempt_row(attempt: &Value) -> AttemptRow {
    let text = |key: &str| attempt[key].as_str().unwrap_or_default().to_owned();
    AttemptRow {
        attempt: attempt["attempt"].to_string(),
        status: text("status"),
        started: text("started_at"),
        duration: duration_text(attempt["duration_ms"].as_u64()),
        exit: exit_text(attempt["exit_code"].as_i64(), Some(&attempt["signal"])),
        error: match (attempt["error_code"].as_str(), attempt["message"].as_str()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ => String::new(),
        },
    }
}

/// An event line for people: output as it was printed, anything else by its type and its facts.
fn event_row(line: &str) -> EventRow {
    let Ok(event) = serde_json::from_str::<Value>(line) else {
        return EventRow {
            at: String::new(),
            kind: "unreadable".into(),
            text: line.to_owned(),
        };
    };
    let kind = event["type"].as_str().unwrap_or("event").to_owned();
    let text = if kind == "output" {
        event["line"].as_str().unwrap_or_default().to_owned()
    } else {
        let mut facts: Vec<String> = Vec::new();
        if let Some(map) = event.as_object() {
            for (key, value) in map {
                if matches!(key.as_str(), "seq" | "ts" | "job_id" | "run" | "type")
                    || value.is_null()
                {
                    continue;
                }
                let value = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned);
                facts.push(format!("{key}={value}"));
            }
        }
        facts.join(" ")
    };
    let kind = match (kind.as_str(), event["stream"].as_str()) {
        ("output", Some(stream)) => stream.to_owned(),
        _ => kind,
    };
    EventRow {
        at: event["ts"].as_str().unwrap_or_default().to_owned(),
        kind,
        text,
    }
}

fn problem_text(problem: &Value) -> String {
    match (problem["message"].as_str(), problem["line"].as_u64()) {
        (Some(message), Some(line)) => format!(
            "{}:{}: {message}",
            line,
            problem["column"].as_u64().unwrap_or(0)
        ),
        (Some(message), None) => message.to_owned(),
        _ => problem.to_string(),
    }
}

fn instant_text(at: Option<DateTime<Utc>>) -> String {
    at.map(crate::clock::rfc3339).unwrap_or_else(|| "-".into())
}

fn duration_text(ms: Option<u64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1_000 => format!("{ms} ms"),
        Some(ms) if ms < 60_000 => format!("{:.1} s", ms as f64 / 1_000.0),
        Some(ms) => format!("{}m {}s", ms / 60_000, ms / 1_000 % 60),
    }
}

fn exit_text(code: Option<i64>, signal: Option<&Value>) -> String {
    match (code, signal.and_then(Value::as_str)) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => match signal.and_then(Value::as_i64) {
            Some(n) => format!("signal {n}"),
            None => "-".into(),
        },
    }
}
