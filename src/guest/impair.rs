//! The console's `impair` and `link` commands (docs/impairments.md, "Console"):
//!
//! ```text
//! impair                                  every port's settings and counters
//! impair vecN                             one port's
//! impair vecN [tx|rx|both] KEY=VALUE...   change settings (tx if no direction)
//! impair vecN [tx|rx|both] clear          back to no impairment
//! link [vecN]                             up or down
//! link vecN down|up                       administratively down/up, both directions
//! ```
//!
//! A change names only the keys it changes; the others keep their values. Both
//! directions of `both` are checked before either changes, so a refused change (one
//! line naming the key) changes nothing. Frames in flight are never dropped by a change.

use std::collections::BTreeMap;
use std::fmt::{self, Write};

use schemars::JsonSchema;
use serde::Serialize;

use super::Guest;
use crate::impair::counters::{Hist, LATE_BOUNDS_NS};
use crate::impair::{Change, Direction, Dropped, Params, Stage};
use crate::transport::Port;
use crate::transport::port::impair::now_ns;

/// A console reply: error flag and text.
pub(super) type Reply = (u32, String);

fn err(s: impl Into<String>) -> Reply {
    (1, s.into())
}

/// The port named by `word` (`vec0`): its index, or the error reply.
fn port_of(g: &Guest, word: &str, cmd: &str) -> Result<usize, Reply> {
    let unit = word
        .strip_prefix("vec")
        .and_then(super::control::parse_unit)
        .ok_or_else(|| {
            err(format!(
                "{cmd}: {word:?} is not an interface name like vec0"
            ))
        })?;
    g.port_index(unit)
        .ok_or_else(|| err(format!("{cmd}: vec{unit} does not exist")))
}

impl Guest {
    /// `impair ...`: `Ok(text)` to stream (a listing) or a one-packet reply.
    pub(super) fn impair_command(&mut self, rest: &str) -> Result<String, Reply> {
        let mut words = rest.split_whitespace().peekable();
        let Some(dev) = words.next() else {
            return Ok(self.impair_text(None));
        };
        let i = port_of(self, dev, "impair")?;
        let dirs: &[Direction] = match words.peek().copied() {
            Some("tx") => &[Direction::Tx],
            Some("rx") => &[Direction::Rx],
            Some("both") => &Direction::BOTH,
            None => return Ok(self.impair_text(Some(i))),
            Some(_) => &[Direction::Tx],
        };
        if matches!(words.peek().copied(), Some("tx" | "rx" | "both")) {
            words.next();
        }
        let rest: Vec<&str> = words.collect();
        let change = match rest.as_slice() {
            [] => {
                return Err(err(
                    "impair: give KEY=VALUE... (e.g. delay=20ms loss=1%) or clear; see 'impair' for the current settings",
                ));
            }
            ["clear"] => Change::replace_with(&Params::default()),
            words => Change::parse_words(words.iter().copied()).map_err(|e| err(e.to_string()))?,
        };
        self.change_impairment(i, dirs, &change)
    }

    /// `link [vecN [down|up]]`.
    pub(super) fn link_command(&mut self, rest: &str) -> Result<String, Reply> {
        let words: Vec<&str> = rest.split_whitespace().collect();
        let state = |g: &Guest, i: usize| {
            let p = g.ports[i].impair_params();
            let down = match (p.tx.down, p.rx.down) {
                (true, true) => "down",
                (false, false) => "up",
                (true, false) => "down (tx only)",
                (false, true) => "down (rx only)",
            };
            format!("{}: {down}\n", g.ports[i].name)
        };
        match words.as_slice() {
            [] => Ok((0..self.ports.len()).map(|i| state(self, i)).collect()),
            [dev] => Ok(state(self, port_of(self, dev, "link")?)),
            [dev, what @ ("down" | "up")] => {
                let i = port_of(self, dev, "link")?;
                let change = Change {
                    down: Some(*what == "down"),
                    ..Change::default()
                };
                self.change_impairment(i, &Direction::BOTH, &change)?;
                tracing::info!(port = %self.ports[i].name, "link {what} from the console");
                Ok(state(self, i))
            }
            _ => Err(err("usage: link [vecN [down|up]]")),
        }
    }

    fn change_impairment(
        &mut self,
        i: usize,
        dirs: &[Direction],
        change: &Change,
    ) -> Result<String, Reply> {
        let mut changes = [None, None];
        for d in dirs {
            changes[d.index()] = Some(change);
        }
        let port = &mut self.ports[i];
        port.set_impairment(changes, now_ns())
            .map_err(|e| err(e.to_string()))?;
        let p = port.impair_params();
        let mut out = String::new();
        for d in dirs {
            let _ = writeln!(out, "{} {}: {}", port.name, d.name(), p.get(*d));
        }
        Ok(out)
    }

    /// Settings and counters of every port (or port `only`), one block per direction.
    pub(super) fn impair_text(&self, only: Option<usize>) -> String {
        let mut s = String::new();
        for (i, port) in self.ports.iter().enumerate() {
            if only.is_some_and(|o| o != i) {
                continue;
            }
            for d in Direction::BOTH {
                let st = port.impairment(d);
                let params = st.map(Stage::params).copied().unwrap_or_default();
                let _ = writeln!(s, "{} {}: {}", port.name, d.name(), params);
                if let Some(st) = st {
                    s.push_str(&stage_counters(st));
                }
            }
        }
        s
    }
}

/// The counters of one stage, one indented line.
pub(super) fn stage_counters(st: &Stage) -> String {
    let c = &st.counters;
    let drops: Vec<String> = Dropped::ALL
        .iter()
        .map(|r| format!("{} {}", r.name(), c.dropped(*r)))
        .collect();
    let (q, qb) = st.queue_depth();
    format!(
        "  frames in {} out {} delayed {}; dropped {}; duplicated {} corrupted {} reordered {}; queue {q} frames {qb} bytes; in flight {}; late p50 {} p99 {}\n",
        c.frames_in,
        c.frames_out,
        c.delayed,
        drops.join(" "),
        c.duplicated,
        c.corrupted,
        c.reordered,
        st.in_flight(),
        late_bound(&c.late, 0.5),
        late_bound(&c.late, 0.99),
    )
}

/// `≤ 20 µs`: the bucket of the lateness histogram holding quantile `q`.
fn late_bound(h: &Hist<12>, q: f64) -> String {
    match h.quantile_bound(&LATE_BOUNDS_NS, q) {
        None => "-".into(),
        Some(u64::MAX) => format!(
            "> {} ms",
            LATE_BOUNDS_NS[LATE_BOUNDS_NS.len() - 1] / 1_000_000
        ),
        Some(b) if b >= 1_000_000 => format!("≤ {} ms", b / 1_000_000),
        Some(b) => format!("≤ {} µs", b / 1_000),
    }
}

/// One impairment direction of a port in the exit report.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ImpairReport {
    /// `tx` (frames leaving onto the link) or `rx` (frames arriving from it).
    pub direction: &'static str,
    /// Settings when the report was made, as `key=value` words (`none` once cleared).
    pub settings: String,
    /// Wire frames that entered the stage (a GSO super-frame counts as its segments).
    pub frames_in: u64,
    /// Wire frames the stage handed on.
    pub frames_out: u64,
    /// Wire frames held for a time (delay, jitter or rate).
    pub delayed: u64,
    /// Frames the stage dropped, by reason: `loss`, `queue_full`, `link_down`,
    /// `buffer_full` (docs/impairments.md).
    pub dropped: BTreeMap<String, u64>,
    /// Extra copies sent (`duplicate`).
    pub duplicated: u64,
    /// Frames with one bit flipped (`corrupt`).
    pub corrupted: u64,
    /// Frames that skipped the delay (`reorder`).
    pub reordered: u64,
    /// Frames still held when the report was made (never delivered).
    pub in_flight: u64,
    /// Frames handed on, and the nanoseconds they spent in the stage in total.
    pub delay_frames: u64,
    pub delay_sum_ns: u64,
}

/// The report entries of `p`'s impairment directions.
pub(super) fn reports(p: &Port) -> Vec<ImpairReport> {
    Direction::BOTH
        .iter()
        .filter_map(|d| {
            let st = p.impairment(*d)?;
            let c = &st.counters;
            Some(ImpairReport {
                direction: d.name(),
                settings: st.params().to_string(),
                frames_in: c.frames_in,
                frames_out: c.frames_out,
                delayed: c.delayed,
                dropped: Dropped::ALL
                    .iter()
                    .map(|r| (r.name().to_string(), c.dropped(*r)))
                    .collect(),
                duplicated: c.duplicated,
                corrupted: c.corrupted,
                reordered: c.reordered,
                in_flight: st.in_flight() as u64,
                delay_frames: c.delay.count,
                delay_sum_ns: c.delay.sum,
            })
        })
        .collect()
}

/// `tx (delay=20ms): in N out N delayed N dropped loss=N ... in-flight N`.
impl fmt::Display for ImpairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d: Vec<String> = Dropped::ALL
            .iter()
            .map(|r| format!("{}={}", r.name(), self.dropped.get(r.name()).unwrap_or(&0)))
            .collect();
        write!(
            f,
            "{} ({}): in {} out {} delayed {} dropped {} duplicated {} corrupted {} reordered {} in-flight {}",
            self.direction,
            self.settings,
            self.frames_in,
            self.frames_out,
            self.delayed,
            d.join(" "),
            self.duplicated,
            self.corrupted,
            self.reordered,
            self.in_flight
        )
    }
}
