//! Toxics: what a proxied link does to the bytes going through it (Toxiproxy's model).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Which way a toxic acts: `upstream` is client → server, `downstream` server → client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Upstream,
    #[default]
    Downstream,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// One toxic as the API shows it: `{"name", "type", "stream", "toxicity", "attributes"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Toxic {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub stream: Stream,
    /// Probability that the toxic applies to a connection (drawn once per connection).
    pub toxicity: f64,
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// A toxic's effect, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// Delay every chunk by `latency` ± `jitter`.
    Latency { latency: Duration, jitter: Duration },
    /// At most `rate` KB/s (1 KB = 1000 bytes... Toxiproxy uses KB = 1024; so do we).
    Bandwidth { kb_per_s: u64 },
    /// Delay the close of the connection by `delay`.
    SlowClose { delay: Duration },
    /// Stop all data; close the connection after `timeout` (zero: never, data is dropped until
    /// the toxic is removed).
    Timeout { timeout: Duration },
    /// Reset the connection (TCP RST) `timeout` after the toxic applies.
    ResetPeer { timeout: Duration },
    /// Split data into chunks of `average_size` ± `size_variation` bytes, `delay` between.
    Slicer {
        average_size: usize,
        size_variation: usize,
        delay: Duration,
    },
    /// Close the connection once `bytes` have gone through in the toxic's direction.
    LimitData { bytes: u64 },
}

/// Why a toxic is rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToxicError {
    #[error("unknown toxic type `{0}` (expected latency, bandwidth, slow_close, timeout, reset_peer, slicer or limit_data)")]
    UnknownType(String),
    #[error("toxic `{toxic}`: attribute `{attr}` must be a non-negative integer")]
    BadAttribute { toxic: String, attr: String },
    #[error("toxic `{toxic}`: unknown attribute `{attr}` for type {kind}")]
    UnknownAttribute {
        toxic: String,
        attr: String,
        kind: String,
    },
    #[error("toxic `{0}`: toxicity must be between 0 and 1")]
    BadToxicity(String),
    #[error("toxic `{toxic}`: {msg}")]
    Invalid { toxic: String, msg: String },
}

/// Times (ms: `latency`, `jitter`, `timeout`, `delay`) must stay under this: 1 hour. A
/// longer one is surely a mistake, and the bound keeps every deadline computed from it far
/// from overflowing (2^63 ms once wrapped to no delay at all).
pub const MAX_MS: u64 = 3_600_000;
/// A slicer's sizes (bytes) must stay at or under this: 1 GiB.
pub const MAX_SLICE: u64 = 1 << 30;

const ATTRS: &[(&str, &[&str])] = &[
    ("latency", &["latency", "jitter"]),
    ("bandwidth", &["rate"]),
    ("slow_close", &["delay"]),
    ("timeout", &["timeout"]),
    ("reset_peer", &["timeout"]),
    ("slicer", &["average_size", "size_variation", "delay"]),
    ("limit_data", &["bytes"]),
];

impl Toxic {
    /// A toxic with default name `TYPE_STREAM` and toxicity 1.
    pub fn new(kind: &str, stream: Stream, attrs: &[(&str, u64)]) -> Toxic {
        let mut attributes = serde_json::Map::new();
        for (k, v) in attrs {
            attributes.insert((*k).to_string(), (*v).into());
        }
        Toxic {
            name: format!("{kind}_{}", stream.as_str()),
            kind: kind.to_string(),
            stream,
            toxicity: 1.0,
            attributes,
        }
    }

    fn attr(&self, name: &str) -> Result<u64, ToxicError> {
        match self.attributes.get(name) {
            None | Some(serde_json::Value::Null) => Ok(0),
            Some(v) => v.as_u64().ok_or_else(|| ToxicError::BadAttribute {
                toxic: self.name.clone(),
                attr: name.to_string(),
            }),
        }
    }

    /// An attribute that is a time in `unit`s, below `max` of them (one hour).
    fn time(&self, name: &str, unit: &str, max: u64) -> Result<u64, ToxicError> {
        let v = self.attr(name)?;
        if v >= max {
            return Err(ToxicError::Invalid {
                toxic: self.name.clone(),
                msg: format!("`{name}` must be less than {max} {unit} (1 hour), not {v}"),
            });
        }
        Ok(v)
    }

    /// A milliseconds attribute, below [`MAX_MS`].
    fn ms(&self, name: &str) -> Result<Duration, ToxicError> {
        self.time(name, "ms", MAX_MS).map(Duration::from_millis)
    }

    /// A size attribute, at most [`MAX_SLICE`].
    fn size(&self, name: &str) -> Result<usize, ToxicError> {
        let v = self.attr(name)?;
        if v > MAX_SLICE {
            return Err(ToxicError::Invalid {
                toxic: self.name.clone(),
                msg: format!("`{name}` must be at most {MAX_SLICE} bytes, not {v}"),
            });
        }
        Ok(v as usize)
    }

    /// Checks the toxic and returns its effect.
    pub fn effect(&self) -> Result<Effect, ToxicError> {
        let Some((_, known)) = ATTRS.iter().find(|(k, _)| *k == self.kind) else {
            return Err(ToxicError::UnknownType(self.kind.clone()));
        };
        for k in self.attributes.keys() {
            if !known.contains(&k.as_str()) {
                return Err(ToxicError::UnknownAttribute {
                    toxic: self.name.clone(),
                    attr: k.clone(),
                    kind: self.kind.clone(),
                });
            }
        }
        if !(0.0..=1.0).contains(&self.toxicity) || self.toxicity.is_nan() {
            return Err(ToxicError::BadToxicity(self.name.clone()));
        }
        Ok(match self.kind.as_str() {
            "latency" => Effect::Latency {
                latency: self.ms("latency")?,
                jitter: self.ms("jitter")?,
            },
            "bandwidth" => {
                let rate = self.attr("rate")?;
                if rate == 0 {
                    return Err(ToxicError::Invalid {
                        toxic: self.name.clone(),
                        msg: "rate must be at least 1 (KB/s)".into(),
                    });
                }
                Effect::Bandwidth { kb_per_s: rate }
            }
            "slow_close" => Effect::SlowClose {
                delay: self.ms("delay")?,
            },
            "timeout" => Effect::Timeout {
                timeout: self.ms("timeout")?,
            },
            "reset_peer" => Effect::ResetPeer {
                timeout: self.ms("timeout")?,
            },
            "slicer" => {
                let average_size = self.size("average_size")?;
                let size_variation = self.size("size_variation")?;
                if average_size == 0 || size_variation >= average_size {
                    return Err(ToxicError::Invalid {
                        toxic: self.name.clone(),
                        msg: "slicer needs average_size ≥ 1 and size_variation < average_size"
                            .into(),
                    });
                }
                Effect::Slicer {
                    average_size,
                    size_variation,
                    delay: Duration::from_micros(self.time("delay", "µs", MAX_MS * 1000)?),
                }
            }
            "limit_data" => Effect::LimitData {
                bytes: self.attr("bytes")?,
            },
            other => return Err(ToxicError::UnknownType(other.to_string())),
        })
    }
}

/// A small deterministic generator (xorshift64*), for jitter, slicer sizes and toxicity draws.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [-span, span].
    pub fn spread(&mut self, span: u64) -> i64 {
        if span == 0 {
            return 0;
        }
        (self.next_u64() % (2 * span + 1)) as i64 - span as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let t: Toxic = serde_json::from_str(
            r#"{"name":"lat","type":"latency","stream":"upstream","toxicity":1.0,"attributes":{"latency":100,"jitter":5}}"#,
        )
        .unwrap();
        assert_eq!(
            t.effect().unwrap(),
            Effect::Latency {
                latency: Duration::from_millis(100),
                jitter: Duration::from_millis(5)
            }
        );
        let mut bad = t.clone();
        bad.kind = "lightning".into();
        assert!(matches!(bad.effect(), Err(ToxicError::UnknownType(_))));
        let mut bad = t.clone();
        bad.attributes.insert("rate".into(), 5.into());
        assert!(matches!(
            bad.effect(),
            Err(ToxicError::UnknownAttribute { .. })
        ));
        let mut bad = t;
        bad.attributes.insert("latency".into(), (-5).into());
        assert!(matches!(bad.effect(), Err(ToxicError::BadAttribute { .. })));
        let s = Toxic::new("slicer", Stream::Downstream, &[("average_size", 0)]);
        assert!(matches!(s.effect(), Err(ToxicError::Invalid { .. })));
    }

    /// Times stop short of an hour (2^63 ms once wrapped to no delay at all), sizes at 1 GiB.
    #[test]
    fn times_and_sizes_have_a_ceiling() {
        let err = |kind: &str, attr: &str, v: u64| {
            Toxic::new(kind, Stream::Downstream, &[(attr, v)])
                .effect()
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            err("latency", "latency", 1 << 63).as_deref(),
            Some(
                "toxic `latency_downstream`: `latency` must be less than 3600000 ms (1 hour), \
                 not 9223372036854775808"
            )
        );
        assert_eq!(
            err("latency", "latency", MAX_MS).as_deref(),
            Some(
                "toxic `latency_downstream`: `latency` must be less than 3600000 ms (1 hour), \
                 not 3600000"
            )
        );
        assert_eq!(err("latency", "latency", MAX_MS - 1), None);
        assert!(err("latency", "jitter", u64::MAX).is_some());
        assert!(err("timeout", "timeout", MAX_MS).is_some());
        assert!(err("reset_peer", "timeout", MAX_MS).is_some());
        assert!(err("slow_close", "delay", MAX_MS).is_some());
        let slicer_delay = Toxic::new(
            "slicer",
            Stream::Downstream,
            &[("average_size", 10), ("delay", MAX_MS * 1000)],
        );
        assert_eq!(
            slicer_delay
                .effect()
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some(
                "toxic `slicer_downstream`: `delay` must be less than 3600000000 µs (1 hour), \
                 not 3600000000"
            )
        );
        let big = Toxic::new(
            "slicer",
            Stream::Downstream,
            &[("average_size", MAX_SLICE + 1), ("size_variation", 1)],
        );
        assert!(matches!(big.effect(), Err(ToxicError::Invalid { .. })));
    }
}
