//! The checks that need every spec of a directory (and the home's config) at once: an upstream that
//! is no job, a cycle of triggers (through `after:` and `after_all:` alike), a group the config does
//! not define. A spec that breaks one becomes invalid with positioned problems, so a cycle never
//! loads; its last good version stays in force, as for any invalid spec. Must not read the store.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::load::SpecFile;
use super::problem::Problem;
use super::yaml;

/// What the home's config defines that specs may name: its groups, when it is known (`None` when
/// a directory is checked on its own, away from any home).
pub struct Known<'a> {
    pub groups: Option<&'a BTreeSet<String>>,
}

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
    let mut problems: HashMap<String, Vec<(String, &'static str, String)>> = HashMap::new();
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
    for cycle in cycles(&edges) {
        let path = cycle
            .iter()
            .map(|(job, _)| job.as_str())
            .chain(cycle.first().map(|(job, _)| job.as_str()))
            .collect::<Vec<_>>()
            .join(" -> ");
        for (job, pointer) in &cycle {
            problems.entry(job.clone()).or_default().push((
                pointer.clone(),
                "trigger_cycle",
                format!("the jobs trigger each other in a cycle ({path}), which would never end; break it"),
            ));
        }
    }
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

/// The cycles among `edges`, each as the jobs on it with the pointer of the edge leaving each, every
/// cycle once (found from its smallest job id).
fn cycles(edges: &BTreeMap<String, Vec<(String, String)>>) -> Vec<Vec<(String, String)>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: HashMap<&str, Mark> = HashMap::new();
    let mut found: Vec<Vec<(String, String)>> = Vec::new();
    let mut seen_cycles: BTreeSet<Vec<String>> = BTreeSet::new();
    // Depth first, without recursion (a chain of thousands of jobs must not overflow the stack): a
    // stack of (job, index of the next edge to follow), and the path of (job, pointer) that led here.
    for start in edges.keys() {
        if marks.contains_key(start.as_str()) {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
        let mut path: Vec<(&str, &str)> = Vec::new();
        marks.insert(start.as_str(), Mark::Open);
        while let Some(&(job, next)) = stack.last() {
            let outgoing = edges.get(job).map(Vec::as_slice).unwrap_or_default();
            let Some((pointer, upstream)) = outgoing.get(next) else {
                marks.insert(job, Mark::Done);
                stack.pop();
                path.pop();
                continue;
            };
            if let Some(top) = stack.last_mut() {
                top.1 += 1;
            }
            match marks.get(upstream.as_str()) {
                Some(Mark::Open) => {
                    // `upstream` is on the current path: the cycle is from it to here.
                    let mut cycle: Vec<(String, String)> = Vec::new();
                    let from = path
                        .iter()
                        .position(|(j, _)| *j == upstream.as_str())
                        .unwrap_or(path.len());
                    for (j, p) in &path[from..] {
                        cycle.push(((*j).to_owned(), (*p).to_owned()));
                    }
                    cycle.push((job.to_owned(), pointer.clone()));
                    let mut key: Vec<String> = cycle.iter().map(|(j, _)| j.clone()).collect();
                    key.sort();
                    if seen_cycles.insert(key) {
                        found.push(cycle);
                    }
                }
                Some(Mark::Done) => {}
                None if edges.contains_key(upstream.as_str()) => {
                    path.push((job, pointer.as_str()));
                    marks.insert(upstream.as_str(), Mark::Open);
                    stack.push((upstream.as_str(), 0));
                }
                None => {}
            }
        }
    }
    found
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
