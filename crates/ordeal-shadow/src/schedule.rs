//! Timed proxy actions: a toxic added or removed, a proxy taken down or up, every proxy
//! reset — each at a time from the start.

use crate::api::Registry;
use crate::session::run_until;
use crate::{Error, Proxy, Toxic};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// What to do to a proxy.
#[derive(Debug, Clone, PartialEq)]
pub enum ProxyAction {
    /// Add this toxic (checked when parsed).
    Add(Toxic),
    /// Remove the toxic with this name.
    Remove(String),
    /// Disable the proxy (close its connections, refuse new ones).
    Down,
    /// Enable it again.
    Up,
    /// Enable every proxy and remove every toxic.
    Reset,
}

/// `down`, `up`, `reset`, `-NAME` (remove toxic NAME), or a toxic as JSON (added): a missing
/// `stream` is `downstream`, `toxicity` 1, `attributes` empty, `name` `TYPE_STREAM`.
impl std::str::FromStr for ProxyAction {
    type Err = Error;
    fn from_str(a: &str) -> Result<ProxyAction, Error> {
        Ok(match a {
            "down" => ProxyAction::Down,
            "up" => ProxyAction::Up,
            "reset" => ProxyAction::Reset,
            _ if a.starts_with('-') => ProxyAction::Remove(a[1..].to_string()),
            _ => {
                let mut v: serde_json::Value =
                    serde_json::from_str(a).map_err(|source| Error::Json {
                        context: "the toxic is not JSON".into(),
                        source,
                    })?;
                // Defaults fill an object (or null, which becomes one); anything else is left
                // for the toxic's own check to refuse.
                if v.is_object() || v.is_null() {
                    let kind = v["type"].as_str().unwrap_or("").to_string();
                    let stream = v["stream"].as_str().unwrap_or("downstream").to_string();
                    if v.get("name").is_none() {
                        v["name"] = format!("{kind}_{stream}").into();
                    }
                    if v.get("stream").is_none() {
                        v["stream"] = stream.into();
                    }
                    if v.get("toxicity").is_none() {
                        v["toxicity"] = 1.0.into();
                    }
                    if v.get("attributes").is_none() {
                        v["attributes"] = serde_json::json!({});
                    }
                }
                let t: Toxic = serde_json::from_value(v).map_err(|source| Error::Json {
                    context: "bad toxic".into(),
                    source,
                })?;
                t.effect()?;
                ProxyAction::Add(t)
            }
        })
    }
}

impl ProxyAction {
    /// Does it to `proxy` (of `registry`, for [`ProxyAction::Reset`]).
    pub fn apply(&self, registry: &Registry, proxy: &Proxy) -> Result<(), Error> {
        match self {
            ProxyAction::Add(t) => proxy.add_toxic(t.clone()).map(|_| ()),
            ProxyAction::Remove(n) => proxy.remove_toxic(n),
            ProxyAction::Down => proxy.set_enabled(false),
            ProxyAction::Up => proxy.set_enabled(true),
            ProxyAction::Reset => registry.reset(),
        }
    }
}

/// An action on the proxy named `proxy`, `at` after the start.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledAction {
    pub at: Duration,
    pub proxy: String,
    pub action: ProxyAction,
}

/// Applies each action of `schedule` once `at` has passed since `start` (in time order; the
/// same time: in the given order), until `stop` is set or `until`; `applied` hears each
/// outcome. An action on a proxy that no longer exists is skipped.
pub fn run_schedule(
    registry: &Registry,
    mut schedule: Vec<ScheduledAction>,
    start: Instant,
    stop: &AtomicBool,
    until: Option<Instant>,
    mut applied: impl FnMut(&ScheduledAction, Result<(), Error>),
) {
    schedule.sort_by_key(|s| s.at);
    let mut next = 0;
    run_until(stop, until, Duration::from_millis(1), || {
        while next < schedule.len() && start.elapsed() >= schedule[next].at {
            let s = &schedule[next];
            next += 1;
            let Some(px) = registry.get(&s.proxy) else {
                continue;
            };
            applied(s, s.action.apply(registry, &px));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProxyConfig, Stream};
    use std::sync::atomic::Ordering;

    #[test]
    fn actions_parse_with_toxic_defaults() {
        assert_eq!("down".parse::<ProxyAction>().unwrap(), ProxyAction::Down);
        assert_eq!("up".parse::<ProxyAction>().unwrap(), ProxyAction::Up);
        assert_eq!("reset".parse::<ProxyAction>().unwrap(), ProxyAction::Reset);
        assert_eq!(
            "-latency_downstream".parse::<ProxyAction>().unwrap(),
            ProxyAction::Remove("latency_downstream".into())
        );
        assert_eq!(
            r#"{"type":"latency","attributes":{"latency":300}}"#
                .parse::<ProxyAction>()
                .unwrap(),
            ProxyAction::Add(Toxic::new(
                "latency",
                Stream::Downstream,
                &[("latency", 300)]
            ))
        );
        let ProxyAction::Add(t) =
            r#"{"type":"limit_data","stream":"upstream","name":"cut","toxicity":0.5}"#
                .parse::<ProxyAction>()
                .unwrap()
        else {
            panic!("not an added toxic");
        };
        assert_eq!(
            (t.name.as_str(), t.kind.as_str(), t.stream, t.toxicity),
            ("cut", "limit_data", Stream::Upstream, 0.5)
        );
        assert!(t.attributes.is_empty());
    }

    #[test]
    fn bad_actions_say_why() {
        let err = |a: &str| a.parse::<ProxyAction>().unwrap_err().to_string();
        assert_eq!(
            err("dwn"),
            "the toxic is not JSON: expected value at line 1 column 1"
        );
        assert_eq!(
            err(r#"{"type":"latency","stream":"sideways"}"#),
            "bad toxic: unknown variant `sideways`, expected `upstream` or `downstream`"
        );
        // Not an object: refused, not a panic.
        assert_eq!(
            err("[1]"),
            "bad toxic: invalid type: integer `1`, expected a string"
        );
        assert_eq!(err("null"), "bad toxic: missing field `type`");
        assert_eq!(
            err(r#"{"type":"lag"}"#),
            "unknown toxic type `lag` (expected latency, bandwidth, slow_close, timeout, reset_peer, slicer or limit_data)"
        );
        assert_eq!(
            err(r#"{"type":"latency","attributes":{"rate":1}}"#),
            "toxic `latency_downstream`: unknown attribute `rate` for type latency"
        );
    }

    #[test]
    fn a_schedule_applies_its_actions_in_time_order() {
        let reg = Registry::new();
        let px = reg
            .create(ProxyConfig {
                name: "p".into(),
                listen: "127.0.0.1:0".into(),
                upstream: "127.0.0.1:1".into(),
                enabled: true,
            })
            .unwrap();
        let at = |ms: u64, proxy: &str, action: &str| ScheduledAction {
            at: Duration::from_millis(ms),
            proxy: proxy.into(),
            action: action.parse().unwrap(),
        };
        let schedule = vec![
            at(30, "p", "up"),
            at(0, "p", r#"{"type":"latency"}"#),
            at(20, "p", "-latency_downstream"),
            at(10, "gone", "down"),
            at(20, "p", "-latency_downstream"),
            at(10, "p", "down"),
        ];
        let stop = AtomicBool::new(false);
        let mut seen = Vec::new();
        run_schedule(
            &reg,
            schedule,
            Instant::now(),
            &stop,
            Some(Instant::now() + Duration::from_secs(30)),
            |s, r| {
                seen.push((s.at.as_millis(), r.map_err(|e| e.to_string())));
                if s.action == ProxyAction::Up {
                    stop.store(true, Ordering::SeqCst);
                }
            },
        );
        assert_eq!(
            seen,
            [
                (0, Ok(())),
                (10, Ok(())),
                (20, Ok(())),
                (20, Err("toxic latency_downstream not found".to_string())),
                (30, Ok(())),
            ]
        );
        assert!(px.enabled());
        assert!(px.toxics().is_empty());
        reg.shutdown_all();
    }
}
