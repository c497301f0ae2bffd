//! Arguments cut to a readable length, bytes escaped the way trace.jsonl escapes them.

/// Bytes of an argument kept in a message's text; longer ones are cut and say their length.
pub const SUMMARY_MAX: usize = 48;

/// An argument as a message's text shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Printable ASCII kept, other bytes `\xNN` (`\n`, `\r`, `\t`, `\\` as in C); a cut
    /// argument ends with `…(N bytes)`.
    pub text: String,
    /// Whether the argument was cut.
    pub cut: bool,
}

/// `bytes` summarized; `total` is the argument's whole length when `bytes` is only its head.
pub fn summarize(bytes: &[u8], total: usize) -> Summary {
    let cut = total > bytes.len() || bytes.len() > SUMMARY_MAX;
    let shown = &bytes[..bytes.len().min(SUMMARY_MAX)];
    let mut text = String::with_capacity(shown.len() + 16);
    for &b in shown {
        match b {
            b'\\' => text.push_str("\\\\"),
            b'\n' => text.push_str("\\n"),
            b'\r' => text.push_str("\\r"),
            b'\t' => text.push_str("\\t"),
            0x20..=0x7e => text.push(b as char),
            _ => text.push_str(&format!("\\x{b:02x}")),
        }
    }
    if cut {
        text.push_str(&format!("…({} bytes)", total.max(bytes.len())));
    }
    Summary { text, cut }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_arguments_are_kept_escaped() {
        let s = summarize(b"k3 \x00\n", 5);
        assert_eq!(s.text, "k3 \\x00\\n");
        assert!(!s.cut);
    }

    #[test]
    fn long_or_partial_arguments_say_their_length() {
        let long = vec![b'a'; 100];
        let s = summarize(&long, 100);
        assert_eq!(s.text, format!("{}…(100 bytes)", "a".repeat(SUMMARY_MAX)));
        assert!(s.cut);
        let s = summarize(b"abc", 4000);
        assert_eq!(s.text, "abc…(4000 bytes)");
        assert!(s.cut);
    }
}
