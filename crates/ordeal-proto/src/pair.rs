//! Requests matched with their responses.

use std::collections::{BTreeMap, VecDeque};

use crate::{Framed, Role, Side};

/// Most requests of a side waiting for a response; past it the oldest is given up as
/// unanswered (a request whose response was lost would otherwise shift every later pair).
pub const MAX_PENDING: usize = 4096;

/// A request and its response, or a message alone: a one-way message, a request never
/// answered, a response whose request was not seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The request (or the message alone).
    pub request: Framed,
    /// Its response.
    pub response: Option<Framed>,
}

/// Pairs one connection's messages: a response answers the oldest unanswered request of
/// the other side, or the one with the same stream id.
#[derive(Default)]
pub struct Pairer {
    waiting: [VecDeque<Framed>; 2],
    streams: BTreeMap<(Side, u64), Framed>,
}

impl Pairer {
    /// Takes the next message of the connection (in the order the decoder gave them);
    /// appends to `out` the exchanges it completes.
    pub fn push(&mut self, framed: Framed, out: &mut Vec<Exchange>) {
        let side = framed.side;
        match framed.message.role {
            Role::OneWay => out.push(Exchange {
                request: framed,
                response: None,
            }),
            Role::Request => match framed.message.stream {
                Some(id) => {
                    if let Some(old) = self.streams.insert((side, id), framed) {
                        out.push(Exchange {
                            request: old,
                            response: None,
                        });
                    }
                    if self.streams.len() > MAX_PENDING {
                        if let Some((_, old)) = self.streams.pop_first() {
                            out.push(Exchange {
                                request: old,
                                response: None,
                            });
                        }
                    }
                }
                None => {
                    let q = &mut self.waiting[side.index()];
                    q.push_back(framed);
                    if q.len() > MAX_PENDING {
                        if let Some(old) = q.pop_front() {
                            out.push(Exchange {
                                request: old,
                                response: None,
                            });
                        }
                    }
                }
            },
            Role::Response => {
                let asked = side.other();
                let request = match framed.message.stream {
                    Some(id) => self.streams.remove(&(asked, id)),
                    None => self.waiting[asked.index()].pop_front(),
                };
                out.push(match request {
                    Some(request) => Exchange {
                        request,
                        response: Some(framed),
                    },
                    None => Exchange {
                        request: framed,
                        response: None,
                    },
                });
            }
        }
    }

    /// The connection ended: every request still waiting, unanswered, in the order they
    /// were sent.
    pub fn finish(&mut self, out: &mut Vec<Exchange>) {
        let mut left: Vec<Framed> = self.waiting.iter_mut().flat_map(|q| q.drain(..)).collect();
        left.extend(std::mem::take(&mut self.streams).into_values());
        left.sort_by_key(|f| (f.start, f.side));
        out.extend(left.into_iter().map(|request| Exchange {
            request,
            response: None,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    fn msg(side: Side, role: Role, text: &str, stream: Option<u64>, start: u64) -> Framed {
        let mut message = Message::new(role, text, text);
        message.stream = stream;
        Framed {
            side,
            start,
            end: start + 1,
            message,
        }
    }

    fn pairs(out: &[Exchange]) -> Vec<(String, Option<String>)> {
        out.iter()
            .map(|x| {
                (
                    x.request.message.text.clone(),
                    x.response.as_ref().map(|r| r.message.text.clone()),
                )
            })
            .collect()
    }

    #[test]
    fn responses_answer_requests_in_order_or_by_stream() {
        let (c, s) = (Side::Client, Side::Server);
        let mut p = Pairer::default();
        let mut out = Vec::new();
        for f in [
            msg(c, Role::Request, "a", None, 0),
            msg(c, Role::Request, "b", None, 1),
            msg(s, Role::OneWay, "push", None, 0),
            msg(s, Role::Response, "A", None, 1),
            msg(c, Role::Request, "s3", Some(3), 2),
            msg(c, Role::Request, "s5", Some(5), 3),
            msg(s, Role::Response, "S5", Some(5), 2),
            msg(s, Role::Response, "B", None, 3),
            msg(s, Role::Response, "orphan", None, 4),
        ] {
            p.push(f, &mut out);
        }
        p.finish(&mut out);
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            pairs(&out),
            [
                ("push".into(), None),
                ("a".into(), some("A")),
                ("s5".into(), some("S5")),
                ("b".into(), some("B")),
                ("orphan".into(), None),
                ("s3".into(), None),
            ]
        );
    }
}
