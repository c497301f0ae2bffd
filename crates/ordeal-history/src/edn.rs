//! Jepsen / Knossos history import: a minimal EDN reader and the conversion of register and
//! cas-register operation maps (`{:type :invoke, :f :read, :value nil, :process 0, :time 123}`)
//! into [`Entry`]s.
//!
//! Accepted layouts: one vector (or list) of maps, or one map per line (any whitespace between
//! maps). Entries whose `:process` is not an integer (`:nemesis`) are skipped.

use crate::history::{Entry, History, Kind, Value, F};
use crate::Error;
use std::path::Path;

/// An EDN value (the subset a Jepsen history uses, plus what is needed to skip the rest).
#[derive(Clone, Debug, PartialEq)]
pub enum Edn {
    /// `nil`
    Nil,
    /// `true` / `false`
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A character literal `\c`.
    Char(char),
    /// `:keyword` (without the colon).
    Keyword(String),
    /// A symbol.
    Symbol(String),
    /// `[...]`
    Vector(Vec<Edn>),
    /// `(...)`
    List(Vec<Edn>),
    /// `{...}`, in order.
    Map(Vec<(Edn, Edn)>),
    /// `#{...}`
    Set(Vec<Edn>),
    /// `#tag value`
    Tagged(String, Box<Edn>),
}

/// A parse error: line (1-based) and reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct EdnError {
    /// Line of the problem.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    line: usize,
}

const MAX_DEPTH: usize = 64;

impl<'a> Parser<'a> {
    fn err<T>(&self, msg: impl Into<String>) -> Result<T, EdnError> {
        Err(EdnError {
            line: self.line,
            msg: msg.into(),
        })
    }

    fn skip_ws(&mut self) {
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'\n' => {
                    self.line += 1;
                    self.i += 1;
                }
                b' ' | b'\t' | b'\r' | b',' => self.i += 1,
                b';' => {
                    while self.i < self.s.len() && self.s[self.i] != b'\n' {
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.i >= self.s.len()
    }

    fn is_delim(c: u8) -> bool {
        matches!(
            c,
            b' ' | b'\t'
                | b'\r'
                | b'\n'
                | b','
                | b'('
                | b')'
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b'"'
                | b';'
        )
    }

    fn token(&mut self) -> &'a str {
        let start = self.i;
        while self.i < self.s.len() && !Self::is_delim(self.s[self.i]) {
            self.i += 1;
        }
        // The input is a &str and delimiters are ASCII, so this is a char boundary.
        std::str::from_utf8(&self.s[start..self.i]).unwrap_or("")
    }

    fn seq(&mut self, close: u8, depth: usize) -> Result<Vec<Edn>, EdnError> {
        let open_line = self.line;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            match self.s.get(self.i) {
                None => {
                    return Err(EdnError {
                        line: open_line,
                        msg: format!("unclosed collection (expected `{}`)", close as char),
                    })
                }
                Some(&c) if c == close => {
                    self.i += 1;
                    return Ok(items);
                }
                Some(_) => {
                    if let Some(v) = self.value(depth + 1)? {
                        items.push(v);
                    }
                }
            }
        }
    }

    /// The next value; `None` for a discarded `#_ form` (the caller reads on).
    fn value(&mut self, depth: usize) -> Result<Option<Edn>, EdnError> {
        if depth > MAX_DEPTH {
            return self.err("nested too deeply");
        }
        self.skip_ws();
        let Some(&c) = self.s.get(self.i) else {
            return self.err("unexpected end of input");
        };
        let v = match c {
            b'[' => {
                self.i += 1;
                Edn::Vector(self.seq(b']', depth)?)
            }
            b'(' => {
                self.i += 1;
                Edn::List(self.seq(b')', depth)?)
            }
            b'{' => {
                self.i += 1;
                let line = self.line;
                let items = self.seq(b'}', depth)?;
                if items.len() % 2 != 0 {
                    return Err(EdnError {
                        line,
                        msg: "map with an odd number of forms".into(),
                    });
                }
                let mut it = items.into_iter();
                let mut pairs = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Edn::Map(pairs)
            }
            b']' | b')' | b'}' => return self.err(format!("unexpected `{}`", c as char)),
            b'"' => self.string()?,
            b'#' => {
                self.i += 1;
                match self.s.get(self.i) {
                    Some(b'{') => {
                        self.i += 1;
                        Edn::Set(self.seq(b'}', depth)?)
                    }
                    Some(b'_') => {
                        self.i += 1;
                        self.value(depth + 1)?;
                        return Ok(None);
                    }
                    _ => {
                        let tag = self.token().to_string();
                        if tag.is_empty() {
                            return self.err("`#` without a tag");
                        }
                        let mut inner = None;
                        while inner.is_none() {
                            inner = self.value(depth + 1)?;
                        }
                        Edn::Tagged(tag, Box::new(inner.unwrap_or(Edn::Nil)))
                    }
                }
            }
            b'\\' => {
                self.i += 1;
                let mut text = self.token().to_string();
                if text.is_empty() {
                    // A delimiter character such as `\(`.
                    let ch = std::str::from_utf8(&self.s[self.i..])
                        .ok()
                        .and_then(|s| s.chars().next());
                    let Some(ch) = ch else {
                        return self.err("`\\` at end of input");
                    };
                    self.i += ch.len_utf8();
                    text.push(ch);
                }
                Edn::Char(match text.as_str() {
                    "newline" => '\n',
                    "space" => ' ',
                    "tab" => '\t',
                    "return" => '\r',
                    t if t.chars().count() == 1 => t.chars().next().unwrap_or(' '),
                    t => return self.err(format!("unknown character literal \\{t}")),
                })
            }
            b':' => {
                self.i += 1;
                let t = self.token();
                if t.is_empty() {
                    return self.err("empty keyword");
                }
                Edn::Keyword(t.to_string())
            }
            _ => {
                let t = self.token();
                if t.is_empty() {
                    return self.err(format!("unexpected character {:?}", c as char));
                }
                self.atom(t)?
            }
        };
        Ok(Some(v))
    }

    fn atom(&self, t: &str) -> Result<Edn, EdnError> {
        match t {
            "nil" => return Ok(Edn::Nil),
            "true" => return Ok(Edn::Bool(true)),
            "false" => return Ok(Edn::Bool(false)),
            _ => {}
        }
        let b = t.as_bytes();
        let numeric = b[0].is_ascii_digit()
            || (b.len() > 1 && (b[0] == b'-' || b[0] == b'+') && b[1].is_ascii_digit());
        if !numeric {
            return Ok(Edn::Symbol(t.to_string()));
        }
        let int = t.strip_suffix('N').unwrap_or(t);
        if let Ok(i) = int.parse::<i64>() {
            return Ok(Edn::Int(i));
        }
        let float = t.strip_suffix('M').unwrap_or(t);
        match float.parse::<f64>() {
            Ok(f) => Ok(Edn::Float(f)),
            Err(_) => self.err(format!("invalid number {t:?}")),
        }
    }

    fn string(&mut self) -> Result<Edn, EdnError> {
        let start_line = self.line;
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err(EdnError {
                    line: start_line,
                    msg: "unterminated string".into(),
                });
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\n' => {
                    self.line += 1;
                    out.push(c);
                }
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        continue;
                    };
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'"' | b'\\' => out.push(e),
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4).unwrap_or(b"");
                            let code = std::str::from_utf8(hex)
                                .ok()
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32);
                            let Some(ch) = code else {
                                return self.err("bad \\u escape in string");
                            };
                            self.i += 4;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        other => {
                            return self
                                .err(format!("unknown escape \\{} in string", other as char))
                        }
                    }
                }
                _ => out.push(c),
            }
        }
        Ok(Edn::Str(String::from_utf8_lossy(&out).into_owned()))
    }
}

/// Parses every top-level form of `text`, with the line each starts on.
pub fn parse_all(text: &str) -> Result<Vec<(usize, Edn)>, EdnError> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        line: 1,
    };
    let mut out = Vec::new();
    while !p.at_end() {
        let line = p.line;
        if let Some(v) = p.value(0)? {
            out.push((line, v));
        }
    }
    Ok(out)
}

fn keyword<'e>(m: &'e [(Edn, Edn)], name: &str) -> Option<&'e Edn> {
    m.iter()
        .find(|(k, _)| matches!(k, Edn::Keyword(n) if n == name))
        .map(|(_, v)| v)
}

fn to_value(e: &Edn) -> Result<Value, OpError> {
    Ok(match e {
        Edn::Nil => Value::Nil,
        Edn::Int(i) => Value::Int(*i),
        Edn::Str(s) => Value::Str(s.clone()),
        Edn::Keyword(k) => Value::Str(format!(":{k}")),
        Edn::Vector(items) | Edn::List(items) => {
            Value::List(items.iter().map(to_value).collect::<Result<_, _>>()?)
        }
        other => return Err(OpError::UnsupportedValue(other.clone())),
    })
}

fn name_of(e: &Edn) -> Option<&str> {
    match e {
        Edn::Keyword(s) | Edn::Symbol(s) | Edn::Str(s) => Some(s),
        _ => None,
    }
}

/// Why an EDN form is not an operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpError {
    /// Not a map.
    #[error("expected an operation map {{:type .. :f .. :process ..}}")]
    NotAMap,
    /// A required key (`process`, `type`, `f`) is absent.
    #[error("missing :{0}")]
    Missing(&'static str),
    /// A negative `:process`.
    #[error(":process {0} is negative")]
    NegativeProcess(i64),
    /// `:type` is not a kind.
    #[error(":type must be :invoke, :ok, :fail or :info, got {0:?}")]
    UnknownType(Edn),
    /// `:f` is not a function.
    #[error(":f must be :read, :write or :cas, got {0:?}")]
    UnknownF(Edn),
    /// `:value` is not a [`Value`] (a float, a map...).
    #[error(":value: unsupported value {0:?}")]
    UnsupportedValue(Edn),
    /// `:time` is not a non-negative integer.
    #[error(":time must be a non-negative integer, got {0:?}")]
    BadTime(Edn),
}

/// One operation map as an entry; `Ok(None)` for an entry to skip (a non-integer process,
/// such as `:nemesis`). `index` is the time used when the map has no `:time`.
pub fn map_entry(form: &Edn, index: u64) -> Result<Option<Entry>, OpError> {
    let Edn::Map(m) = form else {
        return Err(OpError::NotAMap);
    };
    let process = match keyword(m, "process") {
        Some(Edn::Int(p)) if *p >= 0 => *p as u64,
        Some(Edn::Int(p)) => return Err(OpError::NegativeProcess(*p)),
        Some(_) => return Ok(None),
        None => return Err(OpError::Missing("process")),
    };
    let kind = keyword(m, "type").ok_or(OpError::Missing("type"))?;
    let kind = name_of(kind)
        .and_then(Kind::parse)
        .ok_or_else(|| OpError::UnknownType(kind.clone()))?;
    let f = keyword(m, "f").ok_or(OpError::Missing("f"))?;
    let f = name_of(f)
        .and_then(F::parse)
        .ok_or_else(|| OpError::UnknownF(f.clone()))?;
    let value = match keyword(m, "value") {
        None => Value::Nil,
        Some(v) => to_value(v)?,
    };
    let time = match keyword(m, "time") {
        None => index,
        Some(Edn::Int(t)) if *t >= 0 => *t as u64,
        Some(t) => return Err(OpError::BadTime(t.clone())),
    };
    let error = keyword(m, "error").map(|e| match e {
        Edn::Str(s) => s.clone(),
        Edn::Keyword(k) => format!(":{k}"),
        other => format!("{other:?}"),
    });
    Ok(Some(Entry {
        kind,
        process,
        f,
        key: None,
        value,
        time,
        error,
        extra: Vec::new(),
    }))
}

/// Reads a Jepsen/Knossos register or cas-register history from EDN text.
pub fn read_str(text: &str, source: &str) -> Result<History, Error> {
    let forms = parse_all(text).map_err(|e| Error::Parse {
        path: source.to_string(),
        line: e.line,
        source: e.into(),
    })?;
    // One vector or list of maps, or maps one after the other. Elements carry the top-level
    // form's line only when they are top-level; inside a vector, lines are re-derived below.
    let items: Vec<(usize, Edn)> = match forms.as_slice() {
        [(_, Edn::Vector(_) | Edn::List(_))] => {
            let Some((line, Edn::Vector(items) | Edn::List(items))) = forms.into_iter().next()
            else {
                return Ok(History::default());
            };
            element_lines(text, line, items)
        }
        _ => forms,
    };
    let mut h = History {
        source: source.to_string(),
        ..History::default()
    };
    for (i, (line, form)) in items.iter().enumerate() {
        match map_entry(form, i as u64) {
            Ok(Some(e)) => {
                h.entries.push(e);
                h.lines.push(*line);
            }
            Ok(None) => {}
            Err(e) => {
                return Err(Error::Parse {
                    path: source.to_string(),
                    line: *line,
                    source: e.into(),
                })
            }
        }
    }
    Ok(h)
}

/// Lines of the elements of a top-level vector: re-parses the vector's body element by element.
fn element_lines(text: &str, _line: usize, items: Vec<Edn>) -> Vec<(usize, Edn)> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        line: 1,
    };
    p.skip_ws();
    p.i += 1; // the opening bracket
    let mut lines = Vec::with_capacity(items.len());
    while lines.len() < items.len() {
        p.skip_ws();
        let line = p.line;
        match p.value(1) {
            Ok(Some(_)) => lines.push(line),
            Ok(None) => {}
            Err(_) => break,
        }
    }
    lines.resize(items.len(), 0);
    lines.into_iter().zip(items).collect()
}

/// Reads an EDN history file.
pub fn read_file(path: &Path) -> Result<History, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    read_str(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_edn_values() {
        let forms = parse_all(
            "; comment\n{:a 1, :b [nil true -3 2.5 \"s\\\"x\"] :c #{1} :d (x y) #_ :gone :e #inst \"2020\" :f \\c}",
        )
        .unwrap();
        assert_eq!(forms.len(), 1);
        assert_eq!(forms[0].0, 2);
        let Edn::Map(m) = &forms[0].1 else { panic!() };
        assert_eq!(m.len(), 6);
        assert_eq!(
            m[1].1,
            Edn::Vector(vec![
                Edn::Nil,
                Edn::Bool(true),
                Edn::Int(-3),
                Edn::Float(2.5),
                Edn::Str("s\"x".into())
            ])
        );
        assert_eq!(m[2].1, Edn::Set(vec![Edn::Int(1)]));
        assert_eq!(
            m[3].1,
            Edn::List(vec![Edn::Symbol("x".into()), Edn::Symbol("y".into())])
        );
        assert_eq!(m[4].0, Edn::Keyword("e".into()));
        assert_eq!(
            m[4].1,
            Edn::Tagged("inst".into(), Box::new(Edn::Str("2020".into())))
        );
        assert_eq!(m[5].1, Edn::Char('c'));
    }

    #[test]
    fn edn_errors_have_lines() {
        let e = parse_all("[{:a 1}\n{:b}]").unwrap_err();
        assert_eq!(
            e,
            EdnError {
                line: 2,
                msg: "map with an odd number of forms".into()
            }
        );
        let e = parse_all("[1 2\n3").unwrap_err();
        assert_eq!(e.line, 1);
        assert_eq!(e.msg, "unclosed collection (expected `]`)");
        assert_eq!(parse_all("\n\n)").unwrap_err().line, 3);
        assert_eq!(parse_all("\"abc").unwrap_err().msg, "unterminated string");
    }

    /// The layout of Knossos's test data (e.g. `data/cas-register/good/*.edn`): a vector of
    /// maps, with a nemesis, an indeterminate cas, and times.
    const KNOSSOS: &str = r#"[{:process 0, :type :invoke, :f :read, :value nil, :time 8186744, :index 0}
 {:process 0, :type :ok, :f :read, :value nil, :time 9355474, :index 1}
 {:process 1, :type :invoke, :f :write, :value 3, :time 10000000, :index 2}
 {:process :nemesis, :type :info, :f :start, :value nil, :time 11000000, :index 3}
 {:process 2, :type :invoke, :f :cas, :value [3 1], :time 12000000, :index 4}
 {:process 1, :type :ok, :f :write, :value 3, :time 13000000, :index 5}
 {:process 2, :type :info, :f :cas, :value [3 1], :time 14000000, :error :timeout, :index 6}
 {:process 0, :type :invoke, :f :read, :value nil, :time 15000000, :index 7}
 {:process 0, :type :ok, :f :read, :value 1, :time 16000000, :index 8}]"#;

    #[test]
    fn imports_a_knossos_history() {
        let h = read_str(KNOSSOS, "h.edn").unwrap();
        assert_eq!(h.entries.len(), 8, "the nemesis entry is skipped");
        assert_eq!(h.lines, vec![1, 2, 3, 5, 6, 7, 8, 9]);
        assert_eq!(
            h.entries[3],
            Entry::new(
                Kind::Invoke,
                2,
                F::Cas,
                Value::List(vec![Value::Int(3), Value::Int(1)]),
                12_000_000
            )
        );
        assert_eq!(h.entries[5].kind, Kind::Info);
        assert_eq!(h.entries[5].error.as_deref(), Some(":timeout"));
        assert_eq!(h.entries[7].value, Value::Int(1));
        // One map per line, no :time: times are the entry numbers.
        let lines = "{:process 0 :type :invoke :f :write :value 1}\n{:process 0 :type :ok :f :write :value 1}\n";
        let h = read_str(lines, "h.edn").unwrap();
        assert_eq!(h.entries.len(), 2);
        assert_eq!((h.entries[0].time, h.entries[1].time), (0, 1));
        assert_eq!(h.lines, vec![1, 2]);
    }

    #[test]
    fn bad_operation_maps_are_reported_with_their_line() {
        let text = "[{:process 0, :type :invoke, :f :read}\n {:process 0, :type :ok, :f :frob}]";
        let err = read_str(text, "h.edn").unwrap_err();
        assert_eq!(
            err.to_string(),
            "h.edn:2: :f must be :read, :write or :cas, got Keyword(\"frob\")"
        );
        let err = read_str("{:type :ok :f :read}", "h.edn").unwrap_err();
        assert_eq!(err.to_string(), "h.edn:1: missing :process");
        let err = read_str("[1]", "h.edn").unwrap_err();
        assert_eq!(
            err.to_string(),
            "h.edn:1: expected an operation map {:type .. :f .. :process ..}"
        );
    }
}
