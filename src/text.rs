//! Small helpers for the wording of messages: "did you mean" suggestions and casing.

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
    fn distance_is_edit_distance() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
    }
}
