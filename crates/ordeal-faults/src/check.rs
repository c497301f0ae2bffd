//! The rules a schedule must follow, checked on the model so that schedules built in code are
//! checked too. Positions come from the file when the schedule was parsed. The rules every
//! fault shares (names, triggers, patterns, call faults and their calls) are here; each kind's
//! own are in its file of `kinds/`, which checks through [`Checker`].

use std::collections::BTreeMap;
use std::time::Duration;

use ordeal_events::Class;
use ordeal_toml::{suggest, truncated};

use crate::calls::{call_classes, call_direction, class_name, NO_PEER_CALLS};
use crate::parse::{FaultSpans, TriggerSpans};
use crate::{
    Diagnostic, FaultKind, Location, Participants, Pattern, Schedule, Target, Trigger, When,
    LIFECYCLE_STEPS, TRACED_CALLS,
};

/// Messages shared by the parser and the checks.
pub(crate) mod msg {
    pub const NTH: &str = "`nth` must be 1 or more (1 is the first matching event)";
    pub const TIMES: &str = "`times` must be 1 or more";
    pub const MAX_BYTES: &str = "`max_bytes` must be 1 or more (a transfer of 0 bytes reads as \
                                 the end of the stream, not as a short transfer)";
    pub const ZERO_DURATION: &str = "the duration must be greater than zero";

    pub fn bad_name(name: &str) -> String {
        format!(
            "invalid fault name `{name}`: use letters, digits, `_`, `.` and `-` (it names the \
             fault in schedule.applied.toml)"
        )
    }
}

/// Whether `name` is a valid fault name: `[A-Za-z0-9_.-]+`.
pub(crate) fn is_fault_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Every problem of a schedule: each fault's, and duplicate names.
pub(crate) fn check_schedule(s: &Schedule, names: Option<&Participants>) -> Vec<Diagnostic> {
    let none = FaultSpans::default();
    let mut diags = Vec::new();
    let mut seen: BTreeMap<&str, Location> = BTreeMap::new();
    for (i, f) in s.faults.iter().enumerate() {
        let spans = s.spans(i).unwrap_or(&none);
        diags.extend(check_parts(
            s.file(),
            &f.name,
            Some(&f.kind),
            Some(&f.trigger),
            spans,
            names,
        ));
        let here = spans
            .name
            .clone()
            .or_else(|| spans.table.clone())
            .unwrap_or_else(|| Location::file_only(s.file()));
        match seen.get(f.name.as_str()) {
            Some(first) => {
                let mut notes = Vec::new();
                if spans.name.is_none() && spans.table.is_some() {
                    notes.push("this fault's default name".to_string());
                }
                if first.line_col.is_some() {
                    notes.push(format!("first used at {first}"));
                }
                let notes = match notes.is_empty() {
                    true => String::new(),
                    false => format!(" ({})", notes.join("; ")),
                };
                diags.push(Diagnostic {
                    location: here,
                    message: format!(
                        "duplicate fault name `{}`{notes}: fault names must be unique",
                        f.name
                    ),
                });
            }
            None => {
                seen.insert(&f.name, here);
            }
        }
    }
    diags
}

/// The problems of one fault, from what could be read of it.
pub(crate) fn check_parts(
    file: &str,
    name: &str,
    kind: Option<&FaultKind>,
    trigger: Option<&Trigger>,
    spans: &FaultSpans,
    names: Option<&Participants>,
) -> Vec<Diagnostic> {
    let mut c = Checker {
        file,
        name,
        spans,
        names,
        diags: Vec::new(),
    };
    if !is_fault_name(name) {
        c.err(&[&spans.name], msg::bad_name(name));
    }
    if let Some(kind) = kind {
        c.kind(kind);
    }
    let candidates = trigger.and_then(|t| c.trigger(t));
    if let (Some(kind), Some(trigger)) = (kind, trigger) {
        c.kind_with_trigger(kind, trigger, candidates.as_deref());
    }
    c.diags
}

/// Checks one fault, collecting its problems; kinds check their values through it.
pub(crate) struct Checker<'a> {
    file: &'a str,
    name: &'a str,
    spans: &'a FaultSpans,
    names: Option<&'a Participants>,
    diags: Vec<Diagnostic>,
}

/// A call a pattern can match: its name and the class of its event.
pub(crate) type Variant = (&'static str, Class);

impl<'a> Checker<'a> {
    /// Reports at the first known location of `at`, else at the fault's table, else naming the
    /// fault.
    pub(crate) fn err(&mut self, at: &[&Option<Location>], message: impl Into<String>) {
        let message = message.into();
        let found = at
            .iter()
            .find_map(|l| l.as_ref())
            .or(self.spans.table.as_ref());
        let (location, message) = match found {
            Some(l) => (l.clone(), message),
            None => (
                Location::file_only(self.file),
                format!("fault `{}`: {message}", self.name),
            ),
        };
        self.diags.push(Diagnostic { location, message });
    }

    /// Where the value of the fault's kind key `key` was.
    pub(crate) fn key(&self, key: &str) -> &'a Option<Location> {
        self.spans.key(key)
    }

    /// Where the items of the fault's list key `key` were.
    pub(crate) fn items(&self, key: &str) -> &'a [Location] {
        self.spans.items(key)
    }

    /// Where the trigger's values were.
    pub(crate) fn trigger_spans(&self) -> &'a TriggerSpans {
        &self.spans.trigger
    }

    /// A duration of key `key`, if given, is not zero.
    pub(crate) fn positive(&mut self, d: Option<Duration>, key: &str) {
        if d.is_some_and(|d| d.is_zero()) {
            self.err(&[self.key(key)], msg::ZERO_DURATION);
        }
    }

    /// The target of a node fault (key `node`): a node of the experiment.
    pub(crate) fn node_target(&mut self, kind: &str, node: &str) {
        let Some(names) = self.names else { return };
        if names.nodes.iter().any(|n| n == node) {
            return;
        }
        let message = if names.workloads.iter().any(|w| w == node) {
            format!(
                "`{node}` is a workload: a `{kind}` fault acts on a node ({})",
                list_names("nodes", &names.nodes)
            )
        } else {
            format!(
                "unknown node `{node}` ({})",
                list_names("nodes", &names.nodes)
            )
        };
        self.err(&[self.key("node")], message);
    }

    /// How many nodes the experiment has, when the schedule is checked against one.
    pub(crate) fn node_count(&self) -> Option<usize> {
        self.names.map(|n| n.nodes.len())
    }

    /// What a crash, pause or signal acts on (key `node` or `role`): a node of the
    /// experiment, or one of its roles.
    pub(crate) fn target(&mut self, kind: &str, target: &Target) {
        match target {
            Target::Node(node) => self.node_target(kind, node),
            Target::Role(role) => self.role(role, &self.key("role").clone()),
        }
    }

    /// A role of the experiment's `[roles]`.
    fn role(&mut self, role: &str, at: &Option<Location>) {
        let Some(names) = self.names else { return };
        if names.roles.iter().any(|r| r == role) {
            return;
        }
        let message = if names.roles.is_empty() {
            format!(
                "unknown role `{}`: the experiment declares no [roles] (see docs/experiment.md)",
                truncated(role)
            )
        } else {
            let hint = suggest(role, names.roles.iter().map(String::as_str), 2)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            format!(
                "unknown role `{}`{hint}: the experiment's roles are {}",
                truncated(role),
                names.roles.join(", ")
            )
        };
        self.err(&[at], message);
    }

    /// A pattern or partition name: a node or a workload.
    pub(crate) fn participant(&mut self, name: &str, at: &Option<Location>) {
        let Some(names) = self.names else { return };
        if names
            .nodes
            .iter()
            .chain(&names.workloads)
            .any(|n| n == name)
        {
            return;
        }
        let mut known = list_names("nodes", &names.nodes);
        if !names.workloads.is_empty() {
            known.push_str("; ");
            known.push_str(&list_names("workloads", &names.workloads));
        }
        self.err(&[at], format!("unknown node `{name}` ({known})"));
    }

    fn kind(&mut self, kind: &FaultKind) {
        (kind.spec().check)(kind, self)
    }

    /// Checks a trigger; for a call-level trigger whose pattern is possible, returns the calls
    /// it can match.
    fn trigger(&mut self, trigger: &Trigger) -> Option<Vec<Variant>> {
        let t = &self.spans.trigger;
        match trigger {
            Trigger::Time { .. } => None,
            Trigger::At {
                nth,
                times,
                pattern,
                when,
            } => {
                if *nth == 0 {
                    self.err(&[&t.nth, &t.table], msg::NTH);
                }
                if *times == 0 {
                    self.err(&[&t.times, &t.table], msg::TIMES);
                }
                self.pattern(pattern, *when)
            }
            Trigger::Probability {
                p,
                times,
                pattern,
                when,
            } => {
                if !(0.0..=1.0).contains(p) {
                    self.err(
                        &[&t.p, &t.table],
                        format!(
                            "`p` is a probability per matching event: it must be between 0 \
                             and 1, not {p}"
                        ),
                    );
                }
                if *times == 0 {
                    self.err(&[&t.times, &t.table], msg::TIMES);
                }
                self.pattern(pattern, *when)
            }
        }
    }

    /// Checks the names in a pattern and that some event can match it; returns the calls it
    /// can match, or `None` after reporting an impossible combination.
    fn pattern(&mut self, p: &Pattern, when: When) -> Option<Vec<Variant>> {
        let t = &self.spans.trigger;
        match &p.node {
            Some(Target::Node(n)) => self.participant(n, &t.node.clone().or(t.table.clone())),
            Some(Target::Role(r)) => self.role(r, &t.role.clone().or(t.table.clone())),
            None => {}
        }
        if let Some(n) = &p.peer {
            self.participant(n, &t.peer.clone().or(t.table.clone()));
        }
        let before = self.diags.len();
        let call = match &p.call {
            Some(call) => match call_classes(call) {
                Some(classes) => Some((call.as_str(), classes)),
                None => {
                    self.err(&[&t.call, &t.table], unknown_call(call));
                    return None;
                }
            },
            None => None,
        };
        if let (Some((call, classes)), Some(class)) = (call, p.class) {
            if !classes.contains(&class) {
                self.err(
                    &[&t.class, &t.table],
                    format!(
                        "`{call}` is never of class `{}` (it is {})",
                        class_name(class),
                        class_list(classes)
                    ),
                );
            }
        }
        if let Some(dir) = p.direction {
            let at = [&t.direction, &t.table];
            if let Some(class) = p.class.filter(|c| *c != Class::Data) {
                self.err(
                    &at,
                    format!(
                        "`direction` only applies to socket data calls (class `data`), not \
                         to class `{}`",
                        class_name(class)
                    ),
                );
            } else if let Some((call, _)) = call {
                match call_direction(call) {
                    None => self.err(
                        &at,
                        format!(
                            "`direction` only applies to socket data calls (class `data`), \
                             not to `{call}`"
                        ),
                    ),
                    Some(d) if d != dir => self.err(
                        &at,
                        format!(
                            "`{call}` always {}: it never matches direction = \"{}\"",
                            if d == crate::Direction::Send {
                                "sends"
                            } else {
                                "receives"
                            },
                            dir.name()
                        ),
                    ),
                    Some(_) => {}
                }
            }
        }
        if p.peer.is_some() {
            let at = [&t.peer, &t.table];
            let socket = |c: &Class| matches!(c, Class::Net | Class::Data);
            if let Some(class) = p.class.filter(|c| !socket(c)) {
                self.err(
                    &at,
                    format!(
                        "`peer` only applies to socket calls (classes `net` and `data`), not \
                         to class `{}`",
                        class_name(class)
                    ),
                );
            } else if let Some((call, classes)) = call {
                if !classes.iter().any(socket) {
                    self.err(
                        &at,
                        format!(
                            "`peer` only applies to socket calls (classes `net` and `data`), \
                             not to `{call}`"
                        ),
                    );
                } else if NO_PEER_CALLS.contains(&call) {
                    self.err(
                        &at,
                        format!("`{call}` has no peer node: only a connected socket has one"),
                    );
                } else if is_accept(call) && when == When::Before {
                    self.err(
                        &[&t.when, &t.peer, &t.table],
                        format!(
                            "the peer of an `{call}` is known only once the call returns: use \
                             when = \"after\" with `peer`"
                        ),
                    );
                }
            }
        }
        if p.path.is_some() {
            let at = [&t.path, &t.table];
            if p.peer.is_some() || p.direction.is_some() {
                self.err(
                    &at,
                    "`path` (a file) and `peer` or `direction` (a socket) cannot match the same \
                     call",
                );
            } else if let Some(class) = p.class.filter(|c| *c != Class::File) {
                self.err(
                    &at,
                    format!(
                        "`path` only applies to file calls (class `file`), not to class `{}`",
                        class_name(class)
                    ),
                );
            } else if let Some((call, classes)) = call {
                if !classes.contains(&Class::File) {
                    self.err(
                        &at,
                        format!(
                            "`path` only applies to file calls (class `file`), not to `{call}`"
                        ),
                    );
                } else if call == "sync" {
                    self.err(&at, "`sync` has no path: it flushes every file system");
                }
            }
        }
        if self.diags.len() > before {
            return None;
        }
        let found = candidates(p, when);
        if found.is_empty() {
            self.err(&[&t.table], "no recorded event can match this trigger");
            return None;
        }
        Some(found)
    }

    /// The rules between a fault's kind and its trigger.
    fn kind_with_trigger(
        &mut self,
        kind: &FaultKind,
        trigger: &Trigger,
        found: Option<&[Variant]>,
    ) {
        if !kind.is_call_level() {
            return;
        }
        let t = &self.spans.trigger;
        let k = kind.name();
        if let Trigger::Time { .. } = trigger {
            self.err(
                &[&t.after, &t.table],
                format!(
                    "a `{k}` fault acts on one system call: its trigger needs `nth` or `p` (a \
                     matching call), not `after`"
                ),
            );
            return;
        }
        let Some(found) = found else { return };
        let spec = kind.spec();
        if trigger.when() == Some(When::After) {
            if let Some(why) = spec.before_only {
                self.err(
                    &[&t.when, &t.table],
                    format!("a `{k}` fault fires before the call ({why}): use when = \"before\""),
                );
                return;
            }
        }
        let calls: Vec<Variant> = found
            .iter()
            .copied()
            .filter(|(_, c)| *c != Class::Proc)
            .collect();
        if calls.is_empty() {
            self.err(
                &[&t.call, &t.class, &t.table],
                format!(
                    "a `{k}` fault acts on a system call, but this trigger matches only \
                     lifecycle events (class `proc`)"
                ),
            );
            return;
        }
        let pattern = trigger.pattern().expect("a call-level trigger");
        (spec.check_calls)(kind, &calls, pattern, self);
    }
}

fn is_accept(call: &str) -> bool {
    call == "accept" || call == "accept4"
}

/// Every recorded call and lifecycle step with each class it can have.
fn all_variants() -> impl Iterator<Item = Variant> {
    TRACED_CALLS
        .iter()
        .flat_map(|c| c.classes.iter().map(move |cl| (c.name, *cl)))
        .chain(LIFECYCLE_STEPS.iter().map(|s| (*s, Class::Proc)))
}

/// The calls (with their class) whose events can match `p` when seen at `when`.
fn candidates(p: &Pattern, when: When) -> Vec<Variant> {
    all_variants()
        .filter(|(name, class)| {
            p.call.as_ref().is_none_or(|c| c == name)
                && p.class.is_none_or(|c| c == *class)
                && p.direction
                    .is_none_or(|d| *class == Class::Data && call_direction(name) == Some(d))
                && (p.peer.is_none()
                    || (matches!(class, Class::Net | Class::Data)
                        && !NO_PEER_CALLS.contains(name)
                        && !(is_accept(name) && when == When::Before)))
                && (p.path.is_none() || (*class == Class::File && *name != "sync"))
        })
        .collect()
}

/// How to narrow a pattern to the `good` calls: with the class or direction that separates
/// them from the `bad` ones, or in general.
pub(crate) fn narrow_hint(p: &Pattern, good: &[Variant], bad: &[Variant]) -> String {
    let class = good[0].1;
    if p.class.is_none()
        && good.iter().all(|(_, c)| *c == class)
        && bad.iter().all(|(_, c)| *c != class)
    {
        return format!("class = \"{}\"", class_name(class));
    }
    let dir = |(n, c): &Variant| (*c == Class::Data).then(|| call_direction(n)).flatten();
    if let Some(d) = dir(&good[0]) {
        if p.direction.is_none()
            && good.iter().all(|v| dir(v) == Some(d))
            && bad.iter().all(|v| dir(v) != Some(d))
        {
            return format!("direction = \"{}\"", d.name());
        }
    }
    "`call`, `class` or `direction`".to_string()
}

/// `` `connect` ``, or `` `write` (class data) `` for a call of several classes; at most five,
/// joined with `word`.
pub(crate) fn describe(variants: &[Variant], word: &str) -> String {
    let mut parts: Vec<String> = variants
        .iter()
        .take(5)
        .map(|(n, c)| match call_classes(n) {
            Some(cs) if cs.len() > 1 => format!("`{n}` (class {})", class_name(*c)),
            _ => format!("`{n}`"),
        })
        .collect();
    if variants.len() > 5 {
        parts.push(format!("{} more", variants.len() - 5));
    }
    match parts.len() {
        1 => parts.remove(0),
        n => format!("{} {word} {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}

fn class_list(classes: &[Class]) -> String {
    let names: Vec<String> = classes
        .iter()
        .map(|c| format!("`{}`", class_name(*c)))
        .collect();
    names.join(" or ")
}

fn list_names(what: &str, names: &[String]) -> String {
    if names.is_empty() {
        format!("the experiment has no {what}")
    } else {
        format!("{what}: {}", names.join(", "))
    }
}

fn unknown_call(call: &str) -> String {
    let all: Vec<&str> = TRACED_CALLS.iter().map(|c| c.name).collect();
    let near = suggest(call, all.iter().chain(LIFECYCLE_STEPS).copied(), 2);
    let hint = match near {
        Some(n) => format!(" (did you mean `{n}`?)"),
        None => String::new(),
    };
    format!(
        "unknown call `{}`{hint}: the recorded calls are {}, and the lifecycle steps {}",
        truncated(call),
        all.join(", "),
        LIFECYCLE_STEPS.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_calls() {
        let hint = |call: &str| {
            let m = unknown_call(call);
            m[..m.find(": the recorded calls").unwrap()].to_string()
        };
        assert_eq!(
            hint("wrtie"),
            "unknown call `wrtie` (did you mean `write`?)"
        );
        assert_eq!(hint("exce"), "unknown call `exce` (did you mean `exec`?)");
        assert_eq!(hint("frobnicate"), "unknown call `frobnicate`");
        // A huge name: no suggestion, and shown cut.
        let huge = "w".repeat(1_000_000);
        let shown = "w".repeat(ordeal_toml::MAX_SHOWN_CHARS);
        assert_eq!(hint(&huge), format!("unknown call `{shown}…`"));
    }
}
