//! What a host checks before its part of a multi-host lab is built from a controller
//! (`vecbox up FILE --host NAME --preflight`, run over SSH): its underlay address is
//! one of its own, the UDP ports of its tunnel ends are free, and the path to every
//! host it has a cross-host link with carries `underlay_mtu`.
//!
//! The MTU probe sends one UDP datagram of the expected size with DF (Linux's default
//! for UDP, path MTU discovery "want") to the discard port of the peer and reads the
//! path MTU the kernel then knows (`IP_MTU`): a router with a smaller next hop answers
//! "fragmentation needed", a smaller local interface refuses the send. A path that
//! drops such ICMP silently is not detected (IPv6 underlays are checked against the
//! local route only).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::super::plan::Plan;
use super::super::topology::LinkType;

/// The port the probe is sent to (discard: nothing answers it but ICMP).
const PROBE_PORT: u16 = 9;

/// Check this host's side of `p` (projected on its host). `Ok` holds one line per
/// probed path, `Err` one message per problem.
pub fn check(p: &Plan) -> Result<Vec<String>, Vec<String>> {
    let Some(me) = p
        .local
        .as_ref()
        .and_then(|l| p.hosts.iter().find(|h| &h.name == l))
    else {
        return Err(vec!["preflight needs --host NAME".into()]);
    };
    let mut errs = Vec::new();
    let mut notes = Vec::new();
    if let Err(e) = UdpSocket::bind(SocketAddr::new(me.address, 0)) {
        errs.push(format!(
            "address {} of host `{}` is not an address of this machine ({e}); check `address:` in `hosts:`",
            me.address, me.name
        ));
        return Err(errs);
    }
    // Peers and the MTU each path must carry.
    let mut peers: Vec<(IpAddr, String, u32)> = Vec::new();
    for l in &p.links {
        let Some(c) = &l.cross else { continue };
        let Some(i) = c.hosts.iter().position(|h| h == &me.name) else {
            continue;
        };
        if c.kind != LinkType::Gre {
            let port = c.ids.ports[i];
            if let Err(e) = UdpSocket::bind(SocketAddr::new(me.address, port)) {
                errs.push(format!(
                    "UDP port {port} of link {} – {} is not free on host `{}` ({e}): another lab or program uses it",
                    l.names[0], l.names[1], me.name
                ));
            }
        }
        let peer = &c.hosts[1 - i];
        if let Some(h) = p.hosts.iter().find(|h| &h.name == peer)
            && !peers.iter().any(|(_, n, _)| n == peer)
        {
            peers.push((h.address, peer.clone(), c.underlay_mtu));
        }
    }
    for (addr, name, want) in peers {
        match probe(me.address, addr, want) {
            Ok(got) if got < want => errs.push(format!(
                "the underlay path from `{}` to `{name}` ({addr}) carries {got} bytes, less than underlay_mtu {want}: set `underlay_mtu: {got}` on the host behind the smaller hop",
                me.name
            )),
            Ok(got) => notes.push(format!("path to `{name}` ({addr}): MTU {got}")),
            Err(e) => errs.push(format!(
                "probing the underlay path from `{}` to `{name}` ({addr}): {e}",
                me.name
            )),
        }
    }
    if errs.is_empty() {
        Ok(notes)
    } else {
        Err(errs)
    }
}

/// The path MTU from `src` to `dst` as far as `want` bytes: what the kernel knows after
/// one DF datagram of `want` bytes.
fn probe(src: IpAddr, dst: IpAddr, want: u32) -> std::io::Result<u32> {
    let sock = UdpSocket::bind(SocketAddr::new(src, 0))?;
    sock.connect(SocketAddr::new(dst, PROBE_PORT))?;
    let v6 = dst.is_ipv6();
    let head = if v6 { 48 } else { 28 };
    let mtu = || -> std::io::Result<u32> {
        if v6 {
            return Ok(want);
        }
        nix::sys::socket::getsockopt(&sock, nix::sys::socket::sockopt::IpMtu)
            .map(|m| m.max(0) as u32)
            .map_err(std::io::Error::from)
    };
    let payload = vec![0u8; want.saturating_sub(head) as usize];
    let deadline = Instant::now() + Duration::from_millis(800);
    loop {
        match sock.send(&payload) {
            // Too big for what the kernel already knows: that is the answer.
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => return mtu(),
            // An earlier ICMP (port unreachable from the peer) reported on this send.
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {}
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let m = mtu()?;
        if m < want || Instant::now() >= deadline {
            return Ok(m);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
