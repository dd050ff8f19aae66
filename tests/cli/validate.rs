//! `jobsctl validate`: every kind of bad spec is reported with a stable code, its line and column and JSON
//! pointer, and one bad file never hides the others.

use serde_json::Value;

use crate::common::{TestHome, manual_spec};

/// One invalid spec and the first problem it must produce.
struct Case {
    file: &'static str,
    text: &'static str,
    code: &'static str,
    line: u64,
    column: u64,
    pointer: &'static str,
    /// A phrase the message must contain.
    says: &'static str,
}

const fn case(
    file: &'static str,
    text: &'static str,
    code: &'static str,
    (line, column): (u64, u64),
    pointer: &'static str,
    says: &'static str,
) -> Case {
    Case {
        file,
        text,
        code,
        line,
        column,
        pointer,
        says,
    }
}

/// Positions are 1-based; a problem about a field points at its key, one about a list item at the item.
const CASES: &[Case] = &[
    case(
        "t01.yaml",
        "id: t01\nrun:\n  command: [\"true\"]\npolicy:\n  max_instances: 0\n",
        "schema",
        (5, 3),
        "/policy/max_instances",
        "0 is less than the minimum of 1",
    ),
    case(
        "t02.yaml",
        "id: t02\nrun:\n  command: [\"true\"]\n  comand: [x]\n",
        "schema",
        (4, 3),
        "/run/comand",
        "unknown field \"comand\"; did you mean \"command\"?",
    ),
    case(
        "t03.yaml",
        "id: t03\nid: t03\nrun:\n  command: [\"true\"]\n",
        "duplicate_key",
        (2, 1),
        "",
        "appears twice",
    ),
    case(
        "t04.yaml",
        "- id: t04\n- run: x\n",
        "not_a_mapping",
        (1, 1),
        "",
        "found a list",
    ),
    case(
        "t05.yaml",
        "",
        "empty_file",
        (1, 1),
        "",
        "the file is empty",
    ),
    case(
        "t06.yaml",
        "# only a comment\n\n",
        "empty_file",
        (1, 1),
        "",
        "the file is empty",
    ),
    case(
        "t07.yaml",
        "id: t07\nrun:\n  command: [\"true\"]\nschedule:\n  cron: \"0 0 31 2 *\"\n  timezone: UTC\n",
        "cron_never_fires",
        (5, 3),
        "/schedule/cron",
        "no occurrence in the next 5 years",
    ),
    case(
        "t08.yaml",
        "id: t08\nrun:\n  command: [\"true\"]\nschedule:\n  cron: \"* * *\"\n  timezone: UTC\n",
        "invalid_cron",
        (5, 3),
        "/schedule/cron",
        "between 5 and 7 fields",
    ),
    case(
        "t09.yaml",
        "id: t09\nrun:\n  command: [\"true\"]\nschedule:\n  cron: \"@daily\"\n  timezone: America/NewYork\n",
        "unknown_timezone",
        (6, 3),
        "/schedule/timezone",
        "did you mean America/New_York?",
    ),
    case(
        "t10.yaml",
        "id: t10\nrun:\n  command: [\"true\"]\n  timeout: 10x\n",
        "schema",
        (4, 3),
        "/run/timeout",
        "\"10x\" is not a duration",
    ),
    case(
        "t11.yaml",
        "id: t11\nrun:\n  command: [\"true\"]\n  shell: \"true\"\n",
        "run_conflict",
        (4, 3),
        "/run/shell",
        "either command or shell",
    ),
    case(
        "t12.yaml",
        "id: t12\nrun:\n  cwd: /tmp\n",
        "run_empty",
        (2, 1),
        "/run",
        "run needs command",
    ),
    case(
        "t13.yaml",
        "id: t13\nrun:\n  command: [\"true\"]\nschedule:\n  cron: \"@daily\"\n",
        "schema",
        (4, 1),
        "/schedule",
        "missing required field \"timezone\"",
    ),
    case(
        "t14.yaml",
        "id: other\nrun:\n  command: [\"true\"]\n",
        "id_mismatch",
        (1, 1),
        "/id",
        "does not match the file name \"t14\"",
    ),
    case(
        "t15.yaml",
        "id: t15\nenabled: yes\nrun:\n  command: [\"true\"]\n",
        "schema",
        (2, 1),
        "/enabled",
        "expected true or false, found the text \"yes\"",
    ),
    case(
        "T16.yaml",
        "id: t16\nrun:\n  command: [\"true\"]\n",
        "invalid_file_name",
        (1, 1),
        "",
        "\"T16\" is not a valid job id",
    ),
    case(
        "t17.yaml",
        "id: t17\ndescription: no run section\n",
        "schema",
        (1, 1),
        "",
        "missing required field \"run\"",
    ),
    case(
        "t18.yaml",
        "run:\n  command: [\"true\"]\n",
        "schema",
        (1, 1),
        "",
        "missing required field \"id\"",
    ),
    case(
        "t19.yaml",
        "id: t19\nrun:\n  command: [\"true\"]\nschedule:\n  cron: \"@daily\"\n  timezone: UTC\n  every: 1h\n",
        "schedule_conflict",
        (7, 3),
        "/schedule/every",
        "either cron or every",
    ),
    case(
        "t20.yaml",
        "id: t20\nrun:\n  command: [\"true\"]\nschedule:\n  timezone: UTC\n",
        "schedule_empty",
        (4, 1),
        "/schedule",
        "a schedule needs cron or every",
    ),
    case(
        "t21.yaml",
        "id: t21\nrun:\n  command: [\"true\"]\nschedule:\n  every: 0s\n",
        "invalid_duration",
        (5, 3),
        "/schedule/every",
        "must be longer than zero",
    ),
    case(
        "t22.yaml",
        "id: t22\nrun:\n  command: [\"true\"]\nschedule:\n  every: 99999999999999999999s\n",
        "invalid_duration",
        (5, 3),
        "/schedule/every",
        "too large",
    ),
    case(
        "t23.yaml",
        "id: t23\nrun:\n  command: [\"true\"]\npolicy:\n  overlap: sometimes\n",
        "schema",
        (5, 3),
        "/policy/overlap",
        "\"sometimes\" is not one of \"skip\", \"queue\", \"replace\"",
    ),
    case(
        "t24.yaml",
        "id: t24\nrun:\n  command: [\"true\"]\npolicy:\n  misfire_grace: forever\n",
        "schema",
        (5, 3),
        "/policy/misfire_grace",
        "nor \"unlimited\"",
    ),
    case(
        "t25.yaml",
        "id: t25\nrun:\n  command: [\"true\"]\nretry:\n  retry_on: [failed, crashed]\n",
        "schema",
        (5, 22),
        "/retry/retry_on/1",
        "\"crashed\" is not one of",
    ),
    case(
        "t26.yaml",
        "id: t26\nrun:\n  command: [\"true\"]\n  env:\n    JOBS_JOB_ID: mine\n",
        "reserved_env",
        (5, 5),
        "/run/env/JOBS_JOB_ID",
        "is reserved",
    ),
    case(
        "t27.yaml",
        "id: t27\nrun:\n  command: [\"true\"]\ntags: [ok, Not Ok]\n",
        "schema",
        (4, 12),
        "/tags/1",
        "not a valid tag",
    ),
    case(
        "t28.yaml",
        "id: t28\nrun:\n  command: []\n",
        "schema",
        (3, 3),
        "/run/command",
        "the list must not be empty",
    ),
    case(
        "t29.yaml",
        "id: t29\nrun:\n  command: [\"\"]\n",
        "schema",
        (3, 13),
        "/run/command/0",
        "must not be empty",
    ),
    case(
        "t30.yaml",
        "id: t30\nrun:\n  command: [\"true\"]\npolicy:\n  max_instances: 1.5\n",
        "schema",
        (5, 3),
        "/policy/max_instances",
        "expected a whole number, found the number 1.5",
    ),
    case(
        "t31.yaml",
        "id: t31\nrun:\n  command: [\"true\"]\n  timeout: 30\n",
        "schema",
        (4, 3),
        "/run/timeout",
        "expected text, found the number 30",
    ),
    case(
        "t32.yaml",
        "id: t32\nrun:\n  command: [\"true\"]\nschedule:\n  cron: \"@daily\"\n  timezone: UTC\n  anchor: 2026-01-01T00:00:00Z\n",
        "schedule_conflict",
        (7, 3),
        "/schedule/anchor",
        "anchor only applies to every",
    ),
    case(
        "t33.yaml",
        "id: t33\nrun:\n  command: [\"true\"]\nschedule:\n  every: 1h\n  anchor: yesterday\n",
        "schema",
        (6, 3),
        "/schedule/anchor",
        "not an RFC 3339 date-time",
    ),
    case(
        "t34.yaml",
        "id: t34\nrun:\n  command: [\"true\"]\n---\nid: t34b\n",
        "multiple_documents",
        (5, 1),
        "",
        "more than one YAML document",
    ),
    case(
        "t35.yaml",
        "id: t35\nrun:\n  command: !custom [\"true\"]\n",
        "yaml_tag",
        (3, 12),
        "/run/command",
        "tags such as",
    ),
    case(
        "t36.yaml",
        "id: t36\n1: one\nrun:\n  command: [\"true\"]\n",
        "yaml_key",
        (2, 1),
        "",
        "keys must be plain text, found the number 1",
    ),
    case(
        "t37.yaml",
        "id: t37\nrun:\n  command: [\"true\"]\npolicy:\n  max_instances: .inf\n",
        "yaml_value",
        (5, 18),
        "/policy/max_instances",
        "infinite and NaN",
    ),
    case(
        "t38.yaml",
        "id: T38\nrun:\n  command: [\"true\"]\n",
        "schema",
        (1, 1),
        "/id",
        "\"T38\" is not a valid id",
    ),
    case(
        "t39.yaml",
        "id: ../t39\nrun:\n  command: [\"true\"]\n",
        "schema",
        (1, 1),
        "/id",
        "is not a valid id",
    ),
    // The "е" below is CYRILLIC SMALL LETTER IE, a look-alike of the Latin "e".
    case(
        "t40.yaml",
        "id: t4\u{435}0\nrun:\n  command: [\"true\"]\n",
        "schema",
        (1, 1),
        "/id",
        "is not a valid id",
    ),
    case(
        "t41.yaml",
        "hello\n",
        "not_a_mapping",
        (1, 1),
        "",
        "found the text \"hello\"",
    ),
    case(
        "t42.yaml",
        "id: t42\nrun:\n  command: [\"true\"]\nschedul:\n  every: 1h\n",
        "schema",
        (4, 1),
        "/schedul",
        "did you mean \"schedule\"?",
    ),
    case(
        "t43.yaml",
        "id: t43\nrun:\n  command: [\"true\"\n",
        "yaml_syntax",
        (4, 1),
        "",
        "invalid YAML",
    ),
    case(
        "t44.yaml",
        "id: t44\nrun:\n  command: [\"true\"]\n  env:\n    1BAD: x\n",
        "schema",
        (5, 5),
        "/run/env/1BAD",
        "\"1BAD\" is not a valid environment variable name",
    ),
    case(
        "t45.yaml",
        "id: t45\nrun:\n  command: [\"true\"]\nretention:\n  keep_last: 0\n",
        "schema",
        (5, 3),
        "/retention/keep_last",
        "0 is less than the minimum of 1",
    ),
    case(
        "t46.yaml",
        "id: t46\nrun:\n  command: [\"true\"]\nretry:\n  max_attempts: 101\n",
        "schema",
        (5, 3),
        "/retry/max_attempts",
        "101 is greater than the maximum of 100",
    ),
    case(
        "t47.yaml",
        "id: t47\nrun:\n  command: [\"true\"]\nschedule:\n  every: 1h30\n",
        "schema",
        (5, 3),
        "/schedule/every",
        "\"1h30\" is not a duration",
    ),
    case(
        "t48.yaml",
        "id: t48\nrun:\n  command: [\"true\"]\nschedule:\n  cron: \"61 * * * *\"\n  timezone: UTC\n",
        "invalid_cron",
        (5, 3),
        "/schedule/cron",
        "not a valid cron pattern",
    ),
];

fn problems_of<'a>(report: &'a Value, file: &str) -> &'a Vec<Value> {
    let files = report["data"]["files"].as_array().expect("data.files");
    let entry = files
        .iter()
        .find(|f| {
            f["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(&format!("jobs/{file}")))
        })
        .unwrap_or_else(|| panic!("{file} missing from {report:#}"));
    assert_eq!(entry["ok"], false, "{file} should be invalid");
    entry["problems"].as_array().expect("problems")
}

#[test]
fn every_invalid_spec_gets_its_code_position_and_pointer() {
    let home = TestHome::new();
    for case in CASES {
        home.spec(case.file, case.text);
    }
    home.spec("good.yaml", manual_spec("good"));
    let (report, code) = home.json(&["validate"]);
    assert_eq!(code, 4, "invalid specs exit 4");
    assert_eq!(report["ok"], false);
    assert_eq!(report["error"]["code"], "job_invalid_spec");
    assert_eq!(report["data"]["total"], CASES.len() + 1);
    assert_eq!(report["data"]["invalid"], CASES.len());

    let mut failures = Vec::new();
    for case in CASES {
        let problems = problems_of(&report, case.file);
        let first = &problems[0];
        let got = (
            first["code"].as_str().unwrap_or_default(),
            first["line"].as_u64().unwrap_or_default(),
            first["column"].as_u64().unwrap_or_default(),
            first["pointer"].as_str().unwrap_or_default(),
        );
        let message = first["message"].as_str().unwrap_or_default();
        if got != (case.code, case.line, case.column, case.pointer) || !message.contains(case.says)
        {
            failures.push(format!(
                "{}: expected {} {}:{} {:?} containing {:?}\n      got {} {}:{} {:?} {:?}",
                case.file,
                case.code,
                case.line,
                case.column,
                case.pointer,
                case.says,
                got.0,
                got.1,
                got.2,
                got.3,
                message
            ));
        }
        for problem in problems {
            let message = problem["message"].as_str().unwrap_or_default();
            if message.starts_with(char::is_uppercase) {
                failures.push(format!("{}: messages are lowercase: {message}", case.file));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let good = report["data"]["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["path"] == "jobs/good.yaml"))
        .expect("good.yaml reported");
    assert_eq!(good["ok"], true, "one bad file never stops the others");
}

#[test]
fn human_output_is_path_line_column_pointer_message() {
    let home = TestHome::new();
    home.spec(
        "a.yaml",
        "id: a\nrun:\n  command: [\"true\"]\npolicy:\n  max_instances: 0\n",
    );
    home.spec("b.yaml", manual_spec("b"));
    let outcome = home.run(&["validate"]);
    assert_eq!(outcome.code, 4);
    assert_eq!(
        outcome.stdout,
        "jobs/a.yaml:5:3: /policy/max_instances: 0 is less than the minimum of 1\n1 of 2 spec files invalid\n"
    );
    assert!(
        outcome.stderr.contains("error: 1 spec file is invalid"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn several_problems_in_one_file_are_all_reported_in_document_order() {
    let home = TestHome::new();
    home.spec(
        "multi.yaml",
        "id: multi\nrun:\n  command: [\"true\"]\n  timeout: soon\npolicy:\n  max_instances: 0\n  overlap: maybe\n",
    );
    let (report, _) = home.json(&["validate"]);
    let pointers: Vec<&str> = problems_of(&report, "multi.yaml")
        .iter()
        .filter_map(|p| p["pointer"].as_str())
        .collect();
    assert_eq!(
        pointers,
        ["/run/timeout", "/policy/max_instances", "/policy/overlap"]
    );
}

#[test]
fn alias_bombs_are_refused_without_exhausting_memory() {
    let home = TestHome::new();
    let mut text = String::from(
        "id: bomb\nrun:\n  command: [\"true\"]\na: &a [x, x, x, x, x, x, x, x, x, x]\n",
    );
    let names = ["b", "c", "d", "e", "f", "g", "h", "i"];
    let mut previous = "a";
    for name in names {
        let refs = vec![format!("*{previous}"); 10].join(", ");
        text.push_str(&format!("{name}: &{name} [{refs}]\n"));
        previous = name;
    }
    home.spec("bomb.yaml", &text);
    let (report, code) = home.json(&["validate"]);
    assert_eq!(code, 4);
    let first = &problems_of(&report, "bomb.yaml")[0];
    assert_eq!(first["code"], "yaml_syntax");
    assert!(
        first["message"]
            .as_str()
            .is_some_and(|m| m.contains("aliases expand to too many nodes")),
        "{first}"
    );
}

#[test]
fn deep_nesting_is_a_problem_not_a_crash() {
    let home = TestHome::new();
    let text = format!(
        "id: deep\nrun:\n  command: [\"true\"]\nx: {}{}\n",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    home.spec("deep.yaml", &text);
    let (report, code) = home.json(&["validate"]);
    assert_eq!(code, 4);
    assert_eq!(problems_of(&report, "deep.yaml")[0]["code"], "yaml_syntax");
}

#[test]
fn files_over_one_mebibyte_are_not_parsed() {
    let home = TestHome::new();
    let mut text = manual_spec("big").into_bytes();
    text.extend(std::iter::repeat_n(b'#', 1024 * 1024));
    home.spec("big.yaml", &text);
    let (report, _) = home.json(&["validate"]);
    let first = &problems_of(&report, "big.yaml")[0];
    assert_eq!(
        (first["code"].as_str(), first["line"].as_u64()),
        (Some("file_too_large"), Some(1))
    );
}

#[test]
fn non_utf8_is_located_at_the_first_bad_byte() {
    let home = TestHome::new();
    home.spec(
        "bytes.yaml",
        b"id: bytes\nrun:\n  command: [\"tr\xffue\"]\n".as_slice(),
    );
    let (report, _) = home.json(&["validate"]);
    let first = &problems_of(&report, "bytes.yaml")[0];
    assert_eq!(
        (
            first["code"].as_str(),
            first["line"].as_u64(),
            first["column"].as_u64()
        ),
        (Some("not_utf8"), Some(3), Some(16))
    );
}

#[test]
fn a_yaml_and_a_yml_with_the_same_id_conflict() {
    let home = TestHome::new();
    home.spec("dup.yaml", manual_spec("dup"));
    home.spec("dup.yml", manual_spec("dup"));
    let (report, _) = home.json(&["validate"]);
    let first = &problems_of(&report, "dup.yml")[0];
    assert_eq!(first["code"], "duplicate_id");
}

#[test]
fn explicit_paths_are_checked_and_hidden_and_backup_files_are_ignored() {
    let home = TestHome::new();
    home.spec("ok.yaml", manual_spec("ok"));
    home.spec(".hidden.yaml", "garbage: [");
    home.spec("ok.yaml~", "garbage: [");
    let (report, code) = home.json(&["validate"]);
    assert_eq!((code, report["data"]["total"].as_u64()), (0, Some(1)));

    let path = home.jobs_dir().join("ok.yaml");
    let outcome = home.run(&["validate", path.to_str().expect("utf-8 path")]);
    assert_eq!(outcome.code, 0, "{}", outcome.stdout);
    assert_eq!(outcome.stdout, "1 spec file valid\n");
}

#[test]
fn every_bundled_example_validates() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs");
    let mut count = 0;
    for entry in std::fs::read_dir(&examples).expect("jobs/ exists") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !jobs::spec::load::is_spec_file_name(&name) {
            continue;
        }
        let file = jobs::spec::load_file(&path, chrono::Utc::now());
        assert!(file.is_ok(), "{name}: {:?}", file.problems());
        let text = std::fs::read_to_string(&path).expect("read example");
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schemas/job.schema.json"),
            "{name} carries the schema modeline for editors"
        );
        count += 1;
    }
    assert!(count >= 5, "at least five examples ship, found {count}");
}

#[test]
fn problem_messages_never_show_env_values_and_clip_huge_ones() {
    let home = TestHome::new();
    home.spec(
        "env.yaml",
        "id: env\nrun:\n  command: [\"true\"]\n  env:\n    PIN: 480915\n",
    );
    home.spec(
        "big.yaml",
        format!(
            "id: big\ndescription: \"{}\"\nrun:\n  command: [\"true\"]\n",
            "x".repeat(5000)
        ),
    );
    let out = home.run(&["validate"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(!out.stdout.contains("480915"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("env.yaml:5:5: /run/env/PIN: expected text, found a number"),
        "{}",
        out.stdout
    );
    let big = out
        .stdout
        .lines()
        .find(|l| l.contains("big.yaml"))
        .expect("a problem for big.yaml");
    assert!(big.len() < 400, "clipped: {} bytes", big.len());
    assert!(big.contains("characters in all"), "{big}");
}

#[test]
fn a_nul_in_a_command_path_or_env_is_a_spec_problem() {
    let home = TestHome::new();
    home.spec(
        "nul.yaml",
        "id: nul\nrun:\n  command: [\"echo\", \"a\\0b\"]\n  cwd: \"x\\0\"\n  env:\n    K: \"v\\0\"\n",
    );
    let (report, code) = home.json(&["validate"]);
    assert_eq!(code, 4, "{report}");
    let found: Vec<(String, String)> = problems_of(&report, "nul.yaml")
        .iter()
        .map(|p| {
            (
                p["code"].as_str().unwrap_or_default().to_owned(),
                p["pointer"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for pointer in ["/run/command/1", "/run/cwd", "/run/env/K"] {
        assert!(
            found.contains(&("nul_byte".into(), pointer.into())),
            "{pointer}: {found:?}"
        );
    }
}

#[test]
fn many_specs_load_in_name_order_with_duplicates_found() {
    // Enough files for the loader to spread them over threads: the result must not depend on it.
    let home = TestHome::new();
    for i in 0..700 {
        let id = format!("job-{i:04}");
        let body = if i % 100 == 7 {
            format!("id: {id}\nrun: [oops\n")
        } else {
            manual_spec(&id)
        };
        home.spec(&format!("{id}.yaml"), body);
    }
    home.spec("job-0650.yml", manual_spec("job-0650"));
    let (report, code) = home.json(&["validate"]);
    assert_eq!(code, 4, "{report}");
    let files = report["data"]["files"].as_array().expect("files");
    let names: Vec<&str> = files.iter().filter_map(|f| f["path"].as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "in name order");
    assert_eq!(names.len(), 701);
    let invalid: Vec<&str> = files
        .iter()
        .filter(|f| f["problems"].as_array().is_some_and(|p| !p.is_empty()))
        .filter_map(|f| f["path"].as_str())
        .collect();
    let mut expected: Vec<String> = (0..7)
        .map(|k| format!("jobs/job-{:04}.yaml", k * 100 + 7))
        .collect();
    expected.push("jobs/job-0650.yml".into());
    expected.sort();
    assert_eq!(invalid, expected);
    assert_eq!(
        problems_of(&report, "job-0650.yml")[0]["code"],
        "duplicate_id"
    );
}
