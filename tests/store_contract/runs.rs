//! The runs part of the store's contract: claims under `max_instances` and shared limits, a tick's
//! records, queued starts, ends, runs whose owner died, and deletes.

use chrono::{DateTime, Utc};
use jobs::artifacts::RunDir;
use jobs::run::{RunEnd, RunStatus, Trigger};
use jobs::spec::model::Overlap;
use jobs::store::{
    AttemptProcess, ClaimRequest, Claimed, IsAlive, OwedTrigger, Prepare, QueuedStart, RunRow,
    SharedLimits, StateChange, Store, TickRecord, TickResult,
};

use crate::support::{
    Fresh, at, backends, claim, minutely, raw_sql, slot_run, sync, with_database,
};

/// A `prepare` that makes nothing and stores `runs/<job>/<seq>`.
macro_rules! made {
    () => {
        &mut |job: &str, seq: i64| Ok(format!("runs/{job}/{seq}"))
    };
}

/// A `prepare` that makes the run's directory under `root` as a claim does (a directory there
/// already is a number taken), and stores `runs/<job>/<seq>`.
macro_rules! makes_dirs {
    ($root:expr) => {
        &mut |job: &str, seq: i64| {
            RunDir::create($root, job, seq).map(|_| format!("runs/{job}/{seq}"))
        }
    };
}

/// A claim with everything a test may vary: its limits, who is alive, and what `prepare` says.
struct Claim<'a> {
    job: &'a str,
    owner: &'a str,
    now: DateTime<Utc>,
    max_instances: u32,
    overlap: Overlap,
    shared: SharedLimits,
}

impl<'a> Claim<'a> {
    fn manual(job: &'a str, now: DateTime<Utc>) -> Self {
        Self {
            job,
            owner: "1@h",
            now,
            max_instances: 1,
            overlap: Overlap::Queue,
            shared: SharedLimits::default(),
        }
    }

    fn run(
        &self,
        store: &mut dyn Store,
        is_alive: IsAlive<'_>,
        prepare: Prepare<'_>,
    ) -> Result<Claimed, String> {
        store
            .claim(
                &ClaimRequest {
                    job_id: self.job,
                    trigger: Trigger::Manual,
                    slot: None,
                    due_at: None,
                    spec_hash: "h",
                    owner: self.owner,
                    now: self.now,
                    max_instances: self.max_instances,
                    overlap: self.overlap,
                    replay_of: None,
                    shared: self.shared.clone(),
                    no_trigger: true,
                },
                is_alive,
                prepare,
            )
            .map_err(|e| format!("{}: {e}", e.code()))
    }

    /// Claims with everyone alive and every directory made; panics on a refusal.
    fn granted(&self, fresh: &mut Fresh) -> Claimed {
        let name = fresh.name;
        self.run(fresh.store.as_mut(), &|_| true, made!())
            .unwrap_or_else(|e| panic!("{name}: claim {}: {e}", self.job))
    }
}

fn group(max: u32) -> SharedLimits {
    SharedLimits {
        group: Some(("db".into(), max)),
        home: None,
    }
}

/// A run of `b`'s `slot` in group `db` (of one place), with `overlap`.
fn in_group(slot: DateTime<Utc>, overlap: Overlap) -> TickRecord {
    let mut record = slot_run("b", slot);
    if let TickRecord::Run {
        shared,
        overlap: wanted,
        ..
    } = &mut record
    {
        *shared = group(1);
        *wanted = overlap;
    }
    record
}

/// A manual claim of `job` at `ms` in group `db` (of one place), waiting when it is full.
fn grouped(job: &str, ms: i64) -> Claim<'_> {
    let mut claim = Claim::manual(job, at(ms));
    claim.shared = group(1);
    claim
}

fn retry_run(job: &str, of: i64) -> TickRecord {
    TickRecord::Run {
        job_id: job.into(),
        trigger: Trigger::Schedule,
        slot: None,
        due_at: None,
        first_slot: None,
        last_slot: None,
        count: 1,
        spec_hash: "h".into(),
        queued: false,
        retry_of: Some(of),
        max_instances: 1,
        shared: SharedLimits::default(),
        overlap: Overlap::Skip,
        upstream: None,
    }
}

/// Commits a tick of `records` (no pending slots, no catch-ups) at `now`, every directory made.
fn tick(fresh: &mut Fresh, records: &[TickRecord], now: DateTime<Utc>) -> Vec<TickResult> {
    let name = fresh.name;
    fresh
        .store
        .commit_tick(records, &[], &[], "1@h", now, made!())
        .unwrap_or_else(|e| panic!("{name}: commit a tick: {e}"))
}

fn recorded(result: &TickResult) -> Option<(i64, bool)> {
    match result {
        TickResult::Recorded { seq, queued, .. } => Some((*seq, *queued)),
        _ => None,
    }
}

fn end(status: RunStatus, ms: i64) -> RunEnd {
    RunEnd {
        status,
        attempts: 1,
        exit_code: Some(i32::from(status != RunStatus::Succeeded)),
        signal: None,
        error_code: None,
        message: None,
        started_at: None,
        finished_at: at(ms),
        duration_ms: 0,
    }
}

fn finish(fresh: &mut Fresh, job: &str, seq: i64, ms: i64) {
    let name = fresh.name;
    fresh
        .store
        .finish_run(job, seq, &end(RunStatus::Succeeded, ms))
        .unwrap_or_else(|e| panic!("{name}: finish {job}#{seq}: {e}"));
}

fn run(fresh: &Fresh, job: &str, seq: i64) -> RunRow {
    fresh
        .store
        .run_row(job, seq)
        .unwrap_or_else(|e| panic!("{}: read {job}#{seq}: {e}", fresh.name))
        .unwrap_or_else(|| panic!("{}: no run {job}#{seq}", fresh.name))
}

fn start(fresh: &mut Fresh, job: &str, seq: i64, shared: &SharedLimits) -> QueuedStart {
    let name = fresh.name;
    fresh
        .store
        .start_queued(job, seq, 1, shared, &|_| true, at(90_000))
        .unwrap_or_else(|e| panic!("{name}: start {job}#{seq}: {e}"))
}

#[test]
fn a_manual_claim_counts_against_max_instances_and_numbers_runs_from_one() {
    for mut fresh in backends() {
        sync(&mut fresh, &[("a", &minutely("a"))], at(0));
        let store = fresh.store.as_mut();
        let first = claim(store, "a", "1@h", at(1_000), 1, Overlap::Skip);
        assert!(
            matches!(first, Ok(Claimed::Running(1))),
            "{}: {first:?}",
            fresh.name
        );
        let second = claim(store, "a", "1@h", at(2_000), 1, Overlap::Skip);
        assert!(
            second
                .as_ref()
                .is_err_and(|e| e.starts_with("max_instances_reached")),
            "{}: {second:?}",
            fresh.name
        );
        let queued = claim(store, "a", "1@h", at(3_000), 1, Overlap::Queue);
        assert!(
            matches!(queued, Ok(Claimed::Queued(2))),
            "{}: {queued:?}",
            fresh.name
        );
    }
}

#[test]
fn a_claim_refuses_replace_like_skip_settles_dead_runs_first_and_queues_one_run_at_most() {
    for mut fresh in backends() {
        let name = fresh.name;
        sync(&mut fresh, &[("a", &minutely("a"))], at(0));
        let store = fresh.store.as_mut();
        assert_eq!(
            claim(store, "a", "1@h", at(1_000), 2, Overlap::Skip),
            Ok(Claimed::Running(1)),
            "{name}"
        );
        assert_eq!(
            claim(store, "a", "1@h", at(1_500), 2, Overlap::Skip),
            Ok(Claimed::Running(2)),
            "{name}: a second instance is free"
        );
        // Replacing a run is the scheduler's doing: the store refuses a full job as for skip.
        let replace = claim(store, "a", "1@h", at(2_000), 2, Overlap::Replace);
        assert!(
            replace
                .as_ref()
                .is_err_and(|e| e.starts_with("max_instances_reached")),
            "{name}: {replace:?}"
        );
        // The owner of #1 is gone: the claim settles it first, and finds a place free.
        let mut settling = Claim::manual("a", at(3_000));
        settling.max_instances = 2;
        settling.overlap = Overlap::Skip;
        let settled = settling.run(fresh.store.as_mut(), &|run| run.seq != 1, made!());
        assert_eq!(settled, Ok(Claimed::Running(3)), "{name}");
        assert_eq!(run(&fresh, "a", 1).status, RunStatus::Interrupted, "{name}");
        let store = fresh.store.as_mut();
        assert_eq!(
            claim(store, "a", "1@h", at(4_000), 2, Overlap::Queue),
            Ok(Claimed::Queued(4)),
            "{name}"
        );
        let again = claim(store, "a", "1@h", at(5_000), 2, Overlap::Queue);
        assert!(
            again
                .as_ref()
                .is_err_and(|e| e.starts_with("max_instances_reached")),
            "{name}: one run waits at most: {again:?}"
        );
    }
}

#[test]
fn a_run_number_is_never_reused_and_a_prepare_that_fails_otherwise_records_nothing_or_a_failed_run()
{
    for mut fresh in backends() {
        let name = fresh.name;
        sync(
            &mut fresh,
            &[
                ("a", &minutely("a")),
                ("b", &minutely("b")),
                ("c", &minutely("c")),
            ],
            at(0),
        );
        let root = fresh.dir.path().join("runs");
        let mkdir = |path: std::path::PathBuf| {
            std::fs::create_dir_all(&path)
                .unwrap_or_else(|e| panic!("{name}: mkdir {}: {e}", path.display()))
        };
        // Directories of numbers 1 and 2 left by an older store: both are stepped over.
        mkdir(root.join("a/1"));
        mkdir(root.join("a/2"));
        let mut asked = Vec::new();
        let claimed =
            Claim::manual("a", at(1_000)).run(fresh.store.as_mut(), &|_| true, &mut |job, seq| {
                asked.push(seq);
                RunDir::create(&root, job, seq).map(|_| format!("runs/{job}/{seq}"))
            });
        assert_eq!(claimed, Ok(Claimed::Running(3)), "{name}");
        assert_eq!(asked, [1, 2, 3], "{name}");
        assert_eq!(
            run(&fresh, "a", 3).run_dir.as_deref(),
            Some("runs/a/3"),
            "{name}"
        );
        assert!(
            fresh
                .store
                .run_row("a", 1)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .is_none(),
            "{name}: a stepped-over number has no record"
        );

        // Any other error is the claim's, and nothing is recorded: b's first number is still 1.
        let blocked = root.join("b");
        std::fs::write(&blocked, "").unwrap_or_else(|e| panic!("{name}: {e}"));
        let failed =
            Claim::manual("b", at(2_000)).run(fresh.store.as_mut(), &|_| true, makes_dirs!(&root));
        assert!(
            failed
                .as_ref()
                .is_err_and(|e| e.starts_with("artifact_write_failed")),
            "{name}: {failed:?}"
        );
        std::fs::remove_file(&blocked).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again =
            Claim::manual("b", at(3_000)).run(fresh.store.as_mut(), &|_| true, makes_dirs!(&root));
        assert_eq!(again, Ok(Claimed::Running(1)), "{name}");

        // A tick steps over a taken directory the same way; a run whose directory cannot be made
        // is recorded failed, and the tick's other records land.
        finish(&mut fresh, "a", 3, 4_000);
        mkdir(root.join("a/4"));
        std::fs::write(root.join("c"), "").unwrap_or_else(|e| panic!("{name}: {e}"));
        let results = fresh
            .store
            .commit_tick(
                &[slot_run("c", at(60_000)), slot_run("a", at(60_000))],
                &[],
                &[],
                "1@h",
                at(59_000),
                makes_dirs!(&root),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            matches!(&results[0], TickResult::Failed { seq: 1, error } if error.code() == "artifact_write_failed"),
            "{name}: {results:?}"
        );
        assert_eq!(
            recorded(&results[1]),
            Some((5, false)),
            "{name}: {results:?}"
        );
        let c = run(&fresh, "c", 1);
        assert_eq!(
            (c.status, c.error_code.as_deref(), c.finished_at),
            (
                RunStatus::Failed,
                Some("artifact_write_failed"),
                Some(at(59_000))
            ),
            "{name}"
        );
        let mut counters = fresh
            .store
            .run_counters()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        counters.sort();
        assert_eq!(
            counters,
            [
                ("a".to_owned(), 5),
                ("b".to_owned(), 1),
                ("c".to_owned(), 1)
            ],
            "{name}"
        );
    }
}

#[test]
fn a_tick_writes_each_slot_once_and_a_slot_claimed_before_never_stops_the_other_records() {
    for mut fresh in backends() {
        let name = fresh.name;
        sync(
            &mut fresh,
            &[("a", &minutely("a")), ("b", &minutely("b"))],
            at(0),
        );
        let first = tick(
            &mut fresh,
            &[slot_run("a", at(60_000)), slot_run("b", at(60_000))],
            at(59_000),
        );
        assert_eq!(
            first.iter().map(recorded).collect::<Vec<_>>(),
            [Some((1, false)), Some((1, false))],
            "{name}: {first:?}"
        );
        finish(&mut fresh, "a", 1, 61_000);
        // Another scheduler's tick of the same slot, a skip and a miss of slots recorded already,
        // and records that are new: only the new ones land.
        let second = tick(
            &mut fresh,
            &[
                slot_run("a", at(60_000)),
                TickRecord::Skipped {
                    job_id: "b".into(),
                    first_slot: at(60_000),
                    last_slot: at(60_000),
                    count: 1,
                    reason: "overlap".into(),
                },
                slot_run("a", at(120_000)),
                TickRecord::Missed {
                    job_id: "a".into(),
                    first_slot: at(120_000),
                    last_slot: at(120_000),
                    count: 1,
                    message: "missed".into(),
                },
                TickRecord::Missed {
                    job_id: "b".into(),
                    first_slot: at(120_000),
                    last_slot: at(180_000),
                    count: 2,
                    message: "missed".into(),
                },
            ],
            at(119_000),
        );
        assert!(
            matches!(second[0], TickResult::AlreadyClaimed),
            "{name}: {second:?}"
        );
        assert!(
            matches!(second[1], TickResult::AlreadyClaimed),
            "{name}: {second:?}"
        );
        assert!(
            matches!(second[3], TickResult::AlreadyClaimed),
            "{name}: {second:?}"
        );
        assert!(
            recorded(&second[2]).is_some() && recorded(&second[4]).is_some(),
            "{name}: {second:?}"
        );
        let a = recorded(&second[2]).map(|(seq, _)| seq);
        let missed = recorded(&second[4]).map(|(seq, _)| seq);
        let a = run(&fresh, "a", a.unwrap_or_default());
        assert_eq!(
            (a.status, a.slot),
            (RunStatus::Running, Some(at(120_000))),
            "{name}"
        );
        let missed = run(&fresh, "b", missed.unwrap_or_default());
        assert_eq!(
            (missed.status, missed.slot, missed.slot_count),
            (RunStatus::Missed, Some(at(180_000)), 2),
            "{name}"
        );
        // The job's own limit is counted again in the tick: a manual run took the instance.
        finish(&mut fresh, "b", 1, 121_000);
        assert_eq!(
            Claim::manual("b", at(200_000)).granted(&mut fresh),
            Claimed::Running(4),
            "{name}: b's numbers 2 (its skip claimed before) and 3 (its miss) are spent"
        );
        let third = tick(&mut fresh, &[slot_run("b", at(240_000))], at(239_000));
        assert_eq!(
            third.iter().map(recorded).collect::<Vec<_>>(),
            [Some((5, true))],
            "{name}: full, the run waits"
        );
    }
}

#[test]
fn a_tick_sets_pending_slots_and_clears_catchups_done_in_the_same_commit() {
    for mut fresh in backends() {
        let name = fresh.name;
        sync(&mut fresh, &[("a", &minutely("a"))], at(0));
        fresh
            .store
            .commit_tick(
                &[slot_run("a", at(60_000))],
                &[("a".into(), Some(at(120_000)))],
                &["a".into()],
                "1@h",
                at(59_000),
                made!(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let row = fresh
            .store
            .job_row("a")
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|| panic!("{name}: no job a"));
        assert_eq!(row.next_slot, Some(at(120_000)), "{name}");
        assert_eq!(
            run(&fresh, "a", 1).run_dir.as_deref(),
            Some("runs/a/1"),
            "{name}"
        );
    }
}

const RETRIES_INTERRUPTIONS: &str = "id: r\nschedule: {every: 1m}\nrun:\n  command: [\"true\"]\nretry:\n  max_attempts: 2\n  retry_on: [interrupted]\n";

#[test]
fn a_run_whose_owner_died_owes_one_retry_and_the_retry_is_taken_once() {
    for mut fresh in backends() {
        let name = fresh.name;
        sync(
            &mut fresh,
            &[("r", RETRIES_INTERRUPTIONS), ("a", &minutely("a"))],
            at(0),
        );
        assert_eq!(
            Claim::manual("r", at(1_000)).granted(&mut fresh),
            Claimed::Running(1),
            "{name}"
        );
        assert_eq!(
            Claim::manual("a", at(1_000)).granted(&mut fresh),
            Claimed::Running(1),
            "{name}"
        );
        let mut reaped = fresh
            .store
            .reap_dead_runs(None, &|_| false, at(2_000))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        reaped.sort();
        assert_eq!(reaped, [("a".to_owned(), 1), ("r".to_owned(), 1)], "{name}");
        let owed = fresh
            .store
            .owed_retries()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            owed.iter()
                .map(|r| (r.job_id.as_str(), r.seq, r.status))
                .collect::<Vec<_>>(),
            [("r", 1, RunStatus::Interrupted)],
            "{name}: a job that does not retry interruptions owes nothing"
        );
        let first = tick(&mut fresh, &[retry_run("r", 1)], at(3_000));
        assert_eq!(
            first.iter().map(recorded).collect::<Vec<_>>(),
            [Some((2, false))],
            "{name}"
        );
        let second = tick(
            &mut fresh,
            &[retry_run("r", 1), retry_run("a", 1)],
            at(4_000),
        );
        assert!(
            second
                .iter()
                .all(|r| matches!(r, TickResult::AlreadyClaimed)),
            "{name}: {second:?}"
        );
        assert!(
            fresh
                .store
                .owed_retries()
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .is_empty(),
            "{name}"
        );
        // A retry is not retried: its orphaned end owes nothing, nor does an end that is no
        // interruption; an orphan of a plain run settled by its end owes one, as a reaped one does.
        let orphaned = |fresh: &mut Fresh, seq, status, ms| {
            let name = fresh.name;
            fresh
                .store
                .finish_orphaned("r", seq, &end(status, ms))
                .unwrap_or_else(|e| panic!("{name}: settle r#{seq}: {e}"));
        };
        orphaned(&mut fresh, 2, RunStatus::Interrupted, 5_000);
        assert_eq!(
            Claim::manual("r", at(6_000)).granted(&mut fresh),
            Claimed::Running(3),
            "{name}"
        );
        orphaned(&mut fresh, 3, RunStatus::Failed, 7_000);
        assert_eq!(
            Claim::manual("r", at(8_000)).granted(&mut fresh),
            Claimed::Running(4),
            "{name}"
        );
        orphaned(&mut fresh, 4, RunStatus::Interrupted, 9_000);
        let owed = fresh
            .store
            .owed_retries()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            owed.iter()
                .map(|r| (r.job_id.as_str(), r.seq))
                .collect::<Vec<_>>(),
            [("r", 4)],
            "{name}"
        );
    }
}

#[test]
fn queued_runs_start_oldest_first_within_a_job() {
    for mut fresh in backends() {
        let name = fresh.name;
        sync(&mut fresh, &[("a", &minutely("a"))], at(0));
        assert_eq!(
            Claim::manual("a", at(1_000)).granted(&mut fresh),
            Claimed::Running(1),
            "{name}"
        );
        let queued = tick(
            &mut fresh,
            &[slot_run("a", at(60_000)), slot_run("a", at(120_000))],
            at(59_000),
        );
        assert_eq!(
            queued.iter().map(recorded).collect::<Vec<_>>(),
            [Some((2, true)), Some((3, true))],
            "{name}"
        );
        let none = SharedLimits::default();
        assert_eq!(
            start(&mut fresh, "a", 2, &none),
            QueuedStart::Waiting,
            "{name}: #1 runs"
        );
        finish(&mut fresh, "a", 1, 80_000);
        assert_eq!(
            start(&mut fresh, "a", 3, &none),
            QueuedStart::Waiting,
            "{name}: #2 first"
        );
        assert_eq!(
            start(&mut fresh, "a", 2, &none),
            QueuedStart::Started,
            "{name}"
        );
        assert_eq!(
            start(&mut fresh, "a", 3, &none),
            QueuedStart::Waiting,
            "{name}: #2 runs"
        );
        assert_eq!(run(&fresh, "a", 2).status, RunStatus::Running, "{name}");
        // A job disabled meanwhile drops its queued run rather than start it.
        finish(&mut fresh, "a", 2, 85_000);
        fresh
            .store
            .change_state("a", StateChange::Disable, "me@h", None, at(86_000))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            start(&mut fresh, "a", 3, &none),
            QueuedStart::Dropped { reason: "disabled" },
            "{name}"
        );
    }
}

#[test]
fn a_freed_group_place_goes_to_the_run_queued_first_whichever_asks_first() {
    for mut fresh in backends() {
        let name = fresh.name;
        sync(
            &mut fresh,
            &[
                ("a", &minutely("a")),
                ("b", &minutely("b")),
                ("c", &minutely("c")),
            ],
            at(0),
        );
        assert_eq!(
            grouped("a", 0).granted(&mut fresh),
            Claimed::Running(1),
            "{name}"
        );
        assert_eq!(
            grouped("b", 10).granted(&mut fresh),
            Claimed::Queued(1),
            "{name}"
        );
        assert_eq!(
            grouped("c", 20).granted(&mut fresh),
            Claimed::Queued(1),
            "{name}"
        );
        assert_eq!(
            start(&mut fresh, "c", 1, &group(1)),
            QueuedStart::Waiting,
            "{name}"
        );
        finish(&mut fresh, "a", 1, 30);
        // c asks first once the place is free, but b was queued before it.
        assert_eq!(
            start(&mut fresh, "c", 1, &group(1)),
            QueuedStart::Waiting,
            "{name}"
        );
        assert_eq!(
            start(&mut fresh, "b", 1, &group(1)),
            QueuedStart::Started,
            "{name}"
        );
        assert_eq!(
            start(&mut fresh, "c", 1, &group(1)),
            QueuedStart::Waiting,
            "{name}"
        );
        // b's owner dies: c, asking, settles it (the group's runs, not only c's) and starts.
        let reaped = fresh
            .store
            .start_queued("c", 1, 1, &group(1), &|run| run.job_id != "b", at(95_000))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reaped, QueuedStart::Started, "{name}");
        assert_eq!(run(&fresh, "b", 1).status, RunStatus::Interrupted, "{name}");
    }
}

#[test]
fn a_full_group_refuses_a_claim_that_will_not_wait_and_skips_a_slot_that_will_not() {
    for mut fresh in backends() {
        let name = fresh.name;
        sync(
            &mut fresh,
            &[("a", &minutely("a")), ("b", &minutely("b"))],
            at(0),
        );
        let mut first = Claim::manual("a", at(1_000));
        first.shared = group(1);
        assert_eq!(first.granted(&mut fresh), Claimed::Running(1), "{name}");
        let mut refused = Claim::manual("b", at(2_000));
        refused.shared = group(1);
        refused.overlap = Overlap::Skip;
        let got = refused.run(fresh.store.as_mut(), &|_| true, made!());
        assert!(
            got.as_ref().is_err_and(|e| e.starts_with("group_full")),
            "{name}: {got:?}"
        );
        let mut home = Claim::manual("b", at(2_500));
        home.shared = SharedLimits {
            group: None,
            home: Some(1),
        };
        home.overlap = Overlap::Skip;
        let got = home.run(fresh.store.as_mut(), &|_| true, made!());
        assert!(
            got.as_ref().is_err_and(|e| e.starts_with("group_full")),
            "{name}: the home's limit too: {got:?}"
        );
        let results = tick(
            &mut fresh,
            &[
                in_group(at(60_000), Overlap::Skip),
                in_group(at(120_000), Overlap::Queue),
            ],
            at(59_000),
        );
        assert!(
            matches!(
                results[0],
                TickResult::Refused {
                    seq: 1,
                    reason: "group"
                }
            ),
            "{name}: {results:?}"
        );
        assert_eq!(
            recorded(&results[1]),
            Some((2, true)),
            "{name}: {results:?}"
        );
        let skipped = run(&fresh, "b", 1);
        assert_eq!(
            (skipped.status, skipped.error_code.as_deref(), skipped.slot),
            (RunStatus::Skipped, Some("skipped_group"), Some(at(60_000))),
            "{name}"
        );
        // The skipped slot is recorded: a second tick of it is no second record.
        let again = tick(
            &mut fresh,
            &[in_group(at(60_000), Overlap::Skip)],
            at(61_000),
        );
        assert!(
            matches!(again[0], TickResult::AlreadyClaimed),
            "{name}: {again:?}"
        );
    }
}

#[test]
fn a_run_ends_once_written_twice_and_its_first_start_is_kept() {
    for mut fresh in backends() {
        let name = fresh.name;
        sync(&mut fresh, &[("a", &minutely("a"))], at(0));
        // Claimed by this process, the run records this process's identity (when it can be read),
        // which stands in here for the leader of the run's process group.
        let mut ours = Claim::manual("a", at(1_000));
        let owner = format!("{}@h", std::process::id());
        ours.owner = &owner;
        assert_eq!(ours.granted(&mut fresh), Claimed::Running(1), "{name}");
        let leader = run(&fresh, "a", 1).owner_identity();
        let starts = [("a".to_owned(), 1, at(1_100))];
        let later = [("a".to_owned(), 1, at(1_900))];
        for written in [&starts, &later] {
            fresh
                .store
                .record_starts(written)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        if let Some(leader) = leader {
            let pid = leader.pid;
            let start = leader.start;
            fresh
                .store
                .record_processes(&[AttemptProcess {
                    job_id: "a".into(),
                    seq: 1,
                    leader,
                    kill_grace: std::time::Duration::from_millis(1_500),
                }])
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let running = run(&fresh, "a", 1);
            assert_eq!(
                (running.pgid, running.leader_start, running.kill_grace),
                (
                    Some(pid),
                    Some(start),
                    Some(std::time::Duration::from_millis(1_500))
                ),
                "{name}"
            );
        }
        assert_eq!(run(&fresh, "a", 1).started_at, Some(at(1_100)), "{name}");
        let failed = end(RunStatus::Failed, 3_000);
        for _ in 0..2 {
            fresh
                .store
                .finish_run("a", 1, &failed)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let ended = run(&fresh, "a", 1);
        assert_eq!(
            (
                ended.status,
                ended.finished_at,
                ended.exit_code,
                ended.started_at
            ),
            (RunStatus::Failed, Some(at(3_000)), Some(1), Some(at(1_100))),
            "{name}"
        );
        assert!(!ended.retry_owed, "{name}");
    }
}

#[test]
fn a_reap_settles_only_the_runs_whose_owner_is_gone() {
    for mut fresh in backends() {
        let name = fresh.name;
        sync(
            &mut fresh,
            &[("a", &minutely("a")), ("b", &minutely("b"))],
            at(0),
        );
        let nothing = fresh
            .store
            .reap_dead_runs(None, &|_| false, at(500))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(nothing.is_empty(), "{name}: nothing in flight");
        assert_eq!(
            Claim::manual("a", at(1_000)).granted(&mut fresh),
            Claimed::Running(1),
            "{name}"
        );
        let mut b = Claim::manual("b", at(1_000));
        b.owner = "2@h";
        assert_eq!(b.granted(&mut fresh), Claimed::Running(1), "{name}");
        let alive = |run: &RunRow| run.owner == "1@h";
        let only_a = fresh
            .store
            .reap_dead_runs(Some("a"), &alive, at(2_000))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(only_a.is_empty(), "{name}: {only_a:?}");
        let reaped = fresh
            .store
            .reap_dead_runs(None, &alive, at(2_000))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reaped, [("b".to_owned(), 1)], "{name}");
        let b1 = run(&fresh, "b", 1);
        assert_eq!(
            (b1.status, b1.error_code.as_deref(), b1.finished_at),
            (RunStatus::Interrupted, Some("owner_gone"), Some(at(2_000))),
            "{name}"
        );
        assert_eq!(run(&fresh, "a", 1).status, RunStatus::Running, "{name}");
        let again = fresh
            .store
            .reap_dead_runs(None, &alive, at(3_000))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(again.is_empty(), "{name}: {again:?}");
    }
}

#[test]
fn an_unstarted_scheduled_claim_gives_its_slot_back_and_nothing_else_is_released() {
    for mut fresh in backends() {
        let name = fresh.name;
        sync(&mut fresh, &[("a", &minutely("a"))], at(0));
        fresh
            .store
            .commit_tick(
                &[slot_run("a", at(60_000))],
                &[("a".into(), Some(at(120_000)))],
                &[],
                "1@h",
                at(59_000),
                made!(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let released = fresh
            .store
            .release_unstarted("a", 1)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(released, "{name}");
        let row = fresh
            .store
            .job_row("a")
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|| panic!("{name}: no job a"));
        assert_eq!(row.next_slot, Some(at(60_000)), "{name}");
        assert!(
            fresh
                .store
                .run_row("a", 1)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .is_none(),
            "{name}"
        );
        // The slot is free again, under a new number.
        let again = tick(&mut fresh, &[slot_run("a", at(60_000))], at(61_000));
        assert_eq!(
            again.iter().map(recorded).collect::<Vec<_>>(),
            [Some((2, false))],
            "{name}"
        );
        finish(&mut fresh, "a", 2, 62_000);
        let manual = Claim::manual("a", at(63_000)).granted(&mut fresh);
        assert_eq!(manual, Claimed::Running(3), "{name}");
        for seq in [2, 3, 99] {
            let released = fresh
                .store
                .release_unstarted("a", seq)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!released, "{name}: #{seq} is no unstarted scheduled claim");
        }
    }
}

#[test]
fn a_delete_never_takes_a_run_in_flight() {
    for mut fresh in backends() {
        let name = fresh.name;
        sync(&mut fresh, &[("a", &minutely("a"))], at(0));
        assert_eq!(
            Claim::manual("a", at(1_000)).granted(&mut fresh),
            Claimed::Running(1),
            "{name}"
        );
        finish(&mut fresh, "a", 1, 2_000);
        assert_eq!(
            Claim::manual("a", at(3_000)).granted(&mut fresh),
            Claimed::Running(2),
            "{name}"
        );
        assert_eq!(
            Claim::manual("a", at(3_500)).granted(&mut fresh),
            Claimed::Queued(3),
            "{name}"
        );
        let deleted = fresh
            .store
            .delete_runs("a", &[1, 2, 3, 42])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(deleted, 1, "{name}");
        assert_eq!(run(&fresh, "a", 2).status, RunStatus::Running, "{name}");
        assert_eq!(run(&fresh, "a", 3).status, RunStatus::Queued, "{name}");
        finish(&mut fresh, "a", 2, 4_000);
        let deleted = fresh
            .store
            .delete_runs("a", &[1, 2])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(deleted, 1, "{name}: #1 went before");
    }
}

fn after(id: &str, upstream: &str) -> String {
    format!("id: {id}\nafter:\n  - job: {upstream}\nrun:\n  command: [\"true\"]\n")
}

/// The run a tick makes of a trigger owed.
fn triggered(owed: &OwedTrigger) -> TickRecord {
    TickRecord::Run {
        job_id: owed.job_id.clone(),
        trigger: Trigger::After,
        slot: None,
        due_at: None,
        first_slot: None,
        last_slot: None,
        count: 1,
        spec_hash: "h".into(),
        queued: false,
        retry_of: None,
        max_instances: 1,
        shared: SharedLimits::default(),
        overlap: Overlap::Skip,
        upstream: Some(owed.clone()),
    }
}

fn owed_triggers(fresh: &Fresh) -> Vec<OwedTrigger> {
    fresh
        .store
        .owed_triggers()
        .unwrap_or_else(|e| panic!("{}: {e}", fresh.name))
}

#[test]
fn an_upstream_end_owes_one_triggered_run_taken_once_and_a_paused_job_records_it_skipped() {
    for mut fresh in backends() {
        let name = fresh.name;
        sync(
            &mut fresh,
            &[("up", &minutely("up")), ("down", &after("down", "up"))],
            at(0),
        );
        let up = claim(
            fresh.store.as_mut(),
            "up",
            "1@h",
            at(1_000),
            1,
            Overlap::Skip,
        );
        assert_eq!(up, Ok(Claimed::Running(1)), "{name}");
        for _ in 0..2 {
            finish(&mut fresh, "up", 1, 2_000);
        }
        let owed = owed_triggers(&fresh);
        assert_eq!(
            owed.iter()
                .map(|o| (o.job_id.as_str(), o.upstream_job.as_str(), o.upstream_seq))
                .collect::<Vec<_>>(),
            [("down", "up", 1)],
            "{name}: one trigger, however often the end is written"
        );
        let first = tick(&mut fresh, &[triggered(&owed[0])], at(3_000));
        assert_eq!(recorded(&first[0]), Some((1, false)), "{name}: {first:?}");
        let down = run(&fresh, "down", 1);
        assert_eq!(
            (down.trigger, down.upstream.as_deref()),
            (Trigger::After, Some("up#1")),
            "{name}"
        );
        let again = tick(&mut fresh, &[triggered(&owed[0])], at(4_000));
        assert!(
            matches!(again[0], TickResult::AlreadyClaimed),
            "{name}: {again:?}"
        );
        assert!(owed_triggers(&fresh).is_empty(), "{name}");

        fresh
            .store
            .change_state("down", StateChange::Pause, "me@h", None, at(5_000))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let up = claim(
            fresh.store.as_mut(),
            "up",
            "1@h",
            at(6_000),
            1,
            Overlap::Skip,
        );
        assert_eq!(up, Ok(Claimed::Running(2)), "{name}");
        finish(&mut fresh, "up", 2, 7_000);
        let owed = owed_triggers(&fresh);
        assert_eq!(owed.len(), 1, "{name}: {owed:?}");
        let paused = tick(&mut fresh, &[triggered(&owed[0])], at(8_000));
        assert!(
            matches!(
                paused[0],
                TickResult::Refused {
                    seq: 3,
                    reason: "paused"
                }
            ),
            "{name}: {paused:?}"
        );
        // (#2 was spent by the tick that found the trigger taken.)
        let skipped = run(&fresh, "down", 3);
        assert_eq!(
            (skipped.status, skipped.error_code.as_deref()),
            (RunStatus::Skipped, Some("skipped_paused")),
            "{name}"
        );
        assert!(owed_triggers(&fresh).is_empty(), "{name}: the skip took it");
    }
}

/// A connection of its own to `fresh`'s store, as another process on the home (or another host)
/// has.
fn another_store(fresh: &Fresh) -> Box<dyn Store> {
    if fresh.name == "postgres" {
        let database = raw_sql(fresh, "SELECT current_database()")
            .first()
            .and_then(|row| row.first().cloned().flatten())
            .unwrap_or_else(|| panic!("postgres: no current database"));
        let admin = std::env::var("JOBS_TEST_PG_URL")
            .unwrap_or_else(|e| panic!("postgres: JOBS_TEST_PG_URL: {e}"));
        jobs::store::open_postgres(&with_database(&admin, &database), None)
            .unwrap_or_else(|e| panic!("postgres: open {database} again: {e}"))
    } else {
        jobs::store::open(&fresh.dir.path().join("jobs.sqlite3"))
            .unwrap_or_else(|e| panic!("sqlite: open again: {e}"))
    }
}

#[test]
fn claims_from_several_connections_at_once_keep_max_instances_and_never_share_a_number_or_a_slot() {
    const CLAIMERS: usize = 4;
    for mut fresh in backends() {
        let name = fresh.name;
        sync(&mut fresh, &[("a", &minutely("a"))], at(0));
        let start = std::sync::Arc::new(std::sync::Barrier::new(CLAIMERS));
        let claimers: Vec<_> = (0..CLAIMERS)
            .map(|i| {
                let mut store = another_store(&fresh);
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    let ms = 1_000 + i64::try_from(i).unwrap_or_default();
                    let claimed = claim(store.as_mut(), "a", "1@h", at(ms), 2, Overlap::Skip);
                    // Every claim is in before any tick: a run the tick queues would refuse them.
                    start.wait();
                    let ticked = store
                        .commit_tick(
                            &[slot_run("a", at(60_000))],
                            &[],
                            &[],
                            "1@h",
                            at(ms),
                            made!(),
                        )
                        .map(|results| results.iter().map(recorded).collect::<Vec<_>>())
                        .map_err(|e| e.to_string());
                    (claimed, ticked)
                })
            })
            .collect();
        let mut granted = Vec::new();
        let mut slot_runs = Vec::new();
        for claimer in claimers {
            let (claimed, ticked) = claimer
                .join()
                .unwrap_or_else(|_| panic!("{name}: a claimer panicked"));
            match claimed {
                Ok(Claimed::Running(seq)) => granted.push(seq),
                Ok(other) => panic!("{name}: {other:?}"),
                Err(e) => assert!(e.starts_with("max_instances_reached"), "{name}: {e}"),
            }
            let ticked = ticked.unwrap_or_else(|e| panic!("{name}: {e}"));
            slot_runs.extend(ticked.into_iter().flatten());
        }
        assert_eq!(granted.len(), 2, "{name}: {granted:?}");
        assert_eq!(
            slot_runs.len(),
            1,
            "{name}: the slot is recorded once: {slot_runs:?}"
        );
        let mut numbers: Vec<i64> = granted
            .iter()
            .copied()
            .chain(slot_runs.iter().map(|(seq, _)| *seq))
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), 3, "{name}: {granted:?} {slot_runs:?}");
        assert!(
            slot_runs.iter().all(|(_, queued)| *queued),
            "{name}: both instances were taken, so the slot's run waits: {slot_runs:?}"
        );
    }
}

#[test]
fn a_runs_start_and_end_are_owed_once_however_often_written_and_outlive_its_delete_while_owed() {
    for mut fresh in backends() {
        let name = fresh.name;
        let spec = "id: a\nrun:\n  command: [\"true\"]\nnotify:\n  - webhook: http://a.example/hook\n    on: [started, failed]\n";
        sync(&mut fresh, &[("a", spec)], at(0));
        assert_eq!(
            Claim::manual("a", at(1_000)).granted(&mut fresh),
            Claimed::Running(1),
            "{name}"
        );
        for ms in [1_100, 1_200] {
            fresh
                .store
                .record_starts(&[("a".into(), 1, at(ms))])
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for _ in 0..2 {
            fresh
                .store
                .finish_run("a", 1, &end(RunStatus::Failed, 2_000))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let events = |fresh: &Fresh| -> Vec<String> {
            fresh
                .store
                .notifications_of_run("a", 1)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .into_iter()
                .map(|n| n.event)
                .collect()
        };
        assert_eq!(events(&fresh), ["started", "failed"], "{name}");
        let deleted = fresh
            .store
            .delete_runs("a", &[1])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(deleted, 1, "{name}");
        assert_eq!(
            events(&fresh),
            ["started", "failed"],
            "{name}: still owed, they are delivered all the same"
        );
    }
}
