//! Live cloning: a consistent copy of a running service's data directory, taken while the
//! service is paused (SIGSTOP), with reflinks where the file system has them, and a debug
//! copy started on it with its own port.

use crate::Error;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// How the files were copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyMethod {
    /// Every file was reflinked (FICLONE): instant, copy-on-write.
    Reflink,
    /// Every file was copied byte for byte (the file system has no reflinks).
    Copy,
    /// Some of each.
    Mixed,
    /// No regular file to copy.
    Empty,
}

impl CopyMethod {
    /// The name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CopyMethod::Reflink => "reflink",
            CopyMethod::Copy => "copy",
            CopyMethod::Mixed => "mixed",
            CopyMethod::Empty => "empty",
        }
    }
}

/// What [`snapshot`] did.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotReport {
    pub source: PathBuf,
    pub dest: PathBuf,
    pub method: CopyMethod,
    pub files_reflinked: u64,
    pub files_copied: u64,
    pub bytes: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// From SIGSTOP to SIGCONT (monotonic clock), in seconds.
    pub pause_seconds: f64,
    /// The processes paused.
    pub paused: Vec<i32>,
    /// `group` when the whole process group was stopped, `process` otherwise.
    pub paused_scope: &'static str,
}

/// FICLONE = _IOW(0x94, 9, int).
const FICLONE: libc::c_ulong = 0x4004_9409;

fn copy_file(src: &Path, dst: &Path) -> Result<(bool, u64), Error> {
    let s = fs::File::open(src).map_err(io(format!("opening {}", src.display())))?;
    let meta = s
        .metadata()
        .map_err(io(format!("reading {}", src.display())))?;
    let d = fs::File::create(dst).map_err(io(format!("creating {}", dst.display())))?;
    // SAFETY: two valid fds; FICLONE takes the source fd as its argument.
    let r = unsafe { libc::ioctl(d.as_raw_fd(), FICLONE, s.as_raw_fd()) };
    let reflinked = r == 0;
    if !reflinked {
        let mut s = s;
        let mut d2 = &d;
        std::io::copy(&mut s, &mut d2).map_err(io(format!("copying {}", src.display())))?;
    }
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.permissions().mode()))
        .map_err(io(format!("setting permissions of {}", dst.display())))?;
    Ok((reflinked, meta.len()))
}

#[derive(Default)]
struct Tally {
    reflinked: u64,
    copied: u64,
    bytes: u64,
    dirs: u64,
    symlinks: u64,
}

fn copy_tree(src: &Path, dst: &Path, t: &mut Tally) -> Result<(), Error> {
    fs::create_dir_all(dst).map_err(io(format!("creating {}", dst.display())))?;
    t.dirs += 1;
    let mut entries: Vec<_> = fs::read_dir(src)
        .map_err(io(format!("reading {}", src.display())))?
        .collect::<Result<_, _>>()
        .map_err(io(format!("reading {}", src.display())))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let from = e.path();
        let to = dst.join(e.file_name());
        let ft = e
            .file_type()
            .map_err(io(format!("reading {}", from.display())))?;
        if ft.is_symlink() {
            let target = fs::read_link(&from).map_err(io(format!("reading {}", from.display())))?;
            symlink(&target, &to).map_err(io(format!("creating {}", to.display())))?;
            t.symlinks += 1;
        } else if ft.is_dir() {
            copy_tree(&from, &to, t)?;
        } else if ft.is_file() {
            let (r, n) = copy_file(&from, &to)?;
            if r {
                t.reflinked += 1;
            } else {
                t.copied += 1;
            }
            t.bytes += n;
        }
        // Sockets, FIFOs and devices are not state: skipped.
    }
    Ok(())
}

/// Copies `src` to `dst` (which must not exist) without pausing anything.
pub fn copy_dir(src: &Path, dst: &Path) -> Result<SnapshotReport, Error> {
    if dst.exists() {
        return Err(Error::Invalid(format!("{} already exists", dst.display())));
    }
    if !src.is_dir() {
        return Err(Error::Invalid(format!(
            "{} is not a directory",
            src.display()
        )));
    }
    let mut t = Tally::default();
    copy_tree(src, dst, &mut t)?;
    Ok(report(src, dst, &t, Duration::ZERO, Vec::new(), "none"))
}

fn report(
    src: &Path,
    dst: &Path,
    t: &Tally,
    pause: Duration,
    paused: Vec<i32>,
    scope: &'static str,
) -> SnapshotReport {
    let method = match (t.reflinked, t.copied) {
        (0, 0) => CopyMethod::Empty,
        (_, 0) => CopyMethod::Reflink,
        (0, _) => CopyMethod::Copy,
        _ => CopyMethod::Mixed,
    };
    SnapshotReport {
        source: src.to_path_buf(),
        dest: dst.to_path_buf(),
        method,
        files_reflinked: t.reflinked,
        files_copied: t.copied,
        bytes: t.bytes,
        dirs: t.dirs,
        symlinks: t.symlinks,
        pause_seconds: pause.as_secs_f64(),
        paused,
        paused_scope: scope,
    }
}

/// The processes of process group `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    let mut v = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Some((_, pg)) = proc_stat(pid) {
            if pg == pgid {
                v.push(pid);
            }
        }
    }
    v.sort_unstable();
    v
}

/// The process group of `pid`, from /proc.
pub fn process_group(pid: i32) -> Option<i32> {
    proc_stat(pid).map(|s| s.1)
}

/// (state letter, process group) from /proc/PID/stat.
fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let _ppid = f.next()?;
    let pgrp = f.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Resumes what it paused when dropped, so an error mid-copy never leaves production stopped.
struct Paused {
    target: i32,
    group: bool,
    t0: Instant,
    done: Option<Duration>,
}

impl Paused {
    fn resume(&mut self) -> Duration {
        if self.done.is_none() {
            // SAFETY: plain signal sends.
            unsafe {
                if self.group {
                    libc::killpg(self.target, libc::SIGCONT);
                } else {
                    libc::kill(self.target, libc::SIGCONT);
                }
            }
            self.done = Some(self.t0.elapsed());
        }
        self.done.unwrap_or_default()
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        self.resume();
    }
}

/// Pauses `pid` (its whole process group, unless that is ordeal's own group), waits until
/// every paused process is stopped, runs `while_paused` (e.g. registering a debug target so
/// that connections from this moment on are duplicated), copies `src` to `dst`, and resumes.
pub fn snapshot(
    pid: i32,
    src: &Path,
    dst: &Path,
    while_paused: impl FnOnce(),
) -> Result<SnapshotReport, Error> {
    // SAFETY: a plain query.
    if pid <= 1 || pid == unsafe { libc::getpid() } {
        return Err(Error::Invalid(format!("refusing to pause pid {pid}")));
    }
    if dst.exists() {
        return Err(Error::Invalid(format!("{} already exists", dst.display())));
    }
    if !src.is_dir() {
        return Err(Error::Invalid(format!(
            "{} is not a directory",
            src.display()
        )));
    }
    // SAFETY: plain queries.
    let (pgid, own) = unsafe { (libc::getpgid(pid), libc::getpgid(0)) };
    if pgid < 0 {
        return Err(Error::Invalid(format!("no process {pid}")));
    }
    let group = pgid != own && pgid > 1;
    let members = if group {
        group_members(pgid)
    } else {
        vec![pid]
    };
    let t0 = Instant::now();
    // SAFETY: plain signal sends.
    let r = unsafe {
        if group {
            libc::killpg(pgid, libc::SIGSTOP)
        } else {
            libc::kill(pid, libc::SIGSTOP)
        }
    };
    if r != 0 {
        return Err(io(format!("SIGSTOP {pid}"))(std::io::Error::last_os_error()));
    }
    let mut paused = Paused {
        target: if group { pgid } else { pid },
        group,
        t0,
        done: None,
    };
    // A SIGSTOP is asynchronous: wait until each process shows as stopped.
    let deadline = Instant::now() + Duration::from_secs(5);
    for &m in &members {
        while let Some((st, _)) = proc_stat(m) {
            if st == 'T' || st == 't' || st == 'Z' || st == 'X' {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::Invalid(format!(
                    "process {m} did not stop within 5 s"
                )));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    while_paused();
    let mut t = Tally::default();
    copy_tree(src, dst, &mut t)?;
    let pause = paused.resume();
    Ok(report(
        src,
        dst,
        &t,
        pause,
        members,
        if group { "group" } else { "process" },
    ))
}

/// Splits a command line into words: whitespace separates, '…' and "…" quote, \ escapes.
pub fn split_command(cmd: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut any = false;
    let mut chars = cmd.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => match chars.next() {
                Some(n) => cur.push(n),
                None => return Err(Error::Invalid("command ends with a backslash".into())),
            },
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        return Err(Error::Invalid("unterminated quote in command".into()));
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    if out.is_empty() {
        return Err(Error::Invalid("empty command".into()));
    }
    Ok(out)
}

/// Replaces `{port}`, `{data_dir}` and `{NAME}` placeholders (from `values`) in each word.
/// `{{`/`}}` are literal braces; an unknown placeholder is an error.
pub fn expand(words: &[String], values: &BTreeMap<String, String>) -> Result<Vec<String>, Error> {
    words
        .iter()
        .map(|w| {
            let mut out = String::new();
            let mut rest = w.as_str();
            while let Some(i) = rest.find(['{', '}']) {
                out.push_str(&rest[..i]);
                let r = &rest[i..];
                if r.starts_with("{{") || r.starts_with("}}") {
                    out.push_str(&r[..1]);
                    rest = &r[2..];
                    continue;
                }
                if r.starts_with('}') {
                    return Err(Error::Invalid(format!("lone `}}` in `{w}`")));
                }
                let Some(end) = r.find('}') else {
                    return Err(Error::Invalid(format!("unclosed `{{` in `{w}`")));
                };
                let name = &r[1..end];
                let v = values.get(name).ok_or_else(|| {
                    let known: Vec<_> = values.keys().map(|k| format!("{{{k}}}")).collect();
                    Error::Invalid(format!(
                        "unknown placeholder `{{{name}}}` in `{w}` (known: {})",
                        known.join(", ")
                    ))
                })?;
                out.push_str(v);
                rest = &r[end + 1..];
            }
            out.push_str(rest);
            Ok(out)
        })
        .collect()
}

/// A started debug copy: its own process group, killed (the whole group) when dropped, and
/// with a parent-death signal so it never outlives ordeal.
#[derive(Debug)]
pub struct CloneProcess {
    pub child: Child,
    pub argv: Vec<String>,
    pub port: u16,
    pub data_dir: PathBuf,
}

impl CloneProcess {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Kills the copy's process group and reaps it.
    pub fn kill(&mut self) {
        let pid = self.child.id() as i32;
        // Only while not reaped (so the group id cannot have been reused); it leads its group.
        if pid > 1 && matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: a plain signal send to the copy's own process group.
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for CloneProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `argv` (already expanded) as a debug copy, output to `log_dir/NAME.stdout|stderr`.
pub fn start_clone(
    argv: Vec<String>,
    port: u16,
    data_dir: PathBuf,
    log_dir: Option<&Path>,
    name: &str,
) -> Result<CloneProcess, Error> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| Error::Invalid("empty command".into()))?;
    let mut cmd = Command::new(prog);
    cmd.args(args).stdin(Stdio::null()).process_group(0);
    match log_dir {
        Some(d) => {
            fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
            let out = fs::File::create(d.join(format!("{name}.stdout")))
                .map_err(io("creating the clone's log"))?;
            let err = fs::File::create(d.join(format!("{name}.stderr")))
                .map_err(io("creating the clone's log"))?;
            cmd.stdout(out).stderr(err);
        }
        None => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(io(format!("starting the clone `{prog}`")))?;
    Ok(CloneProcess {
        child,
        argv,
        port,
        data_dir,
    })
}

/// Waits until `addr` accepts a TCP connection, the process is still alive, or `timeout`.
pub fn wait_ready(
    p: &mut CloneProcess,
    addr: std::net::SocketAddr,
    timeout: Duration,
) -> Result<Duration, Error> {
    let t0 = Instant::now();
    loop {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(t0.elapsed());
        }
        if let Ok(Some(st)) = p.child.try_wait() {
            return Err(Error::Invalid(format!(
                "the clone exited before listening on {addr}: {st}"
            )));
        }
        if t0.elapsed() >= timeout {
            return Err(Error::Invalid(format!(
                "the clone did not listen on {addr} within {timeout:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_expand() {
        let w = split_command(r#"srv --port {port} --dir "{data_dir}/x y" 'a b' c\ d"#).unwrap();
        assert_eq!(
            w,
            [
                "srv",
                "--port",
                "{port}",
                "--dir",
                "{data_dir}/x y",
                "a b",
                "c d"
            ]
        );
        let mut v = BTreeMap::new();
        v.insert("port".to_string(), "123".to_string());
        v.insert("data_dir".to_string(), "/d".to_string());
        let e = expand(&w, &v).unwrap();
        assert_eq!(e[2], "123");
        assert_eq!(e[4], "/d/x y");
        assert!(expand(&["{nope}".to_string()], &v).is_err());
        assert!(split_command("a 'b").is_err());
        assert_eq!(expand(&["{{x}}".to_string()], &v).unwrap(), ["{x}"]);
    }

    #[test]
    fn copy_method_names_are_the_json_names() {
        for m in [
            CopyMethod::Reflink,
            CopyMethod::Copy,
            CopyMethod::Mixed,
            CopyMethod::Empty,
        ] {
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
    }

    #[test]
    fn snapshot_pauses_and_copies() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("a"), b"hello").unwrap();
        fs::write(src.join("sub/b"), vec![7u8; 100_000]).unwrap();
        symlink("a", src.join("link")).unwrap();
        let mut child = Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let mut saw_stopped = false;
        let rep = snapshot(pid, &src, &tmp.path().join("dst"), || {
            saw_stopped = proc_stat(pid).map(|s| s.0) == Some('T');
        })
        .unwrap();
        assert!(saw_stopped, "the process is stopped while the copy is made");
        assert_ne!(proc_stat(pid).map(|s| s.0), Some('T'), "and resumed after");
        assert_eq!(rep.files_copied + rep.files_reflinked, 2);
        assert_eq!(rep.bytes, 100_005);
        assert_eq!(rep.symlinks, 1);
        assert_eq!(rep.paused, vec![pid]);
        assert_eq!(rep.paused_scope, "group");
        assert_eq!(
            fs::read(tmp.path().join("dst/sub/b")).unwrap().len(),
            100_000
        );
        assert_eq!(
            fs::read_link(tmp.path().join("dst/link")).unwrap(),
            PathBuf::from("a")
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
