//! The typed job spec: what a validated spec file means. Field names, defaults and ranges mirror
//! `schemas/job.schema.json`; a test keeps the two in step.

use std::collections::BTreeMap;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};

use super::size::ByteSize;
use crate::duration::{Limit, SpecDuration};
use crate::schedule::{Schedule, parse_cron, parse_timezone};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    pub run: RunSpec,
    #[serde(default)]
    pub policy: PolicySpec,
    #[serde(default)]
    pub retry: RetrySpec,
    #[serde(default)]
    pub retention: RetentionSpec,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<SpecDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<SpecDuration>,
}

// The schedule module knows time, not specs: reading a spec's schedule fields into a `Schedule` lives
// here, so `spec` depends on `schedule` and never the reverse.
impl Schedule {
    /// Builds the schedule of a spec whose fields were already checked by the loader.
    pub fn from_spec(spec: &ScheduleSpec) -> Result<Self, String> {
        Self::build(spec, None)
    }

    /// As [`Schedule::from_spec`], reusing `cron` when the caller already parsed the pattern.
    pub fn build(spec: &ScheduleSpec, cron: Option<Arc<Cron>>) -> Result<Self, String> {
        let tz = match &spec.timezone {
            Some(name) => parse_timezone(name)?,
            None => Tz::UTC,
        };
        match (&spec.cron, spec.every) {
            (Some(pattern), None) => {
                let cron = match cron {
                    Some(cron) => cron,
                    None => parse_cron(pattern)?,
                };
                Ok(Self::cron(pattern, cron, tz))
            }
            (None, Some(every)) => {
                Self::every(every, spec.anchor.unwrap_or(DateTime::UNIX_EPOCH), tz)
            }
            _ => Err("a schedule needs exactly one of cron or every".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    #[serde(default = "dot")]
    pub cwd: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<SpecDuration>,
    #[serde(default = "ten_seconds")]
    pub kill_grace: SpecDuration,
    /// Each of `stdout.log` and `stderr.log` of a run stops growing here.
    #[serde(default = "two_hundred_fifty_six_mebibytes")]
    pub max_log_size: ByteSize,
    /// Run as this user (from /etc/passwd); only when `jobs` runs as root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// With `user`: this group (from /etc/group) instead of the user's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "RunLimits::is_empty")]
    pub limits: RunLimits,
    /// What becomes of processes an attempt leaves in its group when its main process exits.
    #[serde(default)]
    pub leftovers: Leftovers,
}

/// Resource limits set on each attempt's process (and inherited by what it starts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunLimits {
    /// Open file descriptors (RLIMIT_NOFILE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nofile: Option<u64>,
    /// Address space (RLIMIT_AS).
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub address_space: Option<ByteSize>,
    /// CPU time (RLIMIT_CPU), whole seconds; SIGXCPU at the limit, SIGKILL a second later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<SpecDuration>,
}

impl RunLimits {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// `run.leftovers`: a run's processes end with it (`kill`, the default), or, for the rare job that
/// means to start a daemon, are left running (`keep`), and output capture stops when the main process
/// exits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Leftovers {
    #[default]
    Kill,
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    Skip,
    Queue,
    Replace,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    #[serde(default = "one")]
    pub max_instances: u32,
    #[serde(default = "skip")]
    pub overlap: Overlap,
    #[serde(default = "yes")]
    pub coalesce: bool,
    #[serde(default = "five_minutes")]
    pub misfire_grace: Limit,
}

impl Default for PolicySpec {
    fn default() -> Self {
        Self {
            max_instances: one(),
            overlap: skip(),
            coalesce: true,
            misfire_grace: five_minutes(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryOn {
    Failed,
    TimedOut,
    Interrupted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    #[serde(default = "one")]
    pub max_attempts: u32,
    #[serde(default = "ten_seconds")]
    pub backoff: SpecDuration,
    #[serde(default = "ten_minutes")]
    pub max_backoff: SpecDuration,
    #[serde(default = "failed_or_timed_out")]
    pub retry_on: Vec<RetryOn>,
}

impl Default for RetrySpec {
    fn default() -> Self {
        Self {
            max_attempts: one(),
            backoff: ten_seconds(),
            max_backoff: ten_minutes(),
            retry_on: failed_or_timed_out(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_days: Option<u32>,
}

fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn dot() -> String {
    ".".into()
}
fn skip() -> Overlap {
    Overlap::Skip
}
fn ten_seconds() -> SpecDuration {
    SpecDuration::from_millis(10_000)
}
fn ten_minutes() -> SpecDuration {
    SpecDuration::from_millis(600_000)
}
fn two_hundred_fifty_six_mebibytes() -> ByteSize {
    ByteSize::from_bytes(256 << 20)
}
fn five_minutes() -> Limit {
    Limit::Within(SpecDuration::from_millis(300_000))
}
fn failed_or_timed_out() -> Vec<RetryOn> {
    vec![RetryOn::Failed, RetryOn::TimedOut]
}
