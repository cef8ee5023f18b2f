//! Counters of one impairment direction. Frames are counted as wire frames: a GSO
//! super-frame kept whole counts as the segments it becomes.

use serde::Serialize;

/// Why the stage dropped a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Dropped {
    /// The loss model chose it.
    Loss,
    /// The queue in front of `rate` was at its limit when it arrived.
    QueueFull,
    /// The direction is administratively down.
    LinkDown,
    /// The stage's memory for frames in flight reached its limit (1 GiB).
    BufferFull,
}

impl Dropped {
    /// Every reason, in counter order.
    pub const ALL: [Dropped; 4] = [
        Dropped::Loss,
        Dropped::QueueFull,
        Dropped::LinkDown,
        Dropped::BufferFull,
    ];

    /// Label value.
    pub fn name(self) -> &'static str {
        match self {
            Dropped::Loss => "loss",
            Dropped::QueueFull => "queue_full",
            Dropped::LinkDown => "link_down",
            Dropped::BufferFull => "buffer_full",
        }
    }
}

/// Upper bounds (ns) of the applied-delay histogram buckets; one more bucket is
/// unbounded.
pub const DELAY_BOUNDS_NS: [u64; 17] = [
    10_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
];

/// Upper bounds (ns) of the lateness histogram: how long after its departure time a
/// frame was actually handed on.
pub const LATE_BOUNDS_NS: [u64; 11] = [
    1_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 5_000_000,
    10_000_000,
];

/// A histogram over fixed bounds: non-cumulative buckets and the sum (ns).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Hist<const N: usize> {
    #[serde(with = "serde_arrays")]
    pub buckets: [u64; N],
    pub sum: u64,
    pub count: u64,
}

mod serde_arrays {
    pub fn serialize<S: serde::Serializer, const N: usize>(
        a: &[u64; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&a[..], s)
    }
}

impl<const N: usize> Default for Hist<N> {
    fn default() -> Self {
        Hist {
            buckets: [0; N],
            sum: 0,
            count: 0,
        }
    }
}

impl<const N: usize> Hist<N> {
    /// Count `n` observations of `v` ns against `bounds` (`N − 1` of them).
    #[inline]
    pub fn record(&mut self, bounds: &[u64], v: u64, n: u64) {
        let i = bounds.partition_point(|b| *b < v);
        self.buckets[i.min(N - 1)] += n;
        self.sum = self.sum.saturating_add(v.saturating_mul(n));
        self.count += n;
    }

    /// Upper bound (ns) of the bucket holding quantile `q` (0–1) of what was recorded
    /// against `bounds`: `None` before anything was recorded, `Some(u64::MAX)` in the
    /// unbounded last bucket.
    pub fn quantile_bound(&self, bounds: &[u64], q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((self.count as f64 * q).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b;
            if seen >= rank {
                return Some(bounds.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }
}

/// Counters of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Wire frames that entered the stage.
    pub frames_in: u64,
    /// Wire frames handed on.
    pub frames_out: u64,
    /// Wire frames held for a time (departure later than arrival).
    pub delayed: u64,
    /// Dropped, by [`Dropped`] in order.
    pub dropped: [u64; 4],
    /// Extra copies made.
    pub duplicated: u64,
    /// Frames with a bit flipped.
    pub corrupted: u64,
    /// Frames that skipped the delay (`reorder`).
    pub reordered: u64,
    /// Time from entering the stage to being handed on.
    pub delay: Hist<18>,
    /// Time from the departure time to being handed on (timer and loop latency).
    pub late: Hist<12>,
}

impl Counters {
    /// Dropped for `r`.
    pub fn dropped(&self, r: Dropped) -> u64 {
        self.dropped[r as usize]
    }

    /// Count `n` frames dropped for `r`.
    #[inline]
    pub fn drop_n(&mut self, r: Dropped, n: u64) {
        self.dropped[r as usize] += n;
    }
}
