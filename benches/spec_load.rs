//! Hot paths of spec handling: loading one spec, loading a directory of 10,000, and computing the next
//! slot of cron and interval schedules.

use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};

use jobs::schedule::Schedule;
use jobs::spec::{load_dir, load_source};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
        .map_or(DateTime::UNIX_EPOCH, |t| t.with_timezone(&Utc))
}

/// A realistic spec: a cron schedule in a DST zone, a command, a timeout, a policy and retries.
fn spec_text(id: &str, minute: usize) -> String {
    format!(
        "# yaml-language-server: $schema=../schemas/job.schema.json\n\
         id: {id}\n\
         description: Generated job number {minute}\n\
         schedule:\n  cron: \"{m} */2 * * *\"\n  timezone: Europe/Berlin\n  jitter: 30s\n\
         run:\n  command: [\"./scripts/task.sh\", \"--shard\", \"{minute}\"]\n  timeout: 10m\n  env:\n    SHARD: \"{minute}\"\n\
         policy:\n  max_instances: 1\n  overlap: skip\n  misfire_grace: 5m\n\
         retry:\n  max_attempts: 3\n  backoff: 10s\n",
        m = minute % 60
    )
}

fn benches(c: &mut Criterion) {
    let text = spec_text("job-00001", 1);
    c.bench_function("load one spec", |b| {
        b.iter(|| load_source(black_box(&text), "job-00001", now()))
    });

    let Ok(dir) = tempfile::tempdir() else { return };
    for i in 0..10_000 {
        let id = format!("job-{i:05}");
        if std::fs::write(dir.path().join(format!("{id}.yaml")), spec_text(&id, i)).is_err() {
            return;
        }
    }
    let mut group = c.benchmark_group("load directory");
    group.sample_size(10);
    group.bench_function("10,000 specs", |b| {
        b.iter(|| load_dir(black_box(dir.path()), now()))
    });
    group.finish();

    let Ok(loaded) = load_source(&text, "job-00001", now()) else {
        return;
    };
    let Some(cron) = loaded.schedule else { return };
    c.bench_function("next slot, cron in Europe/Berlin", |b| {
        b.iter(|| cron.next_after(black_box(now())))
    });
    let every = load_source(
        "id: e\nschedule:\n  every: 15m\nrun:\n  command: [x]\n",
        "e",
        now(),
    )
    .ok()
    .and_then(|l| l.schedule);
    if let Some(every @ Schedule::Every { .. }) = every {
        c.bench_function("next slot, every 15m", |b| {
            b.iter(|| every.next_after(black_box(now())))
        });
    }
}

criterion_group!(spec, benches);
criterion_main!(spec);
