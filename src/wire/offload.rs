//! Normalising the offload metadata of received frames before they are forwarded.
//!
//! The kernel hands a GSO super-frame over in one of two checksum states:
//! CHECKSUM_PARTIAL (NEEDS_CSUM with `csum_start`/`csum_offset`; the L4 checksum field
//! holds the pseudo-header sum) — what TSO from a local socket produces — or, after GRO,
//! CHECKSUM_UNNECESSARY (DATA_VALID, no checksum location; the field holds the full
//! checksum of the super-frame). Transmit paths and software segmentation want the
//! first form, so [`normalize_rx`] turns the second into it. UML ignores GSO metadata on
//! DATA_VALID frames and would mistake such a frame for a single huge packet.

use super::checksum;
use super::ethernet::{self, EtherType};
use super::vnet::{self, Csum, GsoType};

/// Why a received frame's metadata cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    #[error("{0}")]
    Vnet(#[from] vnet::VnetError),
    #[error("GSO frame without a TCP/UDP header over IPv4/IPv6 where its type says")]
    NoL4Header,
}

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// Validate `meta` against `frame` and bring a DATA_VALID GSO frame into NEEDS_CSUM
/// form (locating the L4 header and storing the pseudo-header sum in its checksum
/// field). Non-GSO DATA_VALID frames keep their complete checksums.
pub fn normalize_rx(frame: &mut [u8], meta: &mut vnet::Repr) -> Result<(), OffloadError> {
    if meta.is_gso() && meta.csum.is_none() {
        let (l4, csum_offset, pseudo) =
            locate_l4(frame, meta.gso_type).ok_or(OffloadError::NoL4Header)?;
        let field = l4 + usize::from(csum_offset);
        let value = checksum::fold(pseudo);
        frame
            .get_mut(field..field + 2)
            .ok_or(OffloadError::NoL4Header)?
            .copy_from_slice(&value.to_be_bytes());
        meta.csum = Some(Csum {
            start: l4 as u16,
            offset: csum_offset,
        });
        meta.data_valid = false;
    }
    meta.validate(frame.len())?;
    Ok(())
}

/// L4 offset, checksum field offset and pseudo-header sum of a TCP/UDP frame.
fn locate_l4(frame: &[u8], gso: GsoType) -> Option<(usize, u16, u64)> {
    let (et, l3) = ethernet::l3_offset(frame)?;
    let (l4, proto, pseudo_of) = match et {
        EtherType::Ipv4 => {
            let ip = frame.get(l3..l3 + 20)?;
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            if ip[0] >> 4 != 4 || ihl < 20 {
                return None;
            }
            let (src, dst) = (
                <[u8; 4]>::try_from(&ip[12..16]).ok()?,
                <[u8; 4]>::try_from(&ip[16..20]).ok()?,
            );
            let proto = ip[9];
            let l4 = l3 + ihl;
            let len = u32::try_from(frame.len().checked_sub(l4)?).ok()?;
            (l4, proto, checksum::pseudo_v4(src, dst, proto, len))
        }
        EtherType::Ipv6 => {
            let ip = frame.get(l3..l3 + 40)?;
            if ip[0] >> 4 != 6 {
                return None;
            }
            let (src, dst) = (
                <[u8; 16]>::try_from(&ip[8..24]).ok()?,
                <[u8; 16]>::try_from(&ip[24..40]).ok()?,
            );
            let proto = ip[6];
            let l4 = l3 + 40;
            let len = u32::try_from(frame.len().checked_sub(l4)?).ok()?;
            (l4, proto, checksum::pseudo_v6(src, dst, proto, len))
        }
        _ => return None,
    };
    let csum_offset = match (gso, proto) {
        (GsoType::TcpV4 | GsoType::TcpV6, IPPROTO_TCP) => 16,
        (GsoType::UdpL4 | GsoType::Udp, IPPROTO_UDP) => 6,
        _ => return None,
    };
    frame.get(l4..l4 + usize::from(csum_offset) + 2)?;
    Some((l4, csum_offset, pseudo_of))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::gso;

    fn tcp4_frame(payload: usize) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1000, 2000, 7, 65000);
        let data = vec![0x5a; payload];
        let mut out = Vec::new();
        b.write(&mut out, &data).unwrap();
        out
    }

    #[test]
    fn data_valid_gso_becomes_needs_csum_and_segments_cleanly() {
        let mut frame = tcp4_frame(8000);
        let mut meta = vnet::Repr {
            gso_type: GsoType::TcpV4,
            gso_size: 1448,
            data_valid: true,
            ..vnet::Repr::NONE
        };
        normalize_rx(&mut frame, &mut meta).unwrap();
        assert_eq!(
            meta.csum,
            Some(Csum {
                start: 34,
                offset: 16
            })
        );
        assert!(!meta.data_valid);
        let mut scratch = [0u8; gso::MAX_HEADERS];
        let mut n = 0;
        let st = gso::segment(&frame, &meta, gso::CsumMode::Full, &mut scratch, |seg| {
            let mut pkt = seg.headers.to_vec();
            pkt.extend_from_slice(&frame[seg.payload.clone()]);
            let p = etherparse::SlicedPacket::from_ethernet(&pkt).unwrap();
            let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else {
                panic!("not tcp")
            };
            let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
                panic!("not ipv4")
            };
            let want = t
                .to_header()
                .calc_checksum_ipv4(&ip.header().to_header(), t.payload())
                .unwrap();
            assert_eq!(t.checksum(), want);
            n += 1;
            true
        })
        .unwrap();
        assert!(st.is_complete());
        assert_eq!(n, 8000usize.div_ceil(1448));
    }

    #[test]
    fn plain_and_bad_frames() {
        let mut frame = tcp4_frame(100);
        let mut meta = vnet::Repr {
            data_valid: true,
            ..vnet::Repr::NONE
        };
        normalize_rx(&mut frame, &mut meta).unwrap();
        assert!(meta.data_valid, "non-GSO DATA_VALID frames are left alone");
        let mut arp = vec![0xffu8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let mut meta = vnet::Repr {
            gso_type: GsoType::TcpV4,
            gso_size: 1448,
            data_valid: true,
            ..vnet::Repr::NONE
        };
        assert_eq!(
            normalize_rx(&mut arp, &mut meta),
            Err(OffloadError::NoL4Header)
        );
        let mut short = frame[..20].to_vec();
        assert!(normalize_rx(&mut short, &mut meta).is_err());
    }
}
