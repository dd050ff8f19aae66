//! The `cancel_requests` table on PostgreSQL: asking for a run in flight to be cancelled, from any
//! process on any host, and the owner's view of the requests for its runs. The owner carries a
//! request out (a run still waiting for a node has none, and ends at once); the row stays as the
//! record of who asked and why.

use chrono::{DateTime, Utc};
use postgres::GenericClient;

use super::column::Millis;
use super::connection::{PgStore, pg_error};
use super::outbox::{RunEventKind, owe_for_run};
use crate::error::Result;
use crate::run::RunStatus;
use crate::store::interface::CancelStore;
use crate::store::records::{CancelRequest, NO_OWNER, Requested};

impl CancelStore for PgStore {
    fn request_cancel(
        &mut self,
        runs: &[(String, i64)],
        by: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Requested>> {
        super::connection::in_place(|| {
            let fail = |e| pg_error("record the cancel request", e);
            // Under the write lock, so that a run's status (and any earlier request) cannot change
            // between reading it here and recording the request.
            let mut tx = self.write().map_err(fail)?;
            let mut answers = Vec::with_capacity(runs.len());
            for (job_id, seq) in runs {
                let status: Option<RunStatus> = tx
                    .query_opt(
                        "SELECT status FROM runs WHERE job_id = $1 AND seq = $2",
                        &[job_id, seq],
                    )
                    .map_err(fail)?
                    .map(|row| row.try_get(0))
                    .transpose()
                    .map_err(fail)?;
                if !status.is_some_and(RunStatus::is_active) {
                    answers.push(Requested::NotInFlight(status));
                    continue;
                }
                if let Some(earlier) = read_request(&mut tx, job_id, *seq).map_err(fail)? {
                    answers.push(Requested::Already(earlier));
                    continue;
                }
                tx.execute(
                    "INSERT INTO cancel_requests (job_id, seq, requested_at, requested_by, reason)
                 VALUES ($1, $2, $3, $4, $5)",
                    &[job_id, seq, &Millis(now), &by, &reason],
                )
                .map_err(fail)?;
                // Still waiting in a shared store's queue: no node runs it to hear the request, so
                // it ends here. A worker taking it at this moment holds its row; once that take
                // commits the row has an owner, and the request waits for that node instead.
                let request = CancelRequest {
                    job_id: job_id.clone(),
                    seq: *seq,
                    requested_at: now,
                    by: by.to_owned(),
                    reason: reason.map(str::to_owned),
                };
                let settled = tx
                    .execute(
                        "UPDATE runs SET status = 'cancelled', finished_at = $3, error_code = 'cancelled', message = $4
                         WHERE job_id = $1 AND seq = $2 AND owner = $5 AND status IN ('queued', 'running')",
                        &[job_id, seq, &Millis(now), &request.message(), &NO_OWNER],
                    )
                    .map_err(fail)?;
                if settled > 0 {
                    owe_for_run(&mut tx, job_id, *seq, RunEventKind::Ended, Millis(now))
                        .map_err(fail)?;
                    super::triggers::owe_triggers(
                        &mut tx,
                        job_id,
                        *seq,
                        RunStatus::Cancelled,
                        Millis(now),
                    )
                    .map_err(fail)?;
                }
                answers.push(Requested::New);
            }
            tx.commit().map_err(fail)?;
            Ok(answers)
        })
    }

    fn cancels_for_owner(&self, owner: &str) -> Result<Vec<(String, i64)>> {
        super::connection::in_place(|| {
            let fail = |e| pg_error("read the cancel requests", e);
            // The planner starts from the few runs in flight (the status index), not from every request
            // ever made; no join order has to be forced as on SQLite.
            let rows = self
                .client
                .borrow_mut()
                .query(
                    "SELECT r.job_id, r.seq FROM runs r
                 JOIN cancel_requests c ON c.job_id = r.job_id AND c.seq = r.seq
                 WHERE r.status IN ('queued', 'running') AND r.owner = $1",
                    &[&owner],
                )
                .map_err(fail)?;
            rows.iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<std::result::Result<_, _>>()
                .map_err(fail)
        })
    }

    fn cancel_request(&self, job_id: &str, seq: i64) -> Result<Option<CancelRequest>> {
        super::connection::in_place(|| {
            read_request(&mut **self.client.borrow_mut(), job_id, seq)
                .map_err(|e| pg_error(format!("read the cancel request of {job_id}#{seq}"), e))
        })
    }
}

fn read_request(
    client: &mut impl GenericClient,
    job_id: &str,
    seq: i64,
) -> std::result::Result<Option<CancelRequest>, postgres::Error> {
    client
        .query_opt(
            "SELECT requested_at, requested_by, reason FROM cancel_requests WHERE job_id = $1 AND seq = $2",
            &[&job_id, &seq],
        )?
        .map(|row| {
            Ok(CancelRequest {
                job_id: job_id.to_owned(),
                seq,
                requested_at: row.try_get::<_, Millis>(0)?.0,
                by: row.try_get(1)?,
                reason: row.try_get(2)?,
            })
        })
        .transpose()
}
