//! The bugs a node can be started with (`--bugs`).

use std::fmt;
use std::str::FromStr;

/// Every bug name accepted by `--bugs`, in the order they are documented.
pub const BUG_NAMES: [&str; 4] = [
    "ack-before-replicate",
    "rename-without-fsync",
    "stale-read",
    "no-short-read-handling",
];

/// Which deliberate bugs are switched on. The default (all `false`) is the
/// correct store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// The primary answers `OK` before the backups have the write.
    pub ack_before_replicate: bool,
    /// State files are renamed into place without any fsync.
    pub rename_without_fsync: bool,
    /// Nodes that are not the primary answer `GET` from their own state.
    pub stale_read: bool,
    /// Requests are parsed as if one `read()` returned exactly one line.
    pub no_short_read_handling: bool,
}

/// A `--bugs` list named a bug that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown bug `{name}` (known bugs: {})", BUG_NAMES.join(", "))]
pub struct UnknownBug {
    /// The name that was not recognised.
    pub name: String,
}

impl Bugs {
    /// Parses a comma-separated list of bug names. The empty string means no
    /// bugs; surrounding spaces and empty items are ignored.
    pub fn parse(list: &str) -> Result<Bugs, UnknownBug> {
        let mut bugs = Bugs::default();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let flag = match name {
                "ack-before-replicate" => &mut bugs.ack_before_replicate,
                "rename-without-fsync" => &mut bugs.rename_without_fsync,
                "stale-read" => &mut bugs.stale_read,
                "no-short-read-handling" => &mut bugs.no_short_read_handling,
                _ => {
                    return Err(UnknownBug {
                        name: name.to_string(),
                    })
                }
            };
            *flag = true;
        }
        Ok(bugs)
    }

    /// The names of the bugs that are on, in [`BUG_NAMES`] order.
    pub fn names(&self) -> Vec<&'static str> {
        let on = [
            self.ack_before_replicate,
            self.rename_without_fsync,
            self.stale_read,
            self.no_short_read_handling,
        ];
        BUG_NAMES
            .iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(name, _)| *name)
            .collect()
    }
}

impl FromStr for Bugs {
    type Err = UnknownBug;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bugs::parse(s)
    }
}

impl fmt::Display for Bugs {
    /// Formats as the comma-separated list `--bugs` accepts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_list_means_no_bugs() {
        assert_eq!(Bugs::parse("").unwrap(), Bugs::default());
        assert_eq!(Bugs::parse(" , ").unwrap(), Bugs::default());
    }

    #[test]
    fn every_name_switches_its_bug() {
        let all = Bugs::parse(&BUG_NAMES.join(",")).unwrap();
        assert_eq!(
            all,
            Bugs {
                ack_before_replicate: true,
                rename_without_fsync: true,
                stale_read: true,
                no_short_read_handling: true,
            }
        );
        assert_eq!(all.names(), BUG_NAMES.to_vec());
        let one = Bugs::parse(" stale-read ").unwrap();
        assert_eq!(
            one,
            Bugs {
                stale_read: true,
                ..Bugs::default()
            }
        );
        assert_eq!(one.to_string(), "stale-read");
    }

    #[test]
    fn unknown_name_is_rejected() {
        let err = Bugs::parse("stale-read,lose-everything").unwrap_err();
        assert_eq!(err.name, "lose-everything");
        assert!(err.to_string().contains("unknown bug `lose-everything`"));
        assert!(err.to_string().contains("ack-before-replicate"));
    }
}
