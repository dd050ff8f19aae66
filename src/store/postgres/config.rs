//! The `home_config` row on PostgreSQL: the last good version of the home's `config.yaml`. Must not
//! check a config (the `config` module does) or decide which version is in force.

use chrono::{DateTime, Utc};

use super::column::Millis;
use super::connection::{PgStore, pg_error};
use crate::error::Result;
use crate::store::interface::ConfigStore;
use crate::store::records::KeptConfig;

impl ConfigStore for PgStore {
    fn kept_config(&self) -> Result<Option<KeptConfig>> {
        super::connection::in_place(|| {
            let fail = |e| pg_error("read the last good config", e);
            self.client
                .borrow_mut()
                .query_opt("SELECT hash, source FROM home_config WHERE id = 1", &[])
                .map_err(fail)?
                .map(|row| {
                    Ok(KeptConfig {
                        hash: row.try_get(0)?,
                        source: row.try_get(1)?,
                    })
                })
                .transpose()
                .map_err(fail)
        })
    }

    fn keep_config(&mut self, config: Option<&KeptConfig>, now: DateTime<Utc>) -> Result<()> {
        super::connection::in_place(|| {
            let fail = |e| pg_error("record the last good config", e);
            let mut tx = self.write().map_err(fail)?;
            match config {
                // The same version kept already is not written again: when it was checked stays as
                // first recorded.
                Some(config) => tx.execute(
                    "INSERT INTO home_config (id, hash, source, checked_at) VALUES (1, $1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET hash = EXCLUDED.hash, source = EXCLUDED.source,
                     checked_at = EXCLUDED.checked_at
                 WHERE home_config.hash <> EXCLUDED.hash",
                    &[&config.hash, &config.source, &Millis(now)],
                ),
                None => tx.execute("DELETE FROM home_config", &[]),
            }
            .map_err(fail)?;
            tx.commit().map_err(fail)
        })
    }
}
