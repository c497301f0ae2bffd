//! Happens-before reconstruction for ordeal traces.
//!
//! Input: the [`Header`](ordeal_events::Header) and [`Event`](ordeal_events::Event)s of a
//! `trace.jsonl`. This crate knows nothing about ptrace, experiments or live processes; it
//! works from events alone.
//!
//! * [`HbGraph::build`] links events by program order, fork, connect → accept and
//!   send → receive (byte-range matching for streams, FIFO for UDP datagrams), then computes a
//!   vector clock for every event: [`HbGraph::vc`], [`HbGraph::happens_before`],
//!   [`HbGraph::concurrent`]. [`HbGraph::from_trace`] builds it from a `trace.jsonl` file
//!   keeping only a compact form of each event (56 bytes); the outputs then read the
//!   whole events from the file again ([`HbGraph::for_each_event`]).
//! * Outputs: [`write_dot`] (`graph.dot`), [`write_chrome_trace`] (`trace.json`, for
//!   Perfetto), [`Summary`] (`summary.json`) with [`human_summary`] for the terminal, and
//!   [`write_hb_jsonl`] (`hb.jsonl`). [`write_outputs`] writes them all into a directory.
//!   The summary carries what the run decided beyond its events: the verdict's [`Cause`] and
//!   the faults that fired ([`FaultRecord`]).
//!   The pictures say what a decoded message said (`SET k3 v7`, from the call log) on its
//!   send and its message edge when given labels ([`HbGraph::set_labels`],
//!   [`RunFacts::labels`]); without them they show bytes only.
//! * [`write_failure_view`] (`failure.svg`, `failure.html`): the events in the causal past of
//!   the failure, a lane per node, labelled messages, faults, the violating operation in red
//!   (a passing run's last events, saying PASS). Bounded in size whatever the run's.
//! * [`write_trace_outputs`] writes the same files, byte for byte, straight from a
//!   `trace.jsonl` in memory that does not grow with the number of events (three passes over
//!   the file, no graph; what a run uses), and [`summarize_trace`] its `summary.json` alone.
//!   A trace it cannot stream (events out of `seq` order, a happens-before cycle) is built in
//!   memory through [`HbGraph`] instead.
//!
//! The formats are documented for users in `docs/outputs.md`.
#![forbid(unsafe_code)]

pub mod addr;
mod cause;
mod chrome;
mod dot;
mod failure_view;
mod graph;
mod labels;
mod output;
pub mod ranges;
mod stream;
mod summary;

pub use cause::{seconds, Cause, FaultRecord, LogLine};
pub use chrome::write_chrome_trace;
pub use dot::{
    communication_events, dot_escape, drawn, event_label, write_dot, write_event_dot,
    write_node_dot, DotLevel, DEFAULT_DOT_LIMIT,
};
pub use failure_view::{
    contradicted_call, failure_view, render_failure_html, render_failure_svg, violating_call,
    write_failure_view, Anchor, Arrow, CallLine, FailureView, FaultShape, Gap, HbLine, Layout,
    Pred, Selector, ViewEvent, ViewFault, FAILURE_HTML, FAILURE_SVG,
};
pub use graph::{
    Connection, Edge, EdgeCounts, EdgeKind, FailedConnect, HbGraph, ThreadId, ThreadInfo, Traffic,
    VectorClock, EXTERNAL,
};
pub use output::{render_svg, write_hb_jsonl, write_outputs, Outputs};
pub use stream::{summarize_trace, write_trace_outputs, TraceOutputs};
pub use summary::{
    fmt_bytes, human_summary, write_summary_json, EngineInfo, EventCounts, NodeSummary,
    PairSummary, ProcessSummary, RunFacts, SnapshotLink, Status, Summary, Verdict, SUMMARY_SCHEMA,
    SUMMARY_VERSION,
};
