//! Docs that cannot rot: every example command and complete example file of README.md and
//! docs/*.md runs here, and must end as the docs say.
//!
//! What counts, in a doc's Markdown:
//!
//! - a fenced block tagged `sh`: each command in it (a line, with its `\` continuations;
//!   comment lines skipped) runs with `sh -c` in a scratch directory holding `examples/`,
//!   `bench/`, `crates/` and `docs/` of the repository, `ordeal` on the PATH. It must exit 0,
//!   or what its trailing comment says: `# PASS` (0), `# FAIL...` (1), `# exit N`;
//! - an HTML comment `<!-- file: NAME -->` right before a fenced block: the block is a
//!   complete example file, written to NAME in the scratch directory (later commands use it);
//! - `<!-- run: COMMAND -->`: a command the reader is told about in prose, run at that point;
//! - `<!-- script -->` right before an `sh` block: the block runs as one script (`set -e`), for
//!   a server started in the background and then its clients; `<!-- script: exit N -->`;
//! - `<!-- not run: REASON -->` right before a block: the block is not run (a benchmark run
//!   small by tests/bench.rs, the test suite itself, a command against a system that is not
//!   there). A synopsis with placeholders is a `text` block, not `sh`.
//!
//! The commands of one doc run in order, in one scratch directory, so that a command can use
//! what an earlier one made (`ordeal demo --out runs/a`, then `ordeal replay runs/a`). Commands
//! naming Redis or etcd need them installed (a failure under `CI=true`, else a note).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One thing to run, from `file:line`.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Command {
        line: usize,
        text: String,
        exit: i32,
    },
    File {
        line: usize,
        name: String,
        text: String,
    },
}

/// The expected exit status a command's trailing comment gives (`# PASS`, `# FAIL`,
/// `# exit N`), and the command without it.
fn expected_exit(cmd: &str) -> (String, i32) {
    let Some(at) = comment_start(cmd) else {
        return (cmd.trim().to_string(), 0);
    };
    let (body, comment) = (cmd[..at].trim(), cmd[at + 1..].trim());
    let exit = if comment.starts_with("PASS") {
        0
    } else if comment.starts_with("FAIL") {
        1
    } else {
        comment
            .strip_prefix("exit ")
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<i32>().ok())
            .unwrap_or_default()
    };
    (body.to_string(), exit)
}

/// Where a shell comment starts in `cmd`: a `#` after a blank, outside quotes.
fn comment_start(cmd: &str) -> Option<usize> {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in cmd.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return Some(i),
            _ => {}
        }
        prev = c;
    }
    None
}

/// The steps of a Markdown document.
fn steps(markdown: &str) -> Vec<Step> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut out = Vec::new();
    let mut marker: Option<(usize, String)> = None;
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim();
        if let Some(c) = l.strip_prefix("<!--").and_then(|r| r.strip_suffix("-->")) {
            let c = c.trim();
            if let Some(cmd) = c.strip_prefix("run:") {
                let (text, exit) = expected_exit(cmd);
                out.push(Step::Command {
                    line: i + 1,
                    text,
                    exit,
                });
            } else {
                marker = Some((i, c.to_string()));
            }
            i += 1;
            continue;
        }
        let Some(info) = l.strip_prefix("```") else {
            if !l.is_empty() {
                marker = None;
            }
            i += 1;
            continue;
        };
        let start = i + 1;
        let mut end = start;
        while end < lines.len() && !lines[end].trim_start().starts_with("```") {
            end += 1;
        }
        let body = &lines[start..end.min(lines.len())];
        match marker.take().map(|(_, m)| m) {
            Some(m) if m.starts_with("not run:") => {
                assert!(
                    m.len() > "not run:".len() + 3,
                    "line {start}: say why it is not run"
                );
            }
            Some(m) if m.starts_with("script") => {
                // The whole block as one script (a server in the background, then its
                // clients): it must exit as `<!-- script: exit N -->` says, else 0.
                let (_, exit) = expected_exit(&format!(
                    "x #{}",
                    &m["script".len()..].trim_start_matches(':')
                ));
                out.push(Step::Command {
                    line: start + 1,
                    text: format!("set -e\n{}", body.join("\n")),
                    exit,
                });
            }
            Some(m) if m.starts_with("file:") => out.push(Step::File {
                line: start,
                name: m["file:".len()..].trim().to_string(),
                text: body.join("\n") + "\n",
            }),
            _ if info.trim() == "sh" => {
                let mut cmd = String::new();
                let mut first = 0;
                for (k, raw) in body.iter().enumerate() {
                    let t = raw.trim();
                    if cmd.is_empty() && (t.is_empty() || t.starts_with('#')) {
                        continue;
                    }
                    if cmd.is_empty() {
                        first = start + k + 1;
                    }
                    match t.strip_suffix('\\') {
                        Some(part) => {
                            cmd.push_str(part);
                            cmd.push(' ');
                        }
                        None => {
                            cmd.push_str(t);
                            let (text, exit) = expected_exit(&cmd);
                            out.push(Step::Command {
                                line: first,
                                text,
                                exit,
                            });
                            cmd.clear();
                        }
                    }
                }
            }
            _ => {}
        }
        i = end + 1;
    }
    out
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether the tools a command names are here (else a note, or a failure under CI).
fn tools_for(cmd: &str) -> bool {
    if cmd.contains("redis") {
        return ordeal_test_support::installed(
            &["redis-server", "redis-cli"],
            "redis-server redis-tools",
        );
    }
    if cmd.contains("etcd") {
        return ordeal_test_support::installed(&["etcd", "etcdctl"], "etcd-server etcd-client");
    }
    true
}

/// Runs every step of `doc` (relative to the repository) in order; panics on the first one
/// that does not end as documented.
fn run_doc(doc: &str) {
    let root = repo();
    let text = std::fs::read_to_string(root.join(doc)).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    for sub in ["examples", "bench", "crates", "docs"] {
        std::os::unix::fs::symlink(root.join(sub), dir.join(sub)).unwrap();
    }
    let bin = dir.join(".bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ordeal"), bin.join("ordeal")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for step in steps(&text) {
        match step {
            Step::File { name, text, .. } => {
                std::fs::write(dir.join(name), text).unwrap();
            }
            Step::Command { line, text, exit } => {
                if !tools_for(&text) {
                    continue;
                }
                eprintln!("{doc}:{line}: {text}");
                let started = Instant::now();
                // Its own process group: whatever it leaves running is killed with it.
                let mut child = Command::new("sh")
                    .arg("-c")
                    .arg(&text)
                    .process_group(0)
                    .current_dir(dir)
                    .env("PATH", &path)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                // Output read on threads so that a chatty command cannot fill its pipe.
                let out = child.stdout.take().unwrap();
                let err = child.stderr.take().unwrap();
                let read = |mut r: Box<dyn std::io::Read + Send>| {
                    std::thread::spawn(move || {
                        let mut s = String::new();
                        let _ = r.read_to_string(&mut s);
                        s
                    })
                };
                let (out, err) = (read(Box::new(out)), read(Box::new(err)));
                let status = loop {
                    if let Some(st) = child.try_wait().unwrap() {
                        break Some(st);
                    }
                    if started.elapsed() > Duration::from_secs(300) {
                        break None;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                };
                // SAFETY: kill(2) on the process group this command leads; no memory involved.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                let (out, err) = (out.join().unwrap(), err.join().unwrap());
                let tail = |s: &str| {
                    let v: Vec<&str> = s.lines().collect();
                    v[v.len().saturating_sub(15)..].join("\n")
                };
                let code = status.and_then(|s| s.code());
                assert_eq!(
                    code,
                    Some(exit),
                    "{doc}:{line}: `{text}` should exit {exit} as documented (after {:.1} s)\n\
                     stdout:\n{}\nstderr:\n{}",
                    started.elapsed().as_secs_f64(),
                    tail(&out),
                    tail(&err)
                );
            }
        }
    }
}

#[test]
fn commands_and_files_are_found_as_the_conventions_say() {
    let md = "intro\n\n```sh\n# a comment\nordeal demo   # PASS\nordeal demo --set \\\n  bugs=x  # FAIL: lost\n\
              echo '#not a comment' # exit 3\n```\n\n<!-- not run: a benchmark of minutes -->\n```sh\nbench/x.sh\n```\n\
              <!-- file: a.toml -->\n```toml\nname = \"a\"\n```\n<!-- run: ordeal run a.toml # exit 2 -->\n\
              ```text\nordeal run EXPERIMENT.toml\n```\n<!-- script -->\n```sh\nsleep 9 &\nkill $!\n```\n";
    assert_eq!(
        steps(md),
        [
            Step::Command {
                line: 5,
                text: "ordeal demo".into(),
                exit: 0
            },
            Step::Command {
                line: 6,
                text: "ordeal demo --set  bugs=x".into(),
                exit: 1
            },
            Step::Command {
                line: 8,
                text: "echo '#not a comment'".into(),
                exit: 3
            },
            Step::File {
                line: 16,
                name: "a.toml".into(),
                text: "name = \"a\"\n".into()
            },
            Step::Command {
                line: 19,
                text: "ordeal run a.toml".into(),
                exit: 2
            },
            Step::Command {
                line: 25,
                text: "set -e\nsleep 9 &\nkill $!".into(),
                exit: 0
            },
        ]
    );
}

macro_rules! doc_tests {
    ($($name:ident => $doc:literal;)+) => {
        $(
            #[test]
            fn $name() {
                run_doc($doc);
            }
        )+

        /// Every doc is covered by a test above.
        #[test]
        fn every_doc_is_run() {
            let mut covered = vec![$($doc),+];
            covered.sort();
            let mut docs: Vec<String> = std::fs::read_dir(repo().join("docs"))
                .unwrap()
                .map(|e| format!("docs/{}", e.unwrap().file_name().to_string_lossy()))
                .filter(|n| n.ends_with(".md"))
                .chain(["README.md".to_string()])
                .collect();
            docs.sort();
            assert_eq!(covered, docs);
        }
    };
}

doc_tests! {
    readme => "README.md";
    bench => "docs/bench.md";
    checkpoints => "docs/checkpoints.md";
    crash => "docs/crash.md";
    experiment => "docs/experiment.md";
    explore => "docs/explore.md";
    faults => "docs/faults.md";
    history => "docs/history.md";
    outputs => "docs/outputs.md";
    protocols => "docs/protocols.md";
    proxy => "docs/proxy.md";
    scale => "docs/scale.md";
    shadow => "docs/shadow.md";
    trace_format => "docs/trace-format.md";
}
