//! Loading specs: one file, a directory of them, a text, a stored JSON version, in the order bytes ->
//! YAML (`yaml`) -> JSON Schema (`schema`) -> semantic checks (`checks`) -> typed spec (`model`).
//! Owns the orchestration, the file-name rules and the loader's fingerprint; must not hold a stage's
//! logic itself. Nothing here panics on any input, and one bad file never affects another.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use super::checks::is_valid_id;
use super::checks::{RULES_REVISION, semantic_problems};
use super::defaults::Defaults;
use super::model::JobSpec;
pub use super::problem::Problem;
use super::problem::problem_at;
pub use super::schema::JOB_SCHEMA;
use super::schema::{Document, implausible_spec, schema_problems};
use super::stamps::{Stamp, Stamps};
use super::yaml::{self, locate_problem, read_limited_stamped, stat_readable};
use crate::digest::content_hash;
use crate::error::{Error, Result};
use crate::schedule::Schedule;

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
    /// The file's stamp and the hash of its own bytes, when it could be read (for the stamp cache).
    pub seen: Option<(Stamp, String)>,
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
    load_bytes(spec_json.as_bytes(), expected_id, now, &Defaults::default())
}

/// Given a job id and the content hash of its file, a spec already known to be valid for exactly that
/// content, if there is one. Lets callers that keep checked specs (the store) skip parsing.
pub type Trusted<'a> = &'a (dyn Fn(&str, &str) -> Option<LoadedSpec> + Sync);

/// Loads every spec file in `dir`, sorted by file name. A missing directory holds no specs. Two files
/// claiming the same id (`a.yaml` and `a.yml`) both load, and the later one gets a problem.
pub fn load_dir(dir: &Path, now: DateTime<Utc>) -> Result<Vec<SpecFile>> {
    load_dir_with(
        dir,
        now,
        &Defaults::default(),
        &Stamps::none(),
        &|_, _| None,
        &super::relations::Known {
            groups: None,
            in_force: None,
        },
    )
}

/// As [`load_dir`], each spec completed by `defaults` (the home's config) before it is checked, and
/// taken from `trusted` when it knows the file's content; then the specs are checked against each
/// other and against what the config defines (`known`). A file `stamps` knows at its current
/// metadata is not read at all when `trusted` knows its content; `stamps` is written again after.
pub fn load_dir_with(
    dir: &Path,
    now: DateTime<Utc>,
    defaults: &Defaults,
    stamps: &Stamps,
    trusted: Trusted<'_>,
    known: &super::relations::Known<'_>,
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
    // Worked on in place: a loaded file is some 800 bytes, and at 100,000 files every move of the
    // list copies 80 MB (boxing each spec instead left 100 MB more resident after a first start).
    let mut files = load_all(&paths, now, defaults, stamps, trusted);
    for file in &mut files {
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
    }
    let seen: Vec<(&str, Stamp, &str)> = files
        .iter()
        .filter_map(|file| {
            let (stamp, own) = file.seen.as_ref()?;
            Some((file.path.file_name()?.to_str()?, *stamp, own.as_str()))
        })
        .collect();
    stamps.save(&seen);
    super::relations::check(&mut files, known);
    Ok(files)
}

/// Below this many files one thread is quicker than starting more.
const FILES_PER_THREAD: usize = 256;

/// Loads `paths` in order, on as many threads as there are cores when there are many: at 10,000 specs
/// parsing is most of a scheduler's start, and the files are independent.
fn load_all(
    paths: &[PathBuf],
    now: DateTime<Utc>,
    defaults: &Defaults,
    stamps: &Stamps,
    trusted: Trusted<'_>,
) -> Vec<SpecFile> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(paths.len() / FILES_PER_THREAD)
        .min(8);
    if threads < 2 {
        return paths
            .iter()
            .map(|path| load_file_trusting(path, now, defaults, stamps, trusted))
            .collect();
    }
    let chunk = paths.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|path| load_file_trusting(path, now, defaults, stamps, trusted))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut files = Vec::with_capacity(paths.len());
        for part in parts {
            match part.join() {
                Ok(part) => files.extend(part),
                // A panic in a loader thread is a bug; surface it as the sequential loop would.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        files
    })
}

/// Loads one spec file. Read failures become problems of the file, like any other.
pub fn load_file(path: &Path, now: DateTime<Utc>) -> SpecFile {
    load_file_with(path, now, &Defaults::default())
}

/// As [`load_file`], the spec completed by `defaults` before it is checked.
pub fn load_file_with(path: &Path, now: DateTime<Utc>, defaults: &Defaults) -> SpecFile {
    load_file_trusting(path, now, defaults, &Stamps::none(), &|_, _| None)
}

fn load_file_trusting(
    path: &Path,
    now: DateTime<Utc>,
    defaults: &Defaults,
    stamps: &Stamps,
    trusted: Trusted<'_>,
) -> SpecFile {
    let stem_id = path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| is_valid_id(s))
        .map(str::to_owned);
    // Unchanged since the cache saw it, and the store checked that content: nothing to read.
    if let Some(id) = &stem_id
        && let Some(name) = path.file_name().and_then(|n| n.to_str())
        // Only a file the cache knows is worth a `stat` of its own before the read's.
        && stamps.knows(name)
        && let Some(meta) = stat_readable(path)
        && let Some(own) = stamps.own_hash(name, &meta)
    {
        let hash = defaults.spec_hash_of(own);
        if let Some(loaded) = trusted(id, &hash) {
            return SpecFile {
                path: path.to_owned(),
                stem_id,
                hash,
                outcome: Ok(loaded),
                seen: Some((Stamp::of(&meta), own.to_owned())),
            };
        }
    }
    let (bytes, meta) = match read_limited_stamped(path) {
        Ok(read) => read,
        Err(problem) => {
            return SpecFile {
                path: path.to_owned(),
                stem_id,
                hash: String::new(),
                outcome: Err(vec![problem]),
                seen: None,
            };
        }
    };
    let own = content_hash(&bytes);
    let hash = defaults.spec_hash_of(&own);
    let outcome = match &stem_id {
        Some(id) => match trusted(id, &hash) {
            Some(loaded) => Ok(loaded),
            None => load_bytes(&bytes, id, now, defaults),
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
        seen: Some((Stamp::of(&meta), own)),
    }
}

/// Loads a spec from text, for tests and benchmarks; `expected_id` stands for the file stem.
pub fn load_source(
    source: &str,
    expected_id: &str,
    now: DateTime<Utc>,
) -> Result<LoadedSpec, Vec<Problem>> {
    load_bytes(source.as_bytes(), expected_id, now, &Defaults::default())
}

fn load_bytes(
    bytes: &[u8],
    expected_id: &str,
    now: DateTime<Utc>,
    defaults: &Defaults,
) -> Result<LoadedSpec, Vec<Problem>> {
    let text = yaml::decode(bytes)?;
    let root = yaml::parse(text)?;
    let mut object = yaml::to_mapping(&root)?;
    if let Some(problem) = implausible_spec(&root, &object) {
        return Err(vec![problem]);
    }
    // A problem in a value the defaults filled in is positioned at the nearest field the file has.
    defaults.apply(&mut object);
    let json = Value::Object(object);
    let mut problems = schema_problems(Document::Job, &root, &json);
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
