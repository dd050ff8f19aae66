//! Telling people: what a notification says, how one try of its delivery goes, when a failed one is
//! tried again, and how a notifier's URL may be shown. Knows nothing of the store or the scheduler,
//! which keep the outbox and call these from blocking threads.

pub mod backoff;
pub mod deliver;
pub mod fanout;
pub mod mask;
pub mod payload;

pub use backoff::{MAX_TRIES, NextTry, next_try};
pub use deliver::{Outcome, PingSignal};
pub use mask::{mask_url, shown};
pub use payload::{
    Envelope, ErrorFacts, Event, HomeFacts, Notification, OutputLine, RunFacts, problems_message,
};
