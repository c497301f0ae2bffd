//! The report of a cluster crash search: crash.json and the text summary.

use super::super::{models_text, CrashVerdict, OpRef, REPORT};
use ordeal_state::persist::Model;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What one node lost in a cluster crash state.
#[derive(Debug, Clone, Serialize)]
pub struct NodeLoss {
    pub node: String,
    /// The seq of the node's last operation issued before the power loss.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash_after_seq: Option<u64>,
    /// Its operations issued before the power loss that did not (fully) persist.
    pub lost: Vec<OpRef>,
}

/// Cluster crash states the cluster does not recover from, with one cause.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterVulnerability {
    pub id: usize,
    /// The root cause (names as patterns, see docs/crash.md#vulnerabilities) every state set
    /// counted under it shows on at least one node.
    pub cause: String,
    /// The example's power loss: the seq of the first trace event it cut off (`None`: after
    /// the whole recording).
    pub cut_seq: Option<u64>,
    /// How the example was made: `durable-only` (everything not yet durable lost, on every
    /// node) or `random`.
    pub kind: &'static str,
    /// Why recovery failed, for the example.
    pub error: String,
    /// How many distinct failing state sets it covers.
    pub states: usize,
    /// The models under which one of its state sets happens (every node's state at once).
    pub models: Vec<Model>,
    /// Per node, what the example lost.
    pub nodes: Vec<NodeLoss>,
    /// The example's directory, kept.
    pub example: PathBuf,
    /// How many operations the example lost (smaller is a better example).
    #[serde(skip)]
    pub(super) size: usize,
}

/// What `ordeal crash --cluster` found.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    pub verdict: CrashVerdict,
    pub model: Model,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
    pub run_dir: PathBuf,
    /// The nodes that lost power together.
    pub nodes: Vec<String>,
    pub seed: u64,
    pub recording: ordeal_hb::Status,
    /// Operations per node.
    pub operations: BTreeMap<String, usize>,
    /// Distinct instants a power loss was tried at (see docs/crash.md#whole-clusters).
    pub cuts: usize,
    pub generated: usize,
    pub checked: usize,
    pub failed: usize,
    pub seconds: f64,
    /// Whether every cut's durable-only states were checked.
    pub complete: bool,
    pub vulnerabilities: Vec<ClusterVulnerability>,
}

impl ClusterReport {
    /// The text summary.
    pub fn human(&self) -> String {
        let ops: Vec<String> = self
            .operations
            .iter()
            .map(|(n, k)| format!("{n} {k}"))
            .collect();
        let mut s = format!(
            "crash states of the cluster {} (simultaneous power loss): operations {}, {} cuts, {} state sets generated, {} distinct checked ({:.1}/s){}\n",
            self.nodes.join(", "),
            ops.join(", "),
            self.cuts,
            self.generated,
            self.checked,
            self.checked as f64 / self.seconds.max(1e-9),
            if self.complete { "" } else { ", budget reached before every cut" }
        );
        s.push_str(&super::super::verdict_text(
            self.unknown.as_deref(),
            self.vulnerabilities.is_empty(),
            self.verdict,
            self.model,
            "programs",
        ));
        for v in &self.vulnerabilities {
            s.push_str(&format!(
                "vulnerability {} ({}, {} state set{}, {}): {}\n  power lost {}\n  recovery failed: {}\n",
                v.id,
                v.kind,
                v.states,
                if v.states == 1 { "" } else { "s" },
                models_text(&v.models),
                v.cause,
                match v.cut_seq {
                    Some(q) => format!("before seq {q}"),
                    None => "after the whole recording".into(),
                },
                v.error
            ));
            for n in &v.nodes {
                s.push_str(&format!(
                    "    {}: {} operations lost\n",
                    n.node,
                    n.lost.len()
                ));
                const SHOWN: usize = 4;
                for o in n.lost.iter().take(SHOWN) {
                    s.push_str(&format!(
                        "      {:<9} seq {:<7} {}\n",
                        o.role.as_str(),
                        o.seq,
                        o.op
                    ));
                }
                if n.lost.len() > SHOWN {
                    s.push_str(&format!("      … and {} more\n", n.lost.len() - SHOWN));
                }
            }
            s.push_str(&format!("    example: {}\n", v.example.display()));
        }
        s.push_str(&format!(
            "report: {}\n",
            self.run_dir.join(REPORT).display()
        ));
        s
    }
}
