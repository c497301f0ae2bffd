//! A node's persistent state: the whole key-value map, saved as one small
//! text file after every applied write.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Name of the state file inside a node's data directory.
pub const STATE_FILE: &str = "state";
/// Name of the temporary file a new state is written to before the rename.
pub const STATE_TMP_FILE: &str = "state.tmp";

/// The replicated state: every key's value and the sequence number of the
/// last write applied to it.
///
/// On disk it is a header line `seq <seq> keys <count>` followed by one
/// `<key> <value>` line per key, in key order. The key count in the header
/// lets a load notice a file that was cut short.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Sequence number of the last applied write (0 = none yet).
    pub seq: u64,
    /// The key-value map.
    pub data: BTreeMap<String, String>,
}

/// Loading the state file failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file exists but cannot be read.
    #[error("cannot read state file {}: {source}", path.display())]
    Io {
        /// The state file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file does not hold a valid state (for example it was truncated).
    #[error("corrupt state file {}: {reason}", path.display())]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: FormatError,
    },
}

/// What is wrong with the text of a state file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The bytes are not UTF-8.
    #[error("not valid UTF-8")]
    NotUtf8,
    /// Nothing at all.
    #[error("file is empty")]
    Empty,
    /// The text does not end with a newline: the file was cut short.
    #[error("last line is incomplete")]
    IncompleteLastLine,
    /// The first line is not `seq <seq> keys <count>`.
    #[error("bad header {0:?}")]
    BadHeader(String),
    /// A key appears on two lines; `line` is the second (1-based).
    #[error("line {line}: duplicate key {key:?}")]
    DuplicateKey {
        /// Line number, 1-based.
        line: usize,
        /// The key.
        key: String,
    },
    /// A line that is not `<key> <value>`.
    #[error("line {line}: expected `key value`, found {text:?}")]
    BadEntry {
        /// Line number, 1-based.
        line: usize,
        /// The line's text.
        text: String,
    },
    /// The header's key count differs from the lines that follow.
    #[error("header announces {announced} keys but the file has {found}")]
    WrongKeyCount {
        /// The count in the header.
        announced: usize,
        /// The keys read.
        found: usize,
    },
}

impl State {
    /// Loads `dir/state`. A missing file is the empty state (first boot).
    pub fn load(dir: &Path) -> Result<State, StoreError> {
        let path = dir.join(STATE_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::default()),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let corrupt = |reason: FormatError| StoreError::Corrupt {
            path: path.clone(),
            reason,
        };
        let text = String::from_utf8(bytes).map_err(|_| corrupt(FormatError::NotUtf8))?;
        State::parse(&text).map_err(corrupt)
    }

    /// Parses the state file format (see [`State`]).
    pub fn parse(text: &str) -> Result<State, FormatError> {
        let Some(body) = text.strip_suffix('\n') else {
            return Err(if text.is_empty() {
                FormatError::Empty
            } else {
                FormatError::IncompleteLastLine
            });
        };
        let mut lines = body.split('\n');
        let header = lines.next().unwrap_or_default();
        let (seq, count) = match header.split(' ').collect::<Vec<_>>().as_slice() {
            ["seq", seq, "keys", count] => match (seq.parse::<u64>(), count.parse::<usize>()) {
                (Ok(seq), Ok(count)) => (seq, count),
                _ => return Err(FormatError::BadHeader(header.to_string())),
            },
            _ => return Err(FormatError::BadHeader(header.to_string())),
        };
        let mut data = BTreeMap::new();
        for (index, line) in lines.enumerate() {
            let line_no = index + 2;
            match line.split(' ').collect::<Vec<_>>().as_slice() {
                [key, value] if !key.is_empty() && !value.is_empty() => {
                    if data.insert(key.to_string(), value.to_string()).is_some() {
                        return Err(FormatError::DuplicateKey {
                            line: line_no,
                            key: key.to_string(),
                        });
                    }
                }
                _ => {
                    return Err(FormatError::BadEntry {
                        line: line_no,
                        text: line.to_string(),
                    })
                }
            }
        }
        if data.len() != count {
            return Err(FormatError::WrongKeyCount {
                announced: count,
                found: data.len(),
            });
        }
        Ok(State { seq, data })
    }

    /// The file contents for this state.
    pub fn render(&self) -> String {
        let mut text = format!("seq {} keys {}\n", self.seq, self.data.len());
        for (key, value) in &self.data {
            text.push_str(key);
            text.push(' ');
            text.push_str(value);
            text.push('\n');
        }
        text
    }

    /// Replaces `dir/state` with this state.
    ///
    /// The new contents go to `state.tmp` first and are renamed over `state`,
    /// so a crash leaves either the old or the new file, never a mix. With
    /// `durable` the temp file is fsynced before the rename (otherwise the
    /// rename can reach the disk before the data, leaving an empty `state`
    /// after a power loss) and the directory is fsynced after it (otherwise
    /// the rename itself can be lost).
    pub fn save(&self, dir: &Path, durable: bool) -> io::Result<()> {
        let tmp = dir.join(STATE_TMP_FILE);
        let mut file = File::create(&tmp)?;
        file.write_all(self.render().as_bytes())?;
        if durable {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&tmp, dir.join(STATE_FILE))?;
        if durable {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        State {
            seq: 7,
            data: [("a", "v3"), ("b", "v7")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn render_and_parse_round_trip() {
        let state = sample();
        assert_eq!(state.render(), "seq 7 keys 2\na v3\nb v7\n");
        assert_eq!(State::parse(&state.render()).unwrap(), state);
        assert_eq!(State::parse("seq 0 keys 0\n").unwrap(), State::default());
    }

    #[test]
    fn save_then_load_in_both_durability_modes() {
        for durable in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            assert_eq!(State::load(dir.path()).unwrap(), State::default());
            sample().save(dir.path(), durable).unwrap();
            assert_eq!(State::load(dir.path()).unwrap(), sample());
            assert!(!dir.path().join(STATE_TMP_FILE).exists());
            assert_eq!(
                fs::read_to_string(dir.path().join(STATE_FILE)).unwrap(),
                "seq 7 keys 2\na v3\nb v7\n"
            );
        }
    }

    #[test]
    fn corrupt_files_are_rejected_with_a_reason() {
        let cases = [
            ("", "file is empty"),
            ("\0\0\0\0", "last line is incomplete"),
            ("seq 3 keys 1\na v1", "last line is incomplete"),
            ("seq x keys 0\n", "bad header"),
            ("hello\n", "bad header"),
            (
                "seq 3 keys 2\na v1\n",
                "header announces 2 keys but the file has 1",
            ),
            ("seq 3 keys 2\na v1\na v2\n", "line 3: duplicate key \"a\""),
            ("seq 3 keys 1\na v1 extra\n", "line 2: expected `key value`"),
            ("seq 3 keys 1\n\n", "line 2: expected `key value`"),
        ];
        for (text, reason) in cases {
            let err = State::parse(text).unwrap_err().to_string();
            assert!(err.contains(reason), "{text:?}: {err}");
        }
    }

    #[test]
    fn format_errors_say_where_and_what() {
        let cases = [
            (
                "seq 3 keys x\n",
                FormatError::BadHeader("seq 3 keys x".into()),
                "bad header \"seq 3 keys x\"",
            ),
            (
                "seq 3 keys 2\na v1\na v2\n",
                FormatError::DuplicateKey {
                    line: 3,
                    key: "a".into(),
                },
                "line 3: duplicate key \"a\"",
            ),
            (
                "seq 3 keys 1\na v1 extra\n",
                FormatError::BadEntry {
                    line: 2,
                    text: "a v1 extra".into(),
                },
                "line 2: expected `key value`, found \"a v1 extra\"",
            ),
            (
                "seq 3 keys 2\na v1\n",
                FormatError::WrongKeyCount {
                    announced: 2,
                    found: 1,
                },
                "header announces 2 keys but the file has 1",
            ),
        ];
        for (text, want, message) in cases {
            let err = State::parse(text).unwrap_err();
            assert_eq!(err, want, "{text:?}");
            assert_eq!(err.to_string(), message);
        }
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), b"seq 1 keys 0\n\xff").unwrap();
        match State::load(dir.path()) {
            Err(StoreError::Corrupt { path, reason }) => {
                assert_eq!(path, dir.path().join(STATE_FILE));
                assert_eq!(reason, FormatError::NotUtf8);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn load_reports_the_path_of_a_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), "garbage").unwrap();
        let err = State::load(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }));
        let message = err.to_string();
        assert!(message.starts_with("corrupt state file "), "{message}");
        assert!(message.contains(&dir.path().join(STATE_FILE).display().to_string()));
    }
}
