//! The daemon: one owner per home (a lock), settling dead runs and setting aside unknown run
//! directories on start, a loop that sleeps until the next
//! due slot or an event and claims what is due, hot reload of specs, and one shutdown path.

pub mod daemon;
pub mod lock;
pub mod set_aside;
pub mod shutdown;
pub mod watch;

pub use daemon::{Options, run};
pub use shutdown::Shutdown;
