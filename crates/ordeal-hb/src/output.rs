//! `hb.jsonl`, and writing every output of a run into one directory.

use crate::chrome::write_chrome_trace;
use crate::dot::{write_dot, DotLevel};
use crate::graph::{EdgeKind, HbGraph, ThreadId, ThreadInfo};
use crate::summary::{write_summary_json, Summary};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes `hb.jsonl`: one line per event in `seq` order,
/// `{"seq":N,"vc":{"<node>/<tid>":k,...},"pred":[{"seq":M,"kind":"message","bytes":5},...]}`.
pub fn write_hb_jsonl<W: Write>(g: &HbGraph, w: W) -> io::Result<()> {
    let mut w = BufWriter::new(w);
    let labels = hb_labels(g.threads());
    let mut clocks = g.clock_walk();
    let mut line = Vec::new();
    for i in 0..g.len() {
        let seq = g.ev(i).seq();
        // With duplicate seqs (a warned inconsistency), every line shows the one event
        // `vc(seq)` finds.
        let vc = match g.index_of(seq) {
            Some(j) if j == i => clocks.vc(i),
            _ => g.vc(seq).unwrap_or_default(),
        };
        let preds = g.preds(seq);
        line.clear();
        hb_line(
            &mut line,
            &labels,
            seq,
            vc.0.iter().map(|&(t, v)| (t, v)),
            preds.iter().map(|p| (p.from, p.kind)),
        );
        w.write_all(&line)?;
    }
    w.flush()
}

/// Each thread's label as a JSON string, for [`hb_line`].
pub(crate) fn hb_labels(threads: &[ThreadInfo]) -> Vec<String> {
    threads
        .iter()
        .map(|t| serde_json::to_string(&t.label()).expect("string serializes"))
        .collect()
}

/// One line of `hb.jsonl`, appended to `w`: the event's clock (components by thread, zeros
/// left out) and its direct predecessors (program order first). Formatted by hand: the lines
/// of a long trace are gigabytes.
pub(crate) fn hb_line(
    w: &mut Vec<u8>,
    labels: &[String],
    seq: u64,
    vc: impl Iterator<Item = (ThreadId, u64)>,
    preds: impl Iterator<Item = (u64, EdgeKind)>,
) {
    w.extend_from_slice(b"{\"seq\":");
    push_u64(w, seq);
    w.extend_from_slice(b",\"vc\":{");
    for (k, (t, v)) in vc.enumerate() {
        if k > 0 {
            w.push(b',');
        }
        w.extend_from_slice(labels[t].as_bytes());
        w.push(b':');
        push_u64(w, v);
    }
    w.extend_from_slice(b"},\"pred\":[");
    for (k, (from, kind)) in preds.enumerate() {
        if k > 0 {
            w.push(b',');
        }
        w.extend_from_slice(b"{\"seq\":");
        push_u64(w, from);
        w.extend_from_slice(b",\"kind\":\"");
        w.extend_from_slice(kind.name().as_bytes());
        w.push(b'"');
        if let EdgeKind::Message { bytes } = kind {
            w.extend_from_slice(b",\"bytes\":");
            push_u64(w, bytes);
        }
        w.push(b'}');
    }
    w.extend_from_slice(b"]}\n");
}

/// Appends `v` in decimal.
fn push_u64(w: &mut Vec<u8>, v: u64) {
    crate::chrome::push_i128(w, i128::from(v));
}

/// Renders `dot` to SVG with Graphviz (`dot -Tsvg`). Returns `Ok(false)` when Graphviz is not
/// installed, an error when it rejects the file.
pub fn render_svg(dot: &Path, svg: &Path) -> io::Result<bool> {
    let out = match Command::new("dot")
        .arg("-Tsvg")
        .arg("-o")
        .arg(svg)
        .arg(dot)
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if out.status.success() {
        Ok(true)
    } else {
        Err(io::Error::other(format!(
            "dot -Tsvg {}: {}",
            dot.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// What [`write_outputs`] wrote.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// Files written, in order: graph.dot, graph.svg (when Graphviz is present), trace.json,
    /// summary.json, hb.jsonl.
    pub files: Vec<PathBuf>,
    pub dot_level: DotLevel,
    /// Whether graph.svg was rendered.
    pub svg: bool,
}

fn create(path: &Path) -> io::Result<BufWriter<File>> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Writes every output into `dir` (which must exist): `graph.dot` (+ `graph.svg` when
/// Graphviz is installed), `trace.json`, `summary.json` and `hb.jsonl`. `max_dot_events` is the
/// event-level picture limit ([`crate::DEFAULT_DOT_LIMIT`] is a good default).
pub fn write_outputs(
    dir: &Path,
    g: &HbGraph,
    summary: &Summary,
    max_dot_events: usize,
) -> io::Result<Outputs> {
    let mut files = Vec::new();
    let dot = dir.join("graph.dot");
    let mut w = create(&dot)?;
    let dot_level = write_dot(g, &mut w, max_dot_events)?;
    w.flush()?;
    drop(w);
    files.push(dot.clone());
    let svg_path = dir.join("graph.svg");
    let svg = render_svg(&dot, &svg_path)?;
    if svg {
        files.push(svg_path);
    }

    let p = dir.join("trace.json");
    let mut w = create(&p)?;
    write_chrome_trace(g, &mut w)?;
    w.flush()?;
    files.push(p);

    let p = dir.join("summary.json");
    let mut w = create(&p)?;
    write_summary_json(summary, &mut w)?;
    w.flush()?;
    files.push(p);

    let p = dir.join("hb.jsonl");
    write_hb_jsonl(g, create(&p)?)?;
    files.push(p);

    Ok(Outputs {
        files,
        dot_level,
        svg,
    })
}
