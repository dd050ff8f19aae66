//! The `home_config` row: the last good version of the home's `config.yaml`. Must not check a config
//! (the `config` module does) or decide which version is in force.

use rusqlite::{OptionalExtension, params};

use super::Store;
use crate::error::{Error, Result};

/// A config text that passed every check, and its content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptConfig {
    pub hash: String,
    pub source: String,
}

impl Store {
    /// The last good config, if the home ever had one.
    pub fn kept_config(&self) -> Result<Option<KeptConfig>> {
        self.conn
            .query_row(
                "SELECT hash, source FROM home_config WHERE id = 1",
                [],
                |row| {
                    Ok(KeptConfig {
                        hash: row.get(0)?,
                        source: row.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(|e| Error::store("read the last good config", e))
    }

    /// Keeps `config` as the last good version (one statement); `None` forgets it (the file was
    /// removed, so the built-in defaults are in force again).
    pub fn keep_config(&mut self, config: Option<&KeptConfig>, now_ms: i64) -> Result<()> {
        let result = match config {
            Some(config) => self.conn.execute(
                "INSERT INTO home_config (id, hash, source, checked_at) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET hash = ?1, source = ?2, checked_at = ?3
                 WHERE hash != ?1",
                params![config.hash, config.source, now_ms],
            ),
            None => self.conn.execute("DELETE FROM home_config", []),
        };
        result.map_err(|e| Error::store("record the last good config", e))?;
        Ok(())
    }
}
