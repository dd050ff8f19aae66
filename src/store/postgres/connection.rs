//! The PostgreSQL store's connection: opening it from a URL (the password from the environment or a
//! file, never the command line), the embedded migrations applied in one transaction under an
//! advisory lock, the write lock every read-then-write transaction takes, PostgreSQL's errors as the
//! store's, and the whole-store operations (data version; a backup is PostgreSQL's own tools' job).

use std::cell::RefCell;
use std::path::Path;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, Transaction};

use crate::error::{Error, Result, StoreFault};
use crate::store::interface::Store;

/// The migrations in `db/postgres/`, in order. Migration N (1-based) brings `schema_version` to N.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_schema.sql",
        include_str!("../../../db/postgres/0001_schema.sql"),
    ),
    (
        "0002_cluster.sql",
        include_str!("../../../db/postgres/0002_cluster.sql"),
    ),
    (
        "0003_mirror.sql",
        include_str!("../../../db/postgres/0003_mirror.sql"),
    ),
    (
        "0004_workers.sql",
        include_str!("../../../db/postgres/0004_workers.sql"),
    ),
];

/// The advisory lock keys of this store: one for migrations, one that every write transaction takes.
/// Arbitrary numbers, fixed for ever (two versions of `jobs` must take the same locks).
const MIGRATE_LOCK: i64 = 0x6a6f_6273_0001;
const WRITE_LOCK: i64 = 0x6a6f_6273_0002;

/// How long a statement waits for a lock before the store reports itself busy, as SQLite's busy
/// timeout does (and `JOBS_BUSY_TIMEOUT` overrides both).
fn lock_timeout() -> Duration {
    super::super::sqlite::busy_timeout()
}

/// The store in a PostgreSQL database, shared by processes on any number of hosts.
///
/// Every transaction that reads before it writes first takes one advisory lock for the whole store
/// ([`PgStore::write`]): the same single-writer rule the SQLite store has, so each decision (a claim
/// under `max_instances`, a group's count, a state change) is judged against what no one else can
/// change meanwhile, whatever the isolation level. Writers hold it for milliseconds; readers never
/// wait for it.
pub struct PgStore {
    /// Behind a `RefCell` because the interface reads through `&self` and the client needs `&mut`;
    /// the store is used by one caller at a time (`Send`, not `Sync`).
    pub(super) client: RefCell<Conn>,
    /// The leadership this handle's tick commits must hold (see `NodeStore::fence`).
    pub(super) fence: Option<crate::store::records::Fence>,
    /// How many changes this handle counted itself: they are taken off the store's count, so that
    /// a process's own commits never make it read again.
    own_changes: i64,
}

/// The connection's client. Each of its calls blocks on a runtime of its own, which tokio refuses
/// on a thread that drives async tasks: every operation of the store runs through [`in_place`], and
/// so does closing the client when the store is dropped, wherever that happens.
/// A lost connection (the server restarted, a network cut, an administrator's terminate) is made
/// again on the next use: the call that finds the client closed gets a fresh one, so a scheduler
/// goes on after the database comes back instead of failing every tick for ever.
pub(super) struct Conn(Option<Client>, pub(super) Reconnect);

/// What connecting again takes.
#[derive(Clone)]
pub(super) struct Reconnect {
    config: postgres::Config,
    shown: String,
}

impl Reconnect {
    /// The store's URL with any password masked.
    pub(super) fn shown(&self) -> &str {
        &self.shown
    }

    pub(super) fn connect(&self) -> Result<Client> {
        let mut client = super::tls::connect(&self.config, &self.shown)?;
        client.batch_execute(&session_settings()).map_err(|e| {
            pg_error(
                format!("configure the session with the store {}", self.shown),
                e,
            )
        })?;
        Ok(client)
    }
}

/// The settings of every session: a lock waited for past the busy timeout is `store_busy`; a
/// transaction left open while its client says nothing (a process frozen, a network cut in the
/// middle of it) is ended by the server after [`IDLE_IN_TRANSACTION`], so the store's write lock it
/// holds cannot stall every other node for longer.
fn session_settings() -> String {
    format!(
        "SET lock_timeout = {}; SET statement_timeout = 0; SET idle_in_transaction_session_timeout = {}; SET TIME ZONE 'UTC'; SET client_min_messages = warning",
        lock_timeout().as_millis(),
        IDLE_IN_TRANSACTION.as_millis()
    )
}

/// How long the server keeps a transaction whose client has gone quiet: a transaction of this
/// store sends its statements back to back, so any pause this long means the client is gone.
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(5);

impl std::ops::Deref for Conn {
    type Target = Client;

    fn deref(&self) -> &Client {
        match &self.0 {
            Some(client) => client,
            None => unreachable!("the client is taken only when the store is dropped"),
        }
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        if self.0.as_ref().is_some_and(Client::is_closed) {
            match self.1.connect() {
                Ok(client) => {
                    tracing::warn!(
                        "the connection to the store {} was lost; connected again",
                        self.1.shown
                    );
                    self.0 = Some(client);
                }
                // The closed client stays: this call fails with "connection closed", the next
                // tries again.
                Err(e) => tracing::warn!(
                    "the store {} cannot be reached again yet: {e}",
                    self.1.shown
                ),
            }
        }
        match &mut self.0 {
            Some(client) => client,
            None => unreachable!("the client is taken only when the store is dropped"),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            in_place(move || drop(client));
        }
    }
}

/// Runs `f`, which blocks on the database, from wherever the store is called: on a thread that
/// drives async tasks (the interface asks for a blocking thread, but a caller that runs a store
/// call inline in async code must get a slow call, not a panic), tokio is told first, so that it
/// moves its other tasks elsewhere while this one blocks.
pub(in crate::store) fn in_place<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// PostgreSQL's error as the store's: a lock not granted within the timeout is
/// [`Error::StoreBusy`]; a lost connection says the database is unreachable.
pub(in crate::store) fn pg_error(action: impl Into<String>, source: postgres::Error) -> Error {
    let action = action.into();
    if let Some(code) = source.code()
        && (*code == SqlState::LOCK_NOT_AVAILABLE || *code == SqlState::QUERY_CANCELED)
    {
        return Error::StoreBusy {
            action,
            waited: lock_timeout(),
        };
    }
    let fault = match source.code() {
        Some(code) if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED => {
            StoreFault::Damaged
        }
        _ => StoreFault::Database,
    };
    // The driver's own text is often just "db error": the server's message (or the cause below a
    // connection error, such as "connection refused") is what tells the operator anything.
    let detail = match source.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => std::error::Error::source(&source)
            .map(ToString::to_string)
            .unwrap_or_default(),
    };
    let text = if detail.is_empty() {
        source.to_string()
    } else {
        format!("{source}: {detail}")
    };
    Error::Store {
        action,
        fault,
        source: text.into(),
    }
}

impl PgStore {
    /// Connects with `config` (parsed from the store URL, the password filled in), and brings the
    /// schema up to date. `shown` is the URL with any password masked, for errors.
    pub fn open(config: &postgres::Config, shown: &str) -> Result<Self> {
        let mut config = config.clone();
        config.application_name("jobs");
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        // A server that vanished (a host lost, a network cut) is noticed within seconds, not after
        // the kernel's retransmissions (about 15 minutes): the calls fail, and a node that cannot
        // renew its heartbeat stops its runs in time.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(10));
        let again = Reconnect {
            config,
            shown: shown.to_owned(),
        };
        let client = in_place(|| again.connect())?;
        let mut store = Self {
            client: RefCell::new(Conn(Some(client), again)),
            fence: None,
            own_changes: 0,
        };
        in_place(|| store.migrate())?;
        Ok(store)
    }

    /// A transaction holding the store's write lock (see [`PgStore`]).
    /// Every transaction through it counts as a change others may need to read again (see
    /// [`Store::data_version`]), except those of [`PgStore::write_quietly`].
    pub(in crate::store) fn write(
        &mut self,
    ) -> std::result::Result<Transaction<'_>, postgres::Error> {
        self.own_changes += 1;
        let mut tx = self.client.get_mut().transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
        tx.execute("UPDATE data_version SET n = n + 1 WHERE id = 1", &[])?;
        Ok(tx)
    }

    /// Runs `write` in a transaction of [`PgStore::write_quietly`], and commits it.
    pub(super) fn quiet_write<T>(
        &mut self,
        action: &str,
        write: impl FnOnce(&mut Transaction<'_>) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let fail = |e| pg_error(action.to_owned(), e);
        let mut tx = self.write_quietly().map_err(fail)?;
        let done = write(&mut tx).map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(done)
    }

    /// A transaction holding the write lock that changes nothing another process reloads for:
    /// heartbeats, leases and signs of life, which several nodes write every few seconds.
    pub(in crate::store) fn write_quietly(
        &mut self,
    ) -> std::result::Result<Transaction<'_>, postgres::Error> {
        let mut tx = self.client.get_mut().transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
        Ok(tx)
    }

    fn migrate(&mut self) -> Result<()> {
        let fail = |e| pg_error("migrate the store", e);
        let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        let client = self.client.get_mut();
        let mut tx = client.transaction().map_err(fail)?;
        // Two processes starting on an empty database at once: the second waits here, then finds the
        // schema made.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
            .map_err(fail)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .map_err(fail)?;
        let version: i64 = tx
            .query_opt("SELECT version FROM schema_version", &[])
            .map_err(fail)?
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(fail)?
            .unwrap_or(0);
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
            tx.batch_execute(sql)
                .map_err(|e| pg_error(format!("apply migration {name}"), e))?;
            let reached = i64::try_from(index + 1).unwrap_or(i64::MAX);
            tx.execute("DELETE FROM schema_version", &[])
                .map_err(fail)?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&reached],
            )
            .map_err(fail)?;
        }
        tx.commit().map_err(fail)
    }
}

impl Store for PgStore {
    /// The count of write transactions (`data_version.n`, bumped by every one but the heartbeats'),
    /// less this handle's own. A transaction of ours that rolled back makes it move once more than
    /// it should, which only makes the caller read again.
    fn data_version(&self) -> Result<i64> {
        super::connection::in_place(|| {
            let row = self
                .client
                .borrow_mut()
                .query_one("SELECT n FROM data_version WHERE id = 1", &[])
                .map_err(|e| pg_error("read the store's data version", e))?;
            let n: i64 = row
                .try_get(0)
                .map_err(|e| pg_error("read the store's data version", e))?;
            Ok(n - self.own_changes)
        })
    }

    fn backup_to(&self, path: &Path) -> Result<()> {
        super::connection::in_place(|| {
            Err(Error::Usage {
                message: format!(
                    "the store is a PostgreSQL database: back it up with pg_dump (or the database's own backups), not into {}",
                    path.display()
                ),
            })
        })
    }
}
