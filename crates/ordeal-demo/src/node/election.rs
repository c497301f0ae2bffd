//! Roles: the election a node runs at startup and whenever it loses its primary; as a backup it
//! then follows the primary it joined ([`Node::follow`]) until that connection ends.
//!
//! Invariant: a node becomes primary only after a second round of `ROLE` queries in which every
//! other node is down, electing or a backup, so two candidates never both win; a primary stays
//! primary until it stops.

use std::time::{Duration, Instant};

use anyhow::bail;

use super::replication::Upstream;
use super::{lock, Node, Role};
use crate::wire::{self, PeerRole};

/// How long a starting node waits for lower-index peers to come up before it takes over.
const STARTUP_GRACE: Duration = Duration::from_secs(1);

enum Elected {
    Primary,
    Backup(Upstream),
    Stopped,
}

impl<'a> Node<'a> {
    /// Runs elections and follows primaries until the node is stopped. A
    /// primary stays primary until it stops.
    pub(super) fn manage_role(&self) -> anyhow::Result<()> {
        // At start-up, lower-index peers that refuse connections may simply not be listening
        // yet: give them a moment before taking over, so that a cluster started all at once
        // always elects node 0 (deterministic runs). After losing a primary, no grace.
        let mut grace_until = Some(Instant::now() + STARTUP_GRACE);
        loop {
            match self.elect(grace_until.take())? {
                Elected::Stopped => return Ok(()),
                Elected::Primary => {
                    self.stop.wait();
                    return Ok(());
                }
                Elected::Backup(upstream) => {
                    let primary = upstream.primary;
                    let reason = self.follow(upstream);
                    if self.stop.is_stopped() {
                        return Ok(());
                    }
                    self.set_role(Role::Electing);
                    self.say(format_args!("lost primary {primary}"));
                    self.warn(format_args!("replication from {primary} ended: {reason}"));
                }
            }
        }
    }

    /// Whether this node may stand for primary, no peer being primary: no peer that answers
    /// holds a later write than this node (its state's `seq` is higher), and every lower-index
    /// peer is down or holds an earlier one. The most up-to-date node wins, lower index first
    /// among equals: a backup that was dropped (its acknowledgement came too late) and has not
    /// re-joined yet must not win over one that has every acknowledged write, or the others
    /// would adopt its older snapshot and lose them.
    fn may_stand(&self, roles: &[(usize, PeerRole)]) -> bool {
        let mine = lock(&self.state).seq;
        roles.iter().all(|(p, r)| {
            if *r == PeerRole::Refused {
                return true;
            }
            match wire::query_seq(self.cfg.peers[*p], self.cfg.peer_timeout) {
                Some(theirs) => theirs < mine || (theirs == mine && *p > self.cfg.id),
                // Not answering: as before, only a higher-index peer may be ignored.
                None => *p > self.cfg.id,
            }
        })
    }

    /// Finds the primary and joins it, or becomes primary.
    ///
    /// Join a peer that says PRIMARY. Otherwise, if no peer that answers has a later write
    /// and every lower-index peer refuses connections (is down) or has an earlier write
    /// ([`Self::may_stand`]), become a candidate, ask everyone
    /// again, and become primary only if nobody is (or is becoming) primary.
    /// The second round settles races: of two nodes turning candidate, the
    /// later one always sees the earlier and backs off. Otherwise wait and
    /// retry, until `election_timeout`.
    fn elect(&self, grace_until: Option<Instant>) -> anyhow::Result<Elected> {
        let deadline = Instant::now() + self.cfg.election_timeout;
        let timeout = self.cfg.peer_timeout;
        for attempt in 0u32.. {
            if self.stop.is_stopped() {
                return Ok(Elected::Stopped);
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            self.set_role(Role::Electing);
            let roles: Vec<(usize, PeerRole)> = self
                .other_peers()
                .map(|p| (p, wire::query_role(self.cfg.peers[p], timeout)))
                .collect();
            if let Some(&(primary, _)) = roles.iter().find(|(_, r)| *r == PeerRole::Primary) {
                match self.join(primary) {
                    Ok(upstream) => return Ok(Elected::Backup(upstream)),
                    Err(e) => self.warn(format_args!("cannot join primary {primary}: {e}")),
                }
            } else if grace_until.is_none_or(|g| Instant::now() >= g || self.cfg.id == 0)
                && self.may_stand(&roles)
            {
                self.set_role(Role::Candidate);
                let clear = self.other_peers().all(|p| {
                    matches!(
                        wire::query_role(self.cfg.peers[p], timeout),
                        PeerRole::Refused | PeerRole::Electing | PeerRole::Backup
                    )
                });
                if clear {
                    self.set_role(Role::Primary);
                    self.say("is primary");
                    return Ok(Elected::Primary);
                }
                self.set_role(Role::Electing);
            }
            // Back off, a little longer for higher ids, so two nodes that
            // backed off together do not collide again.
            let pause = Duration::from_millis((10u64 << attempt.min(4)) + 7 * self.cfg.id as u64);
            let left = deadline.saturating_duration_since(Instant::now());
            if self.stop.sleep(pause.min(left)) {
                return Ok(Elected::Stopped);
            }
        }
        bail!(
            "node {}: no primary found and could not become primary within {} ms",
            self.cfg.id,
            self.cfg.election_timeout.as_millis()
        )
    }
}
