//! IPv4/IPv6 header parsing shared by the router and the firewall: checked,
//! allocation-free, never panicking on truncated or malformed input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;

/// Why an IP packet could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpError {
    #[error("truncated header")]
    Truncated,
    #[error("bad version or header length")]
    BadHeader,
    #[error("IPv4 header checksum wrong")]
    BadChecksum,
    #[error("too many IPv6 extension headers")]
    ExtensionChain,
}

/// What the router and firewall need from an IP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpInfo {
    /// Offset of the IP header in the frame.
    pub off: usize,
    pub v6: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL / hop limit.
    pub ttl: u8,
    /// Upper-layer protocol (after IPv6 extension headers).
    pub proto: u8,
    /// Offset of the upper-layer header in the frame.
    pub l4_off: usize,
    /// End of the IP packet in the frame (frames may carry Ethernet padding after it).
    pub end: usize,
    /// A fragment other than the first (no upper-layer header in it).
    pub later_fragment: bool,
    /// Part of a fragmented packet (first or later).
    pub fragmented: bool,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The EtherType and the offset of the L3 header (untagged frames only).
pub fn ethertype(frame: &[u8]) -> Option<u16> {
    be16(frame, 12)
}

/// Parse the IPv4 header at `off` (checksum verified).
pub fn ipv4(frame: &[u8], off: usize) -> Result<IpInfo, IpError> {
    let h = frame.get(off..off + 20).ok_or(IpError::Truncated)?;
    if h[0] >> 4 != 4 {
        return Err(IpError::BadHeader);
    }
    let ihl = usize::from(h[0] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if ihl < 20 || total < ihl {
        return Err(IpError::BadHeader);
    }
    if off + total > frame.len() {
        return Err(IpError::Truncated);
    }
    let hdr = &frame[off..off + ihl];
    if !crate::wire::checksum::verify_ipv4_header(hdr) {
        return Err(IpError::BadChecksum);
    }
    let frag = u16::from_be_bytes([h[6], h[7]]);
    let offset = frag & 0x1fff;
    let more = frag & 0x2000 != 0;
    Ok(IpInfo {
        off,
        v6: false,
        src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
        dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
        ttl: h[8],
        proto: h[9],
        l4_off: off + ihl,
        end: off + total,
        later_fragment: offset != 0,
        fragmented: offset != 0 || more,
    })
}

fn addr16(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

/// Parse the IPv6 header at `off`, following extension headers (hop-by-hop, routing,
/// destination options, fragment, AH) to the upper-layer protocol.
pub fn ipv6(frame: &[u8], off: usize) -> Result<IpInfo, IpError> {
    let h = frame.get(off..off + 40).ok_or(IpError::Truncated)?;
    if h[0] >> 4 != 6 {
        return Err(IpError::BadHeader);
    }
    let end = off + 40 + usize::from(u16::from_be_bytes([h[4], h[5]]));
    if end > frame.len() {
        return Err(IpError::Truncated);
    }
    let mut next = h[6];
    let mut at = off + 40;
    let mut later_fragment = false;
    let mut fragmented = false;
    for _ in 0..8 {
        match next {
            0 | 43 | 60 => {
                let e = frame.get(at..at + 2).ok_or(IpError::Truncated)?;
                next = e[0];
                at += (usize::from(e[1]) + 1) * 8;
            }
            44 => {
                let e = frame.get(at..at + 8).ok_or(IpError::Truncated)?;
                next = e[0];
                let fo = u16::from_be_bytes([e[2], e[3]]);
                later_fragment = fo >> 3 != 0;
                fragmented = true;
                at += 8;
            }
            51 => {
                let e = frame.get(at..at + 2).ok_or(IpError::Truncated)?;
                next = e[0];
                at += (usize::from(e[1]) + 2) * 4;
            }
            _ => {
                if at > end {
                    return Err(IpError::Truncated);
                }
                return Ok(IpInfo {
                    off,
                    v6: true,
                    src: IpAddr::V6(addr16(&h[8..24])),
                    dst: IpAddr::V6(addr16(&h[24..40])),
                    ttl: h[7],
                    proto: next,
                    l4_off: at,
                    end,
                    later_fragment,
                    fragmented,
                });
            }
        }
        if at > end {
            return Err(IpError::Truncated);
        }
    }
    Err(IpError::ExtensionChain)
}

/// Parse whichever IP version the frame's EtherType says; `None` for non-IP frames.
pub fn parse(frame: &[u8]) -> Option<Result<IpInfo, IpError>> {
    match ethertype(frame)? {
        ETHERTYPE_IPV4 => Some(ipv4(frame, 14)),
        ETHERTYPE_IPV6 => Some(ipv6(frame, 14)),
        _ => None,
    }
}

/// Source and destination ports of a TCP/UDP header at `l4` (within `end`).
pub fn ports(frame: &[u8], l4: usize, end: usize) -> Option<(u16, u16)> {
    if l4 + 4 > end {
        return None;
    }
    Some((be16(frame, l4)?, be16(frame, l4 + 2)?))
}

/// TCP flags byte (FIN=1 SYN=2 RST=4 PSH=8 ACK=16).
pub fn tcp_flags(frame: &[u8], l4: usize, end: usize) -> Option<u8> {
    if l4 + 20 > end {
        return None;
    }
    frame.get(l4 + 13).copied()
}

pub mod tcp {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

/// ICMP/ICMPv6 type, code and (for echo messages) identifier.
pub fn icmp(frame: &[u8], l4: usize, end: usize) -> Option<(u8, u8, u16)> {
    if l4 + 8 > end {
        return None;
    }
    Some((*frame.get(l4)?, *frame.get(l4 + 1)?, be16(frame, l4 + 4)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn udp6_with_ext() -> Vec<u8> {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv6([1; 16], [2; 16], 9)
            .udp(1, 2)
            .write(&mut v, &[0; 8])
            .unwrap();
        // Insert a hop-by-hop header (8 bytes) after the fixed header.
        let mut e = v[..54].to_vec();
        e[20] = 0; // next header = hop-by-hop
        e.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        e.extend_from_slice(&v[54..]);
        let pl = u16::from_be_bytes([e[18], e[19]]) + 8;
        e[18..20].copy_from_slice(&pl.to_be_bytes());
        e
    }

    #[test]
    fn parses_v4_and_v6_with_extension_headers() {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 7)
            .tcp(5, 6, 1, 100)
            .write(&mut v, &[0; 4])
            .unwrap();
        let i = parse(&v).unwrap().unwrap();
        assert_eq!((i.proto, i.ttl, i.l4_off), (6, 7, 34));
        assert_eq!(ports(&v, i.l4_off, i.end), Some((5, 6)));
        v[24] ^= 1; // checksum
        assert_eq!(parse(&v).unwrap(), Err(IpError::BadChecksum));

        let e = udp6_with_ext();
        let i = parse(&e).unwrap().unwrap();
        assert_eq!((i.proto, i.l4_off, i.ttl), (17, 62, 9));
        assert_eq!(ports(&e, i.l4_off, i.end), Some((1, 2)));
        assert_eq!(parse(&e[..60]).unwrap(), Err(IpError::Truncated));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..120), v6 in any::<bool>()) {
            let mut f = vec![0u8; 12];
            f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
            f.extend_from_slice(&bytes);
            if let Some(Ok(i)) = parse(&f) {
                let _ = ports(&f, i.l4_off, i.end);
                let _ = tcp_flags(&f, i.l4_off, i.end);
                let _ = icmp(&f, i.l4_off, i.end);
            }
        }
    }
}
