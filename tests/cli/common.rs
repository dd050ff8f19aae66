//! A small builder for driving the real `jobs` binary in a temporary JOBS_HOME.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// A temporary JOBS_HOME with helpers to write specs and run `jobs` in it.
pub struct TestHome {
    dir: TempDir,
}

/// What one `jobs` invocation printed and how it exited.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// stdout parsed as the `--json` envelope.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl TestHome {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary home");
        std::fs::create_dir_all(dir.path().join("jobs")).expect("create jobs/");
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn jobs_dir(&self) -> PathBuf {
        self.dir.path().join("jobs")
    }

    /// Writes `jobs/<name>` with `text`.
    pub fn spec(&self, name: &str, text: impl AsRef<[u8]>) -> &Self {
        std::fs::write(self.jobs_dir().join(name), text).expect("write spec");
        self
    }

    pub fn remove_spec(&self, name: &str) -> &Self {
        std::fs::remove_file(self.jobs_dir().join(name)).expect("remove spec");
        self
    }

    /// Runs `jobs --home <home> <args>` and captures everything.
    pub fn run(&self, args: &[&str]) -> Outcome {
        let output = Command::cargo_bin("jobs")
            .expect("the jobs binary is built")
            .arg("--home")
            .arg(self.path())
            .args(args)
            .env_remove("JOBS_HOME")
            .env("NO_COLOR", "1")
            .output()
            .expect("run jobs");
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs with `--json` and returns the parsed envelope and the exit code.
    pub fn json(&self, args: &[&str]) -> (Value, i32) {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        let outcome = self.run(&with_json);
        (outcome.json(), outcome.code)
    }

    /// Opens the store read-only for assertions.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            self.path().join("db/jobs.sqlite3"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open the store")
    }
}

/// A minimal valid spec body for job `id` (no schedule).
pub fn manual_spec(id: &str) -> String {
    format!("id: {id}\nrun:\n  command: [\"true\"]\n")
}
