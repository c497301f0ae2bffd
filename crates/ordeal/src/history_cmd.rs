//! `ordeal check-history` and the hidden `ordeal workload`: argument handling over
//! ordeal-history.

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use ordeal_history::workload::{self, etcd::EtcdClient, kv::KvClient, redis::RedisClient};
use ordeal_history::{Budget, Format, Model, Verdict};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Exit code of `check-history` for a linearizable history.
pub const EXIT_LINEARIZABLE: u8 = 0;
/// ... for a non-linearizable one.
pub const EXIT_NOT_LINEARIZABLE: u8 = 1;
/// ... when a budget ran out first.
pub const EXIT_UNKNOWN: u8 = 3;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModelArg {
    /// A single register: read, write.
    Register,
    /// A single register with compare-and-set.
    CasRegister,
    /// A map of cas-registers, checked per key.
    Kv,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    /// history.jsonl
    Jsonl,
    /// Jepsen / Knossos EDN.
    Edn,
}

/// `ordeal check-history`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The history: history.jsonl, or a Jepsen/Knossos .edn file.
    pub file: PathBuf,
    /// The sequential model to check against.
    #[arg(long, value_enum)]
    pub model: ModelArg,
    /// Also write a self-contained HTML report here.
    #[arg(long, value_name = "OUT.html")]
    pub html: Option<PathBuf>,
    /// Give up (exit 3, unknown) after this long: 500ms, 30s, 2m.
    #[arg(long, value_name = "DURATION", value_parser = ordeal_experiment::parse_duration)]
    pub time_limit: Option<Duration>,
    /// Give up (exit 3) when the search's memo tables need more than this: 512MiB, 4GiB, or
    /// bytes.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_limit: Option<u64>,
    /// Give up (exit 3) after this many search steps per key.
    #[arg(long, value_name = "N")]
    pub max_steps: Option<u64>,
    /// Worker threads for kv histories (default: one per CPU).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// The file's format; default by extension (.edn: edn, otherwise jsonl).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Accept a history without any operation as linearizable (by default it is an error:
    /// nothing was checked).
    #[arg(long)]
    pub allow_empty: bool,
}

/// `ordeal workload kv|redis|etcd`.
#[derive(Subcommand, Debug)]
pub enum WorkloadCmd {
    /// The demo KV store (`ordeal kv node`); --addr lists every node in index order.
    Kv(WorkloadArgs),
    /// Redis: --addr the primary first, then replicas (reads go to any).
    Redis(WorkloadArgs),
    /// etcd's v3 JSON gateway: --addr each member's client address.
    Etcd(WorkloadArgs),
}

/// Flags shared by the workloads.
#[derive(Args, Debug)]
pub struct WorkloadArgs {
    /// Node address host:port (loopback only); repeat or separate with commas.
    #[arg(long, value_delimiter = ',', required = true)]
    pub addr: Vec<String>,
    /// Concurrent logical processes.
    #[arg(long, default_value_t = 5)]
    pub processes: usize,
    /// Operations per second, all processes together (0 = unlimited).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Stop invoking after this long.
    #[arg(long, default_value = "10s", value_parser = ordeal_experiment::parse_duration)]
    pub duration: Duration,
    /// Stop after this many operations.
    #[arg(long, default_value_t = 1000)]
    pub ops: u64,
    /// Number of keys (k0, k1, ...).
    #[arg(long, default_value_t = 5)]
    pub keys: u64,
    /// Seed of the random choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// An operation without an answer after this long is indeterminate (info).
    #[arg(long, default_value = "1s", value_parser = ordeal_experiment::parse_duration)]
    pub timeout: Duration,
    /// Where to write the history.
    #[arg(long, default_value = "history.jsonl")]
    pub out: PathBuf,
}

/// `512MiB`, `4GiB`, `100KiB`, `1000000`.
fn parse_size(s: &str) -> Result<u64, ordeal_toml::SizeError> {
    ordeal_toml::parse_size(s)
}

/// Runs `check-history`; returns the exit code.
pub fn check_history(a: CheckArgs) -> anyhow::Result<u8> {
    let format = match a.format {
        Some(FormatArg::Edn) => Format::Edn,
        Some(FormatArg::Jsonl) => Format::Jsonl,
        None => Format::from_path(&a.file),
    };
    let model = match a.model {
        ModelArg::Register => Model::Register,
        ModelArg::CasRegister => Model::CasRegister,
        ModelArg::Kv => Model::Kv,
    };
    let budget = Budget {
        time: a.time_limit,
        memory: a.memory_limit,
        max_steps: a.max_steps,
        threads: a.threads,
    };
    let report = ordeal_history::check_file(&a.file, format, model, &budget)?;
    if report.operations.is_empty() && !a.allow_empty {
        anyhow::bail!(
            "{}: the history has no operations: nothing to check (--allow-empty accepts an \
             empty history as linearizable)",
            a.file.display()
        );
    }
    // Write errors (a closed pipe) do not change the verdict.
    let mut stdout = std::io::stdout();
    let _ = write!(stdout, "{}", ordeal_history::text_report(&report));
    if let Some(out) = &a.html {
        let html = ordeal_history::html::render(&report, &a.file.display().to_string());
        std::fs::write(out, html).with_context(|| format!("writing {}", out.display()))?;
        let _ = writeln!(stdout, "report: {}", out.display());
    }
    Ok(match report.verdict {
        Verdict::Linearizable => EXIT_LINEARIZABLE,
        Verdict::NotLinearizable => EXIT_NOT_LINEARIZABLE,
        Verdict::Unknown(_) => EXIT_UNKNOWN,
    })
}

/// Runs a recording workload; returns the exit code (0 recorded, errors are `Err`).
pub fn workload(cmd: WorkloadCmd) -> anyhow::Result<u8> {
    let (kind, a) = match cmd {
        WorkloadCmd::Kv(a) => ("kv", a),
        WorkloadCmd::Redis(a) => ("redis", a),
        WorkloadCmd::Etcd(a) => ("etcd", a),
    };
    let addrs = workload::loopback_addrs(&a.addr)?;
    if a.duration > Duration::from_secs(3600) {
        anyhow::bail!("--duration is limited to 1h");
    }
    if a.timeout.is_zero() {
        anyhow::bail!("--timeout must be above 0");
    }
    let cfg = workload::Config {
        processes: a.processes,
        rate: a.rate,
        duration: a.duration,
        ops: a.ops,
        keys: a.keys,
        seed: a.seed,
    };
    let file =
        std::fs::File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let out = std::io::BufWriter::new(file);
    let (timeout, seed) = (a.timeout, a.seed);
    let make = |slot: usize| -> Box<dyn workload::Client> {
        let s = seed.wrapping_mul(7919).wrapping_add(slot as u64);
        match kind {
            "kv" => Box::new(KvClient::new(addrs.clone(), timeout, s)),
            "redis" => Box::new(RedisClient::new(addrs.clone(), timeout, s)),
            _ => Box::new(EtcdClient::new(addrs.clone(), timeout, s)),
        }
    };
    let summary =
        workload::run(&cfg, make, out).with_context(|| format!("recording {}", a.out.display()))?;
    println!("{} → {}", summary.line(), a.out.display());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("1XB").is_err());
        assert!(parse_size("MiB").is_err());
    }
}
