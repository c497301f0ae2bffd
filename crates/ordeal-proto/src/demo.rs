//! TODO(issue 14): the demo-kv decoder (being written).

use crate::{Decoder, Detect, Parse, Protocol, Side};

/// The demo-kv protocol.
pub struct DemoKv;

struct Undecided;

impl Protocol for DemoKv {
    fn name(&self) -> &'static str {
        "demo-kv"
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
