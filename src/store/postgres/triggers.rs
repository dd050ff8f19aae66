//! Jobs triggered by other jobs' runs, on PostgreSQL: the `triggers`, `fan_in` and `trigger_edges`
//! tables. The edges are rebuilt from the stored specs when they change, an upstream's end writes
//! the downstream runs it owes in the transaction that records it, and a claim takes one. Must not
//! decide what an end triggers (`crate::triggers` does) nor plan the downstream run (the scheduler
//! does).

use std::collections::{BTreeMap, HashSet};

use postgres::Transaction;

use super::column::Millis;
use super::connection::{PgStore, pg_error};
use crate::error::Result;
use crate::run::{RunStatus, run_name};
use crate::store::records::OwedTrigger;
use crate::triggers::{Upstreams, fan_in_complete, triggered};

/// Rebuilds the edges from the jobs' stored specs, inside the caller's transaction (one that synced
/// spec changes).
pub(super) fn rebuild_edges(tx: &mut Transaction<'_>) -> std::result::Result<(), postgres::Error> {
    tx.execute("DELETE FROM trigger_edges", &[])?;
    // A list that is missing or not a list names no upstream (rather than failing the sync), and an
    // `after:` entry without a job is skipped, as the SQLite store's `INSERT OR IGNORE` skips it.
    tx.execute(
        "INSERT INTO trigger_edges (upstream, downstream)
         SELECT a.value ->> 'job', j.id FROM jobs j,
                jsonb_array_elements(CASE WHEN jsonb_typeof(j.spec_json::jsonb -> 'after') = 'array'
                                          THEN j.spec_json::jsonb -> 'after' ELSE '[]'::jsonb END) a
         WHERE j.spec_json IS NOT NULL AND j.present = 1 AND a.value ->> 'job' IS NOT NULL
         UNION
         SELECT b.value, j.id FROM jobs j,
                jsonb_array_elements_text(CASE WHEN jsonb_typeof(j.spec_json::jsonb -> 'after_all') = 'array'
                                               THEN j.spec_json::jsonb -> 'after_all' ELSE '[]'::jsonb END) b
         WHERE j.spec_json IS NOT NULL AND j.present = 1 AND b.value IS NOT NULL
         ON CONFLICT DO NOTHING",
        &[],
    )?;
    drop_cycles(tx)
}

/// Deletes every edge on a cycle of the stored edges. The loader refuses a spec that closes a cycle,
/// so there should be none; this guards against one that gets in all the same (a store an older
/// version wrote, specs in force from different times), since a live cycle would run its jobs
/// without end.
fn drop_cycles(tx: &mut Transaction<'_>) -> std::result::Result<(), postgres::Error> {
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in tx.query("SELECT downstream, upstream FROM trigger_edges", &[])? {
        let down: String = row.try_get(0)?;
        let up: String = row.try_get(1)?;
        graph.entry(up.clone()).or_default();
        graph.entry(down).or_default().push(up);
    }
    for component in crate::triggers::cycles(&graph) {
        let path =
            crate::triggers::describe_cycle(&crate::triggers::example_cycle(&graph, &component));
        tracing::warn!(
            "the specs in force trigger each other in a cycle ({path}); its triggers are off until a spec breaks it"
        );
        let members: HashSet<&str> = component.iter().map(String::as_str).collect();
        for down in &component {
            for up in graph.get(down).into_iter().flatten() {
                if members.contains(up.as_str()) {
                    tx.execute(
                        "DELETE FROM trigger_edges WHERE upstream = $1 AND downstream = $2",
                        &[up, down],
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// Writes what the end of run `job_id#seq` with `status` owes its downstream jobs, inside the
/// transaction that records the end: a trigger per `after:` that listens for the status, and for
/// each `after_all:` the success counted, a trigger once all are in. Once per upstream run, however
/// often its end is written.
pub(super) fn owe_triggers(
    tx: &mut Transaction<'_>,
    job_id: &str,
    seq: i64,
    status: RunStatus,
    now: Millis,
) -> std::result::Result<(), postgres::Error> {
    let quiet: Option<i64> = tx
        .query_opt(
            "SELECT no_trigger FROM runs WHERE job_id = $1 AND seq = $2",
            &[&job_id, &seq],
        )?
        .map(|row| row.try_get(0))
        .transpose()?;
    // No record (nothing to trigger from) or a run started with `--no-trigger`.
    if quiet != Some(0) {
        return Ok(());
    }
    let downstream: Vec<(String, String)> = tx
        .query(
            "SELECT e.downstream, j.spec_json FROM trigger_edges e JOIN jobs j ON j.id = e.downstream
             WHERE e.upstream = $1 AND j.present = 1 AND j.spec_json IS NOT NULL",
            &[&job_id],
        )?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<std::result::Result<_, postgres::Error>>()?;
    let this = run_name(job_id, seq);
    for (down, spec) in downstream {
        let Ok(upstreams) = serde_json::from_str::<Upstreams>(&spec) else {
            continue;
        };
        let owed = triggered(&upstreams, job_id, status);
        if owed.after {
            owe(tx, &down, job_id, seq, &this, now)?;
        }
        if owed.toward_all {
            tx.execute(
                "INSERT INTO fan_in (job_id, upstream, seq) VALUES ($1, $2, $3)
                 ON CONFLICT (job_id, upstream) DO UPDATE SET seq = excluded.seq",
                &[&down, &job_id, &seq],
            )?;
            let have: Vec<(String, i64)> = tx
                .query(
                    "SELECT upstream, seq FROM fan_in WHERE job_id = $1",
                    &[&down],
                )?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<std::result::Result<_, postgres::Error>>()?;
            if fan_in_complete(&upstreams.after_all, have.iter().map(|(j, _)| j.as_str())) {
                let all: Vec<String> = upstreams
                    .after_all
                    .iter()
                    .filter_map(|job| {
                        have.iter()
                            .find(|(j, _)| j == job)
                            .map(|(j, s)| run_name(j, *s))
                    })
                    .collect();
                owe(tx, &down, job_id, seq, &all.join(","), now)?;
                tx.execute("DELETE FROM fan_in WHERE job_id = $1", &[&down])?;
            }
        }
    }
    Ok(())
}

/// Owes one run of `down`; the upstream run owes it once, however often its end is written.
fn owe(
    tx: &mut Transaction<'_>,
    down: &str,
    job_id: &str,
    seq: i64,
    upstreams: &str,
    now: Millis,
) -> std::result::Result<(), postgres::Error> {
    tx.execute(
        "INSERT INTO triggers (job_id, upstream_job, upstream_seq, upstreams, created_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        &[&down, &job_id, &seq, &upstreams, &now],
    )?;
    Ok(())
}

/// Whether `owed` is still pending, in the claim's transaction.
pub(super) fn pending(
    tx: &mut Transaction<'_>,
    owed: &OwedTrigger,
) -> std::result::Result<bool, postgres::Error> {
    tx.query_one(
        "SELECT EXISTS (SELECT 1 FROM triggers WHERE job_id = $1 AND upstream_job = $2
                        AND upstream_seq = $3 AND state = 'pending')",
        &[&owed.job_id, &owed.upstream_job, &owed.upstream_seq],
    )?
    .try_get(0)
}

/// Takes `owed` for run `seq` (the run it became, or the record of its skip).
pub(super) fn take(
    tx: &mut Transaction<'_>,
    owed: &OwedTrigger,
    seq: i64,
) -> std::result::Result<(), postgres::Error> {
    tx.execute(
        "UPDATE triggers SET state = 'taken', run_seq = $4
         WHERE job_id = $1 AND upstream_job = $2 AND upstream_seq = $3 AND state = 'pending'",
        &[&owed.job_id, &owed.upstream_job, &owed.upstream_seq, &seq],
    )?;
    Ok(())
}

impl PgStore {
    /// The owed runs not taken yet, oldest first.
    pub(super) fn read_owed_triggers(&self) -> Result<Vec<OwedTrigger>> {
        let fail = |e| pg_error("read the triggered runs owed", e);
        self.client
            .borrow_mut()
            .query(
                "SELECT job_id, upstream_job, upstream_seq, upstreams, created_at FROM triggers
                 WHERE state = 'pending' ORDER BY created_at, job_id",
                &[],
            )
            .map_err(fail)?
            .iter()
            .map(|row| {
                Ok(OwedTrigger {
                    job_id: row.try_get(0)?,
                    upstream_job: row.try_get(1)?,
                    upstream_seq: row.try_get(2)?,
                    upstreams: row.try_get(3)?,
                    created_at: row.try_get::<_, Millis>(4)?.0,
                })
            })
            .collect::<std::result::Result<_, postgres::Error>>()
            .map_err(fail)
    }
}
