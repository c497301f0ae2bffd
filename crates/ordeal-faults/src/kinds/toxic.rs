//! `toxic`: add a Toxiproxy-style toxic to one of the experiment's `[[proxy]]`s.

use std::collections::BTreeMap;

use toml::Spanned;

use super::{optional, required, string, FaultKind, RawFault, Spec};
use crate::check::Checker;
use crate::parse::Converter;
use crate::write::{quote, Keys};

/// A toxic as a schedule gives it (Toxiproxy's model; ordeal-shadow applies and validates
/// it): `type`, `stream` and numeric attributes (`latency`, `jitter`, `rate`, ... in
/// Toxiproxy's units: milliseconds, KB/s, bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToxicSpec {
    pub kind: String,
    /// `upstream` (client → server) or `downstream` (the default).
    pub stream: String,
    pub attributes: BTreeMap<String, u64>,
}

pub(super) const SPEC: Spec = Spec {
    name: "toxic",
    keys: &[
        required("proxy", " (the name of a [[proxy]] of the experiment)"),
        required("toxic", " (e.g. `{ type = \"latency\", latency = 100 }`)"),
        optional("duration"),
    ],
    read,
    check,
    write,
    ..Spec::BASE
};

fn read(f: &RawFault, c: &mut Converter) -> Option<FaultKind> {
    let toxic = read_toxic(f.toxic.as_ref()?, c)?;
    Some(FaultKind::Toxic {
        proxy: string(&f.proxy),
        toxic,
        duration: c.optional_duration(&f.duration)?,
    })
}

/// `toxic = { type = "...", stream = "...", ATTRIBUTE = N, ... }`.
fn read_toxic(raw: &Spanned<toml::value::Table>, c: &mut Converter) -> Option<ToxicSpec> {
    let span = raw.span();
    let t = raw.get_ref();
    let kind = match t.get("type") {
        Some(toml::Value::String(s)) => s.clone(),
        _ => {
            c.err(
                span,
                "`toxic` needs `type`: latency, bandwidth, slicer, timeout, reset_peer, \
                 limit_data or slow_close",
            );
            return None;
        }
    };
    let stream = match t.get("stream") {
        None => "downstream".to_string(),
        Some(toml::Value::String(s)) if s == "upstream" || s == "downstream" => s.clone(),
        Some(_) => {
            c.err(span, "`stream` is \"upstream\" or \"downstream\"");
            return None;
        }
    };
    let mut attributes = BTreeMap::new();
    for (k, v) in t.iter().filter(|(k, _)| *k != "type" && *k != "stream") {
        match v {
            toml::Value::Integer(n) if *n >= 0 => {
                attributes.insert(k.clone(), *n as u64);
            }
            _ => {
                c.err(
                    span.clone(),
                    format!("toxic attribute `{k}` must be a whole number, 0 or more"),
                );
                return None;
            }
        }
    }
    Some(ToxicSpec {
        kind,
        stream,
        attributes,
    })
}

/// The toxic's type and attributes are checked where it is applied (ordeal-shadow).
fn check(kind: &FaultKind, c: &mut Checker) {
    if let FaultKind::Toxic { duration, .. } = kind {
        c.positive(*duration, "duration");
    }
}

fn write(kind: &FaultKind, w: &mut Keys) {
    if let FaultKind::Toxic {
        proxy,
        toxic,
        duration,
    } = kind
    {
        w.string("proxy", proxy);
        w.raw("toxic", toxic_table(toxic));
        if let Some(d) = duration {
            w.duration("duration", *d);
        }
    }
}

fn toxic_table(t: &ToxicSpec) -> String {
    let mut keys = vec![
        format!("type = {}", quote(&t.kind)),
        format!("stream = {}", quote(&t.stream)),
    ];
    for (k, v) in &t.attributes {
        keys.push(format!("{} = {v}", bare_or_quoted(k)));
    }
    format!("{{ {} }}", keys.join(", "))
}

fn bare_or_quoted(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        quote(key)
    }
}
