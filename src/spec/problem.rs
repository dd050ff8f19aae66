//! A problem of a spec file: a stable code, a position and a message for people. Owns the type and the
//! one constructor that makes every message safe to print; must not know how a position is found.

use serde::Serialize;

/// One thing wrong with a spec file. `code` is stable; `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub code: &'static str,
    pub line: usize,
    pub column: usize,
    pub pointer: String,
    pub message: String,
}

impl Problem {
    /// `line:col: pointer: message` (no pointer for a problem of the whole file): the field is
    /// half of what a message means, as in "must be longer than zero".
    pub fn located(&self) -> String {
        format!("{}:{}: {}", self.line, self.column, self.brief())
    }

    /// `pointer: message`, without the position.
    pub fn brief(&self) -> String {
        if self.pointer.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.pointer, self.message)
        }
    }
}

pub(crate) fn problem_at(
    line: usize,
    column: usize,
    pointer: &str,
    code: &'static str,
    message: String,
) -> Problem {
    // Messages quote what the file says, and a file can say ESC: escaped here, every output of a
    // problem (a terminal, a log, JSON read by a person) is safe to show.
    let message = match crate::text::escape_controls(&message) {
        std::borrow::Cow::Borrowed(_) => message,
        std::borrow::Cow::Owned(escaped) => escaped,
    };
    Problem {
        code,
        line,
        column,
        pointer: pointer.to_owned(),
        message,
    }
}
