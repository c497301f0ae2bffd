//! Base64 decoding for the bytes fields of etcd's JSON gateway (proto3 JSON: standard
//! alphabet with padding; the URL-safe alphabet and missing padding are accepted too, as
//! the gateway's own parser accepts them).

/// The 6 bits a character stands for.
fn sextet(c: u8) -> Option<u32> {
    Some(u32::from(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    }))
}

/// The bytes `text` encodes; `None` when it is not base64.
pub(super) fn decode(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    let unpadded = text.strip_suffix(b"==").or_else(|| text.strip_suffix(b"="));
    if unpadded.is_some() && !text.len().is_multiple_of(4) {
        return None;
    }
    let digits = unpadded.unwrap_or(text);
    if digits.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() / 4 * 3 + 2);
    for group in digits.chunks(4) {
        let mut bits = 0u32;
        for &c in group {
            bits = bits << 6 | sextet(c)?;
        }
        // A short last group holds 2 or 3 characters: 1 or 2 bytes, left-aligned.
        bits <<= 6 * (4 - group.len());
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..group.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn standard_padded_and_unpadded() {
        assert_eq!(decode("azM=").as_deref(), Some(&b"k3"[..]));
        assert_eq!(decode("azM").as_deref(), Some(&b"k3"[..]));
        assert_eq!(decode("djc=").as_deref(), Some(&b"v7"[..]));
        assert_eq!(decode("").as_deref(), Some(&b""[..]));
        assert_eq!(decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode("YWJj").as_deref(), Some(&b"abc"[..]));
        assert_eq!(
            decode("aGVsbG8gd29ybGQ=").as_deref(),
            Some(&b"hello world"[..])
        );
        assert_eq!(decode("AP/+").as_deref(), Some(&[0x00, 0xff, 0xfe][..]));
        assert_eq!(decode("AP_-").as_deref(), Some(&[0x00, 0xff, 0xfe][..]));
    }

    #[test]
    fn not_base64() {
        assert_eq!(decode("a"), None);
        assert_eq!(decode("az=="), Some(b"k".to_vec()));
        assert_eq!(decode("azM=="), None);
        assert_eq!(decode("a=M="), None);
        assert_eq!(decode("az M"), None);
        assert_eq!(decode("=="), None);
    }
}
