//! TODO(issue 14): the resp decoder (being written).

use crate::{Decoder, Detect, Parse, Protocol, Side};

/// The resp protocol.
pub struct Resp;

struct Undecided;

impl Protocol for Resp {
    fn name(&self) -> &'static str {
        "resp"
    }
    fn detect(&self, _side: Side, _first: &[u8]) -> Detect {
        Detect::No
    }
    fn decoder(&self) -> Box<dyn Decoder> {
        Box::new(Undecided)
    }
}

impl Decoder for Undecided {
    fn parse(&mut self, _side: Side, _buf: &[u8], _full: bool) -> Parse {
        Parse::Invalid
    }
}
