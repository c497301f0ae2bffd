//! The toxics in effect on one stream of one connection ([`Active`]), and the shaped write that
//! applies the slicer and bandwidth toxics.
//!
//! Invariant: `Active` mirrors the proxy's toxic list as of generation `gen`; each toxic's
//! toxicity is drawn once per connection and the draw kept, so a refresh never flips a toxic
//! already decided.

use super::connection::Conn;
use super::Inner;
use crate::toxic::{Effect, Rng, Stream};
use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// The toxics in effect for one direction of one connection.
#[derive(Default)]
pub(super) struct Active {
    pub(super) gen: u64,
    pub(super) latency: Option<(Duration, Duration)>,
    pub(super) bandwidth: Option<u64>,
    pub(super) slow_close: Option<Duration>,
    /// Close at (None inside: never, blackhole).
    pub(super) timeout: Option<Option<Instant>>,
    pub(super) reset_at: Option<Instant>,
    pub(super) slicer: Option<(usize, usize, Duration)>,
    pub(super) limit: Option<(String, u64)>,
    /// Toxicity draws, per toxic name, once per connection.
    pub(super) drawn: HashMap<String, bool>,
    /// Bytes counted by limit_data, per toxic name.
    pub(super) limit_sent: HashMap<String, u64>,
    pub(super) bw_start: Option<(Instant, u64)>,
}

impl Active {
    pub(super) fn any(&self) -> bool {
        self.latency.is_some()
            || self.bandwidth.is_some()
            || self.timeout.is_some()
            || self.slicer.is_some()
            || self.limit.is_some()
    }

    pub(super) fn refresh(&mut self, inner: &Inner, conn: &Conn, dir: Stream, rng: &mut Rng) {
        let gen = inner.toxic_gen.load(Relaxed);
        if gen == self.gen {
            return;
        }
        self.gen = gen;
        let ts = inner.toxics.read().unwrap_or_else(|e| e.into_inner());
        let (mut lat, mut bw, mut sc, mut to, mut rp, mut sl, mut lim) =
            (None, None, None, None, None, None, None);
        for t in ts.iter().filter(|t| t.toxic.stream == dir) {
            let tox = t.toxic.toxicity;
            let on = *self
                .drawn
                .entry(t.toxic.name.clone())
                .or_insert_with(|| tox >= 1.0 || rng.unit() < tox);
            if !on {
                continue;
            }
            let since = t.added.max(conn.start);
            match t.effect {
                Effect::Latency { latency, jitter } => lat = Some((latency, jitter)),
                Effect::Bandwidth { kb_per_s } => bw = Some(kb_per_s),
                Effect::SlowClose { delay } => sc = Some(delay),
                Effect::Timeout { timeout } => {
                    to = Some((!timeout.is_zero()).then(|| since + timeout))
                }
                Effect::ResetPeer { timeout } => rp = Some(since + timeout),
                Effect::Slicer {
                    average_size,
                    size_variation,
                    delay,
                } => sl = Some((average_size, size_variation, delay)),
                Effect::LimitData { bytes } => lim = Some((t.toxic.name.clone(), bytes)),
            }
        }
        if bw != self.bandwidth {
            self.bw_start = None;
        }
        (
            self.latency,
            self.bandwidth,
            self.slow_close,
            self.timeout,
            self.reset_at,
            self.slicer,
            self.limit,
        ) = (lat, bw, sc, to, rp, sl, lim);
    }
}

/// Writes with the slicer and bandwidth toxics.
pub(super) fn toxic_write(
    w: &mut &TcpStream,
    data: &[u8],
    act: &mut Active,
    rng: &mut Rng,
) -> std::io::Result<()> {
    let mut rest = data;
    let mut first = true;
    while !rest.is_empty() {
        let mut n = rest.len();
        if let Some((avg, var, delay)) = act.slicer {
            if !first && !delay.is_zero() {
                std::thread::sleep(delay);
            }
            n = n.min((avg as i64 + rng.spread(var as u64)).max(1) as usize);
        }
        if let Some(kbps) = act.bandwidth {
            let rate = kbps.saturating_mul(1000).max(1);
            // At most 1/20 s worth of bytes per write, so the rate holds at small scales too.
            n = n.min((rate / 20).max(1) as usize);
            let (t0, sent) = *act.bw_start.get_or_insert((Instant::now(), 0));
            let due = t0 + Duration::from_secs_f64(sent as f64 / rate as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            act.bw_start = Some((t0, sent + n as u64));
        }
        w.write_all(&rest[..n])?;
        rest = &rest[n..];
        first = false;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn no_toxic_means_no_shaping() {
        let mut act = Active::default();
        assert!(!act.any());
        // slow_close and reset act at the pump's end, not on the bytes.
        act.slow_close = Some(Duration::from_millis(1));
        act.reset_at = Some(Instant::now());
        assert!(!act.any());
        act.bandwidth = Some(1);
        assert!(act.any());
    }

    #[test]
    fn shaped_write_delivers_every_byte_and_counts_them_for_bandwidth() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let tx = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut rx, _) = l.accept().unwrap();
        let mut act = Active {
            // 1 MB/s: 10 bytes are due at once, no wait.
            bandwidth: Some(1000),
            slicer: Some((3, 0, Duration::ZERO)),
            ..Default::default()
        };
        let mut rng = Rng::new(1);
        toxic_write(&mut &tx, b"0123456789", &mut act, &mut rng).unwrap();
        drop(tx);
        let mut got = Vec::new();
        rx.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"0123456789");
        assert_eq!(act.bw_start.map(|(_, sent)| sent), Some(10));
    }
}
