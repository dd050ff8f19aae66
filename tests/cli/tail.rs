//! `jobsctl tail`: printing a run's events, following a run live, waiting for the next one, and reading a
//! line only once it is whole.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{KillOnDrop, TestHome, wait_exit};

fn job(id: &str, run: &str) -> String {
    format!("id: {id}\nrun:\n  shell: \"{run}\"\n")
}

/// Collects a child's stdout lines, with the instant each arrived, on a channel.
fn lines_of(child: &mut Child) -> mpsc::Receiver<(Instant, String)> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// A run directory written by the test itself, its lock held like a live runner's.
struct FakeRun {
    events: File,
    _lock: File,
    seq: u64,
}

impl FakeRun {
    fn new(home: &TestHome, job: &str) -> Self {
        let dir = home.run_dir(job, 1);
        std::fs::create_dir_all(&dir).expect("run dir");
        let lock = File::create(dir.join(".lock")).expect("lock file");
        lock.try_lock().expect("hold the run lock");
        let events = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("events.jsonl"))
            .expect("events");
        Self {
            events,
            _lock: lock,
            seq: 0,
        }
    }

    fn line(&mut self, job: &str, kind: &str) -> String {
        self.seq += 1;
        format!(
            r#"{{"seq":{},"ts":"2026-11-22T12:00:00.000Z","job_id":"{job}","run":1,"type":"output","attempt":1,"stream":"stdout","line":"{kind}","truncated":false}}"#,
            self.seq
        )
    }

    fn finished(&mut self, job: &str) -> String {
        self.seq += 1;
        format!(
            r#"{{"seq":{},"ts":"2026-11-22T12:00:01.000Z","job_id":"{job}","run":1,"type":"run_finished","status":"succeeded","attempts":1,"exit_code":0,"signal":null,"duration_ms":1000,"error_code":null,"message":null}}"#,
            self.seq
        )
    }

    fn write(&mut self, bytes: &str) {
        self.events.write_all(bytes.as_bytes()).expect("write");
        self.events.flush().expect("flush");
    }
}

#[test]
fn tail_of_a_finished_run_and_json_identical_to_the_file() {
    let home = TestHome::new();
    home.spec("echo.yaml", job("echo", "echo one; echo two >&2"));
    assert_eq!(home.run(&["run", "echo"]).code, 0);
    let human = home.run(&["tail", "echo"]);
    assert_eq!(human.code, 0);
    let lines: Vec<&str> = human.stdout.lines().collect();
    assert!(
        lines[0].contains("> echo#1 started (manual)"),
        "{}",
        human.stdout
    );
    assert!(
        lines.iter().any(|l| l.ends_with("| one")) && lines.iter().any(|l| l.ends_with("! two")),
        "{}",
        human.stdout
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l.contains("= echo#1 succeeded")),
        "{}",
        human.stdout
    );

    let raw = home.run(&["tail", "echo", "--json"]);
    let file =
        std::fs::read_to_string(home.run_dir("echo", 1).join("events.jsonl")).expect("events");
    assert_eq!(raw.stdout, file, "--json prints the event lines unchanged");

    let (_, code) = home.json(&["tail", "echo", "--run", "7"]);
    assert_eq!(code, 3, "run_not_found");
    let quiet = TestHome::new();
    quiet.spec("idle.yaml", job("idle", "true"));
    let none = quiet.run(&["tail", "idle"]);
    assert_eq!(
        (none.code, none.stdout.as_str()),
        (0, "idle has no runs yet\n")
    );
    assert_eq!(quiet.run(&["tail", "ghost"]).code, 3);
}

#[test]
fn follow_a_run_from_start_to_finish_and_exit_with_its_status() {
    let home = TestHome::new();
    // The run waits for a gate file, so the follower is surely attached before it ends.
    home.spec(
        "slow.yaml",
        job(
            "slow",
            "echo begin; while [ ! -f go ]; do sleep 0.05; done; echo end; exit 4",
        ),
    );
    let (report, code) = home.json(&["run", "--detach", "slow"]);
    assert_eq!(code, 0, "{report}");
    let mut tail = KillOnDrop(
        home.command(&["tail", "slow", "-f"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("tail"),
    );
    let lines = lines_of(&mut tail);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.ends_with("| begin")) {
        seen.push(
            lines
                .recv_timeout(Duration::from_secs(10))
                .expect("the run's first output")
                .1,
        );
    }
    std::fs::write(home.path().join("go"), "").expect("open the gate");
    let status = wait_exit(&mut tail, 20);
    seen.extend(lines.iter().map(|(_, l)| l));
    assert_eq!(
        status.code(),
        Some(1),
        "exits with the run's failure:\n{}",
        seen.join("\n")
    );
    assert!(seen.iter().any(|l| l.ends_with("| end")), "{seen:?}");
    assert!(
        seen.last().is_some_and(|l| l.contains("= slow#1 failed")),
        "{seen:?}"
    );
}

#[test]
fn follow_started_before_the_run_waits_for_it() {
    let home = TestHome::new();
    home.spec("later.yaml", job("later", "echo hello from later"));
    let mut tail = KillOnDrop(
        home.command(&["tail", "later", "-f", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tail"),
    );
    let lines = lines_of(&mut tail);
    // Start the run only once the follower says it is waiting for one.
    let stderr = tail.stderr.take().expect("stderr");
    let (tx, notes) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let note = notes
        .recv_timeout(Duration::from_secs(10))
        .expect("the follower's note");
    assert!(note.contains("waiting for the next one"), "{note}");
    assert_eq!(home.run(&["run", "later"]).code, 0);
    let status = wait_exit(&mut tail, 20);
    assert_eq!(status.code(), Some(0));
    let received: Vec<String> = lines.iter().map(|(_, l)| l).collect();
    let file =
        std::fs::read_to_string(home.run_dir("later", 1).join("events.jsonl")).expect("events");
    assert_eq!(received, file.lines().collect::<Vec<_>>());
}

#[test]
fn a_half_written_line_is_shown_only_once_whole() {
    let home = TestHome::new();
    home.spec("half.yaml", job("half", "true"));
    let mut run = FakeRun::new(&home, "half");
    let first = run.line("half", "first");
    run.write(&format!("{first}\n"));
    let mut tail = KillOnDrop(
        home.command(&["tail", "half", "--run", "1", "-f", "--json"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("tail"),
    );
    let lines = lines_of(&mut tail);
    assert_eq!(
        lines
            .recv_timeout(Duration::from_secs(5))
            .expect("first line")
            .1,
        first
    );

    let second = run.line("half", "second");
    let (head, rest) = second.split_at(second.len() / 2);
    run.write(head);
    assert!(
        lines.recv_timeout(Duration::from_millis(400)).is_err(),
        "half a line is held back"
    );
    run.write(&format!("{rest}\n"));
    assert_eq!(
        lines
            .recv_timeout(Duration::from_secs(5))
            .expect("second line")
            .1,
        second
    );

    let finished = run.finished("half");
    run.write(&format!("{finished}\n"));
    assert_eq!(
        lines
            .recv_timeout(Duration::from_secs(5))
            .expect("last line")
            .1,
        finished
    );
    assert_eq!(
        wait_exit(&mut tail, 20).code(),
        Some(0),
        "run_finished ends the follow"
    );
}

#[test]
fn an_event_shows_in_tail_f_soon_after_its_write() {
    let home = TestHome::new();
    home.spec("fast.yaml", job("fast", "true"));
    let mut run = FakeRun::new(&home, "fast");
    let mut tail = KillOnDrop(
        home.command(&["tail", "fast", "--run", "1", "-f", "--json"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("tail"),
    );
    let lines = lines_of(&mut tail);
    // Synchronise on a first event: from then on the follower is surely watching.
    let first = run.line("fast", "warm-up");
    run.write(&format!("{first}\n"));
    assert_eq!(
        lines
            .recv_timeout(Duration::from_secs(10))
            .expect("first event")
            .1,
        first
    );
    let mut delays = Vec::new();
    for i in 0..10 {
        let line = run.line("fast", &format!("event {i}"));
        let written = Instant::now();
        run.write(&format!("{line}\n"));
        let (arrived, got) = lines
            .recv_timeout(Duration::from_secs(5))
            .expect("event arrives");
        assert_eq!(got, line);
        delays.push(arrived.duration_since(written));
        std::thread::sleep(Duration::from_millis(50));
    }
    let finished = run.finished("fast");
    run.write(&format!("{finished}\n"));
    assert_eq!(wait_exit(&mut tail, 20).code(), Some(0));
    delays.sort();
    eprintln!(
        "tail -f delay from write to output: median {:?}, max {:?}",
        delays[5], delays[9]
    );
    assert!(
        delays[9] < Duration::from_secs(1),
        "loosely bounded; the figure is in the README: {delays:?}"
    );
}
