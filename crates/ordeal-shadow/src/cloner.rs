//! Making debug copies from a [`Recipe`]: where copies go, pausing production to copy its
//! data directory, starting a copy on a free port and waiting until it listens.

use crate::clone::{self as cl, CloneProcess, SnapshotReport};
use crate::recipe::Recipe;
use crate::Error;
use ordeal_sys::ports::{PortAllocator, PortReservation};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The directory copies go in, and their logs (in `logs/`).
#[derive(Debug)]
pub struct CloneRoot {
    path: PathBuf,
    /// Removes the directory when the root is dropped, if it is a temporary one.
    _temp: Option<tempfile::TempDir>,
}

impl CloneRoot {
    /// `dir` if given (created if needed); else `RUN_DIR/shadow` when cloning a node of the
    /// run in `run_dir`; else a temporary directory removed when the root is dropped.
    pub fn new(dir: Option<&Path>, run_dir: Option<&Path>) -> Result<CloneRoot, Error> {
        let create = |d: PathBuf| {
            std::fs::create_dir_all(&d).map_err(|source| Error::Io {
                context: format!("creating {}", d.display()),
                source,
            })?;
            Ok(CloneRoot {
                path: d,
                _temp: None,
            })
        };
        if let Some(d) = dir {
            return create(d.to_path_buf());
        }
        if let Some(rd) = run_dir {
            return create(rd.join("shadow"));
        }
        let t = tempfile::Builder::new()
            .prefix("ordeal-clone-")
            .tempdir()
            .map_err(|source| Error::Io {
                context: "creating a temporary directory".into(),
                source,
            })?;
        Ok(CloneRoot {
            path: t.path().to_path_buf(),
            _temp: Some(t),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Makes copies of production from one recipe.
#[derive(Debug, Clone)]
pub struct Cloner {
    pub recipe: Recipe,
    /// Where copies go (see [`CloneRoot`]).
    pub root: PathBuf,
    /// `{backend.NAME}` values: the replay endpoints' addresses.
    pub backends: BTreeMap<String, String>,
    /// How long a copy may take to listen on its port.
    pub ready_timeout: Duration,
}

/// A started copy, listening.
#[derive(Debug)]
pub struct StartedCopy {
    pub process: CloneProcess,
    pub addr: SocketAddr,
    pub ready_seconds: f64,
    /// Its ports, reserved while it runs: no run or other copy is handed them.
    pub ports: PortReservation,
}

/// A copy of production's data directory and the copy started on it.
#[derive(Debug)]
pub struct Cloned {
    pub snapshot: SnapshotReport,
    pub copy: StartedCopy,
}

impl Cloner {
    /// Pauses production, runs `while_paused`, copies its data directory to
    /// `ROOT/NAME-MILLIS` (and from there to `also_copy_to`, e.g. a candidate's copy),
    /// resumes production and starts the recipe's command on the copy.
    pub fn clone_now(
        &self,
        name: &str,
        while_paused: impl FnOnce(),
        also_copy_to: Option<&Path>,
    ) -> Result<Cloned, Error> {
        let r = &self.recipe;
        let dest = self.root.join(format!("{name}-{}", millis_now()));
        let snapshot =
            cl::snapshot(r.pid, &r.data_dir, &dest, while_paused).map_err(|e| Error::Clone {
                pid: r.pid,
                data_dir: r.data_dir.clone(),
                source: Box::new(e),
            })?;
        if let Some(other) = also_copy_to {
            cl::copy_dir(&dest, other)?;
        }
        let copy = self.start_copy(&r.words, dest, name)?;
        Ok(Cloned { snapshot, copy })
    }

    /// Starts `words` (placeholders expanded: a free port, `data_dir`, the recipe's extra
    /// ports, the backends) with its output in `ROOT/logs/NAME.*`, and waits until it listens.
    pub fn start_copy(
        &self,
        words: &[String],
        data_dir: PathBuf,
        name: &str,
    ) -> Result<StartedCopy, Error> {
        // Reserved as a run's ports are: outside the ephemeral range (no outgoing connection
        // takes one before the copy binds it), and never handed to a concurrent run.
        let ports = PortAllocator::new()
            .allocate(1 + self.recipe.extra_ports.len())
            .map_err(|e| Error::Io {
                context: "reserving the copy's ports".into(),
                source: e,
            })?;
        let port = ports.ports()[0];
        let mut values = BTreeMap::new();
        values.insert("port".to_string(), port.to_string());
        values.insert("addr".to_string(), format!("127.0.0.1:{port}"));
        values.insert(
            "data_dir".to_string(),
            data_dir.to_string_lossy().to_string(),
        );
        for (e, p) in self.recipe.extra_ports.iter().zip(&ports.ports()[1..]) {
            values.insert(e.clone(), p.to_string());
        }
        for (k, v) in &self.backends {
            values.insert(format!("backend.{k}"), v.clone());
        }
        let argv = cl::expand(words, &values)?;
        let mut process =
            cl::start_clone(argv, port, data_dir, Some(&self.root.join("logs")), name)?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let ready = cl::wait_ready(&mut process, addr, self.ready_timeout)?;
        Ok(StartedCopy {
            process,
            addr,
            ready_seconds: ready.as_secs_f64(),
            ports,
        })
    }
}

/// Milliseconds since the epoch: copies made one after the other get different names.
pub(crate) fn millis_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

impl Cloned {
    /// The copy as JSON: the snapshot report, the copy's pid, address, argv and start time.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "snapshot": self.snapshot,
            "pid": self.copy.process.pid(),
            "addr": self.copy.addr.to_string(),
            "argv": self.copy.process.argv,
            "ready_seconds": self.copy.ready_seconds,
        })
    }
}

/// One line: how long production was paused, what was copied, where the copy runs.
impl fmt::Display for Cloned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.snapshot;
        write!(
            f,
            "paused production {:.3} ms ({} process(es), {}), {} of {} file(s), {} bytes → {}; copy pid {} on {} (ready in {:.3} s)",
            s.pause_seconds * 1e3,
            s.paused.len(),
            s.paused_scope,
            s.method.as_str(),
            s.files_copied + s.files_reflinked,
            s.bytes,
            s.dest.display(),
            self.copy.process.pid(),
            self.copy.addr,
            self.copy.ready_seconds,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_root_is_the_given_dir_the_runs_shadow_dir_or_a_temporary_one() {
        let tmp = tempfile::tempdir().unwrap();
        let given = tmp.path().join("a/b");
        let r = CloneRoot::new(Some(&given), Some(tmp.path())).unwrap();
        assert_eq!(r.path(), given);
        assert!(given.is_dir());
        let r = CloneRoot::new(None, Some(tmp.path())).unwrap();
        assert_eq!(r.path(), tmp.path().join("shadow"));
        assert!(r.path().is_dir());
        let r = CloneRoot::new(None, None).unwrap();
        let temp = r.path().to_path_buf();
        assert!(temp.is_dir());
        assert!(temp
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("ordeal-clone-"));
        drop(r);
        assert!(!temp.exists(), "a temporary root is removed with it");
        // Given or run roots stay.
        assert!(given.is_dir() && tmp.path().join("shadow").is_dir());
    }

    #[test]
    fn a_failed_snapshot_names_the_pid_and_data_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Cloner {
            recipe: Recipe {
                words: vec!["true".into()],
                data_dir: tmp.path().join("missing"),
                pid: 1,
                extra_ports: Vec::new(),
            },
            root: tmp.path().to_path_buf(),
            backends: BTreeMap::new(),
            ready_timeout: Duration::from_secs(1),
        };
        let e = c.clone_now("clone", || {}, None).unwrap_err();
        let dir = tmp.path().join("missing");
        assert_eq!(e.to_string(), format!("cloning pid 1 ({})", dir.display()));
        assert_eq!(
            e.chain_text(),
            format!("cloning pid 1 ({}): refusing to pause pid 1", dir.display())
        );
    }

    /// A copy's ports are reserved as a run's are, for as long as it runs: outside the
    /// ephemeral range, and locked so that no concurrent run or copy is handed them.
    #[test]
    fn a_copys_ports_are_reserved_while_it_runs() {
        if !ordeal_test_support::installed(&["python3"], "python3") {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let listen = "import socket, sys, time\n\
                      s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n\
                      time.sleep(60)";
        let c = Cloner {
            recipe: Recipe {
                words: Vec::new(),
                data_dir: tmp.path().join("data"),
                pid: 1,
                extra_ports: vec!["port_1".into()],
            },
            root: tmp.path().to_path_buf(),
            backends: BTreeMap::new(),
            ready_timeout: Duration::from_secs(20),
        };
        let words: Vec<String> = ["python3", "-c", listen, "{port}", "{port_1}"]
            .iter()
            .map(|w| w.to_string())
            .collect();
        let copy = c
            .start_copy(&words, tmp.path().join("data"), "copy")
            .unwrap();
        let ports = copy.ports.ports().to_vec();
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0], copy.addr.port());
        assert_eq!(
            copy.process.argv[3..],
            [ports[0].to_string(), ports[1].to_string()]
        );
        let locked = |p: u16| {
            let path = Path::new(ordeal_sys::ports::DEFAULT_LOCK_DIR).join(format!("{p}.lock"));
            let f = std::fs::File::open(path).unwrap();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
            // SAFETY: flock on a descriptor we own (released when it closes).
            let rc = unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) };
            rc != 0
        };
        for &p in &ports {
            assert!(ordeal_sys::ports::DEFAULT_PORT_RANGE.contains(&p), "{p}");
            assert!(locked(p), "port {p} is reserved while the copy runs");
        }
        drop(copy);
        assert!(ports.iter().all(|&p| !locked(p)), "released with the copy");
    }
}
