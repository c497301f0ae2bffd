//! HTTP/2 framing (RFC 9113 section 4 and 6): the connection preface and frame headers.

/// What a client sends first on a cleartext HTTP/2 connection with prior knowledge.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Bytes of a frame header.
pub const HEADER_LEN: usize = 9;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

/// Largest frame payload a peer sends unless it raised SETTINGS_MAX_FRAME_SIZE.
pub const DEFAULT_MAX_FRAME: u32 = 16384;

pub const FLAG_END_STREAM: u8 = 0x1;
pub const FLAG_ACK: u8 = 0x1;
pub const FLAG_END_HEADERS: u8 = 0x4;
pub const FLAG_PADDED: u8 = 0x8;
pub const FLAG_PRIORITY: u8 = 0x20;

/// A frame's 9-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload bytes after the header.
    pub length: u32,
    pub kind: u8,
    pub flags: u8,
    /// The stream (reserved bit cleared); 0 is the connection.
    pub stream: u32,
}

impl FrameHeader {
    /// The header at the start of `buf`, if it holds 9 bytes.
    pub fn parse(buf: &[u8]) -> Option<FrameHeader> {
        let h = buf.get(..HEADER_LEN)?;
        Some(FrameHeader {
            length: u32::from_be_bytes([0, h[0], h[1], h[2]]),
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        })
    }

    /// Whether the header is one a peer may send: the stream (or none) its type needs and
    /// the fixed lengths of fixed-size frames. `strict` (after lost bytes, where a frame
    /// header is a guess): also no unknown type or flag, and no frame longer than the
    /// default maximum (peers rarely raise it).
    pub fn plausible(&self, strict: bool) -> bool {
        if strict {
            let flags = match self.kind {
                DATA => FLAG_END_STREAM | FLAG_PADDED,
                HEADERS => FLAG_END_STREAM | FLAG_END_HEADERS | FLAG_PADDED | FLAG_PRIORITY,
                PUSH_PROMISE => FLAG_END_HEADERS | FLAG_PADDED,
                CONTINUATION => FLAG_END_HEADERS,
                SETTINGS | PING => FLAG_ACK,
                _ => 0,
            };
            if self.flags & !flags != 0 || self.length > DEFAULT_MAX_FRAME {
                return false;
            }
        }
        let on_connection = self.stream == 0;
        match self.kind {
            DATA | HEADERS | CONTINUATION | PUSH_PROMISE => !on_connection,
            PRIORITY => !on_connection && self.length == 5,
            RST_STREAM => !on_connection && self.length == 4,
            SETTINGS => on_connection && self.length.is_multiple_of(6),
            PING => on_connection && self.length == 8,
            GOAWAY => on_connection && self.length >= 8,
            WINDOW_UPDATE => self.length == 4,
            // Extension frames are ignored (RFC 9113 4.1) unless this may not be a frame.
            _ => !strict,
        }
    }
}

/// The content of a DATA or HEADERS payload without its padding and priority fields; `None`
/// when the padding is longer than the payload. `payload` may be only the frame's head
/// (`length` is the whole payload's): the padding is then cut from what is there.
pub fn content<'a>(header: &FrameHeader, payload: &'a [u8]) -> Option<&'a [u8]> {
    let mut skip = 0usize;
    let mut pad = 0usize;
    if header.flags & FLAG_PADDED != 0 {
        pad = *payload.first()? as usize;
        skip = 1;
    }
    if header.kind == HEADERS && header.flags & FLAG_PRIORITY != 0 {
        skip += 5;
    }
    let end = (header.length as usize).checked_sub(pad)?;
    if skip > end {
        return None;
    }
    Some(&payload[skip.min(payload.len())..end.min(payload.len())])
}

/// RST_STREAM and GOAWAY error codes (RFC 9113 section 7).
pub fn error_name(code: u32) -> &'static str {
    match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_padding_is_stripped() {
        let h = FrameHeader::parse(&[0, 0, 8, HEADERS, 0x2c, 0x80, 0, 0, 3]).unwrap();
        assert_eq!(
            h,
            FrameHeader {
                length: 8,
                kind: HEADERS,
                flags: FLAG_PADDED | FLAG_PRIORITY | FLAG_END_HEADERS,
                stream: 3
            }
        );
        assert!(h.plausible(true));
        // Pad length 1, 5 bytes of priority, one byte of block, one of padding.
        let payload = [1, 0, 0, 0, 0, 16, 0x82, 0];
        assert_eq!(content(&h, &payload), Some(&[0x82][..]));
        // Only the head seen: the padding is cut from what is there.
        assert_eq!(content(&h, &payload[..7]), Some(&[0x82][..]));
        assert_eq!(content(&h, &[9, 0, 0, 0, 0, 0, 0, 0]), None);
        let data = FrameHeader {
            length: 3,
            kind: DATA,
            flags: FLAG_PADDED,
            stream: 1,
        };
        assert_eq!(content(&data, &[2, 0, 0]), Some(&[][..]));
        assert_eq!(content(&data, &[3, 0, 0]), None);
    }

    #[test]
    fn implausible_headers_are_refused() {
        let h = |length, kind, stream| FrameHeader {
            length,
            kind,
            flags: 0,
            stream,
        };
        assert!(!h(0, SETTINGS, 1).plausible(false));
        assert!(!h(7, SETTINGS, 0).plausible(false));
        assert!(!h(0, DATA, 0).plausible(false));
        assert!(!h(3, RST_STREAM, 1).plausible(false));
        assert!(h(4, WINDOW_UPDATE, 0).plausible(true));
        assert!(h(4, 0x20, 0).plausible(false));
        assert!(!h(4, 0x20, 0).plausible(true));
        // After lost bytes: no unknown flag, no frame past the default maximum.
        let odd = FrameHeader {
            length: 4,
            kind: DATA,
            flags: 0x40,
            stream: 1,
        };
        assert!(odd.plausible(false) && !odd.plausible(true));
        assert!(h(16384, DATA, 1).plausible(true));
        assert!(h(16385, DATA, 1).plausible(false) && !h(16385, DATA, 1).plausible(true));
    }
}
