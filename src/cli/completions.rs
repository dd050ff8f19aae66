//! `jobsctl completions SHELL`: the script a shell sources once, after which every TAB asks the
//! binary itself (clap_complete's dynamic engine) for subcommands, options and the home's job ids.
//! Asking the binary keeps completions in step with it (no script to regenerate after an upgrade) and
//! is the only way a script can know the job ids of the home; it must never write to the home.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::engine::CompletionCandidate;
use clap_complete::env::{CompleteEnv, Shells};

use super::args::{Cli, CompletionShell};
use super::output::{Output, Report};
use super::shell_init::ScriptView;
use crate::error::{Error, Result};
use crate::home::Home;

/// Set by the registration script when the shell asks for completions; `COMPLETE`, clap's default,
/// is too common a name to take over a program.
const COMPLETE_VAR: &str = "JOBS_COMPLETE";

/// The name completions are registered for. `jobs` is left to the shell, whose builtin it is.
const BIN_NAME: &str = "jobsctl";

fn command() -> clap::Command {
    Cli::command().bin_name(BIN_NAME)
}

/// Answers a completion request and exits, when the shell made one; returns at once otherwise.
pub fn answer_if_asked() {
    CompleteEnv::with_factory(command)
        .var(COMPLETE_VAR)
        .bin(BIN_NAME)
        .complete();
}

pub fn run(shell: CompletionShell, out: &Output) -> Result<Report> {
    let name = match shell {
        CompletionShell::Bash => "bash",
        CompletionShell::Zsh => "zsh",
        CompletionShell::Fish => "fish",
        CompletionShell::Elvish => "elvish",
        CompletionShell::Powershell => "powershell",
    };
    let shells = Shells::builtins();
    let completer = shells.completer(name).ok_or_else(|| Error::Internal {
        message: format!("clap_complete has no completer for {name}"),
    })?;
    let program = super::shell_init::this_program();
    let mut script = Vec::new();
    completer
        .write_registration(
            COMPLETE_VAR,
            BIN_NAME,
            BIN_NAME,
            &program.to_string_lossy(),
            &mut script,
        )
        .map_err(|e| Error::Internal {
            message: format!("cannot write the {name} completion script: {e}"),
        })?;
    let script = String::from_utf8_lossy(&script).into_owned();
    Report::view(
        &ScriptView {
            shell: name,
            script,
        },
        out,
    )
}

/// The job ids of the home the command line being completed names: `--home` on it, else
/// `JOBS_HOME`, else the current directory. Read from the file names in `jobs/` (a spec's id is its
/// file name), so that a TAB neither opens the store nor waits for its lock.
pub fn job_ids() -> Vec<CompletionCandidate> {
    let home = Home::new(home_of_completed_line(std::env::args_os()));
    let Ok(entries) = std::fs::read_dir(home.jobs_dir()) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter_map(|path| path.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
        .collect();
    ids.sort();
    ids.dedup();
    ids.into_iter().map(CompletionCandidate::new).collect()
}

/// In a completion request the words being completed follow `--`; the last `--home` among them wins,
/// as it does when the line runs.
fn home_of_completed_line(args: impl Iterator<Item = OsString>) -> PathBuf {
    let words: Vec<OsString> = args.skip_while(|a| a != "--").skip(1).collect();
    let mut home = None;
    let mut iter = words.iter();
    while let Some(word) = iter.next() {
        if word == "--home" {
            home = iter.next().map(PathBuf::from);
        } else if let Some(value) = word.to_str().and_then(|w| w.strip_prefix("--home=")) {
            home = Some(PathBuf::from(value));
        }
    }
    home.or_else(|| std::env::var_os("JOBS_HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &[&str]) -> impl Iterator<Item = OsString> {
        line.iter()
            .map(OsString::from)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn the_home_comes_from_the_line_being_completed() {
        let line = [
            "jobsctl", "--", "jobsctl", "--home", "a", "run", "--home=b", "x",
        ];
        assert_eq!(home_of_completed_line(words(&line)), PathBuf::from("b"));
        let line = ["jobsctl", "--", "jobsctl", "--home", "a", "run", "x"];
        assert_eq!(home_of_completed_line(words(&line)), PathBuf::from("a"));
        // Before `--` are the completer's own arguments, not the line's.
        let line = ["jobsctl", "--home", "z", "--", "jobsctl", "run", "--home"];
        assert_ne!(home_of_completed_line(words(&line)), PathBuf::from("z"));
    }
}
