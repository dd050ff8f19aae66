//! The history part of the store's contract: reading runs back (one run, pages of history, a job's
//! record, what is in flight, the dashboard's strips, `/metrics`' last ends, what retention weighs,
//! the slots skipped while paused), and the last good config.

use chrono::{DateTime, Utc};
use jobs::run::{RunEnd, RunStatus};
use jobs::spec::model::Overlap;
use jobs::store::{
    HISTORY_COUNT_CAP, HistoryFilter, KeptConfig, LastEnds, RetainedRun, Store, TickRecord,
    TickResult,
};

use crate::support::{Fresh, at, backends, claim, minutely, sync};

/// A manual run of `job` claimed at `now`, running.
pub fn running(fresh: &mut Fresh, job: &str, now: DateTime<Utc>) -> i64 {
    claim(fresh.store.as_mut(), job, "1@h", now, 100, Overlap::Skip)
        .unwrap_or_else(|e| panic!("{}: claim {job}: {e}", fresh.name))
        .seq()
}

/// Ends run `seq` of `job` with `status` at `end`.
pub fn finish(fresh: &mut Fresh, job: &str, seq: i64, status: RunStatus, end: DateTime<Utc>) {
    let failed = status != RunStatus::Succeeded;
    let run_end = RunEnd {
        status,
        attempts: 1,
        exit_code: Some(i32::from(failed)),
        signal: None,
        error_code: failed.then(|| "exit_nonzero".to_owned()),
        message: None,
        started_at: None,
        finished_at: end,
        duration_ms: 0,
    };
    fresh
        .store
        .finish_run(job, seq, &run_end)
        .unwrap_or_else(|e| panic!("{}: finish {job}#{seq}: {e}", fresh.name));
}

/// A run of `job` claimed at `now` and ended with `status` a second later.
fn ended(fresh: &mut Fresh, job: &str, now: DateTime<Utc>, status: RunStatus) -> i64 {
    let seq = running(fresh, job, now);
    finish(fresh, job, seq, status, now + chrono::Duration::seconds(1));
    seq
}

/// Writes `records` as one tick at `now`; returns their seqs.
fn tick(store: &mut dyn Store, records: &[TickRecord], now: DateTime<Utc>) -> Vec<i64> {
    store
        .commit_tick(records, &[], &[], "1@h", now, &mut |job, seq| {
            Ok(format!("runs/{job}/{seq}"))
        })
        .unwrap_or_else(|e| panic!("tick: {e}"))
        .into_iter()
        .map(|result| match result {
            TickResult::Recorded { seq, .. } => seq,
            other => panic!("not recorded: {other:?}"),
        })
        .collect()
}

fn skipped(job: &str, first: i64, last: i64, count: u64, reason: &str) -> TickRecord {
    TickRecord::Skipped {
        job_id: job.to_owned(),
        first_slot: at(first),
        last_slot: at(last),
        count,
        reason: reason.to_owned(),
    }
}

fn missed(job: &str, first: i64, last: i64, count: u64) -> TickRecord {
    TickRecord::Missed {
        job_id: job.to_owned(),
        first_slot: at(first),
        last_slot: at(last),
        count,
        message: "past its misfire grace".to_owned(),
    }
}

/// The (job, seq) of each run, in order.
fn keys(rows: &[jobs::store::RunRow]) -> Vec<(String, i64)> {
    rows.iter().map(|r| (r.job_id.clone(), r.seq)).collect()
}

fn run(job: &str, seq: i64) -> (String, i64) {
    (job.to_owned(), seq)
}

#[test]
fn a_run_reads_back_as_it_was_recorded() {
    for mut fresh in backends() {
        sync(&mut fresh, &[("a", &minutely("a"))], at(0));
        let seq = running(&mut fresh, "a", at(1_000));
        let end = RunEnd {
            status: RunStatus::Failed,
            attempts: 3,
            exit_code: Some(-2),
            signal: Some(9),
            error_code: Some("signalled".to_owned()),
            message: Some("killed".to_owned()),
            started_at: Some(at(1_500)),
            finished_at: at(2_000),
            duration_ms: 500,
        };
        fresh.store.finish_run("a", seq, &end).expect("finish");
        let name = fresh.name;
        let row = fresh.store.run_row("a", seq).expect("read").expect("there");
        assert_eq!(
            (row.job_id.as_str(), row.seq, row.trigger, row.status),
            ("a", 1, jobs::run::Trigger::Manual, RunStatus::Failed),
            "{name}"
        );
        assert_eq!(
            (row.attempts, row.exit_code, row.signal, row.slot_count),
            (3, Some(-2), Some(9), 1),
            "{name}"
        );
        assert_eq!(
            (row.claimed_at, row.started_at, row.finished_at),
            (at(1_000), Some(at(1_500)), Some(at(2_000))),
            "{name}"
        );
        assert_eq!(
            (row.error_code.as_deref(), row.message.as_deref()),
            (Some("signalled"), Some("killed")),
            "{name}"
        );
        assert_eq!(
            (row.owner.as_str(), row.run_dir.as_deref(), row.retry_owed),
            ("1@h", Some("runs/a/1"), false),
            "{name}"
        );
        assert!(fresh.store.run_exists("a", seq).expect("exists"), "{name}");
        assert!(
            !fresh.store.run_exists("a", seq + 1).expect("exists"),
            "{name}"
        );
        assert!(
            fresh.store.run_row("a", seq + 1).expect("read").is_none(),
            "{name}"
        );
    }
}

#[test]
fn history_filters_newest_first_and_counts_all_that_match() {
    for mut fresh in backends() {
        sync(
            &mut fresh,
            &[("a", &minutely("a")), ("b", &minutely("b"))],
            at(0),
        );
        ended(&mut fresh, "a", at(1_000), RunStatus::Succeeded); // a#1
        ended(&mut fresh, "b", at(2_000), RunStatus::Failed); // b#1
        ended(&mut fresh, "a", at(3_000), RunStatus::TimedOut); // a#2
        running(&mut fresh, "a", at(3_000)); // a#3, claimed at the same moment as a#2
        let name = fresh.name;
        let page = |filter: HistoryFilter| {
            let (rows, total) = fresh
                .store
                .history(&filter)
                .unwrap_or_else(|e| panic!("{name}: history: {e}"));
            (keys(&rows), total)
        };
        let all = HistoryFilter {
            limit: 10,
            ..HistoryFilter::default()
        };
        assert_eq!(
            page(all.clone()),
            (vec![run("a", 3), run("a", 2), run("b", 1), run("a", 1)], 4),
            "{name}: by claim time, then seq"
        );
        assert_eq!(
            page(HistoryFilter {
                limit: 2,
                ..all.clone()
            }),
            (vec![run("a", 3), run("a", 2)], 4),
            "{name}: the total counts past the page"
        );
        assert_eq!(
            page(HistoryFilter {
                limit: -1,
                ..all.clone()
            })
            .1,
            4,
            "{name}: a negative limit is none"
        );
        let of_a = HistoryFilter {
            job_id: Some("a".to_owned()),
            ..all.clone()
        };
        assert_eq!(
            page(of_a.clone()),
            (vec![run("a", 3), run("a", 2), run("a", 1)], 3),
            "{name}"
        );
        assert_eq!(
            page(HistoryFilter {
                before: Some(3),
                ..of_a.clone()
            }),
            (vec![run("a", 2), run("a", 1)], 2),
            "{name}: the next page"
        );
        assert_eq!(
            page(HistoryFilter {
                statuses: vec![RunStatus::Failed, RunStatus::TimedOut],
                ..all.clone()
            }),
            (vec![run("a", 2), run("b", 1)], 2),
            "{name}: any of the statuses"
        );
        assert_eq!(
            page(HistoryFilter {
                statuses: vec![RunStatus::Succeeded, RunStatus::Running],
                ..of_a
            }),
            (vec![run("a", 3), run("a", 1)], 2),
            "{name}"
        );
        assert_eq!(
            page(HistoryFilter {
                upstream: Some("a#1".to_owned()),
                ..all.clone()
            }),
            (vec![], 0),
            "{name}: no run here was triggered"
        );
        assert_eq!(
            page(HistoryFilter {
                since: Some(at(2_000)),
                ..all
            }),
            (vec![run("a", 3), run("a", 2), run("b", 1)], 3),
            "{name}: claimed since"
        );
        let failures = fresh.store.recent_failures(1).expect("failures");
        assert_eq!(keys(&failures), [run("a", 2)], "{name}");
        let failures = fresh.store.recent_failures(10).expect("failures");
        assert_eq!(keys(&failures), [run("a", 2), run("b", 1)], "{name}");
    }
}

#[test]
fn history_counts_up_to_the_cap_and_one_more() {
    for mut fresh in backends() {
        sync(&mut fresh, &[("a", &minutely("a"))], at(0));
        let records: Vec<TickRecord> = (1..=HISTORY_COUNT_CAP + 5)
            .map(|i| missed("a", i * 60_000, i * 60_000, 1))
            .collect();
        tick(fresh.store.as_mut(), &records, at(1_000));
        let (rows, total) = fresh
            .store
            .history(&HistoryFilter {
                limit: 3,
                ..HistoryFilter::default()
            })
            .expect("history");
        assert_eq!(rows.len(), 3, "{}", fresh.name);
        assert_eq!(
            total,
            HISTORY_COUNT_CAP + 1,
            "{}: more than the cap",
            fresh.name
        );
    }
}

#[test]
fn run_stats_count_a_jobs_runs_and_its_failures_since_the_last_success() {
    for mut fresh in backends() {
        sync(
            &mut fresh,
            &[("a", &minutely("a")), ("b", &minutely("b"))],
            at(0),
        );
        let name = fresh.name;
        let empty = fresh.store.run_stats("a").expect("stats");
        assert_eq!(
            empty,
            jobs::store::RunStats::default(),
            "{name}: no runs yet"
        );
        ended(&mut fresh, "a", at(1_000), RunStatus::Failed); // 1
        ended(&mut fresh, "a", at(2_000), RunStatus::Succeeded); // 2
        ended(&mut fresh, "a", at(3_000), RunStatus::TimedOut); // 3
        ended(&mut fresh, "a", at(4_000), RunStatus::Succeeded); // 4
        ended(&mut fresh, "a", at(5_000), RunStatus::Failed); // 5
        ended(&mut fresh, "a", at(6_000), RunStatus::Interrupted); // 6
        ended(&mut fresh, "a", at(7_000), RunStatus::Cancelled); // 7: no failure, no success
        tick(
            fresh.store.as_mut(),
            &[
                skipped("a", 60_000, 180_000, 3, "overlap"),
                missed("a", 240_000, 300_000, 2),
            ],
            at(8_000),
        ); // 8, 9
        ended(&mut fresh, "b", at(9_000), RunStatus::Failed);
        let stats = fresh.store.run_stats("a").expect("stats");
        let seq = |row: &Option<jobs::store::RunRow>| row.as_ref().map(|r| r.seq);
        assert_eq!(
            (
                seq(&stats.last_run),
                seq(&stats.last_success),
                seq(&stats.last_failure)
            ),
            (Some(7), Some(4), Some(6)),
            "{name}: skipped and missed slots are no runs"
        );
        assert_eq!(
            stats.failure_streak, 2,
            "{name}: failed and interrupted since #4"
        );
        assert_eq!(
            (stats.runs, stats.succeeded, stats.failed),
            (7, 2, 4),
            "{name}"
        );
        assert_eq!(
            (stats.skipped, stats.missed),
            (3, 2),
            "{name}: slots, not records"
        );
        let b = fresh.store.run_stats("b").expect("stats");
        assert_eq!(
            (b.failure_streak, b.runs, b.failed, seq(&b.last_success)),
            (1, 1, 1, None),
            "{name}: with no success, every failure is in the streak"
        );
    }
}

#[test]
fn in_flight_tallies_running_and_queued_runs_per_job() {
    for mut fresh in backends() {
        sync(
            &mut fresh,
            &[("a", &minutely("a")), ("b", &minutely("b"))],
            at(0),
        );
        running(&mut fresh, "a", at(1_000));
        running(&mut fresh, "a", at(2_000));
        let queued = claim(
            fresh.store.as_mut(),
            "a",
            "1@h",
            at(3_000),
            2,
            Overlap::Queue,
        );
        assert!(
            matches!(queued, Ok(jobs::store::Claimed::Queued(3))),
            "{}: {queued:?}",
            fresh.name
        );
        ended(&mut fresh, "b", at(500), RunStatus::Succeeded);
        let tallies = fresh.store.in_flight().expect("in flight");
        assert_eq!(tallies.len(), 1, "{}: {tallies:?}", fresh.name);
        assert_eq!(
            tallies.get("a"),
            Some(&jobs::policy::InFlight {
                running: 2,
                queued: 1
            }),
            "{}",
            fresh.name
        );
        let active = fresh.store.active_runs().expect("active");
        assert_eq!(
            keys(&active),
            [run("a", 1), run("a", 2), run("a", 3)],
            "{}: oldest claim first",
            fresh.name
        );
    }
}

#[test]
fn recent_outcomes_keep_each_jobs_latest_runs() {
    for mut fresh in backends() {
        sync(
            &mut fresh,
            &[("a", &minutely("a")), ("b", &minutely("b"))],
            at(0),
        );
        ended(&mut fresh, "a", at(1_000), RunStatus::Succeeded);
        ended(&mut fresh, "b", at(1_500), RunStatus::Failed);
        ended(&mut fresh, "a", at(2_000), RunStatus::Failed);
        ended(&mut fresh, "a", at(3_000), RunStatus::Cancelled);
        running(&mut fresh, "a", at(4_000));
        let strip = fresh.store.recent_outcomes(3).expect("outcomes");
        assert_eq!(
            strip,
            [
                ("a".to_owned(), 4, RunStatus::Running),
                ("a".to_owned(), 3, RunStatus::Cancelled),
                ("a".to_owned(), 2, RunStatus::Failed),
                ("b".to_owned(), 1, RunStatus::Failed),
            ],
            "{}",
            fresh.name
        );
        assert!(
            fresh.store.recent_outcomes(0).expect("none").is_empty(),
            "{}",
            fresh.name
        );
    }
}

#[test]
fn last_ends_say_when_each_job_last_succeeded_and_failed() {
    for mut fresh in backends() {
        sync(
            &mut fresh,
            &[
                ("a", &minutely("a")),
                ("b", &minutely("b")),
                ("c", &minutely("c")),
            ],
            at(0),
        );
        ended(&mut fresh, "a", at(1_000), RunStatus::Succeeded); // ends at 2s
        ended(&mut fresh, "a", at(10_000), RunStatus::Failed); // 11s
        ended(&mut fresh, "a", at(20_000), RunStatus::Cancelled); // 21s: a failure too
        ended(&mut fresh, "a", at(30_000), RunStatus::Succeeded); // 31s
        running(&mut fresh, "b", at(1_000));
        ended(&mut fresh, "c", at(5_000), RunStatus::Interrupted); // 6s
        tick(
            fresh.store.as_mut(),
            &[missed("c", 60_000, 60_000, 1)],
            at(40_000),
        );
        let mut ends = fresh.store.last_ends().expect("last ends");
        ends.sort_by(|x, y| x.job_id.cmp(&y.job_id));
        assert_eq!(
            ends,
            [
                LastEnds {
                    job_id: "a".to_owned(),
                    success: Some(at(31_000)),
                    failure: Some(at(21_000)),
                },
                LastEnds {
                    job_id: "c".to_owned(),
                    success: None,
                    failure: Some(at(6_000)),
                },
            ],
            "{}: runs in flight and missed slots are no ends",
            fresh.name
        );
    }
}

#[test]
fn retention_view_weighs_each_run_by_its_end_or_its_claim() {
    for mut fresh in backends() {
        sync(
            &mut fresh,
            &[("a", &minutely("a")), ("b", &minutely("b"))],
            at(0),
        );
        ended(&mut fresh, "a", at(1_000), RunStatus::Succeeded);
        running(&mut fresh, "a", at(5_000));
        let queued = claim(
            fresh.store.as_mut(),
            "a",
            "1@h",
            at(6_000),
            1,
            Overlap::Queue,
        );
        assert!(queued.is_ok(), "{}: {queued:?}", fresh.name);
        ended(&mut fresh, "b", at(1_000), RunStatus::Failed);
        let mut view = fresh.store.retention_view("a").expect("view");
        view.sort_by_key(|r| r.seq);
        assert_eq!(
            view,
            [
                RetainedRun {
                    seq: 1,
                    at: at(2_000),
                    in_flight: false
                },
                RetainedRun {
                    seq: 2,
                    at: at(5_000),
                    in_flight: true
                },
                RetainedRun {
                    seq: 3,
                    at: at(6_000),
                    in_flight: true
                },
            ],
            "{}",
            fresh.name
        );
        assert!(fresh.store.retention_view("none").expect("view").is_empty());
    }
}

#[test]
fn paused_skips_are_the_ranges_skipped_while_paused_since_a_moment() {
    for mut fresh in backends() {
        sync(
            &mut fresh,
            &[("a", &minutely("a")), ("b", &minutely("b"))],
            at(0),
        );
        let store = fresh.store.as_mut();
        tick(
            store,
            &[skipped("a", 60_000, 120_000, 2, "paused")],
            at(1_000),
        );
        tick(
            store,
            &[
                skipped("a", 180_000, 180_000, 1, "overlap"),
                missed("a", 240_000, 240_000, 1),
                skipped("b", 180_000, 180_000, 1, "paused"),
            ],
            at(2_000),
        );
        tick(
            store,
            &[skipped("a", 300_000, 420_000, 3, "paused")],
            at(3_000),
        );
        tick(
            store,
            &[skipped("a", 480_000, 480_000, 1, "paused")],
            at(4_000),
        );
        let name = fresh.name;
        assert_eq!(
            fresh.store.paused_skips("a", at(0)).expect("skips"),
            [
                (at(60_000), at(120_000)),
                (at(300_000), at(420_000)),
                (at(480_000), at(480_000)),
            ],
            "{name}: oldest first, only those skipped for the pause"
        );
        assert_eq!(
            fresh.store.paused_skips("a", at(3_000)).expect("skips"),
            [(at(300_000), at(420_000)), (at(480_000), at(480_000))],
            "{name}: recorded since, inclusive"
        );
        assert!(
            fresh
                .store
                .paused_skips("a", at(4_001))
                .expect("skips")
                .is_empty()
        );
    }
}

#[test]
fn the_kept_config_is_the_last_version_kept_until_forgotten() {
    for mut fresh in backends() {
        let store = fresh.store.as_mut();
        let name = fresh.name;
        assert_eq!(store.kept_config().expect("read"), None, "{name}");
        let first = KeptConfig {
            hash: "h1".to_owned(),
            source: "retention: {keep: 5}\n".to_owned(),
        };
        store.keep_config(Some(&first), at(1_000)).expect("keep");
        assert_eq!(
            store.kept_config().expect("read"),
            Some(first.clone()),
            "{name}"
        );
        store.keep_config(Some(&first), at(2_000)).expect("again");
        assert_eq!(store.kept_config().expect("read"), Some(first), "{name}");
        let second = KeptConfig {
            hash: "h2".to_owned(),
            source: "retention: {keep: 9}\n".to_owned(),
        };
        store.keep_config(Some(&second), at(3_000)).expect("keep");
        assert_eq!(store.kept_config().expect("read"), Some(second), "{name}");
        store.keep_config(None, at(4_000)).expect("forget");
        assert_eq!(
            store.kept_config().expect("read"),
            None,
            "{name}: forgotten"
        );
        store.keep_config(None, at(5_000)).expect("forget again");
    }
}

#[test]
fn the_upstream_filter_finds_a_whole_run_name_and_no_pattern() {
    for mut fresh in backends() {
        sync(&mut fresh, &[("down", &minutely("down"))], at(0));
        crate::support::raw_sql(
            &fresh,
            "INSERT INTO runs (job_id, seq, trigger, claimed_at, status, owner, upstream)
             VALUES ('down', 1, 'after', 0, 'succeeded', '1@h', 'eu#3,a_b#1')",
        );
        let name = fresh.name;
        let found = |upstream: &str| {
            let filter = HistoryFilter {
                job_id: None,
                statuses: Vec::new(),
                since: None,
                before: None,
                upstream: Some(upstream.to_owned()),
                limit: 10,
            };
            let (runs, total) = fresh
                .store
                .history(&filter)
                .unwrap_or_else(|e| panic!("{name}: history: {e}"));
            (runs.len(), total)
        };
        assert_eq!(found("a_b#1"), (1, 1), "{name}");
        assert_eq!(found("eu#3"), (1, 1), "{name}");
        // `_` is a character of the id, not a wildcard; and part of a name is no name.
        assert_eq!(found("axb#1"), (0, 0), "{name}");
        assert_eq!(found("A_B#1"), (0, 0), "{name}");
        assert_eq!(found("b#1"), (0, 0), "{name}");
    }
}
