//! The schedule file as written, and its conversion into the model: the top level, each
//! fault's name, kind and keys (each kind reads its own values: `kinds/`), and triggers.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::calls::parse_class;
use crate::check::{self, msg};
use crate::kinds::{self, Given, RawFault, Spec};
use crate::{
    parse_duration, Diagnostic, Direction, Error, Fault, FaultKind, Location, Participants,
    PathGlob, Pattern, Schedule, Target, Trigger, When, FAULT_KINDS,
};
use ordeal_toml::Source;

type Str = Spanned<String>;
type Int = Spanned<i64>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    #[serde(default)]
    seed: Option<Int>,
    #[serde(default, rename = "fault")]
    faults: Vec<Spanned<RawFault>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrigger {
    #[serde(default)]
    nth: Option<Int>,
    #[serde(default)]
    p: Option<Spanned<Number>>,
    #[serde(default)]
    after: Option<Str>,
    #[serde(default)]
    times: Option<Int>,
    #[serde(default)]
    when: Option<Str>,
    #[serde(default)]
    node: Option<Str>,
    #[serde(default)]
    role: Option<Str>,
    #[serde(default)]
    call: Option<Str>,
    #[serde(default)]
    class: Option<Str>,
    #[serde(default)]
    peer: Option<Str>,
    #[serde(default)]
    direction: Option<Str>,
    #[serde(default)]
    path: Option<Str>,
}

/// An integer or a float (`p = 1` and `p = 0.5` are both fine).
struct Number(f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number between 0 and 1")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                Ok(Number(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Where each value of a fault was in the file.
#[derive(Debug, Clone, Default)]
pub(crate) struct FaultSpans {
    /// The fault's name when it was parsed: positions are used only while it still matches.
    pub fault: String,
    pub table: Option<Location>,
    pub name: Option<Location>,
    /// The kind's keys given, by key.
    pub keys: BTreeMap<&'static str, KeySpans>,
    pub trigger: TriggerSpans,
}

/// Where a kind key's value was, and its items (of a list).
#[derive(Debug, Clone, Default)]
pub(crate) struct KeySpans {
    pub value: Option<Location>,
    pub items: Vec<Location>,
}

impl FaultSpans {
    /// Where the value of kind key `key` was.
    pub fn key(&self, key: &str) -> &Option<Location> {
        static NONE: Option<Location> = None;
        self.keys.get(key).map_or(&NONE, |k| &k.value)
    }

    /// Where the items of list key `key` were.
    pub fn items(&self, key: &str) -> &[Location] {
        self.keys.get(key).map_or(&[], |k| &k.items)
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct TriggerSpans {
    pub table: Option<Location>,
    pub nth: Option<Location>,
    pub p: Option<Location>,
    pub after: Option<Location>,
    pub times: Option<Location>,
    pub when: Option<Location>,
    pub node: Option<Location>,
    pub role: Option<Location>,
    pub call: Option<Location>,
    pub class: Option<Location>,
    pub peer: Option<Location>,
    pub direction: Option<Location>,
    pub path: Option<Location>,
}

pub(crate) fn parse(
    text: &str,
    file: &str,
    names: Option<&Participants>,
) -> Result<Schedule, Error> {
    let src = Source::new(file, text);
    let raw: RawSchedule = toml::from_str(text).map_err(|e| {
        let mut d = src.toml_error(&e);
        if let Some(hint) = e.span().and_then(|s| {
            ordeal_toml::duration_hint(
                text,
                s.start,
                e.message().trim(),
                &["duration", "restart_after", "after"],
            )
        }) {
            d.message.push_str(&hint);
        }
        let at = e.span().and_then(|s| text.get(s.start..)).unwrap_or("");
        if at.starts_with("[fault]") {
            d.message
                .push_str(" (write `[[fault]]`: each fault is an entry of the `fault` array)");
        }
        Error::Invalid(vec![d])
    })?;
    let mut c = Converter {
        src,
        diags: Vec::new(),
    };
    let seed = match &raw.seed {
        Some(s) if *s.get_ref() < 0 => {
            c.err(s.span(), "`seed` must be a whole number, 0 or more");
            0
        }
        Some(s) => *s.get_ref() as u64,
        None => 0,
    };
    if raw.faults.is_empty() {
        c.diags.push(Diagnostic {
            location: Location::file_only(file),
            message: "the schedule has no fault: add at least one [[fault]] table".into(),
        });
    }
    let mut faults = Vec::new();
    let mut spans = Vec::new();
    for (i, rf) in raw.faults.iter().enumerate() {
        let (kind, trigger, name, sp) = c.fault(i, rf);
        match (kind, trigger) {
            (Some(kind), Some(trigger)) => {
                let sp = FaultSpans {
                    fault: name.clone(),
                    ..sp
                };
                faults.push(Fault {
                    name,
                    kind,
                    trigger,
                });
                spans.push(sp);
            }
            // Check what could be read, so that fixing the file takes one round.
            (kind, trigger) => {
                c.diags.extend(check::check_parts(
                    file,
                    &name,
                    kind.as_ref(),
                    trigger.as_ref(),
                    &sp,
                    names,
                ));
            }
        }
    }
    let schedule = Schedule {
        seed,
        faults,
        file: file.to_string(),
        spans,
    };
    let mut diags = c.diags;
    diags.extend(check::check_schedule(&schedule, names));
    if !diags.is_empty() {
        ordeal_toml::sort_diagnostics(&mut diags);
        return Err(Error::Invalid(diags));
    }
    Ok(schedule)
}

/// Turns the file's values into the model, collecting the problems found on the way.
pub(crate) struct Converter<'a> {
    src: Source<'a>,
    diags: Vec<Diagnostic>,
}

impl Converter<'_> {
    fn loc(&self, span: Range<usize>) -> Location {
        self.src.at(span.start)
    }

    /// Reports a problem with the value at `span`.
    pub(crate) fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        let d = Diagnostic {
            location: self.loc(span),
            message: message.into(),
        };
        self.diags.push(d);
    }

    fn err_at(&mut self, location: &Option<Location>, message: impl Into<String>) {
        let location = location
            .clone()
            .unwrap_or_else(|| Location::file_only(self.src.file()));
        self.diags.push(Diagnostic {
            location,
            message: message.into(),
        });
    }

    fn span<T>(&self, v: &Option<Spanned<T>>) -> Option<Location> {
        v.as_ref().map(|v| self.loc(v.span()))
    }

    /// A duration; `None` after reporting a malformed one.
    pub(crate) fn duration(&mut self, value: &Str) -> Option<Duration> {
        match parse_duration(value.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(value.span(), e.to_string());
                None
            }
        }
    }

    /// An optional duration: `Some(None)` when not given, `None` after reporting a malformed
    /// one.
    pub(crate) fn optional_duration(&mut self, value: &Option<Str>) -> Option<Option<Duration>> {
        match value {
            Some(v) => self.duration(v).map(Some),
            None => Some(None),
        }
    }

    /// Converts one `[[fault]]`: its kind, its trigger, its name and where its values are.
    fn fault(
        &mut self,
        index: usize,
        raw: &Spanned<RawFault>,
    ) -> (Option<FaultKind>, Option<Trigger>, String, FaultSpans) {
        let table = raw.span();
        let f = raw.get_ref();
        let given = f.given();
        let mut sp = FaultSpans {
            fault: String::new(),
            table: Some(self.loc(table.clone())),
            name: self.span(&f.name),
            keys: given
                .iter()
                .map(|g| {
                    let spans = KeySpans {
                        value: Some(self.loc(g.span.clone())),
                        items: g.items.iter().map(|s| self.loc(s.clone())).collect(),
                    };
                    (g.key, spans)
                })
                .collect(),
            trigger: TriggerSpans::default(),
        };

        let spec = match &f.kind {
            None => {
                self.err(
                    table.clone(),
                    format!("the fault has no `kind`: write kind = {}", quoted_kinds()),
                );
                None
            }
            Some(k) => {
                let spec = kinds::spec(k.get_ref());
                if spec.is_none() {
                    self.err(
                        k.span(),
                        format!(
                            "unknown fault kind `{}`: expected {}",
                            k.get_ref(),
                            FAULT_KINDS.join(", ")
                        ),
                    );
                }
                spec
            }
        };
        let name = match &f.name {
            Some(n) => n.get_ref().clone(),
            None => format!("{}-{}", spec.map_or("fault", |s| s.name), index + 1),
        };

        let kind = spec.and_then(|s| self.kind(s, f, &given, &table));
        let trigger = match &f.trigger {
            Some(t) => {
                sp.trigger.table = Some(self.loc(t.span()));
                self.trigger(t, &mut sp.trigger)
            }
            None => {
                self.err(
                    table,
                    "the fault has no `trigger`: add `trigger = { nth = 1, call = \"...\" }` \
                     (the nth matching event), `{ after = \"1s\" }` (a time after the \
                     workload starts) or `{ p = 0.01, call = \"...\" }` (a probability per \
                     matching event)",
                );
                None
            }
        };
        (kind, trigger, name, sp)
    }

    /// Checks the keys given against the kind's, then lets the kind read its values.
    fn kind(
        &mut self,
        spec: &Spec,
        f: &RawFault,
        given: &[Given],
        table: &Range<usize>,
    ) -> Option<FaultKind> {
        let kind = spec.name;
        let keys = spec.keys;
        for g in given {
            if !keys.iter().any(|k| k.name == g.key) {
                let takes = if keys.is_empty() {
                    format!("a `{kind}` fault takes only `name`, `kind` and `trigger`")
                } else {
                    let names: Vec<String> = keys.iter().map(|k| format!("`{}`", k.name)).collect();
                    format!("a `{kind}` fault takes {}", and_list(&names))
                };
                // Reported, but the fault is still built, to check the rest of it.
                self.err(
                    g.span.clone(),
                    format!("`{}` does not apply to a `{kind}` fault ({takes})", g.key),
                );
            }
        }
        let mut ok = true;
        for key in keys.iter().filter(|k| k.required) {
            let instead = key.or.map(|(k, _)| k);
            if !given
                .iter()
                .any(|g| g.key == key.name || Some(g.key) == instead)
            {
                let or = match key.or {
                    Some((k, help)) => format!(" or `{k}`{help}"),
                    None => String::new(),
                };
                self.err(
                    table.clone(),
                    format!("a `{kind}` fault needs `{}`{}{or}", key.name, key.help),
                );
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        (spec.read)(f, self)
    }

    fn trigger(&mut self, raw: &Spanned<RawTrigger>, sp: &mut TriggerSpans) -> Option<Trigger> {
        let t = raw.get_ref();
        *sp = TriggerSpans {
            table: sp.table.clone(),
            nth: self.span(&t.nth),
            p: self.span(&t.p),
            after: self.span(&t.after),
            times: self.span(&t.times),
            when: self.span(&t.when),
            node: self.span(&t.node),
            role: self.span(&t.role),
            call: self.span(&t.call),
            class: self.span(&t.class),
            peer: self.span(&t.peer),
            direction: self.span(&t.direction),
            path: self.span(&t.path),
        };
        let which: Vec<&str> = [
            ("nth", t.nth.is_some()),
            ("p", t.p.is_some()),
            ("after", t.after.is_some()),
        ]
        .iter()
        .filter(|(_, given)| *given)
        .map(|(k, _)| *k)
        .collect();
        if which.len() != 1 {
            let what = if which.is_empty() {
                "the trigger needs one of".to_string()
            } else {
                let names: Vec<String> = which.iter().map(|k| format!("`{k}`")).collect();
                format!("the trigger has {}: give only one of", names.join(" and "))
            };
            self.err_at(
                &sp.table,
                format!(
                    "{what} `nth` (fire at the nth matching event), `p` (fire with this \
                     probability at each matching event) or `after` (fire this long after the \
                     workload starts)"
                ),
            );
            return None;
        }

        if let Some(after) = &t.after {
            let mut ok = true;
            let extra: [(&str, &Option<Location>); 9] = [
                ("times", &sp.times),
                ("when", &sp.when),
                ("node", &sp.node),
                ("role", &sp.role),
                ("call", &sp.call),
                ("class", &sp.class),
                ("peer", &sp.peer),
                ("direction", &sp.direction),
                ("path", &sp.path),
            ];
            for (key, loc) in extra {
                if loc.is_some() {
                    self.err_at(
                        loc,
                        format!(
                            "`{key}` does not apply to a time trigger (`after`), which counts \
                             no events; use `nth` or `p` to fire at a matching event"
                        ),
                    );
                    ok = false;
                }
            }
            let after = self.duration(after);
            return match (ok, after) {
                (true, Some(after)) => Some(Trigger::Time { after }),
                _ => None,
            };
        }

        // A negative count is reported here and replaced by 1, so that the rest of the trigger
        // is still checked (the schedule is rejected anyway).
        let count = |c: &mut Converter, v: &Option<Int>, message: &str| -> u64 {
            match v {
                Some(v) if *v.get_ref() < 0 => {
                    c.err(v.span(), message);
                    1
                }
                Some(v) => *v.get_ref() as u64,
                None => 1,
            }
        };
        let mut ok = true;
        let nth = count(self, &t.nth, msg::NTH);
        let times = count(self, &t.times, msg::TIMES);
        let when = match &t.when {
            None => When::Before,
            Some(w) => match w.get_ref().as_str() {
                "before" => When::Before,
                "after" => When::After,
                other => {
                    self.err(
                        w.span(),
                        format!(
                            "`when` must be \"before\" (at the call's entry) or \"after\" (once \
                             it completed), not \"{other}\""
                        ),
                    );
                    ok = false;
                    When::Before
                }
            },
        };
        let class = t.class.as_ref().and_then(|c| {
            let class = parse_class(c.get_ref());
            if class.is_none() {
                self.err(
                    c.span(),
                    format!(
                        "unknown class `{}`: expected \"net\", \"data\", \"file\" or \"proc\"",
                        c.get_ref()
                    ),
                );
                ok = false;
            }
            class
        });
        let direction = t
            .direction
            .as_ref()
            .and_then(|d| match d.get_ref().as_str() {
                "send" => Some(Direction::Send),
                "recv" => Some(Direction::Recv),
                other => {
                    self.err(
                        d.span(),
                        format!("`direction` must be \"send\" or \"recv\", not \"{other}\""),
                    );
                    ok = false;
                    None
                }
            });
        let path = t
            .path
            .as_ref()
            .and_then(|p| match PathGlob::new(p.get_ref()) {
                Ok(g) => Some(g),
                Err(m) => {
                    self.err(p.span(), m.to_string());
                    ok = false;
                    None
                }
            });
        let string = |v: &Option<Str>| v.as_ref().map(|s| s.get_ref().clone());
        let node = match (&t.node, &t.role) {
            (Some(_), Some(role)) => {
                self.err(
                    role.span(),
                    "give `node` (a node's calls) or `role` (the calls of the node holding \
                     it), not both",
                );
                ok = false;
                None
            }
            (_, Some(role)) => Some(Target::Role(role.get_ref().clone())),
            (node, None) => string(node).map(Target::Node),
        };
        let pattern = Pattern {
            node,
            call: string(&t.call),
            class,
            peer: string(&t.peer),
            direction,
            path,
        };
        if !ok {
            return None;
        }
        Some(match &t.p {
            Some(p) => Trigger::Probability {
                p: p.get_ref().0,
                times,
                pattern,
                when,
            },
            None => Trigger::At {
                nth,
                times,
                pattern,
                when,
            },
        })
    }
}

fn quoted_kinds() -> String {
    let q: Vec<String> = FAULT_KINDS.iter().map(|k| format!("\"{k}\"")).collect();
    format!("{} or {}", q[..q.len() - 1].join(", "), q[q.len() - 1])
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}
