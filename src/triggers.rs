//! Jobs triggered by other jobs' runs: the graph of `after:` and `after_all:` edges between specs,
//! and what an upstream run's end triggers. Pure: built from specs, decided from an upstream's
//! status; the store records the decisions in the transaction that records the upstream's end.
//! Must not read the store, the disk or the clock.

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
}
