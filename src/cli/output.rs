//! Rendering: the `--json` envelope, the [`View`] every command answers with, colour, aligned tables and
//! how instants are shown to people and to machines. Knows no command.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
pub use crate::text::escape_controls;

/// A command's answer as one value: `--json` prints it serialized, people read [`View::render`] of the
/// same value, so the two cannot drift. Fields only people see (the time now, for "5m ago") are
/// `#[serde(skip)]`.
pub trait View: Serialize {
    fn render(&self, out: &Output) -> String;
}

/// What a command produced: the JSON `data`, the human rendering of the same, and, when the command
/// completed but found something wrong (invalid specs), the error that decides the exit code. `data`
/// is null for a command that already streamed its output.
pub struct Report {
    pub data: Value,
    pub human: String,
    pub error: Option<Error>,
}

impl Report {
    pub fn ok(data: Value, human: String) -> Self {
        Self {
            data,
            human,
            error: None,
        }
    }

    /// The report of a view: serialized under `--json`, rendered otherwise (only the form that is
    /// printed is made).
    pub fn view(view: &impl View, out: &Output) -> Result<Self> {
        let (data, human) = if out.json {
            let data = serde_json::to_value(view).map_err(|e| Error::Internal {
                message: format!("cannot write the command's answer as JSON: {e}"),
            })?;
            (data, String::new())
        } else {
            (Value::Null, view.render(out))
        };
        Ok(Self::ok(data, human))
    }

    /// A report whose command printed its output as it went; `human` is what is left to say.
    pub fn streamed(human: String) -> Self {
        Self::ok(Value::Null, human)
    }

    /// The same report, with the error (if any) that decides its exit code.
    pub fn with_error(self, error: Option<Error>) -> Self {
        Self { error, ..self }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub color: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Bold,
    Dim,
    Red,
    Green,
    Yellow,
}

/// The `--json` document: `{"ok":true,"data":...}`, or with `error` when something failed.
#[derive(Serialize)]
struct Envelope<'a> {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

#[derive(Serialize)]
struct ErrorBody {
    code: &'static str,
    message: String,
    hint: Option<String>,
}

impl ErrorBody {
    fn of(error: &Error) -> Self {
        Self {
            code: error.code(),
            message: error.to_string(),
            hint: error.hint(),
        }
    }
}

impl Envelope<'_> {
    fn print(&self) {
        // Through a `Value`, whose keys are sorted: the document reads the same whatever the field
        // order of the types above. Their serialization cannot fail; if it ever did, the reader still
        // gets a document that says so.
        let text = serde_json::to_value(self).map_or_else(
            |_| UNWRITABLE.to_owned(),
            |document| format!("{document:#}"),
        );
        print_stdout(&format!("{text}\n"));
    }
}

const UNWRITABLE: &str = r#"{"ok":false,"error":{"code":"internal","message":"cannot write the answer as JSON","hint":null}}"#;

impl Output {
    pub fn paint(&self, style: Style, text: &str) -> String {
        let code = match style {
            _ if !self.color => return text.to_owned(),
            Style::Plain => return text.to_owned(),
            Style::Bold => "1",
            Style::Dim => "2",
            Style::Red => "31",
            Style::Green => "32",
            Style::Yellow => "33",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    /// Prints a report: the envelope in JSON mode, else its human text.
    pub fn report(&self, report: &Report) {
        if self.json && report.data.is_null() {
            // The command streamed its own JSON (`jobsctl tail --json` prints the event lines as they are).
            return;
        }
        if self.json {
            Envelope {
                ok: report.error.is_none(),
                data: Some(&report.data),
                error: report.error.as_ref().map(ErrorBody::of),
            }
            .print();
        } else {
            print_stdout(&report.human);
            if let Some(error) = &report.error {
                self.error(error);
            }
        }
    }

    /// Prints a failure: the JSON envelope on stdout, or `error: …` and a hint on stderr.
    pub fn error(&self, error: &Error) {
        if self.json {
            Envelope {
                ok: false,
                data: None,
                error: Some(ErrorBody::of(error)),
            }
            .print();
        } else {
            // An error can quote a spec (its first problem) or the command line.
            let message = error.to_string();
            let mut text = format!(
                "{} {}\n",
                self.paint(Style::Red, "error:"),
                escape_controls(&message)
            );
            if let Some(hint) = error.hint() {
                text.push_str(&format!(
                    "{} {}\n",
                    self.paint(Style::Dim, "hint:"),
                    escape_controls(&hint)
                ));
            }
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    }
}

/// The `--json` document of a command's outcome, as [`Output::report`] and [`Output::error`] print it:
/// what the HTTP API answers too, so its shapes are the CLI's.
pub fn envelope(outcome: &Result<Report>) -> Value {
    let envelope = match outcome {
        Ok(report) => Envelope {
            ok: report.error.is_none(),
            data: Some(&report.data),
            error: report.error.as_ref().map(ErrorBody::of),
        },
        Err(error) => Envelope {
            ok: false,
            data: None,
            error: Some(ErrorBody::of(error)),
        },
    };
    serde_json::to_value(&envelope).unwrap_or(Value::Null)
}

/// Writes to stdout, treating a closed pipe (`jobsctl list | head`) as done rather than as a failure.
fn print_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// A table with aligned columns; the last column is not padded.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<(String, Style)>>,
}

impl Table {
    pub fn new(headers: Vec<&'static str>) -> Self {
        Self {
            headers,
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<(String, Style)>) {
        self.rows.push(cells);
    }

    pub fn render(&self, out: &Output) -> String {
        // Cells hold text from specs and the store (a description, a reason); none reaches the
        // terminal raw, whatever the colour setting.
        let rows: Vec<Vec<(String, Style)>> = self
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|(text, style)| (escape_controls(text).into_owned(), *style))
                    .collect()
            })
            .collect();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (i, (text, _)) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(i) {
                    *width = (*width).max(text.chars().count());
                }
            }
        }
        let mut text = String::new();
        let header: Vec<(String, Style)> = self
            .headers
            .iter()
            .map(|h| ((*h).to_owned(), Style::Bold))
            .collect();
        for row in std::iter::once(&header).chain(&rows) {
            let last = row.len().saturating_sub(1);
            let mut line = String::new();
            for (i, (cell, style)) in row.iter().enumerate() {
                line.push_str(&out.paint(*style, cell));
                if i < last {
                    let pad = widths.get(i).copied().unwrap_or(0) - cell.chars().count();
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// An instant for machines: RFC 3339 in UTC with milliseconds.
pub fn utc(t: DateTime<Utc>) -> String {
    crate::clock::rfc3339(t)
}

/// An instant in a zone for machines: RFC 3339 with the zone's offset.
pub fn zoned(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// An instant for people, in the job's zone: `2026-11-23 02:30:00 EST`.
pub fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

pub use crate::clock::relative;

/// An instant with the zone it is shown in; serializes as [`zoned`].
#[derive(Debug, Clone, Copy)]
pub struct Zoned {
    pub at: DateTime<Utc>,
    pub tz: Tz,
}

impl Serialize for Zoned {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(&zoned(self.at, self.tz))
    }
}

/// How view fields that are not plain data serialize, for `#[serde(serialize_with = "...")]`.
pub mod ser {
    use chrono::{DateTime, SecondsFormat, Utc};
    use chrono_tz::Tz;
    use serde::Serializer;

    use crate::catalog::JobState;
    use crate::schedule::DstNote;

    /// [`super::utc`]: RFC 3339, UTC, milliseconds.
    pub fn instant<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&super::utc(*t))
    }

    pub fn instant_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => instant(t, s),
            None => s.serialize_none(),
        }
    }

    /// RFC 3339 in UTC with as many fractional digits as the instant has (none for a whole second).
    pub fn instant_short<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }

    /// A zone by its IANA name.
    pub fn zone<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.name())
    }

    pub fn zone_opt<S: Serializer>(tz: &Option<Tz>, s: S) -> Result<S::Ok, S::Error> {
        match tz {
            Some(tz) => zone(tz, s),
            None => s.serialize_none(),
        }
    }

    pub fn job_state<S: Serializer>(state: &JobState, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(state.as_str())
    }

    pub fn job_state_opt<S: Serializer>(state: &Option<JobState>, s: S) -> Result<S::Ok, S::Error> {
        match state {
            Some(state) => job_state(state, s),
            None => s.serialize_none(),
        }
    }

    /// `dst_gap`, `dst_fold`, or null.
    pub fn dst_note<S: Serializer>(note: &Option<DstNote>, s: S) -> Result<S::Ok, S::Error> {
        match note {
            Some(note) => s.serialize_str(note.code()),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = at("2026-11-22T12:00:00Z");
        assert_eq!(relative(at("2026-11-22T12:00:00Z"), now), "now");
        assert_eq!(relative(at("2026-11-22T12:00:09Z"), now), "in 9s");
        assert_eq!(relative(at("2026-11-22T12:03:05Z"), now), "in 3m 5s");
        assert_eq!(relative(at("2026-11-22T15:12:00Z"), now), "in 3h 12m");
        assert_eq!(relative(at("2026-11-24T13:00:00Z"), now), "in 2d 1h");
        assert_eq!(relative(at("2026-11-22T11:55:00Z"), now), "5m 0s ago");
    }

    #[test]
    fn tables_align_and_do_not_pad_the_last_column() {
        let out = Output {
            json: false,
            color: false,
        };
        let mut table = Table::new(vec!["ID", "STATE"]);
        table.row(vec![
            ("heartbeat".into(), Style::Plain),
            ("active".into(), Style::Green),
        ]);
        table.row(vec![
            ("a".into(), Style::Plain),
            ("paused".into(), Style::Yellow),
        ]);
        assert_eq!(
            table.render(&out),
            "ID         STATE\nheartbeat  active\na          paused\n"
        );
    }

    #[test]
    fn table_cells_never_carry_control_characters() {
        let out = Output {
            json: false,
            color: false,
        };
        let mut table = Table::new(vec!["ID", "DESCRIPTION"]);
        table.row(vec![
            ("a".into(), Style::Plain),
            ("x\x1b]0;owned\x07\ny".into(), Style::Dim),
        ]);
        assert_eq!(
            table.render(&out),
            "ID  DESCRIPTION\na   x\\x1b]0;owned\\x07\\ny\n"
        );
    }

    #[test]
    fn zones_render_with_offset_and_abbreviation() {
        let t = at("2026-11-23T07:30:00Z");
        assert_eq!(
            zoned(t, chrono_tz::America::New_York),
            "2026-11-23T02:30:00-05:00"
        );
        assert_eq!(
            local(t, chrono_tz::America::New_York),
            "2026-11-23 02:30:00 EST"
        );
        assert_eq!(utc(t), "2026-11-23T07:30:00.000Z");
    }
}
