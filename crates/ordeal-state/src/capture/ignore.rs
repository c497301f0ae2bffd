//! Ignore globs: which entries a capture leaves out.

use crate::{Error, Result};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Compiled ignore globs.
#[derive(Clone, Debug)]
pub struct Ignore {
    globs: Vec<String>,
    by_name: globset::GlobSet,
    by_path: globset::GlobSet,
}

impl Ignore {
    /// Compiles globs (see [`CaptureOptions::ignore`](super::CaptureOptions::ignore)).
    pub fn new(globs: &[String]) -> Result<Ignore> {
        let mut by_name = globset::GlobSetBuilder::new();
        let mut by_path = globset::GlobSetBuilder::new();
        for g in globs {
            let pattern = g.trim_start_matches('/').trim_end_matches('/');
            if pattern.is_empty() {
                return Err(Error::Glob {
                    glob: g.clone(),
                    message: "empty pattern".into(),
                });
            }
            let glob = globset::GlobBuilder::new(pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::Glob {
                    glob: g.clone(),
                    message: e.kind().to_string(),
                })?;
            if pattern.contains('/') || g.starts_with('/') {
                by_path.add(glob);
            } else {
                by_name.add(glob);
            }
        }
        let build = |b: globset::GlobSetBuilder| {
            b.build().map_err(|e| Error::Glob {
                glob: globs.join(" "),
                message: e.to_string(),
            })
        };
        Ok(Ignore {
            globs: globs.to_vec(),
            by_name: build(by_name)?,
            by_path: build(by_path)?,
        })
    }

    /// The globs as given.
    pub fn globs(&self) -> &[String] {
        &self.globs
    }

    /// Whether the entry at `rel` (exact relative path bytes, not the root) is ignored.
    pub fn is_ignored(&self, rel: &[u8]) -> bool {
        if rel.is_empty() {
            return false;
        }
        let name = rel.rsplit(|&c| c == b'/').next().unwrap_or(rel);
        self.by_name.is_match(Path::new(OsStr::from_bytes(name)))
            || self.by_path.is_match(Path::new(OsStr::from_bytes(rel)))
    }
}
