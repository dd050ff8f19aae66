//! Fault-injection points for the crash-torture tests. They exist only in debug builds (the ones
//! `cargo test` drives); in a release build every point is an empty inline function.
//!
//! `JOBS_FAULT` names the points that may kill the process and how often, for example
//! `claim-before-commit=0.02,event-torn=0.01`: each time the code passes a named point it dies by
//! SIGKILL with that probability, exactly as `kill -9` would leave it. `JOBS_FAULT_SEED` makes the
//! choice repeatable.

/// Where the process may be killed, in the order a run passes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Inside a claim transaction, after the run directory is made and before the commit.
    ClaimBeforeCommit,
    /// Half of an event line is written, the rest never is.
    EventTorn,
    /// A receipt's temporary file is written but not yet renamed into place.
    ReceiptBeforeRename,
    /// Inside the transaction that records how a run ended, before its commit.
    FinishBeforeCommit,
    /// Just after the transaction that records how a run ended (and what it triggers) commits.
    FinishAfterCommit,
}

impl Point {
    #[cfg(debug_assertions)]
    pub fn name(self) -> &'static str {
        match self {
            Point::ClaimBeforeCommit => "claim-before-commit",
            Point::EventTorn => "event-torn",
            Point::ReceiptBeforeRename => "receipt-before-rename",
            Point::FinishBeforeCommit => "finish-before-commit",
            Point::FinishAfterCommit => "finish-after-commit",
        }
    }
}

/// Kills the process here if `JOBS_FAULT` asks for it.
#[cfg(debug_assertions)]
pub fn point(point: Point) {
    if strikes(point) {
        die();
    }
}

/// Whether the process should die at `point`; the caller does something half-way first (a torn
/// line) and then calls [`die`].
#[cfg(debug_assertions)]
pub fn strikes(point: Point) -> bool {
    let Some(probability) = armed::probability(point) else {
        return false;
    };
    armed::next_unit() < probability
}

#[cfg(debug_assertions)]
pub fn die() -> ! {
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    // SIGKILL cannot be caught; should it ever fail to arrive, leave without running destructors.
    std::process::abort()
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_point: Point) {}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn strikes(_point: Point) -> bool {
    false
}

#[cfg(not(debug_assertions))]
pub fn die() -> ! {
    std::process::abort()
}

#[cfg(debug_assertions)]
mod armed {
    use super::Point;
    use std::sync::Mutex;
    use std::sync::OnceLock;

    struct Faults {
        points: Vec<(String, f64)>,
        state: Mutex<u64>,
    }

    fn faults() -> &'static Faults {
        static FAULTS: OnceLock<Faults> = OnceLock::new();
        FAULTS.get_or_init(|| {
            let points = std::env::var("JOBS_FAULT")
                .unwrap_or_default()
                .split(',')
                .filter_map(|item| {
                    let (name, p) = item.split_once('=')?;
                    Some((name.trim().to_owned(), p.trim().parse().ok()?))
                })
                .collect();
            let seed = std::env::var("JOBS_FAULT_SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| {
                    let nanos = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.subsec_nanos());
                    u64::from(nanos) ^ (u64::from(std::process::id()) << 32)
                });
            Faults {
                points,
                state: Mutex::new(seed | 1),
            }
        })
    }

    pub(super) fn probability(point: Point) -> Option<f64> {
        let name = point.name();
        faults()
            .points
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
    }

    /// A uniform number in [0, 1) from xorshift64*: enough to pick moments, no dependency needed.
    pub(super) fn next_unit() -> f64 {
        let Ok(mut state) = faults().state.lock() else {
            return 1.0;
        };
        let mut x = *state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}
