//! Bad input, through the real binary and the library: malformed and hostile spec files, arbitrary
//! durations, cron patterns and time zones, a corrupted store, an unusable `runs/` directory. Whatever
//! the input, `jobs` never panics, reports every spec problem with a position, keeps loading the other
//! specs, and names the path it could not use.

#![expect(
    clippy::expect_used,
    reason = "a test that cannot set up must fail loudly"
)]

#[path = "cli/common.rs"]
#[expect(
    dead_code,
    reason = "the shared builder has helpers these tests do not need"
)]
mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use jobs::schedule::{Schedule, parse_cron, parse_timezone};
use jobs::spec::duration::SpecDuration;
use jobs::spec::{Problem, load_file, load_source};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use serde_json::Value;

use common::{KillOnDrop, Outcome, SchedulerStart, TestHome, wait_exit, wait_until};

/// The problem codes the README documents; anything else (such as `internal`) is a bug.
const PROBLEM_CODES: &[&str] = &[
    "schema",
    "yaml_syntax",
    "duplicate_key",
    "yaml_tag",
    "yaml_key",
    "yaml_value",
    "not_a_mapping",
    "empty_file",
    "multiple_documents",
    "not_utf8",
    "file_too_large",
    "unreadable",
    "invalid_file_name",
    "duplicate_id",
    "id_mismatch",
    "invalid_cron",
    "cron_never_fires",
    "unknown_timezone",
    "invalid_duration",
    "invalid_size",
    "invalid_anchor",
    "schedule_conflict",
    "schedule_empty",
    "run_conflict",
    "run_empty",
    "reserved_env",
    "unsafe_permissions",
    "nesting_too_deep",
    "nul_byte",
    "not_a_regular_file",
    "not_a_spec",
    "every_too_short",
];

/// Proptest settings for properties that spawn the binary: few cases (each costs several processes),
/// and no regression files written into the source tree.
fn process_config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
        .single()
        .expect("a valid instant")
}

/// A process that panicked prints "panicked" and exits 101; one killed by a signal has no exit code.
fn assert_no_crash(what: &str, outcome: &Outcome) {
    assert!(
        !outcome.stderr.contains("panicked") && !outcome.stdout.contains("panicked"),
        "{what} panicked:\n{}",
        outcome.stderr
    );
    assert!(
        ![101, -1, 70].contains(&outcome.code),
        "{what} crashed or reported a bug (exit {}):\n{}\n{}",
        outcome.code,
        outcome.stdout,
        outcome.stderr
    );
}

fn assert_problem_well_formed(where_: &str, problem: &Value) {
    let code = problem["code"].as_str().unwrap_or_default();
    assert!(
        PROBLEM_CODES.contains(&code),
        "{where_}: undocumented problem code {code:?}: {problem}"
    );
    assert!(
        problem["line"].as_u64().is_some_and(|l| l >= 1),
        "{where_}: no line: {problem}"
    );
    assert!(
        problem["column"].as_u64().is_some_and(|c| c >= 1),
        "{where_}: no column: {problem}"
    );
    assert!(
        problem["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{where_}: no message: {problem}"
    );
    assert!(problem["pointer"].is_string(), "{where_}: no pointer");
}

fn assert_library_problems_well_formed(where_: &str, problems: &[Problem]) {
    assert!(!problems.is_empty(), "{where_}: invalid without a problem");
    for p in problems {
        let value = serde_json::to_value(p).expect("a problem is JSON");
        assert_problem_well_formed(where_, &value);
    }
}

// ---------------------------------------------------------------------------------------------------
// A valid spec with every field, and its mutations
// ---------------------------------------------------------------------------------------------------

/// One line of the full spec: its JSON pointer, nesting depth, key, and value (`None` for a section
/// whose fields follow on deeper lines).
struct Field {
    pointer: &'static str,
    depth: usize,
    key: &'static str,
    value: Option<&'static str>,
}

const fn f(
    pointer: &'static str,
    depth: usize,
    key: &'static str,
    value: Option<&'static str>,
) -> Field {
    Field {
        pointer,
        depth,
        key,
        value,
    }
}

/// Every field of the spec format with a valid value; the `id` is filled in per file.
const CRON_SPEC: &[Field] = &[
    f("/id", 0, "id", Some("{ID}")),
    f(
        "/description",
        0,
        "description",
        Some("\"every field set\""),
    ),
    f("/enabled", 0, "enabled", Some("true")),
    f("/schedule", 0, "schedule", None),
    f("/schedule/cron", 1, "cron", Some("\"30 2 * * *\"")),
    f("/schedule/timezone", 1, "timezone", Some("Europe/Berlin")),
    f("/schedule/jitter", 1, "jitter", Some("30s")),
    f("/run", 0, "run", None),
    f("/run/command", 1, "command", Some("[\"true\", \"--flag\"]")),
    f("/run/cwd", 1, "cwd", Some(".")),
    f("/run/env", 1, "env", Some("{ REPORT_FORMAT: pdf }")),
    f("/run/timeout", 1, "timeout", Some("10m")),
    f("/run/kill_grace", 1, "kill_grace", Some("10s")),
    f("/policy", 0, "policy", None),
    f("/policy/max_instances", 1, "max_instances", Some("2")),
    f("/policy/overlap", 1, "overlap", Some("queue")),
    f("/policy/coalesce", 1, "coalesce", Some("false")),
    f("/policy/misfire_grace", 1, "misfire_grace", Some("5m")),
    f("/retry", 0, "retry", None),
    f("/retry/max_attempts", 1, "max_attempts", Some("3")),
    f("/retry/backoff", 1, "backoff", Some("10s")),
    f("/retry/max_backoff", 1, "max_backoff", Some("10m")),
    f(
        "/retry/retry_on",
        1,
        "retry_on",
        Some("[failed, timed_out]"),
    ),
    f("/retention", 0, "retention", None),
    f("/retention/keep_last", 1, "keep_last", Some("200")),
    f("/retention/keep_days", 1, "keep_days", Some("30")),
    f("/tags", 0, "tags", Some("[reports, nightly]")),
];

/// The fields only an `every` schedule has, and the rest of a small spec around them.
const EVERY_SPEC: &[Field] = &[
    f("/id", 0, "id", Some("{ID}")),
    f("/schedule", 0, "schedule", None),
    f("/schedule/every", 1, "every", Some("15m")),
    f(
        "/schedule/anchor",
        1,
        "anchor",
        Some("2026-01-01T00:00:00Z"),
    ),
    f("/schedule/timezone", 1, "timezone", Some("UTC")),
    f("/run", 0, "run", None),
    f("/run/shell", 1, "shell", Some("\"echo hi | cat\"")),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Bool,
    List,
    Map,
    Null,
}

const KINDS: [Kind; 6] = [
    Kind::Text,
    Kind::Number,
    Kind::Bool,
    Kind::List,
    Kind::Map,
    Kind::Null,
];

impl Kind {
    fn of(field: &Field) -> Self {
        match field.value {
            None => Self::Map,
            Some(v) if v.starts_with('[') => Self::List,
            Some(v) if v.starts_with('{') && v != "{ID}" => Self::Map,
            Some("true" | "false") => Self::Bool,
            Some(v) if v.bytes().all(|b| b.is_ascii_digit()) => Self::Number,
            Some(_) => Self::Text,
        }
    }

    fn sample(self) -> &'static str {
        match self {
            Self::Text => "\"some text\"",
            Self::Number => "42",
            Self::Bool => "false",
            Self::List => "[1, two]",
            Self::Map => "{ a: 1 }",
            Self::Null => "null",
        }
    }
}

/// Renders `fields` as YAML with `id`; with `replace`, the field at that index gets the value instead
/// (a section's own fields are then left out). Returns the text and the 1-based line of every field.
fn render(fields: &[Field], id: &str, replace: Option<(usize, &str)>) -> (String, Vec<usize>) {
    let mut text = String::new();
    let mut lines = vec![0; fields.len()];
    let mut line = 0;
    let mut skip_deeper_than = None;
    for (i, field) in fields.iter().enumerate() {
        if let Some(depth) = skip_deeper_than {
            if field.depth > depth {
                continue;
            }
            skip_deeper_than = None;
        }
        line += 1;
        lines[i] = line;
        let indent = "  ".repeat(field.depth);
        let value = match replace {
            Some((at, value)) if at == i => {
                if field.value.is_none() {
                    skip_deeper_than = Some(field.depth);
                }
                Some(value.to_owned())
            }
            _ => field.value.map(|v| v.replace("{ID}", id)),
        };
        match value {
            Some(value) => text.push_str(&format!("{indent}{}: {value}\n", field.key)),
            None => text.push_str(&format!("{indent}{}:\n", field.key)),
        }
    }
    (text, lines)
}

fn full_spec(id: &str) -> String {
    render(CRON_SPEC, id, None).0
}

/// Every (spec, field, other type) combination.
fn wrong_type_cases() -> Vec<(&'static [Field], usize, Kind)> {
    let mut cases = Vec::new();
    for spec in [CRON_SPEC, EVERY_SPEC] {
        for (i, field) in spec.iter().enumerate() {
            for kind in KINDS {
                if kind != Kind::of(field) {
                    cases.push((spec, i, kind));
                }
            }
        }
    }
    cases
}

#[test]
fn the_full_specs_are_valid() {
    for (spec, id) in [(CRON_SPEC, "full"), (EVERY_SPEC, "every")] {
        let (text, _) = render(spec, id, None);
        if let Err(problems) = load_source(&text, id, now()) {
            panic!("the base spec must be valid:\n{text}\n{problems:#?}");
        }
    }
}

#[test]
fn a_wrong_type_at_any_field_is_reported_at_that_field() {
    let cases = wrong_type_cases();
    assert!(cases.len() > 150, "every field gets every other type");
    for (spec, i, kind) in cases {
        let field = &spec[i];
        let (text, lines) = render(spec, "mutant", Some((i, kind.sample())));
        let Err(problems) = load_source(&text, "mutant", now()) else {
            panic!("{} as {kind:?} was accepted:\n{text}", field.pointer);
        };
        let where_ = format!("{} as {kind:?}", field.pointer);
        assert_library_problems_well_formed(&where_, &problems);
        let column = field.depth * 2 + 1;
        assert!(
            problems
                .iter()
                .any(|p| p.pointer == field.pointer && p.line == lines[i] && p.column == column),
            "{where_}: no problem at {}:{column} for the field:\n{text}\n{problems:#?}",
            lines[i]
        );
    }
}

#[test]
fn every_wrong_type_through_jobs_validate_is_positioned_and_the_good_spec_still_loads() {
    let home = TestHome::new();
    let mut expected = Vec::new();
    for (n, (spec, i, kind)) in wrong_type_cases().into_iter().enumerate() {
        let id = format!("m{n:03}");
        let (text, lines) = render(spec, &id, Some((i, kind.sample())));
        home.spec(&format!("{id}.yaml"), &text);
        expected.push((id, spec[i].pointer, lines[i], spec[i].depth * 2 + 1));
    }
    home.spec("good.yaml", full_spec("good"));
    let outcome = home.run(&["--json", "validate"]);
    assert_no_crash("validate", &outcome);
    assert_eq!(outcome.code, 4, "{}", outcome.stderr);
    let report = outcome.json();
    assert_eq!(report["error"]["code"], "job_invalid_spec");
    assert_eq!(report["data"]["invalid"], expected.len());
    let files = report["data"]["files"].as_array().expect("files");
    for (id, pointer, line, column) in &expected {
        let path = format!("jobs/{id}.yaml");
        let file = files
            .iter()
            .find(|f| f["path"] == path.as_str())
            .unwrap_or_else(|| panic!("{path} is reported"));
        assert_eq!(file["ok"], false, "{path}");
        let problems = file["problems"].as_array().expect("problems");
        for problem in problems {
            assert_problem_well_formed(&path, problem);
        }
        assert!(
            problems.iter().any(|p| p["pointer"] == *pointer
                && p["line"] == *line as u64
                && p["column"] == *column as u64),
            "{path}: no problem at {line}:{column} {pointer}: {problems:?}"
        );
    }
    let good = files
        .iter()
        .find(|f| f["path"] == "jobs/good.yaml")
        .expect("good.yaml is reported");
    assert_eq!(good["ok"], true);

    let (list, code) = home.json(&["list"]);
    assert_eq!(code, 0);
    let jobs = list["data"]["jobs"].as_array().expect("jobs");
    let good = jobs
        .iter()
        .find(|j| j["id"] == "good")
        .expect("good listed");
    assert_eq!(good["state"], "active");
    assert!(good["next_slot"].is_string(), "the good job is scheduled");
}

// ---------------------------------------------------------------------------------------------------
// Hostile files: generators
// ---------------------------------------------------------------------------------------------------

/// Ids that must never be accepted, as `id:` values.
const HOSTILE_IDS: &[&str] = &[
    "../escape",
    "../../../tmp/escape",
    "a/../../b",
    "/etc/passwd",
    "..",
    ".",
    "",
    "job\\0nul",
    "Job",
    "JOB",
    "j\u{043e}b",               // Cyrillic o
    "\u{0430}dmin",             // Cyrillic a
    "job\u{200b}",              // zero-width space
    "\u{ff4a}\u{ff4f}\u{ff42}", // fullwidth
    "job ",
    " job",
    "-job",
    "_job",
    "job\\n",
    "job/x",
    "job\\\\x",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", // 64 characters
];

/// File stems that are not ids (a stem cannot contain '/' or NUL).
const HOSTILE_STEMS: &[&str] = &[
    "Job",
    "j\u{043e}b",
    "\u{0430}dmin",
    "job\u{200b}",
    "\u{ff4a}\u{ff4f}\u{ff42}",
    "a b",
    "-job",
    "_job",
    "a.b",
    "caf\u{e9}",
    "job\n",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
];

/// Characters a terminal acts on: ESC (with a screen clear and a title change), BEL, backspace, CR, a
/// C1 CSI, DEL and a bidi override.
const CONTROLS: &[&str] = &[
    "\\e[2J",
    "\\e]0;owned\\a",
    "\\a",
    "\\b",
    "\\r",
    "\\u009b31m",
    "\\x7f",
    "\\u202e",
];

/// Stands for a secret in an env value; it must appear in no output.
const ENV_SECRET: &str = "s3cr3t-env-value";

/// Ways to write `env` that are not a mapping of names to text, each holding [`ENV_SECRET`].
const ENV_SHAPES: &[&str] = &[
    "\"API_TOKEN=s3cr3t-env-value\"",
    "API_TOKEN=s3cr3t-env-value",
    "[\"API_TOKEN=s3cr3t-env-value\"]",
    "\n    - API_TOKEN=s3cr3t-env-value",
    "{ API_TOKEN: [s3cr3t-env-value] }",
    "{ API_TOKEN: { s3cr3t-env-value: 1 } }",
    "{ API_TOKEN: 1234567, OTHER: s3cr3t-env-value }",
];

/// Characters that mean something to YAML, for mutating a valid spec.
const YAML_NOISE: &[u8] = b"-:[]{},&*!|>'\"%@#` \t\n\\?0aZ\xc3\xff\x00";

#[derive(Debug, Clone)]
enum Hostile {
    /// Random bytes.
    Bytes(Vec<u8>),
    /// The full spec cut after this many bytes (modulo its length).
    Truncated(usize),
    /// The full spec with bytes replaced or inserted at positions (modulo its length).
    Mutated(Vec<(usize, u8, bool)>),
    /// One of [`wrong_type_cases`]: a field of a valid spec given a value of another type.
    WrongType(usize),
    /// Nested flow collections (`[[[` or `{a: {a:`) or block lists.
    Nested(usize, u8),
    /// A long string in a field that has a limit, or a file over the 1 MiB limit.
    Huge(usize),
    /// Billion laughs: `levels` of 10 aliases each.
    AliasBomb(usize),
    /// A valid spec whose `id` is one of [`HOSTILE_IDS`].
    Id(usize),
    /// A valid spec in a file named after one of [`HOSTILE_STEMS`].
    Stem(usize),
    /// Not a regular file: a FIFO, a directory, a socket, or a link to a device.
    Special(u8),
    /// One of [`CONTROLS`] (by index) written into a field (by index) of a spec, valid or not.
    Controls(usize, u8),
    /// `env` written as one of [`ENV_SHAPES`].
    EnvShape(usize),
}

fn hostile() -> impl Strategy<Value = Hostile> {
    let cases = wrong_type_cases().len();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..400).prop_map(Hostile::Bytes),
        any::<usize>().prop_map(Hostile::Truncated),
        proptest::collection::vec((any::<usize>(), 0..YAML_NOISE.len(), any::<bool>()), 1..6)
            .prop_map(|edits| Hostile::Mutated(
                edits
                    .into_iter()
                    .map(|(at, c, insert)| (at, YAML_NOISE[c], insert))
                    .collect()
            )),
        (0..cases).prop_map(Hostile::WrongType),
        (1usize..3000, 0u8..3).prop_map(|(d, k)| Hostile::Nested(d, k)),
        prop_oneof![501usize..5000, Just(1024 * 1024 + 1)].prop_map(Hostile::Huge),
        (2usize..12).prop_map(Hostile::AliasBomb),
        (0..HOSTILE_IDS.len()).prop_map(Hostile::Id),
        (0..HOSTILE_STEMS.len()).prop_map(Hostile::Stem),
        (0u8..4).prop_map(Hostile::Special),
        (0..CONTROLS.len(), 0u8..6).prop_map(|(c, at)| Hostile::Controls(c, at)),
        (0..ENV_SHAPES.len()).prop_map(Hostile::EnvShape),
    ]
}

impl Hostile {
    /// Makes the entry in `dir` as `stem` (a valid id free for it) and returns its file name.
    fn create(&self, dir: &Path, stem: &str) -> String {
        let Self::Special(kind) = self else {
            let (name, bytes) = self.render(stem);
            std::fs::write(dir.join(&name), bytes).expect("write a hostile file");
            return name;
        };
        let name = format!("{stem}.yaml");
        let path = dir.join(&name);
        match kind {
            0 => rustix::fs::mkfifoat(
                rustix::fs::CWD,
                &path,
                rustix::fs::Mode::from_raw_mode(0o644),
            )
            .expect("mkfifo"),
            1 => std::fs::create_dir(&path).expect("mkdir"),
            // The socket file stays when the listener closes; nothing answers on it.
            2 => drop(std::os::unix::net::UnixListener::bind(&path).expect("bind a socket")),
            _ => std::os::unix::fs::symlink("/dev/zero", &path).expect("link to a device"),
        }
        name
    }

    /// The file name (in `jobs/`) and content; `stem` is a valid id free for this file. A special
    /// file has no content: [`Hostile::create`] makes it.
    fn render(&self, stem: &str) -> (String, Vec<u8>) {
        let name = format!("{stem}.yaml");
        match self {
            Self::Bytes(bytes) => (name, bytes.clone()),
            Self::Truncated(at) => {
                let full = full_spec(stem).into_bytes();
                let at = at % full.len();
                (name, full[..at].to_vec())
            }
            Self::Mutated(edits) => {
                let mut bytes = full_spec(stem).into_bytes();
                for &(at, byte, insert) in edits {
                    let at = at % bytes.len();
                    if insert {
                        bytes.insert(at, byte);
                    } else {
                        bytes[at] = byte;
                    }
                }
                (name, bytes)
            }
            Self::WrongType(i) => {
                let (spec, field, kind) = wrong_type_cases()[*i];
                (
                    name,
                    render(spec, stem, Some((field, kind.sample())))
                        .0
                        .into_bytes(),
                )
            }
            Self::Nested(depth, kind) => {
                let value = match kind {
                    0 => format!("{}{}", "[".repeat(*depth), "]".repeat(*depth)),
                    1 => format!("{}1{}", "{a: ".repeat(*depth), "}".repeat(*depth)),
                    _ => {
                        // Block lists, each level indented once more; bounded to stay under 1 MiB.
                        let depth = (*depth).min(900);
                        let mut text = String::new();
                        for level in 0..depth {
                            text.push('\n');
                            text.push_str(&" ".repeat(level + 2));
                            text.push_str("- ");
                        }
                        text.push('x');
                        text
                    }
                };
                let text = format!("id: {stem}\nrun:\n  command: {value}\n");
                (name, text.into_bytes())
            }
            Self::Huge(len) => {
                let text = format!(
                    "id: {stem}\ndescription: \"{}\"\nrun:\n  command: [\"true\"]\n",
                    "x".repeat(*len)
                );
                (name, text.into_bytes())
            }
            Self::AliasBomb(levels) => {
                let mut text = format!("id: {stem}\nrun:\n  command: [\"true\"]\ntags:\n");
                text.push_str("  - &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
                for level in 1..*levels {
                    let refs = vec![format!("*l{}", level - 1); 10].join(", ");
                    text.push_str(&format!("  - &l{level} [{refs}]\n"));
                }
                (name, text.into_bytes())
            }
            Self::Id(i) => {
                let text = format!("id: \"{}\"\nrun:\n  command: [\"true\"]\n", HOSTILE_IDS[*i]);
                (name, text.into_bytes())
            }
            Self::Stem(i) => {
                // The content is valid for the id the name spells: only the name is wrong.
                let stem = HOSTILE_STEMS[*i];
                let text = format!(
                    "id: \"{}\"\nrun:\n  command: [\"true\"]\n",
                    stem.escape_default()
                );
                (format!("{stem}.yaml"), text.into_bytes())
            }
            Self::Special(_) => (name, Vec::new()),
            Self::Controls(c, at) => {
                let c = CONTROLS[*c];
                let text = match at {
                    0 => {
                        format!("id: {stem}\ndescription: \"a{c}b\"\nrun:\n  command: [\"true\"]\n")
                    }
                    1 => format!(
                        "id: {stem}\nrun:\n  command: [\"echo\", \"{c}\"]\n  cwd: \"{c}\"\n"
                    ),
                    2 => format!("id: {stem}\nrun:\n  command: [\"true\"]\n  \"comm{c}and\": x\n"),
                    3 => format!(
                        "id: {stem}\nschedule:\n  cron: \"{c}* * * * *\"\n  timezone: \"Europe/{c}Berlin\"\nrun:\n  command: [\"true\"]\n"
                    ),
                    4 => format!(
                        "id: {stem}\nrun:\n  command: [\"true\"]\n  env: {{ \"A{c}\": x }}\ntags: [\"{c}\"]\n"
                    ),
                    _ => format!("id: \"{stem}{c}\"\nrun:\n  command: [\"true\"]\n"),
                };
                (name, text.into_bytes())
            }
            Self::EnvShape(i) => {
                let text = format!(
                    "id: {stem}\nrun:\n  command: [\"true\"]\n  env: {}\n",
                    ENV_SHAPES[*i]
                );
                (name, text.into_bytes())
            }
        }
    }

    /// Whether the file can never be a valid spec (a truncation or random edit may leave one valid).
    fn always_invalid(&self) -> bool {
        // Control characters are allowed in a description, a command and a cwd.
        !matches!(
            self,
            Self::Truncated(_) | Self::Mutated(_) | Self::Controls(_, 0 | 1)
        )
    }
}

// ---------------------------------------------------------------------------------------------------
// Hostile files: in process (many cases)
// ---------------------------------------------------------------------------------------------------

/// Loads a file on the test thread's own 2 MiB stack: the nesting limit keeps the loader's recursion
/// shallow, so hostile nesting must not need a bigger one.
fn load_here(path: &Path) -> jobs::spec::SpecFile {
    load_file(path, now())
}

fn check_in_process<T>(name: &str, result: &Result<T, Vec<Problem>>) {
    if let Err(problems) = result {
        assert_library_problems_well_formed(name, problems);
        for problem in problems {
            assert_no_raw_controls(name, &problem.message);
            assert!(
                !problem.message.contains(ENV_SECRET),
                "{name}: a problem echoes an env value: {problem:?}"
            );
        }
    }
}

/// Text for a terminal holds no control character but the newlines that end its lines.
fn assert_no_raw_controls(what: &str, text: &str) {
    let raw: Vec<char> = text
        .chars()
        .filter(|c| *c != '\n' && (c.is_control() || ('\u{202a}'..='\u{202e}').contains(c)))
        .collect();
    assert!(
        raw.is_empty(),
        "{what}: raw control characters {raw:?} in:\n{text}"
    );
}

proptest! {
    #![proptest_config(process_config(200))]

    #[test]
    fn the_loader_never_panics_and_positions_every_problem(entry in hostile()) {
        let dir = tempfile::tempdir().expect("temp dir");
        let name = entry.create(dir.path(), "fuzz");
        let path = dir.path().join(&name);
        let file = load_here(&path);
        check_in_process(&name, &file.outcome);
        if entry.always_invalid() {
            prop_assert!(!file.is_ok(), "{entry:?} was accepted");
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_loader(text in "\\PC{0,300}") {
        check_in_process("text", &load_source(&text, "fuzz", now()));
    }

    #[test]
    fn yaml_shaped_text_never_panics_the_loader(
        text in "([-:\\[\\]{},&*!|>'\"%@#? \n]|id|run|command|schedule|cron|  |[a-z0-9]{1,4}){0,80}"
    ) {
        check_in_process("yaml", &load_source(&text, "fuzz", now()));
    }
}

// ---------------------------------------------------------------------------------------------------
// Hostile files: through the binary, next to valid specs
// ---------------------------------------------------------------------------------------------------

const GOOD_SCHEDULED: &str =
    "id: good\nschedule:\n  every: 1h\n  timezone: UTC\nrun:\n  command: [\"true\"]\n";

/// Writes the entries (plus one entry sure to be invalid) next to two valid specs, then checks
/// `validate` (text and JSON), `list` and `scheduler --dry-run` against the loader's verdicts.
/// A home with two valid specs, to which each check adds hostile files.
fn home_with_good_specs() -> TestHome {
    let home = TestHome::new();
    home.spec("good.yaml", GOOD_SCHEDULED);
    home.spec("manual.yaml", common::manual_spec("manual"));
    home
}

fn check_home(home: &TestHome, case: usize, entries: &[Hostile], text_too: bool) {
    // The previous case's files go; their jobs are then removed ones, which must not disturb anything.
    for entry in std::fs::read_dir(home.jobs_dir()).expect("jobs/").flatten() {
        let name = entry.file_name();
        if name != "good.yaml" && name != "manual.yaml" {
            let path = entry.path();
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                std::fs::remove_dir(&path).expect("remove a hostile directory");
            } else {
                std::fs::remove_file(&path).expect("remove a hostile file");
            }
        }
    }
    let mut written = Vec::new();
    let mut all = entries.to_vec();
    all.push(Hostile::WrongType(0));
    for (n, entry) in all.iter().enumerate() {
        // Fresh stems per case, so that no job keeps a last good version from an earlier case.
        // Two hostile stems may be the same; the later one then simply replaces the earlier. A
        // special file always has a fresh stem, so nothing is ever written through a FIFO.
        let name = entry.create(&home.jobs_dir(), &format!("c{case}h{n}"));
        let file = load_here(&home.jobs_dir().join(&name));
        written.retain(|(n, _): &(String, bool)| *n != name);
        written.push((name, file.is_ok()));
    }

    let text = text_too.then(|| {
        let text = home.run(&["validate"]);
        assert_no_crash("validate", &text);
        assert_eq!(text.code, 4, "{}\n{}", text.stdout, text.stderr);
        assert_no_raw_controls("validate", &format!("{}{}", text.stdout, text.stderr));
        text.stdout
    });
    let human_list = home.run(&["list"]);
    assert_no_crash("list", &human_list);
    assert_no_raw_controls(
        "list",
        &format!("{}{}", human_list.stdout, human_list.stderr),
    );
    for (what, output) in [
        ("validate", text.as_deref().unwrap_or_default()),
        ("list", human_list.stdout.as_str()),
    ] {
        assert!(
            !output.contains(ENV_SECRET),
            "{what} echoes an env value:\n{output}"
        );
    }

    let outcome = home.run(&["--json", "validate"]);
    assert_no_crash("validate --json", &outcome);
    assert_eq!(outcome.code, 4);
    assert!(
        !outcome.stdout.contains(ENV_SECRET),
        "validate --json echoes an env value:\n{}",
        outcome.stdout
    );
    let report = outcome.json();
    assert_eq!(report["ok"], false);
    assert_eq!(report["error"]["code"], "job_invalid_spec");
    let files = report["data"]["files"].as_array().expect("files");
    for (name, ok) in &written {
        let path = format!("jobs/{name}");
        let file = files
            .iter()
            .find(|f| f["path"] == path.as_str())
            .unwrap_or_else(|| panic!("{path:?} is reported: {report}"));
        assert_eq!(
            file["ok"], *ok,
            "{path:?}: the binary agrees with the loader"
        );
        let problems = file["problems"].as_array().expect("problems");
        assert_eq!(problems.is_empty(), *ok, "{path:?}: problems iff invalid");
        for problem in problems {
            assert_problem_well_formed(&path, problem);
            // The text form names the file, line and column of every problem, with any control
            // character in the name escaped.
            if let Some(text) = &text {
                let place = format!(
                    "{}:{}:{}: ",
                    jobs::text::escape_controls(&path),
                    problem["line"],
                    problem["column"]
                );
                assert!(
                    text.contains(&place),
                    "{place:?} missing from the text report:\n{text}"
                );
            }
        }
    }
    for id in ["good", "manual"] {
        let path = format!("jobs/{id}.yaml");
        let file = files
            .iter()
            .find(|f| f["path"] == path.as_str())
            .expect("the valid spec is reported");
        assert_eq!(file["ok"], true, "{id} stays valid next to hostile files");
    }

    let dry = home.run(&["--json", "scheduler", "--dry-run"]);
    assert_no_crash("scheduler --dry-run", &dry);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let plan = dry.json();
    let lines = plan["data"]["plan"].as_array().expect("plan");
    assert!(
        lines
            .iter()
            .any(|l| l.as_str().is_some_and(|l| l.starts_with("good: "))),
        "the good job is planned: {plan}"
    );
    assert!(
        lines.iter().all(|l| l.as_str().is_some_and(|l| {
            l.starts_with("good: ")
                || written.iter().any(|(name, ok)| {
                    *ok && name
                        .strip_suffix(".yaml")
                        .is_some_and(|stem| l.starts_with(&format!("{stem}: ")))
                })
        })),
        "only valid specs are planned: {plan}"
    );

    let list = home.run(&["--json", "list"]);
    assert_no_crash("list", &list);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        !list.stdout.contains(ENV_SECRET),
        "list --json echoes an env value:\n{}",
        list.stdout
    );
    let list = list.json();
    let jobs = list["data"]["jobs"].as_array().expect("jobs");
    for id in ["good", "manual"] {
        let job = jobs
            .iter()
            .find(|j| j["id"] == id)
            .unwrap_or_else(|| panic!("{id} listed: {list}"));
        assert_eq!(job["state"], "active", "{id}");
    }
    for job in jobs {
        let id = job["id"].as_str().unwrap_or_default();
        assert!(
            jobs::spec::load::is_valid_id(id),
            "only valid ids become jobs: {id:?}"
        );
        if job["state"] == "invalid" {
            let problems = job["problems"].as_array().expect("problems");
            assert!(!problems.is_empty(), "{id}: invalid without problems");
            for problem in problems {
                assert_problem_well_formed(id, problem);
            }
        }
    }
}

/// One home for all cases (a store is created once, not per case): each case replaces the hostile
/// files, so this also exercises jobs appearing, turning invalid and disappearing between commands.
#[test]
fn hostile_files_never_crash_validate_list_or_the_scheduler_loader() {
    let home = home_with_good_specs();
    let case = std::cell::Cell::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(process_config(64));
    let result = runner.run(&proptest::collection::vec(hostile(), 1..5), |entries| {
        case.set(case.get() + 1);
        check_home(&home, case.get(), &entries, false);
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    assert!(case.get() >= 64, "every case ran");
}

#[test]
fn every_hostile_id_and_file_name_is_refused_with_a_position() {
    let mut entries: Vec<Hostile> = (0..HOSTILE_IDS.len()).map(Hostile::Id).collect();
    entries.extend((0..HOSTILE_STEMS.len()).map(Hostile::Stem));
    entries.push(Hostile::AliasBomb(9));
    entries.push(Hostile::Nested(100_000, 0));
    entries.push(Hostile::Nested(100_000, 1));
    entries.push(Hostile::Nested(900, 2));
    entries.push(Hostile::Huge(1024 * 1024));
    entries.extend((0..4).map(Hostile::Special));
    for c in 0..CONTROLS.len() {
        entries.extend((0..6).map(|at| Hostile::Controls(c, at)));
    }
    entries.extend((0..ENV_SHAPES.len()).map(Hostile::EnvShape));
    check_home(&home_with_good_specs(), 0, &entries, true);
}

#[test]
fn deep_block_nesting_fits_a_default_thread_stack() {
    // Test threads get 2 MiB, as do threads spawned with std defaults and tokio's workers.
    let mut text = String::from("id: deep\nrun:\n  command:\n");
    for level in 0..1400 {
        text.push_str(&" ".repeat(level + 3));
        text.push_str("k:\n");
    }
    assert!(text.len() < 1024 * 1024, "under the size limit");
    let result = load_source(&text, "deep", now());
    assert!(result.is_err(), "a mapping is not a command");
}

#[cfg(unix)]
#[test]
fn a_spec_file_name_that_is_not_utf8_is_reported() {
    use std::os::unix::ffi::OsStrExt;
    let home = TestHome::new();
    let name = std::ffi::OsStr::from_bytes(b"\xff\xfejob.yaml");
    std::fs::write(home.jobs_dir().join(name), common::manual_spec("job")).expect("write");
    let outcome = home.run(&["--json", "validate"]);
    assert_eq!(outcome.code, 4, "{}", outcome.stdout);
    let report = outcome.json();
    assert_eq!(
        report["data"]["files"][0]["problems"][0]["code"],
        "invalid_file_name"
    );
}

// ---------------------------------------------------------------------------------------------------
// Durations, cron patterns, time zones
// ---------------------------------------------------------------------------------------------------

/// Instants a spec or `--after` can name: RFC 3339 has four-digit years.
fn far_instants() -> impl Strategy<Value = DateTime<Utc>> {
    let last = Utc
        .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
        .single()
        .expect("a valid instant")
        .timestamp_millis();
    prop_oneof![
        (1_600_000_000_000i64..2_000_000_000_000),
        (0..last),
        Just(last),
        Just(0),
    ]
    .prop_map(|ms| DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH))
}

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kathmandu",
    "America/Santiago",
];

fn exercise(schedule: &Schedule, after: DateTime<Utc>) {
    let slots = schedule.slots_after(after, 3);
    for pair in slots.windows(2) {
        assert!(pair[0].at < pair[1].at, "slots increase: {slots:?}");
    }
    if let Some(first) = slots.first() {
        assert!(first.at > after, "the next slot is after the cursor");
        let _ = schedule.dst_note(first.at);
    }
    let _ = schedule.describe();
    let _ = schedule.expression();
}

proptest! {
    #![proptest_config(process_config(300))]

    #[test]
    fn any_text_as_a_duration_never_panics_and_round_trips(
        text in prop_oneof!["\\PC{0,40}", "([0-9]{1,25}(ms|s|m|h|d|us|y|)){1,6}"]
    ) {
        if let Ok(duration) = SpecDuration::from_str(&text) {
            let shown = duration.to_string();
            let again = SpecDuration::from_str(&shown);
            prop_assert_eq!(again, Ok(duration), "{} shown as {}", text, shown);
            prop_assert!(duration.as_millis() <= 10 * 366 * 24 * 3_600_000);
        }
    }

    #[test]
    fn any_text_as_a_time_zone_never_panics(text in prop_oneof![
        "\\PC{0,40}",
        "[A-Za-z_/+-]{0,30}",
        Just("Etc/GMT+14".to_owned()),
        Just("EST5EDT".to_owned()),
    ]) {
        if let Ok(tz) = parse_timezone(&text) {
            prop_assert_eq!(tz.to_string(), text);
        }
    }
}

proptest! {
    #![proptest_config(process_config(400))]

    #[test]
    fn any_text_as_a_cron_pattern_never_panics(
        pattern in prop_oneof![
            "\\PC{0,40}",
            "((\\*|[0-9]{1,4}|[A-Z]{3}|L|W|#|/|,|-|\\?|@[a-z]{4,8})[ ]?){1,14}",
            "(\\*|[0-9]{1,2}|\\*/[0-9]{1,2}|[0-9]-[0-9]{1,2}) (\\*|[0-9]{1,2}) (\\*|[0-9]{1,2}|L|[0-9]W) (\\*|[0-9]{1,2}|[A-Z]{3}) (\\*|[0-7]|[0-7]#[0-9]|[0-7]L|[A-Z]{3})",
        ],
        zone in 0..ZONES.len(),
        after in far_instants(),
    ) {
        if let Ok(cron) = parse_cron(&pattern) {
            let tz = parse_timezone(ZONES[zone]).expect("a known zone");
            let schedule = Schedule::Cron { pattern: pattern.clone(), cron, tz, successors: Default::default() };
            exercise(&schedule, after);
        }
    }

    #[test]
    fn any_every_and_anchor_never_panic(
        every in "[0-9]{1,12}(ms|s|m|h|d)",
        anchor in far_instants(),
        after in far_instants(),
        zone in 0..ZONES.len(),
    ) {
        if let Ok(every) = SpecDuration::from_str(&every)
            && !every.is_zero()
        {
            let tz = parse_timezone(ZONES[zone]).expect("a known zone");
            let schedule = Schedule::Every { every, anchor, tz };
            exercise(&schedule, after);
            let _ = jobs::schedule::jitter_delay(
                "fuzz", after, every.as_duration(), schedule.next_after(after),
            );
        }
    }
}

/// A JSON string is a valid YAML double-quoted scalar, so any text can be put in a spec this way.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string is JSON")
}

proptest! {
    #![proptest_config(process_config(24))]

    /// The same arbitrary values through `jobsctl validate`: the verdict and the field's position agree
    /// with the library's parse functions.
    #[test]
    fn arbitrary_durations_crons_and_zones_through_validate(
        duration in prop_oneof!["\\PC{0,12}", "([0-9]{1,21}(ms|s|m|h|d|x)){1,3}"],
        cron in prop_oneof!["\\PC{0,16}", "([0-9*/,L#W-]{1,4} ){4,6}[0-9*]"],
        zone in prop_oneof!["\\PC{0,16}", "[A-Z][a-z]{2,8}/[A-Z][a-z_]{2,10}"],
    ) {
        let home = TestHome::new();
        let spec = format!(
            "id: t\nschedule:\n  cron: {}\n  timezone: {}\nrun:\n  command: [\"true\"]\n  timeout: {}\n",
            quoted(&cron), quoted(&zone), quoted(&duration)
        );
        home.spec("t.yaml", &spec);
        let outcome = home.run(&["--json", "validate"]);
        assert_no_crash("validate", &outcome);
        let report = outcome.json();
        let problems = report["data"]["files"][0]["problems"].as_array().expect("problems").clone();
        for problem in &problems {
            assert_problem_well_formed("t.yaml", problem);
        }
        let at = |pointer: &str, line: u64| problems.iter().any(|p| p["pointer"] == pointer && p["line"] == line);
        if SpecDuration::from_str(&duration).is_err() {
            prop_assert!(at("/run/timeout", 7), "{:?}: {:?}", duration, problems);
        }
        if parse_cron(&cron).is_err() {
            prop_assert!(at("/schedule/cron", 3), "{:?}: {:?}", cron, problems);
        }
        if parse_timezone(&zone).is_err() {
            prop_assert!(at("/schedule/timezone", 4), "{:?}: {:?}", zone, problems);
        }
        prop_assert_eq!(outcome.code, if problems.is_empty() { 0 } else { 4 });
    }
}

// ---------------------------------------------------------------------------------------------------
// A corrupted store
// ---------------------------------------------------------------------------------------------------

/// Every command that opens the store, with the arguments it needs.
const STORE_COMMANDS: &[&[&str]] = &[
    &["list"],
    &["show", "a"],
    &["run", "a"],
    &["history"],
    &["history", "a"],
    &["status"],
    &["tail", "a"],
    &["pause", "a"],
    &["resume", "a"],
    &["disable", "a"],
    &["enable", "a"],
    &["next", "a"],
    &["prune"],
    &["replay", "a", "--run", "1"],
    &["scheduler", "--dry-run"],
    &["scheduler"],
];

fn store_path(home: &TestHome) -> std::path::PathBuf {
    home.path().join("db/jobs.sqlite3")
}

/// A store with one job and one finished run, closed cleanly (no WAL left), as bytes.
fn healthy_store(home: &TestHome) -> Vec<u8> {
    home.spec("a.yaml", common::manual_spec("a"));
    let outcome = home.run(&["run", "a"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    std::fs::read(store_path(home)).expect("read the store")
}

fn replace_store(home: &TestHome, bytes: &[u8]) {
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(home.path().join(format!("db/jobs.sqlite3{suffix}")));
    }
    std::fs::write(store_path(home), bytes).expect("write the store");
}

/// Runs every store command (text and JSON) and checks the error: exit 6, `store_error`, the path.
fn assert_every_command_refuses(home: &TestHome, what: &str) {
    let path = store_path(home).display().to_string();
    for args in STORE_COMMANDS {
        let mut json_args = vec!["--json"];
        json_args.extend_from_slice(args);
        let mut child = home
            .command(&json_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map(KillOnDrop)
            .expect("spawn");
        // The scheduler must give up at once rather than run on a broken store.
        let status = wait_exit(&mut child, 20);
        let read = |pipe: Option<&mut dyn std::io::Read>| {
            let mut text = String::new();
            if let Some(pipe) = pipe {
                pipe.read_to_string(&mut text).expect("read the output");
            }
            text
        };
        let outcome = Outcome {
            code: status.code().unwrap_or(-1),
            stdout: read(child.stdout.as_mut().map(|p| p as &mut dyn std::io::Read)),
            stderr: read(child.stderr.as_mut().map(|p| p as &mut dyn std::io::Read)),
        };
        let name = format!("{what}: jobs {}", args.join(" "));
        assert_no_crash(&name, &outcome);
        assert_eq!(
            outcome.code, 6,
            "{name}: {}{}",
            outcome.stdout, outcome.stderr
        );
        let report = outcome.json();
        assert_eq!(report["error"]["code"], "store_error", "{name}");
        let message = report["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&path),
            "{name}: the message names the store: {message}"
        );

        // The text form goes through the same error path; a few commands stand for all.
        if matches!(args[0], "list" | "run" | "status") {
            let text = home.run(args);
            assert_no_crash(&name, &text);
            assert_eq!(text.code, 6, "{name} (text)");
            assert!(
                text.stderr.contains(&path),
                "{name} (text): {}",
                text.stderr
            );
        }
    }
    // Checking specs needs no store.
    let outcome = home.run(&["validate"]);
    assert_eq!(outcome.code, 0, "{what}: validate: {}", outcome.stderr);
}

#[test]
fn a_store_of_garbage_or_cut_short_is_refused_by_every_command_naming_it() {
    let home = TestHome::new();
    let good = healthy_store(&home);
    assert!(good.len() > 8192, "the store has several pages");
    let garbage: Vec<u8> = (0..6000u32)
        .map(|i| u8::try_from(i.wrapping_mul(2_654_435_761) >> 24).unwrap_or(0))
        .collect();
    let mut text = b"this is not a database, it is a note someone saved here\n".repeat(50);
    text.truncate(2000);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", garbage),
        ("text", text),
        ("cut in the header", good[..50].to_vec()),
        ("cut after the header", good[..100].to_vec()),
        ("first page only", good[..4096].to_vec()),
        ("cut mid-file", good[..good.len() / 2].to_vec()),
    ];
    for (what, bytes) in cases {
        replace_store(&home, &bytes);
        assert_every_command_refuses(&home, what);
        // Nothing repaired or replaced the file behind the operator's back.
        assert_eq!(
            std::fs::read(store_path(&home)).expect("read"),
            bytes,
            "{what}: the store is left as found"
        );
    }
}

/// The offsets of pages to overwrite with garbage after a valid header.
fn corrupt_pages(good: &[u8]) -> Vec<(usize, Vec<u8>)> {
    (1..good.len() / 4096)
        .map(|page| {
            let mut bytes = good.to_vec();
            for (i, b) in bytes[page * 4096..(page + 1) * 4096].iter_mut().enumerate() {
                *b = u8::try_from((i * 7 + page * 13) % 251).unwrap_or(0);
            }
            (page, bytes)
        })
        .collect()
}

#[test]
fn a_store_with_damaged_pages_never_crashes_a_command() {
    let home = TestHome::new();
    let good = healthy_store(&home);
    for (page, bytes) in corrupt_pages(&good) {
        for args in [
            &["--json", "list"][..],
            &["--json", "run", "a"],
            &["--json", "history"],
            &["--json", "show", "a"],
            &["--json", "status"],
        ] {
            replace_store(&home, &bytes);
            let outcome = home.run(args);
            let name = format!("page {page}: {}", args.join(" "));
            assert_no_crash(&name, &outcome);
            // Damage may sit in an unused page (success), keep the scheduler row unreadable (status
            // says none runs) or break a query (a store error); never anything else.
            assert!(
                [0, 5, 6].contains(&outcome.code),
                "{name}: exit {}: {}",
                outcome.code,
                outcome.stdout
            );
            if outcome.code == 6 {
                assert_eq!(outcome.json()["error"]["code"], "store_error", "{name}");
            }
        }
    }
}

#[test]
fn a_store_with_damaged_pages_is_named_in_the_error() {
    let home = TestHome::new();
    let good = healthy_store(&home);
    let path = store_path(&home).display().to_string();
    for (page, bytes) in corrupt_pages(&good) {
        replace_store(&home, &bytes);
        let outcome = home.run(&["--json", "list"]);
        if outcome.code == 6 {
            let message = outcome.json()["error"]["message"].to_string();
            assert!(message.contains(&path), "page {page}: {message}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// An unusable runs/ directory
// ---------------------------------------------------------------------------------------------------

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Makes `dir` (an empty directory) unwritable for the duration: a read-only tmpfs mounted over it
/// when running as root (permission bits do not stop root), mode 0500 otherwise.
struct Unwritable {
    dir: std::path::PathBuf,
    mounted: bool,
}

impl Unwritable {
    fn new(dir: &Path) -> Option<Self> {
        std::fs::create_dir_all(dir).expect("create the directory");
        if is_root() {
            let mounted = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"])
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success());
            if !mounted {
                assert!(
                    std::env::var_os("JOBS_TEST_STRICT").is_none(),
                    "cannot mount a read-only tmpfs here, and JOBS_TEST_STRICT is set"
                );
                eprintln!("cannot mount a read-only tmpfs here; skipping the unwritable case");
                return None;
            }
            Some(Self {
                dir: dir.to_owned(),
                mounted: true,
            })
        } else {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o500)).expect("chmod");
            Some(Self {
                dir: dir.to_owned(),
                mounted: false,
            })
        }
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount").arg(&self.dir).status();
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700));
        }
    }
}

fn refused(home: &TestHome, job: &str, names: &Path) {
    let outcome = home.run(&["--json", "run", job]);
    assert_no_crash("run", &outcome);
    assert_eq!(
        outcome.code, 6,
        "{job}: {}{}",
        outcome.stdout, outcome.stderr
    );
    let report = outcome.json();
    assert_eq!(
        report["error"]["code"], "artifact_write_failed",
        "{job}: {report}"
    );
    let message = report["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&names.display().to_string()),
        "{job}: the message names {}: {message}",
        names.display()
    );
    assert_eq!(report["data"]["jobs_run"][0]["status"], "refused", "{job}");
    let text = home.run(&["run", job]);
    assert_eq!(text.code, 6);
    assert!(
        text.stderr.contains(&names.display().to_string()),
        "{job}: {}",
        text.stderr
    );
}

#[test]
fn a_runs_directory_that_cannot_be_written_is_named() {
    let home = TestHome::new();
    home.spec("a.yaml", common::manual_spec("a"));
    let runs = home.path().join("runs");
    let Some(guard) = Unwritable::new(&runs) else {
        return;
    };
    refused(&home, "a", &runs.join("a"));
    drop(guard);
    // Once writable again, the job runs.
    let outcome = home.run(&["run", "a"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
}

#[test]
fn a_run_directory_that_is_a_file_or_a_dangling_link_is_named() {
    let home = TestHome::new();
    for id in ["file", "dangling"] {
        home.spec(&format!("{id}.yaml"), common::manual_spec(id));
    }
    let runs = home.path().join("runs");
    std::fs::create_dir_all(&runs).expect("runs");
    std::fs::write(runs.join("file"), "not a directory").expect("file");
    std::os::unix::fs::symlink(home.path().join("nowhere"), runs.join("dangling"))
        .expect("symlink");
    refused(&home, "file", &runs.join("file"));
    refused(&home, "dangling", &runs.join("dangling"));
    assert!(
        !home.path().join("nowhere").exists(),
        "the link's target is not created"
    );
}

#[test]
fn a_run_directory_that_links_elsewhere_is_refused() {
    let home = TestHome::new();
    home.spec("linked.yaml", common::manual_spec("linked"));
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let runs = home.path().join("runs");
    std::fs::create_dir_all(&runs).expect("runs");
    std::os::unix::fs::symlink(elsewhere.path(), runs.join("linked")).expect("symlink");
    refused(&home, "linked", &runs.join("linked"));
    let written: Vec<_> = std::fs::read_dir(elsewhere.path())
        .expect("read")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        written.is_empty(),
        "nothing written through the link: {written:?}"
    );
}

#[test]
fn with_the_scheduler_running_broken_run_directories_fail_only_their_jobs() {
    let home = TestHome::new();
    let every_second = |id: &str| {
        format!(
            "id: {id}\nschedule:\n  cron: \"*/1 * * * * *\"\n  timezone: UTC\nrun:\n  command: [\"true\"]\n"
        )
    };
    let mut broken = vec!["file", "dangling"];
    for id in ["ok", "file", "dangling", "readonly"] {
        home.spec(&format!("{id}.yaml"), every_second(id));
    }
    let runs = home.path().join("runs");
    std::fs::create_dir_all(&runs).expect("runs");
    std::fs::write(runs.join("file"), "not a directory").expect("file");
    std::os::unix::fs::symlink(home.path().join("nowhere"), runs.join("dangling"))
        .expect("symlink");
    let guard = Unwritable::new(&runs.join("readonly"));
    if guard.is_some() {
        broken.push("readonly");
    }

    let mut scheduler = SchedulerStart::new(home.path()).start();
    let count = |sql: &str| home.count(sql);
    wait_until("3 good runs and failures of every broken job", 15, || {
        count("SELECT COUNT(*) FROM runs WHERE job_id = 'ok' AND status = 'succeeded'") >= 3
            && broken.iter().all(|id| {
                count(&format!(
                    "SELECT COUNT(*) FROM runs WHERE job_id = '{id}' AND status = 'failed'"
                )) >= 2
            })
    });
    let pid =
        rustix::process::Pid::from_raw(i32::try_from(scheduler.id()).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("TERM");
    let status = wait_exit(&mut scheduler, 20);
    let log = std::fs::read_to_string(home.path().join("scheduler.log")).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(
        count("SELECT COUNT(*) FROM runs WHERE job_id = 'ok' AND status <> 'succeeded'"),
        0,
        "every run of the good job succeeded: {log}"
    );
    for id in &broken {
        assert_eq!(
            count(&format!(
                "SELECT COUNT(*) FROM runs WHERE job_id = '{id}' AND status = 'succeeded'"
            )),
            0,
            "{id}"
        );
        let codes: BTreeSet<String> = home
            .db()
            .prepare("SELECT DISTINCT error_code FROM runs WHERE job_id = ?1")
            .expect("prepare")
            .query_map([id], |r| r.get::<_, Option<String>>(0))
            .expect("query")
            .flatten()
            .flatten()
            .collect();
        assert_eq!(
            codes,
            BTreeSet::from(["artifact_write_failed".to_owned()]),
            "{id}"
        );
        let path = runs.join(id).display().to_string();
        assert!(log.contains(&path), "the log names {path}:\n{log}");
    }
    drop(guard);
}

#[test]
fn a_relative_home_of_dot_runs_jobs() {
    let home = TestHome::new();
    home.spec("a.yaml", common::manual_spec("a"));
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("jobsctl"))
        .args(["--home", ".", "--json", "run", "a"])
        .current_dir(home.path())
        .env_remove("JOBS_HOME")
        .output()
        .expect("run jobs");
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(output.status.code(), Some(0), "{report}");
}

/// Where a link can be planted among the files `jobs` writes under the home, and the command that
/// would write there.
enum Planted {
    /// `db/<name>` before the store exists, or beside it once it does.
    Store(&'static str),
    /// A file in the directory of a run whose owner died, settled by the next command.
    DeadRun(&'static str),
}

#[test]
fn links_planted_in_runs_and_db_are_never_written_through() {
    let cases = [
        Planted::Store("jobs.sqlite3"),
        Planted::Store("jobs.sqlite3-wal"),
        Planted::Store("jobs.sqlite3-shm"),
        Planted::Store("jobs.sqlite3-journal"),
        Planted::DeadRun("events.jsonl"),
        Planted::DeadRun(".summary.md.tmp"),
        Planted::DeadRun(".run_receipt.json.tmp"),
        Planted::DeadRun("summary.md"),
    ];
    for case in cases {
        let home = TestHome::new();
        let outside = tempfile::tempdir().expect("outside");
        let victim = outside.path().join("victim");
        let original = "one\ntwo without a newline";
        std::fs::write(&victim, original).expect("victim");
        home.spec("m.yaml", "id: m\nrun:\n  shell: \"sleep 30\"\n");
        let (what, outcome) = match case {
            Planted::Store(name) => {
                if name != "jobs.sqlite3" {
                    assert_eq!(home.run(&["list"]).code, 0, "a store to plant beside");
                    let _ = std::fs::remove_file(home.path().join("db").join(name));
                } else {
                    std::fs::create_dir_all(home.path().join("db")).expect("db");
                }
                std::os::unix::fs::symlink(&victim, home.path().join("db").join(name))
                    .expect("plant");
                (format!("db/{name}"), home.run(&["--json", "list"]))
            }
            Planted::DeadRun(name) => {
                let mut run = KillOnDrop(home.command(&["run", "m"]).spawn().expect("run"));
                wait_until("m#1 running", 10, || {
                    home.path().join("runs/m/1/events.jsonl").exists()
                        && home.count("SELECT COUNT(*) FROM runs WHERE status = 'running'") == 1
                });
                run.kill().expect("kill -9");
                run.wait().expect("reap");
                let path = home.path().join("runs/m/1").join(name);
                let _ = std::fs::remove_file(&path);
                std::os::unix::fs::symlink(&victim, &path).expect("plant");
                (format!("runs/m/1/{name}"), home.run(&["--json", "history"]))
            }
        };
        assert_no_crash(&what, &outcome);
        assert_eq!(
            std::fs::read_to_string(&victim).expect("victim"),
            original,
            "{what}: the file the link points to is untouched: {outcome:?}"
        );
        let entries: Vec<_> = std::fs::read_dir(outside.path())
            .expect("outside")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            entries.len(),
            1,
            "{what}: nothing created outside: {entries:?}"
        );
        if let Planted::Store(_) = case {
            assert_eq!(outcome.code, 6, "{what}: {outcome:?}");
            assert!(
                outcome.stdout.contains(&what) && outcome.stdout.contains("symbolic link"),
                "{what}: the error names the link: {outcome:?}"
            );
        }
    }
}
