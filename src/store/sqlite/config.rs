//! The `home_config` row: the last good version of the home's `config.yaml`. Must not check a config
//! (the `config` module does) or decide which version is in force.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::column::Millis;
use super::connection::{SqliteStore, store_error};
use crate::error::Result;
use crate::store::interface::ConfigStore;
use crate::store::records::KeptConfig;

impl ConfigStore for SqliteStore {
    fn kept_config(&self) -> Result<Option<KeptConfig>> {
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
            .map_err(|e| store_error("read the last good config", e))
    }

    fn keep_config(&mut self, config: Option<&KeptConfig>, now: DateTime<Utc>) -> Result<()> {
        let result = match config {
            Some(config) => self.conn.execute(
                "INSERT INTO home_config (id, hash, source, checked_at) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET hash = ?1, source = ?2, checked_at = ?3
                 WHERE hash != ?1",
                params![config.hash, config.source, Millis(now)],
            ),
            None => self.conn.execute("DELETE FROM home_config", []),
        };
        result.map_err(|e| store_error("record the last good config", e))?;
        Ok(())
    }
}
