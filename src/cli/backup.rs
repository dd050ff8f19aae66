//! `jobsctl backup <path>`: a consistent copy of the store, taken online while a scheduler may be running.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Ctx;
use super::output::{Output, Report, View};
use crate::error::{Error, Result};
use crate::store;

pub fn run(ctx: &Ctx, path: &Path, force: bool) -> Result<Report> {
    refuse_live_store_file(&ctx.home.db_path(), path)?;
    if path.exists() && !force {
        return Err(Error::FileExists {
            path: path.to_owned(),
        });
    }
    let store = store::open_home(&ctx.home)?;
    store.backup_to(path)?;
    let view = BackupView {
        path: path.display().to_string(),
        bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
    };
    Report::view(&view, &ctx.out)
}

/// Where the copy went and how big it is.
#[derive(Serialize)]
struct BackupView {
    path: String,
    bytes: u64,
}

impl View for BackupView {
    fn render(&self, _: &Output) -> String {
        format!(
            "backed up the store to {} ({} bytes); run directories under runs/ are separate files\n",
            self.path, self.bytes
        )
    }
}

/// The files SQLite keeps for the store beside it.
const STORE_SUFFIXES: [&str; 4] = ["", "-wal", "-shm", "-journal"];

/// A backup renamed onto the store, its WAL or its shared memory would replace them under every open
/// connection (the scheduler's included) and wreck the store. Caught by name, with the parent directory
/// canonicalized (`db/../db/x`, links), and by inode for a file that exists (a hard link).
fn refuse_live_store_file(store: &Path, target: &Path) -> Result<()> {
    let refuse = |live: &Path| {
        Err(Error::Usage {
            message: format!(
                "refusing to back up onto {}, which is the live store's own file {}; choose another path, best outside the store's directory",
                target.display(),
                live.display()
            ),
        })
    };
    let live: Vec<PathBuf> = STORE_SUFFIXES
        .iter()
        .map(|suffix| {
            let mut name = store.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        })
        .collect();
    let canonical_parent = |path: &Path| {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        std::fs::canonicalize(parent).ok()
    };
    if let (Some(dir), Some(name)) = (canonical_parent(target), target.file_name()) {
        for file in &live {
            if canonical_parent(file).is_some_and(|d| d == dir) && file.file_name() == Some(name) {
                return refuse(file);
            }
        }
    }
    if let Ok(meta) = std::fs::metadata(target) {
        for file in &live {
            if std::fs::metadata(file).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
            {
                return refuse(file);
            }
        }
    }
    Ok(())
}
