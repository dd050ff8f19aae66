//! The queue of runs the leader claimed for any node to execute: a worker takes the runs its
//! labels allow with `FOR UPDATE SKIP LOCKED` (two workers never take one run, and neither waits
//! for the other), gives back those it never started, and hears of new ones through LISTEN/NOTIFY.
//! Must not decide what is claimed (the leader's tick does) nor run anything.

use std::sync::Arc;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;

use super::column::{Millis, instant};
use super::connection::{PgStore, Reconnect, in_place, pg_error};
use super::history::{RUN_COLUMNS, run_row};
use super::owner::STORE_NOW;
use crate::error::Result;
use crate::store::interface::{Prepare, QueueStore};
use crate::store::records::{NO_OWNER, Take, TakenRun};

/// The channel the leader notifies when it commits runs for the workers.
pub(super) const WORK_CHANNEL: &str = "jobs_work";

/// How long the listener waits for a notification before it checks whether anyone still listens.
const LISTEN_WAIT: Duration = Duration::from_secs(1);

/// How long the listener waits before connecting again after it lost its connection.
const RECONNECT_AFTER: Duration = Duration::from_secs(2);

impl QueueStore for PgStore {
    fn take_runs(&mut self, take: &Take<'_>, prepare: Prepare<'_>) -> Result<Vec<TakenRun>> {
        if take.limit == 0 {
            return Ok(Vec::new());
        }
        in_place(|| {
            let fail = |e| pg_error("take runs from the queue", e);
            // No store-wide write lock: the row locks are what keeps two workers apart, and taking
            // a run changes no count a claim decides by (the run was in flight from its claim).
            let mut tx = self.client.get_mut().transaction().map_err(fail)?;
            let limit = i64::try_from(take.limit).unwrap_or(i64::MAX);
            // A run whose spec names labels goes to a node with every one of them.
            let rows = tx
                .query(
                    &format!(
                        "SELECT {RUN_COLUMNS}, first_slot, last_slot, spec_json, {STORE_NOW} FROM runs
                         WHERE owner = $1 AND status IN ('queued', 'running')
                           AND NOT EXISTS (
                               SELECT 1 FROM jsonb_array_elements_text(
                                   COALESCE(spec_json::jsonb #> '{{run,nodes}}', '[]'::jsonb)) AS wanted (label)
                               WHERE NOT (wanted.label = ANY ($2)))
                         ORDER BY COALESCE(due_at, claimed_at), job_id, seq
                         LIMIT $3
                         FOR UPDATE SKIP LOCKED"
                    ),
                    &[&NO_OWNER, &take.labels, &limit],
                )
                .map_err(fail)?;
            let (owner_start, boot_id) = crate::store::records::claim_identity(take.owner);
            let promise = i64::try_from(take.dead_after.as_millis()).unwrap_or(i64::MAX);
            let mut taken = Vec::with_capacity(rows.len());
            let mut refused = None;
            for row in &rows {
                let mut run = run_row(row).map_err(fail)?;
                let first_slot = instant(row, 29).map_err(fail)?;
                let last_slot = instant(row, 30).map_err(fail)?;
                let spec_json: Option<String> = row.try_get(31).map_err(fail)?;
                let taken_at = row.try_get::<_, Millis>(32).map_err(fail)?.0;
                match prepare(&run.job_id, run.seq) {
                    Ok(dir) => {
                        run.owner = take.owner.to_owned();
                        run.node = Some(take.node.to_owned());
                        run.run_dir = Some(dir);
                        run.owner_start = owner_start.and_then(|s| u64::try_from(s).ok());
                        run.boot_id.clone_from(&boot_id);
                        taken.push(TakenRun {
                            row: run,
                            first_slot,
                            last_slot,
                            spec_json,
                            taken_at,
                        });
                    }
                    // This node cannot write the run's directory (a full disk, say): the run stays
                    // in the queue for another node, and this one takes nothing more for now.
                    Err(error) => {
                        refused = Some(error);
                        break;
                    }
                }
            }
            // One statement for every run taken: a round trip per run would cost a burst of due
            // runs as many round trips.
            let jobs: Vec<&str> = taken.iter().map(|t| t.row.job_id.as_str()).collect();
            let seqs: Vec<i64> = taken.iter().map(|t| t.row.seq).collect();
            let dirs: Vec<&str> = taken
                .iter()
                .map(|t| t.row.run_dir.as_deref().unwrap_or_default())
                .collect();
            if !jobs.is_empty() {
                tx.execute(
                    &format!(
                        "UPDATE runs SET owner = $4, node = $5, run_dir = u.dir, owner_start = $6,
                             boot_id = $7, seen_at = {STORE_NOW}, dead_after_ms = $8
                         FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u (job_id, seq, dir)
                         WHERE runs.job_id = u.job_id AND runs.seq = u.seq"
                    ),
                    &[
                        &jobs,
                        &seqs,
                        &dirs,
                        &take.owner,
                        &take.node,
                        &owner_start,
                        &boot_id,
                        &promise,
                    ],
                )
                .map_err(fail)?;
            }
            tx.commit().map_err(fail)?;
            match refused {
                Some(error) if taken.is_empty() => Err(error),
                _ => Ok(taken),
            }
        })
    }

    fn hand_back(&mut self, job_id: &str, seq: i64, owner: &str, queued: bool) -> Result<bool> {
        in_place(|| {
            let fail = |e| {
                pg_error(
                    format!(
                        "give {} back to the queue",
                        crate::run::run_name(job_id, seq)
                    ),
                    e,
                )
            };
            let mut tx = self.client.get_mut().transaction().map_err(fail)?;
            let given = tx
                .execute(
                    "UPDATE runs SET owner = $4, node = NULL, run_dir = NULL, owner_start = NULL,
                         boot_id = NULL, seen_at = NULL,
                         status = CASE WHEN $5 THEN 'queued' ELSE status END
                     WHERE job_id = $1 AND seq = $2 AND owner = $3 AND started_at IS NULL
                       AND status IN ('queued', 'running')",
                    &[&job_id, &seq, &owner, &NO_OWNER, &queued],
                )
                .map_err(fail)?;
            if given > 0 {
                tx.execute(&format!("NOTIFY {WORK_CHANNEL}"), &[])
                    .map_err(fail)?;
            }
            tx.commit().map_err(fail)?;
            Ok(given > 0)
        })
    }

    fn release_untaken(&mut self, owner: &str) -> Result<Vec<(String, i64)>> {
        in_place(|| {
            let fail = |e| pg_error("give back the slots no node took", e);
            let mut tx = self.write().map_err(fail)?;
            // Under the write lock every election and claim takes: no node can start leading, nor
            // a leader claim, between this look and the release.
            let others = tx
                .query_one(
                    &format!(
                        "SELECT COUNT(*) FROM nodes
                         WHERE owner <> $1 AND heartbeat_at > {STORE_NOW} - dead_after_ms"
                    ),
                    &[&owner],
                )
                .map_err(fail)?
                .try_get::<_, i64>(0)
                .map_err(fail)?;
            if others > 0 {
                return Ok(Vec::new());
            }
            let rows = tx
                .query(
                    "SELECT job_id, seq, COALESCE(first_slot, slot) FROM runs
                     WHERE owner = $1 AND trigger = 'schedule' AND status = 'running'
                       AND slot IS NOT NULL AND started_at IS NULL
                     ORDER BY job_id, slot
                     FOR UPDATE SKIP LOCKED",
                    &[&NO_OWNER],
                )
                .map_err(fail)?;
            let mut released = Vec::with_capacity(rows.len());
            for row in &rows {
                let (job_id, seq): (String, i64) =
                    (row.try_get(0).map_err(fail)?, row.try_get(1).map_err(fail)?);
                let slot: Millis = row.try_get(2).map_err(fail)?;
                super::runs::give_slot_back(&mut tx, &job_id, seq, slot).map_err(fail)?;
                released.push((job_id, seq));
            }
            tx.commit().map_err(fail)?;
            Ok(released)
        })
    }

    fn work_signal(&self) -> Result<Option<Arc<tokio::sync::Notify>>> {
        let again = self.client.borrow().1.clone();
        let signal = Arc::new(tokio::sync::Notify::new());
        let weak = Arc::downgrade(&signal);
        std::thread::Builder::new()
            .name("jobs-listen".into())
            .spawn(move || listen(&again, &weak))
            .map_err(|e| crate::error::Error::io("start the queue's listener", "thread", e))?;
        Ok(Some(signal))
    }
}

/// Listens on [`WORK_CHANNEL`] until no one holds the signal any more, connecting again whenever
/// the connection is lost (a run queued meanwhile waits for the workers' next poll).
fn listen(again: &Reconnect, signal: &std::sync::Weak<tokio::sync::Notify>) {
    while signal.strong_count() > 0 {
        let mut client = match again.connect() {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!("cannot listen for queued runs yet: {e}");
                std::thread::sleep(RECONNECT_AFTER);
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {WORK_CHANNEL}")) {
            tracing::warn!(
                "cannot listen for queued runs on the store {}: {e}",
                again.shown()
            );
            std::thread::sleep(RECONNECT_AFTER);
            continue;
        }
        loop {
            let Some(live) = signal.upgrade() else {
                return;
            };
            let heard = client.notifications().timeout_iter(LISTEN_WAIT).next();
            match heard {
                Ok(Some(_)) => live.notify_one(),
                Ok(None) if !client.is_closed() => {}
                Ok(None) | Err(_) => {
                    // A moment's gap: a run queued before the listener is back waits for the poll.
                    live.notify_one();
                    break;
                }
            }
        }
    }
}
