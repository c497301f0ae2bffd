//! Turning an [`Experiment`] into concrete processes for one run.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;

use crate::template::{Template, Values};
use crate::{
    normalize, DataDirDef, Diagnostic, Error, Experiment, Location, LogStream, PortAllocator,
    PortReservation, Process, ReadyDef, StartAfter,
};

/// What [`Experiment::resolve`] needs to know about the run.
#[derive(Debug, Clone)]
pub struct ResolveContext {
    /// The run's directory (`{run_dir}`); data directories go in `<run_dir>/data/<node>`.
    /// Made absolute against the current directory if relative. Need not exist yet.
    pub run_dir: PathBuf,
    /// The running ordeal executable (`{ordeal}`). Made absolute if relative.
    pub ordeal_exe: PathBuf,
    /// Where ports come from.
    pub ports: PortAllocator,
}

impl ResolveContext {
    /// A context with the default [`PortAllocator`].
    pub fn new(run_dir: impl Into<PathBuf>, ordeal_exe: impl Into<PathBuf>) -> Self {
        ResolveContext {
            run_dir: run_dir.into(),
            ordeal_exe: ordeal_exe.into(),
            ports: PortAllocator::new(),
        }
    }
}

/// An experiment made concrete for one run: every placeholder expanded, every port allocated
/// and reserved, every program found.
///
/// The ports stay reserved while this value lives: keep it until the run's processes have
/// exited.
#[derive(Debug)]
pub struct Resolved {
    /// The experiment's name.
    pub name: String,
    /// The whole-run deadline.
    pub timeout: Duration,
    /// No traced event for this long while workloads run = hung (`None`: off).
    pub hang_timeout: Option<Duration>,
    /// The run directory (absolute).
    pub run_dir: PathBuf,
    /// Nodes, in file order.
    pub nodes: Vec<NodeSpec>,
    /// Workloads, in file order.
    pub workloads: Vec<WorkloadSpec>,
    /// The `[check]` command, run (untraced) after the workloads.
    pub check: Option<WorkloadSpec>,
    /// `[crash] check`: run (untraced) by `ordeal crash` on each recovered crash state.
    pub crash_check: Option<WorkloadSpec>,
    /// `[check] history`: the history to check after the workloads.
    pub history_check: Option<crate::HistoryCheck>,
    /// `[[proxy]]`: TCP proxies ordeal runs for the run (where `toxic` faults act).
    pub proxies: Vec<ProxySpec>,
    /// Every allocated port: port name → number.
    pub ports: BTreeMap<String, u16>,
    /// The variable values used (file values with overrides applied).
    pub vars: BTreeMap<String, String>,
    /// How nodes are networked.
    pub network: crate::Network,
    /// Each node's and workload's address (`{host.NAME}`): `127.0.0.1` on loopback.
    pub hosts: BTreeMap<String, String>,
    /// `[roles]`: the probe finding each probed role's holders, in name order.
    pub roles: Vec<crate::RoleProbe>,
    /// `[roles]`: the roles inferred from traffic (`infer`), in name order.
    pub inferred_roles: Vec<crate::InferredRole>,
    reservation: PortReservation,
}

/// A `[[proxy]]`, ready to start: it listens on `listen` and forwards to `upstream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySpec {
    pub name: String,
    pub listen: SocketAddr,
    /// `host:port`.
    pub upstream: String,
}

/// A node, ready to start.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    /// The absolute path of the program to execute (`argv[0]` looked up in `PATH`, or made
    /// absolute against `cwd`).
    pub program: PathBuf,
    /// The full argument vector; `argv[0]` is as written (expanded), not `program`.
    pub argv: Vec<String>,
    /// Variables to add to (or replace in) the inherited environment.
    pub env: BTreeMap<String, String>,
    /// Absolute working directory.
    pub cwd: PathBuf,
    pub data_dir: Option<DataDir>,
    /// Run under the tracer (false: supervised only, no ptrace).
    pub trace: bool,
    /// `None`: the node counts as ready as soon as it has started.
    pub ready: Option<ReadyCheck>,
    /// How long the ready condition may take to hold, from the node's start.
    pub ready_timeout: Duration,
    /// At the end of the run, this signal (`SIGTERM`, ...) first, then SIGKILL after
    /// `stop_timeout`; `None`: SIGKILL at once.
    pub stop_signal: Option<String>,
    pub stop_timeout: Duration,
    /// The ports that belong to this node: port name → number.
    pub ports: BTreeMap<String, u16>,
    /// What connections to those ports speak (`protocol`; `None`: detected, `none`: not
    /// decoded).
    pub protocol: Option<String>,
}

/// A workload command, ready to start.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    pub name: String,
    /// As for [`NodeSpec::program`].
    pub program: PathBuf,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    pub after: StartAfter,
    /// Run under the tracer (false: supervised only, no ptrace).
    pub trace: bool,
}

/// A node's data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    /// `<run_dir>/data/<node>`: created empty, or as a copy of `copy_from`.
    pub path: PathBuf,
    /// The directory copied into `path` (absolute). It is never modified.
    pub copy_from: Option<PathBuf>,
}

/// When a node counts as ready. The supervisor polls it until it holds or the node's
/// `ready_timeout` passes.
#[derive(Debug, Clone)]
pub enum ReadyCheck {
    /// A TCP connection to this address succeeds.
    Tcp(SocketAddr),
    /// A line of the node's output (on `stream`) matches `regex`.
    Log { regex: Regex, stream: LogStream },
    /// This command, run in the node's `cwd` with the node's environment, exits with status 0.
    Command { program: PathBuf, argv: Vec<String> },
}

impl Resolved {
    /// The node owning `port`, if any.
    pub fn port_owner(&self, port: u16) -> Option<&str> {
        self.nodes
            .iter()
            .find(|n| n.ports.values().any(|p| *p == port))
            .map(|n| n.name.as_str())
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The port reservation held by this run.
    pub fn reservation(&self) -> &PortReservation {
        &self.reservation
    }
}

impl Experiment {
    /// Makes the experiment concrete for one run: allocates and reserves a fresh port for
    /// every port name, expands every placeholder, resolves relative paths, compiles ready
    /// regexes and finds every program (`argv[0]` of nodes, workloads and ready commands).
    ///
    /// Reports every problem found (a missing or non-executable program, a missing `cwd` or
    /// `copy_from` directory, a bad ready address, a NUL byte) as [`Error::Invalid`], each
    /// naming the node or workload and the position of the offending value. Programs and
    /// directories inside the run directory are not checked, as they may not exist yet.
    pub fn resolve(&self, ctx: &ResolveContext) -> Result<Resolved, Error> {
        let absolute = |p: &Path| {
            std::path::absolute(p)
                .map(|p| normalize(&p))
                .map_err(|e| Error::io("finding the current directory", e))
        };
        let run_dir = absolute(&ctx.run_dir)?;
        let ordeal = absolute(&ctx.ordeal_exe)?;
        let utf8 = |p: &Path, what: &str| {
            p.to_str().map(str::to_string).ok_or_else(|| {
                Error::Invalid(vec![Diagnostic {
                    location: Location::file_only(&self.file),
                    message: format!("the {what} path {} is not valid UTF-8", p.display()),
                }])
            })
        };
        let run_dir_str = utf8(&run_dir, "run directory")?;
        let ordeal_str = utf8(&ordeal, "ordeal executable")?;

        let reservation = ctx
            .ports
            .allocate(self.port_names.len())
            .map_err(|e| Error::Ports(e.to_string()))?;
        let ports: BTreeMap<String, u16> = self
            .port_names
            .iter()
            .cloned()
            .zip(reservation.ports().iter().copied())
            .collect();
        let data_dirs: BTreeMap<String, PathBuf> = self
            .nodes
            .iter()
            .filter(|n| n.data_dir.is_some())
            .map(|n| {
                let name = n.process.name.clone();
                let path = run_dir.join("data").join(&name);
                (name, path)
            })
            .collect();
        let participants = self
            .nodes
            .iter()
            .map(|n| &n.process.name)
            .chain(self.workloads.iter().map(|w| &w.process.name));
        let hosts: BTreeMap<String, String> = participants
            .enumerate()
            .map(|(i, name)| {
                let host = match self.network {
                    crate::Network::Loopback => "127.0.0.1".to_string(),
                    crate::Network::Netns => crate::netns_addr(i).to_string(),
                };
                (name.clone(), host)
            })
            .collect();
        let values = Values {
            ports: &ports,
            hosts: &hosts,
            data_dirs: &data_dirs,
            vars: &self.vars,
            run_dir: &run_dir_str,
            ordeal: &ordeal_str,
        };
        let mut r = Resolver {
            exp: self,
            values,
            run_dir: &run_dir,
            diags: Vec::new(),
        };

        let mut nodes = Vec::new();
        for n in &self.nodes {
            let what = format!("node `{}`", n.process.name);
            let (program, argv, env, cwd) = r.process(&what, &n.process);
            let data_dir = n.data_dir.as_ref().map(|d| DataDir {
                path: data_dirs[&n.process.name].clone(),
                copy_from: match d {
                    DataDirDef::Fresh => None,
                    DataDirDef::CopyFrom(t) => Some(r.copy_from(&what, t)),
                },
            });
            let ready = n
                .ready
                .as_ref()
                .and_then(|rd| r.ready(&what, rd, &cwd, &env));
            let node_ports = self
                .port_owners
                .iter()
                .filter(|(_, owner)| **owner == n.process.name)
                .map(|(p, _)| (p.clone(), ports[p]))
                .collect();
            nodes.push(NodeSpec {
                trace: n.process.trace,
                name: n.process.name.clone(),
                program,
                argv,
                env,
                cwd,
                data_dir,
                ready,
                ready_timeout: n.ready_timeout,
                stop_signal: n.stop_signal.clone(),
                stop_timeout: n.stop_timeout,
                ports: node_ports,
                protocol: n.protocol.clone(),
            });
        }
        let mut workloads = Vec::new();
        for w in &self.workloads {
            let what = format!("workload `{}`", w.process.name);
            let (program, argv, env, cwd) = r.process(&what, &w.process);
            workloads.push(WorkloadSpec {
                name: w.process.name.clone(),
                program,
                argv,
                env,
                cwd,
                after: w.after,
                trace: w.process.trace,
            });
        }
        let check = self.check.as_ref().map(|c| {
            let (program, argv, env, cwd) = r.process("[check]", c);
            WorkloadSpec {
                name: c.name.clone(),
                program,
                argv,
                env,
                cwd,
                after: StartAfter::Ready,
                trace: false,
            }
        });
        let crash_check = self.crash_check.as_ref().map(|c| {
            let (program, argv, env, cwd) = r.process("[crash] check", c);
            WorkloadSpec {
                name: c.name.clone(),
                program,
                argv,
                env,
                cwd,
                after: StartAfter::Ready,
                trace: false,
            }
        });
        let mut proxies = Vec::new();
        for p in &self.proxies {
            let what = format!("proxy `{}`", p.name);
            let listen = r.string(&what, &p.listen);
            let upstream = r.string(&what, &p.upstream);
            match resolve_addr(&listen) {
                Ok(addr) if addr.ip().is_loopback() => proxies.push(ProxySpec {
                    name: p.name.clone(),
                    listen: addr,
                    upstream,
                }),
                Ok(addr) => r.err(
                    &p.listen.location,
                    format!("{what}: listen address {addr} is not on loopback"),
                ),
                Err(m) => r.err(&p.listen.location, format!("{what}: listen: {m}")),
            }
        }
        let (mut roles, mut inferred_roles) = (Vec::new(), Vec::new());
        for role in &self.roles {
            match r.role(role) {
                crate::roles::ResolvedRole::Probe(p) => roles.push(p),
                crate::roles::ResolvedRole::Inferred(i) => inferred_roles.push(i),
            }
        }
        if !r.diags.is_empty() {
            return Err(Error::Invalid(r.diags));
        }
        Ok(Resolved {
            roles,
            inferred_roles,
            check,
            crash_check,
            history_check: self.history_check.clone(),
            proxies,
            name: self.name.clone(),
            timeout: self.timeout,
            hang_timeout: self.hang_timeout,
            run_dir,
            nodes,
            workloads,
            ports,
            vars: self.vars.clone(),
            network: self.network,
            hosts: hosts.clone(),
            reservation,
        })
    }
}

pub(crate) struct Resolver<'a> {
    exp: &'a Experiment,
    values: Values<'a>,
    run_dir: &'a Path,
    diags: Vec<Diagnostic>,
}

impl Resolver<'_> {
    fn err(&mut self, location: &Location, message: String) {
        self.diags.push(Diagnostic {
            location: location.clone(),
            message,
        });
    }

    /// The directory relative paths of the file start from.
    pub(crate) fn base_dir(&self) -> &Path {
        &self.exp.base_dir
    }

    /// The experiment file's name, for messages.
    pub(crate) fn file(&self) -> &str {
        &self.exp.file
    }

    /// Expands a string that becomes part of a process's argv or environment.
    pub(crate) fn string(&mut self, what: &str, t: &Template) -> String {
        let s = t.expand_plain(&self.values);
        if s.contains('\0') {
            self.err(
                &t.location,
                format!("{what}: the value contains a NUL byte"),
            );
        }
        s
    }

    fn path(&mut self, what: &str, t: &Template) -> PathBuf {
        let s = self.string(what, t);
        normalize(&self.exp.base_dir.join(s))
    }

    fn in_run_dir(&self, p: &Path) -> bool {
        p.starts_with(self.run_dir)
    }

    fn process(
        &mut self,
        what: &str,
        p: &Process,
    ) -> (PathBuf, Vec<String>, BTreeMap<String, String>, PathBuf) {
        let argv: Vec<String> = p.argv.iter().map(|a| self.string(what, a)).collect();
        let env: BTreeMap<String, String> = p
            .env
            .iter()
            .map(|(k, v)| (k.clone(), self.string(what, v)))
            .collect();
        let cwd = match &p.cwd {
            Some(t) => {
                let cwd = self.path(what, t);
                if !self.in_run_dir(&cwd) && !cwd.is_dir() {
                    self.err(
                        &t.location,
                        format!(
                            "{what}: working directory {} does not exist or is not a directory",
                            cwd.display()
                        ),
                    );
                }
                cwd
            }
            None => self.exp.base_dir.clone(),
        };
        let program = self.program(what, &argv, &p.argv_location, &cwd, &env);
        (program, argv, env, cwd)
    }

    pub(crate) fn program(
        &mut self,
        what: &str,
        argv: &[String],
        location: &Location,
        cwd: &Path,
        env: &BTreeMap<String, String>,
    ) -> PathBuf {
        let Some(argv0) = argv.first() else {
            return PathBuf::new(); // reported when parsing
        };
        let path_var = env
            .get("PATH")
            .map(|p| p.clone().into())
            .or_else(|| std::env::var_os("PATH"));
        match find_program(argv0, cwd, path_var.as_deref(), self.run_dir) {
            Ok(p) => p,
            Err(e) => {
                self.err(location, format!("{what}: {e}"));
                PathBuf::from(argv0)
            }
        }
    }

    fn copy_from(&mut self, what: &str, t: &Template) -> PathBuf {
        let p = self.path(what, t);
        if !p.is_dir() {
            self.err(
                &t.location,
                format!(
                    "{what}: data directory source {} does not exist or is not a directory",
                    p.display()
                ),
            );
        }
        p
    }

    fn ready(
        &mut self,
        what: &str,
        ready: &ReadyDef,
        cwd: &Path,
        env: &BTreeMap<String, String>,
    ) -> Option<ReadyCheck> {
        match ready {
            ReadyDef::Tcp(t) => {
                let addr = self.string(what, t);
                match resolve_addr(&addr) {
                    Ok(a) => Some(ReadyCheck::Tcp(a)),
                    Err(e) => {
                        self.err(&t.location, format!("{what}: ready.tcp: {e}"));
                        None
                    }
                }
            }
            ReadyDef::Log { regex, stream } => {
                let text = regex.expand(&self.values, regex::escape);
                match Regex::new(&text) {
                    Ok(re) => Some(ReadyCheck::Log {
                        regex: re,
                        stream: *stream,
                    }),
                    Err(e) => {
                        self.err(
                            &regex.location,
                            format!("{what}: invalid regular expression in `log`: {e}"),
                        );
                        None
                    }
                }
            }
            ReadyDef::Command { argv: argv_t } => {
                let argv: Vec<String> = argv_t.iter().map(|a| self.string(what, a)).collect();
                let location = match argv_t.first() {
                    Some(t) => t.location.clone(),
                    None => Location::file_only(&self.exp.file),
                };
                let program = self.program(
                    &format!("{what}: ready.command"),
                    &argv,
                    &location,
                    cwd,
                    env,
                );
                Some(ReadyCheck::Command { program, argv })
            }
        }
    }
}

/// Why a `ready.tcp` address cannot be used; displayed as a message suitable after a location.
#[derive(Debug, thiserror::Error)]
enum AddrError {
    #[error("`{0}` is not of the form `host:port`")]
    NotHostPort(String),
    #[error("`{addr}`: invalid port `{port}`")]
    InvalidPort { addr: String, port: String },
    #[error("cannot resolve `{addr}`: {source}")]
    Lookup {
        addr: String,
        source: std::io::Error,
    },
    #[error("`{0}` resolves to no address")]
    NoAddress(String),
}

/// `host:port` → a socket address (an IPv4 one when the host has both).
fn resolve_addr(addr: &str) -> Result<SocketAddr, AddrError> {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(a);
    }
    let Some((_, port)) = addr.rsplit_once(':') else {
        return Err(AddrError::NotHostPort(addr.to_string()));
    };
    if port.parse::<u16>().is_err() {
        return Err(AddrError::InvalidPort {
            addr: addr.to_string(),
            port: port.to_string(),
        });
    }
    let all: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|source| AddrError::Lookup {
            addr: addr.to_string(),
            source,
        })?
        .collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| AddrError::NoAddress(addr.to_string()))
}

/// Why a program cannot be run; displayed as a message suitable after a location.
#[derive(Debug, thiserror::Error)]
enum ProgramError {
    #[error("the program name (argv[0]) is empty")]
    EmptyName,
    /// A program given by path.
    #[error("program `{argv0}` {why} (looked at {})", path.display())]
    Unusable {
        argv0: String,
        why: &'static str,
        path: PathBuf,
    },
    /// A program found in `PATH`, but not executable.
    #[error("program `{argv0}` is not executable ({} {why})", path.display())]
    NotExecutable {
        argv0: String,
        path: PathBuf,
        why: &'static str,
    },
    #[error("program `{argv0}` not found in PATH ({path_var})")]
    NotFound { argv0: String, path_var: String },
}

/// Finds the program `argv0` as `execvp` would: a name with a `/` is a path (relative to
/// `cwd`), any other name is searched in `path_var` (default `/usr/local/bin:/usr/bin:/bin`).
/// Paths inside `run_dir` are accepted unchecked (they may be created during the run).
fn find_program(
    argv0: &str,
    cwd: &Path,
    path_var: Option<&OsStr>,
    run_dir: &Path,
) -> Result<PathBuf, ProgramError> {
    if argv0.is_empty() {
        return Err(ProgramError::EmptyName);
    }
    if argv0.contains('/') {
        let p = normalize(&cwd.join(argv0));
        if p.starts_with(run_dir) {
            return Ok(p);
        }
        return match executable(&p) {
            Ok(()) => Ok(p),
            Err(why) => Err(ProgramError::Unusable {
                argv0: argv0.to_string(),
                why,
                path: p,
            }),
        };
    }
    let path_var = path_var.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    let mut not_executable = None;
    for dir in std::env::split_paths(path_var) {
        let dir = if dir.as_os_str().is_empty() {
            cwd.to_path_buf()
        } else {
            cwd.join(dir)
        };
        let candidate = dir.join(argv0);
        match executable(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(why) if candidate.exists() && not_executable.is_none() => {
                not_executable = Some((candidate, why));
            }
            Err(_) => {}
        }
    }
    Err(match not_executable {
        Some((path, why)) => ProgramError::NotExecutable {
            argv0: argv0.to_string(),
            path,
            why,
        },
        None => ProgramError::NotFound {
            argv0: argv0.to_string(),
            path_var: path_var.to_string_lossy().into_owned(),
        },
    })
}

/// Ok if `p` is an executable regular file (following symlinks); else why not.
fn executable(p: &Path) -> Result<(), &'static str> {
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err("does not exist"),
        Err(_) => return Err("cannot be examined"),
    };
    if meta.is_dir() {
        return Err("is a directory");
    }
    if !meta.is_file() {
        return Err("is not a regular file");
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err("is not executable");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            resolve_addr("127.0.0.1:80").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(resolve_addr("[::1]:8").unwrap(), "[::1]:8".parse().unwrap());
        assert_eq!(resolve_addr("localhost:81").unwrap().port(), 81);
        assert_eq!(
            resolve_addr("127.0.0.1").unwrap_err().to_string(),
            "`127.0.0.1` is not of the form `host:port`"
        );
        assert_eq!(
            resolve_addr("h:x").unwrap_err().to_string(),
            "`h:x`: invalid port `x`"
        );
    }

    #[test]
    fn programs() {
        let root = Path::new("/nonexistent-run");
        let sh = find_program("sh", Path::new("/"), Some(OsStr::new("/nope:/bin")), root);
        assert_eq!(sh.unwrap(), Path::new("/bin/sh"));
        let err = find_program("no-such-prog-xyz", Path::new("/"), None, root)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "program `no-such-prog-xyz` not found in PATH (/usr/local/bin:/usr/bin:/bin)"
        );
        let err = find_program("./bin", Path::new("/"), None, root)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "program `./bin` is a directory (looked at /bin)");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.txt"), "x").unwrap();
        let err = find_program("./data.txt", dir.path(), None, root)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "program `./data.txt` is not executable (looked at {}/data.txt)",
                dir.path().display()
            )
        );
        let err = find_program(
            "data.txt",
            Path::new("/"),
            Some(dir.path().as_os_str()),
            root,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            format!(
                "program `data.txt` is not executable ({}/data.txt is not executable)",
                dir.path().display()
            )
        );
        assert_eq!(
            find_program("", Path::new("/"), None, root)
                .unwrap_err()
                .to_string(),
            "the program name (argv[0]) is empty"
        );
        let inside = find_program("./x", Path::new("/nonexistent-run/data/a"), None, root);
        assert_eq!(inside.unwrap(), Path::new("/nonexistent-run/data/a/x"));
    }
}
