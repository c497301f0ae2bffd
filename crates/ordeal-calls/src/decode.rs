//! The pass over a trace's events: connections, their directions, their exchanges.

use crate::conns::{Conns, Joined};
use crate::direction::{Direction, Role, Transfer};
use crate::{Call, CallStatus, Decoded, KvOp, KvResult, MAX_LABELS};
use ordeal_events::{calls, unescape_bytes, Event, Header, Proto};
use ordeal_proto::{Conversation, Exchange, Framed, Pairer, Protocol, Role as MsgRole, Side};
use std::collections::{HashMap, VecDeque};

/// Where and when a message's first byte was sent.
#[derive(Debug, Clone, Copy)]
struct Sent {
    seq: u64,
    ts: u64,
    /// The caller's process, when the transfer is the sender's own.
    pid: Option<i32>,
}

/// A call whose response's read may still come.
struct Pending {
    call: Call,
    /// The response still to be read: its sender's side and its end offset.
    awaiting: Option<(Side, u64)>,
    /// Where the request starts (its sender's side and offset) when it was framed from the
    /// receiver's read and its traced sender's write is still to come: the call waits for
    /// it ([`Decoder::sent_late`]).
    unsent_at: Option<(Side, u64)>,
}

/// One connection being decoded.
pub(crate) struct Conn {
    pub id: u64,
    /// Per side: its node (or workload), when traced or known by address.
    pub names: [Option<String>; 2],
    /// Per side: its address.
    pub addrs: [Option<String>; 2],
    /// Per side: whether its socket is traced.
    pub traced: [bool; 2],
    /// Per side: whether its socket was closed (and nothing came since).
    closed: [bool; 2],
    /// `None`: decoding switched off for this connection (`protocol = "none"`).
    conv: Option<Conversation>,
    pairer: Pairer,
    /// Index: the side whose bytes the direction carries.
    dirs: [Direction; 2],
    sent: HashMap<(Side, u64), Sent>,
    /// Messages framed from their receiver's bytes before their sender's write was seen: a
    /// read may complete (and take a lower `seq`) before the write that fed it returns. Their
    /// label and where they were sent from wait for that write (at most [`MAX_UNSENT`]).
    unsent: VecDeque<(Side, u64, String)>,
    pending: VecDeque<Pending>,
}

/// Messages per connection waiting for their sender's write (the oldest are dropped).
const MAX_UNSENT: usize = 64;

impl Conn {
    pub fn new(id: u64, protocol: Option<Option<&'static dyn Protocol>>) -> Conn {
        Conn {
            id,
            names: Default::default(),
            addrs: Default::default(),
            traced: [false; 2],
            closed: [false; 2],
            conv: protocol.map(Conversation::new),
            pairer: Pairer::default(),
            dirs: [Direction::new(Side::Client), Direction::new(Side::Server)],
            sent: HashMap::new(),
            unsent: VecDeque::new(),
            pending: VecDeque::new(),
        }
    }

    /// Side `side`'s socket is traced from now on.
    pub fn traced(&mut self, side: Side) {
        self.traced[side.index()] = true;
        self.dirs[side.index()].known[Role::Sender as usize] = true;
        self.dirs[side.other().index()].known[Role::Receiver as usize] = true;
    }

    fn name(&self, side: Side) -> String {
        self.names[side.index()]
            .clone()
            .or_else(|| self.addrs[side.index()].clone())
            .unwrap_or_else(|| "?".to_string())
    }
}

/// Decodes a trace's connections event by event ([`crate::decode_trace`] drives it).
pub struct Decoder {
    conns: Conns,
    live: HashMap<usize, Conn>,
    /// Connections whose every traced end was closed, oldest first: finished once more than
    /// [`MAX_CLOSED`] wait (a socket shared with a forked process may still be used after
    /// one process closes it: data on it takes the connection out of this list).
    closed: VecDeque<usize>,
    decoded: Decoded,
}

/// Closed connections kept open for late data before they are finished.
const MAX_CLOSED: usize = 256;

impl Decoder {
    /// A decoder for the trace whose header is `header`.
    pub fn new(header: &Header) -> Decoder {
        Decoder {
            conns: Conns::new(header),
            live: HashMap::new(),
            closed: VecDeque::new(),
            decoded: Decoded::default(),
        }
    }

    /// Takes the next event (in `seq` order); gives `each` the calls it completes.
    pub fn event(&mut self, ev: &Event, each: &mut impl FnMut(Call)) {
        self.conns.learn(ev);
        if ev.call == "close" {
            self.closing(ev, each);
            return;
        }
        let Some(dir) = calls::by_name(&ev.call).and_then(|c| c.direction()) else {
            return;
        };
        let (Some(sock), Some(off), Some(ret)) = (&ev.sock, ev.off, ev.ret) else {
            return;
        };
        if ret <= 0 || !matches!(sock.proto, Proto::Tcp | Proto::Unix) {
            return;
        }
        let joined = self.conns.join(sock, &ev.node);
        let (idx, side) = match joined {
            Joined::Existing(idx, side) => (idx, side),
            Joined::New {
                idx,
                side,
                replaces,
                conn,
            } => {
                if let Some(old) = replaces {
                    self.close(old, each);
                }
                self.decoded.connections += 1;
                self.live.insert(idx, *conn);
                (idx, side)
            }
        };
        for (j, jside, node) in std::mem::take(&mut self.conns.joins) {
            if let Some(c) = self.live.get_mut(&j) {
                c.traced(jside);
                if node.is_some() {
                    c.names[jside.index()] = node;
                }
                if c.addrs[jside.index()].is_none() {
                    c.addrs[jside.index()] = sock.local.clone();
                }
            }
        }
        let Some(conn) = self.live.get_mut(&idx) else {
            return;
        };
        conn.closed = [false; 2];
        let send = dir == ordeal_events::Direction::Send;
        let sender = if send { side } else { side.other() };
        let role = if send { Role::Sender } else { Role::Receiver };
        let head = ev.data.as_deref().map(unescape_bytes).unwrap_or_default();
        let t = Transfer {
            start: off,
            end: off + ret as u64,
            seq: ev.seq,
            ts: ev.ts,
            done: ev.ts + ev.dur,
            pid: ev.pid,
        };
        conn.dirs[sender.index()].transfer(role, t, &head);
        if send && !conn.unsent.is_empty() {
            Self::sent_late(conn, &mut self.decoded, sender, &t);
        }
        let Some(conv) = conn.conv.as_mut() else {
            return;
        };
        let frames = conn.dirs[sender.index()].pump(conv, false);
        Self::frames(conn, &mut self.decoded, frames);
        Self::emit(conn, &mut self.decoded, false, each);
    }

    /// A `close` of a connection's socket: once every traced end is closed the connection
    /// waits among the closed ones, and the oldest of those are finished.
    fn closing(&mut self, ev: &Event, each: &mut impl FnMut(Call)) {
        let Some(sock) = &ev.sock else {
            return;
        };
        let Some((idx, side)) = self.conns.end(sock.ino) else {
            return;
        };
        let Some(conn) = self.live.get_mut(&idx) else {
            return;
        };
        conn.closed[side.index()] = true;
        if (0..2).all(|i| conn.closed[i] || !conn.traced[i]) {
            self.closed.push_back(idx);
        }
        while self.closed.len() > MAX_CLOSED {
            let Some(old) = self.closed.pop_front() else {
                break;
            };
            let still = self
                .live
                .get(&old)
                .is_some_and(|c| (0..2).all(|i| c.closed[i] || !c.traced[i]));
            if still && !self.closed.contains(&old) {
                self.close(old, each);
            }
        }
    }

    /// The trace ended: every connection's last calls.
    pub fn finish(mut self, each: &mut impl FnMut(Call)) -> Decoded {
        let mut left: Vec<usize> = self.live.keys().copied().collect();
        left.sort_unstable();
        for idx in left {
            self.close(idx, each);
        }
        self.decoded
    }

    /// Connection `idx` can get no more bytes.
    fn close(&mut self, idx: usize, each: &mut impl FnMut(Call)) {
        let Some(mut conn) = self.live.remove(&idx) else {
            return;
        };
        self.conns.forget(idx);
        if let Some(mut conv) = conn.conv.take() {
            for side in [Side::Client, Side::Server] {
                let frames = conn.dirs[side.index()].pump(&mut conv, true);
                Self::frames(&mut conn, &mut self.decoded, frames);
            }
            let mut done = Vec::new();
            conn.pairer.finish(&mut done);
            Self::exchanges(&mut conn, done);
            if conv.protocol().is_some() {
                self.decoded.decoded_connections += 1;
                self.decoded.decoded_bytes += conn.dirs.iter().map(|d| d.moved()).sum::<u64>();
                self.decoded.undecoded_bytes += conv.undecoded();
            }
            conn.conv = Some(conv);
        }
        Self::emit(&mut conn, &mut self.decoded, true, each);
    }

    /// New frames: where they were sent from, their labels, their exchanges.
    fn frames(conn: &mut Conn, decoded: &mut Decoded, frames: Vec<Framed>) {
        let mut done = Vec::new();
        for f in frames {
            let d = &conn.dirs[f.side.index()];
            let own = d.find(Role::Sender, f.start);
            let sent = own
                .map(|t| Sent {
                    seq: t.seq,
                    ts: t.ts,
                    pid: Some(t.pid),
                })
                .or_else(|| {
                    d.find(Role::Receiver, f.start).map(|t| Sent {
                        seq: t.seq,
                        ts: t.ts,
                        pid: None,
                    })
                });
            match own {
                Some(t) => label(decoded, t.seq, &f.message.text),
                // Its write may come later in the trace (or never: an untraced sender).
                None => {
                    if conn.unsent.len() >= MAX_UNSENT {
                        conn.unsent.pop_front();
                    }
                    conn.unsent
                        .push_back((f.side, f.start, f.message.text.clone()));
                }
            }
            if let Some(sent) = sent {
                conn.sent.insert((f.side, f.start), sent);
            }
            conn.pairer.push(f, &mut done);
        }
        Self::exchanges(conn, done);
    }

    /// The sender's write `t` on `side` came after its bytes were framed from the receiver's
    /// reads: the messages it starts get their label and their sender.
    fn sent_late(conn: &mut Conn, decoded: &mut Decoded, side: Side, t: &Transfer) {
        conn.unsent.retain(|(s, start, text)| {
            if *s != side || !(t.start..t.end).contains(start) {
                return true;
            }
            label(decoded, t.seq, text);
            let sent = Sent {
                seq: t.seq,
                ts: t.ts,
                pid: Some(t.pid),
            };
            if let Some(s) = conn.sent.get_mut(&(side, *start)) {
                *s = sent;
            }
            // A call complete already (a one-way message, or answered) that waited for it.
            for p in conn.pending.iter_mut() {
                if p.unsent_at == Some((side, *start)) {
                    p.call.request_seq = Some(sent.seq);
                    p.call.request_ts = Some(sent.ts);
                    p.call.caller_pid = sent.pid;
                    p.unsent_at = None;
                }
            }
            false
        });
    }

    fn exchanges(conn: &mut Conn, done: Vec<Exchange>) {
        for x in done {
            let req = x.request;
            let sent = conn.sent.remove(&(req.side, req.start));
            let unsent_at = (sent.is_some_and(|s| s.pid.is_none())
                && conn.traced[req.side.index()])
            .then_some((req.side, req.start));
            if let Some(r) = &x.response {
                conn.sent.remove(&(r.side, r.start));
            }
            let status = match (req.message.role, &x.response) {
                (MsgRole::OneWay, _) => CallStatus::OneWay,
                (MsgRole::Response, _) => CallStatus::ResponseOnly,
                (MsgRole::Request, None) if x.missed => CallStatus::NotCaptured,
                (MsgRole::Request, None) => CallStatus::Unanswered,
                (MsgRole::Request, Some(_)) => CallStatus::Answered,
            };
            let truncated =
                req.message.truncated || x.response.as_ref().is_some_and(|r| r.message.truncated);
            let call = Call {
                conn: conn.id,
                protocol: String::new(),
                caller: conn.name(req.side),
                callee: conn.name(req.side.other()),
                caller_pid: sent.and_then(|s| s.pid),
                op: req.message.op,
                request: req.message.text,
                result: x.response.as_ref().map(|r| r.message.text.clone()),
                status,
                request_seq: sent.map(|s| s.seq),
                request_ts: sent.map(|s| s.ts),
                response_seq: None,
                response_ts: None,
                kv: req.message.kv_request.map(KvOp::from),
                kv_result: x
                    .response
                    .as_ref()
                    .and_then(|r| r.message.kv_response.clone())
                    .map(KvResult::from),
                truncated,
            };
            conn.pending.push_back(Pending {
                call,
                awaiting: x.response.map(|r| (r.side, r.end)),
                unsent_at,
            });
        }
    }

    /// Gives `each` the calls at the front that are complete (all of them at `end`).
    fn emit(conn: &mut Conn, decoded: &mut Decoded, end: bool, each: &mut impl FnMut(Call)) {
        let protocol = conn
            .conv
            .as_ref()
            .and_then(|c| c.protocol())
            .map(|p| p.name())
            .unwrap_or("?");
        while let Some(front) = conn.pending.front_mut() {
            let waits_for_write = front
                .unsent_at
                .is_some_and(|at| conn.unsent.iter().any(|(s, o, _)| (*s, *o) == at));
            if waits_for_write && !end {
                break;
            }
            if let Some((side, stop)) = front.awaiting {
                let d = &conn.dirs[side.index()];
                let last = stop.saturating_sub(1);
                let read = if conn.traced[side.other().index()] {
                    // The caller's own read, once it has read that far.
                    if d.reached(Role::Receiver, last) {
                        d.find(Role::Receiver, last)
                    } else if end {
                        front.call.status = CallStatus::Unread;
                        None
                    } else {
                        break;
                    }
                } else {
                    // The caller is not traced: the callee's write is all there is.
                    d.find(Role::Sender, last)
                };
                if let Some(t) = read {
                    front.call.response_seq = Some(t.seq);
                    front.call.response_ts = Some(t.done);
                }
                front.awaiting = None;
            }
            let Some(mut p) = conn.pending.pop_front() else {
                break;
            };
            p.call.protocol = protocol.to_string();
            *decoded.calls.entry(p.call.protocol.clone()).or_default() += 1;
            each(p.call);
        }
    }
}

/// Adds `text` to the label of transfer `seq`.
fn label(decoded: &mut Decoded, seq: u64, text: &str) {
    let full = decoded.labels.len() >= MAX_LABELS;
    match decoded.labels.get_mut(&seq) {
        Some(l) => {
            // One write holding several messages: the first two, then a count.
            if let Some(more) = l.rfind(" (+").filter(|_| l.ends_with(')')) {
                let n: u64 = l[more + 3..l.len() - 1].parse().unwrap_or(0);
                l.truncate(more);
                l.push_str(&format!(" (+{})", n + 1));
            } else if l.matches("; ").count() >= 1 {
                l.push_str(" (+1)");
            } else {
                l.push_str("; ");
                l.push_str(text);
            }
        }
        None if full => decoded.labels_left_out += 1,
        None => {
            decoded.labels.insert(seq, text.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_of_one_write_name_two_messages_then_count() {
        let mut d = Decoded::default();
        for text in ["SET k1 v1", "SET k2 v2", "SET k3 v3", "GET k1"] {
            label(&mut d, 7, text);
        }
        assert_eq!(d.labels[&7], "SET k1 v1; SET k2 v2 (+2)");
    }
}
