//! Turning a spec file into a checked [`JobSpec`]: bytes -> YAML with positions -> JSON -> JSON Schema
//! -> semantic checks -> typed spec. Every problem names a line, a column, a JSON pointer and says what
//! to fix. Nothing here panics on any input, and one bad file never affects another.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use jsonschema::error::ValidationErrorKind;
use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde::Serialize;
use serde_json::{Map, Value};

use super::model::JobSpec;
use super::size::ByteSize;
use crate::digest::content_hash;
use crate::duration::SpecDuration;
use crate::error::{Error, Result};
use crate::schedule::{self, MAX_FIRST_SLOT_DAYS, Schedule};
use crate::text::lowercase_first;

/// The JSON Schema of a job spec, as shipped in `schemas/job.schema.json`.
pub const JOB_SCHEMA: &str = include_str!("../../schemas/job.schema.json");

/// Spec files larger than this are refused unread: a job spec is a few hundred bytes.
pub const MAX_SPEC_BYTES: u64 = 1024 * 1024;

/// One thing wrong with a spec file. `code` is stable; `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub code: &'static str,
    pub line: usize,
    pub column: usize,
    pub pointer: String,
    pub message: String,
}

impl Problem {
    /// `line:col: pointer: message` (no pointer for a problem of the whole file): the field is
    /// half of what a message means, as in "must be longer than zero".
    pub fn located(&self) -> String {
        format!("{}:{}: {}", self.line, self.column, self.brief())
    }

    /// `pointer: message`, without the position.
    pub fn brief(&self) -> String {
        if self.pointer.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.pointer, self.message)
        }
    }
}

/// A spec that passed every check.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    pub spec: JobSpec,
    /// `None` for a manual-only job.
    pub schedule: Option<Schedule>,
}

impl LoadedSpec {
    /// The spec as JSON with every default filled in: what the store keeps as the last good version.
    pub fn json(&self) -> Value {
        serde_json::to_value(&self.spec).unwrap_or(Value::Null)
    }
}

/// The result of loading one file: where it is, what its content hash is, and either the spec or the
/// problems, in document order.
#[derive(Debug, Clone)]
pub struct SpecFile {
    pub path: PathBuf,
    /// The id the file name implies, when the name is a valid id.
    pub stem_id: Option<String>,
    pub hash: String,
    pub outcome: Result<LoadedSpec, Vec<Problem>>,
}

impl SpecFile {
    pub fn is_ok(&self) -> bool {
        self.outcome.is_ok()
    }

    pub fn problems(&self) -> &[Problem] {
        match &self.outcome {
            Ok(_) => &[],
            Err(problems) => problems,
        }
    }
}

/// Whether a directory entry is a spec file: `*.yaml` or `*.yml`, not hidden, not an editor's backup.
pub fn is_spec_file_name(name: &str) -> bool {
    !name.starts_with('.')
        && !name.ends_with('~')
        && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// The revision of the checks the schema cannot express (`semantic_problems`). Raise it whenever a
/// check is added or tightened: the fingerprint changes with it, so specs an older loader accepted are
/// checked again, both files the store would trust and the last good versions it keeps.
const RULES_REVISION: u32 = 2;

/// A fingerprint of the loader: the schema, the rules revision and the version of jobs. A spec checked
/// by the same loader and unchanged since need not be checked again.
pub fn loader_fingerprint() -> &'static str {
    static FINGERPRINT: OnceLock<String> = OnceLock::new();
    FINGERPRINT.get_or_init(|| {
        content_hash(
            format!(
                "{JOB_SCHEMA}{}rules {RULES_REVISION}",
                env!("CARGO_PKG_VERSION")
            )
            .as_bytes(),
        )
    })
}

/// Checks again a spec the store kept as JSON (a last good version) that another loader checked: rules
/// tighten (`every` below a second is refused since revision 2), and a spec this loader refuses must
/// not run on the strength of an older check. JSON is YAML, so it takes the path a file takes.
pub fn recheck_stored(
    spec_json: &str,
    expected_id: &str,
    now: DateTime<Utc>,
) -> Result<LoadedSpec, Vec<Problem>> {
    load_bytes(spec_json.as_bytes(), expected_id, now)
}

/// Given a job id and the content hash of its file, a spec already known to be valid for exactly that
/// content, if there is one. Lets callers that keep checked specs (the store) skip parsing.
pub type Trusted<'a> = &'a (dyn Fn(&str, &str) -> Option<LoadedSpec> + Sync);

/// Loads every spec file in `dir`, sorted by file name. A missing directory holds no specs. Two files
/// claiming the same id (`a.yaml` and `a.yml`) both load, and the later one gets a problem.
pub fn load_dir(dir: &Path, now: DateTime<Utc>) -> Result<Vec<SpecFile>> {
    load_dir_trusting(dir, now, &|_, _| None)
}

/// As [`load_dir`], taking specs from `trusted` when it knows a file's content.
pub fn load_dir_trusting(
    dir: &Path,
    now: DateTime<Utc>,
    trusted: Trusted<'_>,
) -> Result<Vec<SpecFile>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read the spec directory", dir, e)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read the spec directory", dir, e))?;
        let name = entry.file_name();
        // A name that is not UTF-8 cannot be a job id, but it is still a spec someone meant to
        // load: it is listed (and reported as `invalid_file_name`), never skipped in silence.
        if is_spec_file_name(&name.to_string_lossy()) {
            paths.push(entry.path());
        }
    }
    // All in one directory: ordering by name is ordering by path, without comparing components.
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    let mut seen = HashSet::new();
    let mut files = Vec::with_capacity(paths.len());
    for mut file in load_all(&paths, now, trusted) {
        if let Some(id) = &file.stem_id
            && !seen.insert(id.clone())
        {
            let problem = Problem {
                code: "duplicate_id",
                line: 1,
                column: 1,
                pointer: String::new(),
                message: format!(
                    "another file in this directory already defines job \"{id}\"; keep one of them"
                ),
            };
            file.outcome = Err(vec![problem]);
        }
        files.push(file);
    }
    Ok(files)
}

/// Below this many files one thread is quicker than starting more.
const FILES_PER_THREAD: usize = 256;

/// Loads `paths` in order, on as many threads as there are cores when there are many: at 10,000 specs
/// parsing is most of a scheduler's start, and the files are independent.
fn load_all(paths: &[PathBuf], now: DateTime<Utc>, trusted: Trusted<'_>) -> Vec<SpecFile> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(paths.len() / FILES_PER_THREAD)
        .min(8);
    if threads < 2 {
        return paths
            .iter()
            .map(|path| load_file_trusting(path, now, trusted))
            .collect();
    }
    let chunk = paths.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|path| load_file_trusting(path, now, trusted))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|part| match part.join() {
                Ok(files) => files,
                // A panic in a loader thread is a bug; surface it as the sequential loop would.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// Loads one spec file. Read failures become problems of the file, like any other.
pub fn load_file(path: &Path, now: DateTime<Utc>) -> SpecFile {
    load_file_trusting(path, now, &|_, _| None)
}

fn load_file_trusting(path: &Path, now: DateTime<Utc>, trusted: Trusted<'_>) -> SpecFile {
    let stem_id = path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| is_valid_id(s))
        .map(str::to_owned);
    let bytes = match read_limited(path) {
        Ok(bytes) => bytes,
        Err(problem) => {
            return SpecFile {
                path: path.to_owned(),
                stem_id,
                hash: String::new(),
                outcome: Err(vec![problem]),
            };
        }
    };
    let hash = content_hash(&bytes);
    let outcome = match &stem_id {
        Some(id) => match trusted(id, &hash) {
            Some(loaded) => Ok(loaded),
            None => load_bytes(&bytes, id, now),
        },
        None => {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Err(vec![problem_at(
                1,
                1,
                "",
                "invalid_file_name",
                format!(
                    "\"{stem}\" is not a valid job id, and a spec file is named after its job; \
                     use lowercase letters, digits, '-' and '_'"
                ),
            )])
        }
    };
    SpecFile {
        path: path.to_owned(),
        stem_id,
        hash,
        outcome,
    }
}

/// Loads a spec from text, for tests and benchmarks; `expected_id` stands for the file stem.
pub fn load_source(
    source: &str,
    expected_id: &str,
    now: DateTime<Utc>,
) -> Result<LoadedSpec, Vec<Problem>> {
    load_bytes(source.as_bytes(), expected_id, now)
}

fn read_limited(path: &Path) -> Result<Vec<u8>, Problem> {
    use std::os::unix::fs::OpenOptionsExt;
    let unreadable = |e: std::io::Error| {
        problem_at(1, 1, "", "unreadable", format!("cannot read the file: {e}"))
    };
    // Anyone who can write to `jobs/` can put a FIFO, a socket or a device there, and opening a FIFO
    // blocks until someone writes to it: every command and the scheduler would hang on it. So the
    // type is looked at before the open (a device is never even opened), the open itself cannot block,
    // and the type is checked again on the handle in case the path was swapped in between.
    // `metadata` follows links: a spec may be a link an operator made to a file elsewhere.
    let metadata = fs::metadata(path).map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(not_a_regular_file(&metadata.file_type()));
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits().cast_signed())
        .open(path)
        .map_err(unreadable)?;
    // Checked on the open handle, so the file judged is the file read.
    let metadata = file.metadata().map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(not_a_regular_file(&metadata.file_type()));
    }
    if let Some(problem) = unsafe_ownership(&metadata, rustix::process::geteuid().is_root()) {
        return Err(problem);
    }
    let mut bytes = Vec::new();
    file.take(MAX_SPEC_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(problem_at(
            1,
            1,
            "",
            "file_too_large",
            "the file is larger than 1 MiB; a job spec should be a few hundred bytes".into(),
        ));
    }
    Ok(bytes)
}

fn not_a_regular_file(kind: &fs::FileType) -> Problem {
    use std::os::unix::fs::FileTypeExt;
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a named pipe (FIFO)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "something other than a regular file"
    };
    problem_at(
        1,
        1,
        "",
        "not_a_regular_file",
        format!(
            "this is {what}, and only regular files are read as specs; remove it or replace it with a file"
        ),
    )
}

/// A process running as root runs a spec's command as root, so, as cron does, it refuses a spec that
/// someone else could have written: one writable by group or others, or owned by another user.
fn unsafe_ownership(metadata: &fs::Metadata, running_as_root: bool) -> Option<Problem> {
    use std::os::unix::fs::MetadataExt;
    if !running_as_root {
        return None;
    }
    let message = if metadata.uid() != 0 {
        format!(
            "the file is owned by uid {}, and jobs running as root loads only specs owned by root; \
             check who wrote it, then `chown root` it",
            metadata.uid()
        )
    } else if metadata.mode() & 0o022 != 0 {
        format!(
            "the file is writable by {} (mode {:o}), and jobs running as root refuses specs others \
             could change; check its content, then `chmod go-w` it",
            if metadata.mode() & 0o002 != 0 {
                "others"
            } else {
                "its group"
            },
            metadata.mode() & 0o7777
        )
    } else {
        return None;
    };
    Some(problem_at(1, 1, "", "unsafe_permissions", message))
}

fn load_bytes(
    bytes: &[u8],
    expected_id: &str,
    now: DateTime<Utc>,
) -> Result<LoadedSpec, Vec<Problem>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_column(bytes, e.valid_up_to());
        vec![problem_at(
            line,
            column,
            "",
            "not_utf8",
            "the file is not valid UTF-8".into(),
        )]
    })?;
    let root = parse_yaml(text)?;
    let mut problems = Vec::new();
    let json = to_json(&root, &mut String::new(), &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    let Some(Value::Object(mut object)) = json else {
        let found = describe_node(&root);
        return Err(vec![problem_at(
            root.span.start.line(),
            root.span.start.col() + 1,
            "",
            "not_a_mapping",
            format!(
                "the top level must be a mapping of fields such as id: and run:, found {found}"
            ),
        )]);
    };

    if let Some(problem) = implausible_spec(&root, &object) {
        return Err(vec![problem]);
    }

    let json = Value::Object(std::mem::take(&mut object));
    for error in validator().iter_errors(&json) {
        problems.push(schema_problem(&root, &error));
    }
    let mut reported: HashSet<String> = problems.iter().map(|p| p.pointer.clone()).collect();
    let mut parsed_cron = None;
    for (pointer, code, message) in semantic_problems(&json, expected_id, now, &mut parsed_cron) {
        if reported.insert(pointer.clone()) {
            problems.push(locate_problem(&root, &pointer, code, message));
        }
    }
    if !problems.is_empty() {
        problems
            .sort_by(|a, b| (a.line, a.column, &a.pointer).cmp(&(b.line, b.column, &b.pointer)));
        return Err(problems);
    }

    let spec: JobSpec = serde_json::from_value(json).map_err(|e| {
        vec![problem_at(
            1,
            1,
            "",
            "internal",
            format!(
                "the spec passed the schema but does not fit the model ({e}); this is a bug in jobs"
            ),
        )]
    })?;
    let schedule = match &spec.schedule {
        Some(s) => Some(Schedule::build(s, parsed_cron).map_err(|message| {
            vec![locate_problem(
                &root,
                "/schedule",
                "invalid_schedule",
                message,
            )]
        })?),
        None => None,
    };
    Ok(LoadedSpec { spec, schedule })
}

/// A mapping none of whose keys is a field of a spec is not a plausible spec: a file of `name:value`
/// lines (`/etc/shadow` is one) reads as YAML keys, and the schema's problems would quote each key in
/// full, in both the message and the pointer. Such a file gets one problem that quotes no more than
/// the start of its first key. An empty mapping quotes nothing and goes on to the schema.
fn implausible_spec(root: &MarkedYaml<'_>, object: &Map<String, Value>) -> Option<Problem> {
    let fields = known_properties("");
    if object.is_empty() || object.keys().any(|key| fields.contains(key)) {
        return None;
    }
    let YamlData::Mapping(mapping) = &root.data else {
        return None;
    };
    let (key, _) = mapping.iter().next()?;
    Some(problem_at(
        key.span.start.line().max(1),
        key.span.start.col() + 1,
        "",
        "not_a_spec",
        format!(
            "none of the keys is a field of a job spec ({}), the first is {}; check that this is the \
             file you meant, and start a spec with id: and run:",
            fields.join(", "),
            describe_node(key)
        ),
    ))
}

/// The ids `jobs` accepts, as in the schema: `^[a-z0-9][a-z0-9_-]{0,62}$`.
pub fn is_valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

/// The deepest nesting a spec may have. The YAML loader builds its tree recursively, so a file nested
/// thousands deep would overflow the stack; a real spec nests four or five levels.
const MAX_NESTING: usize = 64;

/// Measures nesting with the parser's event stream, which keeps its own stack rather than recursing.
/// Syntax errors are left to the real parse, which reports them with their position.
fn nesting_problem(text: &str) -> Option<Problem> {
    use saphyr_parser::{Event, Parser};
    // Every level of nesting needs an indicator of its own (`:` or `?` for a mapping, `-` or `[` for a
    // sequence, `{`), so a file with few of them cannot nest deeply: a real spec skips the second
    // parse, which would otherwise add a third to the cost of loading it.
    let indicators = text
        .bytes()
        .filter(|b| matches!(b, b':' | b'?' | b'-' | b'[' | b'{'))
        .count();
    if indicators <= MAX_NESTING {
        return None;
    }
    let mut depth = 0usize;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.ok()?;
        match event {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(problem_at(
                        span.start.line().max(1),
                        span.start.col() + 1,
                        "",
                        "nesting_too_deep",
                        format!(
                            "nested more than {MAX_NESTING} levels deep; a job spec needs a handful"
                        ),
                    ));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn parse_yaml(text: &str) -> Result<MarkedYaml<'_>, Vec<Problem>> {
    if let Some(problem) = nesting_problem(text) {
        return Err(vec![problem]);
    }
    let documents = MarkedYaml::load_from_str(text).map_err(|e| {
        let marker = e.marker();
        vec![problem_at(
            marker.line().max(1),
            marker.col() + 1,
            "",
            if e.info().contains("duplicated key") {
                "duplicate_key"
            } else {
                "yaml_syntax"
            },
            yaml_message(e.info()),
        )]
    })?;
    let mut documents = documents.into_iter();
    let Some(first) = documents.next() else {
        return Err(vec![problem_at(
            1,
            1,
            "",
            "empty_file",
            "the file is empty; a spec needs at least id: and run:".into(),
        )]);
    };
    if let Some(second) = documents.next() {
        return Err(vec![problem_at(
            second.span.start.line().max(1),
            second.span.start.col() + 1,
            "",
            "multiple_documents",
            "the file holds more than one YAML document; put one job per file".into(),
        )]);
    }
    if matches!(first.data, YamlData::Value(Scalar::Null)) {
        return Err(vec![problem_at(
            1,
            1,
            "",
            "empty_file",
            "the file is empty; a spec needs at least id: and run:".into(),
        )]);
    }
    Ok(first)
}

fn yaml_message(info: &str) -> String {
    let info = info.trim();
    if info.contains("duplicated key") {
        return "this key appears twice in the same mapping; keep one".into();
    }
    if info.contains("alias expansion exceeded") {
        return "aliases expand to too many nodes; write the values out instead".into();
    }
    format!("invalid YAML: {info}")
}

/// Converts the YAML tree to JSON, reporting anything JSON cannot carry (non-text keys, tags, NaN).
fn to_json(
    node: &MarkedYaml<'_>,
    pointer: &mut String,
    problems: &mut Vec<Problem>,
) -> Option<Value> {
    let at = |problems: &mut Vec<Problem>, pointer: &str, code: &'static str, message: String| {
        problems.push(problem_at(
            node.span.start.line().max(1),
            node.span.start.col() + 1,
            pointer,
            code,
            message,
        ));
    };
    match &node.data {
        YamlData::Value(scalar) => match scalar {
            Scalar::Null => Some(Value::Null),
            Scalar::Boolean(b) => Some(Value::Bool(*b)),
            Scalar::Integer(i) => Some(Value::from(*i)),
            Scalar::FloatingPoint(f) => match serde_json::Number::from_f64(f.into_inner()) {
                Some(n) => Some(Value::Number(n)),
                None => {
                    at(
                        problems,
                        pointer,
                        "yaml_value",
                        "infinite and NaN numbers are not allowed".into(),
                    );
                    None
                }
            },
            Scalar::String(s) => Some(Value::String(s.to_string())),
        },
        YamlData::Sequence(items) => {
            let mut array = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&index.to_string());
                if let Some(value) = to_json(item, pointer, problems) {
                    array.push(value);
                }
                pointer.truncate(len);
            }
            Some(Value::Array(array))
        }
        YamlData::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, value) in mapping {
                let YamlData::Value(Scalar::String(name)) = &key.data else {
                    problems.push(problem_at(
                        key.span.start.line().max(1),
                        key.span.start.col() + 1,
                        pointer,
                        "yaml_key",
                        format!("keys must be plain text, found {}", describe_node(key)),
                    ));
                    continue;
                };
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
                if let Some(value) = to_json(value, pointer, problems) {
                    object.insert(name.to_string(), value);
                }
                pointer.truncate(len);
            }
            Some(Value::Object(object))
        }
        YamlData::Tagged(tag, _) => {
            at(
                problems,
                pointer,
                "yaml_tag",
                format!(
                    "tags such as {} are not supported in specs; remove the tag",
                    short_quote(&tag.to_string())
                ),
            );
            None
        }
        YamlData::Alias(_) | YamlData::Representation(..) | YamlData::BadValue => {
            at(
                problems,
                pointer,
                "yaml_value",
                "this value cannot be read; write it out plainly".into(),
            );
            None
        }
    }
}

fn describe_node(node: &MarkedYaml<'_>) -> String {
    match &node.data {
        YamlData::Sequence(_) => "a list".into(),
        YamlData::Mapping(_) => "a mapping".into(),
        YamlData::Value(Scalar::Null) => "null".into(),
        YamlData::Value(Scalar::Boolean(b)) => format!("the boolean {b}"),
        YamlData::Value(Scalar::Integer(i)) => format!("the number {i}"),
        YamlData::Value(Scalar::FloatingPoint(f)) => format!("the number {f}"),
        YamlData::Value(Scalar::String(s)) => format!("the text {}", short_quote(s)),
        _ => "a value".into(),
    }
}

/// A file whose top level is not a mapping is not a plausible spec: it may be any file a link points
/// at (`/etc/shadow`, a key), read with the privileges of whoever runs `jobs`. Its problems quote no
/// more than the start of its first line, enough to recognise a file, too little to give one away.
fn short_quote(text: &str) -> String {
    const MAX_CHARS: usize = 12;
    let first_line = text.lines().next().unwrap_or_default();
    let total = text.chars().count();
    match first_line.char_indices().nth(MAX_CHARS) {
        None if first_line.len() == text.len() => format!("\"{text}\""),
        Some((cut, _)) => format!("\"{}…\" ({total} characters)", &first_line[..cut]),
        None => format!("\"{first_line}…\" ({total} characters)"),
    }
}

/// The embedded schema, parsed once.
fn schema_value() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        // The schema is compiled into the binary and tested, so failing here is a build defect.
        #[expect(clippy::expect_used, reason = "the embedded schema is tested to parse")]
        serde_json::from_str(JOB_SCHEMA).expect("embedded job schema is valid JSON")
    })
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        #[expect(
            clippy::expect_used,
            reason = "the embedded schema is tested to compile"
        )]
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(schema_value())
            .expect("embedded job schema compiles")
    })
}

fn schema_problem(root: &MarkedYaml<'_>, error: &jsonschema::ValidationError<'_>) -> Problem {
    let pointer = error.instance_path().as_str().to_owned();
    let instance = error.instance();
    let (pointer, message) = match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let name = unexpected.first().cloned().unwrap_or_default();
            let known = known_properties(&pointer);
            let hint = crate::text::closest(&name, known.iter().map(String::as_str), 1)
                .into_iter()
                .next()
                .map(|s| format!("; did you mean \"{s}\"?"))
                .unwrap_or_else(|| {
                    if known.is_empty() {
                        String::new()
                    } else {
                        format!("; known fields: {}", known.join(", "))
                    }
                });
            (
                format!("{pointer}/{}", escape_pointer(&name)),
                format!("unknown field \"{name}\"{hint}"),
            )
        }
        ValidationErrorKind::PropertyNames { error } => {
            // Point at the offending key itself, not at the mapping that holds it.
            let name = error.instance().as_str().unwrap_or_default().to_owned();
            let pointer = format!("{pointer}/{}", escape_pointer(&name));
            let message = pattern_message(&pointer, &Value::String(name));
            (pointer, message)
        }
        // `dependentRequired`: a group only means something for the user the run changes to.
        ValidationErrorKind::Required { property }
            if pointer == "/run" && property.as_str() == Some("user") =>
        {
            (
                "/run/group".into(),
                "run.group needs run.user: it is the group of the user the run changes to".into(),
            )
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            (pointer, format!("missing required field \"{name}\""))
        }
        // An env value may be a secret typed without quotes: say what kind it is, never what it is.
        ValidationErrorKind::Type { .. } if pointer.starts_with("/run/env/") => (
            pointer.clone(),
            format!(
                "expected text, found {}; env values are never shown",
                json_kind_only(instance)
            ),
        ),
        // `env: "API_TOKEN=..."` holds its values in the text itself.
        _ if pointer == "/run/env" => (
            pointer.clone(),
            format!(
                "expected a mapping of names to values such as {{ API_TOKEN: ... }}, found {}; \
                 env values are never shown",
                json_kind_only(instance)
            ),
        ),
        ValidationErrorKind::Type { .. } => (
            pointer.clone(),
            format!(
                "expected {}, found {}",
                expected_type(&pointer),
                json_kind(instance)
            ),
        ),
        ValidationErrorKind::Pattern { .. } => {
            (pointer.clone(), pattern_message(&pointer, instance))
        }
        ValidationErrorKind::Enum { options } => (
            pointer,
            format!("{instance} is not one of {}", join_json(options)),
        ),
        ValidationErrorKind::AnyOf { .. } if pointer == "/policy/misfire_grace" => (
            pointer,
            format!("{instance} is not a duration such as 5m or 1h, nor \"unlimited\""),
        ),
        ValidationErrorKind::MinItems { limit: 1 } => {
            (pointer, "the list must not be empty".into())
        }
        ValidationErrorKind::MinLength { limit: 1 | 2 } if instance.as_str() == Some("") => {
            (pointer, "must not be empty".into())
        }
        ValidationErrorKind::Format { format } if format == "date-time" => (
            pointer,
            format!("{instance} is not an RFC 3339 date-time such as 2026-01-01T00:00:00Z"),
        ),
        _ => (pointer, lowercase_first(&error.to_string())),
    };
    locate_problem(root, &pointer, "schema", clip(message))
}

/// Messages quote the offending value; a megabyte of it helps nobody and floods every listing.
fn clip(message: String) -> String {
    const MAX_CHARS: usize = 240;
    match message.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!(
            "{}… ({} characters in all)",
            &message[..cut],
            message.chars().count()
        ),
        None => message,
    }
}

/// The property names the schema allows in the object at `pointer`, for "did you mean".
fn known_properties(pointer: &str) -> Vec<String> {
    let mut node = schema_value();
    for token in pointer.split('/').skip(1) {
        match node.get("properties").and_then(|p| p.get(token)) {
            Some(child) => node = child,
            None => return Vec::new(),
        }
    }
    node.get("properties")
        .and_then(Value::as_object)
        .map(|props| props.keys().cloned().collect())
        .unwrap_or_default()
}

fn expected_type(pointer: &str) -> &'static str {
    match pointer {
        "/enabled" | "/policy/coalesce" => "true or false",
        "/policy/max_instances"
        | "/retry/max_attempts"
        | "/retention/keep_last"
        | "/retention/keep_days"
        | "/run/limits/nofile" => "a whole number",
        "" | "/schedule" | "/run" | "/policy" | "/retry" | "/retention" | "/run/env"
        | "/run/limits" => "a mapping",
        "/run/command" | "/tags" | "/retry/retry_on" => "a list",
        _ => "text",
    }
}

fn json_kind_only(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn json_kind(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the text \"{s}\""),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

fn pattern_message(pointer: &str, instance: &Value) -> String {
    if pointer == "/id" {
        format!(
            "{instance} is not a valid id: use 1 to 63 lowercase letters, digits, '-' or '_', starting with a letter or digit"
        )
    } else if pointer.starts_with("/tags/") {
        format!("{instance} is not a valid tag: use lowercase letters, digits, '.', '-' or '_'")
    } else if pointer.starts_with("/run/env") {
        format!("{instance} is not a valid environment variable name")
    } else if pointer == "/run/user" || pointer == "/run/group" {
        format!("{instance} is not a user or group name: use letters, digits, '_', '.' or '-'")
    } else if pointer == "/run/max_log_size" || pointer == "/run/limits/as" {
        format!("{instance} is not a size such as 64KiB, 256MiB or 1GiB")
    } else {
        format!("{instance} is not a duration such as 500ms, 30s, 10m, 1h30m or 2d")
    }
}

fn join_json(options: &Value) -> String {
    match options.as_array() {
        Some(items) => items
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        None => options.to_string(),
    }
}

/// Checks the schema cannot express. Each is skipped when its field is absent or of the wrong type,
/// since the schema reports those. A cron pattern that parses is handed back in `parsed_cron`, since
/// parsing is the costly part of loading a spec.
fn semantic_problems(
    json: &Value,
    expected_id: &str,
    now: DateTime<Utc>,
    parsed_cron: &mut Option<std::sync::Arc<croner::Cron>>,
) -> Vec<(String, &'static str, String)> {
    let mut out = Vec::new();
    let text = |pointer: &str| json.pointer(pointer).and_then(Value::as_str);

    // A NUL cannot pass through exec or a path: found here rather than as a failed start at 3 am.
    let mut nul_at = |pointer: String| {
        out.push((
            pointer,
            "nul_byte",
            "contains a NUL character, which no command, argument, path or environment can carry"
                .into(),
        ));
    };
    for (pointer, value) in [
        ("/run/shell", text("/run/shell")),
        ("/run/cwd", text("/run/cwd")),
    ] {
        if value.is_some_and(|v| v.contains('\0')) {
            nul_at(pointer.into());
        }
    }
    if let Some(argv) = json.pointer("/run/command").and_then(Value::as_array) {
        for (i, arg) in argv.iter().enumerate() {
            if arg.as_str().is_some_and(|a| a.contains('\0')) {
                nul_at(format!("/run/command/{i}"));
            }
        }
    }
    if let Some(env) = json.pointer("/run/env").and_then(Value::as_object) {
        for (name, value) in env {
            if name.contains('\0') || value.as_str().is_some_and(|v| v.contains('\0')) {
                nul_at(format!("/run/env/{}", escape_pointer(name)));
            }
        }
    }

    if let Some(id) = text("/id")
        && id != expected_id
        && is_valid_id(id)
    {
        out.push((
            "/id".into(),
            "id_mismatch",
            format!(
                "id \"{id}\" does not match the file name \"{expected_id}\"; rename the file or change the id"
            ),
        ));
    }

    for pointer in DURATION_POINTERS {
        if let Some(value) = text(pointer) {
            if value == "unlimited" && *pointer == "/policy/misfire_grace" {
                continue;
            }
            match value.parse::<SpecDuration>() {
                Ok(d) if d.is_zero() && ["/schedule/every", "/run/timeout"].contains(pointer) => {
                    out.push((
                        (*pointer).into(),
                        "invalid_duration",
                        "must be longer than zero".into(),
                    ));
                }
                // Every slot is a run or a record of one: `every: 1ms` writes a thousand rows a
                // second and starves every other job. A 6-field cron fires once a second at most.
                Ok(d) if *pointer == "/schedule/every" && d < MIN_EVERY => {
                    out.push((
                        (*pointer).into(),
                        "every_too_short",
                        format!(
                            "\"{value}\" is shorter than the minimum of {MIN_EVERY}: each slot is a run \
                             with its own record; use every: {MIN_EVERY} or longer"
                        ),
                    ));
                }
                Ok(_) => {}
                Err(e) if has_duration_shape(value) => {
                    out.push((
                        (*pointer).into(),
                        "invalid_duration",
                        format!("\"{value}\" is not a valid duration: {e}"),
                    ));
                }
                Err(_) => {} // the schema's pattern reports it
            }
        }
    }

    // The schema checks the spelling; the range needs the number.
    for pointer in ["/run/max_log_size", "/run/limits/as"] {
        if let Some(value) = text(pointer)
            && let Err(e) = value.parse::<ByteSize>()
        {
            out.push((
                pointer.into(),
                "invalid_size",
                format!("\"{value}\" is not a valid size: {e}"),
            ));
        }
    }
    // RLIMIT_CPU counts whole seconds: a limit of 1500ms would silently become 1 s or 2 s.
    if let Some(value) = text("/run/limits/cpu")
        && let Ok(cpu) = value.parse::<SpecDuration>()
        && (cpu.as_millis() < 1000 || cpu.as_millis() % 1000 != 0)
    {
        out.push((
            "/run/limits/cpu".into(),
            "invalid_duration",
            format!(
                "\"{value}\" is not a whole number of seconds of at least 1s, as CPU limits count"
            ),
        ));
    }
    identity_problems(text("/run/user"), text("/run/group"), &mut out);

    if let Some(schedule) = json.get("schedule").and_then(Value::as_object) {
        match (schedule.contains_key("cron"), schedule.contains_key("every")) {
            (true, true) => out.push((
                "/schedule/every".into(),
                "schedule_conflict",
                "use either cron or every, not both".into(),
            )),
            (false, false) => out.push((
                "/schedule".into(),
                "schedule_empty",
                "a schedule needs cron or every; leave schedule out for a job that only runs by hand".into(),
            )),
            _ => {}
        }
        if schedule.contains_key("cron") && schedule.contains_key("anchor") {
            out.push((
                "/schedule/anchor".into(),
                "schedule_conflict",
                "anchor only applies to every; remove it or use every".into(),
            ));
        }
        if let Some(anchor) = text("/schedule/anchor") {
            match DateTime::parse_from_rfc3339(anchor) {
                Err(_) => out.push((
                    "/schedule/anchor".into(),
                    "invalid_anchor",
                    format!("\"{anchor}\" is not an RFC 3339 date-time such as 2026-01-01T00:00:00Z"),
                )),
                Ok(t) if !t.timestamp_subsec_nanos().is_multiple_of(1_000_000) => out.push((
                    "/schedule/anchor".into(),
                    "invalid_anchor",
                    format!("\"{anchor}\" is finer than a millisecond; the anchor must be in whole milliseconds"),
                )),
                // Slots must stay printable as RFC 3339 (years up to 9999): an interval is at most
                // 10 years, so an anchor before 9000 leaves centuries of room.
                Ok(t) if chrono::Datelike::year(&t.naive_utc()) >= 9000 => out.push((
                    "/schedule/anchor".into(),
                    "invalid_anchor",
                    format!("\"{anchor}\" is too far in the future; use an anchor before the year 9000"),
                )),
                Ok(_) => {}
            }
        }
        let tz = text("/schedule/timezone").map(|name| {
            schedule::parse_timezone(name).map_err(|message| {
                let close = crate::text::closest(
                    name,
                    chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()),
                    3,
                );
                let hint = if close.is_empty() {
                    "; use an IANA name such as Europe/Berlin or UTC".to_string()
                } else {
                    format!("; did you mean {}?", close.join(", "))
                };
                out.push((
                    "/schedule/timezone".into(),
                    "unknown_timezone",
                    format!("{message}{hint}"),
                ));
            })
        });
        if let Some(pattern) = text("/schedule/cron") {
            match schedule::parse_cron(pattern) {
                Err(message) => out.push((
                    "/schedule/cron".into(),
                    "invalid_cron",
                    format!("\"{pattern}\" is not a valid cron pattern: {message}"),
                )),
                Ok(cron) => {
                    if let Some(Ok(tz)) = tz {
                        let horizon = now + chrono::Duration::days(MAX_FIRST_SLOT_DAYS);
                        let next = cron
                            .find_next_occurrence(&now.with_timezone(&tz), false)
                            .ok();
                        if next.is_none_or(|t| t.with_timezone(&Utc) > horizon) {
                            out.push((
                                "/schedule/cron".into(),
                                "cron_never_fires",
                                format!("\"{pattern}\" has no occurrence in the next 5 years; check day and month"),
                            ));
                        }
                    }
                    *parsed_cron = Some(cron);
                }
            }
        }
    }

    if let Some(run) = json.get("run").and_then(Value::as_object) {
        match (run.contains_key("command"), run.contains_key("shell")) {
            (true, true) => out.push((
                "/run/shell".into(),
                "run_conflict",
                "use either command or shell, not both".into(),
            )),
            (false, false) => out.push((
                "/run".into(),
                "run_empty",
                "run needs command (a list: program and arguments) or shell (a command line)"
                    .into(),
            )),
            _ => {}
        }
        if let Some(env) = run.get("env").and_then(Value::as_object) {
            for name in env.keys().filter(|name| name.starts_with("JOBS_")) {
                out.push((
                    format!("/run/env/{}", escape_pointer(name)),
                    "reserved_env",
                    format!("\"{name}\" is reserved: jobs sets JOBS_* variables for every run"),
                ));
            }
        }
    }
    out
}

/// `run.user` and `run.group`. Changing user takes root, so as anyone else a spec that asks for it is
/// refused here, where validate shows it with its position, rather than failing at its first run.
fn identity_problems(
    user: Option<&str>,
    group: Option<&str>,
    out: &mut Vec<(String, &'static str, String)>,
) {
    let Some(user) = user else { return };
    if !rustix::process::geteuid().is_root() {
        out.push((
            "/run/user".into(),
            "run_user_needs_root",
            format!(
                "running as \"{user}\" needs jobs to run as root; run the scheduler as root, or leave run.user out to run as the current user"
            ),
        ));
        return;
    }
    if crate::users::user_by_name(user).is_none() {
        out.push((
            "/run/user".into(),
            "unknown_user",
            format!("no user \"{user}\" in /etc/passwd"),
        ));
    }
    if let Some(group) = group
        && crate::users::group_by_name(group).is_none()
    {
        out.push((
            "/run/group".into(),
            "unknown_group",
            format!("no group \"{group}\" in /etc/group"),
        ));
    }
}

/// The shortest `every` a spec may ask for.
const MIN_EVERY: SpecDuration = SpecDuration::from_millis(1_000);

const DURATION_POINTERS: &[&str] = &[
    "/schedule/every",
    "/schedule/jitter",
    "/run/timeout",
    "/run/kill_grace",
    "/run/limits/cpu",
    "/policy/misfire_grace",
    "/retry/backoff",
    "/retry/max_backoff",
];

/// Whether `text` has the shape the schema's duration pattern accepts, so that a parse failure is
/// ours to report (e.g. a number too large) rather than the schema's.
fn has_duration_shape(text: &str) -> bool {
    text.len() >= 2
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'd' | b'h' | b'm' | b's'))
        && text.bytes().next().is_some_and(|b| b.is_ascii_digit())
}

fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn unescape_pointer(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Positions a problem at the node `pointer` names: a mapping entry's key, a list item, or the
/// deepest existing node on the way when the pointer names something absent.
fn locate_problem(
    root: &MarkedYaml<'_>,
    pointer: &str,
    code: &'static str,
    message: String,
) -> Problem {
    let (line, column) = locate(root, pointer);
    problem_at(line, column, pointer, code, message)
}

fn locate(root: &MarkedYaml<'_>, pointer: &str) -> (usize, usize) {
    let mut node = root;
    let mut mark = root.span.start;
    for token in pointer.split('/').skip(1) {
        let token = unescape_pointer(token);
        let next = match &node.data {
            YamlData::Mapping(mapping) => mapping.iter().find_map(|(key, value)| match &key.data {
                YamlData::Value(Scalar::String(name)) if *name == token => {
                    Some((key.span.start, value))
                }
                _ => None,
            }),
            YamlData::Sequence(items) => token
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .map(|item| (item.span.start, item)),
            _ => None,
        };
        match next {
            Some((at, child)) => {
                mark = at;
                node = child;
            }
            None => break,
        }
    }
    (mark.line().max(1), mark.col() + 1)
}

fn problem_at(
    line: usize,
    column: usize,
    pointer: &str,
    code: &'static str,
    message: String,
) -> Problem {
    // Messages quote what the file says, and a file can say ESC: escaped here, every output of a
    // problem (a terminal, a log, JSON read by a person) is safe to show.
    let message = match crate::text::escape_controls(&message) {
        std::borrow::Cow::Borrowed(_) => message,
        std::borrow::Cow::Owned(escaped) => escaped,
    };
    Problem {
        code,
        line,
        column,
        pointer: pointer.to_owned(),
        message,
    }
}

/// 1-based line and column of byte `offset`, counting columns in characters.
fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000, 0).unwrap_or_default()
    }

    const FULL: &str = "id: full\ndescription: \"tab\\there, ESC \\e, quote \\\" and ü\"\nschedule:\n  every: 15m\n  anchor: 2026-01-01T00:00:00Z\n  jitter: 30s\nrun:\n  command: [\"./x.sh\", \"--a\"]\n  cwd: sub\n  env: { A: \"1\", B: \"two words\" }\n  timeout: 10m\n  kill_grace: 5s\n  leftovers: keep\npolicy:\n  max_instances: 2\n  overlap: queue\n  coalesce: false\n  misfire_grace: unlimited\nretry:\n  max_attempts: 3\n  backoff: 1s\n  max_backoff: 1m\n  retry_on: [failed, interrupted]\nretention:\n  keep_last: 5\n  keep_days: 2\ntags: [a, b.c]\n";

    #[test]
    fn a_stored_last_good_version_passes_its_own_recheck() {
        let mut sources = vec![(FULL.to_owned(), "full".to_owned())];
        sources.push(("id: bare\nrun:\n  shell: \"true\"\n".into(), "bare".into()));
        sources.push((
            "id: zoned\nschedule:\n  cron: \"30 2 * * *\"\n  timezone: America/New_York\nrun:\n  command: [\"true\"]\n"
                .into(),
            "zoned".into(),
        ));
        // The bundled examples too: whatever a home holds must survive the round trip.
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs");
        for file in load_dir(&examples, now()).unwrap_or_default() {
            let source = fs::read_to_string(&file.path).unwrap_or_default();
            sources.push((source, file.stem_id.unwrap_or_default()));
        }
        assert!(sources.len() > 3, "the examples are found");
        for (source, id) in sources {
            let loaded = load_source(&source, &id, now())
                .unwrap_or_else(|problems| panic!("{id}: {problems:?}"));
            let stored = loaded.json().to_string();
            let again = recheck_stored(&stored, &id, now())
                .unwrap_or_else(|problems| panic!("{id}: {stored}: {problems:?}"));
            assert_eq!(again.spec, loaded.spec, "{id}");
        }
    }

    #[test]
    fn every_below_a_second_is_refused_where_it_is_written() {
        for short in ["1ms", "999ms"] {
            let source =
                format!("id: fast\nschedule:\n  every: {short}\nrun:\n  command: [\"true\"]\n");
            let problems = load_source(&source, "fast", now())
                .err()
                .unwrap_or_default();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(
                (
                    problems[0].code,
                    problems[0].line,
                    problems[0].column,
                    problems[0].pointer.as_str()
                ),
                ("every_too_short", 3, 3, "/schedule/every")
            );
            assert!(
                problems[0].message.contains("minimum of 1s"),
                "{problems:?}"
            );
            let stored = format!(
                "{{\"id\":\"fast\",\"schedule\":{{\"every\":\"{short}\"}},\"run\":{{\"command\":[\"true\"]}}}}"
            );
            let problems = recheck_stored(&stored, "fast", now())
                .err()
                .unwrap_or_default();
            assert_eq!(problems.first().map(|p| p.code), Some("every_too_short"));
        }
        let source = "id: fast\nschedule:\n  every: 1s\nrun:\n  command: [\"true\"]\n";
        assert!(load_source(source, "fast", now()).is_ok());
    }
}
