//! `jobsctl man`: the man page, rendered by clap_mangen from the same definitions as `--help`, so the
//! two cannot disagree.

use std::path::Path;

use clap::CommandFactory;
use serde::Serialize;

use super::args::Cli;
use super::output::{Output, Report, View};
use crate::error::{Error, Result};

/// The man page itself, for `jobsctl man` without a directory.
#[derive(Serialize)]
struct PageView {
    page: String,
}

impl View for PageView {
    fn render(&self, _: &Output) -> String {
        self.page.clone()
    }
}

/// The pages written to a directory.
#[derive(Serialize)]
struct PagesView {
    dir: String,
    pages: Vec<String>,
}

impl View for PagesView {
    fn render(&self, _: &Output) -> String {
        format!("wrote {} man pages to {}\n", self.pages.len(), self.dir)
    }
}

pub fn run(dir: Option<&Path>, out: &Output) -> Result<Report> {
    match dir {
        None => Report::view(&page()?, out),
        Some(dir) => Report::view(&pages(dir)?, out),
    }
}

fn page() -> Result<PageView> {
    let mut roff = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut roff)
        .map_err(|e| Error::Internal {
            message: format!("cannot render the man page: {e}"),
        })?;
    Ok(PageView {
        page: String::from_utf8_lossy(&roff).into_owned(),
    })
}

/// One page per subcommand (`jobsctl-run.1`, ...) beside `jobsctl.1`, for `man -M` or a package.
fn pages(dir: &Path) -> Result<PagesView> {
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
    Ok(PagesView {
        dir: dir.display().to_string(),
        pages: written,
    })
}
