//! Link impairments: delay, jitter, loss, duplication, corruption, reordering, a rate
//! limit with its queue, and link down, for one direction of a port.
//!
//! This module is pure: no system calls and no clock of its own. Time comes in as
//! nanoseconds on one monotonic clock from the caller, which is how the transport
//! drives it in a guest and how the tests drive it with a virtual clock. It uses only
//! [`crate::wire`] (to segment GSO super-frames and finish checksums).
//!
//! - [`params`]: the settings and how a change merges into them; [`change`]: the one
//!   parser every surface shares (spec keys, console, topology files); [`keys`]: the
//!   keys with their forms and defaults.
//! - [`units`]: durations, rates, probabilities, sizes.
//! - [`stage`]: the per-direction scheduler and the frames it holds.
//! - [`rng`], [`dist`], [`loss`]: the seeded generator and the random models.
//! - [`store`]: the frame memory (a byte ring sized from the settings).
//! - [`counters`]: what a direction counts.
//!
//! See docs/impairments.md for the semantics and how they compare with netem.

pub mod change;
pub mod counters;
pub mod dist;
pub mod error;
pub mod keys;
pub mod loss;
pub mod params;
pub mod rng;
pub mod stage;
pub mod store;
pub mod units;

pub use change::Change;
pub use counters::{Counters, Dropped};
pub use error::ImpairError;
pub use keys::KEYS;
pub use params::{Direction, Distribution, Loss, Params, PortParams};
pub use stage::{Stage, Verdict};
pub use units::{Prob, QueueLimit};

#[cfg(test)]
mod tests;
