//! `transport=raw`: AF_PACKET sockets bound to a host interface (usually one end of a
//! veth pair).
//!
//! Like UML: a receive socket bound with ETH_P_ALL, a transmit socket, PACKET_VNET_HDR on
//! both when the kernel has it, PACKET_QDISC_BYPASS. Unlike UML: the bypass goes on the
//! *transmit* socket (UML sets it on the receive socket, where it does nothing), the
//! transmit socket is bound with protocol 0 so nothing is ever queued to it, and frames
//! the host itself transmits on the interface (including vecbox's own, should they be
//! looped back) are kept off the receive socket with PACKET_IGNORE_OUTGOING, or a
//! `pkt_type` filter where the kernel lacks it. The receive socket is bound last, once
//! its options, filters and ring are in place, so no frame reaches it unfiltered.

use std::os::fd::AsFd;

use crate::sys::{packet, sock};

use super::port::{Caps, Opened, RxMode, TxMode};
use super::probe::{self, Feature};
use super::{OpenError, Spec, framing::Framing, max_tx_frame, rx_slot, sys_err};

/// Socket buffer size asked for on packet sockets.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// Open the raw transport on `ifname`.
pub fn open(name: &str, spec: &Spec, ifname: &str, ring_ports: usize) -> Result<Opened, OpenError> {
    let ifindex = sock::ifindex(ifname).map_err(|_| OpenError::NoSuchInterface {
        port: name.to_string(),
        ifname: ifname.to_string(),
    })?;
    let mut fallbacks = 0;
    // Options and filters go on before the receive socket is bound (see packet::unbound).
    let rx = packet::unbound().map_err(sys_err(name, "AF_PACKET socket", ifname))?;
    let tx = packet::open(ifindex, 0).map_err(sys_err(name, "AF_PACKET socket", ifname))?;

    let vnet = probe::try_enable(
        Feature::PacketVnetHdr,
        "raw ports run without vnet headers (checksums completed by the kernel; no 64 KiB frames)",
        || packet::set_vnet_hdr(&rx),
    );
    if vnet {
        packet::set_vnet_hdr(&tx).map_err(sys_err(
            name,
            "PACKET_VNET_HDR on the transmit socket",
            ifname,
        ))?;
    } else {
        fallbacks += 1;
    }
    if !probe::try_enable(
        Feature::QdiscBypass,
        "transmitting through the qdisc layer",
        || packet::set_qdisc_bypass(&tx),
    ) {
        fallbacks += 1;
    }
    if !probe::try_enable(
        Feature::IgnoreOutgoing,
        "using a pkt_type socket filter instead",
        || packet::set_ignore_outgoing(&rx),
    ) {
        fallbacks += 1;
        if spec.common.bpffile.is_none() {
            packet::attach_filter(&rx, &crate::filter::drop_outgoing()).map_err(sys_err(
                name,
                "SO_ATTACH_FILTER (outgoing-frame filter)",
                ifname,
            ))?;
        }
    }
    super::attach_bpffile(name, spec, rx.as_fd())?;
    // Best effort: larger buffers absorb bursts; failure only costs drops under load.
    let _ = packet::set_rcvbuf(&rx, SOCKET_BUFFER);
    let _ = packet::set_sndbuf(&tx, SOCKET_BUFFER);

    // gro= not given: pass GSO frames whole when the interface takes TSO itself (the
    // veth default); one with TSO switched off (e.g. facing a UML guest with gro=0) gets
    // MTU-sized frames, as UML's own gro=0 would send.
    let gro = vnet
        && spec
            .common
            .gro(sock::tso_enabled(tx.as_fd(), ifname).unwrap_or(false));
    let vector = spec.common.vector;
    let prefix = if vnet {
        crate::wire::vnet::HEADER_LEN
    } else {
        0
    };
    let mut o = Opened {
        rx_fd: rx,
        tx_fd: Some(tx),
        rx_mode: if vector { RxMode::Mmsg } else { RxMode::Single },
        tx_mode: if vector { TxMode::Mmsg } else { TxMode::Single },
        framing: if vnet { Framing::Vnet } else { Framing::Bare },
        caps: Caps {
            // A veth with offloads on hands over 64 KiB GSO frames whatever `gro` says;
            // with a vnet header they arrive whole and are segmented on output if needed.
            rx_slot: rx_slot(spec, prefix, vnet),
            vnet,
            tx_gso: gro,
            max_tx_frame: max_tx_frame(spec),
            depth: usize::from(spec.common.depth),
        },
        host_if: Some(ifname.to_string()),
        fallbacks,
        dest: None,
        ring: None,
    };
    super::port::ring::enable(spec, &mut o, ring_ports);
    packet::bind(o.rx_fd.as_fd(), ifindex, packet::ETH_P_ALL).map_err(sys_err(
        name,
        "bind (AF_PACKET)",
        ifname,
    ))?;
    Ok(o)
}
