//! One connection's bytes through its decoder: reassembly across transfers, splitting of
//! several frames per transfer, skipping what was not seen, bounded buffers.

use crate::{detect_among, Decoder, Detection, Message, Parse, Protocol, Side};

/// Most bytes a direction buffers while a frame is incomplete. A longer frame is decoded
/// from its head (`full` in [`Decoder::parse`]) and its rest skipped.
pub const MAX_BUFFER: usize = 64 * 1024;

/// Most bytes of a connection's first transfer kept to detect its protocol.
const DETECT_MAX: usize = 256;

/// A decoded frame and where it is in its direction's byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed {
    /// Who sent it.
    pub side: Side,
    /// Offset of its first byte in `side`'s stream.
    pub start: u64,
    /// Offset just past its last byte.
    pub end: u64,
    /// What it is.
    pub message: Message,
    /// Bytes of its side were missed since the frame before (not captured, or not a
    /// frame): messages may have been among them.
    pub after_loss: bool,
}

#[derive(Default)]
struct Direction {
    /// Offset of the next byte expected.
    next: u64,
    /// Bytes not framed yet; `buf[0]` is at offset `buf_start`.
    buf: Vec<u8>,
    buf_start: u64,
    /// Bytes of the current frame still to come, skipped unseen.
    skip: u64,
    /// Bytes were missed outside a frame being skipped: wait for a transfer boundary.
    lost: bool,
    /// Bytes were missed since the last frame ([`Framed::after_loss`]).
    missed: bool,
}

enum State {
    /// Protocol not known yet: waiting for the first bytes.
    Detecting,
    Decoding(Box<dyn Decoder>),
    /// No protocol: the connection stays bytes.
    Bytes,
}

/// Decodes one connection as its bytes come, in each direction's order.
pub struct Conversation {
    state: State,
    protocol: Option<&'static dyn Protocol>,
    /// What detection tries.
    candidates: &'static [&'static dyn Protocol],
    sides: [Direction; 2],
    /// Bytes no message covers: missed, or skipped while waiting for a transfer that parses.
    undecoded: u64,
}

impl Conversation {
    /// A conversation in `protocol`, or detected from the first bytes when `None`.
    pub fn new(protocol: Option<&'static dyn Protocol>) -> Conversation {
        Conversation {
            state: match protocol {
                Some(p) => State::Decoding(p.decoder()),
                None => State::Detecting,
            },
            protocol,
            candidates: crate::PROTOCOLS,
            sides: Default::default(),
            undecoded: 0,
        }
    }

    /// A conversation whose protocol is detected among `candidates` only.
    pub fn detecting_among(candidates: &'static [&'static dyn Protocol]) -> Conversation {
        Conversation {
            candidates,
            ..Conversation::new(None)
        }
    }

    /// Bytes of either direction no message covers: not captured, or skipped until a transfer
    /// that parses (0 while the protocol is unknown: such bytes are not counted).
    pub fn undecoded(&self) -> u64 {
        self.undecoded
    }

    /// The protocol, once known.
    pub fn protocol(&self) -> Option<&'static dyn Protocol> {
        self.protocol
    }

    /// Bytes `side` sent, starting at offset `at` of its stream. `boundary`: they start a
    /// transfer as the sender made it (a write's first byte), where decoding may pick up
    /// after missed bytes. Chunks of a side come in offset order; a chunk overlapping bytes
    /// already fed is trimmed, one starting past them marks the bytes between as missed.
    /// Returns the frames this completes (or starts, for frames longer than the buffer).
    pub fn feed(&mut self, side: Side, at: u64, bytes: &[u8], boundary: bool) -> Vec<Framed> {
        let mut out = Vec::new();
        let d = &mut self.sides[side.index()];
        let end = at + bytes.len() as u64;
        if end <= d.next {
            return out;
        }
        let (mut bytes, mut boundary) = (bytes, boundary);
        if at < d.next {
            bytes = &bytes[(d.next - at) as usize..];
            boundary = false;
        } else if at > d.next {
            let gap = at - d.next;
            if d.skip == 0 && !d.buf.is_empty() {
                // The capture of a transfer ended inside a frame (a transfer longer than what
                // is recorded of it): the frame is decoded from its head, and when its length
                // is known (a bulk's header) the bytes not seen are its rest, skipped.
                if let State::Decoding(dec) = &mut self.state {
                    let dropped = Self::frames(dec.as_mut(), side, d, &mut out, true);
                    self.undecoded += dropped;
                }
            }
            if d.skip >= gap {
                d.skip -= gap;
            } else {
                if matches!(self.state, State::Decoding(_)) {
                    self.undecoded += gap - d.skip + d.buf.len() as u64;
                }
                d.skip = 0;
                d.lost = true;
                d.missed = true;
                d.buf.clear();
                if let State::Decoding(dec) = &mut self.state {
                    dec.lost(side);
                }
            }
        }
        d.next = end;
        if d.skip > 0 {
            let k = d.skip.min(bytes.len() as u64);
            d.skip -= k;
            bytes = &bytes[k as usize..];
            if bytes.is_empty() {
                return out;
            }
            d.buf_start = d.next - bytes.len() as u64;
        }
        if d.lost {
            if !boundary {
                self.undecoded += bytes.len() as u64;
                return out;
            }
            d.lost = false;
            d.buf.clear();
        }
        if d.buf.is_empty() {
            d.buf_start = d.next - bytes.len() as u64;
        }
        if let State::Detecting = self.state {
            if !self.detect(side, bytes, boundary) {
                return out;
            }
        }
        let State::Decoding(dec) = &mut self.state else {
            return out;
        };
        let d = &mut self.sides[side.index()];
        while !bytes.is_empty() {
            if d.skip > 0 {
                let k = d.skip.min(bytes.len() as u64);
                d.skip -= k;
                bytes = &bytes[k as usize..];
                d.buf_start = d.next - bytes.len() as u64;
                continue;
            }
            let room = MAX_BUFFER - d.buf.len();
            let take = room.min(bytes.len());
            d.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            let dropped = Self::frames(dec.as_mut(), side, d, &mut out, false);
            if d.lost {
                // What the decoder could not take, and the rest of this transfer.
                self.undecoded += dropped + bytes.len() as u64;
                break;
            }
        }
        out
    }

    /// Detects the protocol from `side`'s first bytes; true once decoding can start.
    fn detect(&mut self, side: Side, bytes: &[u8], boundary: bool) -> bool {
        let d = &mut self.sides[side.index()];
        if !boundary && d.buf.is_empty() {
            // The connection's start was missed: nothing to recognize.
            self.state = State::Bytes;
            return false;
        }
        let mut first = d.buf.clone();
        first.extend_from_slice(&bytes[..bytes.len().min(DETECT_MAX)]);
        match detect_among(self.candidates, side, &first) {
            Detection::Found(p) => {
                self.protocol = Some(p);
                self.state = State::Decoding(p.decoder());
                // What was kept for detection stays in the buffer as the frame's start.
                true
            }
            Detection::NeedMore if first.len() < DETECT_MAX => {
                let d = &mut self.sides[side.index()];
                d.buf.extend_from_slice(bytes);
                false
            }
            _ => {
                self.state = State::Bytes;
                self.sides[side.index()].buf = Vec::new();
                false
            }
        }
    }

    /// Frames at the start of `d.buf`, as many as it holds; the bytes dropped when the rest
    /// is not a frame. `cut`: no more bytes of the frame being read will come (the capture
    /// ended), so it is decoded from what is there.
    fn frames(
        dec: &mut dyn Decoder,
        side: Side,
        d: &mut Direction,
        out: &mut Vec<Framed>,
        cut: bool,
    ) -> u64 {
        let mut pos = 0usize;
        while pos < d.buf.len() {
            let rest = &d.buf[pos..];
            let full = cut || (pos == 0 && rest.len() >= MAX_BUFFER);
            match dec.parse(side, rest, full) {
                Parse::Need if !full => break,
                Parse::Frame { len, message } if len > 0 => {
                    let start = d.buf_start + pos as u64;
                    if let Some(message) = message {
                        out.push(Framed {
                            side,
                            start,
                            end: start + len,
                            message,
                            after_loss: std::mem::take(&mut d.missed),
                        });
                    }
                    if len > rest.len() as u64 {
                        d.skip = len - rest.len() as u64;
                        pos = d.buf.len();
                    } else {
                        pos += len as usize;
                    }
                }
                _ => {
                    // Not a frame (or a decoder that cannot make progress): pick up at the
                    // next transfer.
                    let dropped = (d.buf.len() - pos) as u64;
                    d.lost = true;
                    d.missed = true;
                    d.buf.clear();
                    dec.lost(side);
                    return dropped;
                }
            }
        }
        d.buf.drain(..pos);
        d.buf_start += pos as u64;
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Detect, Role};

    /// Frames are `len:payload` with a one-digit length; `!` is not a frame.
    struct Digits;
    struct DigitsDecoder;
    impl Protocol for Digits {
        fn name(&self) -> &'static str {
            "digits"
        }
        fn detect(&self, _: Side, first: &[u8]) -> Detect {
            match first.first() {
                Some(b'0'..=b'9') => Detect::Yes,
                Some(_) => Detect::No,
                None => Detect::Maybe,
            }
        }
        fn decoder(&self) -> Box<dyn Decoder> {
            Box::new(DigitsDecoder)
        }
    }
    impl Decoder for DigitsDecoder {
        fn parse(&mut self, _: Side, buf: &[u8], _full: bool) -> Parse {
            match buf.first() {
                Some(c @ b'0'..=b'9') => {
                    let n = (c - b'0') as usize;
                    if buf.len() < 2 + n {
                        return Parse::Need;
                    }
                    let text = String::from_utf8_lossy(&buf[2..2 + n]).into_owned();
                    Parse::Frame {
                        len: 2 + n as u64,
                        message: Some(Message::new(Role::Request, "D", text)),
                    }
                }
                _ => Parse::Invalid,
            }
        }
    }
    static DIGITS: Digits = Digits;

    fn texts(frames: &[Framed]) -> Vec<(String, u64, u64)> {
        frames
            .iter()
            .map(|f| (f.message.text.clone(), f.start, f.end))
            .collect()
    }

    #[test]
    fn frames_split_anywhere_decode_the_same() {
        let stream = b"3:abc1:x5:hello";
        let whole = Conversation::new(Some(&DIGITS)).feed(Side::Client, 0, stream, true);
        assert_eq!(
            texts(&whole),
            [
                ("abc".into(), 0, 5),
                ("x".into(), 5, 8),
                ("hello".into(), 8, 15)
            ]
        );
        for cut in 0..=stream.len() {
            for cut2 in cut..=stream.len() {
                let mut c = Conversation::new(Some(&DIGITS));
                let mut got = c.feed(Side::Client, 0, &stream[..cut], true);
                got.extend(c.feed(Side::Client, cut as u64, &stream[cut..cut2], false));
                got.extend(c.feed(Side::Client, cut2 as u64, &stream[cut2..], false));
                assert_eq!(texts(&got), texts(&whole), "cut at {cut} and {cut2}");
            }
        }
    }

    #[test]
    fn missed_bytes_resume_at_the_next_transfer_that_parses() {
        let mut c = Conversation::new(Some(&DIGITS));
        assert_eq!(texts(&c.feed(Side::Client, 0, b"3:a", true)), []);
        // Bytes 3..6 missed; the chunk at 6 starts a transfer but is not a frame; 9 is.
        assert_eq!(texts(&c.feed(Side::Client, 6, b"!!!", true)), []);
        assert_eq!(texts(&c.feed(Side::Client, 9, b"xy1:z", false)), []);
        assert_eq!(
            texts(&c.feed(Side::Client, 14, b"2:ok", true)),
            [("ok".into(), 14, 18)]
        );
        // 3 kept of the cut frame, 3 missed, 3 not a frame, 5 not at a boundary.
        assert_eq!(c.undecoded(), 14);
    }

    #[test]
    fn overlapping_chunks_are_trimmed_and_detection_keeps_the_first_bytes() {
        static ONLY_DIGITS: &[&dyn Protocol] = &[&DIGITS];
        let mut c = Conversation::detecting_among(ONLY_DIGITS);
        let got = c.feed(Side::Server, 0, b"2:ab", true);
        assert_eq!(c.protocol().map(|p| p.name()), Some("digits"));
        assert_eq!(texts(&got), [("ab".into(), 0, 4)]);
        assert_eq!(
            texts(&c.feed(Side::Server, 2, b"ab1:c", false)),
            [("c".into(), 4, 7)]
        );
    }

    #[test]
    fn bytes_missed_inside_a_frame_being_skipped_are_not_a_loss() {
        struct Long;
        impl Decoder for Long {
            fn parse(&mut self, _: Side, buf: &[u8], _: bool) -> Parse {
                // `L` frames are 100 bytes, `s` frames 1.
                match buf[0] {
                    b'L' => Parse::Frame {
                        len: 100,
                        message: Some(Message::new(Role::OneWay, "L", "long")),
                    },
                    b's' => Parse::Frame {
                        len: 1,
                        message: Some(Message::new(Role::OneWay, "s", "short")),
                    },
                    _ => Parse::Invalid,
                }
            }
        }
        let mut c = Conversation {
            state: State::Decoding(Box::new(Long)),
            protocol: None,
            candidates: &[],
            sides: Default::default(),
            undecoded: 0,
        };
        assert_eq!(
            texts(&c.feed(Side::Client, 0, b"Lxxx", true)),
            [("long".into(), 0, 100)]
        );
        // 4..90 never seen (a capture shorter than the transfer): still in the frame.
        assert_eq!(
            texts(&c.feed(Side::Client, 90, b"0123456789s", false)),
            [("short".into(), 100, 101)]
        );
        assert_eq!(c.undecoded(), 0);
    }
}
