//! `jobsctl shell-init SHELL`: an opt-in shell function named `jobs`, for those who want to type the
//! design's `jobs run <id>`. A shell looks up its builtin `jobs` before any program, so only a function
//! can take the name; this one hands the program's own commands (and its global options) to the
//! program, and everything else (`jobs`, `jobs -l`, `jobs %1`) to the builtin, which must see the
//! shell's own background jobs.

use std::path::PathBuf;

use clap::CommandFactory;
use serde::Serialize;

use super::args::{Cli, InitShell};
use super::output::{Output, Report, View};
use crate::error::Result;

/// The running binary by its full path, so that the function and the completion script call this
/// program even when its directory is not on PATH (and never the builtin).
pub fn this_program() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("jobsctl"))
}

/// First words that belong to the program: its commands, `help`, and the global options that may come
/// before a command. The builtin has no long options and none of these short ones.
fn program_words() -> Vec<String> {
    let command = Cli::command();
    let mut words: Vec<String> = command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .map(|sub| sub.get_name().to_owned())
        .collect();
    words.push("help".to_owned());
    for option in ["--home", "--color"] {
        words.push(option.to_owned());
        words.push(format!("{option}=*"));
    }
    words.extend(
        [
            "--json",
            "--help",
            "--version",
            "-h",
            "-V",
            "-v",
            "-vv",
            "-vvv",
        ]
        .map(str::to_owned),
    );
    words
}

/// A script for a shell to source (`shell-init`, `completions`): printed as it is, or under `--json`
/// with the shell's name.
#[derive(Serialize)]
pub struct ScriptView {
    pub shell: &'static str,
    pub script: String,
}

impl View for ScriptView {
    fn render(&self, _: &Output) -> String {
        self.script.clone()
    }
}

pub fn run(shell: InitShell, out: &Output) -> Result<Report> {
    let program = this_program().to_string_lossy().into_owned();
    let words = program_words();
    let (name, script) = match shell {
        InitShell::Bash => ("bash", posix_function(&program, &words)),
        InitShell::Zsh => ("zsh", posix_function(&program, &words)),
        InitShell::Fish => ("fish", fish_function(&program, &words)),
    };
    Report::view(
        &ScriptView {
            shell: name,
            script,
        },
        out,
    )
}

fn posix_function(program: &str, words: &[String]) -> String {
    format!(
        "# jobs <command> runs jobsctl; anything else is the shell's builtin jobs.\n\
         jobs() {{\n    \
             case \"${{1-}}\" in\n        \
                 {patterns})\n            command {program} \"$@\" ;;\n        \
                 *)\n            builtin jobs \"$@\" ;;\n    \
             esac\n\
         }}\n",
        patterns = words.join("|"),
        program = posix_quote(program),
    )
}

fn fish_function(program: &str, words: &[String]) -> String {
    let patterns: Vec<String> = words.iter().map(|w| fish_quote(w)).collect();
    format!(
        "# jobs <command> runs jobsctl; anything else is the shell's builtin jobs.\n\
         function jobs --description 'jobsctl for its commands, the builtin jobs for the rest'\n    \
             switch \"$argv[1]\"\n        \
                 case {patterns}\n            command {program} $argv\n        \
                 case '*'\n            builtin jobs $argv\n    \
             end\n\
         end\n",
        patterns = patterns.join(" "),
        program = fish_quote(program),
    )
}

fn posix_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Inside fish's single quotes only `\` and `'` are special. A quoted `*` in a `case` is still a
/// wildcard in fish, which is what `--home=*` needs.
fn fish_quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', r"\\").replace('\'', r"\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_odd_paths_whole() {
        assert_eq!(
            posix_quote("/opt/it's here/jobsctl"),
            r"'/opt/it'\''s here/jobsctl'"
        );
        assert_eq!(fish_quote(r"/opt/a\b'c"), r"'/opt/a\\b\'c'");
    }

    #[test]
    fn every_visible_command_goes_to_the_program() {
        let words = program_words();
        for command in [
            "run",
            "status",
            "list",
            "shell-init",
            "completions",
            "man",
            "help",
        ] {
            assert!(words.iter().any(|w| w == command), "{command} in {words:?}");
        }
        assert!(!words.iter().any(|w| w == "__exec"));
        // The builtin's own options stay with the builtin.
        for builtin in ["-l", "-p", "-n", "-r", "-s", "-x", ""] {
            assert!(
                !words.iter().any(|w| w == builtin),
                "{builtin:?} in {words:?}"
            );
        }
    }
}
