//! Vector transports: the `vecN:` spec, opening descriptors the way UML does, and the
//! per-port batched receive/transmit machinery.
//!
//! [`open`] turns a parsed [`Spec`] into a [`Port`]. Each transport module only opens and
//! configures descriptors and says how to use them ([`port::Opened`]); receive slots,
//! transmit queues, offload handling and counters are shared in [`port`].

pub mod bess;
pub mod demux;
pub mod fd;
pub mod framing;
pub mod gre;
mod group;
pub mod hybrid;
pub mod l2tpv3;
pub mod port;
pub mod probe;
pub mod raw;
pub mod spec;
pub mod tap;
pub mod tunnel;
pub mod txq;

use std::io;

pub use port::{Caps, Flush, Port};
pub use spec::{Kind, Spec, SpecError};

use crate::wire::ethernet;

/// Receive room for a GSO super-frame: the 64 KiB IP packet plus Ethernet and VLAN headers.
pub const GSO_FRAME_MAX: usize = 65536 + ethernet::HEADER_LEN + 8;

/// Errors opening a transport. Each names the port and what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{port}: interface {ifname:?} does not exist in this network namespace")]
    NoSuchInterface { port: String, ifname: String },
    #[error("{port}: {op} ({what}): {source}{}", permission_hint(.source))]
    Sys {
        port: String,
        op: &'static str,
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{port}: transport={transport} is not supported by vecbox: {why}")]
    Unsupported {
        port: String,
        transport: &'static str,
        why: &'static str,
    },
    #[error("{port}: fd={fd}: {why}")]
    BadFd { port: String, fd: i32, why: String },
    #[error("{port}: cannot resolve {key}={host:?}: {why}")]
    Resolve {
        port: String,
        key: &'static str,
        host: String,
        why: String,
    },
    #[error(
        "{port}: mtu={mtu} cannot fit: a frame plus {overhead} bytes of Ethernet, tunnel and IP \
         headers exceeds the 65535-byte IP packet limit; use mtu={max} or less"
    )]
    MtuTooLarge {
        port: String,
        mtu: u16,
        overhead: usize,
        max: usize,
    },
    #[error("{port}: {needs}")]
    Needs { port: String, needs: &'static str },
    #[error("{port} and {other}: {why}")]
    Conflict {
        port: String,
        other: String,
        why: String,
    },
    #[error("{port}: {0}", .source)]
    Filter {
        port: String,
        #[source]
        source: crate::filter::LoadError,
    },
    /// `/dev/net/tun` could not be opened or attached (its message names the cause).
    #[error("{port}: {source}")]
    Tap {
        port: String,
        #[source]
        source: crate::sys::tun::TunError,
    },
}

fn permission_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::PermissionDenied {
        " (needs CAP_NET_RAW/CAP_NET_ADMIN: run as root, or `setcap cap_net_raw,cap_net_admin+ep` on the vecbox binary)"
    } else {
        ""
    }
}

/// Build an [`OpenError::Sys`] for `port`.
pub(crate) fn sys_err(
    port: &str,
    op: &'static str,
    what: impl Into<String>,
) -> impl FnOnce(io::Error) -> OpenError {
    let port = port.to_string();
    let what = what.into();
    move |source| OpenError::Sys {
        port,
        op,
        what,
        source,
    }
}

/// Receive slot size for a transport that can (or cannot) be handed GSO super-frames.
pub(crate) fn rx_slot(spec: &Spec, prefix: usize, gso_possible: bool) -> usize {
    let c = &spec.common;
    // UML: mtu + 32 (QinQ room) + headroom + 32 (safety margin); 64 KiB with offloads.
    let plain = usize::from(c.mtu) + 64 + usize::from(c.headroom);
    prefix
        + if gso_possible {
            GSO_FRAME_MAX.max(plain)
        } else {
            plain
        }
        + 1
}

/// Largest non-GSO frame a port with this spec sends: MTU + Ethernet header + one VLAN tag.
pub(crate) fn max_tx_frame(spec: &Spec) -> usize {
    usize::from(spec.common.mtu) + ethernet::HEADER_LEN + 4
}

/// Open the transport described by `spec` in the calling thread's network namespace.
pub fn open(spec: &Spec) -> Result<Port, OpenError> {
    open_among(spec, 1)
}

/// Open one interface of a guest whose default-sized receive rings are shared by
/// `ring_ports` ports (see [`port::ring::default_bytes`]).
pub fn open_among(spec: &Spec, ring_ports: usize) -> Result<Port, OpenError> {
    open_with(spec, &tunnel::Siblings::default(), ring_ports)
}

/// Open every interface of one guest. Tunnels that share a protocol, local address and
/// peer are demultiplexed by key/session between them (see [`demux`]).
pub fn open_all(specs: &[Spec]) -> Result<Vec<Port>, OpenError> {
    let groups = group::siblings(specs)?;
    let ring_ports = port::ring::sharing_ports(specs);
    specs
        .iter()
        .zip(groups.iter())
        .map(|(s, g)| open_with(s, g, ring_ports))
        .collect()
}

fn open_with(
    spec: &Spec,
    siblings: &tunnel::Siblings,
    ring_ports: usize,
) -> Result<Port, OpenError> {
    let name = format!("vec{}", spec.unit);
    let opened = match &spec.kind {
        Kind::Raw { ifname, .. } => raw::open(&name, spec, ifname.as_str(), ring_ports)?,
        Kind::Tap { ifname, .. } => tap::open(&name, spec, ifname.as_ref().map(|n| n.as_str()))?,
        Kind::Hybrid { ifname, .. } => hybrid::open(&name, spec, ifname.as_str(), ring_ports)?,
        Kind::Fd { fd } => fd::open(&name, spec, *fd)?,
        Kind::Gre { .. } => gre::open(&name, spec, siblings)?,
        Kind::L2tpv3 { .. } => l2tpv3::open(&name, spec, siblings)?,
        Kind::Bess { .. } => {
            let (opened, link) = bess::open(&name, spec)?;
            return Ok(Port::new(name, spec.clone(), opened).with_link(link));
        }
        Kind::Vde { .. } => {
            return Err(OpenError::Unsupported {
                port: name,
                transport: "vde",
                why: "vde needs the external vde_plug helper; link vecbox guests with bess instead",
            });
        }
    };
    if let (Some(ifup), Some(host_if)) = (ifup_of(spec), &opened.host_if) {
        run_ifup(&name, ifup, host_if);
    }
    let software_filter = opened.rx_mode == port::RxMode::Read;
    let mut port = Port::new(name, spec.clone(), opened);
    if let Kind::L2tpv3 { udp: true, .. } = spec.kind {
        port.enable_udp_offloads();
    }
    if software_filter && let Some(path) = &spec.common.bpffile {
        // No socket to attach to: vecbox runs the program itself.
        let prog = crate::filter::Program::load(path).map_err(|source| OpenError::Filter {
            port: port.name.clone(),
            source,
        })?;
        port.set_filter(prog).map_err(sys_err(
            &port.name,
            "loading filter",
            path.display().to_string(),
        ))?;
    }
    Ok(port)
}

fn ifup_of(spec: &Spec) -> Option<&std::path::Path> {
    match &spec.kind {
        Kind::Raw { ifup, .. } | Kind::Tap { ifup, .. } | Kind::Hybrid { ifup, .. } => {
            ifup.as_deref()
        }
        _ => None,
    }
}

/// Run the `ifup=` helper as UML does: argv = [helper, ifname]; its status is logged.
fn run_ifup(port: &str, helper: &std::path::Path, ifname: &str) {
    match std::process::Command::new(helper).arg(ifname).status() {
        Ok(s) if s.success() => {}
        Ok(s) => {
            tracing::warn!(port, helper = %helper.display(), status = %s, "ifup helper failed")
        }
        Err(e) => {
            tracing::warn!(port, helper = %helper.display(), error = %e, "cannot run ifup helper")
        }
    }
}

/// Attach the `bpffile=` program, if any, to a socket (any transport's receive socket).
/// The file may be UML's binary form or any text form `vecbox bpf` reads; it is checked
/// as the kernel would before attaching.
pub(crate) fn attach_bpffile(
    name: &str,
    spec: &Spec,
    fd: std::os::fd::BorrowedFd<'_>,
) -> Result<(), OpenError> {
    let Some(path) = &spec.common.bpffile else {
        return Ok(());
    };
    let prog = crate::filter::Program::load(path).map_err(|source| OpenError::Filter {
        port: name.to_string(),
        source,
    })?;
    crate::sys::packet::attach_filter(fd, prog.insns()).map_err(sys_err(
        name,
        "SO_ATTACH_FILTER",
        path.display().to_string(),
    ))
}
