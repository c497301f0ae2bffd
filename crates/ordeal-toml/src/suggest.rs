//! "Did you mean" suggestions, and values kept short in messages.

use std::borrow::Cow;

/// Values with more characters than this are shown cut in messages ([`truncated`]) and get no
/// suggestion ([`suggest`]): no name is that long, and comparing a huge value with each name
/// would cost its length times theirs.
pub const MAX_SHOWN_CHARS: usize = 64;

/// The candidate closest to `value` in edit distance (Levenshtein, in characters), if at most
/// `max_distance` away; on a tie, the smallest candidate. `None` for a value of more than
/// [`MAX_SHOWN_CHARS`] characters.
///
/// Costs at most `MAX_SHOWN_CHARS × (MAX_SHOWN_CHARS + max_distance)` steps per candidate,
/// whatever the lengths of `value` and the candidates.
pub fn suggest<'c>(
    value: &str,
    candidates: impl IntoIterator<Item = &'c str>,
    max_distance: usize,
) -> Option<&'c str> {
    if value.chars().nth(MAX_SHOWN_CHARS).is_some() {
        return None;
    }
    let value: Vec<char> = value.chars().collect();
    candidates
        .into_iter()
        // The difference in length is a lower bound of the distance: skip far candidates
        // without counting more of them than needed.
        .filter(|c| {
            let len = c.chars().take(value.len() + max_distance + 1).count();
            len.abs_diff(value.len()) <= max_distance
        })
        .map(|c| (edit_distance(&value, c), c))
        .filter(|(d, _)| *d <= max_distance)
        .min()
        .map(|(_, c)| c)
}

/// `value` for a message: whole when it has at most [`MAX_SHOWN_CHARS`] characters, else its
/// first [`MAX_SHOWN_CHARS`] characters followed by `…`.
pub fn truncated(value: &str) -> Cow<'_, str> {
    match value.char_indices().nth(MAX_SHOWN_CHARS) {
        Some((cut, _)) => Cow::Owned(format!("{}…", &value[..cut])),
        None => Cow::Borrowed(value),
    }
}

/// Levenshtein distance in characters.
fn edit_distance(a: &[char], b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distance(a: &str, b: &str) -> usize {
        edit_distance(&a.chars().collect::<Vec<_>>(), b)
    }

    #[test]
    fn edit_distances() {
        assert_eq!(distance("wrtie", "write"), 2);
        assert_eq!(distance("fsync", "fsync"), 0);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        // Characters, not bytes.
        assert_eq!(distance("é", "e"), 1);
    }

    #[test]
    fn suggestions() {
        let calls = ["read", "write", "writev", "fsync", "connect"];
        assert_eq!(suggest("wrtie", calls, 2), Some("write"));
        assert_eq!(suggest("writev", calls, 2), Some("writev"));
        assert_eq!(suggest("conect", calls, 2), Some("connect"));
        assert_eq!(suggest("xyz", calls, 2), None);
        assert_eq!(suggest("", calls, 2), None);
        // A tie goes to the smallest name.
        assert_eq!(suggest("ab", ["ac", "aa"], 1), Some("aa"));
        assert_eq!(suggest("wrtie", calls, 1), None);
    }

    #[test]
    fn long_values_get_no_suggestion() {
        let at_limit = "a".repeat(MAX_SHOWN_CHARS);
        let over = "a".repeat(MAX_SHOWN_CHARS + 1);
        let near = "a".repeat(MAX_SHOWN_CHARS - 1) + "b";
        assert_eq!(suggest(&at_limit, [near.as_str()], 2), Some(near.as_str()));
        assert_eq!(suggest(&over, [near.as_str(), at_limit.as_str()], 2), None);
        // A huge value is turned away after looking at its first characters; a huge candidate
        // is skipped after counting a few of its characters.
        let huge = "x".repeat(10_000_000);
        assert_eq!(suggest(&huge, ["x"], 2), None);
        assert_eq!(suggest("x", [huge.as_str(), "y"], 2), Some("y"));
    }

    #[test]
    fn truncation() {
        assert_eq!(truncated("short"), "short");
        let limit = "é".repeat(MAX_SHOWN_CHARS);
        assert_eq!(truncated(&limit), limit.as_str());
        let over = "é".repeat(MAX_SHOWN_CHARS + 1);
        assert_eq!(truncated(&over), format!("{limit}…"));
        let huge = "y".repeat(1_000_000);
        assert_eq!(truncated(&huge).chars().count(), MAX_SHOWN_CHARS + 1);
    }
}
