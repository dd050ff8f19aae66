//! How the PostgreSQL store connects: in the clear when the URL says `sslmode=disable`, otherwise
//! through rustls with the platform's root certificates (`prefer`, the default, falls back to the
//! clear when the server offers no TLS; `require` refuses to).

use std::sync::Arc;

use postgres::config::SslMode;
use postgres::{Client, NoTls};
use rustls_platform_verifier::BuilderVerifierExt;

use crate::error::{Error, Result};

/// How long a connection may take, its start-up exchange included: the driver's connect timeout
/// covers the TCP connect only, and a server that accepts and never answers would hold every
/// command for ever.
const CONNECT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Connects as `config` says, TLS included, within [`CONNECT_DEADLINE`]. The attempt runs on a
/// thread of its own so that it can be given up; one given up ends when the server does.
pub(super) fn connect(config: &postgres::Config, shown: &str) -> Result<Client> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let (config, owned_shown) = (config.clone(), shown.to_owned());
    std::thread::Builder::new()
        .name("store-connect".into())
        .spawn(move || {
            let _ = sender.send(connect_now(&config, &owned_shown));
        })
        .map_err(|e| Error::Internal {
            message: format!("start a thread to connect to the store: {e}"),
        })?;
    receiver
        .recv_timeout(CONNECT_DEADLINE)
        .unwrap_or_else(|_| {
            Err(Error::Store {
                action: format!("connect to the store {shown}"),
                fault: crate::error::StoreFault::Database,
                source: format!(
                    "no answer within {} s of the connection; is it a PostgreSQL server, and is it overloaded?",
                    CONNECT_DEADLINE.as_secs()
                )
                .into(),
            })
        })
}

fn connect_now(config: &postgres::Config, shown: &str) -> Result<Client> {
    let fail = |e| super::connection::pg_error(format!("connect to the store {shown}"), e);
    if config.get_ssl_mode() == SslMode::Disable {
        return config.connect(NoTls).map_err(fail);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_platform_verifier())
        .map_err(|e| Error::Internal {
            message: format!("set up TLS for the store {shown}: {e}"),
        })?
        .with_no_client_auth();
    config
        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
        .map_err(fail)
}
