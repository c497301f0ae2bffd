//! HPACK (RFC 7541): header blocks to header lists, one decoding context per direction.

use std::collections::VecDeque;
use std::fmt;

use super::huffman;

pub use super::huffman::encode as huffman_encode;

/// A header field: name and value as sent (octets; HTTP/2 names are lower case).
pub type Header = (Vec<u8>, Vec<u8>);

/// The dynamic table's size before any update (RFC 7540's SETTINGS_HEADER_TABLE_SIZE default).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// Largest dynamic table kept, whatever size the encoder announces: memory stays bounded,
/// and an encoder using more than this (rare: peers agree on 4096) loses references to its
/// oldest entries, which then do not decode.
pub const MAX_TABLE_SIZE: usize = 64 * 1024;

/// Most bytes of names and values a decoded header list keeps: indexed fields can make a
/// small block expand a thousandfold. Fields past it are dropped from the list (the table is
/// still updated).
pub const MAX_LIST_SIZE: usize = 64 * 1024;

/// The static table (RFC 7541 appendix A); index 1 is the first entry.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Why a header block did not decode to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpackError {
    /// The block ends inside a field.
    Truncated,
    /// An integer longer than any sensible value.
    Overflow,
    /// An index past the static and dynamic tables (an entry added in bytes not seen).
    BadIndex(u64),
    /// A Huffman string that does not decode.
    Huffman,
    /// A table size update after the first field of a block.
    LateSizeUpdate,
}

impl fmt::Display for HpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HpackError::Truncated => write!(f, "header block cut inside a field"),
            HpackError::Overflow => write!(f, "integer too large"),
            HpackError::BadIndex(i) => write!(f, "no table entry {i}"),
            HpackError::Huffman => write!(f, "bad Huffman string"),
            HpackError::LateSizeUpdate => write!(f, "table size update after a field"),
        }
    }
}

impl std::error::Error for HpackError {}

/// A field that did not decode, and whether the rest of its block can.
struct FieldError {
    error: HpackError,
    stop: bool,
}

/// A header block that did not decode whole: the fields that did, and the first error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partial {
    pub headers: Vec<Header>,
    pub error: HpackError,
}

/// One direction's HPACK decoding context: its dynamic table.
#[derive(Debug, Clone)]
pub struct HpackDecoder {
    /// Newest first: entry 0 is index 62.
    table: VecDeque<Header>,
    /// Sum of the entries' sizes (name + value + 32 each).
    size: usize,
    /// Current maximum size, as the last size update set it.
    max_size: usize,
}

impl Default for HpackDecoder {
    fn default() -> Self {
        HpackDecoder::new(DEFAULT_TABLE_SIZE)
    }
}

impl HpackDecoder {
    /// A decoder whose dynamic table starts empty with room for `max_size` bytes.
    pub fn new(max_size: usize) -> HpackDecoder {
        HpackDecoder {
            table: VecDeque::new(),
            size: 0,
            max_size: max_size.min(MAX_TABLE_SIZE),
        }
    }

    /// The dynamic table, newest entry (index 62) first.
    pub fn entries(&self) -> impl Iterator<Item = &Header> {
        self.table.iter()
    }

    /// The dynamic table's size in the RFC's accounting.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Forgets the dynamic table: some header blocks were not seen, so entries are missing.
    /// Entries added from now on are the encoder's newest too, at the same indexes; a
    /// reference to an older one is a [`HpackError::BadIndex`], never a wrong field.
    pub fn forget(&mut self) {
        self.table.clear();
        self.size = 0;
    }

    /// The header list of one whole header block. A field that does not decode (a reference
    /// to an entry added in bytes not seen, a bad Huffman string) is skipped and the others
    /// returned with the first error; when the skipped field added an entry, or the block is
    /// cut, the table is forgotten (see [`HpackDecoder::forget`]).
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<Header>, Partial> {
        let mut headers = Vec::new();
        let mut error = None;
        let mut kept = 0usize;
        let mut pos = 0usize;
        let mut fields = 0usize;
        while pos < block.len() {
            match self.field(block, &mut pos, fields == 0) {
                Ok(Some(h)) => {
                    fields += 1;
                    kept += h.0.len() + h.1.len();
                    if kept <= MAX_LIST_SIZE {
                        headers.push(h);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    fields += 1;
                    error.get_or_insert(e.error);
                    if e.stop {
                        self.forget();
                        break;
                    }
                }
            }
        }
        match error {
            None => Ok(headers),
            Some(error) => Err(Partial { headers, error }),
        }
    }

    /// The field at `pos` (advanced past it); `None` for a table size update.
    fn field(
        &mut self,
        block: &[u8],
        pos: &mut usize,
        first: bool,
    ) -> Result<Option<Header>, FieldError> {
        let stop = |error| FieldError { error, stop: true };
        let skip = |error| FieldError { error, stop: false };
        let b = block[*pos];
        if b & 0x80 != 0 {
            // Indexed field: when its entry is missing, skipped with the table unchanged.
            let index = integer(block, pos, 7).map_err(stop)?;
            return self.entry(index).map(Some).map_err(skip);
        }
        if b & 0xe0 == 0x20 {
            let size = integer(block, pos, 5).map_err(stop)?;
            self.max_size = (size as usize).min(MAX_TABLE_SIZE);
            self.evict(0);
            // Only allowed before the first field, but the encoder's table changed the same.
            return if first {
                Ok(None)
            } else {
                Err(skip(HpackError::LateSizeUpdate))
            };
        }
        // Literal: with incremental indexing (01), without (0000) or never indexed (0001).
        let (prefix, add) = if b & 0x40 != 0 { (6, true) } else { (4, false) };
        let index = integer(block, pos, prefix).map_err(stop)?;
        let name = if index == 0 {
            string(block, pos)
        } else {
            self.entry(index).map(|e| e.0)
        };
        let value = match name {
            Err(e @ (HpackError::Truncated | HpackError::Overflow)) => return Err(stop(e)),
            _ => string(block, pos),
        };
        match (name, value) {
            (_, Err(e @ (HpackError::Truncated | HpackError::Overflow))) => Err(stop(e)),
            (Ok(name), Ok(value)) => {
                if add {
                    self.add((name.clone(), value.clone()));
                }
                Ok(Some((name, value)))
            }
            (Err(error), _) | (_, Err(error)) => {
                // The entry it adds is not known: from here on only entries added later are.
                if add {
                    self.forget();
                }
                Err(skip(error))
            }
        }
    }

    fn entry(&self, index: u64) -> Result<Header, HpackError> {
        let i = index as usize;
        if (1..=STATIC_TABLE.len()).contains(&i) {
            let (n, v) = STATIC_TABLE[i - 1];
            return Ok((n.as_bytes().to_vec(), v.as_bytes().to_vec()));
        }
        i.checked_sub(STATIC_TABLE.len() + 1)
            .and_then(|d| self.table.get(d))
            .cloned()
            .ok_or(HpackError::BadIndex(index))
    }

    fn add(&mut self, header: Header) {
        let size = header.0.len() + header.1.len() + 32;
        self.evict(size);
        // An entry larger than the table empties it and is not added (RFC 7541 4.4).
        if size <= self.max_size {
            self.size += size;
            self.table.push_front(header);
        }
    }

    /// Evicts the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            match self.table.pop_back() {
                Some((n, v)) => self.size -= n.len() + v.len() + 32,
                None => break,
            }
        }
    }
}

/// An integer with an `n`-bit prefix (RFC 7541 5.1) at `pos`, advanced past it.
fn integer(block: &[u8], pos: &mut usize, n: u32) -> Result<u64, HpackError> {
    let mask = (1u64 << n) - 1;
    let first = *block.get(*pos).ok_or(HpackError::Truncated)? as u64 & mask;
    *pos += 1;
    if first < mask {
        return Ok(first);
    }
    let mut value = mask;
    let mut shift = 0u32;
    loop {
        let b = *block.get(*pos).ok_or(HpackError::Truncated)?;
        *pos += 1;
        // Past 2^35 no field or table size makes sense (frames are at most 16 MiB).
        if shift > 28 {
            return Err(HpackError::Overflow);
        }
        value += ((b & 0x7f) as u64) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
}

/// A string literal (RFC 7541 5.2) at `pos`, advanced past it.
fn string(block: &[u8], pos: &mut usize) -> Result<Vec<u8>, HpackError> {
    let huffman = *block.get(*pos).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = integer(block, pos, 7)? as usize;
    let bytes = block
        .get(*pos..pos.saturating_add(len))
        .ok_or(HpackError::Truncated)?;
    *pos += len;
    if !huffman {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::with_capacity(len * 8 / 5);
    huffman::decode(bytes, &mut out).map_err(|_| HpackError::Huffman)?;
    Ok(out)
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

    fn text(h: &Header) -> String {
        format!(
            "{}: {}",
            String::from_utf8_lossy(&h.0),
            String::from_utf8_lossy(&h.1)
        )
    }

    /// Decodes `block` and checks the header list, then the dynamic table and its size.
    fn check(d: &mut HpackDecoder, block: &str, list: &[&str], table: &[&str], size: usize) {
        let headers = d.decode(&hex(block)).unwrap();
        assert_eq!(headers.iter().map(text).collect::<Vec<_>>(), list);
        assert_eq!(d.entries().map(text).collect::<Vec<_>>(), table);
        assert_eq!(d.size(), size);
    }

    #[test]
    fn c2_field_representations() {
        let mut d = HpackDecoder::default();
        check(
            &mut d,
            "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
            &["custom-key: custom-header"],
            &["custom-key: custom-header"],
            55,
        );
        let mut d = HpackDecoder::default();
        check(
            &mut d,
            "040c 2f73 616d 706c 652f 7061 7468",
            &[":path: /sample/path"],
            &[],
            0,
        );
        let mut d = HpackDecoder::default();
        check(
            &mut d,
            "1008 7061 7373 776f 7264 0673 6563 7265 74",
            &["password: secret"],
            &[],
            0,
        );
        let mut d = HpackDecoder::default();
        check(&mut d, "82", &[":method: GET"], &[], 0);
    }

    const C3_REQUEST_1: [&str; 4] = [
        ":method: GET",
        ":scheme: http",
        ":path: /",
        ":authority: www.example.com",
    ];
    const C3_REQUEST_2: [&str; 5] = [
        ":method: GET",
        ":scheme: http",
        ":path: /",
        ":authority: www.example.com",
        "cache-control: no-cache",
    ];
    const C3_REQUEST_3: [&str; 5] = [
        ":method: GET",
        ":scheme: https",
        ":path: /index.html",
        ":authority: www.example.com",
        "custom-key: custom-value",
    ];
    const C3_TABLE_3: [&str; 3] = [
        "custom-key: custom-value",
        "cache-control: no-cache",
        ":authority: www.example.com",
    ];

    #[test]
    fn c3_requests_without_huffman() {
        let mut d = HpackDecoder::default();
        check(
            &mut d,
            "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            &C3_REQUEST_1,
            &[":authority: www.example.com"],
            57,
        );
        check(
            &mut d,
            "8286 84be 5808 6e6f 2d63 6163 6865",
            &C3_REQUEST_2,
            &["cache-control: no-cache", ":authority: www.example.com"],
            110,
        );
        check(
            &mut d,
            "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
            &C3_REQUEST_3,
            &C3_TABLE_3,
            164,
        );
    }

    #[test]
    fn c4_requests_with_huffman() {
        let mut d = HpackDecoder::default();
        check(
            &mut d,
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
            &C3_REQUEST_1,
            &[":authority: www.example.com"],
            57,
        );
        check(
            &mut d,
            "8286 84be 5886 a8eb 1064 9cbf",
            &C3_REQUEST_2,
            &["cache-control: no-cache", ":authority: www.example.com"],
            110,
        );
        check(
            &mut d,
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
            &C3_REQUEST_3,
            &C3_TABLE_3,
            164,
        );
    }

    const C5_RESPONSE_1: [&str; 4] = [
        ":status: 302",
        "cache-control: private",
        "date: Mon, 21 Oct 2013 20:13:21 GMT",
        "location: https://www.example.com",
    ];
    const C5_TABLE_1: [&str; 4] = [
        "location: https://www.example.com",
        "date: Mon, 21 Oct 2013 20:13:21 GMT",
        "cache-control: private",
        ":status: 302",
    ];
    const C5_RESPONSE_2: [&str; 4] = [
        ":status: 307",
        "cache-control: private",
        "date: Mon, 21 Oct 2013 20:13:21 GMT",
        "location: https://www.example.com",
    ];
    const C5_TABLE_2: [&str; 4] = [
        ":status: 307",
        "location: https://www.example.com",
        "date: Mon, 21 Oct 2013 20:13:21 GMT",
        "cache-control: private",
    ];
    const C5_RESPONSE_3: [&str; 6] = [
        ":status: 200",
        "cache-control: private",
        "date: Mon, 21 Oct 2013 20:13:22 GMT",
        "location: https://www.example.com",
        "content-encoding: gzip",
        "set-cookie: foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
    ];
    const C5_TABLE_3: [&str; 3] = [
        "set-cookie: foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
        "content-encoding: gzip",
        "date: Mon, 21 Oct 2013 20:13:22 GMT",
    ];

    #[test]
    fn c5_responses_without_huffman_evict() {
        let mut d = HpackDecoder::new(256);
        check(
            &mut d,
            "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 \
             2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 \
             6c65 2e63 6f6d",
            &C5_RESPONSE_1,
            &C5_TABLE_1,
            222,
        );
        check(
            &mut d,
            "4803 3330 37c1 c0bf",
            &C5_RESPONSE_2,
            &C5_TABLE_2,
            222,
        );
        check(
            &mut d,
            "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d \
             54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 \
             5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e \
             3d31",
            &C5_RESPONSE_3,
            &C5_TABLE_3,
            215,
        );
    }

    #[test]
    fn c6_responses_with_huffman_evict() {
        let mut d = HpackDecoder::new(256);
        check(
            &mut d,
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 \
             2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
            &C5_RESPONSE_1,
            &C5_TABLE_1,
            222,
        );
        check(
            &mut d,
            "4883 640e ffc1 c0bf",
            &C5_RESPONSE_2,
            &C5_TABLE_2,
            222,
        );
        check(
            &mut d,
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab \
             77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f \
             9587 3160 65c0 03ed 4ee5 b106 3d50 07",
            &C5_RESPONSE_3,
            &C5_TABLE_3,
            215,
        );
    }

    #[test]
    fn fields_that_do_not_decode_are_skipped() {
        let mut d = HpackDecoder::default();
        check(&mut d, "4001 6101 62", &["a: b"], &["a: b"], 34);
        // 63 is missing: skipped, the table unchanged, the next field decoded.
        let err = d.decode(&hex("bf 82 be")).unwrap_err();
        assert_eq!(err.error, HpackError::BadIndex(63));
        assert_eq!(
            err.headers.iter().map(text).collect::<Vec<_>>(),
            [":method: GET", "a: b"]
        );
        // A literal naming entry 63 adds an entry not known: the table is forgotten, and
        // what is added after is the encoder's newest.
        let err = d.decode(&hex("7f00 0178 4001 6301 64 be")).unwrap_err();
        assert_eq!(err.error, HpackError::BadIndex(63));
        assert_eq!(
            err.headers.iter().map(text).collect::<Vec<_>>(),
            ["c: d", "c: d"]
        );
        assert_eq!(d.entries().map(text).collect::<Vec<_>>(), ["c: d"]);
        // A cut block stops where it is cut and forgets the table.
        let err = d.decode(&hex("82 4003 61")).unwrap_err();
        assert_eq!(err.error, HpackError::Truncated);
        assert_eq!(
            err.headers.iter().map(text).collect::<Vec<_>>(),
            [":method: GET"]
        );
        assert_eq!(d.entries().count(), 0);
    }

    #[test]
    fn integers_follow_c1() {
        // C.1.2: 1337 with a 5-bit prefix; C.1.3: 42 on a whole byte.
        let mut pos = 0;
        assert_eq!(integer(&[0x1f, 0x9a, 0x0a], &mut pos, 5), Ok(1337));
        assert_eq!(pos, 3);
        let mut pos = 0;
        assert_eq!(integer(&[0x2a], &mut pos, 8), Ok(42));
        let mut pos = 0;
        assert_eq!(
            integer(&[0x1f, 0x9a], &mut pos, 5),
            Err(HpackError::Truncated)
        );
        let mut pos = 0;
        assert_eq!(
            integer(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], &mut pos, 5),
            Err(HpackError::Overflow)
        );
    }

    #[test]
    fn size_updates_evict_and_errors_forget_the_table() {
        let mut d = HpackDecoder::default();
        check(
            &mut d,
            "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
            &["custom-key: custom-header"],
            &["custom-key: custom-header"],
            55,
        );
        // Size 0 then back to 4096 empties the table, then `be` (62) refers to nothing.
        check(&mut d, "20 3fe1 1f 82", &[":method: GET"], &[], 0);
        let err = d.decode(&hex("82 be")).unwrap_err();
        assert_eq!(err.error, HpackError::BadIndex(62));
        assert_eq!(
            err.headers.iter().map(text).collect::<Vec<_>>(),
            [":method: GET"]
        );
        // Out of place, the size update is still followed.
        let err = d.decode(&hex("82 20")).unwrap_err();
        assert_eq!((err.error, d.max_size), (HpackError::LateSizeUpdate, 0));
        // A table size past the cap is capped.
        check(&mut d, "3fe1 ff1f", &[], &[], 0);
        assert_eq!(d.max_size, MAX_TABLE_SIZE);
    }
}
