//! `ordeal shadow`, `ordeal clone` and `ordeal proxy`: their flags turned into ordeal-shadow's
//! sessions, clones and toxic schedules, and what those report printed.

use anyhow::{bail, Context};
use clap::Args;
use ordeal_shadow::cloner::{CloneRoot, Cloner};
use ordeal_shadow::recipe::{ProcFs, RecipeSource};
use ordeal_shadow::schedule::{run_schedule, ProxyAction, ScheduledAction};
use ordeal_shadow::session::{run_until, Event, SessionOptions, SessionSetup};
use ordeal_shadow::{ApiServer, Framing, OverflowPolicy, ProxyConfig, Registry};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
    /// Let proxies created through the API listen on any address (default: loopback only).
    #[arg(long)]
    allow_external: bool,
}

fn duration(s: &str) -> Result<Duration, ordeal_toml::DurationError> {
    ordeal_toml::parse_duration(s)
}

fn duration_or_zero(s: &str) -> Result<Duration, ordeal_toml::DurationError> {
    if s == "0" {
        Ok(Duration::ZERO)
    } else {
        duration(s)
    }
}

/// A size in bytes, more than 0 (a window, a limit).
fn size(s: &str) -> anyhow::Result<usize> {
    let n = ordeal_toml::parse_size(s)?;
    match usize::try_from(n) {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("invalid size `{s}`: it must be more than 0"),
    }
}

fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    Ok(stop)
}

/// `A<sep>B<sep>C`, the last part keeping any further separators.
fn split3(s: &str, sep: char) -> Option<(&str, &str, &str)> {
    let mut it = s.splitn(3, sep);
    Some((it.next()?, it.next()?, it.next()?))
}

/// The run directory of a `--node` clone: --run-dir, else $ORDEAL_RUN_DIR.
fn node_run_dir(src: &CloneSource) -> Option<PathBuf> {
    src.node.as_ref()?;
    src.run_dir
        .clone()
        .or_else(|| std::env::var_os("ORDEAL_RUN_DIR").map(PathBuf::from))
}

fn clone_root(src: &CloneSource) -> Result<CloneRoot, ordeal_shadow::Error> {
    CloneRoot::new(src.clone_dir.as_deref(), node_run_dir(src).as_deref())
}

fn recipe_source(src: &CloneSource) -> anyhow::Result<Option<RecipeSource>> {
    if let Some(node) = &src.node {
        let run_dir = node_run_dir(src)
            .context("--node needs --run-dir (or ORDEAL_RUN_DIR, set inside a run)")?;
        let node = node.clone();
        return Ok(Some(RecipeSource::Node { run_dir, node }));
    }
    match (&src.cmd, &src.data_dir, src.pid) {
        (None, None, None) => Ok(None),
        (Some(cmd), Some(d), Some(pid)) => Ok(Some(RecipeSource::Command {
            cmd: cmd.clone(),
            data_dir: d.clone(),
            pid,
        })),
        _ => bail!("a clone needs --cmd, --data-dir and --pid together (or --node)"),
    }
}

pub fn clone(args: CloneArgs) -> anyhow::Result<u8> {
    let stop = stop_flag()?;
    let Some(source) = recipe_source(&args.src)? else {
        bail!("nothing to clone: give --cmd, --data-dir and --pid, or --node");
    };
    let recipe = source.recipe_within(&ProcFs, None, args.src.ready_timeout)?;
    let root = clone_root(&args.src)?;
    let cloner = Cloner {
        recipe,
        root: root.path().to_path_buf(),
        backends: BTreeMap::new(),
        ready_timeout: args.src.ready_timeout,
    };
    let mut c = cloner.clone_now("clone", || {}, None)?;
    eprintln!("ordeal: clone: {c}");
    println!("{}", serde_json::to_string_pretty(&c.to_json())?);
    let until = args.duration.map(|d| Instant::now() + d);
    run_until(&stop, until, Duration::from_millis(100), || {});
    if let Ok(Some(st)) = c.copy.process.child.try_wait() {
        eprintln!("ordeal: the copy exited: {st}");
    }
    c.copy.process.kill();
    Ok(if stop.load(Ordering::SeqCst) { 130 } else { 0 })
}

pub fn shadow(args: ShadowArgs) -> anyhow::Result<u8> {
    let stop = stop_flag()?;
    let opts = SessionOptions {
        window: args.window,
        on_overflow: args.on_overflow,
        framing: args.framing,
        status_every: args.status_every,
        report: args.report.clone(),
        record_limit: args.record_limit as u64,
    };
    let mut setup = SessionSetup::new(opts, Arc::new(|e: &Event<'_>| eprintln!("ordeal: {e}")));
    if let Some(a) = &args.api {
        setup.serve_api(a)?;
    }
    for b in &args.backends {
        let (name, listen, backend) = split3(b, '=')
            .with_context(|| format!("--backend {b}: expected NAME=LISTEN=BACKEND"))?;
        setup.add_backend(name, listen, backend)?;
    }
    let mut session = setup.start_proxy(&args.listen, &args.upstream)?;
    for (i, t) in args.targets.iter().enumerate() {
        let (name, addr) = match t.split_once('=') {
            Some((n, a)) => (n.to_string(), a),
            None => (format!("target{}", i + 1), t.as_str()),
        };
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("--target {t}: expected [NAME=]IP:PORT"))?;
        session.add_target(&name, addr)?;
    }
    let root = clone_root(&args.src)?;
    if let Some(source) = recipe_source(&args.src)? {
        let recipe =
            source.recipe_within(&ProcFs, session.upstream_port(), args.src.ready_timeout)?;
        let candidate = args.candidate_cmd.as_deref();
        let timeout = args.src.ready_timeout;
        session.clone_production(recipe, root.path(), timeout, candidate, &stop)?;
    }
    print!("{}", session.run(&stop, args.duration)?);
    Ok(if stop.load(Ordering::SeqCst) { 130 } else { 0 })
}

fn parse_at(s: &str) -> anyhow::Result<ScheduledAction> {
    let Some((at, proxy, action)) = split3(s, ':') else {
        bail!("--at {s}: expected AT:PROXY:ACTION");
    };
    let at = duration(at).map_err(|e| anyhow::anyhow!("--at {s}: {e}"))?;
    let action: ProxyAction = action.parse().with_context(|| format!("--at {s}"))?;
    let proxy = proxy.to_string();
    Ok(ScheduledAction { at, proxy, action })
}

pub fn proxy(args: ProxyArgs) -> anyhow::Result<u8> {
    let stop = stop_flag()?;
    let reg = Registry::new();
    reg.allow_external(args.allow_external);
    let schedule: Vec<_> = args
        .at
        .iter()
        .map(|a| parse_at(a))
        .collect::<Result<_, _>>()?;
    for p in &args.proxies {
        let (name, listen, upstream) = split3(p, '=')
            .with_context(|| format!("--proxy {p}: expected NAME=LISTEN=UPSTREAM"))?;
        let px = reg.create(ProxyConfig {
            name: name.into(),
            listen: listen.into(),
            upstream: upstream.into(),
            enabled: true,
        })?;
        eprintln!("ordeal: proxy {name}: {} → {upstream}", px.listen_addr());
    }
    // The earliest action on a missing proxy is the one named.
    let missing = schedule.iter().filter(|s| reg.get(&s.proxy).is_none());
    if let Some(s) = missing.min_by_key(|s| s.at) {
        bail!(
            "--at: no proxy named `{}` (create it with --proxy)",
            s.proxy
        );
    }
    let api = ApiServer::start(&args.api, Arc::clone(&reg))?;
    eprintln!("ordeal: API on http://{}", api.addr());
    let t0 = Instant::now();
    let until = args.duration.map(|d| t0 + d);
    run_schedule(&reg, schedule, t0, &stop, until, |s, r| match r {
        Ok(()) => eprintln!("ordeal: {:?}: {}: applied", s.at, s.proxy),
        Err(e) => eprintln!("ordeal: {:?}: {}: {e}", s.at, s.proxy),
    });
    drop(api);
    reg.shutdown_all();
    Ok(if stop.load(Ordering::SeqCst) { 130 } else { 0 })
}
