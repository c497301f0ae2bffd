//! history.jsonl: one JSON object per line (format in docs/history.md). Fields the format
//! does not define are kept as extras ([`Entry::extra`]), except near-misses of its own
//! field names, which are typos.

use crate::history::{Entry, History, Kind, Value, ValueError, F};
use crate::Error;
use std::io::{BufRead, Write};
use std::path::Path;

/// Why a line of history.jsonl is not an entry.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// Not JSON at all.
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// JSON, but not an object.
    #[error("expected a JSON object")]
    NotAnObject,
    /// A field the format does not define whose name is one edit away from one it does: a
    /// typo, not an extra field.
    #[error("unknown field {0:?}: did you mean {1:?}?")]
    Misspelled(String, &'static str),
    /// A required field is absent.
    #[error("missing field {0:?}")]
    MissingField(&'static str),
    /// The field must be a string.
    #[error("field {0:?} must be a string")]
    NotAString(&'static str),
    /// The field must be a non-negative integer.
    #[error("field {0:?} must be a non-negative integer")]
    NotANonNegativeInteger(&'static str),
    /// `type` is not a kind.
    #[error("type {0:?} is not one of \"invoke\", \"ok\", \"fail\", \"info\"")]
    UnknownType(String),
    /// `f` is not a function.
    #[error("f {0:?} is not one of \"read\", \"write\", \"cas\"")]
    UnknownF(String),
    /// `key` is neither a string nor an integer.
    #[error("field \"key\" must be a string or an integer")]
    KeyType,
    /// `key` is not a [`Value`].
    #[error("key: {0}")]
    Key(#[source] ValueError),
    /// `value` is not a [`Value`].
    #[error("value: {0}")]
    Value(#[source] ValueError),
    /// `error` is not a string.
    #[error("field \"error\" must be a string")]
    ErrorType,
}

/// Parses one line of history.jsonl; `Err` is the reason (without position).
pub fn parse_entry(line: &str) -> Result<Entry, LineError> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(LineError::NotJson)?;
    let obj = v.as_object().ok_or(LineError::NotAnObject)?;
    let mut extra = Vec::new();
    for (k, v) in obj {
        if FIELDS.contains(&k.as_str()) {
            continue;
        }
        if let Some(meant) = FIELDS.iter().find(|f| f.len() > 1 && one_edit_apart(k, f)) {
            return Err(LineError::Misspelled(k.clone(), meant));
        }
        extra.push((k.clone(), v.clone()));
    }
    // serde_json's map order depends on its features: name order is the same everywhere.
    extra.sort_by(|a, b| a.0.cmp(&b.0));
    let str_field = |name: &'static str| -> Result<&str, LineError> {
        obj.get(name)
            .ok_or(LineError::MissingField(name))?
            .as_str()
            .ok_or(LineError::NotAString(name))
    };
    let u64_field = |name: &'static str| -> Result<u64, LineError> {
        obj.get(name)
            .ok_or(LineError::MissingField(name))?
            .as_u64()
            .ok_or(LineError::NotANonNegativeInteger(name))
    };
    let kind = str_field("type")?;
    let kind = Kind::parse(kind).ok_or_else(|| LineError::UnknownType(kind.to_string()))?;
    let f = str_field("f")?;
    let f = F::parse(f).ok_or_else(|| LineError::UnknownF(f.to_string()))?;
    let key = match obj.get("key") {
        None | Some(serde_json::Value::Null) => None,
        Some(k @ (serde_json::Value::String(_) | serde_json::Value::Number(_))) => {
            Some(Value::from_json(k).map_err(LineError::Key)?)
        }
        Some(_) => return Err(LineError::KeyType),
    };
    let value = match obj.get("value") {
        None => Value::Nil,
        Some(v) => Value::from_json(v).map_err(LineError::Value)?,
    };
    let error = match obj.get("error") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(LineError::ErrorType),
    };
    Ok(Entry {
        kind,
        process: u64_field("process")?,
        f,
        key,
        value,
        time: u64_field("time")?,
        error,
        extra,
    })
}

/// The fields the format defines; any other is kept as an extra ([`Entry::extra`]).
const FIELDS: [&str; 7] = ["type", "process", "f", "key", "value", "time", "error"];

/// Whether `a` becomes `b` by one insertion, deletion, substitution or swap of neighbours
/// (ASCII case ignored): `vlaue`, `tme`, `Time` are typos of format fields, `node` is not.
fn one_edit_apart(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.to_ascii_lowercase().chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a == b {
        return true;
    }
    let same_prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (ra, rb) = (&a[same_prefix..], &b[same_prefix..]);
    match ra.len() as isize - rb.len() as isize {
        0 => {
            ra[1..] == rb[1..]
                || (ra.len() >= 2 && ra[0] == rb[1] && ra[1] == rb[0] && ra[2..] == rb[2..])
        }
        1 => ra[1..] == *rb,
        -1 => *ra == rb[1..],
        _ => false,
    }
}

/// The line of history.jsonl for `e` (without the newline).
pub fn entry_line(e: &Entry) -> String {
    // Written by hand to keep the documented field order.
    let mut s = format!(
        "{{\"type\":\"{}\",\"process\":{},\"f\":\"{}\"",
        e.kind.name(),
        e.process,
        e.f.name()
    );
    if let Some(k) = &e.key {
        s.push_str(",\"key\":");
        s.push_str(&k.to_json().to_string());
    }
    s.push_str(",\"value\":");
    s.push_str(&e.value.to_json().to_string());
    s.push_str(&format!(",\"time\":{}", e.time));
    if let Some(err) = &e.error {
        s.push_str(",\"error\":");
        s.push_str(&serde_json::Value::from(err.as_str()).to_string());
    }
    for (name, value) in &e.extra {
        s.push(',');
        s.push_str(&serde_json::Value::from(name.as_str()).to_string());
        s.push(':');
        s.push_str(&value.to_string());
    }
    s.push('}');
    s
}

/// Reads history.jsonl from `r`; `source` names it in errors (`source:line: reason`).
/// Blank lines are skipped.
pub fn read(r: impl BufRead, source: &str) -> Result<History, Error> {
    let mut h = History {
        source: source.to_string(),
        ..History::default()
    };
    for (i, line) in r.lines().enumerate() {
        let line = line.map_err(|e| Error::Io {
            path: source.to_string(),
            source: e,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let e = parse_entry(&line).map_err(|e| Error::Parse {
            path: source.to_string(),
            line: i + 1,
            source: e.into(),
        })?;
        h.entries.push(e);
        h.lines.push(i + 1);
    }
    Ok(h)
}

/// Reads a history.jsonl file.
pub fn read_file(path: &Path) -> Result<History, Error> {
    let f = std::fs::File::open(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    read(std::io::BufReader::new(f), &path.display().to_string())
}

/// Writes entries as history.jsonl.
pub fn write(mut w: impl Write, entries: &[Entry]) -> std::io::Result<()> {
    for e in entries {
        writeln!(w, "{}", entry_line(e))?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let entries = vec![
            Entry::new(Kind::Invoke, 0, F::Read, Value::Nil, 1),
            Entry {
                key: Some(Value::Str("k1".into())),
                error: Some("timeout".into()),
                ..Entry::new(
                    Kind::Info,
                    3,
                    F::Cas,
                    Value::List(vec![Value::Int(1), Value::Str("x".into())]),
                    99,
                )
            },
        ];
        let mut buf = Vec::new();
        write(&mut buf, &entries).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(
            text,
            "{\"type\":\"invoke\",\"process\":0,\"f\":\"read\",\"value\":null,\"time\":1}\n\
             {\"type\":\"info\",\"process\":3,\"f\":\"cas\",\"key\":\"k1\",\"value\":[1,\"x\"],\"time\":99,\"error\":\"timeout\"}\n"
        );
        let h = read(text.as_bytes(), "h.jsonl").unwrap();
        assert_eq!(h.entries, entries);
        assert_eq!(h.lines, vec![1, 2]);
    }

    #[test]
    fn extra_fields_are_kept_in_name_order_and_written_back() {
        let line = "{\"type\":\"ok\",\"process\":2,\"f\":\"read\",\"value\":3,\"time\":7,\
                    \"node\":\"n1\",\"attempt\":2,\"via\":{\"port\":7001}}";
        let e = parse_entry(line).unwrap();
        assert_eq!(
            e.extra,
            vec![
                ("attempt".to_string(), serde_json::json!(2)),
                ("node".to_string(), serde_json::json!("n1")),
                ("via".to_string(), serde_json::json!({"port": 7001})),
            ]
        );
        assert_eq!(
            entry_line(&e),
            "{\"type\":\"ok\",\"process\":2,\"f\":\"read\",\"value\":3,\"time\":7,\
             \"attempt\":2,\"node\":\"n1\",\"via\":{\"port\":7001}}"
        );
        // One edit from a format field is a typo; further is an extra field.
        for (name, typo) in [
            ("tiem", true),
            ("tme", true),
            ("errors", true),
            ("node", false),
            ("kind", false),
            ("index", false),
            ("ff", false),
        ] {
            assert_eq!(
                FIELDS
                    .iter()
                    .any(|f| f.len() > 1 && one_edit_apart(name, f)),
                typo,
                "{name}"
            );
        }
    }

    #[test]
    fn bad_lines_are_reported_with_file_and_line() {
        let cases = [
            (
                "{\"type\":\"invoke\"",
                "h.jsonl:2: not JSON: EOF while parsing an object at line 1 column 16",
            ),
            ("[1]", "h.jsonl:2: expected a JSON object"),
            (
                "{\"type\":\"start\",\"process\":0,\"f\":\"read\",\"time\":1}",
                "h.jsonl:2: type \"start\" is not one of \"invoke\", \"ok\", \"fail\", \"info\"",
            ),
            (
                "{\"type\":\"ok\",\"process\":-1,\"f\":\"read\",\"time\":1}",
                "h.jsonl:2: field \"process\" must be a non-negative integer",
            ),
            (
                "{\"type\":\"ok\",\"process\":1,\"f\":\"read\"}",
                "h.jsonl:2: missing field \"time\"",
            ),
            (
                "{\"type\":\"ok\",\"process\":1,\"f\":\"read\",\"time\":1,\"value\":1.5}",
                "h.jsonl:2: value: number 1.5 is not a 64-bit integer",
            ),
            (
                "{\"type\":\"ok\",\"process\":1,\"f\":\"read\",\"time\":1,\"vlaue\":1}",
                "h.jsonl:2: unknown field \"vlaue\": did you mean \"value\"?",
            ),
            (
                "{\"type\":\"ok\",\"process\":1,\"f\":\"read\",\"time\":1,\"Key\":1}",
                "h.jsonl:2: unknown field \"Key\": did you mean \"key\"?",
            ),
            (
                "{\"type\":\"ok\",\"process\":1,\"f\":\"read\",\"time\":1,\"proces\":1}",
                "h.jsonl:2: unknown field \"proces\": did you mean \"process\"?",
            ),
            (
                "{\"type\":\"ok\",\"process\":1,\"f\":\"read\",\"time\":1,\"key\":[1]}",
                "h.jsonl:2: field \"key\" must be a string or an integer",
            ),
        ];
        for (line, msg) in cases {
            let text = format!(
                "{{\"type\":\"invoke\",\"process\":1,\"f\":\"read\",\"time\":0}}\n{line}\n"
            );
            let err = read(text.as_bytes(), "h.jsonl").unwrap_err();
            assert_eq!(err.to_string(), msg, "{line}");
        }
    }
}
