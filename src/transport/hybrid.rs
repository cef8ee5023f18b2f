//! `transport=hybrid`: tap for transmit, an AF_PACKET socket on the same tap for
//! batched receive (UML's "experimental" transport, faster than tap on receive).
//!
//! Frames vecbox writes into the tap appear on the host as received on it, and the
//! packet socket would read them back. UML drops them with a filter on its own source
//! MAC; vecbox instead accepts only frames the host *transmits* into the tap
//! (`pkt_type == PACKET_OUTGOING`), which also keeps frames with a forwarded source MAC
//! (bridging) from looping.

use std::os::fd::AsFd;

use crate::sys::{packet, sock};

use super::port::{Caps, Opened, RxMode, TxMode};
use super::probe::{self, Feature};
use super::{
    OpenError, Spec, framing::Framing, max_tx_frame, raw::SOCKET_BUFFER, rx_slot, sys_err,
};

/// Open the hybrid transport on tap `ifname` (created if missing).
pub fn open(name: &str, spec: &Spec, ifname: &str, ring_ports: usize) -> Result<Opened, OpenError> {
    let mut fallbacks = 0;
    let (mut tap, mut actual, tap_vnet) =
        super::tap::open_vnet_tap(name, Some(ifname), &mut fallbacks)?;
    let mut rx = packet_socket(name, &actual)?;
    // Both directions must agree on the header: vnet only if the tap and the socket have it.
    let vnet = tap_vnet
        && probe::try_enable(
            Feature::PacketVnetHdr,
            "hybrid ports run without vnet headers",
            || packet::set_vnet_hdr(&rx),
        );
    if tap_vnet && !vnet {
        // Reopen the tap without IFF_VNET_HDR so that writes match what is read. A tap
        // vecbox created vanishes with its descriptor, so the socket is rebound too.
        fallbacks += 1;
        drop(rx);
        drop(tap);
        let (t, a) =
            crate::sys::tun::open_tap(Some(ifname), false).map_err(super::tap::tap_err(name))?;
        tap = t;
        actual = a;
        rx = packet_socket(name, &actual)?;
    }
    // gro= not given: TSO/USO whenever the tap accepts them.
    let gro = spec.common.gro(true);
    let offload_ok = vnet && super::tap::set_offloads(&tap, gro, &mut fallbacks);
    match &spec.common.bpffile {
        // The user's program runs behind the direction check (see only_outgoing_then).
        Some(path) => {
            let prog = crate::filter::Program::load(path)
                .and_then(|p| {
                    crate::filter::only_outgoing_then(&p).map_err(|source| {
                        crate::filter::LoadError::Invalid {
                            path: path.display().to_string(),
                            source,
                        }
                    })
                })
                .map_err(|source| OpenError::Filter {
                    port: name.to_string(),
                    source,
                })?;
            packet::attach_filter(&rx, prog.insns()).map_err(sys_err(
                name,
                "SO_ATTACH_FILTER",
                path.display().to_string(),
            ))?
        }
        None => packet::attach_filter(&rx, &crate::filter::only_outgoing()).map_err(sys_err(
            name,
            "SO_ATTACH_FILTER (direction filter)",
            &*actual,
        ))?,
    }
    let _ = packet::set_rcvbuf(&rx, SOCKET_BUFFER);
    let gso = vnet && offload_ok && gro;
    let prefix = if vnet {
        crate::wire::vnet::HEADER_LEN
    } else {
        0
    };
    let ifindex = sock::ifindex(&actual).map_err(|_| OpenError::NoSuchInterface {
        port: name.to_string(),
        ifname: actual.clone(),
    })?;
    let mut o = Opened {
        rx_fd: rx,
        tx_fd: Some(tap),
        rx_mode: if spec.common.vector {
            RxMode::Mmsg
        } else {
            RxMode::Single
        },
        tx_mode: TxMode::Write,
        framing: if vnet { Framing::Vnet } else { Framing::Bare },
        caps: Caps {
            rx_slot: rx_slot(spec, prefix, vnet),
            vnet,
            tx_gso: gso,
            max_tx_frame: max_tx_frame(spec),
            depth: usize::from(spec.common.depth),
        },
        host_if: Some(actual),
        fallbacks,
        dest: None,
        ring: None,
    };
    super::port::ring::enable(spec, &mut o, ring_ports);
    packet::bind(o.rx_fd.as_fd(), ifindex, packet::ETH_P_ALL).map_err(sys_err(
        name,
        "bind (AF_PACKET)",
        o.host_if.as_deref().unwrap_or_default(),
    ))?;
    Ok(o)
}

/// The receive socket, not bound yet: it is bound to the tap's index once the
/// direction filter is on (see packet::unbound).
fn packet_socket(name: &str, ifname: &str) -> Result<std::os::fd::OwnedFd, OpenError> {
    packet::unbound().map_err(sys_err(name, "AF_PACKET socket", ifname))
}
