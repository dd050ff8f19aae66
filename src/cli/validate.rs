//! `jobsctl validate [PATH...]`: check spec files and report every problem as `path:line:col: pointer:
//! message`. Touches nothing but the files it reads.

use std::path::PathBuf;

use serde::Serialize;

use super::Ctx;
use super::output::{Output, Report, Style, View, escape_controls};
use crate::error::{Error, Result};
use crate::spec::{Problem, SpecFile, load_dir, load_file};

pub fn run(ctx: &Ctx, paths: &[PathBuf]) -> Result<Report> {
    let now = ctx.clock.now();
    let mut files: Vec<(String, SpecFile)> = Vec::new();
    if paths.is_empty() {
        for file in load_dir(&ctx.home.jobs_dir(), now)? {
            files.push((ctx.home.display_path(&file.path), file));
        }
    } else {
        for path in paths {
            // Relative to the current directory, as a shell user expects.
            if path.is_dir() {
                for file in load_dir(path, now)? {
                    files.push((file.path.display().to_string(), file));
                }
            } else {
                files.push((path.display().to_string(), load_file(path, now)));
            }
        }
    }

    let view = ValidateView {
        files: files
            .iter()
            .map(|(shown, file)| FileEntry {
                path: shown,
                ok: file.is_ok(),
                problems: file.problems(),
            })
            .collect(),
        total: files.len(),
        invalid: files.iter().filter(|(_, f)| !f.is_ok()).count(),
    };
    let error = (view.invalid > 0).then_some(Error::InvalidSpecs {
        count: view.invalid,
    });
    Ok(Report::view(&view, &ctx.out)?.with_error(error))
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
