//! How the interface's values sit in PostgreSQL columns: instants as milliseconds since the epoch
//! (BIGINT, as in SQLite, so both stores agree to the millisecond), states and modes as the words
//! the schema's CHECK constraints name (TEXT), every integer BIGINT. The only place these
//! conversions are written for this backend.

use std::error::Error as StdError;

use bytes::BytesMut;
use chrono::{DateTime, Utc};
use postgres::types::{FromSql, IsNull, ToSql, Type, accepts, to_sql_checked};

use crate::policy::Catchup;
use crate::run::{RunStatus, Trigger};
use crate::store::records::OperatorState;

type Boxed = Box<dyn StdError + Sync + Send>;

/// An instant in a millisecond BIGINT column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Millis(pub DateTime<Utc>);

impl ToSql for Millis {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Boxed> {
        self.0.timestamp_millis().to_sql(ty, out)
    }
    accepts!(INT8);
    to_sql_checked!();
}

impl<'a> FromSql<'a> for Millis {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Boxed> {
        let ms = i64::from_sql(ty, raw)?;
        DateTime::from_timestamp_millis(ms)
            .map(Self)
            .ok_or_else(|| format!("{ms} ms is out of range for an instant").into())
    }
    accepts!(INT8);
}

/// An optional instant as a nullable column.
pub(super) fn millis(t: Option<DateTime<Utc>>) -> Option<Millis> {
    t.map(Millis)
}

/// Reads an optional instant column.
pub(super) fn instant(
    row: &postgres::Row,
    index: usize,
) -> Result<Option<DateTime<Utc>>, postgres::Error> {
    Ok(row.try_get::<_, Option<Millis>>(index)?.map(|m| m.0))
}

/// A count or clock ticks, as the signed BIGINT PostgreSQL has.
pub(super) fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A word of a TEXT column with a CHECK, as the value it names.
macro_rules! word_column {
    ($type:ty, $parse:expr, $word:expr) => {
        impl ToSql for $type {
            fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Boxed> {
                let word: &str = $word(*self);
                word.to_sql(ty, out)
            }
            accepts!(TEXT, VARCHAR);
            to_sql_checked!();
        }

        impl<'a> FromSql<'a> for $type {
            fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Boxed> {
                let text = <&str>::from_sql(ty, raw)?;
                $parse(text).ok_or_else(|| format!("unknown value `{text}`").into())
            }
            accepts!(TEXT, VARCHAR);
        }
    };
}

word_column!(OperatorState, OperatorState::parse, OperatorState::as_str);
word_column!(RunStatus, RunStatus::parse, RunStatus::as_str);
word_column!(Trigger, Trigger::parse, Trigger::as_str);

/// A catch-up mode is written through [`catchup_column`] (no mode is NULL), and read back as this.
impl<'a> FromSql<'a> for Catchup {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Boxed> {
        let text = <&str>::from_sql(ty, raw)?;
        catchup_from_word(text).ok_or_else(|| format!("unknown value `{text}`").into())
    }
    accepts!(TEXT, VARCHAR);
}

/// The words of `jobs.catchup`. `Catchup::None` (nothing owed) is no word: it is a NULL column.
const CATCHUP_WORDS: [(Catchup, &str); 2] = [(Catchup::Latest, "latest"), (Catchup::All, "all")];

/// The `jobs.catchup` column of a catch-up request.
pub(super) fn catchup_column(mode: Option<Catchup>) -> Option<&'static str> {
    CATCHUP_WORDS
        .iter()
        .find(|(known, _)| Some(*known) == mode)
        .map(|(_, word)| *word)
}

fn catchup_from_word(text: &str) -> Option<Catchup> {
    CATCHUP_WORDS
        .iter()
        .find(|(_, word)| *word == text)
        .map(|(mode, _)| *mode)
}
