//! `jobsctl schema`: the embedded JSON Schema of job specs, for editors and CI.

use super::output::Report;
use crate::spec::load::JOB_SCHEMA;

pub fn run() -> Report {
    let data = serde_json::from_str(JOB_SCHEMA).unwrap_or(serde_json::Value::Null);
    Report::ok(data, JOB_SCHEMA.to_owned())
}
