//! The home's `config.yaml`: read and checked through the same stages as a spec (bytes, YAML, the
//! config schema), its problems positioned the same way, and the typed settings it holds (so far the
//! defaults every spec gets). Must not touch the store or decide anything about runs; where the last
//! good version is kept is the caller's business.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::home::Home;
use crate::spec::Defaults;
use crate::spec::checks::{NotifierScope, notifier_problems};
use crate::spec::model::{HttpUrl, NotifierSpec, NotifyOn};
use crate::spec::problem::{Problem, problem_at};
use crate::spec::schema::{Document, schema_problems};
use crate::spec::yaml;
use crate::store::KeptConfig;

/// The file name of the config, at the root of the home.
pub const CONFIG_FILE: &str = "config.yaml";

/// What `config.yaml` says, checked. A home without the file has the default: no defaults, no
/// notifiers of its own and no heartbeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HomeConfig {
    pub defaults: Defaults,
    /// The notifiers of the home's own events (`spec_invalid`, `scheduler_started`, `scheduler_stopped`).
    pub notify: Vec<NotifierSpec>,
    /// A healthchecks URL the scheduler pings every minute while it runs.
    pub heartbeat_ping: Option<HttpUrl>,
    /// Where the HTTP server listens when no `--listen` is given.
    pub server: ServerConfig,
    /// Concurrency groups, by name: how many runs of their jobs may be in flight at once.
    pub groups: std::collections::BTreeMap<String, GroupLimit>,
    /// Runs of the whole home in flight at once.
    pub max_running: Option<u32>,
    /// A PostgreSQL URL: the store of this home (shared with other homes and hosts) instead of
    /// `db/jobs.sqlite3`.
    pub store: Option<String>,
    /// The file holding the store's password (owner-only), relative to the home.
    pub store_password_file: Option<PathBuf>,
}

/// One group of `groups:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupLimit {
    pub max_running: u32,
}

impl HomeConfig {
    /// The limits a run of `spec` shares with other jobs: its group's (when the config still
    /// defines it) and the home's.
    pub fn shared_limits(&self, spec: &crate::spec::JobSpec) -> crate::store::SharedLimits {
        crate::store::SharedLimits {
            group: spec.policy.group.as_ref().and_then(|name| {
                self.groups
                    .get(name)
                    .map(|limit| (name.clone(), limit.max_running))
            }),
            home: self.max_running,
        }
    }

    /// Each group's `max_running`, as the planner judges a group full.
    pub fn group_limits(&self) -> std::collections::BTreeMap<String, u32> {
        self.groups
            .iter()
            .map(|(name, limit)| (name.clone(), limit.max_running))
            .collect()
    }

    /// The names of the groups specs may join.
    pub fn group_names(&self) -> std::collections::BTreeSet<String> {
        self.groups.keys().cloned().collect()
    }
}

/// The `server:` section: read at a process's start only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: Option<String>,
    /// As written: relative to the home unless absolute.
    pub token_file: Option<PathBuf>,
}

/// The wire shape of the file, after the schema has passed it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(default)]
    defaults: Map<String, Value>,
    #[serde(default)]
    notify: Vec<Value>,
    #[serde(default)]
    heartbeat_ping: Option<String>,
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    groups: std::collections::BTreeMap<String, GroupLimit>,
    #[serde(default)]
    max_running: Option<u32>,
    #[serde(default)]
    store: Option<String>,
    #[serde(default)]
    store_password_file: Option<PathBuf>,
}

/// The events a home notifier hears when its `on:` is left out: all of the home's.
const DEFAULT_HOME_ON: [NotifyOn; 3] = [
    NotifyOn::SpecInvalid,
    NotifyOn::SchedulerStarted,
    NotifyOn::SchedulerStopped,
];

/// The result of reading the home's config: where it is, whether it is there, its content hash, and
/// either the settings or the problems in document order.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// `None` when the home has no config file.
    pub hash: Option<String>,
    /// The text, when it passed every check: what the store keeps as the last good version.
    pub source: Option<String>,
    pub outcome: Result<HomeConfig, Vec<Problem>>,
}

impl ConfigFile {
    pub fn is_present(&self) -> bool {
        self.hash.is_some()
    }
}

/// Reads and checks `config.yaml` of `home`. A missing file is the default config, not a problem; a
/// file that cannot be read is one, like a spec that cannot be read.
pub fn load(home: &Home) -> ConfigFile {
    load_path(&home.config_path())
}

/// As [`load`], from a path.
pub fn load_path(path: &Path) -> ConfigFile {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return ConfigFile {
                path: path.to_owned(),
                hash: None,
                source: None,
                outcome: Ok(HomeConfig::default()),
            };
        }
        _ => {}
    }
    match yaml::read_limited(path) {
        Ok(bytes) => {
            let outcome = load_bytes(&bytes);
            ConfigFile {
                path: path.to_owned(),
                hash: Some(crate::digest::content_hash(&bytes)),
                source: outcome
                    .is_ok()
                    .then(|| String::from_utf8_lossy(&bytes).into_owned()),
                outcome,
            }
        }
        Err(problem) => ConfigFile {
            path: path.to_owned(),
            hash: Some(String::new()),
            source: None,
            outcome: Err(vec![problem]),
        },
    }
}

/// The config in force, given the file as it is and the last good version the store kept, and what
/// the store should keep from now on (`None`: leave it as it is; `Some(None)`: forget it).
#[derive(Debug, Clone, PartialEq)]
pub struct InForce {
    pub config: HomeConfig,
    /// The file is invalid and an earlier good version is in force instead.
    pub kept_in_force: bool,
    pub keep: Option<Option<KeptConfig>>,
}

/// A valid file is in force (and becomes the kept version); an invalid one leaves the kept version
/// in force, as a job keeps the last good version of its spec; no file means no defaults.
pub fn in_force(file: &ConfigFile, kept: Option<&KeptConfig>) -> InForce {
    match (&file.outcome, &file.hash, &file.source) {
        (Ok(config), Some(hash), Some(source)) => InForce {
            config: config.clone(),
            kept_in_force: false,
            keep: (kept.map(|k| &k.hash) != Some(hash)).then(|| {
                Some(KeptConfig {
                    hash: hash.clone(),
                    source: source.clone(),
                })
            }),
        },
        (Ok(config), _, _) => InForce {
            config: config.clone(),
            kept_in_force: false,
            keep: kept.is_some().then_some(None),
        },
        (Err(_), _, _) => {
            // A kept text this loader refuses (rules tightened since) gives no defaults at all
            // rather than half of them.
            let config = kept.and_then(|k| load_source(&k.source).ok());
            InForce {
                kept_in_force: config.is_some(),
                config: config.unwrap_or_default(),
                keep: None,
            }
        }
    }
}

/// The limits a run of `spec` shares with other jobs, by the config in force now (the file, or the
/// store's last good version while the file is invalid): what a manual claim checks.
pub fn shared_limits_now(
    home: &Home,
    store: &dyn crate::store::Store,
    spec: &crate::spec::JobSpec,
) -> crate::store::SharedLimits {
    let file = load(home);
    let kept = store.kept_config().ok().flatten();
    in_force(&file, kept.as_ref()).config.shared_limits(spec)
}

/// Checks a config given as text (tests, and the config a store kept as its last good version).
pub fn load_source(text: &str) -> Result<HomeConfig, Vec<Problem>> {
    load_bytes(text.as_bytes())
}

fn load_bytes(bytes: &[u8]) -> Result<HomeConfig, Vec<Problem>> {
    let text = yaml::decode(bytes)?;
    let root = match yaml::parse(text) {
        Ok(root) => root,
        // Unlike a spec, an empty config (or one of only comments) means something: it sets nothing.
        Err(problems) if problems.iter().all(|p| p.code == "empty_file") => {
            return Ok(HomeConfig::default());
        }
        Err(problems) => return Err(problems),
    };
    if root.data.is_null() {
        return Ok(HomeConfig::default());
    }
    let json = Value::Object(yaml::to_mapping(&root)?);
    let mut problems = schema_problems(Document::Config, &root, &json);
    if problems.is_empty() {
        problems = rule_problems(&json)
            .into_iter()
            .map(|(pointer, code, message)| yaml::locate_problem(&root, &pointer, code, message))
            .collect();
    }
    if !problems.is_empty() {
        problems
            .sort_by(|a, b| (a.line, a.column, &a.pointer).cmp(&(b.line, b.column, &b.pointer)));
        return Err(problems);
    }
    let wire: Wire = serde_json::from_value(json).map_err(|e| {
        vec![problem_at(
            1,
            1,
            "",
            "internal",
            format!(
                "the config passed the schema but does not fit the model ({e}); this is a bug in jobs"
            ),
        )]
    })?;
    let misfit = |what: &str, e: String| {
        vec![problem_at(
            1,
            1,
            "",
            "internal",
            format!(
                "the config's {what} passed every check but does not fit the model ({e}); this is a bug in jobs"
            ),
        )]
    };
    let notify = wire
        .notify
        .into_iter()
        .map(|mut notifier| {
            if let Some(fields) = notifier.as_object_mut()
                && !fields.contains_key("on")
                && !fields.contains_key("ping")
            {
                let on = DEFAULT_HOME_ON.map(|e| Value::from(e.as_str()));
                fields.insert("on".into(), Value::Array(on.to_vec()));
            }
            serde_json::from_value::<NotifierSpec>(notifier)
                .map_err(|e| misfit("notify", e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let heartbeat_ping = wire
        .heartbeat_ping
        .map(|url| HttpUrl::parse(&url).map_err(|(_, e)| misfit("heartbeat_ping", e)))
        .transpose()?;
    Ok(HomeConfig {
        defaults: Defaults::new(wire.defaults),
        notify,
        heartbeat_ping,
        server: wire.server,
        groups: wire.groups,
        max_running: wire.max_running,
        store: wire.store,
        store_password_file: wire.store_password_file,
    })
}

/// The checks the schema cannot say: each notifier's (of the defaults, as a job's; of the home, as
/// the home's) and the heartbeat's URL.
fn rule_problems(json: &Value) -> Vec<(String, &'static str, String)> {
    let mut out = Vec::new();
    let lists = [
        (
            "/defaults/notify",
            &json["defaults"]["notify"],
            NotifierScope::Job,
        ),
        ("/notify", &json["notify"], NotifierScope::Home),
    ];
    for (at, list, scope) in lists {
        for (index, notifier) in list.as_array().into_iter().flatten().enumerate() {
            if let Some(notifier) = notifier.as_object() {
                notifier_problems(&format!("{at}/{index}"), notifier, scope, &mut out);
            }
        }
    }
    if let Some(url) = json.get("heartbeat_ping").and_then(Value::as_str)
        && let Err((code, message)) = HttpUrl::parse(url)
    {
        out.push(("/heartbeat_ping".into(), code, message));
    }
    if let Some(listen) = json["server"]["listen"].as_str()
        && listen.parse::<std::net::SocketAddr>().is_err()
    {
        out.push((
            "/server/listen".into(),
            "invalid_listen",
            format!("{listen:?} is not an address and port: give one such as 127.0.0.1:9180"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> ConfigFile {
        let outcome = load_source(text);
        ConfigFile {
            path: PathBuf::from("config.yaml"),
            hash: Some(crate::digest::content_hash(text.as_bytes())),
            source: outcome.is_ok().then(|| text.to_owned()),
            outcome,
        }
    }

    #[test]
    fn a_valid_file_is_kept_an_invalid_one_leaves_the_kept_one_in_force_and_none_forgets_it() {
        let good = file("defaults:\n  retention:\n    keep_last: 3\n");
        let first = in_force(&good, None);
        let Some(Some(kept)) = first.keep.clone() else {
            panic!("a first good config is kept: {first:?}");
        };
        assert!(!first.kept_in_force);
        assert_eq!(in_force(&good, Some(&kept)).keep, None, "kept already");

        let bad = file("defaults:\n  retention:\n    keep_last: none\n");
        let during = in_force(&bad, Some(&kept));
        assert!(during.kept_in_force);
        assert_eq!(during.config, first.config);
        assert_eq!(
            during.keep, None,
            "an invalid file never replaces the kept one"
        );
        assert_eq!(in_force(&bad, None).config, HomeConfig::default());

        let gone = ConfigFile {
            path: PathBuf::from("config.yaml"),
            hash: None,
            source: None,
            outcome: Ok(HomeConfig::default()),
        };
        let after = in_force(&gone, Some(&kept));
        assert_eq!(after.config, HomeConfig::default());
        assert_eq!(after.keep, Some(None));
    }

    #[test]
    fn defaults_are_read_and_an_empty_file_sets_nothing() {
        let config =
            load_source("defaults:\n  retention:\n    keep_last: 20\n  run:\n    timeout: 1h\n");
        let Ok(config) = config else {
            panic!("a good config loads: {config:?}");
        };
        assert_eq!(
            Value::Object(config.defaults.values().clone()),
            serde_json::json!({"retention": {"keep_last": 20}, "run": {"timeout": "1h"}})
        );
        assert_eq!(load_source("# nothing yet\n"), Ok(HomeConfig::default()));
    }

    #[test]
    fn a_bad_value_is_a_positioned_problem_worded_like_the_specs_one() {
        let Err(problems) = load_source("defaults:\n  run:\n    timeout: soon\n") else {
            panic!("a bad duration is refused");
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        let problem = &problems[0];
        assert_eq!((problem.line, problem.column), (3, 5), "{problem:?}");
        assert_eq!(problem.pointer, "/defaults/run/timeout");
        assert!(
            problem.message.contains("is not a duration such as"),
            "{problem:?}"
        );
    }

    #[test]
    fn an_unknown_field_gets_a_did_you_mean() {
        let Err(problems) = load_source("defaults:\n  retension:\n    keep_last: 2\n") else {
            panic!("an unknown field is refused");
        };
        assert!(
            problems[0].message.contains("did you mean \"retention\""),
            "{problems:?}"
        );
        assert_eq!(problems[0].pointer, "/defaults/retension");
    }

    #[test]
    fn a_spec_field_that_is_no_default_is_refused() {
        let Err(problems) = load_source("defaults:\n  run:\n    command: [\"true\"]\n") else {
            panic!("a command cannot be a default");
        };
        assert_eq!(problems[0].pointer, "/defaults/run/command", "{problems:?}");
    }

    #[test]
    fn home_notifiers_hear_the_homes_events_and_a_run_event_or_a_ping_is_refused_there() {
        let text = "notify:\n  - webhook: https://hooks.example.com/x\nheartbeat_ping: https://hc.example.com/abc\n";
        let Ok(config) = load_source(text) else {
            panic!("a home notifier and a heartbeat load");
        };
        assert_eq!(config.notify.len(), 1);
        assert_eq!(config.notify[0].on, DEFAULT_HOME_ON.to_vec());
        assert!(config.heartbeat_ping.is_some());

        let Err(problems) =
            load_source("notify:\n  - webhook: https://h.example.com/x\n    on: [failed]\n")
        else {
            panic!("a run event is refused for the home");
        };
        assert_eq!(problems[0].code, "notify_run_event", "{problems:?}");
        assert_eq!(
            (problems[0].line, problems[0].pointer.as_str()),
            (3, "/notify/0/on/0")
        );

        let Err(problems) = load_source("notify:\n  - ping: https://hc.example.com/x\n") else {
            panic!("a ping is refused for the home");
        };
        assert_eq!(problems[0].code, "notify_home_ping", "{problems:?}");

        let Err(problems) = load_source(
            "defaults:\n  notify:\n    - webhook: https://h.example.com/x\n      on: [scheduler_started]\n",
        ) else {
            panic!("a home event is refused in the defaults");
        };
        assert_eq!(problems[0].code, "notify_home_event", "{problems:?}");
    }

    #[test]
    fn the_repositorys_own_config_is_valid() {
        let file = load_path(&Path::new(env!("CARGO_MANIFEST_DIR")).join(CONFIG_FILE));
        assert!(file.is_present());
        assert!(file.outcome.is_ok(), "{:?}", file.outcome);
    }

    /// The defaults' sections are copies of the job schema's, so a default means what the same
    /// field in a spec means; this keeps the copies in step.
    #[test]
    fn the_config_schemas_defaults_are_the_job_schemas_fields() {
        use crate::spec::schema::schema_value;
        let job = schema_value(Document::Job);
        let config = schema_value(Document::Config);
        let defaults = &config["properties"]["defaults"]["properties"];
        for section in ["retry", "retention"] {
            assert_eq!(
                defaults[section], job["properties"][section],
                "defaults.{section} is the spec's {section}"
            );
        }
        for field in ["timeout", "kill_grace"] {
            assert_eq!(
                defaults["run"]["properties"][field], job["properties"]["run"]["properties"][field],
                "defaults.run.{field} is the spec's run.{field}"
            );
        }
        assert_eq!(defaults["notify"], job["properties"]["notify"]);
        for def in ["duration", "notifier", "notify_event"] {
            assert_eq!(config["$defs"][def], job["$defs"][def], "$defs/{def}");
        }
    }
}
