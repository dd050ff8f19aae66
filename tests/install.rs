//! A new user's first day, from an installed copy: `cargo install --locked --path .` puts both names
//! on PATH, a shell reaches the program as `jobsctl` (and never as `jobs`, the builtin), bash completes
//! commands and the home's job ids, the man page renders, and the opt-in `jobs` function splits the
//! name between the program and the builtin.
//!
//! The install is the real `cargo install`, in debug mode and into this build's target directory, so
//! it reuses what `cargo test` just compiled (seconds, where a release build would take minutes) while
//! still checking what a user's install does: the lock file is honoured, both binaries land in
//! `<root>/bin`.

#![expect(
    clippy::expect_used,
    reason = "a test helper that cannot set up must fail the test loudly"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// `<root>` of the install, made once for all the tests of this file.
fn installed() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("install-root");
        let _ = std::fs::remove_dir_all(&root);
        let built = PathBuf::from(env!("CARGO_BIN_EXE_jobsctl"));
        let target_dir = built
            .parent()
            .and_then(Path::parent)
            .expect("the binary lies in <target>/<profile>/");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut install = Command::new(cargo);
        install
            .args(["install", "--locked", "--offline", "--path"])
            .arg(env!("CARGO_MANIFEST_DIR"))
            .arg("--root")
            .arg(&root)
            .arg("--target-dir")
            .arg(target_dir)
            .env("CARGO_TERM_COLOR", "never");
        if cfg!(debug_assertions) {
            install.arg("--debug");
        }
        let output = install.output().expect("run cargo install");
        assert!(
            output.status.success(),
            "cargo install failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        for name in ["jobsctl", "jobs"] {
            assert!(
                root.join("bin").join(name).is_file(),
                "cargo install put no {name} in {}",
                root.join("bin").display()
            );
        }
        root
    })
}

/// A home with the bundled examples, as a new user's checkout is.
fn home_with_examples() -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("temp home");
    std::fs::create_dir(home.path().join("jobs")).expect("jobs/");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs");
    for entry in std::fs::read_dir(examples).expect("the bundled examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().expect("file name");
            std::fs::copy(&path, home.path().join("jobs").join(name)).expect("copy example");
        }
    }
    home
}

/// `shell -c script` in `home`, with the installed `bin/` first on PATH and nothing else of ours in
/// the environment.
fn shell(shell: &str, home: &Path, script: &str) -> Output {
    let path = format!(
        "{}:{}",
        installed().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(shell)
        .arg("-c")
        .arg(script)
        .current_dir(home)
        .env("PATH", path)
        .env_remove("JOBS_HOME")
        .env("NO_COLOR", "1")
        .output()
        .expect("run the shell")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn jobsctl_reaches_the_program_from_bash_and_sh_where_jobs_does_not() {
    let home = home_with_examples();
    for sh in ["bash", "sh"] {
        let out = shell(sh, home.path(), "jobsctl status");
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(5),
            "{sh}: jobsctl status exits 5 without a scheduler:\n{stdout}{}",
            text(&out.stderr)
        );
        assert!(
            stdout.contains("scheduler: not running") && stdout.contains("\njobs: "),
            "{sh}: jobsctl status printed the program's report:\n{stdout}"
        );
        // Why the program is not called `jobs` on the command line: the builtin answers instead.
        let out = shell(sh, home.path(), "jobs status");
        assert!(
            !text(&out.stdout).contains("scheduler:"),
            "{sh}: `jobs status` is the shell's builtin, not the program"
        );
        // The design's name is installed too, for `env jobs`, scripts and units.
        let out = shell(sh, home.path(), "env jobs status");
        assert_eq!(out.status.code(), Some(5), "{sh}: env jobs status");
        assert!(text(&out.stdout).contains("scheduler: not running"));
    }
}

/// Drives bash's programmable completion as a TAB would: the registered function with COMP_WORDS,
/// COMP_CWORD and the (command, word, previous word) arguments, then COMPREPLY one per line.
fn complete(home: &Path, words: &[&str]) -> Vec<String> {
    let cword = words.len() - 1;
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let previous = if cword == 0 { "" } else { words[cword - 1] };
    let script = format!(
        "eval \"$(jobsctl completions bash)\" || exit 90\n\
         complete -p jobsctl >/dev/null || exit 91\n\
         COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_TYPE=9\n\
         _clap_complete_jobsctl jobsctl '{current}' '{previous}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        words = quoted.join(" "),
        current = words[cword],
    );
    let out = shell("bash", home, &script);
    assert!(
        out.status.success(),
        "completing {words:?} failed ({:?}):\n{}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_the_job_ids_of_the_home() {
    let home = home_with_examples();
    assert_eq!(complete(home.path(), &["jobsctl", "sta"]), ["status"]);
    assert_eq!(
        complete(home.path(), &["jobsctl", "run", "nig"]),
        ["nightly-report"]
    );
    assert_eq!(
        complete(home.path(), &["jobsctl", "show", "heart"]),
        ["heartbeat"]
    );
    let flags = complete(home.path(), &["jobsctl", "run", "--det"]);
    assert_eq!(flags, ["--detach"]);
    // The ids are the home's: another home named on the line gives its own.
    let other = tempfile::tempdir().expect("other home");
    std::fs::create_dir(other.path().join("jobs")).expect("jobs/");
    std::fs::write(other.path().join("jobs/nightly-export.yaml"), "id: x\n").expect("spec");
    let other_home = other.path().to_str().expect("utf-8 temp path");
    assert_eq!(
        complete(
            home.path(),
            &["jobsctl", "--home", other_home, "run", "nig"]
        ),
        ["nightly-export"]
    );
    // Completing wrote nothing to the home: no store, no runs.
    assert!(!home.path().join("db").exists(), "a TAB created the store");
}

#[test]
fn what_the_examples_write_into_the_repository_is_ignored_by_git() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !root.join(".git").exists() {
        unavailable("the source is not a git checkout");
        return;
    }
    // `jobsctl run db-backup` in the repository (itself a home) writes backups/; runs and the store too.
    for path in [
        "backups/jobs-20261122T000000Z.sqlite3",
        "runs/heartbeat/1/stdout.log",
        "db/jobs.sqlite3",
    ] {
        let out = Command::new("git")
            .args(["check-ignore", "--quiet", "--no-index", path])
            .current_dir(root)
            .output()
            .expect("run git");
        assert_eq!(out.status.code(), Some(0), "git does not ignore {path}");
    }
}

/// Says that a test could not run, where `cargo test` shows it (a direct write to stderr is not
/// captured), or fails it under `JOBS_TEST_STRICT` (CI), where nothing may skip.
fn unavailable(what: &str) {
    assert!(
        std::env::var_os("JOBS_TEST_STRICT").is_none(),
        "{what}, and JOBS_TEST_STRICT is set"
    );
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {what}");
}

#[test]
fn the_man_page_renders_with_man() {
    let home = home_with_examples();
    if !shell("sh", home.path(), "command -v man").status.success() {
        unavailable("man is not installed (Debian package man-db)");
        return;
    }
    let out = shell(
        "bash",
        home.path(),
        "set -o pipefail; jobsctl man | MANWIDTH=100 man -l -",
    );
    let page = text(&out.stdout);
    assert!(
        out.status.success(),
        "man -l - failed (is man-db installed? .ci/run installs it):\n{}",
        text(&out.stderr)
    );
    for needle in ["NAME", "SYNOPSIS", "jobsctl", "--home", "shell-init"] {
        assert!(page.contains(needle), "the man page has {needle}:\n{page}");
    }
    let out = shell(
        "bash",
        home.path(),
        "mkdir pages && jobsctl man --dir pages && MANWIDTH=100 man -l pages/jobsctl-run.1",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(
        page.contains("jobsctl-run") && page.contains("--detach"),
        "one page per subcommand:\n{page}"
    );
    assert!(home.path().join("pages/jobsctl.1").is_file());
}

#[test]
fn shell_init_sends_commands_to_the_program_and_the_rest_to_the_builtin() {
    let home = home_with_examples();
    let script = "eval \"$(jobsctl shell-init bash)\" || exit 90\n\
                  sleep 30 &\n\
                  jobs list; echo \"list exit $?\"\n\
                  echo '--- builtin'\n\
                  jobs\n\
                  jobs -l\n\
                  kill %1";
    let out = shell("bash", home.path(), script);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let (program, builtin) = stdout
        .split_once("--- builtin")
        .expect("the script got past `jobs list`");
    assert!(
        program.contains("nightly-report") && program.contains("list exit 0"),
        "`jobs list` reached the program:\n{program}"
    );
    assert!(
        builtin.contains("sleep 30") && builtin.contains("Running"),
        "`jobs` is still the builtin listing the background job:\n{builtin}"
    );
    assert!(
        !builtin.contains("nightly-report"),
        "`jobs` alone did not reach the program:\n{builtin}"
    );
}
