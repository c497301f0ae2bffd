//! Socket address normalisation and the address → node map.
//!
//! Addresses come from the tracer as `ip:port`, `[ipv6]:port` or a Unix path. Two spellings of
//! the same IPv4 endpoint are common on dual-stack hosts (`[::ffff:127.0.0.1]:7000` seen by an
//! IPv6 server, `127.0.0.1:7000` seen by an IPv4 client), so every comparison goes through
//! [`norm_addr`]. A wildcard host (`0.0.0.0`, `::`) on a listening socket matches any host with
//! the same port.

use std::collections::HashMap;

/// Canonical spelling of an address: IPv4-mapped IPv6 addresses become plain IPv4, IPv6 hosts
/// are lower-cased. Unix paths and anything unparsable are returned unchanged.
pub fn norm_addr(addr: &str) -> String {
    match split_host_port(addr) {
        Some((host, port)) => {
            let host = norm_host(host);
            if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        }
        None => addr.to_string(),
    }
}

fn norm_host(host: &str) -> String {
    let lower = host.to_ascii_lowercase();
    if let Some(v4) = lower.strip_prefix("::ffff:") {
        if v4.contains('.') {
            return v4.to_string();
        }
    }
    lower
}

/// Splits `ip:port` / `[ip6]:port` into host and port. Returns `None` for Unix paths.
pub fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    if let Some(rest) = addr.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        return Some((host, port.parse().ok()?));
    }
    let (host, port) = addr.rsplit_once(':')?;
    if host.contains(':') || host.contains('/') || host.starts_with('@') {
        return None;
    }
    Some((host, port.parse().ok()?))
}

/// Whether `host` is a wildcard (unspecified) address.
pub fn is_wildcard(host: &str) -> bool {
    matches!(host, "0.0.0.0" | "::" | "*" | "" | "::ffff:0.0.0.0")
}

/// Whether an address is only a placeholder: wildcard host or port 0 (an unbound or not yet
/// connected socket).
pub fn is_unspecified(addr: &str) -> bool {
    match split_host_port(addr) {
        Some((host, port)) => port == 0 || is_wildcard(&norm_host(host)),
        None => addr.is_empty(),
    }
}

/// Whether two addresses can name the same endpoint: equal once normalised, or equal ports with
/// at least one wildcard host.
pub fn addr_compatible(a: &str, b: &str) -> bool {
    match (split_host_port(a), split_host_port(b)) {
        (Some((ha, pa)), Some((hb, pb))) => {
            pa == pb && {
                let (ha, hb) = (norm_host(ha), norm_host(hb));
                ha == hb || is_wildcard(&ha) || is_wildcard(&hb)
            }
        }
        (None, None) => a == b,
        _ => false,
    }
}

/// Which node owns which address, learnt from `bind`/`listen` events and the ports the header
/// allocated to each node.
#[derive(Debug, Clone, Default)]
pub struct AddrMap {
    /// Normalised concrete address (or Unix path) → node.
    exact: HashMap<String, String>,
    /// Port of a wildcard-bound socket → node.
    wildcard: HashMap<u16, String>,
    /// Port allocated in the header → node.
    header: HashMap<u16, String>,
}

impl AddrMap {
    /// Records that `node` bound or listened on `addr`. The first owner of an address wins.
    pub fn add_listen(&mut self, addr: &str, node: &str) {
        match split_host_port(addr) {
            Some((_, 0)) => {}
            Some((host, port)) if is_wildcard(&norm_host(host)) => {
                self.wildcard
                    .entry(port)
                    .or_insert_with(|| node.to_string());
            }
            _ => {
                self.exact
                    .entry(norm_addr(addr))
                    .or_insert_with(|| node.to_string());
            }
        }
    }

    /// Records a port allocated to `node` by the experiment header.
    pub fn add_header_port(&mut self, port: u16, node: &str) {
        self.header.entry(port).or_insert_with(|| node.to_string());
    }

    /// The node owning `addr`: an exact listening address first, then a wildcard listener on
    /// the same port, then a port the header allocated.
    pub fn lookup(&self, addr: &str) -> Option<&str> {
        if let Some(n) = self.exact.get(&norm_addr(addr)) {
            return Some(n);
        }
        let (_, port) = split_host_port(addr)?;
        self.wildcard
            .get(&port)
            .or_else(|| self.header.get(&port))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_mapped_ipv4_and_keeps_paths() {
        assert_eq!(norm_addr("[::ffff:127.0.0.1]:7000"), "127.0.0.1:7000");
        assert_eq!(norm_addr("[::1]:80"), "[::1]:80");
        assert_eq!(norm_addr("/tmp/x.sock"), "/tmp/x.sock");
        assert_eq!(norm_addr("@abstract"), "@abstract");
        assert_eq!(split_host_port("/tmp/a:1"), None);
    }

    #[test]
    fn wildcard_hosts_match_by_port() {
        assert!(addr_compatible("0.0.0.0:9000", "127.0.0.1:9000"));
        assert!(addr_compatible("[::ffff:127.0.0.1]:9", "127.0.0.1:9"));
        assert!(!addr_compatible("127.0.0.1:9000", "127.0.0.2:9000"));
        assert!(!addr_compatible("0.0.0.0:9000", "127.0.0.1:9001"));
    }

    #[test]
    fn lookup_prefers_exact_then_wildcard_then_header() {
        let mut m = AddrMap::default();
        m.add_header_port(7000, "h");
        m.add_listen("0.0.0.0:7000", "w");
        m.add_listen("127.0.0.1:7000", "x");
        m.add_listen("/run/s.sock", "u");
        assert_eq!(m.lookup("127.0.0.1:7000"), Some("x"));
        assert_eq!(m.lookup("10.0.0.1:7000"), Some("w"));
        assert_eq!(m.lookup("/run/s.sock"), Some("u"));
        m.add_header_port(7001, "h");
        assert_eq!(m.lookup("127.0.0.1:7001"), Some("h"));
        assert_eq!(m.lookup("127.0.0.1:7002"), None);
    }
}
