//! Small helpers for the wording of messages: "did you mean" suggestions, casing, and making text
//! from specs safe to print.

use std::borrow::Cow;
use std::fmt::Write;

/// The candidates nearest to `wanted` by edit distance (a substring counts as distance 1), if they are
/// near enough to be a plausible typo; only the nearest tie is kept, at most `limit` of it.
pub fn closest<'a, I>(wanted: &str, candidates: I, limit: usize) -> Vec<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let wanted_lower = wanted.to_lowercase();
    let budget = (wanted.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .filter_map(|candidate| {
            let lower = candidate.to_lowercase();
            let distance = if lower.contains(&wanted_lower) || wanted_lower.contains(&lower) {
                1
            } else {
                levenshtein(&wanted_lower, &lower)
            };
            (distance <= budget).then_some((distance, candidate))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    let best = scored.first().map(|(d, _)| *d);
    scored
        .into_iter()
        .take_while(|(d, _)| Some(*d) == best)
        .take(limit)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// `text` with its first letter lowercased: our messages are lowercase, some crates' are not.
pub fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `text` with every character a terminal could act on written out as an escape: control characters
/// (ESC starts the sequences that move the cursor, retitle the window or rewrite the screen; C1 holds a
/// one-byte CSI) as `\n`, `\t`, `\r` or `\x1b`, and the invisible bidi controls that make text read
/// differently than it is (`\u{202e}`). Text from a spec file or the store passes through this on its
/// way to a person; JSON output needs no such care, since JSON escapes control characters itself.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_misses_only() {
        let ids = ["heartbeat", "nightly-report", "cleanup"];
        assert_eq!(closest("hartbeat", ids, 3), vec!["heartbeat"]);
        assert_eq!(closest("nightly", ids, 3), vec!["nightly-report"]);
        assert!(closest("zzzzzz", ids, 3).is_empty());
    }

    #[test]
    fn control_characters_are_written_out() {
        assert_eq!(
            escape_controls("plain text, ünïcode"),
            "plain text, ünïcode"
        );
        assert!(matches!(escape_controls("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("a\x1b[2Jb\nc\td\re\x07\x7f"),
            "a\\x1b[2Jb\\nc\\td\\re\\x07\\x7f"
        );
        assert_eq!(escape_controls("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape_controls("abc\u{202e}def"), "abc\\u{202e}def");
        // Escaping escaped text changes nothing, so a message escaped twice reads the same.
        let once = escape_controls("x\x1by").into_owned();
        assert_eq!(escape_controls(&once), once);
    }

    #[test]
    fn distance_is_edit_distance() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
    }
}
