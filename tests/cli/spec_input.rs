//! What `jobs/` may hold that is not a spec, and what a spec may hold that must not reach a terminal or
//! a problem message: FIFOs, sockets, directories and devices are problems, never a hang; env values
//! and files that are not specs are never echoed; control characters are escaped in human output;
//! `every` below a second is refused, also in a last good version checked by an older binary.

use std::path::Path;
use std::process::Stdio;

use crate::common::{Outcome, TestHome, manual_spec, start_scheduler, stop, wait_exit, wait_until};

/// Runs `jobs <args>`, failing the test if it does not exit within `seconds` (a hang is the bug).
fn run_within(home: &TestHome, args: &[&str], seconds: u64) -> Outcome {
    let out_path = home.path().join(".test-stdout");
    let err_path = home.path().join(".test-stderr");
    let stdout = std::fs::File::create(&out_path).expect("stdout file");
    let stderr = std::fs::File::create(&err_path).expect("stderr file");
    let mut child = home
        .command(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start jobs");
    let status = wait_exit(&mut child, seconds);
    Outcome {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out_path).expect("read stdout"),
        stderr: std::fs::read_to_string(&err_path).expect("read stderr"),
    }
}

fn mkfifo(path: &Path) {
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .expect("mkfifo");
}

/// The problems `validate --json` reports for the file whose path ends with `name`.
fn problems_of(validate: &serde_json::Value, name: &str) -> Vec<serde_json::Value> {
    validate["data"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"].as_str().is_some_and(|p| p.ends_with(name)))
        .unwrap_or_else(|| panic!("{name} is not in {validate:#}"))["problems"]
        .as_array()
        .expect("problems")
        .clone()
}

#[test]
fn a_fifo_in_jobs_is_a_problem_and_blocks_no_command() {
    let home = TestHome::new();
    home.spec("ok.yaml", manual_spec("ok"));
    mkfifo(&home.jobs_dir().join("pipe.yaml"));

    let validate = run_within(&home, &["--json", "validate"], 20);
    assert_eq!(validate.code, 4, "{}", validate.stderr);
    let problems = problems_of(&validate.json(), "pipe.yaml");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["code"], "not_a_regular_file");
    assert_eq!(problems[0]["line"], 1);
    assert_eq!(problems[0]["column"], 1);
    assert!(
        problems[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("named pipe")),
        "{problems:?}"
    );

    let list = run_within(&home, &["list"], 20);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(list.stdout.contains("not_a_regular_file") || list.stdout.contains("named pipe"));
    let run = run_within(&home, &["run", "ok"], 20);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let explicit = run_within(
        &home,
        &[
            "validate",
            &home.jobs_dir().join("pipe.yaml").display().to_string(),
        ],
        20,
    );
    assert_eq!(explicit.code, 4, "{}", explicit.stderr);
}

#[test]
fn a_fifo_in_jobs_does_not_stop_the_scheduler() {
    let home = TestHome::new();
    home.spec(
        "tick.yaml",
        "id: tick\nschedule:\n  every: 1s\nrun:\n  command: [\"true\"]\n",
    );
    mkfifo(&home.jobs_dir().join("pipe.yaml"));
    let scheduler = start_scheduler(&home, &[]);
    wait_until("two runs of the other job", 15, || {
        home.count("SELECT COUNT(*) FROM runs WHERE job_id = 'tick' AND status = 'succeeded'") >= 2
    });
    assert_eq!(stop(scheduler), 0);
}

#[test]
fn directories_sockets_and_devices_named_as_specs_are_problems() {
    let home = TestHome::new();
    home.spec("ok.yaml", manual_spec("ok"));
    std::fs::create_dir(home.jobs_dir().join("dir.yaml")).expect("mkdir");
    let _socket = std::os::unix::net::UnixListener::bind(home.jobs_dir().join("sock.yaml"))
        .expect("bind a socket");
    // A link to a device: followed like any linked spec, then refused for what it is, never read.
    std::os::unix::fs::symlink("/dev/zero", home.jobs_dir().join("zero.yaml")).expect("link");

    let validate = run_within(&home, &["--json", "validate"], 20);
    assert_eq!(validate.code, 4, "{}", validate.stderr);
    let document = validate.json();
    for (name, says) in [
        ("dir.yaml", "a directory"),
        ("sock.yaml", "a socket"),
        ("zero.yaml", "a device"),
    ] {
        let problems = problems_of(&document, name);
        assert_eq!(problems.len(), 1, "{name}: {problems:?}");
        assert_eq!(problems[0]["code"], "not_a_regular_file", "{name}");
        assert!(
            problems[0]["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{name}: {problems:?}"
        );
    }
    assert!(problems_of(&document, "ok.yaml").is_empty());
}

/// Every control character in `text` but the newlines that end its lines, with where it is.
fn raw_controls(text: &str) -> Vec<(usize, char)> {
    text.char_indices()
        .filter(|(_, c)| *c != '\n' && (c.is_control() || ('\u{202a}'..='\u{202e}').contains(c)))
        .collect()
}

/// With colour on, the only escape sequences are the colours `jobs` paints: `ESC [ digits m`.
fn only_colours(text: &str) -> bool {
    let mut rest = text;
    while let Some(at) = rest.find('\x1b') {
        let after = &rest[at + 1..];
        let Some(body) = after.strip_prefix('[') else {
            return false;
        };
        let digits = body.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || body.as_bytes().get(digits) != Some(&b'm') {
            return false;
        }
        rest = &body[digits + 1..];
    }
    raw_controls(&text.replace('\x1b', "")).is_empty()
}

#[test]
fn control_characters_from_specs_never_reach_the_terminal_raw() {
    let home = TestHome::new();
    // YAML's "\e" is ESC: a title change, a screen clear, a C1 CSI, a bidi override, a bell.
    home.spec(
        "loud.yaml",
        "id: loud\ndescription: \"a\\e]0;owned\\ab\\e[2Jc\\u009b31md\\u202ee\"\nschedule:\n  every: 1h\nrun:\n  command: [\"echo\", \"\\e[31mred\"]\n  cwd: \"\\e[1m.\"\n",
    );
    home.spec(
        "bad.yaml",
        "id: bad\nschedule:\n  cron: \"\\e[2J* * * * *\"\n  timezone: \"Europe/\\e[2JBerlin\"\nrun:\n  command: [\"true\"]\n  env: { \"A\\eB\": x }\n",
    );
    assert_eq!(
        home.run(&["pause", "loud", "--reason", "maintenance \x1b[5mnow\x07"])
            .code,
        0
    );
    let mut seen = Vec::new();
    for colour in ["never", "always"] {
        for args in [
            vec!["list"],
            vec!["show", "loud"],
            vec!["show", "bad"],
            vec!["validate"],
            vec!["run", "bad"],
        ] {
            let mut args = args.clone();
            args.extend(["--color", colour]);
            let outcome = home.run(&args);
            for (stream, text) in [("stdout", &outcome.stdout), ("stderr", &outcome.stderr)] {
                if colour == "never" {
                    assert!(
                        raw_controls(text).is_empty(),
                        "jobs {args:?} {stream} has raw control characters {:?}:\n{text}",
                        raw_controls(text)
                    );
                } else {
                    assert!(
                        only_colours(text),
                        "jobs {args:?} {stream} has escapes other than colours:\n{text}"
                    );
                }
            }
            seen.push(outcome.stdout + &outcome.stderr);
        }
    }
    let all = seen.join("\n");
    // Escaped, not dropped: a reader sees that the spec holds an ESC.
    for shown in [
        "a\\x1b]0;owned\\x07b",
        "\\u{9b}31md",
        "\\u{202e}e",
        "maintenance \\x1b[5mnow\\x07",
        "echo \\x1b[31mred",
        "Europe/\\x1b[2JBerlin",
        "/run/env/A\\x1bB",
    ] {
        assert!(all.contains(shown), "{shown} is not in the output:\n{all}");
    }
}

#[test]
fn an_env_written_as_text_is_never_echoed() {
    let home = TestHome::new();
    home.spec(
        "leaky.yaml",
        "id: leaky\nrun:\n  command: [\"true\"]\n  env: \"API_TOKEN=s3cr3t-t0ken-value\"\n",
    );
    let (validate, code) = home.json(&["validate"]);
    assert_eq!(code, 4);
    let problems = problems_of(&validate, "leaky.yaml");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["code"], "schema");
    assert_eq!(problems[0]["pointer"], "/run/env");
    assert_eq!(
        (problems[0]["line"].as_u64(), problems[0]["column"].as_u64()),
        (Some(4), Some(3))
    );
    assert!(
        problems[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("env values are never shown")),
        "{problems:?}"
    );
    for args in [
        vec!["validate"],
        vec!["--json", "validate"],
        vec!["list"],
        vec!["--json", "list"],
        vec!["show", "leaky"],
        vec!["--json", "show", "leaky"],
        vec!["run", "leaky"],
        vec!["status"],
    ] {
        let outcome = home.run(&args);
        assert!(
            !outcome.stdout.contains("s3cr3t") && !outcome.stderr.contains("s3cr3t"),
            "jobs {args:?} echoes the env value:\n{}{}",
            outcome.stdout,
            outcome.stderr
        );
    }
}

#[test]
fn a_linked_file_that_is_not_a_spec_is_quoted_only_in_part() {
    let home = TestHome::new();
    let elsewhere = tempfile::tempdir().expect("temporary directory");
    // The shape of /etc/shadow: YAML reads each line as a key. And a private key: one long text.
    let hash = "$6$Zq8sAlTsAlT$Kx3hAsHhAsHhAsHhAsHhAsHhAsHhAsHhAsHhAsHhAsHhAsHhAsH";
    let shadow = elsewhere.path().join("shadow");
    std::fs::write(
        &shadow,
        format!("root:{hash}:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n"),
    )
    .expect("write");
    let key = elsewhere.path().join("id_ed25519");
    let key_body = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW";
    std::fs::write(
        &key,
        format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{key_body}\n-----END OPENSSH PRIVATE KEY-----\n"
        ),
    )
    .expect("write");
    std::os::unix::fs::symlink(&shadow, home.jobs_dir().join("shadow.yaml")).expect("link");
    std::os::unix::fs::symlink(&key, home.jobs_dir().join("key.yaml")).expect("link");

    let (validate, code) = home.json(&["validate"]);
    assert_eq!(code, 4);
    let shadow_problems = problems_of(&validate, "shadow.yaml");
    assert_eq!(shadow_problems.len(), 1, "{shadow_problems:?}");
    assert_eq!(shadow_problems[0]["code"], "not_a_spec");
    assert_eq!(shadow_problems[0]["pointer"], "");
    let key_problems = problems_of(&validate, "key.yaml");
    assert_eq!(key_problems.len(), 1, "{key_problems:?}");
    assert_eq!(key_problems[0]["code"], "not_a_mapping");
    for args in [
        vec!["validate"],
        vec!["--json", "validate"],
        vec!["list"],
        vec!["--json", "list"],
        vec!["show", "shadow"],
        vec!["show", "key"],
        vec!["status"],
    ] {
        let outcome = home.run(&args);
        let all = outcome.stdout + &outcome.stderr;
        // More than a dozen characters of any line is more than a short clip.
        for secret in [
            &hash[..10],
            &key_body[..10],
            "daemon",
            "bin:*",
            "END OPENSSH",
        ] {
            assert!(
                !all.contains(secret),
                "jobs {args:?} quotes {secret:?} of a file that is not a spec:\n{all}"
            );
        }
    }
}

#[test]
fn every_below_a_second_is_refused_at_its_position() {
    let home = TestHome::new();
    for (id, every) in [("one-ms", "1ms"), ("most", "999ms")] {
        home.spec(
            &format!("{id}.yaml"),
            format!("id: {id}\nschedule:\n  every: {every}\nrun:\n  command: [\"true\"]\n"),
        );
    }
    home.spec(
        "second.yaml",
        "id: second\nschedule:\n  every: 1s\nrun:\n  command: [\"true\"]\n",
    );
    let (validate, code) = home.json(&["validate"]);
    assert_eq!(code, 4);
    for id in ["one-ms", "most"] {
        let problems = problems_of(&validate, &format!("{id}.yaml"));
        assert_eq!(problems.len(), 1, "{id}: {problems:?}");
        assert_eq!(problems[0]["code"], "every_too_short", "{id}");
        assert_eq!(problems[0]["pointer"], "/schedule/every", "{id}");
        assert_eq!(
            (problems[0]["line"].as_u64(), problems[0]["column"].as_u64()),
            (Some(3), Some(3))
        );
    }
    assert!(problems_of(&validate, "second.yaml").is_empty());
}

/// What an older `jobs` (one without the one-second minimum) wrote as its loader fingerprint.
fn older_fingerprint() -> String {
    jobs::digest::content_hash(
        format!(
            "{}{}",
            jobs::spec::load::JOB_SCHEMA,
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    )
}

#[test]
fn a_sub_second_every_that_an_older_loader_accepted_is_never_scheduled() {
    let home = TestHome::new();
    home.spec(
        "tick.yaml",
        "id: tick\nschedule:\n  every: 1s\nrun:\n  command: [\"true\"]\n",
    );
    // `fast` is unchanged since an older jobs checked it: the store would trust it unparsed.
    home.spec(
        "fast.yaml",
        "id: fast\nschedule:\n  every: 1ms\nrun:\n  command: [\"true\"]\n",
    );
    // `broken`'s file turned invalid; its last good version, checked by an older jobs, fires every 1ms.
    home.spec(
        "broken.yaml",
        "id: broken\nschedule:\n  every: 1h\nrun:\n  command: [\"true\"]\npolicy:\n  max_instances: 0\n",
    );
    // `kept` is the same with a last good version the rules still accept: it keeps running.
    home.spec(
        "kept.yaml",
        "id: kept\nschedule:\n  every: 1h\nrun:\n  command: [\"true\"]\npolicy:\n  max_instances: 0\n",
    );
    assert_eq!(home.run(&["list"]).code, 0);
    let db =
        rusqlite::Connection::open(home.path().join("db/jobs.sqlite3")).expect("open the store");
    let old = older_fingerprint();
    let stored = |id: &str, every: &str| {
        format!(
            "{{\"id\":\"{id}\",\"schedule\":{{\"every\":\"{every}\"}},\"run\":{{\"command\":[\"true\"]}}}}"
        )
    };
    db.execute(
        "UPDATE jobs SET good_hash = spec_hash, load_error = NULL, spec_json = ?1, checked_by = ?2
         WHERE id = 'fast'",
        rusqlite::params![stored("fast", "1ms"), old],
    )
    .expect("write the older loader's row");
    for (id, every) in [("broken", "1ms"), ("kept", "1h")] {
        let changed = db
            .execute(
                "UPDATE jobs SET good_hash = 'from-an-older-file', spec_json = ?1, checked_by = ?2
                 WHERE id = ?3 AND load_error IS NOT NULL",
                rusqlite::params![stored(id, every), old, id],
            )
            .expect("write the older loader's row");
        assert_eq!(changed, 1, "{id} is invalid and has a row");
    }
    drop(db);

    let (list, code) = home.json(&["list"]);
    assert_eq!(code, 0);
    let job = |id: &str| {
        list["data"]["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .find(|j| j["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {list:#}"))
            .clone()
    };
    for id in ["fast", "broken"] {
        let entry = job(id);
        assert_eq!(entry["state"], "invalid", "{id}: {entry:#}");
        assert!(entry["next_slot"].is_null(), "{id}: {entry:#}");
    }
    assert_eq!(job("fast")["problems"][0]["code"], "every_too_short");
    let kept = job("kept");
    assert_eq!(kept["state"], "active", "{kept:#}");
    assert!(kept["next_slot"].is_string(), "{kept:#}");

    let scheduler = start_scheduler(&home, &[]);
    wait_until("two runs of tick", 15, || {
        home.count("SELECT COUNT(*) FROM runs WHERE job_id = 'tick' AND status = 'succeeded'") >= 2
    });
    assert_eq!(stop(scheduler), 0);
    assert_eq!(
        home.count("SELECT COUNT(*) FROM runs WHERE job_id IN ('fast', 'broken')"),
        0,
        "a sub-second every was scheduled"
    );
}
