//! `jobs backup <path>`: a consistent copy of the store, taken online while a scheduler may be running.

use std::path::Path;

use serde_json::json;

use super::entry::Ctx;
use super::output::Report;
use crate::error::{Error, Result};
use crate::store::Store;

pub fn run(ctx: &Ctx, path: &Path, force: bool) -> Result<Report> {
    if path.exists() && !force {
        return Err(Error::FileExists {
            path: path.to_owned(),
        });
    }
    let store = Store::open(&ctx.home.db_path())?;
    store.backup_to(path)?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let human = format!(
        "backed up the store to {} ({bytes} bytes); run directories under runs/ are separate files\n",
        path.display()
    );
    Ok(Report::ok(
        json!({ "path": path.display().to_string(), "bytes": bytes }),
        human,
    ))
}
