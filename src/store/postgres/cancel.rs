//! Requests to cancel runs in flight, on PostgreSQL.

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

impl CancelStore for PgStore {
    fn request_cancel(
        &mut self,
        runs: &[(String, i64)],
        by: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Requested>> {
        Err(not_yet("request_cancel"))
    }
    fn cancels_for_owner(&self, owner: &str) -> Result<Vec<(String, i64)>> {
        Err(not_yet("cancels_for_owner"))
    }
    fn cancel_request(&self, job_id: &str, seq: i64) -> Result<Option<CancelRequest>> {
        Err(not_yet("cancel_request"))
    }
}
