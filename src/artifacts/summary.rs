//! `summary.md`: a short report of a run for people, rendered from its receipt, the last lines of its
//! output and where its output records were cut.

use std::fmt::Write;
use std::path::Path;

use super::events::Stream;
use super::receipt::Receipt;
use super::rundir::{SUMMARY_FILE, write_atomic};
use crate::error::Result;
use crate::spec::size::ByteSize;

/// How many output lines the summary quotes.
pub const TAIL_LINES: usize = 20;

/// What the summary says about a run's output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// The last lines, oldest first.
    pub tail: Vec<(Stream, String)>,
    /// Output events stopped at their cap, after this many lines.
    pub events_truncated_after: Option<u64>,
    /// The logs that reached their size limit, with it.
    pub capped_logs: Vec<(Stream, ByteSize)>,
}

pub fn render(receipt: &Receipt, output: &Output) -> String {
    let tail = &output.tail;
    let mut text = String::new();
    let _ = writeln!(text, "# {} — {}\n", receipt.name, receipt.status);
    let field = |text: &mut String, name: &str, value: &str| {
        let _ = writeln!(text, "- **{name}:** {value}");
    };
    field(&mut text, "job", &receipt.job_id);
    field(&mut text, "trigger", receipt.trigger.as_str());
    if let Some(slot) = &receipt.slot {
        field(&mut text, "slot", slot);
    }
    if receipt.slot_count > 1 {
        field(
            &mut text,
            "slots coalesced",
            &receipt.slot_count.to_string(),
        );
    }
    if let Some(original) = receipt.replay_of {
        field(
            &mut text,
            "replay of",
            &format!("{}#{original}", receipt.job_id),
        );
    }
    field(
        &mut text,
        "started",
        receipt.started_at.as_deref().unwrap_or("-"),
    );
    field(
        &mut text,
        "finished",
        receipt.finished_at.as_deref().unwrap_or("-"),
    );
    if let Some(ms) = receipt.duration_ms {
        field(
            &mut text,
            "duration",
            &format!("{:.3} s", ms as f64 / 1000.0),
        );
    }
    field(&mut text, "status", receipt.status.as_str());
    let exit = match (receipt.exit_code, receipt.signal) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "-".into(),
    };
    field(&mut text, "exit", &exit);
    field(
        &mut text,
        "attempts",
        &format!(
            "{} of at most {}",
            receipt.attempts.len(),
            receipt.max_attempts
        ),
    );
    let command = match (&receipt.command.argv, &receipt.command.shell) {
        (Some(argv), _) => argv.join(" "),
        (None, Some(shell)) => format!("sh -c {shell:?}"),
        (None, None) => "-".into(),
    };
    field(&mut text, "command", &format!("`{command}`"));
    field(&mut text, "cwd", &receipt.cwd);
    if let Some(lines) = output.events_truncated_after {
        field(
            &mut text,
            "output events",
            &format!("stopped after {lines} lines (the cap); the .log files have the rest"),
        );
    }
    for (stream, size) in &output.capped_logs {
        let name = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        field(
            &mut text,
            &format!("{name}.log"),
            &format!("cut at run.max_log_size ({size}); the rest of {name} was discarded"),
        );
    }
    if let (Some(code), Some(message)) = (&receipt.error_code, &receipt.message) {
        let _ = writeln!(text, "\n## Error\n\n`{code}`: {message}");
    }
    if receipt.attempts.len() > 1 {
        let _ = writeln!(
            text,
            "\n## Attempts\n\n| # | status | exit | duration |\n|---|---|---|---|"
        );
        for attempt in &receipt.attempts {
            let exit = attempt
                .exit_code
                .map(|c| c.to_string())
                .or(attempt.signal.map(|s| format!("signal {s}")))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                text,
                "| {} | {} | {exit} | {:.3} s |",
                attempt.attempt,
                attempt.status,
                attempt.duration_ms.unwrap_or(0) as f64 / 1000.0
            );
        }
    }
    if !tail.is_empty() {
        let lines = if tail.len() == 1 { "line" } else { "lines" };
        let _ = writeln!(text, "\n## Last {} {lines} of output\n\n```", tail.len());
        for (stream, line) in tail {
            let mark = if *stream == Stream::Stderr {
                "! "
            } else {
                "  "
            };
            let _ = writeln!(text, "{mark}{}", line.replace("```", "ˋˋˋ"));
        }
        let _ = writeln!(text, "```");
    }
    let _ = writeln!(
        text,
        "\nRaw output: `stdout.log`, `stderr.log`; every event: `events.jsonl`."
    );
    text
}

/// The summary of a run recorded without its output at hand (repaired after a crash).
pub fn write(dir: &Path, receipt: &Receipt, tail: &[(Stream, String)]) -> Result<()> {
    let output = Output {
        tail: tail.to_vec(),
        ..Output::default()
    };
    write_run(dir, receipt, &output)
}

pub fn write_run(dir: &Path, receipt: &Receipt, output: &Output) -> Result<()> {
    write_atomic(
        &dir.join(SUMMARY_FILE),
        render(receipt, output).as_bytes(),
        false,
    )
}
