//! Executing runs: one attempt is a process group with captured output and a timeout; a run is its
//! attempts and retries, with events, receipt, summary and store records along the way.

pub mod attempt;
pub mod claim;
pub mod execute;
pub mod identity_limits;
pub mod recover;

pub use claim::{ClaimOf, claim_run};
pub use execute::{RunOutcome, execute};
