//! `summary.md`: a short report of a run for people, rendered from its receipt and the last lines of
//! its output.

use std::fmt::Write;
use std::path::Path;

use super::events::Stream;
use super::receipt::Receipt;
use super::rundir::{SUMMARY_FILE, write_atomic};
use crate::error::Result;

/// How many output lines the summary quotes.
pub const TAIL_LINES: usize = 20;

pub fn render(receipt: &Receipt, tail: &[(Stream, String)]) -> String {
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
                attempt.duration_ms as f64 / 1000.0
            );
        }
    }
    if !tail.is_empty() {
        let _ = writeln!(text, "\n## Last {} lines of output\n\n```", tail.len());
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

pub fn write(dir: &Path, receipt: &Receipt, tail: &[(Stream, String)]) -> Result<()> {
    write_atomic(
        &dir.join(SUMMARY_FILE),
        render(receipt, tail).as_bytes(),
        false,
    )
}
