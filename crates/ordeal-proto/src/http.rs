//! TODO(issue 14): the http decoder (being written).

use crate::{Decoder, Detect, Parse, Protocol, Side};

/// The http protocol.
pub struct Http1;

struct Undecided;

impl Protocol for Http1 {
    fn name(&self) -> &'static str {
        "http"
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
