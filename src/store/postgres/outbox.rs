//! The `notifications` and `notification_tries` tables on PostgreSQL: writing what an event owes
//! (inside the transaction that records the event), leasing due notifications to a deliverer,
//! recording each try. Must not decide who hears an event (`notifier::fanout` does) or when to try
//! again (the deliverer's backoff does).
//!
//! PostgreSQL has no `rowid`, which the SQLite store orders notifications by when their times are
//! equal: here the order owed is [`OWED_ORDER`], the time owed, a run's start before its end, then
//! the delivery id.

use chrono::{DateTime, Duration, Utc};
use postgres::Transaction;
use postgres::types::{FromSql, Type, accepts};

use super::column::{Millis, instant, millis, signed};
use super::connection::{PgStore, pg_error};
use super::history::{RUN_COLUMNS, run_row};
use crate::error::Result;
use crate::notifier::Notification;
use crate::notifier::fanout::{self, Outgoing, RunEvent};
use crate::run::RunStatus;
use crate::spec::model::NotifierSpec;
use crate::store::interface::OutboxStore;
use crate::store::records::{
    DeliveryState, DeliveryTry, DueNotification, NotificationRecord, OutboxCounts, RunRow,
    TryRecord,
};

/// A lease lasts the notifier's timeout and this much more: a try cannot outlast its timeout, so a
/// try still unrecorded when its lease ends belongs to a process that is gone (or stalled, and then
/// a second try under the same delivery id is what at-least-once delivery allows).
const LEASE_MARGIN: Duration = Duration::seconds(15);

/// The order in which notifications were owed, as a row value of the table's columns (aliased
/// `n`): the time owed; at the same instant a run's start before its end (the order the store
/// records them in); then the delivery id, so that the order is total.
const OWED_ORDER: &str =
    "n.created_at, CASE WHEN n.event = 'started' THEN 0 ELSE 1 END, n.delivery_id";

/// The same order for another alias of the table.
fn owed_order(alias: &str) -> String {
    OWED_ORDER.replace("n.", &format!("{alias}."))
}

/// Which moment of a run is being recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunEventKind {
    Started,
    Ended,
}

/// Writes what `what` of run `job_id#seq` owes to the notifiers of its job's last good spec, inside
/// the caller's transaction. A job without notifiers costs one read by primary key.
pub(super) fn owe_for_run(
    tx: &mut Transaction<'_>,
    job_id: &str,
    seq: i64,
    what: RunEventKind,
    now: Millis,
) -> std::result::Result<(), postgres::Error> {
    let notify: Option<String> = tx
        .query_opt(
            "SELECT (spec_json::jsonb -> 'notify')::text FROM jobs WHERE id = $1",
            &[&job_id],
        )?
        .map(|row| row.try_get(0))
        .transpose()?
        .flatten();
    let Some(notify) = notify.filter(|n| n != "[]") else {
        return Ok(());
    };
    let notifiers: Vec<NotifierSpec> = match serde_json::from_str(&notify) {
        Ok(notifiers) => notifiers,
        Err(e) => {
            // The spec was checked when it was stored, so a notify list that no longer reads comes
            // from another version's store; it must not keep the run's end from being recorded.
            tracing::warn!(job = %job_id, "the stored notify list does not read ({e}); no notification is owed");
            return Ok(());
        }
    };
    let run = tx
        .query_opt(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE job_id = $1 AND seq = $2"),
            &[&job_id, &seq],
        )?
        .as_ref()
        .map(run_row)
        .transpose()?;
    let Some(run) = run else { return Ok(()) };
    let event = match what {
        RunEventKind::Started => RunEvent::Started,
        RunEventKind::Ended => RunEvent::Ended {
            previous_failed: run.status == RunStatus::Succeeded && previous_failed(tx, &run)?,
        },
    };
    let owed = fanout::for_run(event, &run.facts(), &notifiers, &crate::run::host(), now.0);
    insert(tx, &owed)
}

/// Whether the job's last run before `run` that ran to an end (succeeded, failed, timed out or was
/// interrupted; not a cancel or a slot that never ran) did not succeed.
fn previous_failed(
    tx: &mut Transaction<'_>,
    run: &RunRow,
) -> std::result::Result<bool, postgres::Error> {
    let status: Option<RunStatus> = tx
        .query_opt(
            "SELECT status FROM runs WHERE job_id = $1 AND seq < $2
               AND status IN ('succeeded', 'failed', 'timed_out', 'interrupted')
             ORDER BY seq DESC LIMIT 1",
            &[&run.job_id, &run.seq],
        )?
        .map(|row| row.try_get(0))
        .transpose()?;
    Ok(status.is_some_and(|s| s != RunStatus::Succeeded))
}

/// Writes `owed` to the outbox, inside the caller's transaction; a delivery id owed already is left
/// alone.
pub(super) fn insert(
    tx: &mut Transaction<'_>,
    owed: &[Outgoing],
) -> std::result::Result<(), postgres::Error> {
    if owed.is_empty() {
        return Ok(());
    }
    let store_key: String = tx
        .query_one("SELECT key FROM store_key WHERE id = 1", &[])?
        .try_get(0)?;
    let claimed_at = tx.prepare("SELECT claimed_at FROM runs WHERE job_id = $1 AND seq = $2")?;
    let statement = tx.prepare(
        "INSERT INTO notifications (delivery_id, job_id, seq, event, notifier, endpoint, body, created_at,
                                    next_try_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT DO NOTHING",
    )?;
    for o in owed {
        let notifier = serde_json::to_string(&o.notifier).unwrap_or_default();
        let (job_id, seq) = match &o.run {
            Some((job, seq)) => (Some(job.as_str()), Some(*seq)),
            None => (None, None),
        };
        // The fan-out's id names the event; the store's key and the run's claim time make it this
        // home's, and this run's (not that of an earlier run with the same number, before a
        // restore).
        let claimed: Option<i64> = match (job_id, seq) {
            (Some(job), Some(seq)) => tx
                .query_opt(&claimed_at, &[&job, &seq])?
                .map(|row| row.try_get(0))
                .transpose()?,
            _ => None,
        };
        let delivery_id = crate::notifier::deliver::uuid_from(&format!(
            "{store_key}:{}:{}",
            claimed.map(|c| c.to_string()).unwrap_or_default(),
            o.delivery_id
        ));
        let mut body = o.body.clone();
        body.delivery_id.clone_from(&delivery_id);
        tx.execute(
            &statement,
            &[
                &delivery_id,
                &job_id,
                &seq,
                &o.event.as_str(),
                &notifier,
                &o.endpoint,
                &body.to_json(),
                &Millis(o.at),
            ],
        )?;
    }
    Ok(())
}

/// The columns [`record_row`] reads.
const RECORD_COLUMNS: &str = "n.delivery_id, n.event, n.notifier, n.state, n.created_at, n.next_try_at, n.done_at, \
     n.last_error, n.job_id, n.seq";

/// A notification as `show` and `status` report it, its notifier masked; its tries are read apart.
fn record_row(row: &postgres::Row) -> std::result::Result<NotificationRecord, postgres::Error> {
    let notifier: String = row.try_get(2)?;
    let shown = serde_json::from_str::<NotifierSpec>(&notifier).map_or_else(
        |_| "unreadable".into(),
        |n| crate::notifier::shown(&n.target),
    );
    let state: String = row.try_get(3)?;
    let state = DeliveryState::parse(&state).unwrap_or(DeliveryState::Pending);
    Ok(NotificationRecord {
        delivery_id: row.try_get(0)?,
        event: row.try_get(1)?,
        notifier: shown,
        job_id: row.try_get(8)?,
        run: row.try_get(9)?,
        state,
        created_at: row.try_get::<_, Millis>(4)?.0,
        next_try_at: (state == DeliveryState::Pending)
            .then(|| instant(row, 5))
            .transpose()?
            .flatten(),
        done_at: instant(row, 6)?,
        last_error: row.try_get(7)?,
        tries: Vec::new(),
    })
}

/// A due row as read: delivery id, job id, run seq, notifier JSON, endpoint, body JSON, tries so far.
type DueRow = (
    String,
    Option<String>,
    Option<i64>,
    String,
    String,
    String,
    u32,
);

/// A count that cannot be negative, read as the unsigned type a record holds (a count out of its
/// range is read as 0, as the SQLite store reads it).
fn count<T: TryFrom<i64> + Default>(n: i64) -> T {
    T::try_from(n).unwrap_or_default()
}

/// A BIGINT column read as the narrower or unsigned type a record holds: a value that does not fit
/// is an error, never a wrapped or clamped number, as the SQLite store's checked reads refuse it.
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

impl OutboxStore for PgStore {
    fn enqueue(&mut self, notifications: &[Outgoing]) -> Result<()> {
        super::connection::in_place(|| {
            if notifications.is_empty() {
                return Ok(());
            }
            let fail = |e| pg_error("write notifications to the outbox", e);
            let mut tx = self.write().map_err(fail)?;
            insert(&mut tx, notifications).map_err(fail)?;
            tx.commit().map_err(fail)
        })
    }

    fn config_turned_invalid(&mut self, hash: &str, notifications: &[Outgoing]) -> Result<bool> {
        super::connection::in_place(|| {
            let fail = |e| pg_error("record the invalid config", e);
            let mut tx = self.write().map_err(fail)?;
            let changed = tx
                .execute(
                    "INSERT INTO config_invalid (id, hash) VALUES (1, $1)
                 ON CONFLICT (id) DO UPDATE SET hash = $1 WHERE config_invalid.hash <> $1",
                    &[&hash],
                )
                .map_err(fail)?;
            if changed > 0 {
                insert(&mut tx, notifications).map_err(fail)?;
            }
            tx.commit().map_err(fail)?;
            Ok(changed > 0)
        })
    }

    fn take_due(
        &mut self,
        by: &str,
        now: DateTime<Utc>,
        run: Option<(&str, i64)>,
        limit: usize,
        per_endpoint: usize,
        admit: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Vec<DueNotification>> {
        super::connection::in_place(|| {
            let fail = |e| pg_error("take notifications from the outbox", e);
            let now = Millis(now);
            let (job, seq) = match run {
                Some((job, seq)) => (Some(job), Some(seq)),
                None => (None, None),
            };
            // Due: pending, its time come, no live lease, and nothing owed before it for the same run
            // to the same endpoint still pending. A run's notifications reach one endpoint in the order
            // owed: a healthchecks check that heard a run's end before its start would wait for an end
            // that never comes.
            let due = format!(
                "FROM notifications n
             WHERE n.state = 'pending' AND n.next_try_at <= $1
               AND (n.lease_until IS NULL OR n.lease_until <= $1)
               AND ($2::text IS NULL OR (n.job_id = $2 AND n.seq = $3))
               AND NOT EXISTS (
                   SELECT 1 FROM notifications e
                   WHERE e.job_id = n.job_id AND e.seq = n.seq AND e.state = 'pending'
                     AND e.endpoint = n.endpoint AND ({}) < ({OWED_ORDER}))",
                owed_order("e")
            );
            // A plain read first: most of the time nothing is due, and no write lock is needed.
            let any: bool = self
                .client
                .borrow_mut()
                .query_one(
                    &format!("SELECT EXISTS (SELECT 1 {due})"),
                    &[&now, &job, &seq],
                )
                .and_then(|row| row.try_get(0))
                .map_err(fail)?;
            if !any {
                return Ok(Vec::new());
            }
            let mut tx = self.write().map_err(fail)?;
            // At most `per_endpoint` of each endpoint, oldest first, read until `limit` are admitted: a
            // backlog behind one hung endpoint takes a few places of the read, never all of them, so
            // every other endpoint's notifications are still seen and taken.
            let per_endpoint = i64::try_from(per_endpoint.max(1)).unwrap_or(i64::MAX);
            let read = tx
            .query(
                &format!(
                    "SELECT delivery_id, job_id, seq, notifier, endpoint, body, tries FROM (
                         SELECT n.delivery_id, n.job_id, n.seq, n.notifier, n.endpoint, n.body, n.tries,
                                n.next_try_at, n.created_at,
                                CASE WHEN n.event = 'started' THEN 0 ELSE 1 END AS start_first,
                                ROW_NUMBER() OVER (PARTITION BY n.endpoint
                                                   ORDER BY n.next_try_at, {OWED_ORDER}) AS place
                         {due}) ranked
                     WHERE place <= $4 ORDER BY next_try_at, created_at, start_first, delivery_id"
                ),
                &[&now, &job, &seq, &per_endpoint],
            )
            .map_err(fail)?;
            let mut rows: Vec<DueRow> = Vec::new();
            for row in &read {
                if rows.len() >= limit {
                    break;
                }
                let endpoint: String = row.try_get(4).map_err(fail)?;
                if !admit(&endpoint) {
                    continue;
                }
                rows.push((
                    row.try_get(0).map_err(fail)?,
                    row.try_get(1).map_err(fail)?,
                    row.try_get(2).map_err(fail)?,
                    row.try_get(3).map_err(fail)?,
                    endpoint,
                    row.try_get(5).map_err(fail)?,
                    row.try_get::<_, Fits<u32>>(6).map_err(fail)?.0,
                ));
            }
            let mut taken = Vec::new();
            for (delivery_id, job_id, seq, notifier, endpoint, body, tries) in rows {
                let parsed = serde_json::from_str::<NotifierSpec>(&notifier)
                    .map_err(|e| e.to_string())
                    .and_then(|n| {
                        serde_json::from_str::<Notification>(&body)
                            .map(|b| (n, b))
                            .map_err(|e| e.to_string())
                    });
                let (notifier, body) = match parsed {
                    Ok(parsed) => parsed,
                    Err(e) => {
                        // Written by another version and unreadable by this one: given up, saying
                        // why, rather than tried for ever.
                        tx.execute(
                        "UPDATE notifications SET state = 'given_up', done_at = $2, last_error = $3
                         WHERE delivery_id = $1",
                        &[
                            &delivery_id,
                            &now,
                            &format!("the stored notification does not read: {e}"),
                        ],
                    )
                    .map_err(fail)?;
                        continue;
                    }
                };
                let lease = Duration::from_std(notifier.timeout.as_duration())
                    .unwrap_or(Duration::zero())
                    + LEASE_MARGIN;
                tx.execute(
                "UPDATE notifications SET leased_by = $2, lease_until = $3 WHERE delivery_id = $1",
                &[&delivery_id, &by, &Millis(now.0 + lease)],
            )
            .map_err(fail)?;
                taken.push(DueNotification {
                    delivery_id,
                    run: job_id.zip(seq),
                    notifier,
                    endpoint,
                    body,
                    tries,
                });
            }
            tx.commit().map_err(fail)?;
            Ok(taken)
        })
    }

    fn record_try(&mut self, delivery_id: &str, by: &str, tried: &DeliveryTry) -> Result<()> {
        super::connection::in_place(|| {
            let fail = |e| pg_error(format!("record a try of notification {delivery_id}"), e);
            let mut tx = self.write().map_err(fail)?;
            let tries: Option<i64> = tx
                .query_opt(
                    "SELECT tries FROM notifications WHERE delivery_id = $1",
                    &[&delivery_id],
                )
                .map_err(fail)?
                .map(|row| row.try_get(0))
                .transpose()
                .map_err(fail)?;
            // Gone meanwhile (retention deleted its run's records): nothing to record it against.
            let Some(tries) = tries else { return Ok(()) };
            tx.execute(
            "INSERT INTO notification_tries (delivery_id, try, at, ok, http_status, detail, took_ms, by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &delivery_id,
                &(tries + 1),
                &Millis(tried.at),
                &i64::from(tried.delivered),
                &tried.http_status.map(i64::from),
                &tried.detail,
                &signed(tried.took_ms),
                &by,
            ],
        )
        .map_err(fail)?;
            let state = match (tried.delivered, tried.next_try_at) {
                (true, _) => DeliveryState::Delivered,
                (false, Some(_)) => DeliveryState::Pending,
                (false, None) => DeliveryState::GivenUp,
            };
            // Delivered stays delivered, and a lease another process took meanwhile stays its own.
            tx.execute(
                "UPDATE notifications SET tries = tries + 1,
                 state = CASE WHEN state = 'delivered' THEN 'delivered' ELSE $2 END,
                 next_try_at = COALESCE($3, next_try_at),
                 done_at = CASE WHEN $3::bigint IS NULL THEN COALESCE(done_at, $4) ELSE done_at END,
                 last_error = CASE WHEN $5 THEN last_error ELSE $6 END,
                 leased_by = CASE WHEN leased_by = $7 THEN NULL ELSE leased_by END,
                 lease_until = CASE WHEN leased_by = $7 THEN NULL ELSE lease_until END
             WHERE delivery_id = $1",
                &[
                    &delivery_id,
                    &state.as_str(),
                    &millis(tried.next_try_at),
                    &Millis(tried.at),
                    &tried.delivered,
                    &tried.detail,
                    &by,
                ],
            )
            .map_err(fail)?;
            tx.commit().map_err(fail)
        })
    }

    fn release_leases(&mut self, by: &str) -> Result<()> {
        super::connection::in_place(|| {
            let fail = |e| pg_error("give back the outbox's leases", e);
            let mut tx = self.write().map_err(fail)?;
            tx.execute(
                "UPDATE notifications SET leased_by = NULL, lease_until = NULL
             WHERE leased_by = $1 AND state = 'pending'",
                &[&by],
            )
            .map_err(fail)?;
            tx.commit().map_err(fail)
        })
    }

    fn notifications_of_run(&self, job_id: &str, seq: i64) -> Result<Vec<NotificationRecord>> {
        super::connection::in_place(|| {
            let fail = |e| pg_error(format!("read the notifications of {job_id}#{seq}"), e);
            let mut client = self.client.borrow_mut();
            let mut records: Vec<NotificationRecord> = client
                .query(
                    &format!(
                    "SELECT {RECORD_COLUMNS} FROM notifications n WHERE n.job_id = $1 AND n.seq = $2
                     ORDER BY {OWED_ORDER}"
                ),
                    &[&job_id, &seq],
                )
                .map_err(fail)?
                .iter()
                .map(record_row)
                .collect::<std::result::Result<_, _>>()
                .map_err(fail)?;
            let tries = client
                .prepare(
                    "SELECT ok, at, http_status, detail, took_ms, by FROM notification_tries
                 WHERE delivery_id = $1 ORDER BY try",
                )
                .map_err(fail)?;
            for record in &mut records {
                record.tries = client
                    .query(&tries, &[&record.delivery_id])
                    .map_err(fail)?
                    .iter()
                    .map(|row| {
                        Ok(TryRecord {
                            event: if row.try_get::<_, i64>(0)? != 0 {
                                "notify_sent"
                            } else {
                                "notify_failed"
                            },
                            at: row.try_get::<_, Millis>(1)?.0,
                            http_status: row.try_get::<_, Option<Fits<u16>>>(2)?.map(|s| s.0),
                            detail: row.try_get(3)?,
                            took_ms: row.try_get::<_, Fits<u64>>(4)?.0,
                            by: row.try_get(5)?,
                        })
                    })
                    .collect::<std::result::Result<_, postgres::Error>>()
                    .map_err(fail)?;
            }
            Ok(records)
        })
    }

    fn pending_of_run(&self, job_id: &str, seq: i64) -> Result<u64> {
        super::connection::in_place(|| {
            let n: i64 = self
            .client
            .borrow_mut()
            .query_one(
                "SELECT COUNT(*) FROM notifications WHERE job_id = $1 AND seq = $2 AND state = 'pending'",
                &[&job_id, &seq],
            )
            .and_then(|row| row.try_get(0))
            .map_err(|e| pg_error(format!("read the notifications of {job_id}#{seq}"), e))?;
            Ok(count(n))
        })
    }

    fn given_up(&self, limit: usize) -> Result<Vec<NotificationRecord>> {
        super::connection::in_place(|| {
            let fail = |e| pg_error("read the notifications given up", e);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            self.client
            .borrow_mut()
            .query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM notifications n WHERE n.state = 'given_up'
                     ORDER BY n.done_at DESC, n.created_at DESC,
                              CASE WHEN n.event = 'started' THEN 0 ELSE 1 END DESC, n.delivery_id DESC
                     LIMIT $1"
                ),
                &[&limit],
            )
            .map_err(fail)?
            .iter()
            .map(record_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(fail)
        })
    }

    fn outbox_counts(&self) -> Result<OutboxCounts> {
        super::connection::in_place(|| {
            self.client
                .borrow_mut()
                .query_one(
                    // Each count from its partial index, not a scan of every notification ever owed.
                    "SELECT (SELECT COUNT(*) FROM notifications WHERE state = 'pending'),
                        (SELECT COUNT(*) FROM notifications WHERE state = 'given_up')",
                    &[],
                )
                .and_then(|row| {
                    Ok(OutboxCounts {
                        pending: count(row.try_get::<_, i64>(0)?),
                        given_up: count(row.try_get::<_, i64>(1)?),
                    })
                })
                .map_err(|e| pg_error("count the outbox", e))
        })
    }

    fn forget_home_events(&mut self, before: DateTime<Utc>) -> Result<usize> {
        super::connection::in_place(|| {
            let fail = |e| pg_error("delete old home event notifications", e);
            let mut tx = self.write().map_err(fail)?;
            let gone = tx
                .execute(
                    "DELETE FROM notifications
                 WHERE job_id IS NULL AND state <> 'pending' AND done_at < $1",
                    &[&Millis(before)],
                )
                .map_err(fail)?;
            tx.commit().map_err(fail)?;
            Ok(usize::try_from(gone).unwrap_or(usize::MAX))
        })
    }
}
