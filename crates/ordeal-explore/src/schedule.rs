//! Candidate faults as fault schedules: the [`Schedule`] a campaign's run injects, and the
//! schedule file written for the user from it (each run's `schedule.toml`, the failure cards),
//! so that every run can be replayed with `ordeal replay`.

use std::time::Duration;

use ordeal_faults::{Class, Diagnostic, FaultKind, Location, PathGlob, Pattern, Schedule};
use ordeal_faults::{Trigger, When};

use crate::candidates::{errno_for, Action, Fault, FaultModel};
use crate::Error;

/// The first line of every schedule file explore writes.
const WRITTEN_BY: &str = "# Written by ordeal explore.\n";

impl Fault {
    /// This fault as a schedule's fault, with the model's durations (in whole milliseconds,
    /// at least one: what a schedule file can say). `file` names the schedule in errors.
    pub fn to_schedule_fault(
        &self,
        model: &FaultModel,
        file: &str,
    ) -> Result<ordeal_faults::Fault, Error> {
        let site = &self.site;
        let long = whole_ms(model.long);
        let kind = match self.action {
            Action::CrashBefore | Action::CrashAfter => FaultKind::Crash {
                node: model.target(&site.node),
                restart_after: Some(whole_ms(model.restart_after)),
            },
            Action::Pause => FaultKind::Pause {
                node: model.target(&site.node),
                duration: long,
            },
            Action::Delay => FaultKind::Delay { duration: long },
            Action::Fail => FaultKind::Fail {
                errno: errno_for(site),
            },
            Action::ShortIo => FaultKind::ShortIo {
                max_bytes: self.max_bytes.unwrap_or(1).max(1),
            },
            Action::Partition => FaultKind::Partition {
                from: vec![site.node.clone()],
                to: vec![site.peer.clone().unwrap_or_default()],
                shape: None,
                oneway: false,
                duration: Some(long),
            },
            Action::Isolate | Action::Halves | Action::Bridge | Action::Ring => {
                FaultKind::Partition {
                    from: Vec::new(),
                    to: Vec::new(),
                    shape: self.action.shape(model.target(&site.node)),
                    oneway: false,
                    duration: Some(long),
                }
            }
        };
        let refused = |message: String| {
            Error::Schedule(ordeal_faults::Error::Invalid(vec![Diagnostic {
                location: Location::file_only(file),
                message: format!("fault `{}`: {message}", self.name()),
            }]))
        };
        let class = match site.class.as_str() {
            "data" => Class::Data,
            "net" => Class::Net,
            "file" => Class::File,
            other => return Err(refused(format!("unknown class `{other}`"))),
        };
        let path = match &site.file {
            Some(name) => {
                Some(PathGlob::new(&glob_literal(name)).map_err(|e| refused(e.to_string()))?)
            }
            None => None,
        };
        let pattern = Pattern {
            node: Some(model.target(&site.node)),
            call: Some(site.call.clone()),
            class: Some(class),
            peer: site.peer.clone(),
            direction: None,
            path,
        };
        Ok(ordeal_faults::Fault {
            name: self.name(),
            kind,
            trigger: Trigger::At {
                nth: self.nth,
                times: 1,
                pattern,
                when: match self.action {
                    Action::CrashAfter => When::After,
                    _ => When::Before,
                },
            },
        })
    }
}

/// The schedule of `faults` (none: an empty schedule), seeded with the campaign's seed.
/// `file` names it in messages.
pub fn schedule(
    faults: &[Fault],
    model: &FaultModel,
    seed: u64,
    file: &str,
) -> Result<Schedule, Error> {
    let faults = faults
        .iter()
        .map(|f| f.to_schedule_fault(model, file))
        .collect::<Result<_, _>>()?;
    Ok(Schedule::new(file, seed, faults))
}

/// A schedule as explore writes it to a file (docs/faults.md).
pub fn schedule_text(schedule: &Schedule) -> String {
    format!("{WRITTEN_BY}{}", schedule.to_toml())
}

/// The schedule file of `faults` ([`schedule`], then [`schedule_text`]).
pub fn schedule_toml(faults: &[Fault], model: &FaultModel, seed: u64) -> Result<String, Error> {
    Ok(schedule_text(&schedule(
        faults,
        model,
        seed,
        "schedule.toml",
    )?))
}

fn whole_ms(d: Duration) -> Duration {
    Duration::from_millis((d.as_millis() as u64).max(1))
}

/// A file-name glob matching exactly this name (glob characters escaped).
fn glob_literal(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidates::Site;
    use ordeal_faults::Errno;

    fn site(node: &str, call: &str, class: &str, peer: Option<&str>, file: Option<&str>) -> Site {
        Site {
            node: node.into(),
            call: call.into(),
            class: class.into(),
            peer: peer.map(Into::into),
            file: file.map(Into::into),
        }
    }

    fn fault(action: Action, site: Site, nth: u64) -> Fault {
        Fault {
            action,
            site,
            nth,
            max_bytes: None,
        }
    }

    fn model() -> FaultModel {
        FaultModel {
            long: Duration::from_micros(1_500_700),
            restart_after: Duration::from_micros(300),
            ..FaultModel::default()
        }
    }

    fn pattern(s: &Site) -> Pattern {
        Pattern {
            node: Some(s.node.as_str().into()),
            call: Some(s.call.clone()),
            class: None,
            peer: s.peer.clone(),
            direction: None,
            path: None,
        }
    }

    fn at(nth: u64, pattern: Pattern, when: When) -> Trigger {
        Trigger::At {
            nth,
            times: 1,
            pattern,
            when,
        }
    }

    #[test]
    fn each_action_builds_its_fault() {
        let send = site("n0", "sendto", "data", Some("n1"), None);
        let sync = site("n1", "rename", "file", None, Some("state[1].tmp"));
        let data = |s: &Site| Pattern {
            class: Some(Class::Data),
            ..pattern(s)
        };
        let ms = Duration::from_millis;
        let got = |f: Fault| f.to_schedule_fault(&model(), "s.toml").unwrap();

        // Durations are whole milliseconds, at least one (as the file used to say them).
        assert_eq!(
            got(fault(Action::CrashAfter, send.clone(), 3)),
            ordeal_faults::Fault {
                name: "crash-after-n0-sendto-n1-3".into(),
                kind: FaultKind::Crash {
                    node: "n0".into(),
                    restart_after: Some(ms(1)),
                },
                trigger: at(3, data(&send), When::After),
            }
        );
        assert_eq!(
            got(fault(Action::CrashBefore, send.clone(), 3)).trigger,
            at(3, data(&send), When::Before)
        );
        assert_eq!(
            got(fault(Action::Pause, send.clone(), 1)).kind,
            FaultKind::Pause {
                node: "n0".into(),
                duration: ms(1500),
            }
        );
        assert_eq!(
            got(fault(Action::Delay, send.clone(), 1)).kind,
            FaultKind::Delay { duration: ms(1500) }
        );
        assert_eq!(
            got(fault(Action::Partition, send.clone(), 1)).kind,
            FaultKind::Partition {
                from: vec!["n0".into()],
                to: vec!["n1".into()],
                shape: None,
                oneway: false,
                duration: Some(ms(1500)),
            }
        );
        let short = Fault {
            max_bytes: Some(0),
            ..fault(
                Action::ShortIo,
                site("n0", "read", "data", Some("c"), None),
                2,
            )
        };
        assert_eq!(got(short).kind, FaultKind::ShortIo { max_bytes: 1 });
        // A file site's name is matched literally, whatever glob characters it holds.
        assert_eq!(
            got(fault(Action::Fail, sync.clone(), 2)),
            ordeal_faults::Fault {
                name: "fail-n1-rename-state_1_.tmp-2".into(),
                kind: FaultKind::Fail { errno: Errno::EIO },
                trigger: at(
                    2,
                    Pattern {
                        class: Some(Class::File),
                        path: Some(PathGlob::new("state\\[1\\].tmp").unwrap()),
                        ..pattern(&sync)
                    },
                    When::Before,
                ),
            }
        );
        let connect = site("n0", "connect", "net", Some("n1"), None);
        assert_eq!(
            got(fault(Action::Fail, connect, 1)).kind,
            FaultKind::Fail {
                errno: Errno::ETIMEDOUT
            }
        );
    }

    #[test]
    fn unknown_class_is_refused() {
        let f = fault(Action::Delay, site("n0", "read", "disk", None, None), 1);
        let e = f.to_schedule_fault(&model(), "s.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "internal: generated schedule rejected: s.toml: fault `delay-n0-read-1`: unknown class `disk`"
        );
    }

    #[test]
    fn schedule_file_text() {
        let faults = [
            fault(
                Action::CrashAfter,
                site("n0", "sendto", "data", Some("client"), None),
                2,
            ),
            fault(
                Action::Fail,
                site("n0", "fsync", "file", None, Some("wal")),
                1,
            ),
        ];
        let text = schedule_toml(&faults, &FaultModel::default(), 7).unwrap();
        assert_eq!(
            text,
            "# Written by ordeal explore.\n\
             seed = 7\n\
             \n\
             [[fault]]\n\
             name = \"crash-after-n0-sendto-client-2\"\n\
             kind = \"crash\"\n\
             node = \"n0\"\n\
             restart_after = \"500ms\"\n\
             trigger = { nth = 2, node = \"n0\", call = \"sendto\", class = \"data\", \
             peer = \"client\", when = \"after\" }\n\
             \n\
             [[fault]]\n\
             name = \"fail-n0-fsync-wal-1\"\n\
             kind = \"fail\"\n\
             errno = \"EIO\"\n\
             trigger = { nth = 1, node = \"n0\", call = \"fsync\", class = \"file\", \
             path = \"wal\", when = \"before\" }\n"
        );
        // A fault-free run's schedule (a failing baseline's card).
        assert_eq!(
            schedule_toml(&[], &FaultModel::default(), 3).unwrap(),
            "# Written by ordeal explore.\nseed = 3\n"
        );
        // The file reads back as the schedule that was run.
        let s = schedule(&faults, &FaultModel::default(), 7, "schedule.toml").unwrap();
        assert_eq!(
            ordeal_faults::Schedule::parse(&text, "schedule.toml").unwrap(),
            s
        );
    }
}
