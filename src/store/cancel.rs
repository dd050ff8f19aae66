//! The `cancel_requests` table: asking for a run in flight to be cancelled, from any process, and the
//! owner's view of the requests for its runs. The owner carries a request out; the row stays as the
//! record of who asked and why.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::Store;
use crate::error::{Error, Result};
use crate::run::RunStatus;

/// Someone's request to cancel a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    pub job_id: String,
    pub seq: i64,
    pub requested_at: i64,
    /// user@host.
    pub by: String,
    pub reason: Option<String>,
}

impl CancelRequest {
    /// How the end of a run cancelled on this request is worded in the store, the receipt and events.
    pub fn message(&self) -> String {
        match &self.reason {
            Some(reason) => format!("cancelled by {}: {reason}", self.by),
            None => format!("cancelled by {}", self.by),
        }
    }
}

/// What became of asking to cancel one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// Recorded now; the owner stops the run when it sees it.
    New,
    /// Someone asked before; that request (its author and reason) stands.
    Already(CancelRequest),
    /// The run ended (or never was) before the request could be recorded.
    NotInFlight(Option<RunStatus>),
}

impl Store {
    /// Records a request to cancel each of `runs` that is still queued or running, in one
    /// transaction. A run asked for already keeps its first request.
    pub fn request_cancel(
        &mut self,
        runs: &[(String, i64)],
        by: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<Vec<Requested>> {
        let fail = |e| Error::store("record the cancel request", e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let mut answers = Vec::with_capacity(runs.len());
        for (job_id, seq) in runs {
            let status: Option<String> = tx
                .query_row(
                    "SELECT status FROM runs WHERE job_id = ?1 AND seq = ?2",
                    params![job_id, seq],
                    |row| row.get(0),
                )
                .optional()
                .map_err(fail)?;
            let status = status.as_deref().and_then(RunStatus::parse);
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
                params![job_id, seq, now, by, reason],
            )
            .map_err(fail)?;
            answers.push(Requested::New);
        }
        tx.commit().map_err(fail)?;
        Ok(answers)
    }

    /// The runs in flight owned by `owner` (pid@host) that someone asked to cancel.
    pub fn cancels_for_owner(&self, owner: &str) -> Result<Vec<(String, i64)>> {
        let fail = |e| Error::store("read the cancel requests", e);
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

    /// The request to cancel a run, if there is one.
    pub fn cancel_request(&self, job_id: &str, seq: i64) -> Result<Option<CancelRequest>> {
        read_request(&self.conn, job_id, seq)
            .map_err(|e| Error::store(format!("read the cancel request of {job_id}#{seq}"), e))
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
                requested_at: row.get(0)?,
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
    use crate::store::{ClaimRequest, Finish};

    fn claim(store: &mut Store, owner: &str) -> i64 {
        let claimed = store
            .claim(
                &ClaimRequest {
                    job_id: "a",
                    trigger: crate::run::Trigger::Manual,
                    slot: None,
                    due_at: None,
                    spec_hash: "h",
                    owner,
                    now: 0,
                    max_instances: 5,
                    overlap: crate::spec::model::Overlap::Skip,
                    replay_of: None,
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
        let mut store = Store::open(&dir.path().join("jobs.sqlite3")).expect("open");
        store
            .conn
            .execute_batch(
                "INSERT INTO jobs (id, spec_path, spec_hash, state, created_at, updated_at)
                 VALUES ('a', 'jobs/a.yaml', 'h', 'active', 0, 0)",
            )
            .expect("job");
        let first = claim(&mut store, "1@h");
        let second = claim(&mut store, "2@h");
        let finish = Finish {
            status: RunStatus::Succeeded,
            started_at: None,
            finished_at: 1,
            attempts: 1,
            exit_code: Some(0),
            signal: None,
            error_code: None,
            message: None,
        };
        store.finish_run("a", second, &finish).expect("finish");
        let runs = [("a".to_owned(), first), ("a".to_owned(), second)];
        let answers = store
            .request_cancel(&runs, "me@h", Some("why"), 5)
            .expect("request");
        assert_eq!(
            answers,
            [
                Requested::New,
                Requested::NotInFlight(Some(RunStatus::Succeeded))
            ]
        );
        let again = store
            .request_cancel(&runs[..1], "you@h", None, 6)
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
