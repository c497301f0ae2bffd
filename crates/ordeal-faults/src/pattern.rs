//! Which events a trigger counts: [`Pattern`] and its path [`PathGlob`].

use std::collections::BTreeMap;
use std::fmt;

use globset::{GlobBuilder, GlobMatcher};
use ordeal_events::{Class, Event};
use ordeal_toml::truncated;

use crate::Target;

/// Which way bytes go in a socket data call: the call table's own.
pub use ordeal_events::Direction;

/// What an event must look like to count for a trigger. Every field that is set must match;
/// an empty pattern matches every event.
///
/// Only what the tracer knows at a call's entry is looked at (`node`, `call`, `class`,
/// `sock.peer_node`, `path`, `path2`), so a pattern matches a call's entry event and its
/// completed event alike.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pattern {
    /// The node or workload the calling process belongs to, or a role its node holds.
    pub node: Option<Target>,
    /// The system call name (`write`) or lifecycle step (`exec`).
    pub call: Option<String>,
    /// The event's class.
    pub class: Option<Class>,
    /// The node owning the other end of the socket (`sock.peer_node`).
    pub peer: Option<String>,
    /// Send or receive: only socket data calls (class `data`) of that direction match.
    pub direction: Option<Direction>,
    /// A glob the event's `path` (or, for a rename, its target `path2`) must match.
    pub path: Option<PathGlob>,
}

/// The nodes holding each role, as the run last found them: role → nodes, in file order.
pub type Holders = BTreeMap<String, Vec<String>>;

impl Pattern {
    /// Whether `ev` matches every field that is set. A pattern naming a role matches nothing
    /// here: see [`Pattern::matches_with`].
    pub fn matches(&self, ev: &Event) -> bool {
        self.matches_with(ev, &Holders::new())
    }

    /// Whether `ev` matches every field that is set, a role matching the calls of the nodes
    /// `holders` says hold it (none when it has no entry).
    pub fn matches_with(&self, ev: &Event, holders: &Holders) -> bool {
        if let Some(target) = &self.node {
            let held = target
                .role()
                .and_then(|r| holders.get(r))
                .map_or(&[][..], Vec::as_slice);
            if !target.is(&ev.node, held) {
                return false;
            }
        }
        if self.call.as_ref().is_some_and(|c| *c != ev.call) {
            return false;
        }
        if self.class.is_some() && self.class != ev.class {
            return false;
        }
        if let Some(peer) = &self.peer {
            let actual = ev.sock.as_ref().and_then(|s| s.peer_node.as_ref());
            if actual != Some(peer) {
                return false;
            }
        }
        if let Some(dir) = self.direction {
            let ok = ev.class == Some(Class::Data)
                && match dir {
                    Direction::Send => ev.is_send(),
                    Direction::Recv => ev.is_recv(),
                };
            if !ok {
                return false;
            }
        }
        if let Some(glob) = &self.path {
            let hit = [&ev.path, &ev.path2]
                .into_iter()
                .flatten()
                .any(|p| glob.is_match(p));
            if !hit {
                return false;
            }
        }
        true
    }

    /// Whether no field is set (the pattern matches every event).
    pub fn is_empty(&self) -> bool {
        *self == Pattern::default()
    }

    /// The role whose holders' calls it counts, if it names one.
    pub fn role(&self) -> Option<&str> {
        self.node.as_ref().and_then(Target::role)
    }
}

/// Why a path glob does not compile; displayed as a message suitable after a location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("the path glob is empty")]
    Empty,
    /// `reason` is globset's.
    #[error("invalid path glob `{}`: {reason}", truncated(glob))]
    Invalid { glob: String, reason: String },
}

/// A path glob (`*`, `?`, `[...]`, `{a,b}`, `**`), as written in a schedule.
///
/// `*` and `?` never match `/`; `**` matches any number of directories. A glob starting with
/// `/` must match the whole absolute path; any other glob matches the end of the path, as if it
/// started with `**/`: `wal/*.log` matches `/tmp/run/data/n0/wal/000001.log`.
#[derive(Clone)]
pub struct PathGlob {
    text: String,
    matcher: GlobMatcher,
}

impl PathGlob {
    /// Compiles a glob.
    pub fn new(text: &str) -> Result<PathGlob, GlobError> {
        if text.is_empty() {
            return Err(GlobError::Empty);
        }
        let full = if text.starts_with('/') {
            text.to_string()
        } else {
            format!("**/{text}")
        };
        let glob = GlobBuilder::new(&full)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| GlobError::Invalid {
                glob: text.to_string(),
                reason: e.kind().to_string(),
            })?;
        Ok(PathGlob {
            text: text.to_string(),
            matcher: glob.compile_matcher(),
        })
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `path` matches.
    pub fn is_match(&self, path: &str) -> bool {
        self.matcher.is_match(path)
    }
}

impl PartialEq for PathGlob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl fmt::Debug for PathGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathGlob({:?})", self.text)
    }
}

impl fmt::Display for PathGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
