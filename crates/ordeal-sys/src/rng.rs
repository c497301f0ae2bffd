//! SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for fault dice and crash
//! states. Every user seeds it its own way (see [`SplitMix64::new`]); the sequence for a given
//! state is fixed forever, since recorded seeds must reproduce the same runs.

/// The golden-ratio increment of SplitMix64.
pub const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// A SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose internal state starts at `state` (no pre-mixing: callers that want
    /// nearby seeds to diverge mix or xor their seed first, e.g. with [`mix`]).
    pub fn new(state: u64) -> SplitMix64 {
        SplitMix64(state)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (by modulo; `n` = 0 counts as 1).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The SplitMix64 output function (a strong 64-bit finaliser), also used to derive seeds.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        // First outputs of SplitMix64 seeded with 1234567 (from the reference implementation).
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
        assert_eq!(r.next_u64(), 9817491932198370423);
    }

    #[test]
    fn sequences_of_the_former_copies() {
        // Computed with the copies this type replaced (ordeal-faults' trigger dice and
        // ordeal-state's crash-state generator) before they were removed.
        let fault_seed = |seed: u64, index: u64| mix(seed ^ mix((index + 1).wrapping_mul(GOLDEN)));
        assert_eq!(fault_seed(42, 0), 5006236285904387910);
        assert_eq!(fault_seed(42, 3), 714014416791508049);
        let mut dice = SplitMix64::new(fault_seed(42, 1));
        assert_eq!(dice.next_u64(), 828722927148087974);
        assert_eq!(dice.next_u64(), 4201086587454879278);
        assert_eq!(dice.next_f64().to_bits(), 4602714099008908798);

        let mut crash = SplitMix64::new(7 ^ GOLDEN);
        assert_eq!(crash.next_u64(), 17039259473404265729);
        assert_eq!(crash.next_u64(), 18363971414914884509);
        assert_eq!(crash.below(10), 4);
        assert_eq!(crash.next_u64() & 1, 1);
        assert_eq!(crash.next_u64() & 1, 0);
    }

    #[test]
    fn uniform_in_unit_interval() {
        let mut r = SplitMix64::new(7);
        for _ in 0..10_000 {
            let x = r.next_f64();
            assert!((0.0..1.0).contains(&x));
        }
    }

    #[test]
    fn below_zero_is_zero() {
        assert_eq!(SplitMix64::new(3).below(0), 0);
        assert_eq!(SplitMix64::new(3).below(1), 0);
    }
}
