//! The SQLite store's connection: opening it (pragmas, WAL, and the embedded migrations applied in
//! order under one IMMEDIATE transaction, tracked by `PRAGMA user_version`), SQLite's errors as the
//! store's, and the whole-store operations (data version, backup).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior};

use crate::error::{Error, Result, StoreFault};
use crate::store::interface::Store;

/// The migrations in `db/migrations/`, in order. Migration N (1-based) brings `user_version` to N.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_jobs.sql",
        include_str!("../../../db/migrations/0001_jobs.sql"),
    ),
    (
        "0002_runs.sql",
        include_str!("../../../db/migrations/0002_runs.sql"),
    ),
    (
        "0003_checked_by.sql",
        include_str!("../../../db/migrations/0003_checked_by.sql"),
    ),
    (
        "0004_lifecycle.sql",
        include_str!("../../../db/migrations/0004_lifecycle.sql"),
    ),
    (
        "0005_history_by_job_status.sql",
        include_str!("../../../db/migrations/0005_history_by_job_status.sql"),
    ),
    (
        "0006_cancel_requests.sql",
        include_str!("../../../db/migrations/0006_cancel_requests.sql"),
    ),
    (
        "0007_run_processes.sql",
        include_str!("../../../db/migrations/0007_run_processes.sql"),
    ),
    (
        "0008_home_config.sql",
        include_str!("../../../db/migrations/0008_home_config.sql"),
    ),
    (
        "0009_outbox.sql",
        include_str!("../../../db/migrations/0009_outbox.sql"),
    ),
    (
        "0010_store_key.sql",
        include_str!("../../../db/migrations/0010_store_key.sql"),
    ),
    (
        "0011_run_group.sql",
        include_str!("../../../db/migrations/0011_run_group.sql"),
    ),
    (
        "0012_after_triggers.sql",
        include_str!("../../../db/migrations/0012_after_triggers.sql"),
    ),
    (
        "0013_running_by_group.sql",
        include_str!("../../../db/migrations/0013_running_by_group.sql"),
    ),
];

/// How long a statement waits for another process's write lock before giving up. Writers hold the lock
/// for milliseconds, so reaching this means something is badly wrong.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Overrides [`BUSY_TIMEOUT`] (a duration such as `500ms`), for tests and for operators who would rather
/// fail fast than wait.
const BUSY_TIMEOUT_ENV: &str = "JOBS_BUSY_TIMEOUT";

/// The busy timeout in effect: `JOBS_BUSY_TIMEOUT` when set and valid, else 30 s.
pub(in crate::store) fn busy_timeout() -> Duration {
    configured_busy_timeout().unwrap_or(BUSY_TIMEOUT)
}

fn configured_busy_timeout() -> Result<Duration> {
    let Some(value) = std::env::var_os(BUSY_TIMEOUT_ENV) else {
        return Ok(BUSY_TIMEOUT);
    };
    value
        .to_str()
        .and_then(|v| v.parse::<crate::duration::SpecDuration>().ok())
        .map(crate::duration::SpecDuration::as_duration)
        .ok_or_else(|| Error::Usage {
            message: format!(
                "{BUSY_TIMEOUT_ENV}={} is not a duration; use a number and a unit such as 500ms or 5s",
                value.to_string_lossy()
            ),
        })
}

/// The store in one SQLite file, shared with other processes on this host through SQLite's locks.
pub struct SqliteStore {
    pub(super) conn: Connection,
}

/// SQLite's error as the store's: another process holding the write lock past the busy timeout is
/// [`Error::StoreBusy`], which says so instead of blaming the file system; a damaged file says so,
/// for its hint.
pub(in crate::store) fn store_error(action: impl Into<String>, source: rusqlite::Error) -> Error {
    let code = source.sqlite_error_code();
    if code == Some(ErrorCode::DatabaseBusy) {
        return Error::StoreBusy {
            action: action.into(),
            waited: busy_timeout(),
        };
    }
    let fault = match code {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreFault::Damaged,
        _ => StoreFault::Other,
    };
    Error::Store {
        action: action.into(),
        fault,
        source: Box::new(source),
    }
}

fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// SQLite follows a link at the store's path (and makes its `-wal` and `-shm` beside the link's
/// target), so a link planted at `db/jobs.sqlite3` or one of its companions would have the store
/// written outside the home: refused, naming the link. (`db/` itself may be a link an operator made.)
fn refuse_links(path: &Path) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = path.with_file_name(format!("{name}{suffix}"));
        if std::fs::symlink_metadata(&file).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::io(
                "open the store",
                &file,
                std::io::Error::other(
                    "it is a symbolic link; the store and its -wal, -shm and -journal files must be \
                     real files",
                ),
            ));
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent()
            && !dir.exists()
        {
            // Owner-only: the store holds the specs, env values included.
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io("create the store directory", dir, e))?;
        }
        refuse_links(path)?;
        let new = !path.exists();
        let conn = Connection::open(path)
            .map_err(|e| store_error(format!("open the store {}", path.display()), e))?;
        if new {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        let busy = configured_busy_timeout()?;
        let mut store = Self { conn };
        store
            .configure(busy)
            .map_err(|e| store_error(format!("configure the store {}", path.display()), e))?;
        store.migrate()?;
        Ok(store)
    }

    fn configure(&mut self, busy: Duration) -> rusqlite::Result<()> {
        self.conn.busy_timeout(busy)?;
        // WAL lets readers (every CLI command) proceed while the scheduler writes. The mode is kept in
        // the file, so only a new store needs the switch, which takes an exclusive lock: two processes
        // creating the store at once can get SQLITE_BUSY at once, without the busy handler being
        // asked, so the switch is tried again for as long as the busy timeout allows.
        let started = std::time::Instant::now();
        loop {
            let mode: String = self
                .conn
                .query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
            if mode.eq_ignore_ascii_case("wal") {
                break;
            }
            match self
                .conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
            {
                Ok(()) => break,
                Err(e) if is_busy(&e) && started.elapsed() < busy => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        }
        // FULL: a committed claim survives power loss, which is what "never twice" rests on.
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(())
    }

    fn migrate(&mut self) -> Result<()> {
        let fail = |e| store_error("migrate the store", e);
        let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        // A plain read first: with nothing to apply no write lock is needed, so commands that only
        // read keep working while another process holds the lock (WAL lets readers through).
        let version = self.schema_version()?;
        if version > known {
            return Err(Error::StoreTooNew {
                found: version,
                known,
            });
        }
        if version == known {
            return Ok(());
        }
        // Foreign keys are off while migrations apply (the setting cannot change inside the
        // transaction), as SQLite's procedure for rebuilding a table requires: otherwise renaming
        // a table rewrites, and dropping it cascades into, the tables that refer to it. What they
        // refer to is checked before the commit instead.
        self.conn
            .pragma_update(None, "foreign_keys", "OFF")
            .map_err(fail)?;
        let migrated = self.apply_migrations(known);
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(fail)?;
        migrated
    }

    fn apply_migrations(&mut self, known: i64) -> Result<()> {
        let fail = |e| store_error("migrate the store", e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(fail)?;
        // Read again under the lock: another process may have migrated in between.
        if version > known {
            return Err(Error::StoreTooNew {
                found: version,
                known,
            });
        }
        for (index, (name, sql)) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(version).unwrap_or(0))
        {
            tx.execute_batch(sql)
                .map_err(|e| store_error(format!("apply migration {name}"), e))?;
            tx.pragma_update(
                None,
                "user_version",
                i64::try_from(index + 1).unwrap_or(i64::MAX),
            )
            .map_err(fail)?;
        }
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |row| row.get(0))
            .optional()
            .map_err(fail)?;
        if let Some(table) = broken {
            return Err(Error::Internal {
                message: format!(
                    "migrating the store left rows of {table} referring to nothing; nothing was changed"
                ),
            });
        }
        tx.commit().map_err(fail)
    }

    /// The schema version the store is at.
    fn schema_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| store_error("read the store version", e))
    }
}

impl Store for SqliteStore {
    /// A number that changes whenever another connection commits to the store: a cheap way to learn
    /// that what was read may be stale.
    fn data_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA data_version", [], |row| row.get(0))
            .map_err(|e| store_error("read the store's data version", e))
    }

    /// Writes a consistent copy of the store to `path` with SQLite's online backup: other processes (the
    /// scheduler) go on reading and writing meanwhile. The copy is made beside `path` under a name of
    /// its own and renamed into place, so `path` is either absent or a complete database, and backups
    /// to the same path at once never write into each other's file (nor its `-journal`).
    fn backup_to(&self, path: &Path) -> Result<()> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = create_unique(path, &name)?;
        let copied = self
            .conn
            .backup(
                rusqlite::MAIN_DB,
                &temp,
                None::<fn(rusqlite::backup::Progress)>,
            )
            .map_err(|e| store_error(format!("back up the store to {}", temp.display()), e))
            .and_then(|()| {
                std::fs::rename(&temp, path)
                    .map_err(|e| Error::io("move the backup into place at", path, e))
            });
        if copied.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        copied
    }
}

/// Creates an empty, owner-only file beside `path` that no other process uses: named after this
/// process and a counter, and created exclusively, so a leftover or a concurrent backup is never shared.
fn create_unique(path: &Path, name: &str) -> Result<std::path::PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = path.with_file_name(format!(".{name}.{}.{n}.partial", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
        {
            Ok(_) => return Ok(temp),
            // Left by a process that died with this pid: try the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => {}
            Err(e) => return Err(Error::io("create the backup file", temp, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("db/migrations");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("db/migrations exists")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        names.sort();
        let embedded: Vec<&str> = MIGRATIONS.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, embedded);
    }

    #[test]
    fn opening_twice_migrates_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db/jobs.sqlite3");
        let first = SqliteStore::open(&path).expect("open");
        assert_eq!(
            first.schema_version().expect("version"),
            MIGRATIONS.len() as i64
        );
        drop(first);
        let second = SqliteStore::open(&path).expect("reopen");
        assert_eq!(
            second.schema_version().expect("version"),
            MIGRATIONS.len() as i64
        );
        let mode: String = second
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_store_from_a_newer_jobs_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jobs.sqlite3");
        drop(SqliteStore::open(&path).expect("open"));
        let conn = Connection::open(&path).expect("raw open");
        conn.pragma_update(None, "user_version", 999).expect("bump");
        drop(conn);
        let error = SqliteStore::open(&path).err().expect("refused");
        assert_eq!(error.code(), "store_error");
        assert!(error.to_string().contains("schema version 999"), "{error}");
    }
}
