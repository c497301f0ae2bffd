//! Small system plumbing shared by ordeal's crates, so each fact lives in one place:
//!
//! - [`clock`]: CLOCK_MONOTONIC in nanoseconds, the clock trace.jsonl's event times use;
//! - [`rng`]: [`rng::SplitMix64`], the one seeded generator behind fault dice and crash
//!   states (same seed, same sequence, bit for bit);
//! - [`proc`]: /proc readers more than one crate needs (command line, cwd, task status and
//!   stat, fd targets, fdinfo). Every reader returns `None`/empty for a task that is gone;
//! - [`keeper`]: the process that takes down, when ordeal dies however it dies, every process
//!   group and network namespace ordeal registered with it;
//! - [`ports`]: free TCP ports that concurrent runs never share (outside the ephemeral range,
//!   each reserved by a flock in a directory every ordeal process shares).

pub mod clock;
pub mod keeper;
pub mod ports;
pub mod proc;
pub mod rng;
