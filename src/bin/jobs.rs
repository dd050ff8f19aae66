//! `jobs`, the product's own name for `jobsctl`: the same entry point, for scripts, units and `env jobs`.
//! A shell finds its builtin `jobs` first, which is why people type `jobsctl`.

use std::process::ExitCode;

fn main() -> ExitCode {
    jobs::cli::run()
}
