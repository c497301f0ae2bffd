//! The recording's ports for a restarted cluster: members keep each other's addresses in their
//! data (etcd's membership), so they must come back where they were.

use crate::Error;
use ordeal_events::TraceReader;
use ordeal_experiment::{ReadyCheck, Resolved};
use std::collections::HashMap;
use std::path::Path;

/// Each node's ports in the recording (from trace.jsonl's header), in port-name order.
pub(super) fn recorded_ports(run_dir: &Path) -> Result<HashMap<String, Vec<u16>>, Error> {
    let r = TraceReader::open(&run_dir.join("trace.jsonl"))?;
    Ok(r.header
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.ports.clone()))
        .collect())
}

/// Makes `r` use the recording's ports instead of its fresh ones: in every node's argv,
/// environment and ready condition, and in the checks. Members of a cluster keep each other's
/// addresses in their data (etcd's membership), so they must come back where they were.
pub(super) fn pin_ports(r: &mut Resolved, recorded: &HashMap<String, Vec<u16>>) {
    let mut map: HashMap<u16, u16> = HashMap::new();
    for n in &mut r.nodes {
        let Some(old) = recorded.get(&n.name) else {
            continue;
        };
        for (p, o) in n.ports.values_mut().zip(old) {
            map.insert(*p, *o);
            *p = *o;
        }
    }
    if map.is_empty() {
        return;
    }
    let fix = |s: &mut String| *s = replace_ports(s, &map);
    for n in &mut r.nodes {
        n.argv.iter_mut().for_each(fix);
        n.env.values_mut().for_each(fix);
        match &mut n.ready {
            Some(ReadyCheck::Tcp(a)) => {
                if let Some(&o) = map.get(&a.port()) {
                    a.set_port(o);
                }
            }
            Some(ReadyCheck::Command { argv, .. }) => argv.iter_mut().for_each(fix),
            _ => {}
        }
    }
    for c in r.check.iter_mut().chain(r.crash_check.iter_mut()) {
        c.argv.iter_mut().for_each(fix);
        c.env.values_mut().for_each(fix);
    }
    for p in r.ports.values_mut() {
        if let Some(&o) = map.get(p) {
            *p = o;
        }
    }
}

/// `s` with every port of `map` replaced: a whole number (not part of a longer run of digits)
/// standing alone or after `:`, `=`, `,` or a space, as in `127.0.0.1:2379`, `--port=6379`, a
/// list of addresses or an argv element of its own; not inside a path or a name (`…/20001/`,
/// `tmp20001`).
fn replace_ports(s: &str, map: &HashMap<u16, u16>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut digits = String::new();
    // Whether the digits being read follow a separator (or start the string).
    let mut standalone = true;
    let flush = |digits: &mut String, out: &mut String, standalone: bool, next: Option<char>| {
        let ends = next.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
        let port = digits.parse::<u16>().ok().and_then(|p| map.get(&p));
        match port {
            Some(o) if standalone && ends => out.push_str(&o.to_string()),
            _ => out.push_str(digits),
        }
        digits.clear();
    };
    let mut prev: Option<char> = None;
    for c in s.chars() {
        if c.is_ascii_digit() {
            if digits.is_empty() {
                standalone = prev.is_none_or(|p| matches!(p, ':' | '=' | ',' | ' '));
            }
            digits.push(c);
        } else {
            flush(&mut digits, &mut out, standalone, Some(c));
            out.push(c);
        }
        prev = Some(c);
    }
    flush(&mut digits, &mut out, standalone, None);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarted_node_gets_the_recordings_ports_everywhere() {
        let exp = ordeal_experiment::Experiment::parse(
            r#"
name = "p"
[[node]]
name = "n"
argv = ["sh", "-c", "exec sleep 1000", "sh", "127.0.0.1:{port.n}", "{port.n-peer}"]
env = { ADDR = "http://127.0.0.1:{port.n}/v2" }
ports = ["n", "n-peer"]
ready = { tcp = "127.0.0.1:{port.n}" }
[check]
argv = ["sh", "-c", "true", "sh", "{port.n-peer}"]
"#,
            "p.toml",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut r = exp
            .resolve(&ordeal_experiment::ResolveContext::new(
                dir.path(),
                "ordeal",
            ))
            .unwrap();
        // The header lists a node's ports in port-name order: n, then n-peer.
        let recorded = HashMap::from([("n".to_string(), vec![1111u16, 2222])]);
        pin_ports(&mut r, &recorded);
        let n = &r.nodes[0];
        assert_eq!(n.argv[4..], ["127.0.0.1:1111", "2222"]);
        assert_eq!(n.env["ADDR"], "http://127.0.0.1:1111/v2");
        assert!(matches!(&n.ready, Some(ReadyCheck::Tcp(a)) if a.port() == 1111));
        assert_eq!(r.check.as_ref().unwrap().argv[4], "2222");
        assert_eq!((r.ports["n"], r.ports["n-peer"]), (1111, 2222));
    }

    #[test]
    fn ports_are_replaced_as_whole_numbers() {
        let map = HashMap::from([(2001u16, 3001u16), (45, 46)]);
        assert_eq!(
            replace_ports("http://127.0.0.1:2001,x=20011,2001", &map),
            "http://127.0.0.1:3001,x=20011,3001"
        );
        assert_eq!(replace_ports("--port=45", &map), "--port=46");
        assert_eq!(replace_ports("v1.2.3", &map), "v1.2.3");
        assert_eq!(replace_ports("2001", &map), "3001");
        assert_eq!(
            replace_ports("/run/2001/x tmp2001 2001a 127.0.0.1:2001/v2", &map),
            "/run/2001/x tmp2001 2001a 127.0.0.1:3001/v2"
        );
    }
}
