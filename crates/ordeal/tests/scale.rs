//! docs/scale.md's cluster recipes, checked against the real thing: the Slurm job array
//! (deploy/slurm/ordeal-explore.sbatch) submitted to a one-machine Slurm cluster that
//! tests/cluster/slurm.sh starts, its three shards merged and compared with the
//! single-machine planned campaign as campaign.rs compares local shards; and the Kubernetes
//! Indexed Job (deploy/k8s/ordeal-explore-job.yaml) validated against the Kubernetes API
//! schema of every version docs/scale.md names by kubernetes-validate (PyPI, installed by .ci/run
//! in `$CARGO_TARGET_DIR/tools/k8s-validate`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_ordeal");
const SLURM_RUNS: u64 = 30;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn journal_lines(dir: &Path) -> Vec<serde_json::Value> {
    let body = std::fs::read_to_string(dir.join("runs.jsonl")).unwrap_or_default();
    body.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The exploration runs of an explore.json, with everything that must match between the
/// merge and the single machine.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Processes whose command line or environment names `needle`.
fn processes_naming(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let p = e.path();
        let named = ["cmdline", "environ"].iter().any(|f| {
            std::fs::read(p.join(f))
                .map(|b| String::from_utf8_lossy(&b).contains(needle))
                .unwrap_or(false)
        });
        if named && e.file_name() != std::process::id().to_string().as_str() {
            found.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

#[test]
fn slurm_job_array_merged_equals_the_single_machine_campaign() {
    let daemons = [
        "slurmctld",
        "slurmd",
        "sbatch",
        "squeue",
        "sinfo",
        "munged",
        "mungekey",
    ];
    if !ordeal_test_support::installed(&daemons, "slurm-wlm munge") {
        return;
    }
    if !is_root() {
        // slurmd runs jobs as their submitter and needs root to do so.
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI runs as root"
        );
        eprintln!("skipped: tests/cluster/slurm.sh runs slurmd, which needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let o = Command::new("bash")
        .arg(repo().join("tests/cluster/slurm.sh"))
        .arg(&out)
        .env("PATH", path)
        .env("RUNS", SLURM_RUNS.to_string())
        .env_remove("SLURM_CONF")
        .output()
        .expect("bash runs");
    let log = text(&o);
    assert!(o.status.success(), "{log}");

    // Nothing of the cluster is left: its directory is gone, and no process names it.
    let cluster = log
        .lines()
        .find_map(|l| l.strip_prefix("slurm: cluster files in "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no cluster directory in:\n{log}"));
    assert!(!Path::new(cluster).exists(), "{cluster} is left behind");
    assert_eq!(processes_naming(cluster), Vec::<String>::new(), "{cluster}");

    let single = out.join("single/shard-0");
    let sj = json(&single.join("explore.json"));
    let header = json(&single.join("campaign.json"));
    assert_eq!(header["shard"], serde_json::json!({"index": 0, "count": 1}));
    assert_eq!(header["runs"], SLURM_RUNS);
    let baselines = header["baselines"].as_u64().unwrap();
    let reruns = header["reruns"].as_u64().unwrap();

    // Each array task ran the baselines and its own runs i ≡ I (mod 3).
    let shards: Vec<PathBuf> = (0..3)
        .map(|i| out.join(format!("shards/shard-{i}")))
        .collect();
    for (i, d) in shards.iter().enumerate() {
        assert_eq!(
            json(&d.join("campaign.json"))["shard"],
            serde_json::json!({"index": i, "count": 3})
        );
        let mut ids: Vec<u64> = journal_lines(d)
            .iter()
            .filter(|e| e["phase"] == "explore")
            .map(|e| e["id"].as_u64().unwrap())
            .collect();
        ids.sort();
        let want: Vec<u64> = (0..SLURM_RUNS)
            .filter(|&r| r < baselines || r % 3 == i as u64)
            .collect();
        assert_eq!(ids, want, "shard {i}/3");
    }

    // The merge job's output (slurm-JOBID.out) has no warning: every shard finished.
    let merge_log: Vec<PathBuf> = std::fs::read_dir(out.join("shards"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("slurm-")
        })
        .collect();
    assert_eq!(merge_log.len(), 1, "{merge_log:?}");
    let merge_text = std::fs::read_to_string(&merge_log[0]).unwrap();
    assert!(
        merge_text.contains("merged 3 campaign directories") && !merge_text.contains("warning"),
        "{merge_text}"
    );
    let merged = out.join("shards/merged");
    let mj = json(&merged.join("explore.json"));
    assert!(merged.join("report.html").is_file() && merged.join("junit.xml").is_file());

    // The union of the shards' runs is the single machine's runs, result for result.
    assert_eq!(common::explore_runs(&mj).len(), SLURM_RUNS as usize);
    // The demo usually finds stale-read within these runs, but the single campaign is not
    // pinned: without a failure there is none to compare.
    common::assert_merge_equals(&mj, &sj, &shards, reruns);
}

/// The merge command the Slurm test submits is the one docs/scale.md and the job script's
/// header show, so neither can drift from what was run.
#[test]
fn slurm_merge_command_is_the_documented_one() {
    let script = std::fs::read_to_string(repo().join("tests/cluster/slurm.sh")).unwrap();
    let merge = script
        .lines()
        .find_map(|l| l.strip_prefix("merge_cmd="))
        .expect("the merge job's command in tests/cluster/slurm.sh");
    assert!(
        merge.starts_with("'ordeal merge ") && merge.ends_with('\''),
        "{merge}"
    );
    let sbatch =
        std::fs::read_to_string(repo().join("deploy/slurm/ordeal-explore.sbatch")).unwrap();
    let docs = std::fs::read_to_string(repo().join("docs/scale.md")).unwrap();
    assert!(sbatch.contains(merge), "{merge} not in the job script");
    assert!(docs.contains(merge), "{merge} not in docs/scale.md");
    for f in [
        "deploy/slurm/ordeal-explore.sbatch",
        "deploy/k8s/ordeal-explore-job.yaml",
        "tests/cluster/slurm.sh",
    ] {
        assert!(docs.contains(f), "docs/scale.md does not name {f}");
    }
}

/// kubernetes-validate from .ci/run's venv, else from PATH.
fn kubernetes_validate() -> Option<String> {
    let target = Path::new(BIN).parent().unwrap().parent().unwrap();
    let venv = target.join("tools/k8s-validate/bin/kubernetes-validate");
    let program = if venv.is_file() {
        venv.display().to_string()
    } else {
        "kubernetes-validate".to_string()
    };
    let how = "kubernetes-validate: .ci/run installs it with pip in $CARGO_TARGET_DIR/tools";
    ordeal_test_support::installed(&[&program], how).then_some(program)
}

/// The Kubernetes versions docs/scale.md requires (≥ 1.29) up to the newest the validator has.
const KUBERNETES: [&str; 9] = [
    "1.29", "1.30", "1.31", "1.32", "1.33", "1.34", "1.35", "1.36", "1.37",
];

fn validate(program: &str, version: &str, manifest: &Path) -> Output {
    Command::new(program)
        .args(["--strict", "--quiet", "-k", version])
        .arg(manifest)
        .output()
        .expect("kubernetes-validate runs")
}

#[test]
fn kubernetes_indexed_job_validates_against_the_api_schema() {
    let Some(program) = kubernetes_validate() else {
        return;
    };
    let manifest = repo().join("deploy/k8s/ordeal-explore-job.yaml");
    for version in KUBERNETES {
        let o = validate(&program, version, &manifest);
        // --quiet prints only warnings and failures.
        assert_eq!(
            (o.status.code(), text(&o).trim().to_string()),
            (Some(0), String::new()),
            "Kubernetes {version}"
        );
    }

    // Broken copies fail, each with its own message: the schema really is checked.
    let original = std::fs::read_to_string(&manifest).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        // A misspelt field (strict validation refuses unknown properties).
        (
            "completionMode: Indexed",
            "completionMod: Indexed",
            "1.37",
            "spec: Additional properties are not allowed ('completionMod' was unexpected)",
        ),
        // A value of the wrong type.
        (
            "parallelism: 3",
            "parallelism: three",
            "1.37",
            "spec.parallelism: 'three' is not of type 'integer', 'null'",
        ),
        // Without a status, the pod-condition rule is invalid before Kubernetes 1.35 (the
        // manifest lacked it until this test ran it against 1.29).
        (
            "            status: \"True\"\n",
            "",
            "1.29",
            "spec.podFailurePolicy.rules.0.onPodConditions.0: 'status' is a required property",
        ),
    ];
    for (i, (from, to, version, want)) in cases.iter().enumerate() {
        assert_eq!(original.matches(from).count(), 1, "{from:?}");
        let broken = tmp.path().join(format!("broken{i}.yaml"));
        std::fs::write(&broken, original.replace(from, to)).unwrap();
        let o = validate(&program, version, &broken);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{out}");
        let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("ERROR")).collect();
        assert_eq!(errors.len(), 1, "{out}");
        assert!(
            errors[0].ends_with(&format!(
                "did not validate for resource job/ordeal-explore against version {version}: {want}"
            )),
            "{out}"
        );
    }
}
