//! Points named by roles: with `[roles]`, a point in a node that held a role when it happened
//! is that role's (`leader sendto e2 #5`), so that it exists in the next run whichever node
//! leads there. Who held what when comes from the run's `roles.jsonl` (ordeal-run's
//! [`ordeal_run::roles`]: found at the start, when a fault aimed at a role fired, after
//! node-level faults, at the end).

use std::path::Path;

use ordeal_run::roles::{read_sightings, Sighting, ROLES_FILE};

/// Who held each role over a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// In time order.
    sightings: Vec<Sighting>,
}

impl Timeline {
    /// The timeline of the run in `dir` (empty without `roles.jsonl`, or unreadable).
    pub fn read(dir: &Path) -> Timeline {
        Timeline::new(read_sightings(&dir.join(ROLES_FILE)).unwrap_or_default())
    }

    pub fn new(mut sightings: Vec<Sighting>) -> Timeline {
        sightings.sort_by_key(|s| s.time_ns);
        Timeline { sightings }
    }

    /// The role `node` held at `ts` (ns since the run started), by each role's latest
    /// sighting at or before `ts` (else its first): of the roles that list it, the one with
    /// the fewest holders (the most telling: `leader` before `follower`), then the one seen
    /// last, then the first by name.
    pub fn role_of(&self, node: &str, ts: u64) -> Option<String> {
        let mut roles: Vec<&str> = self.sightings.iter().map(|s| s.role.as_str()).collect();
        roles.sort_unstable();
        roles.dedup();
        roles
            .into_iter()
            .filter_map(|role| {
                let of_role = || self.sightings.iter().filter(move |s| s.role == role);
                let seen = of_role()
                    .take_while(|s| s.time_ns <= ts)
                    .last()
                    .or_else(|| of_role().next())?;
                seen.nodes.iter().any(|n| n == node).then_some(seen)
            })
            .min_by_key(|s| (s.nodes.len(), std::cmp::Reverse(s.time_ns)))
            .map(|s| s.role.clone())
    }

    pub fn is_empty(&self) -> bool {
        self.sightings.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(time_ns: u64, role: &str, nodes: &[&str]) -> Sighting {
        Sighting {
            time_ns,
            why: "start".into(),
            role: role.into(),
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            traffic_until_ns: None,
        }
    }

    #[test]
    fn a_node_has_the_role_it_was_last_seen_holding() {
        let t = Timeline::new(vec![
            seen(500, "leader", &["e2"]),
            seen(100, "leader", &["e1"]),
            seen(100, "follower", &["e2", "e3"]),
            seen(900, "leader", &[]),
        ]);
        // Before the first sighting: as first seen.
        assert_eq!(t.role_of("e1", 0).as_deref(), Some("leader"));
        assert_eq!(t.role_of("e1", 499).as_deref(), Some("leader"));
        // e2 was a follower, then became leader at 500 (and is still listed a follower, as
        // last seen): the role with the fewest holders.
        assert_eq!(t.role_of("e2", 499).as_deref(), Some("follower"));
        assert_eq!(t.role_of("e2", 500).as_deref(), Some("leader"));
        assert_eq!(t.role_of("e1", 500), None);
        // No leader from 900 on.
        assert_eq!(t.role_of("e3", 950).as_deref(), Some("follower"));
        assert_eq!(
            Timeline::new(vec![seen(1, "leader", &["e2"])])
                .role_of("e2", 5)
                .as_deref(),
            Some("leader")
        );
        assert_eq!(Timeline::default().role_of("e1", 5), None);
    }

    fn node(name: &str, role: &str) -> ordeal_events::NodeInfo {
        ordeal_events::NodeInfo {
            name: name.into(),
            role: role.into(),
            ports: vec![],
            protocol: None,
        }
    }

    /// `node` sends to `peer` at `ts`.
    fn send(seq: u64, ts: u64, node: &str, peer: &str) -> ordeal_events::Event {
        ordeal_events::Event {
            seq,
            ts,
            node: node.into(),
            pid: 1,
            tid: 1,
            call: "sendto".into(),
            class: Some(ordeal_events::Class::Data),
            ret: Some(10),
            sock: Some(ordeal_events::Sock {
                ino: 1,
                proto: ordeal_events::Proto::Tcp,
                local: None,
                remote: None,
                peer_ino: None,
                peer_node: Some(peer.into()),
            }),
            ..Default::default()
        }
    }

    /// Points of the leader's node are the leader's, counted over whichever node leads; the
    /// others keep their node.
    #[test]
    fn points_are_named_by_the_role_their_node_held_and_counted_per_role() {
        let header = ordeal_events::Header {
            schema: "ordeal-trace".into(),
            version: 1,
            experiment: "t".into(),
            started_at: String::new(),
            nodes: vec![
                node("e1", "node"),
                node("e2", "node"),
                node("e3", "node"),
                node("client", "workload"),
            ],
        };
        let mut events = vec![ordeal_events::Event {
            node: "client".into(),
            call: "spawn".into(),
            class: Some(ordeal_events::Class::Proc),
            ..Default::default()
        }];
        events.extend([
            send(1, 100, "e1", "e3"),
            send(2, 200, "e2", "e3"),
            // e2 leads from 500 on.
            send(3, 600, "e2", "e3"),
            send(4, 700, "e1", "e3"),
        ]);
        let t = Timeline::new(vec![
            seen(50, "leader", &["e1"]),
            seen(500, "leader", &["e2"]),
        ]);
        let mined = crate::candidates::mine_with_roles(&header, &events, &|n, ts| t.role_of(n, ts));
        let points: Vec<(&str, u64)> = mined
            .iter()
            .map(|o| (o.site.node.as_str(), o.nth))
            .collect();
        assert_eq!(points, [("leader", 1), ("e2", 1), ("leader", 2), ("e1", 1)]);
        // Without roles, the nodes.
        let plain = crate::candidates::mine(&header, &events);
        let nodes: Vec<(&str, u64)> = plain
            .iter()
            .map(|o| (o.site.node.as_str(), o.nth))
            .collect();
        assert_eq!(nodes, [("e1", 1), ("e2", 1), ("e2", 2), ("e1", 2)]);
    }

    /// A role's point becomes a fault aimed at the role, with a trigger counting its calls
    /// (docs/explore.md's example), and takes no partition.
    #[test]
    fn a_points_fault_is_aimed_at_its_role() {
        use crate::candidates::{Action, Fault, FaultModel, Site};
        let model = FaultModel {
            roles: vec!["leader".into()],
            ..FaultModel::default()
        };
        let site = Site {
            node: "leader".into(),
            call: "sendto".into(),
            class: "data".into(),
            peer: Some("e2".into()),
            file: None,
        };
        let f = Fault {
            action: Action::CrashAfter,
            site: site.clone(),
            nth: 5,
            max_bytes: None,
        };
        let got = f.to_schedule_fault(&model, "s.toml").unwrap();
        let doc = include_str!("../../../docs/explore.md");
        let block = &doc[doc.find("## Roles").unwrap()..];
        let block = &block[block.find("```toml\n").unwrap() + 8..];
        let block = &block[..block.find("```").unwrap()];
        let names =
            ordeal_faults::Participants::new(["e1", "e2", "e3"], ["client"]).with_roles(["leader"]);
        let s = ordeal_faults::Schedule::parse_for(block, "doc.toml", &names).unwrap();
        assert_eq!(s.faults, [got]);
        // Partitions name nodes: none at a role's point.
        assert!(!model.allows_at(Action::Partition, &site));
        assert!(model.allows_at(Action::Pause, &site));
        let e1 = Site {
            node: "e1".into(),
            ..site
        };
        assert!(model.allows_at(Action::Partition, &e1));
        assert_eq!(model.target("e1"), ordeal_faults::Target::Node("e1".into()));
    }
}
