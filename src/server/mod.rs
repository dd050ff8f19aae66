//! The HTTP server: metrics, health, the read-only JSON API and the dashboard of a home.

pub mod access;
mod dashboard;
mod extract;
pub mod http;
mod layout;
mod live;
pub mod source;

pub use access::Listen;
pub use http::Server;
pub use source::{Answer, Route, Source};
