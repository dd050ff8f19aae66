//! `jobsctl man`: the man page, rendered by clap_mangen from the same definitions as `--help`, so the
//! two cannot disagree.

use std::path::Path;

use clap::CommandFactory;
use serde_json::json;

use super::args::Cli;
use super::output::Report;
use crate::error::{Error, Result};

pub fn run(dir: Option<&Path>) -> Result<Report> {
    match dir {
        None => page(),
        Some(dir) => pages(dir),
    }
}

fn page() -> Result<Report> {
    let mut roff = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut roff)
        .map_err(|e| Error::Internal {
            message: format!("cannot render the man page: {e}"),
        })?;
    let roff = String::from_utf8_lossy(&roff).into_owned();
    Ok(Report::ok(json!({ "page": roff }), roff))
}

/// One page per subcommand (`jobsctl-run.1`, ...) beside `jobsctl.1`, for `man -M` or a package.
fn pages(dir: &Path) -> Result<Report> {
    if !dir.is_dir() {
        return Err(Error::io(
            "write the man pages to",
            dir,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such directory; create it first",
            ),
        ));
    }
    let command = Cli::command();
    let name = command.get_name().to_owned();
    let mut written = vec![format!("{name}.1")];
    written.extend(
        command
            .get_subcommands()
            .filter(|sub| !sub.is_hide_set())
            .map(|sub| format!("{name}-{}.1", sub.get_name())),
    );
    clap_mangen::generate_to(command, dir)
        .map_err(|e| Error::io("write the man pages to", dir, e))?;
    let human = format!("wrote {} man pages to {}\n", written.len(), dir.display());
    Ok(Report::ok(
        json!({ "dir": dir.display().to_string(), "pages": written }),
        human,
    ))
}
