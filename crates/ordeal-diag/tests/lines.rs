//! Source file and line of symbolized frames, from DWARF line info.

use ordeal_diag::procfs;
use ordeal_diag::unwind::{Frame, ProcessModules};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// `report` starts at line 4 and `main` calls it at line 10; the call's return address is
/// at line 11's code at -O0, so getting 10 shows the return address is looked up minus one.
const PROG: &str = r#"#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) void report(void) {
    printf("%p %p\n", (void *)report, __builtin_return_address(0));
    fflush(stdout);
    pause();
}
int main(void) {
    report();
    return 0;
}
"#;

fn symbolize_in(pid: i32, addr: u64, lookup: u64) -> Frame {
    let maps = procfs::maps(pid);
    ProcessModules::load(pid, &maps).symbolize(addr, lookup)
}

#[test]
fn c_frames_get_the_file_and_line_of_their_dwarf() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("lines_prog.c");
    let exe = dir.path().join("lines_prog");
    std::fs::write(&src, PROG).unwrap();
    let st = Command::new("cc")
        .args(["-g", "-O0", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success());
    let mut child = Command::new(&exe).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addrs: Vec<u64> = line
        .split_whitespace()
        .map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).unwrap())
        .collect();
    let pid = child.id() as i32;
    let modules = ProcessModules::load(pid, &procfs::maps(pid));
    // The start of `report`, as an instruction pointer.
    let entry = modules.symbolize(addrs[0], addrs[0]);
    // Its return address into `main`, as an unwound frame: looked up minus one.
    let ret = modules.symbolize(addrs[1], addrs[1] - 1);
    child.kill().unwrap();
    child.wait().unwrap();

    let src = src.to_str().unwrap();
    assert_eq!(entry.function.as_deref(), Some("report"), "{entry}");
    assert_eq!(entry.file.as_deref(), Some(src), "{entry}");
    assert_eq!(entry.line, Some(4), "{entry}");
    assert_eq!(ret.function.as_deref(), Some("main"), "{ret}");
    assert_eq!(ret.file.as_deref(), Some(src), "{ret}");
    assert_eq!(ret.line, Some(10), "{ret}");
    let shown = ret.to_string();
    assert!(
        shown.contains(" main+0x") && shown.ends_with(&format!(" at {src}:10 (lines_prog)")),
        "{shown}"
    );
    let json = serde_json::to_value(&ret).unwrap();
    assert_eq!(json["file"], src);
    assert_eq!(json["line"], 10);
}

#[test]
fn rust_frames_of_this_process_get_file_and_line() {
    let ip: u64;
    // SAFETY: only reads the instruction pointer (of the next instruction) into a register.
    unsafe { std::arch::asm!("lea {}, [rip]", out(reg) ip) }
    let asm_line = line!() - 1;
    // `ip - 1` lies within the `lea`, on the `asm!` line.
    let f = symbolize_in(std::process::id() as i32, ip, ip - 1);
    assert!(
        f.file
            .as_deref()
            .is_some_and(|p| Path::new(p).ends_with("tests/lines.rs")),
        "{f}"
    );
    assert_eq!(f.line, Some(asm_line), "{f}");
    // No DWARF line for an address outside any module: no file, and none serialized.
    let none = symbolize_in(std::process::id() as i32, 0x10, 0x10);
    assert_eq!((&none.file, none.line), (&None, None));
    let json = serde_json::to_string(&none).unwrap();
    assert!(!json.contains("file") && !json.contains("line"), "{json}");
}

/// Time to load modules and symbolize a real stack of a large binary: `ORDEAL_LINES_BENCH`
/// names it (e.g. a release `ordeal`); it is run as `BIN proxy --api 127.0.0.1:0`, stopped
/// with ptrace, unwound and symbolized.
/// `ORDEAL_LINES_BENCH=target/release/ordeal cargo test -p ordeal-diag --test lines -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_symbolize_a_stack() {
    let Ok(bin) = std::env::var("ORDEAL_LINES_BENCH") else {
        return;
    };
    let mut child = Command::new(&bin)
        .args(["proxy", "--api", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pid = child.id() as i32;
    // SAFETY: plain ptrace calls on our own child, with a zeroed regs struct to fill.
    let (regs, stack) = unsafe {
        assert_eq!(libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0), 0);
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
        let mut regs: libc::user_regs_struct = std::mem::zeroed();
        assert_eq!(
            libc::ptrace(libc::PTRACE_GETREGS, pid, 0, &mut regs as *mut _),
            0
        );
        let mut stack = vec![0u8; 256 * 1024];
        let f = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
        let n = std::os::unix::fs::FileExt::read_at(&f, &mut stack, regs.rsp).unwrap_or(0);
        stack.truncate(n);
        libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
        (regs, stack)
    };
    let t0 = Instant::now();
    let modules = ProcessModules::load(pid, &procfs::maps(pid));
    let t1 = Instant::now();
    let frames = modules.unwind(regs.rip, regs.rsp, regs.rbp, regs.rsp, &stack);
    let t2 = Instant::now();
    let again = modules.unwind(regs.rip, regs.rsp, regs.rbp, regs.rsp, &stack);
    let t3 = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    for f in &frames {
        println!("{f}");
    }
    assert_eq!(frames, again);
    println!(
        "load modules {:?}; first unwind+symbolize ({} frames, DWARF loaded) {:?}; again {:?}",
        t1 - t0,
        frames.len(),
        t2 - t1,
        t3 - t2
    );
}

/// The cached line tables keep modules shareable between threads.
#[test]
fn process_modules_stay_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<ProcessModules>();
}
