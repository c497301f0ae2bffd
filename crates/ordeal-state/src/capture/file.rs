//! The capture file: a JSON header and one entry per line, its checks on reading, and its
//! atomic writing.

use super::{path_cmp, Capture, Stamp, Stats, FORMAT, HASH, VERSION};
use crate::{Error, Result};
use serde::Serialize;
use std::path::Path;

impl Capture {
    /// The capture file's text: the header, then one entry per line.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Header<'a> {
            format: &'a str,
            version: u32,
            hash: &'a str,
            root: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            stamp: &'a Option<Stamp>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            ignore: &'a Vec<String>,
            stats: &'a Stats,
        }
        let header = Header {
            format: &self.format,
            version: self.version,
            hash: &self.hash,
            root: &self.root,
            stamp: &self.stamp,
            ignore: &self.ignore,
            stats: &self.stats,
        };
        // Serializing these plain structs cannot fail.
        let mut out = serde_json::to_string(&header).unwrap_or_default();
        out.pop(); // the closing brace
        out.push_str(",\"entries\":[");
        for (i, e) in self.entries.iter().enumerate() {
            out.push_str(if i == 0 { "\n" } else { ",\n" });
            out.push_str(&serde_json::to_string(e).unwrap_or_default());
        }
        out.push_str("\n]}\n");
        out
    }

    /// Parses a capture file's text.
    pub fn from_json(text: &[u8], path: &Path) -> Result<Capture> {
        let bad = |message: String| Error::Format {
            path: path.to_path_buf(),
            message,
        };
        let mut c: Capture = serde_json::from_slice(text).map_err(|e| bad(e.to_string()))?;
        if c.format != FORMAT {
            return Err(bad(format!(
                "format is {:?}, expected {FORMAT:?}",
                c.format
            )));
        }
        if c.version == 0 || c.version > VERSION {
            return Err(bad(format!(
                "version {} (this ordeal reads versions 1 to {VERSION})",
                c.version
            )));
        }
        if c.hash != HASH {
            return Err(bad(format!("hash {:?}, expected {HASH:?}", c.hash)));
        }
        c.entries.sort_by(|a, b| path_cmp(&a.key(), &b.key()));
        if let Some(w) = c.entries.windows(2).find(|w| w[0].key() == w[1].key()) {
            return Err(bad(format!("path {:?} appears twice", w[0].path)));
        }
        c.recount();
        Ok(c)
    }

    /// Reads a capture file.
    pub fn load(path: &Path) -> Result<Capture> {
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Capture::from_json(&text, path)
    }

    /// Writes the capture file atomically (a temporary file renamed over `path`).
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
        std::io::Write::write_all(&mut tmp, self.to_json().as_bytes())
            .map_err(|e| Error::io(path, e))?;
        tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
        Ok(())
    }
}
