//! A minimal HTTP/1.1 client (POST with a JSON body, keep-alive, `Content-Length` or chunked
//! responses) and base64, for etcd's JSON gateway.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

/// A failed request: whether it may have reached the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Nothing was sent (connection refused, timeout before sending).
    NotSent(String),
    /// The request may have arrived; no complete response.
    Lost(String),
}

/// One keep-alive connection to `addr`, opened on demand.
pub struct HttpConn {
    addr: SocketAddr,
    conn: Option<(TcpStream, BufReader<TcpStream>)>,
}

const MAX_BODY: usize = 16 * 1024 * 1024;

fn invalid(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

fn line(r: &mut impl BufRead) -> std::io::Result<String> {
    let mut buf = Vec::new();
    r.by_ref().take(16 * 1024).read_until(b'\n', &mut buf)?;
    if buf.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed mid-response",
        ));
    }
    Ok(String::from_utf8_lossy(&buf).trim_end().to_string())
}

/// Reads a response: status code, body, and whether the server keeps the connection.
pub fn read_response(r: &mut impl BufRead) -> std::io::Result<(u16, Vec<u8>, bool)> {
    let status = line(r)?;
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| invalid(format!("bad status line {status:?}")))?;
    let (mut length, mut chunked, mut keep) = (None, false, true);
    loop {
        let h = line(r)?;
        if h.is_empty() {
            break;
        }
        let Some((name, value)) = h.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => {
                length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| invalid(format!("bad content-length {value:?}")))?,
                )
            }
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => keep = !value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let size = line(r)?;
            let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| invalid(format!("bad chunk size {size:?}")))?;
            if size == 0 {
                // Trailers, then the blank line.
                while !line(r)?.is_empty() {}
                break;
            }
            if body.len() + size > MAX_BODY {
                return Err(invalid("response body too large"));
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            line(r)?;
        }
    } else if let Some(n) = length {
        if n > MAX_BODY {
            return Err(invalid("response body too large"));
        }
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.take(MAX_BODY as u64).read_to_end(&mut body)?;
        keep = false;
    }
    Ok((code, body, keep))
}

impl HttpConn {
    /// A connection to `addr` (not opened yet).
    pub fn new(addr: SocketAddr) -> HttpConn {
        HttpConn { addr, conn: None }
    }

    /// POSTs `body` (JSON) to `path`, all within `deadline`.
    pub fn post(
        &mut self,
        path: &str,
        body: &[u8],
        deadline: Instant,
    ) -> Result<(u16, Vec<u8>), HttpError> {
        let left = || super::left(deadline).ok_or_else(|| HttpError::NotSent("timeout".into()));
        if self.conn.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, left()?)
                .map_err(|e| HttpError::NotSent(e.to_string()))?;
            let _ = s.set_nodelay(true);
            let r = s
                .try_clone()
                .map_err(|e| HttpError::NotSent(e.to_string()))?;
            self.conn = Some((s, BufReader::new(r)));
        }
        let l = left()?;
        let Some((s, r)) = self.conn.as_mut() else {
            return Err(HttpError::NotSent("no connection".into()));
        };
        if s.set_read_timeout(Some(l)).is_err() || s.set_write_timeout(Some(l)).is_err() {
            self.conn = None;
            return Err(HttpError::NotSent("socket setup failed".into()));
        }
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        if let Err(e) = s.write_all(&req) {
            self.conn = None;
            return Err(HttpError::Lost(e.to_string()));
        }
        match read_response(r) {
            Ok((code, body, keep)) => {
                if !keep {
                    self.conn = None;
                }
                Ok((code, body))
            }
            Err(e) => {
                self.conn = None;
                Err(HttpError::Lost(e.to_string()))
            }
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional); `None` if invalid.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("k12", "azEy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), coded);
            assert_eq!(base64_decode(coded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64_decode("a*"), None);
    }

    #[test]
    fn responses_with_length_or_chunks() {
        let mut r: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(read_response(&mut r).unwrap(), (200, b"{}".to_vec(), true));
        assert_eq!(
            read_response(&mut r).unwrap(),
            (404, b"abcde".to_vec(), false)
        );
        assert_eq!(
            read_response(&mut r).unwrap_err().kind(),
            std::io::ErrorKind::UnexpectedEof
        );
    }
}
