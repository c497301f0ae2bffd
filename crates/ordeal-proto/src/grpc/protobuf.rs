//! Protocol buffers wire format, read only: fields one at a time, unknown ones skipped by
//! the caller. A message cut short (longer than what was kept) yields the fields before the
//! cut, the last length-delimited one possibly partial.

/// A field's value as the wire has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Wire type 0: ints, bools, enums.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: bytes, strings, nested messages, packed repeated fields.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

impl<'a> Value<'a> {
    pub fn varint(self) -> Option<u64> {
        match self {
            Value::Varint(v) => Some(v),
            _ => None,
        }
    }
    pub fn bytes(self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// The fields of a message, in wire order.
pub struct Fields<'a> {
    buf: &'a [u8],
}

/// Reads the fields of `message`.
pub fn fields(message: &[u8]) -> Fields<'_> {
    Fields { buf: message }
}

impl<'a> Iterator for Fields<'a> {
    /// Field number and value.
    type Item = (u64, Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let (key, n) = varint(self.buf)?;
        let rest = &self.buf[n..];
        let number = key >> 3;
        let (value, used) = match key & 7 {
            0 => {
                let (v, n) = varint(rest)?;
                (Value::Varint(v), n)
            }
            1 => (
                Value::Fixed64(u64::from_le_bytes(rest.get(..8)?.try_into().ok()?)),
                8,
            ),
            2 => {
                let (len, n) = varint(rest)?;
                let body = &rest[n..];
                // A value cut by the end of what was kept: its head, and nothing after.
                let len = usize::try_from(len).unwrap_or(usize::MAX).min(body.len());
                (Value::Bytes(&body[..len]), n + len)
            }
            5 => (
                Value::Fixed32(u32::from_le_bytes(rest.get(..4)?.try_into().ok()?)),
                4,
            ),
            // Groups (3, 4) are long deprecated; 6 and 7 do not exist: not a message.
            _ => return None,
        };
        if number == 0 {
            return None;
        }
        self.buf = &rest[used..];
        Some((number, value))
    }
}

/// A base-128 varint at the start of `buf` and its length in bytes.
pub fn varint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        value |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields_read() {
        assert_eq!(varint(&[0x96, 0x01]), Some((150, 2)));
        assert_eq!(varint(&[0x80]), None);
        assert_eq!(varint(&[0xff; 11]), None);
        assert_eq!(
            varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Some((u64::MAX, 10))
        );
        // 1: varint 7, 2: bytes "ab", 3: fixed32, 4: fixed64.
        let msg = [
            0x08, 0x07, 0x12, 0x02, b'a', b'b', 0x1d, 1, 0, 0, 0, 0x21, 2, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            fields(&msg).collect::<Vec<_>>(),
            [
                (1, Value::Varint(7)),
                (2, Value::Bytes(b"ab")),
                (3, Value::Fixed32(1)),
                (4, Value::Fixed64(2))
            ]
        );
    }

    #[test]
    fn a_cut_message_yields_its_head() {
        // Field 2 says 5 bytes, 3 are there.
        let msg = [0x08, 0x01, 0x12, 0x05, b'a', b'b', b'c'];
        assert_eq!(
            fields(&msg).collect::<Vec<_>>(),
            [(1, Value::Varint(1)), (2, Value::Bytes(b"abc"))]
        );
        // A group, field 0, a varint cut: stop.
        assert_eq!(fields(&[0x0b, 0x00]).count(), 0);
        assert_eq!(fields(&[0x00, 0x00]).count(), 0);
        assert_eq!(fields(&[0x08, 0x80]).count(), 0);
    }
}
