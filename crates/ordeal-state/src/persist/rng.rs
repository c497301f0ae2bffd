//! The seeded generator behind random crash states.

use ordeal_sys::rng::{SplitMix64, GOLDEN};

/// A small deterministic generator (SplitMix64, its state started at `seed ^ GOLDEN`): same
/// seed, same crash states.
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(SplitMix64::new(seed ^ GOLDEN))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}
