//! The `scheduler_owner` row: who runs the scheduler of this home, since when, and its last heartbeat.
//! It is informational; who really owns the home is decided by the lock on `db/scheduler.lock`. Its
//! times are this machine's clock, which is the store's: every process sharing the file runs here.

use chrono::Utc;
use rusqlite::{OptionalExtension, params};

use super::column::Millis;
use super::connection::{SqliteStore, store_error};
use crate::error::{Error, Result};
use crate::store::interface::OwnerStore;
use crate::store::records::Owner;

/// The pid and host of an owner written `pid@host`, as the row keeps them.
fn pid_and_host(owner: &str) -> Result<(i64, &str)> {
    owner
        .split_once('@')
        .and_then(|(pid, host)| Some((pid.parse().ok()?, host)))
        .ok_or_else(|| Error::Internal {
            message: format!("the scheduler owner `{owner}` is not pid@host"),
        })
}

impl OwnerStore for SqliteStore {
    fn claim_owner(&mut self, owner: &str, version: &str) -> Result<()> {
        let (pid, host) = pid_and_host(owner)?;
        let now = Millis(Utc::now());
        self.conn
            .execute(
                "INSERT INTO scheduler_owner (id, pid, host, version, started_at, heartbeat_at) VALUES (1, ?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET pid = ?1, host = ?2, version = ?3, started_at = ?4, heartbeat_at = ?5",
                params![pid, host, version, now, now],
            )
            .map_err(|e| store_error("record the scheduler owner", e))?;
        Ok(())
    }

    fn heartbeat(&mut self, owner: &str) -> Result<bool> {
        let (pid, host) = pid_and_host(owner)?;
        let renewed = self
            .conn
            .execute(
                "UPDATE scheduler_owner SET heartbeat_at = ?3 WHERE pid = ?1 AND host = ?2",
                params![pid, host, Millis(Utc::now())],
            )
            .map_err(|e| store_error("record the scheduler heartbeat", e))?;
        Ok(renewed > 0)
    }

    fn release_owner(&mut self, owner: &str) -> Result<()> {
        let (pid, host) = pid_and_host(owner)?;
        self.conn
            .execute(
                "DELETE FROM scheduler_owner WHERE pid = ?1 AND host = ?2",
                params![pid, host],
            )
            .map_err(|e| store_error("clear the scheduler owner", e))?;
        Ok(())
    }

    fn owner(&self) -> Result<Option<Owner>> {
        self.conn
            .query_row(
                "SELECT pid, host, version, started_at, heartbeat_at FROM scheduler_owner WHERE id = 1",
                [],
                |r| {
                    Ok(Owner {
                        pid: r.get(0)?,
                        host: r.get(1)?,
                        version: r.get(2)?,
                        started_at: r.get::<_, Millis>(3)?.0,
                        heartbeat_at: r.get::<_, Millis>(4)?.0,
                    })
                },
            )
            .optional()
            .map_err(|e| store_error("read the scheduler owner", e))
    }
}
