//! Hot paths of running a job, below the process level: one claim transaction (store only, and with the
//! run directory created and locked inside it, as the runner does), the finishing commit, and writing one
//! event line. Spec loading and next-slot computation are in `spec_load.rs`.
//!
//! The store is a real one on disk (WAL, synchronous=FULL), so the claim and finish figures include an
//! fsync each: they measure the machine's disk as much as the code.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};

use jobs::artifacts::{EventKind, EventLog, RunDir};
use jobs::catalog::Catalog;
use jobs::clock::{Clock, SystemClock};
use jobs::home::Home;
use jobs::run::{RunEnd, RunStatus, Trigger};
use jobs::spec::model::Overlap;
use jobs::store::{self, ClaimRequest, Store};

const JOB: &str = "bench";

/// A home with one job, `bench`, synced into its store.
fn home(dir: &Path) -> Home {
    let jobs = dir.join("jobs");
    std::fs::create_dir_all(&jobs).unwrap_or_else(|e| panic!("create {}: {e}", jobs.display()));
    std::fs::write(
        jobs.join(format!("{JOB}.yaml")),
        format!("id: {JOB}\nrun:\n  command: [\"true\"]\n"),
    )
    .unwrap_or_else(|e| panic!("write the spec: {e}"));
    let home = Home::new(dir);
    Catalog::open(&home, Utc::now()).unwrap_or_else(|e| panic!("open the catalog: {e}"));
    home
}

fn request(now: DateTime<Utc>) -> ClaimRequest<'static> {
    ClaimRequest {
        job_id: JOB,
        trigger: Trigger::Manual,
        slot: None,
        due_at: None,
        spec_hash: "bench",
        owner: "bench@host",
        now,
        max_instances: 1,
        overlap: Overlap::Skip,
        replay_of: None,
        shared: jobs::store::SharedLimits::default(),
        no_trigger: false,
    }
}

fn finish(store: &mut dyn Store, seq: i64) {
    let done = RunEnd {
        status: RunStatus::Succeeded,
        attempts: 1,
        exit_code: Some(0),
        signal: None,
        error_code: None,
        message: None,
        started_at: None,
        finished_at: Utc::now(),
        duration_ms: 0,
    };
    store
        .finish_run(JOB, seq, &done)
        .unwrap_or_else(|e| panic!("finish run {seq}: {e}"));
}

/// Times `iters` claims, each followed (untimed) by finishing the run so the next one finds a free
/// instance. `with_dir` creates and locks the run directory inside the transaction, as the runner does.
fn time_claims(store: &mut dyn Store, runs_root: &Path, iters: u64, with_dir: bool) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let (claimed, dir) = store
            .claim_with(
                &request(Utc::now()),
                |_| true,
                |seq| {
                    let dir = if with_dir {
                        Some(RunDir::create(runs_root, JOB, seq)?)
                    } else {
                        None
                    };
                    Ok((dir, format!("runs/{JOB}/{seq}")))
                },
            )
            .unwrap_or_else(|e| panic!("claim: {e}"));
        total += start.elapsed();
        drop(black_box(dir));
        finish(store, claimed.seq());
    }
    total
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let home = home(dir.path());
    let mut store = store::open(&home.db_path()).unwrap_or_else(|e| panic!("open the store: {e}"));
    let runs_root = home.runs_dir();

    let mut group = c.benchmark_group("store");
    group.sample_size(30);
    group.bench_function("claim one run (store only)", |b| {
        b.iter_custom(|iters| time_claims(&mut *store, &runs_root, iters, false))
    });
    group.bench_function("claim one run with its run directory", |b| {
        b.iter_custom(|iters| time_claims(&mut *store, &runs_root, iters, true))
    });
    group.bench_function("finish one run", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (claimed, ()) = store
                    .claim_with(
                        &request(Utc::now()),
                        |_| true,
                        |seq| Ok(((), format!("runs/{JOB}/{seq}"))),
                    )
                    .unwrap_or_else(|e| panic!("claim: {e}"));
                let start = Instant::now();
                finish(&mut *store, claimed.seq());
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let events = EventLog::create(&dir.path().join("events.jsonl"), JOB, 1, clock, None)
        .unwrap_or_else(|e| panic!("create the events file: {e}"));
    c.bench_function("write one event (attempt_started)", |b| {
        b.iter(|| {
            events.emit(EventKind::AttemptStarted {
                attempt: black_box(1),
                pid: Some(4242),
                pgid: Some(4242),
                leader_start: Some(123_456),
                boot_id: Some("5f3c1a52-0c2d-4b1e-9d8a-3f6f1c2b7e90".into()),
            })
        })
    });
    c.bench_function("write one event (output line of 80 bytes)", |b| {
        b.iter(|| {
            events.emit(EventKind::Output {
                attempt: 1,
                stream: jobs::artifacts::Stream::Stdout,
                line: black_box("x".repeat(80)),
                truncated: false,
            })
        })
    });
}

criterion_group!(hot_paths, benches);
criterion_main!(hot_paths);
