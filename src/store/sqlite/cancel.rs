//! The `cancel_requests` table: asking for a run in flight to be cancelled, from any process, and the
//! owner's view of the requests for its runs. The owner carries a request out; the row stays as the
//! record of who asked and why.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::column::Millis;
use super::connection::{SqliteStore, store_error};
use crate::error::Result;
use crate::run::RunStatus;
use crate::store::interface::CancelStore;
use crate::store::records::{CancelRequest, Requested};

impl CancelStore for SqliteStore {
    fn request_cancel(
        &mut self,
        runs: &[(String, i64)],
        by: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Requested>> {
        let fail = |e| store_error("record the cancel request", e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let mut answers = Vec::with_capacity(runs.len());
        for (job_id, seq) in runs {
            let status: Option<RunStatus> = tx
                .query_row(
                    "SELECT status FROM runs WHERE job_id = ?1 AND seq = ?2",
                    params![job_id, seq],
                    |row| row.get(0),
                )
                .optional()
                .map_err(fail)?;
            if !status.is_some_and(RunStatus::is_active) {
                answers.push(Requested::NotInFlight(status));
                continue;
            }
            if let Some(earlier) = read_request(&tx, job_id, *seq).map_err(fail)? {
                answers.push(Requested::Already(earlier));
                continue;
            }
            tx.execute(
                "INSERT INTO cancel_requests (job_id, seq, requested_at, requested_by, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![job_id, seq, Millis(now), by, reason],
            )
            .map_err(fail)?;
            answers.push(Requested::New);
        }
        tx.commit().map_err(fail)?;
        Ok(answers)
    }

    fn cancels_for_owner(&self, owner: &str) -> Result<Vec<(String, i64)>> {
        let fail = |e| store_error("read the cancel requests", e);
        // Runs first (CROSS JOIN keeps that order): only the few in flight are looked at, not every
        // request ever made.
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT r.job_id, r.seq FROM runs r CROSS JOIN cancel_requests c
                 WHERE r.status IN ('queued', 'running') AND r.owner = ?1
                   AND c.job_id = r.job_id AND c.seq = r.seq",
            )
            .map_err(fail)?;
        let rows = statement
            .query_map([owner], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(fail)?;
        rows.collect::<rusqlite::Result<_>>().map_err(fail)
    }

    fn cancel_request(&self, job_id: &str, seq: i64) -> Result<Option<CancelRequest>> {
        read_request(&self.conn, job_id, seq)
            .map_err(|e| store_error(format!("read the cancel request of {job_id}#{seq}"), e))
    }
}

fn read_request(
    conn: &rusqlite::Connection,
    job_id: &str,
    seq: i64,
) -> rusqlite::Result<Option<CancelRequest>> {
    conn.query_row(
        "SELECT requested_at, requested_by, reason FROM cancel_requests WHERE job_id = ?1 AND seq = ?2",
        params![job_id, seq],
        |row| {
            Ok(CancelRequest {
                job_id: job_id.to_owned(),
                seq,
                requested_at: row.get::<_, Millis>(0)?.0,
                by: row.get(1)?,
                reason: row.get(2)?,
            })
        },
    )
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::RunEnd;
    use crate::store::interface::{RunStore, Store};
    use crate::store::records::ClaimRequest;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).expect("in range")
    }

    fn claim(store: &mut SqliteStore, owner: &str) -> i64 {
        let store: &mut dyn Store = store;
        let claimed = store
            .claim_with(
                &ClaimRequest {
                    job_id: "a",
                    trigger: crate::run::Trigger::Manual,
                    slot: None,
                    due_at: None,
                    spec_hash: "h",
                    owner,
                    now: at(0),
                    max_instances: 5,
                    overlap: crate::spec::model::Overlap::Skip,
                    replay_of: None,
                    shared: crate::store::SharedLimits::default(),
                    no_trigger: false,
                },
                |_| true,
                |seq| Ok(((), format!("runs/a/{seq}"))),
            )
            .expect("claim");
        claimed.0.seq()
    }

    #[test]
    fn a_request_is_recorded_once_and_only_for_runs_in_flight() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = SqliteStore::open(&dir.path().join("jobs.sqlite3")).expect("open");
        store
            .conn
            .execute_batch(
                "INSERT INTO jobs (id, spec_path, spec_hash, state, created_at, updated_at)
                 VALUES ('a', 'jobs/a.yaml', 'h', 'active', 0, 0)",
            )
            .expect("job");
        let first = claim(&mut store, "1@h");
        let second = claim(&mut store, "2@h");
        let end = RunEnd {
            status: RunStatus::Succeeded,
            attempts: 1,
            exit_code: Some(0),
            signal: None,
            error_code: None,
            message: None,
            started_at: None,
            finished_at: at(1),
            duration_ms: 0,
        };
        store.finish_run("a", second, &end).expect("finish");
        let runs = [("a".to_owned(), first), ("a".to_owned(), second)];
        let answers = store
            .request_cancel(&runs, "me@h", Some("why"), at(5))
            .expect("request");
        assert_eq!(
            answers,
            [
                Requested::New,
                Requested::NotInFlight(Some(RunStatus::Succeeded))
            ]
        );
        let again = store
            .request_cancel(&runs[..1], "you@h", None, at(6))
            .expect("again");
        let Requested::Already(earlier) = &again[0] else {
            panic!("{again:?}");
        };
        assert_eq!(earlier.message(), "cancelled by me@h: why");
        assert_eq!(
            store.cancels_for_owner("1@h").expect("owner"),
            [("a".to_owned(), first)]
        );
        assert!(store.cancels_for_owner("2@h").expect("owner").is_empty());
    }
}
