//! Exploration campaigns: run a system many times, learn from each trace where to inject the
//! next faults, and turn every failure into a minimal, reproducible schedule.
//!
//! Flow ([`explore`]): J worker threads run the experiment with [`ordeal_run::run`] (summary
//! only, no graph rendering); the first B runs (`--baselines`) are fault-free [`baseline`]s.
//! After each run, in run order, the coordinator computes the run's behaviour [`fingerprint`]
//! (decoded operations per pair, timing abstracted away), mines the run's trace for candidate
//! points ([`candidates::mine`]; partition [`shapes`] at a node's sends; with `[roles]`, a
//! point's node named by the role it held, from the run's `roles.jsonl`: [`roles`]), and lets the [`strategy`] pick the next
//! schedule (guided, random, systematic or novelty-driven), run as an [`ordeal_faults::Schedule`]
//! built from the candidates ([`schedule`]) and written next to the run for `ordeal replay`.
//! Failing runs are grouped by [`signature`]: the set of their structured causes (the
//! history's anomaly, the check's message, a workload's exit and flagged line, a node's exit,
//! a hang). Each distinct failure is shrunk with [`ddmin`] (over its faults, then towards
//! earlier trigger indices); the original, ddmin's and the earliest schedule are rerun R times
//! each, and the most reproducible candidate is the minimal schedule. When a baseline failed,
//! the fault-free schedule is rerun R times too, and a failure is credited to its faults only
//! when its rate is clearly above the fault-free one (Wilson 95% intervals apart,
//! [`baseline::wilson`]). Outputs ([`report`]): explore.json, junit.xml and a self-contained
//! report.html in the campaign directory (layout in docs/explore.md).
//!
//! Determinism: run i ≥ B is chosen only from the results of runs 0..=max(i-J, B-1), taken in
//! run order, and from the seeded [`rng::Rng`]; the same seed and the same run results give
//! the same choices whatever the order in which parallel runs finish.
//!
//! Durability and scale ([`journal`], [`merge`], docs/scale.md): every finished run is appended
//! (fsynced) to the campaign's `runs.jsonl`; a resume replays the recorded results through the
//! same choices and runs only what is missing ([`Config::resume`] rebuilds the settings from
//! `campaign.json`). `--shard I/N` plans runs from the baselines and
//! takes runs i ≡ I (mod N); [`merge::merge`] combines shard directories.

pub mod baseline;
pub mod campaign;
pub mod candidates;
pub mod config;
pub mod ddmin;
mod error;
mod execute;
pub mod fingerprint;
pub mod journal;
pub mod merge;
pub mod model;
mod pool;
pub mod progress;
pub mod report;
pub mod rng;
pub mod roles;
pub mod schedule;
pub mod shapes;
pub mod signature;
pub mod strategy;

pub use campaign::{explore, run_dir};
pub use candidates::{Action, Fault, FaultModel, Site};
pub use config::{Config, ReplaySource};
pub use error::{Error, RunError};
pub use fingerprint::{fingerprint, Fingerprint};
pub use journal::{CampaignHeader, Shard};
pub use model::{Failure, Outcome, Phases, Reproduction};
pub use progress::ProgressMode;
pub use strategy::StrategyKind;
