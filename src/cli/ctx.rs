//! What every command gets (the home, how to print, the clock) and what several of them start with: the
//! catalog with dead runs settled, and the async runtime. Knows no command and no entry point.

use std::sync::Arc;

use super::output::Output;
use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::home::Home;

/// What every command gets: where the home is, how to print, and what time it is.
pub struct Ctx {
    pub home: Home,
    pub out: Output,
    pub clock: Arc<dyn Clock>,
}

impl Ctx {
    /// The catalog for a command that reads runs: specs loaded and synced, `job` (when given) known to
    /// exist, and runs whose owner died recorded as interrupted (their artifacts repaired) first.
    pub fn catalog_with_runs(&self, job: Option<&str>) -> Result<Catalog> {
        let mut catalog = Catalog::open(&self.home, self.clock.now())?;
        if let Some(id) = job {
            catalog.job(id)?;
        }
        match crate::runner::recover::reconcile_runs(
            &mut *catalog.store,
            &self.home,
            &self.clock,
            job,
        ) {
            Ok(_) => {}
            // Settling dead runs is a write; when another process holds the lock the command still
            // answers, and the next one (or the scheduler) settles them.
            Err(e) if e.is_busy() => tracing::warn!(
                "runs whose process died are not settled yet (another process holds the store's write lock): {e}"
            ),
            Err(e) => return Err(e),
        }
        Ok(catalog)
    }
}

/// The async runtime of the commands that run things (`run`, `replay`, `scheduler`): two workers, so
/// output capture and store writes proceed side by side on the two cores we plan for.
pub fn async_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Internal {
            message: format!("cannot start the async runtime: {e}"),
        })
}
