//! The `notifications` and `notification_tries` tables: writing what an event owes (inside the
//! transaction that records the event), leasing due notifications to a deliverer, recording each try.
//! Must not decide who hears an event (`notifier::fanout` does) or when to try again (the deliverer's
//! backoff does).

use chrono::{DateTime, Duration, Utc};
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::column::{Millis, instant, millis, signed, unsigned};
use super::connection::{SqliteStore, store_error};
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

/// A lease lasts the notifier's timeout and this much more: a try is bounded by its timeout, so one
/// still unrecorded when the lease ends is one whose process is gone (or stalled, and then a second
/// try with the same delivery id is what at-least-once allows).
const LEASE_MARGIN: Duration = Duration::seconds(15);

/// Writes what `what` of run `job_id#seq` owes to the notifiers of its job's last good spec, inside
/// the caller's transaction. A job without notifiers costs one indexed read.
pub(super) fn owe_for_run(
    tx: &Transaction<'_>,
    job_id: &str,
    seq: i64,
    what: RunEventKind,
    now: Millis,
) -> rusqlite::Result<()> {
    let notify: Option<String> = tx
        .prepare_cached("SELECT json_extract(spec_json, '$.notify') FROM jobs WHERE id = ?1")?
        .query_row([job_id], |row| row.get(0))
        .optional()?
        .flatten();
    let Some(notify) = notify.filter(|n| n != "[]") else {
        return Ok(());
    };
    let notifiers: Vec<NotifierSpec> = match serde_json::from_str(&notify) {
        Ok(notifiers) => notifiers,
        Err(e) => {
            // The spec was checked when it was stored; a notify list that no longer reads is a store
            // from another version, and must not stop the run's end from being recorded.
            tracing::warn!(job = %job_id, "the stored notify list does not read ({e}); no notification is owed");
            return Ok(());
        }
    };
    let run = tx
        .prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE job_id = ?1 AND seq = ?2"
        ))?
        .query_row(params![job_id, seq], run_row)
        .optional()?;
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

/// Which moment of a run is being recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunEventKind {
    Started,
    Ended,
}

/// Whether the job's last run before `run` that ran to an end (succeeded, failed, timed out or was
/// interrupted; not a cancel or a slot that never ran) did not succeed.
fn previous_failed(tx: &Transaction<'_>, run: &RunRow) -> rusqlite::Result<bool> {
    let status: Option<RunStatus> = tx
        .prepare_cached(
            "SELECT status FROM runs WHERE job_id = ?1 AND seq < ?2
               AND status IN ('succeeded', 'failed', 'timed_out', 'interrupted')
             ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(params![run.job_id, run.seq], |row| row.get(0))
        .optional()?;
    Ok(status.is_some_and(|s| s != RunStatus::Succeeded))
}

/// Writes `owed` to the outbox; a delivery id owed already is left alone.
pub(super) fn insert(tx: &Transaction<'_>, owed: &[Outgoing]) -> rusqlite::Result<()> {
    let store_key: String = tx
        .prepare_cached("SELECT key FROM store_key WHERE id = 1")?
        .query_row([], |row| row.get(0))?;
    let mut claimed_at =
        tx.prepare_cached("SELECT claimed_at FROM runs WHERE job_id = ?1 AND seq = ?2")?;
    let mut statement = tx.prepare_cached(
        "INSERT INTO notifications (delivery_id, job_id, seq, event, notifier, endpoint, body, created_at,
                                    next_try_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) ON CONFLICT DO NOTHING",
    )?;
    for o in owed {
        let notifier = serde_json::to_string(&o.notifier).unwrap_or_default();
        let (job_id, seq) = match &o.run {
            Some((job, seq)) => (Some(job.as_str()), Some(*seq)),
            None => (None, None),
        };
        // The fan-out's id names the event; this store's key and the run's claim make it this
        // home's, and this run's (not an earlier one's with the same number, before a restore).
        let claimed: Option<i64> = match (job_id, seq) {
            (Some(job), Some(seq)) => claimed_at
                .query_row(params![job, seq], |row| row.get(0))
                .optional()?,
            _ => None,
        };
        let delivery_id = crate::notifier::deliver::uuid_from(&format!(
            "{store_key}:{}:{}",
            claimed.map(|c| c.to_string()).unwrap_or_default(),
            o.delivery_id
        ));
        let mut body = o.body.clone();
        body.delivery_id.clone_from(&delivery_id);
        statement.execute(params![
            delivery_id,
            job_id,
            seq,
            o.event.as_str(),
            notifier,
            o.endpoint,
            body.to_json(),
            Millis(o.at),
        ])?;
    }
    Ok(())
}

/// The columns [`record_row`] reads.
const RECORD_COLUMNS: &str = "delivery_id, event, notifier, state, created_at, next_try_at, done_at, last_error, job_id, seq";

/// A notification as `show` and `status` report it, its notifier masked; its tries are read apart.
fn record_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<NotificationRecord> {
    let notifier: String = row.get(2)?;
    let shown = serde_json::from_str::<NotifierSpec>(&notifier).map_or_else(
        |_| "unreadable".into(),
        |n| crate::notifier::shown(&n.target),
    );
    let state: String = row.get(3)?;
    let state = DeliveryState::parse(&state).unwrap_or(DeliveryState::Pending);
    Ok(NotificationRecord {
        delivery_id: row.get(0)?,
        event: row.get(1)?,
        notifier: shown,
        job_id: row.get(8)?,
        run: row.get(9)?,
        state,
        created_at: row.get::<_, Millis>(4)?.0,
        next_try_at: (state == DeliveryState::Pending)
            .then(|| instant(row, 5))
            .transpose()?
            .flatten(),
        done_at: instant(row, 6)?,
        last_error: row.get(7)?,
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

impl OutboxStore for SqliteStore {
    fn enqueue(&mut self, notifications: &[Outgoing]) -> Result<()> {
        if notifications.is_empty() {
            return Ok(());
        }
        let fail = |e| store_error("write notifications to the outbox", e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        insert(&tx, notifications).map_err(fail)?;
        tx.commit().map_err(fail)
    }

    fn config_turned_invalid(&mut self, hash: &str, notifications: &[Outgoing]) -> Result<bool> {
        let fail = |e| store_error("record the invalid config", e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let changed = tx
            .execute(
                "INSERT INTO config_invalid (id, hash) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET hash = ?1 WHERE hash != ?1",
                [hash],
            )
            .map_err(fail)?;
        if changed > 0 {
            insert(&tx, notifications).map_err(fail)?;
        }
        tx.commit().map_err(fail)?;
        Ok(changed > 0)
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
        let fail = |e| store_error("take notifications from the outbox", e);
        let now = Millis(now);
        let (job, seq) = match run {
            Some((job, seq)) => (Some(job), Some(seq)),
            None => (None, None),
        };
        // What is due: pending, its time come, no live lease, and (a run's notifications to one
        // endpoint go out in the order they were owed: a healthchecks check that heard a run's end
        // before its start would wait for an end that never comes) nothing earlier of its run to the
        // same endpoint still pending.
        let due = "FROM notifications n
             WHERE n.state = 'pending' AND n.next_try_at <= ?1
               AND (n.lease_until IS NULL OR n.lease_until <= ?1)
               AND (?2 IS NULL OR (n.job_id = ?2 AND n.seq = ?3))
               AND NOT EXISTS (
                   SELECT 1 FROM notifications e
                   WHERE e.job_id = n.job_id AND e.seq = n.seq AND e.state = 'pending'
                     AND e.endpoint = n.endpoint AND e.rowid < n.rowid)";
        // A cheap read first: most of the time nothing is due and no write lock is needed.
        let any: bool = self
            .conn
            .prepare_cached(&format!("SELECT EXISTS (SELECT 1 {due})"))
            .and_then(|mut s| s.query_row(params![now, job, seq], |row| row.get(0)))
            .map_err(fail)?;
        if !any {
            return Ok(Vec::new());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let rows: Vec<DueRow> = {
            // At most `per_endpoint` of each endpoint, oldest first, read until `limit` are
            // admitted: a backlog behind one hung endpoint fills a few places of the read, never all
            // of them, so every other endpoint's notifications are still seen and taken.
            let per_endpoint = i64::try_from(per_endpoint.max(1)).unwrap_or(i64::MAX);
            let mut statement = tx
                .prepare_cached(&format!(
                    "SELECT delivery_id, job_id, seq, notifier, endpoint, body, tries FROM (
                         SELECT n.delivery_id, n.job_id, n.seq, n.notifier, n.endpoint, n.body,
                                n.tries, n.next_try_at, n.rowid AS place,
                                ROW_NUMBER() OVER (PARTITION BY n.endpoint
                                                   ORDER BY n.next_try_at, n.rowid) AS rank
                         {due})
                     WHERE rank <= ?4 ORDER BY next_try_at, place"
                ))
                .map_err(fail)?;
            let mut read = statement
                .query(params![now, job, seq, per_endpoint])
                .map_err(fail)?;
            let mut rows = Vec::new();
            while rows.len() < limit {
                let Some(row) = read.next().map_err(fail)? else {
                    break;
                };
                let endpoint: String = row.get(4).map_err(fail)?;
                if !admit(&endpoint) {
                    continue;
                }
                rows.push((
                    row.get(0).map_err(fail)?,
                    row.get(1).map_err(fail)?,
                    row.get(2).map_err(fail)?,
                    row.get(3).map_err(fail)?,
                    endpoint,
                    row.get(5).map_err(fail)?,
                    row.get(6).map_err(fail)?,
                ));
            }
            rows
        };
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
                    // Written by another version and unreadable by this one: given up, with why,
                    // rather than tried forever.
                    tx.execute(
                        "UPDATE notifications SET state = 'given_up', done_at = ?2, last_error = ?3
                         WHERE delivery_id = ?1",
                        params![
                            delivery_id,
                            now,
                            format!("the stored notification does not read: {e}")
                        ],
                    )
                    .map_err(fail)?;
                    continue;
                }
            };
            let lease = chrono::Duration::from_std(notifier.timeout.as_duration())
                .unwrap_or(Duration::zero())
                + LEASE_MARGIN;
            tx.execute(
                "UPDATE notifications SET leased_by = ?2, lease_until = ?3 WHERE delivery_id = ?1",
                params![delivery_id, by, Millis(now.0 + lease)],
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
    }

    fn record_try(&mut self, delivery_id: &str, by: &str, tried: &DeliveryTry) -> Result<()> {
        let fail = |e| store_error(format!("record a try of notification {delivery_id}"), e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let tries: Option<i64> = tx
            .query_row(
                "SELECT tries FROM notifications WHERE delivery_id = ?1",
                [delivery_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(fail)?;
        // Gone meanwhile (retention deleted its run's records): nothing to record against.
        let Some(tries) = tries else { return Ok(()) };
        tx.execute(
            "INSERT INTO notification_tries (delivery_id, try, at, ok, http_status, detail, took_ms, by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                delivery_id,
                tries + 1,
                Millis(tried.at),
                tried.delivered,
                tried.http_status,
                tried.detail,
                signed(tried.took_ms),
                by
            ],
        )
        .map_err(fail)?;
        let state = match (tried.delivered, tried.next_try_at) {
            (true, _) => DeliveryState::Delivered,
            (false, Some(_)) => DeliveryState::Pending,
            (false, None) => DeliveryState::GivenUp,
        };
        tx.execute(
            "UPDATE notifications SET tries = tries + 1,
                 state = CASE WHEN state = 'delivered' THEN 'delivered' ELSE ?2 END,
                 next_try_at = COALESCE(?3, next_try_at),
                 done_at = CASE WHEN ?3 IS NULL THEN COALESCE(done_at, ?4) ELSE done_at END,
                 last_error = CASE WHEN ?5 THEN last_error ELSE ?6 END,
                 leased_by = CASE WHEN leased_by = ?7 THEN NULL ELSE leased_by END,
                 lease_until = CASE WHEN leased_by = ?7 THEN NULL ELSE lease_until END
             WHERE delivery_id = ?1",
            params![
                delivery_id,
                state.as_str(),
                millis(tried.next_try_at),
                Millis(tried.at),
                tried.delivered,
                tried.detail,
                by
            ],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)
    }

    fn release_leases(&mut self, by: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE notifications SET leased_by = NULL, lease_until = NULL
                 WHERE leased_by = ?1 AND state = 'pending'",
                [by],
            )
            .map_err(|e| store_error("give back the outbox's leases", e))?;
        Ok(())
    }

    fn notifications_of_run(&self, job_id: &str, seq: i64) -> Result<Vec<NotificationRecord>> {
        let fail = |e| store_error(format!("read the notifications of {job_id}#{seq}"), e);
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM notifications WHERE job_id = ?1 AND seq = ?2
                 ORDER BY created_at, rowid"
            ))
            .map_err(fail)?;
        let mut records: Vec<NotificationRecord> = statement
            .query_map(params![job_id, seq], record_row)
            .map_err(fail)?
            .collect::<rusqlite::Result<_>>()
            .map_err(fail)?;
        let mut tries = self
            .conn
            .prepare_cached(
                "SELECT ok, at, http_status, detail, took_ms, by FROM notification_tries
                 WHERE delivery_id = ?1 ORDER BY try",
            )
            .map_err(fail)?;
        for record in &mut records {
            record.tries = tries
                .query_map([&record.delivery_id], |row| {
                    Ok(TryRecord {
                        event: if row.get::<_, bool>(0)? {
                            "notify_sent"
                        } else {
                            "notify_failed"
                        },
                        at: row.get::<_, Millis>(1)?.0,
                        http_status: row.get(2)?,
                        detail: row.get(3)?,
                        took_ms: unsigned(row, 4)?.unwrap_or(0),
                        by: row.get(5)?,
                    })
                })
                .map_err(fail)?
                .collect::<rusqlite::Result<_>>()
                .map_err(fail)?;
        }
        Ok(records)
    }

    fn pending_of_run(&self, job_id: &str, seq: i64) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM notifications WHERE job_id = ?1 AND seq = ?2 AND state = 'pending'",
                params![job_id, seq],
                |row| row.get(0),
            )
            .map_err(|e| store_error(format!("read the notifications of {job_id}#{seq}"), e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn given_up(&self, limit: usize) -> Result<Vec<NotificationRecord>> {
        let fail = |e| store_error("read the notifications given up", e);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.conn
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM notifications WHERE state = 'given_up'
                 ORDER BY done_at DESC, rowid DESC LIMIT ?1"
            ))
            .and_then(|mut s| {
                s.query_map([limit], record_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(fail)
    }

    fn outbox_counts(&self) -> Result<OutboxCounts> {
        self.conn
            .query_row(
                // Each count from its partial index, not a scan of every notification ever owed.
                "SELECT (SELECT COUNT(*) FROM notifications WHERE state = 'pending'),
                        (SELECT COUNT(*) FROM notifications WHERE state = 'given_up')",
                [],
                |row| {
                    Ok(OutboxCounts {
                        pending: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                        given_up: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                    })
                },
            )
            .map_err(|e| store_error("count the outbox", e))
    }

    fn forget_home_events(&mut self, before: DateTime<Utc>) -> Result<usize> {
        self.conn
            .execute(
                "DELETE FROM notifications
                 WHERE job_id IS NULL AND state != 'pending' AND done_at < ?1",
                [Millis(before)],
            )
            .map_err(|e| store_error("delete old home event notifications", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::SpecDuration;
    use crate::notifier::Event;
    use crate::notifier::HomeFacts;
    use crate::spec::model::{HttpUrl, NotifyTarget, WebhookFormat};

    fn webhook(url: &str) -> NotifierSpec {
        NotifierSpec {
            target: NotifyTarget::Webhook {
                url: HttpUrl::parse(url).unwrap_or_else(|_| panic!("a url: {url}")),
                format: WebhookFormat::Json,
                include_output: None,
            },
            on: vec![crate::spec::model::NotifyOn::SchedulerStarted],
            timeout: SpecDuration::from_millis(10_000),
        }
    }

    fn owed(store: &mut SqliteStore, url: &str, key: &str, at: DateTime<Utc>) {
        let facts = HomeFacts::default();
        let notifications = fanout::for_home(
            Event::SchedulerStarted,
            &facts,
            key,
            &[webhook(url)],
            "host",
            at,
        );
        assert_eq!(notifications.len(), 1, "a webhook hears a scheduler start");
        store.enqueue(&notifications).expect("enqueue");
    }

    #[test]
    fn a_backlog_behind_one_busy_endpoint_does_not_starve_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = SqliteStore::open(&dir.path().join("jobs.sqlite3")).expect("open");
        let start = DateTime::parse_from_rfc3339("2026-12-03T09:00:00Z")
            .expect("instant")
            .with_timezone(&Utc);
        // 300 owed to a hung endpoint first, then one to a healthy one.
        for n in 0..300 {
            owed(
                &mut store,
                "http://hung.example:8000/ping",
                &format!("hung-{n}"),
                start + Duration::milliseconds(n),
            );
        }
        owed(
            &mut store,
            "http://ok.example:8000/ping",
            "ok",
            start + Duration::seconds(1),
        );
        let now = start + Duration::seconds(2);
        // The hung endpoint already has its two tries in flight, so nothing more of it is admitted.
        let mut admit = |endpoint: &str| !endpoint.contains("hung");
        let taken = store
            .take_due("courier", now, None, 16, 2, &mut admit)
            .expect("take");
        let endpoints: Vec<&str> = taken.iter().map(|t| t.endpoint.as_str()).collect();
        assert_eq!(endpoints, ["http://ok.example:8000"]);

        // Left to itself, the hung endpoint is given at most two at a time.
        let mut all = |_: &str| true;
        let taken = store
            .take_due("courier", now, None, 16, 2, &mut all)
            .expect("take");
        assert_eq!(taken.len(), 2, "{taken:?}");
        assert!(taken.iter().all(|t| t.endpoint.contains("hung")));
    }

    #[test]
    fn done_home_events_are_forgotten_and_pending_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = SqliteStore::open(&dir.path().join("jobs.sqlite3")).expect("open");
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("instant")
            .with_timezone(&Utc);
        owed(&mut store, "http://a.example/hook", "done", start);
        owed(&mut store, "http://b.example/hook", "pending", start);
        let mut only_a = |endpoint: &str| endpoint.contains("a.example");
        let taken = store
            .take_due("courier", start, None, 16, 2, &mut only_a)
            .expect("take");
        assert_eq!(taken.len(), 1);
        let delivered = DeliveryTry {
            at: start,
            delivered: true,
            http_status: Some(200),
            detail: None,
            took_ms: 3,
            next_try_at: None,
        };
        store
            .record_try(&taken[0].delivery_id, "courier", &delivered)
            .expect("record");
        assert_eq!(
            store.forget_home_events(start).expect("forget"),
            0,
            "not before it was done"
        );
        let later = start + Duration::days(100);
        assert_eq!(store.forget_home_events(later).expect("forget"), 1);
        assert_eq!(store.outbox_counts().expect("counts").pending, 1);
    }
}
