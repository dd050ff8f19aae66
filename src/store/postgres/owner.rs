//! The `scheduler_owner` row on PostgreSQL: who runs the scheduler of this home, since when, and its
//! last heartbeat. Its times are the database server's clock, never the caller's: processes on
//! several hosts share the row, and only the server's clock is the same for all of them.

use super::column::Millis;
use super::connection::{PgStore, pg_error};
use crate::error::{Error, Result};
use crate::store::interface::OwnerStore;
use crate::store::records::Owner;

/// The store's clock, in milliseconds. `clock_timestamp()`, not `now()`: `now()` is when the
/// transaction began, which may be a lock wait ago.
pub(super) const STORE_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// The pid and host of an owner written `pid@host`, as the row keeps them.
fn pid_and_host(owner: &str) -> Result<(i64, &str)> {
    owner
        .split_once('@')
        .and_then(|(pid, host)| Some((pid.parse().ok()?, host)))
        .ok_or_else(|| Error::Internal {
            message: format!("the scheduler owner `{owner}` is not pid@host"),
        })
}

impl OwnerStore for PgStore {
    fn claim_owner(&mut self, owner: &str, version: &str) -> Result<()> {
        super::connection::in_place(|| {
            let (pid, host) = pid_and_host(owner)?;
            // The clock is read once, so that a new owner starts and was last seen at the same instant.
            self.quiet_write("record the scheduler owner", |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO scheduler_owner (id, pid, host, version, started_at, heartbeat_at)
                     SELECT 1, $1, $2, $3, clock.now, clock.now FROM (SELECT {STORE_NOW} AS now) AS clock
                     ON CONFLICT (id) DO UPDATE SET pid = EXCLUDED.pid, host = EXCLUDED.host,
                         version = EXCLUDED.version, started_at = EXCLUDED.started_at,
                         heartbeat_at = EXCLUDED.heartbeat_at"
                ),
                &[&pid, &host, &version],
            )
        })?;
            Ok(())
        })
    }

    fn heartbeat(&mut self, owner: &str) -> Result<bool> {
        super::connection::in_place(|| {
            let (pid, host) = pid_and_host(owner)?;
            let renewed = self.quiet_write("record the scheduler heartbeat", |tx| {
                tx.execute(
                    &format!(
                        "UPDATE scheduler_owner SET heartbeat_at = {STORE_NOW} WHERE pid = $1 AND host = $2"
                    ),
                    &[&pid, &host],
                )
            })?;
            Ok(renewed > 0)
        })
    }

    fn release_owner(&mut self, owner: &str) -> Result<()> {
        super::connection::in_place(|| {
            let (pid, host) = pid_and_host(owner)?;
            self.quiet_write("clear the scheduler owner", |tx| {
                tx.execute(
                    "DELETE FROM scheduler_owner WHERE pid = $1 AND host = $2",
                    &[&pid, &host],
                )
            })?;
            Ok(())
        })
    }

    fn owner(&self) -> Result<Option<Owner>> {
        super::connection::in_place(|| {
            let fail = |e| pg_error("read the scheduler owner", e);
            self.client
            .borrow_mut()
            .query_opt(
                "SELECT pid, host, version, started_at, heartbeat_at FROM scheduler_owner WHERE id = 1",
                &[],
            )
            .map_err(fail)?
            .map(|r| {
                Ok(Owner {
                    pid: r.try_get(0)?,
                    host: r.try_get(1)?,
                    version: r.try_get(2)?,
                    started_at: r.try_get::<_, Millis>(3)?.0,
                    heartbeat_at: r.try_get::<_, Millis>(4)?.0,
                })
            })
            .transpose()
            .map_err(fail)
        })
    }
}
