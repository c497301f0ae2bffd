//! Readers of what /proc tells about a process and its threads: state, the system call a
//! thread is in, wchan, CPU time, fds (sockets with their addresses), memory figures and
//! mappings. Every reader returns `None`/empty for a process that is gone: a snapshot
//! describes what could be read.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

// The readers the tracer needs too live in ordeal-sys.
pub use ordeal_sys::proc::{cmdline, parse_stat, task_stat, tasks, TaskStat};

/// Clock ticks per second of /proc CPU times.
pub fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// The system call a thread is blocked in, from /proc/PID/task/TID/syscall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallInfo {
    /// Number, or `None` when the thread is running (`running`) or not in a call (`-1`).
    pub nr: Option<i64>,
    pub args: Vec<u64>,
    pub sp: Option<u64>,
    pub pc: Option<u64>,
}

pub fn parse_syscall(text: &str) -> Option<SyscallInfo> {
    let t = text.trim();
    if t == "running" {
        return Some(SyscallInfo {
            nr: None,
            args: vec![],
            sp: None,
            pc: None,
        });
    }
    let parts: Vec<&str> = t.split_whitespace().collect();
    let nr: i64 = parts.first()?.parse().ok()?;
    let hex = |s: &&str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let vals: Vec<u64> = parts.iter().skip(1).filter_map(hex).collect();
    if nr < 0 {
        return Some(SyscallInfo {
            nr: None,
            args: vec![],
            sp: vals.first().copied(),
            pc: vals.get(1).copied(),
        });
    }
    Some(SyscallInfo {
        nr: Some(nr),
        args: vals.iter().take(6).copied().collect(),
        sp: vals.get(6).copied(),
        pc: vals.get(7).copied(),
    })
}

pub fn task_syscall(pid: i32, tid: i32) -> Option<SyscallInfo> {
    parse_syscall(&std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).ok()?)
}

pub fn task_wchan(pid: i32, tid: i32) -> Option<String> {
    let w = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/wchan")).ok()?;
    let w = w.trim();
    (!w.is_empty() && w != "0").then(|| w.to_string())
}

pub fn exe(pid: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Memory figures from /proc/PID/status, in KiB.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    pub vm_size_kib: u64,
    pub vm_rss_kib: u64,
    pub vm_hwm_kib: u64,
    pub rss_anon_kib: u64,
    pub rss_file_kib: u64,
    pub vm_data_kib: u64,
    pub vm_stk_kib: u64,
    pub vm_swap_kib: u64,
    pub threads: u64,
}

pub fn parse_status_memory(text: &str) -> Memory {
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        vm_size_kib: field("VmSize:"),
        vm_rss_kib: field("VmRSS:"),
        vm_hwm_kib: field("VmHWM:"),
        rss_anon_kib: field("RssAnon:"),
        rss_file_kib: field("RssFile:"),
        vm_data_kib: field("VmData:"),
        vm_stk_kib: field("VmStk:"),
        vm_swap_kib: field("VmSwap:"),
        threads: field("Threads:"),
    }
}

pub fn memory(pid: i32) -> Option<Memory> {
    Some(parse_status_memory(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
    ))
}

/// One line of /proc/PID/maps (with the flags of /proc/PID/smaps that decide dumping).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub offset: u64,
    pub inode: u64,
    pub path: String,
}

impl Mapping {
    pub fn readable(&self) -> bool {
        self.perms.starts_with('r')
    }
    pub fn executable(&self) -> bool {
        self.perms.as_bytes().get(2) == Some(&b'x')
    }
    pub fn shared(&self) -> bool {
        self.perms.as_bytes().get(3) == Some(&b's')
    }
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
    /// Backed by a file (not anonymous, not a `[pseudo]` mapping, not deleted).
    pub fn file_backed(&self) -> bool {
        self.path.starts_with('/') && self.inode != 0
    }
}

pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(6, char::is_whitespace);
            let range = it.next()?;
            let perms = it.next()?.to_string();
            let offset = u64::from_str_radix(it.next()?, 16).ok()?;
            let _dev = it.next()?;
            let inode: u64 = it.next()?.parse().ok()?;
            let path = it.next().unwrap_or("").trim().to_string();
            let (s, e) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(s, 16).ok()?,
                end: u64::from_str_radix(e, 16).ok()?,
                perms,
                offset,
                inode,
                path,
            })
        })
        .collect()
}

pub fn maps(pid: i32) -> Vec<Mapping> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map(|t| parse_maps(&t))
        .unwrap_or_default()
}

/// A socket's kernel view, from /proc/PID/net/{tcp,tcp6,udp,udp6,unix}.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SockEntry {
    pub proto: String,
    pub local: Option<String>,
    pub remote: Option<String>,
    pub state: Option<String>,
}

fn tcp_state(code: &str) -> &'static str {
    match code {
        "01" => "ESTABLISHED",
        "02" => "SYN_SENT",
        "03" => "SYN_RECV",
        "04" => "FIN_WAIT1",
        "05" => "FIN_WAIT2",
        "06" => "TIME_WAIT",
        "07" => "CLOSE",
        "08" => "CLOSE_WAIT",
        "09" => "LAST_ACK",
        "0A" => "LISTEN",
        "0B" => "CLOSING",
        _ => "?",
    }
}

/// `0100007F:1F90` → `127.0.0.1:8080`; IPv6 in the kernel's four-word order.
fn parse_hex_addr(s: &str) -> Option<String> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    match a.len() {
        8 => {
            let v = u32::from_str_radix(a, 16).ok()?;
            let ip = std::net::Ipv4Addr::from(v.to_le_bytes());
            Some(format!("{ip}:{port}"))
        }
        32 => {
            let mut bytes = [0u8; 16];
            for w in 0..4 {
                let v = u32::from_str_radix(a.get(w * 8..w * 8 + 8)?, 16).ok()?;
                bytes[w * 4..w * 4 + 4].copy_from_slice(&v.to_le_bytes());
            }
            let ip = std::net::Ipv6Addr::from(bytes);
            match ip.to_ipv4_mapped() {
                Some(v4) => Some(format!("{v4}:{port}")),
                None => Some(format!("[{ip}]:{port}")),
            }
        }
        _ => None,
    }
}

/// Parses one /proc/net/{tcp,udp}[6] table into inode → entry.
pub fn parse_inet_table(text: &str, proto: &str, out: &mut HashMap<u64, SockEntry>) {
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (Some(local), Some(remote), Some(st), Some(ino)) =
            (f.get(1), f.get(2), f.get(3), f.get(9))
        else {
            continue;
        };
        let Ok(ino) = ino.parse::<u64>() else {
            continue;
        };
        if ino == 0 {
            continue;
        }
        let remote = parse_hex_addr(remote).filter(|r| !r.ends_with(":0"));
        out.insert(
            ino,
            SockEntry {
                proto: proto.to_string(),
                local: parse_hex_addr(local),
                remote,
                state: (proto.starts_with("tcp")).then(|| tcp_state(st).to_string()),
            },
        );
    }
}

fn parse_unix_table(text: &str, out: &mut HashMap<u64, SockEntry>) {
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let Some(Ok(ino)) = f.get(6).map(|s| s.parse::<u64>()) else {
            continue;
        };
        out.insert(
            ino,
            SockEntry {
                proto: "unix".into(),
                local: f.get(7).map(|s| s.to_string()),
                remote: None,
                state: None,
            },
        );
    }
}

/// Every socket the network namespace of `pid` knows, by inode.
pub fn sockets(pid: i32) -> HashMap<u64, SockEntry> {
    let mut out = HashMap::new();
    for proto in ["tcp", "tcp6", "udp", "udp6"] {
        if let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/net/{proto}")) {
            parse_inet_table(&t, proto.trim_end_matches('6'), &mut out);
        }
    }
    if let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/net/unix")) {
        parse_unix_table(&t, &mut out);
    }
    out
}

/// An open fd: `target` is the link text (`/path`, `socket:[123]`, `pipe:[9]`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdEntry {
    pub fd: i32,
    pub target: String,
    pub socket_ino: Option<u64>,
}

pub fn fds(pid: i32) -> Vec<FdEntry> {
    let mut v: Vec<FdEntry> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| {
                let e = e.ok()?;
                let fd: i32 = e.file_name().to_str()?.parse().ok()?;
                let target = std::fs::read_link(e.path()).ok()?;
                let target = target.to_string_lossy().into_owned();
                let socket_ino = ordeal_sys::proc::socket_inode(&target);
                Some(FdEntry {
                    fd,
                    target,
                    socket_ino,
                })
            })
            .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|f| f.fd);
    v
}

/// /proc/PID/coredump_filter (default 0x33 when unreadable).
pub fn coredump_filter(pid: i32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/coredump_filter"))
        .ok()
        .and_then(|s| u32::from_str_radix(s.trim(), 16).ok())
        .unwrap_or(0x33)
}

/// Free bytes available to an unprivileged writer (`f_bavail`) on the filesystem of `path`.
pub fn free_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path contains a NUL byte"))?;
    // SAFETY: statvfs into a zeroed local struct with a NUL-terminated path.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(st.f_bavail as u64 * st.f_frsize as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_lines() {
        let s = parse_syscall("202 0x7f 0x80 0x2 0x0 0x0 0x0 0x7ffd1000 0x7f001234\n").unwrap();
        assert_eq!(s.nr, Some(202));
        assert_eq!(s.args.len(), 6);
        assert_eq!(s.sp, Some(0x7ffd1000));
        assert_eq!(s.pc, Some(0x7f001234));
        assert_eq!(parse_syscall("running").unwrap().nr, None);
        assert_eq!(parse_syscall("-1 0x7ffd 0x4000").unwrap().pc, Some(0x4000));
    }

    #[test]
    fn inet_tables() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 1234 1 0 20 4 30 10 -1\n";
        let mut m = HashMap::new();
        parse_inet_table(t, "tcp", &mut m);
        let e = &m[&1234];
        assert_eq!(e.local.as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(e.remote.as_deref(), Some("127.0.0.1:50000"));
        assert_eq!(e.state.as_deref(), Some("ESTABLISHED"));
    }

    #[test]
    fn maps_lines() {
        let m = parse_maps("55d0-55e0 r-xp 00001000 08:01 1234 /usr/bin/x y\n7ffd-7ffe rw-p 00000000 00:00 0 [stack]\n");
        assert_eq!(m.len(), 2);
        assert!(m[0].executable() && m[0].file_backed());
        assert_eq!(m[0].path, "/usr/bin/x y");
        assert_eq!(m[1].path, "[stack]");
        assert!(!m[1].file_backed());
    }
}
