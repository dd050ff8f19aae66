//! Integration tests that drive the real `jobs` binary in temporary homes. One test binary, so the
//! suite links once.

#![expect(
    clippy::expect_used,
    reason = "a test helper that cannot set up must fail the test loudly"
)]

mod breaks;
mod cancel;
mod commands;
#[expect(
    dead_code,
    reason = "the scheduler start serves the other test crates too (a umask, global flags, an appended log), which these tests do not use"
)]
mod common;
mod contract;
mod dashboard;
mod first_day;
mod home_config;
mod maintenance;
mod more_breaks;
mod notify;
mod orchestration;
mod orphans;
mod output_limits;
mod pg_store;
#[path = "../support/receiver.rs"]
mod receiver;
mod runbooks;
mod runs;
mod scheduler;
mod server;
mod spec_input;
mod store_access;
mod store_sync;
mod tail;
mod validate;
