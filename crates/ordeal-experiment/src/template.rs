//! Strings with placeholders: `{port.NAME}`, `{data_dir.NODE}`, `{var.NAME}`, `{run_dir}`,
//! `{ordeal}`, and `{{` / `}}` for literal braces.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ordeal_toml::truncated;

use crate::Location;

/// One placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placeholder {
    Port(String),
    Host(String),
    DataDir(String),
    Var(String),
    RunDir,
    Ordeal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Lit(String),
    /// A placeholder and the byte offset of its `{` in the decoded string.
    Hole(Placeholder, usize),
}

/// A parsed string value of the experiment file.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub pieces: Vec<Piece>,
    /// Where the string value starts in the file.
    pub location: Location,
}

/// Whether `name` is a valid node, workload, port or variable name: `[A-Za-z0-9_-]+`.
pub(crate) fn is_simple_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

const EXPECTED: &str =
    "expected `{port.NAME}`, `{host.NAME}`, `{data_dir.NODE}`, `{var.NAME}`, `{run_dir}` \
                        or `{ordeal}` (write `{{` and `}}` for literal braces)";

/// A problem in a string with placeholders, at byte `offset` of the string (its `{` or `}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub(crate) struct TemplateError {
    pub offset: usize,
    pub problem: TemplateProblem,
}

/// What is wrong with a placeholder; displayed as a message suitable after a location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TemplateProblem {
    #[error("unmatched `}}` (write `}}}}` for a literal brace)")]
    UnmatchedClose,
    #[error("unclosed `{{` (write `{{{{` for a literal brace)")]
    Unclosed,
    /// The text between the braces.
    #[error("unknown placeholder `{{{}}}`: {}", truncated(.0), EXPECTED)]
    Unknown(String),
    #[error(
        "invalid name `{}` in placeholder `{{{}}}`: names are made of letters, digits, `_` \
         and `-`",
        truncated(name),
        truncated(inner)
    )]
    InvalidName { name: String, inner: String },
}

/// Parses `text`.
pub(crate) fn parse(text: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    let bytes = text.as_bytes();
    let at = |offset, problem| TemplateError { offset, problem };
    while i < bytes.len() {
        match bytes[i] {
            b'{' if bytes.get(i + 1) == Some(&b'{') => {
                lit.push('{');
                i += 2;
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => {
                lit.push('}');
                i += 2;
            }
            b'}' => return Err(at(i, TemplateProblem::UnmatchedClose)),
            b'{' => {
                let Some(len) = text[i + 1..].find('}') else {
                    return Err(at(i, TemplateProblem::Unclosed));
                };
                let inner = &text[i + 1..i + 1 + len];
                let hole = parse_placeholder(inner).map_err(|p| at(i, p))?;
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                pieces.push(Piece::Hole(hole, i));
                i += len + 2;
            }
            _ => {
                // Copy one whole UTF-8 character.
                let ch = text[i..].chars().next().expect("in bounds");
                lit.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

fn parse_placeholder(inner: &str) -> Result<Placeholder, TemplateProblem> {
    match inner {
        "run_dir" => return Ok(Placeholder::RunDir),
        "ordeal" => return Ok(Placeholder::Ordeal),
        _ => {}
    }
    let unknown = || TemplateProblem::Unknown(inner.to_string());
    let Some((kind, name)) = inner.split_once('.') else {
        return Err(unknown());
    };
    let make: fn(String) -> Placeholder = match kind {
        "port" => Placeholder::Port,
        "host" => Placeholder::Host,
        "data_dir" => Placeholder::DataDir,
        "var" => Placeholder::Var,
        _ => return Err(unknown()),
    };
    if !is_simple_name(name) {
        return Err(TemplateProblem::InvalidName {
            name: name.to_string(),
            inner: inner.to_string(),
        });
    }
    Ok(make(name.to_string()))
}

/// The values placeholders expand to in one run.
pub(crate) struct Values<'a> {
    pub ports: &'a BTreeMap<String, u16>,
    pub hosts: &'a BTreeMap<String, String>,
    pub data_dirs: &'a BTreeMap<String, PathBuf>,
    pub vars: &'a BTreeMap<String, String>,
    pub run_dir: &'a str,
    pub ordeal: &'a str,
}

impl Template {
    /// Expands every placeholder; `escape` is applied to each substituted value (not to the
    /// literal text). Unknown names cannot occur: they were rejected when the file was parsed.
    pub fn expand(&self, values: &Values<'_>, escape: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Lit(s) => out.push_str(s),
                Piece::Hole(p, _) => {
                    let value: String = match p {
                        Placeholder::Port(n) => values.ports[n].to_string(),
                        Placeholder::Host(n) => values.hosts[n].clone(),
                        Placeholder::DataDir(n) => values.data_dirs[n].to_string_lossy().into(),
                        Placeholder::Var(n) => values.vars[n].clone(),
                        Placeholder::RunDir => values.run_dir.to_string(),
                        Placeholder::Ordeal => values.ordeal.to_string(),
                    };
                    out.push_str(&escape(&value));
                }
            }
        }
        out
    }

    /// Expands without escaping.
    pub fn expand_plain(&self, values: &Values<'_>) -> String {
        self.expand(values, str::to_string)
    }

    /// The placeholders, with their offsets.
    pub fn holes(&self) -> impl Iterator<Item = (&Placeholder, usize)> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Hole(h, off) => Some((h, *off)),
            Piece::Lit(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Piece {
        Piece::Lit(s.to_string())
    }

    #[test]
    fn parses_all_kinds() {
        let p = parse("a{port.n0}b{data_dir.x}{var.v}{run_dir}/{ordeal}{{}}").unwrap();
        assert_eq!(
            p,
            vec![
                lit("a"),
                Piece::Hole(Placeholder::Port("n0".into()), 1),
                lit("b"),
                Piece::Hole(Placeholder::DataDir("x".into()), 11),
                Piece::Hole(Placeholder::Var("v".into()), 23),
                Piece::Hole(Placeholder::RunDir, 30),
                lit("/"),
                Piece::Hole(Placeholder::Ordeal, 40),
                lit("{}"),
            ]
        );
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("héllo").unwrap(), vec![lit("héllo")]);
    }

    #[test]
    fn errors() {
        let err = |text| {
            let e = parse(text).unwrap_err();
            (e.offset, e.to_string())
        };
        assert_eq!(
            err("ab{nope}"),
            (2, format!("unknown placeholder `{{nope}}`: {EXPECTED}"))
        );
        assert_eq!(
            err("x{port.a"),
            (
                1,
                "unclosed `{` (write `{{` for a literal brace)".to_string()
            )
        );
        assert_eq!(
            err("xy}"),
            (
                2,
                "unmatched `}` (write `}}` for a literal brace)".to_string()
            )
        );
        assert_eq!(
            err("{port.}"),
            (
                0,
                "invalid name `` in placeholder `{port.}`: names are made of letters, digits, \
                 `_` and `-`"
                    .to_string()
            )
        );
        let (_, msg) = err("{env.HOME}");
        assert!(
            msg.starts_with("unknown placeholder `{env.HOME}`: "),
            "{msg}"
        );
        let (_, msg) = err("\\d{1,5}");
        assert!(msg.starts_with("unknown placeholder `{1,5}`: "), "{msg}");
    }

    #[test]
    fn a_huge_placeholder_is_cut_in_the_message() {
        let inner = "v".repeat(10_000);
        let (_, msg) = {
            let e = parse(&format!("{{{inner}}}")).unwrap_err();
            (e.offset, e.to_string())
        };
        let shown = "v".repeat(ordeal_toml::MAX_SHOWN_CHARS);
        assert!(
            msg.starts_with(&format!("unknown placeholder `{{{shown}…}}`: ")),
            "{msg}"
        );
    }
}
