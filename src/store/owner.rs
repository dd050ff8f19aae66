//! The `scheduler_owner` row: who runs the scheduler of this home, since when, and its last heartbeat.
//! It is informational; who really owns the home is decided by the lock on `db/scheduler.lock`.

use rusqlite::{OptionalExtension, params};

use super::Store;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: i64,
    pub host: String,
    pub version: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
}

impl Store {
    pub fn claim_owner(&mut self, owner: &Owner) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO scheduler_owner (id, pid, host, version, started_at, heartbeat_at) VALUES (1, ?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET pid = ?1, host = ?2, version = ?3, started_at = ?4, heartbeat_at = ?5",
                params![owner.pid, owner.host, owner.version, owner.started_at, owner.heartbeat_at],
            )
            .map_err(|e| Error::store("record the scheduler owner", e))?;
        Ok(())
    }

    pub fn heartbeat(&mut self, pid: i64, now: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE scheduler_owner SET heartbeat_at = ?2 WHERE pid = ?1",
                params![pid, now],
            )
            .map_err(|e| Error::store("record the scheduler heartbeat", e))?;
        Ok(())
    }

    pub fn release_owner(&mut self, pid: i64) -> Result<()> {
        self.conn
            .execute("DELETE FROM scheduler_owner WHERE pid = ?1", [pid])
            .map_err(|e| Error::store("clear the scheduler owner", e))?;
        Ok(())
    }

    pub fn owner(&self) -> Result<Option<Owner>> {
        self.conn
            .query_row(
                "SELECT pid, host, version, started_at, heartbeat_at FROM scheduler_owner WHERE id = 1",
                [],
                |r| Ok(Owner { pid: r.get(0)?, host: r.get(1)?, version: r.get(2)?, started_at: r.get(3)?, heartbeat_at: r.get(4)? }),
            )
            .optional()
            .map_err(|e| Error::store("read the scheduler owner", e))
    }
}
