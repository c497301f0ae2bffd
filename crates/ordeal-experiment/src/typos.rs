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
const DURATION_KEYS: [&str; 6] = [
    "timeout",
    "hang_timeout",
    "ready_timeout",
    "stop_timeout",
    "fault_duration",
    "restart_after",
];

/// A hint for TOML's `invalid type: integer `10`, expected a string` at `offset` of `text`
/// when the key there is a duration: `; a duration is a string with its unit: timeout =
/// "10s"`.
pub(crate) fn duration_hint(text: &str, offset: usize, message: &str) -> Option<String> {
    let number = message
        .strip_prefix("invalid type: integer `")
        .or_else(|| message.strip_prefix("invalid type: floating point `"))?;
    let number = number.split('`').next()?;
    // The key this value is given to: the name just before the last `=` before it.
    let before = text.get(..offset)?;
    let key = before.rsplit_once('=')?.0.trim_end();
    let key = &key[key
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .map_or(0, |i| i + 1)..];
    if !DURATION_KEYS.contains(&key) {
        return None;
    }
    let written = match number.parse::<u64>() {
        Ok(n) => format!("{n}s"),
        Err(_) => {
            let secs: f64 = number.parse().ok()?;
            if !(secs.is_finite() && secs >= 0.0) {
                return None;
            }
            format!("{}ms", (secs * 1000.0).round() as u64)
        }
    };
    Some(format!(
        "; a duration is a string with its unit: `{key} = \"{written}\"`"
    ))
}

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

    #[test]
    fn numbers_given_to_duration_keys_get_the_string_to_write() {
        let t = "name = \"x\"\ntimeout = 10\n";
        let at = t.find("10").unwrap();
        assert_eq!(
            duration_hint(t, at, "invalid type: integer `10`, expected a string"),
            Some("; a duration is a string with its unit: `timeout = \"10s\"`".into())
        );
        let t = "ready = { tcp = \"x\" }\nready_timeout = 1.5\n";
        let at = t.find("1.5").unwrap();
        assert_eq!(
            duration_hint(
                t,
                at,
                "invalid type: floating point `1.5`, expected a string"
            ),
            Some("; a duration is a string with its unit: `ready_timeout = \"1500ms\"`".into())
        );
        // Inline tables too; other keys get nothing.
        let t = "[roles]\nleader = { command = [\"x\"], timeout = 2 }\n";
        let at = t.rfind('2').unwrap();
        assert!(
            duration_hint(t, at, "invalid type: integer `2`, expected a string")
                .unwrap()
                .ends_with("`timeout = \"2s\"`")
        );
        let t = "name = 3\n";
        assert_eq!(
            duration_hint(t, 7, "invalid type: integer `3`, expected a string"),
            None
        );
    }
}
