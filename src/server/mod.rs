//! The HTTP server: metrics, health and the read-only JSON API of a home.

pub mod access;
pub mod http;
pub mod source;

pub use access::Listen;
pub use http::Server;
pub use source::{Answer, Route, Source};
