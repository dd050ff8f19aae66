//! The server itself: axum on the runtime it is started from, its routes (`/metrics`, `/healthz`,
//! `/readyz`, `/api/...`, the dashboard's pages), the token check, a cap on requests in flight and a
//! time limit on each, and a stop that lets the responses in flight finish, within a bound.
//! Read-only: every route answers from its [`Source`] on a blocking thread. Must not hold anything the
//! scheduler's loop waits for.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinHandle;

use super::access::{Listen, authorized};
use super::dashboard;
use super::extract::Api;
use super::source::{Answer, Route, Source};
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// Requests answered at once; more wait for a slot, up to [`REQUEST_TIMEOUT`].
const IN_FLIGHT: usize = 32;

/// The longest one request may take, waiting for a slot included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections open at once (a live event stream holds one).
const CONNECTIONS: usize = 256;

/// The longest a client may take to send a request's head, and to send the next one on a kept-alive
/// connection.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The most a request's head may hold; the server reads no bodies.
const HEAD_BYTES: usize = 16 * 1024;

/// The longest a stop waits for the connections open to finish the responses they are sending (a live
/// stream is told to end at once); what is left then is cut.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The most runs one page of `/api/jobs/<id>/runs` lists.
const MAX_LIMIT: u32 = 1000;

#[derive(Clone)]
pub(super) struct AppState {
    pub(super) source: Arc<dyn Source>,
    metrics: Arc<Metrics>,
    token: Option<Arc<str>>,
    slots: Arc<Semaphore>,
    /// Places for live event streams, apart from `slots`: a stream outlives its request.
    pub(super) streams: Arc<Semaphore>,
    /// Turns true when the server stops: a live stream then ends, so its connection can close.
    pub(super) stopping: watch::Receiver<bool>,
}

/// A server that runs until [`Server::stop`].
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `listen` and starts serving on the current runtime.
    pub async fn start(
        listen: &Listen,
        source: Arc<dyn Source>,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen.addr)
            .await
            .map_err(|e| Error::Usage {
                message: format!("cannot listen on {}: {e}", listen.addr),
            })?;
        let addr = listener.local_addr().map_err(|e| Error::Internal {
            message: format!("the listening socket has no address: {e}"),
        })?;
        let (stopping, stop_seen) = watch::channel(false);
        let state = AppState {
            source,
            metrics,
            token: listen.token.as_deref().map(Arc::from),
            slots: Arc::new(Semaphore::new(IN_FLIGHT)),
            streams: Arc::new(Semaphore::new(super::live::STREAMS)),
            stopping: stop_seen,
        };
        let router = router(state);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(accept(listener, router, stopped, stopping));
        tracing::info!(address = %addr, "listening on http://{addr}");
        Ok(Self {
            addr,
            stop: Some(stop),
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, ends the live streams, lets the responses in flight finish for up to
    /// [`STOP_GRACE`], and returns; never later than just after it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let bound = STOP_GRACE + Duration::from_secs(1);
        if tokio::time::timeout(bound, &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}

/// Accepts connections until told to stop, each served on a task of its own, at most
/// [`CONNECTIONS`] at once (one more is closed at once); at the stop, each connection finishes the
/// response it is sending and closes, and this returns once all have, or after [`STOP_GRACE`]: so
/// the process does not exit in the middle of a response, nor wait long for a slow one.
async fn accept(
    listener: tokio::net::TcpListener,
    router: Router,
    mut stopped: oneshot::Receiver<()>,
    stopping: watch::Sender<bool>,
) {
    let places = Arc::new(Semaphore::new(CONNECTIONS));
    let stop_seen = stopping.subscribe();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stopped => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: wait rather than spin.
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(place) = Arc::clone(&places).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let mut stop_seen = stop_seen.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                // A client that sends its request's head slowly (or never) is let go.
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(HEAD_BYTES)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = async {
                    // The guard it returns is dropped here, before the wait below.
                    let _ = stop_seen.wait_for(|stop| *stop).await;
                } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(STOP_GRACE, connection).await;
                }
            }
            drop(place);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    // Every connection holds a place until it is done: all places free, all are.
    let all = u32::try_from(CONNECTIONS).unwrap_or(u32::MAX);
    if tokio::time::timeout(STOP_GRACE, places.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "some connections were still answering {} s after the stop; they are cut",
            STOP_GRACE.as_secs()
        );
    }
}

fn router(state: AppState) -> Router {
    let guarded = Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .route("/api/jobs", get(jobs))
        .route("/api/jobs/{id}", get(job))
        .route("/api/jobs/{id}/runs", get(runs))
        .route("/api/jobs/{id}/runs/{seq}", get(run))
        .route("/api/jobs/{id}/runs/{seq}/events", get(events))
        .route("/api/overview", get(overview))
        .route("/api/graph", get(graph))
        .route("/", get(dashboard::jobs_page))
        .route("/graph", get(dashboard::graph_page))
        .route("/jobs/{id}", get(dashboard::job_page))
        .route("/jobs/{id}/runs/{seq}", get(dashboard::run_page))
        .route("/assets/{name}", get(dashboard::asset))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard));
    Router::new()
        // Alive says nothing about the home, so it needs no token: what a supervisor probes.
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(guarded)
        .fallback(not_found)
        .with_state(state)
}

/// The token (when one is set), then a slot among the requests in flight, then the time limit.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let header = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok());
        if !authorized(token, header) {
            let mut response =
                (StatusCode::UNAUTHORIZED, "a bearer token is required\n").into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    let answered = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let Ok(_slot) = state.slots.acquire().await else {
            return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
        };
        next.run(request).await
    })
    .await;
    answered.unwrap_or_else(|_| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the request took too long\n",
        )
            .into_response()
    })
}

pub(super) async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// Runs `f` on a blocking thread (the sources read the store and the disk).
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let source = Arc::clone(&state.source);
    let metrics = Arc::clone(&state.metrics);
    let text = blocking(move || source.gauges().map(|gauges| metrics.render(&gauges))).await;
    match text {
        Some(Ok(text)) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Some(Err(e)) => {
            tracing::warn!("a scrape failed: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()
        }
        None => (StatusCode::INTERNAL_SERVER_ERROR, "the scrape failed\n").into_response(),
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    let source = Arc::clone(&state.source);
    match blocking(move || source.ready()).await {
        Some(Ok(())) => "ready\n".into_response(),
        Some(Err(why)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
        None => (StatusCode::INTERNAL_SERVER_ERROR, "the check failed\n").into_response(),
    }
}

async fn answer(state: AppState, route: Route) -> Response {
    let source = Arc::clone(&state.source);
    match blocking(move || source.answer(&route)).await {
        Some(Answer::Json(status, body)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(body),
        )
            .into_response(),
        Some(Answer::Lines(text)) => (
            [(header::CONTENT_TYPE, "application/jsonl; charset=utf-8")],
            text,
        )
            .into_response(),
        None => (StatusCode::INTERNAL_SERVER_ERROR, "the request failed\n").into_response(),
    }
}

async fn overview(State(state): State<AppState>) -> Response {
    answer(state, Route::Overview).await
}

async fn graph(State(state): State<AppState>) -> Response {
    answer(state, Route::Graph).await
}

async fn jobs(State(state): State<AppState>) -> Response {
    answer(state, Route::Jobs).await
}

async fn job(State(state): State<AppState>, Api(Path(id)): Api<Path<String>>) -> Response {
    answer(state, Route::Job { id }).await
}

#[derive(Deserialize)]
struct RunsQuery {
    status: Option<String>,
    limit: Option<u32>,
    before: Option<i64>,
}

async fn runs(
    State(state): State<AppState>,
    Api(Path(id)): Api<Path<String>>,
    Api(Query(query)): Api<Query<RunsQuery>>,
) -> Response {
    let statuses = query
        .status
        .map(|s| {
            s.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let limit = query.limit.map(|n| n.clamp(1, MAX_LIMIT));
    answer(
        state,
        Route::Runs {
            id,
            statuses,
            limit,
            before: query.before,
        },
    )
    .await
}

async fn run(
    State(state): State<AppState>,
    Api(Path((id, seq))): Api<Path<(String, i64)>>,
) -> Response {
    answer(state, Route::Run { id, seq }).await
}

#[derive(Deserialize)]
struct EventsQuery {
    /// Where a live stream starts: a byte offset into the run's events, as a page drew them.
    from: Option<u64>,
}

/// A run's events: JSON lines of what is written so far, or, asked for `text/event-stream` (as a
/// browser's `EventSource` does), a live stream until the run ends.
async fn events(
    State(state): State<AppState>,
    Api(Path((id, seq))): Api<Path<(String, i64)>>,
    Api(Query(query)): Api<Query<EventsQuery>>,
    headers: HeaderMap,
) -> Response {
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"));
    if !wants_stream {
        return answer(state, Route::Events { id, seq }).await;
    }
    // The run must exist before its id and number name a file.
    let source = Arc::clone(&state.source);
    let route = Route::Run {
        id: id.clone(),
        seq,
    };
    match blocking(move || source.answer(&route)).await {
        Some(Answer::Json(200, _)) => {}
        Some(Answer::Json(status, body)) => {
            return (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                axum::Json(body),
            )
                .into_response();
        }
        _ => return (StatusCode::INTERNAL_SERVER_ERROR, "the request failed\n").into_response(),
    }
    // A browser reconnecting says where it got to.
    let resumed = headers
        .get("last-event-id")
        .and_then(|h| h.to_str().ok())
        .and_then(|id| id.parse().ok());
    let from = resumed.or(query.from).unwrap_or(0);
    super::live::follow(&state, id, seq, from)
}
