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

use super::error::ImpairError;
use super::units::{self, Bad, Prob, QueueLimit};

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

/// One key: its name, accepted form, an example, the default as printed, and help.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub name: &'static str,
    pub expected: &'static str,
    pub example: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

const DURATION: &str = "a duration ≥ 0 with a unit ns, us, ms or s (at most 60s)";
const PROB: &str = "a probability 0%..100% or a fraction 0..1";

/// Every key, in the order settings are printed.
pub const KEYS: &[Key] = &[
    Key {
        name: "delay",
        expected: DURATION,
        example: "delay=20ms",
        default: "0",
        help: "added one-way delay",
    },
    Key {
        name: "jitter",
        expected: DURATION,
        example: "jitter=5ms",
        default: "0",
        help: "spread of the delay (needs delay)",
    },
    Key {
        name: "distribution",
        expected: "uniform, normal, pareto or paretonormal",
        example: "distribution=normal",
        default: "uniform",
        help: "shape of the jitter",
    },
    Key {
        name: "correlation",
        expected: "a correlation 0..1 or 0%..100%",
        example: "correlation=50%",
        default: "0",
        help: "correlation of successive jitter draws; the spread is kept",
    },
    Key {
        name: "reorder_on_jitter",
        expected: "true or false",
        example: "reorder_on_jitter=true",
        default: "false",
        help: "let jitter reorder frames",
    },
    Key {
        name: "loss",
        expected: "a probability (5%), gemodel:P[:R[:H[:K]]] or state:P13[:P31[:P32[:P23[:P14]]]]",
        example: "loss=1%",
        default: "0%",
        help: "frame loss: random, Gilbert-Elliott or 4-state Markov",
    },
    Key {
        name: "duplicate",
        expected: PROB,
        example: "duplicate=1%",
        default: "0%",
        help: "frames sent twice",
    },
    Key {
        name: "corrupt",
        expected: PROB,
        example: "corrupt=0.1%",
        default: "0%",
        help: "frames with one bit flipped after the Ethernet header",
    },
    Key {
        name: "reorder",
        expected: PROB,
        example: "reorder=25%",
        default: "0%",
        help: "frames that skip the delay (needs delay)",
    },
    Key {
        name: "gap",
        expected: "a whole number 1..4294967295",
        example: "gap=5",
        default: "1",
        help: "every gap-th frame is a reorder candidate (needs reorder)",
    },
    Key {
        name: "rate",
        expected: "a rate with a unit bit, kbit, mbit, gbit, tbit (SI) or kibit, mibit, gibit",
        example: "rate=10mbit",
        default: "none",
        help: "bottleneck rate",
    },
    Key {
        name: "overhead",
        expected: "bytes -1024..1024",
        example: "overhead=24",
        default: "0",
        help: "bytes added per frame for rate (24: preamble, FCS, gap)",
    },
    Key {
        name: "cell",
        expected: "bytes 0..65535",
        example: "cell=53",
        default: "0",
        help: "cell size for rate (0: none)",
    },
    Key {
        name: "cell_overhead",
        expected: "bytes -1024..1024",
        example: "cell_overhead=5",
        default: "0",
        help: "bytes added per cell (needs cell)",
    },
    Key {
        name: "queue",
        expected: "packets (1000pkt), bytes (64kb, 1mb) or a time (50ms)",
        example: "queue=50ms",
        default: "1000pkt",
        help: "limit of the queue in front of rate (needs rate)",
    },
    Key {
        name: "seed",
        expected: "a whole number (decimal or 0x hex)",
        example: "seed=7",
        default: "random",
        help: "seed of every random draw (setting it restarts them)",
    },
    Key {
        name: "down",
        expected: "true or false",
        example: "down=true",
        default: "false",
        help: "administratively down: nothing passes",
    },
];

/// The key called `name`.
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// `true` if `name` is an impairment key.
pub fn is_key(name: &str) -> bool {
    key(name).is_some()
}

/// Settings a change gives; `None` keeps the current value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub delay: Option<u64>,
    pub jitter: Option<u64>,
    pub distribution: Option<Distribution>,
    pub correlation: Option<Prob>,
    pub reorder_on_jitter: Option<bool>,
    pub loss: Option<Loss>,
    pub duplicate: Option<Prob>,
    pub corrupt: Option<Prob>,
    pub reorder: Option<Prob>,
    pub gap: Option<u32>,
    pub rate: Option<Option<u64>>,
    pub overhead: Option<i32>,
    pub cell: Option<u32>,
    pub cell_overhead: Option<i32>,
    pub queue: Option<QueueLimit>,
    pub seed: Option<Option<u64>>,
    pub down: Option<bool>,
}

fn put<T>(slot: &mut Option<T>, key: &str, v: T) -> Result<(), ImpairError> {
    if slot.is_some() {
        return Err(ImpairError::Duplicate { key: key.into() });
    }
    *slot = Some(v);
    Ok(())
}

fn bad_value(k: &Key, value: &str, b: Bad) -> ImpairError {
    ImpairError::BadValue {
        key: k.name.into(),
        value: value.into(),
        problem: b.0,
        expected: k.expected,
        example: k.example.into(),
    }
}

impl Change {
    /// `true` if nothing is given.
    pub fn is_empty(&self) -> bool {
        *self == Change::default()
    }

    /// Parse `KEY=VALUE` words (as typed on a console line): a word without `=` after
    /// a pair continues its value (`rate=10 mbit`).
    pub fn parse_words<'a>(
        words: impl IntoIterator<Item = &'a str>,
    ) -> Result<Change, ImpairError> {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for w in words {
            match w.split_once('=') {
                Some((k, v)) => pairs.push((k, v.to_string())),
                None => match pairs.last_mut() {
                    Some((_, v)) => {
                        v.push(' ');
                        v.push_str(w);
                    }
                    None => return Err(ImpairError::NotPair { word: w.into() }),
                },
            }
        }
        let mut c = Change::default();
        for (k, v) in &pairs {
            c.set(k, v)?;
        }
        Ok(c)
    }

    /// Parse one key; `value` `default` puts the key back to its default.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ImpairError> {
        let Some(k) = key(name) else {
            return Err(unknown(name));
        };
        let d = Params::default();
        let reset = value.trim() == "default";
        let bad = |b: Bad| bad_value(k, value, b);
        let prob = |s: &str| units::prob(s).map_err(bad);
        match k.name {
            "delay" => {
                let v = if reset {
                    d.delay
                } else {
                    units::duration(value).map_err(bad)?
                };
                put(&mut self.delay, name, v)
            }
            "jitter" => {
                let v = if reset {
                    d.jitter
                } else {
                    units::duration(value).map_err(bad)?
                };
                put(&mut self.jitter, name, v)
            }
            "distribution" => {
                let v = if reset {
                    d.distribution
                } else {
                    Distribution::ALL
                        .into_iter()
                        .find(|x| x.name() == value.trim())
                        .ok_or_else(|| bad(Bad("is not a distribution".into())))?
                };
                put(&mut self.distribution, name, v)
            }
            "correlation" => put(
                &mut self.correlation,
                name,
                if reset { d.correlation } else { prob(value)? },
            ),
            "reorder_on_jitter" => put(
                &mut self.reorder_on_jitter,
                name,
                reset
                    .then_some(false)
                    .map_or_else(|| units::flag(value).map_err(bad), Ok)?,
            ),
            "loss" => put(
                &mut self.loss,
                name,
                if reset {
                    d.loss
                } else {
                    parse_loss(value).map_err(bad)?
                },
            ),
            "duplicate" => put(
                &mut self.duplicate,
                name,
                if reset { d.duplicate } else { prob(value)? },
            ),
            "corrupt" => put(
                &mut self.corrupt,
                name,
                if reset { d.corrupt } else { prob(value)? },
            ),
            "reorder" => put(
                &mut self.reorder,
                name,
                if reset { d.reorder } else { prob(value)? },
            ),
            "gap" => {
                let v = if reset {
                    1
                } else {
                    units::integer(value, 1, u64::from(u32::MAX)).map_err(bad)? as u32
                };
                put(&mut self.gap, name, v)
            }
            "rate" => put(
                &mut self.rate,
                name,
                if reset {
                    None
                } else {
                    Some(units::rate(value).map_err(bad)?)
                },
            ),
            "overhead" | "cell_overhead" => {
                let v = if reset {
                    0
                } else {
                    units::bytes_signed(value, -1024, 1024).map_err(bad)? as i32
                };
                let slot = if k.name == "overhead" {
                    &mut self.overhead
                } else {
                    &mut self.cell_overhead
                };
                put(slot, name, v)
            }
            "cell" => {
                let v = if reset {
                    0
                } else {
                    units::bytes_signed(value, 0, 65535).map_err(bad)? as u32
                };
                put(&mut self.cell, name, v)
            }
            "queue" => put(
                &mut self.queue,
                name,
                if reset {
                    d.queue
                } else {
                    units::queue(value).map_err(bad)?
                },
            ),
            "seed" => {
                let v = if reset {
                    None
                } else {
                    Some(units::integer(value, 0, u64::MAX).map_err(bad)?)
                };
                put(&mut self.seed, name, v)
            }
            _ => put(
                &mut self.down,
                name,
                if reset {
                    false
                } else {
                    units::flag(value).map_err(bad)?
                },
            ),
        }
    }

    /// The change that sets every key of `p` that differs from the default, and resets
    /// every other key: applying it to anything gives `p`.
    pub fn replace_with(p: &Params) -> Change {
        Change {
            delay: Some(p.delay),
            jitter: Some(p.jitter),
            distribution: Some(p.distribution),
            correlation: Some(p.correlation),
            reorder_on_jitter: Some(p.reorder_on_jitter),
            loss: Some(p.loss),
            duplicate: Some(p.duplicate),
            corrupt: Some(p.corrupt),
            reorder: Some(p.reorder),
            gap: Some(p.gap),
            rate: Some(p.rate),
            overhead: Some(p.overhead),
            cell: Some(p.cell),
            cell_overhead: Some(p.cell_overhead),
            queue: Some(p.queue),
            seed: Some(p.seed),
            down: Some(p.down),
        }
    }
}

fn unknown(name: &str) -> ImpairError {
    let names: Vec<&'static str> = KEYS.iter().map(|k| k.name).collect();
    ImpairError::UnknownKey {
        key: name.into(),
        suggestion: closest(name, &names),
        prefix: "",
    }
}

/// The key closest to `word` (same up to case, or within 2 edits).
fn closest(word: &str, names: &[&'static str]) -> Option<&'static str> {
    let lower = word.to_ascii_lowercase();
    let dist = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, cb) in b.iter().enumerate() {
                cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    };
    names
        .iter()
        .map(|n| (dist(&lower, n), *n))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// `5%` | `0.05` | `gemodel:P[:R[:H[:K]]]` | `state:P13[:P31[:P32[:P23[:P14]]]]`.
fn parse_loss(s: &str) -> Result<Loss, Bad> {
    let mut parts = s.trim().split(':');
    let model = parts.next().unwrap_or("");
    let args: Vec<&str> = parts.collect();
    let probs = |max: usize| -> Result<Vec<Prob>, Bad> {
        if args.is_empty() || args.len() > max {
            return Err(Bad(format!(
                "needs 1 to {max} probabilities after {model}:"
            )));
        }
        args.iter()
            .enumerate()
            .map(|(i, a)| units::prob(a).map_err(|b| Bad(format!("(parameter {}) {}", i + 1, b.0))))
            .collect()
    };
    match model {
        "gemodel" | "ge" | "gilbert-elliott" => {
            let v = probs(4)?;
            let p = v[0];
            let r = v.get(1).copied().unwrap_or(p.complement());
            let h = v.get(2).copied().unwrap_or(Prob::ZERO);
            let k = v.get(3).copied().unwrap_or(Prob::ONE);
            Ok(Loss::GilbertElliott { p, r, h, k })
        }
        "state" | "4state" | "markov4" => {
            let v = probs(5)?;
            let p13 = v[0];
            let p31 = v.get(1).copied().unwrap_or(p13.complement());
            let p32 = v.get(2).copied().unwrap_or(Prob::ZERO);
            let p23 = v.get(3).copied().unwrap_or(Prob::ONE);
            let p14 = v.get(4).copied().unwrap_or(Prob::ZERO);
            if p13.0 + p14.0 > Prob::ONE.0 {
                return Err(Bad("has p13 + p14 above 100%".into()));
            }
            if p31.0 + p32.0 > Prob::ONE.0 {
                return Err(Bad("has p31 + p32 above 100%".into()));
            }
            Ok(Loss::FourState {
                p13,
                p31,
                p32,
                p23,
                p14,
            })
        }
        _ if args.is_empty() => units::prob(s).map(Loss::Random),
        other => Err(Bad(format!("names an unknown loss model {other:?}"))),
    }
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
