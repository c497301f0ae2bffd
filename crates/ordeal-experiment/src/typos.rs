//! Slips caught at load time rather than as a failure later: a `{port.NAME}` that no node
//! declares and that is one slip away from a port a node does declare (`{port.bd}` for
//! `{port.db}`: the run would connect to a port nobody listens on), and a duration written
//! as a number (`timeout = 10`: TOML's type error then says how to write it).

use std::collections::{BTreeMap, BTreeSet};

use crate::template::Placeholder;
use crate::validate::Validator;
use crate::{Diagnostic, ProxyDef};

impl Validator<'_> {
    /// A `{port.NAME}` no node declares, one slip away from one a node declares, is an
    /// error with the name meant ([`crate::typos`]); a proxy's `listen` port is its own.
    pub(crate) fn port_slips(&mut self, owners: &BTreeMap<String, String>, proxies: &[ProxyDef]) {
        let declared = declared(owners);
        let proxied: BTreeSet<&String> = proxies
            .iter()
            .flat_map(|p| p.listen.holes())
            .filter_map(|(h, _)| match h {
                Placeholder::Port(p) => Some(p),
                _ => None,
            })
            .collect();
        let mut found = Vec::new();
        for u in &self.used {
            for (hole, offset) in u.template.holes() {
                let Placeholder::Port(p) = hole else { continue };
                if owners.contains_key(p) || proxied.contains(p) {
                    continue;
                }
                if let Some(meant) = port_slip(p, &declared) {
                    let message = port_slip_message(p, meant, &owners[meant]);
                    found.push(Diagnostic {
                        location: self.src.in_string(&u.span, offset),
                        message,
                    });
                }
            }
        }
        self.diags.extend(found);
    }
}

/// The declared port `name` is a slip of: within one edit (two for names of 5 characters or
/// more), or two neighbouring characters swapped (`bd` for `db`).
pub(crate) fn port_slip<'c>(name: &str, declared: &'c BTreeSet<&'c str>) -> Option<&'c str> {
    let max = if name.chars().count() >= 5 { 2 } else { 1 };
    ordeal_toml::suggest(name, declared.iter().copied(), max)
        .or_else(|| declared.iter().copied().find(|d| swapped(name, d)))
}

/// Whether `a` is `b` with two neighbouring characters swapped.
fn swapped(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len() != b.len() {
        return false;
    }
    let diff: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    matches!(diff.as_slice(), [i, j] if *j == i + 1 && a[*i] == b[*j] && a[*j] == b[*i])
}

/// The message for a `{port.NAME}` that is a slip of `declared` (owned by `owner`).
pub(crate) fn port_slip_message(name: &str, declared: &str, owner: &str) -> String {
    format!(
        "`{{port.{name}}}`: no node declares port {name}; did you mean `{declared}` (node \
         `{owner}`)? A port no node declares is taken for one outside the run"
    )
}

/// The keys whose values are durations, in the experiment file.
pub(crate) const DURATION_KEYS: [&str; 6] = [
    "timeout",
    "hang_timeout",
    "ready_timeout",
    "stop_timeout",
    "fault_duration",
    "restart_after",
];

/// Owned port names.
fn declared(owners: &BTreeMap<String, String>) -> BTreeSet<&str> {
    owners.keys().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slips_are_one_edit_or_a_swap_and_longer_names_allow_two() {
        let names = BTreeSet::from(["db", "n0", "n1", "primary", "backup1"]);
        assert_eq!(port_slip("bd", &names), Some("db"));
        assert_eq!(port_slip("d", &names), Some("db"));
        assert_eq!(port_slip("n2", &names), Some("n0"));
        assert_eq!(port_slip("primray", &names), Some("primary"));
        assert_eq!(port_slip("backup", &names), Some("backup1"));
        assert_eq!(port_slip("admin", &names), None);
        assert_eq!(port_slip("xy", &names), None);
    }
}
