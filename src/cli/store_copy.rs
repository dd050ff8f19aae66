//! `jobsctl store copy --to URL`: this home's SQLite store copied into an empty PostgreSQL store.

use serde::Serialize;

use super::Ctx;
use super::output::{Output, Report, View};
use crate::error::{Error, Result};
use crate::scheduler::lock::OwnerLock;

pub fn run(ctx: &Ctx, to: &str) -> Result<Report> {
    super::entry::refuse_password_in_flag("--to", to)?;
    // A running scheduler's runs in flight would arrive as running, owned by a process that goes on
    // writing to the old store.
    if let Some(owner) = OwnerLock::holder(&ctx.home) {
        return Err(Error::Usage {
            message: format!(
                "a scheduler ({owner}) is running in this home: stop it first, so that no run is in flight while its store moves"
            ),
        });
    }
    let copied = crate::store::copy_home_to(&ctx.home, to)?;
    let view = CopyView {
        to: crate::store::postgres_url::masked(to),
        tables: copied
            .tables
            .into_iter()
            .map(|(table, rows)| TableCopied { table, rows })
            .collect(),
    };
    Report::view(&view, &ctx.out)
}

#[derive(Serialize)]
struct CopyView {
    to: String,
    tables: Vec<TableCopied>,
}

#[derive(Serialize)]
struct TableCopied {
    table: String,
    rows: u64,
}

impl View for CopyView {
    fn render(&self, _: &Output) -> String {
        let mut out = format!("copied the store into {}:\n", self.to);
        for table in &self.tables {
            out.push_str(&format!("  {:<20} {} row(s)\n", table.table, table.rows));
        }
        out.push_str(&format!(
            "the SQLite store is unchanged; to use the copy, add `store: {}` to config.yaml\n",
            self.to
        ));
        out
    }
}
