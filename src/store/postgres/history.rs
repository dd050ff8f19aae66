//! Reading the `runs` table on PostgreSQL: one run, the runs in flight, history pages, a job's
//! record, and what retention weighs; and the one way a run row is read.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::types::{FromSql, ToSql, Type, accepts};

use super::column::{Millis, instant};
use super::connection::{PgStore, pg_error};
use crate::error::Result;
use crate::policy::InFlight;
use crate::run::RunStatus;
use crate::store::interface::HistoryStore;
use crate::store::records::{
    HISTORY_COUNT_CAP, HistoryFilter, LastEnds, RetainedRun, RunRow, RunStats,
};

/// The columns [`run_row`] reads, in its order.
pub(super) const RUN_COLUMNS: &str = "job_id, seq, trigger, slot, due_at, claimed_at, started_at, finished_at, status, \
     attempts, exit_code, signal, error_code, message, spec_hash, owner, slot_count, replay_of, run_dir, \
     owner_start, boot_id, pgid, leader_start, kill_grace_ms, retry_owed, run_group, upstream, \
     COALESCE(seen_at, claimed_at) < (extract(epoch from clock_timestamp()) * 1000)::bigint - COALESCE(dead_after_ms, 300000), node";

/// An integer of a BIGINT column as the narrower or unsigned type a record holds. A value that does
/// not fit is an error, never a wrapped or clamped number: the SQLite store's checked conversions
/// refuse the same values.
struct Fits<T>(T);

impl<'a, T: TryFrom<i64>> FromSql<'a> for Fits<T> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let n = i64::from_sql(ty, raw)?;
        T::try_from(n)
            .map(Self)
            .map_err(|_| format!("{n} is out of range for {}", std::any::type_name::<T>()).into())
    }
    accepts!(INT8);
}

/// Reads a nullable integer column as `T`, checked (see [`Fits`]).
fn fits<T: TryFrom<i64>>(
    row: &postgres::Row,
    index: usize,
) -> std::result::Result<Option<T>, postgres::Error> {
    Ok(row.try_get::<_, Option<Fits<T>>>(index)?.map(|n| n.0))
}

/// A run row selected with [`RUN_COLUMNS`].
pub(super) fn run_row(row: &postgres::Row) -> std::result::Result<RunRow, postgres::Error> {
    Ok(RunRow {
        job_id: row.try_get(0)?,
        seq: row.try_get(1)?,
        trigger: row.try_get(2)?,
        slot: instant(row, 3)?,
        due_at: instant(row, 4)?,
        claimed_at: row.try_get::<_, Millis>(5)?.0,
        started_at: instant(row, 6)?,
        finished_at: instant(row, 7)?,
        status: row.try_get(8)?,
        attempts: row.try_get::<_, Fits<u32>>(9)?.0,
        exit_code: fits(row, 10)?,
        signal: fits(row, 11)?,
        error_code: row.try_get(12)?,
        message: row.try_get(13)?,
        spec_hash: row.try_get(14)?,
        owner: row.try_get(15)?,
        // NOT NULL with a default of 1; read as optional anyway, as the SQLite store does.
        slot_count: fits(row, 16)?.unwrap_or(1),
        replay_of: row.try_get(17)?,
        run_dir: row.try_get(18)?,
        owner_start: fits(row, 19)?,
        boot_id: row.try_get(20)?,
        pgid: fits(row, 21)?,
        leader_start: fits(row, 22)?,
        kill_grace: fits(row, 23)?.map(Duration::from_millis),
        retry_owed: row.try_get::<_, i64>(24)? != 0,
        group: row.try_get(25)?,
        upstream: row.try_get(26)?,
        // The default is `DEFAULT_DEAD_AFTER` (records), for a run whose owner promised nothing.
        owner_silent: row.try_get(27)?,
        node: row.try_get(28)?,
    })
}

impl HistoryStore for PgStore {
    fn run_row(&self, job_id: &str, seq: i64) -> Result<Option<RunRow>> {
        super::connection::in_place(|| {
            let fail = |e| pg_error(format!("read run {job_id}#{seq}"), e);
            self.client
                .borrow_mut()
                .query_opt(
                    &format!("SELECT {RUN_COLUMNS} FROM runs WHERE job_id = $1 AND seq = $2"),
                    &[&job_id, &seq],
                )
                .map_err(fail)?
                .as_ref()
                .map(run_row)
                .transpose()
                .map_err(fail)
        })
    }

    fn run_exists(&self, job_id: &str, seq: i64) -> Result<bool> {
        super::connection::in_place(|| {
            self.client
                .borrow_mut()
                .query_opt(
                    "SELECT 1 FROM runs WHERE job_id = $1 AND seq = $2",
                    &[&job_id, &seq],
                )
                .map(|row| row.is_some())
                .map_err(|e| pg_error(format!("read run {job_id}#{seq}"), e))
        })
    }

    fn active_runs(&self) -> Result<Vec<RunRow>> {
        super::connection::in_place(|| {
            self.select_runs(
                "status IN ('queued', 'running') ORDER BY claimed_at, seq",
                "read the runs in flight",
            )
        })
    }

    fn in_flight(&self) -> Result<HashMap<String, InFlight>> {
        super::connection::in_place(|| {
            let fail = |e| pg_error("count the runs in flight", e);
            let rows = self
                .client
                .borrow_mut()
                .query(
                    "SELECT job_id, COUNT(*) FILTER (WHERE status = 'running'),
                        COUNT(*) FILTER (WHERE status = 'queued')
                 FROM runs WHERE status IN ('queued', 'running') GROUP BY job_id",
                    &[],
                )
                .map_err(fail)?;
            rows.iter()
                .map(|row| {
                    // A tally past u32 is no less "full" than u32::MAX.
                    let count = |i: usize| -> std::result::Result<u32, postgres::Error> {
                        Ok(u32::try_from(row.try_get::<_, i64>(i)?).unwrap_or(u32::MAX))
                    };
                    let in_flight = InFlight {
                        running: count(1)?,
                        queued: count(2)?,
                    };
                    Ok((row.try_get::<_, String>(0)?, in_flight))
                })
                .collect::<std::result::Result<_, _>>()
                .map_err(fail)
        })
    }

    fn paused_skips(
        &self,
        job_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
        super::connection::in_place(|| {
            let fail = |e| pg_error(format!("read the paused slots of {job_id}"), e);
            let rows = self
            .client
            .borrow_mut()
            .query(
                "SELECT COALESCE(first_slot, slot), slot FROM runs
                 WHERE job_id = $1 AND status = 'skipped' AND error_code = 'skipped_paused' AND claimed_at >= $2
                 ORDER BY seq",
                &[&job_id, &Millis(since)],
            )
            .map_err(fail)?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.try_get::<_, Millis>(0)?.0,
                        row.try_get::<_, Millis>(1)?.0,
                    ))
                })
                .collect::<std::result::Result<_, _>>()
                .map_err(fail)
        })
    }

    fn recent_failures(&self, limit: i64) -> Result<Vec<RunRow>> {
        super::connection::in_place(|| {
            // A negative limit is no limit, as SQLite reads it (PostgreSQL would refuse it).
            let limit = if limit < 0 {
                "ALL".to_owned()
            } else {
                limit.to_string()
            };
            self.select_runs(
            &format!(
                "status IN ('failed', 'timed_out', 'interrupted') ORDER BY claimed_at DESC, seq DESC LIMIT {limit}"
            ),
            "read the recent failures",
        )
        })
    }

    fn history(&self, filter: &HistoryFilter) -> Result<(Vec<RunRow>, i64)> {
        super::connection::in_place(|| {
            let fail = |e| pg_error("read the run history", e);
            // Only the filters given become conditions, so that the planner can use the job and status
            // indexes (`($1 IS NULL OR job_id = $1)` would hide them behind a generic plan).
            let mut conditions: Vec<String> = Vec::new();
            let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::new();
            let next = |values: &mut Vec<Box<dyn ToSql + Sync>>, value: Box<dyn ToSql + Sync>| {
                values.push(value);
                format!("${}", values.len())
            };
            if let Some(job_id) = &filter.job_id {
                let at = next(&mut values, Box::new(job_id.clone()));
                conditions.push(format!("job_id = {at}"));
            }
            if !filter.statuses.is_empty() {
                let places: Vec<String> = filter
                    .statuses
                    .iter()
                    .map(|status| next(&mut values, Box::new(*status)))
                    .collect();
                conditions.push(format!("status IN ({})", places.join(", ")));
            }
            if let Some(since) = filter.since {
                let at = next(&mut values, Box::new(Millis(since)));
                conditions.push(format!("claimed_at >= {at}"));
            }
            if let Some(before) = filter.before {
                let at = next(&mut values, Box::new(before));
                conditions.push(format!("seq < {at}"));
            }
            if let Some(upstream) = &filter.upstream {
                // A whole `job#seq` among the comma-separated upstreams, compared as text: no character
                // of a job id is a pattern.
                let at = next(&mut values, Box::new(upstream.clone()));
                conditions.push(format!(
                    "strpos(',' || upstream || ',', ',' || {at}::text || ',') > 0"
                ));
            }
            let condition = if conditions.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conditions.join(" AND "))
            };
            // A negative limit is no limit, as SQLite reads it; PostgreSQL reads `LIMIT NULL` so.
            let limit = (filter.limit >= 0).then_some(filter.limit);
            let limit_at = values.len() + 1;
            let mut client = self.client.borrow_mut();
            let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|value| &**value).collect();
            let mut with_limit = params.clone();
            with_limit.push(&limit);
            let rows = client
                .query(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM runs {condition}
                     ORDER BY claimed_at DESC, seq DESC, job_id LIMIT ${limit_at}"
                    ),
                    &with_limit,
                )
                .map_err(fail)?
                .iter()
                .map(run_row)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(fail)?;
            let total = client
                .query_one(
                    &format!(
                        "SELECT COUNT(*) FROM (SELECT 1 FROM runs {condition} LIMIT {}) AS capped",
                        HISTORY_COUNT_CAP + 1
                    ),
                    &params,
                )
                .and_then(|row| row.try_get(0))
                .map_err(fail)?;
            Ok((rows, total))
        })
    }

    fn run_stats(&self, job_id: &str) -> Result<RunStats> {
        super::connection::in_place(|| {
            let fail = |e| pg_error(format!("read the runs of {job_id}"), e);
            let mut client = self.client.borrow_mut();
            let mut latest = |condition: &str| -> Result<Option<RunRow>> {
                client
                .query_opt(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE job_id = $1 AND {condition} ORDER BY seq DESC LIMIT 1"
                    ),
                    &[&job_id],
                )
                .map_err(fail)?
                .as_ref()
                .map(run_row)
                .transpose()
                .map_err(fail)
            };
            let last_run = latest("status NOT IN ('skipped', 'missed')")?;
            let last_success = latest("status = 'succeeded'")?;
            let last_failure = latest("status IN ('failed', 'timed_out', 'interrupted')")?;
            let failure_streak = client
            .query_one(
                "SELECT COUNT(*) FROM runs WHERE job_id = $1 AND status IN ('failed', 'timed_out', 'interrupted')
                   AND seq > COALESCE((SELECT MAX(seq) FROM runs WHERE job_id = $1 AND status = 'succeeded'), 0)",
                &[&job_id],
            )
            .and_then(|row| row.try_get(0))
            .map_err(fail)?;
            // `SUM` of a BIGINT is NUMERIC: cast back, so that it reads as the count it is.
            let totals = client
                .query_one(
                    "SELECT COUNT(*) FILTER (WHERE status NOT IN ('skipped', 'missed')),
                        COUNT(*) FILTER (WHERE status = 'succeeded'),
                        COUNT(*) FILTER (WHERE status IN ('failed', 'timed_out', 'interrupted')),
                        COALESCE(SUM(slot_count) FILTER (WHERE status = 'skipped'), 0)::bigint,
                        COALESCE(SUM(slot_count) FILTER (WHERE status = 'missed'), 0)::bigint
                 FROM runs WHERE job_id = $1",
                    &[&job_id],
                )
                .map_err(fail)?;
            let count = |i: usize| totals.try_get::<_, i64>(i).map_err(fail);
            Ok(RunStats {
                last_run,
                last_success,
                last_failure,
                failure_streak,
                runs: count(0)?,
                succeeded: count(1)?,
                failed: count(2)?,
                skipped: count(3)?,
                missed: count(4)?,
            })
        })
    }

    fn last_ends(&self) -> Result<Vec<LastEnds>> {
        super::connection::in_place(|| {
            let fail = |e| pg_error("read when each job last succeeded and failed", e);
            let rows = self
                .client
                .borrow_mut()
                .query(
                    "SELECT job_id,
                        MAX(CASE WHEN status = 'succeeded' THEN finished_at END),
                        MAX(CASE WHEN status <> 'succeeded' THEN finished_at END)
                 FROM runs
                 WHERE status IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'interrupted')
                 GROUP BY job_id",
                    &[],
                )
                .map_err(fail)?;
            rows.iter()
                .map(|row| {
                    Ok(LastEnds {
                        job_id: row.try_get(0)?,
                        success: instant(row, 1)?,
                        failure: instant(row, 2)?,
                    })
                })
                .collect::<std::result::Result<_, _>>()
                .map_err(fail)
        })
    }

    fn recent_outcomes(&self, per_job: usize) -> Result<Vec<(String, i64, RunStatus)>> {
        super::connection::in_place(|| {
            let fail = |e| pg_error("read each job's recent runs", e);
            let per_job = i64::try_from(per_job).unwrap_or(i64::MAX);
            let rows = self
                .client
                .borrow_mut()
                .query(
                    "SELECT job_id, seq, status FROM (
                     SELECT job_id, seq, status,
                            ROW_NUMBER() OVER (PARTITION BY job_id ORDER BY seq DESC) AS place
                     FROM runs) AS numbered
                 WHERE place <= $1 ORDER BY job_id, seq DESC",
                    &[&per_job],
                )
                .map_err(fail)?;
            let rows = rows
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get::<_, String>(0)?,
                        row.try_get::<_, i64>(1)?,
                        row.try_get::<_, String>(2)?,
                    ))
                })
                .collect::<std::result::Result<Vec<_>, postgres::Error>>()
                .map_err(fail)?;
            // A status this version does not know is left out of the strip, not an error.
            Ok(rows
                .into_iter()
                .filter_map(|(job, seq, status)| Some((job, seq, RunStatus::parse(&status)?)))
                .collect())
        })
    }

    fn retention_view(&self, job_id: &str) -> Result<Vec<RetainedRun>> {
        super::connection::in_place(|| {
            let fail = |e| pg_error(format!("read the runs of {job_id}"), e);
            let rows = self
                .client
                .borrow_mut()
                .query(
                    "SELECT seq, COALESCE(finished_at, claimed_at), status IN ('queued', 'running')
                 FROM runs WHERE job_id = $1",
                    &[&job_id],
                )
                .map_err(fail)?;
            rows.iter()
                .map(|r| {
                    Ok(RetainedRun {
                        seq: r.try_get(0)?,
                        at: r.try_get::<_, Millis>(1)?.0,
                        in_flight: r.try_get(2)?,
                    })
                })
                .collect::<std::result::Result<_, _>>()
                .map_err(fail)
        })
    }
}

impl PgStore {
    /// The runs that `condition` (the rest of a statement after `WHERE`, with no parameters)
    /// selects, in its order.
    pub(super) fn select_runs(&self, condition: &str, action: &str) -> Result<Vec<RunRow>> {
        let fail = |e| pg_error(action.to_owned(), e);
        self.client
            .borrow_mut()
            .query(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE {condition}"),
                &[],
            )
            .map_err(fail)?
            .iter()
            .map(run_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(fail)
    }
}
