//! What the messages said, in the pictures: the decoded text of a send (from the call log,
//! `seq` → `SET k3 v7`) on its box, on its message edge and flow arrow, and the most frequent
//! operations per node pair in the node-level picture.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// Characters of a label in a graph.dot box or edge.
pub(crate) const DOT_CHARS: usize = 40;
/// Characters of a label in a trace.json slice or flow name.
pub(crate) const CHROME_CHARS: usize = 60;
/// Operations shown per node pair.
const TOP_OPS: usize = 3;
/// Distinct operations counted per node pair: operations first seen after that many are not
/// counted (protocols have a handful).
const MAX_OPS: usize = 16;
/// Characters of an operation name.
const OP_CHARS: usize = 24;

/// `s` cut to `max` characters, the last one `…` when cut.
pub(crate) fn cut(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max.saturating_sub(1)) {
        Some((at, _)) if s[at..].chars().nth(1).is_some() => Cow::Owned(format!("{}…", &s[..at])),
        _ => Cow::Borrowed(s),
    }
}

/// Gives each labelled send's text to the first message edge out of it (in edge order: the
/// one carrying the send's first bytes), so a send read in several parts is not named twice.
pub(crate) struct EdgeLabels<'a> {
    labels: &'a HashMap<u64, String>,
    named: HashSet<u64>,
}

impl<'a> EdgeLabels<'a> {
    pub(crate) fn new(labels: &'a HashMap<u64, String>) -> EdgeLabels<'a> {
        EdgeLabels {
            labels,
            named: HashSet::new(),
        }
    }

    /// The text of the message edge out of the send `from`, if it is the send's first.
    pub(crate) fn message(&mut self, from: u64) -> Option<&'a str> {
        let text = self.labels.get(&from)?;
        self.named.insert(from).then_some(text.as_str())
    }
}

/// How often each operation (a label's first word) was sent between two nodes, in bounded
/// memory: at most [`MAX_OPS`] distinct operations, in order of first appearance.
#[derive(Debug, Default, Clone)]
pub(crate) struct OpCounts {
    ops: Vec<(String, u64)>,
}

impl OpCounts {
    pub(crate) fn add(&mut self, label: &str) {
        let word = label.split_whitespace().next().unwrap_or("");
        if word.is_empty() {
            return;
        }
        let word = cut(word, OP_CHARS);
        if let Some((_, n)) = self.ops.iter_mut().find(|(w, _)| *w == word) {
            *n += 1;
        } else if self.ops.len() < MAX_OPS {
            self.ops.push((word.into_owned(), 1));
        }
    }

    /// The most frequent operations, most frequent first (ties by name):
    /// `SET ×80, GET ×20`; `None` when there are none.
    pub(crate) fn top(&self) -> Option<String> {
        let mut ops: Vec<&(String, u64)> = self.ops.iter().collect();
        ops.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let shown: Vec<String> = ops
            .iter()
            .take(TOP_OPS)
            .map(|(w, n)| format!("{w} ×{n}"))
            .collect();
        (!shown.is_empty()).then(|| shown.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_short_text_and_ends_long_text_with_an_ellipsis() {
        assert_eq!(cut("SET k3 v7", 9), "SET k3 v7");
        assert_eq!(cut("SET k3 v7", 8), "SET k3 …");
        assert_eq!(cut("ééééé", 3), "éé…");
        assert_eq!(cut("", 3), "");
    }

    #[test]
    fn only_the_first_edge_out_of_a_send_is_named() {
        let labels = [(4, "SET k3 v7".to_string())].into_iter().collect();
        let mut e = EdgeLabels::new(&labels);
        assert_eq!(e.message(3), None);
        assert_eq!(e.message(4), Some("SET k3 v7"));
        assert_eq!(e.message(4), None);
    }

    #[test]
    fn the_top_three_operations_by_count_then_name() {
        let mut c = OpCounts::default();
        assert_eq!(c.top(), None);
        for l in [
            "GET k1",
            "SET k1 v1",
            "SET k2 v2",
            "DEL k1",
            "GET k2",
            "SET k3 v3",
            "+OK",
        ] {
            c.add(l);
        }
        c.add("   ");
        assert_eq!(c.top().as_deref(), Some("SET ×3, GET ×2, +OK ×1"));
        // Past MAX_OPS distinct operations, new ones are not counted; known ones still are.
        for k in 0..MAX_OPS {
            c.add(&format!("OP{k} x"));
        }
        c.add("DEL k2");
        assert_eq!(c.ops.len(), MAX_OPS);
        assert_eq!(c.top().as_deref(), Some("SET ×3, DEL ×2, GET ×2"));
    }
}
