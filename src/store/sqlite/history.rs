//! Reading the `runs` table: one run, the runs in flight, history pages, a job's record, and what
//! retention weighs.

use crate::policy::InFlight;
use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::column::{Millis, instant, unsigned};
use super::connection::{SqliteStore, store_error};
use crate::error::Result;
use crate::run::RunStatus;
use crate::store::interface::HistoryStore;
use crate::store::records::{
    HISTORY_COUNT_CAP, HistoryFilter, LastEnds, RetainedRun, RunRow, RunStats,
};

pub(super) const RUN_COLUMNS: &str = "job_id, seq, trigger, slot, due_at, claimed_at, started_at, finished_at, status, \
     attempts, exit_code, signal, error_code, message, spec_hash, owner, slot_count, replay_of, run_dir, \
     owner_start, boot_id, pgid, leader_start, kill_grace_ms, retry_owed, run_group, upstream";

impl HistoryStore for SqliteStore {
    fn run_row(&self, job_id: &str, seq: i64) -> Result<Option<RunRow>> {
        self.conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE job_id = ?1 AND seq = ?2"),
                params![job_id, seq],
                run_row,
            )
            .optional()
            .map_err(|e| store_error(format!("read run {job_id}#{seq}"), e))
    }

    fn run_exists(&self, job_id: &str, seq: i64) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT 1 FROM runs WHERE job_id = ?1 AND seq = ?2",
                params![job_id, seq],
                |_| Ok(()),
            )
            .optional()
            .map(|row| row.is_some())
            .map_err(|e| store_error(format!("read run {job_id}#{seq}"), e))
    }

    fn active_runs(&self) -> Result<Vec<RunRow>> {
        self.select_runs(
            "status IN ('queued', 'running') ORDER BY claimed_at, seq",
            "read the runs in flight",
        )
    }

    fn in_flight(&self) -> Result<HashMap<String, InFlight>> {
        let fail = |e| store_error("count the runs in flight", e);
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT job_id, SUM(status = 'running'), SUM(status = 'queued') FROM runs
                 WHERE status IN ('queued', 'running') GROUP BY job_id",
            )
            .map_err(fail)?;
        let rows = statement
            .query_map([], |row| {
                let count = |i: usize| -> rusqlite::Result<u32> {
                    Ok(u32::try_from(row.get::<_, i64>(i)?).unwrap_or(u32::MAX))
                };
                let in_flight = InFlight {
                    running: count(1)?,
                    queued: count(2)?,
                };
                Ok((row.get::<_, String>(0)?, in_flight))
            })
            .map_err(fail)?;
        rows.collect::<rusqlite::Result<_>>().map_err(fail)
    }

    fn paused_skips(
        &self,
        job_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
        let fail = |e| store_error(format!("read the paused slots of {job_id}"), e);
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT COALESCE(first_slot, slot), slot FROM runs
                 WHERE job_id = ?1 AND status = 'skipped' AND error_code = 'skipped_paused' AND claimed_at >= ?2
                 ORDER BY seq",
            )
            .map_err(fail)?;
        let rows = statement
            .query_map(params![job_id, Millis(since)], |row| {
                Ok((row.get::<_, Millis>(0)?.0, row.get::<_, Millis>(1)?.0))
            })
            .map_err(fail)?;
        rows.collect::<rusqlite::Result<_>>().map_err(fail)
    }

    fn last_ends(&self) -> Result<Vec<LastEnds>> {
        self.conn
            .prepare_cached(
                "SELECT job_id,
                        MAX(CASE WHEN status = 'succeeded' THEN finished_at END),
                        MAX(CASE WHEN status <> 'succeeded' THEN finished_at END)
                 FROM runs
                 WHERE status IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'interrupted')
                 GROUP BY job_id",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| {
                        Ok(LastEnds {
                            job_id: row.get(0)?,
                            success: instant(row, 1)?,
                            failure: instant(row, 2)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| store_error("read when each job last succeeded and failed", e))
    }

    fn recent_outcomes(&self, per_job: usize) -> Result<Vec<(String, i64, RunStatus)>> {
        let per_job = i64::try_from(per_job).unwrap_or(i64::MAX);
        self.conn
            .prepare_cached(
                "SELECT job_id, seq, status FROM (
                     SELECT job_id, seq, status,
                            ROW_NUMBER() OVER (PARTITION BY job_id ORDER BY seq DESC) AS place
                     FROM runs)
                 WHERE place <= ?1 ORDER BY job_id, seq DESC",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([per_job], |row| {
                        let status: String = row.get(2)?;
                        Ok((row.get(0)?, row.get(1)?, status))
                    })?
                    .collect::<rusqlite::Result<Vec<(String, i64, String)>>>()
            })
            .map(|rows| {
                rows.into_iter()
                    .filter_map(|(job, seq, status)| Some((job, seq, RunStatus::parse(&status)?)))
                    .collect()
            })
            .map_err(|e| store_error("read each job's recent runs", e))
    }

    fn recent_failures(&self, limit: i64) -> Result<Vec<RunRow>> {
        self.select_runs(
            &format!("status IN ('failed', 'timed_out', 'interrupted') ORDER BY claimed_at DESC, seq DESC LIMIT {limit}"),
            "read the recent failures",
        )
    }

    fn history(&self, filter: &HistoryFilter) -> Result<(Vec<RunRow>, i64)> {
        let fail = |e| store_error("read the run history", e);
        // Only the filters given become conditions: `(?1 IS NULL OR job_id = ?1)` would keep SQLite
        // from using the job and status indexes, which at a million runs is the difference between a
        // millisecond and a tenth of a second.
        let mut conditions = Vec::new();
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(job_id) = &filter.job_id {
            conditions.push("job_id = ?");
            values.push(job_id.clone().into());
        }
        let statuses = vec!["?"; filter.statuses.len()].join(", ");
        let status_condition = format!("status IN ({statuses})");
        if !filter.statuses.is_empty() {
            conditions.push(&status_condition);
            values.extend(
                filter
                    .statuses
                    .iter()
                    .map(|status| status.as_str().to_owned().into()),
            );
        }
        if let Some(since) = filter.since {
            conditions.push("claimed_at >= ?");
            values.push(since.timestamp_millis().into());
        }
        if let Some(before) = filter.before {
            conditions.push("seq < ?");
            values.push(before.into());
        }
        if let Some(upstream) = &filter.upstream {
            // A whole `job#seq` among the comma-separated upstreams, found as text: LIKE would take
            // the `_` of a job id for any character (and ignore case), so `a_b#1` would find `axb#1`.
            conditions.push("instr(',' || upstream || ',', ',' || ? || ',') > 0");
            values.push(upstream.clone().into());
        }
        let condition = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs {condition}
                 ORDER BY claimed_at DESC, seq DESC, job_id LIMIT ?"
            ))
            .map_err(fail)?;
        let mut with_limit = values.clone();
        with_limit.push(filter.limit.into());
        let rows = statement
            .query_map(rusqlite::params_from_iter(with_limit), run_row)
            .map_err(fail)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(fail)?;
        let total = self
            .conn
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM runs {condition} LIMIT {})",
                HISTORY_COUNT_CAP + 1
            ))
            .map_err(fail)?
            .query_row(rusqlite::params_from_iter(values), |row| row.get(0))
            .map_err(fail)?;
        Ok((rows, total))
    }

    fn run_stats(&self, job_id: &str) -> Result<RunStats> {
        let fail = |e| store_error(format!("read the runs of {job_id}"), e);
        let latest = |condition: &str| -> Result<Option<RunRow>> {
            self.conn
                .query_row(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE job_id = ?1 AND {condition} ORDER BY seq DESC LIMIT 1"
                    ),
                    [job_id],
                    run_row,
                )
                .optional()
                .map_err(fail)
        };
        let last_run = latest("status NOT IN ('skipped', 'missed')")?;
        let last_success = latest("status = 'succeeded'")?;
        let last_failure = latest("status IN ('failed', 'timed_out', 'interrupted')")?;
        let failure_streak = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM runs WHERE job_id = ?1 AND status IN ('failed', 'timed_out', 'interrupted')
                   AND seq > COALESCE((SELECT MAX(seq) FROM runs WHERE job_id = ?1 AND status = 'succeeded'), 0)",
                [job_id],
                |row| row.get(0),
            )
            .map_err(fail)?;
        let (runs, succeeded, failed, skipped, missed) = self
            .conn
            .query_row(
                "SELECT COALESCE(SUM(status NOT IN ('skipped', 'missed')), 0), COALESCE(SUM(status = 'succeeded'), 0),
                        COALESCE(SUM(status IN ('failed', 'timed_out', 'interrupted')), 0),
                        COALESCE(SUM(CASE WHEN status = 'skipped' THEN slot_count END), 0),
                        COALESCE(SUM(CASE WHEN status = 'missed' THEN slot_count END), 0)
                 FROM runs WHERE job_id = ?1",
                [job_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
            )
            .map_err(fail)?;
        Ok(RunStats {
            last_run,
            last_success,
            last_failure,
            failure_streak,
            runs,
            succeeded,
            failed,
            skipped,
            missed,
        })
    }

    fn retention_view(&self, job_id: &str) -> Result<Vec<RetainedRun>> {
        let fail = |e| store_error(format!("read the runs of {job_id}"), e);
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT seq, COALESCE(finished_at, claimed_at), status IN ('queued', 'running')
                 FROM runs WHERE job_id = ?1",
            )
            .map_err(fail)?;
        let rows = statement
            .query_map([job_id], |r| {
                Ok(RetainedRun {
                    seq: r.get(0)?,
                    at: r.get::<_, Millis>(1)?.0,
                    in_flight: r.get(2)?,
                })
            })
            .map_err(fail)?;
        rows.collect::<rusqlite::Result<_>>().map_err(fail)
    }
}

impl SqliteStore {
    pub(super) fn select_runs(&self, condition: &str, action: &str) -> Result<Vec<RunRow>> {
        let fail = |e| store_error(action.to_owned(), e);
        let mut statement = self
            .conn
            .prepare(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE {condition}"))
            .map_err(fail)?;
        let rows = statement.query_map([], run_row).map_err(fail)?;
        rows.collect::<rusqlite::Result<_>>().map_err(fail)
    }
}

pub(super) fn run_row(row: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        job_id: row.get(0)?,
        seq: row.get(1)?,
        trigger: row.get(2)?,
        slot: instant(row, 3)?,
        due_at: instant(row, 4)?,
        claimed_at: row.get::<_, Millis>(5)?.0,
        started_at: instant(row, 6)?,
        finished_at: instant(row, 7)?,
        status: row.get(8)?,
        attempts: row.get(9)?,
        exit_code: row.get(10)?,
        signal: row.get(11)?,
        error_code: row.get(12)?,
        message: row.get(13)?,
        spec_hash: row.get(14)?,
        owner: row.get(15)?,
        slot_count: unsigned(row, 16)?.unwrap_or(1),
        replay_of: row.get(17)?,
        run_dir: row.get(18)?,
        owner_start: unsigned(row, 19)?,
        boot_id: row.get(20)?,
        pgid: row.get(21)?,
        leader_start: unsigned(row, 22)?,
        kill_grace: unsigned(row, 23)?.map(Duration::from_millis),
        retry_owed: row.get::<_, i64>(24)? != 0,
        group: row.get(25)?,
        upstream: row.get(26)?,
        owner_silent: false,
        node: None,
    })
}
