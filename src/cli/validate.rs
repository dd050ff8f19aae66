//! `jobsctl validate [PATH...]`: check spec files and report every problem as `path:line:col: pointer:
//! message`. Touches nothing but the files it reads.

use std::path::PathBuf;

use serde::Serialize;

use super::Ctx;
use super::output::{Output, Report, Style, View, escape_controls};
use crate::config::{self, CONFIG_FILE, ConfigFile};
use crate::error::{Error, Result};
use crate::spec::load::{load_dir_with, load_file_with};
use crate::spec::relations::Known;
use crate::spec::stamps::Stamps;
use crate::spec::{Defaults, Problem};

pub fn run(ctx: &Ctx, paths: &[PathBuf]) -> Result<Report> {
    let now = ctx.clock.now();
    // Specs are checked as the home would run them, completed by its config's defaults; an invalid
    // config is reported here and its defaults left out.
    let home_config = config::load(&ctx.home);
    let (defaults, groups) = match &home_config.outcome {
        Ok(config) => (config.defaults.clone(), Some(config.group_names())),
        Err(_) => (Defaults::default(), None),
    };
    // A directory of the home is checked against the home's groups; any other, on its own.
    // The store is not read: a cycle closed through the last good version of an invalid spec is
    // refused when the home loads it, and shows here once that spec's own problems are fixed.
    let home_known = Known {
        groups: groups.as_ref(),
        in_force: None,
    };
    let alone = Known {
        groups: None,
        in_force: None,
    };
    let mut files: Vec<(String, Checked)> = Vec::new();
    if paths.is_empty() {
        if home_config.is_present() {
            files.push((
                ctx.home.display_path(&home_config.path),
                Checked::config(&home_config),
            ));
        }
        for file in load_dir_with(
            &ctx.home.jobs_dir(),
            now,
            &defaults,
            &Stamps::none(),
            &|_, _| None,
            &home_known,
        )? {
            files.push((ctx.home.display_path(&file.path), Checked::spec(&file)));
        }
    } else {
        for path in paths {
            // Relative to the current directory, as a shell user expects.
            if path.is_dir() {
                let known = if path.canonicalize().ok() == ctx.home.jobs_dir().canonicalize().ok() {
                    &home_known
                } else {
                    &alone
                };
                for file in
                    load_dir_with(path, now, &defaults, &Stamps::none(), &|_, _| None, known)?
                {
                    files.push((file.path.display().to_string(), Checked::spec(&file)));
                }
            } else if path.file_name().is_some_and(|name| name == CONFIG_FILE) {
                let file = config::load_path(path);
                files.push((path.display().to_string(), Checked::config(&file)));
            } else {
                let file = load_file_with(path, now, &defaults);
                files.push((path.display().to_string(), Checked::spec(&file)));
            }
        }
    }

    let view = ValidateView {
        files: files
            .iter()
            .map(|(shown, file)| FileEntry {
                path: shown,
                ok: file.problems.is_empty(),
                problems: &file.problems,
            })
            .collect(),
        total: files.len(),
        invalid: files.iter().filter(|(_, f)| !f.problems.is_empty()).count(),
    };
    let error = (view.invalid > 0).then_some(Error::InvalidSpecs {
        count: view.invalid,
    });
    Ok(Report::view(&view, &ctx.out)?.with_error(error))
}

/// One file checked, a spec or the config: its problems, none when it is valid.
struct Checked {
    problems: Vec<Problem>,
}

impl Checked {
    fn spec(file: &crate::spec::SpecFile) -> Self {
        Self {
            problems: file.problems().to_vec(),
        }
    }

    fn config(file: &ConfigFile) -> Self {
        Self {
            problems: file.outcome.as_ref().err().cloned().unwrap_or_default(),
        }
    }
}

/// Every file checked, with its problems.
#[derive(Serialize)]
struct ValidateView<'a> {
    files: Vec<FileEntry<'a>>,
    total: usize,
    invalid: usize,
}

#[derive(Serialize)]
struct FileEntry<'a> {
    /// As the user named it, or relative to the home.
    path: &'a str,
    ok: bool,
    problems: &'a [Problem],
}

impl View for ValidateView<'_> {
    fn render(&self, out: &Output) -> String {
        let mut human = String::new();
        for file in &self.files {
            // A file name, a key in the pointer and a quoted value can each hold ESC.
            let shown = escape_controls(file.path);
            for problem in file.problems {
                let place = out.paint(
                    Style::Bold,
                    &format!("{shown}:{}:{}:", problem.line, problem.column),
                );
                let message = escape_controls(&problem.message);
                if problem.pointer.is_empty() {
                    human.push_str(&format!("{place} {message}\n"));
                } else {
                    human.push_str(&format!(
                        "{place} {}: {message}\n",
                        escape_controls(&problem.pointer)
                    ));
                }
            }
        }
        let summary = match (self.total, self.invalid) {
            (0, _) => "no spec files found".to_owned(),
            (total, 0) => out.paint(
                Style::Green,
                &format!("{total} spec file{} valid", plural(total)),
            ),
            (total, bad) => out.paint(
                Style::Red,
                &format!("{bad} of {total} spec file{} invalid", plural(total)),
            ),
        };
        human.push_str(&summary);
        human.push('\n');
        human
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
