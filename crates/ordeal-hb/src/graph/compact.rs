//! The compact event form the graph is built from: what the passes and the outputs' cross-event
//! lookups read, with strings, sockets, tasks (node, pid, tid) and (errno, address) pairs
//! interned. 56 bytes an event, where an owned
//! [`Event`] costs 600 and more; fields only printed (paths, flags, payloads) are not kept and
//! the outputs read them from the events themselves, streamed in `seq` order.
//!
//! Invariant: `evs[i]` describes the `i`-th event in `seq` order; `kept` holds the whole events
//! the summary reads (process lifecycle), by index.

use ordeal_events::{calls, CallSpec, Class, Direction, Event, FileOp, Sock, SocketOp, Step};
use std::collections::HashMap;

/// Id of an absent string or socket.
const NONE: u32 = u32::MAX;

const HAS_RET: u8 = 1;
const HAS_OFF: u8 = 2;
const HAS_CHILD: u8 = 4;
const HAS_FAULT: u8 = 8;
/// `ret` does not fit in 32 bits: it is in [`EventTable::wide_ret`].
const WIDE_RET: u8 = 16;
/// `dur` does not fit in 32 bits: it is in [`EventTable::wide_dur`].
const WIDE_DUR: u8 = 32;

/// One event, compact. Tasks, call names, (errno, address) pairs and sockets are ids into
/// [`EventTable`]; return values and
/// durations take 32 bits (byte counts, errors and sub-4-second calls), the rare wider ones and
/// the children of fork calls are kept aside by index.
#[derive(Debug, Clone)]
pub(crate) struct Ev {
    pub(crate) seq: u64,
    pub(crate) ts: u64,
    off: u64,
    ret: i32,
    dur: u32,
    /// Into `tasks`.
    task: u32,
    call: u32,
    /// Into `details`, or `NONE` when the event has neither an errno nor an address.
    detail: u32,
    sock: u32,
    class: Option<Class>,
    has: u8,
}

/// What the graph keeps of a trace's events.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventTable {
    pub(crate) evs: Vec<Ev>,
    strings: Vec<Box<str>>,
    string_ids: HashMap<Box<str>, u32>,
    socks: Vec<Sock>,
    sock_ids: HashMap<Sock, u32>,
    /// `(node, pid, tid)`: few, as threads are.
    tasks: Vec<(u32, i32, i32)>,
    task_ids: HashMap<(u32, i32, i32), u32>,
    /// `(errno, address)` string ids.
    details: Vec<(u32, u32)>,
    detail_ids: HashMap<(u32, u32), u32>,
    /// Per call id: its entry in the call table and its lifecycle step.
    call_info: Vec<(Option<&'static CallSpec>, Option<Step>)>,
    kept: HashMap<u32, Event>,
    wide_ret: HashMap<u32, i64>,
    wide_dur: HashMap<u32, u64>,
    /// `child` of the events that have one (fork, clone, spawn).
    children: HashMap<u32, i32>,
}

const _: () = assert!(std::mem::size_of::<Ev>() == 56);

/// Calls whose whole events the summary reads (commands, exit codes and signals).
fn kept_call(call: &str) -> bool {
    matches!(call, "spawn" | "exec" | "execve" | "execveat" | "exit")
}

impl EventTable {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        self.strings.push(s.into());
        self.string_ids.insert(s.into(), id);
        id
    }

    fn intern_opt(&mut self, s: Option<&str>) -> u32 {
        s.map_or(NONE, |s| self.intern(s))
    }

    /// Appends an event (callers keep `seq` order).
    pub(crate) fn push(&mut self, e: &Event) {
        let node = self.intern(&e.node);
        let call = self.intern(&e.call);
        if call as usize >= self.call_info.len() {
            self.call_info.resize(call as usize + 1, (None, None));
            self.call_info[call as usize] = (calls::by_name(&e.call), Step::from_name(&e.call));
        }
        let task = (node, e.pid, e.tid);
        let task = *self.task_ids.entry(task).or_insert_with(|| {
            self.tasks.push(task);
            self.tasks.len() as u32 - 1
        });
        let errno = self.intern_opt(e.errno.as_deref());
        let addr = self.intern_opt(e.addr.as_deref());
        let detail = match (errno, addr) {
            (NONE, NONE) => NONE,
            pair => *self.detail_ids.entry(pair).or_insert_with(|| {
                self.details.push(pair);
                self.details.len() as u32 - 1
            }),
        };
        let sock = match &e.sock {
            None => NONE,
            Some(s) => match self.sock_ids.get(s) {
                Some(&id) => id,
                None => {
                    let id = self.socks.len() as u32;
                    self.socks.push(s.clone());
                    self.sock_ids.insert(s.clone(), id);
                    id
                }
            },
        };
        let mut has = 0;
        for (set, bit) in [
            (e.ret.is_some(), HAS_RET),
            (e.off.is_some(), HAS_OFF),
            (e.child.is_some(), HAS_CHILD),
            (e.fault.is_some(), HAS_FAULT),
        ] {
            if set {
                has |= bit;
            }
        }
        let i = self.evs.len() as u32;
        if kept_call(&e.call) {
            self.kept.insert(i, e.clone());
        }
        let ret = e.ret.unwrap_or(0);
        let ret = i32::try_from(ret).unwrap_or_else(|_| {
            has |= WIDE_RET;
            self.wide_ret.insert(i, ret);
            0
        });
        let dur = u32::try_from(e.dur).unwrap_or_else(|_| {
            has |= WIDE_DUR;
            self.wide_dur.insert(i, e.dur);
            0
        });
        if let Some(child) = e.child {
            self.children.insert(i, child);
        }
        self.evs.push(Ev {
            seq: e.seq,
            ts: e.ts,
            dur,
            ret,
            off: e.off.unwrap_or(0),
            task,
            call,
            detail,
            sock,
            class: e.class,
            has,
        });
    }

    /// Frees the lookup maps once every event is in.
    pub(crate) fn finish(&mut self) {
        self.string_ids = HashMap::new();
        self.sock_ids = HashMap::new();
        self.task_ids = HashMap::new();
        self.detail_ids = HashMap::new();
        self.evs.shrink_to_fit();
    }

    pub(crate) fn len(&self) -> usize {
        self.evs.len()
    }

    /// The event at index `i`.
    pub(crate) fn get(&self, i: usize) -> EvRef<'_> {
        EvRef {
            t: self,
            e: &self.evs[i],
            i: i as u32,
        }
    }

    /// The whole event at index `i`, for the process lifecycle calls the summary reads.
    pub(crate) fn kept(&self, i: usize) -> Option<&Event> {
        self.kept.get(&(i as u32))
    }
}

/// One compact event with its table: the [`Event`] accessors the graph uses.
#[derive(Clone, Copy)]
pub(crate) struct EvRef<'a> {
    t: &'a EventTable,
    e: &'a Ev,
    i: u32,
}

impl<'a> EvRef<'a> {
    fn string(&self, id: u32) -> Option<&'a str> {
        (id != NONE).then(|| &*self.t.strings[id as usize])
    }
    pub(crate) fn seq(&self) -> u64 {
        self.e.seq
    }
    pub(crate) fn ts(&self) -> u64 {
        self.e.ts
    }
    pub(crate) fn dur(&self) -> u64 {
        if self.e.has & WIDE_DUR != 0 {
            return self.t.wide_dur.get(&self.i).copied().unwrap_or_default();
        }
        self.e.dur.into()
    }
    fn task(&self) -> (u32, i32, i32) {
        self.t.tasks[self.e.task as usize]
    }
    fn detail(&self) -> (u32, u32) {
        match self.e.detail {
            NONE => (NONE, NONE),
            d => self.t.details[d as usize],
        }
    }
    pub(crate) fn pid(&self) -> i32 {
        self.task().1
    }
    pub(crate) fn tid(&self) -> i32 {
        self.task().2
    }
    pub(crate) fn node(&self) -> &'a str {
        self.string(self.node_id()).unwrap_or_default()
    }
    /// Interned node id: equal ids, equal nodes.
    pub(crate) fn node_id(&self) -> u32 {
        self.task().0
    }
    pub(crate) fn call(&self) -> &'a str {
        self.string(self.e.call).unwrap_or_default()
    }
    pub(crate) fn class(&self) -> Option<Class> {
        self.e.class
    }
    pub(crate) fn ret(&self) -> Option<i64> {
        if self.e.has & HAS_RET == 0 {
            return None;
        }
        if self.e.has & WIDE_RET != 0 {
            return self.t.wide_ret.get(&self.i).copied();
        }
        Some(self.e.ret.into())
    }
    pub(crate) fn off(&self) -> Option<u64> {
        (self.e.has & HAS_OFF != 0).then_some(self.e.off)
    }
    pub(crate) fn child(&self) -> Option<i32> {
        if self.e.has & HAS_CHILD == 0 {
            return None;
        }
        self.t.children.get(&self.i).copied()
    }
    pub(crate) fn has_fault(&self) -> bool {
        self.e.has & HAS_FAULT != 0
    }
    pub(crate) fn errno(&self) -> Option<&'a str> {
        self.string(self.detail().0)
    }
    pub(crate) fn addr(&self) -> Option<&'a str> {
        self.string(self.detail().1)
    }
    pub(crate) fn sock(&self) -> Option<&'a Sock> {
        (self.e.sock != NONE).then(|| &self.t.socks[self.e.sock as usize])
    }
    /// See [`Event::moved`].
    pub(crate) fn moved(&self) -> u64 {
        match self.ret() {
            Some(r) if r > 0 => r as u64,
            _ => 0,
        }
    }
    fn spec(&self) -> Option<&'static CallSpec> {
        self.t.call_info[self.e.call as usize].0
    }
    pub(crate) fn step(&self) -> Option<Step> {
        self.t.call_info[self.e.call as usize].1
    }
    /// See [`Event::socket_op`].
    pub(crate) fn socket_op(&self) -> Option<SocketOp> {
        if !matches!(self.e.class, Some(Class::Net | Class::Data)) {
            return None;
        }
        self.spec()?.socket.map(|s| s.op)
    }
    /// See [`Event::file_op`].
    pub(crate) fn file_op(&self) -> Option<FileOp> {
        if self.e.class != Some(Class::File) {
            return None;
        }
        self.spec()?.file.map(|f| f.op)
    }
    fn direction(&self) -> Option<Direction> {
        self.socket_op()?.direction()
    }
    pub(crate) fn is_send(&self) -> bool {
        self.direction() == Some(Direction::Send)
    }
    pub(crate) fn is_recv(&self) -> bool {
        self.direction() == Some(Direction::Recv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::View;
    use ordeal_events::{FaultMark, Proto};

    #[test]
    fn a_compact_event_answers_like_the_event() {
        let full = Event {
            seq: 7,
            ts: 10,
            dur: 3,
            node: "a".into(),
            pid: 1,
            tid: 2,
            call: "write".into(),
            class: Some(Class::Data),
            ret: Some(-11),
            errno: Some("EAGAIN".into()),
            off: Some(40),
            sock: Some(Sock {
                ino: 9,
                proto: Proto::Tcp,
                local: Some("127.0.0.1:1".into()),
                remote: None,
                peer_ino: None,
                peer_node: None,
            }),
            fault: Some(FaultMark::fired("f", "fail EAGAIN")),
            ..Default::default()
        };
        let mut t = EventTable::default();
        t.push(&full);
        t.push(&Event {
            node: "a".into(),
            call: "exit".into(),
            class: Some(Class::Proc),
            code: Some(3),
            ..Default::default()
        });
        t.finish();
        let e = t.get(0);
        assert_eq!(
            (e.seq(), e.ts(), e.dur(), e.pid(), e.tid()),
            (7, 10, 3, 1, 2)
        );
        assert_eq!(
            (e.node(), e.call(), e.class()),
            ("a", "write", Some(Class::Data))
        );
        assert_eq!(
            (e.ret(), e.errno(), e.off()),
            (Some(-11), Some("EAGAIN"), Some(40))
        );
        assert_eq!((e.ok(), e.moved()), (full.ok(), full.moved()));
        assert_eq!((e.is_send(), e.is_recv()), (full.is_send(), full.is_recv()));
        assert_eq!(e.sock(), full.sock.as_ref());
        assert_eq!((e.addr(), e.child(), e.has_fault()), (None, None, true));
        let exit = t.get(1);
        assert_eq!(exit.node_id(), e.node_id());
        assert_eq!(
            (exit.ret(), exit.off(), exit.has_fault()),
            (None, None, false)
        );
        assert_eq!(t.kept(1).and_then(|e| e.code), Some(3));
        assert!(t.kept(0).is_none());
    }

    #[test]
    fn values_wider_than_32_bits_and_children_are_kept_aside() {
        let mut t = EventTable::default();
        t.push(&Event {
            call: "mmap".into(),
            ret: Some(0x7f00_0000_1000),
            dur: 5_000_000_000,
            ..Default::default()
        });
        t.push(&Event {
            call: "clone".into(),
            ret: Some(i32::MIN as i64),
            dur: u32::MAX as u64,
            child: Some(42),
            ..Default::default()
        });
        t.push(&Event {
            call: "read".into(),
            ret: Some(-(1 << 33)),
            ..Default::default()
        });
        t.finish();
        let got: Vec<_> = (0..3)
            .map(|i| {
                let e = t.get(i);
                (e.ret(), e.dur(), e.child())
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (Some(0x7f00_0000_1000), 5_000_000_000, None),
                (Some(i32::MIN as i64), u32::MAX as u64, Some(42)),
                (Some(-(1 << 33)), 0, None),
            ]
        );
        assert_eq!((t.wide_ret.len(), t.wide_dur.len()), (2, 1));
    }
}
