//! The HTTP server of a home, end to end: the real binary listening on a loopback port of its own
//! choosing, `/metrics` in the classic text format that `promtool` reads, health, the JSON API with the
//! CLI's shapes, 404 for anything outside its routes, and the token rules.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    KillOnDrop, SchedulerStart, TestHome, get, get_on, port_in, serve, spawn_serve, stop,
    wait_until,
};

const EVERY_SECOND: &str = "schedule:\n  cron: \"* * * * * *\"\n  timezone: UTC\n";

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// `promtool check metrics` on `text`: `None` when it has no complaint, else what it said. Fails the
/// test when promtool is missing under `JOBS_TEST_STRICT` (CI installs Debian's `prometheus`).
fn promtool_check(text: &str) -> Option<String> {
    let output = crate::common::feed_tool("promtool", &["check", "metrics"], text, "prometheus")?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (!output.status.success() || !said.trim().is_empty()).then_some(said)
}

#[test]
fn the_scheduler_serves_metrics_promtool_reads_and_health() {
    let home = TestHome::new();
    home.spec(
        "flip.yaml",
        format!(
            "id: flip\n{EVERY_SECOND}run:\n  shell: \"test -e ok || {{ touch ok; exit 2; }}\"\n"
        ),
    );
    home.spec("paused.yaml", "id: paused\nrun:\n  command: [\"true\"]\n");
    // Disabled in its spec, not by an operator: the state is read from the stored spec.
    home.spec(
        "off.yaml",
        "id: off\nenabled: false\nrun:\n  command: [\"true\"]\n",
    );
    assert_eq!(home.run(&["pause", "paused"]).code, 0);
    let scheduler = SchedulerStart::new(home.path())
        .args(&["--listen", "127.0.0.1:0"])
        .start();
    let port = port_in(&home.path().join("scheduler.log"));
    assert_eq!(get(port, "/healthz", None), (200, "ok\n".to_owned()));
    wait_until("a failure and a success", 15, || {
        let (_, text) = get(port, "/metrics", None);
        text.contains("jobs_runs_finished_total{job_id=\"flip\",status=\"failed\"} 1")
            && text.contains("jobs_runs_finished_total{job_id=\"flip\",status=\"succeeded\"}")
            // The gauges are read from the store at most once a second.
            && text.contains("jobs_last_success_timestamp_seconds{job_id=\"flip\"}")
    });
    let (status, text) = get(port, "/metrics", None);
    assert_eq!(status, 200);
    for expected in [
        "jobs_build_info{version=\"",
        "jobs_scheduler_up 1\n",
        "jobs_job_state{job_id=\"paused\",state=\"paused\"} 1\n",
        "jobs_job_state{job_id=\"flip\",state=\"active\"} 1\n",
        "jobs_job_state{job_id=\"off\",state=\"disabled\"} 1\n",
        "jobs_last_success_timestamp_seconds{job_id=\"flip\"} ",
        "jobs_last_failure_timestamp_seconds{job_id=\"flip\"} ",
        "jobs_next_slot_timestamp_seconds{job_id=\"flip\"} ",
        "jobs_run_duration_seconds_count{job_id=\"flip\"} ",
        "jobs_fire_lateness_seconds_bucket{le=\"+Inf\"} ",
        "jobs_notifications_pending 0\n",
        "# TYPE jobs_runs_finished_total counter\n",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    assert!(
        !text.contains("{job="),
        "the label is job_id: Prometheus keeps `job` for the scrape job"
    );
    if let Some(complaint) = promtool_check(&text) {
        panic!("promtool check metrics: {complaint}\n{text}");
    }
    wait_until("ready", 10, || get(port, "/readyz", None).0 == 200);
    assert_eq!(stop(scheduler), 0);
}

#[test]
fn the_api_answers_what_json_prints_and_nothing_outside_its_routes() {
    let home = TestHome::new();
    home.spec(
        "report.yaml",
        "id: report\ndescription: \"<script>alert(1)</script>\"\nrun:\n  shell: \"echo '<img src=x onerror=alert(1)>'; exit 1\"\n  env:\n    TOKEN: hunter2-never-served\n",
    );
    assert_eq!(home.run(&["run", "report"]).code, 1);
    let (_server, port) = serve(&home, &[]);

    let (status, body) = get(port, "/api/jobs", None);
    assert_eq!(status, 200);
    let (cli, _) = home.json(&["list"]);
    assert_eq!(json(&body)["data"]["jobs"], cli["data"]["jobs"]);

    let (status, body) = get(port, "/api/jobs/report", None);
    assert_eq!(status, 200);
    let served = json(&body);
    assert_eq!(served["data"]["id"], "report");
    assert!(!body.contains("hunter2"), "no env value is served: {body}");

    let (status, body) = get(port, "/api/jobs/report/runs?status=failed&limit=5", None);
    assert_eq!(status, 200, "{body}");
    let runs = json(&body);
    assert_eq!(runs["data"]["entries"][0]["status"], "failed", "{runs}");
    let (status, body) = get(port, "/api/jobs/report/runs?status=nonsense", None);
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["error"]["code"], "usage");

    let (status, body) = get(port, "/api/jobs/report/runs/1", None);
    assert_eq!(status, 200);
    assert_eq!(json(&body)["data"]["run"]["exit_code"], 1);

    let (status, body) = get(port, "/api/jobs/report/runs/1/events", None);
    assert_eq!(status, 200);
    let lines: Vec<Value> = body.lines().map(json).collect();
    assert_eq!(
        lines.first().map(|e| e["type"].clone()),
        Some("run_started".into())
    );
    assert_eq!(
        lines.last().map(|e| e["type"].clone()),
        Some("run_finished".into())
    );

    let (status, body) = get(port, "/api/jobs/nope", None);
    assert_eq!(status, 404);
    assert_eq!(json(&body)["error"]["code"], "job_not_found");
    assert_eq!(get(port, "/api/jobs/report/runs/9", None).0, 404);
    for path in [
        "/../../etc/passwd",
        "/api/jobs/..%2F..%2Fetc%2Fpasswd",
        "/api/jobs/%2e%2e/runs/1/events",
        "/api/jobs/report/runs/1/..%2F..%2F..%2Fdb%2Fjobs.sqlite3",
        "/runs/",
        "/db/jobs.sqlite3",
        "/api",
    ] {
        let (status, body) = get(port, path, None);
        assert_eq!(status / 100, 4, "{path}: {status} {body}");
        assert!(!body.contains("root:"), "{path}: {body}");
    }
    // No scheduler runs here: the server still answers, and says so.
    let (_, text) = get(port, "/metrics", None);
    assert!(text.contains("jobs_scheduler_up 0\n"), "{text}");
    assert!(text.contains("jobs_last_failure_timestamp_seconds{job_id=\"report\"}"));
    assert_eq!(get(port, "/readyz", None).0, 200);
}

#[test]
fn an_address_others_can_reach_needs_a_token_from_a_private_file() {
    let home = TestHome::new();
    home.spec("a.yaml", "id: a\nrun:\n  command: [\"true\"]\n");
    let refused = home.run(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--token-file"),
        "{}",
        refused.stderr
    );

    let token = home.path().join("token");
    std::fs::write(&token, "s3cret-token\n").expect("write token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let token_arg = token.to_str().expect("utf-8");
    let refused = home.run(&["serve", "--listen", "0.0.0.0:0", "--token-file", token_arg]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("chmod 600"), "{}", refused.stderr);

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (_server, port) = serve(&home, &["--token-file", token_arg]);
    assert_eq!(get(port, "/api/jobs", None).0, 401);
    assert_eq!(get(port, "/metrics", Some("wrong")).0, 401);
    assert_eq!(get(port, "/metrics", Some("s3cret-token")).0, 200);
    assert_eq!(get(port, "/api/jobs", Some("s3cret-token")).0, 200);
    // Alive needs no token: it says nothing about the home.
    assert_eq!(get(port, "/healthz", None).0, 200);
    let log = std::fs::read_to_string(home.path().join("serve.log")).unwrap_or_default();
    assert!(!log.contains("s3cret"), "{log}");
}

/// A free loopback port (taken and let go: a process started right after can bind it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn a_real_prometheus_scrapes_the_scheduler_and_answers_for_a_jobs_runs_and_failures() {
    if std::process::Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("JOBS_TEST_STRICT").is_none(),
            "prometheus is needed (Debian's prometheus package)"
        );
        eprintln!("skipped: prometheus is not installed");
        return;
    }
    let home = TestHome::new();
    home.spec(
        "flaky.yaml",
        format!("id: flaky\n{EVERY_SECOND}run:\n  shell: \"test $(( $(date +%s) % 2 )) -eq 0\"\n"),
    );
    let scheduler = SchedulerStart::new(home.path())
        .args(&["--listen", "127.0.0.1:0"])
        .start();
    let port = port_in(&home.path().join("scheduler.log"));
    let prometheus_port = free_port();
    let config = home.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: jobs\n    static_configs:\n      - targets: [\"127.0.0.1:{port}\"]\n"
        ),
    )
    .expect("write prometheus.yml");
    let _prometheus = KillOnDrop(
        std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                home.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(home.path().join("prometheus.log")).expect("log file"))
            .spawn()
            .expect("start prometheus"),
    );
    let query = |q: &str| -> Value {
        let encoded: String = q
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        // Prometheus takes a moment to start listening.
        let Ok(stream) = TcpStream::connect(("127.0.0.1", prometheus_port)) else {
            return Value::Null;
        };
        let (status, body) = get_on(stream, &format!("/api/v1/query?query={encoded}"), None);
        if status == 200 {
            json(&body)
        } else {
            Value::Null
        }
    };
    let first_value = |answer: &Value| -> Option<f64> {
        answer["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
    };
    let mut failures = None;
    wait_until("prometheus to have scraped runs and failures", 60, || {
        let runs = first_value(&query("sum(jobs_runs_finished_total{job_id=\"flaky\"})"));
        failures = first_value(&query(
            "jobs_runs_finished_total{job_id=\"flaky\",status=\"failed\"}",
        ));
        runs.is_some_and(|n| n >= 2.0) && failures.is_some_and(|n| n >= 1.0)
    });
    // The target is up, and the series keep our label (not `exported_job`).
    let up = query("up{job=\"jobs\"}");
    assert_eq!(first_value(&up), Some(1.0), "{up}");
    let state = query("jobs_job_state{job_id=\"flaky\",state=\"active\"}");
    assert_eq!(first_value(&state), Some(1.0), "{state}");
    let stale = query("time() - jobs_last_success_timestamp_seconds{job_id=\"flaky\"} < 60");
    assert!(
        first_value(&stale).is_some(),
        "the one-line alert reads: {stale}"
    );
    assert_eq!(stop(scheduler), 0);
}

#[test]
fn config_yaml_says_where_to_listen_when_no_flag_does() {
    let home = TestHome::new();
    home.spec("a.yaml", "id: a\nrun:\n  command: [\"true\"]\n");
    std::fs::write(
        home.path().join("config.yaml"),
        "server:\n  listen: 127.0.0.1:0\n",
    )
    .expect("write config.yaml");
    let (child, port) = spawn_serve(&home, &[]);
    let (status, body) = get(port, "/api/jobs", None);
    assert_eq!(status, 200, "{body}");
    drop(child);

    // The same rules as the flags: an address others can reach needs a private token file.
    std::fs::write(
        home.path().join("config.yaml"),
        "server:\n  listen: 0.0.0.0:0\n",
    )
    .expect("write config.yaml");
    let refused = home.run(&["serve"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("config.yaml server:"),
        "{}",
        refused.stderr
    );
    std::fs::write(home.path().join("token"), "s3cret-token\n").expect("token");
    std::fs::set_permissions(
        home.path().join("token"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    std::fs::write(
        home.path().join("config.yaml"),
        "server:\n  listen: 127.0.0.1:0\n  token_file: token\n",
    )
    .expect("write config.yaml");
    let (child, port) = spawn_serve(&home, &[]);
    assert_eq!(get(port, "/api/jobs", None).0, 401);
    assert_eq!(get(port, "/api/jobs", Some("s3cret-token")).0, 200);
    drop(child);

    // A listen address that is not one is a problem with its position, as any other.
    std::fs::write(
        home.path().join("config.yaml"),
        "server:\n  listen: localhost\n",
    )
    .expect("write config.yaml");
    let checked = home.run(&["validate"]);
    assert_ne!(checked.code, 0);
    assert!(
        format!("{}{}", checked.stdout, checked.stderr).contains("config.yaml:2:3"),
        "{}{}",
        checked.stdout,
        checked.stderr
    );
    // Nothing to listen on: serve says what to give.
    std::fs::remove_file(home.path().join("config.yaml")).expect("remove config.yaml");
    let refused = home.run(&["serve"]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("give --listen"),
        "{}",
        refused.stderr
    );
}

#[test]
fn a_client_that_never_finishes_its_request_is_let_go() {
    let home = TestHome::new();
    let (_serve, port) = serve(&home, &[]);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream
        .write_all(b"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("send half a request");
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let read = stream.read_to_end(&mut rest);
    assert!(read.is_ok(), "the server closed the connection: {read:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "closed after {:?}",
        started.elapsed()
    );
    // And it still answers everyone else.
    assert_eq!(get(port, "/healthz", None).0, 200);
}

/// Replaces the file at `path` with a FIFO, as a hostile or careless hand might: whoever opens it to
/// read waits for a writer that never comes.
pub(crate) fn plant_fifo(path: &std::path::Path) {
    let _ = std::fs::remove_file(path);
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .expect("mkfifo");
}

#[test]
fn a_fifo_planted_in_a_run_directory_holds_no_request_and_no_exit() {
    // doomed#1 is left running by an owner killed with SIGKILL: the first read settles it.
    let home = crate::common::killed_run();
    home.spec("j.yaml", "id: j\nrun:\n  shell: \"echo hi\"\n");
    assert_eq!(home.run(&["run", "j"]).code, 0);
    for name in [
        "events.jsonl",
        "stdout.log",
        "summary.md",
        "run_receipt.json",
    ] {
        plant_fifo(&home.run_dir("j", 1).join(name));
    }
    for name in ["events.jsonl", "run_receipt.json"] {
        plant_fifo(&home.run_dir("doomed", 1).join(name));
    }
    let (serve, port) = serve(&home, &[]);
    let started = std::time::Instant::now();

    // Settling the dead run reads its events and receipt: refused, so it is settled on what the
    // store knows.
    let (status, body) = get(port, "/api/jobs/doomed/runs/1", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json(&body)["data"]["run"]["status"],
        "interrupted",
        "{body}"
    );
    // The page is drawn without what it cannot read.
    let (status, html) = get(port, "/jobs/j/runs/1", None);
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("succeeded"), "{html}");
    // The events themselves are an error, and say why.
    let (status, body) = get(port, "/api/jobs/j/runs/1/events", None);
    assert_eq!(status, 500, "{body}");
    let error = &json(&body)["error"];
    assert_eq!(error["code"], "io_error", "{body}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("not a regular file")),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "answered after {:?}",
        started.elapsed()
    );
    // No thread is left waiting on a FIFO, so the server exits at once.
    let stopping = std::time::Instant::now();
    assert_eq!(stop(serve), 0);
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "exited after {:?}",
        stopping.elapsed()
    );
}

/// A request for the live event stream of `path`, sent; the connection to read it from.
fn stream_request(port: u16, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    stream
}

/// Reads `stream` into `read` until it closes or `until` has arrived, for at most `seconds`; whether
/// it closed.
fn read_stream(
    stream: &mut TcpStream,
    read: &mut String,
    until: Option<&str>,
    seconds: u64,
) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut buffer = [0_u8; 4096];
    loop {
        if until.is_some_and(|text| read.contains(text)) || std::time::Instant::now() >= deadline {
            return false;
        }
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(n) => read.push_str(&String::from_utf8_lossy(&buffer[..n])),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
}

#[test]
fn runs_that_ended_without_a_finished_event_are_not_live_and_their_streams_end() {
    // doomed#1's owner was killed; the scheduler's start settles it.
    let home = crate::common::killed_run();
    home.spec(
        "p.yaml",
        format!("id: p\n{EVERY_SECOND}run:\n  command: [\"true\"]\n"),
    );
    assert_eq!(home.run(&["pause", "p"]).code, 0);
    let scheduler = SchedulerStart::new(home.path()).start();
    wait_until("a slot skipped while paused", 15, || {
        home.count("SELECT COUNT(*) FROM runs WHERE job_id = 'p' AND status = 'skipped'") >= 1
    });
    assert_eq!(stop(scheduler), 0);
    assert_eq!(home.run_row("doomed", 1).0, "interrupted");
    // As if the settling could not write its end into the events (a full disk, say).
    let events = home.run_dir("doomed", 1).join("events.jsonl");
    let kept: String = std::fs::read_to_string(&events)
        .expect("events")
        .lines()
        .filter(|line| !line.contains("\"run_finished\""))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&events, kept).expect("rewrite the events");
    let skipped = home.count("SELECT MIN(seq) FROM runs WHERE job_id = 'p' AND status = 'skipped'");
    let (_serve, port) = serve(&home, &[]);
    for run in [format!("p/runs/{skipped}"), "doomed/runs/1".to_owned()] {
        let (status, html) = get(port, &format!("/jobs/{run}"), None);
        assert_eq!(status, 200, "{run}: {html}");
        assert!(html.contains("data-live=\"false\""), "{run}: {html}");
        let mut stream = stream_request(port, &format!("/api/jobs/{run}/events"));
        let mut said = String::new();
        let closed = read_stream(&mut stream, &mut said, None, 10);
        assert!(closed, "{run}: the stream is still open: {said}");
        assert!(said.contains("event: end"), "{run}: {said}");
    }
}

#[test]
fn a_stream_ends_when_its_run_is_settled_after_its_owner_died() {
    let home = TestHome::new();
    home.spec(
        "m.yaml",
        "id: m\nrun:\n  shell: \"echo $$ > shell.pid; echo started; sleep 30\"\n",
    );
    let mut owner = KillOnDrop(home.command(&["run", "m"]).spawn().expect("run m"));
    wait_until("m#1 running", 10, || {
        home.path().join("shell.pid").exists()
            && std::fs::read_to_string(home.run_dir("m", 1).join("events.jsonl"))
                .is_ok_and(|events| events.contains("\"attempt_started\""))
    });
    let (_serve, port) = serve(&home, &[]);
    let mut stream = stream_request(port, "/api/jobs/m/runs/1/events");
    let mut said = String::new();
    assert!(
        !read_stream(&mut stream, &mut said, Some("attempt_started"), 10),
        "the stream of a running run stays open: {said}"
    );
    // The owner dies without a word; nothing but the stream's own look at the store will notice.
    owner.kill().expect("SIGKILL the owner");
    owner.wait().expect("reap");
    let shell: i32 = std::fs::read_to_string(home.path().join("shell.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    let _ = rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(shell).expect("pid"),
        rustix::process::Signal::KILL,
    );
    let closed = read_stream(&mut stream, &mut said, None, 10);
    assert!(closed, "the stream is still open: {said}");
    assert!(said.contains("event: end"), "{said}");
    assert_eq!(home.run_row("m", 1).0, "interrupted");
}

#[test]
fn a_stop_ends_live_streams_cleanly_and_does_not_wait_long_for_anyone() {
    let home = TestHome::new();
    home.spec(
        "w.yaml",
        "id: w\nrun:\n  shell: \"echo started; while test ! -e go; do sleep 0.1; done\"\n",
    );
    let mut run = KillOnDrop(home.command(&["run", "w"]).spawn().expect("run w"));
    wait_until("w#1 running", 10, || {
        std::fs::read_to_string(home.run_dir("w", 1).join("events.jsonl"))
            .is_ok_and(|events| events.contains("\"attempt_started\""))
    });
    let (serve, port) = serve(&home, &[]);
    let mut stream = stream_request(port, "/api/jobs/w/runs/1/events");
    let mut said = String::new();
    assert!(
        !read_stream(&mut stream, &mut said, Some("attempt_started"), 10),
        "the stream of a running run stays open: {said}"
    );
    // A client that connected and asked nothing does not hold the stop either.
    let _idle = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let stopping = std::time::Instant::now();
    crate::common::signal(&serve, rustix::process::Signal::TERM);
    let closed = read_stream(&mut stream, &mut said, None, 10);
    assert!(closed, "the stream is still open after the stop: {said}");
    // The response was finished, not cut: its body's last chunk was sent.
    assert!(said.ends_with("\r\n0\r\n\r\n"), "{said:?}");
    assert!(
        !said.contains("event: end"),
        "the run has not ended: {said}"
    );
    let mut serve = serve;
    assert_eq!(crate::common::wait_exit(&mut serve, 10).code(), Some(0));
    assert!(
        stopping.elapsed() < Duration::from_secs(7),
        "exited after {:?}",
        stopping.elapsed()
    );
    std::fs::write(home.path().join("go"), "").expect("let the run end");
    assert!(crate::common::wait_exit(&mut run, 10).success());
}

/// A GET's whole answer, its head's names lowercased.
fn answer_of(port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_ascii_lowercase(), body.to_owned())
}

#[test]
fn a_path_or_query_that_does_not_fit_is_a_bad_request_in_the_routes_own_kind() {
    let home = TestHome::new();
    home.spec("report.yaml", "id: report\nrun:\n  command: [\"true\"]\n");
    assert_eq!(home.run(&["run", "report"]).code, 0);
    let (_serve, port) = serve(&home, &[]);
    // What every other API error looks like, to compare with.
    let (_, usage) = get(port, "/api/jobs/report/runs?status=nonsense", None);
    let usage = json(&usage);
    let keys = |v: &Value| -> Vec<String> {
        let mut keys: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    };
    for (path, said) in [
        (
            "/api/jobs/report/runs/notanumber",
            "`notanumber` in the path is not a whole number",
        ),
        (
            "/api/jobs/report/runs/notanumber/events",
            "`notanumber` in the path",
        ),
        (
            "/api/jobs/report/runs?limit=abc",
            "the query does not fit the route: limit",
        ),
        (
            "/api/jobs/report/runs?before=x",
            "the query does not fit the route: before",
        ),
        (
            "/api/jobs/report/runs/1/events?from=-1",
            "the query does not fit the route: from",
        ),
    ] {
        let (head, body) = answer_of(port, path);
        assert!(head.starts_with("http/1.1 400"), "{path}: {head}\n{body}");
        assert!(
            head.contains("content-type: application/json"),
            "{path}: {head}"
        );
        let answer = json(&body);
        assert_eq!(answer["ok"], false, "{path}: {body}");
        assert_eq!(answer["error"]["code"], "bad_request", "{path}: {body}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(said), "{path}: {message}");
        assert!(answer["error"]["hint"].is_string(), "{path}: {body}");
        assert_eq!(keys(&answer), keys(&usage), "{path}: {body}");
        assert_eq!(
            keys(&answer["error"]),
            keys(&usage["error"]),
            "{path}: {body}"
        );
    }
    // A page answers with an error page, as its other errors do.
    for (path, said) in [
        (
            "/jobs/report/runs/notanumber",
            "`notanumber` in the path is not a whole number",
        ),
        (
            "/jobs/report?before=abc",
            "the query does not fit the route: before",
        ),
    ] {
        let (head, body) = answer_of(port, path);
        assert!(head.starts_with("http/1.1 400"), "{path}: {head}\n{body}");
        assert!(head.contains("content-type: text/html"), "{path}: {head}");
        assert!(
            head.contains("content-security-policy: default-src 'none'"),
            "{path}: {head}"
        );
        assert!(body.contains("<h1>bad request</h1>"), "{path}: {body}");
        assert!(body.contains(said), "{path}: {body}");
    }
}
