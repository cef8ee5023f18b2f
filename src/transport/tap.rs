//! `transport=tap`: a host tap device through `/dev/net/tun`.
//!
//! Opened as UML does: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, a 10-byte vnet header
//! (TUNSETVNETHDRSZ) and offloads (TUNSETOFFLOAD). Unlike UML, the offloads follow `gro`:
//! with `gro=1` the kernel may hand over 64 KiB TSO/USO frames (and vecbox takes them
//! whole); with `gro=0` only checksum offload is asked for, so the kernel segments before
//! the tap and nothing arrives larger than the MTU. If the tap does not exist it is
//! created (CAP_NET_ADMIN) and disappears when vecbox closes it; an existing persistent
//! tap is attached to and left in place. Tap descriptors have no multi-message calls:
//! each frame is one `read`/`writev`.

use crate::sys::{sock, tun};

use super::port::{Caps, Opened, RxMode, TxMode};
use super::probe::{self, Feature};
use super::{OpenError, Spec, framing::Framing, max_tx_frame, rx_slot};

/// Open (or create) the tap `ifname`; `None` lets the kernel choose a `tapN` name.
pub fn open(name: &str, spec: &Spec, ifname: Option<&str>) -> Result<Opened, OpenError> {
    let existed = ifname.is_some_and(|n| sock::ifindex(n).is_ok());
    let mut fallbacks = 0;
    let (fd, actual, vnet) = open_vnet_tap(name, ifname, &mut fallbacks)?;
    if !existed {
        tracing::info!(port = name, tap = %actual, "created tap (removed when the guest exits)");
    }
    // gro= not given: TSO/USO whenever the tap accepts them.
    let gro = spec.common.gro(true);
    let offload_ok = if vnet {
        set_offloads(&fd, gro, &mut fallbacks)
    } else {
        false
    };
    let gso = vnet && offload_ok && gro;
    let prefix = if vnet {
        crate::wire::vnet::HEADER_LEN
    } else {
        0
    };
    Ok(Opened {
        rx_fd: fd,
        tx_fd: None,
        rx_mode: RxMode::Read,
        tx_mode: TxMode::Write,
        framing: if vnet { Framing::Vnet } else { Framing::Bare },
        caps: Caps {
            rx_slot: rx_slot(spec, prefix, gso),
            vnet,
            tx_gso: gso,
            max_tx_frame: max_tx_frame(spec),
            depth: usize::from(spec.common.depth),
        },
        host_if: Some(actual),
        fallbacks,
        dest: None,
        ring: None,
    })
}

/// Open the tap with a vnet header when the driver offers one, else without (counted).
/// Shared with the hybrid transport.
pub(crate) fn open_vnet_tap(
    name: &str,
    ifname: Option<&str>,
    fallbacks: &mut u64,
) -> Result<(std::os::fd::OwnedFd, String, bool), OpenError> {
    let (fd, actual) = tun::open_tap(ifname, true).map_err(tap_err(name))?;
    let vnet = probe::try_enable(
        Feature::TapVnetHdr,
        "taps run without vnet headers (no offloads; checksums completed by the kernel)",
        || {
            let feat = tun::features(&fd)?;
            if feat & tun::IFF_VNET_HDR as libc::c_uint == 0 {
                return Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP));
            }
            tun::set_vnet_hdr_size(&fd, crate::wire::vnet::HEADER_LEN as libc::c_int)
        },
    );
    if vnet {
        return Ok((fd, actual, true));
    }
    *fallbacks += 1;
    drop(fd);
    let (fd, actual) = tun::open_tap(Some(&actual), false).map_err(tap_err(name))?;
    Ok((fd, actual, false))
}

/// Wrap a tap failure for port `name`.
pub(crate) fn tap_err(name: &str) -> impl FnOnce(tun::TunError) -> OpenError {
    let port = name.to_string();
    move |source| OpenError::Tap { port, source }
}

/// Ask for checksum offload, plus TSO/USO when `gro` is on. Returns `true` when the
/// requested set (or, for USO, the TSO-only set) was accepted.
pub(crate) fn set_offloads(fd: &std::os::fd::OwnedFd, gro: bool, fallbacks: &mut u64) -> bool {
    let csum = tun::TUN_F_CSUM;
    let tso = csum | tun::TUN_F_TSO4 | tun::TUN_F_TSO6 | tun::TUN_F_TSO_ECN;
    if !gro {
        let ok = probe::try_enable(
            Feature::TapOffload,
            "kernel checksums frames before the tap",
            || tun::set_offload(fd, csum),
        );
        if !ok {
            *fallbacks += 1;
        }
        return ok;
    }
    let uso = tso | tun::TUN_F_USO4 | tun::TUN_F_USO6;
    if probe::try_enable(
        Feature::TapUso,
        "UDP GSO frames are segmented by the kernel",
        || tun::set_offload(fd, uso),
    ) {
        return true;
    }
    *fallbacks += 1;
    let ok = probe::try_enable(Feature::TapOffload, "no offloads on the tap", || {
        tun::set_offload(fd, tso)
    });
    if !ok {
        *fallbacks += 1;
    }
    ok
}
