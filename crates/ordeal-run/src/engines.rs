//! Which engine a run uses: `engine = "auto" | "ebpf" | "ptrace"` in the experiment, or the
//! CLI's `--engine` ([`crate::RunOptions::engine`]).
//!
//! `auto` takes eBPF when the probe loads on this machine (checked once per process) and
//! ptrace otherwise, and says which and why in one line. A run recording file data
//! (`ordeal crash`) stops at its file calls under either engine: the bytes a write wrote are
//! read at its stop.

use ordeal_experiment::EngineChoice;
use ordeal_tracer::{Config, Ebpf, Launcher, Observer, Ptrace, Tracer};
use std::sync::OnceLock;

/// Why the eBPF probe does not load here, or None when it does (checked once).
pub fn ebpf_unavailable() -> Option<String> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        let config = Config {
            observer: Observer::Ebpf,
            ..Config::default()
        };
        match Tracer::start(config, Vec::<ordeal_events::Event>::new()) {
            Ok(t) => t.shutdown().err().map(|e| e.to_string()),
            Err(e) => Some(e.to_string()),
        }
    })
    .clone()
}

/// The engine for `choice`, and the line that says which one runs (and, for `auto` falling
/// back on ptrace, why).
pub fn launcher_for(choice: EngineChoice) -> (Box<dyn Launcher>, String) {
    match choice {
        EngineChoice::Ptrace => (Box::new(Ptrace), "engine: ptrace".into()),
        EngineChoice::Ebpf => (Box::new(Ebpf), "engine: ebpf".into()),
        EngineChoice::Auto => match ebpf_unavailable() {
            None => (Box::new(Ebpf), "engine: ebpf (auto)".into()),
            Some(why) => (Box::new(Ptrace), format!("engine: ptrace (auto: {why})")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_choices_are_taken_as_given() {
        assert_eq!(launcher_for(EngineChoice::Ptrace).0.name(), "ptrace");
        assert_eq!(launcher_for(EngineChoice::Ebpf).0.name(), "ebpf");
    }

    #[test]
    fn auto_takes_ebpf_exactly_when_it_loads() {
        let (launcher, line) = launcher_for(EngineChoice::Auto);
        match ebpf_unavailable() {
            None => assert_eq!(
                (launcher.name(), line.as_str()),
                ("ebpf", "engine: ebpf (auto)")
            ),
            Some(why) => {
                assert_eq!(launcher.name(), "ptrace");
                assert!(line.ends_with(&why), "{line}");
            }
        }
    }
}
