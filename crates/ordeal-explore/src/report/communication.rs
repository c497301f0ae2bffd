//! The report's picture of a failing run: a space-time diagram of its communication.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use ordeal_events::TraceReader;
use ordeal_hb::{Cause, EdgeKind, HbGraph};

use super::esc;

/// Characters of a message's text written along its arrow.
const ARROW_CHARS: usize = 28;

/// A space-time diagram of a run: one lane per node, an arrow per message (blue) and connection
/// (dashed), in causal order top to bottom; faulted events in red, with their marker. A message
/// the call log decodes (`SET k3 v7`, `+OK`) is written along its arrow, else its byte count.
pub fn communication_svg(run_dir: &Path) -> Option<String> {
    communication_svg_marked(run_dir, None)
}

/// [`communication_svg`] with the violating operation `cause` names (the failing workload's
/// call its log line quotes, the history's operation) drawn in red.
pub fn communication_svg_marked(run_dir: &Path, cause: Option<&Cause>) -> Option<String> {
    let trace = run_dir.join("trace.jsonl");
    let reader = TraceReader::open(&trace).ok()?;
    let header = reader.header.clone();
    let events = reader.read_all().ok()?;
    let mut g = HbGraph::from_owned(header, events);
    let mut calls = Vec::new();
    // A trace the call log cannot read is drawn without what its messages said.
    if let Ok(decoded) = ordeal_calls::decode_trace(&trace, |c| {
        if cause.is_some() {
            calls.extend(
                serde_json::to_value(&c)
                    .ok()
                    .and_then(|v| serde_json::from_value::<ordeal_hb::CallLine>(v).ok()),
            );
        }
    }) {
        g.set_labels(decoded.labels);
    }
    let violation: HashSet<u64> = cause
        .and_then(|c| ordeal_hb::violating_call(c, &calls))
        .unwrap_or_default()
        .into_iter()
        .collect();
    Some(draw(&g, &violation))
}

/// The first line of a send's recorded bytes (escaped as in trace.jsonl), when printable.
fn first_line(e: &ordeal_events::Event) -> Option<String> {
    let data = e.data.as_deref().filter(|_| e.is_send())?;
    let line = data.split("\\n").next().unwrap_or(data);
    let line = line.split("\\r").next().unwrap_or(line).trim();
    (!line.is_empty() && !line.contains("\\x")).then(|| cut(line, ARROW_CHARS - 8))
}

/// `text` cut to `max` characters, the last one `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The diagram of `g`, its messages labelled with [`HbGraph::labels`] (else their bytes), the
/// messages to and from the events of `violation` in red.
fn draw(g: &HbGraph, violation: &HashSet<u64>) -> String {
    let lanes: Vec<&str> = g
        .header()
        .nodes
        .iter()
        .filter(|n| n.role != "check")
        .map(|n| n.name.as_str())
        .collect();
    let lane = |n: &str| lanes.iter().position(|l| *l == n);
    struct Arrow<'a> {
        from: u64,
        to: u64,
        connect: bool,
        bytes: u64,
        /// What the message said, on the first arrow out of its send (its first bytes).
        label: Option<&'a str>,
    }
    let mut named: HashSet<u64> = HashSet::new();
    let mut arrows: Vec<Arrow> = Vec::new();
    for e in g.edges() {
        let (connect, bytes) = match e.kind {
            EdgeKind::Message { bytes } => (false, bytes),
            EdgeKind::Connect => (true, 0),
            _ => continue,
        };
        let label = match g.labels().get(&e.from) {
            Some(l) if !connect && named.insert(e.from) => Some(l.as_str()),
            _ => None,
        };
        let (Some(a), Some(b)) = (g.event(e.from), g.event(e.to)) else {
            continue;
        };
        if a.node == b.node || lane(&a.node).is_none() || lane(&b.node).is_none() {
            continue;
        }
        arrows.push(Arrow {
            from: e.from,
            to: e.to,
            connect,
            bytes,
            label,
        });
    }
    let marks: Vec<&ordeal_events::Event> = g
        .events()
        .iter()
        .filter(|e| e.fault.is_some() || (e.call == "exit" && e.pid == e.tid && e.signal.is_some()))
        .filter(|e| lane(&e.node).is_some())
        .collect();
    // Keep the picture readable: at most 400 arrows, centred on the first fault.
    arrows.sort_by_key(|a| a.from.min(a.to));
    let limit = 400;
    let mut note = String::new();
    if arrows.len() > limit {
        let first_fault = violation
            .iter()
            .min()
            .copied()
            .or_else(|| marks.iter().find(|e| e.fault.is_some()).map(|e| e.seq))
            .unwrap_or(0);
        let pos = arrows
            .iter()
            .position(|a| a.from >= first_fault)
            .unwrap_or(0);
        let start = pos.saturating_sub(limit / 2).min(arrows.len() - limit);
        note = format!(
            "arrows {}..{} of {} shown (around the {})",
            start + 1,
            start + limit,
            arrows.len(),
            if violation.is_empty() {
                "first fault"
            } else {
                "violating operation"
            }
        );
        arrows = arrows.drain(start..start + limit).collect();
    }
    let lo = arrows.first().map(|a| a.from.min(a.to)).unwrap_or(0);
    let hi = arrows
        .iter()
        .map(|a| a.from.max(a.to))
        .max()
        .unwrap_or(u64::MAX);
    let mut seqs: BTreeSet<u64> = BTreeSet::new();
    for a in &arrows {
        seqs.insert(a.from);
        seqs.insert(a.to);
    }
    for m in &marks {
        if m.seq >= lo && m.seq <= hi {
            seqs.insert(m.seq);
        }
    }
    let rank: HashMap<u64, usize> = seqs.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let lane_w = 150.0;
    let top = 50.0;
    // Rows make room for the text of the arrows.
    let step = 11.0;
    let w = 40.0 + lane_w * lanes.len() as f64 + 180.0;
    let h = top + step * seqs.len() as f64 + 30.0;
    let x = |n: &str| 60.0 + lane_w * lane(n).unwrap_or(0) as f64;
    let y = |s: u64| top + step * rank.get(&s).copied().unwrap_or(0) as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"sans-serif\" font-size=\"11\">\n"
    );
    s.push_str("<defs><marker id=\"ah\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#2e6fdb\"/></marker><marker id=\"ahv\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#b00020\"/></marker></defs>\n");
    if !note.is_empty() {
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"14\" fill=\"#555\">{}</text>",
            esc(&note)
        );
    }
    for l in &lanes {
        let _ = writeln!(
            s,
            "<text x=\"{:.0}\" y=\"{}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text><line x1=\"{:.0}\" y1=\"{}\" x2=\"{:.0}\" y2=\"{:.0}\" stroke=\"#bbb\"/>",
            x(l),
            top - 16.0,
            esc(l),
            x(l),
            top - 10.0,
            x(l),
            h - 20.0
        );
    }
    for a in &arrows {
        let (Some(ea), Some(eb)) = (g.event(a.from), g.event(a.to)) else {
            continue;
        };
        let dash = if a.connect {
            " stroke-dasharray=\"4 3\""
        } else {
            ""
        };
        let title = if a.connect {
            format!(
                "#{} {} connect → #{} {} accept",
                a.from, ea.node, a.to, eb.node
            )
        } else {
            let mut t = format!(
                "#{} {} {} → #{} {} {}: {} B",
                a.from, ea.node, ea.call, a.to, eb.node, eb.call, a.bytes
            );
            if let Some(l) = a.label {
                t.push_str(": ");
                t.push_str(l);
            }
            t
        };
        let (x1, y1, x2, y2) = (x(&ea.node), y(a.from), x(&eb.node), y(a.to));
        let red = violation.contains(&a.from) || violation.contains(&a.to);
        let (colour, width, marker, class) = if red {
            ("#b00020", 2, "ahv", " class=\"violation\"")
        } else {
            ("#2e6fdb", 1, "ah", "")
        };
        let _ = writeln!(
            s,
            "<line{class} x1=\"{x1:.0}\" y1=\"{y1:.0}\" x2=\"{x2:.0}\" y2=\"{y2:.0}\" stroke=\"{colour}\" stroke-width=\"{width}\"{dash} marker-end=\"url(#{marker})\"><title>{}</title></line>",
            esc(&title)
        );
        // Undecoded: the first line of the bytes the send recorded, with its size.
        let bytes = match first_line(ea) {
            Some(line) => format!("{line} ({} B)", a.bytes),
            None => format!("{} B", a.bytes),
        };
        let text = match a.label {
            Some(l) => Some(l),
            None if !a.connect => Some(bytes.as_str()),
            None => None,
        };
        if let Some(l) = text {
            // Small text along the arrow, just above its middle, never upside down.
            let (mx, my) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
            let mut angle = (y2 - y1).atan2(x2 - x1).to_degrees();
            if angle > 90.0 {
                angle -= 180.0;
            } else if angle < -90.0 {
                angle += 180.0;
            }
            let _ = writeln!(
                s,
                "<text{class} x=\"{mx:.0}\" y=\"{:.0}\" font-size=\"8\" fill=\"{colour}\" text-anchor=\"middle\" transform=\"rotate({angle:.1} {mx:.0} {my:.0})\">{}</text>",
                my - 2.0,
                esc(&cut(l, ARROW_CHARS))
            );
        }
    }
    for m in &marks {
        if !rank.contains_key(&m.seq) {
            continue;
        }
        let label = match &m.fault {
            Some(f) => format!("#{} {}: {}", m.seq, m.call, f),
            None => format!("#{} exit {}", m.seq, m.signal.as_deref().unwrap_or("")),
        };
        let colour = if m.fault.is_some() { "#d1495b" } else { "#444" };
        let _ = writeln!(
            s,
            "<circle cx=\"{:.0}\" cy=\"{:.0}\" r=\"5\" fill=\"{colour}\"><title>{}</title></circle><text x=\"{:.0}\" y=\"{:.0}\" fill=\"{colour}\">{}</text>",
            x(&m.node),
            y(m.seq),
            esc(&label),
            x(&m.node) + 8.0,
            y(m.seq) + 4.0,
            esc(&label)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordeal_events::{Class, Event, Header, NodeInfo, Proto, Sock, TraceWriter};

    fn header() -> Header {
        let node = |name: &str, role: &str, ports: Vec<u16>, protocol: Option<&str>| NodeInfo {
            name: name.into(),
            role: role.into(),
            ports,
            protocol: protocol.map(str::to_string),
        };
        Header {
            schema: "ordeal-trace".into(),
            version: ordeal_events::SCHEMA_VERSION,
            experiment: "kv".into(),
            started_at: String::new(),
            nodes: vec![
                node("kv", "node", vec![7000], Some("demo-kv")),
                node("client", "workload", vec![], None),
            ],
        }
    }

    fn sock(ino: u64, local: &str, remote: &str) -> Sock {
        Sock {
            ino,
            proto: Proto::Tcp,
            local: Some(local.into()),
            remote: Some(remote.into()),
            peer_ino: None,
            peer_node: None,
        }
    }

    /// A demo-kv exchange: the client connects, writes `SET k1 v1\n` (seq 2), the node reads
    /// it and answers `OK\n` (seq 4), which the client reads.
    fn exchange() -> Vec<Event> {
        let c = sock(10, "127.0.0.1:40000", "127.0.0.1:7000");
        let s = sock(20, "127.0.0.1:7000", "127.0.0.1:40000");
        let ev = |seq: u64, node: &str, call: &str, s: &Sock, off: u64, data: &str| {
            let pid = if node == "kv" { 200 } else { 100 };
            let data_class = !data.is_empty();
            Event {
                seq,
                ts: 1_000 * (seq + 1),
                dur: 100,
                node: node.into(),
                pid,
                tid: pid,
                call: call.into(),
                class: Some(if data_class { Class::Data } else { Class::Net }),
                ret: Some(if data_class { data.len() as i64 } else { 0 }),
                fd: Some(5),
                sock: Some(s.clone()),
                addr: (call == "connect").then(|| "127.0.0.1:7000".into()),
                len: data_class.then_some(data.len() as u64),
                off: data_class.then_some(off),
                data: data_class.then(|| ordeal_events::escape_bytes(data.as_bytes())),
                ..Default::default()
            }
        };
        vec![
            ev(0, "client", "connect", &c, 0, ""),
            ev(1, "kv", "accept4", &s, 0, ""),
            ev(2, "client", "write", &c, 0, "SET k1 v1\n"),
            ev(3, "kv", "read", &s, 0, "SET k1 v1\n"),
            ev(4, "kv", "write", &s, 0, "OK\n"),
            ev(5, "client", "read", &c, 0, "OK\n"),
        ]
    }

    /// The text elements written along arrows.
    fn arrow_texts(svg: &str) -> Vec<&str> {
        svg.lines()
            .filter(|l| l.starts_with("<text") && l.contains("font-size=\"8\""))
            .filter_map(|l| l.split_once('>')?.1.strip_suffix("</text>"))
            .collect()
    }

    #[test]
    fn decoded_messages_are_written_along_their_arrows() {
        let mut g = HbGraph::build(&header(), &exchange());
        g.set_labels(HashMap::from([
            (2, "SET k1 v1".to_string()),
            (4, "OK".to_string()),
        ]));
        let svg = draw(&g, &HashSet::new());
        assert_eq!(arrow_texts(&svg), ["SET k1 v1", "OK"]);
        assert!(
            svg.contains("<title>#2 client write → #3 kv read: 10 B: SET k1 v1</title>"),
            "{svg}"
        );
        // Along the arrow (client's lane is right of kv's: drawn leftwards, never upside down).
        assert!(svg.contains("transform=\"rotate("), "{svg}");
        // Long and odd texts are cut to 28 characters and escaped.
        g.set_labels(HashMap::from([(2, format!("SET <k1> {}", "v".repeat(40)))]));
        let svg = draw(&g, &HashSet::new());
        let want = format!("SET &lt;k1&gt; {}…", "v".repeat(18));
        // The response, without a label now, says its first bytes.
        assert_eq!(arrow_texts(&svg), [want.as_str(), "OK (3 B)"]);
    }

    #[test]
    fn without_labels_the_arrows_say_their_first_bytes() {
        let g = HbGraph::build(&header(), &exchange());
        let svg = draw(&g, &HashSet::new());
        assert_eq!(arrow_texts(&svg), ["SET k1 v1 (10 B)", "OK (3 B)"]);
        // The connect and the two messages.
        assert_eq!(svg.matches("marker-end=\"url(#ah)\"").count(), 3);
        assert!(
            svg.contains("<title>#2 client write → #3 kv read: 10 B</title>"),
            "{svg}"
        );
    }

    fn run_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut w = TraceWriter::new(Vec::new(), &header()).unwrap();
        for e in exchange() {
            w.write(&e).unwrap();
        }
        std::fs::write(dir.path().join("trace.jsonl"), w.into_inner()).unwrap();
        dir
    }

    #[test]
    fn a_run_directory_is_drawn_from_its_trace() {
        let dir = run_dir();
        let svg = communication_svg(dir.path()).unwrap();
        assert_eq!(svg.matches("marker-end=\"url(#ah)\"").count(), 3);
        assert_eq!(communication_svg(&dir.path().join("missing")), None);
    }

    #[test]
    fn a_run_directory_shows_what_its_messages_said() {
        let dir = run_dir();
        let svg = communication_svg(dir.path()).unwrap();
        assert_eq!(arrow_texts(&svg), ["SET k1 v1", "OK"]);
    }

    #[test]
    fn the_violating_operation_is_drawn_in_red() {
        let dir = run_dir();
        let cause = Cause::Workload {
            name: "client".into(),
            status: "exit 1".into(),
            log: Some(ordeal_hb::LogLine {
                file: "logs/client.stdout".into(),
                line: 1,
                text: "VIOLATION: SET k1 v1 answered OK but lost".into(),
            }),
        };
        let svg = communication_svg_marked(dir.path(), Some(&cause)).unwrap();
        // The request (2 → 3) and the response (4 → 5): red, labelled.
        let red: Vec<&str> = svg
            .lines()
            .filter(|l| l.starts_with("<line class=\"violation\""))
            .collect();
        assert_eq!(red.len(), 2, "{svg}");
        assert!(red[0].contains("<title>#2 client write → #3 kv read: 10 B: SET k1 v1</title>"));
        assert!(red[1].contains("<title>#4 kv write → #5 client read: 3 B: OK</title>"));
        assert_eq!(svg.matches("<text class=\"violation\"").count(), 2, "{svg}");
        // The connect stays blue.
        assert_eq!(svg.matches("marker-end=\"url(#ah)\"").count(), 1);
        let plain = communication_svg(dir.path()).unwrap();
        assert!(!plain.contains("violation"), "{plain}");
    }
}
