//! Webhook and ping URLs as they may be shown: a URL carries its token in its path, its query or its
//! userinfo, so `show`, `--json` and logs print `https://hooks.slack.com/services/***`. Pure; must not
//! be bypassed by anything that prints a notifier's URL.

use crate::spec::model::{HttpUrl, NotifyTarget};

/// What replaces the hidden part.
const HIDDEN: &str = "***";

/// `url` with its userinfo, query and fragment hidden, and its path but for a first segment that names
/// a kind of endpoint (`services`, `hooks`, `api`: letters, `-` and `_` only, and more path after it).
/// A first segment with a digit is taken for a token (a healthchecks UUID, a key) and hidden too.
pub fn mask_url(url: &HttpUrl) -> String {
    let parts = url.parts();
    let mut shown = format!("{}://", parts.scheme);
    if parts.userinfo.is_some() {
        shown.push_str(HIDDEN);
        shown.push('@');
    }
    shown.push_str(parts.host_port);
    let path = parts.path.strip_prefix('/').unwrap_or(parts.path);
    let (first, rest) = match path.split_once('/') {
        Some((first, rest)) => (first, rest),
        None => (path, ""),
    };
    let names_a_kind = !first.is_empty()
        && !rest.is_empty()
        && first
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_');
    let hides_something = !path.is_empty()
        || parts.query.is_some()
        || url.as_str().contains('#')
        || parts.userinfo.is_some();
    if names_a_kind {
        shown.push('/');
        shown.push_str(first);
    }
    if hides_something {
        shown.push('/');
        shown.push_str(HIDDEN);
    }
    shown
}

/// A notifier as people may see it (in `show`, `--json`, logs): its kind and its target masked; a
/// command by its program alone, since its arguments may carry a token too.
pub fn shown(target: &NotifyTarget) -> String {
    match target {
        NotifyTarget::Webhook { url, .. } => format!("webhook {}", mask_url(url)),
        NotifyTarget::Ping { url } => format!("ping {}", mask_url(url)),
        NotifyTarget::Command { argv } => match argv.split_first() {
            Some((program, [])) => format!("command {program}"),
            Some((program, args)) => format!("command {program} (+{} arguments)", args.len()),
            None => "command (empty)".into(),
        },
    }
}

/// `text` with every occurrence of `url` masked: for messages that may quote it (an HTTP library's
/// error, a command's stderr).
pub fn mask_in(text: &str, url: &HttpUrl) -> String {
    if text.contains(url.as_str()) {
        text.replace(url.as_str(), &mask_url(url))
    } else {
        text.to_owned()
    }
}

/// Arguments shorter than this are left in quoted text: a flag (`-s`, `--fail`) or a small number
/// carries no secret, and hiding every `-s` would make a message unreadable.
const SHORTEST_HIDDEN_ARGUMENT: usize = 6;

/// What a notifier command wrote on stderr, as it may be quoted in a try's record: every argument it
/// was given (which may hold a token, as `curl`'s URL does) and every URL in it masked. The command is
/// not ours, so what it prints is treated as if it held the secrets it was handed.
pub fn mask_stderr(text: &str, args: &[String]) -> String {
    let mut text = text.to_owned();
    let mut args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| a.len() >= SHORTEST_HIDDEN_ARGUMENT)
        .collect();
    // Longest first, so an argument that holds another is hidden whole.
    args.sort_by_key(|a| std::cmp::Reverse(a.len()));
    for arg in args {
        let hidden = match HttpUrl::parse(arg) {
            Ok(url) => mask_url(&url),
            Err(_) => HIDDEN.to_owned(),
        };
        text = text.replace(arg, &hidden);
    }
    mask_urls(&text)
}

/// `text` with every `http://` or `https://` URL in it masked, up to the next white space or quote.
fn mask_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = ["http://", "https://"]
        .iter()
        .filter_map(|scheme| rest.find(scheme))
        .min()
    {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .unwrap_or(tail.len());
        let candidate = &tail[..end];
        match HttpUrl::parse(candidate) {
            Ok(url) => out.push_str(&mask_url(&url)),
            Err(_) => out.push_str(HIDDEN),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(text: &str) -> String {
        HttpUrl::parse(text)
            .map(|url| mask_url(&url))
            .unwrap_or_else(|(code, message)| format!("{code}: {message}"))
    }

    #[test]
    fn tokens_are_hidden_and_the_kind_of_endpoint_stays() {
        let cases = [
            (
                "https://hooks.slack.com/services/T000/B000/XXXX",
                "https://hooks.slack.com/services/***",
            ),
            (
                "https://discord.com/api/webhooks/123/abc",
                "https://discord.com/api/***",
            ),
            (
                "https://chat.example.com/hooks/x1y2z3",
                "https://chat.example.com/hooks/***",
            ),
            (
                "https://hc-ping.com/5f2a1c9e-0000-4000-8000-000000000000",
                "https://hc-ping.com/***",
            ),
            (
                "https://hc-ping.com/k3y/backup?create=1",
                "https://hc-ping.com/***",
            ),
            (
                "http://user:secret@127.0.0.1:8080/notify?token=abc",
                "http://***@127.0.0.1:8080/***",
            ),
            ("https://example.com", "https://example.com"),
            ("https://example.com/", "https://example.com"),
            ("https://example.com?t=1", "https://example.com/***"),
            ("http://[::1]:9000/a/b", "http://[::1]:9000/a/***"),
        ];
        for (url, expected) in cases {
            assert_eq!(masked(url), expected, "{url}");
        }
    }

    #[test]
    fn a_message_quoting_the_url_is_masked() {
        let url = HttpUrl::parse("https://hooks.slack.com/services/T/B/secret").expect("a URL");
        let text = format!("failed to reach {url}: refused");
        assert_eq!(
            mask_in(&text, &url),
            "failed to reach https://hooks.slack.com/services/***: refused"
        );
    }

    #[test]
    fn a_commands_stderr_is_quoted_without_its_arguments_or_urls() {
        let args = [
            "-fsS".to_owned(),
            "--data-binary".to_owned(),
            "@-".to_owned(),
            "https://hooks.slack.com/services/T/B/secret".to_owned(),
            "Bearer sk-live-0123456789".to_owned(),
        ];
        let stderr = "curl: (22) The requested URL returned error: 404 for \
                      https://hooks.slack.com/services/T/B/secret with Bearer sk-live-0123456789; \
                      also tried http://10.0.0.1:9/p?token=abc";
        let shown = mask_stderr(stderr, &args);
        assert!(!shown.contains("secret"), "{shown}");
        assert!(!shown.contains("sk-live"), "{shown}");
        assert!(!shown.contains("token=abc"), "{shown}");
        assert!(
            shown.contains("https://hooks.slack.com/services/***"),
            "{shown}"
        );
        assert!(shown.contains("http://10.0.0.1:9/***"), "{shown}");
        assert!(
            shown.starts_with("curl: (22) The requested URL returned error: 404"),
            "{shown}"
        );
    }
}
