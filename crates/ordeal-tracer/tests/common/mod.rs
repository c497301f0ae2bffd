//! Helpers the tracer's integration tests share: compiling the C programs of tests/progs,
//! spawning them, waiting for a line in a file.

use ordeal_tracer::SpawnSpec;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Compiles tests/progs/NAME.c once per test process (see `compile_c`).
pub fn compile(name: &str) -> PathBuf {
    ordeal_test_support::compile_c(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/progs/{name}.c")),
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        "tp",
        &["-O1", "-pthread"],
    )
}

pub fn spec(label: &str, prog: &Path, args: &[&str], dir: &Path) -> SpawnSpec {
    let open = |ext: &str| {
        std::fs::File::create(dir.join(format!("{label}.{ext}")))
            .unwrap()
            .into()
    };
    let mut argv = vec![prog.to_string_lossy().into_owned()];
    argv.extend(args.iter().map(|s| s.to_string()));
    SpawnSpec {
        marker: None,
        netns: None,
        label: label.into(),
        program: prog.to_owned(),
        argv,
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        cwd: dir.to_owned(),
        stdout: open("stdout"),
        stderr: open("stderr"),
        traced: true,
    }
}

pub fn poll_file(path: &Path, pat: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(s) = std::fs::read_to_string(path) {
            if let Some(line) = s.lines().find(|l| l.contains(pat)) {
                return line.to_string();
            }
        }
        std::thread::park_timeout(Duration::from_millis(5));
    }
    panic!("{pat} never appeared in {}", path.display());
}
