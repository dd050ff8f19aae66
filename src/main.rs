use std::process::ExitCode;

fn main() -> ExitCode {
    jobs::cli::run()
}
