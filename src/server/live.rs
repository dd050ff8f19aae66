//! A run's events as Server-Sent Events: what the run page's script follows. Each event line of
//! `events.jsonl` is sent once as it is written (`event: event`), then `event: end` after the run's
//! last line (its `run_finished`, or whatever was written once the store records the run as ended),
//! and the stream closes. Bounded: a cap on streams open at once, a lifetime after which
//! the browser reconnects where it left off (`Last-Event-ID` is a byte offset into the file). A
//! server that stops closes its streams at once, without `end`: the browser reconnects the same way.
//! Must not hold a store connection or a request slot while it waits for more.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;

use super::http::{AppState, blocking};
use super::source::Source;
use crate::run::RunStatus;

/// Streams open at once; more are answered 503 (the browser tries again later by itself).
pub(super) const STREAMS: usize = 64;

/// How often a stream looks for new lines.
const POLL: Duration = Duration::from_millis(200);

/// How long one stream stays open; the browser then reconnects from its last event.
const LIFETIME: Duration = Duration::from_secs(600);

/// How often a stream asks the store whether its run has ended. The record says so for every run;
/// the events do not always (a skipped or missed slot has none, a run settled after its owner died
/// may have no `run_finished` line), and a stream that waited for one would never end.
const STATUS_CHECK: Duration = Duration::from_secs(1);

/// Follows run `id#seq` from byte `from` of its events. The caller has checked the run exists.
pub(super) fn follow(state: &AppState, id: String, seq: i64, from: u64) -> Response {
    let Ok(permit) = Arc::clone(&state.streams).try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many live streams\n").into_response();
    };
    let follow = Follow {
        source: Arc::clone(&state.source),
        id,
        seq,
        offset: from,
        queue: VecDeque::new(),
        ended: false,
        settled: false,
        next_check: Instant::now(),
        until: Instant::now() + LIFETIME,
        stopping: state.stopping.clone(),
        _permit: permit,
    };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let event = follow.next().await?;
        Some((Ok::<Event, Infallible>(event), follow))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

struct Follow {
    source: Arc<dyn Source>,
    id: String,
    seq: i64,
    offset: u64,
    queue: VecDeque<Event>,
    ended: bool,
    /// The store records the run as ended: what is left to send is what its files hold now.
    settled: bool,
    next_check: Instant,
    until: Instant,
    /// The server's stop: the stream closes, so that its connection can.
    stopping: watch::Receiver<bool>,
    /// Held while the stream is open: its place among [`STREAMS`].
    _permit: OwnedSemaphorePermit,
}

impl Follow {
    /// The next event to send; `None` closes the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if self.ended || Instant::now() >= self.until || *self.stopping.borrow() {
                return None;
            }
            // Asked before the read below: a run's files are written before the store records its
            // end, so once the store has it, that read sees every line the run will write.
            if !self.settled && Instant::now() >= self.next_check {
                self.next_check = Instant::now() + STATUS_CHECK;
                self.settled = self.run_has_ended().await;
            }
            let source = Arc::clone(&self.source);
            let (id, seq, offset) = (self.id.clone(), self.seq, self.offset);
            let chunk = match blocking(move || source.events_from(&id, seq, offset)).await {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => {
                    tracing::warn!("following {}#{} failed: {e}", self.id, self.seq);
                    // An ended run's unreadable events will not become readable: the browser is
                    // told it is over rather than left to reconnect for good.
                    if self.settled {
                        self.end();
                        continue;
                    }
                    return None;
                }
                None => return None,
            };
            let nothing_new = chunk.lines.is_empty();
            let last = chunk.lines.len().saturating_sub(1);
            for (n, line) in chunk.lines.into_iter().enumerate() {
                let event = Event::default().event("event").data(line);
                // The offset names where the next line starts; only the chunk's last line knows it.
                let event = if n == last {
                    event.id(chunk.offset.to_string())
                } else {
                    event
                };
                self.queue.push_back(event);
            }
            self.offset = chunk.offset;
            if chunk.finished || (self.settled && nothing_new) {
                self.end();
            }
            if self.queue.is_empty() {
                let stopping = &mut self.stopping;
                tokio::select! {
                    () = tokio::time::sleep(POLL) => {}
                    // The guard it returns is dropped at once; the loop's top sees the stop. (A
                    // sender gone disables this branch rather than waking the loop for good.)
                    Ok(_) = stopping.wait_for(|stop| *stop) => {}
                }
            }
        }
    }

    fn end(&mut self) {
        self.queue
            .push_back(Event::default().event("end").data("ended"));
        self.ended = true;
    }

    /// Whether the store records the run as ended, or no longer has it. A failure to ask is not an
    /// end: the next check asks again.
    async fn run_has_ended(&self) -> bool {
        let source = Arc::clone(&self.source);
        let (id, seq) = (self.id.clone(), self.seq);
        match blocking(move || source.run_status(&id, seq)).await {
            Some(Ok(status)) => !status.is_some_and(RunStatus::is_active),
            Some(Err(e)) => {
                tracing::warn!("the status of {}#{} is unknown: {e}", self.id, self.seq);
                false
            }
            None => false,
        }
    }
}
