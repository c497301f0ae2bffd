//! Dropping a probe leaves nothing behind: every map, program and attachment was a descriptor
//! of this process (nothing pinned), and all are closed. Alone in its test binary, so no other
//! probe opens descriptors meanwhile.

use ordeal_ebpf::{Probe, ProbeConfig, DEFAULT_RING_BYTES};
use ordeal_events::calls::CALLS;

/// This process's descriptors that are BPF objects, by kind.
fn bpf_fds() -> (usize, usize, usize) {
    let (mut maps, mut progs, mut links) = (0, 0, 0);
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        match std::fs::read_link(entry.path()).map(|t| t.to_string_lossy().into_owned()) {
            Ok(t) if t == "anon_inode:bpf-map" => maps += 1,
            Ok(t) if t == "anon_inode:bpf-prog" => progs += 1,
            Ok(t) if t == "anon_inode:bpf_link" => links += 1,
            _ => {}
        }
    }
    (maps, progs, links)
}

#[test]
fn dropping_the_probe_closes_every_map_program_and_link() {
    // Every call, with payload: the scratch buffer of records with copies and the retry map
    // too.
    let calls: Vec<i64> = CALLS.iter().map(|c| c.nr).collect();
    let probe = match Probe::start(ProbeConfig {
        syscalls: &calls,
        ring_bytes: DEFAULT_RING_BYTES,
        payload_bytes: 16,
    }) {
        Ok(p) => p,
        Err(e) if e.is_permission_denied() && std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipped: cannot load BPF here ({e})");
            return;
        }
        Err(e) => panic!("the probe must load: {e}"),
    };
    assert_eq!(bpf_fds(), (6, 5, 5));
    drop(probe);
    assert_eq!(bpf_fds(), (0, 0, 0));
}
