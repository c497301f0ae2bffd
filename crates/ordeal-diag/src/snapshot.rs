//! The snapshot model (JSON) and its text form, and building it from /proc plus what a
//! tracer captured (registers and a copy of each thread's stack).

use crate::procfs::{self, FdEntry, Memory, SockEntry};
use crate::unwind::{Frame, ModuleInfo, ProcessModules};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

pub const SNAPSHOT_SCHEMA: &str = "ordeal-snapshot";
pub const SNAPSHOT_VERSION: u32 = 1;

/// What a tracer captured of one thread while it was stopped.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    /// What the tracer knew of the thread (`running`, `held by fault f`, `group-stopped`, ...).
    pub tracer_state: String,
    /// The traced call it was in, from the tracer's own state.
    pub in_call: Option<String>,
    /// `user_regs_struct` in kernel order (27 words), when it stopped in time.
    pub regs: Option<[u64; 27]>,
    /// Copy of its stack from `sp` up: (address of the first byte, bytes).
    pub stack: Option<(u64, Vec<u8>)>,
    /// Why registers are missing (did not stop before the deadline, ...).
    pub note: Option<String>,
}

/// Index of rip/rsp/rbp in `user_regs_struct`.
pub const REG_RIP: usize = 16;
pub const REG_RSP: usize = 19;
pub const REG_RBP: usize = 4;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub schema: String,
    pub version: u32,
    /// `hang`, `failure`, `request`, `schedule`, ...
    pub reason: String,
    /// Free text: the hang reason, the failed check, the requester.
    #[serde(default)]
    pub detail: String,
    /// Milliseconds since the run started.
    pub at_ms: u64,
    /// How long taking it kept threads stopped, at most, in microseconds.
    pub max_pause_us: u64,
    pub nodes: Vec<NodeSnap>,
    #[serde(default)]
    pub dumps: Vec<crate::dump::DumpRecord>,
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSnap {
    pub name: String,
    pub processes: Vec<ProcSnap>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcSnap {
    pub pid: i32,
    pub command: Vec<String>,
    pub exe: Option<String>,
    pub memory: Option<Memory>,
    pub threads: Vec<ThreadSnap>,
    pub fds: Vec<FdSnap>,
    pub modules: Vec<ModuleInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadSnap {
    pub tid: i32,
    pub name: String,
    /// /proc state letter and its meaning: `S (sleeping)`.
    pub state: String,
    pub cpu_ms: u64,
    /// The system call it is blocked in (/proc/TID/syscall), decoded.
    pub syscall: Option<String>,
    /// The futex word it waits on, for a futex wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub futex: Option<u64>,
    pub wchan: Option<String>,
    /// What ordeal's tracer knew of it.
    pub tracer: Option<String>,
    pub in_traced_call: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regs: Option<Regs>,
    pub stack: Vec<Frame>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Regs {
    pub rip: u64,
    pub rsp: u64,
    pub rbp: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FdSnap {
    pub fd: i32,
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<SockSnap>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SockSnap {
    pub ino: u64,
    pub proto: String,
    pub local: Option<String>,
    pub remote: Option<String>,
    pub state: Option<String>,
    /// Node at the other end (a traced socket whose local address is our remote one, or the
    /// owner of the port), `external` when none.
    pub peer_node: Option<String>,
}

/// What /proc says of one thread at one moment.
#[derive(Debug, Clone, Default)]
pub struct ThreadProc {
    pub stat: Option<procfs::TaskStat>,
    pub syscall: Option<procfs::SyscallInfo>,
    pub wchan: Option<String>,
}

/// Reads state, system call and wchan of every thread of `pid` now. A snapshot reads them
/// before stopping threads for their registers, which perturbs what they wait in (an
/// interrupted call is restarted; `epoll_wait` returns EINTR).
pub fn read_threads(pid: i32) -> HashMap<i32, ThreadProc> {
    procfs::tasks(pid)
        .into_iter()
        .map(|tid| {
            (
                tid,
                ThreadProc {
                    stat: procfs::task_stat(pid, tid),
                    syscall: procfs::task_syscall(pid, tid),
                    wchan: procfs::task_wchan(pid, tid),
                },
            )
        })
        .collect()
}

/// Options of [`read_process`].
pub struct ReadOptions<'a> {
    /// Names system call numbers (`ordeal_tracer::syscall_name`, say).
    pub syscall_name: &'a dyn Fn(i64) -> String,
    /// Unwind and symbolize threads that have registers.
    pub stacks: bool,
}

const SYS_FUTEX: i64 = 202;

fn futex_op(op: u64) -> String {
    let private = op & 128 != 0;
    let base = match op & 127 {
        0 => "FUTEX_WAIT",
        1 => "FUTEX_WAKE",
        6 => "FUTEX_LOCK_PI",
        9 => "FUTEX_WAIT_BITSET",
        11 => "FUTEX_WAIT_REQUEUE_PI",
        _ => return format!("{op:#x}"),
    };
    if private {
        format!("{base}_PRIVATE")
    } else {
        base.to_string()
    }
}

/// Decodes a /proc syscall line into text (`futex(0x7f.., FUTEX_WAIT_PRIVATE)`), with the
/// futex word for futex waits.
pub fn describe_syscall(
    s: &procfs::SyscallInfo,
    name: &dyn Fn(i64) -> String,
) -> (Option<String>, Option<u64>) {
    let Some(nr) = s.nr else {
        return (None, None);
    };
    let a = |i: usize| s.args.get(i).copied().unwrap_or(0);
    if nr == SYS_FUTEX {
        return (
            Some(format!(
                "futex({:#x}, {}, {})",
                a(0),
                futex_op(a(1)),
                a(2) as i32
            )),
            Some(a(0)),
        );
    }
    let n = name(nr);
    let text = match n.as_str() {
        "read" | "write" | "recvfrom" | "sendto" | "recvmsg" | "sendmsg" | "accept" | "accept4"
        | "connect" | "fsync" | "fdatasync" | "flock" | "pread64" | "pwrite64" | "readv"
        | "writev" => format!("{n}(fd {})", a(0) as i32),
        "epoll_wait" | "epoll_pwait" | "epoll_pwait2" => {
            format!("{n}(epfd {}, timeout {})", a(0) as i32, a(3) as i32)
        }
        "wait4" | "waitid" => format!("{n}({})", a(0) as i32),
        _ => format!("{n}()"),
    };
    (Some(text), None)
}

/// Reads one process: its threads (with stacks from `captured`; state, call and wchan from
/// `before` when there, else read now), fds and memory.
pub fn read_process(
    pid: i32,
    captured: &HashMap<i32, Captured>,
    before: Option<&HashMap<i32, ThreadProc>>,
    opts: &ReadOptions<'_>,
) -> ProcSnap {
    let maps = procfs::maps(pid);
    let socks = procfs::sockets(pid);
    let needs_modules = opts.stacks && captured.values().any(|c| c.regs.is_some());
    let modules = needs_modules.then(|| ProcessModules::load(pid, &maps));
    let tps = procfs::ticks_per_sec().max(1);
    let mut tids = procfs::tasks(pid);
    for t in captured.keys() {
        if !tids.contains(t) {
            tids.push(*t);
        }
    }
    tids.sort_unstable();
    let threads = tids
        .into_iter()
        .map(|tid| {
            let pre = before.and_then(|b| b.get(&tid));
            let st = match pre.and_then(|p| p.stat.clone()) {
                Some(s) => Some(s),
                None => procfs::task_stat(pid, tid),
            };
            let sc = match pre.and_then(|p| p.syscall.clone()) {
                Some(s) => Some(s),
                None => procfs::task_syscall(pid, tid),
            };
            let wchan = match pre {
                Some(p) => p.wchan.clone(),
                None => procfs::task_wchan(pid, tid),
            };
            let (syscall, futex) = sc
                .as_ref()
                .map(|s| describe_syscall(s, opts.syscall_name))
                .unwrap_or((None, None));
            let cap = captured.get(&tid);
            let regs = cap.and_then(|c| c.regs);
            let mut stack_note = cap.and_then(|c| c.note.clone());
            let stack = match (&modules, regs, cap.and_then(|c| c.stack.as_ref())) {
                (Some(m), Some(r), Some((base, bytes))) => {
                    m.unwind(r[REG_RIP], r[REG_RSP], r[REG_RBP], *base, bytes)
                }
                (Some(m), Some(r), None) => m.unwind(r[REG_RIP], r[REG_RSP], r[REG_RBP], 0, &[]),
                _ => {
                    if stack_note.is_none() && opts.stacks {
                        stack_note = Some(if cap.is_none() {
                            "not traced by ordeal: no registers".into()
                        } else {
                            "no registers captured".into()
                        });
                    }
                    Vec::new()
                }
            };
            ThreadSnap {
                tid,
                name: st.as_ref().map(|s| s.comm.clone()).unwrap_or_default(),
                state: st
                    .as_ref()
                    .map(|s| format!("{} ({})", s.state, crate::hang::state_name(s.state)))
                    .unwrap_or_else(|| "gone".into()),
                cpu_ms: st.as_ref().map(|s| s.cpu_ticks * 1000 / tps).unwrap_or(0),
                syscall,
                futex,
                wchan,
                tracer: cap.map(|c| c.tracer_state.clone()),
                in_traced_call: cap.and_then(|c| c.in_call.clone()),
                regs: regs.map(|r| Regs {
                    rip: r[REG_RIP],
                    rsp: r[REG_RSP],
                    rbp: r[REG_RBP],
                }),
                stack,
                stack_note,
            }
        })
        .collect();
    let snap = ProcSnap {
        pid,
        command: procfs::cmdline(pid),
        exe: procfs::exe(pid),
        memory: procfs::memory(pid),
        threads,
        fds: procfs::fds(pid)
            .into_iter()
            .map(|f| fd_snap(f, &socks))
            .collect(),
        modules: modules.as_ref().map(|m| m.modules()).unwrap_or_default(),
    };
    if modules.is_some() {
        drop(modules);
        release_freed_memory();
    }
    snap
}

/// Symbolizing a large binary allocates tens of MB (its DWARF units and line tables), all
/// freed once the process is read. glibc keeps what a thread's arena freed mapped, so a
/// campaign that snapshots one failure would hold ~60 MB more for the rest of its life
/// (measured on the demo, whose nodes are the 100 MB ordeal binary): give it back.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator to the kernel; it takes
    // the allocator's own locks and touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn fd_snap(f: FdEntry, socks: &HashMap<u64, SockEntry>) -> FdSnap {
    let socket = f.socket_ino.map(|ino| match socks.get(&ino) {
        Some(s) => SockSnap {
            ino,
            proto: s.proto.clone(),
            local: s.local.clone(),
            remote: s.remote.clone(),
            state: s.state.clone(),
            peer_node: None,
        },
        None => SockSnap {
            ino,
            proto: "other".into(),
            local: None,
            remote: None,
            state: None,
            peer_node: None,
        },
    });
    FdSnap {
        fd: f.fd,
        target: f.target,
        socket,
    }
}

fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// Names the node at the other end of every connected socket: the node owning a socket
/// whose local address is this socket's remote address, else the node owning the remote
/// port (`port_owners`), else `external`.
pub fn resolve_peers(snap: &mut Snapshot, port_owners: &HashMap<u16, String>) {
    let mut local_owner: HashMap<String, String> = HashMap::new();
    for n in &snap.nodes {
        for p in &n.processes {
            for f in &p.fds {
                if let Some(l) = f.socket.as_ref().and_then(|s| s.local.clone()) {
                    local_owner.entry(l).or_insert_with(|| n.name.clone());
                }
            }
        }
    }
    for n in &mut snap.nodes {
        for p in &mut n.processes {
            for f in &mut p.fds {
                let Some(s) = f.socket.as_mut() else {
                    continue;
                };
                let Some(r) = s.remote.as_deref() else {
                    continue;
                };
                s.peer_node = Some(
                    local_owner
                        .get(r)
                        .cloned()
                        .or_else(|| port_of(r).and_then(|p| port_owners.get(&p).cloned()))
                        .unwrap_or_else(|| "external".into()),
                );
            }
        }
    }
}

impl Snapshot {
    pub fn new(reason: &str, detail: &str, at_ms: u64) -> Self {
        Self {
            schema: SNAPSHOT_SCHEMA.into(),
            version: SNAPSHOT_VERSION,
            reason: reason.into(),
            detail: detail.into(),
            at_ms,
            max_pause_us: 0,
            nodes: Vec::new(),
            dumps: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Every thread, with its node.
    pub fn threads(&self) -> impl Iterator<Item = (&str, &ProcSnap, &ThreadSnap)> {
        self.nodes.iter().flat_map(|n| {
            n.processes
                .iter()
                .flat_map(move |p| p.threads.iter().map(move |t| (n.name.as_str(), p, t)))
        })
    }

    /// The readable text form (snapshot.txt, and what report.html embeds).
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "snapshot ({}) at {:.3}s{}",
            self.reason,
            self.at_ms as f64 / 1000.0,
            if self.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", self.detail)
            }
        );
        let _ = writeln!(o, "threads stopped at most {} µs", self.max_pause_us);
        for n in &self.notes {
            let _ = writeln!(o, "note: {n}");
        }
        for n in &self.nodes {
            let _ = writeln!(o, "\n== node {} ==", n.name);
            if n.processes.is_empty() {
                let _ = writeln!(o, "  (no process)");
            }
            for p in &n.processes {
                let _ = writeln!(o, "process {} `{}`", p.pid, p.command.join(" "));
                if let Some(m) = &p.memory {
                    let _ = writeln!(
                        o,
                        "  memory: rss {} KiB (anon {}, file {}), peak rss {} KiB, virtual {} KiB, swap {} KiB",
                        m.vm_rss_kib, m.rss_anon_kib, m.rss_file_kib, m.vm_hwm_kib, m.vm_size_kib, m.vm_swap_kib
                    );
                }
                for t in &p.threads {
                    let mut line = format!("  thread {} ({}) {}", t.tid, t.name, t.state);
                    if let Some(s) = &t.syscall {
                        let _ = write!(line, " in {s}");
                    }
                    if let Some(w) = &t.wchan {
                        let _ = write!(line, " wchan {w}");
                    }
                    let _ = write!(line, " cpu {} ms", t.cpu_ms);
                    if let Some(tr) = &t.tracer {
                        let _ = write!(line, " [tracer: {tr}]");
                    }
                    if let Some(c) = &t.in_traced_call {
                        let _ = write!(line, " [traced call: {c}]");
                    }
                    let _ = writeln!(o, "{line}");
                    for (i, f) in t.stack.iter().enumerate() {
                        let _ = writeln!(o, "    #{i:<2} {f}");
                    }
                    if let Some(n) = &t.stack_note {
                        let _ = writeln!(o, "    ({n})");
                    }
                }
                if !p.fds.is_empty() {
                    let _ = writeln!(o, "  fds:");
                }
                for f in &p.fds {
                    match &f.socket {
                        Some(s) => {
                            let _ = writeln!(
                                o,
                                "    {:>4} {} {} → {}{}{}",
                                f.fd,
                                s.proto,
                                s.local.as_deref().unwrap_or("?"),
                                s.remote.as_deref().unwrap_or("-"),
                                s.state
                                    .as_deref()
                                    .map(|x| format!(" {x}"))
                                    .unwrap_or_default(),
                                s.peer_node
                                    .as_deref()
                                    .map(|x| format!(" (peer {x})"))
                                    .unwrap_or_default()
                            );
                        }
                        None => {
                            let _ = writeln!(o, "    {:>4} {}", f.fd, f.target);
                        }
                    }
                }
            }
        }
        if !self.dumps.is_empty() {
            let _ = writeln!(o, "\ndumps:");
            for d in &self.dumps {
                let _ = writeln!(o, "  {d}");
            }
        }
        o
    }
}

/// Groups processes per node in the order given.
pub fn group_nodes(procs: Vec<(String, ProcSnap)>) -> Vec<NodeSnap> {
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<String, Vec<ProcSnap>> = BTreeMap::new();
    for (n, p) in procs {
        if !by.contains_key(&n) {
            order.push(n.clone());
        }
        by.entry(n).or_default().push(p);
    }
    order
        .into_iter()
        .map(|n| NodeSnap {
            processes: by.remove(&n).unwrap_or_default(),
            name: n,
        })
        .collect()
}
