//! Recording workload clients: concurrent logical processes run reads, writes and
//! compare-and-sets against a system and record every operation in history.jsonl.
//!
//! * Each of `processes` threads is a logical slot running one operation at a time, at an
//!   overall `rate`, until `ops` operations were invoked or `duration` has passed (both bounds
//!   always apply; an operation in flight then ends within `timeout`).
//! * Keys are `k0` .. `k{keys-1}`; written values are unique integers; a cas compares with
//!   the last value its slot read or wrote for the key.
//! * Times are monotonic nanoseconds since the workload started (or, under `ordeal run`, on the
//!   trace's clock: see [`CLOCK_ORIGIN_ENV`]), taken under the lock that
//!   appends to the history, so file order is time order.
//! * An operation that may or may not have taken effect (timeout, connection lost after the
//!   request was sent, an ambiguous server error) is recorded `info`, and its slot continues
//!   under a fresh process id (old id + `processes`), as Jepsen does: a process whose
//!   operation is indeterminate never issues another.
//! * Only loopback addresses are accepted.

pub mod etcd;
pub mod http;
pub mod kv;
pub mod redis;

use crate::generate::Rng;
use crate::history::{Entry, Kind, Value, F};
use crate::jsonl;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Workload errors (before or while recording).
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// An address is not on this machine's loopback.
    #[error("{0}: only loopback addresses are allowed (127.0.0.0/8, ::1; and a run's own subnet inside its network namespaces)")]
    NotLoopback(String),
    /// An address could not be parsed or resolved.
    #[error("{addr}: {msg}")]
    BadAddress {
        /// The address as given.
        addr: String,
        /// Why.
        msg: String,
    },
    /// The configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// The history could not be written.
    #[error("writing the history: {0}")]
    Io(#[from] std::io::Error),
}

/// Set by `ordeal run` with `network = "netns"` to the run's private subnet and the network
/// namespace ordeal itself runs in (`10.77.0.0/24 outside net:[4026531833]`): the recording
/// clients then also accept the subnet's addresses, as long as they run in another namespace
/// (one of the run's own, with no route out), never in ordeal's.
pub const NETNS_SUBNET_ENV: &str = "ORDEAL_NETNS_SUBNET";

/// The run's private subnet, when this process is inside one of its namespaces.
fn run_subnet() -> Option<(std::net::Ipv4Addr, u8)> {
    let text = std::env::var(NETNS_SUBNET_ENV).ok()?;
    let (subnet, machine) = text.split_once(" outside ")?;
    let (net, bits) = subnet.split_once('/')?;
    let net: std::net::Ipv4Addr = net.parse().ok()?;
    let bits: u8 = bits.parse().ok().filter(|b| (8..=32).contains(b))?;
    // In ordeal's own namespace those addresses could be anywhere: only loopback there.
    let own = std::fs::read_link("/proc/self/ns/net").ok()?;
    (own.to_str() != Some(machine)).then_some((net, bits))
}

fn allowed(ip: std::net::IpAddr, subnet: Option<(std::net::Ipv4Addr, u8)>) -> bool {
    if ip.is_loopback() {
        return true;
    }
    match (ip, subnet) {
        (std::net::IpAddr::V4(v4), Some((net, bits))) => {
            let mask = u32::MAX << (32 - u32::from(bits));
            u32::from(v4) & mask == u32::from(net) & mask
        }
        _ => false,
    }
}

/// Resolves `host:port` strings, refusing anything that is not loopback (or, inside a run's
/// network namespace, the run's own subnet: [`NETNS_SUBNET_ENV`]).
pub fn loopback_addrs(addrs: &[String]) -> Result<Vec<SocketAddr>, WorkloadError> {
    let subnet = run_subnet();
    if addrs.is_empty() {
        return Err(WorkloadError::Config("no address given".into()));
    }
    addrs
        .iter()
        .map(|a| {
            let resolved: Vec<SocketAddr> = a
                .to_socket_addrs()
                .map_err(|e| WorkloadError::BadAddress {
                    addr: a.clone(),
                    msg: e.to_string(),
                })?
                .collect();
            if resolved.is_empty() || !resolved.iter().all(|r| allowed(r.ip(), subnet)) {
                return Err(WorkloadError::NotLoopback(a.clone()));
            }
            Ok(resolved[0])
        })
        .collect()
}

/// An operation to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Read `key`.
    Read {
        /// The key.
        key: String,
    },
    /// Write `value` to `key`.
    Write {
        /// The key.
        key: String,
        /// The value.
        value: i64,
    },
    /// Set `key` to `new` if it holds `old`.
    Cas {
        /// The key.
        key: String,
        /// Expected value.
        old: i64,
        /// New value.
        new: i64,
    },
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Took effect; for a read, the value read.
    Ok(Value),
    /// Certainly did not take effect; why.
    Fail(String),
    /// May or may not have taken effect; why.
    Info(String),
}

/// A connection-holding client for one logical slot.
pub trait Client: Send {
    /// Runs one operation, within the client's timeout.
    fn call(&mut self, req: &Request) -> Reply;
    /// Whether the system supports cas.
    fn supports_cas(&self) -> bool;
    /// The address of the node that answered the last call (or was asked last, when none
    /// answered), recorded as the extra field `node` of its completion.
    fn node(&self) -> Option<String> {
        None
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Concurrent logical processes (threads).
    pub processes: usize,
    /// Operations per second, all processes together; 0 = as fast as possible.
    pub rate: f64,
    /// Stop invoking after this long.
    pub duration: Duration,
    /// Stop after this many operations were invoked.
    pub ops: u64,
    /// Number of keys.
    pub keys: u64,
    /// Seed of the random choices.
    pub seed: u64,
}

/// Counts of what happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Operations invoked.
    pub invoked: u64,
    /// Completed ok.
    pub ok: u64,
    /// Failed (did not take effect).
    pub fail: u64,
    /// Indeterminate.
    pub info: u64,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Summary {
    /// `workload: 200 ops (180 ok, 12 fail, 8 info) in 2.01 s`
    pub fn line(&self) -> String {
        format!(
            "workload: {} ops ({} ok, {} fail, {} info) in {:.2} s",
            self.invoked,
            self.ok,
            self.fail,
            self.info,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Parses a value a system returned: an integer if it is one, else a string.
pub fn parse_value(s: &str) -> Value {
    s.parse::<i64>()
        .map(Value::Int)
        .unwrap_or_else(|_| Value::Str(s.to_string()))
}

struct Recorder<W: Write> {
    out: W,
    start: Instant,
    /// Added to every time: `start` on the clock named by [`CLOCK_ORIGIN_ENV`], or 0.
    offset: u64,
    error: Option<std::io::Error>,
}

/// When set (by `ordeal run`, to the trace's time origin in CLOCK_MONOTONIC ns), history times
/// are on the trace's clock, so operations, faults and node events share one timeline.
pub const CLOCK_ORIGIN_ENV: &str = "ORDEAL_CLOCK_ORIGIN_NS";

/// `start`'s offset from the origin in [`CLOCK_ORIGIN_ENV`] (0 without it).
fn clock_offset() -> u64 {
    let Some(origin) = std::env::var(CLOCK_ORIGIN_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    else {
        return 0;
    };
    ordeal_sys::clock::monotonic_ns().saturating_sub(origin)
}

impl<W: Write> Recorder<W> {
    fn record(&mut self, mut e: Entry) {
        e.time = self.offset + self.start.elapsed().as_nanos() as u64;
        if self.error.is_none() {
            if let Err(err) = writeln!(self.out, "{}", jsonl::entry_line(&e)) {
                self.error = Some(err);
            }
        }
    }
}

/// Runs the workload with one client per slot (`make(slot)`), writing history.jsonl to `out`.
pub fn run<W: Write + Send>(
    cfg: &Config,
    make: impl Fn(usize) -> Box<dyn Client> + Sync,
    out: W,
) -> Result<Summary, WorkloadError> {
    if cfg.processes == 0 || cfg.keys == 0 || cfg.ops == 0 {
        return Err(WorkloadError::Config(
            "--processes, --keys and --ops must be at least 1".into(),
        ));
    }
    if !cfg.rate.is_finite() || cfg.rate < 0.0 {
        return Err(WorkloadError::Config("--rate must be 0 or positive".into()));
    }
    let start = Instant::now();
    let offset = clock_offset();
    let deadline = start + cfg.duration;
    let rec = Mutex::new(Recorder {
        out,
        start,
        offset,
        error: None,
    });
    let issued = AtomicU64::new(0);
    let counter = AtomicI64::new(0);
    let (ok, fail, info) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let p = cfg.processes;
    // Each slot runs every `p / rate` seconds, slots staggered.
    let interval = (cfg.rate > 0.0).then(|| Duration::from_secs_f64(p as f64 / cfg.rate));
    std::thread::scope(|s| {
        for slot in 0..p {
            let (rec, issued, counter) = (&rec, &issued, &counter);
            let (ok, fail, info, make) = (&ok, &fail, &info, &make);
            s.spawn(move || {
                let mut client = make(slot);
                let mut rng = Rng::new(cfg.seed.wrapping_mul(1000).wrapping_add(slot as u64));
                let mut process = slot as u64;
                let mut seen: std::collections::HashMap<u64, i64> = Default::default();
                let mut next = interval.map(|i| start + i.mul_f64(slot as f64 / p as f64));
                loop {
                    if let Some(t) = next {
                        let now = Instant::now();
                        if t >= deadline {
                            break;
                        }
                        if t > now {
                            std::thread::sleep(t - now);
                        }
                        next = interval.map(|i| t + i);
                    }
                    if Instant::now() >= deadline
                        || issued.fetch_add(1, Ordering::Relaxed) >= cfg.ops
                    {
                        break;
                    }
                    let k = rng.below(cfg.keys);
                    let key = format!("k{k}");
                    let roll = rng.below(10);
                    let req = match (roll, seen.get(&k)) {
                        (0..=4, _) => Request::Read { key },
                        (5..=7, _) | (_, None) => Request::Write {
                            key,
                            value: counter.fetch_add(1, Ordering::Relaxed) + 1,
                        },
                        (_, Some(&old)) if client.supports_cas() => Request::Cas {
                            key,
                            old,
                            new: counter.fetch_add(1, Ordering::Relaxed) + 1,
                        },
                        _ => Request::Write {
                            key,
                            value: counter.fetch_add(1, Ordering::Relaxed) + 1,
                        },
                    };
                    let (f, value) = match &req {
                        Request::Read { .. } => (F::Read, Value::Nil),
                        Request::Write { value, .. } => (F::Write, Value::Int(*value)),
                        Request::Cas { old, new, .. } => (
                            F::Cas,
                            Value::List(vec![Value::Int(*old), Value::Int(*new)]),
                        ),
                    };
                    let entry = |kind, value, error| Entry {
                        kind,
                        process,
                        f,
                        key: Some(Value::Str(format!("k{k}"))),
                        value,
                        time: 0,
                        error,
                        extra: Vec::new(),
                    };
                    if let Ok(mut r) = rec.lock() {
                        r.record(entry(Kind::Invoke, value.clone(), None));
                    }
                    let reply = client.call(&req);
                    let done = match reply {
                        Reply::Ok(v) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            let v = if f == F::Read { v } else { value };
                            match (&req, &v) {
                                (Request::Read { .. }, Value::Int(i)) => {
                                    seen.insert(k, *i);
                                }
                                (Request::Write { value, .. }, _) => {
                                    seen.insert(k, *value);
                                }
                                (Request::Cas { new, .. }, _) => {
                                    seen.insert(k, *new);
                                }
                                _ => {}
                            }
                            entry(Kind::Ok, v, None)
                        }
                        Reply::Fail(why) => {
                            fail.fetch_add(1, Ordering::Relaxed);
                            entry(Kind::Fail, value, Some(why))
                        }
                        Reply::Info(why) => {
                            info.fetch_add(1, Ordering::Relaxed);
                            entry(Kind::Info, value, Some(why))
                        }
                    };
                    let mut done = done;
                    if let Some(node) = client.node() {
                        done.extra = vec![("node".into(), serde_json::Value::from(node))];
                    }
                    let was_info = done.kind == Kind::Info;
                    if let Ok(mut r) = rec.lock() {
                        r.record(done);
                    }
                    if was_info {
                        process += p as u64;
                    }
                }
            });
        }
    });
    let mut rec = rec
        .into_inner()
        .map_err(|_| WorkloadError::Config("a workload thread panicked".into()))?;
    if let Some(e) = rec.error.take() {
        return Err(e.into());
    }
    rec.out.flush()?;
    Ok(Summary {
        invoked: issued.load(Ordering::Relaxed).min(cfg.ops),
        ok: ok.load(Ordering::Relaxed),
        fail: fail.load(Ordering::Relaxed),
        info: info.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    })
}

/// Time left until `deadline`, at least 1 ms (socket timeouts of zero are refused), or
/// `None` once it has passed.
pub(crate) fn left(deadline: Instant) -> Option<Duration> {
    let l = deadline.saturating_duration_since(Instant::now());
    (l >= Duration::from_millis(1)).then_some(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory register with a lock: every history it produces is linearizable. Its
    /// node is named after its slot.
    struct Mem(
        std::sync::Arc<Mutex<std::collections::HashMap<String, i64>>>,
        usize,
    );

    impl Client for Mem {
        fn call(&mut self, req: &Request) -> Reply {
            let Ok(mut m) = self.0.lock() else {
                return Reply::Info("poisoned".into());
            };
            match req {
                Request::Read { key } => {
                    Reply::Ok(m.get(key).map_or(Value::Nil, |v| Value::Int(*v)))
                }
                Request::Write { key, value } => {
                    m.insert(key.clone(), *value);
                    Reply::Ok(Value::Nil)
                }
                Request::Cas { key, old, new } => {
                    if m.get(key) == Some(old) {
                        m.insert(key.clone(), *new);
                        Reply::Ok(Value::Nil)
                    } else if *new % 7 == 0 {
                        Reply::Info("pretend timeout".into())
                    } else {
                        Reply::Fail("differs".into())
                    }
                }
            }
        }
        fn supports_cas(&self) -> bool {
            true
        }
        fn node(&self) -> Option<String> {
            Some(format!("mem{}", self.1))
        }
    }

    #[test]
    fn records_a_bounded_linearizable_history() {
        let store = std::sync::Arc::new(Mutex::new(Default::default()));
        let cfg = Config {
            processes: 4,
            rate: 0.0,
            duration: Duration::from_secs(30),
            ops: 400,
            keys: 3,
            seed: 7,
        };
        let mut out = Vec::new();
        let s = run(&cfg, |slot| Box::new(Mem(store.clone(), slot)), &mut out).unwrap();
        assert_eq!(s.invoked, 400);
        assert_eq!(s.ok + s.fail + s.info, 400);
        let h = jsonl::read(out.as_slice(), "mem").unwrap();
        assert_eq!(h.entries.len(), 800);
        assert!(h.entries.windows(2).all(|w| w[0].time <= w[1].time));
        // Each completion names the node that answered (slot = process mod processes).
        for e in &h.entries {
            let node = format!("mem{}", e.process % 4);
            let expected = match e.kind {
                Kind::Invoke => vec![],
                _ => vec![("node".to_string(), serde_json::Value::from(node))],
            };
            assert_eq!(e.extra, expected, "{e:?}");
        }
        // A slot whose operation was info continues under a new process id.
        let infos: Vec<&Entry> = h.entries.iter().filter(|e| e.kind == Kind::Info).collect();
        for i in &infos {
            assert!(!h
                .entries
                .iter()
                .any(|e| e.process == i.process && e.kind == Kind::Invoke && e.time > i.time));
        }
        let r = crate::check_entries(h.entries, crate::Model::Kv, &Default::default()).unwrap();
        assert_eq!(r.verdict, crate::Verdict::Linearizable);
        assert_eq!(r.keys.len(), 3);
    }

    #[test]
    fn rate_and_duration_bound_the_run() {
        let store = std::sync::Arc::new(Mutex::new(Default::default()));
        let cfg = Config {
            processes: 2,
            rate: 100.0,
            duration: Duration::from_millis(300),
            ops: 1_000_000,
            keys: 1,
            seed: 1,
        };
        let s = run(
            &cfg,
            |slot| Box::new(Mem(store.clone(), slot)),
            std::io::sink(),
        )
        .unwrap();
        // 100/s for 0.3 s: about 30 operations.
        assert!((20..=32).contains(&s.invoked), "{s:?}");
        assert!(s.elapsed < Duration::from_millis(600), "{s:?}");
    }

    #[test]
    fn only_loopback_addresses_are_accepted() {
        assert_eq!(
            loopback_addrs(&["127.0.0.1:7000".into(), "[::1]:80".into()]).unwrap(),
            vec![
                "127.0.0.1:7000".parse().unwrap(),
                "[::1]:80".parse().unwrap()
            ]
        );
        assert_eq!(
            loopback_addrs(&["10.0.0.1:7000".into()])
                .unwrap_err()
                .to_string(),
            "10.0.0.1:7000: only loopback addresses are allowed (127.0.0.0/8, ::1; and a run's \
             own subnet inside its network namespaces)"
        );
        assert!(loopback_addrs(&["nonsense".into()]).is_err());
        assert!(loopback_addrs(&[]).is_err());
    }

    #[test]
    fn a_runs_subnet_is_allowed_only_when_given() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let subnet = Some((std::net::Ipv4Addr::new(10, 77, 0, 0), 24));
        assert!(allowed(ip("10.77.0.3"), subnet));
        assert!(!allowed(ip("10.77.1.3"), subnet));
        assert!(!allowed(ip("10.77.0.3"), None));
        assert!(allowed(ip("127.0.0.2"), None));
        assert!(!allowed(ip("::2"), subnet));
    }
}
