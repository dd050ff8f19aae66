//! The `jobsctl` binary (also installed as `jobs`, see `src/bin/jobs.rs`). Everything lives in the library; this only hands its outcome to the OS.

use std::process::ExitCode;

fn main() -> ExitCode {
    jobs::cli::run()
}
