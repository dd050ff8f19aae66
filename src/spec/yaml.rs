//! Bytes to a marked YAML tree to JSON, with positions: reading a spec file safely (regular files
//! only, opened without blocking, bounded in size, ownership checked when running as root), the
//! nesting and alias limits, and finding the line and column a JSON pointer names. Must not know what
//! a spec's fields mean: that is the schema's and the checks' part.

use std::fs;
use std::io::Read;
use std::path::Path;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Value};

use super::problem::{Problem, problem_at};

/// Spec files larger than this are refused unread: a job spec is a few hundred bytes.
pub(super) const MAX_SPEC_BYTES: u64 = 1024 * 1024;

pub(crate) fn read_limited(path: &Path) -> Result<Vec<u8>, Problem> {
    read_limited_stamped(path).map(|(bytes, _)| bytes)
}

/// The metadata of `path` (through a link) if it is a regular file a spec may be read from, for a
/// look at the stamp cache before reading it: the same refusals as [`read_limited`] apply, so a file
/// the cache knows is never believed where reading it would be refused.
pub(crate) fn stat_readable(path: &Path) -> Option<fs::Metadata> {
    let metadata = fs::metadata(path).ok()?;
    (metadata.is_file()
        && unsafe_ownership(&metadata, rustix::process::geteuid().is_root()).is_none())
    .then_some(metadata)
}

/// As [`read_limited`], with the metadata of the handle read, taken before the read: a write after it
/// moves the file's times past what is returned, so a stamp made from it never hides a change.
pub(crate) fn read_limited_stamped(path: &Path) -> Result<(Vec<u8>, fs::Metadata), Problem> {
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
    let mut bytes =
        Vec::with_capacity(usize::try_from(metadata.len().min(MAX_SPEC_BYTES)).unwrap_or(0) + 1);
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
    Ok((bytes, metadata))
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

/// Parses `text` as the one YAML document of a spec, with positions.
pub(crate) fn parse(text: &str) -> Result<MarkedYaml<'_>, Vec<Problem>> {
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

/// The text of a spec file, which must be UTF-8.
pub(crate) fn decode(bytes: &[u8]) -> Result<&str, Vec<Problem>> {
    std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_column(bytes, e.valid_up_to());
        vec![problem_at(
            line,
            column,
            "",
            "not_utf8",
            "the file is not valid UTF-8".into(),
        )]
    })
}

/// The JSON of a document whose top level must be a mapping, or everything JSON cannot carry.
pub(crate) fn to_mapping(root: &MarkedYaml<'_>) -> Result<Map<String, Value>, Vec<Problem>> {
    let mut problems = Vec::new();
    let json = to_json(root, &mut String::new(), &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    let Some(Value::Object(object)) = json else {
        let found = describe_node(root);
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
    Ok(object)
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

pub(super) fn describe_node(node: &MarkedYaml<'_>) -> String {
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

pub(super) fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn unescape_pointer(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Positions a problem at the node `pointer` names: a mapping entry's key, a list item, or the
/// deepest existing node on the way when the pointer names something absent.
pub(crate) fn locate_problem(
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
