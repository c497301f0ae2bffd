//! `failure.svg` and `failure.html`: the events in the causal past of a run's failure, a lane
//! per node, messages as labelled arrows between lanes, faults drawn on the lanes, the
//! violating operation in red with the cause as the caption. A passing run gets the same
//! picture of its last events, saying PASS and marking nothing.
//!
//! The failure is an event: the response of the violating operation (the call of the failing
//! workload whose request and result its log line names, or the call a history violation
//! names), else the last event of the failing workload, check or node, else the trace's last
//! event. Its causal past is every event whose vector clock (`hb.jsonl`) is ≤ its own: the
//! transitive closure of `pred`. Of those, the last [`PER_LANE`] per lane and [`TOTAL`] in all
//! are drawn, so a run of any size gives a picture of bounded size; the trace and `hb.jsonl`
//! are read as streams, holding only those events.
//!
//! An operation that a history check rejects contradicts an earlier write: the one that left
//! the state the checker names (`reads nil, but the value is 10`: the write of 10; a lost
//! write, a stale read). That write is rarely in the violation's causal past (it went to a
//! node whose state was lost, or that the reader's node never heard from), and seconds of
//! other traffic may lie between the two, so its events are drawn whatever the window (in
//! purple), with a row saying how many events of the causal past lie between it and the
//! window.

use crate::cause::Cause;
use crate::dot::drawn;
use crate::labels::cut;
use crate::summary::{Status, Summary};
use crate::FaultRecord;
use ordeal_events::{Event, TraceReader};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

mod svg;

pub use svg::{render_failure_html, render_failure_svg, Layout};

/// The picture's file names in a run directory.
pub const FAILURE_SVG: &str = "failure.svg";
pub const FAILURE_HTML: &str = "failure.html";
/// Most events drawn per lane.
pub const PER_LANE: usize = 60;
/// Most events drawn in all.
pub const TOTAL: usize = 400;
/// Characters of an arrow's label.
const ARROW_CHARS: usize = 32;

/// One drawn event.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewEvent {
    pub seq: u64,
    /// ns since the run started.
    pub ts: u64,
    /// Index into [`FailureView::lanes`].
    pub lane: usize,
    /// `write 23B`, `exit SIGKILL`.
    pub label: String,
}

/// A message between two drawn events.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrow {
    pub from: u64,
    pub to: u64,
    /// What it said (`SET k3 v7`), else its byte count (`5 B`).
    pub label: String,
}

/// How a fault is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultShape {
    /// A red X ending its lane.
    Crash,
    /// A shaded band across every lane.
    Partition,
    /// A band on its lane.
    Pause,
    /// A mark on its lane.
    Other,
}

/// A fault within the picture's time.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewFault {
    pub shape: FaultShape,
    pub lane: Option<usize>,
    /// `crash n0 after`.
    pub action: String,
    pub from_ts: u64,
    /// When its effect ended; `None`: it lasted to the end of the picture.
    pub to_ts: Option<u64>,
}

/// What `failure.svg` draws.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureView {
    pub status: Status,
    /// The cause in one line (absent for a pass, or a failure without one).
    pub caption: Option<String>,
    pub lanes: Vec<String>,
    /// In time order.
    pub events: Vec<ViewEvent>,
    pub arrows: Vec<Arrow>,
    pub faults: Vec<ViewFault>,
    /// The violating operation's events (drawn red).
    pub violation: Vec<u64>,
    /// The events of the earlier operation it contradicts (drawn purple), see the module's doc.
    pub contradicted: Vec<u64>,
    /// Rows saying how many events of the causal past lie, not drawn, just before the event
    /// `before` (between the contradicted operation and the window).
    pub gaps: Vec<Gap>,
    /// Events of the causal past not drawn (older than the window), besides the gaps'.
    pub left_out: u64,
}

/// Events not drawn between two drawn ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The drawn event after them.
    pub before: u64,
    pub events: u64,
}

/// The event a picture ends at, the operation marked as violating, and the earlier one it
/// contradicts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Anchor {
    /// `None`: the trace's last event.
    pub seq: Option<u64>,
    pub violation: Vec<u64>,
    /// [`contradicted_call`]'s events: drawn whatever the window (see [`Selector::pin`]).
    pub contradicted: Vec<u64>,
}

/// An `hb.jsonl` line: what the picture needs of it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HbLine {
    pub seq: u64,
    #[serde(default)]
    pub vc: BTreeMap<String, u64>,
    #[serde(default)]
    pub pred: Vec<Pred>,
}

/// A direct cause in `hb.jsonl`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Pred {
    pub seq: u64,
    pub kind: String,
    #[serde(default)]
    pub bytes: u64,
}

/// Whether `e` happened before (or is) the event of clock `anchor`.
fn in_past(e: &BTreeMap<String, u64>, anchor: &BTreeMap<String, u64>) -> bool {
    e.iter().all(|(t, n)| anchor.get(t).is_some_and(|a| n <= a))
}

/// An event kept for the picture: what it is, its incoming messages, the first bytes it sent,
/// and its place among the events that could be drawn (to count those between two drawn).
struct Kept {
    event: ViewEvent,
    preds: Vec<Pred>,
    said: Option<String>,
    ordinal: u64,
}

/// The first line of a send's recorded bytes (escaped as in trace.jsonl), cut.
fn first_line(e: &Event) -> Option<String> {
    let data = e.data.as_deref().filter(|_| e.is_send())?;
    let line = data.split("\\n").next().unwrap_or(data);
    let line = line.split("\\r").next().unwrap_or(line).trim();
    (!line.is_empty()).then(|| cut(line, ARROW_CHARS - 8).into_owned())
}

/// Picks the drawn events from a stream of events with their clocks: the causal past of the
/// anchor, the last [`PER_LANE`] per lane, [`TOTAL`] in all.
pub struct Selector {
    anchor_vc: BTreeMap<String, u64>,
    lanes: Vec<String>,
    lane_of: HashMap<String, usize>,
    kept: Vec<VecDeque<Kept>>,
    /// Events drawn whatever the window, and those of them seen.
    pinned: HashSet<u64>,
    pinned_kept: Vec<Kept>,
    seen: u64,
}

impl Selector {
    /// `lanes`: the nodes in the order drawn (more are added as they appear).
    pub fn new(anchor_vc: BTreeMap<String, u64>, lanes: Vec<String>) -> Selector {
        let lane_of = lanes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let kept = lanes.iter().map(|_| VecDeque::new()).collect();
        Selector {
            anchor_vc,
            lanes,
            lane_of,
            kept,
            pinned: HashSet::new(),
            pinned_kept: Vec::new(),
            seen: 0,
        }
    }

    /// Draws the events `seqs` whatever the window, in the anchor's causal past or not (the
    /// operation a violation contradicts: both ends of its messages).
    pub fn pin(mut self, seqs: HashSet<u64>) -> Selector {
        self.pinned = seqs;
        self
    }

    pub fn observe(&mut self, e: &Event, hb: &HbLine) {
        let pinned = self.pinned.contains(&e.seq);
        if !drawn(e) || !(pinned || in_past(&hb.vc, &self.anchor_vc)) {
            return;
        }
        let ordinal = self.seen;
        self.seen += 1;
        let lane = match self.lane_of.get(&e.node) {
            Some(&l) => l,
            None => {
                self.lanes.push(e.node.clone());
                self.kept.push(VecDeque::new());
                self.lane_of.insert(e.node.clone(), self.lanes.len() - 1);
                self.lanes.len() - 1
            }
        };
        let kept = Kept {
            event: ViewEvent {
                seq: e.seq,
                // A receive when it returned: after the send it waited for.
                ts: if e.is_recv() { e.ts + e.dur } else { e.ts },
                lane,
                label: short_label(e),
            },
            preds: hb
                .pred
                .iter()
                .filter(|p| p.kind == "message")
                .cloned()
                .collect(),
            said: first_line(e),
            ordinal,
        };
        if pinned {
            self.pinned_kept.push(kept);
            return;
        }
        let q = &mut self.kept[lane];
        if q.len() == PER_LANE {
            q.pop_front();
        }
        q.push_back(kept);
    }

    /// The picture, with `labels` (send `seq` → what it said) on the arrows.
    pub fn finish(
        self,
        status: Status,
        caption: Option<String>,
        anchor: &Anchor,
        faults: &[FaultRecord],
        labels: &HashMap<u64, String>,
    ) -> FailureView {
        let mut all: Vec<Kept> = self.kept.into_iter().flatten().collect();
        all.sort_by_key(|k| (k.event.ts, k.event.seq));
        let cut_from = all.len().saturating_sub(TOTAL);
        let mut all = all.split_off(cut_from);
        all.extend(self.pinned_kept);
        all.sort_by_key(|k| (k.event.ts, k.event.seq));
        let drawn: HashSet<u64> = all.iter().map(|k| k.event.seq).collect();
        // Between a pinned event and the next drawn one that is not (in the order seen), the
        // events not drawn get a row of their own: the picture jumps there.
        let mut by_ordinal: Vec<(u64, u64, bool)> = all
            .iter()
            .map(|k| (k.ordinal, k.event.seq, self.pinned.contains(&k.event.seq)))
            .collect();
        by_ordinal.sort_unstable();
        let gaps: Vec<Gap> = by_ordinal
            .windows(2)
            .filter(|w| w[0].2 && !w[1].2 && w[1].0 > w[0].0 + 1)
            .map(|w| Gap {
                before: w[1].1,
                events: w[1].0 - w[0].0 - 1,
            })
            .collect();
        let said: HashMap<u64, &str> = all
            .iter()
            .filter_map(|k| Some((k.event.seq, k.said.as_deref()?)))
            .collect();
        let mut arrows = Vec::new();
        for Kept {
            event: e, preds, ..
        } in &all
        {
            for p in preds.iter().filter(|p| drawn.contains(&p.seq)) {
                let label = match (labels.get(&p.seq), said.get(&p.seq)) {
                    (Some(l), _) => cut(l, ARROW_CHARS).into_owned(),
                    (None, Some(line)) => format!("{line} ({} B)", p.bytes),
                    (None, None) => format!("{} B", p.bytes),
                };
                arrows.push(Arrow {
                    from: p.seq,
                    to: e.seq,
                    label,
                });
            }
        }
        let events: Vec<ViewEvent> = all.into_iter().map(|k| k.event).collect();
        let violation = whole(&anchor.violation, &arrows, &drawn);
        let contradicted = whole(&anchor.contradicted, &arrows, &drawn);
        let (first, last) = match (events.first(), events.last()) {
            (Some(f), Some(l)) => (f.ts, l.ts),
            _ => (0, u64::MAX),
        };
        let mut lanes = self.lanes;
        let view_faults: Vec<ViewFault> = faults
            .iter()
            .filter_map(|f| {
                let from_ts = (f.fired_at * 1e9) as u64;
                let to_ts = f.healed_at.map(|h| (h * 1e9) as u64);
                if from_ts > last || to_ts.is_some_and(|t| t < first) {
                    return None;
                }
                let lane = match lanes.iter().position(|l| *l == f.node) {
                    Some(l) => l,
                    None => {
                        lanes.push(f.node.clone());
                        lanes.len() - 1
                    }
                };
                let shape = match f.kind.as_str() {
                    "crash" | "kill" => FaultShape::Crash,
                    "partition" => FaultShape::Partition,
                    "pause" | "stop" => FaultShape::Pause,
                    _ => FaultShape::Other,
                };
                Some(ViewFault {
                    shape,
                    lane: (shape != FaultShape::Partition).then_some(lane),
                    action: f.action.clone(),
                    from_ts,
                    to_ts,
                })
            })
            .collect();
        // Lanes with nothing drawn are left out.
        let used: HashSet<usize> = events
            .iter()
            .map(|e| e.lane)
            .chain(faults_lanes(&view_faults))
            .collect();
        let renumber: Vec<Option<usize>> = {
            let mut next = 0;
            (0..lanes.len())
                .map(|l| {
                    used.contains(&l).then(|| {
                        next += 1;
                        next - 1
                    })
                })
                .collect()
        };
        let mut view = FailureView {
            status,
            caption,
            lanes: lanes
                .iter()
                .enumerate()
                .filter(|(l, _)| used.contains(l))
                .map(|(_, n)| n.clone())
                .collect(),
            events,
            arrows,
            faults: view_faults,
            violation,
            contradicted,
            left_out: self.seen - drawn.len() as u64 - gaps.iter().map(|g| g.events).sum::<u64>(),
            gaps,
        };
        for e in &mut view.events {
            e.lane = renumber[e.lane].unwrap_or(0);
        }
        for f in &mut view.faults {
            f.lane = f.lane.and_then(|l| renumber[l]);
        }
        view
    }
}

/// An operation's drawn events with its messages whole: the other end of each message to or
/// from `ops` (the call log names the request's first and the response's last event, one end
/// each).
fn whole(ops: &[u64], arrows: &[Arrow], drawn: &HashSet<u64>) -> Vec<u64> {
    let mut out: Vec<u64> = ops.iter().copied().filter(|s| drawn.contains(s)).collect();
    for a in arrows {
        for (end, other) in [(a.from, a.to), (a.to, a.from)] {
            if ops.contains(&end) && !out.contains(&other) {
                out.push(other);
            }
        }
    }
    out.sort_unstable();
    out
}

fn faults_lanes(faults: &[ViewFault]) -> impl Iterator<Item = usize> + '_ {
    faults.iter().filter_map(|f| f.lane)
}

/// `write 23B`, `connect`, `exit SIGKILL`: the call and what it moved or how it ended.
fn short_label(e: &Event) -> String {
    if e.moves_bytes() {
        return match (e.ret, e.errno.as_deref()) {
            (_, Some(x)) => format!("{} {x}", e.call),
            (Some(0), None) if e.is_recv() => format!("{} EOF", e.call),
            _ => format!("{} {}B", e.call, e.moved()),
        };
    }
    match (e.call.as_str(), &e.signal, e.code, e.errno.as_deref()) {
        ("exit", Some(s), _, _) => format!("exit {s}"),
        ("exit", None, Some(c), _) => format!("exit {c}"),
        (c, _, _, Some(x)) => format!("{c} {x}"),
        (c, ..) => c.to_string(),
    }
}

/// What a line of calls.jsonl says of one exchange, as far as finding the violating one
/// needs (read from the file, or from ordeal-calls' `Call` through serde).
#[derive(Debug, Clone, Deserialize)]
pub struct CallLine {
    pub caller: String,
    pub request: String,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub request_seq: Option<u64>,
    /// When the request was sent (trace clock, ns).
    #[serde(default)]
    pub request_ts: Option<u64>,
    #[serde(default)]
    pub response_seq: Option<u64>,
    #[serde(default)]
    pub kv: Option<serde_json::Value>,
    /// What the operation returned, as the history has it (`"ok"` for a write): absent for
    /// a message no one answered (a replication stream's).
    #[serde(default)]
    pub kv_result: Option<serde_json::Value>,
}

impl CallLine {
    fn seqs(&self) -> Vec<u64> {
        self.request_seq
            .into_iter()
            .chain(self.response_seq)
            .collect()
    }

    /// The key-value operation's field `name` (`f`, `key`, `value`), as text.
    fn kv(&self, name: &str) -> Option<&str> {
        self.kv.as_ref()?.get(name)?.as_str()
    }
}

/// The violating operation among `calls` (calls.jsonl, in its order), as the cause names it:
/// the last call of the failing workload whose request (and result, when it says one) its log
/// line quotes; for a history violation the last read or write of its key. The `seq`s of its
/// request and response events.
pub fn violating_call(cause: &Cause, calls: &[CallLine]) -> Option<Vec<u64>> {
    match cause {
        Cause::Workload {
            name,
            log: Some(log),
            ..
        } => {
            let mine = || calls.iter().filter(|c| c.caller == *name);
            let quoted = |c: &&CallLine| !c.request.is_empty() && log.text.contains(&c.request);
            let answered_as_said = mine().filter(quoted).rfind(|c| {
                c.result
                    .as_deref()
                    .is_some_and(|r| r.split_whitespace().all(|w| log.text.contains(w)))
            });
            answered_as_said
                .or_else(|| mine().rfind(quoted))
                .map(CallLine::seqs)
        }
        Cause::History {
            key: Some(k), op, ..
        } => {
            let f = if op.contains(" read ") {
                "read"
            } else {
                "write"
            };
            calls
                .iter()
                .rfind(|c| {
                    c.kv_result.is_some() && c.kv("key") == Some(k.as_str()) && c.kv("f") == Some(f)
                })
                .map(CallLine::seqs)
        }
        _ => None,
    }
}

/// The call of the write a violation contradicts ([`Cause::History`]'s `contradicts`;
/// `written`: that write's invocation, a line of the history): an acknowledged call with the
/// same function, key and value, the one sent at the line's `time` (a history ordeal wrote
/// from traffic has its calls' times), else the last one answered before the violating call
/// (`violating`: its `seq`s) was sent. Its request's and response's `seq`s.
pub fn contradicted_call(
    written: &serde_json::Value,
    calls: &[CallLine],
    violating: &[u64],
) -> Option<Vec<u64>> {
    let field = |name: &str| written.get(name).filter(|v| !v.is_null()).map(text);
    let (f, key, value) = (field("f")?, field("key"), field("value")?);
    let time = written.get("time").and_then(|t| t.as_u64());
    let sent = violating.iter().copied().min()?;
    let same: Vec<&CallLine> = calls
        .iter()
        .filter(|c| {
            c.kv("f") == Some(f.as_str())
                && c.kv("key").map(str::to_string) == key
                && c.kv.as_ref().and_then(|kv| kv.get("value")).map(text) == Some(value.clone())
                && c.kv_result.as_ref().and_then(|r| r.as_str()) == Some("ok")
        })
        .collect();
    same.iter()
        .find(|c| time.is_some() && c.request_ts == time)
        .or_else(|| {
            same.iter()
                .filter(|c| c.response_seq.is_some_and(|r| r < sent))
                .max_by_key(|c| c.response_seq)
        })
        .map(|c| c.seqs())
}

/// A value of a history or call log as text: a string as it is, anything else as JSON.
fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// The line `place` (`history.jsonl:19`, the file relative to `run_dir`), as JSON.
fn history_line(run_dir: &Path, place: &str) -> Option<serde_json::Value> {
    let (file, n) = place.rsplit_once(':')?;
    let n: usize = n.parse().ok()?;
    let f = File::open(run_dir.join(file)).ok()?;
    let line = BufReader::new(f).lines().nth(n.checked_sub(1)?)?.ok()?;
    serde_json::from_str(&line).ok()
}

/// The node whose end the failure is, when the cause names one.
fn failing_node(cause: &Cause, summary: &Summary) -> Option<String> {
    match cause {
        Cause::Workload { name, .. } | Cause::Node { name, .. } => Some(name.clone()),
        Cause::Check { .. } => summary
            .nodes
            .iter()
            .find(|n| n.role == "check")
            .map(|n| n.name.clone()),
        _ => None,
    }
}

fn read_calls(path: &Path) -> Vec<CallLine> {
    let Ok(f) = File::open(path) else {
        return Vec::new();
    };
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

/// Reads `hb.jsonl` alongside the trace: the line of each event, in `seq` order.
struct HbLines {
    lines: io::Lines<BufReader<File>>,
    ahead: Option<HbLine>,
}

impl HbLines {
    fn open(path: &Path) -> io::Result<HbLines> {
        let f = File::open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(HbLines {
            lines: BufReader::new(f).lines(),
            ahead: None,
        })
    }

    /// The line of event `seq`, if the file has one at its place.
    fn line(&mut self, seq: u64) -> io::Result<Option<HbLine>> {
        loop {
            let next = match self.ahead.take() {
                Some(l) => l,
                None => match self.lines.next() {
                    Some(l) => serde_json::from_str(&l?).map_err(io::Error::other)?,
                    None => return Ok(None),
                },
            };
            if next.seq == seq {
                return Ok(Some(next));
            }
            if next.seq > seq {
                self.ahead = Some(next);
                return Ok(None);
            }
        }
    }
}

/// Builds the picture of the run in `run_dir` (its `trace.jsonl`, `hb.jsonl` and, when there,
/// `calls.jsonl`) for `summary`'s verdict and faults; `labels` are the call log's texts of the
/// sends.
pub fn failure_view(
    run_dir: &Path,
    summary: &Summary,
    labels: &HashMap<u64, String>,
) -> io::Result<FailureView> {
    let trace = run_dir.join("trace.jsonl");
    let hb = run_dir.join("hb.jsonl");
    let status = summary.verdict.status;
    let cause = summary
        .verdict
        .cause
        .as_ref()
        .filter(|_| status != Status::Pass);
    let mut anchor = Anchor::default();
    if let Some(c) = cause {
        let calls = read_calls(&run_dir.join("calls.jsonl"));
        if let Some(seqs) = violating_call(c, &calls) {
            if let Cause::History {
                contradicts: Some(place),
                ..
            } = c
            {
                anchor.contradicted = history_line(run_dir, place)
                    .and_then(|w| contradicted_call(&w, &calls, &seqs))
                    .unwrap_or_default();
            }
            anchor.seq = seqs.iter().copied().max();
            anchor.violation = seqs;
        }
    }
    let node = cause.and_then(|c| failing_node(c, summary));
    // First pass: the anchor, when it is a node's last event or the trace's.
    let reader = TraceReader::open(&trace).map_err(io::Error::other)?;
    let lanes: Vec<String> = reader.header.nodes.iter().map(|n| n.name.clone()).collect();
    if anchor.seq.is_none() {
        let mut last = None;
        for e in reader {
            let e = e.map_err(io::Error::other)?;
            if node.as_ref().is_none_or(|n| *n == e.node) {
                last = Some(e.seq);
            }
        }
        anchor.seq = last;
        if node.is_some() {
            anchor.violation = last.into_iter().collect();
        }
    }
    let anchor_vc = match anchor.seq {
        Some(seq) => HbLines::open(&hb)?.line(seq)?.map(|l| l.vc),
        None => None,
    }
    .unwrap_or_default();
    let mut selector = Selector::new(anchor_vc, lanes).pin(both_ends(&hb, &anchor.contradicted)?);
    let mut hb_lines = HbLines::open(&hb)?;
    for e in TraceReader::open(&trace).map_err(io::Error::other)? {
        let e = e.map_err(io::Error::other)?;
        if let Some(line) = hb_lines.line(e.seq)? {
            selector.observe(&e, &line);
        }
    }
    let caption = cause.map(ToString::to_string);
    Ok(selector.finish(status, caption, &anchor, &summary.faults, labels))
}

/// `ops` and the other end of every message to or from them (from `hb.jsonl`): an operation's
/// request and response as both sides saw them.
fn both_ends(hb: &Path, ops: &[u64]) -> io::Result<HashSet<u64>> {
    let mut out: HashSet<u64> = ops.iter().copied().collect();
    if ops.is_empty() {
        return Ok(out);
    }
    let f =
        File::open(hb).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", hb.display())))?;
    for line in BufReader::new(f).lines() {
        let l: HbLine = serde_json::from_str(&line?).map_err(io::Error::other)?;
        for p in l.pred.iter().filter(|p| p.kind == "message") {
            if ops.contains(&l.seq) {
                out.insert(p.seq);
            }
            if ops.contains(&p.seq) {
                out.insert(l.seq);
            }
        }
    }
    Ok(out)
}

/// Writes `failure.svg` and `failure.html` into `run_dir` (see [`failure_view`]).
pub fn write_failure_view(
    run_dir: &Path,
    summary: &Summary,
    labels: &HashMap<u64, String>,
) -> io::Result<FailureView> {
    let view = failure_view(run_dir, summary, labels)?;
    let svg = render_failure_svg(&view);
    std::fs::write(run_dir.join(FAILURE_SVG), &svg)?;
    std::fs::write(run_dir.join(FAILURE_HTML), render_failure_html(&view, &svg))?;
    Ok(view)
}

#[cfg(test)]
mod tests;
