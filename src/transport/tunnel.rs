//! Sockets of the IP tunnel transports (GRE, L2TPv3 over IP or UDP), opened as UML
//! does: `socket(AF_INET|AF_INET6, SOCK_RAW, 47|115)` or a UDP socket, bound to `src`
//! (and `srcport`); every frame is sent to `dst` (`dstport`) with `sendmmsg`, UDP
//! sockets connected to it, raw IP sockets not. No IP_HDRINCL: the kernel writes the
//! IP header.
//!
//! vecbox adds a receive filter ([`super::demux`]) keeping other peers' packets off the
//! socket, checks at open that the MTU plus the encapsulation fits in an IP packet, and
//! sizes socket buffers.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::demux::{self, Claim, Payload};
use super::framing::Framing;
use super::port::{Caps, Opened, RxMode, TxMode};
use super::{OpenError, Spec, max_tx_frame, raw::SOCKET_BUFFER, rx_slot, sys_err};

/// Largest IPv4 header a raw IPv4 socket can deliver.
const MAX_IPV4_HEADER: usize = 60;

/// How the tunnel's packets travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    /// Raw IP socket of this protocol (47 GRE, 115 L2TPv3).
    Ip(u8),
    /// UDP socket.
    Udp,
}

/// Other ports of the same process on the same local address, protocol and peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Siblings {
    pub claims: Vec<Claim>,
    /// This port takes packets no sibling claims.
    pub first: bool,
}

/// What a tunnel transport asks for.
pub struct Request<'a> {
    pub name: &'a str,
    pub spec: &'a Spec,
    pub src: &'a str,
    pub dst: &'a str,
    pub srcport: Option<u16>,
    pub dstport: Option<u16>,
    pub v6: bool,
    pub carrier: Carrier,
    pub framing: Framing,
    pub own: Claim,
    pub siblings: &'a Siblings,
}

/// Resolve `host` (name or literal) to an address of the family `v6` selects, as UML's
/// `getaddrinfo` with a forced family.
pub fn resolve(
    name: &str,
    key: &'static str,
    host: &str,
    port: u16,
    v6: bool,
) -> Result<SocketAddr, OpenError> {
    let family = if v6 { "IPv6" } else { "IPv4" };
    let found = (host, port)
        .to_socket_addrs()
        .map_err(|e| OpenError::Resolve {
            port: name.to_string(),
            key,
            host: host.to_string(),
            why: e.to_string(),
        })?;
    found
        .into_iter()
        .find(|a| a.is_ipv6() == v6)
        .ok_or_else(|| OpenError::Resolve {
            port: name.to_string(),
            key,
            host: host.to_string(),
            why: format!(
                "no {family} address (the family is chosen by v6=: {})",
                if v6 {
                    "v6=1 selects IPv6"
                } else {
                    "add v6=1 for IPv6"
                }
            ),
        })
}

/// Bytes in front of the Ethernet frame in the outer IP packet (IP header, UDP header,
/// tunnel header).
pub fn overhead(v6: bool, carrier: Carrier, framing: &Framing) -> usize {
    let ip = if v6 { 40 } else { 20 };
    let udp = if carrier == Carrier::Udp { 8 } else { 0 };
    ip + udp + framing.tx_header_len()
}

/// Open the socket of an IP tunnel.
pub fn open(r: Request<'_>) -> Result<Opened, OpenError> {
    let name = r.name;
    let spec = r.spec;
    // An IP packet carries at most 65535 bytes (IPv4 total length, IPv6 payload length).
    let over = overhead(r.v6, r.carrier, &r.framing);
    let limit = 65535 + if r.v6 { 40 } else { 0 };
    let frame_extra = max_tx_frame(spec) - usize::from(spec.common.mtu);
    if max_tx_frame(spec) + over > limit {
        return Err(OpenError::MtuTooLarge {
            port: name.to_string(),
            mtu: spec.common.mtu,
            overhead: over + frame_extra,
            max: limit - over - frame_extra,
        });
    }
    if r.carrier == Carrier::Udp && r.dstport.is_none() {
        return Err(OpenError::Needs {
            port: name.to_string(),
            needs: "udp=1 needs dstport= (the peer's UDP port), e.g. dstport=1701",
        });
    }
    let local = resolve(name, "src", r.src, r.srcport.unwrap_or(0), r.v6)?;
    let remote = resolve(name, "dst", r.dst, r.dstport.unwrap_or(0), r.v6)?;
    let domain = if r.v6 { Domain::IPV6 } else { Domain::IPV4 };
    let (ty, proto) = match r.carrier {
        Carrier::Ip(p) => (Type::RAW, Protocol::from(i32::from(p))),
        Carrier::Udp => (Type::DGRAM, Protocol::UDP),
    };
    let what = format!("{local} -> {remote}");
    let inherited = spec.common.sock_fd;
    let sock =
        match inherited {
            // Bound by the parent (a lab's supervisor, on the machine's underlay address).
            Some(fd) => adopt(name, fd, &what)?,
            None => Socket::new(domain, ty.nonblocking().cloexec(), Some(proto))
                .map_err(sys_err(name, "socket", what.clone()))?,
        };
    // Best effort: larger buffers absorb bursts; failure only costs drops under load.
    let _ = crate::sys::packet::set_rcvbuf(&sock, SOCKET_BUFFER);
    let _ = crate::sys::packet::set_sndbuf(&sock, SOCKET_BUFFER);

    let ipv4_raw = !r.v6 && matches!(r.carrier, Carrier::Ip(_));
    if spec.common.bpffile.is_some() {
        // The user's program replaces the peer/demux filter, as in UML.
        super::attach_bpffile(name, spec, sock.as_fd())?;
    } else {
        let payload = match r.carrier {
            Carrier::Ip(_) if !r.v6 => Payload::AfterIpv4,
            Carrier::Ip(_) => Payload::At(0),
            Carrier::Udp => Payload::At(8),
        };
        let prog = demux::program(
            remote.ip(),
            payload,
            &r.own,
            &r.siblings.claims,
            r.siblings.first,
        );
        crate::sys::packet::attach_filter(sock.as_fd(), &prog).map_err(sys_err(
            name,
            "SO_ATTACH_FILTER (tunnel peer filter)",
            what.clone(),
        ))?;
    }
    // Bound once filtered: a UDP socket receives nothing before this. A raw IP socket
    // receives every packet of its protocol from the moment it exists, filter or not:
    // what it queued before the filter went on is read and discarded.
    if inherited.is_none() {
        sock.bind(&SockAddr::from(local))
            .map_err(sys_err(name, "bind", local.to_string()))?;
    }
    if matches!(r.carrier, Carrier::Ip(_)) {
        discard_queued(&sock);
    }
    // A UDP tunnel's socket is connected to its peer: the kernel keeps the route (no
    // lookup and no address copy per datagram), and it receives only what the peer's
    // port sends, which is what the filter accepts anyway (UDP tunnels never share a
    // socket). A raw IP socket looks its route up per packet connected or not; it
    // stays unconnected as in UML.
    let dest = if r.carrier == Carrier::Udp {
        sock.connect(&SockAddr::from(remote)).map_err(sys_err(
            name,
            "connect",
            remote.to_string(),
        ))?;
        None
    } else {
        Some(SockAddr::from(remote))
    };
    let prefix = if ipv4_raw { MAX_IPV4_HEADER } else { 0 } + r.framing.tx_header_len();
    let vector = spec.common.vector;
    tracing::debug!(port = name, %local, %remote, overhead = over, "tunnel open");
    Ok(Opened {
        rx_fd: OwnedFd::from(sock),
        tx_fd: None,
        rx_mode: if vector { RxMode::Mmsg } else { RxMode::Single },
        // vec=0 sends with sendmsg (to `dst` when the socket is not connected; UML's
        // writev fails there with EDESTADDRREQ).
        tx_mode: if vector { TxMode::Mmsg } else { TxMode::Single },
        framing: r.framing,
        caps: Caps {
            rx_slot: rx_slot(spec, prefix, false),
            vnet: false,
            tx_gso: false,
            max_tx_frame: max_tx_frame(spec),
            depth: usize::from(spec.common.depth),
        },
        host_if: Some(format!("{}>{}", local.ip(), remote.ip())),
        fallbacks: 0,
        dest,
        ring: None,
    })
}

/// Take inherited descriptor `fd` (`fd=`) as the tunnel's socket, non-blocking.
fn adopt(name: &str, fd: i32, what: &str) -> Result<Socket, OpenError> {
    let bad = |why: String| OpenError::BadFd {
        port: name.to_string(),
        fd,
        why: format!("{why} (the tunnel socket for {what})"),
    };
    let owned = crate::sys::sock::adopt_inherited(fd)
        .map_err(|e| bad(format!("not an open descriptor ({e})")))?;
    if !crate::sys::sock::is_socket(owned.as_fd()).map_err(|e| bad(e.to_string()))? {
        return Err(bad("not a socket".into()));
    }
    let sock = Socket::from(owned);
    sock.set_nonblocking(true)
        .map_err(|e| bad(format!("making it non-blocking: {e}")))?;
    Ok(sock)
}

/// The peer address of a tunnel spec, if it is a literal (for grouping).
pub fn literal(host: &str) -> Option<IpAddr> {
    host.parse().ok()
}

/// Read and drop what is queued on a non-blocking socket (at most what a full 4 MiB
/// buffer of minimum-size packets holds, so a flood cannot keep it here).
fn discard_queued(sock: &Socket) {
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 64];
    for _ in 0..(SOCKET_BUFFER / 64) {
        if sock.recv(&mut buf).is_err() {
            break;
        }
    }
}
