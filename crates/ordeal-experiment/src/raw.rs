//! The experiment file as written, before validation.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

pub(crate) type Str = Spanned<String>;
pub(crate) type StrList = Spanned<Vec<Str>>;
pub(crate) type StrMap = BTreeMap<Str, Str>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExperiment {
    pub name: Str,
    #[serde(default)]
    pub timeout: Option<Str>,
    /// `"30s"`, or `"off"`: no traced event for this long while workloads run = hung.
    #[serde(default)]
    pub hang_timeout: Option<Str>,
    /// A regex: log lines that say what went wrong (the verdict's cause).
    #[serde(default)]
    pub failure_pattern: Option<Str>,
    #[serde(default)]
    pub network: Option<Str>,
    #[serde(default)]
    pub engine: Option<Str>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub vars: StrMap,
    #[serde(default, rename = "node")]
    pub nodes: Vec<Spanned<RawNode>>,
    #[serde(default, rename = "workload")]
    pub workloads: Vec<Spanned<RawWorkload>>,
    #[serde(default)]
    pub check: Option<Spanned<RawCheck>>,
    #[serde(default)]
    pub crash: Option<Spanned<RawCrash>>,
    #[serde(default, rename = "proxy")]
    pub proxies: Vec<Spanned<RawProxy>>,
    #[serde(default)]
    pub explore: Option<Spanned<RawExplore>>,
    #[serde(default)]
    pub roles: Option<Spanned<BTreeMap<Str, Spanned<RawRole>>>>,
}

/// One role of `[roles]`: `NAME = { command = [...], matches = "...", timeout = "2s" }`, or
/// `NAME = { infer = "fans-out", window = "2s", timeout = "2s" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRole {
    #[serde(default)]
    pub command: Option<StrList>,
    #[serde(default)]
    pub matches: Option<Str>,
    #[serde(default)]
    pub infer: Option<Str>,
    #[serde(default)]
    pub window: Option<Str>,
    #[serde(default)]
    pub timeout: Option<Str>,
}

/// `[explore]`: the campaign settings this system needs (`ordeal explore`'s flags override).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExplore {
    #[serde(default)]
    pub fault_duration: Option<Str>,
    #[serde(default)]
    pub restart_after: Option<Str>,
    #[serde(default)]
    pub set: StrMap,
}

/// `[[proxy]]`: a TCP proxy ordeal runs between nodes, where toxics are applied.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProxy {
    pub name: Str,
    pub listen: Str,
    pub upstream: Str,
}

/// `[crash]`: how `ordeal crash` checks a recovered crash state.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCrash {
    #[serde(default)]
    pub check: Option<StrList>,
    #[serde(default)]
    pub workload: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    #[serde(default)]
    pub argv: Option<StrList>,
    #[serde(default)]
    pub history: Option<Spanned<RawHistoryCheck>>,
    #[serde(default)]
    pub env: StrMap,
    #[serde(default)]
    pub cwd: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHistoryCheck {
    pub model: Str,
    #[serde(default)]
    pub file: Option<Str>,
    #[serde(default)]
    pub from: Option<Str>,
    #[serde(default)]
    pub clients: Option<StrList>,
    /// An empty history passes (otherwise it is an error: nothing was checked).
    #[serde(default)]
    pub allow_empty: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    pub name: Str,
    pub argv: StrList,
    #[serde(default)]
    pub env: StrMap,
    #[serde(default)]
    pub cwd: Option<Str>,
    #[serde(default)]
    pub data_dir: Option<Spanned<RawDataDir>>,
    #[serde(default)]
    pub ready: Option<Spanned<RawReady>>,
    #[serde(default)]
    pub ready_timeout: Option<Str>,
    #[serde(default)]
    pub stop_signal: Option<Str>,
    #[serde(default)]
    pub stop_timeout: Option<Str>,
    #[serde(default)]
    pub ports: Option<StrList>,
    #[serde(default)]
    pub trace: Option<bool>,
    #[serde(default)]
    pub protocol: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkload {
    pub name: Str,
    pub argv: StrList,
    #[serde(default)]
    pub env: StrMap,
    #[serde(default)]
    pub cwd: Option<Str>,
    #[serde(default)]
    pub after: Option<crate::StartAfter>,
    #[serde(default)]
    pub trace: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReady {
    #[serde(default)]
    pub tcp: Option<Str>,
    #[serde(default)]
    pub log: Option<Str>,
    #[serde(default)]
    pub stream: Option<Spanned<crate::LogStream>>,
    #[serde(default)]
    pub command: Option<StrList>,
}

/// `data_dir = true | false | { copy_from = "path" }`.
pub(crate) enum RawDataDir {
    None,
    Fresh,
    CopyFrom(Str),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCopyFrom {
    copy_from: Str,
}

impl<'de> Deserialize<'de> for RawDataDir {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawDataDir;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`true`, `false` or a table `{ copy_from = \"path\" }`")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawDataDir, E> {
                Ok(if v {
                    RawDataDir::Fresh
                } else {
                    RawDataDir::None
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawDataDir, A::Error> {
                let c = RawCopyFrom::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawDataDir::CopyFrom(c.copy_from))
            }
        }
        d.deserialize_any(V)
    }
}
