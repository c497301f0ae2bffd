//! Throwaway network namespaces for one run: each member (node or workload) in a network
//! namespace of its own with one address on a private bridge, and partitions made of packet
//! drops (nftables rules in the receiving namespace).
//!
//! **Nothing persists, by construction.** Every namespace is anonymous (never bind-mounted
//! under /run/netns) and held by a *holder*: a forked process that only waits, with
//! `PR_SET_PDEATHSIG=SIGKILL`. The bridge, the veth pairs and the rules all live inside those
//! namespaces, never in the caller's, so when the holders die — on [`Drop`], or with the
//! thread that created the [`Network`] however it ends, SIGKILL included — the kernel removes
//! every namespace and everything in it. The caller's own network namespace is never changed.
//! A process started into a namespace would keep it alive after its holder died, so each
//! namespace is also registered with the process's keeper (`ordeal_sys::keeper`), which
//! SIGKILLs whatever is still in it when ordeal dies.
//!
//! Requires root (CAP_SYS_ADMIN, CAP_NET_ADMIN), `ip` (iproute2) and `nft` (nftables).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The subnet every run uses: it exists only inside the run's own namespaces, so concurrent
/// runs do not collide.
pub const SUBNET: [u8; 3] = [10, 77, 0];
/// The bridge's own address, in the hub namespace (where ready checks connect from).
pub const HUB_HOST: u8 = 254;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("creating a network namespace: {0}")]
    Namespace(std::io::Error),
    #[error("`{cmd}` failed: {detail}")]
    Command { cmd: String, detail: String },
    #[error("too many members for one /24 subnet: {0} (at most 253)")]
    TooMany(usize),
    #[error("no member named `{0}`")]
    Unknown(String),
}

/// A process that does nothing but keep a fresh network namespace alive.
struct Holder {
    pid: libc::pid_t,
    ns: Arc<OwnedFd>,
    /// The namespace registered with the keeper while the holder lives.
    _kept: ordeal_sys::keeper::Contained,
}

impl Holder {
    fn new() -> Result<Holder, Error> {
        let mut ready = [0 as libc::c_int; 2];
        // SAFETY: plain pipe2 into a local array.
        if unsafe { libc::pipe2(ready.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(Error::Namespace(std::io::Error::last_os_error()));
        }
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the child only makes async-signal-safe system calls, then waits forever or
        // _exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            let e = std::io::Error::last_os_error();
            // SAFETY: closing the pipe created above.
            unsafe {
                libc::close(ready[0]);
                libc::close(ready[1]);
            }
            return Err(Error::Namespace(e));
        }
        if pid == 0 {
            // SAFETY: see above.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                libc::close(ready[0]);
                let ok: u8 = if libc::unshare(libc::CLONE_NEWNET) == 0 {
                    1
                } else {
                    0
                };
                libc::write(ready[1], &ok as *const u8 as *const libc::c_void, 1);
                libc::close(ready[1]);
                loop {
                    libc::pause();
                }
            }
        }
        // SAFETY: closing our copy of the write end; reading one byte into a local.
        let ok = unsafe {
            libc::close(ready[1]);
            let mut b = 0u8;
            let n = loop {
                let n = libc::read(ready[0], &mut b as *mut u8 as *mut libc::c_void, 1);
                if n >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    break n;
                }
            };
            libc::close(ready[0]);
            n == 1 && b == 1
        };
        let kill = || {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        };
        if !ok {
            kill();
            return Err(Error::Namespace(std::io::Error::other(
                "unshare(CLONE_NEWNET) failed (ordeal needs root for network namespaces)",
            )));
        }
        match std::fs::File::open(format!("/proc/{pid}/ns/net")) {
            Ok(f) => {
                let ns: OwnedFd = f.into();
                let kept = match ns_inode(&ns) {
                    Some(inode) => ordeal_sys::keeper::contain_netns(inode),
                    None => {
                        kill();
                        return Err(Error::Namespace(std::io::Error::other(
                            "cannot read the new namespace's inode",
                        )));
                    }
                };
                Ok(Holder {
                    pid,
                    ns: Arc::new(ns),
                    _kept: kept,
                })
            }
            Err(e) => {
                kill();
                Err(Error::Namespace(e))
            }
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // SAFETY: killing and reaping our own child (never anyone else: we waited for it
        // only here, so the pid is still ours).
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

/// Runs `program args` inside the namespace `ns`; an error carries its stderr.
fn run_in(ns: &OwnedFd, program: &str, args: &[&str], stdin: Option<&str>) -> Result<(), Error> {
    let fd = ns.as_raw_fd();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setns is async-signal-safe; the fd stays open until the child has exec'd.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let line = format!("{program} {}", args.join(" "));
    let fail = |detail: String| Error::Command {
        cmd: line.clone(),
        detail,
    };
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        w.write_all(text.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

struct Member {
    holder: Holder,
    addr: Ipv4Addr,
}

/// The namespaces of one run. Dropping it removes everything (see the crate docs).
pub struct Network {
    hub: Holder,
    members: BTreeMap<String, Member>,
    /// Directed pairs (from, to) whose packets are dropped, as last applied.
    cuts: Mutex<BTreeSet<(String, String)>>,
}

impl Network {
    /// Creates the hub (bridge `ordeal0` at `.254`) and one namespace per member, in order:
    /// the i-th member (from 0) gets `10.77.0.(i+1)` on interface `eth0`, plus `lo`.
    pub fn create(members: &[String]) -> Result<Network, Error> {
        if members.len() > 253 {
            return Err(Error::TooMany(members.len()));
        }
        let hub = Holder::new()?;
        let [a, b, c] = SUBNET;
        let hub_cidr = format!("{a}.{b}.{c}.{HUB_HOST}/24");
        run_in(
            &hub.ns,
            "ip",
            &["-batch", "-"],
            Some(&format!(
                "link set lo up\nlink add ordeal0 type bridge\naddr add {hub_cidr} dev ordeal0\nlink set ordeal0 up\n"
            )),
        )?;
        let mut net = Network {
            hub,
            members: BTreeMap::new(),
            cuts: Mutex::new(BTreeSet::new()),
        };
        for (i, name) in members.iter().enumerate() {
            let holder = Holder::new()?;
            let host = i as u8 + 1;
            let addr = Ipv4Addr::new(a, b, c, host);
            let veth = format!("v{host}");
            run_in(
                &net.hub.ns,
                "ip",
                &["-batch", "-"],
                Some(&format!(
                    "link add {veth} type veth peer name eth0 netns {}\nlink set {veth} master ordeal0\nlink set {veth} up\n",
                    holder.pid
                )),
            )?;
            run_in(
                &holder.ns,
                "ip",
                &["-batch", "-"],
                Some(&format!(
                    "link set lo up\naddr add {addr}/24 dev eth0\nlink set eth0 up\n"
                )),
            )?;
            run_in(
                &holder.ns,
                "nft",
                &["-f", "-"],
                Some("table inet ordeal {\n chain input {\n  type filter hook input priority 0; policy accept;\n }\n}\n"),
            )?;
            net.members.insert(name.clone(), Member { holder, addr });
        }
        Ok(net)
    }

    /// The member's address.
    pub fn addr(&self, member: &str) -> Option<Ipv4Addr> {
        self.members.get(member).map(|m| m.addr)
    }

    /// The member's namespace, to enter before exec (`setns(fd, CLONE_NEWNET)`).
    pub fn netns(&self, member: &str) -> Option<Arc<OwnedFd>> {
        self.members.get(member).map(|m| Arc::clone(&m.holder.ns))
    }

    /// The hub's namespace: it reaches every member (ready checks, the check command).
    pub fn hub_netns(&self) -> Arc<OwnedFd> {
        Arc::clone(&self.hub.ns)
    }

    /// Pids of the holder processes (hub first): what must be gone after the run.
    pub fn holder_pids(&self) -> Vec<i32> {
        std::iter::once(self.hub.pid)
            .chain(self.members.values().map(|m| m.holder.pid))
            .collect()
    }

    /// Drops, from now on, every packet sent by a member of `from` to a member of `to` (and
    /// back unless `oneway`), on top of the cuts in place. Rules sit in the receiver's
    /// namespace: the sender's stack sees a lossy network, as in a real partition.
    pub fn cut(&self, from: &[String], to: &[String], oneway: bool) -> Result<(), Error> {
        let mut pairs = Vec::new();
        for f in from {
            for t in to {
                pairs.push((f.clone(), t.clone()));
                if !oneway {
                    pairs.push((t.clone(), f.clone()));
                }
            }
        }
        for (f, t) in &pairs {
            for n in [f, t] {
                if !self.members.contains_key(n) {
                    return Err(Error::Unknown(n.clone()));
                }
            }
        }
        let mut cuts = self.cuts.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = cuts.clone();
        next.extend(pairs);
        self.apply(&cuts, &next)?;
        *cuts = next;
        Ok(())
    }

    /// Sets exactly these directed cuts (what is not listed is healed).
    pub fn set_cuts(&self, pairs: &BTreeSet<(String, String)>) -> Result<(), Error> {
        let mut cuts = self.cuts.lock().unwrap_or_else(|e| e.into_inner());
        self.apply(&cuts, pairs)?;
        *cuts = pairs.clone();
        Ok(())
    }

    /// Removes every cut.
    pub fn heal(&self) -> Result<(), Error> {
        self.set_cuts(&BTreeSet::new())
    }

    /// The directed cuts in place.
    pub fn cuts(&self) -> BTreeSet<(String, String)> {
        self.cuts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Rewrites the input chain of every receiver whose set of blocked senders changes.
    fn apply(
        &self,
        old: &BTreeSet<(String, String)>,
        new: &BTreeSet<(String, String)>,
    ) -> Result<(), Error> {
        let senders = |set: &BTreeSet<(String, String)>, to: &str| -> Vec<Ipv4Addr> {
            set.iter()
                .filter(|(_, t)| t == to)
                .filter_map(|(f, _)| self.addr(f))
                .collect()
        };
        for (name, m) in &self.members {
            let now = senders(new, name);
            if now == senders(old, name) {
                continue;
            }
            let mut script = String::from("flush chain inet ordeal input\n");
            for a in now {
                script.push_str(&format!("add rule inet ordeal input ip saddr {a} drop\n"));
            }
            run_in(&m.holder.ns, "nft", &["-f", "-"], Some(&script))?;
        }
        Ok(())
    }

    /// Runs `f` on a thread that has entered the hub's namespace (a TCP ready check, say).
    pub fn in_hub<T: Send>(&self, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
        in_netns(&self.hub.ns, f)
    }

    /// Runs `f` on a thread that has entered `member`'s namespace.
    pub fn in_member<T: Send>(
        &self,
        member: &str,
        f: impl FnOnce() -> T + Send,
    ) -> std::io::Result<T> {
        let m = self
            .members
            .get(member)
            .ok_or_else(|| std::io::Error::other(format!("no member named `{member}`")))?;
        in_netns(&m.holder.ns, f)
    }

    /// Whether a TCP connection from the hub to `addr` succeeds within `timeout`.
    pub fn hub_connects(&self, addr: std::net::SocketAddr, timeout: Duration) -> bool {
        self.in_hub(|| std::net::TcpStream::connect_timeout(&addr, timeout).is_ok())
            .unwrap_or(false)
    }
}

/// Runs `f` on a scoped thread that has entered the namespace `ns` (threads have a network
/// namespace each: the caller's stays as it is).
pub fn in_netns<T: Send>(ns: &OwnedFd, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    let fd = ns.as_raw_fd();
    std::thread::scope(|s| {
        s.spawn(move || {
            // SAFETY: setns on this short-lived thread only.
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(f())
        })
        .join()
        .map_err(|_| std::io::Error::other("the thread in the namespace panicked"))?
    })
}

/// Inode numbers of the network namespaces any process on the machine is in right now.
pub fn live_namespaces() -> BTreeSet<u64> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    dir.flatten()
        .filter_map(|e| std::fs::metadata(e.path().join("ns/net")).ok())
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .collect()
}

/// The inode number of a namespace fd.
pub fn ns_inode(fd: &OwnedFd) -> Option<u64> {
    std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
}
