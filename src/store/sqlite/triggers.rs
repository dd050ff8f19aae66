//! The `triggers`, `fan_in` and `trigger_edges` tables: which jobs' runs trigger which (rebuilt
//! from the stored specs when they change), the downstream runs an upstream's end owes (written in
//! the transaction that records the end), and taking one when its run is claimed. Must not decide
//! what an end triggers (`crate::triggers` does) nor plan the downstream run (the scheduler does).

use rusqlite::{OptionalExtension, Transaction, params};

use super::column::Millis;
use super::connection::{SqliteStore, store_error};
use crate::error::Result;
use crate::run::{RunStatus, run_name};
use crate::store::records::OwedTrigger;
use crate::triggers::{Upstreams, fan_in_complete, triggered};

/// Rebuilds the edges from the jobs' stored specs, inside the caller's transaction (one that synced
/// spec changes).
pub(super) fn rebuild_edges(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM trigger_edges", [])?;
    tx.execute(
        "INSERT OR IGNORE INTO trigger_edges (upstream, downstream)
         SELECT json_extract(a.value, '$.job'), j.id FROM jobs j, json_each(j.spec_json, '$.after') a
         WHERE j.spec_json IS NOT NULL AND j.present = 1
         UNION
         SELECT b.value, j.id FROM jobs j, json_each(j.spec_json, '$.after_all') b
         WHERE j.spec_json IS NOT NULL AND j.present = 1",
        [],
    )?;
    drop_cycles(tx)
}

/// Deletes every edge on a cycle of the stored edges. The loader refuses a spec that closes a
/// cycle, so none should be here; this is the guard for the one that slips through anyway (a store
/// written by an older version, specs in force from different times), because a live cycle would
/// run its jobs for ever.
fn drop_cycles(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let mut graph: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut read = tx.prepare_cached("SELECT downstream, upstream FROM trigger_edges")?;
    let rows = read.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (down, up) = row?;
        graph.entry(up.clone()).or_default();
        graph.entry(down).or_default().push(up);
    }
    drop(read);
    for component in crate::triggers::cycles(&graph) {
        let path =
            crate::triggers::describe_cycle(&crate::triggers::example_cycle(&graph, &component));
        tracing::warn!(
            "the specs in force trigger each other in a cycle ({path}); its triggers are off until a spec breaks it"
        );
        let members: std::collections::HashSet<&str> =
            component.iter().map(String::as_str).collect();
        for down in &component {
            for up in graph.get(down).into_iter().flatten() {
                if members.contains(up.as_str()) {
                    tx.prepare_cached(
                        "DELETE FROM trigger_edges WHERE upstream = ?1 AND downstream = ?2",
                    )?
                    .execute(params![up, down])?;
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
    tx: &Transaction<'_>,
    job_id: &str,
    seq: i64,
    status: RunStatus,
    now: Millis,
) -> rusqlite::Result<()> {
    let quiet: Option<bool> = tx
        .prepare_cached("SELECT no_trigger FROM runs WHERE job_id = ?1 AND seq = ?2")?
        .query_row(params![job_id, seq], |row| row.get(0))
        .optional()?;
    if quiet != Some(false) {
        return Ok(());
    }
    let downstream: Vec<(String, String)> = tx
        .prepare_cached(
            "SELECT e.downstream, j.spec_json FROM trigger_edges e JOIN jobs j ON j.id = e.downstream
             WHERE e.upstream = ?1 AND j.present = 1 AND j.spec_json IS NOT NULL",
        )?
        .query_map([job_id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
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
            tx.prepare_cached(
                "INSERT INTO fan_in (job_id, upstream, seq) VALUES (?1, ?2, ?3)
                 ON CONFLICT (job_id, upstream) DO UPDATE SET seq = excluded.seq",
            )?
            .execute(params![down, job_id, seq])?;
            let have: Vec<(String, i64)> = tx
                .prepare_cached("SELECT upstream, seq FROM fan_in WHERE job_id = ?1")?
                .query_map([&down], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
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
                tx.prepare_cached("DELETE FROM fan_in WHERE job_id = ?1")?
                    .execute([&down])?;
            }
        }
    }
    Ok(())
}

fn owe(
    tx: &Transaction<'_>,
    down: &str,
    job_id: &str,
    seq: i64,
    upstreams: &str,
    now: Millis,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO triggers (job_id, upstream_job, upstream_seq, upstreams, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
    )?
    .execute(params![down, job_id, seq, upstreams, now])?;
    Ok(())
}

/// Whether `owed` is still pending, in the claim's transaction.
pub(super) fn pending(tx: &Transaction<'_>, owed: &OwedTrigger) -> rusqlite::Result<bool> {
    tx.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM triggers WHERE job_id = ?1 AND upstream_job = ?2
                        AND upstream_seq = ?3 AND state = 'pending')",
    )?
    .query_row(
        params![owed.job_id, owed.upstream_job, owed.upstream_seq],
        |row| row.get(0),
    )
}

/// Takes `owed` for run `seq` (the run it became, or the record of its skip).
pub(super) fn take(tx: &Transaction<'_>, owed: &OwedTrigger, seq: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE triggers SET state = 'taken', run_seq = ?4
         WHERE job_id = ?1 AND upstream_job = ?2 AND upstream_seq = ?3 AND state = 'pending'",
    )?
    .execute(params![
        owed.job_id,
        owed.upstream_job,
        owed.upstream_seq,
        seq
    ])?;
    Ok(())
}

impl SqliteStore {
    pub(super) fn read_owed_triggers(&self) -> Result<Vec<OwedTrigger>> {
        let fail = |e| store_error("read the triggered runs owed", e);
        self.conn
            .prepare_cached(
                "SELECT job_id, upstream_job, upstream_seq, upstreams, created_at FROM triggers
                 WHERE state = 'pending' ORDER BY created_at, job_id",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| {
                        Ok(OwedTrigger {
                            job_id: row.get(0)?,
                            upstream_job: row.get(1)?,
                            upstream_seq: row.get(2)?,
                            upstreams: row.get(3)?,
                            created_at: row.get::<_, Millis>(4)?.0,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_among_the_stored_specs_is_never_live() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = SqliteStore::open(&dir.path().join("jobs.sqlite3")).expect("open");
        // Specs the loader would refuse together, written as an older version might have left them:
        // a and b trigger each other, c runs after a (not on the cycle).
        for (id, spec) in [
            ("a", r#"{"after":[{"job":"b","on":["succeeded"]}]}"#),
            ("b", r#"{"after_all":["a"]}"#),
            ("c", r#"{"after":[{"job":"a","on":["succeeded"]}]}"#),
        ] {
            store
                .conn
                .execute(
                    "INSERT INTO jobs (id, spec_path, spec_hash, state, created_at, updated_at, spec_json)
                     VALUES (?1, 'jobs/x.yaml', 'h', 'active', 0, 0, ?2)",
                    params![id, spec],
                )
                .expect("job");
        }
        let tx = store.conn.transaction().expect("tx");
        rebuild_edges(&tx).expect("rebuild");
        let edges: Vec<(String, String)> = tx
            .prepare("SELECT upstream, downstream FROM trigger_edges ORDER BY 1, 2")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()
            })
            .expect("edges");
        assert_eq!(edges, [("a".to_owned(), "c".to_owned())]);
    }
}
