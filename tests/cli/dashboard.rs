//! The dashboard in a real browser: the scheduler of a home serves it on a loopback port, and
//! Debian's Chromium, driven by `tests/browser/dashboard.mjs` (playwright-core), looks at the job
//! list, a job page, the graph of jobs triggering jobs, a run whose output appears live and then
//! ends without a reload, and a job that prints markup. Also the pages' answers over plain HTTP:
//! escaping, the content policy, the graph's boxes and curves, 404s.
//!
//! Needs `node`, Chromium and `npm ci` in `tests/browser` (`.ci/run` sees to all three); without them
//! the browser test skips, and fails under `JOBS_TEST_STRICT`. With `JOBS_UPDATE_SCREENSHOTS=1` the
//! screenshots go to `docs/screenshots/` for the README.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{SchedulerStart, TestHome, stop, wait_until};
use crate::common::{get, port_in};

const EVERY_SECOND: &str = "schedule:\n  cron: \"* * * * * *\"\n  timezone: UTC\n";

/// A job whose description and output are markup that must stay text.
const HOSTILE: &str = "id: hostile\ndescription: \"prints <script>alert(1)</script> on purpose\"\nrun:\n  shell: \"echo '<script>alert(1)</script>'; echo '<img src=x onerror=alert(2)>'; exit 1\"\n";

/// A home with some history: a job that succeeds every second, one that fails every other second,
/// the hostile one run once, and a manual one that prints a line every half second.
fn dashboard_home() -> TestHome {
    let home = TestHome::new();
    home.spec(
        "backup.yaml",
        format!("id: backup\ndescription: nightly database backup\n{EVERY_SECOND}run:\n  command: [\"true\"]\n"),
    );
    home.spec(
        "flaky.yaml",
        format!(
            "id: flaky\ndescription: fails every other run\n{EVERY_SECOND}run:\n  shell: \"if test -e odd; then rm odd; exit 3; else touch odd; fi\"\n"
        ),
    );
    home.spec("hostile.yaml", HOSTILE);
    home.spec(
        "notice.yaml",
        "id: notice\ndescription: runs after each failure of flaky\nafter:\n  - job: flaky\n    on: [failed]\nrun:\n  command: [\"true\"]\n",
    );
    home.spec(
        "ticker.yaml",
        "id: ticker\ndescription: prints a line every half second\nrun:\n  shell: \"while test ! -e go; do sleep 0.1; done; for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 0.5; done\"\n",
    );
    assert_eq!(home.run(&["run", "hostile"]).code, 1);
    home
}

/// `jobsctl run ticker` in the background, once its run has begun writing events.
fn start_ticker(home: &TestHome) -> crate::common::KillOnDrop {
    let ticker = home
        .command(&["run", "ticker"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(crate::common::KillOnDrop)
        .expect("start the ticker");
    wait_until("the ticker to start", 10, || {
        home.run_dir("ticker", 1).join("events.jsonl").exists()
    });
    ticker
}

fn browser_ready() -> Option<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = [
        (!node).then_some("node"),
        (!Path::new(&chromium).exists()).then_some("chromium"),
        (!dir
            .join("node_modules/playwright-core/package.json")
            .exists())
        .then_some("playwright-core (npm ci in tests/browser)"),
    ];
    let missing: Vec<&str> = missing.into_iter().flatten().collect();
    if missing.is_empty() {
        return Some((dir, chromium));
    }
    assert!(
        std::env::var_os("JOBS_TEST_STRICT").is_none(),
        "the browser test needs {}",
        missing.join(", ")
    );
    eprintln!("skipped: the browser test needs {}", missing.join(", "));
    None
}

#[test]
fn the_dashboard_in_a_real_browser_shows_jobs_live_output_and_escaped_markup() {
    let Some((browser_dir, chromium)) = browser_ready() else {
        return;
    };
    let home = dashboard_home();
    let scheduler = SchedulerStart::new(home.path())
        .args(&["--listen", "127.0.0.1:0"])
        .start();
    let port = port_in(&home.path().join("scheduler.log"));
    // Some history for the strips.
    wait_until("a few scheduled runs", 20, || {
        home.count("SELECT COUNT(*) FROM runs WHERE job_id = 'flaky' AND status = 'failed'") >= 2
    });
    let mut ticker = start_ticker(&home);
    let shots = match std::env::var_os("JOBS_UPDATE_SCREENSHOTS") {
        Some(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots"),
        None => home.path().join("screenshots"),
    };
    std::fs::create_dir_all(&shots).expect("a screenshot directory");
    let output = std::process::Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .arg(format!("http://127.0.0.1:{port}"))
        .args(["ticker", "hostile", "flaky"])
        .arg(&shots)
        .arg(home.path().join("go"))
        .env("CHROMIUM", chromium)
        .output()
        .expect("run node");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(said.trim()).expect("the report");
    assert_eq!(report["ok"], true, "{report:#}");
    for shot in ["jobs.png", "job.png", "run.png", "graph.png"] {
        let bytes = std::fs::read(shots.join(shot)).expect("a screenshot");
        assert!(bytes.starts_with(b"\x89PNG"), "{shot} is a PNG");
    }
    assert!(crate::common::wait_exit(&mut ticker, 30).success());
    assert_eq!(stop(scheduler), 0);
}

#[test]
fn pages_escape_what_jobs_wrote_and_forbid_inline_scripts() {
    let home = dashboard_home();
    let (mut serve, port) = crate::common::serve(&home, &[]);
    let (status, html) = get(port, "/jobs/hostile", None);
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("prints &#60;script&#62;alert(1)&#60;/script&#62; on purpose"),
        "{html}"
    );
    assert!(!html.contains("<script>alert"), "{html}");
    let (status, html) = get(port, "/jobs/hostile/runs/1", None);
    assert_eq!(status, 200);
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(
        html.contains("&#60;img src=x onerror=alert(2)&#62;"),
        "{html}"
    );
    // The only script is the page's own file.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(html.contains("<script src=\"/assets/live.js\"></script>"));
    let head = raw_head(port, "/jobs/hostile/runs/1");
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    // Without a scheduler the list says so; a finished run is not live.
    let (_, list) = get(port, "/", None);
    assert!(list.contains("no scheduler running"), "{list}");
    assert!(html.contains("data-live=\"false\""), "{html}");
    // Nothing outside the routes, encoded or not.
    for path in [
        "/jobs/nope",
        "/jobs/hostile/runs/99",
        "/jobs/..%2F..%2Fetc%2Fpasswd",
        "/jobs/hostile/runs/1/..%2F..%2F..%2Fdb",
        "/assets/..%2FCargo.toml",
        "/assets/",
        "/runs/hostile/1/events.jsonl",
    ] {
        let (status, _) = get(port, path, None);
        assert_eq!(status, 404, "{path}");
    }
    serve.kill().expect("stop serve");
}

#[test]
fn the_graph_page_draws_each_job_and_edge_and_the_job_page_links_them() {
    let home = TestHome::new();
    home.spec("extract.yaml", crate::common::manual_spec("extract"));
    home.spec("extract-eu.yaml", crate::common::manual_spec("extract-eu"));
    home.spec(
        "transform.yaml",
        "id: transform\nafter:\n  - job: extract\nrun:\n  command: [\"true\"]\n",
    );
    home.spec(
        "alert.yaml",
        "id: alert\nafter:\n  - job: transform\n    on: [failed, timed_out]\nrun:\n  command: [\"true\"]\n",
    );
    home.spec(
        "merge.yaml",
        "id: merge\nafter_all: [extract, extract-eu]\nrun:\n  command: [\"true\"]\n",
    );
    home.spec("alone.yaml", crate::common::manual_spec("alone"));
    let (mut serve, port) = crate::common::serve(&home, &[]);
    let (status, api) = get(port, "/api/graph", None);
    assert_eq!(status, 200, "{api}");
    let api: serde_json::Value = serde_json::from_str(&api).expect("JSON");
    assert_eq!(
        api["data"]["edges"].as_array().map(Vec::len),
        Some(4),
        "{api:#}"
    );

    let (status, html) = get(port, "/graph", None);
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<svg class=\"graph\""), "{html}");
    // A box per job on an edge (a job on none is not drawn), a curve per edge.
    for job in ["extract", "extract-eu", "transform", "alert", "merge"] {
        assert_eq!(
            html.matches(&format!(
                "<a href=\"/jobs/{job}\" class=\"node active\" data-job=\"{job}\">"
            ))
            .count(),
            1,
            "{job}: {html}"
        );
    }
    assert!(!html.contains("data-job=\"alone\""), "{html}");
    assert_eq!(html.matches("<path class=\"edge").count(), 4, "{html}");
    assert_eq!(
        html.matches("<path class=\"edge all\"").count(),
        2,
        "{html}"
    );
    assert!(html.contains(">failed, timed_out</text>"), "{html}");
    // Columns follow the chain: extract left of transform left of alert.
    let x_of = |job: &str| -> u32 {
        let start = html
            .find(&format!("data-job=\"{job}\">"))
            .expect("the job's box");
        let rect = &html[start..];
        let at = rect.find("<rect x=\"").expect("its rect") + 9;
        rect[at..]
            .split('"')
            .next()
            .and_then(|x| x.parse().ok())
            .expect("a number")
    };
    assert!(x_of("extract") < x_of("transform") && x_of("transform") < x_of("alert"));
    assert!(html.contains("<table class=\"edges\""));
    let head = raw_head(port, "/graph");
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );

    // The job page names its upstream and downstream jobs as links.
    let (_, page) = get(port, "/jobs/transform", None);
    assert!(
        page.contains(
            "<dd class=\"upstream\"><a href=\"/jobs/extract\">extract</a> (on succeeded)</dd>"
        ),
        "{page}"
    );
    assert!(
        page.contains(
            "<dd class=\"downstream\"><a href=\"/jobs/alert\">alert</a> (on failed, timed_out)</dd>"
        ),
        "{page}"
    );
    serve.kill().expect("stop serve");
}

#[test]
fn a_graph_page_with_no_edges_says_so() {
    let home = TestHome::new();
    home.spec("alone.yaml", crate::common::manual_spec("alone"));
    let (mut serve, port) = crate::common::serve(&home, &[]);
    let (status, html) = get(port, "/graph", None);
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("No job is triggered by another"), "{html}");
    assert!(!html.contains("<svg"), "{html}");
    serve.kill().expect("stop serve");
}

#[test]
fn a_runs_events_stream_live_until_it_ends_then_the_stream_closes() {
    let home = dashboard_home();
    let (mut serve, port) = crate::common::serve(&home, &[]);
    let mut ticker = start_ticker(&home);
    std::fs::write(home.path().join("go"), "").expect("let the ticker go");
    let started = std::time::Instant::now();
    let stream = raw_get(
        port,
        "/api/jobs/ticker/runs/1/events",
        "Accept: text/event-stream\r\n",
    );
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "the stream stayed open while the run went on"
    );
    assert!(
        stream.contains("content-type: text/event-stream"),
        "{stream}"
    );
    let ticks: Vec<&str> = stream
        .lines()
        .filter(|l| l.contains("\"type\":\"output\""))
        .collect();
    assert_eq!(ticks.len(), 8, "every line once: {stream}");
    assert!(stream.contains("event: end"), "{stream}");
    assert!(crate::common::wait_exit(&mut ticker, 30).success());
    // Resuming after the last event sends nothing but the end.
    let last_id = stream
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("an event id");
    let resumed = raw_get(
        port,
        "/api/jobs/ticker/runs/1/events",
        &format!("Accept: text/event-stream\r\nLast-Event-ID: {last_id}\r\n"),
    );
    assert!(!resumed.contains("\"type\":\"output\""), "{resumed}");
    // Without asking for a stream, the same route answers the lines so far.
    let (status, lines) = get(port, "/api/jobs/ticker/runs/1/events", None);
    assert_eq!(status, 200);
    assert!(lines.lines().count() >= 10, "{lines}");
    serve.kill().expect("stop serve");
}

/// The response head of a GET, header names lowercased.
fn raw_head(port: u16, path: &str) -> String {
    let whole = raw_get(port, path, "");
    whole
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// A GET with extra header lines, read to the end; the head's names lowercased.
fn raw_get(port: u16, path: &str, headers: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read");
    let text = String::from_utf8_lossy(&answer).into_owned();
    match text.split_once("\r\n\r\n") {
        Some((head, body)) => format!("{}\r\n\r\n{body}", head.to_ascii_lowercase()),
        None => text,
    }
}
