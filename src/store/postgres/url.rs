//! A PostgreSQL store URL: parsed, its password taken from where a password may be (the URL's own
//! text only when that came from a file, `PGPASSWORD`, or `store_password_file`), and masked
//! wherever it is shown.

use std::str::FromStr;

use crate::error::{Error, Result};

/// Whether `location` names a PostgreSQL store rather than a path.
pub fn is_postgres(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// `url` with any password replaced by `***`, as `status` and errors show it.
pub fn masked(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let shown_authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    // A password may also ride in the query (`?password=...`).
    let shown_tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query = query
                .split('&')
                .map(|part| match part.split_once('=') {
                    Some(("password", _)) => "password=***".to_owned(),
                    _ => part.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("&");
            format!("{path}?{query}")
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{shown_authority}{shown_tail}")
}

/// The connection settings of `url`, the password filled in from `password` (read by the caller
/// from `store_password_file`) or `PGPASSWORD` when the URL has none.
pub fn config(url: &str, password: Option<&str>) -> Result<postgres::Config> {
    let mut config = postgres::Config::from_str(url).map_err(|e| Error::Usage {
        message: format!(
            "the store URL {} is not a PostgreSQL URL: {e}; write it as postgres://USER@HOST:PORT/DATABASE",
            masked(url)
        ),
    })?;
    if config.get_password().is_none() {
        if let Some(password) = password {
            config.password(password.trim_end_matches(['\n', '\r']));
        } else if let Some(password) = std::env::var_os("PGPASSWORD") {
            config.password(password.as_encoded_bytes());
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_shown() {
        assert_eq!(
            masked("postgres://jobs:s3cret@db.example:5432/jobs?sslmode=require"),
            "postgres://jobs:***@db.example:5432/jobs?sslmode=require"
        );
        assert_eq!(
            masked("postgresql://jobs@db/jobs?password=s3cret&sslmode=disable"),
            "postgresql://jobs@db/jobs?password=***&sslmode=disable"
        );
        assert_eq!(masked("postgres://db/jobs"), "postgres://db/jobs");
        assert!(is_postgres("postgresql://x") && !is_postgres("db/jobs.sqlite3"));
    }
}
