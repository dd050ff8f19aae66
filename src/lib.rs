//! `jobs`: a spec-file driven job orchestrator. The binary is a thin shell around [`cli::run`].
//! Public are the modules the binaries, the integration tests and the benches use; the rest is
//! `pub(crate)`, so the compiler reports what nothing calls.

pub mod artifacts;
pub mod catalog;
pub mod cli;
pub mod clock;
pub(crate) mod config;
pub mod delivery;
pub mod digest;
pub mod duration;
pub(crate) mod error;
pub(crate) mod fault;
pub mod home;
pub mod metrics;
pub(crate) mod mirror;
pub mod notifier;
pub mod policy;
pub(crate) mod process;
pub(crate) mod reaper;
pub(crate) mod retention;
pub mod run;
pub(crate) mod runner;
pub mod schedule;
pub(crate) mod scheduler;
pub mod server;
pub mod spec;
pub mod store;
pub mod text;
pub mod triggers;
pub(crate) mod users;
