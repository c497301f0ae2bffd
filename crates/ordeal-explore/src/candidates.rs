//! Candidate faults, mined from the events of earlier runs.
//!
//! Every send, receive, connect, accept, fsync and rename a run recorded is a *point*: the
//! `nth` event matching a [`Site`] (node, call, class, peer, file name). A point where the
//! workloads were already running can take a fault of every [`Action`] that makes sense there
//! ([`actions_for`]): crash the node before or after the call, pause it, delay the call, fail
//! it, shorten it (receives), partition the node from the peer, or cut the nodes along a
//! shape (isolate the node, halves, bridge, ring: [`crate::shapes`]). A [`Fault`] is an action at
//! a point; a schedule is a list of faults, run as a normal fault schedule
//! ([`crate::schedule`]).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use ordeal_events::calls::{self, SyncScope};
use ordeal_events::{Class, Direction, Event, FileOp, Header, SocketOp};
use ordeal_faults::Errno;
use serde::{Deserialize, Serialize};

/// Where a point is: what a trigger's pattern says. `nth` counts events matching all of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Site {
    pub node: String,
    pub call: String,
    /// `data`, `net` or `file`.
    pub class: String,
    /// The node at the other end of the socket (`None`: any, when the trace did not know it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// For file calls: the file name (last path component; for a rename, of its target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// What a site's call does, for choosing actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteKind {
    Send,
    Recv,
    Connect,
    Accept,
    Sync,
    Rename,
}

impl Site {
    pub fn kind(&self) -> Option<SiteKind> {
        let spec = calls::by_name(&self.call)?;
        match self.class.as_str() {
            "data" => match spec.direction()? {
                Direction::Send => Some(SiteKind::Send),
                Direction::Recv => Some(SiteKind::Recv),
            },
            "net" => match spec.socket?.op {
                SocketOp::Connect => Some(SiteKind::Connect),
                SocketOp::Accept => Some(SiteKind::Accept),
                _ => None,
            },
            "file" => match spec.file?.op {
                FileOp::Sync(SyncScope::File | SyncScope::Data) => Some(SiteKind::Sync),
                FileOp::Rename => Some(SiteKind::Rename),
                _ => None,
            },
            _ => None,
        }
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.node, self.call)?;
        if let Some(p) = &self.peer {
            let arrow = match self.kind() {
                Some(SiteKind::Recv) | Some(SiteKind::Accept) => "←",
                _ => "→",
            };
            write!(f, " {arrow} {p}")?;
        }
        if let Some(p) = &self.file {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}

/// One point seen in a run: the `nth` event of `site` (1-based), at `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Occurrence {
    pub site: Site,
    pub nth: u64,
    pub seq: u64,
    /// The call's result (bytes moved, or a negative errno).
    pub ret: i64,
    /// Whether a workload had started when it happened: only such points take node-level
    /// faults (a crash during start-up is a failed start, not a failure of the system).
    pub in_workload: bool,
    /// A send to a workload by a thread that made data durable (fsync, rename) since it last
    /// heard from that workload: the acknowledgement of a write.
    #[serde(default)]
    pub ack: bool,
}

/// The points of a trace, in seq order.
pub fn mine(header: &Header, events: &[Event]) -> Vec<Occurrence> {
    mine_with_roles(header, events, &|_, _| None)
}

/// [`mine`], a point's node replaced by the role `role_of(node, ts)` says it held then
/// (crate::roles): counted per role, as a trigger naming the role counts.
pub fn mine_with_roles(
    header: &Header,
    events: &[Event],
    role_of: &dyn Fn(&str, u64) -> Option<String>,
) -> Vec<Occurrence> {
    let workloads: Vec<&str> = header
        .nodes
        .iter()
        .filter(|n| n.role == "workload")
        .map(|n| n.name.as_str())
        .collect();
    let mut in_workload = false;
    let mut counts: HashMap<Site, u64> = HashMap::new();
    // Threads that made data durable since they last heard from a workload.
    let mut durable: HashMap<i32, bool> = HashMap::new();
    let mut out = Vec::new();
    for ev in events {
        if !in_workload && workloads.contains(&ev.node.as_str()) {
            in_workload = true;
        }
        let Some(mut site) = site_of(ev) else {
            continue;
        };
        if let Some(role) = role_of(&site.node, ev.ts) {
            site.node = role;
        }
        let to_workload = site.peer.as_deref().is_some_and(|p| workloads.contains(&p));
        let mut ack = false;
        match site.kind() {
            Some(SiteKind::Sync | SiteKind::Rename) if ev.ok() => {
                durable.insert(ev.tid, true);
            }
            Some(SiteKind::Recv) if to_workload => {
                durable.insert(ev.tid, false);
            }
            Some(SiteKind::Send) if to_workload => {
                ack = durable.insert(ev.tid, false).unwrap_or(false);
            }
            _ => {}
        }
        // A site without a peer matches every peer: count all of them, as the trigger will.
        let n = counts.entry(site.clone()).or_insert(0);
        *n += 1;
        let nth = *n;
        if site.peer.is_some() {
            let any = Site {
                peer: None,
                ..site.clone()
            };
            *counts.entry(any).or_insert(0) += 1;
        }
        if ev.errno.as_deref() == Some("EAGAIN") {
            continue;
        }
        out.push(Occurrence {
            site,
            nth,
            seq: ev.seq,
            ret: ev.ret.unwrap_or(0),
            in_workload,
            ack,
        });
    }
    out
}

/// The site of an event, if it is a point (a send, receive, connect, accept, fsync, rename).
pub fn site_of(ev: &Event) -> Option<Site> {
    let class = ev.class?;
    let (class, peer, file) = match class {
        Class::Data if ev.direction().is_some() => {
            let peer = ev.sock.as_ref()?.peer_node.clone()?;
            if peer == ev.node {
                return None;
            }
            ("data", Some(peer), None)
        }
        Class::Net if matches!(ev.socket_op(), Some(SocketOp::Connect | SocketOp::Accept)) => {
            // An accept's faults (delay, fail) act at its entry, where who connects is not
            // known yet: its site is the node's n-th accept, whoever the peer.
            let peer = match ev.socket_op() {
                Some(SocketOp::Connect) => ev.sock.as_ref().and_then(|s| s.peer_node.clone()),
                _ => None,
            };
            if peer.as_deref() == Some(ev.node.as_str()) {
                return None;
            }
            ("net", peer, None)
        }
        Class::File
            if matches!(
                ev.file_op(),
                Some(FileOp::Sync(SyncScope::File | SyncScope::Data) | FileOp::Rename)
            ) =>
        {
            let path = if ev.file_op() == Some(FileOp::Rename) {
                ev.path2.as_ref()?
            } else {
                ev.path.as_ref()?
            };
            let name = path.rsplit('/').next().filter(|s| !s.is_empty())?;
            ("file", None, Some(name.to_string()))
        }
        _ => return None,
    };
    Some(Site {
        node: ev.node.clone(),
        call: ev.call.clone(),
        class: class.into(),
        peer,
        file,
    })
}

/// What is done at a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Crash the node at the call's entry (the call does not happen), restart it later.
    CrashBefore,
    /// Crash the node once the call completed, before it sees the result; restart it later.
    CrashAfter,
    /// Freeze the node (SIGSTOP) for the model's long duration.
    Pause,
    /// Hold the call for the model's long duration.
    Delay,
    /// Fail the call with the error the situation calls for ([`errno_for`]).
    Fail,
    /// Let the receive return two bytes less than it got (the end arrives in the next read).
    ShortIo,
    /// Cut the node from the peer for the model's long duration.
    Partition,
    /// Cut the node from every other node for the model's long duration (shapes: see
    /// [`crate::shapes`]).
    Isolate,
    /// Cut the nodes in a minority and a majority (drawn when it fires).
    Halves,
    /// Cut the nodes in two sides that both still see a bridge node.
    Bridge,
    /// Let each node see only the majority of nodes around it in a ring.
    Ring,
}

impl Action {
    pub const ALL: [Action; 11] = [
        Action::CrashBefore,
        Action::CrashAfter,
        Action::Pause,
        Action::Delay,
        Action::Fail,
        Action::ShortIo,
        Action::Partition,
        Action::Isolate,
        Action::Halves,
        Action::Bridge,
        Action::Ring,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::CrashBefore => "crash-before",
            Action::CrashAfter => "crash-after",
            Action::Pause => "pause",
            Action::Delay => "delay",
            Action::Fail => "fail",
            Action::ShortIo => "short-io",
            Action::Partition => "partition",
            Action::Isolate => "isolate",
            Action::Halves => "halves",
            Action::Bridge => "bridge",
            Action::Ring => "ring",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == s)
    }

    /// Whether the action disrupts a whole node or link for a while (crash, pause, delay,
    /// partition and its shapes): a schedule holds at most [`FaultModel::max_disruptions`] of
    /// them, the failures a correct system is expected to survive.
    pub fn disruptive(self) -> bool {
        !matches!(self, Action::Fail | Action::ShortIo)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault: an action at the `nth` event of a site.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fault {
    pub action: Action,
    pub site: Site,
    pub nth: u64,
    /// `short-io` only: the most bytes the call may move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
}

impl Fault {
    /// A stable, readable name, also the fault's `name` in schedules.
    pub fn name(&self) -> String {
        let mut s = format!("{}-{}-{}", self.action, self.site.node, self.site.call);
        if let Some(p) = &self.site.peer {
            s.push('-');
            s.push_str(p);
        }
        if let Some(f) = &self.site.file {
            let clean: String = f
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            s.push('-');
            s.push_str(&clean);
        }
        s.push_str(&format!("-{}", self.nth));
        s
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {} #{}", self.action, self.site, self.nth)?;
        if let Some(b) = self.max_bytes {
            write!(f, " (max {b} B)")?;
        }
        Ok(())
    }
}

/// The faults a campaign may use and their parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultModel {
    pub actions: Vec<Action>,
    /// Pause, delay and partition length: choose it above the system's internal timeouts (so
    /// that they expire) and below its clients' patience.
    #[serde(with = "ms")]
    pub long: Duration,
    /// How long after a crash the node is started again.
    #[serde(with = "ms")]
    pub restart_after: Duration,
    /// Most faults in one schedule.
    pub max_faults: usize,
    /// Most disruptive faults (crash, pause, delay, partition and its shapes) in one schedule.
    pub max_disruptions: usize,
    /// The experiment's roles (`[roles]`): a site whose `node` is one of them is a point of
    /// that role's holder (see [`mine_with_roles`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

pub(crate) mod ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

impl Default for FaultModel {
    fn default() -> Self {
        FaultModel {
            actions: Action::ALL.to_vec(),
            long: Duration::from_millis(1500),
            restart_after: Duration::from_millis(500),
            max_faults: 2,
            max_disruptions: 1,
            roles: Vec::new(),
        }
    }
}

impl FaultModel {
    /// At most `max` faults per schedule, every kind counted alike: disruptive ones may
    /// combine (a crash and a partition), up to `max` of them (`--max-faults`). The default
    /// model holds at most two faults, of which one disruptive.
    pub fn counting_every_fault(self, max: usize) -> FaultModel {
        FaultModel {
            max_faults: max,
            max_disruptions: max,
            ..self
        }
    }

    /// A site's node as a schedule names it: a role (`role = "leader"`) or a node.
    pub fn target(&self, node: &str) -> ordeal_faults::Target {
        match self.roles.iter().any(|r| r == node) {
            true => ordeal_faults::Target::Role(node.to_string()),
            false => ordeal_faults::Target::Node(node.to_string()),
        }
    }

    /// Whether `action` is one to try at `site`: one of the model's, and not a partition of
    /// a role (a partition's sides name nodes).
    pub fn allows_at(&self, action: Action, site: &Site) -> bool {
        self.actions.contains(&action)
            && !(action == Action::Partition && self.roles.contains(&site.node))
    }

    /// Whether `faults` may form one schedule.
    pub fn allows(&self, faults: &[Fault]) -> bool {
        if faults.len() > self.max_faults {
            return false;
        }
        if faults.iter().filter(|f| f.action.disruptive()).count() > self.max_disruptions {
            return false;
        }
        // Two faults at the same point: only the first would fire.
        for (i, a) in faults.iter().enumerate() {
            if faults[i + 1..]
                .iter()
                .any(|b| b.site == a.site && b.nth == a.nth)
            {
                return false;
            }
        }
        true
    }
}

/// The actions that make sense at an occurrence, given the role of its node and its peer.
pub fn actions_for(
    o: &Occurrence,
    node_is_node: bool,
    peer_is_node_or_workload: bool,
) -> Vec<Action> {
    let Some(kind) = o.site.kind() else {
        return Vec::new();
    };
    let ok = o.ret >= 0;
    let mut v = Vec::new();
    let node_faults = node_is_node && o.in_workload;
    match kind {
        SiteKind::Send => {
            if node_faults {
                v.extend([Action::CrashBefore, Action::CrashAfter, Action::Pause]);
                if peer_is_node_or_workload {
                    v.push(Action::Partition);
                }
            }
            v.extend([Action::Delay, Action::Fail]);
        }
        SiteKind::Recv => {
            if node_faults {
                v.push(Action::CrashAfter);
            }
            v.extend([Action::Delay, Action::Fail]);
            let plain = calls::by_name(&o.site.call).is_some_and(|c| c.is_plain_transfer());
            if ok && o.ret >= 3 && plain {
                v.push(Action::ShortIo);
            }
        }
        SiteKind::Connect | SiteKind::Accept => {
            v.extend([Action::Delay, Action::Fail]);
        }
        SiteKind::Sync | SiteKind::Rename => {
            if node_faults {
                v.extend([Action::CrashBefore, Action::CrashAfter]);
            }
            v.push(Action::Fail);
        }
    }
    // Faults at failed calls change nothing worth a run (except failing them differently).
    if !ok {
        v.retain(|a| matches!(a, Action::CrashBefore | Action::Delay));
    }
    // Before the workloads run, a fault would test start-up, not the system.
    if !o.in_workload {
        v.clear();
    }
    v
}

/// How promising an action at a site is, from its place in the system: 0 first, 2 last.
///
/// 0: the system's contract with its clients and its replication: crashing a node right after
/// it answered a workload (an acknowledgement), shortening what a node receives from a workload
/// (request framing), delaying what a node receives from another node (a slow replica).
/// 1: the rest of node-to-node traffic and durability: crashes around sends, receives, fsyncs
/// and renames, failed node-to-node transfers and syncs, pauses and partitions between nodes.
/// 2: everything else (faults in the workloads' own calls, connection set-up).
pub fn priority(action: Action, site: &Site, is_node: &dyn Fn(&str) -> bool) -> u8 {
    let node = is_node(&site.node);
    let peer_node = site.peer.as_deref().is_some_and(is_node);
    let peer_workload = site.peer.as_deref().is_some_and(|p| !is_node(p));
    let kind = site.kind();
    match (action, kind) {
        (Action::CrashAfter, Some(SiteKind::Send)) if node && peer_workload => 0,
        (Action::ShortIo, Some(SiteKind::Recv)) if node && peer_workload => 0,
        (Action::Delay, Some(SiteKind::Recv)) if node && peer_node => 0,
        // A shape cuts node-to-node links whatever the send it fires at.
        (a, _) if a.is_shape() && node => 1,
        _ if !node => 2,
        (_, Some(SiteKind::Connect | SiteKind::Accept)) => 2,
        (Action::CrashBefore | Action::CrashAfter, _) => 1,
        (Action::Fail, Some(SiteKind::Sync | SiteKind::Rename)) => 1,
        (_, Some(SiteKind::Send | SiteKind::Recv)) if peer_node => 1,
        _ => 2,
    }
}

/// The error a failed call returns: what the kernel would say in the situation simulated
/// (a connection that breaks, a disk that fails), and that a correct system must handle.
pub fn errno_for(site: &Site) -> Errno {
    match site.kind() {
        Some(SiteKind::Connect) => Errno::ETIMEDOUT,
        Some(SiteKind::Accept) => Errno::ECONNABORTED,
        Some(SiteKind::Send) | Some(SiteKind::Recv) => Errno::ECONNRESET,
        _ => Errno::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(class: &str, call: &str) -> Option<SiteKind> {
        Site {
            node: "n0".into(),
            call: call.into(),
            class: class.into(),
            peer: None,
            file: None,
        }
        .kind()
    }

    /// Fault points come from the call table: every transfer by its direction, connect and
    /// both accepts, the syncs that make data durable, every rename.
    #[test]
    fn site_kinds_follow_the_call_table() {
        for c in calls::recorded() {
            let want = match c.direction() {
                Some(Direction::Send) => Some(SiteKind::Send),
                Some(Direction::Recv) => Some(SiteKind::Recv),
                None => None,
            };
            assert_eq!(kind("data", c.name), want, "{}", c.name);
        }
        assert_eq!(kind("net", "accept4"), Some(SiteKind::Accept));
        assert_eq!(kind("net", "connect"), Some(SiteKind::Connect));
        assert_eq!(kind("net", "bind"), None);
        assert_eq!(kind("file", "fdatasync"), Some(SiteKind::Sync));
        assert_eq!(
            kind("file", "sync_file_range"),
            None,
            "makes nothing durable"
        );
        assert_eq!(kind("file", "renameat2"), Some(SiteKind::Rename));
        assert_eq!(kind("file", "pwritev2"), None);
        assert_eq!(kind("data", "no-such-call"), None);
    }
}
