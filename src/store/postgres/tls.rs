//! How the PostgreSQL store connects: in the clear when the URL says `sslmode=disable`, otherwise
//! through rustls with the platform's root certificates (`prefer`, the default, falls back to the
//! clear when the server offers no TLS; `require` refuses to).

use std::sync::Arc;

use postgres::config::SslMode;
use postgres::{Client, NoTls};
use rustls_platform_verifier::BuilderVerifierExt;

use crate::error::{Error, Result};

/// Connects as `config` says, TLS included.
pub(super) fn connect(config: &postgres::Config, shown: &str) -> Result<Client> {
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
