//! The daemon: one owner per home (a lock), settling dead runs and setting aside unknown run
//! directories on start, a loop that sleeps until the next deadline or an event and claims what is
//! due (planned purely, committed in one transaction, carried out by the run supervisor), hot reload
//! of specs, and one shutdown path.

pub mod cluster;
mod commit;
pub mod daemon;
pub mod dry_run;
mod jobs;
pub mod lock;
pub mod plan;
mod reload;
mod retention;
pub mod set_aside;
pub mod shutdown;
mod slot_log;
mod supervisor;
pub mod watch;
mod worker;

pub use cluster::ClusterOptions;
pub use daemon::{Options, ServerSetup, run};
pub use dry_run::{DryRun, dry_run};
pub use shutdown::Shutdown;
