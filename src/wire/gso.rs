//! Software GSO: splits TCP (TSO) and UDP (USO) super-frames described
//! by a virtio-net header into wire-sized segments without copying the
//! payload (each segment = fresh headers + a range of the original frame),
//! and completes partial checksums of non-GSO frames.
//!
//! Rules follow Linux (`inet_gso_segment`, `tcp_gso_segment`,
//! `__udp_gso_segment`): IPv4 total length, identification `+ i` and
//! header checksum per segment; IPv6 payload length (extension headers are
//! walked and must end at `csum_start`); TCP `seq + i * mss`, FIN/PSH only
//! on the last segment, CWR only on the first; USO gives every segment its
//! own UDP length. L4 checksums are recomputed from the addresses (the
//! input's pseudo-header sum is not trusted); a computed 0 is stored as
//! `0xffff`. Input is validated completely (IP/UDP lengths must match the
//! frame); malformed input yields a [`GsoError`], never a panic.

use core::ops::Range;

use thiserror::Error;

use super::checksum::{self, ChecksumError};
use super::ethernet::{self, EtherType};
use super::vnet::{self, Csum, GsoType, VnetError};

/// Largest header block (L2 + VLANs + IP + extensions + L4) supported.
pub const MAX_HEADERS: usize = 192;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const TCP_CSUM_OFFSET: u16 = 16;
const UDP_CSUM_OFFSET: u16 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;
const TCP_FLAGS: usize = 13;

/// How segment L4 checksums are produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CsumMode {
    /// Compute the full L4 checksum; segment vnet header is all-zero.
    Full,
    /// Store the pseudo-header sum and report NEEDS_CSUM in the segment's
    /// vnet header (for ports with a vnet header but no GSO).
    Partial,
}

/// Header layer named in [`GsoError::Truncated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Ethernet header and VLAN tags.
    Ethernet,
    /// IPv4 header with options.
    Ipv4,
    /// IPv6 fixed header.
    Ipv6,
    /// An IPv6 extension header.
    Ipv6Ext,
    /// TCP header with options.
    Tcp,
    /// UDP header.
    Udp,
}

/// Errors from segmentation and checksum completion. Offsets count from
/// the start of the Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum GsoError {
    /// The virtio-net header is invalid for this frame.
    #[error("vnet header: {0}")]
    Vnet(#[from] VnetError),
    /// Checksum completion failed.
    #[error("checksum: {0}")]
    Checksum(#[from] ChecksumError),
    /// `segment` was called for a frame whose gso_type is NONE.
    #[error("frame is not a GSO frame")]
    NotGso,
    /// `finish_partial` was called for a GSO frame.
    #[error("frame is a GSO frame ({gso_type}); segment it instead")]
    IsGso { gso_type: GsoType },
    /// GSO type not implemented (UFO).
    #[error("GSO type {gso_type} is not supported")]
    Unsupported { gso_type: GsoType },
    /// The `layer` header starting at `offset` runs past the frame's end.
    #[error("{layer:?} header at offset {offset} truncated ({frame_len}-byte frame)")]
    Truncated {
        layer: Layer,
        offset: usize,
        frame_len: usize,
    },
    /// The EtherType after the VLAN tags does not fit the GSO type.
    #[error("EtherType {ethertype:#06x} does not match GSO type {gso_type}")]
    EtherTypeMismatch { ethertype: u16, gso_type: GsoType },
    /// The IP version nibble disagrees with the EtherType.
    #[error("IP version {version}, expected {expected}")]
    IpVersion { version: u8, expected: u8 },
    /// IPv4 IHL or TCP data offset below 5 (`header_len` in bytes).
    #[error("{layer:?} header length {header_len} below 20")]
    HeaderLen { layer: Layer, header_len: usize },
    /// The IPv4 packet is a fragment (MF set or offset non-zero).
    #[error("IPv4 fragment (flags/offset {frag_field:#06x}) cannot be segmented")]
    Ipv4Fragment { frag_field: u16 },
    /// The IPv4 total length, IPv6 payload length or UDP length field
    /// (`length`) disagrees with the bytes the frame holds (`available`).
    #[error("{layer:?} length field {length} but frame holds {available} bytes")]
    LengthMismatch {
        layer: Layer,
        length: usize,
        available: usize,
    },
    /// The upper-layer IP protocol does not fit the GSO type.
    #[error("IP protocol {protocol} does not match GSO type {gso_type}")]
    ProtocolMismatch { protocol: u8, gso_type: GsoType },
    /// `csum_start` is not where parsing the IP headers puts the L4 header.
    #[error("csum_start {csum_start} but L4 header is at {l4}")]
    L4OffsetMismatch { csum_start: usize, l4: usize },
    /// `csum_offset` is not the L4 checksum field (16 for TCP, 6 for UDP).
    #[error("csum_offset {csum_offset}, expected {expected}")]
    CsumOffsetMismatch { csum_offset: u16, expected: u16 },
    /// Header block of `len` bytes exceeds [`MAX_HEADERS`].
    #[error("headers of {len} bytes exceed {MAX_HEADERS}")]
    HeadersTooLong { len: usize },
    /// Output buffer of `len` bytes, `needed` required.
    #[error("output buffer of {len} bytes, need {needed}")]
    BufferTooSmall { needed: usize, len: usize },
    /// Segment `index` requested from a plan of `count` segments.
    #[error("segment {index} out of range ({count} segments)")]
    IndexOutOfRange { index: usize, count: usize },
}

/// One output segment: `headers` followed by `frame[payload]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Freshly written L2..L4 headers (valid only during the callback).
    pub headers: &'a [u8],
    /// Payload byte range in the original frame.
    pub payload: Range<usize>,
    /// Virtio-net header for the segment: never GSO; NEEDS_CSUM with
    /// `csum_start`/`csum_offset` in [`CsumMode::Partial`], all-zero in
    /// [`CsumMode::Full`].
    pub vnet: vnet::Repr,
}

impl Segment<'_> {
    /// Wire length (headers + payload), without any vnet header.
    pub fn wire_len(&self) -> usize {
        self.headers.len() + self.payload.len()
    }
}

/// Outcome of a segmentation run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SegmentStats {
    /// Segments the callback accepted in this run.
    pub emitted: usize,
    /// Index of the first segment not accepted (`total` when done); pass it
    /// to [`Plan::emit_from`] to resume.
    pub next: usize,
    /// Segments the frame splits into.
    pub total: usize,
    /// Wire bytes (headers + payload) of the accepted segments.
    pub bytes: usize,
}

impl SegmentStats {
    /// True if every segment was accepted.
    pub fn is_complete(&self) -> bool {
        self.next == self.total
    }
}

/// A validated GSO frame, ready to produce segments in any order.
///
/// Building a plan parses and checks every header once; segment headers
/// can then be written for any index into any buffer (e.g. straight into
/// a ring slot or one `iovec` per segment for `sendmmsg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan<'a> {
    frame: &'a [u8],
    ipv4: bool,
    tcp: bool,
    l3: usize,
    l4: usize,
    hdr_len: usize,
    mss: usize,
    count: usize,
    csum_offset: u16,
    pseudo: u64,
    ip_id: u16,
    seq: u32,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

impl<'a> Plan<'a> {
    /// Parses and validates a GSO super-frame (Ethernet header onward) and
    /// its virtio-net header.
    pub fn new(frame: &'a [u8], vnet: &vnet::Repr) -> Result<Plan<'a>, GsoError> {
        let frame_len = frame.len();
        let gso_type = vnet.gso_type;
        let (want_v4, want_proto, want_offset) = match gso_type {
            GsoType::None => return Err(GsoError::NotGso),
            GsoType::Udp => return Err(GsoError::Unsupported { gso_type }),
            GsoType::TcpV4 => (Some(true), IPPROTO_TCP, TCP_CSUM_OFFSET),
            GsoType::TcpV6 => (Some(false), IPPROTO_TCP, TCP_CSUM_OFFSET),
            GsoType::UdpL4 => (None, IPPROTO_UDP, UDP_CSUM_OFFSET),
        };
        let tcp = want_proto == IPPROTO_TCP;
        vnet.validate(frame_len)?;
        let csum = vnet.csum.ok_or(VnetError::GsoWithoutCsum { gso_type })?;
        let (csum_start, csum_offset) = (usize::from(csum.start), csum.offset);
        let truncated = |layer, offset| GsoError::Truncated {
            layer,
            offset,
            frame_len,
        };

        let (ethertype, l3) = ethernet::l3_offset(frame).ok_or(truncated(Layer::Ethernet, 0))?;
        let ipv4 = match ethertype {
            EtherType::Ipv4 if want_v4 != Some(false) => true,
            EtherType::Ipv6 if want_v4 != Some(true) => false,
            other => {
                return Err(GsoError::EtherTypeMismatch {
                    ethertype: other.into(),
                    gso_type,
                });
            }
        };
        // (layer, version, fixed header length, offset of the length field)
        let (layer, expected, min_len, len_at) = if ipv4 {
            (Layer::Ipv4, 4, 20, 2)
        } else {
            (Layer::Ipv6, 6, 40, 4)
        };
        let ip = frame.get(l3..l3 + min_len).ok_or(truncated(layer, l3))?;
        let version = ip[0] >> 4;
        if version != expected {
            return Err(GsoError::IpVersion { version, expected });
        }
        let length = usize::from(be16(ip, len_at));
        let available = frame_len - l3 - if ipv4 { 0 } else { 40 };
        if length != available {
            return Err(GsoError::LengthMismatch {
                layer,
                length,
                available,
            });
        }
        let (l4, protocol, pseudo, ip_id) = if ipv4 {
            let header_len = usize::from(ip[0] & 0x0f) * 4;
            if header_len < 20 {
                return Err(GsoError::HeaderLen { layer, header_len });
            }
            if l3 + header_len > frame_len {
                return Err(truncated(Layer::Ipv4, l3));
            }
            let frag_field = be16(ip, 6);
            if frag_field & 0x3fff != 0 {
                return Err(GsoError::Ipv4Fragment { frag_field });
            }
            let addr = |at: usize| [ip[at], ip[at + 1], ip[at + 2], ip[at + 3]];
            let pseudo = checksum::pseudo_v4(addr(12), addr(16), ip[9], 0);
            (l3 + header_len, ip[9], pseudo, be16(ip, 4))
        } else {
            let (l4, protocol) = walk_ipv6_exts(frame, l3 + 40, ip[6])?;
            let addr = |at: usize| -> [u8; 16] { core::array::from_fn(|i| ip[at + i]) };
            let pseudo = checksum::pseudo_v6(addr(8), addr(24), protocol, 0);
            (l4, protocol, pseudo, 0)
        };

        if protocol != want_proto {
            return Err(GsoError::ProtocolMismatch { protocol, gso_type });
        }
        if l4 != csum_start {
            return Err(GsoError::L4OffsetMismatch { csum_start, l4 });
        }
        if csum_offset != want_offset {
            return Err(GsoError::CsumOffsetMismatch {
                csum_offset,
                expected: want_offset,
            });
        }
        let (hdr_len, seq) = if tcp {
            let th = frame.get(l4..l4 + 20).ok_or(truncated(Layer::Tcp, l4))?;
            let header_len = usize::from(th[12] >> 4) * 4;
            if header_len < 20 {
                let layer = Layer::Tcp;
                return Err(GsoError::HeaderLen { layer, header_len });
            }
            let seq = u32::from_be_bytes([th[4], th[5], th[6], th[7]]);
            (l4 + header_len, seq)
        } else {
            let uh = frame.get(l4..l4 + 8).ok_or(truncated(Layer::Udp, l4))?;
            let (length, available) = (usize::from(be16(uh, 4)), frame_len - l4);
            if length != available {
                let layer = Layer::Udp;
                return Err(GsoError::LengthMismatch {
                    layer,
                    length,
                    available,
                });
            }
            (l4 + 8, 0)
        };
        if hdr_len > frame_len {
            return Err(truncated(Layer::Tcp, l4));
        }
        if hdr_len > MAX_HEADERS {
            return Err(GsoError::HeadersTooLong { len: hdr_len });
        }
        let mss = usize::from(vnet.gso_size);
        let count = (frame_len - hdr_len).div_ceil(mss).max(1);
        Ok(Plan {
            frame,
            ipv4,
            tcp,
            l3,
            l4,
            hdr_len,
            mss,
            count,
            csum_offset,
            pseudo,
            ip_id,
            seq,
        })
    }

    /// Number of segments (at least 1; a payload ≤ MSS gives one).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Length of every segment's header block.
    pub fn header_len(&self) -> usize {
        self.hdr_len
    }

    /// Offset of the L4 header (= `csum_start`).
    pub fn l4_offset(&self) -> usize {
        self.l4
    }

    /// Payload bytes per segment (the last may be shorter).
    pub fn mss(&self) -> usize {
        self.mss
    }

    /// Longest segment on the wire (headers + payload).
    pub fn max_segment_len(&self) -> usize {
        self.hdr_len + self.payload_range(0).len()
    }

    /// Payload range of segment `index` in the original frame (empty if
    /// `index` is out of range).
    pub fn payload_range(&self, index: usize) -> Range<usize> {
        let len = self.frame.len();
        let start = index
            .checked_mul(self.mss)
            .and_then(|o| o.checked_add(self.hdr_len))
            .map_or(len, |s| s.min(len));
        start..start.saturating_add(self.mss).min(len)
    }

    /// Writes the headers of segment `index` into `out[..header_len()]`
    /// and returns the segment's virtio-net header.
    pub fn write_headers(
        &self,
        index: usize,
        mode: CsumMode,
        out: &mut [u8],
    ) -> Result<vnet::Repr, GsoError> {
        if index >= self.count {
            let count = self.count;
            return Err(GsoError::IndexOutOfRange { index, count });
        }
        let len = out.len();
        let out = out
            .get_mut(..self.hdr_len)
            .ok_or(GsoError::BufferTooSmall {
                needed: self.hdr_len,
                len,
            })?;
        Ok(self.fill(index, mode, out))
    }

    /// Produces segments `first..count()` through `emit`, writing headers
    /// into `scratch`. `emit` returns `true` if it took the segment, or
    /// `false` to stop without taking it.
    pub fn emit_from(
        &self,
        first: usize,
        mode: CsumMode,
        scratch: &mut [u8; MAX_HEADERS],
        mut emit: impl FnMut(Segment<'_>) -> bool,
    ) -> SegmentStats {
        let mut stats = SegmentStats {
            emitted: 0,
            next: first.min(self.count),
            total: self.count,
            bytes: 0,
        };
        while stats.next < self.count {
            let headers = &mut scratch[..self.hdr_len];
            let vnet = self.fill(stats.next, mode, headers);
            let seg = Segment {
                headers,
                payload: self.payload_range(stats.next),
                vnet,
            };
            let len = seg.wire_len();
            if !emit(seg) {
                break;
            }
            stats.emitted += 1;
            stats.next += 1;
            stats.bytes += len;
        }
        stats
    }

    /// Writes segment headers; `index < count` and `h.len() == hdr_len`.
    fn fill(&self, index: usize, mode: CsumMode, h: &mut [u8]) -> vnet::Repr {
        let payload = self.payload_range(index);
        h.copy_from_slice(&self.frame[..self.hdr_len]);
        let (l3, l4) = (self.l3, self.l4);
        let l4_len = self.hdr_len - l4 + payload.len();
        if self.ipv4 {
            let ip = &mut h[l3..l4];
            let total = (self.hdr_len - l3 + payload.len()) as u16;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            let id = self.ip_id.wrapping_add(index as u16);
            ip[4..6].copy_from_slice(&id.to_be_bytes());
            let csum = checksum::finish(checksum::sum(&ip[12..], checksum::sum(&ip[..10], 0)));
            ip[10..12].copy_from_slice(&csum.to_be_bytes());
        } else {
            let plen = (self.hdr_len - l3 - 40 + payload.len()) as u16;
            h[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
        }
        if self.tcp {
            let th = &mut h[l4..];
            // index * mss <= IP payload length, so no overflow.
            let seq = self.seq.wrapping_add((index * self.mss) as u32);
            th[4..8].copy_from_slice(&seq.to_be_bytes());
            if index + 1 < self.count {
                th[TCP_FLAGS] &= !(TCP_FIN | TCP_PSH);
            }
            if index > 0 {
                th[TCP_FLAGS] &= !TCP_CWR;
            }
        } else {
            h[l4 + 4..l4 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        }
        let field = l4 + usize::from(self.csum_offset);
        let pseudo = checksum::add(self.pseudo, l4_len as u64);
        match mode {
            CsumMode::Full => {
                h[field..field + 2].fill(0);
                let s = checksum::sum(&h[l4..], pseudo);
                let csum = match checksum::finish(checksum::sum(&self.frame[payload], s)) {
                    0 => 0xffff,
                    c => c,
                };
                h[field..field + 2].copy_from_slice(&csum.to_be_bytes());
                vnet::Repr::NONE
            }
            CsumMode::Partial => {
                let sum = checksum::fold(pseudo);
                h[field..field + 2].copy_from_slice(&sum.to_be_bytes());
                vnet::Repr {
                    csum: Some(Csum {
                        start: l4 as u16,
                        offset: self.csum_offset,
                    }),
                    ..vnet::Repr::NONE
                }
            }
        }
    }
}

/// Walks IPv6 extension headers (hop-by-hop, routing, destination options,
/// AH) from `off`; returns the upper-layer offset and protocol.
fn walk_ipv6_exts(frame: &[u8], mut off: usize, mut next: u8) -> Result<(usize, u8), GsoError> {
    loop {
        if !matches!(next, 0 | 43 | 51 | 60) {
            return Ok((off, next));
        }
        let ext = frame.get(off..off + 2).ok_or(GsoError::Truncated {
            layer: Layer::Ipv6Ext,
            offset: off,
            frame_len: frame.len(),
        })?;
        let n = usize::from(ext[1]);
        // AH counts 4-byte units minus 2; the others 8-byte units minus 1.
        off += if next == 51 { (n + 2) * 4 } else { (n + 1) * 8 };
        next = ext[0];
    }
}

/// Segments a GSO super-frame; see [`Plan::new`] and [`Plan::emit_from`].
///
/// `frame` starts at the Ethernet header; `vnet` is its parsed virtio-net
/// header. Each segment is passed to `emit` (headers in `scratch`, payload
/// as a range of `frame`); returning `false` stops without taking it.
pub fn segment(
    frame: &[u8],
    vnet: &vnet::Repr,
    mode: CsumMode,
    scratch: &mut [u8; MAX_HEADERS],
    emit: impl FnMut(Segment<'_>) -> bool,
) -> Result<SegmentStats, GsoError> {
    Ok(Plan::new(frame, vnet)?.emit_from(0, mode, scratch, emit))
}

/// Completes the partial L4 checksum of a non-GSO frame in place (no-op
/// without NEEDS_CSUM). The frame can then go out with [`vnet::Repr::NONE`].
pub fn finish_partial(frame: &mut [u8], vnet: &vnet::Repr) -> Result<(), GsoError> {
    if vnet.is_gso() {
        return Err(GsoError::IsGso {
            gso_type: vnet.gso_type,
        });
    }
    vnet.validate(frame.len())?;
    if let Some(Csum { start, offset }) = vnet.csum {
        checksum::complete(frame, start.into(), offset.into())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{
        IpHeaders, IpNumber, Ipv4Header, Ipv6Extensions, Ipv6FlowLabel, Ipv6Header,
        Ipv6RawExtHeader, NetHeaders, PacketBuilder, PacketHeaders, TransportHeader, VlanId,
    };
    use proptest::prelude::*;

    const SRC4: [u8; 4] = [10, 0, 0, 1];
    const DST4: [u8; 4] = [10, 0, 0, 2];
    const SRC6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const SEQ0: u32 = 0xffff_f000;
    const ID0: u16 = 0xfff0;

    /// What to build; see [`build`].
    #[derive(Debug, Clone, Copy)]
    struct Spec {
        v6: bool,
        tcp: bool,
        vlans: u8,
        /// IPv4 option bytes (multiple of 4) or IPv6 hop-by-hop payload
        /// bytes (0 or 6 + 8k).
        ip_opts: usize,
        /// TCP option bytes (multiple of 4).
        tcp_opts: usize,
        fin_psh: bool,
        cwr: bool,
        payload: usize,
        mss: u16,
    }

    const TCP4: Spec = Spec {
        v6: false,
        tcp: true,
        vlans: 0,
        ip_opts: 0,
        tcp_opts: 12,
        fin_psh: false,
        cwr: false,
        payload: 64000,
        mss: 1448,
    };

    struct Built {
        spec: Spec,
        frame: Vec<u8>,
        /// The frame as etherparse wrote it (complete checksum).
        complete: Vec<u8>,
        vnet: vnet::Repr,
        payload: Vec<u8>,
        l3: usize,
        l4: usize,
        hdr_len: usize,
    }

    fn pattern(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 8) as u8
            })
            .collect()
    }

    /// Builds a GSO super-frame the way the kernel hands it out: complete
    /// headers, L4 checksum field holding the folded pseudo-header sum.
    fn build(spec: Spec) -> Built {
        let payload = pattern(spec.payload, spec.payload as u32 ^ u32::from(spec.mss));
        let proto = if spec.tcp {
            IpNumber::TCP
        } else {
            IpNumber::UDP
        };
        let (net, ip_len) = if spec.v6 {
            let h = Ipv6Header {
                traffic_class: 0,
                flow_label: Ipv6FlowLabel::try_new(0x12345).unwrap(),
                payload_length: 0,
                next_header: proto,
                hop_limit: 64,
                source: SRC6,
                destination: DST6,
            };
            let mut ext = Ipv6Extensions::default();
            if spec.ip_opts > 0 {
                let mut p = vec![0u8; spec.ip_opts];
                p[0] = 1; // PadN
                p[1] = (spec.ip_opts - 2) as u8;
                ext.hop_by_hop_options = Some(Ipv6RawExtHeader::new_raw(proto, &p).unwrap());
            }
            let ext_len = if spec.ip_opts > 0 {
                spec.ip_opts + 2
            } else {
                0
            };
            (IpHeaders::Ipv6(h, ext), 40 + ext_len)
        } else {
            let mut h = Ipv4Header::new(0, 64, proto, SRC4, DST4).unwrap();
            h.identification = ID0;
            h.dont_fragment = true;
            if spec.ip_opts > 0 {
                let mut o = vec![1u8; spec.ip_opts]; // NOPs
                *o.last_mut().unwrap() = 0; // EOL
                h.options = o.as_slice().try_into().unwrap();
            }
            (IpHeaders::Ipv4(h, Default::default()), 20 + spec.ip_opts)
        };
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let ip = match spec.vlans {
            0 => eth.ip(net),
            1 => eth.single_vlan(VlanId::try_new(100).unwrap()).ip(net),
            _ => eth
                .double_vlan(VlanId::try_new(200).unwrap(), VlanId::try_new(100).unwrap())
                .ip(net),
        };
        let l3 = 14 + 4 * usize::from(spec.vlans);
        let l4 = l3 + ip_len;
        let mut complete = Vec::new();
        let l4_hdr = if spec.tcp {
            let mut opts = vec![1u8; spec.tcp_opts];
            if spec.tcp_opts >= 12 {
                opts[..12].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9]);
            }
            let mut t = ip.tcp(40000, 443, SEQ0, 65000).ack(77).ece();
            if spec.fin_psh {
                t = t.fin().psh();
            }
            if spec.cwr {
                t = t.cwr();
            }
            t.options_raw(&opts)
                .unwrap()
                .write(&mut complete, &payload)
                .unwrap();
            20 + spec.tcp_opts
        } else {
            ip.udp(5000, 6000).write(&mut complete, &payload).unwrap();
            8
        };
        let hdr_len = l4 + l4_hdr;
        assert_eq!(complete.len(), hdr_len + payload.len());
        let offset: u16 = if spec.tcp { 16 } else { 6 };
        let l4_len = (complete.len() - l4) as u32;
        let pseudo = if spec.v6 {
            checksum::pseudo_v6(SRC6, DST6, proto.0, l4_len)
        } else {
            checksum::pseudo_v4(SRC4, DST4, proto.0, l4_len)
        };
        let mut frame = complete.clone();
        let field = l4 + usize::from(offset);
        frame[field..field + 2].copy_from_slice(&checksum::fold(pseudo).to_be_bytes());
        let gso_type = match (spec.tcp, spec.v6) {
            (true, false) => GsoType::TcpV4,
            (true, true) => GsoType::TcpV6,
            (false, _) => GsoType::UdpL4,
        };
        let vnet = vnet::Repr {
            gso_type,
            gso_ecn: spec.cwr,
            gso_size: spec.mss,
            hdr_len: hdr_len as u16,
            csum: Some(Csum {
                start: l4 as u16,
                offset,
            }),
            data_valid: false,
        };
        Built {
            spec,
            frame,
            complete,
            vnet,
            payload,
            l3,
            l4,
            hdr_len,
        }
    }

    type Out = Vec<(Vec<u8>, vnet::Repr, Range<usize>)>;

    fn run(b: &Built, mode: CsumMode) -> Out {
        let mut scratch = [0u8; MAX_HEADERS];
        let mut out = Vec::new();
        let stats = segment(&b.frame, &b.vnet, mode, &mut scratch, |s| {
            let mut v = s.headers.to_vec();
            v.extend_from_slice(&b.frame[s.payload.clone()]);
            assert_eq!(v.len(), s.wire_len());
            out.push((v, s.vnet, s.payload));
            true
        })
        .unwrap();
        assert!(stats.is_complete());
        assert_eq!(stats.emitted, out.len());
        assert_eq!(stats.total, out.len());
        assert_eq!(stats.bytes, out.iter().map(|o| o.0.len()).sum::<usize>());
        out
    }

    fn l4_checksum_ok(net: &NetHeaders, t: &TransportHeader, payload: &[u8]) -> bool {
        let (got, expected) = match (net, t) {
            (NetHeaders::Ipv4(ip, _), TransportHeader::Tcp(t)) => {
                (t.checksum, t.calc_checksum_ipv4(ip, payload).unwrap())
            }
            (NetHeaders::Ipv6(ip, _), TransportHeader::Tcp(t)) => {
                (t.checksum, t.calc_checksum_ipv6(ip, payload).unwrap())
            }
            (NetHeaders::Ipv4(ip, _), TransportHeader::Udp(u)) => {
                (u.checksum, u.calc_checksum_ipv4(ip, payload).unwrap())
            }
            (NetHeaders::Ipv6(ip, _), TransportHeader::Udp(u)) => {
                (u.checksum, u.calc_checksum_ipv6(ip, payload).unwrap())
            }
            other => panic!("unexpected headers {other:?}"),
        };
        got == expected || (expected == 0 && got == 0xffff)
    }

    /// Header bytes every segment must copy verbatim from the original.
    fn unchanged(b: &Built) -> Vec<Range<usize>> {
        let (l3, l4) = (b.l3, b.l4);
        let mut r = Vec::new();
        r.push(0..l3);
        if b.spec.v6 {
            r.extend([l3..l3 + 4, l3 + 6..l4]);
        } else {
            r.extend([l3..l3 + 2, l3 + 6..l3 + 10, l3 + 12..l4]);
        }
        if b.spec.tcp {
            r.extend([
                l4..l4 + 4,
                l4 + 8..l4 + 13,
                l4 + 14..l4 + 16,
                l4 + 18..b.hdr_len,
            ]);
        } else {
            r.push(l4..l4 + 4);
        }
        r
    }

    /// Checks Full-mode segments against every rule.
    fn verify_full(b: &Built, segs: &Out) {
        let mss = usize::from(b.spec.mss);
        let n = b.payload.len().div_ceil(mss).max(1);
        assert_eq!(segs.len(), n);
        let flags0 = b.frame.get(b.l4 + 13).copied().unwrap_or(0);
        let mut joined = Vec::new();
        for (i, (bytes, vnet, range)) in segs.iter().enumerate() {
            assert_eq!(*vnet, vnet::Repr::NONE);
            assert_eq!(range.start, b.hdr_len + i * mss);
            assert!(bytes.len() <= b.hdr_len + mss);
            if i + 1 < n {
                assert_eq!(bytes.len(), b.hdr_len + mss);
            }
            for r in unchanged(b) {
                assert_eq!(bytes[r.clone()], b.frame[r.clone()], "seg {i} range {r:?}");
            }
            let p = PacketHeaders::from_ethernet_slice(bytes).unwrap();
            let payload = p.payload.slice();
            assert_eq!(payload, &b.frame[range.clone()]);
            let net = p.net.as_ref().unwrap();
            match net {
                NetHeaders::Ipv4(ip, _) => {
                    assert_eq!(ip.header_checksum, ip.calc_header_checksum());
                    assert!(checksum::verify_ipv4_header(&bytes[b.l3..]));
                    assert_eq!(usize::from(ip.total_len), bytes.len() - b.l3);
                    assert_eq!(ip.identification, ID0.wrapping_add(i as u16));
                    assert!(ip.dont_fragment && !ip.more_fragments);
                }
                NetHeaders::Ipv6(ip, _) => {
                    assert_eq!(usize::from(ip.payload_length), bytes.len() - b.l3 - 40);
                }
                NetHeaders::Arp(_) => panic!("arp"),
            }
            let t = p.transport.as_ref().unwrap();
            assert!(l4_checksum_ok(net, t, payload), "seg {i} checksum");
            match t {
                TransportHeader::Tcp(th) => {
                    let seq = SEQ0.wrapping_add((i * mss) as u32);
                    assert_eq!(th.sequence_number, seq);
                    let mut want = flags0;
                    if i + 1 < n {
                        want &= !(TCP_FIN | TCP_PSH);
                    }
                    if i > 0 {
                        want &= !TCP_CWR;
                    }
                    assert_eq!(bytes[b.l4 + 13], want, "seg {i} flags");
                }
                TransportHeader::Udp(uh) => {
                    assert_eq!(usize::from(uh.length), 8 + payload.len());
                    assert_ne!(uh.checksum, 0);
                }
                other => panic!("unexpected {other:?}"),
            }
            joined.extend_from_slice(payload);
        }
        assert_eq!(joined, b.payload);
    }

    /// Partial mode completed with `checksum::complete` equals Full mode.
    fn verify_partial(b: &Built, full: &Out) {
        let partial = run(b, CsumMode::Partial);
        assert_eq!(partial.len(), full.len());
        for ((pbytes, pvnet, prange), (fbytes, _, frange)) in partial.iter().zip(full) {
            assert_eq!(prange, frange);
            let csum = pvnet.csum.unwrap();
            assert_eq!(
                *pvnet,
                vnet::Repr {
                    csum: Some(Csum {
                        start: b.l4 as u16,
                        offset: if b.spec.tcp { 16 } else { 6 },
                    }),
                    ..vnet::Repr::NONE
                }
            );
            assert_eq!(pvnet.validate(pbytes.len()), Ok(()));
            let mut done = pbytes.clone();
            checksum::complete(&mut done, csum.start.into(), csum.offset.into()).unwrap();
            assert_eq!(&done, fbytes);
        }
    }

    fn check(spec: Spec) -> Out {
        let b = build(spec);
        let full = run(&b, CsumMode::Full);
        verify_full(&b, &full);
        verify_partial(&b, &full);
        full
    }

    #[test]
    fn tcp4_64k() {
        let segs = check(TCP4);
        assert_eq!(segs.len(), 45);
        // 20 + 32 + 1448 = 1500-byte IP packets.
        assert!(segs.iter().all(|s| s.0.len() - 14 <= 1500));
        assert_eq!(segs[0].0.len() - 14, 1500);
    }

    #[test]
    fn tcp4_ip_options_and_flags() {
        check(Spec {
            ip_opts: 8,
            fin_psh: true,
            cwr: true,
            mss: 1440,
            ..TCP4
        });
        check(Spec {
            ip_opts: 40,
            tcp_opts: 40,
            fin_psh: true,
            ..TCP4
        });
    }

    #[test]
    fn tcp4_vlan() {
        check(Spec { vlans: 1, ..TCP4 });
        check(Spec {
            vlans: 2,
            cwr: true,
            ..TCP4
        });
    }

    #[test]
    fn tcp6() {
        let tcp6 = Spec {
            v6: true,
            mss: 1428,
            ..TCP4
        };
        let segs = check(tcp6);
        assert!(segs.iter().all(|s| s.0.len() - 14 <= 1500));
        check(Spec {
            ip_opts: 14,
            fin_psh: true,
            cwr: true,
            vlans: 1,
            ..tcp6
        });
    }

    #[test]
    fn udp_uso() {
        let udp4 = Spec {
            tcp: false,
            tcp_opts: 0,
            mss: 1472,
            ..TCP4
        };
        let segs = check(udp4);
        assert_eq!(segs.len(), 64000usize.div_ceil(1472));
        check(Spec { vlans: 2, ..udp4 });
        check(Spec {
            v6: true,
            mss: 1452,
            ..udp4
        });
        check(Spec {
            v6: true,
            ip_opts: 6,
            ..udp4
        });
    }

    #[test]
    fn single_segment_equals_original() {
        for spec in [
            Spec {
                payload: 1000,
                fin_psh: true,
                cwr: true,
                ..TCP4
            },
            Spec {
                payload: 64000,
                mss: 65000,
                ..TCP4
            },
            Spec {
                payload: 1448,
                v6: true,
                ..TCP4
            },
            Spec {
                payload: 0,
                fin_psh: true,
                ..TCP4
            },
            Spec {
                payload: 1,
                tcp: false,
                tcp_opts: 0,
                ..TCP4
            },
        ] {
            let b = build(spec);
            let segs = check(spec);
            assert_eq!(segs.len(), 1);
            let field = b.l4 + if spec.tcp { 16 } else { 6 };
            let mut want = b.complete.clone();
            if want[field..field + 2] == [0, 0] && spec.tcp {
                want[field..field + 2].copy_from_slice(&[0xff, 0xff]);
            }
            assert_eq!(segs[0].0, want, "{spec:?}");
        }
    }

    #[test]
    fn exact_multiple_of_mss() {
        let segs = check(Spec {
            payload: 1448 * 10,
            fin_psh: true,
            ..TCP4
        });
        assert_eq!(segs.len(), 10);
        assert!(segs.iter().all(|s| s.2.len() == 1448));
        let segs = check(Spec {
            payload: 1000 * 7,
            mss: 1000,
            tcp: false,
            tcp_opts: 0,
            ..TCP4
        });
        assert_eq!(segs.len(), 7);
    }

    #[test]
    fn tiny_mss() {
        let segs = check(Spec {
            payload: 50,
            mss: 1,
            fin_psh: true,
            cwr: true,
            ..TCP4
        });
        assert_eq!(segs.len(), 50);
    }

    #[test]
    fn stop_and_resume() {
        let b = build(TCP4);
        let full = run(&b, CsumMode::Full);
        let plan = Plan::new(&b.frame, &b.vnet).unwrap();
        let mut scratch = [0u8; MAX_HEADERS];
        let mut got = Vec::new();
        let stats = plan.emit_from(0, CsumMode::Full, &mut scratch, |s| {
            if got.len() == 3 {
                return false;
            }
            got.push([s.headers, &b.frame[s.payload]].concat());
            true
        });
        assert_eq!((stats.emitted, stats.next, stats.total), (3, 3, full.len()));
        assert!(!stats.is_complete());
        let stats = plan.emit_from(stats.next, CsumMode::Full, &mut scratch, |s| {
            got.push([s.headers, &b.frame[s.payload]].concat());
            true
        });
        assert!(stats.is_complete());
        assert_eq!(stats.emitted, full.len() - 3);
        assert_eq!(got, full.iter().map(|f| f.0.clone()).collect::<Vec<_>>());
        let none = plan.emit_from(usize::MAX, CsumMode::Full, &mut scratch, |_| true);
        assert_eq!((none.emitted, none.next), (0, full.len()));
        let mut calls = 0;
        let first = segment(&b.frame, &b.vnet, CsumMode::Full, &mut scratch, |_| {
            calls += 1;
            false
        })
        .unwrap();
        assert_eq!(
            (calls, first.emitted, first.bytes, first.next),
            (1, 0, 0, 0)
        );
    }

    #[test]
    fn plan_random_access() {
        let b = build(Spec { vlans: 1, ..TCP4 });
        let full = run(&b, CsumMode::Full);
        let plan = Plan::new(&b.frame, &b.vnet).unwrap();
        assert_eq!(plan.count(), full.len());
        assert_eq!(plan.header_len(), b.hdr_len);
        assert_eq!(plan.l4_offset(), b.l4);
        assert_eq!(plan.mss(), 1448);
        assert_eq!(plan.max_segment_len(), b.hdr_len + 1448);
        let mut buf = vec![0u8; 2000];
        for i in (0..plan.count()).rev() {
            let vnet = plan.write_headers(i, CsumMode::Full, &mut buf).unwrap();
            assert_eq!(&buf[..b.hdr_len], &full[i].0[..b.hdr_len]);
            assert_eq!(vnet, vnet::Repr::NONE);
            assert_eq!(plan.payload_range(i), full[i].2);
        }
        let n = plan.count();
        assert_eq!(
            plan.write_headers(n, CsumMode::Full, &mut buf),
            Err(GsoError::IndexOutOfRange { index: n, count: n })
        );
        assert!(plan.payload_range(n).is_empty());
        assert!(plan.payload_range(usize::MAX).is_empty());
        assert_eq!(
            plan.write_headers(0, CsumMode::Full, &mut buf[..10]),
            Err(GsoError::BufferTooSmall {
                needed: b.hdr_len,
                len: 10
            })
        );
        // Partial headers into a caller buffer, as for an iovec batch.
        let vnet = plan.write_headers(3, CsumMode::Partial, &mut buf).unwrap();
        let csum = vnet.csum.unwrap();
        let mut seg = [&buf[..b.hdr_len], &b.frame[plan.payload_range(3)]].concat();
        checksum::complete(&mut seg, csum.start.into(), csum.offset.into()).unwrap();
        assert_eq!(seg, full[3].0);
    }

    fn seg_err(frame: &[u8], vnet: &vnet::Repr) -> GsoError {
        let mut scratch = [0u8; MAX_HEADERS];
        segment(frame, vnet, CsumMode::Full, &mut scratch, |_| true).unwrap_err()
    }

    #[test]
    fn truncated_frames() {
        for spec in [
            TCP4,
            Spec {
                v6: true,
                ip_opts: 14,
                ..TCP4
            },
            Spec {
                tcp: false,
                tcp_opts: 0,
                vlans: 2,
                ..TCP4
            },
        ] {
            let b = build(Spec {
                payload: 3000,
                ..spec
            });
            let cuts = (0..b.hdr_len + 4).chain((b.hdr_len..b.frame.len()).step_by(97));
            for cut in cuts.chain([b.frame.len() - 1]) {
                let frame = &b.frame[..cut];
                assert!(Plan::new(frame, &b.vnet).is_err(), "cut {cut}");
                // Even with a vnet header fitted to the short frame.
                let fitted = vnet::Repr {
                    hdr_len: 0,
                    ..b.vnet
                };
                assert!(Plan::new(frame, &fitted).is_err(), "cut {cut}");
            }
            let long = [&b.frame[..], &[0u8; 4]].concat();
            assert!(matches!(
                seg_err(&long, &b.vnet),
                GsoError::LengthMismatch { .. }
            ));
        }
    }

    #[test]
    fn bogus_vnet_fields() {
        let b = build(Spec {
            payload: 5000,
            ..TCP4
        });
        let l4 = b.l4 as u16;
        let with_csum = |start: u16, offset: u16| vnet::Repr {
            csum: Some(Csum { start, offset }),
            ..b.vnet
        };
        for start in [0, 14, l4 - 1, l4 + 2, l4 + 20] {
            assert_eq!(
                seg_err(&b.frame, &with_csum(start, 16)),
                GsoError::L4OffsetMismatch {
                    csum_start: start.into(),
                    l4: b.l4
                }
            );
        }
        assert_eq!(
            seg_err(&b.frame, &with_csum(l4, 6)),
            GsoError::CsumOffsetMismatch {
                csum_offset: 6,
                expected: 16
            }
        );
        assert!(matches!(
            seg_err(&b.frame, &with_csum(u16::MAX, 16)),
            GsoError::Vnet(VnetError::CsumOutOfFrame { .. })
        ));
        assert_eq!(
            seg_err(
                &b.frame,
                &vnet::Repr {
                    csum: None,
                    ..b.vnet
                }
            ),
            GsoError::Vnet(VnetError::GsoWithoutCsum {
                gso_type: GsoType::TcpV4
            })
        );
        assert_eq!(
            seg_err(
                &b.frame,
                &vnet::Repr {
                    gso_size: 0,
                    ..b.vnet
                }
            ),
            GsoError::Vnet(VnetError::GsoSizeZero {
                gso_type: GsoType::TcpV4
            })
        );
        let kind = |gso_type| vnet::Repr { gso_type, ..b.vnet };
        assert_eq!(seg_err(&b.frame, &kind(GsoType::None)), GsoError::NotGso);
        assert_eq!(
            seg_err(&b.frame, &kind(GsoType::Udp)),
            GsoError::Unsupported {
                gso_type: GsoType::Udp
            }
        );
        assert_eq!(
            seg_err(&b.frame, &kind(GsoType::TcpV6)),
            GsoError::EtherTypeMismatch {
                ethertype: 0x0800,
                gso_type: GsoType::TcpV6
            }
        );
        assert_eq!(
            seg_err(&b.frame, &kind(GsoType::UdpL4)),
            GsoError::ProtocolMismatch {
                protocol: 6,
                gso_type: GsoType::UdpL4
            }
        );
        let u = build(Spec {
            tcp: false,
            tcp_opts: 0,
            payload: 5000,
            ..TCP4
        });
        assert_eq!(
            seg_err(
                &u.frame,
                &vnet::Repr {
                    gso_type: GsoType::TcpV4,
                    ..u.vnet
                }
            ),
            GsoError::ProtocolMismatch {
                protocol: 17,
                gso_type: GsoType::TcpV4
            }
        );
    }

    #[test]
    fn garbled_headers() {
        let b = build(Spec {
            payload: 5000,
            ..TCP4
        });
        let patched = |at: usize, val: &[u8]| {
            let mut f = b.frame.clone();
            f[at..at + val.len()].copy_from_slice(val);
            f
        };
        let l3 = b.l3;
        assert_eq!(
            seg_err(&patched(12, &[0x08, 0x06]), &b.vnet),
            GsoError::EtherTypeMismatch {
                ethertype: 0x0806,
                gso_type: GsoType::TcpV4
            }
        );
        assert_eq!(
            seg_err(&patched(l3, &[0x65]), &b.vnet),
            GsoError::IpVersion {
                version: 6,
                expected: 4
            }
        );
        assert_eq!(
            seg_err(&patched(l3, &[0x44]), &b.vnet),
            GsoError::HeaderLen {
                layer: Layer::Ipv4,
                header_len: 16
            }
        );
        assert_eq!(
            seg_err(&patched(l3 + 6, &[0x20, 0x00]), &b.vnet),
            GsoError::Ipv4Fragment { frag_field: 0x2000 }
        );
        assert_eq!(
            seg_err(&patched(l3 + 6, &[0x40, 0x01]), &b.vnet),
            GsoError::Ipv4Fragment { frag_field: 0x4001 }
        );
        assert!(matches!(
            seg_err(&patched(l3 + 2, &[0x10, 0x00]), &b.vnet),
            GsoError::LengthMismatch {
                layer: Layer::Ipv4,
                length: 4096,
                ..
            }
        ));
        assert_eq!(
            seg_err(&patched(b.l4 + 12, &[0x40]), &b.vnet),
            GsoError::HeaderLen {
                layer: Layer::Tcp,
                header_len: 16
            }
        );
        let u = build(Spec {
            tcp: false,
            tcp_opts: 0,
            payload: 5000,
            ..TCP4
        });
        let mut f = u.frame.clone();
        f[u.l4 + 4..u.l4 + 6].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(
            seg_err(&f, &u.vnet),
            GsoError::LengthMismatch {
                layer: Layer::Udp,
                length: 100,
                available: 5008
            }
        );
        // IPv6 whose next header is a fragment header.
        let v = build(Spec {
            v6: true,
            ip_opts: 6,
            payload: 5000,
            ..TCP4
        });
        let mut f = v.frame.clone();
        f[v.l3 + 40] = 44;
        assert_eq!(
            seg_err(&f, &v.vnet),
            GsoError::ProtocolMismatch {
                protocol: 44,
                gso_type: GsoType::TcpV6
            }
        );
        // Hop-by-hop claiming more than the frame holds.
        let mut f = v.frame.clone();
        f[v.l3 + 40] = 0;
        f[v.l3 + 41] = 255;
        assert!(Plan::new(&f, &v.vnet).is_err());
    }

    #[test]
    fn header_limit() {
        // 14 + 40 + 96 (hop-by-hop) + 40 (TCP) = 190 fits.
        let spec = Spec {
            v6: true,
            ip_opts: 94,
            tcp_opts: 20,
            payload: 3000,
            ..TCP4
        };
        let b = build(spec);
        assert_eq!(b.hdr_len, 190);
        check(spec);
        let b = build(Spec {
            ip_opts: 102,
            ..spec
        });
        assert_eq!(
            seg_err(&b.frame, &b.vnet),
            GsoError::HeadersTooLong { len: 198 }
        );
        let b = build(Spec {
            vlans: 2,
            ip_opts: 40,
            tcp_opts: 40,
            ..TCP4
        });
        assert_eq!(b.hdr_len, 142);
        check(b.spec);
    }

    #[test]
    fn finish_partial_non_gso() {
        for (v6, tcp) in [(false, true), (false, false), (true, true), (true, false)] {
            let b = build(Spec {
                v6,
                tcp,
                tcp_opts: if tcp { 12 } else { 0 },
                payload: 1200,
                ..TCP4
            });
            let vnet = vnet::Repr {
                gso_type: GsoType::None,
                gso_size: 0,
                ..b.vnet
            };
            let mut f = b.frame.clone();
            finish_partial(&mut f, &vnet).unwrap();
            let field = b.l4 + if tcp { 16 } else { 6 };
            let mut want = b.complete.clone();
            if want[field..field + 2] == [0, 0] {
                want[field..field + 2].copy_from_slice(&[0xff, 0xff]);
            }
            assert_eq!(f, want);
            let mut f2 = b.frame.clone();
            assert_eq!(
                finish_partial(&mut f2, &b.vnet),
                Err(GsoError::IsGso {
                    gso_type: b.vnet.gso_type
                })
            );
            assert_eq!(f2, b.frame);
            finish_partial(&mut f2, &vnet::Repr::NONE).unwrap();
            assert_eq!(f2, b.frame);
            assert!(matches!(
                finish_partial(&mut f2[..field + 1], &vnet),
                Err(GsoError::Vnet(VnetError::CsumOutOfFrame { .. }))
            ));
        }
    }

    #[test]
    fn error_messages() {
        let e = GsoError::Truncated {
            layer: Layer::Ipv6Ext,
            offset: 54,
            frame_len: 60,
        };
        assert_eq!(
            e.to_string(),
            "Ipv6Ext header at offset 54 truncated (60-byte frame)"
        );
        assert_eq!(
            GsoError::HeadersTooLong { len: 200 }.to_string(),
            "headers of 200 bytes exceed 192"
        );
    }

    fn arb_spec() -> impl Strategy<Value = Spec> {
        (
            any::<bool>(),
            any::<bool>(),
            0u8..3,
            0usize..4,
            0usize..6,
            any::<(bool, bool)>(),
            0usize..9000,
            1u16..3000,
        )
            .prop_map(
                |(v6, tcp, vlans, ip, tcpo, (fin_psh, cwr), payload, mss)| Spec {
                    v6,
                    tcp,
                    vlans,
                    ip_opts: if v6 { [0, 6, 14, 22][ip] } else { ip * 4 },
                    tcp_opts: if tcp { tcpo * 4 } else { 0 },
                    fin_psh,
                    cwr,
                    payload,
                    mss,
                },
            )
    }

    fn arb_repr() -> impl Strategy<Value = vnet::Repr> {
        (
            prop_oneof![
                Just(GsoType::None),
                Just(GsoType::TcpV4),
                Just(GsoType::TcpV6),
                Just(GsoType::Udp),
                Just(GsoType::UdpL4)
            ],
            any::<(bool, bool, u16, u16)>(),
            proptest::option::of((0u16..200, 0u16..20)),
        )
            .prop_map(
                |(gso_type, (gso_ecn, data_valid, gso_size, hdr_len), csum)| vnet::Repr {
                    gso_type,
                    gso_ecn,
                    gso_size,
                    hdr_len: hdr_len % 256,
                    csum: csum.map(|(start, offset)| Csum { start, offset }),
                    data_valid,
                },
            )
    }

    /// Runs everything on a candidate; only checks that outputs stay in bounds.
    fn exercise(frame: &[u8], vnet: &vnet::Repr) {
        let mut scratch = [0u8; MAX_HEADERS];
        for mode in [CsumMode::Full, CsumMode::Partial] {
            let _ = segment(frame, vnet, mode, &mut scratch, |s| {
                assert!(s.payload.end <= frame.len() && s.payload.start <= s.payload.end);
                assert!(s.headers.len() <= MAX_HEADERS);
                true
            });
        }
        let _ = finish_partial(&mut frame.to_vec(), vnet);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_frames_segment_correctly(spec in arb_spec()) {
            check(spec);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn never_panics_on_arbitrary_bytes(
            frame in proptest::collection::vec(any::<u8>(), 0..300),
            vnet in arb_repr(),
        ) {
            exercise(&frame, &vnet);
        }

        #[test]
        fn never_panics_on_mutated_frames(
            spec in arb_spec(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
            vnet_mut in any::<(u8, u16)>(),
        ) {
            let b = build(Spec { payload: spec.payload % 600, ..spec });
            let mut frame = b.frame.clone();
            let hdr = b.hdr_len;
            for (idx, val) in flips {
                frame[idx.index(hdr)] = val;
            }
            if vnet_mut.0 % 4 == 0 {
                frame.truncate(cut.index(frame.len() + 1));
            }
            let mut vnet = b.vnet;
            match vnet_mut.0 % 8 {
                1 => vnet.gso_size = vnet_mut.1,
                2 => vnet.csum = Some(Csum { start: vnet_mut.1 % 256, offset: 16 }),
                3 => vnet.csum = Some(Csum { start: b.l4 as u16, offset: vnet_mut.1 % 32 }),
                _ => {}
            }
            exercise(&frame, &vnet);
        }
    }
}
