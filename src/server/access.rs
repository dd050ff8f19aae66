//! Who may talk to the server: the address it listens on, and the bearer token any address but
//! loopback requires, read from a file only its owner can read (never from a flag, which `ps` shows).
//! Must not bind or serve (the `http` module does).

use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// Where to listen, and the token a client must send (`Authorization: Bearer ...`), if any.
#[derive(Clone)]
pub struct Listen {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

impl std::fmt::Debug for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token stays out of every log line and debug print.
        f.debug_struct("Listen")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish()
    }
}

/// The longest token file read; a token is a line, not a document.
const TOKEN_FILE_LIMIT: u64 = 4096;

impl Listen {
    /// Checks `addr` and the token file: a loopback address needs none; any other address is refused
    /// without one. A token file that others can read (or that is empty) is refused.
    pub fn new(addr: &str, token_file: Option<&Path>) -> Result<Self> {
        let addr: SocketAddr = addr.parse().map_err(|_| Error::Usage {
            message: format!(
                "--listen {addr:?} is not an address and port: give one such as 127.0.0.1:9180 or [::1]:9180"
            ),
        })?;
        let token = token_file.map(read_token).transpose()?;
        if token.is_none() && !addr.ip().is_loopback() {
            return Err(Error::Usage {
                message: format!(
                    "--listen {addr} is reachable from other machines: give --token-file FILE (a file only you can read, holding the token clients send as `Authorization: Bearer ...`), or listen on 127.0.0.1"
                ),
            });
        }
        Ok(Self { addr, token })
    }
}

fn read_token(path: &Path) -> Result<String> {
    let io = |source: std::io::Error| Error::Io {
        action: "read the token file",
        path: path.to_owned(),
        source,
    };
    let file = crate::artifacts::rundir::open_read(path).map_err(io)?;
    let mode = file.metadata().map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::Usage {
            message: format!(
                "the token file {} can be read by others (mode {:o}): `chmod 600` it first",
                path.display(),
                mode & 0o777
            ),
        });
    }
    let mut text = String::new();
    file.take(TOKEN_FILE_LIMIT)
        .read_to_string(&mut text)
        .map_err(io)?;
    let token = text.trim();
    if token.is_empty() || token.chars().any(char::is_whitespace) {
        return Err(Error::Usage {
            message: format!(
                "the token file {} must hold one token on one line",
                path.display()
            ),
        });
    }
    Ok(token.to_owned())
}

/// Whether `header` (the request's `Authorization`) carries `token`, compared in time that does not
/// depend on where they differ.
pub fn authorized(token: &str, header: Option<&str>) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (given.as_bytes(), token.as_bytes());
    let mut differ = a.len() ^ b.len();
    for (x, y) in a.iter().zip(b.iter().cycle()) {
        differ |= usize::from(x ^ y);
    }
    differ == 0 && !b.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        assert!(authorized("s3cret", Some("Bearer s3cret")));
        assert!(!authorized("s3cret", Some("Bearer s3cre")));
        assert!(!authorized("s3cret", Some("Bearer s3cret2")));
        assert!(!authorized("s3cret", Some("s3cret")));
        assert!(!authorized("s3cret", None));
    }

    #[test]
    fn an_address_other_machines_reach_needs_a_token() {
        assert!(Listen::new("127.0.0.1:0", None).is_ok());
        assert!(Listen::new("[::1]:0", None).is_ok());
        assert!(matches!(
            Listen::new("0.0.0.0:9180", None),
            Err(Error::Usage { .. })
        ));
        assert!(matches!(
            Listen::new("localhost", None),
            Err(Error::Usage { .. })
        ));
    }
}
