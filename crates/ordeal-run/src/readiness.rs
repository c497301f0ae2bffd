//! Ready checks: a node is ready when a line of its log matches a regex, when its port
//! accepts a connection, or when a command succeeds. The supervisor polls them every
//! [`POLL`] until they hold, the node's deadline passes, the node exits or the run is
//! cancelled; lasting faults keep ending on time meanwhile.

use crate::network::enter_netns;
use crate::supervisor::{Stop, Supervisor, POLL};
use crate::Error;
use ordeal_experiment::{LogStream, ReadyCheck};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long one connection attempt of a port check waits.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(100);

/// One node's ready check and what it has read of the logs so far.
pub(crate) struct Probe<'a> {
    check: &'a ReadyCheck,
    /// The node's logs are `logs_dir/NODE.{stdout,stderr}`.
    logs_dir: PathBuf,
    node: &'a str,
    /// Where a command check runs.
    cwd: &'a Path,
    /// With `network = "netns"`: checks run from the hub.
    net: Option<&'a ordeal_netns::Network>,
    /// Bytes of each log already scanned (complete lines only).
    scanned: HashMap<PathBuf, usize>,
}

impl<'a> Probe<'a> {
    /// A probe that reads the logs from `scanned` on (a restarted node's ready line must
    /// come from its new incarnation).
    pub(crate) fn new(
        check: &'a ReadyCheck,
        run_dir: &Path,
        node: &'a str,
        cwd: &'a Path,
        net: Option<&'a ordeal_netns::Network>,
        scanned: HashMap<PathBuf, usize>,
    ) -> Self {
        Self {
            check,
            logs_dir: run_dir.join("logs"),
            node,
            cwd,
            net,
            scanned,
        }
    }

    /// Whether the check holds now.
    pub(crate) fn holds(&mut self) -> bool {
        match self.check {
            ReadyCheck::Tcp(addr) => port_open(*addr, self.net),
            ReadyCheck::Log { regex, stream } => {
                let streams: &[&str] = match stream {
                    LogStream::Stdout => &["stdout"],
                    LogStream::Stderr => &["stderr"],
                    LogStream::Both => &["stdout", "stderr"],
                };
                streams.iter().any(|s| {
                    let p = self.logs_dir.join(format!("{}.{s}", self.node));
                    log_matches(&p, regex, &mut self.scanned)
                })
            }
            ReadyCheck::Command { program, argv } => {
                let mut cmd = std::process::Command::new(program);
                cmd.args(argv.iter().skip(1))
                    .current_dir(self.cwd)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
                // Its own group, registered with the keeper while it runs: taken down with
                // whatever it started if ordeal dies meanwhile.
                std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
                if let Some(net) = self.net {
                    enter_netns(&mut cmd, net.hub_netns());
                }
                let Ok(mut child) = cmd.spawn() else {
                    return false;
                };
                let _kept = ordeal_sys::keeper::contain_group(child.id() as i32);
                child.wait().is_ok_and(|s| s.success())
            }
        }
    }
}

/// Why a node's `check` did not hold in time, for the error: what it waited for, and what to
/// change. `run_timeout`: the run's own deadline cut the wait short, not the node's
/// `ready_timeout`.
pub(crate) fn not_ready_why(check: &ReadyCheck, run_timeout: bool) -> String {
    let waited = match check {
        ReadyCheck::Tcp(addr) => format!("nothing accepted a connection at {addr}"),
        ReadyCheck::Log { regex, stream } => {
            let stream = match stream {
                LogStream::Stdout => "stdout",
                LogStream::Stderr => "stderr",
                LogStream::Both => "stdout or stderr",
            };
            format!("no line of its {stream} matched `{regex}`")
        }
        ReadyCheck::Command { argv, .. } => {
            let mut line = argv.join(" ");
            if line.chars().count() > 120 {
                line = line.chars().take(119).collect::<String>() + "…";
            }
            format!("`{line}` never exited 0")
        }
    };
    let change = if run_timeout {
        "the run's `timeout` ran out first"
    } else {
        "if it is only slow, raise its `ready_timeout`"
    };
    format!("{waited} ({change})")
}

/// Whether something accepts connections at `addr` (from the hub in netns mode).
fn port_open(addr: SocketAddr, net: Option<&ordeal_netns::Network>) -> bool {
    match net {
        Some(net) => net.hub_connects(addr, CONNECT_TIMEOUT),
        None => std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_ok(),
    }
}

/// Whether a complete line of the log matches, scanning only what is new since the last call.
fn log_matches(p: &Path, re: &regex::Regex, scanned: &mut HashMap<PathBuf, usize>) -> bool {
    let Ok(bytes) = std::fs::read(p) else {
        return false;
    };
    let from = scanned.get(p).copied().unwrap_or(0).min(bytes.len());
    let Some(last_nl) = bytes[from..].iter().rposition(|&b| b == b'\n') else {
        return false;
    };
    let upto = from + last_nl + 1;
    let text = String::from_utf8_lossy(&bytes[from..upto]);
    scanned.insert(p.to_owned(), upto);
    text.lines().any(|l| re.is_match(l))
}

impl Supervisor<'_> {
    /// Polls `check` every [`POLL`] until it holds, the deadline passes, the node exits or the
    /// run is cancelled. A node that exits is an error, unless a fault crashed it.
    pub(crate) fn wait_ready(
        &mut self,
        name: &str,
        check: &ReadyCheck,
        cwd: &Path,
        until: Instant,
        scanned: HashMap<PathBuf, usize>,
    ) -> Result<Result<(), Stop>, Error> {
        let mut probe = Probe::new(check, self.run_dir, name, cwd, self.net, scanned);
        loop {
            self.drain_notices();
            // A pause or a partition that began during start-up ends on time here too.
            self.end_lasting(false, None)?;
            let latest = self.started.iter().rev().find(|s| s.name == name);
            if latest.is_some_and(|s| s.exit.is_some() && self.was_crashed(s)) {
                return Ok(Err(Stop::Crashed));
            }
            if let Some(status) = self.exit_of(name) {
                return Err(Error::ExitedBeforeReady {
                    node: name.to_string(),
                    status,
                    tail: self.tail_of(name),
                });
            }
            if self.cancel.load(Ordering::SeqCst) {
                return Ok(Err(Stop::Cancelled));
            }
            if probe.holds() {
                return Ok(Ok(()));
            }
            if Instant::now() >= until {
                return Ok(Err(Stop::Timeout));
            }
            self.wait_notice(POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_check_that_did_not_hold_says_what_it_waited_for() {
        let log = ReadyCheck::Log {
            regex: regex::Regex::new("^up$").unwrap(),
            stream: LogStream::Both,
        };
        assert_eq!(
            not_ready_why(&log, true),
            "no line of its stdout or stderr matched `^up$` (the run's `timeout` ran out first)"
        );
        let long = ReadyCheck::Command {
            program: "sh".into(),
            argv: vec!["sh".into(), "-c".into(), "x".repeat(200)],
        };
        let why = not_ready_why(&long, false);
        assert!(why.starts_with("`sh -c xxx"), "{why}");
        assert!(
            why.ends_with("x…` never exited 0 (if it is only slow, raise its `ready_timeout`)"),
            "{why}"
        );
        assert_eq!(
            why.chars().count(),
            120 + "`` never exited 0 (if it is only slow, raise its `ready_timeout`)"
                .chars()
                .count()
        );
    }

    #[test]
    fn log_scan_only_counts_complete_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.stdout");
        let re = regex::Regex::new("^ready$").unwrap();
        let mut seen = HashMap::new();
        std::fs::write(&p, "starting\nrea").unwrap();
        assert!(!log_matches(&p, &re, &mut seen));
        assert_eq!(seen.get(&p), Some(&9));
        std::fs::write(&p, "starting\nready\n").unwrap();
        assert!(log_matches(&p, &re, &mut seen));
        assert_eq!(seen.get(&p), Some(&15));
    }

    fn append(p: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn a_log_check_matches_a_line_written_in_several_appends() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        let log = dir.path().join("logs/n1.stderr");
        let check = ReadyCheck::Log {
            regex: regex::Regex::new(r"^listening on :(\d+)$").unwrap(),
            stream: LogStream::Stderr,
        };
        let mut probe = Probe::new(&check, dir.path(), "n1", dir.path(), None, HashMap::new());
        assert!(!probe.holds(), "no log yet");
        append(&log, "booting\nlisten");
        assert!(!probe.holds());
        append(&log, "ing on :70");
        assert!(!probe.holds(), "the line is not complete yet");
        append(&log, "01\n");
        assert!(probe.holds());
        // Stdout is not looked at for a stderr check.
        std::fs::write(dir.path().join("logs/n1.stdout"), "listening on :1\n").unwrap();
        let mut other = Probe::new(&check, dir.path(), "n2", dir.path(), None, HashMap::new());
        assert!(!other.holds());
    }

    #[test]
    fn a_restarted_node_needs_a_new_ready_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        let log = dir.path().join("logs/n0.stdout");
        append(&log, "ready\n");
        let check = ReadyCheck::Log {
            regex: regex::Regex::new("^ready$").unwrap(),
            stream: LogStream::Both,
        };
        // What the logs held when the node was started again is skipped.
        let skip = HashMap::from([(log.clone(), 6)]);
        let mut probe = Probe::new(&check, dir.path(), "n0", dir.path(), None, skip);
        assert!(!probe.holds());
        append(&log, "recovering\nready\n");
        assert!(probe.holds());
    }

    #[test]
    fn a_port_check_holds_while_something_listens() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let check = ReadyCheck::Tcp(addr);
        let dir = tempfile::tempdir().unwrap();
        let mut probe = Probe::new(&check, dir.path(), "n0", dir.path(), None, HashMap::new());
        assert!(probe.holds());
        drop(listener);
        assert!(!probe.holds());
    }

    #[test]
    fn a_command_check_holds_when_the_command_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("flag"), "").unwrap();
        let check = |file: &str| ReadyCheck::Command {
            program: PathBuf::from("/bin/sh"),
            argv: vec!["sh".into(), "-c".into(), format!("test -e {file}")],
        };
        let yes = check("flag");
        let no = check("missing");
        // The command runs in the node's cwd.
        assert!(Probe::new(&yes, dir.path(), "n0", dir.path(), None, HashMap::new()).holds());
        assert!(!Probe::new(&no, dir.path(), "n0", dir.path(), None, HashMap::new()).holds());
    }
}
