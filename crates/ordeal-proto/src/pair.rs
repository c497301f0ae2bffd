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
    /// Given up without a response because bytes of the other side were missed since it
    /// was sent: its response may have been among them (see [`Pairer`]).
    pub missed: bool,
}

/// Pairs one connection's messages: a response answers the oldest unanswered request of
/// the other side, or the one with the same stream id.
///
/// Responses in order are paired by counting, so one missed would pair every later response
/// with the request before its own. Bytes missed on a side (not captured, or not a frame)
/// may hold responses: when a response in order comes after such bytes
/// ([`Framed::after_loss`]), the requests waiting are given up as unanswered (their
/// responses may be in those bytes) and it stands alone. A few calls lose their response;
/// none gets another's.
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
                missed: false,
            }),
            Role::Request => match framed.message.stream {
                Some(id) => {
                    if let Some(old) = self.streams.insert((side, id), framed) {
                        out.push(Exchange {
                            request: old,
                            response: None,
                            missed: false,
                        });
                    }
                    if self.streams.len() > MAX_PENDING {
                        if let Some((_, old)) = self.streams.pop_first() {
                            out.push(Exchange {
                                request: old,
                                response: None,
                                missed: false,
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
                                missed: false,
                            });
                        }
                    }
                }
            },
            Role::Response => {
                let asked = side.other();
                if framed.after_loss && framed.message.stream.is_none() {
                    out.extend(
                        self.waiting[asked.index()]
                            .drain(..)
                            .map(|request| Exchange {
                                request,
                                response: None,
                                missed: true,
                            }),
                    );
                }
                let request = match framed.message.stream {
                    Some(id) => self.streams.remove(&(asked, id)),
                    None => self.waiting[asked.index()].pop_front(),
                };
                out.push(match request {
                    Some(request) => Exchange {
                        request,
                        response: Some(framed),
                        missed: false,
                    },
                    None => Exchange {
                        request: framed,
                        response: None,
                        missed: false,
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
            missed: false,
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
            after_loss: false,
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

    /// A response in bytes not captured: the next response would answer the request before
    /// its own. Those waiting are given up instead, and the one after the gap stands alone.
    #[test]
    fn a_response_after_bytes_no_frame_covers_answers_nothing_it_might_not() {
        let (c, s) = (Side::Client, Side::Server);
        let mut p = Pairer::default();
        let mut out = Vec::new();
        let at = |side, role, text: &str, start: u64, end: u64| {
            let mut f = msg(side, role, text, None, start);
            f.end = end;
            // 7 bytes before it were not captured.
            f.after_loss = start == 5179;
            f
        };
        for f in [
            at(c, Role::Request, "INFO", 0, 14),
            at(c, Role::Request, "PING", 14, 28),
            // INFO's reply, measured by its header; PING's +PONG (7 bytes) was not captured.
            at(s, Role::Response, "# Server", 0, 5172),
            at(c, Role::Request, "PUBLISH", 28, 155),
            at(s, Role::Response, ":3", 5179, 5183),
            at(c, Role::Request, "PING", 155, 169),
            at(s, Role::Response, "+PONG", 5183, 5190),
        ] {
            p.push(f, &mut out);
        }
        p.finish(&mut out);
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            pairs(&out),
            [
                ("INFO".into(), some("# Server")),
                ("PING".into(), None),
                ("PUBLISH".into(), None),
                (":3".into(), None),
                ("PING".into(), some("+PONG")),
            ]
        );
    }
}
