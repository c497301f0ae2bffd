//! Clone recipes: how to start a copy of a running service — its command words with
//! placeholders, its data directory and the pid to pause — given as a command, or found from
//! a node of a running ordeal run in /proc.
//!
//! A run's node is found by the conventions every ordeal run keeps (no dependency on the run
//! supervisor): the node's process group leader has `ORDEAL_NODE=NODE` and
//! `ORDEAL_RUN_DIR=RUN_DIR` in its environment, and its data directory is
//! `RUN_DIR/data/NODE`. Its command line becomes the recipe with its data directory and
//! listening ports replaced by placeholders.

use crate::clone::{process_group, split_command};
use crate::Error;
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How to make a copy: command words with placeholders ({port}, {addr}, {data_dir},
/// {backend.NAME} and each of `extra_ports`), the data directory to copy and the pid to pause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    pub words: Vec<String>,
    pub data_dir: PathBuf,
    pub pid: i32,
    /// Extra placeholders, one per other listening port of a node: `port_1`, `port_2`, …
    pub extra_ports: Vec<String>,
}

/// Where a clone comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipeSource {
    /// A command line (split like a shell would, no shell run), production's data directory
    /// and pid.
    Command {
        cmd: String,
        data_dir: PathBuf,
        pid: i32,
    },
    /// Node `node` of the running ordeal run in `run_dir`.
    Node { run_dir: PathBuf, node: String },
}

impl RecipeSource {
    /// The recipe. `upstream_port`: the port production serves the proxied traffic on; a
    /// node's other listening ports become `{port_N}`.
    pub fn recipe(
        &self,
        procs: &dyn Processes,
        upstream_port: Option<u16>,
    ) -> Result<Recipe, Error> {
        match self {
            RecipeSource::Command { cmd, data_dir, pid } => Ok(Recipe {
                words: split_command(cmd)?,
                data_dir: data_dir.clone(),
                pid: *pid,
                extra_ports: Vec::new(),
            }),
            RecipeSource::Node { run_dir, node } => {
                node_recipe(procs, run_dir, node, upstream_port)
            }
        }
    }

    /// [`RecipeSource::recipe`], waiting up to `timeout` for a run's node to be there and
    /// listen: a shadow started beside its node in a run (nodes start together) may look
    /// before the node has exec'd or bound its port.
    pub fn recipe_within(
        &self,
        procs: &dyn Processes,
        upstream_port: Option<u16>,
        timeout: Duration,
    ) -> Result<Recipe, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.recipe(procs, upstream_port) {
                Err(Error::NotFound(_) | Error::Invalid(_))
                    if matches!(self, RecipeSource::Node { .. }) && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                r => return r,
            }
        }
    }
}

/// What a recipe needs to know about running processes: [`ProcFs`] reads /proc; tests give
/// a fake.
pub trait Processes {
    /// Every process id, in no particular order.
    fn pids(&self) -> Result<Vec<i32>, Error>;
    fn process_group(&self, pid: i32) -> Option<i32>;
    /// The environment (empty if unreadable).
    fn environ(&self, pid: i32) -> Vec<(String, String)>;
    /// The raw command line: words each ended by a NUL.
    fn cmdline(&self, pid: i32) -> std::io::Result<Vec<u8>>;
    /// The TCP ports the process listens on, in the order its kernel tables list them.
    fn listening_ports(&self, pid: i32) -> Vec<u16>;
}

/// The live processes of this machine, from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcFs;

impl Processes for ProcFs {
    fn pids(&self) -> Result<Vec<i32>, Error> {
        let rd = fs::read_dir("/proc").map_err(|source| Error::Io {
            context: "reading /proc".into(),
            source,
        })?;
        Ok(rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .collect())
    }

    fn process_group(&self, pid: i32) -> Option<i32> {
        process_group(pid)
    }

    fn environ(&self, pid: i32) -> Vec<(String, String)> {
        fs::read(format!("/proc/{pid}/environ"))
            .map(|b| parse_environ(&b))
            .unwrap_or_default()
    }

    fn cmdline(&self, pid: i32) -> std::io::Result<Vec<u8>> {
        fs::read(format!("/proc/{pid}/cmdline"))
    }

    fn listening_ports(&self, pid: i32) -> Vec<u16> {
        let mut inodes = HashSet::new();
        if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) {
            for e in rd.flatten() {
                if let Ok(l) = fs::read_link(e.path()) {
                    let l = l.to_string_lossy();
                    if let Some(i) = l.strip_prefix("socket:[").and_then(|x| x.strip_suffix(']')) {
                        inodes.insert(i.to_string());
                    }
                }
            }
        }
        let mut ports = Vec::new();
        for f in ["tcp", "tcp6"] {
            if let Ok(t) = fs::read_to_string(format!("/proc/{pid}/net/{f}")) {
                for p in listening_in(&t, &inodes) {
                    if !ports.contains(&p) {
                        ports.push(p);
                    }
                }
            }
        }
        ports
    }
}

/// `KEY=VALUE` pairs of a NUL-separated environment (entries without `=` are left out).
pub fn parse_environ(raw: &[u8]) -> Vec<(String, String)> {
    raw.split(|&c| c == 0)
        .filter_map(|kv| {
            let s = String::from_utf8_lossy(kv);
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The local ports of the listening sockets (state `0A`) of a /proc/net/tcp{,6} table whose
/// inode is in `inodes`.
pub fn listening_in(table: &str, inodes: &HashSet<String>) -> Vec<u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let c: Vec<&str> = line.split_whitespace().collect();
            if c.len() > 9 && c[3] == "0A" && inodes.contains(c[9]) {
                c[1].rsplit(':')
                    .next()
                    .and_then(|h| u16::from_str_radix(h, 16).ok())
            } else {
                None
            }
        })
        .collect()
}

/// A process's command line as recipe words: literal braces escaped, `data_dir` replaced by
/// `{data_dir}`, `ports[0]` by `{port}` and `ports[i]` by `{port_i}` (as whole numbers only).
pub fn template_words(cmdline: &[u8], data_dir: &str, ports: &[u16]) -> Vec<String> {
    cmdline
        .split(|&c| c == 0)
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut s = String::from_utf8_lossy(w)
                .replace('{', "{{")
                .replace('}', "}}");
            s = s.replace(data_dir, "{data_dir}");
            for (i, &p) in ports.iter().enumerate() {
                let ph = if i == 0 {
                    "{port}".to_string()
                } else {
                    format!("{{port_{i}}}")
                };
                s = replace_number(&s, p, &ph);
            }
            s
        })
        .collect()
}

/// Replaces `port` as a whole number inside `w` by `ph`.
fn replace_number(w: &str, port: u16, ph: &str) -> String {
    let p = port.to_string();
    let b = w.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < w.len() {
        if w[i..].starts_with(&p)
            && (i == 0 || !b[i - 1].is_ascii_digit())
            && b.get(i + p.len()).is_none_or(|c| !c.is_ascii_digit())
        {
            out.push_str(ph);
            i += p.len();
        } else {
            let c = w[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Finds node `node` of the run in `run_dir`: the process group leader whose environment has
/// ORDEAL_NODE=node and ORDEAL_RUN_DIR=run_dir.
fn node_recipe(
    procs: &dyn Processes,
    run_dir: &Path,
    node: &str,
    upstream_port: Option<u16>,
) -> Result<Recipe, Error> {
    let want = fs::canonicalize(run_dir).map_err(|source| Error::Io {
        context: format!("run directory {}", run_dir.display()),
        source,
    })?;
    let is_node = |pid: i32| {
        let env = procs.environ(pid);
        let get = |k: &str| env.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        get("ORDEAL_NODE") == Some(node)
            && get("ORDEAL_RUN_DIR")
                .and_then(|d| fs::canonicalize(d).ok())
                .is_some_and(|d| d == want)
    };
    let pid = procs
        .pids()?
        .into_iter()
        .find(|&pid| procs.process_group(pid) == Some(pid) && is_node(pid))
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no running process of node `{node}` in run {} (is the run still going?)",
                run_dir.display()
            ))
        })?;
    let data_dir = want.join("data").join(node);
    if !data_dir.is_dir() {
        return Err(Error::NotFound(format!(
            "node `{node}` has no data directory ({})",
            data_dir.display()
        )));
    }
    let cmdline = procs.cmdline(pid).map_err(|source| Error::Io {
        context: "reading the node's command line".into(),
        source,
    })?;
    let mut ports = procs.listening_ports(pid);
    if let Some(u) = upstream_port {
        ports.retain(|&p| p != u);
        ports.insert(0, u);
    }
    if ports.is_empty() {
        return Err(Error::Invalid(format!(
            "node `{node}` (pid {pid}) listens on no TCP port"
        )));
    }
    Ok(Recipe {
        words: template_words(&cmdline, &data_dir.to_string_lossy(), &ports),
        data_dir,
        pid,
        extra_ports: (1..ports.len()).map(|i| format!("port_{i}")).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process described by hand.
    struct FakeProcess {
        pid: i32,
        group: i32,
        env: Vec<(String, String)>,
        cmdline: Vec<u8>,
        ports: Vec<u16>,
    }

    fn fake(
        pid: i32,
        group: i32,
        env: Vec<(String, String)>,
        cmdline: Vec<u8>,
        ports: Vec<u16>,
    ) -> FakeProcess {
        FakeProcess {
            pid,
            group,
            env,
            cmdline,
            ports,
        }
    }

    struct Fake(Vec<FakeProcess>);

    impl Fake {
        fn find(&self, pid: i32) -> Option<&FakeProcess> {
            self.0.iter().find(|p| p.pid == pid)
        }
    }

    impl Processes for Fake {
        fn pids(&self) -> Result<Vec<i32>, Error> {
            Ok(self.0.iter().map(|p| p.pid).collect())
        }
        fn process_group(&self, pid: i32) -> Option<i32> {
            self.find(pid).map(|p| p.group)
        }
        fn environ(&self, pid: i32) -> Vec<(String, String)> {
            self.find(pid).map(|p| p.env.clone()).unwrap_or_default()
        }
        fn cmdline(&self, pid: i32) -> std::io::Result<Vec<u8>> {
            self.find(pid)
                .map(|p| p.cmdline.clone())
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
        fn listening_ports(&self, pid: i32) -> Vec<u16> {
            self.find(pid).map(|p| p.ports.clone()).unwrap_or_default()
        }
    }

    fn env(node: &str, run_dir: &Path) -> Vec<(String, String)> {
        vec![
            ("PATH".into(), "/bin".into()),
            ("ORDEAL_NODE".into(), node.into()),
            ("ORDEAL_RUN_DIR".into(), run_dir.display().to_string()),
        ]
    }

    fn cmdline(words: &[&str]) -> Vec<u8> {
        words
            .iter()
            .flat_map(|w| [w.as_bytes(), b"\0"].concat())
            .collect()
    }

    #[test]
    fn environ_pairs_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_environ(b"A=1\0B=x=y\0junk\0\0C=\0"),
            [
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "x=y".to_string()),
                ("C".to_string(), String::new()),
            ]
        );
    }

    #[test]
    fn listening_ports_are_the_listening_sockets_of_the_process() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0 100 0 0 10 0
   1: 0100007F:1F91 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 222 1 0 20 4 30 10 -1
   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1 0 100 0 0 10 0
   3: 00000000000000000000000001000000:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 444 1 0 100 0 0 10 0
";
        let inodes: HashSet<String> = ["111", "222", "444"].map(String::from).into();
        // 222 is an established connection; 333 is another process's listener.
        assert_eq!(listening_in(table, &inodes), [8080, 8082]);
    }

    #[test]
    fn ports_are_replaced_as_whole_numbers_only() {
        assert_eq!(
            replace_number("--port=8080,18080,80801,8080", 8080, "{port}"),
            "--port={port},18080,80801,{port}"
        );
        assert_eq!(replace_number("é8080ü", 8080, "{p}"), "é{p}ü");
        assert_eq!(replace_number("x", 8080, "{p}"), "x");
    }

    #[test]
    fn command_lines_become_templates() {
        let words = template_words(
            &cmdline(&[
                "srv",
                "--dir=/run/data/n1/x",
                "{json}",
                "127.0.0.1:7000",
                "7001",
                "17001",
            ]),
            "/run/data/n1",
            &[7000, 7001],
        );
        assert_eq!(
            words,
            [
                "srv",
                "--dir={data_dir}/x",
                "{{json}}",
                "127.0.0.1:{port}",
                "{port_1}",
                "17001"
            ]
        );
    }

    #[test]
    fn a_command_source_is_split_like_a_shell_would() {
        let src = RecipeSource::Command {
            cmd: "srv --port {port} 'a b'".into(),
            data_dir: "/d".into(),
            pid: 42,
        };
        assert_eq!(
            src.recipe(&Fake(Vec::new()), Some(9)).unwrap(),
            Recipe {
                words: vec!["srv".into(), "--port".into(), "{port}".into(), "a b".into()],
                data_dir: "/d".into(),
                pid: 42,
                extra_ports: Vec::new(),
            }
        );
    }

    /// A node that appears (and starts listening) only after a few looks.
    struct Late {
        looks: std::cell::Cell<u32>,
        then: Fake,
    }

    impl Processes for Late {
        fn pids(&self) -> Result<Vec<i32>, Error> {
            self.looks.set(self.looks.get() + 1);
            match self.looks.get() {
                1 => Ok(Vec::new()),
                _ => self.then.pids(),
            }
        }
        fn process_group(&self, pid: i32) -> Option<i32> {
            self.then.process_group(pid)
        }
        fn environ(&self, pid: i32) -> Vec<(String, String)> {
            self.then.environ(pid)
        }
        fn cmdline(&self, pid: i32) -> std::io::Result<Vec<u8>> {
            self.then.cmdline(pid)
        }
        fn listening_ports(&self, pid: i32) -> Vec<u16> {
            match self.looks.get() {
                2 => Vec::new(),
                _ => self.then.listening_ports(pid),
            }
        }
    }

    #[test]
    fn a_node_recipe_waits_for_the_node_to_start_and_listen() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().to_path_buf();
        fs::create_dir_all(run.join("data/n1")).unwrap();
        let procs = Late {
            looks: std::cell::Cell::new(0),
            then: Fake(vec![fake(
                20,
                20,
                env("n1", &run),
                cmdline(&["kv"]),
                vec![7000],
            )]),
        };
        let src = RecipeSource::Node {
            run_dir: run.clone(),
            node: "n1".into(),
        };
        let r = src
            .recipe_within(&procs, None, Duration::from_secs(10))
            .unwrap();
        assert_eq!((r.pid, procs.looks.get()), (20, 3));
        // Without time to wait, the first look decides.
        procs.looks.set(0);
        let e = src.recipe_within(&procs, None, Duration::ZERO).unwrap_err();
        assert!(
            e.to_string().starts_with("no running process of node `n1`"),
            "{e}"
        );
    }

    #[test]
    fn a_node_is_found_by_its_environment_and_its_ports_become_placeholders() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        let other_run = tmp.path().join("other");
        fs::create_dir_all(run.join("data/n1")).unwrap();
        fs::create_dir_all(&other_run).unwrap();
        let data = fs::canonicalize(run.join("data/n1")).unwrap();
        let argv = |port: &str| {
            cmdline(&[
                "kv",
                "--data",
                &data.display().to_string(),
                "--port",
                port,
                "--peer",
                "7001",
            ])
        };
        let procs = Fake(vec![
            // Same node name in another run; a child (not the group leader) of the node.
            fake(10, 10, env("n1", &other_run), argv("7000"), vec![7000]),
            fake(11, 12, env("n1", &run), argv("7000"), vec![7000]),
            fake(12, 12, env("n1", &run), argv("7000"), vec![7001, 7000]),
            fake(13, 13, env("n2", &run), argv("7000"), vec![7002]),
        ]);
        let src = RecipeSource::Node {
            run_dir: run.clone(),
            node: "n1".into(),
        };
        let r = src.recipe(&procs, Some(7000)).unwrap();
        assert_eq!(r.pid, 12);
        assert_eq!(r.data_dir, data);
        assert_eq!(
            r.words,
            [
                "kv",
                "--data",
                "{data_dir}",
                "--port",
                "{port}",
                "--peer",
                "{port_1}"
            ]
        );
        assert_eq!(r.extra_ports, ["port_1"]);
        // Without the upstream port the kernel's order decides which one is {port}.
        let r = src.recipe(&procs, None).unwrap();
        assert_eq!(r.words[4], "{port_1}");
        assert_eq!(r.words[6], "{port}");
    }

    #[test]
    fn a_node_recipe_says_what_is_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().to_path_buf();
        let node = |name: &str| RecipeSource::Node {
            run_dir: run.clone(),
            node: name.into(),
        };
        let procs = Fake(vec![
            fake(20, 20, env("n1", &run), cmdline(&["kv"]), Vec::new()),
            fake(21, 21, env("n2", &run), cmdline(&["kv"]), Vec::new()),
        ]);
        let err = |name: &str| node(name).recipe(&procs, None).unwrap_err().to_string();
        assert_eq!(
            err("n3"),
            format!(
                "no running process of node `n3` in run {} (is the run still going?)",
                run.display()
            )
        );
        let canon = fs::canonicalize(&run).unwrap();
        assert_eq!(
            err("n1"),
            format!(
                "node `n1` has no data directory ({})",
                canon.join("data/n1").display()
            )
        );
        fs::create_dir_all(run.join("data/n2")).unwrap();
        assert_eq!(err("n2"), "node `n2` (pid 21) listens on no TCP port");
        let missing = RecipeSource::Node {
            run_dir: run.join("nope"),
            node: "n1".into(),
        };
        assert!(missing
            .recipe(&procs, None)
            .unwrap_err()
            .to_string()
            .starts_with(&format!("run directory {}: ", run.join("nope").display())));
    }
}
