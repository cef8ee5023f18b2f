//! How counters leave a guest: everything that has counters (ports, the guest itself,
//! network functions through [`crate::nf::Function::metrics`]) reports them to a
//! [`MetricSink`] by name, help text and labels. [`Snapshot`] is the sink the guest
//! publishes from: it remembers the series of the previous round and only rebuilds its
//! description (an allocation) when the set of series changes, so a steady guest
//! publishes by writing numbers into a vector it already has.

use serde::{Deserialize, Serialize};

/// A histogram as its owner keeps it: non-cumulative buckets.
#[derive(Clone, Copy, Debug)]
pub struct HistogramRef<'a> {
    /// Inclusive upper bounds of all buckets but the last (which is unbounded).
    pub bounds: &'a [u64],
    /// Counts per bucket; one more than `bounds`.
    pub buckets: &'a [u64],
    /// Sum of all observed values.
    pub sum: u64,
}

/// Receives named counters, gauges and histograms. Names follow Prometheus conventions
/// (`vecbox_` prefix, base units, counters end in `_total`); label names are
/// `[a-z_]+` and the reader adds `lab` and `node`.
pub trait MetricSink {
    /// A monotonic counter.
    fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: u64);
    /// A value that goes up and down.
    fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64);
    /// A distribution.
    fn histogram(&mut self, name: &str, help: &str, labels: &[(&str, &str)], h: HistogramRef<'_>);
    /// A distribution of durations kept in nanoseconds (bounds and sum), exported in
    /// seconds (names end in `_seconds`).
    fn histogram_ns(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        h: HistogramRef<'_>,
    ) {
        self.histogram(name, help, labels, h)
    }
}

/// Type of a series.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    Counter,
    /// Value stored as `f64` bits.
    Gauge,
    /// `bounds.len() + 1` bucket counts, then the sum.
    Histogram {
        bounds: Vec<u64>,
        /// Bounds and sum are nanoseconds, exported as seconds.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        nanos: bool,
    },
}

impl Kind {
    /// Value words the series occupies.
    pub fn slots(&self) -> usize {
        match self {
            Kind::Counter | Kind::Gauge => 1,
            Kind::Histogram { bounds, .. } => bounds.len() + 2,
        }
    }
}

/// Description of one series (one value, or one histogram).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub labels: Vec<(String, String)>,
}

impl Series {
    fn matches(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.name == name
            && self.labels.len() == labels.len()
            && self
                .labels
                .iter()
                .zip(labels)
                .all(|((k, v), (k2, v2))| k == k2 && v == v2)
    }
}

/// The series of one publishing round and their values, reused round after round.
#[derive(Default, Debug)]
pub struct Snapshot {
    pub series: Vec<Series>,
    pub values: Vec<u64>,
    cursor: usize,
    slot: usize,
    /// The description changed since it was last taken with [`Snapshot::take_changed`].
    changed: bool,
}

impl Snapshot {
    /// Start a round.
    pub fn begin(&mut self) {
        self.cursor = 0;
        self.slot = 0;
    }

    /// `true` if the description differs from the one of the previous round so far.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Clear and return the change flag.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// End the round here: series not reported this round are gone.
    pub fn end(&mut self) {
        if self.cursor < self.series.len() {
            self.series.truncate(self.cursor);
            self.changed = true;
        }
        self.values.truncate(self.slot);
    }

    /// End the round keeping the series after this point with their previous values
    /// (for reporters that are asked less often than the round runs). Only valid when
    /// [`Snapshot::changed`] is false: a change so far dropped the rest.
    pub fn end_keep_rest(&mut self) {
        debug_assert!(!self.changed);
    }

    fn entry(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        same_kind: impl Fn(&Kind) -> bool,
        kind: impl FnOnce() -> Kind,
    ) -> usize {
        let same = self
            .series
            .get(self.cursor)
            .is_some_and(|s| s.matches(name, labels) && same_kind(&s.kind));
        if !same {
            self.series.truncate(self.cursor);
            self.series.push(Series {
                name: name.to_string(),
                help: help.to_string(),
                kind: kind(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            });
            self.changed = true;
        }
        let slot = self.slot;
        let n = self.series[self.cursor].kind.slots();
        self.cursor += 1;
        self.slot += n;
        if self.values.len() < self.slot {
            self.values.resize(self.slot, 0);
        }
        slot
    }
}

impl MetricSink for Snapshot {
    fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: u64) {
        let s = self.entry(
            name,
            help,
            labels,
            |k| *k == Kind::Counter,
            || Kind::Counter,
        );
        self.values[s] = value;
    }

    fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        let s = self.entry(name, help, labels, |k| *k == Kind::Gauge, || Kind::Gauge);
        self.values[s] = value.to_bits();
    }

    fn histogram(&mut self, name: &str, help: &str, labels: &[(&str, &str)], h: HistogramRef<'_>) {
        self.put_histogram(name, help, labels, h, false);
    }

    fn histogram_ns(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        h: HistogramRef<'_>,
    ) {
        self.put_histogram(name, help, labels, h, true);
    }
}

impl Snapshot {
    fn put_histogram(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        h: HistogramRef<'_>,
        nanos: bool,
    ) {
        let s = self.entry(
            name,
            help,
            labels,
            |k| matches!(k, Kind::Histogram { bounds, nanos: n } if bounds == h.bounds && *n == nanos),
            || Kind::Histogram {
                bounds: h.bounds.to_vec(),
                nanos,
            },
        );
        let n = h.bounds.len() + 1;
        for i in 0..n {
            self.values[s + i] = h.buckets.get(i).copied().unwrap_or(0);
        }
        self.values[s + n] = h.sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(s: &mut Snapshot, n: u64, extra: bool) {
        s.begin();
        s.counter("a_total", "A.", &[("iface", "vec0")], n);
        s.gauge("g", "G.", &[], 1.5);
        s.histogram(
            "h",
            "H.",
            &[],
            HistogramRef {
                bounds: &[1, 2],
                buckets: &[3, 4, 5],
                sum: 99,
            },
        );
        if extra {
            s.counter("b_total", "B.", &[("rule", "1")], 7);
        }
        s.end();
    }

    #[test]
    fn steady_rounds_do_not_change_the_description() {
        let mut s = Snapshot::default();
        round(&mut s, 1, false);
        assert!(s.take_changed());
        assert_eq!(s.values, vec![1, 1.5f64.to_bits(), 3, 4, 5, 99]);
        round(&mut s, 2, false);
        assert!(!s.take_changed());
        assert_eq!(s.values[0], 2);
        round(&mut s, 3, true);
        assert!(s.take_changed());
        assert_eq!(s.series.len(), 4);
        assert_eq!(s.values.len(), 7);
        round(&mut s, 3, false);
        assert!(s.take_changed());
        assert_eq!(s.series.len(), 3);
        assert_eq!(s.values.len(), 6);
    }
}
