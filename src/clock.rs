//! Where "now" comes from, and how instants are written down for machines. Deciding code never reads the clock itself: it takes `now` as a parameter,
//! and the edges (the CLI, the scheduler) get it from a [`Clock`], which tests replace with a fixed one.

use chrono::{DateTime, SecondsFormat, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock of the machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that always answers the same instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// An instant as every artifact and `--json` output writes it: RFC 3339, UTC, milliseconds, `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An instant written in RFC 3339 (as [`rfc3339`] writes it, or with any offset), read back.
pub fn parse_rfc3339(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Serializes instants as [`rfc3339`] writes them, for `#[serde(serialize_with = ...)]` on `--json`
/// values: `chrono`'s own form varies its precision with the instant.
pub mod as_rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    pub fn instant<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::rfc3339(*t))
    }

    pub fn option<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => serializer.serialize_str(&super::rfc3339(*t)),
            None => serializer.serialize_none(),
        }
    }
}

/// How far `t` is from `now` in words: `in 3h 12m`, `5m ago`, `now`.
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let delta = (t - now).num_seconds();
    let span = delta.unsigned_abs();
    if span == 0 {
        return "now".into();
    }
    let (days, hours, minutes, seconds) =
        (span / 86_400, span / 3_600 % 24, span / 60 % 60, span % 60);
    let words = if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    };
    if delta > 0 {
        format!("in {words}")
    } else {
        format!("{words} ago")
    }
}
