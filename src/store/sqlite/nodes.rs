//! Nodes and leadership in a SQLite store: a store of one host, owned by the scheduler that holds the
//! home's lock. That scheduler is the one node and always leads; there are no rows to keep, and
//! nothing to fence, since no second scheduler can claim from this store while the lock is held.

use std::time::Duration;

use super::connection::SqliteStore;
use crate::error::Result;
use crate::store::interface::{MirrorStore, NodeStore, Prepare, QueueStore};
use crate::store::records::{Fence, LeaderRow, Lease, NodeBeat, NodeRow, Take, TakenRun};

impl NodeStore for SqliteStore {
    fn join_node(
        &mut self,
        _beat: &NodeBeat,
        _live_for: Duration,
        _gone: &dyn Fn(&str) -> bool,
    ) -> Result<Option<String>> {
        Ok(None)
    }

    fn node_heartbeat(&mut self, _beat: &NodeBeat) -> Result<bool> {
        Ok(true)
    }

    fn renew_runs(&mut self, _owner: &str, _dead_after: Duration) -> Result<()> {
        // No process on another host judges these runs: their owner's lock and pid say it all.
        Ok(())
    }

    fn leave_node(&mut self, _node: &str, _owner: &str) -> Result<()> {
        Ok(())
    }

    fn nodes(&self) -> Result<Vec<NodeRow>> {
        Ok(Vec::new())
    }

    fn lead(
        &mut self,
        _node: &str,
        term: Option<i64>,
        _lease: Duration,
        _spec_hash: &str,
    ) -> Result<Option<Lease>> {
        Ok(Some(Lease {
            term: term.unwrap_or(1),
            elected: term.is_none(),
        }))
    }

    fn resign(&mut self, _node: &str, _term: i64) -> Result<()> {
        Ok(())
    }

    fn leader(&self) -> Result<Option<LeaderRow>> {
        Ok(None)
    }

    fn catalog_hash(&self) -> Result<Option<String>> {
        Ok(None)
    }

    fn publish_catalog(&mut self, _node: &str, _term: i64, _spec_hash: &str) -> Result<()> {
        Ok(())
    }

    fn fence(&mut self, _fence: Option<Fence>) {}
}

impl MirrorStore for SqliteStore {
    fn mirror(
        &mut self,
        _events: &[(String, i64, i64, String)],
        _receipts: &[(String, i64, String)],
    ) -> Result<()> {
        Ok(())
    }

    fn mirrors(&self) -> bool {
        false
    }

    fn mirrored_events(&self, _job_id: &str, _seq: i64, _after: i64) -> Result<Vec<(i64, String)>> {
        Ok(Vec::new())
    }

    fn mirrored_receipt(&self, _job_id: &str, _seq: i64) -> Result<Option<String>> {
        Ok(None)
    }
}

/// The one scheduler executes every run it claims: nothing ever waits here for a node.
impl QueueStore for SqliteStore {
    fn take_runs(&mut self, _take: &Take<'_>, _prepare: Prepare<'_>) -> Result<Vec<TakenRun>> {
        Ok(Vec::new())
    }

    fn hand_back(&mut self, _job_id: &str, _seq: i64, _owner: &str, _queued: bool) -> Result<bool> {
        Ok(false)
    }

    fn release_untaken(&mut self, _owner: &str) -> Result<Vec<(String, i64)>> {
        Ok(Vec::new())
    }

    fn work_signal(&self) -> Result<Option<std::sync::Arc<tokio::sync::Notify>>> {
        Ok(None)
    }
}
