//! The last good version of the home's config, on PostgreSQL.

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

impl ConfigStore for PgStore {
    fn kept_config(&self) -> Result<Option<KeptConfig>> {
        Err(not_yet("kept_config"))
    }
    fn keep_config(&mut self, config: Option<&KeptConfig>, now: DateTime<Utc>) -> Result<()> {
        Err(not_yet("keep_config"))
    }
}
