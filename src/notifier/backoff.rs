//! When a failed delivery is tried again: 1 s, 5 s, 30 s, 2 min and 10 min after the tries before,
//! then given up. Pure, with time as a parameter; must not read the clock or sleep.

use chrono::{DateTime, Duration, Utc};

/// The waits after the first, second, ... failed try. One try more than there are waits is made.
pub const RETRY_DELAYS_MS: [i64; 5] = [1_000, 5_000, 30_000, 120_000, 600_000];

/// The most tries one notification gets: the first and one after each wait.
pub const MAX_TRIES: u32 = RETRY_DELAYS_MS.len() as u32 + 1;

/// What follows a failed try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextTry {
    /// Try again at this instant, with the same delivery id.
    At(DateTime<Utc>),
    /// Stop, and record the notification as given up.
    GiveUp,
}

/// After try number `tries` (counted from 1) failed at `failed_at`: when to try again, if ever. A
/// failure that another try cannot mend (a 404, a command that does not exist) is given up at once.
pub fn next_try(tries: u32, failed_at: DateTime<Utc>, retryable: bool) -> NextTry {
    if !retryable {
        return NextTry::GiveUp;
    }
    let index = usize::try_from(tries.saturating_sub(1)).unwrap_or(usize::MAX);
    match (tries, RETRY_DELAYS_MS.get(index)) {
        (1.., Some(wait)) => NextTry::At(failed_at + Duration::milliseconds(*wait)),
        _ => NextTry::GiveUp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .expect("an instant")
    }

    #[test]
    fn each_failed_try_waits_longer_then_the_notification_is_given_up() {
        let rows = [
            (1, "2026-11-22T03:00:00Z", Some("2026-11-22T03:00:01Z")),
            (
                2,
                "2026-11-22T03:00:01.500Z",
                Some("2026-11-22T03:00:06.500Z"),
            ),
            (3, "2026-11-22T03:00:07Z", Some("2026-11-22T03:00:37Z")),
            (4, "2026-11-22T03:00:37Z", Some("2026-11-22T03:02:37Z")),
            (5, "2026-11-22T03:02:40Z", Some("2026-11-22T03:12:40Z")),
            (6, "2026-11-22T03:12:41Z", None),
            (7, "2026-11-22T03:12:41Z", None),
        ];
        for (tries, failed, next) in rows {
            let expected = next.map_or(NextTry::GiveUp, |t| NextTry::At(at(t)));
            assert_eq!(next_try(tries, at(failed), true), expected, "try {tries}");
        }
        assert_eq!(MAX_TRIES, 6);
    }

    #[test]
    fn a_failure_no_retry_can_mend_is_given_up_at_once() {
        assert_eq!(
            next_try(1, at("2026-11-22T03:00:00Z"), false),
            NextTry::GiveUp
        );
    }

    #[test]
    fn a_count_of_zero_tries_is_not_a_failed_try() {
        assert_eq!(
            next_try(0, at("2026-11-22T03:00:00Z"), true),
            NextTry::GiveUp
        );
    }
}
