//! Notifications end to end: the real binary, a real HTTP receiver on 127.0.0.1, the outbox in the
//! store. A failing run tells the home's default webhook; pings follow the healthchecks protocol; a
//! failing endpoint is retried with the same delivery id; a hung one holds up nothing; a scheduler
//! killed with work pending delivers it after the next start.

use std::time::Duration;

use serde_json::Value;

use crate::common::{SchedulerStart, TestHome, schema, start_scheduler, stop, wait_until};
use crate::receiver::{Receiver, Request};

const EVERY_SECOND: &str = "schedule:\n  cron: \"* * * * * *\"\n  timezone: UTC\n";

/// The env value no request may carry.
const SECRET: &str = "hunter2-never-sent";

fn config_with_webhook(home: &TestHome, url: &str) {
    std::fs::write(
        home.path().join("config.yaml"),
        format!("defaults:\n  notify:\n    - webhook: {url}\n      timeout: 2s\n"),
    )
    .expect("write config.yaml");
}

/// A job that exits 3 after printing, with a secret in its env.
fn failing_spec(id: &str, extra: &str) -> String {
    format!(
        "id: {id}\n{extra}run:\n  shell: \"echo working; echo broke >&2; exit 3\"\n  env:\n    TOKEN: {SECRET}\n"
    )
}

/// Every request carries nothing of the spec's env, and every JSON body is a valid notification
/// whose delivery id is the one in its header.
fn check_requests(requests: &[Request]) {
    let validator = schema("notification");
    for request in requests {
        let all = format!(
            "{} {:?} {}",
            request.path,
            request.headers,
            request.body_text()
        );
        assert!(!all.contains(SECRET), "an env value was sent: {all}");
        if request.method == "POST" && request.header("x-jobs-event").is_some() {
            let body = request.json();
            let errors: Vec<String> = validator
                .iter_errors(&body)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{errors:?}\n{body:#}");
            assert_eq!(
                request.header("x-jobs-delivery"),
                body["delivery_id"].as_str(),
                "{request:?}"
            );
            assert_eq!(request.header("x-jobs-event"), body["event"].as_str());
        }
    }
}

fn notifications_of(home: &TestHome, job: &str, run: i64) -> Vec<Value> {
    let (json, code) = home.json(&["show", job, "--run", &run.to_string()]);
    assert_eq!(code, 0, "{json}");
    json["data"]["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_failing_manual_run_tells_the_default_webhook_and_a_success_tells_no_one() {
    let receiver = Receiver::start();
    let home = TestHome::new();
    config_with_webhook(&home, &receiver.url("/hook?token=abc"));
    home.spec("ok.yaml", "id: ok\nrun:\n  command: [\"true\"]\n");
    home.spec("broken.yaml", failing_spec("broken", ""));

    let ok = home.run(&["run", "ok"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let broken = home.run(&["run", "broken"]);
    assert_eq!(broken.code, 1, "{}", broken.stderr);
    // The manual run delivered before it exited: no scheduler runs here.
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    check_requests(&requests);
    let body = requests[0].json();
    assert_eq!(requests[0].path, "/hook?token=abc");
    assert_eq!(body["event"], "failed");
    assert_eq!(body["job_id"], "broken");
    assert_eq!(body["run"], 1);
    assert_eq!(body["exit_code"], 3);
    assert_eq!(body["trigger"], "manual");
    assert_eq!(body["output"], Value::Null, "output only when asked for");

    let notifications = notifications_of(&home, "broken", 1);
    assert_eq!(notifications.len(), 1, "{notifications:#?}");
    assert_eq!(notifications[0]["state"], "delivered");
    assert_eq!(notifications[0]["tries"][0]["event"], "notify_sent");
    assert_eq!(notifications[0]["tries"][0]["http_status"], 200);
    let shown = notifications[0]["notifier"].as_str().unwrap_or_default();
    assert!(!shown.contains("abc"), "the URL's token is masked: {shown}");
    assert!(notifications_of(&home, "ok", 1).is_empty());
    // The run's own artifacts end with its end, whatever the notifications did.
    let events = home.events("broken", 1);
    assert_eq!(
        events.last().and_then(|e| e["type"].as_str()),
        Some("run_finished")
    );
    let human = home.run(&["show", "broken", "--run", "1"]);
    assert!(
        human.stdout.contains("failed to webhook http://127.0.0.1:"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("delivered after 1 tries"),
        "{}",
        human.stdout
    );
}

#[test]
fn a_success_after_failures_is_recovered_and_output_is_quoted_when_asked() {
    let receiver = Receiver::start();
    let home = TestHome::new();
    home.spec(
        "flaky.yaml",
        format!(
            "id: flaky\nrun:\n  shell: \"echo line-$$; test ! -e fail\"\nnotify:\n  - webhook: {}\n    on: [failed, recovered]\n    include_output: 1\n",
            receiver.url("/flaky")
        ),
    );
    std::fs::write(home.path().join("fail"), "").expect("write");
    assert_eq!(home.run(&["run", "flaky"]).code, 1);
    assert_eq!(home.run(&["run", "flaky"]).code, 1);
    std::fs::remove_file(home.path().join("fail")).expect("remove");
    assert_eq!(home.run(&["run", "flaky"]).code, 0);
    assert_eq!(home.run(&["run", "flaky"]).code, 0);
    let requests = receiver.requests();
    check_requests(&requests);
    let events: Vec<(String, i64)> = requests
        .iter()
        .map(|r| {
            let body = r.json();
            (
                body["event"].as_str().unwrap_or_default().to_owned(),
                body["run"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("failed".to_owned(), 1),
            ("failed".to_owned(), 2),
            ("recovered".to_owned(), 3)
        ],
        "a second success is not a recovery"
    );
    let output = &requests[2].json()["output"];
    assert_eq!(output.as_array().map(Vec::len), Some(1), "{output}");
    assert!(
        output[0]["line"]
            .as_str()
            .is_some_and(|l| l.starts_with("line-")),
        "{output}"
    );
}

#[test]
fn a_ping_follows_the_healthchecks_protocol() {
    let receiver = Receiver::start();
    let home = TestHome::new();
    let ping = format!("notify:\n  - ping: {}\n", receiver.url("/ping/check-1"));
    home.spec(
        "good.yaml",
        format!("id: good\nrun:\n  command: [\"true\"]\n{ping}"),
    );
    home.spec("bad.yaml", failing_spec("bad", &ping));
    home.spec(
        "slow.yaml",
        format!("id: slow\nrun:\n  command: [sleep, \"5\"]\n  timeout: 200ms\n{ping}"),
    );
    assert_eq!(home.run(&["run", "good"]).code, 0);
    assert_eq!(home.run(&["run", "bad"]).code, 1);
    assert_eq!(home.run(&["run", "slow"]).code, 1);
    let requests = receiver.requests();
    check_requests(&requests);
    let paths: Vec<String> = requests
        .iter()
        .map(|r| r.path.split('?').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            "/ping/check-1/start",
            "/ping/check-1",
            "/ping/check-1/start",
            "/ping/check-1/3",
            "/ping/check-1/start",
            "/ping/check-1/fail",
        ],
        "start, then success, the exit status, or fail (a timeout)"
    );
    // A start and its end carry the same run id, so a check pairs them.
    let rid = |r: &Request| r.path.split("rid=").nth(1).map(str::to_owned);
    assert!(rid(&requests[0]).is_some());
    assert_eq!(rid(&requests[0]), rid(&requests[1]));
    assert_ne!(rid(&requests[1]), rid(&requests[2]));
    assert!(requests.iter().all(|r| r.method == "GET"));
}

#[test]
fn a_command_notifier_gets_the_json_on_stdin_and_its_variables() {
    let home = TestHome::new();
    home.spec(
        "broken.yaml",
        failing_spec(
            "broken",
            "notify:\n  - command: [sh, -c, \"echo $JOBS_NOTIFY_EVENT $JOBS_NOTIFY_RUN > notified.env; cat > notified.json\"]\n",
        ),
    );
    assert_eq!(home.run(&["run", "broken"]).code, 1);
    // The command runs in the home.
    let env = std::fs::read_to_string(home.path().join("notified.env")).expect("the variables");
    assert_eq!(env.trim(), "failed 1");
    let json = std::fs::read_to_string(home.path().join("notified.json")).expect("the stdin");
    assert!(!json.contains(SECRET));
    let body: Value = serde_json::from_str(&json).expect("JSON on stdin");
    assert!(schema("notification").is_valid(&body), "{body:#}");
    assert_eq!(body["event"], "failed");
    assert_eq!(body["error"]["code"], "exit_nonzero");
}

#[test]
fn an_endpoint_that_fails_twice_gets_the_same_delivery_id_until_it_takes_it() {
    let receiver = Receiver::start();
    receiver.fail_next(2);
    let home = TestHome::new();
    config_with_webhook(&home, &receiver.url("/hook"));
    home.spec("broken.yaml", failing_spec("broken", ""));
    // Tries at 0 s, 1 s and 6 s: within the manual run's own delivery time.
    let outcome = home.run(&["run", "broken"]);
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    check_requests(&requests);
    let ids: Vec<Option<&str>> = requests
        .iter()
        .map(|r| r.header("x-jobs-delivery"))
        .collect();
    assert!(ids[0].is_some());
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let notifications = notifications_of(&home, "broken", 1);
    assert_eq!(notifications[0]["state"], "delivered");
    let tries: Vec<&str> = notifications[0]["tries"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["event"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(tries, ["notify_failed", "notify_failed", "notify_sent"]);
    assert_eq!(notifications[0]["tries"][0]["http_status"], 500);
}

#[test]
fn what_a_manual_run_cannot_deliver_stays_for_the_scheduler() {
    let receiver = Receiver::start();
    receiver.answer_next(1000, 503);
    let home = TestHome::new();
    config_with_webhook(&home, &receiver.url("/hook"));
    home.spec("broken.yaml", failing_spec("broken", ""));
    let started = std::time::Instant::now();
    let outcome = home.run(&["run", "broken"]);
    assert_eq!(outcome.code, 1);
    assert!(
        started.elapsed() < Duration::from_secs(14),
        "the manual run's delivery is bounded: {:?}",
        started.elapsed()
    );
    assert!(
        outcome
            .stderr
            .contains("1 notification(s) not delivered yet"),
        "{}",
        outcome.stderr
    );
    assert_eq!(notifications_of(&home, "broken", 1)[0]["state"], "pending");
    // The next scheduler takes it over and delivers it once the endpoint is back.
    receiver.answer_next(0, 503);
    let scheduler = start_scheduler(&home, &[]);
    wait_until("the scheduler to deliver it", 40, || {
        notifications_of(&home, "broken", 1)[0]["state"] == "delivered"
    });
    assert_eq!(stop(scheduler), 0);
}

#[test]
fn two_homes_running_the_same_job_never_share_a_delivery_id() {
    let receiver = Receiver::start();
    let homes = [TestHome::new(), TestHome::new()];
    for home in &homes {
        config_with_webhook(home, &receiver.url("/hook"));
        home.spec("broken.yaml", failing_spec("broken", ""));
        assert_eq!(home.run(&["run", "broken"]).code, 1);
    }
    let requests = receiver.wait_for(2, Duration::from_secs(5));
    let ids: Vec<&str> = requests
        .iter()
        .filter_map(|r| r.header("x-jobs-delivery"))
        .collect();
    assert_eq!(ids.len(), 2, "{requests:#?}");
    assert_ne!(
        ids[0], ids[1],
        "the same job#run in two homes is two notifications"
    );
    // And a home's id is the one its store recorded.
    let recorded = notifications_of(&homes[1], "broken", 1);
    assert_eq!(recorded[0]["delivery_id"], ids[1]);
}

#[test]
fn a_manual_runs_start_ping_goes_out_while_it_runs_and_ctrl_c_leaves_the_rest() {
    let receiver = Receiver::start();
    let home = TestHome::new();
    home.spec(
        "slow.yaml",
        format!(
            "id: slow\nrun:\n  command: [sleep, \"2\"]\nnotify:\n  - ping: {}\n",
            receiver.url("/ping/slow")
        ),
    );
    let mut child = home
        .command(&["run", "slow"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(crate::common::KillOnDrop)
        .expect("start jobsctl run");
    // No scheduler runs: the run's own process sends the start while the command still runs.
    let requests = receiver.wait_for(1, Duration::from_millis(1500));
    assert_eq!(requests[0].path.split('?').next(), Some("/ping/slow/start"));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the start ping went out only after the run ended"
    );
    // The end ping fails, and would be retried for ten seconds; Ctrl-C leaves it to the scheduler.
    receiver.answer_next(1000, 503);
    receiver.wait_for(2, Duration::from_secs(5));
    let interrupted = std::time::Instant::now();
    crate::common::signal(&child, rustix::process::Signal::INT);
    let status = crate::common::wait_exit(&mut child, 30);
    assert!(
        interrupted.elapsed() < Duration::from_secs(2),
        "Ctrl-C ended the delivery at once, not after {:?}",
        interrupted.elapsed()
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr piped"), &mut stderr)
        .expect("read stderr");
    assert_eq!(status.code(), Some(0), "the run itself succeeded: {stderr}");
    assert!(
        stderr.contains("1 notification(s) not delivered yet"),
        "{stderr}"
    );
    let notifications = notifications_of(&home, "slow", 1);
    assert_eq!(notifications.len(), 2, "{notifications:#?}");
    assert_eq!(notifications[0]["state"], "delivered");
    assert_eq!(notifications[1]["state"], "pending");
}

#[test]
fn a_failing_scheduled_run_notifies_and_a_hung_endpoint_holds_up_no_run() {
    let hung = Receiver::start();
    hung.hang();
    let receiver = Receiver::start();
    let home = TestHome::new();
    config_with_webhook(&home, &receiver.url("/hook"));
    // Every second, told of every success at an endpoint that never answers.
    home.spec(
        "tick.yaml",
        format!(
            "id: tick\n{EVERY_SECOND}run:\n  command: [\"true\"]\nnotify:\n  - webhook: {}\n    on: [succeeded]\n    timeout: 30s\n",
            hung.url("/never")
        ),
    );
    home.spec("broken.yaml", failing_spec("broken", EVERY_SECOND));
    let scheduler = start_scheduler(&home, &[]);
    let requests = receiver.wait_for(1, Duration::from_secs(15));
    check_requests(&requests);
    let body = requests[0].json();
    assert_eq!(body["event"], "failed");
    assert_eq!(body["trigger"], "schedule");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(stop(scheduler), 0);
    let db = home.db();
    let lateness: Vec<i64> = {
        let mut statement = db
            .prepare(
                "SELECT started_at - slot FROM runs WHERE job_id = 'tick' AND status = 'succeeded' ORDER BY seq",
            )
            .expect("prepare");
        statement
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    assert!(lateness.len() >= 4, "{lateness:?}");
    assert!(
        lateness.iter().all(|late| *late < 1000),
        "runs start on time whatever the endpoint does: {lateness:?}"
    );
    assert_eq!(
        home.count(
            "SELECT COUNT(*) FROM runs WHERE job_id = 'tick' AND status IN ('missed', 'skipped')"
        ),
        0
    );
    // At most two tries are held by the hung endpoint at once; the rest wait their turn.
    assert!(hung.requests().len() <= 2, "{:?}", hung.requests().len());
}

#[test]
fn a_notification_pending_when_the_scheduler_is_killed_is_delivered_after_the_next_start() {
    let receiver = Receiver::start();
    receiver.hang();
    let home = TestHome::new();
    home.spec(
        "broken.yaml",
        failing_spec(
            "broken",
            &format!(
                "notify:\n  - webhook: {}\n    timeout: 2s\n",
                receiver.url("/hook")
            ),
        ),
    );
    let mut scheduler = start_scheduler(&home, &[]);
    wait_until("the scheduler to start", 10, || {
        home.path().join("db/scheduler.lock").exists()
            && crate::common::scheduler_log(&home).contains("scheduler started")
    });
    // A manual run while the scheduler runs leaves its delivery to the scheduler.
    assert_eq!(home.run(&["run", "broken"]).code, 1);
    receiver.wait_for(1, Duration::from_secs(10));
    scheduler.kill().expect("kill -9");
    scheduler.wait().expect("reap");
    assert_eq!(notifications_of(&home, "broken", 1)[0]["state"], "pending");
    receiver.answer();
    let scheduler = SchedulerStart::new(home.path()).append().start();
    wait_until("the next scheduler to deliver it", 20, || {
        notifications_of(&home, "broken", 1)[0]["state"] == "delivered"
    });
    assert_eq!(stop(scheduler), 0);
    let requests = receiver.requests();
    check_requests(&requests);
    let ids: Vec<Option<&str>> = requests
        .iter()
        .map(|r| r.header("x-jobs-delivery"))
        .collect();
    assert!(
        ids.len() >= 2 && ids.iter().all(|id| *id == ids[0]),
        "{ids:?}"
    );
}

#[test]
fn slots_missed_while_the_scheduler_was_down_notify() {
    let receiver = Receiver::start();
    let home = TestHome::new();
    config_with_webhook(&home, &receiver.url("/hook"));
    home.spec(
        "tick.yaml",
        format!("id: tick\n{EVERY_SECOND}run:\n  command: [\"true\"]\npolicy:\n  misfire_grace: 1s\n  coalesce: false\n"),
    );
    let scheduler = start_scheduler(&home, &[]);
    wait_until("a run", 10, || {
        home.count("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'") >= 1
    });
    assert_eq!(stop(scheduler), 0);
    assert!(receiver.requests().is_empty(), "{:#?}", receiver.requests());
    std::thread::sleep(Duration::from_secs(3));
    let scheduler = SchedulerStart::new(home.path()).append().start();
    let requests = receiver.wait_for(1, Duration::from_secs(15));
    assert_eq!(stop(scheduler), 0);
    check_requests(&requests);
    let body = requests[0].json();
    assert_eq!(body["event"], "missed", "{body:#}");
    assert_eq!(body["status"], "missed");
    assert!(body["slot"].is_string(), "{body:#}");
}

#[test]
fn the_home_is_told_of_invalid_specs_and_of_the_schedulers_start_and_stop_and_pinged() {
    let receiver = Receiver::start();
    let home = TestHome::new();
    std::fs::write(
        home.path().join("config.yaml"),
        format!(
            "notify:\n  - webhook: {}\n    on: [spec_invalid, scheduler_started, scheduler_stopped]\nheartbeat_ping: {}\n",
            receiver.url("/home"),
            receiver.url("/heartbeat")
        ),
    )
    .expect("write config.yaml");
    home.spec("a.yaml", "id: a\nrun:\n  command: [\"true\"]\n");
    let scheduler = start_scheduler(&home, &[]);
    let heard = |event: &str| {
        receiver
            .requests()
            .iter()
            .any(|r| r.path == "/home" && r.json_or_null()["event"] == event)
    };
    wait_until("scheduler_started", 10, || heard("scheduler_started"));
    wait_until("the heartbeat ping", 10, || {
        receiver
            .requests()
            .iter()
            .any(|r| r.method == "GET" && r.path == "/heartbeat")
    });
    home.spec("a.yaml", "id: a\nrun:\n  comand: [\"true\"]\n");
    wait_until("spec_invalid", 15, || heard("spec_invalid"));
    assert_eq!(stop(scheduler), 0);
    assert!(heard("scheduler_stopped"), "{:#?}", receiver.requests());
    let requests = receiver.requests();
    check_requests(&requests);
    let invalid = requests
        .iter()
        .filter(|r| r.path == "/home")
        .map(Request::json)
        .find(|b| b["event"] == "spec_invalid")
        .expect("spec_invalid");
    assert_eq!(invalid["job_id"], "a");
    assert!(
        invalid["message"]
            .as_str()
            .is_some_and(|m| m.contains("comand")),
        "{invalid:#}"
    );
}

#[test]
fn notify_test_sends_through_every_notifier_and_says_which_failed() {
    let receiver = Receiver::start();
    let home = TestHome::new();
    home.spec(
        "wired.yaml",
        format!(
            "id: wired\nrun:\n  command: [\"true\"]\nnotify:\n  - webhook: {}\n  - ping: {}\n  - webhook: {}\n    timeout: 1s\n",
            receiver.url("/ok?key=s3cret"),
            receiver.url("/check"),
            "http://127.0.0.1:9/refused"
        ),
    );
    let (json, code) = home.json(&["notify", "test", "wired"]);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["error"]["code"], "notify_failed", "{json}");
    let results = json["data"]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let delivered: Vec<bool> = results
        .iter()
        .map(|r| r["delivered"].as_bool().unwrap_or(true))
        .collect();
    assert_eq!(delivered, [true, true, false], "{json}");
    assert!(!json.to_string().contains("s3cret"), "{json}");
    let requests = receiver.requests();
    check_requests(&requests);
    assert!(requests.iter().any(|r| r.path == "/check/log"));
    assert!(requests.iter().any(|r| r.json_or_null()["event"] == "test"));
    home.spec("quiet.yaml", "id: quiet\nrun:\n  command: [\"true\"]\n");
    let (json, code) = home.json(&["notify", "test", "quiet"]);
    assert_eq!(code, 5, "{json}");
    assert_eq!(json["error"]["code"], "no_notifiers");
}
