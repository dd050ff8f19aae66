//! A small builder for driving the real `jobs` binary in a temporary JOBS_HOME.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

    /// Runs `jobsctl --home <home> <args>` and captures everything.
    pub fn run(&self, args: &[&str]) -> Outcome {
        let output = Command::cargo_bin("jobsctl")
            .expect("the jobs binary is built")
            .arg("--home")
            .arg(self.path())
            .args(args)
            .env_remove("JOBS_HOME")
            .env_remove("JOBS_STORE")
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

impl TestHome {
    /// A `jobsctl --home <home> <args>` command to spawn and manage by hand (signals, concurrency).
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("jobsctl"));
        command
            .arg("--home")
            .arg(self.path())
            .args(args)
            .env_remove("JOBS_HOME")
            .env_remove("JOBS_STORE")
            .env("NO_COLOR", "1");
        command
    }

    pub fn run_dir(&self, job: &str, seq: i64) -> PathBuf {
        self.path().join("runs").join(job).join(seq.to_string())
    }

    /// The events of a run, each line parsed; the file must end with a complete line.
    pub fn events(&self, job: &str, seq: i64) -> Vec<Value> {
        let text = std::fs::read_to_string(self.run_dir(job, seq).join("events.jsonl"))
            .expect("read events");
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "events end with a whole line"
        );
        text.lines()
            .map(|l| serde_json::from_str(l).expect("event line is JSON"))
            .collect()
    }

    pub fn receipt(&self, job: &str, seq: i64) -> Value {
        let text = std::fs::read_to_string(self.run_dir(job, seq).join("run_receipt.json"))
            .expect("read receipt");
        serde_json::from_str(&text).expect("receipt is JSON")
    }

    /// Checks every artifact of a run against the published schemas and the events' own rules, and
    /// returns the events.
    pub fn checked_artifacts(&self, job: &str, seq: i64) -> Vec<Value> {
        let receipt = self.receipt(job, seq);
        let errors: Vec<String> = schema("run_receipt")
            .iter_errors(&receipt)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{job}#{seq} receipt breaks its schema: {errors:?}\n{receipt:#}"
        );
        let events = self.events(job, seq);
        let validator = schema("event");
        let mut last_seq = 0;
        for event in &events {
            let errors: Vec<String> = validator
                .iter_errors(event)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{job}#{seq} event breaks its schema: {errors:?}\n{event}"
            );
            let seq_of_event = event["seq"].as_u64().expect("seq");
            assert!(
                seq_of_event > last_seq,
                "seq strictly increases: {last_seq} then {seq_of_event}"
            );
            last_seq = seq_of_event;
        }
        for name in ["summary.md", "stdout.log", "stderr.log", ".lock"] {
            assert!(
                self.run_dir(job, seq).join(name).exists(),
                "{job}#{seq} has {name}"
            );
        }
        events
    }

    /// A number from the store (a count, a counter); 0 while the store, its tables or the row asked
    /// for do not exist yet (a scheduler still starting). Any other failure (a typo in the query, a damaged
    /// store) fails the test: a count that quietly read 0 would make every "none left" check pass.
    pub fn count(&self, sql: &str) -> i64 {
        let path = self.path().join("db/jobs.sqlite3");
        if !path.exists() {
            return 0;
        }
        let db = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open the store");
        db.busy_timeout(std::time::Duration::from_secs(10))
            .expect("busy timeout");
        let migrated: i64 = db
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("read the store's version");
        if migrated == 0 {
            return 0;
        }
        match db.query_row(sql, [], |r| r.get(0)) {
            Ok(n) => n,
            // A row that is not there yet (a job the scheduler has not synced) counts as 0.
            Err(rusqlite::Error::QueryReturnedNoRows) => 0,
            Err(e) => panic!("{sql}: {e}"),
        }
    }

    /// The store's row of a run: (status, attempts, exit_code, error_code).
    pub fn run_row(&self, job: &str, seq: i64) -> (String, i64, Option<i64>, Option<String>) {
        self.db()
            .query_row(
                "SELECT status, attempts, exit_code, error_code FROM runs WHERE job_id = ?1 AND seq = ?2",
                rusqlite::params![job, seq],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("run row")
    }
}

/// A compiled schema from `schemas/<name>.schema.json`.
pub fn schema(name: &str) -> jsonschema::Validator {
    let path = format!("{}/schemas/{name}.schema.json", env!("CARGO_MANIFEST_DIR"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("read schema"))
        .expect("schema JSON");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
}

/// Polls `condition` every 20 ms until it holds, or fails the test after `seconds`.
pub fn wait_until(what: &str, seconds: u64, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether a process is alive (a zombie counts as gone).
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A child process that is killed if the test ends (or fails) without stopping it, so a failing test
/// never leaves a scheduler or a follower running.
pub struct KillOnDrop(pub std::process::Child);

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits for a child to exit, failing the test (and killing it) after `seconds`.
pub fn wait_exit(child: &mut std::process::Child, seconds: u64) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the process did not exit within {seconds} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `jobsctl scheduler` in `home`, its log in `scheduler.log` there (started afresh each time), with extra
/// environment variables; killed if the test ends first.
pub fn start_scheduler(home: &TestHome, envs: &[(&str, &str)]) -> KillOnDrop {
    envs.iter()
        .fold(SchedulerStart::new(home.path()), |start, (key, value)| {
            start.env(key, value)
        })
        .start()
}

/// The one way the tests start `jobsctl scheduler`: in a home, with a shutdown grace (1 s unless
/// told), stderr into a log file of the home (created afresh unless told to append) or nowhere,
/// optionally under a umask; killed if the test ends first.
pub struct SchedulerStart {
    home: PathBuf,
    global: Vec<String>,
    args: Vec<String>,
    grace: String,
    log: Option<String>,
    append: bool,
    umask: Option<String>,
    envs: Vec<(String, String)>,
    removed: Vec<String>,
}

impl SchedulerStart {
    pub fn new(home: &Path) -> Self {
        Self {
            home: home.to_owned(),
            global: Vec::new(),
            args: Vec::new(),
            grace: "1s".to_owned(),
            log: Some("scheduler.log".to_owned()),
            append: false,
            umask: None,
            envs: Vec::new(),
            removed: Vec::new(),
        }
    }

    /// Global flags, placed before `scheduler` (`-v`).
    pub fn global(mut self, args: &[&str]) -> Self {
        self.global.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Flags of the `scheduler` command, placed after it (`--log-format json`).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    pub fn grace(mut self, grace: &str) -> Self {
        grace.clone_into(&mut self.grace);
        self
    }

    /// stderr into `name` in the home; `None` discards it.
    pub fn log(mut self, name: Option<&str>) -> Self {
        self.log = name.map(str::to_owned);
        self
    }

    /// Appends to the log instead of starting it afresh (a test that restarts the scheduler).
    pub fn append(mut self) -> Self {
        self.append = true;
        self
    }

    /// Runs the scheduler under `sh -c 'umask MASK; exec jobsctl ...'`.
    pub fn umask(mut self, mask: &str) -> Self {
        self.umask = Some(mask.to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.removed.push(key.to_owned());
        self
    }

    pub fn start(self) -> KillOnDrop {
        let bin = assert_cmd::cargo::cargo_bin("jobsctl");
        let mut command = match &self.umask {
            Some(mask) => {
                let mut sh = std::process::Command::new("sh");
                sh.arg("-c")
                    .arg(format!("umask {mask}; exec \"$0\" \"$@\""))
                    .arg(bin);
                sh
            }
            None => std::process::Command::new(bin),
        };
        command
            .arg("--home")
            .arg(&self.home)
            .args(&self.global)
            .args(["scheduler", "--shutdown-grace", &self.grace])
            .args(&self.args)
            .env_remove("JOBS_HOME")
            .env_remove("JOBS_STORE")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null());
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        for key in &self.removed {
            command.env_remove(key);
        }
        match &self.log {
            Some(name) => {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(self.append)
                    .truncate(!self.append)
                    .open(self.home.join(name))
                    .expect("open the scheduler's log file");
                command.stderr(log);
            }
            None => {
                command.stderr(std::process::Stdio::null());
            }
        }
        command
            .spawn()
            .map(KillOnDrop)
            .expect("start the scheduler")
    }
}

/// What the scheduler started last by [`start_scheduler`] has logged so far.
pub fn scheduler_log(home: &TestHome) -> String {
    std::fs::read_to_string(home.path().join("scheduler.log")).unwrap_or_default()
}

pub fn signal(child: &std::process::Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, signal).expect("send signal");
}

/// SIGTERM, then the exit code (failing the test if it takes over 30 s).
pub fn stop(mut child: KillOnDrop) -> i32 {
    signal(&child, rustix::process::Signal::TERM);
    wait_exit(&mut child, 30).code().unwrap_or(-1)
}

/// Starts a long run of `doomed` and kills `jobsctl run` with SIGKILL, leaving the row "running".
pub fn killed_run() -> TestHome {
    let home = TestHome::new();
    home.spec(
        "doomed.yaml",
        "id: doomed\nrun:\n  shell: \"if [ ! -e shell.pid ]; then echo $$ > shell.pid; sleep 30; fi\"\n",
    );
    let mut jobs = home.command(&["run", "doomed"]).spawn().expect("spawn");
    // The shell writes its pid as soon as it runs, which can be before `jobs run` has written the
    // attempt's start: wait for both, so the run died with one attempt on record.
    wait_until("the command to start", 5, || {
        home.path().join("shell.pid").exists()
            && std::fs::read_to_string(home.run_dir("doomed", 1).join("events.jsonl"))
                .is_ok_and(|events| events.contains("\"attempt_started\""))
    });
    jobs.kill().expect("SIGKILL jobs run");
    jobs.wait().expect("reap");
    let shell: i32 = std::fs::read_to_string(home.path().join("shell.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    // The command lives on in its own process group; clean it up first.
    let _ = rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(shell).expect("pid"),
        rustix::process::Signal::KILL,
    );

    // What the store and the artifacts say before anyone reconciles:
    assert_eq!(home.run_row("doomed", 1).0, "running");
    assert!(
        !jobs::artifacts::RunDir::is_locked(&home.run_dir("doomed", 1)),
        "the run lock is free: no live owner"
    );
    assert_eq!(home.receipt("doomed", 1)["status"], "running");
    let events = home.events("doomed", 1);
    assert!(events.iter().all(|e| e["type"] != "run_finished"));
    home
}

/// Runs `program args` with `input` on its stdin: its output, or `None` when the program is not
/// installed, which fails the test under `JOBS_TEST_STRICT` (`.ci/run` installs `package`).
pub fn feed_tool(
    program: &str,
    args: &[&str],
    input: &str,
    package: &str,
) -> Option<std::process::Output> {
    let child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            assert!(
                std::env::var_os("JOBS_TEST_STRICT").is_none(),
                "{program} is needed (Debian's {package}): {e}"
            );
            eprintln!("skipped: {program} is not installed ({e})");
            return None;
        }
    };
    std::io::Write::write_all(
        child.stdin.as_mut().expect("the tool's stdin"),
        input.as_bytes(),
    )
    .expect("feed the tool");
    drop(child.stdin.take());
    Some(child.wait_with_output().expect("the tool ran"))
}

/// A new empty database on the test server, and its URL; `None` (the test skips) without a
/// server, unless `JOBS_TEST_STRICT` is set.
pub fn fresh_pg_database() -> Option<String> {
    let admin = match std::env::var("JOBS_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var_os("JOBS_TEST_STRICT").is_some() => {
            panic!("JOBS_TEST_STRICT is set but JOBS_TEST_PG_URL names no PostgreSQL server")
        }
        _ => {
            eprintln!("skipped: JOBS_TEST_PG_URL names no PostgreSQL server");
            return None;
        }
    };
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "jobs_cli_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut client =
        postgres::Client::connect(&admin, postgres::NoTls).expect("connect to the test server");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create a database");
    let (before, query) = admin.split_once('?').unwrap_or((&admin, ""));
    let base = before.rsplit_once('/').map_or(before, |(base, _)| base);
    Some(if query.is_empty() {
        format!("{base}/{name}")
    } else {
        format!("{base}/{name}?{query}")
    })
}

/// A GET of `path` at `port`: the status code and the body.
pub fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
    get_on(stream, path, token)
}

pub fn get_on(mut stream: TcpStream, path: &str, token: Option<&str>) -> (u16, String) {
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The port the process logged it listens on (`listening on http://127.0.0.1:PORT`).
pub fn port_in(log: &std::path::Path) -> u16 {
    let mut port = 0;
    wait_until("the server to listen", 15, || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        port = text
            .split("listening on http://127.0.0.1:")
            .nth(1)
            .and_then(|rest| {
                rest.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .ok()
            })
            .unwrap_or(0);
        port != 0
    });
    port
}

/// `jobsctl serve` on a port of its own choosing in `home`, its stderr in `serve.log`.
pub fn serve(home: &TestHome, args: &[&str]) -> (KillOnDrop, u16) {
    spawn_serve(home, &[&["--listen", "127.0.0.1:0"], args].concat())
}

/// `jobsctl serve ARGS` in `home`, and the port it says it listens on.
pub fn spawn_serve(home: &TestHome, args: &[&str]) -> (KillOnDrop, u16) {
    let log = home.path().join("serve.log");
    let child = home
        .command(&[&["serve"], args].concat())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start jobsctl serve");
    let child = KillOnDrop(child);
    let port = port_in(&log);
    (child, port)
}
