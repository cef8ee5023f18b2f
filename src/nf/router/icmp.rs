//! ICMP/ICMPv6 errors the router sends (time exceeded, unreachable), with the rules of
//! RFC 1812 and RFC 4443 on when not to, and the rate limit.

use std::net::IpAddr;

use super::{Router, build};
use crate::buf::Frame;
use crate::nf::Output;
use crate::nf::ip::{self, IpInfo};

impl Router {
    /// Send an ICMP error about the packet in `f` (arrived on `in_port`) back to its
    /// sender, if the rate limit and the rules of RFC 1812/4443 allow.
    pub(super) fn icmp_error(
        &mut self,
        out: &mut dyn Output,
        f: &Frame,
        info: &IpInfo,
        in_port: usize,
        kind: u8,
        code: u8,
    ) {
        let fr = out.frame(f);
        if !may_send_error(fr, info) {
            return;
        }
        if self.icmp_tokens == 0 {
            self.stats.icmp_rate_limited += 1;
            return;
        }
        let mut dmac = [0u8; 6];
        dmac.copy_from_slice(&fr[6..12]);
        let mac = self.ports[in_port].mac;
        let max = if info.v6 {
            build::QUOTE_V6
        } else {
            build::QUOTE_V4
        };
        let qlen = (info.end - info.off).min(max);
        self.scratch[..qlen].copy_from_slice(&fr[info.off..info.off + qlen]);
        let src = match info.src {
            IpAddr::V4(s) => self.v4_source(in_port, s).map(IpAddr::V4),
            IpAddr::V6(s) => self.v6_source(in_port, s).map(IpAddr::V6),
        };
        let Some(src) = src else { return };
        let len = if info.v6 { 62 + qlen } else { 42 + qlen };
        let Some(e) = out.alloc(len) else {
            self.stats.no_buffer += 1;
            return;
        };
        let b = out.frame_mut(&e);
        let quote = &self.scratch[..qlen];
        match src {
            IpAddr::V4(s) => build::icmp4_error(b, mac, dmac, s, quote, kind, code),
            IpAddr::V6(s) => build::icmp6_error(b, mac, dmac, s, quote, kind, code),
        };
        self.icmp_tokens -= 1;
        self.stats.icmp_errors += 1;
        out.forward(in_port, e);
    }
}

/// Addresses a router never forwards to or from: unspecified, loopback, multicast,
/// broadcast, link-local.
pub(super) fn forwardable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_link_local())
        }
        IpAddr::V6(a) => {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.segments()[0] & 0xffc0 == 0xfe80)
        }
    }
}

/// RFC 1812 4.3.2.7 / RFC 4443 2.4(e): no error about an error, a non-first fragment,
/// or a packet from a non-unicast source.
fn may_send_error(fr: &[u8], info: &IpInfo) -> bool {
    if info.later_fragment || !forwardable(info.src) {
        return false;
    }
    if fr[0] & 1 != 0 {
        return false; // sent to a link-layer multicast/broadcast address
    }
    match (info.v6, info.proto) {
        (false, ip::PROTO_ICMP) => matches!(
            ip::icmp(fr, info.l4_off, info.end),
            Some((8 | 13 | 15 | 17, _, _))
        ),
        (true, ip::PROTO_ICMPV6) => {
            matches!(ip::icmp(fr, info.l4_off, info.end), Some((t, _, _)) if t >= 128)
        }
        _ => true,
    }
}
