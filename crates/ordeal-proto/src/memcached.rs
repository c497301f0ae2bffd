//! TODO(issue 14): the memcached decoder (being written).

use crate::{Decoder, Detect, Parse, Protocol, Side};

/// The memcached protocol.
pub struct Memcached;

struct Undecided;

impl Protocol for Memcached {
    fn name(&self) -> &'static str {
        "memcached"
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
