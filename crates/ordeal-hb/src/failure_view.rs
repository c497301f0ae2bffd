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
    /// Events of the causal past not drawn (older than the window).
    pub left_out: u64,
}

/// The event a picture ends at, and the operation marked as violating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Anchor {
    /// `None`: the trace's last event.
    pub seq: Option<u64>,
    pub violation: Vec<u64>,
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

/// An event kept for the picture: what it is, its incoming messages, the first bytes it sent.
type Kept = (ViewEvent, Vec<Pred>, Option<String>);

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
            seen: 0,
        }
    }

    pub fn observe(&mut self, e: &Event, hb: &HbLine) {
        if !drawn(e) || !in_past(&hb.vc, &self.anchor_vc) {
            return;
        }
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
        let q = &mut self.kept[lane];
        if q.len() == PER_LANE {
            q.pop_front();
        }
        let messages = hb
            .pred
            .iter()
            .filter(|p| p.kind == "message")
            .cloned()
            .collect();
        q.push_back((
            ViewEvent {
                seq: e.seq,
                // A receive when it returned: after the send it waited for.
                ts: if e.is_recv() { e.ts + e.dur } else { e.ts },
                lane,
                label: short_label(e),
            },
            messages,
            first_line(e),
        ));
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
        all.sort_by_key(|(e, ..)| (e.ts, e.seq));
        let cut_from = all.len().saturating_sub(TOTAL);
        let all = all.split_off(cut_from);
        let drawn: HashSet<u64> = all.iter().map(|(e, ..)| e.seq).collect();
        let said: HashMap<u64, &str> = all
            .iter()
            .filter_map(|(e, _, s)| Some((e.seq, s.as_deref()?)))
            .collect();
        let mut arrows = Vec::new();
        for (e, preds, _) in &all {
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
        let events: Vec<ViewEvent> = all.into_iter().map(|(e, ..)| e).collect();
        // The operation's messages whole: the other end of each message to or from its events
        // (the call log names the request's first and the response's last event, one end each).
        let mut violation: Vec<u64> = anchor
            .violation
            .iter()
            .copied()
            .filter(|s| drawn.contains(s))
            .collect();
        for a in &arrows {
            for (end, other) in [(a.from, a.to), (a.to, a.from)] {
                if anchor.violation.contains(&end) && !violation.contains(&other) {
                    violation.push(other);
                }
            }
        }
        violation.sort_unstable();
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
            left_out: self.seen - drawn.len() as u64,
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
    #[serde(default)]
    pub response_seq: Option<u64>,
    #[serde(default)]
    pub kv: Option<serde_json::Value>,
}

impl CallLine {
    fn seqs(&self) -> Vec<u64> {
        self.request_seq
            .into_iter()
            .chain(self.response_seq)
            .collect()
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
                    c.kv.as_ref().is_some_and(|kv| {
                        kv.get("key").and_then(|v| v.as_str()) == Some(k.as_str())
                            && kv.get("f").and_then(|v| v.as_str()) == Some(f)
                    })
                })
                .map(CallLine::seqs)
        }
        _ => None,
    }
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
        if let Some(seqs) = violating_call(c, &read_calls(&run_dir.join("calls.jsonl"))) {
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
    let mut selector = Selector::new(anchor_vc, lanes);
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
