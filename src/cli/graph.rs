//! `jobsctl graph [--dot]`: which jobs' runs trigger which, as lines for people, as DOT for
//! Graphviz, and as nodes and edges for `--json`.

use serde::Serialize;

use super::Ctx;
use super::output::{Output, Report, View};
use crate::catalog::Catalog;
use crate::error::Result;
use crate::triggers::{self, Edge};

pub fn run(ctx: &Ctx, dot: bool) -> Result<Report> {
    let now = ctx.clock.now();
    let catalog = Catalog::open(&ctx.home, now)?;
    let edges = triggers::edges(catalog.jobs.iter().filter_map(|job| job.spec.as_ref()));
    let nodes: Vec<Node> = catalog
        .jobs
        .iter()
        .filter(|job| edges.iter().any(|e| e.from == job.id() || e.to == job.id()))
        .map(|job| Node {
            id: job.id().to_owned(),
            state: job.state().as_str(),
        })
        .collect();
    let view = GraphView { nodes, edges, dot };
    Report::view(&view, &ctx.out)
}

#[derive(Serialize)]
struct GraphView {
    /// The jobs on some edge.
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    #[serde(skip)]
    dot: bool,
}

#[derive(Serialize)]
struct Node {
    id: String,
    state: &'static str,
}

impl View for GraphView {
    fn render(&self, _out: &Output) -> String {
        if self.dot {
            let nodes: Vec<(String, &'static str)> =
                self.nodes.iter().map(|n| (n.id.clone(), n.state)).collect();
            return triggers::dot(&nodes, &self.edges);
        }
        if self.edges.is_empty() {
            return "no job is triggered by another (see `after:` in the README)\n".into();
        }
        let mut out = String::new();
        for edge in &self.edges {
            let on = if edge.all {
                "once all of its after_all succeeded".to_owned()
            } else {
                format!(
                    "on {}",
                    edge.on
                        .iter()
                        .map(|o| o.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            out.push_str(&format!("{} -> {}  ({on})\n", edge.from, edge.to));
        }
        out
    }
}
