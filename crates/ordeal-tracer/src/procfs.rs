//! What the kernel knows about a tracee's fds and sockets, read from /proc.
//!
//! Sockets are identified by inode (`/proc/PID/fd/N -> socket:[INODE]`) and their addresses
//! come from the tracee's own network namespace (`/proc/PID/net/{tcp,tcp6,udp,udp6,unix}`), so
//! nothing is injected into the tracee (Box of Pain injects getsockname instead).

use ordeal_events::Proto;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// What an fd number refers to, as resolved from /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdTarget {
    Socket(u64),
    Path(PathBuf),
    Other,
}

pub fn fd_target(pid: i32, fd: i32) -> Option<FdTarget> {
    let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    let s = link.to_string_lossy();
    if let Some(rest) = s.strip_prefix("socket:[") {
        return rest
            .trim_end_matches(']')
            .parse()
            .ok()
            .map(FdTarget::Socket);
    }
    if s.starts_with('/') && !s.ends_with(" (deleted)") {
        return Some(FdTarget::Path(link));
    }
    Some(FdTarget::Other)
}

pub fn cwd(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// A socket found in the namespace's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SockAddrs {
    pub proto: Proto,
    pub local: Option<String>,
    pub remote: Option<String>,
}

/// Looks up a socket inode. `hint` narrows the search to one protocol when known.
pub fn socket_addrs(pid: i32, ino: u64, hint: Option<Proto>) -> Option<SockAddrs> {
    let tables: &[(&str, Proto)] = match hint {
        Some(Proto::Tcp) => &[("tcp", Proto::Tcp), ("tcp6", Proto::Tcp)],
        Some(Proto::Udp) => &[("udp", Proto::Udp), ("udp6", Proto::Udp)],
        Some(Proto::Unix) => &[("unix", Proto::Unix)],
        _ => &[
            ("tcp", Proto::Tcp),
            ("tcp6", Proto::Tcp),
            ("udp", Proto::Udp),
            ("udp6", Proto::Udp),
            ("unix", Proto::Unix),
        ],
    };
    for (name, proto) in tables {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{name}")) else {
            continue;
        };
        let found = if *proto == Proto::Unix {
            find_unix(&text, ino)
        } else {
            find_inet(&text, ino)
        };
        if let Some((local, remote)) = found {
            return Some(SockAddrs {
                proto: *proto,
                local,
                remote,
            });
        }
    }
    None
}

/// Parses `/proc/net/tcp`-style tables; returns (local, remote) of the socket with `ino`.
/// The remote is None when it is the wildcard (listening or unconnected UDP).
pub fn find_inet(text: &str, ino: u64) -> Option<(Option<String>, Option<String>)> {
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || f[9].parse::<u64>().ok() != Some(ino) {
            continue;
        }
        let local = parse_hex_addr(f[1]);
        let remote = parse_hex_addr(f[2]).filter(|r| !r.ends_with(":0"));
        return Some((local, remote));
    }
    None
}

/// Inode of the TCP socket whose (local, remote) are exactly the given addresses: the other
/// end of a loopback connection, as seen from its own side.
pub fn tcp_ino_by_addrs(pid: i32, local: &str, remote: &str) -> Option<u64> {
    for name in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{name}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            if parse_hex_addr(f[1]).as_deref() == Some(local)
                && parse_hex_addr(f[2]).as_deref() == Some(remote)
            {
                return f[9].parse().ok();
            }
        }
    }
    None
}

fn parse_hex_addr(s: &str) -> Option<String> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    match ip.len() {
        8 => {
            let v = u32::from_str_radix(ip, 16).ok()?;
            // The word is the address in network byte order read as a little-endian number.
            Some(format!("{}:{port}", Ipv4Addr::from(v.to_le_bytes())))
        }
        32 => {
            // Four 32-bit words, each in host (little-endian) byte order.
            let mut bytes = [0u8; 16];
            for w in 0..4 {
                let v = u32::from_str_radix(&ip[w * 8..w * 8 + 8], 16).ok()?;
                bytes[w * 4..w * 4 + 4].copy_from_slice(&v.to_le_bytes());
            }
            let a = Ipv6Addr::from(bytes);
            Some(match a.to_ipv4_mapped() {
                Some(v4) => format!("{v4}:{port}"),
                None => format!("[{a}]:{port}"),
            })
        }
        _ => None,
    }
}

/// `/proc/net/unix`: `Num RefCount Protocol Flags Type St Inode [Path]`.
pub fn find_unix(text: &str, ino: u64) -> Option<(Option<String>, Option<String>)> {
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 7 || f[6].parse::<u64>().ok() != Some(ino) {
            continue;
        }
        return Some((f.get(7).map(|p| p.to_string()), None));
    }
    None
}

/// `Tgid` and `PPid` of a task, from /proc/TID/status.
pub fn tgid_ppid(tid: i32) -> Option<(i32, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    Some((field("Tgid:")?, field("PPid:")?))
}

pub fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1
";

    #[test]
    fn parses_ipv4_listening_and_connected() {
        assert_eq!(
            find_inet(TCP, 4242),
            Some((Some("127.0.0.1:8080".into()), None))
        );
        assert_eq!(
            find_inet(TCP, 4343),
            Some((
                Some("127.0.0.1:40000".into()),
                Some("127.0.0.1:8080".into())
            ))
        );
        assert_eq!(find_inet(TCP, 1), None);
    }

    #[test]
    fn parses_ipv6_loopback_and_mapped() {
        assert_eq!(
            parse_hex_addr("00000000000000000000000001000000:1F90").as_deref(),
            Some("[::1]:8080")
        );
        assert_eq!(
            parse_hex_addr("0000000000000000FFFF00000100007F:0050").as_deref(),
            Some("127.0.0.1:80")
        );
    }

    #[test]
    fn parses_unix_paths() {
        let t = "Num       RefCount Protocol Flags    Type St Inode Path\n\
                 0000000000000000: 00000002 00000000 00010000 0001 01 777 /tmp/s.sock\n\
                 0000000000000000: 00000003 00000000 00000000 0001 03 778\n";
        assert_eq!(find_unix(t, 777), Some((Some("/tmp/s.sock".into()), None)));
        assert_eq!(find_unix(t, 778), Some((None, None)));
    }

    #[test]
    fn resolves_own_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        use std::os::fd::AsRawFd;
        let me = std::process::id() as i32;
        let Some(FdTarget::Socket(ino)) = fd_target(me, l.as_raw_fd()) else {
            panic!("not a socket")
        };
        let a = socket_addrs(me, ino, None).unwrap();
        assert_eq!(a.proto, Proto::Tcp);
        assert_eq!(a.local, Some(format!("127.0.0.1:{port}")));
        assert_eq!(a.remote, None);
    }
}
