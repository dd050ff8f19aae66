//! The checks a JSON Schema cannot express: cron patterns and zones, ids, durations and sizes, NULs,
//! conflicting fields, the run's user and group. Works on the JSON a spec became and answers with
//! pointers; must not parse YAML or find positions (the loader locates each problem).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::model::{HttpUrl, NotifyOn};
use super::size::ByteSize;
use super::yaml::escape_pointer;
use crate::duration::SpecDuration;
use crate::schedule::{self, MAX_FIRST_SLOT_DAYS};

/// The revision of the checks the schema cannot express (`semantic_problems`). Raise it whenever a
/// check is added or tightened: the fingerprint changes with it, so specs an older loader accepted are
/// checked again, both files the store would trust and the last good versions it keeps.
pub(super) const RULES_REVISION: u32 = 5;

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

/// Checks the schema cannot express. Each is skipped when its field is absent or of the wrong type,
/// since the schema reports those. A cron pattern that parses is handed back in `parsed_cron`, since
/// parsing is the costly part of loading a spec.
pub(super) fn semantic_problems(
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

    // Nor can any other text of a spec hold one: PostgreSQL's JSON refuses it, so one such spec
    // would stop the sync of the whole home there. Said once per place, here or above.
    let mut elsewhere = Vec::new();
    nul_pointers(json, String::new(), &mut elsewhere);
    for pointer in elsewhere {
        let covered = ["/run/shell", "/run/cwd", "/run/command/", "/run/env/"]
            .iter()
            .any(|above| pointer == *above || pointer.starts_with(above));
        if !covered {
            out.push((
                pointer,
                "nul_byte",
                "contains a NUL character, which no text of a spec may hold".into(),
            ));
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
    if let Some(notifiers) = json.get("notify").and_then(Value::as_array) {
        for (index, notifier) in notifiers.iter().enumerate() {
            if let Some(notifier) = notifier.as_object() {
                notifier_problems(
                    &format!("/notify/{index}"),
                    notifier,
                    NotifierScope::Job,
                    &mut out,
                );
            }
        }
    }

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
    trigger_problems(json, expected_id, &mut out);
    out
}

/// A job that triggers itself, an upstream named twice, and a group with `overlap: replace` (which
/// would stop another job's run to make room): the trigger and group rules one spec can break alone.
/// Unknown upstreams, cycles and undefined groups need the other specs and the config
/// (`spec::relations`).
fn trigger_problems(json: &Value, id: &str, out: &mut Vec<(String, &'static str, String)>) {
    let mut named = std::collections::HashSet::new();
    for (i, upstream) in json["after"].as_array().into_iter().flatten().enumerate() {
        let Some(job) = upstream["job"].as_str() else {
            continue;
        };
        if job == id {
            out.push((
                format!("/after/{i}/job"),
                "triggers_itself",
                format!("\"{id}\" cannot run after itself; a job that should run again uses a schedule or retry"),
            ));
        } else if !named.insert(job) {
            out.push((
                format!("/after/{i}/job"),
                "duplicate_upstream",
                format!(
                    "\"{job}\" is named twice in after; give one entry with every outcome in its on"
                ),
            ));
        }
    }
    for (i, job) in json["after_all"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if job.as_str() == Some(id) {
            out.push((
                format!("/after_all/{i}"),
                "triggers_itself",
                format!("\"{id}\" cannot wait for itself in after_all"),
            ));
        }
    }
    if json["policy"]["group"].is_string() && json["policy"]["overlap"] == "replace" {
        out.push((
            "/policy/overlap".into(),
            "group_with_replace",
            "overlap: replace cannot go with a group: it would stop another job's run to make room; use skip or queue"
                .into(),
        ));
    }
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

/// Whose notifier is checked: a job's (a spec's `notify:`, or the config's `defaults.notify`), which
/// hears a run's events, or the home's (the config's own `notify:`), which hears the home's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifierScope {
    Job,
    Home,
}

/// One entry of `notify:` at `at`: exactly one target, options that belong to it, a URL that HTTP can
/// reach, a timeout that ends, and only the events of its scope.
pub fn notifier_problems(
    at: &str,
    notifier: &serde_json::Map<String, Value>,
    scope: NotifierScope,
    out: &mut Vec<(String, &'static str, String)>,
) {
    let targets: Vec<&str> = NOTIFY_TARGETS
        .into_iter()
        .filter(|key| notifier.contains_key(*key))
        .collect();
    match targets.as_slice() {
        [] => out.push((
            at.into(),
            "notify_target_empty",
            "a notifier needs one of webhook (a URL to POST to), command (a program to run) or \
             ping (a healthchecks URL)"
                .into(),
        )),
        [_] => {}
        [first, second, ..] => out.push((
            format!("{at}/{second}"),
            "notify_target_conflict",
            format!("use one of webhook, command or ping in each notifier, not both {first} and {second}; add another notifier to the list for the other"),
        )),
    }
    let target = targets.first().copied();
    for key in ["webhook", "ping"] {
        if let Some(url) = notifier.get(key).and_then(Value::as_str)
            && let Err((code, message)) = HttpUrl::parse(url)
        {
            out.push((format!("{at}/{key}"), code, message));
        }
    }
    if let Some(argv) = notifier.get("command").and_then(Value::as_array) {
        for (i, arg) in argv.iter().enumerate() {
            if arg.as_str().is_some_and(|a| a.contains('\0')) {
                out.push((
                    format!("{at}/command/{i}"),
                    "nul_byte",
                    "contains a NUL character, which no command or argument can carry".into(),
                ));
            }
        }
    }
    if let Some(target) = target
        && target != "webhook"
    {
        for option in ["format", "include_output"] {
            if notifier.contains_key(option) {
                out.push((
                    format!("{at}/{option}"),
                    "notify_option_conflict",
                    format!("{option} applies to a webhook only, and this notifier is a {target}; remove it"),
                ));
            }
        }
    }
    if target == Some("ping") && notifier.contains_key("on") {
        out.push((
            format!("{at}/on"),
            "notify_ping_on",
            "a ping ignores on: it always signals start, success and failure, or its check would \
             alert when a signal it waits for never comes; remove on:, or use a webhook to be told \
             of some events only"
                .into(),
        ));
    }
    if scope == NotifierScope::Home && target == Some("ping") {
        out.push((
            format!("{at}/ping"),
            "notify_home_ping",
            "the home's events have no signal in the ping protocol; to have a dead-man's switch \
             watch the scheduler itself, set heartbeat_ping: URL in config.yaml"
                .into(),
        ));
    }
    if let Some(events) = notifier.get("on").and_then(Value::as_array) {
        for (i, event) in events.iter().enumerate() {
            let Some(event) = event.as_str().and_then(NotifyOn::parse) else {
                continue;
            };
            if scope == NotifierScope::Home && !event.is_home_event() {
                out.push((
                    format!("{at}/on/{i}"),
                    "notify_run_event",
                    format!(
                        "{} is an event of a job's runs; the home's notifiers hear spec_invalid, \
                         scheduler_started and scheduler_stopped. To be told of every job's runs, \
                         put the notifier under defaults.notify",
                        event.as_str()
                    ),
                ));
            }
            if scope == NotifierScope::Job && event.is_home_event() {
                out.push((
                    format!("{at}/on/{i}"),
                    "notify_home_event",
                    format!(
                        "{} is an event of the home, not of a job; name it in a notifier of the home's config.yaml",
                        event.as_str()
                    ),
                ));
            }
        }
    }
    if let Some(value) = notifier.get("timeout").and_then(Value::as_str) {
        let pointer = format!("{at}/timeout");
        match value.parse::<SpecDuration>() {
            Ok(d) if d.is_zero() => {
                out.push((pointer, "invalid_duration", "must be longer than zero".into()));
            }
            // Each try holds a delivery thread; past a few minutes an endpoint is down, not slow.
            Ok(d) if d > MAX_NOTIFY_TIMEOUT => out.push((
                pointer,
                "invalid_duration",
                format!("\"{value}\" is longer than the limit of {MAX_NOTIFY_TIMEOUT} for one try; failed tries are retried"),
            )),
            Ok(_) => {}
            Err(e) if has_duration_shape(value) => out.push((
                pointer,
                "invalid_duration",
                format!("\"{value}\" is not a valid duration: {e}"),
            )),
            Err(_) => {} // the schema's pattern reports it
        }
    }
}

const NOTIFY_TARGETS: [&str; 3] = ["webhook", "command", "ping"];

/// The longest a notifier's `timeout` may be.
const MAX_NOTIFY_TIMEOUT: SpecDuration = SpecDuration::from_millis(300_000);

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

/// The pointers of every string (and key) in `value` that holds a NUL. Recursive: the loader has
/// refused anything nested past its limit before this runs.
fn nul_pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::String(text) if text.contains('\0') => out.push(at),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                nul_pointers(item, format!("{at}/{i}"), out);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                let pointer = format!("{at}/{}", escape_pointer(key));
                if key.contains('\0') {
                    out.push(pointer.clone());
                }
                nul_pointers(item, pointer, out);
            }
        }
        _ => {}
    }
}
