//! What `/metrics` says: the counters and histograms of what this process saw since it started (runs
//! that ended, slots skipped or missed, durations, lateness), and the gauges of the home as the store
//! has it now, written in Prometheus's classic text format (version 0.0.4, which `promtool` and every
//! Prometheus read). Counters live in memory, never in rows that `prune` deletes: a restart resets
//! them, which Prometheus's `rate()` expects. Must not read the store or the clock itself (the caller
//! passes the gauges and `now`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// The upper bounds of the run-duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

/// The upper bounds of the fire-lateness histogram, in seconds.
const LATENESS_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The counters of one process, shared by the loop that feeds them and the server that shows them.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    finished: BTreeMap<(String, &'static str), u64>,
    skipped: BTreeMap<(String, String), u64>,
    missed: BTreeMap<String, u64>,
    duration: BTreeMap<String, Histogram>,
    lateness: Histogram,
}

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Counts per bucket (not cumulative; summed when written).
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.buckets.len() != bounds.len() {
            self.buckets = vec![0; bounds.len()];
        }
        if let Some(index) = bounds.iter().position(|bound| value <= *bound) {
            self.buckets[index] += 1;
        }
        self.count += 1;
        self.sum += value;
    }
}

/// The home as the store has it at the scrape, one entry per job.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub jobs: Vec<JobGauges>,
    pub notifications_pending: u64,
    pub notifications_given_up: u64,
    /// Whether a scheduler owns the home (this process, or another one for `jobsctl serve`).
    pub scheduler_up: bool,
}

#[derive(Debug, Clone, Default)]
pub struct JobGauges {
    pub job_id: String,
    /// `active`, `paused`, `disabled`, `invalid` or `removed`.
    pub state: &'static str,
    pub runs_in_flight: u64,
    pub problems: u64,
    pub last_success: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
    pub next_slot: Option<DateTime<Utc>>,
}

/// A per-job gauge: its name, its help, and its value for a job (none: no sample).
type JobGauge = (&'static str, &'static str, fn(&JobGauges) -> Option<f64>);

/// Every state a job can be in, so that each job has a series for each (1 for its state, else 0)
/// and a change of state never leaves a stale series behind.
const STATES: [&str; 5] = ["active", "paused", "disabled", "invalid", "removed"];

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Counters) -> T) -> T {
        // A panic elsewhere while holding the lock leaves counts that are still counts.
        let mut counters = match self.inner.lock() {
            Ok(counters) => counters,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut counters)
    }

    /// A run ended with `status` after `duration_ms`; `lateness_ms` is how long after its slot its
    /// command started (a scheduled run that started).
    pub fn run_finished(
        &self,
        job_id: &str,
        status: &'static str,
        duration_ms: u64,
        lateness_ms: Option<i64>,
    ) {
        self.with(|c| {
            *c.finished.entry((job_id.to_owned(), status)).or_default() += 1;
            c.duration
                .entry(job_id.to_owned())
                .or_default()
                .observe(&DURATION_BUCKETS, millis_to_seconds(duration_ms));
            if let Some(late) = lateness_ms {
                let late = u64::try_from(late).unwrap_or(0);
                c.lateness
                    .observe(&LATENESS_BUCKETS, millis_to_seconds(late));
            }
        });
    }

    /// `count` slots of a job were recorded skipped for `reason`.
    pub fn slots_skipped(&self, job_id: &str, reason: &str, count: u64) {
        self.with(|c| {
            *c.skipped
                .entry((job_id.to_owned(), reason.to_owned()))
                .or_default() += count;
        });
    }

    /// `count` slots of a job were recorded missed.
    pub fn slots_missed(&self, job_id: &str, count: u64) {
        self.with(|c| *c.missed.entry(job_id.to_owned()).or_default() += count);
    }

    /// The whole exposition: the build, the gauges of `home`, then this process's counters.
    pub fn render(&self, home: &Gauges) -> String {
        let mut out = String::with_capacity(256 + home.jobs.len() * 600);
        family(
            &mut out,
            "jobs_build_info",
            "gauge",
            "The jobs build serving these metrics.",
        );
        sample(
            &mut out,
            "jobs_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        family(
            &mut out,
            "jobs_scheduler_up",
            "gauge",
            "Whether a scheduler owns the home (1) or not (0).",
        );
        sample(
            &mut out,
            "jobs_scheduler_up",
            &[],
            bool_value(home.scheduler_up),
        );
        self.render_jobs(&mut out, home);
        family(
            &mut out,
            "jobs_notifications_pending",
            "gauge",
            "Notifications in the outbox waiting to be delivered.",
        );
        sample(
            &mut out,
            "jobs_notifications_pending",
            &[],
            count_value(home.notifications_pending),
        );
        family(
            &mut out,
            "jobs_notifications_given_up",
            "gauge",
            "Notifications given up after their last try.",
        );
        sample(
            &mut out,
            "jobs_notifications_given_up",
            &[],
            count_value(home.notifications_given_up),
        );
        self.with(|c| render_counters(&mut out, c));
        out
    }

    fn render_jobs(&self, out: &mut String, home: &Gauges) {
        family(
            out,
            "jobs_job_state",
            "gauge",
            "1 for the state each job is in, 0 for the others.",
        );
        for job in &home.jobs {
            for state in STATES {
                sample(
                    out,
                    "jobs_job_state",
                    &[("job_id", &job.job_id), ("state", state)],
                    bool_value(job.state == state),
                );
            }
        }
        let gauges: [JobGauge; 5] = [
            (
                "jobs_runs_in_flight",
                "Runs of the job queued or running.",
                |j| Some(count_value(j.runs_in_flight)),
            ),
            (
                "jobs_spec_problems",
                "Problems of the job's spec file (0 when it is valid).",
                |j| Some(count_value(j.problems)),
            ),
            (
                "jobs_last_success_timestamp_seconds",
                "When the job's last successful run ended (Unix time).",
                |j| j.last_success.map(unix_seconds),
            ),
            (
                "jobs_last_failure_timestamp_seconds",
                "When the job's last run that did not succeed ended (Unix time).",
                |j| j.last_failure.map(unix_seconds),
            ),
            (
                "jobs_next_slot_timestamp_seconds",
                "The job's next scheduled slot (Unix time).",
                |j| j.next_slot.map(unix_seconds),
            ),
        ];
        for (name, help, value) in gauges {
            family(out, name, "gauge", help);
            for job in &home.jobs {
                if let Some(value) = value(job) {
                    sample(out, name, &[("job_id", &job.job_id)], value);
                }
            }
        }
    }
}

fn render_counters(out: &mut String, c: &Counters) {
    family(
        out,
        "jobs_runs_finished_total",
        "counter",
        "Runs that ended, by job and status, since this process started.",
    );
    for ((job, status), n) in &c.finished {
        sample(
            out,
            "jobs_runs_finished_total",
            &[("job_id", job), ("status", status)],
            count_value(*n),
        );
    }
    family(
        out,
        "jobs_slots_skipped_total",
        "counter",
        "Slots recorded skipped, by job and reason, since this process started.",
    );
    for ((job, reason), n) in &c.skipped {
        sample(
            out,
            "jobs_slots_skipped_total",
            &[("job_id", job), ("reason", reason)],
            count_value(*n),
        );
    }
    family(
        out,
        "jobs_slots_missed_total",
        "counter",
        "Slots recorded missed (past their misfire grace), by job, since this process started.",
    );
    for (job, n) in &c.missed {
        sample(
            out,
            "jobs_slots_missed_total",
            &[("job_id", job)],
            count_value(*n),
        );
    }
    family(
        out,
        "jobs_run_duration_seconds",
        "histogram",
        "How long runs took, by job, since this process started.",
    );
    for (job, histogram) in &c.duration {
        write_histogram(
            out,
            "jobs_run_duration_seconds",
            Some(job),
            &DURATION_BUCKETS,
            histogram,
        );
    }
    family(
        out,
        "jobs_fire_lateness_seconds",
        "histogram",
        "How long after its slot a scheduled run's command started, since this process started.",
    );
    write_histogram(
        out,
        "jobs_fire_lateness_seconds",
        None,
        &LATENESS_BUCKETS,
        &c.lateness,
    );
}

fn write_histogram(
    out: &mut String,
    name: &str,
    job: Option<&str>,
    bounds: &[f64],
    histogram: &Histogram,
) {
    let mut cumulative = 0;
    let bucket = format!("{name}_bucket");
    for (index, bound) in bounds.iter().enumerate() {
        cumulative += histogram.buckets.get(index).copied().unwrap_or(0);
        let le = format_value(*bound);
        let mut labels: Vec<(&str, &str)> = job.map(|j| ("job_id", j)).into_iter().collect();
        labels.push(("le", &le));
        sample(out, &bucket, &labels, count_value(cumulative));
    }
    let mut labels: Vec<(&str, &str)> = job.map(|j| ("job_id", j)).into_iter().collect();
    labels.push(("le", "+Inf"));
    sample(out, &bucket, &labels, count_value(histogram.count));
    let labels: Vec<(&str, &str)> = job.map(|j| ("job_id", j)).into_iter().collect();
    sample(out, &format!("{name}_sum"), &labels, histogram.sum);
    sample(
        out,
        &format!("{name}_count"),
        &labels,
        count_value(histogram.count),
    );
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (index, (key, value)) in labels.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push_str("=\"");
            escape_label(out, value);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(&format_value(value));
    out.push('\n');
}

/// A label value as the text format quotes it: backslash, double quote and newline escaped.
fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn format_value(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "counts and milliseconds stay far below 2^53, where f64 is exact"
)]
fn count_value(n: u64) -> f64 {
    n as f64
}

fn bool_value(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn millis_to_seconds(ms: u64) -> f64 {
    count_value(ms) / 1000.0
}

#[expect(
    clippy::cast_precision_loss,
    reason = "Unix milliseconds stay far below 2^53, where f64 is exact"
)]
fn unix_seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_and_escapes() {
        let metrics = Metrics::new();
        metrics.run_finished("backup", "failed", 1500, Some(20));
        metrics.run_finished("backup", "failed", 200, None);
        metrics.slots_skipped("backup", "overlap", 3);
        let home = Gauges {
            jobs: vec![JobGauges {
                job_id: "we\"ird\\job".into(),
                state: "paused",
                ..JobGauges::default()
            }],
            ..Gauges::default()
        };
        let text = metrics.render(&home);
        assert!(text.contains("jobs_runs_finished_total{job_id=\"backup\",status=\"failed\"} 2\n"));
        assert!(
            text.contains("jobs_slots_skipped_total{job_id=\"backup\",reason=\"overlap\"} 3\n")
        );
        assert!(text.contains("jobs_run_duration_seconds_bucket{job_id=\"backup\",le=\"1\"} 1\n"));
        assert!(text.contains("jobs_run_duration_seconds_bucket{job_id=\"backup\",le=\"5\"} 2\n"));
        assert!(text.contains("jobs_run_duration_seconds_sum{job_id=\"backup\"} 1.7\n"));
        assert!(text.contains("jobs_fire_lateness_seconds_bucket{le=\"0.025\"} 1\n"));
        assert!(text.contains("jobs_job_state{job_id=\"we\\\"ird\\\\job\",state=\"paused\"} 1\n"));
        assert!(text.contains("jobs_job_state{job_id=\"we\\\"ird\\\\job\",state=\"active\"} 0\n"));
        assert!(text.contains("jobs_build_info{version=\""));
    }
}
