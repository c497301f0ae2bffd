//! File and line of Go frames from `.gopclntab` (no DWARF), checked against the Go runtime's
//! own traceback of a real, stripped Go binary: Debian's etcd (package `etcd-server`).

use ordeal_diag::procfs;
use ordeal_diag::unwind::{Frame, ProcessModules};
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ETCD: &str = "/usr/bin/etcd";

/// Kills the whole process group of the child, whatever happens to the test.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: a plain kill(2) of the process group we created (pgid = the child's pid).
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// One physical frame of a `GOTRACEBACK=system` goroutine dump.
struct GoFrame {
    function: String,
    file: String,
    line: u32,
    pc: u64,
    /// `+0x…` was printed: pc is past the entry, and Go looked up pc - 1.
    past_entry: bool,
    /// Inlined frames were printed just before: pc lies in inlined code.
    inlined: bool,
}

/// The frames that carry a `pc=`, skipping the first frame of the first goroutine (taken at
/// the signal's pc, which Go does not back up).
fn parse_dump(text: &str) -> Vec<GoFrame> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut goroutines = 0;
    let mut first_in_goroutine = false;
    let mut inlined = false;
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("goroutine ") {
            goroutines += 1;
            first_in_goroutine = true;
            inlined = false;
            continue;
        }
        let Some(loc) = l.strip_prefix('\t') else {
            continue;
        };
        let Some(name_line) = i.checked_sub(1).map(|j| lines[j]) else {
            continue;
        };
        let (pos, rest) = loc.split_once(' ').unwrap_or((loc, ""));
        let Some(pc) = rest.split(' ').find_map(|w| w.strip_prefix("pc=0x")) else {
            // An inlined frame (or "created by"): no pc of its own.
            inlined = !name_line.starts_with("created by");
            continue;
        };
        let skip = goroutines == 1 && first_in_goroutine;
        first_in_goroutine = false;
        let (file, line) = pos.rsplit_once(':').unwrap();
        // The name ends where its argument list starts: the last '(' at depth 0.
        let mut depth = 0;
        let mut cut = name_line.len();
        for (k, c) in name_line.char_indices().rev() {
            match c {
                ')' => depth += 1,
                '(' => {
                    depth -= 1;
                    if depth == 0 {
                        cut = k;
                        break;
                    }
                }
                _ => {}
            }
        }
        if !skip {
            out.push(GoFrame {
                function: name_line[..cut].to_string(),
                file: file.to_string(),
                line: line.parse().unwrap(),
                pc: u64::from_str_radix(pc, 16).unwrap(),
                past_entry: rest.starts_with("+0x"),
                inlined,
            });
        }
        inlined = false;
    }
    out
}

#[test]
fn go_frames_get_the_file_and_line_the_go_runtime_prints() {
    if !ordeal_test_support::installed(&[ETCD], "etcd-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (
        ordeal_test_support::free_port(),
        ordeal_test_support::free_port(),
    );
    let client_url = format!("http://127.0.0.1:{client}");
    let child = Command::new(ETCD)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        // Every frame of the dump gets its pc.
        .env("GOTRACEBACK", "system")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut etcd = Group(child);
    let mut stderr = etcd.0.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", client)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(30), "etcd did not start");
        assert!(etcd.0.try_wait().unwrap().is_none(), "etcd exited");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let pid = etcd.0.id() as i32;
    let modules = ProcessModules::load(pid, &procfs::maps(pid));
    // SIGQUIT: the Go runtime prints every goroutine's stack, then exits.
    // SAFETY: a plain kill(2) of our child.
    unsafe { libc::kill(pid, libc::SIGQUIT) };
    let _ = etcd.0.wait();
    let dump = reader.join().unwrap();
    drop(etcd);

    let frames = parse_dump(&dump);
    assert!(frames.len() >= 50, "{} frames in:\n{dump}", frames.len());
    let mut inlined = 0;
    let mut example = None;
    for g in &frames {
        let lookup = if g.past_entry { g.pc - 1 } else { g.pc };
        let f: Frame = modules.symbolize(g.pc, lookup);
        let ok = f.function.as_deref() == Some(g.function.as_str())
            && f.file.as_deref() == Some(g.file.as_str())
            && f.line == Some(g.line);
        assert!(ok, "{f} vs Go's {} at {}:{}", g.function, g.file, g.line);
        if g.inlined {
            inlined += 1;
        }
        if g.function == "go.etcd.io/etcd/etcdmain.startEtcdOrProxyV2" || example.is_none() {
            example = Some(f.to_string());
        }
    }
    // Return addresses within inlined code: the inline tree was followed to the caller.
    assert!(inlined > 0, "no inlined frame in:\n{dump}");
    println!(
        "{} frames ({inlined} in inlined code) match the Go runtime's; e.g. {}",
        frames.len(),
        example.unwrap()
    );
}
