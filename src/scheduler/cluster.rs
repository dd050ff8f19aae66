//! This scheduler as one node of a store several hosts share: its name, its heartbeat, its
//! leadership (a lease with a term, on the store's clock) and the self-fencing that stops its runs
//! when it cannot tell the store it is alive. What to do is decided here from what the store
//! answered and the monotonic instants the calls were sent at, never from a wall clock: the daemon
//! makes the calls and carries the decisions out. Must not speak to the store itself.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::store::{Lease, NodeBeat};

fn human(d: Duration) -> String {
    crate::duration::SpecDuration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .to_string()
}

/// The shortest lease: renewals every third of it must fit a slow database round trip.
const MIN_LEASE: Duration = Duration::from_secs(1);

/// How a scheduler on a shared store takes part: `--node`, `--lease`, `--node-dead-after`.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `None`: the host name.
    pub node: Option<String>,
    pub lease: Duration,
    pub dead_after: Duration,
    /// `--labels`: what the node offers the jobs that ask for labels (`run.nodes`).
    pub labels: Vec<String>,
    /// `--max-runs`: how many runs the node executes at once (`None`: no limit).
    pub max_runs: Option<u32>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            node: None,
            lease: Duration::from_secs(10),
            dead_after: Duration::from_secs(300),
            labels: Vec::new(),
            max_runs: None,
        }
    }
}

/// Whether `label` is one a spec's `run.nodes` may name (the job schema's rule).
fn is_label(label: &str) -> bool {
    (1..=64).contains(&label.len())
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:=-".contains(c))
}

impl ClusterOptions {
    /// Checks the options: a lease of at least a second, and a silence others wait out of at least
    /// two leases, so that this node stops its runs (a lease before the end) before anyone could
    /// take them for dead, with a lease of margin.
    pub fn new(node: Option<String>, lease: Duration, dead_after: Duration) -> Result<Self> {
        if let Some(name) = &node
            && (name.is_empty()
                || name.len() > 128
                || name.chars().any(|c| c.is_control() || c == ','))
        {
            return Err(Error::Usage {
                message: format!(
                    "--node {name:?} is not a node name: give 1 to 128 characters, no commas or control characters"
                ),
            });
        }
        if lease < MIN_LEASE {
            return Err(Error::Usage {
                message: format!("--lease {} is too short: give at least 1s", human(lease)),
            });
        }
        if dead_after < lease * 2 {
            return Err(Error::Usage {
                message: format!(
                    "--node-dead-after {} is shorter than twice the lease ({}): a node would be taken for dead before it could stop its own runs; give at least {}",
                    human(dead_after),
                    human(lease),
                    human(lease * 2)
                ),
            });
        }
        Ok(Self {
            node,
            lease,
            dead_after,
            ..Self::default()
        })
    }

    /// With the node's labels and its limit of runs at once, checked.
    pub fn with_work(mut self, labels: Vec<String>, max_runs: Option<u32>) -> Result<Self> {
        if let Some(bad) = labels.iter().find(|l| !is_label(l)) {
            return Err(Error::Usage {
                message: format!(
                    "--labels: {bad:?} is not a label: give 1 to 64 letters, digits or any of _ . : = -"
                ),
            });
        }
        let mut labels = labels;
        labels.sort();
        labels.dedup();
        self.labels = labels;
        self.max_runs = max_runs;
        Ok(self)
    }

    /// The node's name: `--node`, else the host name.
    pub fn name(&self) -> String {
        self.node.clone().unwrap_or_else(crate::run::host)
    }

    /// How often the heartbeat and the lease are renewed.
    pub fn renew_every(&self) -> Duration {
        self.lease / 3
    }
}

/// What a lease call changed for this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leadership {
    /// Elected in `term`: the node syncs its specs, settles, and starts planning.
    Elected(i64),
    /// Still the leader; nothing to do.
    Renewed,
    /// Its term `term` ended (another node leads, or it could not renew in time): it stops planning.
    Lost(i64),
    /// Not the leader, as before.
    Follower,
}

/// The node's view of itself.
#[derive(Debug)]
pub struct Node {
    pub options: ClusterOptions,
    pub name: String,
    /// `pid@host` of this process.
    pub owner: String,
    /// The term this node leads in, if it does.
    term: Option<i64>,
    /// Until when this node may take itself for the leader: the instant its last granted lease call
    /// was sent, plus the lease. The store granted the lease at some moment after that, so the
    /// lease there ends no earlier.
    leads_until: Option<Instant>,
    /// When the last heartbeat the store took was sent.
    beat_sent: Instant,
    /// Whether the node's runs were stopped for want of a heartbeat, and none started since.
    fenced: bool,
    /// The fingerprint of its home's specs and config, as last read.
    pub spec_hash: String,
}

impl Node {
    pub fn new(options: ClusterOptions, owner: String, spec_hash: String, now: Instant) -> Self {
        Self {
            name: options.name(),
            options,
            owner,
            term: None,
            leads_until: None,
            beat_sent: now,
            fenced: false,
            spec_hash,
        }
    }

    /// The term it leads in, for the next lease call.
    pub fn term(&self) -> Option<i64> {
        self.term
    }

    /// Whether the node may plan and claim now: it holds a term whose lease, counted from when its
    /// last renewal was sent, has not run out. (The store checks the term again inside every
    /// claim; this keeps a node that cannot renew from planning at all.)
    pub fn leads(&self, now: Instant) -> bool {
        self.term.is_some() && self.leads_until.is_some_and(|until| now < until)
    }

    /// Takes in the answer to a lease call sent at `sent`. A failed call changes nothing by itself:
    /// the lease runs out on its own time, and [`Node::leads`] says so.
    pub fn lease_answered(&mut self, sent: Instant, answer: Option<Lease>) -> Leadership {
        match (self.term, answer) {
            (_, Some(lease)) if lease.elected || self.term != Some(lease.term) => {
                self.term = Some(lease.term);
                self.leads_until = Some(sent + self.options.lease);
                Leadership::Elected(lease.term)
            }
            (_, Some(_)) => {
                self.leads_until = Some(sent + self.options.lease);
                Leadership::Renewed
            }
            (Some(term), None) => {
                self.term = None;
                self.leads_until = None;
                Leadership::Lost(term)
            }
            (None, None) => Leadership::Follower,
        }
    }

    /// The node gave its leadership up (it resigned, or its lease ran out while it could not
    /// renew): returns the term it held.
    pub fn step_down(&mut self) -> Option<i64> {
        self.leads_until = None;
        self.term.take()
    }

    /// Until when the node's last heartbeat the store took vouches for it: a lease after it was
    /// sent. A run taken from the queue starts only before then; a node that slept past it gives
    /// its runs back rather than start them late.
    pub fn alive_until(&self) -> Instant {
        self.beat_sent + self.options.lease
    }

    /// How many more runs the node may take now, with `running` in flight (see `--max-runs`).
    pub fn room(&self, running: usize) -> usize {
        self.options.max_runs.map_or(usize::MAX, |most| {
            usize::try_from(most)
                .unwrap_or(usize::MAX)
                .saturating_sub(running)
        })
    }

    /// A heartbeat sent at `sent` was taken.
    pub fn beat_taken(&mut self, sent: Instant) {
        self.beat_sent = sent;
        self.fenced = false;
    }

    /// Whether the node must stop its runs now: its last heartbeat the store took was sent longer
    /// ago than its promise less a lease. Others take its runs for dead only once the promise has
    /// passed since the store recorded that heartbeat (later than it was sent), so the runs are
    /// stopped at least a lease before then. True once per silence.
    pub fn must_fence(&mut self, now: Instant) -> bool {
        let limit = self.options.dead_after - self.options.lease;
        if self.fenced || now.saturating_duration_since(self.beat_sent) < limit {
            return false;
        }
        self.fenced = true;
        true
    }

    /// What the node says of itself to the store.
    pub fn beat(&self, runs_in_flight: usize) -> NodeBeat {
        NodeBeat {
            node: self.name.clone(),
            owner: self.owner.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            labels: self.options.labels.clone(),
            dead_after_ms: i64::try_from(self.options.dead_after.as_millis()).unwrap_or(i64::MAX),
            runs_in_flight: i64::try_from(runs_in_flight).unwrap_or(i64::MAX),
            spec_hash: Some(self.spec_hash.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(at: Instant) -> Node {
        let options = ClusterOptions::new(
            Some("a".into()),
            Duration::from_secs(3),
            Duration::from_secs(9),
        )
        .expect("valid options");
        Node::new(options, "1@h".into(), "f".into(), at)
    }

    fn lease(term: i64, elected: bool) -> Option<Lease> {
        Some(Lease { term, elected })
    }

    #[test]
    fn options_refuse_a_short_lease_and_a_promise_under_two_leases() {
        let s = Duration::from_secs;
        assert!(ClusterOptions::new(None, Duration::from_millis(500), s(60)).is_err());
        let short = ClusterOptions::new(None, s(10), s(19)).expect_err("under two leases");
        assert!(short.to_string().contains("at least 20s"), "{short}");
        assert!(ClusterOptions::new(None, s(10), s(20)).is_ok());
        assert!(ClusterOptions::new(Some("a,b".into()), s(10), s(20)).is_err());
        assert!(ClusterOptions::new(Some(String::new()), s(10), s(20)).is_err());
    }

    #[test]
    fn an_election_leads_for_one_lease_from_when_the_call_was_sent() {
        let t0 = Instant::now();
        let mut n = node(t0);
        assert!(!n.leads(t0));
        let sent = t0 + Duration::from_secs(1);
        assert_eq!(
            n.lease_answered(sent, lease(7, true)),
            Leadership::Elected(7)
        );
        assert_eq!(n.term(), Some(7));
        assert!(n.leads(sent + Duration::from_millis(2_999)));
        // Counted from the send, not from the answer: a slow answer shortens the lease here.
        assert!(!n.leads(sent + Duration::from_secs(3)));
    }

    #[test]
    fn a_renewal_extends_and_a_refusal_ends_the_term() {
        let t0 = Instant::now();
        let mut n = node(t0);
        n.lease_answered(t0, lease(7, true));
        let later = t0 + Duration::from_secs(2);
        assert_eq!(
            n.lease_answered(later, lease(7, false)),
            Leadership::Renewed
        );
        assert!(n.leads(later + Duration::from_millis(2_900)));
        assert_eq!(n.lease_answered(later, None), Leadership::Lost(7));
        assert!(!n.leads(later));
        assert_eq!(n.lease_answered(later, None), Leadership::Follower);
    }

    #[test]
    fn a_lease_with_another_term_is_a_new_election() {
        let t0 = Instant::now();
        let mut n = node(t0);
        n.lease_answered(t0, lease(7, true));
        assert_eq!(
            n.lease_answered(t0, lease(9, false)),
            Leadership::Elected(9)
        );
    }

    #[test]
    fn a_node_that_cannot_beat_fences_a_lease_before_its_promise_once() {
        let t0 = Instant::now();
        let mut n = node(t0);
        // Promise 9 s, lease 3 s: the runs stop 6 s after the last heartbeat was sent.
        assert!(!n.must_fence(t0 + Duration::from_millis(5_999)));
        assert!(n.must_fence(t0 + Duration::from_secs(6)));
        assert!(
            !n.must_fence(t0 + Duration::from_secs(7)),
            "once per silence"
        );
        n.beat_taken(t0 + Duration::from_secs(8));
        assert!(!n.must_fence(t0 + Duration::from_secs(13)));
        assert!(n.must_fence(t0 + Duration::from_secs(14)));
    }

    #[test]
    fn stepping_down_gives_the_term_back() {
        let t0 = Instant::now();
        let mut n = node(t0);
        n.lease_answered(t0, lease(3, true));
        assert_eq!(n.step_down(), Some(3));
        assert!(!n.leads(t0));
        assert_eq!(n.step_down(), None);
    }
}
