//! `ordeal snapshot RUN_DIR` and the diagnostics flags of `ordeal run`/`demo`.

use anyhow::Context;
use clap::Args;
use ordeal_run::diag::{self, DiagOptions, DumpKind};
use std::path::PathBuf;
use std::time::Duration;

/// Hang detection, snapshots and dumps (docs/outputs.md#snapshots).
#[derive(Args, Clone, Default)]
pub struct DiagFlags {
    /// No traced event for this long while workloads run = hung ("30s", or "off");
    /// overrides the experiment's `hang_timeout`.
    #[arg(long, value_name = "DURATION")]
    hang_timeout: Option<String>,
    /// Do not snapshot the nodes when the run fails, errs or hangs.
    #[arg(long)]
    no_snapshots: bool,
    /// Write a dump of every traced process with each snapshot into DIR (never elsewhere).
    #[arg(long, value_name = "DIR")]
    dump_dir: Option<PathBuf>,
    /// Dump kind: `minidump` (threads, registers, stacks, module list) or `core` (full ELF
    /// core honouring /proc/PID/coredump_filter). Needs --dump-dir.
    #[arg(long, value_name = "KIND", requires = "dump_dir")]
    dump: Option<String>,
    /// Refuse a dump that would leave less than SIZE free on --dump-dir's filesystem
    /// (default 1G).
    #[arg(long, value_name = "SIZE", requires = "dump_dir")]
    dump_reserve: Option<String>,
    /// Refuse a dump estimated bigger than SIZE (default 4G).
    #[arg(long, value_name = "SIZE", requires = "dump_dir")]
    dump_cap: Option<String>,
}

impl DiagFlags {
    pub fn options(&self) -> anyhow::Result<DiagOptions> {
        let mut o = DiagOptions {
            snapshot_on_failure: !self.no_snapshots,
            ..DiagOptions::default()
        };
        if let Some(t) = &self.hang_timeout {
            o.hang_timeout = Some(if t.trim() == "off" {
                None
            } else {
                let d = ordeal_experiment::parse_duration(t)
                    .map_err(|e| anyhow::anyhow!("--hang-timeout {t}: {e}"))?;
                anyhow::ensure!(!d.is_zero(), "--hang-timeout must be greater than zero");
                Some(d)
            });
        }
        if let Some(d) = &self.dump_dir {
            anyhow::ensure!(
                d.is_dir(),
                "--dump-dir {}: not an existing directory",
                d.display()
            );
            o.dump_dir = Some(std::path::absolute(d).unwrap_or_else(|_| d.clone()));
        }
        if let Some(k) = &self.dump {
            o.dump_kind = k
                .parse::<DumpKind>()
                .map_err(|e| anyhow::anyhow!("--dump: {e}"))?;
        }
        if let Some(s) = &self.dump_reserve {
            o.dump_reserve =
                diag::parse_size(s).map_err(|e| anyhow::anyhow!("--dump-reserve: {e}"))?;
        }
        if let Some(s) = &self.dump_cap {
            o.dump_cap = diag::parse_size(s).map_err(|e| anyhow::anyhow!("--dump-cap: {e}"))?;
        }
        Ok(o)
    }
}

#[derive(Args)]
pub struct SnapshotArgs {
    /// The directory of a run in progress.
    run_dir: PathBuf,
    /// A label recorded in the snapshot.
    #[arg(long, default_value = "")]
    label: String,
    /// How long to wait for the run to answer.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    timeout: String,
    /// Print the snapshot's text instead of its path.
    #[arg(long)]
    print: bool,
}

/// `ordeal snapshot RUN_DIR`: asks the running supervisor for a snapshot of every node.
pub fn snapshot(args: SnapshotArgs) -> anyhow::Result<u8> {
    let timeout: Duration = ordeal_experiment::parse_duration(&args.timeout)
        .map_err(|e| anyhow::anyhow!("--timeout {}: {e}", args.timeout))?;
    let path = diag::request_snapshot(&args.run_dir, &args.label, timeout)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("snapshot of the run in {}", args.run_dir.display()))?;
    if args.print {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        print!("{text}");
    } else {
        println!("{}", path.display());
    }
    Ok(0)
}
