//! Internet checksum (RFC 1071): a fast one's-complement accumulator,
//! pseudo-header sums, CHECKSUM_PARTIAL completion and RFC 1624 updates.
//!
//! Sums are carried as `u64` values whose only meaning is their residue
//! modulo `0xffff` (one's-complement arithmetic); [`fold`] reduces one to
//! 16 bits and [`finish`] complements it into the value stored on the wire.
//! All 16-bit words are big-endian (network order).
//!
//! Chaining: `sum(b, sum(a, 0))` equals `sum(a ++ b, 0)` only when `a` has
//! even length. To continue a sum at an odd byte offset use
//! [`sum_at_offset`].

use thiserror::Error;

/// Errors from checksum helpers that take a frame or header buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ChecksumError {
    /// The 16-bit checksum field at `start + offset` does not fit in the buffer.
    #[error("checksum field at {start}+{offset} does not fit in a {len}-byte frame")]
    FieldOutOfBounds {
        /// Start of the checksummed region.
        start: usize,
        /// Offset of the checksum field from `start`.
        offset: usize,
        /// Buffer length.
        len: usize,
    },
    /// The buffer does not start with an IPv4 header.
    #[error("not an IPv4 header: version {version}")]
    NotIpv4 {
        /// Version nibble found.
        version: u8,
    },
    /// The IPv4 IHL is below 5 or exceeds the buffer.
    #[error("IPv4 header length {header_len} invalid for a {len}-byte buffer")]
    Ipv4HeaderLen {
        /// Header length from IHL, in bytes.
        header_len: usize,
        /// Buffer length.
        len: usize,
    },
}

/// Bytes per inner block; keeps the 64-bit lane accumulator from overflowing.
const BLOCK: usize = 1 << 30;

/// One's-complement addition of two 64-bit partial sums (end-around carry).
#[inline]
pub fn add(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    s + u64::from(carry)
}

/// Adds the big-endian 16-bit words of `data` to `initial`.
///
/// An odd trailing byte is padded with a zero byte. Processes 8 bytes per
/// step; `data` is assumed to start at an even offset of the checksummed
/// region (see [`sum_at_offset`] otherwise).
#[inline]
pub fn sum(data: &[u8], initial: u64) -> u64 {
    let native = sum_native(data);
    let be = if cfg!(target_endian = "little") {
        native.swap_bytes()
    } else {
        native
    };
    add(initial, u64::from(be))
}

/// Like [`sum`] for `data` that starts at byte `offset` of the checksummed
/// region; an odd offset swaps the byte lanes of `data`'s contribution.
#[inline]
pub fn sum_at_offset(data: &[u8], initial: u64, offset: usize) -> u64 {
    if offset.is_multiple_of(2) {
        sum(data, initial)
    } else {
        add(initial, u64::from(fold(sum(data, 0)).swap_bytes()))
    }
}

/// Folded one's-complement sum of `data` read as native-endian 16-bit words.
fn sum_native(data: &[u8]) -> u16 {
    let mut total = 0u64;
    for block in data.chunks(BLOCK) {
        let (words, tail) = block.as_chunks::<8>();
        // Two 32-bit lanes per word: 2^32 ≡ 1 (mod 0xffff), so adding the
        // halves keeps the residue and can't overflow within a block.
        let mut acc = [0u64; 4];
        let (quads, rest) = words.as_chunks::<4>();
        for q in quads {
            for (a, w) in acc.iter_mut().zip(q) {
                let w = u64::from_ne_bytes(*w);
                *a += (w & 0xffff_ffff) + (w >> 32);
            }
        }
        let mut s = acc[0] + acc[1] + acc[2] + acc[3];
        for w in rest {
            let w = u64::from_ne_bytes(*w);
            s += (w & 0xffff_ffff) + (w >> 32);
        }
        let mut last = [0u8; 8];
        last[..tail.len()].copy_from_slice(tail);
        let w = u64::from_ne_bytes(last);
        s += (w & 0xffff_ffff) + (w >> 32);
        total = add(total, s);
    }
    fold(total)
}

/// Folds a partial sum to 16 bits (not complemented).
///
/// Returns 0 only for a sum of zero words.
#[inline]
pub fn fold(sum: u64) -> u16 {
    let s = (sum & 0xffff_ffff) + (sum >> 32);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// Folds and complements a partial sum: the value for a checksum field.
#[inline]
pub fn finish(sum: u64) -> u16 {
    !fold(sum)
}

/// Partial sum of the IPv4 TCP/UDP pseudo-header.
#[inline]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: u32) -> u64 {
    // 2^16 ≡ 1 (mod 0xffff): a 32-bit value sums like its two halves.
    u64::from(u32::from_be_bytes(src))
        + u64::from(u32::from_be_bytes(dst))
        + u64::from(proto)
        + u64::from(l4_len)
}

/// Partial sum of the IPv6 upper-layer pseudo-header (RFC 8200 §8.1).
#[inline]
pub fn pseudo_v6(src: [u8; 16], dst: [u8; 16], proto: u8, l4_len: u32) -> u64 {
    let s = u128::from_be_bytes(src);
    let d = u128::from_be_bytes(dst);
    let halves = [s as u64, (s >> 64) as u64, d as u64, (d >> 64) as u64];
    let tail = u64::from(proto) + u64::from(l4_len);
    halves.into_iter().fold(tail, add)
}

/// Completes a CHECKSUM_PARTIAL frame as a NIC would.
///
/// The field at `csum_start + csum_offset` must hold the folded,
/// non-complemented pseudo-header sum. The sum over `frame[csum_start..]`
/// (field included) is complemented and stored there; a result of 0 is
/// stored as `0xffff` (like Linux's `skb_checksum_help`; required for UDP,
/// equivalent for TCP).
pub fn complete(
    frame: &mut [u8],
    csum_start: usize,
    csum_offset: usize,
) -> Result<(), ChecksumError> {
    let len = frame.len();
    let field = csum_start
        .checked_add(csum_offset)
        .filter(|f| f.checked_add(2).is_some_and(|end| end <= len))
        .ok_or(ChecksumError::FieldOutOfBounds {
            start: csum_start,
            offset: csum_offset,
            len,
        })?;
    let csum = match finish(sum(&frame[csum_start..], 0)) {
        0 => 0xffff,
        c => c,
    };
    frame[field..field + 2].copy_from_slice(&csum.to_be_bytes());
    Ok(())
}

/// RFC 1624 (eqn. 3) update of `old_csum` after a 16-bit word changed
/// from `old` to `new`.
///
/// For a CHECKSUM_PARTIAL field (a non-complemented pseudo-header sum,
/// e.g. after NAT rewrites an address) use `!update16(!field, old, new)`.
#[inline]
pub fn update16(old_csum: u16, old: u16, new: u16) -> u16 {
    !fold(u64::from(!old_csum) + u64::from(!old) + u64::from(new))
}

/// RFC 1624 update of `old_csum` after an aligned 32-bit field (e.g. an
/// IPv4 address) changed from `old` to `new`.
#[inline]
pub fn update32(old_csum: u16, old: u32, new: u32) -> u16 {
    let old_sum = u64::from(!(old >> 16) & 0xffff) + u64::from(!old & 0xffff);
    let new_sum = u64::from(new >> 16) + u64::from(new & 0xffff);
    !fold(u64::from(!old_csum) + old_sum + new_sum)
}

/// Validates version and IHL; returns the header length in bytes.
fn ipv4_header_len(hdr: &[u8]) -> Result<usize, ChecksumError> {
    let Some(&b0) = hdr.first() else {
        return Err(ChecksumError::Ipv4HeaderLen {
            header_len: 0,
            len: 0,
        });
    };
    if b0 >> 4 != 4 {
        return Err(ChecksumError::NotIpv4 { version: b0 >> 4 });
    }
    let header_len = usize::from(b0 & 0x0f) * 4;
    if header_len < 20 || header_len > hdr.len() {
        return Err(ChecksumError::Ipv4HeaderLen {
            header_len,
            len: hdr.len(),
        });
    }
    Ok(header_len)
}

/// Computes the header checksum of the IPv4 header at the start of `hdr`
/// (length from IHL), treating the checksum field as zero.
pub fn ipv4_header_checksum(hdr: &[u8]) -> Result<u16, ChecksumError> {
    let len = ipv4_header_len(hdr)?;
    Ok(finish(sum(&hdr[12..len], sum(&hdr[..10], 0))))
}

/// Computes and stores the header checksum of the IPv4 header at the start
/// of `hdr`.
pub fn set_ipv4_header_checksum(hdr: &mut [u8]) -> Result<(), ChecksumError> {
    let csum = ipv4_header_checksum(hdr)?;
    hdr[10..12].copy_from_slice(&csum.to_be_bytes());
    Ok(())
}

/// True if `hdr` starts with a well-formed IPv4 header (version 4,
/// IHL ≥ 5 and within `hdr`) whose header checksum is valid.
pub fn verify_ipv4_header(hdr: &[u8]) -> bool {
    ipv4_header_len(hdr).is_ok_and(|len| fold(sum(&hdr[..len], 0)) == 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// u16-by-u16 reference with u32 accumulation and end-around carry.
    fn naive(data: &[u8], initial: u64) -> u16 {
        let mut s: u64 = u64::from(fold(initial));
        for pair in data.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map_or(0, u64::from);
            s += hi | lo;
            s = (s & 0xffff) + (s >> 16);
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    fn pattern(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(finish(sum(&data, 0)), 0x220d);
    }

    #[test]
    fn empty_and_zero() {
        assert_eq!(fold(sum(&[], 0)), 0);
        assert_eq!(fold(sum(&[0; 33], 0)), 0);
        assert_eq!(finish(0), 0xffff);
        assert_eq!(fold(sum(&[0xab], 0)), 0xab00);
        assert_eq!(fold(u64::MAX), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
    }

    #[test]
    fn large_inputs_match_naive() {
        for len in [65535, 65536, 65537, 9000, 1 << 20] {
            let data = pattern(len, len as u32);
            assert_eq!(fold(sum(&data, 0)), naive(&data, 0), "len {len}");
        }
        let ones = vec![0xffu8; 65535];
        assert_eq!(fold(sum(&ones, 0)), naive(&ones, 0));
        assert_eq!(fold(sum(&ones, u64::MAX)), naive(&ones, u64::MAX));
    }

    #[test]
    fn every_length_to_3000() {
        let data = pattern(3000, 7);
        for len in 0..=3000 {
            for start in 0..2 {
                let d = &data[start..len.max(start)];
                assert_eq!(fold(sum(d, 0x1234_5678)), naive(d, 0x1234_5678));
            }
        }
    }

    #[test]
    fn odd_offset_chaining() {
        let data = pattern(1001, 3);
        for split in 0..data.len() {
            let head = sum(&data[..split], 0);
            let chained = sum_at_offset(&data[split..], head, split);
            assert_eq!(fold(chained), fold(sum(&data, 0)), "split {split}");
        }
    }

    #[test]
    fn pseudo_headers_match_word_sums() {
        let (s4, d4) = ([192, 168, 1, 10], [10, 0, 255, 1]);
        let mut words = Vec::new();
        words.extend_from_slice(&s4);
        words.extend_from_slice(&d4);
        words.extend_from_slice(&[0, 6, 0x05, 0xdc]);
        assert_eq!(fold(pseudo_v4(s4, d4, 6, 1500)), naive(&words, 0));

        let s6: [u8; 16] = core::array::from_fn(|i| (i * 17) as u8 ^ 0xf0);
        let d6: [u8; 16] = core::array::from_fn(|i| (i * 31) as u8 ^ 0x0f);
        let mut words = Vec::new();
        words.extend_from_slice(&s6);
        words.extend_from_slice(&d6);
        words.extend_from_slice(&70000u32.to_be_bytes());
        words.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(fold(pseudo_v6(s6, d6, 17, 70000)), naive(&words, 0));
    }

    fn etherparse_ip_packet(v6: bool, tcp: bool, payload: &[u8]) -> (Vec<u8>, usize, usize) {
        use etherparse::PacketBuilder;
        let b = if v6 {
            PacketBuilder::ipv6(
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd],
                64,
            )
        } else {
            PacketBuilder::ipv4([10, 1, 2, 3], [172, 16, 9, 200], 64)
        };
        let ip_len = if v6 { 40 } else { 20 };
        let mut out = Vec::new();
        if tcp {
            b.tcp(40000, 443, 0x1234_5678, 8192)
                .ack(99)
                .write(&mut out, payload)
                .unwrap();
            (out, ip_len, 16)
        } else {
            b.udp(5353, 53).write(&mut out, payload).unwrap();
            (out, ip_len, 6)
        }
    }

    #[test]
    fn complete_matches_etherparse() {
        for v6 in [false, true] {
            for tcp in [false, true] {
                for len in [0usize, 1, 2, 3, 1000, 1447, 30000] {
                    let payload = pattern(len, len as u32 + 11);
                    let (mut pkt, l4, off) = etherparse_ip_packet(v6, tcp, &payload);
                    let field = l4 + off;
                    let expected = u16::from_be_bytes([pkt[field], pkt[field + 1]]);
                    let proto = if tcp { 6 } else { 17 };
                    let l4_len = (pkt.len() - l4) as u32;
                    let pseudo = if v6 {
                        pseudo_v6(
                            pkt[8..24].try_into().unwrap(),
                            pkt[24..40].try_into().unwrap(),
                            proto,
                            l4_len,
                        )
                    } else {
                        pseudo_v4(
                            pkt[12..16].try_into().unwrap(),
                            pkt[16..20].try_into().unwrap(),
                            proto,
                            l4_len,
                        )
                    };
                    pkt[field..field + 2].copy_from_slice(&fold(pseudo).to_be_bytes());
                    complete(&mut pkt, l4, off).unwrap();
                    let got = u16::from_be_bytes([pkt[field], pkt[field + 1]]);
                    let ok = got == expected || (expected == 0 && got == 0xffff);
                    assert!(ok, "v6={v6} tcp={tcp} len={len}: {got:#x} vs {expected:#x}");
                }
            }
        }
    }

    #[test]
    fn complete_bounds() {
        let mut buf = [0u8; 20];
        assert!(complete(&mut buf, 10, 8).is_ok());
        let err = complete(&mut buf, 10, 9).unwrap_err();
        assert_eq!(
            err,
            ChecksumError::FieldOutOfBounds {
                start: 10,
                offset: 9,
                len: 20
            }
        );
        assert!(complete(&mut buf, 21, 0).is_err());
        assert!(complete(&mut buf, usize::MAX, 1).is_err());
        assert!(complete(&mut buf, 0, usize::MAX - 1).is_err());
        assert!(complete(&mut [], 0, 0).is_err());
        // All-zero region: computed 0xffff -> complement 0 is never stored.
        let mut z = [0u8; 8];
        complete(&mut z, 0, 6).unwrap();
        assert_eq!(&z[6..], &[0xff, 0xff]);
    }

    #[test]
    fn ipv4_header_helpers() {
        // Header from RFC 1071-style textbook example (checksum 0xb861).
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert!(verify_ipv4_header(&hdr));
        assert_eq!(ipv4_header_checksum(&hdr), Ok(0xb861));
        hdr[10] = 0;
        assert!(!verify_ipv4_header(&hdr));
        set_ipv4_header_checksum(&mut hdr).unwrap();
        assert_eq!(&hdr[10..12], &[0xb8, 0x61]);
        assert!(!verify_ipv4_header(&hdr[..19]));
        assert!(!verify_ipv4_header(&[]));
        assert_eq!(
            ipv4_header_checksum(&[0x60; 40]),
            Err(ChecksumError::NotIpv4 { version: 6 })
        );
        assert_eq!(
            ipv4_header_checksum(&[0x44; 40]),
            Err(ChecksumError::Ipv4HeaderLen {
                header_len: 16,
                len: 40
            })
        );
        assert_eq!(
            ipv4_header_checksum(&hdr[..19]),
            Err(ChecksumError::Ipv4HeaderLen {
                header_len: 20,
                len: 19
            })
        );
        // With options (IHL 6).
        let mut opt = [0u8; 24];
        opt[..20].copy_from_slice(&hdr);
        opt[0] = 0x46;
        opt[20..].copy_from_slice(&[0x94, 0x04, 0, 0]);
        set_ipv4_header_checksum(&mut opt).unwrap();
        assert!(verify_ipv4_header(&opt));
        assert_eq!(naive(&opt, 0), 0xffff);
    }

    #[test]
    fn update32_address_rewrite() {
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let old = u32::from_be_bytes([hdr[12], hdr[13], hdr[14], hdr[15]]);
        let new: u32 = 0x0a00_0201;
        hdr[12..16].copy_from_slice(&new.to_be_bytes());
        let updated = update32(0xb861, old, new);
        assert_eq!(Ok(updated), ipv4_header_checksum(&hdr));
        // TTL decrement (TTL is the high byte of word 4).
        let ttl_proto = u16::from_be_bytes([hdr[8], hdr[9]]);
        hdr[8] -= 1;
        let updated = update16(updated, ttl_proto, ttl_proto - 0x100);
        assert_eq!(Ok(updated), ipv4_header_checksum(&hdr));
    }

    #[test]
    fn partial_field_update_after_nat() {
        let payload = pattern(999, 5);
        let (mut pkt, l4, off) = etherparse_ip_packet(false, true, &payload);
        let field = l4 + off;
        let l4_len = (pkt.len() - l4) as u32;
        let src: [u8; 4] = pkt[12..16].try_into().unwrap();
        let dst: [u8; 4] = pkt[16..20].try_into().unwrap();
        let partial = fold(pseudo_v4(src, dst, 6, l4_len));
        pkt[field..field + 2].copy_from_slice(&partial.to_be_bytes());
        // Rewrite the source address; patch the partial field incrementally.
        let new_src = [192, 0, 2, 77];
        pkt[12..16].copy_from_slice(&new_src);
        let old = u32::from_be_bytes(src);
        let patched = !update32(!partial, old, u32::from_be_bytes(new_src));
        assert_eq!(patched, fold(pseudo_v4(new_src, dst, 6, l4_len)));
        pkt[field..field + 2].copy_from_slice(&patched.to_be_bytes());
        complete(&mut pkt, l4, off).unwrap();
        let s = pseudo_v4(new_src, dst, 6, l4_len);
        assert_eq!(fold(sum(&pkt[l4..], s)), 0xffff);
    }

    proptest! {
        #[test]
        fn sum_matches_naive(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            initial in any::<u64>(),
            start in 0usize..8,
        ) {
            let d = &data[start.min(data.len())..];
            prop_assert_eq!(fold(sum(d, initial)), naive(d, initial));
        }

        #[test]
        fn update16_matches_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 2..200),
            idx in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            data.truncate(data.len() & !1);
            let w = idx.index(data.len() / 2) * 2;
            let before = finish(sum(&data, 0));
            let old = u16::from_be_bytes([data[w], data[w + 1]]);
            data[w..w + 2].copy_from_slice(&new.to_be_bytes());
            let after = finish(sum(&data, 0));
            let inc = update16(before, old, new);
            // Equal as one's-complement values (0 and 0xffff are both zero).
            prop_assert_eq!(inc % 0xffff, after % 0xffff);
            // The updated field verifies when stored in the data.
            let mut with = data.clone();
            with.extend_from_slice(&inc.to_be_bytes());
            prop_assert!(fold(sum(&with, 0)) == 0xffff || data.iter().all(|&b| b == 0));
        }

        #[test]
        fn update32_matches_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 4..200),
            idx in any::<prop::sample::Index>(),
            new in any::<u32>(),
        ) {
            data.truncate(data.len() & !3);
            let w = idx.index(data.len() / 4) * 4;
            let before = finish(sum(&data, 0));
            let old = u32::from_be_bytes(data[w..w + 4].try_into().unwrap());
            data[w..w + 4].copy_from_slice(&new.to_be_bytes());
            let after = finish(sum(&data, 0));
            prop_assert_eq!(update32(before, old, new) % 0xffff, after % 0xffff);
        }
    }
}
