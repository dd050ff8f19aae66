//! Jobs that share limits and jobs that trigger jobs, end to end: the real binary, a running
//! scheduler, the processes' own start and end times, the store's records.

use crate::common::{SchedulerStart, TestHome, stop, wait_until};

const EVERY_SECOND: &str = "schedule:\n  cron: \"* * * * * *\"\n  timezone: UTC\n";

/// A job that appends its own start and end (nanoseconds) to `times` and runs `secs` in between.
fn timed_job(id: &str, extra: &str, secs: &str) -> String {
    format!(
        "id: {id}\n{extra}run:\n  shell: \"echo {id} start $(date +%s%N) >> times; sleep {secs}; echo {id} end $(date +%s%N) >> times\"\n"
    )
}

/// The (job, start, end) of every finished process recorded in `times`.
fn intervals(home: &TestHome) -> Vec<(String, u128, u128)> {
    let text = std::fs::read_to_string(home.path().join("times")).unwrap_or_default();
    let mut open: std::collections::HashMap<String, Vec<u128>> = std::collections::HashMap::new();
    let mut done = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [job, what, at] = parts[..] else {
            panic!("a line of times: {line:?}")
        };
        let at: u128 = at.parse().expect("a time");
        match what {
            "start" => open.entry(job.to_owned()).or_default().push(at),
            _ => {
                let start = open
                    .get_mut(job)
                    .and_then(Vec::pop)
                    .expect("a start before the end");
                done.push((job.to_owned(), start, at));
            }
        }
    }
    done.sort_by_key(|(_, start, _)| *start);
    done
}

#[test]
fn two_jobs_in_a_group_of_one_never_overlap_and_the_refused_slots_say_group() {
    let home = TestHome::new();
    std::fs::write(
        home.path().join("config.yaml"),
        "groups:\n  db:\n    max_running: 1\n",
    )
    .expect("write config.yaml");
    let group = "policy:\n  group: db\n";
    home.spec(
        "a.yaml",
        timed_job("a", &format!("{EVERY_SECOND}{group}"), "1.5"),
    );
    home.spec(
        "b.yaml",
        timed_job("b", &format!("{EVERY_SECOND}{group}"), "1.5"),
    );
    let scheduler = SchedulerStart::new(home.path()).start();
    wait_until("a few runs of the group", 30, || {
        intervals(&home).len() >= 4
    });
    assert_eq!(stop(scheduler), 0);
    let ran = intervals(&home);
    for pair in ran.windows(2) {
        let ((a, _, a_end), (b, b_start, _)) = (&pair[0], &pair[1]);
        assert!(
            a_end <= b_start,
            "{a} ended at {a_end}, after {b} started at {b_start}: {ran:?}"
        );
    }
    let jobs: std::collections::HashSet<&str> = ran.iter().map(|(j, _, _)| j.as_str()).collect();
    assert_eq!(jobs.len(), 2, "both jobs ran: {ran:?}");
    assert!(
        home.count(
            "SELECT COUNT(*) FROM runs WHERE status = 'skipped' AND error_code = 'skipped_group'"
        ) > 0,
        "slots refused by the group are recorded skipped with reason group"
    );
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs WHERE status IN ('running', 'queued')"),
        0
    );
}

#[test]
fn a_manual_run_into_a_full_group_exits_5_group_full_and_queue_waits_its_turn() {
    let home = TestHome::new();
    std::fs::write(
        home.path().join("config.yaml"),
        "groups:\n  db:\n    max_running: 1\n",
    )
    .expect("write config.yaml");
    home.spec(
        "long.yaml",
        timed_job("long", "policy:\n  group: db\n", "3"),
    );
    home.spec(
        "other.yaml",
        timed_job("other", "policy:\n  group: db\n", "0.1"),
    );
    home.spec(
        "patient.yaml",
        timed_job("patient", "policy:\n  group: db\n  overlap: queue\n", "0.1"),
    );
    let mut long = home
        .command(&["run", "long"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(crate::common::KillOnDrop)
        .expect("start the long run");
    wait_until("the long run to start", 10, || {
        std::fs::read_to_string(home.path().join("times")).is_ok_and(|t| t.contains("long start"))
    });
    // `status` says which run holds the group.
    let (status, _) = home.json(&["status"]);
    let holding: Vec<&serde_json::Value> = status["data"]["in_flight"]
        .as_array()
        .map(|runs| runs.iter().filter(|r| r["group"] == "db").collect())
        .unwrap_or_default();
    assert_eq!(holding.len(), 1, "{status:#}");
    assert_eq!(holding[0]["job_id"], "long");
    let refused = home.run(&["--json", "run", "other"]);
    assert_eq!(refused.code, 5, "{} {}", refused.stdout, refused.stderr);
    let json = refused.json();
    assert_eq!(
        json["data"]["jobs_run"][0]["error"]["code"], "group_full",
        "{json:#}"
    );
    // A job that queues waits for the group's run to end, then runs.
    let queued = home.run(&["run", "patient"]);
    assert_eq!(queued.code, 0, "{}", queued.stderr);
    assert!(crate::common::wait_exit(&mut long, 30).success());
    let ran = intervals(&home);
    let long_end = ran.iter().find(|(j, _, _)| j == "long").map(|(_, _, e)| *e);
    let patient_start = ran
        .iter()
        .find(|(j, _, _)| j == "patient")
        .map(|(_, s, _)| *s);
    assert!(
        long_end.is_some() && patient_start >= long_end,
        "the queued run started after the group's run ended: {ran:?}"
    );
    // An undefined group is a problem of the spec, with its position.
    home.spec(
        "stray.yaml",
        timed_job("stray", "policy:\n  group: nope\n", "0"),
    );
    let checked = home.run(&["validate"]);
    assert_eq!(checked.code, 4, "{}", checked.stdout);
    assert!(
        checked.stdout.contains("jobs/stray.yaml:3:3")
            && checked.stdout.contains("no group \"nope\""),
        "{}",
        checked.stdout
    );
}

#[test]
fn cycles_unknown_upstreams_and_self_triggers_are_refused_with_positions_and_graph_draws_the_rest()
{
    let home = TestHome::new();
    let job = |id: &str, after: &str| format!("id: {id}\n{after}run:\n  command: [\"true\"]\n");
    home.spec("extract.yaml", job("extract", ""));
    home.spec(
        "transform.yaml",
        job("transform", "after:\n  - job: extract\n"),
    );
    home.spec(
        "report.yaml",
        job(
            "report",
            "after:\n  - job: transform\n    on: [failed, timed_out]\n",
        ),
    );
    home.spec(
        "merge.yaml",
        job("merge", "after_all: [extract, transform]\n"),
    );
    home.spec("ping.yaml", job("ping", "after:\n  - job: pong\n"));
    home.spec("pong.yaml", job("pong", "after_all: [ping, extract]\n"));
    home.spec("lost.yaml", job("lost", "after:\n  - job: nowhere\n"));
    home.spec("selfish.yaml", job("selfish", "after:\n  - job: selfish\n"));
    let checked = home.run(&["validate"]);
    assert_eq!(checked.code, 4, "{}", checked.stdout);
    for expected in [
        "jobs/ping.yaml:3:5: /after/0/job: the jobs trigger each other in a cycle of 2 (ping -> pong -> ping)",
        "jobs/pong.yaml:2:13: /after_all/0: the jobs trigger each other in a cycle",
        "jobs/lost.yaml:3:5: /after/0/job: there is no job \"nowhere\"",
        "jobs/selfish.yaml:3:5: /after/0/job: \"selfish\" cannot run after itself",
    ] {
        assert!(
            checked.stdout.contains(expected),
            "{expected}\n{}",
            checked.stdout
        );
    }
    for fine in [
        "extract.yaml",
        "transform.yaml",
        "report.yaml",
        "merge.yaml",
    ] {
        assert!(
            !checked.stdout.contains(&format!("jobs/{fine}:")),
            "{}",
            checked.stdout
        );
    }
    // A cycle never loads: the jobs in it have no spec to run.
    let (list, _) = home.json(&["list"]);
    let state = |id: &str| {
        list["data"]["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["id"] == id))
            .map(|j| j["state"].clone())
    };
    assert_eq!(state("ping"), Some(serde_json::json!("invalid")));
    assert_eq!(state("transform"), Some(serde_json::json!("active")));

    let graph = home.run(&["graph"]);
    assert_eq!(graph.code, 0, "{}", graph.stderr);
    assert!(
        graph
            .stdout
            .contains("extract -> transform  (on succeeded)"),
        "{}",
        graph.stdout
    );
    assert!(
        graph
            .stdout
            .contains("transform -> report  (on failed, timed_out)"),
        "{}",
        graph.stdout
    );
    assert!(
        graph
            .stdout
            .contains("extract -> merge  (once all of its after_all succeeded)")
    );
    let (shown, _) = home.json(&["show", "transform"]);
    assert_eq!(shown["data"]["upstream"][0]["from"], "extract");
    let downstream: Vec<&str> = shown["data"]["downstream"]
        .as_array()
        .map(|d| d.iter().filter_map(|e| e["to"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(downstream, ["merge", "report"]);

    // The DOT output is read by Graphviz's own parser.
    let dot = home.run(&["graph", "--dot"]);
    assert_eq!(dot.code, 0);
    let Some(out) = crate::common::feed_tool("dot", &["-Tsvg"], &dot.stdout, "graphviz") else {
        return;
    };
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        dot.stdout
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
}

#[test]
fn a_cycle_closed_through_the_last_good_version_of_an_invalid_spec_never_loads() {
    let home = TestHome::new();
    let job = |id: &str, after: &str| format!("id: {id}\n{after}run:\n  command: [\"true\"]\n");
    home.spec("a.yaml", job("a", "after:\n  - job: b\n"));
    home.spec("b.yaml", job("b", ""));
    home.spec("c.yaml", job("c", "after:\n  - job: a\n"));
    let (list, _) = home.json(&["list"]);
    assert_eq!(list["ok"], true, "{list}");
    // a breaks (its last good version, after b, stays in force) and b now runs after c, which runs
    // after a: the loop b -> a -> c -> b would be live through a's stored version.
    home.spec("a.yaml", "id: a\nafter:\n  - job: b\nrun:\n  command: 3\n");
    home.spec("b.yaml", job("b", "after:\n  - job: c\n"));
    let (list, _) = home.json(&["list"]);
    let problem = |id: &str| {
        list["data"]["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["id"] == id))
            .map(|j| j["problems"][0]["message"].clone())
    };
    // Both new specs on the loop are refused (b and c keep their last good versions, which are
    // not a loop); a keeps its own problem.
    for id in ["b", "c"] {
        assert_eq!(
            problem(id),
            Some(serde_json::json!(
                "the jobs trigger each other in a cycle of 3 (a -> c -> b -> a), which would never end; break it"
            )),
            "{list}"
        );
    }
    assert_eq!(
        problem("a"),
        Some(serde_json::json!("expected a list, found the number 3"))
    );
    // The graph in force is the last good versions' chain b -> a -> c, with no edge back to b.
    let graph = home.run(&["graph"]);
    assert!(
        graph.stdout.contains("b -> a  (on succeeded)"),
        "{}",
        graph.stdout
    );
    assert!(
        graph.stdout.contains("a -> c  (on succeeded)"),
        "{}",
        graph.stdout
    );
    assert!(!graph.stdout.contains("c -> b"), "{}", graph.stdout);
}

/// A scheduler in `home`, once it has started (owns the home and its store): a command run
/// earlier could find the home locked and no store yet.
fn ready_scheduler(home: &TestHome) -> crate::common::KillOnDrop {
    let scheduler = SchedulerStart::new(home.path()).start();
    wait_until("the scheduler to start", 20, || {
        crate::common::scheduler_log(home).contains("scheduler started")
    });
    scheduler
}

/// How many runs of `job` the store has with `status` (all statuses when `None`).
fn runs_of(home: &TestHome, job: &str, status: Option<&str>) -> i64 {
    match status {
        Some(status) => home.count(&format!(
            "SELECT COUNT(*) FROM runs WHERE job_id = '{job}' AND status = '{status}'"
        )),
        None => home.count(&format!("SELECT COUNT(*) FROM runs WHERE job_id = '{job}'")),
    }
}

fn manual(id: &str, extra: &str, shell: &str) -> String {
    format!("id: {id}\n{extra}run:\n  shell: \"{shell}\"\n")
}

#[test]
fn a_chain_runs_its_downstream_once_per_upstream_success_with_the_upstream_variables() {
    let home = TestHome::new();
    home.spec(
        "extract.yaml",
        manual("extract", "", "echo extracted; test ! -e fail"),
    );
    home.spec(
        "transform.yaml",
        manual(
            "transform",
            "after:\n  - job: extract\n",
            "echo $JOBS_UPSTREAM_JOB $JOBS_UPSTREAM_RUN $JOBS_UPSTREAM_RUNS; cat $JOBS_UPSTREAM_RUN_DIR/stdout.log",
        ),
    );
    home.spec(
        "alert.yaml",
        manual(
            "alert",
            "after:\n  - job: extract\n    on: [failed]\n",
            "echo alerting",
        ),
    );
    let scheduler = ready_scheduler(&home);
    let first = home.run(&["run", "extract"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    wait_until("the downstream run", 15, || {
        runs_of(&home, "transform", Some("succeeded")) == 1
    });
    // A failure triggers only what listens for failures.
    std::fs::write(home.path().join("fail"), "").expect("make it fail");
    assert_eq!(home.run(&["run", "extract"]).code, 1);
    wait_until("the failure's downstream", 15, || {
        runs_of(&home, "alert", Some("succeeded")) == 1
    });
    // A run that opts out triggers nothing.
    std::fs::remove_file(home.path().join("fail")).expect("make it pass");
    assert_eq!(home.run(&["run", "extract", "--no-trigger"]).code, 0);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(stop(scheduler), 0);
    assert_eq!(
        runs_of(&home, "transform", None),
        1,
        "once per upstream success"
    );
    assert_eq!(
        runs_of(&home, "alert", None),
        1,
        "once per upstream failure"
    );

    let (history, _) = home.json(&["history", "transform"]);
    let entry = &history["data"]["entries"][0];
    assert_eq!(entry["trigger"], "after");
    assert_eq!(entry["upstream"], "extract#1");
    let output = std::fs::read_to_string(home.run_dir("transform", 1).join("stdout.log"))
        .expect("the downstream's output");
    assert!(
        output.starts_with("extract 1 extract#1\nextracted"),
        "{output}"
    );
    let receipt: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(home.run_dir("transform", 1).join("run_receipt.json"))
            .expect("the receipt"),
    )
    .expect("JSON");
    assert_eq!(receipt["trigger"], "after");
    assert_eq!(receipt["upstream"], "extract#1");
    assert!(
        crate::common::schema("run_receipt").is_valid(&receipt),
        "{receipt:#}"
    );
    // The events alone say why the run started, and the line still fits the event schema.
    let started = home
        .events("transform", 1)
        .into_iter()
        .find(|e| e["type"] == "run_started")
        .expect("a run_started event");
    assert_eq!(started["trigger"], "after");
    assert_eq!(started["upstream"], "extract#1");
    assert!(
        crate::common::schema("event").is_valid(&started),
        "{started:#}"
    );
    let tail = home.run(&["tail", "transform"]);
    assert_eq!(tail.code, 0, "{}", tail.stderr);
    assert!(
        tail.stdout.contains("started (after, after extract#1"),
        "{}",
        tail.stdout
    );
    // What a run triggered, from the upstream's side.
    let (triggered, _) = home.json(&["history", "--upstream", "extract#2"]);
    let jobs: Vec<&str> = triggered["data"]["entries"]
        .as_array()
        .map(|e| e.iter().filter_map(|r| r["job_id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(jobs, ["alert"]);
}

#[test]
fn fan_in_waits_for_every_upstream_and_a_paused_downstream_records_the_trigger_skipped() {
    let home = TestHome::new();
    home.spec("eu.yaml", manual("eu", "", "true"));
    home.spec("us.yaml", manual("us", "", "true"));
    home.spec(
        "merge.yaml",
        manual("merge", "after_all: [eu, us]\n", "echo $JOBS_UPSTREAM_RUNS"),
    );
    home.spec(
        "report.yaml",
        manual("report", "after:\n  - job: merge\n", "true"),
    );
    assert_eq!(home.run(&["pause", "report"]).code, 0);
    let scheduler = ready_scheduler(&home);
    assert_eq!(home.run(&["run", "eu"]).code, 0);
    assert_eq!(home.run(&["run", "eu"]).code, 0);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(runs_of(&home, "merge", None), 0, "one of two is not all");
    assert_eq!(home.run(&["run", "us"]).code, 0);
    wait_until("the fan-in run", 15, || {
        runs_of(&home, "merge", Some("succeeded")) == 1
    });
    wait_until("the paused downstream's record", 15, || {
        runs_of(&home, "report", Some("skipped")) == 1
    });
    assert_eq!(stop(scheduler), 0);
    let output = std::fs::read_to_string(home.run_dir("merge", 1).join("stdout.log"))
        .expect("the fan-in's output");
    assert_eq!(output.trim(), "eu#2,us#1", "the latest success of each");
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs WHERE job_id = 'report' AND error_code = 'skipped_paused' AND upstream = 'merge#1'"),
        1
    );
}

#[test]
fn a_scheduler_killed_right_after_an_upstream_ends_still_runs_the_downstream_once() {
    let home = TestHome::new();
    home.spec("extract.yaml", manual("extract", EVERY_SECOND, "true"));
    home.spec(
        "transform.yaml",
        manual("transform", "after:\n  - job: extract\n", "true"),
    );
    // The first end the scheduler records is its last act: it dies just after the commit.
    let mut scheduler = SchedulerStart::new(home.path())
        .env("JOBS_FAULT", "finish-after-commit=1")
        .start();
    let status = crate::common::wait_exit(&mut scheduler, 30);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed at the fault point"
    );
    assert!(runs_of(&home, "extract", Some("succeeded")) >= 1);
    assert_eq!(
        runs_of(&home, "transform", None),
        0,
        "not claimed before the kill"
    );
    // The next start claims what the committed end owed, once.
    let scheduler = SchedulerStart::new(home.path())
        .env_remove("JOBS_FAULT")
        .start();
    wait_until("the downstream run", 15, || {
        runs_of(&home, "transform", Some("succeeded")) >= 1
    });
    assert_eq!(stop(scheduler), 0);
    assert_eq!(
        home.count(
            "SELECT COUNT(*) FROM runs WHERE job_id = 'transform' AND upstream = 'extract#1'"
        ),
        1,
        "exactly one downstream run for the upstream run the kill followed"
    );
    // Every upstream success owes exactly one downstream run (those that ended during the stop
    // are owed still, for the next start), and none became two.
    assert_eq!(
        home.count(
            "SELECT COUNT(*) FROM runs u WHERE u.job_id = 'extract' AND u.status = 'succeeded'
             AND (SELECT COUNT(*) FROM triggers t WHERE t.job_id = 'transform'
                  AND t.upstream_job = 'extract' AND t.upstream_seq = u.seq) != 1"
        ),
        0
    );
    assert_eq!(
        home.count(
            "SELECT COUNT(*) FROM (SELECT upstream FROM runs WHERE job_id = 'transform'
             GROUP BY upstream HAVING COUNT(*) > 1)"
        ),
        0
    );
}
