//! What the graph's passes read of an event, whether it is a compact event of a built graph
//! ([`EvRef`]) or a whole [`Event`] streamed from a trace file: the passes that both the graph
//! and the streamed outputs run (threads, endpoints, addresses, failed connects, counts) are
//! written once against [`View`].

use super::compact::EvRef;
use ordeal_events::{Class, Event, Sock, SocketOp, Step};

/// Read access to one event; see the [`Event`] methods of the same names.
pub(crate) trait View<'a>: Copy {
    fn seq(self) -> u64;
    fn ts(self) -> u64;
    fn dur(self) -> u64;
    fn node(self) -> &'a str;
    fn pid(self) -> i32;
    fn tid(self) -> i32;
    fn call(self) -> &'a str;
    fn class(self) -> Option<Class>;
    fn ret(self) -> Option<i64>;
    fn errno(self) -> Option<&'a str>;
    fn child(self) -> Option<i32>;
    fn addr(self) -> Option<&'a str>;
    fn sock(self) -> Option<&'a Sock>;
    fn step(self) -> Option<Step>;
    fn socket_op(self) -> Option<SocketOp>;
    fn is_send(self) -> bool;
    fn is_recv(self) -> bool;
    fn ok(self) -> bool {
        self.ret().is_none_or(|r| r >= 0)
    }
    fn moved(self) -> u64 {
        match self.ret() {
            Some(r) if r > 0 => r as u64,
            _ => 0,
        }
    }
}

impl<'a> View<'a> for EvRef<'a> {
    fn seq(self) -> u64 {
        EvRef::seq(&self)
    }
    fn ts(self) -> u64 {
        EvRef::ts(&self)
    }
    fn dur(self) -> u64 {
        EvRef::dur(&self)
    }
    fn node(self) -> &'a str {
        EvRef::node(&self)
    }
    fn pid(self) -> i32 {
        EvRef::pid(&self)
    }
    fn tid(self) -> i32 {
        EvRef::tid(&self)
    }
    fn call(self) -> &'a str {
        EvRef::call(&self)
    }
    fn class(self) -> Option<Class> {
        EvRef::class(&self)
    }
    fn ret(self) -> Option<i64> {
        EvRef::ret(&self)
    }
    fn errno(self) -> Option<&'a str> {
        EvRef::errno(&self)
    }
    fn child(self) -> Option<i32> {
        EvRef::child(&self)
    }
    fn addr(self) -> Option<&'a str> {
        EvRef::addr(&self)
    }
    fn sock(self) -> Option<&'a Sock> {
        EvRef::sock(&self)
    }
    fn step(self) -> Option<Step> {
        EvRef::step(&self)
    }
    fn socket_op(self) -> Option<SocketOp> {
        EvRef::socket_op(&self)
    }
    fn is_send(self) -> bool {
        EvRef::is_send(&self)
    }
    fn is_recv(self) -> bool {
        EvRef::is_recv(&self)
    }
}

impl<'a> View<'a> for &'a Event {
    fn seq(self) -> u64 {
        self.seq
    }
    fn ts(self) -> u64 {
        self.ts
    }
    fn dur(self) -> u64 {
        self.dur
    }
    fn node(self) -> &'a str {
        &self.node
    }
    fn pid(self) -> i32 {
        self.pid
    }
    fn tid(self) -> i32 {
        self.tid
    }
    fn call(self) -> &'a str {
        &self.call
    }
    fn class(self) -> Option<Class> {
        self.class
    }
    fn ret(self) -> Option<i64> {
        self.ret
    }
    fn errno(self) -> Option<&'a str> {
        self.errno.as_deref()
    }
    fn child(self) -> Option<i32> {
        self.child
    }
    fn addr(self) -> Option<&'a str> {
        self.addr.as_deref()
    }
    fn sock(self) -> Option<&'a Sock> {
        self.sock.as_ref()
    }
    fn step(self) -> Option<Step> {
        Event::step(self)
    }
    fn socket_op(self) -> Option<SocketOp> {
        Event::socket_op(self)
    }
    fn is_send(self) -> bool {
        Event::is_send(self)
    }
    fn is_recv(self) -> bool {
        Event::is_recv(self)
    }
}
