//! The checks that need every spec of a directory (and the home's config) at once: an upstream that
//! is no job, a cycle of triggers (through `after:` and `after_all:` alike), a group the config does
//! not define. A spec that breaks one becomes invalid with positioned problems, so a cycle never
//! loads; its last good version stays in force, as for any invalid spec, and the cycle check counts
//! those versions in. Must not read the store: what is in force comes in through [`Known`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::load::SpecFile;
use super::problem::Problem;
use super::yaml;

/// What the home defines that specs are checked against: its config's groups, and the jobs
/// already in force. Each is `None` when a directory is checked on its own, away from any home.
pub struct Known<'a> {
    pub groups: Option<&'a BTreeSet<String>>,
    /// For a job whose file does not load, the upstreams of its last good version, which stays in
    /// force: a new spec that closes a cycle through it must be refused as if the file were valid.
    pub in_force: Option<InForce<'a>>,
}

/// The upstream jobs of the version of `id` in force, when there is one.
pub type InForce<'a> = &'a (dyn Fn(&str) -> Option<Vec<String>> + Sync);

type Found = Vec<(String, &'static str, String)>;

/// Checks `files` against each other, turning each spec that breaks a rule into its problems.
pub fn check(files: &mut [SpecFile], known: &Known<'_>) {
    let ids: BTreeSet<String> = files.iter().filter_map(|f| f.stem_id.clone()).collect();
    // Upstream edges of the specs that loaded: job -> (pointer, upstream).
    let mut edges: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for file in files.iter() {
        let Ok(loaded) = &file.outcome else { continue };
        let spec = &loaded.spec;
        let mut out: Vec<(String, String)> = Vec::new();
        for (i, after) in spec.after.iter().enumerate() {
            out.push((format!("/after/{i}/job"), after.job.clone()));
        }
        for (i, job) in spec.after_all.iter().enumerate() {
            out.push((format!("/after_all/{i}"), job.clone()));
        }
        edges.insert(spec.id.clone(), out);
    }
    let mut problems: HashMap<String, Found> = HashMap::new();
    for (job, upstreams) in &edges {
        for (pointer, upstream) in upstreams {
            if !ids.contains(upstream) {
                problems.entry(job.clone()).or_default().push((
                    pointer.clone(),
                    "unknown_upstream",
                    format!(
                        "there is no job \"{upstream}\" (no jobs/{upstream}.yaml) to run after"
                    ),
                ));
            }
        }
    }
    let invalid: Vec<&str> = files
        .iter()
        .filter(|f| f.outcome.is_err())
        .filter_map(|f| f.stem_id.as_deref())
        .collect();
    check_cycles(&edges, &invalid, known, &mut problems);
    if let Some(groups) = known.groups {
        for file in files.iter() {
            let Ok(loaded) = &file.outcome else { continue };
            if let Some(group) = &loaded.spec.policy.group
                && !groups.contains(group)
            {
                problems.entry(loaded.spec.id.clone()).or_default().push((
                    "/policy/group".into(),
                    "unknown_group",
                    format!(
                        "config.yaml defines no group \"{group}\": add it under groups: with its max_running"
                    ),
                ));
            }
        }
    }
    for file in files.iter_mut() {
        let Some(found) = file
            .outcome
            .as_ref()
            .ok()
            .and_then(|loaded| problems.remove(&loaded.spec.id))
        else {
            continue;
        };
        file.outcome = Err(locate(&file.path, found));
    }
}

/// Flags every valid spec on a cycle of the graph that would be in force: the valid specs' edges
/// (`edges`), and for the jobs whose file does not load (`invalid`) and each spec refused here,
/// the edges of its last good version. Refusing a spec puts its last good version back in force,
/// which may close another cycle, so the check runs again until a pass refuses nothing (each pass
/// refuses at least one more spec, so it ends).
fn check_cycles(
    edges: &BTreeMap<String, Vec<(String, String)>>,
    invalid: &[&str],
    known: &Known<'_>,
    problems: &mut HashMap<String, Found>,
) {
    let last_good = |id: &str| -> Vec<String> {
        known
            .in_force
            .and_then(|in_force| in_force(id))
            .unwrap_or_default()
    };
    let mut graph: BTreeMap<String, Vec<String>> = edges
        .iter()
        .map(|(job, out)| (job.clone(), out.iter().map(|(_, up)| up.clone()).collect()))
        .collect();
    for id in invalid {
        graph.insert((*id).to_owned(), last_good(id));
    }
    let mut refused: BTreeSet<String> = BTreeSet::new();
    loop {
        let mut newly: Vec<String> = Vec::new();
        for component in crate::triggers::cycles(&graph) {
            let example = crate::triggers::describe_cycle(&crate::triggers::example_cycle(
                &graph, &component,
            ));
            let members: BTreeSet<&str> = component.iter().map(String::as_str).collect();
            let size = component.len();
            for job in &component {
                if refused.contains(job) {
                    continue;
                }
                let Some(out) = edges.get(job) else { continue };
                for (pointer, upstream) in out {
                    if !members.contains(upstream.as_str()) {
                        continue;
                    }
                    // A valid spec never runs after itself (its own check refuses that), so
                    // every cycle here has two jobs or more.
                    let message = format!(
                        "the jobs trigger each other in a cycle of {size} ({example}), which would never end; break it"
                    );
                    problems.entry(job.clone()).or_default().push((
                        pointer.clone(),
                        "trigger_cycle",
                        message,
                    ));
                }
                newly.push(job.clone());
            }
        }
        if newly.is_empty() {
            return;
        }
        for job in newly {
            graph.insert(job.clone(), last_good(&job));
            refused.insert(job);
        }
    }
}

/// Positions `problems` in the file at `path` (read again: these are rare, and the loader keeps no
/// tree of a spec it trusted from the store), in document order.
fn locate(path: &std::path::Path, problems: Vec<(String, &'static str, String)>) -> Vec<Problem> {
    let bytes = yaml::read_limited(path).unwrap_or_default();
    let root = yaml::decode(&bytes)
        .ok()
        .and_then(|text| yaml::parse(text).ok());
    let mut located: Vec<Problem> = problems
        .into_iter()
        .map(|(pointer, code, message)| match &root {
            Some(root) => yaml::locate_problem(root, &pointer, code, message),
            None => super::problem::problem_at(1, 1, &pointer, code, message),
        })
        .collect();
    located.sort_by(|a, b| (a.line, a.column, &a.pointer).cmp(&(b.line, b.column, &b.pointer)));
    located
}
