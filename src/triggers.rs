//! Jobs triggered by other jobs' runs: the graph of `after:` and `after_all:` edges between specs,
//! and what an upstream run's end triggers. Pure: built from specs, decided from an upstream's
//! status; the store records the decisions in the transaction that records the upstream's end.
//! Must not read the store, the disk or the clock.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::Serialize;

use crate::run::RunStatus;
use crate::spec::JobSpec;
use crate::spec::model::UpstreamOutcome;

/// One edge: runs of `from` trigger runs of `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// The upstream outcomes that trigger; for fan-in, `succeeded`.
    pub on: Vec<UpstreamOutcome>,
    /// Part of `to`'s `after_all`: `to` runs once every such upstream has succeeded.
    pub all: bool,
}

/// Every edge among `specs`, ordered by upstream, then downstream.
pub fn edges<'a>(specs: impl IntoIterator<Item = &'a JobSpec>) -> Vec<Edge> {
    let mut edges: Vec<Edge> = Vec::new();
    for spec in specs {
        for after in &spec.after {
            edges.push(Edge {
                from: after.job.clone(),
                to: spec.id.clone(),
                on: after.on.clone(),
                all: false,
            });
        }
        for job in &spec.after_all {
            edges.push(Edge {
                from: job.clone(),
                to: spec.id.clone(),
                on: vec![UpstreamOutcome::Succeeded],
                all: true,
            });
        }
    }
    edges.sort_by(|a, b| (&a.from, &a.to, a.all).cmp(&(&b.from, &b.to, b.all)));
    edges
}

/// Whether an upstream run that ended `status` triggers through an edge listening for `on`.
pub fn triggers(on: &[UpstreamOutcome], status: RunStatus) -> bool {
    on.iter().any(|outcome| outcome.as_str() == status.as_str())
}

/// What an end of a run of `upstream` with `status` triggers in `downstream` (whose spec is given):
/// a run through `after:`, and whether it counts toward `after_all:` (a success of one of its jobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Triggered {
    pub after: bool,
    pub toward_all: bool,
}

pub fn triggered(downstream: &Upstreams, upstream: &str, status: RunStatus) -> Triggered {
    Triggered {
        after: downstream
            .after
            .iter()
            .any(|a| a.job == upstream && triggers(&a.on, status)),
        toward_all: status == RunStatus::Succeeded
            && downstream.after_all.iter().any(|job| job == upstream),
    }
}

/// The part of a downstream's spec that says what triggers it, as read from the stored spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Upstreams {
    #[serde(default)]
    pub after: Vec<crate::spec::model::AfterSpec>,
    #[serde(default)]
    pub after_all: Vec<String>,
}

impl Upstreams {
    pub fn of(spec: &JobSpec) -> Self {
        Self {
            after: spec.after.clone(),
            after_all: spec.after_all.clone(),
        }
    }

    /// Every job named, through `after:` and `after_all:` alike.
    pub fn jobs(&self) -> Vec<String> {
        self.after
            .iter()
            .map(|a| a.job.clone())
            .chain(self.after_all.iter().cloned())
            .collect()
    }
}

/// Whether the fan-in of `after_all` is complete with the upstream successes `have` (job ids).
pub fn fan_in_complete<'a>(after_all: &[String], have: impl IntoIterator<Item = &'a str>) -> bool {
    let have: std::collections::HashSet<&str> = have.into_iter().collect();
    !after_all.is_empty() && after_all.iter().all(|job| have.contains(job.as_str()))
}

/// The graph in Graphviz's DOT language: one node per job given, one edge per trigger (`after_all`
/// dashed and labelled "all").
pub fn dot(jobs: &[(String, &'static str)], edges: &[Edge]) -> String {
    let mut out = String::from("digraph jobs {\n  rankdir=LR;\n  node [shape=box];\n");
    for (id, state) in jobs {
        out.push_str(&format!("  \"{id}\" [tooltip=\"{state}\"];\n"));
    }
    for edge in edges {
        let label = if edge.all {
            "all succeeded".to_owned()
        } else {
            edge.on
                .iter()
                .map(|o| o.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let style = if edge.all { ", style=dashed" } else { "" };
        out.push_str(&format!(
            "  \"{}\" -> \"{}\" [label=\"{label}\"{style}];\n",
            edge.from, edge.to
        ));
    }
    out.push_str("}\n");
    out
}

/// The jobs that trigger each other in a cycle: the strongly connected components of the graph
/// `upstreams` (each job to the jobs it runs after; names that are no key are left out) that hold
/// more than one job, or one job that runs after itself. Each component sorted, the components by
/// their first job. Linear in jobs and edges (Tarjan's algorithm, without recursion: a chain of
/// thousands of jobs must not overflow the stack), so a large graph is checked as fast as a small one.
pub fn cycles(upstreams: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    let names: Vec<&str> = upstreams.keys().map(String::as_str).collect();
    let index_of: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let next: Vec<Vec<usize>> = upstreams
        .values()
        .map(|ups| {
            ups.iter()
                .filter_map(|u| index_of.get(u.as_str()).copied())
                .collect()
        })
        .collect();
    const UNSEEN: usize = usize::MAX;
    let mut order = vec![UNSEEN; names.len()];
    let mut low = vec![0usize; names.len()];
    let mut on_stack = vec![false; names.len()];
    let mut stack: Vec<usize> = Vec::new();
    let mut found: Vec<Vec<String>> = Vec::new();
    let mut counter = 0usize;
    for root in 0..names.len() {
        if order[root] != UNSEEN {
            continue;
        }
        // The depth-first walk: (node, index of its next edge to follow).
        let mut walk: Vec<(usize, usize)> = vec![(root, 0)];
        order[root] = counter;
        low[root] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&(node, edge)) = walk.last() {
            if let Some(&to) = next[node].get(edge) {
                if let Some(top) = walk.last_mut() {
                    top.1 += 1;
                }
                if order[to] == UNSEEN {
                    order[to] = counter;
                    low[to] = counter;
                    counter += 1;
                    stack.push(to);
                    on_stack[to] = true;
                    walk.push((to, 0));
                } else if on_stack[to] {
                    low[node] = low[node].min(order[to]);
                }
                continue;
            }
            walk.pop();
            if let Some(&(parent, _)) = walk.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] != order[node] {
                continue;
            }
            let mut component: Vec<String> = Vec::new();
            while let Some(member) = stack.pop() {
                on_stack[member] = false;
                component.push(names[member].to_owned());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 || next[node].contains(&node) {
                component.sort();
                found.push(component);
            }
        }
    }
    found.sort();
    found
}

/// A shortest cycle through the first job of `component` (one of [`cycles`]), from that job back
/// to it, each job triggering the next: the example a problem shows. Breadth first, inside the
/// component only.
pub fn example_cycle(
    upstreams: &BTreeMap<String, Vec<String>>,
    component: &[String],
) -> Vec<String> {
    let Some(start) = component.first() else {
        return Vec::new();
    };
    let inside: HashSet<&str> = component.iter().map(String::as_str).collect();
    let mut came_from: HashMap<&str, &str> = HashMap::new();
    let mut queue: VecDeque<&str> = VecDeque::from([start.as_str()]);
    while let Some(job) = queue.pop_front() {
        for up in upstreams.get(job).into_iter().flatten() {
            let up = up.as_str();
            if up == start.as_str() {
                // start runs after ... after job, which runs after start; arrows read as triggers.
                let mut path = vec![start.clone(), job.to_owned()];
                let mut at = job;
                while let Some(&from) = came_from.get(at) {
                    path.push(from.to_owned());
                    at = from;
                }
                if at != start.as_str() {
                    path.push(start.clone());
                }
                return path;
            }
            if inside.contains(up) && !came_from.contains_key(up) {
                came_from.insert(up, job);
                queue.push_back(up);
            }
        }
    }
    vec![start.clone(), start.clone()]
}

/// A cycle as a reader takes it in: `a -> b -> a`, with the middle of a long one left out so a
/// ring of thousands of jobs gives a line, not a page.
pub fn describe_cycle(path: &[String]) -> String {
    const SHOWN: usize = 10;
    if path.len() <= SHOWN {
        return path.join(" -> ");
    }
    let head = path[..SHOWN / 2].join(" -> ");
    let tail = path[path.len() - SHOWN / 2..].join(" -> ");
    let left_out = path.len() - SHOWN;
    format!("{head} -> ... {left_out} more ... -> {tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(source: &str) -> JobSpec {
        let id = source
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("id: "))
            .unwrap_or_default()
            .to_owned();
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-03T00:00:00Z")
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_default();
        crate::spec::load_source(source, &id, now)
            .unwrap_or_else(|p| panic!("{p:?}"))
            .spec
    }

    #[test]
    fn an_end_triggers_by_its_status_and_fan_in_counts_successes_only() {
        let load_spec = spec(
            "id: load\nafter:\n  - job: transform\n  - job: audit\n    on: [failed, timed_out]\nafter_all: [eu, us]\nrun:\n  command: [\"true\"]\n",
        );
        let load = Upstreams::of(&load_spec);
        assert!(triggered(&load, "transform", RunStatus::Succeeded).after);
        assert!(!triggered(&load, "transform", RunStatus::Failed).after);
        assert!(triggered(&load, "audit", RunStatus::TimedOut).after);
        assert!(!triggered(&load, "audit", RunStatus::Succeeded).after);
        assert_eq!(
            triggered(&load, "eu", RunStatus::Succeeded),
            Triggered {
                after: false,
                toward_all: true
            }
        );
        assert_eq!(
            triggered(&load, "eu", RunStatus::Failed),
            Triggered::default()
        );
        let all = edges([&load_spec]);
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].from, "audit");
        let dot = dot(&[("load".into(), "active")], &all);
        assert!(dot.contains("\"eu\" -> \"load\" [label=\"all succeeded\", style=dashed];"));
        assert!(dot.contains("\"audit\" -> \"load\" [label=\"failed, timed_out\"];"));
        let after_all = ["eu".to_owned(), "us".to_owned()];
        assert!(!fan_in_complete(&after_all, ["eu"]));
        assert!(fan_in_complete(&after_all, ["us", "eu", "other"]));
    }

    fn graph(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(job, ups)| {
                (
                    (*job).to_owned(),
                    ups.iter().map(|u| (*u).to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn cycles_are_the_components_that_loop_and_every_job_on_one_is_named() {
        // b is on two cycles (a-b and b-c); d runs after the cycle but is on none; e runs after itself.
        let g = graph(&[
            ("a", &["b"]),
            ("b", &["a", "c"]),
            ("c", &["b"]),
            ("d", &["a"]),
            ("e", &["e"]),
            ("f", &["gone"]),
        ]);
        assert_eq!(
            cycles(&g),
            vec![
                vec!["a".to_owned(), "b".into(), "c".into()],
                vec!["e".to_owned()]
            ]
        );
        let abc = ["a".to_owned(), "b".into(), "c".into()];
        assert_eq!(example_cycle(&g, &abc), ["a", "b", "a"]);
        assert_eq!(example_cycle(&g, &["e".to_owned()]), ["e", "e"]);
        assert!(cycles(&graph(&[("x", &["y"]), ("y", &[])])).is_empty());
    }

    #[test]
    fn a_ring_of_thousands_is_one_component_with_a_short_description() {
        let n = 5000;
        let g: BTreeMap<String, Vec<String>> = (0..n)
            .map(|i| (format!("j{i:05}"), vec![format!("j{:05}", (i + 1) % n)]))
            .collect();
        let found = cycles(&g);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].len(), n);
        let path = example_cycle(&g, &found[0]);
        assert_eq!(path.len(), n + 1);
        // The last job runs after j00000, so j00000 triggers it first.
        assert_eq!(path[1], format!("j{:05}", n - 1));
        let line = describe_cycle(&path);
        assert!(line.len() < 200, "{line}");
        assert!(line.contains("4991 more"), "{line}");
    }
}
