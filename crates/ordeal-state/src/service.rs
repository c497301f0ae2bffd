//! The checkpoint service: a Unix socket any process can ask for a checkpoint, and its client.
//!
//! Protocol (docs/checkpoints.md): one request per line, one reply line per request, several
//! requests per connection allowed.
//!
//! ```text
//! checkpoint [LABEL]   →  ok ID        the capture is done when the reply comes
//! watch ABSOLUTE_PATH  →  ok           covered by the next checkpoint
//! ping                 →  ok
//! anything else        →  err REASON
//! ```
//!
//! The socket lives in a private directory (mode 0700) the server creates and removes when it
//! is dropped. Each connection has its own thread with an idle timeout, so a client that
//! connects and sends nothing holds only itself up; every checkpoint and watch goes through
//! one worker thread, so they are serialized in arrival order and a checkpoint never runs
//! while another does. Lines longer than the limit, non-UTF-8 lines and unknown requests get
//! `err ...`; a too-long line also closes its connection (its end cannot be trusted).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The environment variable that carries the socket's path to nodes and workloads.
pub const ENV: &str = "ORDEAL_CHECKPOINT_SOCKET";
/// Default longest request line, in bytes, newline excluded.
pub const MAX_LINE: usize = 4096;

/// What a checkpoint is and how it is stamped: the server's caller decides.
/// Calls come from the server's single worker thread, one at a time.
pub trait Capturer: Send + Sync + 'static {
    /// Takes a checkpoint; returns its id, or why it failed.
    fn checkpoint(&self, label: Option<&str>) -> Result<u64, CaptureError>;
    /// Records a watch on an absolute path (covered by the next checkpoint).
    fn watch(&self, path: &Path) -> Result<(), CaptureError>;
}

/// Why a checkpoint or a watch failed. Its text, on one line, is the reason the service
/// replies with (`err REASON`).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Capturing, writing or checking failed in this crate (a root that cannot be read, the
    /// checkpoint directory).
    #[error(transparent)]
    State(#[from] crate::Error),
    /// The capturer's own reason.
    #[error("{0}")]
    Failed(String),
}

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Where the private socket directory is created; default the system temp dir (socket
    /// paths are limited to 107 bytes, so a deep run directory would not do).
    pub parent: Option<PathBuf>,
    /// A connection with no complete request for this long is closed: the whole line must
    /// arrive within it (bytes trickling in do not extend it).
    pub idle_timeout: Duration,
    /// Longest request line accepted.
    pub max_line: usize,
    /// Connections served at once; more get `err too many connections`.
    pub max_connections: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            parent: None,
            idle_timeout: Duration::from_secs(60),
            max_line: MAX_LINE,
            max_connections: 256,
        }
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Checkpoint(Option<String>),
    Watch(PathBuf),
    Ping,
}

/// Why a request line is refused: its text is the reason of the `err REASON` reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request is not UTF-8")]
    NotUtf8,
    #[error("request has control characters")]
    ControlCharacters,
    #[error("empty request")]
    Empty,
    #[error("watch needs a path")]
    WatchWithoutPath,
    /// The relative path given.
    #[error("watch path must be absolute: {0}")]
    WatchPathNotAbsolute(String),
    #[error("ping takes no argument")]
    PingWithArgument,
    /// The request word, cut to its first 32 characters.
    #[error("unknown request {0:?}: expected checkpoint [label], watch <path> or ping")]
    Unknown(String),
}

/// Parses one request line (without its newline).
pub fn parse_request(line: &[u8]) -> Result<Request, RequestError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|_| RequestError::NotUtf8)?;
    let text = text.trim();
    let (word, rest) = match text.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (text, ""),
    };
    if rest.chars().any(char::is_control) {
        return Err(RequestError::ControlCharacters);
    }
    match word {
        "" => Err(RequestError::Empty),
        "checkpoint" => Ok(Request::Checkpoint(
            (!rest.is_empty()).then(|| rest.to_string()),
        )),
        "watch" if rest.is_empty() => Err(RequestError::WatchWithoutPath),
        "watch" if !rest.starts_with('/') => Err(RequestError::WatchPathNotAbsolute(rest.into())),
        "watch" => Ok(Request::Watch(PathBuf::from(rest))),
        "ping" if rest.is_empty() => Ok(Request::Ping),
        "ping" => Err(RequestError::PingWithArgument),
        other => Err(RequestError::Unknown(other.chars().take(32).collect())),
    }
}

struct Job {
    request: Request,
    reply: mpsc::Sender<String>,
}

/// A running checkpoint server. Dropping it stops it, waits for a checkpoint in progress,
/// and removes the socket directory.
pub struct Server {
    dir: Option<tempfile::TempDir>,
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    /// A handle on the listening socket, to wake the accept loop on drop.
    listener: Option<UnixListener>,
    worker: Option<JoinHandle<()>>,
    conns: Conns,
}

impl Server {
    /// Creates the private directory and the socket and starts serving.
    pub fn start(capturer: Arc<dyn Capturer>, opts: ServerOptions) -> std::io::Result<Server> {
        let parent = opts.parent.clone().unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("ordeal-ckpt-")
            .tempdir_in(&parent)?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        let socket = dir.path().join("checkpoint.sock");
        if socket.as_os_str().len() > 107 {
            return Err(std::io::Error::other(format!(
                "{}: socket path longer than 107 bytes; choose a shorter parent directory",
                socket.display()
            )));
        }
        let listener = UnixListener::bind(&socket)?;
        let wake = listener.try_clone()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Job>();
        let worker = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("ordeal-ckpt-worker".into())
                .spawn(move || work(rx, capturer, stop))?
        };
        let conns: Conns = Arc::default();
        let accept = {
            let stop = Arc::clone(&stop);
            let conns = Arc::clone(&conns);
            std::thread::Builder::new()
                .name("ordeal-ckpt-accept".into())
                .spawn(move || accept_loop(listener, tx, stop, conns, opts))?
        };
        Ok(Server {
            dir: Some(dir),
            socket,
            stop,
            accept: Some(accept),
            listener: Some(wake),
            worker: Some(worker),
            conns,
        })
    }

    /// The socket's path: the value of [`ENV`] for nodes and workloads.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The private directory holding the socket.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or(Path::new(""))
    }

    /// Stops serving and removes the directory (the same as dropping the server).
    pub fn shutdown(self) {}
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop (shutdown makes a blocked accept fail on Linux; the connection
        // covers the case where it does not); it sees the flag and returns.
        if let Some(l) = self.listener.take() {
            // SAFETY: shutdown on a socket we own; no memory is involved.
            unsafe { libc::shutdown(std::os::fd::AsRawFd::as_raw_fd(&l), libc::SHUT_RDWR) };
        }
        let _ = UnixStream::connect(&self.socket);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        let conns = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for (stream, _) in &conns {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        for (_, h) in conns {
            let _ = h.join();
        }
        if let Some(h) = self.worker.take() {
            let _ = h.join();
        }
        if let Some(d) = self.dir.take() {
            let _ = d.close();
        }
    }
}

fn work(rx: mpsc::Receiver<Job>, capturer: Arc<dyn Capturer>, stop: Arc<AtomicBool>) {
    for job in rx {
        let reply = if stop.load(Ordering::SeqCst) {
            "err shutting down".to_string()
        } else {
            let run = std::panic::AssertUnwindSafe(|| match &job.request {
                Request::Ping => Ok("ok".to_string()),
                Request::Checkpoint(label) => capturer
                    .checkpoint(label.as_deref())
                    .map(|id| format!("ok {id}")),
                Request::Watch(path) => capturer.watch(path).map(|()| "ok".to_string()),
            });
            match std::panic::catch_unwind(run) {
                Ok(Ok(r)) => r,
                Ok(Err(reason)) => format!("err {}", one_line(&reason.to_string())),
                Err(_) => "err internal error: the capture panicked".to_string(),
            }
        };
        let _ = job.reply.send(reply);
    }
}

fn one_line(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.trim().is_empty() {
        "failed".into()
    } else {
        s.trim().to_string()
    }
}

type Conns = Arc<Mutex<Vec<(UnixStream, JoinHandle<()>)>>>;

fn accept_loop(
    listener: UnixListener,
    tx: mpsc::Sender<Job>,
    stop: Arc<AtomicBool>,
    conns: Conns,
    opts: ServerOptions,
) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut stream) = stream else {
            // EMFILE and the like: back off instead of spinning.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = stream.set_write_timeout(Some(opts.idle_timeout));
        if active.load(Ordering::SeqCst) >= opts.max_connections {
            let _ = stream.write_all(b"err too many connections\n");
            continue;
        }
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        active.fetch_add(1, Ordering::SeqCst);
        let (tx, active2, opts2) = (tx.clone(), Arc::clone(&active), opts.clone());
        let spawned = std::thread::Builder::new()
            .name("ordeal-ckpt-conn".into())
            .spawn(move || {
                // The server keeps a clone of the stream (to end it on drop): close for real.
                let end = stream.try_clone();
                serve(stream, &tx, &opts2);
                if let Ok(end) = end {
                    let _ = end.shutdown(std::net::Shutdown::Both);
                }
                active2.fetch_sub(1, Ordering::SeqCst);
            });
        let mut list = conns.lock().unwrap_or_else(|e| e.into_inner());
        // Forget connections that are done.
        list.retain(|(_, h)| !h.is_finished());
        match spawned {
            Ok(h) => list.push((handle, h)),
            Err(_) => {
                active.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

enum Line {
    Text(Vec<u8>),
    TooLong,
    Eof,
}

/// The next request line, which must arrive whole within `within` of the call: a client
/// sending a byte now and then (slowloris) does not hold a connection slot longer than a
/// silent one. A line the connection's end cuts short is not a request: dropped.
fn read_line(r: &mut BufReader<UnixStream>, max: usize, within: Duration) -> std::io::Result<Line> {
    let deadline = Instant::now() + within;
    let mut line = Vec::new();
    loop {
        if r.buffer().is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            r.get_ref().set_read_timeout(Some(left))?;
        }
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(Line::Eof);
        }
        if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&buf[..pos]);
            r.consume(pos + 1);
            return Ok(if line.len() > max {
                Line::TooLong
            } else {
                Line::Text(line)
            });
        }
        let n = buf.len();
        line.extend_from_slice(buf);
        r.consume(n);
        if line.len() > max {
            return Ok(Line::TooLong);
        }
    }
}

fn serve(stream: UnixStream, tx: &mpsc::Sender<Job>, opts: &ServerOptions) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut input = BufReader::with_capacity(8192, stream);
    loop {
        let reply = match read_line(&mut input, opts.max_line, opts.idle_timeout) {
            // Idle timeout, reset, or shutdown: the connection is over.
            Err(_) | Ok(Line::Eof) => return,
            Ok(Line::TooLong) => {
                let msg = format!("err line too long (max {} bytes)\n", opts.max_line);
                let _ = out.write_all(msg.as_bytes());
                return;
            }
            Ok(Line::Text(line)) => match parse_request(&line) {
                Err(reason) => format!("err {reason}"),
                Ok(request) => {
                    let (reply_tx, reply_rx) = mpsc::channel();
                    if tx
                        .send(Job {
                            request,
                            reply: reply_tx,
                        })
                        .is_err()
                    {
                        "err shutting down".to_string()
                    } else {
                        reply_rx
                            .recv()
                            .unwrap_or_else(|_| "err shutting down".to_string())
                    }
                }
            },
        };
        if out.write_all(format!("{reply}\n").as_bytes()).is_err() {
            return;
        }
    }
}

/// Errors of the client functions.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{ENV} is not set: ask for checkpoints from a process started by `ordeal run`")]
    NoSocket,
    #[error("cannot reach the checkpoint service at {socket}: {source}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to the checkpoint service: {0}")]
    Io(#[from] std::io::Error),
    #[error("checkpoint service: {0}")]
    Refused(String),
    #[error("checkpoint service: unexpected reply {0:?}")]
    BadReply(String),
    #[error("{0}")]
    BadArgument(String),
}

/// The socket named by [`ENV`].
pub fn socket_from_env() -> Result<PathBuf, ClientError> {
    match std::env::var_os(ENV) {
        Some(s) if !s.is_empty() => Ok(PathBuf::from(s)),
        _ => Err(ClientError::NoSocket),
    }
}

/// Sends one request line and returns the text after `ok` (empty for a bare `ok`); `err`
/// replies become [`ClientError::Refused`]. Waits as long as the capture takes.
pub fn request(socket: &Path, line: &str) -> Result<String, ClientError> {
    if line.contains(['\n', '\r']) {
        return Err(ClientError::BadArgument(
            "a request cannot contain a line break".into(),
        ));
    }
    let mut stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        socket: socket.to_path_buf(),
        source,
    })?;
    stream.write_all(format!("{line}\n").as_bytes())?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply)?;
    let reply = reply.trim_end_matches(['\n', '\r']);
    if reply == "ok" {
        Ok(String::new())
    } else if let Some(rest) = reply.strip_prefix("ok ") {
        Ok(rest.to_string())
    } else if let Some(reason) = reply.strip_prefix("err ") {
        Err(ClientError::Refused(reason.to_string()))
    } else {
        Err(ClientError::BadReply(reply.to_string()))
    }
}

/// Asks the service at `socket` for a checkpoint; returns its id once it is taken.
pub fn checkpoint_at(socket: &Path, label: Option<&str>) -> Result<u64, ClientError> {
    let line = match label.map(str::trim) {
        Some(l) if !l.is_empty() => format!("checkpoint {l}"),
        _ => "checkpoint".to_string(),
    };
    let rest = request(socket, &line)?;
    rest.trim()
        .parse()
        .map_err(|_| ClientError::BadReply(format!("ok {rest}")))
}

/// Asks the service named by [`ENV`] for a checkpoint.
pub fn checkpoint(label: Option<&str>) -> Result<u64, ClientError> {
    checkpoint_at(&socket_from_env()?, label)
}

/// Asks the service at `socket` to watch `path` (made absolute against the current
/// directory).
pub fn watch_at(socket: &Path, path: &Path) -> Result<(), ClientError> {
    let abs = crate::watch::normalize(path);
    let text = abs
        .to_str()
        .ok_or_else(|| ClientError::BadArgument(format!("{}: path is not UTF-8", abs.display())))?;
    request(socket, &format!("watch {text}")).map(|_| ())
}

/// Asks the service named by [`ENV`] to watch `path`.
pub fn watch(path: &Path) -> Result<(), ClientError> {
    watch_at(&socket_from_env()?, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::Instant;

    /// Records calls; checks no two checkpoints overlap.
    #[derive(Default)]
    struct Probe {
        next: AtomicUsize,
        running: AtomicUsize,
        overlapped: AtomicBool,
        delay_ms: u64,
        log: Mutex<Vec<String>>,
    }

    impl Capturer for Probe {
        fn checkpoint(&self, label: Option<&str>) -> Result<u64, CaptureError> {
            if self.running.fetch_add(1, Ordering::SeqCst) != 0 {
                self.overlapped.store(true, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(self.delay_ms));
            self.running.fetch_sub(1, Ordering::SeqCst);
            if label == Some("fail") {
                return Err(CaptureError::Failed("disk\non fire".into()));
            }
            if label == Some("panic") {
                panic!("capturer panicked");
            }
            let id = self.next.fetch_add(1, Ordering::SeqCst) as u64 + 1;
            self.log
                .lock()
                .unwrap()
                .push(format!("checkpoint {id} {label:?}"));
            Ok(id)
        }
        fn watch(&self, path: &Path) -> Result<(), CaptureError> {
            self.log
                .lock()
                .unwrap()
                .push(format!("watch {}", path.display()));
            Ok(())
        }
    }

    fn start(delay_ms: u64, opts: ServerOptions) -> (Arc<Probe>, Server) {
        let probe = Arc::new(Probe {
            delay_ms,
            ..Default::default()
        });
        let server = Server::start(probe.clone(), opts).unwrap();
        (probe, server)
    }

    fn raw(socket: &Path, bytes: &[u8]) -> String {
        let mut s = UnixStream::connect(socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The server may close before reading everything (a line too long): broken pipe.
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn parses_requests_exactly() {
        assert_eq!(parse_request(b"ping"), Ok(Request::Ping));
        assert_eq!(
            parse_request(b"checkpoint\r"),
            Ok(Request::Checkpoint(None))
        );
        assert_eq!(
            parse_request(b"checkpoint  after put 3 "),
            Ok(Request::Checkpoint(Some("after put 3".into())))
        );
        assert_eq!(
            parse_request(b"watch /a b/c"),
            Ok(Request::Watch("/a b/c".into()))
        );
        for (line, want) in [
            (&b""[..], "empty request"),
            (b"watch", "watch needs a path"),
            (b"watch rel/x", "watch path must be absolute: rel/x"),
            (b"ping x", "ping takes no argument"),
            (b"\xff\xfe", "request is not UTF-8"),
            (b"checkpoint a\x01b", "request has control characters"),
            (
                b"snapshot now",
                "unknown request \"snapshot\": expected checkpoint [label], watch <path> or ping",
            ),
        ] {
            assert_eq!(
                parse_request(line).map_err(|e| e.to_string()),
                Err(want.to_string())
            );
        }
    }

    #[test]
    fn request_errors_carry_what_was_wrong() {
        assert_eq!(
            parse_request(b"watch rel/x"),
            Err(RequestError::WatchPathNotAbsolute("rel/x".into()))
        );
        // An unknown word is cut to 32 characters, in the error and in the reply.
        let long = format!("{} now", "x".repeat(40));
        let e = parse_request(long.as_bytes()).unwrap_err();
        assert_eq!(e, RequestError::Unknown("x".repeat(32)));
        assert_eq!(
            e.to_string(),
            format!(
                "unknown request \"{}\": expected checkpoint [label], watch <path> or ping",
                "x".repeat(32)
            )
        );
    }

    #[test]
    fn capture_errors_keep_their_cause() {
        let e = CaptureError::from(crate::Error::io(
            "/data/n0",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
        assert_eq!(e.to_string(), "/data/n0: entity not found");
        assert!(matches!(e, CaptureError::State(crate::Error::Io { .. })));
        assert_eq!(
            std::error::Error::source(&e).map(|s| s.to_string()),
            Some("entity not found".to_string())
        );
        assert_eq!(
            CaptureError::Failed("disk full".into()).to_string(),
            "disk full"
        );
    }

    #[test]
    fn protocol_replies_and_client_functions() {
        let (probe, server) = start(0, ServerOptions::default());
        let sock = server.socket_path().to_path_buf();
        assert_eq!(checkpoint_at(&sock, Some("first")).unwrap(), 1);
        assert_eq!(checkpoint_at(&sock, None).unwrap(), 2);
        watch_at(&sock, Path::new("/data/x/../kv.db")).unwrap();
        // Several requests on one connection, errors in between do not end it.
        assert_eq!(
            raw(&sock, b"ping\nbogus\ncheckpoint fail\ncheckpoint panic\ncheckpoint\n"),
            "ok\nerr unknown request \"bogus\": expected checkpoint [label], watch <path> or ping\n\
             err disk on fire\nerr internal error: the capture panicked\nok 3\n"
        );
        match checkpoint_at(&sock, Some("fail")) {
            Err(ClientError::Refused(r)) => assert_eq!(r, "disk on fire"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            *probe.log.lock().unwrap(),
            [
                "checkpoint 1 Some(\"first\")",
                "checkpoint 2 None",
                "watch /data/kv.db",
                "checkpoint 3 None",
            ]
        );
    }

    #[test]
    fn concurrent_clients_are_serialized() {
        let (probe, server) = start(30, ServerOptions::default());
        let sock = server.socket_path().to_path_buf();
        let start = Instant::now();
        let ids: Vec<u64> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..6)
                .map(|i| {
                    let sock = sock.clone();
                    s.spawn(move || checkpoint_at(&sock, Some(&format!("c{i}"))).unwrap())
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, [1, 2, 3, 4, 5, 6]);
        assert!(!probe.overlapped.load(Ordering::SeqCst));
        assert!(start.elapsed() >= Duration::from_millis(6 * 30));
    }

    #[test]
    fn oversized_and_malformed_lines_get_errors_and_the_service_still_answers() {
        let (_, server) = start(0, ServerOptions::default());
        let sock = server.socket_path().to_path_buf();
        let mut long = vec![b'x'; MAX_LINE + 1];
        long.push(b'\n');
        long.extend_from_slice(b"ping\n");
        // The too-long line closes its connection: the ping after it is not answered.
        assert_eq!(raw(&sock, &long), "err line too long (max 4096 bytes)\n");
        // A line of exactly the limit is read (and refused as unknown, not as too long).
        let mut exact = b"checkpoint ".to_vec();
        exact.resize(MAX_LINE, b'y');
        exact.push(b'\n');
        assert_eq!(raw(&sock, &exact), "ok 1\n");
        // No newline at all, 1 MB of it.
        assert_eq!(
            raw(&sock, &vec![b'z'; 1 << 20]),
            "err line too long (max 4096 bytes)\n"
        );
        assert_eq!(raw(&sock, b"\xff\n"), "err request is not UTF-8\n");
        // A line the connection's end cuts short is no request: not run, not answered.
        assert_eq!(raw(&sock, b"ping"), "");
        assert_eq!(raw(&sock, b"checkpoint cut short"), "");
        assert_eq!(checkpoint_at(&sock, None).unwrap(), 2);
    }

    /// A request line must arrive whole within the idle timeout: a byte every 50 ms does not
    /// keep a connection (and its slot) open past it.
    #[test]
    fn a_slow_trickle_is_closed_at_the_idle_timeout() {
        let opts = ServerOptions {
            idle_timeout: Duration::from_millis(300),
            ..Default::default()
        };
        let (probe, server) = start(0, opts);
        let sock = server.socket_path().to_path_buf();
        let slow = UnixStream::connect(&sock).unwrap();
        let mut writer = slow.try_clone().unwrap();
        // Up to 100 bytes, 5 s in all, never a newline; stops once the server has closed.
        let trickle = std::thread::spawn(move || {
            (0..100)
                .take_while(|_| {
                    std::thread::sleep(Duration::from_millis(50));
                    writer.write_all(b"p").is_ok()
                })
                .count()
        });
        let mut reader = slow;
        reader
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut buf = Vec::new();
        assert_eq!(reader.read_to_end(&mut buf).unwrap(), 0);
        let sent = trickle.join().unwrap();
        assert!(
            sent < 100,
            "the server waited for the whole trickle ({sent} bytes)"
        );
        assert!(probe.log.lock().unwrap().is_empty());
    }

    #[test]
    fn a_silent_client_blocks_nobody_and_times_out() {
        let opts = ServerOptions {
            idle_timeout: Duration::from_millis(300),
            ..Default::default()
        };
        let (_, server) = start(0, opts);
        let sock = server.socket_path().to_path_buf();
        let mut silent = UnixStream::connect(&sock).unwrap();
        let mut half = UnixStream::connect(&sock).unwrap();
        half.write_all(b"checkp").unwrap();
        let t = Instant::now();
        assert_eq!(checkpoint_at(&sock, None).unwrap(), 1);
        assert!(
            t.elapsed() < Duration::from_millis(250),
            "{:?}",
            t.elapsed()
        );
        // The silent connection is closed by the server after the idle timeout.
        silent
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = Vec::new();
        assert_eq!(silent.read_to_end(&mut buf).unwrap(), 0);
        drop(half);
    }

    #[test]
    fn socket_dir_is_private_and_removed_on_drop() {
        let parent = tempfile::tempdir().unwrap();
        let opts = ServerOptions {
            parent: Some(parent.path().to_path_buf()),
            ..Default::default()
        };
        let (_, server) = start(0, opts);
        let dir = server.dir().to_path_buf();
        let sock = server.socket_path().to_path_buf();
        assert_eq!(sock.parent(), Some(dir.as_path()));
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // A connection still open does not keep the server alive.
        let _open = UnixStream::connect(&sock).unwrap();
        let t = Instant::now();
        drop(server);
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(!dir.exists());
        assert!(matches!(
            checkpoint_at(&sock, None),
            Err(ClientError::Connect { .. })
        ));
    }

    #[test]
    fn client_errors_are_clear() {
        let e = request(Path::new("/nonexistent/sock"), "a\nb").unwrap_err();
        assert_eq!(e.to_string(), "a request cannot contain a line break");
        let e = checkpoint_at(Path::new("/nonexistent/sock"), None).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("cannot reach the checkpoint service at /nonexistent/sock"));
    }
}
