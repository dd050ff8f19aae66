//! How the interface's values sit in SQLite columns: instants as milliseconds since the epoch
//! (INTEGER), states and modes as the words the schema's CHECK constraints name (TEXT). The only place
//! these conversions are written; nothing outside `store/` sees a millisecond or a column word.

use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::policy::Catchup;
use crate::run::{RunStatus, Trigger};
use crate::store::records::OperatorState;

/// An instant in a millisecond INTEGER column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Millis(pub DateTime<Utc>);

impl ToSql for Millis {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.timestamp_millis()))
    }
}

impl FromSql for Millis {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let ms = i64::column_result(value)?;
        DateTime::from_timestamp_millis(ms)
            .map(Self)
            .ok_or(FromSqlError::OutOfRange(ms))
    }
}

/// An optional instant as a nullable column.
pub(super) fn millis(t: Option<DateTime<Utc>>) -> Option<Millis> {
    t.map(Millis)
}

/// Reads an optional instant column.
pub(super) fn instant(
    row: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<Option<DateTime<Utc>>> {
    Ok(row.get::<_, Option<Millis>>(index)?.map(|m| m.0))
}

/// Reads a count or a clock-tick column that is never negative.
pub(super) fn unsigned(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Option<u64>> {
    row.get::<_, Option<i64>>(index)?
        .map(|n| {
            u64::try_from(n).map_err(|_| {
                rusqlite::Error::FromSqlConversionFailure(
                    index,
                    rusqlite::types::Type::Integer,
                    format!("{n} is negative").into(),
                )
            })
        })
        .transpose()
}

/// A count or clock ticks, as the signed INTEGER SQLite has.
pub(super) fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn word<T>(value: ValueRef<'_>, parse: impl Fn(&str) -> Option<T>) -> FromSqlResult<T> {
    let text = value.as_str()?;
    parse(text).ok_or_else(|| FromSqlError::Other(format!("unknown value `{text}`").into()))
}

impl ToSql for OperatorState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for OperatorState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        word(value, Self::parse)
    }
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

impl FromSql for Catchup {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        word(value, |text| {
            CATCHUP_WORDS
                .iter()
                .find(|(_, word)| *word == text)
                .map(|(mode, _)| *mode)
        })
    }
}

impl ToSql for RunStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for RunStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        word(value, Self::parse)
    }
}

impl ToSql for Trigger {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Trigger {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        word(value, Self::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_words_keep_their_columns() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        let at = DateTime::from_timestamp_millis(1_795_000_000_123).expect("in range");
        let (ms, back): (i64, Millis) = conn
            .query_row("SELECT ?1, ?1", [Millis(at)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("round trip");
        assert_eq!((ms, back), (1_795_000_000_123, Millis(at)));
        let state: OperatorState = conn
            .query_row("SELECT ?1", [OperatorState::Paused], |r| r.get(0))
            .expect("state");
        assert_eq!(state, OperatorState::Paused);
        assert_eq!(catchup_column(Some(Catchup::All)), Some("all"));
        // Nothing owed is no request at all: the column stays NULL, as its CHECK wants.
        assert_eq!(catchup_column(Some(Catchup::None)), None);
        assert_eq!(catchup_column(None), None);
        let mode: Catchup = conn
            .query_row("SELECT 'latest'", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, Catchup::Latest);
        let beyond = conn.query_row("SELECT ?1", [i64::MAX], |r| r.get::<_, Millis>(0));
        assert!(beyond.is_err(), "an instant chrono cannot hold is an error");
    }
}
