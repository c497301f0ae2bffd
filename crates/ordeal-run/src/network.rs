//! `network = "netns"`: the run's network namespaces, one per node and workload, and the
//! hub every check and probe runs in (ordeal-netns).

use crate::{io_err, Error};
use ordeal_experiment::Resolved;
use std::path::Path;
use std::sync::Arc;

/// Creates the run's namespaces (nodes, then workloads, in file order: the addresses the
/// experiment's `{host.NAME}` expanded to) and writes `network.json`.
pub(crate) fn create_network(r: &Resolved, run_dir: &Path) -> Result<ordeal_netns::Network, Error> {
    let members: Vec<String> = r
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .chain(r.workloads.iter().map(|w| w.name.clone()))
        .collect();
    let net = ordeal_netns::Network::create(&members)?;
    let mut doc = serde_json::Map::new();
    for m in &members {
        let addr = net.addr(m).map(|a| a.to_string());
        if addr.as_ref() != r.hosts.get(m) {
            return Err(Error::Usage(format!(
                "internal: {m} has address {addr:?} but the experiment expanded {:?}",
                r.hosts.get(m)
            )));
        }
        let inode = net.netns(m).and_then(|fd| ordeal_netns::ns_inode(&fd));
        doc.insert(
            m.clone(),
            serde_json::json!({ "addr": addr, "netns_inode": inode }),
        );
    }
    let hub = ordeal_netns::ns_inode(&net.hub_netns());
    let json = serde_json::json!({
        "subnet": "10.77.0.0/24",
        "hub": { "addr": format!("10.77.0.{}", ordeal_netns::HUB_HOST), "netns_inode": hub },
        "members": doc,
        "holder_pids": net.holder_pids(),
    });
    let path = run_dir.join("network.json");
    let text = serde_json::to_string_pretty(&json).unwrap_or_default();
    std::fs::write(&path, text + "\n").map_err(io_err(format!("writing {}", path.display())))?;
    Ok(net)
}

/// Makes `cmd` enter the network namespace `ns` before it execs.
pub(crate) fn enter_netns(cmd: &mut std::process::Command, ns: Arc<std::os::fd::OwnedFd>) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    // SAFETY: setns is async-signal-safe; `ns` is moved into the closure, open until exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
