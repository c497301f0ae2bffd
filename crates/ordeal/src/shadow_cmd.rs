//! `ordeal shadow`, `ordeal clone` and `ordeal proxy`: thin wrappers over `ordeal-shadow`.

use anyhow::{bail, Context};
use clap::Args;
use ordeal_shadow::clone::{self as cl, CloneProcess, SnapshotReport};
use ordeal_shadow::replay::{start_recorder, start_replayer, Endpoint, Recording};
use ordeal_shadow::{
    ApiServer, Framing, OverflowPolicy, Proxy, ProxyConfig, Registry, ShadowTarget, TargetConfig,
    TargetReport, Toxic,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a clone comes from.
#[derive(Args, Clone, Debug, Default)]
pub struct CloneSource {
    /// The copy's command, with placeholders {port}, {addr} (127.0.0.1:{port}), {data_dir}
    /// and {backend.NAME}; split like a shell would (quotes, backslashes), no shell run.
    #[arg(long, value_name = "COMMAND")]
    cmd: Option<String>,
    /// Production's data directory (copied while production is paused).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Production's pid (its process group is paused, unless it is ordeal's own).
    #[arg(long)]
    pid: Option<i32>,
    /// Clone node NODE of a running experiment instead (run directory from --run-dir or
    /// $ORDEAL_RUN_DIR): its pid, command line (ports and data dir replaced) and data dir are
    /// found from the run.
    #[arg(long, value_name = "NODE", conflicts_with_all = ["cmd", "data_dir", "pid"])]
    node: Option<String>,
    /// The experiment's run directory, for --node.
    #[arg(long, value_name = "DIR", requires = "node")]
    run_dir: Option<PathBuf>,
    /// Where copies go; default: a temporary directory removed at exit (or RUN_DIR/shadow).
    #[arg(long, value_name = "DIR")]
    clone_dir: Option<PathBuf>,
    /// How long the copy may take to listen on its port.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    ready_timeout: Duration,
}

/// `ordeal clone`.
#[derive(Args, Debug)]
pub struct CloneArgs {
    #[command(flatten)]
    src: CloneSource,
    /// Stop (and kill the copy) after this long; default: at SIGINT/SIGTERM.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    duration: Option<Duration>,
}

/// `ordeal shadow`.
#[derive(Args, Debug)]
pub struct ShadowArgs {
    /// Where clients connect (production's traffic goes through here).
    #[arg(long, value_name = "ADDR")]
    listen: String,
    /// Production's address.
    #[arg(long, value_name = "ADDR")]
    upstream: String,
    /// A debug target that is already running (repeatable): NAME=ADDR or ADDR.
    #[arg(long = "target", value_name = "[NAME=]ADDR")]
    targets: Vec<String>,
    #[command(flatten)]
    src: CloneSource,
    /// A changed version to compare with production, started from the same copy as the
    /// clone; the clone (same version) then serves as the noise reference (Diffy).
    #[arg(long, value_name = "COMMAND")]
    candidate_cmd: Option<String>,
    /// Record production's connections to a backend and answer the copies from the
    /// recording: NAME=LISTEN=BACKEND. Production must use LISTEN; copies get
    /// {backend.NAME}, the replay endpoint's address (repeatable).
    #[arg(long = "backend", value_name = "NAME=LISTEN=BACKEND")]
    backends: Vec<String>,
    /// Per-connection debug window (bytes; KiB, MiB, GiB suffixes).
    #[arg(long, value_name = "SIZE", default_value = "4MiB", value_parser = size)]
    window: usize,
    /// On overflow: mark the target diverged (default) or clone production again.
    #[arg(long, value_name = "POLICY", default_value = "diverge")]
    on_overflow: OverflowPolicy,
    /// Response framing for per-message comparison: none, lines, resp.
    #[arg(long, default_value = "none")]
    framing: Framing,
    /// Serve the toxics/shadow JSON API here (loopback), e.g. 127.0.0.1:8474.
    #[arg(long, value_name = "ADDR")]
    api: Option<String>,
    /// Print each target's state this often on stderr (0: never).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration_or_zero)]
    status_every: Duration,
    /// Write the report (JSON) here, refreshed at every status tick and at the end.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Stop after this long; default: at SIGINT/SIGTERM.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    duration: Option<Duration>,
    /// Limit on recorded backend traffic (bytes).
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = size)]
    record_limit: usize,
}

/// `ordeal proxy`.
#[derive(Args, Debug)]
pub struct ProxyArgs {
    /// The JSON API's address (loopback).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8474")]
    api: String,
    /// A proxy to create at start: NAME=LISTEN=UPSTREAM (repeatable).
    #[arg(long = "proxy", value_name = "NAME=LISTEN=UPSTREAM")]
    proxies: Vec<String>,
    /// A toxic schedule entry: AT:PROXY:ACTION, where ACTION is a toxic as JSON (added),
    /// -NAME (removed), down, up or reset; AT a duration from start (repeatable).
    #[arg(long = "at", value_name = "AT:PROXY:ACTION")]
    at: Vec<String>,
    /// Stop after this long; default: at SIGINT/SIGTERM.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    duration: Option<Duration>,
}

fn duration(s: &str) -> Result<Duration, String> {
    ordeal_experiment::parse_duration(s).map_err(|e| e.to_string())
}

fn duration_or_zero(s: &str) -> Result<Duration, String> {
    if s == "0" {
        Ok(Duration::ZERO)
    } else {
        duration(s)
    }
}

fn size(s: &str) -> Result<usize, String> {
    let (num, mul) = [
        ("GiB", 1usize << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("B", 1),
    ]
    .iter()
    .find_map(|(suf, m)| s.strip_suffix(suf).map(|n| (n, *m)))
    .unwrap_or((s, 1));
    let n: usize = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid size `{s}` (e.g. 65536, 256KiB, 4MiB)"))?;
    n.checked_mul(mul)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("invalid size `{s}`"))
}

fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    Ok(stop)
}

/// Sleeps in small steps until `stop`, `until` or `tick` returns false.
fn run_until(stop: &AtomicBool, until: Option<Instant>, every: Duration, mut tick: impl FnMut()) {
    let mut next = Instant::now() + every;
    loop {
        if stop.load(Ordering::SeqCst) || until.is_some_and(|u| Instant::now() >= u) {
            return;
        }
        if !every.is_zero() && Instant::now() >= next {
            tick();
            next += every;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A clone recipe: command words with placeholders, the data dir, the pid to pause.
#[derive(Debug, Clone)]
struct Recipe {
    words: Vec<String>,
    data_dir: PathBuf,
    pid: i32,
    /// Extra placeholders (one per other listening port of a node: {port_N}).
    extra_ports: Vec<String>,
}

fn env_of(pid: i32) -> Vec<(String, String)> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter_map(|kv| {
                    let s = String::from_utf8_lossy(kv);
                    s.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The listening TCP ports of `pid` (its socket inodes matched in /proc/PID/net/tcp{,6}).
fn listening_ports(pid: i32) -> Vec<u16> {
    let mut inodes = std::collections::HashSet::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in rd.flatten() {
            if let Ok(l) = std::fs::read_link(e.path()) {
                let l = l.to_string_lossy().to_string();
                if let Some(i) = l.strip_prefix("socket:[").and_then(|x| x.strip_suffix(']')) {
                    inodes.insert(i.to_string());
                }
            }
        }
    }
    let mut ports = Vec::new();
    for f in ["tcp", "tcp6"] {
        let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/net/{f}")) else {
            continue;
        };
        for line in t.lines().skip(1) {
            let c: Vec<&str> = line.split_whitespace().collect();
            if c.len() > 9 && c[3] == "0A" && inodes.contains(c[9]) {
                if let Some(p) = c[1]
                    .rsplit(':')
                    .next()
                    .and_then(|h| u16::from_str_radix(h, 16).ok())
                {
                    if !ports.contains(&p) {
                        ports.push(p);
                    }
                }
            }
        }
    }
    ports
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
fn node_recipe(run_dir: &Path, node: &str, upstream_port: Option<u16>) -> anyhow::Result<Recipe> {
    let want = std::fs::canonicalize(run_dir)
        .with_context(|| format!("run directory {}", run_dir.display()))?;
    let mut found = None;
    for e in std::fs::read_dir("/proc")
        .context("reading /proc")?
        .flatten()
    {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if cl::process_group(pid) != Some(pid) {
            continue;
        }
        let env = env_of(pid);
        let get = |k: &str| env.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
        if get("ORDEAL_NODE").as_deref() == Some(node)
            && get("ORDEAL_RUN_DIR")
                .and_then(|d| std::fs::canonicalize(d).ok())
                .is_some_and(|d| d == want)
        {
            found = Some(pid);
            break;
        }
    }
    let pid = found.with_context(|| {
        format!(
            "no running process of node `{node}` in run {} (is the run still going?)",
            run_dir.display()
        )
    })?;
    let data_dir = want.join("data").join(node);
    if !data_dir.is_dir() {
        bail!(
            "node `{node}` has no data directory ({})",
            data_dir.display()
        );
    }
    let cmdline =
        std::fs::read(format!("/proc/{pid}/cmdline")).context("reading the node's command line")?;
    let dd = data_dir.to_string_lossy().to_string();
    let mut ports = listening_ports(pid);
    if let Some(u) = upstream_port {
        ports.retain(|&p| p != u);
        ports.insert(0, u);
    }
    if ports.is_empty() {
        bail!("node `{node}` (pid {pid}) listens on no TCP port");
    }
    let mut extra = Vec::new();
    let words = cmdline
        .split(|&c| c == 0)
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut s = String::from_utf8_lossy(w)
                .replace('{', "{{")
                .replace('}', "}}");
            s = s.replace(&dd, "{data_dir}");
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
        .collect();
    for i in 1..ports.len() {
        extra.push(format!("port_{i}"));
    }
    Ok(Recipe {
        words,
        data_dir,
        pid,
        extra_ports: extra,
    })
}

fn recipe(src: &CloneSource, upstream_port: Option<u16>) -> anyhow::Result<Option<Recipe>> {
    if let Some(node) = &src.node {
        let run_dir = match &src.run_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("ORDEAL_RUN_DIR")
                .map(PathBuf::from)
                .context("--node needs --run-dir (or ORDEAL_RUN_DIR, set inside a run)")?,
        };
        return node_recipe(&run_dir, node, upstream_port).map(Some);
    }
    match (&src.cmd, &src.data_dir, src.pid) {
        (None, None, None) => Ok(None),
        (Some(cmd), Some(d), Some(pid)) => Ok(Some(Recipe {
            words: cl::split_command(cmd)?,
            data_dir: d.clone(),
            pid,
            extra_ports: Vec::new(),
        })),
        _ => bail!("a clone needs --cmd, --data-dir and --pid together (or --node)"),
    }
}

/// Copies and a started copy.
struct Cloned {
    proc_: CloneProcess,
    snapshot: SnapshotReport,
    addr: SocketAddr,
    ready_seconds: f64,
}

fn start_copy(
    words: &[String],
    dir: PathBuf,
    extra: &[String],
    backends: &BTreeMap<String, String>,
    log_dir: &Path,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<(CloneProcess, SocketAddr, f64)> {
    let port = cl::free_port()?;
    let mut values = BTreeMap::new();
    values.insert("port".to_string(), port.to_string());
    values.insert("addr".to_string(), format!("127.0.0.1:{port}"));
    values.insert("data_dir".to_string(), dir.to_string_lossy().to_string());
    for e in extra {
        values.insert(e.clone(), cl::free_port()?.to_string());
    }
    for (k, v) in backends {
        values.insert(format!("backend.{k}"), v.clone());
    }
    let argv = cl::expand(words, &values)?;
    let mut p = cl::start_clone(argv, port, dir, Some(log_dir), name)?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let ready = cl::wait_ready(&mut p, addr, timeout)?;
    Ok((p, addr, ready.as_secs_f64()))
}

/// Pauses production, runs `while_paused`, copies, resumes, starts the copy.
#[allow(clippy::too_many_arguments)]
fn make_clone(
    r: &Recipe,
    words: &[String],
    root: &Path,
    name: &str,
    backends: &BTreeMap<String, String>,
    timeout: Duration,
    while_paused: impl FnOnce(),
    also_copy_to: Option<&Path>,
) -> anyhow::Result<Cloned> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let dest = root.join(format!("{name}-{stamp}"));
    let snapshot = cl::snapshot(r.pid, &r.data_dir, &dest, while_paused)
        .with_context(|| format!("cloning pid {} ({})", r.pid, r.data_dir.display()))?;
    if let Some(other) = also_copy_to {
        cl::copy_dir(&dest, other)?;
    }
    let (proc_, addr, ready_seconds) = start_copy(
        words,
        dest,
        &r.extra_ports,
        backends,
        &root.join("logs"),
        name,
        timeout,
    )?;
    Ok(Cloned {
        proc_,
        snapshot,
        addr,
        ready_seconds,
    })
}

fn clone_root(src: &CloneSource) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    if let Some(d) = &src.clone_dir {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        return Ok((d.clone(), None));
    }
    if src.node.is_some() {
        if let Some(rd) = src
            .run_dir
            .clone()
            .or_else(|| std::env::var_os("ORDEAL_RUN_DIR").map(PathBuf::from))
        {
            let d = rd.join("shadow");
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            return Ok((d, None));
        }
    }
    let t = tempfile::Builder::new()
        .prefix("ordeal-clone-")
        .tempdir()
        .context("creating a temporary directory")?;
    Ok((t.path().to_path_buf(), Some(t)))
}

fn print_snapshot(name: &str, c: &Cloned) {
    eprintln!(
        "ordeal: {name}: paused production {:.3} ms ({} process(es), {}), {} of {} file(s), {} bytes → {}; copy pid {} on {} (ready in {:.3} s)",
        c.snapshot.pause_seconds * 1e3,
        c.snapshot.paused.len(),
        c.snapshot.paused_scope,
        serde_json::to_value(c.snapshot.method).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
        c.snapshot.files_copied + c.snapshot.files_reflinked,
        c.snapshot.bytes,
        c.snapshot.dest.display(),
        c.proc_.pid(),
        c.addr,
        c.ready_seconds,
    );
}

fn snapshot_json(c: &Cloned) -> serde_json::Value {
    serde_json::json!({
        "snapshot": c.snapshot,
        "pid": c.proc_.pid(),
        "addr": c.addr.to_string(),
        "argv": c.proc_.argv,
        "ready_seconds": c.ready_seconds,
    })
}

pub fn clone(args: CloneArgs) -> anyhow::Result<u8> {
    let stop = stop_flag()?;
    let Some(r) = recipe(&args.src, None)? else {
        bail!("nothing to clone: give --cmd, --data-dir and --pid, or --node");
    };
    let (root, _tmp) = clone_root(&args.src)?;
    let c = make_clone(
        &r,
        &r.words,
        &root,
        "clone",
        &BTreeMap::new(),
        args.src.ready_timeout,
        || {},
        None,
    )?;
    print_snapshot("clone", &c);
    println!("{}", serde_json::to_string_pretty(&snapshot_json(&c))?);
    let until = args.duration.map(|d| Instant::now() + d);
    let mut c = c;
    run_until(&stop, until, Duration::from_millis(100), || {});
    if let Ok(Some(st)) = c.proc_.child.try_wait() {
        eprintln!("ordeal: the copy exited: {st}");
    }
    c.proc_.kill();
    Ok(if stop.load(Ordering::SeqCst) { 130 } else { 0 })
}

fn status_line(r: &TargetReport) -> String {
    let diffs = r
        .comparison
        .as_ref()
        .map(|c| {
            let real = c
                .real_differences
                .map(|x| format!(" ({x} real)"))
                .unwrap_or_default();
            format!(
                ", conns same/diff {}/{}, msgs same/diff {}/{}{real}",
                c.connections_identical,
                c.connections_different,
                c.messages_identical,
                c.messages_different
            )
        })
        .unwrap_or_default();
    format!(
        "{}: {:?}, lag {} B / {:.3} s, window left {}, conns fed {}, overflows {}{diffs}",
        r.name,
        r.state,
        r.lag_bytes,
        r.lag_seconds,
        r.remaining_window
            .map_or("-".to_string(), |x| format!("{x} B")),
        r.connections_fed,
        r.overflows
    )
    .to_lowercase()
    .replacen(&r.name.to_lowercase(), &r.name, 1)
}

pub fn shadow(args: ShadowArgs) -> anyhow::Result<u8> {
    let stop = stop_flag()?;
    let reg = Registry::new();
    let _api = match &args.api {
        Some(a) => {
            let s = ApiServer::start(a, Arc::clone(&reg))?;
            eprintln!("ordeal: API on http://{}", s.addr());
            Some(s)
        }
        None => None,
    };
    // Backends: recorder for production, replay endpoint for the copies.
    let rec = Recording::new(args.record_limit as u64);
    let mut endpoints: Vec<(String, Endpoint, Endpoint)> = Vec::new();
    let mut backend_values = BTreeMap::new();
    for b in &args.backends {
        let mut it = b.splitn(3, '=');
        let (Some(n), Some(l), Some(u)) = (it.next(), it.next(), it.next()) else {
            bail!("--backend {b}: expected NAME=LISTEN=BACKEND");
        };
        let recorder = start_recorder(l, u, Arc::clone(&rec))?;
        let replayer = start_replayer("127.0.0.1:0", Arc::clone(&rec))?;
        eprintln!(
            "ordeal: backend {n}: production → {} (recorded) → {u}; copies → {} (replayed)",
            recorder.addr(),
            replayer.addr()
        );
        backend_values.insert(n.to_string(), replayer.addr().to_string());
        endpoints.push((n.to_string(), recorder, replayer));
    }
    let proxy = reg.create(ProxyConfig {
        name: "shadow".into(),
        listen: args.listen.clone(),
        upstream: args.upstream.clone(),
        enabled: true,
    })?;
    eprintln!("ordeal: proxy {} → {}", proxy.listen_addr(), args.upstream);
    let target_cfg = |name: &str, addr: Option<SocketAddr>| {
        let mut c = TargetConfig::new(name, addr);
        c.window = args.window;
        c.policy = args.on_overflow;
        c.framing = args.framing;
        c.compare_limit = args.window.max(1 << 20);
        c
    };
    for (i, t) in args.targets.iter().enumerate() {
        let (name, addr) = match t.split_once('=') {
            Some((n, a)) => (n.to_string(), a),
            None => (format!("target{}", i + 1), t.as_str()),
        };
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("--target {t}: expected [NAME=]IP:PORT"))?;
        proxy.add_shadow(target_cfg(&name, Some(addr)))?;
    }
    let clones: Arc<Mutex<Vec<CloneProcess>>> = Arc::new(Mutex::new(Vec::new()));
    let mut clone_reports = Vec::new();
    let upstream_port = args
        .upstream
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok());
    let (root, _tmp) = clone_root(&args.src)?;
    if let Some(r) = recipe(&args.src, upstream_port)? {
        // Production must be up before it is copied (inside an experiment it may still be
        // starting).
        let deadline = Instant::now() + args.src.ready_timeout;
        while std::net::TcpStream::connect(&args.upstream).is_err() {
            if Instant::now() >= deadline || stop.load(Ordering::SeqCst) {
                bail!(
                    "production at {} never accepted a connection",
                    args.upstream
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let candidate_words = match &args.candidate_cmd {
            Some(c) => Some(cl::split_command(c)?),
            None => None,
        };
        let mut main_cfg = target_cfg("clone", None);
        main_cfg.reference = candidate_words.is_some();
        let main_t = proxy.add_shadow(main_cfg)?;
        let cand_t = match &candidate_words {
            Some(_) => Some(proxy.add_shadow(target_cfg("candidate", None))?),
            None => None,
        };
        // Both targets start in the `starting` state: connections from now on are buffered.
        let cand_dir = candidate_words.as_ref().map(|_| {
            root.join(format!(
                "candidate-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0)
            ))
        });
        let c = match make_clone(
            &r,
            &r.words,
            &root,
            "clone",
            &backend_values,
            args.src.ready_timeout,
            || {},
            cand_dir.as_deref(),
        ) {
            Ok(c) => c,
            Err(e) => {
                main_t.fail(format!("{e:#}"));
                if let Some(t) = &cand_t {
                    t.fail("the clone failed");
                }
                proxy.shutdown();
                return Err(e);
            }
        };
        print_snapshot("clone", &c);
        main_t.set_live(c.addr);
        clone_reports.push(snapshot_json(&c));
        clones
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(c.proc_);
        if let (Some(words), Some(t), Some(dir)) = (&candidate_words, &cand_t, cand_dir) {
            let (p, addr, ready) = start_copy(
                words,
                dir,
                &r.extra_ports,
                &backend_values,
                &root.join("logs"),
                "candidate",
                args.src.ready_timeout,
            )?;
            eprintln!(
                "ordeal: candidate: pid {} on {addr} (ready in {ready:.3} s)",
                p.pid()
            );
            t.set_live(addr);
            clones.lock().unwrap_or_else(|e| e.into_inner()).push(p);
        }
        if args.on_overflow == OverflowPolicy::Reclone {
            let (r2, root2, bv, cl2, timeout) = (
                r.clone(),
                root.clone(),
                backend_values.clone(),
                Arc::clone(&clones),
                args.src.ready_timeout,
            );
            main_t.set_recloner(Arc::new(move |t: &Arc<ShadowTarget>| {
                let c = make_clone(
                    &r2,
                    &r2.words,
                    &root2,
                    "reclone",
                    &bv,
                    timeout,
                    || t.begin_epoch(),
                    None,
                )
                .map_err(|e| format!("{e:#}"))?;
                print_snapshot("re-clone", &c);
                t.set_live(c.addr);
                cl2.lock().unwrap_or_else(|e| e.into_inner()).push(c.proc_);
                Ok(())
            }));
        }
    }
    let report = |final_: bool| -> serde_json::Value {
        serde_json::json!({
            "final": final_,
            "proxy": proxy.view(),
            "clones": clone_reports,
            "backends": endpoints.iter().map(|(n, a, b)| serde_json::json!({
                "name": n, "recorder": a.addr().to_string(), "replay": b.addr().to_string(),
            })).collect::<Vec<_>>(),
            "replay": (!endpoints.is_empty()).then(|| rec.report()),
        })
    };
    let write_report = |v: &serde_json::Value| -> anyhow::Result<()> {
        if let Some(f) = &args.report {
            let tmp = f.with_extension("tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(v)?)
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, f).with_context(|| format!("writing {}", f.display()))?;
        }
        Ok(())
    };
    // At once, not only at the first tick: a shadow inside a run may be killed before it.
    write_report(&report(false))?;
    let until = args.duration.map(|d| Instant::now() + d);
    run_until(&stop, until, args.status_every, || {
        for r in proxy.shadow_reports() {
            eprintln!("ordeal: {}", status_line(&r));
        }
        let _ = write_report(&report(false));
    });
    proxy.set_enabled(false)?;
    proxy.wait_idle(Duration::from_secs(2));
    let fin = report(true);
    proxy.shutdown();
    write_report(&fin)?;
    println!("shadow summary ({} connections)", proxy.stats().connections);
    for r in proxy.shadow_reports() {
        println!("  {}", status_line(&r));
    }
    if let Some(rr) = fin.get("replay").filter(|v| !v.is_null()) {
        println!(
            "  backend replay: {} recorded, {} replayed, requests matched {} / mismatched {}",
            rr["connections_recorded"],
            rr["connections_replayed"],
            rr["requests_matched"],
            rr["requests_mismatched"]
        );
    }
    for mut c in clones.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        c.kill();
    }
    reg.shutdown_all();
    Ok(if stop.load(Ordering::SeqCst) { 130 } else { 0 })
}

enum Action {
    Add(Toxic),
    Remove(String),
    Down,
    Up,
    Reset,
}

fn parse_at(s: &str) -> anyhow::Result<(Duration, String, Action)> {
    let mut it = s.splitn(3, ':');
    let (Some(at), Some(p), Some(a)) = (it.next(), it.next(), it.next()) else {
        bail!("--at {s}: expected AT:PROXY:ACTION");
    };
    let at = duration(at).map_err(|e| anyhow::anyhow!("--at {s}: {e}"))?;
    let act = match a {
        "down" => Action::Down,
        "up" => Action::Up,
        "reset" => Action::Reset,
        _ if a.starts_with('-') => Action::Remove(a[1..].to_string()),
        _ => {
            let mut v: serde_json::Value = serde_json::from_str(a)
                .with_context(|| format!("--at {s}: the toxic is not JSON"))?;
            let kind = v["type"].as_str().unwrap_or("").to_string();
            let stream = v["stream"].as_str().unwrap_or("downstream").to_string();
            if v.get("name").is_none() {
                v["name"] = format!("{kind}_{stream}").into();
            }
            if v.get("stream").is_none() {
                v["stream"] = stream.into();
            }
            if v.get("toxicity").is_none() {
                v["toxicity"] = 1.0.into();
            }
            if v.get("attributes").is_none() {
                v["attributes"] = serde_json::json!({});
            }
            let t: Toxic =
                serde_json::from_value(v).with_context(|| format!("--at {s}: bad toxic"))?;
            t.effect().with_context(|| format!("--at {s}"))?;
            Action::Add(t)
        }
    };
    Ok((at, p.to_string(), act))
}

pub fn proxy(args: ProxyArgs) -> anyhow::Result<u8> {
    let stop = stop_flag()?;
    let reg = Registry::new();
    let mut sched = Vec::new();
    for a in &args.at {
        sched.push(parse_at(a)?);
    }
    sched.sort_by_key(|x| x.0);
    for p in &args.proxies {
        let mut it = p.splitn(3, '=');
        let (Some(n), Some(l), Some(u)) = (it.next(), it.next(), it.next()) else {
            bail!("--proxy {p}: expected NAME=LISTEN=UPSTREAM");
        };
        let px = reg.create(ProxyConfig {
            name: n.into(),
            listen: l.into(),
            upstream: u.into(),
            enabled: true,
        })?;
        eprintln!("ordeal: proxy {n}: {} → {u}", px.listen_addr());
    }
    for (_, p, _) in &sched {
        if reg.get(p).is_none() {
            bail!("--at: no proxy named `{p}` (create it with --proxy)");
        }
    }
    let api = ApiServer::start(&args.api, Arc::clone(&reg))?;
    eprintln!("ordeal: API on http://{}", api.addr());
    let t0 = Instant::now();
    let until = args.duration.map(|d| t0 + d);
    let mut next = 0;
    let get = |n: &str| -> Option<Proxy> { reg.get(n) };
    run_until(&stop, until, Duration::from_millis(1), || {
        while next < sched.len() && t0.elapsed() >= sched[next].0 {
            let (at, p, a) = &sched[next];
            next += 1;
            let Some(px) = get(p) else { continue };
            let r = match a {
                Action::Add(t) => px.add_toxic(t.clone()).map(|_| ()),
                Action::Remove(n) => px.remove_toxic(n),
                Action::Down => px.set_enabled(false),
                Action::Up => px.set_enabled(true),
                Action::Reset => reg.reset(),
            };
            match r {
                Ok(()) => eprintln!("ordeal: {:?}: {p}: applied", at),
                Err(e) => eprintln!("ordeal: {:?}: {p}: {e}", at),
            }
        }
    });
    drop(api);
    reg.shutdown_all();
    Ok(if stop.load(Ordering::SeqCst) { 130 } else { 0 })
}
