//! Frames a `reject` rule sends back to the sender: a TCP RST, or an ICMP/ICMPv6 port
//! unreachable, both appearing to come from the packet's destination (the firewall is
//! a bump in the wire and has no address of its own).

use std::net::IpAddr;

use super::Firewall;
use crate::buf::Frame;
use crate::metrics::DropReason;
use crate::nf::Output;
use crate::nf::ip::{self, IpInfo};
use crate::nf::router::build;
use crate::wire::checksum::{self, finish, pseudo_v4, pseudo_v6, sum};

impl Firewall {
    /// Send the answer of a `reject` for the packet in `f`.
    pub(super) fn reject(&mut self, out: &mut dyn Output, f: &Frame, port: usize, info: &IpInfo) {
        let fr = out.frame(f);
        if info.proto == ip::PROTO_TCP {
            if ip::tcp_flags(fr, info.l4_off, info.end).is_none_or(|fl| fl & ip::tcp::RST != 0) {
                return;
            }
            let n = rst_len(info.v6);
            let hdr = info.l4_off + 20;
            if hdr > self.scratch.len() {
                return;
            }
            self.scratch[..hdr].copy_from_slice(&fr[..hdr]);
            let Some(r) = out.alloc(n) else { return };
            if tcp_rst(out.frame_mut(&r), &self.scratch[..hdr], info).is_some() {
                self.stats.rst_sent += 1;
                out.forward(port, r);
            } else {
                out.discard(r, DropReason::BadHeader);
            }
            return;
        }
        // ICMP errors are not answered with errors.
        let is_error = match ip::icmp(fr, info.l4_off, info.end) {
            Some((t, ..)) if info.proto == ip::PROTO_ICMP => {
                !matches!(t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)
            }
            Some((t, ..)) if info.proto == ip::PROTO_ICMPV6 => t < 128,
            _ => false,
        };
        if is_error || info.later_fragment {
            return;
        }
        let mut smac = [0u8; 6];
        let mut dmac = [0u8; 6];
        smac.copy_from_slice(&fr[0..6]);
        dmac.copy_from_slice(&fr[6..12]);
        let max = if info.v6 {
            build::QUOTE_V6
        } else {
            build::QUOTE_V4
        };
        let q = (info.end - info.off).min(max);
        self.scratch[..q].copy_from_slice(&fr[info.off..info.off + q]);
        let Some(e) = out.alloc(if info.v6 { 62 + q } else { 42 + q }) else {
            return;
        };
        let b = out.frame_mut(&e);
        match info.dst {
            IpAddr::V4(d) => build::icmp4_error(b, smac, dmac, d, &self.scratch[..q], 3, 3),
            IpAddr::V6(d) => build::icmp6_error(b, smac, dmac, d, &self.scratch[..q], 1, 4),
        };
        self.stats.unreachable_sent += 1;
        out.forward(port, e);
    }
}

/// Length of the RST for an IPv4 / IPv6 packet.
pub fn rst_len(v6: bool) -> usize {
    if v6 { 74 } else { 54 }
}

/// Write into `b` the RST answering the TCP segment in `orig`; returns its length.
pub fn tcp_rst(b: &mut [u8], orig: &[u8], info: &IpInfo) -> Option<usize> {
    let l4 = info.l4_off;
    if l4 + 20 > info.end {
        return None;
    }
    let flags = orig[l4 + 13];
    let seq = u32::from_be_bytes(orig[l4 + 4..l4 + 8].try_into().ok()?);
    let ack = u32::from_be_bytes(orig[l4 + 8..l4 + 12].try_into().ok()?);
    let doff = usize::from(orig[l4 + 12] >> 4) * 4;
    let payload = info.end.saturating_sub(l4 + doff) as u32;
    let (rseq, rack, rflags) = if flags & ip::tcp::ACK != 0 {
        (ack, 0, ip::tcp::RST)
    } else {
        let n =
            payload + u32::from(flags & ip::tcp::SYN != 0) + u32::from(flags & ip::tcp::FIN != 0);
        (0, seq.wrapping_add(n), ip::tcp::RST | ip::tcp::ACK)
    };
    // Ethernet: back to the sender, from the destination.
    b[0..6].copy_from_slice(&orig[6..12]);
    b[6..12].copy_from_slice(&orig[0..6]);
    b[12..14].copy_from_slice(&orig[12..14]);
    let o = info.off;
    let t = if info.v6 {
        b[14..18].copy_from_slice(&[0x60, 0, 0, 0]);
        b[18..20].copy_from_slice(&20u16.to_be_bytes());
        b[20] = ip::PROTO_TCP;
        b[21] = 64;
        b[22..38].copy_from_slice(&orig[o + 24..o + 40]);
        b[38..54].copy_from_slice(&orig[o + 8..o + 24]);
        54
    } else {
        b[14..34].copy_from_slice(&[
            0x45,
            0,
            0,
            40,
            0,
            0,
            0x40,
            0,
            64,
            ip::PROTO_TCP,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ]);
        b[26..30].copy_from_slice(&orig[o + 16..o + 20]);
        b[30..34].copy_from_slice(&orig[o + 12..o + 16]);
        let _ = checksum::set_ipv4_header_checksum(&mut b[14..34]);
        34
    };
    b[t..t + 2].copy_from_slice(&orig[l4 + 2..l4 + 4]);
    b[t + 2..t + 4].copy_from_slice(&orig[l4..l4 + 2]);
    b[t + 4..t + 8].copy_from_slice(&rseq.to_be_bytes());
    b[t + 8..t + 12].copy_from_slice(&rack.to_be_bytes());
    b[t + 12] = 5 << 4;
    b[t + 13] = rflags;
    b[t + 14..t + 20].fill(0);
    let pseudo = if info.v6 {
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s.copy_from_slice(&b[22..38]);
        d.copy_from_slice(&b[38..54]);
        pseudo_v6(s, d, ip::PROTO_TCP, 20)
    } else {
        let mut s = [0u8; 4];
        let mut d = [0u8; 4];
        s.copy_from_slice(&b[26..30]);
        d.copy_from_slice(&b[30..34]);
        pseudo_v4(s, d, ip::PROTO_TCP, 20)
    };
    let c = finish(sum(&b[t..t + 20], pseudo));
    b[t + 16..t + 18].copy_from_slice(&c.to_be_bytes());
    Some(t + 20)
}
