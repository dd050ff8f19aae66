//! The `jobs` binary. Everything lives in the library; this only hands its outcome to the OS.

use std::process::ExitCode;

fn main() -> ExitCode {
    jobs::cli::run()
}
