//! Legacy `virtio_net_hdr` (10 bytes), as used by tap (`IFF_VNET_HDR`),
//! AF_PACKET (`PACKET_VNET_HDR`) and UML's vector transports.
//!
//! Layout: `flags` u8, `gso_type` u8, then `hdr_len`, `gso_size`,
//! `csum_start`, `csum_offset` as u16 in host byte order (legacy virtio on
//! a little-endian host is little endian). `csum_start` counts from the
//! first byte of the Ethernet header; `csum_offset` from `csum_start`.

use core::fmt;

use thiserror::Error;

/// Size of the legacy virtio-net header.
pub const HEADER_LEN: usize = 10;

/// `flags` bits.
pub mod flags {
    /// L4 checksum is partial: complete it from `csum_start`/`csum_offset`.
    pub const NEEDS_CSUM: u8 = 1;
    /// Checksums were verified by the sender (receive direction).
    pub const DATA_VALID: u8 = 2;
    /// Receive-segment-coalescing info replaces the csum fields.
    pub const RSC_INFO: u8 = 4;
}

/// Raw `gso_type` values.
pub mod gso_type {
    /// Not a GSO frame.
    pub const NONE: u8 = 0;
    /// TCP over IPv4.
    pub const TCPV4: u8 = 1;
    /// UDP fragmentation offload (UFO).
    pub const UDP: u8 = 3;
    /// TCP over IPv6.
    pub const TCPV6: u8 = 4;
    /// UDP segmentation offload (USO).
    pub const UDP_L4: u8 = 5;
    /// Flag: the TCP stream uses ECN (CWR may be set).
    pub const ECN: u8 = 0x80;
}

mod field {
    use core::ops::Range;

    pub const FLAGS: usize = 0;
    pub const GSO_TYPE: usize = 1;
    pub const HDR_LEN: Range<usize> = 2..4;
    pub const GSO_SIZE: Range<usize> = 4..6;
    pub const CSUM_START: Range<usize> = 6..8;
    pub const CSUM_OFFSET: Range<usize> = 8..10;
}

/// Errors from parsing or validating a virtio-net header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum VnetError {
    /// Buffer shorter than [`HEADER_LEN`].
    #[error("virtio-net header needs {HEADER_LEN} bytes, got {len}")]
    Truncated {
        /// Buffer length.
        len: usize,
    },
    /// Flag bits outside NEEDS_CSUM | DATA_VALID | RSC_INFO.
    #[error("unknown virtio-net flag bits {flags:#04x}")]
    UnknownFlags {
        /// The full flags byte.
        flags: u8,
    },
    /// RSC_INFO is receive-only and never negotiated by vecbox.
    #[error("virtio-net RSC_INFO flag is not supported")]
    RscInfo,
    /// `gso_type` is not one of the known values (with optional ECN bit).
    #[error("unknown virtio-net gso_type {gso_type:#04x}")]
    UnknownGsoType {
        /// The raw gso_type byte.
        gso_type: u8,
    },
    /// `csum_start + csum_offset + 2` exceeds the frame.
    #[error("checksum field at {start}+{offset} outside {frame_len}-byte frame")]
    CsumOutOfFrame {
        /// `csum_start`.
        start: u16,
        /// `csum_offset`.
        offset: u16,
        /// Frame length.
        frame_len: usize,
    },
    /// GSO requested with `gso_size == 0`.
    #[error("GSO frame ({gso_type}) with gso_size 0")]
    GsoSizeZero {
        /// The GSO type.
        gso_type: GsoType,
    },
    /// GSO requested without NEEDS_CSUM.
    #[error("GSO frame ({gso_type}) without NEEDS_CSUM")]
    GsoWithoutCsum {
        /// The GSO type.
        gso_type: GsoType,
    },
    /// GSO frame no longer than an Ethernet header.
    #[error("GSO frame of {frame_len} bytes has no room for an Ethernet header")]
    GsoFrameTooShort {
        /// Frame length.
        frame_len: usize,
    },
    /// `hdr_len` exceeds the frame (Linux rejects this too).
    #[error("hdr_len {hdr_len} exceeds {frame_len}-byte frame")]
    HdrLenTooLarge {
        /// `hdr_len`.
        hdr_len: u16,
        /// Frame length.
        frame_len: usize,
    },
}

/// A view of a virtio-net header in a byte buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps `buffer` without checking its length; accessors may panic if
    /// it is shorter than [`HEADER_LEN`].
    pub const fn new_unchecked(buffer: T) -> Self {
        Header { buffer }
    }

    /// Wraps `buffer`, which must hold at least [`HEADER_LEN`] bytes.
    pub fn new_checked(buffer: T) -> Result<Self, VnetError> {
        let header = Self::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Checks that the buffer holds a whole header.
    pub fn check_len(&self) -> Result<(), VnetError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            Err(VnetError::Truncated { len })
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, range: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[range];
        u16::from_ne_bytes([b[0], b[1]])
    }

    /// Raw `flags` byte.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Raw `gso_type` byte (including the ECN bit).
    pub fn gso_type(&self) -> u8 {
        self.buffer.as_ref()[field::GSO_TYPE]
    }

    /// `hdr_len`: length of the headers (a hint).
    pub fn hdr_len(&self) -> u16 {
        self.u16_at(field::HDR_LEN)
    }

    /// `gso_size`: payload bytes per segment (MSS).
    pub fn gso_size(&self) -> u16 {
        self.u16_at(field::GSO_SIZE)
    }

    /// `csum_start`: checksum start, from the start of the Ethernet header.
    pub fn csum_start(&self) -> u16 {
        self.u16_at(field::CSUM_START)
    }

    /// `csum_offset`: checksum field offset from `csum_start`.
    pub fn csum_offset(&self) -> u16 {
        self.u16_at(field::CSUM_OFFSET)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    fn set_u16_at(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_ne_bytes());
    }

    /// Sets the raw `flags` byte.
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    /// Sets the raw `gso_type` byte.
    pub fn set_gso_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::GSO_TYPE] = value;
    }

    /// Sets `hdr_len`.
    pub fn set_hdr_len(&mut self, value: u16) {
        self.set_u16_at(field::HDR_LEN, value);
    }

    /// Sets `gso_size`.
    pub fn set_gso_size(&mut self, value: u16) {
        self.set_u16_at(field::GSO_SIZE, value);
    }

    /// Sets `csum_start`.
    pub fn set_csum_start(&mut self, value: u16) {
        self.set_u16_at(field::CSUM_START, value);
    }

    /// Sets `csum_offset`.
    pub fn set_csum_offset(&mut self, value: u16) {
        self.set_u16_at(field::CSUM_OFFSET, value);
    }
}

/// GSO type of a frame (without the ECN bit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum GsoType {
    /// Not a GSO frame.
    #[default]
    None,
    /// TCP over IPv4.
    TcpV4,
    /// TCP over IPv6.
    TcpV6,
    /// UDP fragmentation offload (UFO, legacy).
    Udp,
    /// UDP segmentation offload (USO).
    UdpL4,
}

impl GsoType {
    /// Decodes a raw value with the ECN bit already removed.
    pub const fn from_raw(raw: u8) -> Option<GsoType> {
        match raw {
            gso_type::NONE => Some(GsoType::None),
            gso_type::TCPV4 => Some(GsoType::TcpV4),
            gso_type::TCPV6 => Some(GsoType::TcpV6),
            gso_type::UDP => Some(GsoType::Udp),
            gso_type::UDP_L4 => Some(GsoType::UdpL4),
            _ => None,
        }
    }

    /// The raw `gso_type` value (without the ECN bit).
    pub const fn raw(self) -> u8 {
        match self {
            GsoType::None => gso_type::NONE,
            GsoType::TcpV4 => gso_type::TCPV4,
            GsoType::TcpV6 => gso_type::TCPV6,
            GsoType::Udp => gso_type::UDP,
            GsoType::UdpL4 => gso_type::UDP_L4,
        }
    }
}

impl fmt::Display for GsoType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GsoType::None => "none",
            GsoType::TcpV4 => "tcpv4",
            GsoType::TcpV6 => "tcpv6",
            GsoType::Udp => "udp(ufo)",
            GsoType::UdpL4 => "udp_l4",
        })
    }
}

/// Partial-checksum location: NEEDS_CSUM is set iff this is present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Csum {
    /// Start of the checksummed region, from the start of the Ethernet header.
    pub start: u16,
    /// Offset of the checksum field from `start`.
    pub offset: u16,
}

/// Validated meaning of a virtio-net header.
///
/// `Default` (= [`Repr::NONE`]) is the all-zero header: no GSO, checksum
/// complete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Repr {
    /// GSO type.
    pub gso_type: GsoType,
    /// ECN bit of `gso_type` (only with a GSO type other than `None`).
    pub gso_ecn: bool,
    /// Segment payload size (MSS); meaningful only with GSO.
    pub gso_size: u16,
    /// Header length hint.
    pub hdr_len: u16,
    /// Partial checksum to complete (flag NEEDS_CSUM).
    pub csum: Option<Csum>,
    /// Flag DATA_VALID.
    pub data_valid: bool,
}

const _: () = assert!(core::mem::size_of::<Repr>() <= 16);

impl Repr {
    /// The all-zero header.
    pub const NONE: Repr = Repr {
        gso_type: GsoType::None,
        gso_ecn: false,
        gso_size: 0,
        hdr_len: 0,
        csum: None,
        data_valid: false,
    };

    /// Parses a header view, rejecting unknown flags and gso types.
    pub fn parse<T: AsRef<[u8]>>(header: &Header<T>) -> Result<Repr, VnetError> {
        header.check_len()?;
        let flags = header.flags();
        let known = flags::NEEDS_CSUM | flags::DATA_VALID | flags::RSC_INFO;
        if flags & !known != 0 {
            return Err(VnetError::UnknownFlags { flags });
        }
        if flags & flags::RSC_INFO != 0 {
            return Err(VnetError::RscInfo);
        }
        let raw = header.gso_type();
        let gso_ecn = raw & gso_type::ECN != 0;
        let gso_type = match GsoType::from_raw(raw & !gso_type::ECN) {
            // Linux rejects ECN without a GSO type as well.
            Some(GsoType::None) if gso_ecn => None,
            other => other,
        }
        .ok_or(VnetError::UnknownGsoType { gso_type: raw })?;
        let csum = (flags & flags::NEEDS_CSUM != 0).then(|| Csum {
            start: header.csum_start(),
            offset: header.csum_offset(),
        });
        Ok(Repr {
            gso_type,
            gso_ecn,
            gso_size: header.gso_size(),
            hdr_len: header.hdr_len(),
            csum,
            data_valid: flags & flags::DATA_VALID != 0,
        })
    }

    /// Parses the first [`HEADER_LEN`] bytes of `bytes`.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Repr, VnetError> {
        Repr::parse(&Header::new_checked(bytes)?)
    }

    /// True if a GSO type other than `None` is set.
    pub fn is_gso(&self) -> bool {
        self.gso_type != GsoType::None
    }

    /// Checks the header against the length of the frame it describes
    /// (Ethernet header onward, without the vnet header).
    pub fn validate(&self, frame_len: usize) -> Result<(), VnetError> {
        if let Some(Csum { start, offset }) = self.csum
            && usize::from(start) + usize::from(offset) + 2 > frame_len
        {
            return Err(VnetError::CsumOutOfFrame {
                start,
                offset,
                frame_len,
            });
        }
        if usize::from(self.hdr_len) > frame_len {
            return Err(VnetError::HdrLenTooLarge {
                hdr_len: self.hdr_len,
                frame_len,
            });
        }
        if self.is_gso() {
            let gso_type = self.gso_type;
            if self.gso_size == 0 {
                return Err(VnetError::GsoSizeZero { gso_type });
            }
            if self.csum.is_none() {
                return Err(VnetError::GsoWithoutCsum { gso_type });
            }
            if frame_len <= super::ethernet::HEADER_LEN {
                return Err(VnetError::GsoFrameTooShort { frame_len });
            }
        }
        Ok(())
    }

    /// Raw `flags` byte for this representation.
    pub fn flags(&self) -> u8 {
        let mut f = 0;
        if self.csum.is_some() {
            f |= flags::NEEDS_CSUM;
        }
        if self.data_valid {
            f |= flags::DATA_VALID;
        }
        f
    }

    /// Raw `gso_type` byte (with the ECN bit).
    pub fn gso_type_raw(&self) -> u8 {
        self.gso_type.raw() | if self.gso_ecn { gso_type::ECN } else { 0 }
    }

    /// Writes every field of the header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, header: &mut Header<T>) {
        let csum = self.csum.unwrap_or_default();
        header.set_flags(self.flags());
        header.set_gso_type(self.gso_type_raw());
        header.set_hdr_len(self.hdr_len);
        header.set_gso_size(self.gso_size);
        header.set_csum_start(csum.start);
        header.set_csum_offset(csum.offset);
    }

    /// The header as bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut buf = [0u8; HEADER_LEN];
        self.emit(&mut Header::new_unchecked(&mut buf[..]));
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ne(v: u16) -> [u8; 2] {
        v.to_ne_bytes()
    }

    /// TCPv4 GSO header as the kernel emits it for a 1448-MSS stream.
    fn tcp4_bytes() -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = flags::NEEDS_CSUM;
        b[1] = gso_type::TCPV4 | gso_type::ECN;
        b[2..4].copy_from_slice(&ne(66));
        b[4..6].copy_from_slice(&ne(1448));
        b[6..8].copy_from_slice(&ne(34));
        b[8..10].copy_from_slice(&ne(16));
        b
    }

    fn tcp4_repr() -> Repr {
        Repr {
            gso_type: GsoType::TcpV4,
            gso_ecn: true,
            gso_size: 1448,
            hdr_len: 66,
            csum: Some(Csum {
                start: 34,
                offset: 16,
            }),
            data_valid: false,
        }
    }

    #[test]
    fn deconstruct() {
        let bytes = tcp4_bytes();
        let h = Header::new_checked(&bytes[..]).unwrap();
        assert_eq!(h.flags(), 1);
        assert_eq!(h.gso_type(), 0x81);
        assert_eq!(h.hdr_len(), 66);
        assert_eq!(h.gso_size(), 1448);
        assert_eq!(h.csum_start(), 34);
        assert_eq!(h.csum_offset(), 16);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; HEADER_LEN];
        let mut h = Header::new_unchecked(&mut bytes[..]);
        h.set_flags(flags::NEEDS_CSUM);
        h.set_gso_type(gso_type::TCPV4 | gso_type::ECN);
        h.set_hdr_len(66);
        h.set_gso_size(1448);
        h.set_csum_start(34);
        h.set_csum_offset(16);
        assert_eq!(bytes, tcp4_bytes());
    }

    #[test]
    fn little_endian_layout() {
        if cfg!(target_endian = "little") {
            assert_eq!(&tcp4_bytes()[4..6], &[0xa8, 0x05]);
        }
    }

    #[test]
    fn parse() {
        assert_eq!(Repr::parse_bytes(&tcp4_bytes()), Ok(tcp4_repr()));
        assert_eq!(Repr::parse_bytes(&[0; HEADER_LEN]), Ok(Repr::NONE));
        // Trailing bytes (the frame) are ignored.
        let mut long = [0u8; 64];
        long[..HEADER_LEN].copy_from_slice(&tcp4_bytes());
        assert_eq!(Repr::parse_bytes(&long), Ok(tcp4_repr()));
        let mut dv = [0u8; HEADER_LEN];
        dv[0] = flags::DATA_VALID;
        let r = Repr::parse_bytes(&dv).unwrap();
        assert!(r.data_valid && r.csum.is_none() && !r.is_gso());
    }

    #[test]
    fn parse_rejects() {
        let mut b = tcp4_bytes();
        b[0] = 0x09;
        assert_eq!(
            Repr::parse_bytes(&b),
            Err(VnetError::UnknownFlags { flags: 0x09 })
        );
        b[0] = flags::RSC_INFO;
        assert_eq!(Repr::parse_bytes(&b), Err(VnetError::RscInfo));
        b[0] = flags::NEEDS_CSUM;
        for bad in [2u8, 6, 7, 0x7f, 0x80, 0x82, 0xff] {
            b[1] = bad;
            assert_eq!(
                Repr::parse_bytes(&b),
                Err(VnetError::UnknownGsoType { gso_type: bad }),
                "{bad:#x}"
            );
        }
    }

    #[test]
    fn impossible_len() {
        for len in 0..HEADER_LEN {
            let buf = [0u8; HEADER_LEN];
            assert_eq!(
                Header::new_checked(&buf[..len]),
                Err(VnetError::Truncated { len })
            );
            assert_eq!(
                Repr::parse_bytes(&buf[..len]),
                Err(VnetError::Truncated { len })
            );
            // A view built unchecked still refuses to parse.
            assert!(Repr::parse(&Header::new_unchecked(&buf[..len])).is_err());
        }
    }

    #[test]
    fn emit() {
        let mut bytes = [0xa5u8; HEADER_LEN];
        tcp4_repr().emit(&mut Header::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, tcp4_bytes());
        assert_eq!(tcp4_repr().to_bytes(), tcp4_bytes());
        let mut bytes = [0xa5u8; HEADER_LEN];
        Repr::default().emit(&mut Header::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, [0; HEADER_LEN]);
    }

    #[test]
    fn round_trip_all_types() {
        for raw in [0u8, 1, 3, 4, 5, 0x81, 0x83, 0x84, 0x85] {
            for fl in [0u8, 1, 2, 3] {
                let mut b = tcp4_bytes();
                b[0] = fl;
                b[1] = raw;
                let r = Repr::parse_bytes(&b).unwrap();
                let mut expect = b;
                if fl & flags::NEEDS_CSUM == 0 {
                    // Without NEEDS_CSUM the csum fields carry no meaning.
                    expect[6..10].fill(0);
                }
                assert_eq!(r.to_bytes(), expect);
            }
        }
    }

    #[test]
    fn validate_ok() {
        assert_eq!(tcp4_repr().validate(66), Ok(()));
        assert_eq!(tcp4_repr().validate(65000), Ok(()));
        assert_eq!(Repr::NONE.validate(0), Ok(()));
        let partial = Repr {
            csum: Some(Csum {
                start: 34,
                offset: 6,
            }),
            ..Repr::NONE
        };
        assert_eq!(partial.validate(42), Ok(()));
    }

    #[test]
    fn validate_errors() {
        let r = tcp4_repr();
        assert_eq!(
            r.validate(51),
            Err(VnetError::CsumOutOfFrame {
                start: 34,
                offset: 16,
                frame_len: 51
            })
        );
        let huge = Repr {
            csum: Some(Csum {
                start: u16::MAX,
                offset: u16::MAX,
            }),
            ..Repr::NONE
        };
        assert!(matches!(
            huge.validate(usize::from(u16::MAX)),
            Err(VnetError::CsumOutOfFrame { .. })
        ));
        assert_eq!(
            Repr { gso_size: 0, ..r }.validate(100),
            Err(VnetError::GsoSizeZero {
                gso_type: GsoType::TcpV4
            })
        );
        assert_eq!(
            Repr { csum: None, ..r }.validate(100),
            Err(VnetError::GsoWithoutCsum {
                gso_type: GsoType::TcpV4
            })
        );
        let tiny = Repr {
            csum: Some(Csum {
                start: 0,
                offset: 0,
            }),
            hdr_len: 0,
            ..r
        };
        assert_eq!(
            tiny.validate(14),
            Err(VnetError::GsoFrameTooShort { frame_len: 14 })
        );
        assert_eq!(tiny.validate(15), Ok(()));
        assert_eq!(
            r.validate(60),
            Err(VnetError::HdrLenTooLarge {
                hdr_len: 66,
                frame_len: 60
            })
        );
    }

    #[test]
    fn errors_display_context() {
        let e = VnetError::CsumOutOfFrame {
            start: 34,
            offset: 16,
            frame_len: 40,
        };
        assert_eq!(
            e.to_string(),
            "checksum field at 34+16 outside 40-byte frame"
        );
        let e = VnetError::GsoWithoutCsum {
            gso_type: GsoType::UdpL4,
        };
        assert_eq!(e.to_string(), "GSO frame (udp_l4) without NEEDS_CSUM");
    }
}
