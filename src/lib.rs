//! `jobs`: a spec-file driven job orchestrator. The binary is a thin shell around [`cli::run`].

pub mod artifacts;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod digest;
pub mod duration;
pub mod error;
pub mod fault;
pub mod home;
pub mod policy;
pub mod process;
pub mod retention;
pub mod run;
pub mod runner;
pub mod schedule;
pub mod scheduler;
pub mod spec;
pub mod store;
pub mod text;
pub mod users;
