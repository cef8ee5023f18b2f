//! Frames the router writes itself: ARP requests and replies, neighbour solicitations
//! and advertisements, ICMP/ICMPv6 errors and echo replies. Each writes into a buffer
//! and returns the frame length; nothing allocates.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::nf::ip::{ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, PROTO_ICMP, PROTO_ICMPV6};
use crate::wire::Mac;
use crate::wire::checksum::{self, finish, pseudo_v6, sum, update16};

/// Largest part of the offending packet quoted in an ICMPv4 error (576-byte message).
pub const QUOTE_V4: usize = 576 - 28;
/// Largest part quoted in an ICMPv6 error (1280-byte message).
pub const QUOTE_V6: usize = 1280 - 48;

fn eth(b: &mut [u8], dst: Mac, src: Mac, ethertype: u16) {
    b[0..6].copy_from_slice(&dst);
    b[6..12].copy_from_slice(&src);
    b[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// ARP request "who has `target`? tell `ip`" (60 bytes, padded). `b` ≥ 60 bytes.
pub fn arp_request(b: &mut [u8], mac: Mac, ip: Ipv4Addr, target: Ipv4Addr) -> usize {
    eth(b, [0xff; 6], mac, ETHERTYPE_ARP);
    b[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    b[22..28].copy_from_slice(&mac);
    b[28..32].copy_from_slice(&ip.octets());
    b[32..38].fill(0);
    b[38..42].copy_from_slice(&target.octets());
    b[42..60].fill(0);
    60
}

/// Turn the ARP request in `b` (asking for `ip`) into our reply, in place.
pub fn arp_reply_in_place(b: &mut [u8], mac: Mac, ip: Ipv4Addr) {
    let mut sha = [0u8; 6];
    sha.copy_from_slice(&b[22..28]);
    let mut spa = [0u8; 4];
    spa.copy_from_slice(&b[28..32]);
    eth(b, sha, mac, ETHERTYPE_ARP);
    b[20..22].copy_from_slice(&[0, 2]);
    b[22..28].copy_from_slice(&mac);
    b[28..32].copy_from_slice(&ip.octets());
    b[32..38].copy_from_slice(&sha);
    b[38..42].copy_from_slice(&spa);
}

fn ipv6_header(b: &mut [u8], payload: usize, src: Ipv6Addr, dst: Ipv6Addr, hops: u8) {
    b[14..18].copy_from_slice(&[0x60, 0, 0, 0]);
    b[18..20].copy_from_slice(&(payload as u16).to_be_bytes());
    b[20] = PROTO_ICMPV6;
    b[21] = hops;
    b[22..38].copy_from_slice(&src.octets());
    b[38..54].copy_from_slice(&dst.octets());
}

fn icmpv6_checksum(b: &mut [u8], len: usize, src: Ipv6Addr, dst: Ipv6Addr) {
    b[56..58].fill(0);
    let s = sum(
        &b[54..54 + len],
        pseudo_v6(src.octets(), dst.octets(), PROTO_ICMPV6, len as u32),
    );
    b[56..58].copy_from_slice(&finish(s).to_be_bytes());
}

/// Solicited-node multicast address of `ip` and its MAC.
pub fn solicited_node(ip: Ipv6Addr) -> (Ipv6Addr, Mac) {
    let o = ip.octets();
    let mut a = [0u8; 16];
    a[0] = 0xff;
    a[1] = 0x02;
    a[11] = 1;
    a[12] = 0xff;
    a[13..16].copy_from_slice(&o[13..16]);
    (Ipv6Addr::from(a), [0x33, 0x33, 0xff, o[13], o[14], o[15]])
}

/// Neighbour solicitation for `target` from `src` (86 bytes).
pub fn neighbor_solicit(b: &mut [u8], mac: Mac, src: Ipv6Addr, target: Ipv6Addr) -> usize {
    let (dst, dmac) = solicited_node(target);
    eth(b, dmac, mac, ETHERTYPE_IPV6);
    ipv6_header(b, 32, src, dst, 255);
    b[54..62].copy_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    b[62..78].copy_from_slice(&target.octets());
    b[78..80].copy_from_slice(&[1, 1]);
    b[80..86].copy_from_slice(&mac);
    icmpv6_checksum(b, 32, src, dst);
    86
}

/// Neighbour advertisement for our `target` to `dst`/`dmac` (86 bytes): router,
/// solicited (if `solicited`) and override flags, with our link-layer address.
pub fn neighbor_advert(
    b: &mut [u8],
    mac: Mac,
    dmac: Mac,
    target: Ipv6Addr,
    dst: Ipv6Addr,
    solicited: bool,
) -> usize {
    eth(b, dmac, mac, ETHERTYPE_IPV6);
    ipv6_header(b, 32, target, dst, 255);
    let flags = 0x80 | 0x20 | if solicited { 0x40 } else { 0 };
    b[54..62].copy_from_slice(&[136, 0, 0, 0, flags, 0, 0, 0]);
    b[62..78].copy_from_slice(&target.octets());
    b[78..80].copy_from_slice(&[2, 1]);
    b[80..86].copy_from_slice(&mac);
    icmpv6_checksum(b, 32, target, dst);
    86
}

/// ICMPv4 error (`kind`, `code`) from `src` to the sender of `quote` (the offending IP
/// packet, already cut to [`QUOTE_V4`]), sent to `dmac`. `b` ≥ 42 + quote.
pub fn icmp4_error(
    b: &mut [u8],
    mac: Mac,
    dmac: Mac,
    src: Ipv4Addr,
    quote: &[u8],
    kind: u8,
    code: u8,
) -> usize {
    let dst = Ipv4Addr::new(quote[12], quote[13], quote[14], quote[15]);
    let icmp_len = 8 + quote.len();
    let total = 20 + icmp_len;
    eth(b, dmac, mac, ETHERTYPE_IPV4);
    let h = &mut b[14..34];
    h[0] = 0x45;
    h[1] = 0xc0; // DSCP CS6, as Linux sends ICMP errors
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[4..8].fill(0);
    h[8] = 64;
    h[9] = PROTO_ICMP;
    h[10..12].fill(0);
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let _ = checksum::set_ipv4_header_checksum(h);
    b[34..42].copy_from_slice(&[kind, code, 0, 0, 0, 0, 0, 0]);
    b[42..42 + quote.len()].copy_from_slice(quote);
    let c = finish(sum(&b[34..34 + icmp_len], 0));
    b[36..38].copy_from_slice(&c.to_be_bytes());
    14 + total
}

/// ICMPv6 error (`kind`, `code`) from `src` to the sender of `quote` (cut to
/// [`QUOTE_V6`]), sent to `dmac`. `b` ≥ 62 + quote.
pub fn icmp6_error(
    b: &mut [u8],
    mac: Mac,
    dmac: Mac,
    src: Ipv6Addr,
    quote: &[u8],
    kind: u8,
    code: u8,
) -> usize {
    let mut d = [0u8; 16];
    d.copy_from_slice(&quote[8..24]);
    let dst = Ipv6Addr::from(d);
    let len = 8 + quote.len();
    eth(b, dmac, mac, ETHERTYPE_IPV6);
    ipv6_header(b, len, src, dst, 64);
    b[54..62].copy_from_slice(&[kind, code, 0, 0, 0, 0, 0, 0]);
    b[62..62 + quote.len()].copy_from_slice(quote);
    icmpv6_checksum(b, len, src, dst);
    14 + 40 + len
}

/// Turn an ICMP echo request (IPv4 at 14, ICMP at `l4`) into the reply, in place:
/// addresses and MACs swapped, TTL 64, type 0, checksums updated incrementally.
pub fn echo_reply_v4(b: &mut [u8], l4: usize) {
    swap_macs(b);
    for i in 0..4 {
        b.swap(26 + i, 30 + i);
    }
    let old = u16::from_be_bytes([b[22], b[23]]);
    let new = (64u16 << 8) | (old & 0xff);
    b[22] = 64;
    let c = update16(u16::from_be_bytes([b[24], b[25]]), old, new);
    b[24..26].copy_from_slice(&c.to_be_bytes());
    let old_t = u16::from_be_bytes([b[l4], b[l4 + 1]]);
    b[l4] = 0;
    let c = update16(
        u16::from_be_bytes([b[l4 + 2], b[l4 + 3]]),
        old_t,
        u16::from_be_bytes([b[l4], b[l4 + 1]]),
    );
    b[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
}

/// Turn an ICMPv6 echo request into the reply from `src` (one of our addresses), in
/// place; the checksum is recomputed over the message (`l4..end`).
pub fn echo_reply_v6(b: &mut [u8], l4: usize, end: usize, src: Ipv6Addr) {
    swap_macs(b);
    let mut old_src = [0u8; 16];
    old_src.copy_from_slice(&b[22..38]);
    b[38..54].copy_from_slice(&old_src);
    b[22..38].copy_from_slice(&src.octets());
    b[21] = 64;
    b[l4] = 129;
    b[l4 + 2..l4 + 4].fill(0);
    let dst = Ipv6Addr::from(old_src);
    let s = sum(
        &b[l4..end],
        pseudo_v6(src.octets(), dst.octets(), PROTO_ICMPV6, (end - l4) as u32),
    );
    b[l4 + 2..l4 + 4].copy_from_slice(&finish(s).to_be_bytes());
}

fn swap_macs(b: &mut [u8]) {
    for i in 0..6 {
        b.swap(i, 6 + i);
    }
}

/// EUI-64 link-local address for `mac`.
pub fn link_local(mac: Mac) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a[0] = 0xfe;
    a[1] = 0x80;
    a[8] = mac[0] ^ 0x02;
    a[9] = mac[1];
    a[10] = mac[2];
    a[11] = 0xff;
    a[12] = 0xfe;
    a[13] = mac[3];
    a[14] = mac[4];
    a[15] = mac[5];
    Ipv6Addr::from(a)
}
