//! The targets checked on every run, and verdicts that the measured spread supports.
//!
//! A target compares two rows of the same run: `numerator / denominator ≥ target`.
//! Each row has `reps` windows; with the median and the min–max of each, the ratio lies
//! in `[num.min / den.max, num.max / den.min]`. For 5 windows the min–max of a row is a
//! 94 % confidence interval of its median (order statistics: 1 − 2 · 0.5⁵), so:
//!
//! - **met** when the whole range is at or above the target;
//! - **MISSED** when the whole range is below it;
//! - **inconclusive** (with the range) otherwise, or with fewer than
//!   [`MIN_REPS`] windows;
//! - **generator-bound** when a row is within 5 % of its ceiling: the generator, not
//!   the device, set that rate. If the numerator is, the ratio is a lower bound (`≥ X`);
//!   if the denominator is, an upper bound (`≤ X`).

use serde::Serialize;

use super::report::{Row, Status};

/// Fewest windows per row for a met/MISSED verdict.
pub const MIN_REPS: usize = 3;

/// What the ranges support.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Met,
    Missed,
    Inconclusive,
    /// The numerator is generator-bound: the ratio is at least the value.
    AtLeast,
    /// The denominator (only) is generator-bound: the ratio is at most the value.
    AtMost,
    /// Both rows are generator-bound: nothing can be said.
    GeneratorBound,
    NotMeasured,
}

/// A target, checked against this run.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub what: &'static str,
    pub numerator: &'static str,
    pub denominator: &'static str,
    pub target: f64,
    /// Ratio of the medians.
    pub value: Option<f64>,
    /// Lowest and highest ratio the windows allow.
    pub range: Option<(f64, f64)>,
    pub verdict: Verdict,
    /// Windows of the row with fewer.
    pub windows: usize,
}

impl Target {
    /// `met`, `MISSED`, `inconclusive (0.95–1.31×)`, `≥ 1.02× (generator-bound)`, ...
    pub fn text(&self) -> String {
        let v = self.value.unwrap_or(0.0);
        let (lo, hi) = self.range.unwrap_or((0.0, 0.0));
        match self.verdict {
            Verdict::Met => "met".into(),
            Verdict::Missed => "MISSED".into(),
            Verdict::Inconclusive if self.windows < MIN_REPS => format!(
                "inconclusive ({} window{} per row, {MIN_REPS} needed)",
                self.windows,
                if self.windows == 1 { "" } else { "s" }
            ),
            Verdict::Inconclusive => format!("inconclusive ({lo:.2}–{hi:.2}×)"),
            Verdict::AtLeast => format!("≥ {v:.2}× (generator-bound)"),
            Verdict::AtMost => format!("≤ {v:.2}× (baseline generator-bound)"),
            Verdict::GeneratorBound => "both generator-bound".into(),
            Verdict::NotMeasured => "not measured".into(),
        }
    }
}

pub const TARGETS: [(&str, &str, &str, f64); 11] = [
    (
        "64 B xconnect vs kernel bridge",
        "vecbox/xconnect/raw/64/d64/vec/off1",
        "kernel/bridge/64/off1",
        1.2,
    ),
    (
        "64 B xconnect vs UML",
        "vecbox/xconnect/raw/64/d64/vec/off1",
        "uml/raw/64",
        5.0,
    ),
    (
        "64 B router vs kernel forwarding",
        "vecbox/router/raw/64/d64/vec/off1",
        "kernel/forward/64/off1",
        1.2,
    ),
    (
        "64 B router vs UML",
        "vecbox/router/raw/64/d64/vec/off1",
        "uml/raw/64",
        5.0,
    ),
    (
        "TCP offloads on vs kernel",
        "vecbox/tcp/1s/off1",
        "kernel/tcp/1s/off1",
        1.0,
    ),
    (
        "TCP offloads on vs UML",
        "vecbox/tcp/1s/off1",
        "uml/tcp/1s/off1",
        2.0,
    ),
    (
        "vector vs vec=0 (64 B xconnect)",
        "vecbox/xconnect/raw/64/d64/vec/off1",
        "vecbox/xconnect/raw/64/d64/vec0/off1",
        1.3,
    ),
    (
        "firewall own-port rules vs router (64 B, 1 flow)",
        "vecbox/firewall-port/raw/64/d64/vec/off1",
        "vecbox/router/raw/64/d64/vec/off1",
        0.85,
    ),
    (
        "firewall own-port rules vs router (64 B, 10 000 flows)",
        "vecbox/firewall-port/raw/64/d64/vec/off1/f10000",
        "vecbox/router/raw/64/d64/vec/off1/f10000",
        0.85,
    ),
    (
        "firewall mixed rules vs router (64 B, 10 000 flows)",
        "vecbox/firewall-mixed/raw/64/d64/vec/off1/f10000",
        "vecbox/router/raw/64/d64/vec/off1/f10000",
        0.85,
    ),
    (
        "GRE vs UML GRE (64 B)",
        "vecbox/xconnect/gre/64/d64/vec/off1",
        "uml/gre/64",
        3.0,
    ),
];

/// The verdict on `num / den ≥ target`.
pub fn judge(num: &Row, den: &Row, target: f64) -> (Option<f64>, Option<(f64, f64)>, Verdict) {
    let (Some(a), Some(b)) = (num.metric_stat(), den.metric_stat()) else {
        return (None, None, Verdict::NotMeasured);
    };
    if num.status != Status::Ok || den.status != Status::Ok || b.median <= 0.0 || b.min <= 0.0 {
        return (None, None, Verdict::NotMeasured);
    }
    let value = a.median / b.median;
    let range = (a.min / b.max, a.max / b.min);
    let verdict = match (num.generator_bound, den.generator_bound) {
        (true, true) => Verdict::GeneratorBound,
        (true, false) => Verdict::AtLeast,
        (false, true) => Verdict::AtMost,
        _ if num.reps < MIN_REPS || den.reps < MIN_REPS => Verdict::Inconclusive,
        _ if range.0 >= target => Verdict::Met,
        _ if range.1 < target => Verdict::Missed,
        _ => Verdict::Inconclusive,
    };
    (Some(value), Some(range), verdict)
}

/// Every target against `rows`.
pub fn targets(rows: &[Row]) -> Vec<Target> {
    let get = |n: &str| rows.iter().find(|r| r.name == n);
    TARGETS
        .iter()
        .map(|&(what, numerator, denominator, target)| {
            let (value, range, verdict, windows) = match (get(numerator), get(denominator)) {
                (Some(a), Some(b)) => {
                    let (v, r, j) = judge(a, b, target);
                    (v, r, j, a.reps.min(b.reps))
                }
                _ => (None, None, Verdict::NotMeasured, 0),
            };
            Target {
                what,
                numerator,
                denominator,
                target,
                value,
                range,
                verdict,
                windows,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::measure::Sample;
    use crate::bench::scenario::{Dut, Function, Kind, Scenario, Size, Transport};

    fn row(pps: &[f64], bound: bool) -> Row {
        let s = Scenario {
            dut: Dut::Vecbox,
            kind: Kind::pps(Function::Router, Transport::Raw, Size::Bytes(64), true),
        };
        let samples: Vec<Sample> = pps
            .iter()
            .map(|&p| Sample {
                offered_pps: p,
                delivered_pps: p,
                delivered_bps: p * 480.0,
            })
            .collect();
        let mut r = Row::new(&s).measured(&samples);
        r.generator_bound = bound;
        r
    }

    #[test]
    fn verdicts_follow_the_ranges() {
        let den = row(&[100.0, 100.0, 100.0], false);
        let j = |pps: &[f64]| judge(&row(pps, false), &den, 1.2).2;
        assert_eq!(j(&[125.0, 130.0, 140.0]), Verdict::Met);
        assert_eq!(j(&[100.0, 110.0, 119.0]), Verdict::Missed);
        // The median clears the target, the range does not: no verdict.
        let (v, range, verdict) = judge(&row(&[110.0, 130.0, 140.0], false), &den, 1.2);
        assert_eq!(verdict, Verdict::Inconclusive);
        assert!((v.unwrap() - 1.3).abs() < 1e-9);
        assert_eq!(range, Some((1.1, 1.4)));
        // Spread in the baseline counts too.
        let wide = row(&[90.0, 100.0, 120.0], false);
        assert_eq!(
            judge(&row(&[125.0, 130.0, 140.0], false), &wide, 1.2).2,
            Verdict::Inconclusive
        );
        // One window is no evidence.
        let one = [row(&[200.0], false), row(&[100.0], false)];
        assert_eq!(judge(&one[0], &one[1], 1.2).2, Verdict::Inconclusive);
        let mut t = targets(&[]);
        t[0].verdict = Verdict::Inconclusive;
        t[0].windows = 1;
        assert_eq!(t[0].text(), "inconclusive (1 window per row, 3 needed)");
    }

    #[test]
    fn generator_bound_rows_give_bounds_not_verdicts() {
        let den = row(&[100.0, 100.0, 100.0], false);
        let t = |num: Row, den: &Row| {
            let (value, range, verdict) = judge(&num, den, 1.2);
            Target {
                what: "x",
                numerator: "a",
                denominator: "b",
                target: 1.2,
                value,
                range,
                verdict,
                windows: 3,
            }
        };
        let a = t(row(&[150.0, 150.0, 150.0], true), &den);
        assert_eq!(a.verdict, Verdict::AtLeast);
        assert_eq!(a.text(), "≥ 1.50× (generator-bound)");
        let b = t(row(&[50.0, 50.0, 50.0], false), &row(&[100.0; 3], true));
        assert_eq!(b.text(), "≤ 0.50× (baseline generator-bound)");
        let c = t(row(&[100.0; 3], true), &row(&[100.0; 3], true));
        assert_eq!(c.verdict, Verdict::GeneratorBound);
    }

    #[test]
    fn failed_or_missing_rows_are_not_measured() {
        let mut failed = row(&[100.0; 3], false);
        failed.status = Status::Failed;
        assert_eq!(
            judge(&row(&[100.0; 3], false), &failed, 1.0).2,
            Verdict::NotMeasured
        );
        let zero = row(&[0.0; 3], false);
        assert_eq!(
            judge(&row(&[100.0; 3], false), &zero, 1.0).2,
            Verdict::NotMeasured
        );
        let ts = targets(&[]);
        assert_eq!(ts.len(), TARGETS.len());
        assert!(ts.iter().all(|t| t.verdict == Verdict::NotMeasured));
    }
}
