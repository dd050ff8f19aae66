//! The scheduler that owns the store, on PostgreSQL.

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

impl OwnerStore for PgStore {
    fn claim_owner(&mut self, owner: &str, version: &str) -> Result<()> {
        Err(not_yet("claim_owner"))
    }
    fn heartbeat(&mut self, owner: &str) -> Result<bool> {
        Err(not_yet("heartbeat"))
    }
    fn release_owner(&mut self, owner: &str) -> Result<()> {
        Err(not_yet("release_owner"))
    }
    fn owner(&self) -> Result<Option<Owner>> {
        Err(not_yet("owner"))
    }
}
