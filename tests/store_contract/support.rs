//! Opening each backend fresh, and the specs and claims the tests share.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use jobs::store::{ClaimRequest, Claimed, SharedLimits, Store};

/// A fresh store of one backend, removed when dropped.
pub struct Fresh {
    pub name: &'static str,
    pub store: Box<dyn Store>,
    /// The directory of the SQLite file, or where the specs are written.
    pub dir: tempfile::TempDir,
    database: Option<(String, String)>,
}

impl Drop for Fresh {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.database.take() {
            // The store's own connection goes first, or the database cannot be dropped.
            let store = std::mem::replace(&mut self.store, sqlite_store(self.dir.path()));
            drop(store);
            if let Ok(mut client) = postgres::Client::connect(&admin, postgres::NoTls) {
                let _ =
                    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

fn sqlite_store(dir: &std::path::Path) -> Box<dyn Store> {
    jobs::store::open(&dir.join("jobs.sqlite3")).unwrap_or_else(|e| panic!("open sqlite: {e}"))
}

/// The server URL of the PostgreSQL tests, if there is one to use.
fn postgres_url() -> Option<String> {
    match std::env::var("JOBS_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("JOBS_TEST_STRICT").is_some() => {
            panic!("JOBS_TEST_STRICT is set but JOBS_TEST_PG_URL names no PostgreSQL server")
        }
        _ => {
            eprintln!("skipping the PostgreSQL half: JOBS_TEST_PG_URL is not set");
            None
        }
    }
}

/// `url` with its database replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (before, query) = match url.split_once('?') {
        Some((before, query)) => (before, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = before.find("://").map_or(0, |at| at + 3);
    let base = match before[scheme_end..].find('/') {
        Some(at) => &before[..scheme_end + at],
        None => before,
    };
    format!("{base}/{name}{query}")
}

/// A new empty PostgreSQL database on the test server, and its URL.
pub fn new_database(admin: &str) -> (String, String) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "jobs_contract_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut client = postgres::Client::connect(admin, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect to the test server: {e}"));
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    (with_database(admin, &name), name)
}

/// Every backend this machine can test, each fresh.
pub fn backends() -> Vec<Fresh> {
    let mut all = Vec::new();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    all.push(Fresh {
        name: "sqlite",
        store: sqlite_store(dir.path()),
        dir,
        database: None,
    });
    if let Some(admin) = postgres_url() {
        let (url, name) = new_database(&admin);
        let store = jobs::store::open_postgres(&url, None)
            .unwrap_or_else(|e| panic!("open postgres {url}: {e}"));
        all.push(Fresh {
            name: "postgres",
            store,
            dir: tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")),
            database: Some((admin, name)),
        });
    }
    all
}

pub fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_else(|| panic!("{ms} out of range"))
}

/// Writes `specs` (file stem, YAML) into `fresh`'s directory and syncs them into its store.
pub fn sync(
    fresh: &mut Fresh,
    specs: &[(&str, &str)],
    now: DateTime<Utc>,
) -> jobs::store::SyncReport {
    let dir = fresh.dir.path().join("jobs");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    for (stem, yaml) in specs {
        std::fs::write(dir.join(format!("{stem}.yaml")), yaml).unwrap_or_else(|e| panic!("{e}"));
    }
    let files = jobs::spec::load_dir(&dir, now).unwrap_or_else(|e| panic!("load: {e}"));
    fresh
        .store
        .sync_specs(&files, &|f| f.path.display().to_string(), &[], now)
        .unwrap_or_else(|e| panic!("{}: sync: {e}", fresh.name))
}

/// A plain job due every minute.
pub fn minutely(id: &str) -> String {
    format!("id: {id}\nschedule: {{every: 1m}}\nrun:\n  command: [\"true\"]\n")
}

/// A manual claim of `job` (its error as `code: message`) as `owner` at `now`, with `max_instances` and `overlap`.
pub fn claim(
    store: &mut dyn Store,
    job: &str,
    owner: &str,
    now: DateTime<Utc>,
    max_instances: u32,
    overlap: jobs::spec::model::Overlap,
) -> Result<Claimed, String> {
    store
        .claim_with(
            &ClaimRequest {
                job_id: job,
                trigger: jobs::run::Trigger::Manual,
                slot: None,
                due_at: None,
                spec_hash: "h",
                owner,
                now,
                max_instances,
                overlap,
                replay_of: None,
                shared: SharedLimits::default(),
                no_trigger: false,
            },
            |_| true,
            |seq| Ok(((), format!("runs/{job}/{seq}"))),
        )
        .map(|(claimed, ())| claimed)
        .map_err(|e| format!("{}: {e}", e.code()))
}

/// Runs one SQL statement straight on `fresh`'s database, past the store (to plant what an older
/// version might have left, or to read a table the interface does not show), and returns its rows
/// with every value as text (NULL as `None`). Write it in the dialect both backends share.
pub fn raw_sql(fresh: &Fresh, sql: &str) -> Vec<Vec<Option<String>>> {
    match &fresh.database {
        Some((admin, name)) => {
            let url = with_database(admin, name);
            let mut client = postgres::Client::connect(&url, postgres::NoTls)
                .unwrap_or_else(|e| panic!("connect to {name}: {e}"));
            client
                .simple_query(sql)
                .unwrap_or_else(|e| panic!("postgres: {sql}: {e}"))
                .into_iter()
                .filter_map(|message| match message {
                    postgres::SimpleQueryMessage::Row(row) => Some(
                        (0..row.len())
                            .map(|i| row.get(i).map(str::to_owned))
                            .collect(),
                    ),
                    _ => None,
                })
                .collect()
        }
        None => {
            let conn = rusqlite::Connection::open(fresh.dir.path().join("jobs.sqlite3"))
                .unwrap_or_else(|e| panic!("open sqlite: {e}"));
            let mut statement = conn
                .prepare(sql)
                .unwrap_or_else(|e| panic!("sqlite: {sql}: {e}"));
            let width = statement.column_count();
            let mut rows = statement.raw_query();
            let mut all = Vec::new();
            while let Some(row) = rows.next().unwrap_or_else(|e| panic!("sqlite: {sql}: {e}")) {
                all.push(
                    (0..width)
                        .map(|i| match row.get_ref(i) {
                            Ok(rusqlite::types::ValueRef::Null) | Err(_) => None,
                            Ok(rusqlite::types::ValueRef::Integer(n)) => Some(n.to_string()),
                            Ok(rusqlite::types::ValueRef::Real(x)) => Some(x.to_string()),
                            Ok(
                                rusqlite::types::ValueRef::Text(t)
                                | rusqlite::types::ValueRef::Blob(t),
                            ) => Some(String::from_utf8_lossy(t).into_owned()),
                        })
                        .collect(),
                );
            }
            all
        }
    }
}

/// The URL of `fresh`'s database, for a PostgreSQL store.
pub fn database_url(fresh: &Fresh) -> Option<String> {
    fresh
        .database
        .as_ref()
        .map(|(admin, name)| with_database(admin, name))
}

/// A scheduled run of `job`'s `slot` as a tick records it.
pub fn slot_run(job: &str, slot: DateTime<Utc>) -> jobs::store::TickRecord {
    jobs::store::TickRecord::Run {
        job_id: job.into(),
        trigger: jobs::run::Trigger::Schedule,
        slot: Some(slot),
        due_at: Some(slot),
        first_slot: None,
        last_slot: None,
        count: 1,
        spec_hash: "h".into(),
        queued: false,
        retry_of: None,
        max_instances: 1,
        shared: SharedLimits::default(),
        overlap: jobs::spec::model::Overlap::Skip,
        upstream: None,
    }
}
