//! A campaign's settings: [`Config`], written as the campaign header (`campaign.json`) and
//! rebuilt from it to resume or merge a campaign.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ordeal_experiment::Experiment;
use serde::Serialize;

use crate::candidates::FaultModel;
use crate::journal::{self, CampaignHeader, Shard};
use crate::progress::ProgressMode;
use crate::strategy::StrategyKind;
use crate::Error;

/// What `ordeal replay` needs, written as `replay.json` in every run directory (the same
/// record `ordeal run` writes).
#[derive(Debug, Clone, Serialize)]
pub struct ReplaySource {
    pub experiment_path: PathBuf,
    pub experiment: String,
    pub set: Vec<String>,
}

/// A campaign's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The experiment, variables already set.
    pub experiment: Experiment,
    pub replay: ReplaySource,
    pub ordeal_exe: PathBuf,
    /// The campaign directory (must not exist or be empty).
    pub out: PathBuf,
    /// Exploration runs (fault-free baselines included).
    pub runs: Option<u64>,
    /// Time budget of the exploration.
    pub time: Option<Duration>,
    /// Stop after this many consecutive runs without a new behaviour.
    pub until_stable: Option<u64>,
    /// Runs in parallel.
    pub jobs: usize,
    /// Fault-free runs first (at least 1): the reference behaviours and the candidates'
    /// first points; a failing one is reported before anything else.
    pub baselines: u64,
    pub seed: u64,
    pub strategy: StrategyKind,
    /// Reruns of each minimal schedule to measure its reproduction rate.
    pub reruns: u32,
    pub shrink: bool,
    /// Stop exploring once this many distinct failures were found.
    pub stop_after: Option<usize>,
    pub model: FaultModel,
    /// Keep the directory of every run (default: only failing, erroneous and first-of-a-kind).
    pub keep_runs: bool,
    pub progress: ProgressMode,
    /// This campaign's part of a sharded campaign (docs/scale.md): exploration run i belongs
    /// to shard i mod N, and choices are planned from the baseline runs only.
    pub shard: Option<Shard>,
    /// Continue the interrupted campaign in `out` (its journal) instead of starting one.
    pub resume: bool,
}

impl Config {
    /// The campaign header of these settings.
    pub fn header(&self) -> CampaignHeader {
        CampaignHeader {
            format: journal::FORMAT.into(),
            journal_version: journal::JOURNAL_VERSION,
            ordeal_version: journal::ORDEAL_VERSION.into(),
            experiment: self.experiment.name().to_string(),
            experiment_hash: journal::experiment_hash(
                &self.replay.experiment,
                self.experiment.vars(),
            ),
            experiment_path: self.replay.experiment_path.clone(),
            experiment_text: self.replay.experiment.clone(),
            set: self.replay.set.clone(),
            seed: self.seed,
            strategy: self.strategy.name().to_string(),
            jobs: self.jobs,
            runs: self.runs,
            time_s: self.time.map(|t| t.as_secs()),
            until_stable: self.until_stable,
            stop_after: self.stop_after,
            reruns: self.reruns,
            shrink: self.shrink,
            keep_runs: self.keep_runs,
            model: self.model.clone(),
            shard: self.shard,
            baselines: Some(self.baselines),
        }
    }

    /// The settings of the campaign `header` records (read from `dir` with
    /// [`journal::read_header`]), to resume it in `dir`: the recorded experiment text with the
    /// recorded variables, every budget and choice as recorded.
    pub fn resume(
        dir: &Path,
        header: &CampaignHeader,
        ordeal_exe: PathBuf,
        progress: ProgressMode,
    ) -> Result<Config, Error> {
        let h = header;
        let mut experiment =
            Experiment::parse(&h.experiment_text, &h.experiment_path).map_err(|source| {
                Error::RecordedExperiment {
                    dir: dir.to_path_buf(),
                    source,
                }
            })?;
        for kv in &h.set {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| Error::Usage(format!("{}: recorded --set {kv}", dir.display())))?;
            experiment.set_var(k, v)?;
        }
        let strategy = StrategyKind::parse(&h.strategy).ok_or_else(|| {
            Error::Usage(format!(
                "{}: unknown strategy {}",
                dir.display(),
                h.strategy
            ))
        })?;
        let mut cfg = Config::recorded(h, experiment, strategy, ordeal_exe, dir.to_path_buf());
        cfg.progress = progress;
        cfg.resume = true;
        Ok(cfg)
    }

    /// The settings `h` records, with its experiment and strategy made by the caller; quiet,
    /// not resuming.
    pub(crate) fn recorded(
        h: &CampaignHeader,
        experiment: Experiment,
        strategy: StrategyKind,
        ordeal_exe: PathBuf,
        out: PathBuf,
    ) -> Config {
        Config {
            experiment,
            replay: ReplaySource {
                experiment_path: h.experiment_path.clone(),
                experiment: h.experiment_text.clone(),
                set: h.set.clone(),
            },
            ordeal_exe,
            out,
            runs: h.runs,
            time: h.time_s.map(Duration::from_secs),
            until_stable: h.until_stable,
            jobs: h.jobs,
            baselines: h.baselines.unwrap_or(h.jobs as u64),
            seed: h.seed,
            strategy,
            reruns: h.reruns,
            shrink: h.shrink,
            stop_after: h.stop_after,
            model: h.model.clone(),
            keep_runs: h.keep_runs,
            progress: ProgressMode::Quiet,
            shard: h.shard,
            resume: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidates::Action;

    const EXPERIMENT: &str = r#"
name = "t"
[vars]
bugs = ""
[[node]]
name = "n0"
argv = ["/bin/true", "{var.bugs}"]
[[workload]]
name = "client"
argv = ["/bin/true"]
"#;

    fn header() -> CampaignHeader {
        let vars = [("bugs".to_string(), "stale-read".to_string())].into();
        CampaignHeader {
            format: journal::FORMAT.into(),
            journal_version: journal::JOURNAL_VERSION,
            ordeal_version: journal::ORDEAL_VERSION.into(),
            experiment: "t".into(),
            experiment_hash: journal::experiment_hash(EXPERIMENT, &vars),
            experiment_path: "/x/t.toml".into(),
            experiment_text: EXPERIMENT.into(),
            set: vec!["bugs=stale-read".into()],
            seed: 9,
            strategy: "novelty".into(),
            jobs: 3,
            runs: Some(40),
            time_s: Some(600),
            until_stable: Some(12),
            stop_after: Some(2),
            reruns: 4,
            shrink: false,
            keep_runs: true,
            model: FaultModel {
                actions: vec![Action::Delay, Action::Fail],
                long: Duration::from_millis(200),
                restart_after: Duration::from_millis(50),
                max_faults: 3,
                max_disruptions: 1,
                roles: Vec::new(),
            },
            shard: Some(Shard { index: 1, count: 3 }),
            baselines: Some(2),
        }
    }

    #[test]
    fn resumes_the_recorded_campaign() {
        let dir = tempfile::tempdir().unwrap();
        journal::write_header(dir.path(), &header()).unwrap();
        let h = journal::read_header(dir.path()).unwrap();
        let cfg =
            Config::resume(dir.path(), &h, "/bin/ordeal".into(), ProgressMode::Lines).unwrap();
        // Exactly the settings recorded: a resume compares them with campaign.json.
        assert_eq!(cfg.header(), header());
        assert_eq!(cfg.experiment.vars()["bugs"], "stale-read");
        assert_eq!(cfg.out, dir.path());
        assert_eq!(cfg.ordeal_exe, Path::new("/bin/ordeal"));
        assert_eq!(cfg.time, Some(Duration::from_secs(600)));
        assert_eq!(cfg.progress, ProgressMode::Lines);
        assert!(cfg.resume);
    }

    #[test]
    fn refuses_what_it_cannot_rebuild() {
        let dir = Path::new("/c");
        let resume = |h: CampaignHeader| {
            Config::resume(dir, &h, "/bin/ordeal".into(), ProgressMode::Quiet)
                .unwrap_err()
                .to_string()
        };
        let strategy = CampaignHeader {
            strategy: "fast".into(),
            ..header()
        };
        assert_eq!(resume(strategy), "/c: unknown strategy fast");
        let set = CampaignHeader {
            set: vec!["bugs".into()],
            ..header()
        };
        assert_eq!(resume(set), "/c: recorded --set bugs");
        let text = CampaignHeader {
            experiment_text: "name = 3".into(),
            ..header()
        };
        let e = resume(text);
        assert!(
            e.starts_with("/c: the recorded experiment: /x/t.toml:"),
            "{e}"
        );
    }
}
