//! What the router answers itself: ARP, neighbour discovery, pings to its addresses,
//! and port-unreachable errors for other traffic to them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Router, build};
use crate::buf::Frame;
use crate::metrics::DropReason;
use crate::nf::Output;
use crate::nf::ip::{self, IpInfo};
use crate::wire::Mac;

fn v6(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

impl Router {
    /// Handle an ARP frame received on `port`.
    pub(super) fn arp(&mut self, out: &mut dyn Output, f: Frame, port: usize) {
        let b = out.frame(&f);
        // Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4.
        if b.len() < 42 || b[14..20] != [0, 1, 8, 0, 6, 4] {
            self.stats.bad_header += 1;
            return out.discard(f, DropReason::BadHeader);
        }
        let op = u16::from_be_bytes([b[20], b[21]]);
        let mut sha: Mac = [0; 6];
        sha.copy_from_slice(&b[22..28]);
        let spa = Ipv4Addr::new(b[28], b[29], b[30], b[31]);
        let tpa = Ipv4Addr::new(b[38], b[39], b[40], b[41]);
        let ours = self.ports[port].v4.iter().any(|(a, _)| *a == tpa);
        if !spa.is_unspecified() && sha[0] & 1 == 0 {
            let held = self.neigh.learn(port, IpAddr::V4(spa), sha, self.now, ours);
            self.release(out, port, held, sha);
        }
        if op == 1 && ours {
            let mac = self.ports[port].mac;
            build::arp_reply_in_place(out.frame_mut(&f), mac, tpa);
            self.stats.arp_replies += 1;
            return out.forward(port, f);
        }
        out.discard(f, DropReason::Filtered);
    }

    /// Handle neighbour solicitations and advertisements; `true` if the frame was
    /// consumed (anything else ICMPv6 goes on to routing / local delivery).
    pub(super) fn neighbor_discovery(
        &mut self,
        out: &mut dyn Output,
        f: &Frame,
        port: usize,
        info: &IpInfo,
    ) -> bool {
        let b = out.frame(f);
        let Some((kind, code, _)) = ip::icmp(b, info.l4_off, info.end) else {
            return false;
        };
        if !(133..=137).contains(&kind) {
            return false;
        }
        // RFC 4861: hop limit 255, code 0, target present; otherwise ignored.
        let l4 = info.l4_off;
        if info.ttl != 255 || code != 0 || l4 + 24 > info.end || !(135..=136).contains(&kind) {
            out.discard(*f, DropReason::Filtered);
            return true;
        }
        let target = v6(&b[l4 + 8..]);
        // Link-layer address option (source for NS, target for NA).
        let mut lladdr: Option<Mac> = None;
        let mut at = l4 + 24;
        while at + 8 <= info.end {
            let (t, len) = (b[at], usize::from(b[at + 1]) * 8);
            if len == 0 {
                break;
            }
            if (t == 1 || t == 2) && len >= 8 {
                let mut m = [0u8; 6];
                m.copy_from_slice(&b[at + 2..at + 8]);
                lladdr = Some(m);
            }
            at += len;
        }
        let IpAddr::V6(src) = info.src else {
            return false;
        };
        let me = &self.ports[port];
        let ours = target == me.link_local || me.v6.iter().any(|(a, _)| *a == target);
        if kind == 136 {
            if let Some(m) = lladdr {
                let held = self
                    .neigh
                    .learn(port, IpAddr::V6(target), m, self.now, false);
                self.release(out, port, held, m);
            }
            out.discard(*f, DropReason::Filtered);
            return true;
        }
        // Solicitation. From the unspecified address it is duplicate address detection:
        // not answered (we do not defend addresses).
        if src.is_unspecified() || !ours {
            out.discard(*f, DropReason::Filtered);
            return true;
        }
        let dmac = match lladdr {
            Some(m) => {
                let held = self.neigh.learn(port, IpAddr::V6(src), m, self.now, true);
                self.release(out, port, held, m);
                m
            }
            None => {
                let mut m = [0u8; 6];
                m.copy_from_slice(&out.frame(f)[6..12]);
                m
            }
        };
        let mac = self.ports[port].mac;
        // The advertisement (86 bytes) is written over the solicitation's buffer.
        let Some(na) = out.alloc(86) else {
            self.stats.no_buffer += 1;
            out.discard(*f, DropReason::NoBuffer);
            return true;
        };
        build::neighbor_advert(out.frame_mut(&na), mac, dmac, target, src, true);
        self.stats.nd_adverts += 1;
        out.forward(port, na);
        out.discard(*f, DropReason::Filtered);
        true
    }

    /// A packet for one of our addresses.
    pub(super) fn local(&mut self, out: &mut dyn Output, f: Frame, port: usize, info: IpInfo) {
        let b = out.frame(&f);
        let icmp = ip::icmp(b, info.l4_off, info.end);
        match (info.v6, info.proto, icmp) {
            (false, ip::PROTO_ICMP, Some((8, 0, _))) if !info.fragmented => {
                build::echo_reply_v4(out.frame_mut(&f), info.l4_off);
                self.stats.echo_replies += 1;
                out.forward(port, f);
            }
            (true, ip::PROTO_ICMPV6, Some((128, 0, _))) if !info.fragmented => {
                let IpAddr::V6(me) = info.dst else { return };
                build::echo_reply_v6(out.frame_mut(&f), info.l4_off, info.end, me);
                self.stats.echo_replies += 1;
                out.forward(port, f);
            }
            (_, ip::PROTO_UDP, _) => {
                let (kind, code) = if info.v6 { (1, 4) } else { (3, 3) };
                self.icmp_error(out, &f, &info, port, kind, code);
                out.discard(f, DropReason::Filtered);
            }
            _ => out.discard(f, DropReason::Filtered),
        }
    }
}
