//! The settings of one impairment direction ([`Params`]), the keys that name them
//! ([`KEYS`]), a parsed set of `KEY=VALUE` changes ([`Change`]) and how a change is
//! merged into current settings ([`Params::apply`]): keys not given keep their value,
//! `KEY=default` puts one key back to its default, and the merged result is checked as
//! a whole before anything changes.
//!
//! One parser serves every surface: spec keys (`tx_delay=20ms`), console words
//! (`impair vec0 tx delay=20ms loss=1%`) and, through [`Change::set`], any other source
//! of key/value pairs (a topology file).

use std::fmt;

pub use super::change::Change;
use super::error::ImpairError;
pub use super::keys::{KEYS, Key, is_key, key};
use super::units::{self, Prob, QueueLimit};

/// Shape of the jitter around `delay`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Distribution {
    /// Uniform on [delay − jitter, delay + jitter] (netem without a table); σ = jitter/√3.
    #[default]
    Uniform,
    /// Normal with σ = jitter, clipped at ±4σ.
    Normal,
    /// netem's pareto table: (V^(−1/3) − 1.5)·4/3·jitter, V uniform, at most +4·jitter.
    Pareto,
    /// netem's paretonormal: ¼ normal + ¾ pareto, quantile by quantile.
    ParetoNormal,
}

impl Distribution {
    /// Every distribution, in help order.
    pub const ALL: [Distribution; 4] = [
        Distribution::Uniform,
        Distribution::Normal,
        Distribution::Pareto,
        Distribution::ParetoNormal,
    ];

    /// Name as written in settings.
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Normal => "normal",
            Distribution::Pareto => "pareto",
            Distribution::ParetoNormal => "paretonormal",
        }
    }
}

/// How frames are lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Loss {
    /// Each frame independently with probability p (`loss=5%`).
    Random(Prob),
    /// Gilbert-Elliott: Good→Bad with p, Bad→Good with r; a frame is delivered with
    /// probability k in Good and h in Bad (`loss=gemodel:p:r:h:k`).
    GilbertElliott { p: Prob, r: Prob, h: Prob, k: Prob },
    /// netem's 4-state Markov model (`loss=state:p13:p31:p32:p23:p14`): 1 good
    /// reception, 2 good reception in a burst, 3 loss in a burst, 4 isolated loss.
    FourState {
        p13: Prob,
        p31: Prob,
        p32: Prob,
        p23: Prob,
        p14: Prob,
    },
}

impl Default for Loss {
    fn default() -> Self {
        Loss::Random(Prob::ZERO)
    }
}

impl Loss {
    /// `true` if no frame is ever lost.
    pub fn is_none(&self) -> bool {
        matches!(self, Loss::Random(p) if p.is_zero())
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loss::Random(p) => write!(f, "{p}"),
            Loss::GilbertElliott { p, r, h, k } => write!(f, "gemodel:{p}:{r}:{h}:{k}"),
            Loss::FourState {
                p13,
                p31,
                p32,
                p23,
                p14,
            } => write!(f, "state:{p13}:{p31}:{p32}:{p23}:{p14}"),
        }
    }
}

/// The impairment of one direction of a link. `Default` impairs nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Params {
    /// Added delay, ns.
    pub delay: u64,
    /// Spread of the delay, ns (see [`Distribution`]).
    pub jitter: u64,
    pub distribution: Distribution,
    /// Correlation of successive jitter draws, 0..=1 (the spread is kept).
    pub correlation: Prob,
    /// Let jitter reorder frames (default: a frame never leaves before the one ahead).
    pub reorder_on_jitter: bool,
    pub loss: Loss,
    pub duplicate: Prob,
    pub corrupt: Prob,
    /// Probability that a frame skips the delay (overtaking frames ahead of it).
    pub reorder: Prob,
    /// Every `gap`-th frame is a reorder candidate (netem's `gap`); 0 is taken as 1.
    pub gap: u32,
    /// Bottleneck rate, bit/s.
    pub rate: Option<u64>,
    /// Bytes added to each frame's length for `rate` (24 = preamble, FCS and gap).
    pub overhead: i32,
    /// Cell size for `rate` (0: none): lengths round up to whole cells.
    pub cell: u32,
    /// Bytes added per cell.
    pub cell_overhead: i32,
    /// Limit of the queue in front of `rate`.
    pub queue: QueueLimit,
    /// Seed of every random draw; `None` seeds from the system.
    pub seed: Option<u64>,
    /// Administratively down: nothing passes.
    pub down: bool,
}

/// Most bytes one direction may hold in flight (frames queued and in the delay line).
pub const MAX_STAGE_BYTES: u64 = 1 << 30;

/// Frame size used to turn a packet limit into bytes for the memory check.
const TYPICAL_FRAME: u64 = 1514;

impl Params {
    /// `true` if these settings impair nothing.
    pub fn is_default(&self) -> bool {
        *self == Params::default()
    }

    /// Every-frame gap of the reorder counter (0 and 1 both mean every frame).
    pub fn gap(&self) -> u32 {
        self.gap.max(1)
    }

    /// Merge `c` into these settings and check the result; nothing changes on error.
    pub fn apply(&self, c: &Change) -> Result<Params, ImpairError> {
        let mut p = *self;
        macro_rules! take {
            ($($f:ident),*) => { $(if let Some(v) = c.$f { p.$f = v; })* };
        }
        take!(
            delay,
            jitter,
            distribution,
            correlation,
            reorder_on_jitter,
            loss,
            duplicate,
            corrupt,
            reorder,
            gap,
            rate,
            overhead,
            cell,
            cell_overhead,
            queue,
            seed,
            down
        );
        // 0 and 1 both mean "every frame"; one form keeps settings comparable.
        if p.gap <= 1 {
            p.gap = 0;
        }
        p.validate()?;
        Ok(p)
    }

    /// Checks the keys that only mean something together, and the memory bound.
    pub fn validate(&self) -> Result<(), ImpairError> {
        let needs = |key: &str, needs: &str, why: &'static str, example: &'static str| {
            Err(ImpairError::Needs {
                key: key.into(),
                needs: needs.into(),
                why,
                example,
            })
        };
        let d = Params::default();
        if self.jitter > 0 && self.delay == 0 {
            return needs(
                "jitter",
                "delay",
                "jitter spreads frames around the delay",
                "delay=20ms jitter=5ms",
            );
        }
        if self.distribution != d.distribution && self.jitter == 0 {
            return needs(
                "distribution",
                "jitter",
                "it shapes the jitter",
                "delay=20ms jitter=5ms distribution=normal",
            );
        }
        if !self.correlation.is_zero() && self.jitter == 0 {
            return needs(
                "correlation",
                "jitter",
                "it correlates jitter draws; for bursty loss use loss=gemodel:...",
                "delay=20ms jitter=5ms correlation=50%",
            );
        }
        if !self.reorder.is_zero() && self.delay == 0 {
            return needs(
                "reorder",
                "delay",
                "a reordered frame skips the delay; without one nothing is overtaken",
                "delay=20ms reorder=25%",
            );
        }
        if self.gap() != 1 && self.reorder.is_zero() {
            return needs(
                "gap",
                "reorder",
                "it spaces reorder candidates",
                "delay=20ms reorder=25% gap=5",
            );
        }
        if self.rate.is_none() {
            for (key, set) in [
                ("queue", self.queue != d.queue),
                ("overhead", self.overhead != 0),
                ("cell", self.cell != 0),
                ("cell_overhead", self.cell_overhead != 0),
            ] {
                if set {
                    return needs(
                        key,
                        "rate",
                        "it belongs to the rate limiter",
                        "rate=10mbit queue=50ms",
                    );
                }
            }
        }
        if self.cell_overhead != 0 && self.cell == 0 {
            return needs(
                "cell_overhead",
                "cell",
                "it is added per cell",
                "rate=10mbit cell=53 cell_overhead=5",
            );
        }
        if let Some(need) = self.bytes_bound()
            && need > MAX_STAGE_BYTES
        {
            return Err(ImpairError::TooLarge {
                what: self.to_string(),
                need,
                max: MAX_STAGE_BYTES,
            });
        }
        Ok(())
    }

    /// Longest delay a frame can be given by delay and jitter (every distribution is
    /// bounded at ±4·jitter), ns.
    pub fn max_delay(&self) -> u64 {
        self.delay + 4 * self.jitter
    }

    /// With a rate: bytes in flight at most (queue plus what the delay line holds at
    /// that rate). `None` without a rate (it depends on the arriving traffic).
    pub fn bytes_bound(&self) -> Option<u64> {
        let rate = self.rate?;
        let line = u128::from(rate) * u128::from(self.max_delay()) / 8 / 1_000_000_000;
        let queue = match self.queue {
            QueueLimit::Packets(n) => u128::from(n) * u128::from(TYPICAL_FRAME),
            QueueLimit::Bytes(b) => u128::from(b),
            QueueLimit::Time(ns) => u128::from(rate) * u128::from(ns) / 8 / 1_000_000_000,
        };
        Some(u64::try_from(line + queue).unwrap_or(u64::MAX))
    }

    /// The keys that differ from their defaults, as `(key, value)` in [`KEYS`] order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let d = Params::default();
        let mut v = Vec::new();
        let mut add = |k: &'static str, on: bool, val: String| {
            if on {
                v.push((k, val));
            }
        };
        add(
            "delay",
            self.delay != d.delay,
            units::fmt_duration(self.delay),
        );
        add(
            "jitter",
            self.jitter != d.jitter,
            units::fmt_duration(self.jitter),
        );
        add(
            "distribution",
            self.distribution != d.distribution,
            self.distribution.name().into(),
        );
        add(
            "correlation",
            self.correlation != d.correlation,
            self.correlation.to_string(),
        );
        add("reorder_on_jitter", self.reorder_on_jitter, "true".into());
        add("loss", self.loss != d.loss, self.loss.to_string());
        add(
            "duplicate",
            self.duplicate != d.duplicate,
            self.duplicate.to_string(),
        );
        add(
            "corrupt",
            self.corrupt != d.corrupt,
            self.corrupt.to_string(),
        );
        add(
            "reorder",
            self.reorder != d.reorder,
            self.reorder.to_string(),
        );
        add("gap", self.gap() != 1, self.gap().to_string());
        add(
            "rate",
            self.rate.is_some(),
            self.rate.map(units::fmt_rate).unwrap_or_default(),
        );
        add("overhead", self.overhead != 0, self.overhead.to_string());
        add("cell", self.cell != 0, self.cell.to_string());
        add(
            "cell_overhead",
            self.cell_overhead != 0,
            self.cell_overhead.to_string(),
        );
        add("queue", self.queue != d.queue, self.queue.to_string());
        add(
            "seed",
            self.seed.is_some(),
            self.seed.map(|s| s.to_string()).unwrap_or_default(),
        );
        add("down", self.down, "true".into());
        v
    }
}

/// `key=value` pairs separated by spaces (`delay=20ms loss=1%`); `none` for defaults.
impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs = self.pairs();
        if pairs.is_empty() {
            return f.write_str("none");
        }
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// Which direction of a port: `tx` (frames leaving onto the link) or `rx` (frames
/// arriving from the link, before the function sees them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Tx,
    Rx,
}

impl Direction {
    /// Both, tx first.
    pub const BOTH: [Direction; 2] = [Direction::Tx, Direction::Rx];

    /// `tx` or `rx`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Tx => "tx",
            Direction::Rx => "rx",
        }
    }

    /// Index 0 (tx) or 1 (rx).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The impairments of both directions of one port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortParams {
    pub tx: Params,
    pub rx: Params,
}

impl PortParams {
    /// The settings of direction `d`.
    pub fn get(&self, d: Direction) -> &Params {
        match d {
            Direction::Tx => &self.tx,
            Direction::Rx => &self.rx,
        }
    }

    /// The settings of direction `d`, writable.
    pub fn get_mut(&mut self, d: Direction) -> &mut Params {
        match d {
            Direction::Tx => &mut self.tx,
            Direction::Rx => &mut self.rx,
        }
    }

    /// `true` if neither direction impairs anything.
    pub fn is_default(&self) -> bool {
        self.tx.is_default() && self.rx.is_default()
    }
}
