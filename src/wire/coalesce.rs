//! Software receive coalescing of TCP segments (the reverse of [`super::gso`]).
//!
//! A UDP_GRO buffer of an L2TPv3-over-UDP port typically holds the consecutive segments
//! of one TCP stream, cut by the sending vecbox from one GSO frame. Joining them back
//! into a single GSO frame (TCPv4/TCPv6, NEEDS_CSUM) lets a vnet output port with
//! `gro=1` pass one 64 KiB frame to the kernel instead of dozens of small ones.
//!
//! Segments join only under the rules Linux GRO applies: same Ethernet, IP and TCP
//! headers except the per-segment fields (IP length/ID/checksum, TCP sequence/checksum,
//! PSH), contiguous sequence numbers, only ACK (and PSH, which ends a run) set, no IP
//! fragments or IPv6 extension headers, every segment but the last exactly `mss` long.
//! The segments' own TCP checksums are not verified: the coalesced frame carries a
//! partial checksum, so the receiver's checksum covers the joined payload, and the UDP
//! checksum of the tunnel datagrams already protected it in transit.

use super::checksum;
use super::ethernet::{self, EtherType};
use super::vnet::{Csum, GsoType, Repr};

/// Most segments one coalesced frame takes (UDP_GRO delivers at most 64).
pub const MAX_RUN: usize = 64;
/// Largest IP packet a coalesced frame may carry.
const MAX_IP: usize = 65535;

const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seg {
    ipv4: bool,
    l3: usize,
    l4: usize,
    /// End of the TCP header.
    hdr: usize,
    payload: usize,
    seq: u32,
    flags: u8,
}

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

fn parse(f: &[u8]) -> Option<Seg> {
    let (et, l3) = ethernet::l3_offset(f)?;
    let (ipv4, l4, ip_end) = match et {
        EtherType::Ipv4 => {
            let ip = f.get(l3..l3 + 20)?;
            let ihl = usize::from(ip[0] & 0xf) * 4;
            // TCP, not a fragment (MF clear, offset 0), sane lengths.
            if ip[0] >> 4 != 4 || ihl < 20 || ip[9] != 6 || be16(ip, 6) & 0x3fff != 0 {
                return None;
            }
            (true, l3 + ihl, l3 + be16(ip, 2))
        }
        EtherType::Ipv6 => {
            let ip = f.get(l3..l3 + 40)?;
            if ip[0] >> 4 != 6 || ip[6] != 6 {
                return None;
            }
            (false, l3 + 40, l3 + 40 + be16(ip, 4))
        }
        _ => return None,
    };
    let tcp = f.get(l4..l4 + 20)?;
    let hdr = l4 + usize::from(tcp[12] >> 4) * 4;
    if hdr < l4 + 20 || ip_end != f.len() || hdr >= f.len() {
        return None;
    }
    let flags = tcp[13];
    if flags & !(ACK | PSH) != 0 || flags & ACK == 0 {
        return None;
    }
    Some(Seg {
        ipv4,
        l3,
        l4,
        hdr,
        payload: f.len() - hdr,
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        flags,
    })
}

/// `b` has `a`'s headers except the per-segment fields.
fn same_headers(a: &[u8], s: &Seg, b: &[u8], t: &Seg) -> bool {
    if (s.ipv4, s.l3, s.l4, s.hdr) != (t.ipv4, t.l3, t.l4, t.hdr) || a[..s.l3] != b[..s.l3] {
        return false;
    }
    let eq = |r: std::ops::Range<usize>| a[r.clone()] == b[r];
    let ip_ok = if s.ipv4 {
        // Skip total length (2..4), ID (4..6) and header checksum (10..12).
        eq(s.l3..s.l3 + 2) && eq(s.l3 + 6..s.l3 + 10) && eq(s.l3 + 12..s.l4)
    } else {
        // Skip payload length (4..6).
        eq(s.l3..s.l3 + 4) && eq(s.l3 + 6..s.l4)
    };
    // TCP: ports; skip seq (4..8); ack, offset; skip flags (13); window; skip checksum
    // (16..18); urgent pointer and options.
    ip_ok
        && eq(s.l4..s.l4 + 4)
        && eq(s.l4 + 8..s.l4 + 13)
        && eq(s.l4 + 14..s.l4 + 16)
        && eq(s.l4 + 18..s.hdr)
}

/// Number of leading segments of `frames` that can be joined into one frame (1 when
/// the first cannot be joined with anything).
pub fn run_len(frames: &[&[u8]]) -> usize {
    let Some(first) = frames.first().and_then(|f| parse(f)) else {
        return 1;
    };
    if first.flags & PSH != 0 {
        return 1;
    }
    let mss = first.payload;
    let mut next_seq = first.seq.wrapping_add(mss as u32);
    let mut total = first.hdr - first.l3 + mss;
    let mut n = 1;
    for f in frames.iter().take(MAX_RUN).skip(1) {
        let Some(s) = parse(f) else { break };
        if s.seq != next_seq
            || s.payload > mss
            || total + s.payload > MAX_IP
            || !same_headers(frames[0], &first, f, &s)
        {
            break;
        }
        n += 1;
        total += s.payload;
        next_seq = next_seq.wrapping_add(s.payload as u32);
        if s.payload < mss || s.flags & PSH != 0 {
            break;
        }
    }
    n
}

/// Join `frames` (a run found by [`run_len`]) into one GSO frame in `out`; returns its
/// length and offload metadata, or `None` if they do not form a run or `out` is short.
pub fn build(frames: &[&[u8]], out: &mut [u8]) -> Option<(usize, Repr)> {
    if frames.len() < 2 || run_len(frames) != frames.len() {
        return None;
    }
    let s = parse(frames[0])?;
    let payload: usize = frames.iter().map(|f| f.len() - s.hdr).sum();
    let len = s.hdr + payload;
    if len > out.len() {
        return None;
    }
    out[..s.hdr].copy_from_slice(&frames[0][..s.hdr]);
    let mut at = s.hdr;
    let mut flags = 0;
    for f in frames {
        let p = &f[s.hdr..];
        out[at..at + p.len()].copy_from_slice(p);
        at += p.len();
        flags |= f[s.l4 + 13];
    }
    out[s.l4 + 13] = flags;
    let l4_len = (len - s.l4) as u32;
    let pseudo = if s.ipv4 {
        out[s.l3 + 2..s.l3 + 4].copy_from_slice(&((len - s.l3) as u16).to_be_bytes());
        checksum::set_ipv4_header_checksum(&mut out[s.l3..s.l4]).ok()?;
        let a = |o: usize| [out[o], out[o + 1], out[o + 2], out[o + 3]];
        checksum::pseudo_v4(a(s.l3 + 12), a(s.l3 + 16), 6, l4_len)
    } else {
        out[s.l3 + 4..s.l3 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&out[s.l3 + 8..s.l3 + 24]);
        dst.copy_from_slice(&out[s.l3 + 24..s.l3 + 40]);
        checksum::pseudo_v6(src, dst, 6, l4_len)
    };
    // CHECKSUM_PARTIAL convention: the field holds the folded pseudo-header sum.
    out[s.l4 + 16..s.l4 + 18].copy_from_slice(&checksum::fold(pseudo).to_be_bytes());
    let mss = frames[0].len() - s.hdr;
    Some((
        len,
        Repr {
            gso_type: if s.ipv4 {
                GsoType::TcpV4
            } else {
                GsoType::TcpV6
            },
            gso_size: mss as u16,
            hdr_len: s.hdr as u16,
            csum: Some(Csum {
                start: s.l4 as u16,
                offset: 16,
            }),
            ..Repr::NONE
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::gso;
    use proptest::prelude::*;

    /// A TCP GSO frame of `len` payload bytes and its segments (as vecbox's own software
    /// GSO cuts it, checksums complete).
    fn segments(v6: bool, len: usize, mss: u16) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut pkt = Vec::new();
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let b = if v6 {
            b.ipv6([0xfd; 16], [0xfe; 16], 64)
        } else {
            b.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        };
        let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        b.tcp(1000, 2000, 12345, 65000)
            .ack(777)
            .write(&mut pkt, &payload)
            .unwrap();
        let l4 = if v6 { 54 } else { 34 };
        let mut meta = Repr {
            gso_type: if v6 { GsoType::TcpV6 } else { GsoType::TcpV4 },
            gso_size: mss,
            csum: Some(Csum {
                start: l4,
                offset: 16,
            }),
            ..Repr::NONE
        };
        meta.hdr_len = l4 + 20;
        let mut scratch = [0u8; gso::MAX_HEADERS];
        let mut segs = Vec::new();
        gso::segment(&pkt, &meta, gso::CsumMode::Full, &mut scratch, |s| {
            let mut f = s.headers.to_vec();
            f.extend_from_slice(&pkt[s.payload.clone()]);
            segs.push(f);
            true
        })
        .unwrap();
        (pkt, segs)
    }

    #[test]
    fn segments_join_back_into_the_original_frame() {
        for v6 in [false, true] {
            let (orig, segs) = segments(v6, 10_000, 1448);
            let refs: Vec<&[u8]> = segs.iter().map(|s| &s[..]).collect();
            assert_eq!(run_len(&refs), refs.len());
            let mut out = vec![0u8; 70_000];
            let (len, meta) = build(&refs, &mut out).unwrap();
            assert_eq!(len, orig.len());
            assert_eq!(meta.gso_size, 1448);
            // Payload identical; completing the partial checksum gives a valid packet.
            let mut whole = out[..len].to_vec();
            let c = meta.csum.unwrap();
            checksum::complete(&mut whole, usize::from(c.start), usize::from(c.offset)).unwrap();
            let s = etherparse::SlicedPacket::from_ethernet(&whole).unwrap();
            let Some(etherparse::TransportSlice::Tcp(t)) = s.transport else {
                panic!()
            };
            assert_eq!(t.payload(), &orig[orig.len() - 10_000..]);
            // And it segments again into the same frames.
            let mut scratch = [0u8; gso::MAX_HEADERS];
            let mut again = Vec::new();
            gso::segment(&out[..len], &meta, gso::CsumMode::Full, &mut scratch, |s| {
                let mut f = s.headers.to_vec();
                f.extend_from_slice(&out[s.payload.clone()]);
                again.push(f);
                true
            })
            .unwrap();
            assert_eq!(again, segs, "v6={v6}");
        }
    }

    #[test]
    fn runs_stop_at_gaps_other_flows_and_flags() {
        let (_, segs) = segments(false, 8000, 1000);
        let refs: Vec<&[u8]> = segs.iter().map(|s| &s[..]).collect();
        // A gap in sequence numbers.
        let gap: Vec<&[u8]> = vec![refs[0], refs[1], refs[3]];
        assert_eq!(run_len(&gap), 2);
        // Another flow (different port) after two segments.
        let mut other = segs[2].clone();
        other[34] ^= 1;
        assert_eq!(run_len(&[refs[0], refs[1], &other]), 2);
        // FIN/SYN/RST: not joined at all.
        let mut fin = segs[0].clone();
        fin[34 + 13] |= 0x01;
        assert_eq!(run_len(&[&fin, refs[1]]), 1);
        // PSH ends a run (included).
        let mut psh = segs[1].clone();
        psh[34 + 13] |= PSH;
        assert_eq!(run_len(&[refs[0], &psh, refs[2]]), 2);
        // Not TCP.
        assert_eq!(run_len(&[&[0u8; 60][..], refs[0]]), 1);
        assert!(build(&gap, &mut [0u8; 70_000]).is_none());
        assert!(build(&refs[..2], &mut [0u8; 100]).is_none());
    }

    proptest! {
        #[test]
        fn arbitrary_frames_never_panic(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 0..6)) {
            let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
            let n = run_len(&refs);
            prop_assert!(n >= 1);
            let mut out = vec![0u8; 1024];
            if let Some((len, _)) = build(&refs, &mut out) {
                prop_assert!(len <= out.len());
            }
        }
    }
}
