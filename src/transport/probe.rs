//! Kernel feature probing with a logged, counted fallback.
//!
//! Each optional feature is tried on the first real descriptor that wants it. The
//! answer is cached for the process, a missing feature is logged once, and the caller
//! counts the fallback on its port (`fallbacks`). Setting
//! `VECBOX_DISABLE=feature,feature` in the environment makes vecbox act as if the
//! kernel lacked those features, so the degraded paths can be exercised and tested on
//! any kernel.

use std::io;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

/// Optional kernel features vecbox uses when present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Feature {
    /// PACKET_VNET_HDR on AF_PACKET sockets (checksum/GSO metadata, 64 KiB frames).
    PacketVnetHdr,
    /// PACKET_QDISC_BYPASS on the transmit socket.
    QdiscBypass,
    /// PACKET_IGNORE_OUTGOING on the receive socket (else a BPF filter does it).
    IgnoreOutgoing,
    /// IFF_VNET_HDR on tap devices.
    TapVnetHdr,
    /// TUNSETOFFLOAD checksum/TSO offloads on taps.
    TapOffload,
    /// UDP segmentation offload (TUN_F_USO4/6) on taps.
    TapUso,
    /// UDP_SEGMENT on UDP sockets (L2TPv3 over UDP).
    UdpGso,
    /// UDP_GRO on UDP sockets (L2TPv3 over UDP).
    UdpGro,
    /// TPACKET_V3 receive ring (PACKET_RX_RING) on raw/hybrid receive sockets.
    PacketRxRing,
}

impl Feature {
    const ALL: [Feature; 9] = [
        Feature::PacketVnetHdr,
        Feature::QdiscBypass,
        Feature::IgnoreOutgoing,
        Feature::TapVnetHdr,
        Feature::TapOffload,
        Feature::TapUso,
        Feature::UdpGso,
        Feature::UdpGro,
        Feature::PacketRxRing,
    ];

    /// Name used in logs and in `VECBOX_DISABLE`.
    pub fn name(self) -> &'static str {
        match self {
            Feature::PacketVnetHdr => "packet_vnet_hdr",
            Feature::QdiscBypass => "qdisc_bypass",
            Feature::IgnoreOutgoing => "ignore_outgoing",
            Feature::TapVnetHdr => "tap_vnet_hdr",
            Feature::TapOffload => "tap_offload",
            Feature::TapUso => "tap_uso",
            Feature::UdpGso => "udp_gso",
            Feature::UdpGro => "udp_gro",
            Feature::PacketRxRing => "packet_rx_ring",
        }
    }
}

const UNKNOWN: u8 = 0;
const PRESENT: u8 = 1;
const ABSENT: u8 = 2;

static STATE: [AtomicU8; Feature::ALL.len()] =
    [const { AtomicU8::new(UNKNOWN) }; Feature::ALL.len()];
static LOGGED: [AtomicU8; Feature::ALL.len()] = [const { AtomicU8::new(0) }; Feature::ALL.len()];

fn disabled_by_env(f: Feature) -> bool {
    static DISABLED: OnceLock<Vec<Feature>> = OnceLock::new();
    DISABLED
        .get_or_init(|| {
            let v = std::env::var("VECBOX_DISABLE").unwrap_or_default();
            Feature::ALL
                .into_iter()
                .filter(|f| v.split(',').any(|w| w.trim() == f.name()))
                .collect()
        })
        .contains(&f)
}

/// `true` when the error means "this kernel does not have it" rather than a one-off
/// failure.
fn means_absent(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOPROTOOPT) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(libc::ENOTTY)
    )
}

/// Try `enable` for feature `f`. Returns `true` if the feature is now on. When it is
/// not (disabled by `VECBOX_DISABLE`, known absent, or `enable` failed), the reason is
/// logged once per process and `false` is returned: the caller takes its fallback and
/// counts it.
pub fn try_enable(f: Feature, fallback: &str, enable: impl FnOnce() -> io::Result<()>) -> bool {
    let idx = f as usize;
    let why = if disabled_by_env(f) {
        String::from("disabled by VECBOX_DISABLE")
    } else if STATE[idx].load(Ordering::Relaxed) == ABSENT {
        String::from("not supported by this kernel")
    } else {
        match enable() {
            Ok(()) => {
                STATE[idx].store(PRESENT, Ordering::Relaxed);
                return true;
            }
            Err(e) => {
                if means_absent(&e) {
                    STATE[idx].store(ABSENT, Ordering::Relaxed);
                }
                e.to_string()
            }
        }
    };
    if LOGGED[idx].swap(1, Ordering::Relaxed) == 0 {
        tracing::warn!(feature = f.name(), reason = %why, "kernel feature unavailable; {fallback}");
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_feature_is_cached_and_present_one_is_used() {
        // TapUso is not touched by other unit tests.
        let mut calls = 0;
        let ok = try_enable(Feature::TapUso, "test fallback", || {
            calls += 1;
            Err(io::Error::from_raw_os_error(libc::EINVAL))
        });
        assert!(!ok);
        let ok = try_enable(Feature::TapUso, "test fallback", || {
            calls += 1;
            Ok(())
        });
        assert!(!ok, "a feature found absent stays absent");
        assert_eq!(calls, 1);
        assert!(try_enable(Feature::QdiscBypass, "x", || Ok(())));
    }

    #[test]
    fn names_are_distinct() {
        let mut n: Vec<_> = Feature::ALL.iter().map(|f| f.name()).collect();
        n.sort();
        n.dedup();
        assert_eq!(n.len(), Feature::ALL.len());
    }
}
