//! A PostgreSQL store URL: parsed, its password taken from where a password may be (the URL's own
//! text only when that came from a file, `PGPASSWORD`, or `store_password_file`), and masked
//! wherever it is shown.

use std::str::FromStr;

use crate::error::{Error, Result};

/// Whether `location` names a PostgreSQL store rather than a path.
pub fn is_postgres(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// `url` with any password replaced by `***`, as `status` and errors show it. The URL is cut the
/// way the driver reads it: the credentials run to the first `@` anywhere (a password may hold `/`
/// or `?`), the password from the first `:` of them, and a query key is percent-decoded
/// (`pass%77ord` is `password`). Text that is no URL (the `key=value` form) is not shown at all.
pub fn masked(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(a store that is not a URL)".to_owned();
    };
    let (credentials, rest) = match rest.split_once('@') {
        Some((credentials, after)) => (Some(credentials), after),
        None => (None, rest),
    };
    let shown_credentials = match credentials {
        Some(credentials) => match credentials.split_once(':') {
            Some((user, _password)) => format!("{user}:***@"),
            None => format!("{credentials}@"),
        },
        None => String::new(),
    };
    // A password may also ride in the query (`?password=...`).
    let shown_rest = match rest.split_once('?') {
        Some((path, query)) => {
            let query = query
                .split('&')
                .map(|part| match part.split_once('=') {
                    Some((key, _)) if percent_decoded(key) == "password" => format!("{key}=***"),
                    _ => part.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("&");
            format!("{path}?{query}")
        }
        None => rest.to_owned(),
    };
    format!("{scheme}://{shown_credentials}{shown_rest}")
}

/// Whether the connection settings `url` names carry a password, however it is written.
pub fn has_password(url: &str) -> bool {
    postgres::Config::from_str(url).is_ok_and(|config| config.get_password().is_some())
        || masked(url) != url
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
        // Cut as the driver cuts: the credentials run to the first `@`, whatever they hold.
        assert_eq!(
            masked("postgres://jobs:pa/ss?SECRET@db:5432/jobs"),
            "postgres://jobs:***@db:5432/jobs"
        );
        assert_eq!(
            masked("postgres://db/jobs?sslmode=disable&pass%77ord=SECRET"),
            "postgres://db/jobs?sslmode=disable&pass%77ord=***"
        );
        assert!(!masked("host=db password=SECRET").contains("SECRET"));
        assert!(has_password("postgres://db/jobs?pass%77ord=SECRET"));
        assert!(has_password("postgres://jobs:pa/ss@db/jobs"));
        assert!(!has_password("postgres://jobs@db/jobs?sslmode=require"));
        assert!(is_postgres("postgresql://x") && !is_postgres("db/jobs.sqlite3"));
    }
}
