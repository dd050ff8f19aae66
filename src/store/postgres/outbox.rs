//! The notifications owed, on PostgreSQL.

#![allow(
    unused_variables,
    unused_imports,
    dead_code,
    reason = "a stub until the port lands"
)]

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::connection::{PgStore, not_yet};
use crate::error::Result;
use crate::notifier::fanout::Outgoing;
use crate::run::{RunEnd, RunStatus};
use crate::spec::SpecFile;
use crate::spec::model::NotifierSpec;
use crate::store::interface::*;
use crate::store::records::*;

/// Which of a run's events a notification is owed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunEventKind {
    Started,
    Ended,
}

/// Writes what the job's notifiers are owed for `what` of run `job_id#seq`, inside the caller's
/// transaction (see the SQLite store's `owe_for_run`).
pub(super) fn owe_for_run(
    tx: &mut postgres::Transaction<'_>,
    job_id: &str,
    seq: i64,
    what: RunEventKind,
    now: super::column::Millis,
) -> std::result::Result<(), postgres::Error> {
    Ok(())
}

/// Inserts notifications, inside the caller's transaction.
pub(super) fn insert(
    tx: &mut postgres::Transaction<'_>,
    owed: &[Outgoing],
) -> std::result::Result<(), postgres::Error> {
    Ok(())
}

impl OutboxStore for PgStore {
    fn enqueue(&mut self, notifications: &[Outgoing]) -> Result<()> {
        Err(not_yet("enqueue"))
    }
    fn config_turned_invalid(&mut self, hash: &str, notifications: &[Outgoing]) -> Result<bool> {
        Err(not_yet("config_turned_invalid"))
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
        Err(not_yet("take_due"))
    }
    fn record_try(&mut self, delivery_id: &str, by: &str, tried: &DeliveryTry) -> Result<()> {
        Err(not_yet("record_try"))
    }
    fn release_leases(&mut self, by: &str) -> Result<()> {
        Err(not_yet("release_leases"))
    }
    fn notifications_of_run(&self, job_id: &str, seq: i64) -> Result<Vec<NotificationRecord>> {
        Err(not_yet("notifications_of_run"))
    }
    fn pending_of_run(&self, job_id: &str, seq: i64) -> Result<u64> {
        Err(not_yet("pending_of_run"))
    }
    fn given_up(&self, limit: usize) -> Result<Vec<NotificationRecord>> {
        Err(not_yet("given_up"))
    }
    fn outbox_counts(&self) -> Result<OutboxCounts> {
        Err(not_yet("outbox_counts"))
    }
    fn forget_home_events(&mut self, before: DateTime<Utc>) -> Result<usize> {
        Err(not_yet("forget_home_events"))
    }
}
