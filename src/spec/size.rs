//! Byte sizes as written in specs: a whole number and one binary unit, `512B`, `64KiB`, `256MiB`,
//! `1GiB`. One unit per size keeps the spelling obvious; it prints back in the largest unit that
//! divides it exactly.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The units, largest first, with their length in bytes.
const UNITS: [(&str, u64); 4] = [
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("B", 1),
];

/// Below this a log could not hold one line of a failing command's message.
pub const MIN_LOG_SIZE: u64 = 1 << 10;

/// 1 TiB: more than any one run's log should be, and far from overflowing a file offset.
pub const MAX_LOG_SIZE: u64 = 1 << 40;

/// A number of bytes between [`MIN_LOG_SIZE`] and [`MAX_LOG_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

impl ByteSize {
    /// For defaults known to be in range.
    pub const fn from_bytes(bytes: u64) -> Self {
        Self(bytes)
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

/// Why a string is not a size; the message completes "… is not a valid size: …".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeError(pub &'static str);

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl FromStr for ByteSize {
    type Err = SizeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let (number, unit) = text.split_at(digits);
        if number.is_empty() {
            return Err(SizeError("expected a whole number and a unit, as in 64MiB"));
        }
        let Some((_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(SizeError("unknown unit: use B, KiB, MiB or GiB"));
        };
        let bytes = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(*scale))
            .filter(|b| *b <= MAX_LOG_SIZE)
            .ok_or(SizeError("it is larger than the limit of 1024GiB"))?;
        if bytes < MIN_LOG_SIZE {
            return Err(SizeError("it is smaller than the minimum of 1KiB"));
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, scale) = UNITS
            .iter()
            .find(|(_, scale)| self.0.is_multiple_of(*scale))
            .unwrap_or(&("B", 1));
        write!(f, "{}{name}", self.0 / scale)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|e: SizeError| {
            serde::de::Error::custom(format!("\"{text}\" is not a valid size: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_back_in_the_largest_exact_unit() {
        let cases = [
            ("1KiB", 1024, "1KiB"),
            ("1024B", 1024, "1KiB"),
            ("1500B", 1500, "1500B"),
            ("64MiB", 64 << 20, "64MiB"),
            ("256MiB", 256 << 20, "256MiB"),
            ("2048MiB", 2 << 30, "2GiB"),
            ("1024GiB", 1 << 40, "1024GiB"),
        ];
        for (text, bytes, shown) in cases {
            let size: ByteSize = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(size.bytes(), bytes, "{text}");
            assert_eq!(size.to_string(), shown, "{text}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_size_in_range() {
        let cases = [
            ("", "whole number"),
            ("MiB", "whole number"),
            ("64", "unknown unit"),
            ("64MB", "unknown unit"),
            ("64mib", "unknown unit"),
            ("1.5GiB", "unknown unit"),
            ("64 MiB", "unknown unit"),
            ("-1KiB", "whole number"),
            ("1023B", "minimum of 1KiB"),
            ("0KiB", "minimum of 1KiB"),
            ("1025GiB", "limit of 1024GiB"),
            ("99999999999999999999B", "limit of 1024GiB"),
        ];
        for (text, needle) in cases {
            let error = text.parse::<ByteSize>().expect_err(text);
            assert!(error.0.contains(needle), "{text:?}: {error}");
        }
    }
}
