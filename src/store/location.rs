//! Where a home's store is: the SQLite file in `db/` unless a PostgreSQL URL is named, by `--store`
//! (or `JOBS_STORE`) over `store:` in `config.yaml`. Opening it, and showing it with any password
//! masked. Must not decide anything about jobs or runs.

use std::path::PathBuf;

use super::interface::{Store, open, open_postgres};
use super::postgres::url::{is_postgres, masked};
use crate::error::{Error, Result};
use crate::home::Home;

/// A home's store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The SQLite file of the home (`db/jobs.sqlite3`).
    Sqlite(PathBuf),
    /// A PostgreSQL database, and the file holding its password, if the config names one.
    Postgres {
        url: String,
        password_file: Option<PathBuf>,
    },
}

impl Location {
    /// What `status` shows: the file, or the URL with its password masked.
    pub fn shown(&self, home: &Home) -> String {
        match self {
            Self::Sqlite(path) => home.display_path(path),
            Self::Postgres { url, .. } => masked(url),
        }
    }

    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Postgres { .. })
    }
}

/// Where `home`'s store is. A `store:` that is no PostgreSQL URL, or a config too broken to tell
/// whether it names one, is an error: every command must refuse rather than open another store.
pub fn locate(home: &Home) -> Result<Location> {
    let config = crate::config::load(home);
    let (from_config, password_file) = match &config.outcome {
        Ok(config) => (config.store.clone(), config.store_password_file.clone()),
        Err(problems) if names_a_store(home) => {
            let first = problems.first().map(|p| p.located()).unwrap_or_default();
            return Err(Error::Usage {
                message: format!(
                    "config.yaml names a store but is invalid ({first}); fix it, or give the store with --store"
                ),
            });
        }
        Err(_) => (None, None),
    };
    let Some(url) = home.store_override().map(str::to_owned).or(from_config) else {
        return Ok(Location::Sqlite(home.db_path()));
    };
    if !is_postgres(&url) {
        return Err(Error::Usage {
            message: format!(
                "the store {} is not a PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE); leave it out to use the home's own SQLite file",
                masked(&url)
            ),
        });
    }
    Ok(Location::Postgres {
        url,
        password_file: password_file.map(|file| home.root().join(file)),
    })
}

/// Opens `home`'s store, creating a SQLite one when it is the home's own and missing.
pub fn open_home(home: &Home) -> Result<Box<dyn Store>> {
    open_at(locate(home)?)
}

/// Opens the store at `location`.
pub fn open_at(location: Location) -> Result<Box<dyn Store>> {
    match location {
        Location::Sqlite(path) => open(&path),
        Location::Postgres { url, password_file } => {
            let password = match &password_file {
                Some(file) => Some(read_password(file)?),
                None => None,
            };
            open_postgres(&url, password.as_deref())
        }
    }
}

/// Copies `home`'s own SQLite store into the empty PostgreSQL store at `url` (its password from
/// `PGPASSWORD`, or the file the config names), leaving the SQLite store as it was.
pub fn copy_home_to(home: &Home, url: &str) -> Result<super::copy::Copied> {
    let Location::Sqlite(path) = locate(home)? else {
        return Err(Error::Usage {
            message: "this home's store is PostgreSQL already; store copy moves a home's own SQLite store (run it without --store, JOBS_STORE or store:)".into(),
        });
    };
    if !path.is_file() {
        return Err(Error::Usage {
            message: format!(
                "{} does not exist: there is nothing to copy",
                home.display_path(&path)
            ),
        });
    }
    if !is_postgres(url) {
        return Err(Error::Usage {
            message: format!(
                "--to {} is not a PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE)",
                masked(url)
            ),
        });
    }
    let password_file = match &crate::config::load(home).outcome {
        Ok(config) => config
            .store_password_file
            .clone()
            .map(|file| home.root().join(file)),
        Err(_) => None,
    };
    let password = password_file.as_deref().map(read_password).transpose()?;
    let config = super::postgres::url::config(url, password.as_deref())?;
    let mut target = super::postgres::PgStore::open(&config, &masked(url))?;
    // The SQLite store is brought to this version's schema first, so that its columns are the
    // PostgreSQL schema's.
    drop(open(&path)?);
    super::copy::sqlite_to_postgres(&path, &mut target)
}

/// Whether the text of an invalid config has a top-level `store` key: then the store cannot be
/// known, and guessing the home's SQLite file could split the jobs' history in two.
fn names_a_store(home: &Home) -> bool {
    crate::spec::yaml::read_limited(&home.config_path()).is_ok_and(|bytes| {
        String::from_utf8_lossy(&bytes)
            .lines()
            .any(|line| line.starts_with("store:") || line.starts_with("store_password_file:"))
    })
}

/// The password in `file`, which only its owner may read (as the server's token file).
fn read_password(file: &std::path::Path) -> Result<String> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let io = |source: std::io::Error| Error::Io {
        action: "read the store password file",
        path: file.to_owned(),
        source,
    };
    let opened = crate::artifacts::rundir::open_read(file).map_err(io)?;
    let mode = opened.metadata().map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::Usage {
            message: format!(
                "the store password file {} can be read by others (mode {:o}): `chmod 600` it first",
                file.display(),
                mode & 0o777
            ),
        });
    }
    let mut text = String::new();
    opened.take(4096).read_to_string(&mut text).map_err(io)?;
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() || password.contains('\n') {
        return Err(Error::Usage {
            message: format!(
                "the store password file {} must hold the password on one line",
                file.display()
            ),
        });
    }
    Ok(password.to_owned())
}

/// The environment variables of this process that a command it starts (a run, a notifier) must not
/// inherit: the store's password, and the store's URL when a password is written into it. Any
/// command of any spec could read them otherwise.
pub fn store_secrets() -> Vec<&'static str> {
    let mut secret = vec!["PGPASSWORD"];
    if std::env::var("JOBS_STORE").is_ok_and(|url| super::postgres::url::has_password(&url)) {
        secret.push("JOBS_STORE");
    }
    secret
}
