//! The embedded JSON Schema of a job spec, compiled once, and turning its errors into positioned
//! problems that say what to fix. Must not check what the schema cannot express (the checks do).

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use saphyr::{MarkedYaml, YamlData};
use serde_json::{Map, Value};

use super::problem::{Problem, problem_at};
use super::yaml::{describe_node, escape_pointer, locate_problem};
use crate::text::lowercase_first;

/// The JSON Schema of a job spec, as shipped in `schemas/job.schema.json`.
pub const JOB_SCHEMA: &str = include_str!("../../schemas/job.schema.json");

/// The JSON Schema of the home's `config.yaml`, as shipped in `schemas/config.schema.json`.
pub const CONFIG_SCHEMA: &str = include_str!("../../schemas/config.schema.json");

/// Which kind of document a YAML file is checked as: both go through the same stages and their
/// problems read alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Document {
    Job,
    Config,
}

/// A mapping none of whose keys is a field of a spec is not a plausible spec: a file of `name:value`
/// lines (`/etc/shadow` is one) reads as YAML keys, and the schema's problems would quote each key in
/// full, in both the message and the pointer. Such a file gets one problem that quotes no more than
/// the start of its first key. An empty mapping quotes nothing and goes on to the schema.
pub(super) fn implausible_spec(
    root: &MarkedYaml<'_>,
    object: &Map<String, Value>,
) -> Option<Problem> {
    let fields = known_properties(Document::Job, "");
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

/// Every way `json` breaks the schema of `document`, each positioned in `root`.
pub(crate) fn schema_problems(
    document: Document,
    root: &MarkedYaml<'_>,
    json: &Value,
) -> Vec<Problem> {
    validator(document)
        .iter_errors(json)
        .map(|error| schema_problem(document, root, &error))
        .collect()
}

/// The embedded schema of `document`, parsed once.
pub(crate) fn schema_value(document: Document) -> &'static Value {
    static JOB: OnceLock<Value> = OnceLock::new();
    static CONFIG: OnceLock<Value> = OnceLock::new();
    let (cell, text) = match document {
        Document::Job => (&JOB, JOB_SCHEMA),
        Document::Config => (&CONFIG, CONFIG_SCHEMA),
    };
    cell.get_or_init(|| {
        // The schemas are compiled into the binary and tested, so failing here is a build defect.
        #[expect(
            clippy::expect_used,
            reason = "the embedded schemas are tested to parse"
        )]
        serde_json::from_str(text).expect("an embedded schema is valid JSON")
    })
}

fn validator(document: Document) -> &'static jsonschema::Validator {
    static JOB: OnceLock<jsonschema::Validator> = OnceLock::new();
    static CONFIG: OnceLock<jsonschema::Validator> = OnceLock::new();
    let cell = match document {
        Document::Job => &JOB,
        Document::Config => &CONFIG,
    };
    cell.get_or_init(|| {
        #[expect(
            clippy::expect_used,
            reason = "the embedded schemas are tested to compile"
        )]
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(schema_value(document))
            .expect("an embedded schema compiles")
    })
}

fn schema_problem(
    document: Document,
    root: &MarkedYaml<'_>,
    error: &jsonschema::ValidationError<'_>,
) -> Problem {
    let pointer = error.instance_path().as_str().to_owned();
    // The config's defaults hold parts of a spec: their messages are those of the spec's fields.
    let field = match document {
        Document::Job => pointer.clone(),
        Document::Config => pointer
            .strip_prefix("/defaults")
            .unwrap_or(&pointer)
            .to_owned(),
    };
    let instance = error.instance();
    let (pointer, message) = match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let name = unexpected.first().cloned().unwrap_or_default();
            let known = known_properties(document, &pointer);
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
            let key = format!("/{}", escape_pointer(&name));
            let message = pattern_message(&format!("{field}{key}"), &Value::String(name));
            (format!("{pointer}{key}"), message)
        }
        // `dependentRequired`: a group only means something for the user the run changes to.
        ValidationErrorKind::Required { property }
            if field == "/run" && property.as_str() == Some("user") =>
        {
            (
                format!("{pointer}/group"),
                "run.group needs run.user: it is the group of the user the run changes to".into(),
            )
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            (pointer, format!("missing required field \"{name}\""))
        }
        // An env value may be a secret typed without quotes: say what kind it is, never what it is.
        ValidationErrorKind::Type { .. } if field.starts_with("/run/env/") => (
            pointer.clone(),
            format!(
                "expected text, found {}; env values are never shown",
                json_kind_only(instance)
            ),
        ),
        // `notify: https://...` or `- https://...` (no `webhook:`): the text is a URL with its token.
        ValidationErrorKind::Type { .. }
            if pointer == "/notify"
                || pointer
                    .strip_prefix("/notify/")
                    .is_some_and(|rest| !rest.contains('/')) =>
        {
            (
                pointer.clone(),
                format!(
                    "expected {}, found {}, which is not shown as it may be a URL with its token; \
                     write a notifier as - webhook: URL, - command: [...] or - ping: URL",
                    expected_type(&pointer),
                    json_kind_only(instance)
                ),
            )
        }
        // `env: "API_TOKEN=..."` holds its values in the text itself.
        _ if field == "/run/env" => (
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
                expected_type(&field),
                json_kind(instance)
            ),
        ),
        // A store URL may carry a password: it is shown masked, never as written.
        ValidationErrorKind::Pattern { .. } | ValidationErrorKind::Not { .. }
            if field == "/store" =>
        {
            let url = instance.as_str().unwrap_or_default();
            (
                pointer.clone(),
                format!(
                    "{} is not a PostgreSQL URL without a password (postgres://USER@HOST:PORT/DATABASE); give the password in store_password_file or PGPASSWORD",
                    crate::store::postgres_url::masked(url)
                ),
            )
        }
        ValidationErrorKind::Pattern { .. } => (pointer.clone(), pattern_message(&field, instance)),
        ValidationErrorKind::Enum { options } => (
            pointer,
            format!("{instance} is not one of {}", join_json(options)),
        ),
        ValidationErrorKind::AnyOf { .. } if field == "/policy/misfire_grace" => (
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
fn known_properties(document: Document, pointer: &str) -> Vec<String> {
    let mut node = schema_value(document);
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
    // `/notify/<i>/<field>`: a notifier's fields are the same whatever its place in the list.
    if let Some(field) = pointer
        .strip_prefix("/notify/")
        .map(|rest| rest.split_once('/').map_or("", |(_, field)| field))
    {
        return match field {
            "" => "a mapping",
            "command" | "on" => "a list",
            "include_output" => "a whole number",
            _ => "text",
        };
    }
    match pointer {
        "/enabled" | "/policy/coalesce" => "true or false",
        "/policy/max_instances"
        | "/retry/max_attempts"
        | "/retention/keep_last"
        | "/retention/keep_days"
        | "/run/limits/nofile" => "a whole number",
        "" | "/schedule" | "/run" | "/policy" | "/retry" | "/retention" | "/run/env"
        | "/run/limits" => "a mapping",
        "/run/command" | "/tags" | "/retry/retry_on" | "/notify" => "a list",
        // The config's: the home's `max_running`, and each group's.
        _ if pointer.ends_with("/max_running") => "a whole number",
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
