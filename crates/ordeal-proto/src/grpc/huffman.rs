//! The HPACK Huffman code (RFC 7541 appendix B): decoding, and encoding for tests and tools.
//!
//! The RFC's code is canonical (codes of one length are consecutive, in symbol order, and
//! each length starts where the shorter ones left off), so the code lengths alone define it;
//! the codes and the decoding table are derived from them once.

use std::sync::OnceLock;

/// End of string: never in a valid string, its prefix pads the last byte.
const EOS: usize = 256;
/// Longest code, in bits (EOS's).
const MAX_LEN: usize = 30;

/// Code length in bits of every symbol, 0..=255 then EOS, as RFC 7541 appendix B lists them.
#[rustfmt::skip]
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0..
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 16..
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,         // 32.. ' '
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,              // 48.. '0'
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,                // 64.. '@'
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,             // 80.. 'P'
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,                // 96.. '`'
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,            // 112.. 'p'
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128..
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144..
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160..
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176..
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192..
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208..
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224..
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240..
    30,                                                             // EOS
];

/// The code derived from [`CODE_LENGTHS`], in both directions.
struct Code {
    /// Code of each symbol, right-aligned.
    codes: [u32; 257],
    /// Per length: the first code of that length and where its symbols start in `symbols`.
    first: [u32; MAX_LEN + 1],
    start: [u16; MAX_LEN + 1],
    count: [u16; MAX_LEN + 1],
    /// Symbols ordered by code.
    symbols: [u16; 257],
}

fn code() -> &'static Code {
    static CODE: OnceLock<Code> = OnceLock::new();
    CODE.get_or_init(|| {
        let mut c = Code {
            codes: [0; 257],
            first: [0; MAX_LEN + 1],
            start: [0; MAX_LEN + 1],
            count: [0; MAX_LEN + 1],
            symbols: [0; 257],
        };
        for &len in &CODE_LENGTHS {
            c.count[len as usize] += 1;
        }
        let (mut next, mut at) = (0u32, 0u16);
        for len in 1..=MAX_LEN {
            next = (next + c.count[len - 1] as u32) << 1;
            c.first[len] = next;
            c.start[len] = at;
            at += c.count[len];
        }
        // Symbols of one length take its codes in symbol order.
        let mut filled = [0u16; MAX_LEN + 1];
        for (sym, &len) in CODE_LENGTHS.iter().enumerate() {
            let len = len as usize;
            c.codes[sym] = c.first[len] + filled[len] as u32;
            c.symbols[(c.start[len] + filled[len]) as usize] = sym as u16;
            filled[len] += 1;
        }
        c
    })
}

/// Why a Huffman string does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HuffmanError {
    /// The string holds the EOS symbol.
    Eos,
    /// The last byte is padded with more than 7 bits, or not with ones.
    Padding,
}

/// Decodes a Huffman-coded string into `out`.
pub fn decode(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let c = code();
    let (mut acc, mut len) = (0u32, 0usize);
    for &byte in bytes {
        for shift in (0..8).rev() {
            acc = (acc << 1) | ((byte >> shift) & 1) as u32;
            len += 1;
            let offset = acc.wrapping_sub(c.first[len]);
            if offset < c.count[len] as u32 {
                let sym = c.symbols[(c.start[len] as u32 + offset) as usize] as usize;
                if sym == EOS {
                    return Err(HuffmanError::Eos);
                }
                out.push(sym as u8);
                (acc, len) = (0, 0);
            } else if len == MAX_LEN {
                // Unreachable with a complete code, kept so a bad table cannot index past it.
                return Err(HuffmanError::Eos);
            }
        }
    }
    // What is left must be a prefix of EOS (all ones) shorter than a byte.
    if len > 7 || acc != (1 << len) - 1 {
        return Err(HuffmanError::Padding);
    }
    Ok(())
}

/// `bytes` Huffman-coded, padded with ones: what an HPACK encoder sends.
pub fn encode(bytes: &[u8]) -> Vec<u8> {
    let c = code();
    let mut out = Vec::with_capacity(bytes.len());
    let (mut acc, mut bits) = (0u64, 0u32);
    for &b in bytes {
        let len = CODE_LENGTHS[b as usize] as u32;
        acc = (acc << len) | c.codes[b as usize] as u64;
        bits += len;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) as u8);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_derived_codes_are_the_rfcs() {
        // A complete prefix code (Kraft equality), and codes as appendix B prints them.
        let kraft: u64 = CODE_LENGTHS
            .iter()
            .map(|&l| 1u64 << (MAX_LEN - l as usize))
            .sum();
        assert_eq!(kraft, 1 << MAX_LEN);
        let c = code();
        for (sym, want) in [
            (0, 0x1ff8),
            (1, 0x7fffd8),
            (10, 0x3ffffffc),
            (b' ' as usize, 0x14),
            (b'0' as usize, 0x0),
            (b':' as usize, 0x5c),
            (b'\\' as usize, 0x7fff0),
            (b'z' as usize, 0x7b),
            (b'~' as usize, 0x1ffd),
            (127, 0xffffffc),
            (128, 0xfffe6),
            (200, 0x3ffffe2),
            (255, 0x3ffffee),
            (EOS, 0x3fffffff),
        ] {
            assert_eq!(c.codes[sym], want, "symbol {sym}");
        }
    }

    #[test]
    fn rfc_7541_appendix_c_strings_decode_and_encode() {
        for (coded, plain) in [
            ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", "www.example.com"),
            ("a8eb 1064 9cbf", "no-cache"),
            ("25a8 49e9 5ba9 7d7f", "custom-key"),
            ("25a8 49e9 5bb8 e8b4 bf", "custom-value"),
            ("6402", "302"),
            ("640e ff", "307"),
            ("aec3 771a 4b", "private"),
            (
                "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff",
                "Mon, 21 Oct 2013 20:13:21 GMT",
            ),
            (
                "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3",
                "https://www.example.com",
            ),
            ("9bd9 ab", "gzip"),
            (
                "94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f \
                 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
                "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
            ),
        ] {
            let mut out = Vec::new();
            decode(&hex(coded), &mut out).unwrap();
            assert_eq!(out, plain.as_bytes());
            assert_eq!(encode(plain.as_bytes()), hex(coded), "{plain}");
        }
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        decode(&encode(&all), &mut out).unwrap();
        assert_eq!(out, all);
    }

    #[test]
    fn bad_padding_and_eos_are_errors() {
        let mut out = Vec::new();
        // '0' is 00000: padded with zeros, not ones.
        assert_eq!(decode(&[0x00], &mut out), Err(HuffmanError::Padding));
        // A whole byte of ones is more than 7 bits of padding.
        assert_eq!(decode(&[0x07, 0xff], &mut out), Err(HuffmanError::Padding));
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xfc], &mut out),
            Err(HuffmanError::Eos)
        );
        out.clear();
        assert_eq!(decode(&[0x07], &mut out), Ok(()));
        assert_eq!(out, b"0");
    }
}
