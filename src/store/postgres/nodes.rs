//! Nodes and leadership on PostgreSQL: the `nodes` rows with their heartbeats, the `leader` row
//! with its term and lease, and the catalog's fingerprint. Every time is the database server's
//! clock, never a caller's: hosts whose clocks disagree still agree on whose lease has run out.

use std::time::Duration;

use postgres::Transaction;

use super::column::Millis;
use super::connection::{PgStore, in_place, pg_error};
use super::owner::STORE_NOW;
use crate::error::{Error, Result};
use crate::store::interface::{MirrorStore, NodeStore};
use crate::store::records::{Fence, LeaderRow, Lease, NodeBeat, NodeRow};

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Inside a tick's transaction: whether `fence` still leads, its lease not run out by the store's
/// clock. The caller holds the write lock, which every election takes too, so no other node can be
/// elected before this transaction commits.
pub(super) fn check_fence(
    tx: &mut Transaction<'_>,
    fence: Option<&Fence>,
) -> std::result::Result<Option<Error>, postgres::Error> {
    let Some(fence) = fence else {
        return Ok(None);
    };
    let leads = tx
        .query_opt(
            &format!(
                "SELECT 1 FROM leader WHERE id = 1 AND node = $1 AND term = $2 AND expires_at > {STORE_NOW}"
            ),
            &[&fence.node, &fence.term],
        )?
        .is_some();
    Ok((!leads).then(|| Error::NotLeader {
        node: fence.node.clone(),
        term: fence.term,
    }))
}

fn labels_text(labels: &[String]) -> String {
    labels.join(",")
}

fn node_row(row: &postgres::Row) -> std::result::Result<NodeRow, postgres::Error> {
    let labels: String = row.try_get(3)?;
    Ok(NodeRow {
        node: row.try_get(0)?,
        owner: row.try_get(1)?,
        version: row.try_get(2)?,
        labels: labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        started_at: row.try_get::<_, Millis>(4)?.0,
        heartbeat_at: row.try_get::<_, Millis>(5)?.0,
        dead_after_ms: row.try_get(6)?,
        runs_in_flight: row.try_get(7)?,
        spec_hash: row.try_get(8)?,
        heartbeat_age_ms: row.try_get(9)?,
    })
}

impl NodeStore for PgStore {
    fn join_node(
        &mut self,
        beat: &NodeBeat,
        live_for: Duration,
        gone: &dyn Fn(&str) -> bool,
    ) -> Result<Option<String>> {
        in_place(|| {
            let live_ms = millis(live_for);
            let found = self.quiet_write("record this node", |tx| {
                let before = tx.query_opt(
                    &format!(
                        "SELECT owner, {STORE_NOW} - heartbeat_at FROM nodes WHERE name = $1 FOR UPDATE"
                    ),
                    &[&beat.node],
                )?;
                if let Some(row) = &before {
                    let (owner, age): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
                    if owner != beat.owner && age < live_ms && !gone(&owner) {
                        return Ok(Err((owner, age)));
                    }
                }
                tx.execute(
                    &format!(
                        "INSERT INTO nodes (name, owner, version, labels, started_at, heartbeat_at,
                             dead_after_ms, runs_in_flight, spec_hash)
                         SELECT $1, $2, $3, $4, clock.now, clock.now, $5, $6, $7
                         FROM (SELECT {STORE_NOW} AS now) AS clock
                         ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner,
                             version = EXCLUDED.version, labels = EXCLUDED.labels,
                             started_at = EXCLUDED.started_at, heartbeat_at = EXCLUDED.heartbeat_at,
                             dead_after_ms = EXCLUDED.dead_after_ms,
                             runs_in_flight = EXCLUDED.runs_in_flight, spec_hash = EXCLUDED.spec_hash"
                    ),
                    &[
                        &beat.node,
                        &beat.owner,
                        &beat.version,
                        &labels_text(&beat.labels),
                        &beat.dead_after_ms,
                        &beat.runs_in_flight,
                        &beat.spec_hash,
                    ],
                )?;
                let previous = before.map(|row| row.try_get::<_, String>(0)).transpose()?;
                Ok(Ok(previous.filter(|owner| *owner != beat.owner)))
            })?;
            found.map_err(|(owner, seen_ms)| Error::NodeNameTaken {
                node: beat.node.clone(),
                owner,
                seen_ms,
            })
        })
    }

    fn node_heartbeat(&mut self, beat: &NodeBeat) -> Result<bool> {
        in_place(|| {
            self.quiet_write("renew this node's heartbeat", |tx| {
                let renewed = tx.execute(
                    &format!(
                        "UPDATE nodes SET heartbeat_at = {STORE_NOW}, labels = $3, dead_after_ms = $4,
                             runs_in_flight = $5, spec_hash = $6
                         WHERE name = $1 AND owner = $2"
                    ),
                    &[
                        &beat.node,
                        &beat.owner,
                        &labels_text(&beat.labels),
                        &beat.dead_after_ms,
                        &beat.runs_in_flight,
                        &beat.spec_hash,
                    ],
                )?;
                // The runs it owns are alive as long as it is: their sign of life is renewed with
                // its own, whoever looks at them from another host.
                renew_owned(tx, &beat.owner, beat.dead_after_ms)?;
                Ok(renewed > 0)
            })
        })
    }

    fn renew_runs(&mut self, owner: &str, dead_after: Duration) -> Result<()> {
        in_place(|| {
            let promise = millis(dead_after);
            self.quiet_write("renew the runs' sign of life", |tx| {
                renew_owned(tx, owner, promise)
            })?;
            Ok(())
        })
    }

    fn leave_node(&mut self, node: &str, owner: &str) -> Result<()> {
        in_place(|| {
            self.quiet_write("remove this node", |tx| {
                tx.execute(
                    "DELETE FROM nodes WHERE name = $1 AND owner = $2",
                    &[&node, &owner],
                )
            })?;
            Ok(())
        })
    }

    fn nodes(&self) -> Result<Vec<NodeRow>> {
        in_place(|| {
            let rows = self
                .client
                .borrow_mut()
                .query(
                    &format!(
                        "SELECT name, owner, version, labels, started_at, heartbeat_at, dead_after_ms,
                             runs_in_flight, spec_hash, {STORE_NOW} - heartbeat_at
                         FROM nodes ORDER BY name"
                    ),
                    &[],
                )
                .map_err(|e| pg_error("read the nodes", e))?;
            rows.iter()
                .map(node_row)
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| pg_error("read the nodes", e))
        })
    }

    fn lead(
        &mut self,
        node: &str,
        term: Option<i64>,
        lease: Duration,
        spec_hash: &str,
    ) -> Result<Option<Lease>> {
        in_place(|| {
            let lease_ms = millis(lease);
            self.quiet_write("take or renew the leadership", |tx| {
                if let Some(term) = term {
                    // The row is ours as long as no one was elected after it: a lease that ran out
                    // while no other node asked is renewed (its claims were refused meanwhile).
                    let renewed = tx.execute(
                        &format!(
                            "UPDATE leader SET expires_at = {STORE_NOW} + $3
                             WHERE id = 1 AND node = $1 AND term = $2"
                        ),
                        &[&node, &term, &lease_ms],
                    )?;
                    if renewed > 0 {
                        record_catalog(tx, node, spec_hash)?;
                        return Ok(Some(Lease {
                            term,
                            elected: false,
                        }));
                    }
                }
                tx.execute(
                    &format!("DELETE FROM leader WHERE id = 1 AND expires_at <= {STORE_NOW}"),
                    &[],
                )?;
                // Held by a live lease: no new term is taken (a failed election leaves the
                // sequence alone, so terms count elections).
                if tx
                    .query_opt("SELECT 1 FROM leader WHERE id = 1", &[])?
                    .is_some()
                {
                    return Ok(None);
                }
                let catalog: Option<String> = tx
                    .query_opt("SELECT spec_hash FROM catalog WHERE id = 1", &[])?
                    .map(|row| row.try_get(0))
                    .transpose()?;
                // A node whose files differ from what the leaders synced never leads: a failover
                // to a host with stale or empty files must not roll the specs back.
                if catalog.as_deref().is_some_and(|c| c != spec_hash) {
                    return Ok(None);
                }
                let elected = tx.query_opt(
                    &format!(
                        "INSERT INTO leader (id, node, term, elected_at, expires_at)
                         SELECT 1, $1, nextval('leader_terms'), clock.now, clock.now + $2
                         FROM (SELECT {STORE_NOW} AS now) AS clock
                         ON CONFLICT (id) DO NOTHING RETURNING term"
                    ),
                    &[&node, &lease_ms],
                )?;
                let Some(row) = elected else {
                    return Ok(None);
                };
                record_catalog(tx, node, spec_hash)?;
                Ok(Some(Lease {
                    term: row.try_get(0)?,
                    elected: true,
                }))
            })
        })
    }

    fn resign(&mut self, node: &str, term: i64) -> Result<()> {
        in_place(|| {
            self.quiet_write("resign the leadership", |tx| {
                tx.execute(
                    "DELETE FROM leader WHERE id = 1 AND node = $1 AND term = $2",
                    &[&node, &term],
                )
            })?;
            Ok(())
        })
    }

    fn leader(&self) -> Result<Option<LeaderRow>> {
        in_place(|| {
            let fail = |e| pg_error("read the leadership", e);
            self.client
                .borrow_mut()
                .query_opt(
                    &format!(
                        "SELECT node, term, elected_at, expires_at, expires_at - {STORE_NOW}
                         FROM leader WHERE id = 1"
                    ),
                    &[],
                )
                .map_err(fail)?
                .map(|row| {
                    Ok(LeaderRow {
                        node: row.try_get(0)?,
                        term: row.try_get(1)?,
                        elected_at: row.try_get::<_, Millis>(2)?.0,
                        expires_at: row.try_get::<_, Millis>(3)?.0,
                        remaining_ms: row.try_get(4)?,
                    })
                })
                .transpose()
                .map_err(fail)
        })
    }

    fn catalog_hash(&self) -> Result<Option<String>> {
        in_place(|| {
            let fail = |e| pg_error("read the catalog's fingerprint", e);
            self.client
                .borrow_mut()
                .query_opt("SELECT spec_hash FROM catalog WHERE id = 1", &[])
                .map_err(fail)?
                .map(|row| row.try_get(0))
                .transpose()
                .map_err(fail)
        })
    }

    fn publish_catalog(&mut self, node: &str, term: i64, spec_hash: &str) -> Result<()> {
        in_place(|| {
            self.quiet_write("record the catalog's fingerprint", |tx| {
                let leads = tx
                    .query_opt(
                        "SELECT 1 FROM leader WHERE id = 1 AND node = $1 AND term = $2",
                        &[&node, &term],
                    )?
                    .is_some();
                if leads {
                    record_catalog(tx, node, spec_hash)?;
                }
                Ok(())
            })
        })
    }

    fn fence(&mut self, fence: Option<Fence>) {
        self.fence = fence;
    }
}

/// Renews the sign of life of `owner`'s runs in flight, with what it promises.
fn renew_owned(
    tx: &mut Transaction<'_>,
    owner: &str,
    dead_after_ms: i64,
) -> std::result::Result<u64, postgres::Error> {
    tx.execute(
        &format!(
            "UPDATE runs SET seen_at = {STORE_NOW}, dead_after_ms = $2
             WHERE owner = $1 AND status IN ('queued', 'running')"
        ),
        &[&owner, &dead_after_ms],
    )
}

/// The leader's specs are the catalog: recorded with each election and renewal (a change only
/// writes when the fingerprint moved).
fn record_catalog(
    tx: &mut Transaction<'_>,
    node: &str,
    spec_hash: &str,
) -> std::result::Result<(), postgres::Error> {
    tx.execute(
        &format!(
            "INSERT INTO catalog (id, spec_hash, synced_by, synced_at) VALUES (1, $1, $2, {STORE_NOW})
             ON CONFLICT (id) DO UPDATE SET spec_hash = EXCLUDED.spec_hash,
                 synced_by = EXCLUDED.synced_by, synced_at = EXCLUDED.synced_at
             WHERE catalog.spec_hash <> EXCLUDED.spec_hash"
        ),
        &[&spec_hash, &node],
    )?;
    Ok(())
}

impl MirrorStore for PgStore {
    fn mirror(
        &mut self,
        events: &[(String, i64, i64, String)],
        receipts: &[(String, i64, String)],
    ) -> Result<()> {
        if events.is_empty() && receipts.is_empty() {
            return Ok(());
        }
        in_place(|| {
            let fail = |e| pg_error("mirror run artifacts into the store", e);
            // No write lock: these rows decide nothing, and each insert stands on its own.
            let mut tx = self.client.get_mut().transaction().map_err(fail)?;
            let (jobs, seqs, ns, lines): (Vec<&str>, Vec<i64>, Vec<i64>, Vec<&str>) =
                events.iter().fold(
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
                    |(mut j, mut s, mut n, mut l), (job, seq, at, line)| {
                        j.push(job.as_str());
                        s.push(*seq);
                        n.push(*at);
                        l.push(line.as_str());
                        (j, s, n, l)
                    },
                );
            if !jobs.is_empty() {
                tx.execute(
                    "INSERT INTO run_events (job_id, seq, n, line)
                     SELECT e.job_id, e.seq, e.n, e.line
                     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[]) AS e (job_id, seq, n, line)
                     JOIN runs r ON r.job_id = e.job_id AND r.seq = e.seq
                     ON CONFLICT DO NOTHING",
                    &[&jobs, &seqs, &ns, &lines],
                )
                .map_err(fail)?;
            }
            for (job, seq, receipt) in receipts {
                tx.execute(
                    "INSERT INTO run_receipts (job_id, seq, receipt)
                     SELECT job_id, seq, $3 FROM runs WHERE job_id = $1 AND seq = $2
                     ON CONFLICT (job_id, seq) DO UPDATE SET receipt = EXCLUDED.receipt",
                    &[job, seq, receipt],
                )
                .map_err(fail)?;
            }
            tx.commit().map_err(fail)
        })
    }

    fn mirrors(&self) -> bool {
        true
    }

    fn mirrored_events(&self, job_id: &str, seq: i64, after: i64) -> Result<Vec<(i64, String)>> {
        in_place(|| {
            let rows = self
                .client
                .borrow_mut()
                .query(
                    "SELECT n, line FROM run_events WHERE job_id = $1 AND seq = $2 AND n > $3 ORDER BY n",
                    &[&job_id, &seq, &after],
                )
                .map_err(|e| pg_error(format!("read the events of {job_id}#{seq}"), e))?;
            rows.iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<std::result::Result<_, postgres::Error>>()
                .map_err(|e| pg_error(format!("read the events of {job_id}#{seq}"), e))
        })
    }

    fn mirrored_receipt(&self, job_id: &str, seq: i64) -> Result<Option<String>> {
        in_place(|| {
            let fail = |e| pg_error(format!("read the receipt of {job_id}#{seq}"), e);
            self.client
                .borrow_mut()
                .query_opt(
                    "SELECT receipt FROM run_receipts WHERE job_id = $1 AND seq = $2",
                    &[&job_id, &seq],
                )
                .map_err(fail)?
                .map(|row| row.try_get(0))
                .transpose()
                .map_err(fail)
        })
    }
}
