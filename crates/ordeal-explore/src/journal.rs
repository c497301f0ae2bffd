//! Durable campaigns: the campaign header (`campaign.json`) and the run journal
//! (`runs.jsonl`, one fsynced line per finished run, docs/scale.md).
//!
//! The journal holds everything the campaign state needs (schedule, outcome, fingerprint,
//! mined points, signature, ...), so that `ordeal explore --resume` rebuilds the exact state by
//! feeding the recorded results back through the same choice process, and only runs what is
//! missing. A run directory without a journal line is half-written: it is deleted and redone.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::candidates::{Fault, FaultModel};
use crate::model::{Analysis, Measured, Reproduction};
use crate::{Error, RunError};

/// `campaign.json`'s `format`.
pub const FORMAT: &str = "ordeal-campaign";
/// Version of the header and journal formats; a reader refuses any other.
pub const JOURNAL_VERSION: u32 = 1;
/// The ordeal version writing the campaign.
pub const ORDEAL_VERSION: &str = env!("CARGO_PKG_VERSION");
pub const HEADER_FILE: &str = "campaign.json";
pub const JOURNAL_FILE: &str = "runs.jsonl";
/// Test hook: a journal whose recorded results replace those of the runs with the same key and
/// schedule (the runs still happen). The system under test is not deterministic; this pins its
/// results so that a resumed or sharded campaign can be compared exactly with a reference.
pub const PIN_ENV: &str = "ORDEAL_EXPLORE_PIN_RESULTS";

/// The I-th (0-based) of N disjoint parts of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// Parses `I/N` (0 ≤ I < N).
    pub fn parse(s: &str) -> Result<Shard, Error> {
        let bad = |why: &str| Error::Usage(format!("{s}: {why}"));
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| bad("expected I/N (e.g. 0/3)"))?;
        let index: u64 = i.trim().parse().map_err(|_| bad("I is not a number"))?;
        let count: u64 = n.trim().parse().map_err(|_| bad("N is not a number"))?;
        if count == 0 || index >= count {
            return Err(bad("expected 0 ≤ I < N"));
        }
        Ok(Shard { index, count })
    }

    /// Whether exploration run `id` belongs to this shard.
    pub fn owns(&self, id: u64) -> bool {
        id % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// `campaign.json`: the settings that decide a campaign's choices, written (fsynced) before
/// the first run. Resume takes every setting from it; merge refuses headers that disagree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignHeader {
    pub format: String,
    pub journal_version: u32,
    pub ordeal_version: String,
    pub experiment: String,
    /// FNV-1a 64 of the experiment text and the resolved variables.
    pub experiment_hash: String,
    pub experiment_path: PathBuf,
    pub experiment_text: String,
    pub set: Vec<String>,
    pub seed: u64,
    pub strategy: String,
    pub jobs: usize,
    pub runs: Option<u64>,
    pub time_s: Option<u64>,
    pub until_stable: Option<u64>,
    pub stop_after: Option<usize>,
    pub reruns: u32,
    pub shrink: bool,
    pub keep_runs: bool,
    pub model: FaultModel,
    pub shard: Option<Shard>,
    /// Fault-free baseline runs (`--baselines`); absent from campaigns written before the
    /// flag, whose baselines were the first J runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baselines: Option<u64>,
}

/// FNV-1a 64 of the experiment text and its resolved variables, as 16 hex digits.
pub fn experiment_hash(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= x as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    };
    eat(text.as_bytes());
    for (k, v) in vars {
        eat(b"\0");
        eat(k.as_bytes());
        eat(b"=");
        eat(v.as_bytes());
    }
    format!("{h:016x}")
}

/// One journal line (a serialization type: the size difference does not matter).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Entry {
    Run(RunEntry),
    Failure(FailureEntry),
}

/// A finished run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunEntry {
    /// `explore:ID`, or `shrink:SIGNATURE:N` / `rerun:SIGNATURE:N` (stable across shards,
    /// whatever the failure's local id).
    pub key: String,
    /// `explore`, `shrink` or `rerun`.
    pub phase: String,
    /// The exploration run's id (0 for shrink and rerun runs).
    pub id: u64,
    /// Relative to the campaign directory.
    pub dir: String,
    pub faults: Vec<Fault>,
    pub result: Result<Analysis, RunError>,
}

/// A distinct failure after its shrinking and reruns (what merge needs of it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailureEntry {
    pub id: String,
    pub signature: String,
    pub first_run: u64,
    pub original: Vec<Fault>,
    pub minimal: Vec<Fault>,
    pub shrink_runs: u32,
    pub reproduction: Option<Reproduction>,
    /// The first hit's schedule rerun.
    #[serde(default)]
    pub original_reproduction: Option<Reproduction>,
    /// The schedules rerun while shrinking.
    #[serde(default)]
    pub measured: Vec<Measured>,
    /// Relative to the campaign directory.
    pub run_dir: String,
}

/// Writes `path` durably: a temporary file, fsync, rename, fsync of the directory.
pub fn write_durable(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        let d = File::open(dir).map_err(|e| Error::io(dir, e))?;
        d.sync_all().map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

pub fn write_header(dir: &Path, h: &CampaignHeader) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(h).unwrap_or_default() + "\n";
    write_durable(&dir.join(HEADER_FILE), text.as_bytes())
}

/// Reads and checks `DIR/campaign.json`.
pub fn read_header(dir: &Path) -> Result<CampaignHeader, Error> {
    let p = dir.join(HEADER_FILE);
    let text = std::fs::read_to_string(&p).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Usage(format!(
                "{}: no {HEADER_FILE}: not a campaign directory (or written by an ordeal without durable campaigns)",
                dir.display()
            ))
        } else {
            Error::io(&p, e)
        }
    })?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Usage(format!("{}: not valid JSON: {e}", p.display())))?;
    if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(Error::Usage(format!(
            "{}: not an ordeal campaign header",
            p.display()
        )));
    }
    let jv = v.get("journal_version").and_then(|f| f.as_u64());
    if jv != Some(JOURNAL_VERSION as u64) {
        return Err(Error::Usage(format!(
            "{}: journal format version {}, this ordeal ({ORDEAL_VERSION}) reads version {JOURNAL_VERSION}",
            p.display(),
            jv.map_or("unknown".to_string(), |x| x.to_string())
        )));
    }
    serde_json::from_value(v).map_err(|e| Error::Usage(format!("{}: {e}", p.display())))
}

/// The append-only journal; every line is fsynced before `append` returns.
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Opens (creating) `DIR/runs.jsonl` for appending.
    pub fn open(dir: &Path) -> Result<Journal, Error> {
        let path = dir.join(JOURNAL_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        sync_dir(&path)?;
        Ok(Journal { file, path })
    }

    pub fn append(&mut self, e: &Entry) -> Result<(), Error> {
        let mut line = serde_json::to_vec(e).map_err(|x| Error::Usage(format!("internal: {x}")))?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|x| Error::io(&self.path, x))?;
        self.file.sync_data().map_err(|x| Error::io(&self.path, x))
    }
}

/// A journal line that could not be read.
#[derive(Debug, Clone)]
pub struct BadLine {
    pub path: PathBuf,
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.reason)
    }
}

/// Entries with their (1-based) line numbers, and the lines that could not be read.
pub type JournalLines = (Vec<(usize, Entry)>, Vec<BadLine>);

/// The journal's entries with their line numbers, and the lines that are not entries (a last
/// line without its newline is a write cut short by a crash).
pub fn read_journal(dir: &Path) -> Result<JournalLines, Error> {
    let path = dir.join(JOURNAL_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(Error::io(&path, e)),
    };
    Ok(parse_journal(&bytes, &path))
}

/// [`read_journal`] on the journal's bytes; `path` names it in the bad lines.
pub fn parse_journal(bytes: &[u8], path: &Path) -> JournalLines {
    let path = path.to_path_buf();
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    let complete = bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let n = lines.len();
    for (i, raw) in lines.into_iter().enumerate() {
        let last = i + 1 == n;
        if raw.is_empty() && last {
            break;
        }
        let no = i + 1;
        if last && !complete {
            bad.push(BadLine {
                path: path.clone(),
                line: no,
                reason: "incomplete line (a write cut short)".into(),
            });
            break;
        }
        match std::str::from_utf8(raw)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str::<Entry>(s).map_err(|e| e.to_string()))
        {
            Ok(e) => entries.push((no, e)),
            Err(reason) => bad.push(BadLine {
                path: path.clone(),
                line: no,
                reason: format!("not a journal entry: {reason}"),
            }),
        }
    }
    (entries, bad)
}

/// Rewrites the journal without the lines `drop` (1-based), byte for byte otherwise and
/// durably, so that appends after a torn line start on a line of their own.
pub fn drop_lines(dir: &Path, drop: &[usize]) -> Result<(), Error> {
    let path = dir.join(JOURNAL_FILE);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let mut text = Vec::with_capacity(bytes.len());
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() || drop.contains(&(i + 1)) {
            continue;
        }
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    write_durable(&path, &text)
}

/// The pinned results of [`PIN_ENV`], by key.
pub fn pinned_results() -> BTreeMap<String, RunEntry> {
    let Some(p) = std::env::var_os(PIN_ENV) else {
        return BTreeMap::new();
    };
    let p = PathBuf::from(p);
    let dir = if p.is_dir() {
        p
    } else {
        p.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let Ok((entries, _)) = read_journal(&dir) else {
        return BTreeMap::new();
    };
    entries
        .into_iter()
        .filter_map(|(_, e)| match e {
            Entry::Run(r) => Some((r.key.clone(), r)),
            Entry::Failure(_) => None,
        })
        .collect()
}

/// The run directories under `out`, relative to it: `runs/N`, `baselines/reruns/N`,
/// `failures/F/shrink/N`, `failures/F/reruns/N`.
pub fn run_dirs(out: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let list = |p: &Path| -> Vec<String> {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    for r in list(&out.join("runs")) {
        v.push(format!("runs/{r}"));
    }
    for r in list(&out.join("baselines").join("reruns")) {
        v.push(format!("baselines/reruns/{r}"));
    }
    for f in list(&out.join("failures")) {
        for sub in ["shrink", "reruns"] {
            for r in list(&out.join("failures").join(&f).join(sub)) {
                v.push(format!("failures/{f}/{sub}/{r}"));
            }
        }
    }
    v
}
