//! Human durations as written in specs: `500ms`, `30s`, `10m`, `1h30m`, `2d`, and `unlimited` where a
//! spec field allows it. Units come largest first and at most once each, so every duration has one
//! spelling and prints back the way it was written.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The units in the order they must appear, with their length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// The longest duration a spec may hold: 10 years is longer than anything a scheduler should wait for,
/// and keeps every sum of durations and instants far from overflow.
const MAX_MILLIS: u64 = 10 * 366 * 86_400_000;

/// A non-negative span of time with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SpecDuration(Duration);

impl SpecDuration {
    pub const fn from_millis(millis: u64) -> Self {
        Self(Duration::from_millis(millis))
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }

    pub fn as_millis(self) -> i64 {
        // Bounded by MAX_MILLIS when parsed, so this never truncates.
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

/// Why a string is not a duration; the message completes "… is not a valid duration: …".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError(pub &'static str);

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl FromStr for SpecDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(DurationError(
                "it is empty; write e.g. 30s, 10m, 1h30m or 2d",
            ));
        }
        let bytes = text.as_bytes();
        let mut total: u64 = 0;
        let mut next_unit = 0; // index into UNITS of the smallest unit still allowed
        let mut at = 0;
        while at < bytes.len() {
            let digits_start = at;
            while at < bytes.len() && bytes[at].is_ascii_digit() {
                at += 1;
            }
            if at == digits_start {
                return Err(DurationError(
                    "expected a number before each unit, as in 1h30m",
                ));
            }
            let unit_start = at;
            while at < bytes.len() && bytes[at].is_ascii_alphabetic() {
                at += 1;
            }
            let unit = &text[unit_start..at];
            if unit.is_empty() {
                return Err(DurationError("a unit is missing: use ms, s, m, h or d"));
            }
            let Some(offset) = UNITS[next_unit..]
                .iter()
                .position(|(name, _)| *name == unit)
            else {
                return Err(if UNITS.iter().any(|(name, _)| *name == unit) {
                    DurationError("units must go from largest to smallest, each at most once")
                } else {
                    DurationError("unknown unit: use ms, s, m, h or d")
                });
            };
            let index = next_unit + offset;
            let value: u64 = text[digits_start..unit_start]
                .parse()
                .map_err(|_| DurationError("the number is too large"))?;
            total = value
                .checked_mul(UNITS[index].1)
                .and_then(|part| total.checked_add(part))
                .filter(|sum| *sum <= MAX_MILLIS)
                .ok_or(DurationError("it is longer than the limit of 10 years"))?;
            next_unit = index + 1;
        }
        Ok(Self(Duration::from_millis(total)))
    }
}

impl fmt::Display for SpecDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        if rest == 0 {
            return f.write_str("0s");
        }
        for (name, size) in UNITS {
            if rest >= size {
                write!(f, "{}{name}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for SpecDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SpecDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|e: DurationError| {
            serde::de::Error::custom(format!("\"{text}\" is not a valid duration: {e}"))
        })
    }
}

/// A duration that may also be `unlimited` (for `misfire_grace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    Within(SpecDuration),
    Unlimited,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Within(d) => d.fmt(f),
            Self::Unlimited => f.write_str("unlimited"),
        }
    }
}

impl Serialize for Limit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text == "unlimited" {
            return Ok(Self::Unlimited);
        }
        text.parse().map(Self::Within).map_err(|e: DurationError| {
            serde::de::Error::custom(format!("\"{text}\" is not a valid duration: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spellings_specs_use() {
        let cases = [
            ("0s", 0),
            ("500ms", 500),
            ("30s", 30_000),
            ("10m", 600_000),
            ("1h30m", 5_400_000),
            ("2d", 172_800_000),
            ("1d2h3m4s5ms", 93_784_005),
            ("90s", 90_000),
        ];
        for (text, millis) in cases {
            let parsed: SpecDuration = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed.as_millis(), millis, "{text}");
        }
    }

    #[test]
    fn display_is_canonical() {
        for (text, shown) in [
            ("90s", "1m30s"),
            ("1h30m", "1h30m"),
            ("0s", "0s"),
            ("1500ms", "1s500ms"),
        ] {
            let parsed: SpecDuration = text.parse().expect("valid");
            assert_eq!(parsed.to_string(), shown);
        }
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        let cases = [
            ("", "it is empty"),
            ("10", "a unit is missing"),
            ("m", "expected a number"),
            ("10x", "unknown unit"),
            ("1m1h", "largest to smallest"),
            ("1s1s", "largest to smallest"),
            ("1.5h", "a unit is missing"),
            ("-5s", "expected a number"),
            (" 5s", "expected a number"),
            ("99999999999999999999s", "too large"),
            ("4000d", "10 years"),
            ("5 s", "a unit is missing"),
        ];
        for (text, needle) in cases {
            let error = text.parse::<SpecDuration>().expect_err(text);
            assert!(error.0.contains(needle), "{text:?}: {error}");
        }
    }

    #[test]
    fn limit_accepts_unlimited() {
        let limit: Limit = serde_json::from_str("\"unlimited\"").expect("valid");
        assert_eq!(limit, Limit::Unlimited);
        let limit: Limit = serde_json::from_str("\"5m\"").expect("valid");
        assert_eq!(limit, Limit::Within(SpecDuration::from_millis(300_000)));
    }
}
