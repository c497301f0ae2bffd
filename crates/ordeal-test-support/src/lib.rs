//! Helpers shared by ordeal's integration tests (a dev-dependency only):
//!
//! - [`compile_c`]: a C test program compiled once per test process;
//! - [`ordeal_bin`]: the `ordeal` binary cargo built next to the test executable;
//! - [`assert_success`]: an exit-status assertion whose message shows stdout and stderr;
//! - [`free_port`]: a port for a server a test starts itself, reserved as a run's ports are;
//! - [`installed`]: whether the third-party programs a test needs are there (under `CI=true`
//!   a missing one fails the test: CI must not pass without testing);
//! - [`browser::headless`]: a page rendered by headless Chromium, its DOM after its scripts
//!   ran and its console's messages.
#![forbid(unsafe_code)]

pub mod browser;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// A free TCP port for a server a test starts itself, reserved for the rest of the test
/// process as ordeal reserves a run's ports (`ordeal_sys::ports`: outside the kernel's
/// ephemeral range, with a lock every ordeal process honours), so that neither an outgoing
/// connection nor a run of a concurrent test takes it before the server binds it. (A port
/// bound to 0 and released is an ephemeral one: any connection may take it meanwhile.)
pub fn free_port() -> u16 {
    static HELD: Mutex<Vec<ordeal_sys::ports::PortReservation>> = Mutex::new(Vec::new());
    let reserved = ordeal_sys::ports::PortAllocator::new()
        .allocate(1)
        .unwrap_or_else(|e| panic!("no free port to reserve: {e}"));
    let port = reserved.ports()[0];
    HELD.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(reserved);
    port
}

/// Compiles `src` with `cc FLAGS` into `out_dir/PREFIX-STEM-PID` (STEM: the source's file
/// stem) once per test process, and returns the binary's path.
///
/// Tests run in parallel threads: a binary rewritten while another test execs it fails with
/// ETXTBSY (or worse), so each program is built once, under a name no other test process
/// (another test file, a concurrent `cargo test`) uses, and renamed into place only when
/// complete.
pub fn compile_c(src: &Path, out_dir: &Path, prefix: &str, flags: &[&str]) -> PathBuf {
    static BUILT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let name = src
        .file_stem()
        .unwrap_or_else(|| panic!("{} has no file name", src.display()))
        .to_string_lossy();
    let out = out_dir.join(format!("{prefix}-{name}-{}", std::process::id()));
    if built.contains(&out) {
        return out;
    }
    let tmp = out.with_extension("tmp");
    let st = Command::new("cc")
        .args(flags)
        .arg("-o")
        .arg(&tmp)
        .arg(src)
        .status()
        .expect("cc runs");
    assert!(st.success(), "compiling {name}");
    std::fs::rename(&tmp, &out).unwrap();
    built.push(out.clone());
    out
}

/// The `ordeal` binary of this build: in the profile directory above the test executable
/// (`target/PROFILE/deps/TEST-HASH` → `target/PROFILE/ordeal`). Tests of the `ordeal` crate
/// itself have `env!("CARGO_BIN_EXE_ordeal")`; other crates' tests use this (the binary
/// exists once `cargo build -p ordeal` or the workspace's tests built it).
pub fn ordeal_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the test executable is in a directory");
    let profile = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().unwrap_or(deps)
    } else {
        deps
    };
    profile.join("ordeal")
}

/// Asserts that `out` (of the command described by `what`) exited with status 0; the panic
/// message shows its stdout and stderr.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// True when every program in `programs` is in `PATH` (or, for a path, exists). Otherwise the
/// test cannot run: under `CI=true` that is a failure (panic, naming `package` to install),
/// elsewhere a note on stderr and false, so the caller returns early.
pub fn installed(programs: &[&str], package: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = |p: &str| {
        if p.contains('/') {
            Path::new(p).exists()
        } else {
            std::env::split_paths(&path).any(|d| d.join(p).is_file())
        }
    };
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !found(p)).collect();
    if missing.is_empty() {
        return true;
    }
    let what = format!(
        "{} not found (apt-get install {package})",
        missing.join(", ")
    );
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "CI is set, so this test must run, but {what}"
    );
    eprintln!("skipped: {what}");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_once_per_process() {
        let dir = std::env::temp_dir().join(format!("ots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("seven.c");
        std::fs::write(&src, "int main(void) { return 7; }\n").unwrap();
        let bin = compile_c(&src, &dir, "t", &["-O1"]);
        assert_eq!(bin, dir.join(format!("t-seven-{}", std::process::id())));
        let st = Command::new(&bin).status().unwrap();
        assert_eq!(st.code(), Some(7));
        // A second call reuses the binary: a changed source is not rebuilt.
        std::fs::write(&src, "int main(void) { return 3; }\n").unwrap();
        assert_eq!(compile_c(&src, &dir, "t", &["-O1"]), bin);
        assert_eq!(Command::new(&bin).status().unwrap().code(), Some(7));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ordeal_bin_is_in_the_profile_directory() {
        let exe = std::env::current_exe().unwrap();
        let deps = exe.parent().unwrap();
        assert_eq!(deps.file_name().unwrap(), "deps");
        assert_eq!(ordeal_bin(), deps.parent().unwrap().join("ordeal"));
    }

    #[test]
    fn failure_message_shows_the_output() {
        let ok = Command::new("sh").args(["-c", "exit 0"]).output().unwrap();
        assert_success(&ok, "sh");
        let bad = Command::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .output()
            .unwrap();
        let msg = std::panic::catch_unwind(|| assert_success(&bad, "sh -c"))
            .unwrap_err()
            .downcast::<String>()
            .unwrap();
        assert_eq!(*msg, "sh -c failed (exit status: 3): out\n\nerr\n");
    }

    /// Present: true. Missing: false with a note, or under `CI=true` a failed test.
    #[test]
    fn installed_fails_under_ci_and_skips_elsewhere() {
        assert!(installed(&["sh", "/bin/sh"], "dash"));
        let missing = std::panic::catch_unwind(|| installed(&["/no/such/program"], "none"));
        match std::env::var("CI").as_deref() {
            Ok("true") => assert!(missing.is_err()),
            _ => assert!(matches!(missing, Ok(false))),
        }
    }

    #[test]
    fn a_free_port_stays_reserved_for_the_test_process() {
        let (a, b) = (free_port(), free_port());
        assert_ne!(a, b);
        for p in [a, b] {
            assert!(ordeal_sys::ports::DEFAULT_PORT_RANGE.contains(&p), "{p}");
            // Another allocator (a run of a concurrent test) is not handed it.
            let other = ordeal_sys::ports::PortAllocator::new().with_range(p..=p);
            assert!(other.allocate(1).is_err(), "{p} is reserved");
        }
    }
}
