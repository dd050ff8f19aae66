//! Cluster torture: three schedulers (three homes with the same specs, one PostgreSQL database,
//! `--lease 2s`) run jobs due every second while the leader is killed with SIGKILL (and started
//! again) or frozen with SIGSTOP for longer than its lease (and let wake), round after round. What
//! must hold afterwards: no (job, slot) twice, no two processes of a `max_instances: 1` job alive
//! at once (from the processes' own start and end times), every slot of every job accounted for,
//! nothing left in flight, the slots right after each failover started within two leases, the
//! runs spread over more than one node, and a run executed on one node read by `tail` from another.
//!
//! Needs the PostgreSQL server `JOBS_TEST_PG_URL` names (`.ci/postgres`); skipped without one unless
//! `JOBS_TEST_STRICT` is set. `JOBS_CLUSTER_ROUNDS` sets the number of kill-and-freeze rounds (2 by
//! default, so that `cargo test` stays quick).

#![expect(
    clippy::expect_used,
    reason = "a test helper that cannot set up must fail the test loudly"
)]

#[expect(
    dead_code,
    reason = "the cluster test needs only part of the shared builder"
)]
#[path = "cli/common.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use serde_json::Value;

use common::{KillOnDrop, SchedulerStart, TestHome, fresh_pg_database, signal, wait_exit};

const LEASE_MS: i64 = 2_000;
const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// Appends the process's own start and end (nanoseconds since the epoch) to the log it is given,
/// also when it is stopped with SIGTERM, as a dead owner's leftovers are.
/// Its stderr goes nowhere: a run whose scheduler was killed writes into a pipe no one reads, and
/// the shell's "Terminated" notice there would end it by SIGPIPE before it logs its end.
const PROBE: &str = r#"#!/bin/sh
exec 2>/dev/null
log="$1"
echo "$JOBS_JOB_ID $JOBS_RUN_SEQ start $(date +%s%N) $$" >> "$log"
trap 'echo "$JOBS_JOB_ID $JOBS_RUN_SEQ end $(date +%s%N) $$" >> "$log"; exit 143' TERM INT
sleep "$2" &
wait $!
echo "$JOBS_JOB_ID $JOBS_RUN_SEQ end $(date +%s%N) $$" >> "$log"
"#;

/// Three jobs due every second, each of one instance: short, slower than its period (its slots
/// overlap and are skipped), and instant.
fn specs(probe: &Path, log: &Path) -> Vec<(&'static str, String)> {
    let job = |id: &str, sleep: &str| {
        format!(
            "id: {id}\nschedule:\n  every: 1s\nrun:\n  command: [\"{}\", \"{}\", \"{sleep}\"]\n  kill_grace: 1s\npolicy:\n  max_instances: 1\n  overlap: skip\n",
            probe.display(),
            log.display()
        )
    };
    vec![
        ("short", job("short", "0.3")),
        ("slow", job("slow", "1.5")),
        ("instant", job("instant", "0")),
    ]
}

struct Node {
    name: &'static str,
    home: TestHome,
    process: Option<KillOnDrop>,
    /// Every pid this node's schedulers had, for telling which node owned a run.
    pids: Vec<u32>,
}

impl Node {
    /// A node not started yet, in a home of its own with these specs (`(id, yaml)`).
    fn with_specs(name: &'static str, specs: &[(&str, String)]) -> Self {
        let home = TestHome::new();
        for (id, spec) in specs {
            home.spec(&format!("{id}.yaml"), spec);
        }
        Self {
            name,
            home,
            process: None,
            pids: Vec::new(),
        }
    }
}

fn start(node: &mut Node, url: &str) {
    start_with(node, url, &[]);
}

/// As [`start`], with more of the scheduler's options.
fn start_with(node: &mut Node, url: &str, extra: &[&str]) {
    // A node killed a moment ago keeps its name until its heartbeat is a lease old: a start that
    // comes too early is refused (`node_name_taken`) and tried again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut args = vec![
            "--node",
            node.name,
            "--lease",
            "2s",
            "--node-dead-after",
            "4s",
        ];
        args.extend_from_slice(extra);
        let mut child = SchedulerStart::new(node.home.path())
            .append()
            .env("JOBS_STORE", url)
            .args(&args)
            .start();
        let started = Instant::now();
        let mut refused = false;
        while started.elapsed() < Duration::from_millis(1500) {
            if child.try_wait().expect("poll").is_some() {
                refused = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !refused {
            node.pids.push(child.id());
            node.process = Some(child);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} could not start: {}",
            node.name,
            log(&node.home)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn log(home: &TestHome) -> String {
    std::fs::read_to_string(home.path().join("scheduler.log")).unwrap_or_default()
}

/// The node that holds a live lease, as `status` shows it from the first home.
fn leader(nodes: &[Node], url: &str) -> Option<usize> {
    let out = nodes[0]
        .home
        .command(&["--json", "status"])
        .env("JOBS_STORE", url)
        .output()
        .expect("status");
    let doc: Value = serde_json::from_slice(&out.stdout).ok()?;
    let leader = &doc["data"]["leader"];
    if leader["remaining_ms"].as_i64()? <= 0 {
        return None;
    }
    let name = leader["node"].as_str()?;
    nodes.iter().position(|n| n.name == name)
}

fn wait_for_leader(nodes: &[Node], url: &str, not: Option<usize>) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(at) = leader(nodes, url)
            && Some(at) != not
        {
            return at;
        }
        assert!(Instant::now() < deadline, "no new leader within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn query(url: &str, sql: &str) -> Vec<postgres::Row> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    client.query(sql, &[]).expect("query")
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("ms")
}

#[test]
fn three_nodes_survive_their_leader_killed_and_frozen() {
    let Some(url) = fresh_pg_database() else {
        return;
    };
    let rounds: u32 = std::env::var("JOBS_CLUSTER_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    let shared = tempfile::tempdir().expect("tempdir");
    let probe = shared.path().join("probe.sh");
    let processes = shared.path().join("processes.log");
    std::fs::write(&probe, PROBE).expect("probe");
    std::fs::set_permissions(&probe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let mut nodes: Vec<Node> = NODES
        .iter()
        .map(|name| Node::with_specs(name, &specs(&probe, &processes)))
        .collect();
    for node in &mut nodes {
        start(node, &url);
    }
    let mut current = wait_for_leader(&nodes, &url, None);
    std::thread::sleep(Duration::from_secs(3));

    // (when the leader went, how) for each failover.
    let mut failovers: Vec<(i64, &str)> = Vec::new();
    for round in 0..rounds * 2 {
        let at = now_ms();
        let child = nodes[current].process.as_mut().expect("running");
        if round % 2 == 0 {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
            nodes[current].process = None;
            failovers.push((at, "killed"));
            let next = wait_for_leader(&nodes, &url, Some(current));
            start(&mut nodes[current], &url);
            current = next;
        } else {
            signal(child, Signal::STOP);
            failovers.push((at, "frozen"));
            let next = wait_for_leader(&nodes, &url, Some(current));
            // Frozen for longer than its lease, then woken with a term that has ended.
            let frozen_for = Duration::from_millis(3_500).saturating_sub(Duration::from_millis(
                u64::try_from(now_ms() - at).unwrap_or(0),
            ));
            std::thread::sleep(frozen_for);
            signal(
                nodes[current].process.as_ref().expect("frozen"),
                Signal::CONT,
            );
            current = next;
        }
        std::thread::sleep(Duration::from_secs(4));
    }
    for node in &mut nodes {
        if let Some(child) = node.process.as_ref() {
            signal(child, Signal::TERM);
        }
    }
    for node in &mut nodes {
        if let Some(mut child) = node.process.take() {
            let status = wait_exit(&mut child, 30);
            assert_eq!(status.code(), Some(0), "{}: {}", node.name, log(&node.home));
        }
    }
    // Runs of a node killed last are settled by whoever looks next.
    let status = nodes[0]
        .home
        .command(&["status"])
        .env("JOBS_STORE", &url)
        .output()
        .expect("status");
    assert!(status.status.code().is_some(), "status ran");

    // 1. No (job, slot) twice, a catch-up's range included; 2. every slot between the first and
    //    the last accounted for: run, skipped or missed.
    let (covered, mut violations) = slot_records(&url);
    // 3. Nothing left in flight.
    let left = query(
        &url,
        "SELECT job_id || '#' || seq || ' ' || status FROM runs WHERE status IN ('queued', 'running')",
    );
    for row in left {
        violations.push(format!("left in flight: {}", row.get::<_, String>(0)));
    }
    // 4. No two processes of one job alive at once, by their own clocks.
    let text = std::fs::read_to_string(&processes).expect("processes log");
    let mut spans: BTreeMap<(String, i64), (Option<i64>, Option<i64>)> = BTreeMap::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let [job, seq, what, ns, _pid] = parts[..] else {
            violations.push(format!("torn probe line {line:?}"));
            continue;
        };
        let key = (job.to_owned(), seq.parse().expect("seq"));
        let at: i64 = ns.parse().expect("ns");
        let span = spans.entry(key).or_default();
        match what {
            "start" => span.0 = Some(at),
            _ => span.1 = Some(at),
        }
    }
    let mut by_job: BTreeMap<&str, Vec<(i64, i64, i64)>> = BTreeMap::new();
    for ((job, seq), (start, end)) in &spans {
        match (start, end) {
            (Some(start), Some(end)) => by_job.entry(job).or_default().push((*start, *end, *seq)),
            _ => violations.push(format!(
                "{job}#{seq}: its process has no start or no end: {start:?} {end:?}"
            )),
        }
    }
    for (job, mut lives) in by_job {
        lives.sort_unstable();
        for pair in lives.windows(2) {
            if pair[1].0 < pair[0].1 {
                violations.push(format!(
                    "{job}: run {} started {} ms before run {} ended",
                    pair[1].2,
                    (pair[0].1 - pair[1].0) / 1_000_000,
                    pair[0].2
                ));
            }
        }
    }
    // 5. The first slot each new leader started after a failover, within two leases of its slot.
    for (at, how) in &failovers {
        let first = query(
            &url,
            &format!(
                "SELECT job_id, seq, slot, started_at FROM runs
                 WHERE started_at IS NOT NULL AND slot IS NOT NULL AND slot > {at}
                 ORDER BY slot, started_at LIMIT 3"
            ),
        );
        if first.is_empty() {
            violations.push(format!(
                "nothing started after the leader was {how} at {at}"
            ));
        }
        for row in first {
            let (job, seq, slot, started): (String, i64, i64, i64) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            eprintln!(
                "after the leader was {how}: {job}#{seq} started {} ms after its slot",
                started - slot
            );
            if started - slot >= 2 * LEASE_MS {
                violations.push(format!(
                    "{job}#{seq}: started {} ms after its slot, after the leader was {how}",
                    started - slot
                ));
            }
        }
    }
    // 6. The runs spread over more than one node.
    let owners: BTreeSet<String> = query(
        &url,
        "SELECT DISTINCT owner FROM runs WHERE started_at IS NOT NULL",
    )
    .iter()
    .map(|row| row.get(0))
    .collect();
    let ran_on: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| {
            n.pids
                .iter()
                .any(|pid| owners.iter().any(|o| o.starts_with(&format!("{pid}@"))))
        })
        .map(|n| n.name)
        .collect();
    if ran_on.len() < 2 {
        violations.push(format!("every run ran on {ran_on:?}"));
    }
    // 7. A run executed on one node, tailed from another node's home: its events come from the
    //    store's mirror, since its directory is on the node that ran it.
    let ran = query(
        &url,
        "SELECT job_id, seq, node FROM runs WHERE status = 'succeeded' AND node IS NOT NULL
         ORDER BY seq DESC LIMIT 1",
    );
    match ran.first() {
        None => violations.push("no succeeded run names its node".into()),
        Some(row) => {
            let (job, seq, node): (String, i64, String) = (row.get(0), row.get(1), row.get(2));
            let reader = nodes.iter().find(|n| n.name != node).expect("another node");
            assert!(
                !reader.home.run_dir(&job, seq).exists(),
                "{job}#{seq} ran on {node}, not in {}'s home",
                reader.name
            );
            let tail = reader
                .home
                .command(&["tail", &job, "--run", &seq.to_string()])
                .env("JOBS_STORE", &url)
                .output()
                .expect("tail");
            let text = String::from_utf8_lossy(&tail.stdout);
            if tail.status.code() != Some(0)
                || !text.contains(&format!("> {job}#{seq} started"))
                || !text.contains(&format!("= {job}#{seq} succeeded"))
            {
                violations.push(format!(
                    "tail of {job}#{seq} (ran on {node}) from {}: exit {:?}\n{text}{}",
                    reader.name,
                    tail.status.code(),
                    String::from_utf8_lossy(&tail.stderr)
                ));
            }
        }
    }
    let runs = spans.len();
    eprintln!(
        "{runs} processes over {} slots of {} jobs, on {ran_on:?}; failovers {failovers:?}",
        covered.values().map(Vec::len).sum::<usize>(),
        covered.len()
    );
    assert!(runs > 20, "only {runs} processes ran");
    assert!(
        violations.is_empty(),
        "{} violation(s) after {failovers:?}:\n{}\n\n{}",
        violations.len(),
        violations.join("\n"),
        nodes
            .iter()
            .map(|n| format!("--- {} ---\n{}", n.name, log(&n.home)))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Each job's slot records: `(first, last, status)`.
type SlotRanges = BTreeMap<String, Vec<(i64, i64, String)>>;

/// Every job's slot records, `(first, last, status)` by job, and what is wrong with them: a slot
/// recorded twice (a catch-up's range included), a slot between the first and the last with no
/// record (run, skipped or missed).
fn slot_records(url: &str) -> (SlotRanges, Vec<String>) {
    let mut violations = Vec::new();
    let mut covered = SlotRanges::new();
    for row in query(
        url,
        "SELECT job_id, COALESCE(first_slot, slot), COALESCE(last_slot, slot), status, owner, started_at, trigger
         FROM runs WHERE slot IS NOT NULL ORDER BY job_id, 2",
    ) {
        let (job, first, last, status): (String, i64, i64, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        covered.entry(job).or_default().push((first, last, status));
    }
    for (job, ranges) in &covered {
        for pair in ranges.windows(2) {
            if pair[1].0 <= pair[0].1 {
                violations.push(format!(
                    "{job}: slots {:?} and {:?} overlap",
                    pair[0], pair[1]
                ));
            }
        }
    }
    for (job, ranges) in &covered {
        let slots: BTreeSet<i64> = ranges
            .iter()
            .flat_map(|(first, last, _)| (*first..=*last).step_by(1000))
            .collect();
        let (Some(first), Some(last)) = (slots.first(), slots.last()) else {
            violations.push(format!("{job}: never ran"));
            continue;
        };
        for slot in (*first..=*last).step_by(1000) {
            if !slots.contains(&slot) {
                violations.push(format!("{job}: slot {slot} has no record"));
            }
        }
    }
    (covered, violations)
}

/// `status --json` from `home`: the document and the exit code.
fn status(home: &TestHome, url: &str) -> (Value, i32) {
    let out = home
        .command(&["--json", "status"])
        .env("JOBS_STORE", url)
        .output()
        .expect("status");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (doc, out.status.code().unwrap_or(-1))
}

fn wait_for(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {seconds} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_node_whose_specs_differ_never_leads_and_a_cancel_reaches_the_node_that_runs_the_run() {
    let Some(url) = fresh_pg_database() else {
        return;
    };
    let long = "id: long\nschedule:\n  every: 1s\nrun:\n  command: [\"sleep\", \"60\"]\n";
    let mut a = Node {
        name: "na",
        home: TestHome::new(),
        process: None,
        pids: Vec::new(),
    };
    let mut b = Node {
        name: "nb",
        home: TestHome::new(),
        process: None,
        pids: Vec::new(),
    };
    a.home.spec("long.yaml", long);
    // b's files are stale: another command.
    b.home
        .spec("long.yaml", long.replace("\"60\"", "\"61\""))
        .spec("extra.yaml", "id: extra\nrun:\n  command: [\"true\"]\n");
    start(&mut a, &url);
    wait_for("a leads", 20, || {
        status(&a.home, &url).0["data"]["leader"]["node"] == "na"
    });
    start(&mut b, &url);
    wait_for("b's heartbeat", 20, || {
        status(&a.home, &url).0["data"]["nodes"]
            .as_array()
            .is_some_and(|n| n.len() == 2)
    });
    let (doc, code) = status(&b.home, &url);
    assert_eq!(code, 0, "a leads: {doc}");
    let nodes = doc["data"]["nodes"].as_array().expect("nodes");
    let of = |name: &str| nodes.iter().find(|n| n["node"] == name).expect("node");
    assert_eq!(of("na")["leader"], true, "{doc}");
    assert_eq!(of("na")["drift"], false, "{doc}");
    assert_eq!(of("nb")["drift"], true, "{doc}");
    assert_eq!(doc["data"]["home_drift"], true, "{doc}");
    // A command in b's home shows the catalog without syncing b's files into it.
    let (list, _) = b.home.json(&["--store", &url, "list"]);
    let ids: Vec<&str> = list["data"]["jobs"]
        .as_array()
        .map(|jobs| jobs.iter().filter_map(|j| j["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["long"], "{list}");

    // A run of `long` executes on one node (b works too, with the spec the run was claimed
    // with, whatever its files say); a cancel from the other node's home reaches it there.
    let mut ran_on = String::new();
    wait_for("a run of long in flight", 20, || {
        ran_on = query(
            &url,
            "SELECT node FROM runs WHERE job_id = 'long' AND status = 'running' AND started_at IS NOT NULL",
        )
        .first()
        .and_then(|row| row.get::<_, Option<String>>(0))
        .unwrap_or_default();
        !ran_on.is_empty()
    });
    let other = if ran_on == "na" { &b } else { &a };
    let cancel = other
        .home
        .command(&["cancel", "long", "--all", "--reason", "from the other node"])
        .env("JOBS_STORE", &url)
        .output()
        .expect("cancel");
    assert_eq!(
        cancel.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&cancel.stdout),
        String::from_utf8_lossy(&cancel.stderr)
    );
    let rows = query(
        &url,
        "SELECT status, message FROM runs WHERE job_id = 'long' AND status = 'cancelled'",
    );
    assert!(!rows.is_empty(), "the run on a was cancelled");
    assert!(
        rows.iter().any(|r| r
            .get::<_, Option<String>>(1)
            .is_some_and(|m| m.contains("from the other node"))),
        "the reason is recorded"
    );

    // The leader stops: b cannot take over with stale files, so no node leads.
    signal(a.process.as_ref().expect("a"), Signal::TERM);
    let mut child = a.process.take().expect("a");
    assert_eq!(
        wait_exit(&mut child, 30).code(),
        Some(0),
        "{}",
        log(&a.home)
    );
    std::thread::sleep(Duration::from_millis(3_000));
    let (doc, code) = status(&b.home, &url);
    assert_eq!(code, 5, "{doc}");
    assert_eq!(doc["error"]["code"], "no_leader", "{doc}");
    // Its files made the catalog's, b is elected within a lease.
    b.home.spec("long.yaml", long).remove_spec("extra.yaml");
    wait_for("b leads once its files are the catalog's", 20, || {
        let (doc, code) = status(&b.home, &url);
        code == 0 && doc["data"]["leader"]["node"] == "nb"
    });
    signal(b.process.as_ref().expect("b"), Signal::TERM);
    let mut child = b.process.take().expect("b");
    assert_eq!(
        wait_exit(&mut child, 30).code(),
        Some(0),
        "{}",
        log(&b.home)
    );
}

#[test]
fn the_runs_of_a_node_killed_outright_are_stopped_by_its_reaper() {
    let Some(url) = fresh_pg_database() else {
        return;
    };
    let mut node = Node {
        name: "nr",
        home: TestHome::new(),
        process: None,
        pids: Vec::new(),
    };
    node.home.spec(
        "long.yaml",
        "id: long\nschedule:\n  every: 1s\nrun:\n  command: [\"sleep\", \"60\"]\n",
    );
    start(&mut node, &url);
    let mut group = None;
    wait_for("the run's process group recorded", 20, || {
        group = query(
            &url,
            "SELECT pgid FROM runs WHERE job_id = 'long' AND status = 'running' AND pgid IS NOT NULL",
        )
        .first()
        .map(|row| row.get::<_, i64>(0));
        group.is_some()
    });
    let pid = i32::try_from(group.expect("group")).expect("pid");
    assert!(common::process_alive(pid), "the run's command runs");
    let mut child = node.process.take().expect("running");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    // No command of this home runs meanwhile: only the reaper can stop the process.
    wait_for("the killed node's run stopped by its reaper", 10, || {
        !common::process_alive(pid)
    });
}

/// Spans `(start, end, seq)` in ns of each job's processes, as the probe logged them.
fn spans(log: &Path) -> BTreeMap<(String, i64), (Option<i64>, Option<i64>)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut spans: BTreeMap<(String, i64), (Option<i64>, Option<i64>)> = BTreeMap::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let [job, seq, what, ns, _pid] = parts[..] else {
            panic!("torn probe line {line:?}");
        };
        let span = spans
            .entry((job.to_owned(), seq.parse().expect("seq")))
            .or_default();
        let at = Some(ns.parse().expect("ns"));
        if what == "start" {
            span.0 = at;
        } else {
            span.1 = at;
        }
    }
    spans
}

#[test]
fn every_node_works_within_its_labels_and_its_limit_of_runs() {
    let Some(url) = fresh_pg_database() else {
        return;
    };
    let shared = tempfile::tempdir().expect("tempdir");
    let probe = shared.path().join("probe.sh");
    let processes = shared.path().join("processes.log");
    std::fs::write(&probe, PROBE).expect("probe");
    std::fs::set_permissions(&probe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let command = |sleep: &str| {
        format!(
            "[\"{}\", \"{}\", \"{sleep}\"]",
            probe.display(),
            processes.display()
        )
    };
    // `wide` keeps about two runs in flight; `gpu` runs only where the label is.
    let wide = format!(
        "id: wide\nschedule:\n  every: 1s\nrun:\n  command: {}\npolicy:\n  max_instances: 3\n",
        command("1.8")
    );
    let gpu = format!(
        "id: gpu\nschedule:\n  every: 1s\nrun:\n  command: {}\n  nodes: [gpu]\n",
        command("0")
    );
    let mut nodes: Vec<Node> = ["plain", "gpu"]
        .iter()
        .map(|name| Node::with_specs(name, &[("wide", wide.clone()), ("gpu", gpu.clone())]))
        .collect();
    start_with(&mut nodes[0], &url, &["--max-runs", "1"]);
    start_with(&mut nodes[1], &url, &["--labels", "gpu", "--max-runs", "2"]);
    wait_for_leader(&nodes, &url, None);
    // From the node that never runs gpu, `tail --forever` follows gpu's runs through the mirror.
    let tail = nodes[0]
        .home
        .command(&["tail", "gpu", "--forever"])
        .env("JOBS_STORE", &url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tail --forever");
    std::thread::sleep(Duration::from_secs(8));
    let mut tail = tail;
    tail.kill().expect("stop tail");
    let followed = tail.wait_with_output().expect("tail output");
    let followed = String::from_utf8_lossy(&followed.stdout);
    let finished: BTreeSet<&str> = followed
        .lines()
        .filter(|l| l.contains(" succeeded"))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("gpu#")))
        .collect();
    assert!(
        finished.len() >= 3,
        "tail --forever followed several runs of another node: {followed}"
    );
    let (doc, code) = status(&nodes[0].home, &url);
    assert_eq!(code, 0, "{doc}");
    let labels: BTreeMap<String, Value> = doc["data"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap_or("").to_owned(),
                n["labels"].clone(),
            )
        })
        .collect();
    assert_eq!(
        labels.get("gpu"),
        Some(&serde_json::json!(["gpu"])),
        "{doc}"
    );
    assert_eq!(labels.get("plain"), Some(&serde_json::json!([])), "{doc}");
    assert_eq!(doc["data"]["unplaced"], serde_json::json!([]), "{doc}");
    // The only node with the label leaves: status says that gpu's runs now wait for one.
    for index in [1, 0] {
        let node = &mut nodes[index];
        let mut child = node.process.take().expect("running");
        signal(&child, Signal::TERM);
        let exit = wait_exit(&mut child, 30);
        assert_eq!(exit.code(), Some(0), "{}: {}", node.name, log(&node.home));
        if index == 1 {
            wait_for("status to say gpu's runs have no node", 10, || {
                status(&nodes[0].home, &url).0["data"]["unplaced"]
                    == serde_json::json!([{ "job_id": "gpu", "labels": ["gpu"] }])
            });
        }
    }
    let logs = || {
        nodes
            .iter()
            .map(|n| format!("--- {} ---\n{}", n.name, log(&n.home)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let ran: BTreeMap<(String, i64), String> = query(
        &url,
        "SELECT job_id, seq, node FROM runs WHERE started_at IS NOT NULL",
    )
    .iter()
    .map(|row| {
        (
            (row.get(0), row.get(1)),
            row.get::<_, Option<String>>(2).unwrap_or_default(),
        )
    })
    .collect();
    let on = |job: &str, node: &str| {
        ran.iter()
            .filter(|((j, _), n)| j == job && n.as_str() == node)
            .count()
    };
    assert!(on("gpu", "gpu") >= 4, "{ran:?}\n{}", logs());
    assert_eq!(
        on("gpu", "plain"),
        0,
        "a run asking for gpu ran without it: {ran:?}"
    );
    assert!(
        on("wide", "plain") >= 1 && on("wide", "gpu") >= 1,
        "wide ran on both nodes: {ran:?}\n{}",
        logs()
    );
    let left = query(
        &url,
        "SELECT job_id || '#' || seq || ' ' || status || ' ' || owner FROM runs WHERE status IN ('queued', 'running')",
    );
    assert!(
        left.is_empty(),
        "left in flight: {:?}",
        left.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    );
    // A run executed on one node, read and replayed from the other node's home: its events and
    // receipt come from the store's mirror.
    let (job, seq) = ran
        .iter()
        .find(|((job, _), node)| job == "gpu" && node.as_str() == "gpu")
        .map(|((job, seq), _)| (job.clone(), *seq))
        .expect("a gpu run");
    let reader = &nodes[0].home;
    assert!(
        !reader.run_dir(&job, seq).exists(),
        "not in the plain node's home"
    );
    let (_server, port) = common::serve(reader, &["--store", &url]);
    let (code, body) = common::get(port, &format!("/api/jobs/{job}/runs/{seq}/events"), None);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.lines().any(|l| l.contains("\"run_finished\"")),
        "the mirrored events, to their end: {body}"
    );
    let replay = reader
        .command(&["--json", "replay", &job, "--run", &seq.to_string()])
        .env("JOBS_STORE", &url)
        .output()
        .expect("replay");
    let text = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(
        replay.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let replayed = query(
        &url,
        &format!(
            "SELECT COUNT(*) FROM runs WHERE job_id = '{job}' AND trigger = 'replay' AND replay_of = {seq}"
        ),
    );
    assert_eq!(replayed[0].get::<_, i64>(0), 1, "{text}");
    // No slot twice, none without a record.
    let (_, violations) = slot_records(&url);
    assert!(violations.is_empty(), "{violations:?}\n{}", logs());
    // No node ever had more processes alive than its --max-runs, and `wide` never more than its
    // max_instances across the nodes, by the processes' own clocks.
    let spans = spans(&processes);
    for (node, job, most) in [("plain", "", 1), ("gpu", "", 2), ("", "wide", 3)] {
        let mut edges: Vec<(i64, i32)> = Vec::new();
        for (key, (start, end)) in &spans {
            let on_node = ran.get(key).map(String::as_str);
            if on_node.is_none()
                || (!node.is_empty() && on_node != Some(node))
                || (!job.is_empty() && key.0 != job)
            {
                continue;
            }
            let (Some(start), Some(end)) = (start, end) else {
                panic!("{key:?} has no start or no end");
            };
            edges.push((*start, 1));
            edges.push((*end, -1));
        }
        // An end before a start at the same instant: touching spans do not overlap.
        edges.sort_unstable();
        let (mut alive, mut peak) = (0, 0);
        for (_, step) in edges {
            alive += step;
            peak = peak.max(alive);
        }
        assert!(
            peak <= most,
            "{node}{job} had {peak} runs at once, past its limit of {most}"
        );
    }
}
