//! `jobsctl store copy`: a home's SQLite store moved whole into an empty PostgreSQL store. The two
//! schemas have the same tables and columns (every integer a 64-bit one, instants in milliseconds),
//! so each row crosses as it is, in one PostgreSQL transaction, from one consistent SQLite read.
//! Must not change the SQLite store.

use std::path::Path;

use postgres::types::{ToSql, Type};
use rusqlite::types::Value;
use serde::Serialize;

use super::postgres::PgStore;
use crate::error::{Error, Result};

/// The tables copied, parents before the rows that refer to them. The scheduler's owner row and the
/// hosts are left out: they describe processes of the old store, not its jobs.
const TABLES: &[&str] = &[
    "jobs",
    "runs",
    "cancel_requests",
    "home_config",
    "config_invalid",
    "notifications",
    "notification_tries",
    "trigger_edges",
    "fan_in",
    "triggers",
];

/// How many rows of each table went across.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Copied {
    pub tables: Vec<(String, u64)>,
}

/// Copies the SQLite store at `from` into the PostgreSQL store `to`, which must hold no job yet.
pub fn sqlite_to_postgres(from: &Path, to: &mut PgStore) -> Result<Copied> {
    let fail_sqlite = |e| super::sqlite::store_error(format!("read {}", from.display()), e);
    let mut source = rusqlite::Connection::open_with_flags(
        from,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(fail_sqlite)?;
    // One read transaction: every table as of the same instant, whatever writes meanwhile.
    let read = source.transaction().map_err(fail_sqlite)?;
    super::postgres::in_place(|| {
        let fail = |e| super::postgres::pg_error("copy into the PostgreSQL store", e);
        let mut tx = to.write().map_err(fail)?;
        let jobs: i64 = tx
            .query_one("SELECT COUNT(*) FROM jobs", &[])
            .map_err(fail)?
            .get(0);
        if jobs > 0 {
            return Err(Error::Usage {
                message: format!(
                    "the PostgreSQL store already has {jobs} job(s); copy only into an empty store (a new database), so that no history is merged or overwritten"
                ),
            });
        }
        let mut copied = Vec::new();
        for table in TABLES {
            let n = copy_table(&read, &mut tx, table)?;
            copied.push(((*table).to_owned(), n));
        }
        // The store's key names its delivery ids: the copy keeps the original's, so a notification
        // owed before the move keeps its id after it.
        let key: Option<String> = read
            .query_row("SELECT key FROM store_key WHERE id = 1", [], |row| {
                row.get(0)
            })
            .map_err(fail_sqlite)
            .ok();
        if let Some(key) = key {
            tx.execute("UPDATE store_key SET key = $1 WHERE id = 1", &[&key])
                .map_err(fail)?;
        }
        tx.commit().map_err(fail)?;
        Ok(Copied { tables: copied })
    })
}

fn copy_table(
    read: &rusqlite::Transaction<'_>,
    tx: &mut postgres::Transaction<'_>,
    table: &str,
) -> Result<u64> {
    let fail_sqlite = |e| super::sqlite::store_error(format!("read the table {table}"), e);
    let fail = |e| super::postgres::pg_error(format!("copy the table {table}"), e);
    let mut select = read
        .prepare(&format!("SELECT * FROM {table}"))
        .map_err(fail_sqlite)?;
    let columns: Vec<String> = select.column_names().map(str::to_owned).collect();
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    let insert = tx
        .prepare(&format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            columns.join(", "),
            placeholders.join(", ")
        ))
        .map_err(fail)?;
    let types: Vec<Type> = insert.params().to_vec();
    let mut rows = select.query([]).map_err(fail_sqlite)?;
    let mut n = 0u64;
    while let Some(row) = rows.next().map_err(fail_sqlite)? {
        let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(columns.len());
        for (i, ty) in types.iter().enumerate() {
            let value: Value = row.get(i).map_err(fail_sqlite)?;
            values.push(column_value(value, ty, table, &columns[i])?);
        }
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
        tx.execute(&insert, &refs).map_err(fail)?;
        n += 1;
    }
    Ok(n)
}

/// A SQLite value as the PostgreSQL column of type `ty` takes it: BIGINT or TEXT, NULL of either.
fn column_value(
    value: Value,
    ty: &Type,
    table: &str,
    column: &str,
) -> Result<Box<dyn ToSql + Sync>> {
    let bigint = *ty == Type::INT8;
    Ok(match value {
        Value::Null if bigint => Box::new(None::<i64>),
        Value::Null => Box::new(None::<String>),
        Value::Integer(n) if bigint => Box::new(n),
        Value::Text(text) if !bigint => Box::new(text),
        other => {
            return Err(Error::Internal {
                message: format!(
                    "{table}.{column} holds {other:?}, which its PostgreSQL column ({ty}) cannot take; nothing was copied"
                ),
            });
        }
    })
}
