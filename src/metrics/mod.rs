//! Counters kept by guests: per port packets, bytes, drops by reason, batch sizes and
//! offload use. They are plain integers owned by the single guest thread (no locks or
//! atomics on the hot path) and only ever grow (Prometheus counter semantics).
//!
//! Publishing: the guest reports them (and the network function's own counters, through
//! [`crate::nf::Function::metrics`]) to a [`sink::Snapshot`] every few milliseconds and
//! copies that into its shared [`region`]; [`collect::GuestCollector`] reads regions and
//! turns them into Prometheus families; [`http`] serves them. Metric names are listed in
//! [`names`] and documented in docs/metrics.md.

pub mod collect;
pub mod http;
pub mod json;
pub mod names;
pub mod region;
pub mod sink;

use std::fmt;

pub use sink::{HistogramRef, MetricSink};

/// Why a frame was dropped. Every drop in vecbox is counted under one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than an Ethernet header.
    Runt,
    /// Longer than the receive buffer (the kernel truncated it), or than the output MTU.
    Oversize,
    /// The virtio-net header was invalid or inconsistent with the frame.
    BadVnetHeader,
    /// No free buffer to receive into.
    NoBuffer,
    /// The output port's transmit queue was full.
    TxQueueFull,
    /// The kernel refused the frame on transmit (error other than EAGAIN/ENOBUFS).
    TxError,
    /// A GSO frame that vecbox cannot segment (UFO, unknown headers).
    GsoUnsupported,
    /// The checksum could not be completed (bad csum_start/offset).
    ChecksumError,
    /// The network function had nowhere to send it (e.g. bridge: destination on the
    /// ingress port).
    NoRoute,
    /// Encapsulation header did not match the configuration.
    EncapError,
    /// Dropped by a filter or a rule.
    Filtered,
    /// Raw IPv4 tunnel socket: the IPv4 header in front of the payload was invalid.
    BadIpHeader,
    /// GRE: truncated, checksum/routing bits, or K/S bits other than configured.
    BadGreHeader,
    /// GRE: the payload is not Ethernet (protocol other than 0x6558).
    NotEthernet,
    /// GRE: key other than `rx_key`.
    BadKey,
    /// L2TPv3: truncated, or (UDP) not a version 3 data message.
    BadL2tpHeader,
    /// L2TPv3: session other than `rx_session`.
    BadSession,
    /// L2TPv3: cookie other than `rx_cookie`.
    BadCookie,
    /// BESS: the peer was gone (frames queued for it, or sent while it was away).
    PeerGone,
    /// TTL / hop limit ran out (router).
    TtlExceeded,
    /// The next hop's MAC could not be resolved, or no room to wait for it (router).
    NoNeighbor,
    /// Malformed IP header (bad version, length or checksum).
    BadHeader,
    /// The kernel refused the frame because the output link is down (tap not up:
    /// EIO; AF_PACKET on a down interface: ENETDOWN/ENXIO), like the kernel's
    /// `tx_carrier_errors`. Expected while a peer brings its side up.
    LinkDown,
    /// The kernel found no free block in the port's receive ring (`ring=1`) and dropped
    /// the frame (PACKET_STATISTICS `tp_drops`).
    RingFull,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 24] = [
        DropReason::Runt,
        DropReason::Oversize,
        DropReason::BadVnetHeader,
        DropReason::NoBuffer,
        DropReason::TxQueueFull,
        DropReason::TxError,
        DropReason::GsoUnsupported,
        DropReason::ChecksumError,
        DropReason::NoRoute,
        DropReason::EncapError,
        DropReason::Filtered,
        DropReason::BadIpHeader,
        DropReason::BadGreHeader,
        DropReason::NotEthernet,
        DropReason::BadKey,
        DropReason::BadL2tpHeader,
        DropReason::BadSession,
        DropReason::BadCookie,
        DropReason::PeerGone,
        DropReason::TtlExceeded,
        DropReason::NoNeighbor,
        DropReason::BadHeader,
        DropReason::LinkDown,
        DropReason::RingFull,
    ];
    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// Stable snake_case name (used in stats output and metric labels).
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Runt => "runt",
            DropReason::Oversize => "oversize",
            DropReason::BadVnetHeader => "bad_vnet_header",
            DropReason::NoBuffer => "no_buffer",
            DropReason::TxQueueFull => "tx_queue_full",
            DropReason::TxError => "tx_error",
            DropReason::GsoUnsupported => "gso_unsupported",
            DropReason::ChecksumError => "checksum_error",
            DropReason::NoRoute => "no_route",
            DropReason::EncapError => "encap_error",
            DropReason::Filtered => "filtered",
            DropReason::BadIpHeader => "bad_ip_header",
            DropReason::BadGreHeader => "bad_gre_header",
            DropReason::NotEthernet => "not_ethernet",
            DropReason::BadKey => "bad_key",
            DropReason::BadL2tpHeader => "bad_l2tp_header",
            DropReason::BadSession => "bad_session",
            DropReason::BadCookie => "bad_cookie",
            DropReason::PeerGone => "peer_gone",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::NoNeighbor => "no_neighbor",
            DropReason::BadHeader => "bad_header",
            DropReason::LinkDown => "link_down",
            DropReason::RingFull => "ring_full",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Batch-size distribution: power-of-two buckets (1, 2, 3-4, 5-8, ... , >256) plus
/// UML's `queue_max` and `queue_running_average` (`avg = (avg + n) / 2`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct BatchStats {
    /// Batches by size, each bucket with its bounds (in JSON: `[{min, max, batches}]`).
    #[serde(serialize_with = "json::serialize_buckets")]
    #[schemars(with = "Vec<json::BatchBucket>")]
    pub buckets: [u64; Self::BUCKETS],
    /// Largest batch so far (UML `queue_max`).
    pub max: u64,
    /// UML's `queue_running_average`: `avg = (avg + n) / 2` per batch.
    pub running_average: u64,
    /// Batches (system calls that moved at least one frame).
    pub batches: u64,
    /// Frames in all batches (the histogram's sum).
    pub frames: u64,
}

impl BatchStats {
    /// Number of histogram buckets.
    pub const BUCKETS: usize = 10;

    /// Upper bound (inclusive) of bucket `i`; the last bucket is unbounded.
    pub fn bucket_le(i: usize) -> Option<u64> {
        (i + 1 < Self::BUCKETS).then(|| 1u64 << i)
    }

    /// Record one batch of `n` (> 0) frames.
    pub fn record(&mut self, n: usize) {
        let n = n as u64;
        if n == 0 {
            return;
        }
        let idx = (64 - (n - 1).leading_zeros()) as usize;
        self.buckets[idx.min(Self::BUCKETS - 1)] += 1;
        self.max = self.max.max(n);
        self.running_average = (self.running_average + n) >> 1;
        self.batches += 1;
        self.frames += n;
    }

    /// Inclusive upper bounds of the buckets but the last, for [`HistogramRef`].
    pub const BOUNDS: [u64; Self::BUCKETS - 1] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

    /// The distribution as a histogram.
    pub fn histogram(&self) -> HistogramRef<'_> {
        HistogramRef {
            bounds: &Self::BOUNDS,
            buckets: &self.buckets,
            sum: self.frames,
        }
    }
}

/// Counters of one port (one `vecN` interface of a guest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct PortStats {
    /// Frames received and handed to the network function.
    pub rx_packets: u64,
    /// Their bytes (Ethernet header on, no vnet header).
    pub rx_bytes: u64,
    /// Frames handed to the kernel.
    pub tx_packets: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// By [`DropReason`] (in JSON: the port's `drops` map, [`json::DropCounts`]).
    #[serde(skip)]
    pub drops: [u64; DropReason::COUNT],
    /// Frames per receive call.
    pub rx_batch: BatchStats,
    /// Frames per transmit call.
    pub tx_batch: BatchStats,
    /// Partial or refused `sendmmsg` (UML `tx_restart_queue`).
    pub tx_restart_queue: u64,
    /// Frames received with DATA_VALID (UML `rx_csum_offload_good`).
    pub rx_csum_offload_good: u64,
    /// GSO super-frames received whole.
    pub rx_gso_frames: u64,
    /// GSO super-frames sent whole to a port that takes them.
    pub tx_gso_frames: u64,
    /// GSO super-frames split in software before transmit.
    pub tx_gso_segmented: u64,
    /// Segments produced by software segmentation.
    pub tx_gso_segments: u64,
    /// Checksums completed in software before transmit.
    pub tx_csum_completed: u64,
    /// Kernel features the port had to do without (probe failed; see the log).
    pub fallbacks: u64,
    /// Peer connections established (bess).
    pub peer_connects: u64,
    /// Peers lost (bess: end of connection, reset, broken pipe).
    pub peer_losses: u64,
    /// Received buffers holding several UDP datagrams coalesced by the kernel (UDP_GRO).
    pub rx_gro_coalesced: u64,
    /// UDP super-datagrams sent for the kernel to cut (UDP_SEGMENT).
    pub tx_udp_gso_sends: u64,
    /// Received TCP segments joined into GSO frames in software (L2TPv3 over UDP).
    pub rx_coalesced: u64,
}

impl PortStats {
    /// Count one dropped frame.
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    /// Count `n` frames dropped for `reason` (drops the kernel reports in bulk).
    pub fn drop_n(&mut self, reason: DropReason, n: u64) {
        self.drops[reason as usize] += n;
    }

    /// Dropped frames for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// All drops.
    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_buckets_are_powers_of_two() {
        let mut b = BatchStats::default();
        for n in [1, 2, 3, 4, 5, 64, 65, 256, 257, 10_000] {
            b.record(n);
        }
        b.record(0);
        assert_eq!(b.buckets, [1, 1, 2, 1, 0, 0, 1, 1, 1, 2]);
        assert_eq!(b.max, 10_000);
        assert_eq!(b.batches, 10);
        assert_eq!(b.frames, 1 + 2 + 3 + 4 + 5 + 64 + 65 + 256 + 257 + 10_000);
        for (i, le) in BatchStats::BOUNDS.iter().enumerate() {
            assert_eq!(BatchStats::bucket_le(i), Some(*le));
        }
        assert_eq!(BatchStats::bucket_le(0), Some(1));
        assert_eq!(BatchStats::bucket_le(8), Some(256));
        assert_eq!(BatchStats::bucket_le(9), None);
    }

    #[test]
    fn drop_reason_names_are_unique() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }
}
