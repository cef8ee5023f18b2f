//! Loss models and their long-run loss rates.
//!
//! - **random**: each frame is lost with probability p.
//! - **Gilbert-Elliott** (`gemodel:p:r:h:k`): two states, Good and Bad. A frame is
//!   delivered with probability k in Good and h in Bad (so lost with 1−k and 1−h), then
//!   the state moves Good→Bad with probability p and Bad→Good with r. Stationary loss
//!   = π_G·(1−k) + π_B·(1−h) with π_B = p/(p+r); with h = 0 and k = 1 (the defaults,
//!   the simple Gilbert model) bursts of loss last 1/r frames on average. netem's
//!   `gemodel` takes 1−h and 1−k as its third and fourth numbers; vecbox takes h and k,
//!   as the literature writes the model.
//! - **4-state Markov** (`state:p13:p31:p32:p23:p14`, netem's `loss state`): 1 = good
//!   reception in a gap, 2 = good reception in a burst, 3 = loss in a burst, 4 =
//!   isolated loss. Each frame moves the chain one step; the frame is lost when the new
//!   state is 3 or 4. Stationary loss = π₁·(p13/p31 + p14) with
//!   π₁ = 1 / (1 + p14 + p13/p31 + p13·p32/(p23·p31)).

use super::params::Loss;
use super::rng::Xoshiro256pp;
use super::units::Prob;

/// A loss model with its current state.
#[derive(Clone, Debug)]
pub struct LossState {
    model: Loss,
    /// Gilbert-Elliott: in Bad. 4-state: the state number 1..=4.
    state: u8,
}

impl LossState {
    /// `model`, in its good state.
    pub fn new(model: Loss) -> Self {
        LossState { model, state: 1 }
    }

    /// Change the model; the state is kept where it still means something.
    pub fn set(&mut self, model: Loss) {
        let same_kind = std::mem::discriminant(&model) == std::mem::discriminant(&self.model);
        self.model = model;
        if !same_kind {
            self.state = 1;
        }
    }

    /// Back to the good state (after a reseed).
    pub fn reset(&mut self) {
        self.state = 1;
    }

    /// Judge one frame: `true` if it is lost.
    #[inline]
    pub fn lost(&mut self, rng: &mut Xoshiro256pp) -> bool {
        match self.model {
            Loss::Random(p) => !p.is_zero() && p.hit(rng.next_u64()),
            Loss::GilbertElliott { p, r, h, k } => {
                let bad = self.state == 2;
                let delivered = if bad { h } else { k };
                let lost = !delivered.hit(rng.next_u64());
                let flip = if bad { r } else { p };
                if flip.hit(rng.next_u64()) {
                    self.state = if bad { 1 } else { 2 };
                }
                lost
            }
            Loss::FourState {
                p13,
                p31,
                p32,
                p23,
                p14,
            } => {
                let x = rng.next_u64();
                // One uniform split into consecutive intervals, as netem does.
                let (a, b) = match self.state {
                    1 => ((p14, 4), (p13, 3)),
                    2 => ((p23, 3), (Prob::ZERO, 2)),
                    3 => ((p32, 2), (p31, 1)),
                    _ => ((Prob::ONE, 1), (Prob::ZERO, 1)),
                };
                let first = Prob(a.0.0.min(Prob::ONE.0));
                let both = Prob((a.0.0 + b.0.0).min(Prob::ONE.0));
                self.state = if first.hit(x) {
                    a.1
                } else if both.hit(x) {
                    b.1
                } else {
                    self.state
                };
                matches!(self.state, 3 | 4)
            }
        }
    }
}

/// Long-run fraction of frames lost under `model` (`None` if the chain has no unique
/// stationary law, e.g. an absorbing loss state).
pub fn stationary_loss(model: &Loss) -> Option<f64> {
    match *model {
        Loss::Random(p) => Some(p.fraction()),
        Loss::GilbertElliott { p, r, h, k } => {
            let (p, r) = (p.fraction(), r.fraction());
            if p + r == 0.0 {
                return None;
            }
            let bad = p / (p + r);
            Some((1.0 - bad) * (1.0 - k.fraction()) + bad * (1.0 - h.fraction()))
        }
        Loss::FourState {
            p13,
            p31,
            p32,
            p23,
            p14,
        } => {
            let [p13, p31, p32, p23, p14] = [p13, p31, p32, p23, p14].map(|x| x.fraction());
            if p13 == 0.0 {
                // Never leaves the gap except into isolated losses.
                return Some(p14 / (1.0 + p14));
            }
            if p31 == 0.0 || (p32 > 0.0 && p23 == 0.0) {
                return None;
            }
            let burst_good = if p32 > 0.0 {
                p13 * p32 / (p23 * p31)
            } else {
                0.0
            };
            let pi1 = 1.0 / (1.0 + p14 + p13 / p31 + burst_good);
            Some(pi1 * (p13 / p31 + p14))
        }
    }
}
