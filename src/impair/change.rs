//! A set of `KEY=VALUE` changes to impairment settings, parsed by the one parser every
//! surface shares: spec keys, console words and (through [`Change::set`]) any other
//! source of key/value pairs.

use super::error::ImpairError;
use super::keys::{KEYS, Key, closest, key};
use super::params::{Distribution, Loss, Params};
use super::units::{self, Bad, Prob, QueueLimit};

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
        return Err(ImpairError::Duplicate {
            key: key.into(),
            example: super::keys::key(key).map_or("", |k| k.example),
        });
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
