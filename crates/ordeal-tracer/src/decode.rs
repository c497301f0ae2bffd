//! Decoding of system-call arguments read from tracee memory.

/// Renders a `struct sockaddr` as ordeal writes addresses: `ip:port`, `[ip6]:port`, a Unix
/// path, or `@name` for an abstract Unix socket.
pub fn sockaddr(b: &[u8]) -> Option<String> {
    if b.len() < 2 {
        return None;
    }
    let family = u16::from_ne_bytes([b[0], b[1]]) as i32;
    match family {
        libc::AF_INET if b.len() >= 8 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            Some(format!("{}.{}.{}.{}:{port}", b[4], b[5], b[6], b[7]))
        }
        libc::AF_INET6 if b.len() >= 24 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[8..24]);
            let ip = std::net::Ipv6Addr::from(a);
            Some(match ip.to_ipv4_mapped() {
                Some(v4) => format!("{v4}:{port}"),
                None => format!("[{ip}]:{port}"),
            })
        }
        libc::AF_UNIX => {
            let path = &b[2..];
            if path.is_empty() {
                return Some("(unnamed)".into());
            }
            if path[0] == 0 {
                let name: Vec<u8> = path[1..].to_vec();
                return Some(format!("@{}", String::from_utf8_lossy(&name)));
            }
            let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
            Some(String::from_utf8_lossy(&path[..end]).into_owned())
        }
        f => Some(format!("(family {f})")),
    }
}

fn flag_names(v: u64, table: &[(u64, &str)]) -> String {
    let mut out = Vec::new();
    let mut rest = v;
    for &(bit, name) in table {
        if bit != 0 && v & bit == bit {
            out.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        out.push(format!("{rest:#x}"));
    }
    out.join("|")
}

/// `O_WRONLY|O_CREAT|O_TRUNC`-style rendering of open(2) flags.
pub fn open_flags(v: u64) -> String {
    let acc = match v & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    };
    let rest = flag_names(
        v & !3,
        &[
            (libc::O_CREAT as u64, "O_CREAT"),
            (libc::O_EXCL as u64, "O_EXCL"),
            (libc::O_TRUNC as u64, "O_TRUNC"),
            (libc::O_APPEND as u64, "O_APPEND"),
            (libc::O_NONBLOCK as u64, "O_NONBLOCK"),
            // O_SYNC contains O_DSYNC's bit: list it first so it wins.
            (libc::O_SYNC as u64, "O_SYNC"),
            (libc::O_DSYNC as u64, "O_DSYNC"),
            (libc::O_DIRECTORY as u64, "O_DIRECTORY"),
            (libc::O_CLOEXEC as u64, "O_CLOEXEC"),
            (libc::O_DIRECT as u64, "O_DIRECT"),
            (libc::O_NOFOLLOW as u64, "O_NOFOLLOW"),
            (
                libc::O_TMPFILE as u64 & !(libc::O_DIRECTORY as u64),
                "O_TMPFILE",
            ),
            (libc::O_LARGEFILE as u64, "O_LARGEFILE"),
            (libc::O_NOATIME as u64, "O_NOATIME"),
            (libc::O_PATH as u64, "O_PATH"),
        ],
    );
    if rest.is_empty() {
        acc.into()
    } else {
        format!("{acc}|{rest}")
    }
}

/// `renameat2(2)` flags.
pub fn rename_flags(v: u64) -> String {
    flag_names(
        v,
        &[
            (1, "RENAME_NOREPLACE"),
            (2, "RENAME_EXCHANGE"),
            (4, "RENAME_WHITEOUT"),
        ],
    )
}

/// `msync(2)` flags.
pub fn msync_flags(v: u64) -> String {
    flag_names(
        v,
        &[
            (libc::MS_ASYNC as u64, "MS_ASYNC"),
            (libc::MS_INVALIDATE as u64, "MS_INVALIDATE"),
            (libc::MS_SYNC as u64, "MS_SYNC"),
        ],
    )
}

/// `fallocate(2)` modes.
pub fn fallocate_mode(v: u64) -> String {
    flag_names(
        v,
        &[
            (0x01, "FALLOC_FL_KEEP_SIZE"),
            (0x02, "FALLOC_FL_PUNCH_HOLE"),
            (0x08, "FALLOC_FL_COLLAPSE_RANGE"),
            (0x10, "FALLOC_FL_ZERO_RANGE"),
            (0x20, "FALLOC_FL_INSERT_RANGE"),
            (0x40, "FALLOC_FL_UNSHARE_RANGE"),
        ],
    )
}

pub fn shutdown_how(v: u64) -> String {
    match v as i32 {
        libc::SHUT_RD => "SHUT_RD".into(),
        libc::SHUT_WR => "SHUT_WR".into(),
        libc::SHUT_RDWR => "SHUT_RDWR".into(),
        x => x.to_string(),
    }
}

pub fn socket_type(domain: u64, ty: u64) -> String {
    let d = match domain as i32 {
        libc::AF_INET => "AF_INET",
        libc::AF_INET6 => "AF_INET6",
        libc::AF_UNIX => "AF_UNIX",
        libc::AF_NETLINK => "AF_NETLINK",
        _ => "AF_?",
    };
    let t = match (ty & 0xf) as i32 {
        libc::SOCK_STREAM => "SOCK_STREAM",
        libc::SOCK_DGRAM => "SOCK_DGRAM",
        libc::SOCK_SEQPACKET => "SOCK_SEQPACKET",
        libc::SOCK_RAW => "SOCK_RAW",
        _ => "SOCK_?",
    };
    let extra = flag_names(
        ty & !0xf,
        &[
            (libc::SOCK_NONBLOCK as u64, "SOCK_NONBLOCK"),
            (libc::SOCK_CLOEXEC as u64, "SOCK_CLOEXEC"),
        ],
    );
    if extra.is_empty() {
        format!("{d}|{t}")
    } else {
        format!("{d}|{t}|{extra}")
    }
}

pub fn accept_flags(v: u64) -> String {
    flag_names(
        v,
        &[
            (libc::SOCK_NONBLOCK as u64, "SOCK_NONBLOCK"),
            (libc::SOCK_CLOEXEC as u64, "SOCK_CLOEXEC"),
        ],
    )
}

/// Symbolic errno name (`ECONNREFUSED`) for a negative return value.
pub fn errno_name(ret: i64) -> Option<String> {
    if ret >= 0 {
        return None;
    }
    Some(format!("{:?}", nix::errno::Errno::from_raw((-ret) as i32)))
}

pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("SIG{sig}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_inet_and_unix_sockaddrs() {
        let mut v4 = vec![libc::AF_INET as u8, 0, 0x1f, 0x90, 127, 0, 0, 1];
        v4.extend([0; 8]);
        assert_eq!(sockaddr(&v4).as_deref(), Some("127.0.0.1:8080"));
        let mut un = vec![libc::AF_UNIX as u8, 0];
        un.extend(b"/tmp/x.sock\0garbage");
        assert_eq!(sockaddr(&un).as_deref(), Some("/tmp/x.sock"));
        let mut abs = vec![libc::AF_UNIX as u8, 0, 0];
        abs.extend(b"name");
        assert_eq!(sockaddr(&abs).as_deref(), Some("@name"));
        let mut v6 = vec![libc::AF_INET6 as u8, 0, 0, 80, 0, 0, 0, 0];
        let mut ip = [0u8; 16];
        ip[15] = 1;
        v6.extend(ip);
        assert_eq!(sockaddr(&v6).as_deref(), Some("[::1]:80"));
    }

    #[test]
    fn decodes_flags() {
        let f = (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC) as u64;
        assert_eq!(open_flags(f), "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC");
        assert_eq!(open_flags(libc::O_RDONLY as u64), "O_RDONLY");
        assert_eq!(errno_name(-111).as_deref(), Some("ECONNREFUSED"));
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(
            socket_type(2, (libc::SOCK_STREAM | libc::SOCK_CLOEXEC) as u64),
            "AF_INET|SOCK_STREAM|SOCK_CLOEXEC"
        );
    }
}
