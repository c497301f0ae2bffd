//! Vector clocks over a window of the stream, and `hb.jsonl` written from them in `seq` order.
//!
//! An event's clock is the componentwise max of its program predecessor's clock and the clocks
//! of the sources of its incoming edges, with its own component set to its position + 1; the
//! same clocks as [`HbGraph`](crate::HbGraph)'s topological pass, which any order respecting
//! the edges gives. Events come in `seq` order; one whose predecessor or a source is not done
//! yet (a receive recorded before the send of its bytes, an accept before its connect, a
//! vfork's child before the vfork) stays *open* until they are, and its line waits with every
//! later line. A source whose targets may come later keeps its clock in a shared [`Source`]
//! until they have taken it. So what is held is the window of open events and the clocks of
//! messages in flight, not the trace.
//!
//! Invariant: `last[t]` is thread `t`'s newest event: open, done (with its clock), or none yet;
//! an event is open (in `open`) from [`Clocks::begin`] until every clock it needs is in.

use super::lines::Ordered;
use super::EdgeKey;
use crate::graph::EdgeKind;
use crate::output::hb_line;
use std::cell::RefCell;
use std::io::{self, Write};
use std::rc::Rc;

/// A vector clock: `(component, value)` sorted by component, zeros left out.
type Clock = Vec<(u32, u32)>;

/// The clock of an event with outgoing edges, once known, and the open events waiting for it.
#[derive(Debug, Default)]
pub(crate) struct Source {
    clock: Option<Rc<[(u32, u32)]>>,
    waiters: Vec<u32>,
}

pub(crate) type Src = Rc<RefCell<Source>>;

/// An incoming cross-thread edge of an event, for its `pred` list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pred {
    pub(crate) key: EdgeKey,
    pub(crate) from: u64,
    pub(crate) kind: EdgeKind,
}

struct Open {
    idx: u32,
    seq: u64,
    thread: u32,
    pos: u32,
    /// `seq` of the program predecessor.
    prog: Option<u64>,
    /// An exit: the thread has no event after it, its clock is not kept.
    exits: bool,
    clock: Clock,
    preds: Vec<Pred>,
    /// Clocks still to come: the predecessor's, sources', and expected edges.
    missing: u32,
    /// Every incoming edge known now is in (the event was taken in whole).
    ended: bool,
    /// The thread's next event, when it came while this one was open.
    next: Option<u32>,
    source: Option<Src>,
}

enum Last {
    None,
    Done(Clock),
    Open(u32),
}

pub(crate) struct Clocks<W: Write> {
    open: Vec<Option<Open>>,
    free: Vec<u32>,
    last: Vec<Last>,
    /// Where the lines go, in order; without it, clocks are computed and no line is made.
    lines: Option<Ordered<W>>,
    labels: Vec<String>,
    /// Open events whose clocks are all in, to finish.
    ready: Vec<u32>,
    scratch: Clock,
    line: Vec<u8>,
    /// Most events open at once, a measure of the window.
    pub(crate) widest: usize,
}

impl<W: Write> Clocks<W> {
    /// `labels`: each thread's label as a JSON string.
    pub(crate) fn new(lines: Option<Ordered<W>>, labels: Vec<String>) -> Clocks<W> {
        Clocks {
            open: Vec::new(),
            free: Vec::new(),
            last: (0..labels.len()).map(|_| Last::None).collect(),
            lines,
            labels,
            ready: Vec::new(),
            scratch: Vec::new(),
            line: Vec::new(),
            widest: 0,
        }
    }

    fn get(&mut self, id: u32) -> &mut Open {
        self.open[id as usize].as_mut().expect("an open event")
    }

    /// Takes in event `idx` (the next in `seq` order) of `thread`, at `pos` in it; returns its
    /// id until [`Clocks::end`].
    pub(crate) fn begin(
        &mut self,
        idx: u32,
        seq: u64,
        thread: u32,
        pos: u32,
        prog: Option<u64>,
        exits: bool,
    ) -> u32 {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.open.push(None);
                self.open.len() as u32 - 1
            }
        };
        let (clock, missing) =
            match std::mem::replace(&mut self.last[thread as usize], Last::Open(id)) {
                Last::Done(c) => (c, 0),
                Last::Open(p) => {
                    self.get(p).next = Some(id);
                    (Vec::new(), 1)
                }
                Last::None => (Vec::new(), 0),
            };
        self.open[id as usize] = Some(Open {
            idx,
            seq,
            thread,
            pos,
            prog,
            exits,
            clock,
            preds: Vec::new(),
            missing,
            ended: false,
            next: None,
            source: None,
        });
        if let Some(lines) = &mut self.lines {
            lines.begin();
        }
        self.widest = self.widest.max(self.open.len() - self.free.len());
        id
    }

    /// An incoming edge of open event `id` from `src`.
    pub(crate) fn add_in(&mut self, id: u32, pred: Pred, src: &Src) {
        self.get(id).preds.push(pred);
        let clock = src.borrow().clock.clone();
        match clock {
            Some(c) => self.merge(id, &c),
            None => {
                self.get(id).missing += 1;
                src.borrow_mut().waiters.push(id);
            }
        }
    }

    /// Open event `id` has an incoming edge that a later event will bring.
    pub(crate) fn expect(&mut self, id: u32) {
        self.get(id).missing += 1;
    }

    /// An expected edge of `id` came (after [`Clocks::add_in`] added it) or will not come.
    pub(crate) fn fulfil(&mut self, id: u32) -> io::Result<()> {
        let o = self.get(id);
        o.missing -= 1;
        if o.missing == 0 && o.ended {
            self.ready.push(id);
        }
        self.run()
    }

    /// The source standing for open event `id`'s clock, for edges out of it.
    pub(crate) fn source(&mut self, id: u32) -> Src {
        self.get(id)
            .source
            .get_or_insert_with(Default::default)
            .clone()
    }

    /// Every incoming edge of `id` known now is in; the event is done once its clocks are.
    pub(crate) fn end(&mut self, id: u32) -> io::Result<()> {
        let o = self.get(id);
        o.ended = true;
        if o.missing == 0 {
            self.ready.push(id);
        }
        self.run()
    }

    fn merge(&mut self, id: u32, other: &[(u32, u32)]) {
        let mut merged = std::mem::take(&mut self.scratch);
        let o = self.open[id as usize].as_mut().expect("an open event");
        merge(&o.clock, other, &mut merged);
        std::mem::swap(&mut o.clock, &mut merged);
        self.scratch = merged;
    }

    /// One more clock of `id` is in.
    fn arrived(&mut self, id: u32) {
        let o = self.get(id);
        o.missing -= 1;
        if o.missing == 0 && o.ended {
            self.ready.push(id);
        }
    }

    fn run(&mut self) -> io::Result<()> {
        while let Some(id) = self.ready.pop() {
            self.finish(id)?;
        }
        Ok(())
    }

    fn finish(&mut self, id: u32) -> io::Result<()> {
        let mut o = self.open[id as usize].take().expect("an open event");
        self.free.push(id);
        set_own(&mut o.clock, o.thread, o.pos + 1);
        if let Some(lines) = &mut self.lines {
            self.line.clear();
            o.preds.sort_by_key(|p| p.key);
            let prog = o.prog.map(|s| (s, EdgeKind::Program));
            hb_line(
                &mut self.line,
                &self.labels,
                o.seq,
                o.clock.iter().map(|&(t, v)| (t as usize, v as u64)),
                prog.into_iter()
                    .chain(o.preds.iter().map(|p| (p.from, p.kind))),
            );
            lines.done(o.idx, &self.line)?;
        }
        if let Some(src) = o.source.take() {
            let clock: Rc<[(u32, u32)]> = o.clock.as_slice().into();
            let waiters = {
                let mut s = src.borrow_mut();
                s.clock = Some(clock.clone());
                std::mem::take(&mut s.waiters)
            };
            for w in waiters {
                self.merge(w, &clock);
                self.arrived(w);
            }
        }
        match o.next {
            Some(next) => {
                if self.get(next).clock.is_empty() {
                    self.get(next).clock = o.clock;
                } else {
                    self.merge(next, &o.clock);
                }
                self.arrived(next);
            }
            None if o.exits => self.last[o.thread as usize] = Last::None,
            None => self.last[o.thread as usize] = Last::Done(o.clock),
        }
        Ok(())
    }

    /// Events still open: none once every event is in, unless the edges form a cycle.
    pub(crate) fn open_events(&self) -> usize {
        self.open.len() - self.free.len()
    }

    pub(crate) fn into_inner(self) -> Option<W> {
        self.lines.map(Ordered::into_inner)
    }
}

fn set_own(clock: &mut Clock, t: u32, v: u32) {
    match clock.binary_search_by_key(&t, |x| x.0) {
        Ok(k) => clock[k].1 = v,
        Err(k) => clock.insert(k, (t, v)),
    }
}

/// Componentwise max of two sparse clocks, into `out`.
fn merge(a: &[(u32, u32)], b: &[(u32, u32)], out: &mut Clock) {
    out.clear();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        match x.0.cmp(&y.0) {
            std::cmp::Ordering::Less => {
                out.push(x);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(y);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push((x.0, x.1.max(y.1)));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(a: u64) -> EdgeKey {
        EdgeKey {
            group: 1,
            a,
            sub: 0,
            b: 0,
        }
    }

    fn lines(c: Clocks<Vec<u8>>) -> Vec<String> {
        String::from_utf8(c.into_inner().unwrap())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Thread 0 sends (event 2) what thread 1 received before (event 1): event 1 stays open,
    /// with thread 1's next event (3), until the send is in; the lines keep `seq` order.
    #[test]
    fn a_receive_recorded_before_its_send_waits_with_what_follows_it() {
        let labels = vec!["\"a\"".to_string(), "\"b\"".to_string()];
        let dir = std::env::temp_dir();
        let mut c = Clocks::new(Some(Ordered::new(Vec::new(), dir, 1 << 20)), labels);
        let e0 = c.begin(0, 0, 0, 0, None, false);
        c.end(e0).unwrap();
        let r = c.begin(1, 1, 1, 0, None, false);
        c.expect(r);
        c.end(r).unwrap();
        let s = c.begin(2, 2, 0, 1, Some(0), false);
        let src = c.source(s);
        let pred = Pred {
            key: key(0),
            from: 2,
            kind: EdgeKind::Message { bytes: 3 },
        };
        c.add_in(r, pred, &src);
        c.fulfil(r).unwrap();
        assert_eq!(c.open_events(), 2);
        let after = c.begin(3, 3, 1, 1, Some(1), false);
        c.end(after).unwrap();
        assert_eq!(c.open_events(), 3);
        c.end(s).unwrap();
        assert_eq!(c.open_events(), 0);
        assert_eq!(
            lines(c),
            vec![
                r#"{"seq":0,"vc":{"a":1},"pred":[]}"#,
                r#"{"seq":1,"vc":{"a":2,"b":1},"pred":[{"seq":2,"kind":"message","bytes":3}]}"#,
                r#"{"seq":2,"vc":{"a":2},"pred":[{"seq":0,"kind":"program"}]}"#,
                r#"{"seq":3,"vc":{"a":2,"b":2},"pred":[{"seq":1,"kind":"program"}]}"#,
            ]
        );
    }

    #[test]
    fn merge_takes_the_componentwise_max() {
        let mut out = Vec::new();
        merge(
            &[(0, 3), (2, 1), (3, 7)],
            &[(0, 9), (1, 5), (3, 2), (4, 1)],
            &mut out,
        );
        assert_eq!(out, vec![(0, 9), (1, 5), (2, 1), (3, 7), (4, 1)]);
    }
}
