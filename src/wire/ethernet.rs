//! Ethernet II header view, EtherTypes, VLAN skipping and MAC helpers.

use core::fmt;
use core::str::FromStr;

use thiserror::Error;

/// Ethernet II header length (no VLAN tags).
pub const HEADER_LEN: usize = 14;

/// 802.1Q / 802.1ad tag length (TCI + inner EtherType).
pub const VLAN_TAG_LEN: usize = 4;

/// A MAC address.
pub type Mac = [u8; 6];

/// The broadcast address.
pub const BROADCAST: Mac = [0xff; 6];

mod field {
    use core::ops::Range;

    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
}

/// Errors from Ethernet parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EthernetError {
    /// Buffer shorter than [`HEADER_LEN`].
    #[error("Ethernet header needs {HEADER_LEN} bytes, got {len}")]
    Truncated {
        /// Buffer length.
        len: usize,
    },
    /// Text is not six ':'-separated hex pairs.
    #[error("invalid MAC address: expected xx:xx:xx:xx:xx:xx")]
    InvalidMac,
}

/// An EtherType; unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// IPv4 (0x0800).
    Ipv4,
    /// ARP (0x0806).
    Arp,
    /// 802.1Q VLAN tag (0x8100).
    Vlan,
    /// 802.1ad service tag (0x88a8).
    QinQ,
    /// IPv6 (0x86dd).
    Ipv6,
    /// Any other value.
    Unknown(u16),
}

impl EtherType {
    /// True for the VLAN tag types (0x8100, 0x88a8).
    pub fn is_vlan(self) -> bool {
        matches!(self, EtherType::Vlan | EtherType::QinQ)
    }
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x8100 => EtherType::Vlan,
            0x88a8 => EtherType::QinQ,
            0x86dd => EtherType::Ipv6,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(t: EtherType) -> u16 {
        match t {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Vlan => 0x8100,
            EtherType::QinQ => 0x88a8,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Unknown(v) => v,
        }
    }
}

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps `buffer` without checking; accessors may panic if it is shorter
    /// than [`HEADER_LEN`].
    pub const fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    /// Wraps `buffer`, which must hold at least [`HEADER_LEN`] bytes.
    pub fn new_checked(buffer: T) -> Result<Self, EthernetError> {
        let len = buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(EthernetError::Truncated { len });
        }
        Ok(Frame { buffer })
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC.
    pub fn dst(&self) -> Mac {
        mac_at(self.buffer.as_ref(), field::DST)
    }

    /// Source MAC.
    pub fn src(&self) -> Mac {
        mac_at(self.buffer.as_ref(), field::SRC)
    }

    /// Outer EtherType (may be a VLAN tag type).
    pub fn ethertype(&self) -> EtherType {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        u16::from_be_bytes([b[0], b[1]]).into()
    }

    /// Everything after the 14-byte header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC.
    pub fn set_dst(&mut self, mac: Mac) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&mac);
    }

    /// Sets the source MAC.
    pub fn set_src(&mut self, mac: Mac) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&mac);
    }

    /// Sets the outer EtherType.
    pub fn set_ethertype(&mut self, t: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&u16::from(t).to_be_bytes());
    }
}

fn mac_at(b: &[u8], r: core::ops::Range<usize>) -> Mac {
    let s = &b[r];
    [s[0], s[1], s[2], s[3], s[4], s[5]]
}

/// Validated meaning of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Destination MAC.
    pub dst: Mac,
    /// Source MAC.
    pub src: Mac,
    /// Outer EtherType.
    pub ethertype: EtherType,
}

impl Repr {
    /// Parses a frame view.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr, EthernetError> {
        let len = frame.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(EthernetError::Truncated { len });
        }
        Ok(Repr {
            dst: frame.dst(),
            src: frame.src(),
            ethertype: frame.ethertype(),
        })
    }

    /// Writes the 14-byte header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_dst(self.dst);
        frame.set_src(self.src);
        frame.set_ethertype(self.ethertype);
    }
}

/// Finds the L3 payload: skips up to two VLAN tags (0x8100/0x88a8) and
/// returns the EtherType found and the offset where its payload starts.
///
/// With three or more tags the third tag's type (`Vlan`/`QinQ`) is
/// returned. `None` if the frame is too short for the headers it announces.
pub fn l3_offset(frame: &[u8]) -> Option<(EtherType, usize)> {
    let mut off = field::ETHERTYPE.start;
    for tags in 0..=2 {
        let b = frame.get(off..off + 2)?;
        let t = EtherType::from(u16::from_be_bytes([b[0], b[1]]));
        if !t.is_vlan() || tags == 2 {
            return Some((t, off + 2));
        }
        off += VLAN_TAG_LEN;
    }
    None
}

/// True for group addresses (I/G bit set), including broadcast.
pub fn is_multicast(mac: &Mac) -> bool {
    mac[0] & 1 != 0
}

/// True for ff:ff:ff:ff:ff:ff.
pub fn is_broadcast(mac: &Mac) -> bool {
    *mac == BROADCAST
}

/// A MAC address with `xx:xx:xx:xx:xx:xx` formatting and parsing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub Mac);

impl From<Mac> for MacAddr {
    fn from(m: Mac) -> Self {
        MacAddr(m)
    }
}

impl From<MacAddr> for Mac {
    fn from(m: MacAddr) -> Self {
        m.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = EthernetError;

    /// Accepts exactly six two-digit hex pairs separated by ':'.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() != 17 {
            return Err(EthernetError::InvalidMac);
        }
        let hex = |c: u8| (c as char).to_digit(16).ok_or(EthernetError::InvalidMac);
        let mut mac = [0u8; 6];
        for (i, out) in mac.iter_mut().enumerate() {
            let p = i * 3;
            if i > 0 && b[p - 1] != b':' {
                return Err(EthernetError::InvalidMac);
            }
            *out = (hex(b[p])? * 16 + hex(b[p + 1])?) as u8;
        }
        Ok(MacAddr(mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static FRAME: [u8; 18] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // dst
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // src
        0x08, 0x00, // IPv4
        0x45, 0x00, 0x00, 0x14,
    ];

    #[test]
    fn deconstruct() {
        let f = Frame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(f.src(), [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert_eq!(f.ethertype(), EtherType::Ipv4);
        assert_eq!(f.payload(), &[0x45, 0, 0, 0x14]);
        assert_eq!(
            Repr::parse(&f),
            Ok(Repr {
                dst: [2, 0, 0, 0, 0, 1],
                src: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
                ethertype: EtherType::Ipv4
            })
        );
    }

    #[test]
    fn construct() {
        let mut buf = [0xa5u8; 18];
        let mut f = Frame::new_unchecked(&mut buf[..]);
        f.set_dst([2, 0, 0, 0, 0, 1]);
        f.set_src([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        f.set_ethertype(EtherType::Ipv4);
        assert_eq!(&buf[..14], &FRAME[..14]);
        assert_eq!(&buf[14..], &[0xa5; 4]);
        let mut buf2 = [0xa5u8; 14];
        Repr::parse(&Frame::new_checked(&FRAME[..]).unwrap())
            .unwrap()
            .emit(&mut Frame::new_unchecked(&mut buf2[..]));
        assert_eq!(&buf2, &FRAME[..14]);
    }

    #[test]
    fn impossible_len() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Frame::new_checked(&FRAME[..len]),
                Err(EthernetError::Truncated { len })
            );
            assert_eq!(
                Repr::parse(&Frame::new_unchecked(&FRAME[..len])),
                Err(EthernetError::Truncated { len })
            );
        }
    }

    #[test]
    fn ethertype_round_trip() {
        for v in [0x0800u16, 0x0806, 0x8100, 0x88a8, 0x86dd, 0x1234, 0x9100] {
            assert_eq!(u16::from(EtherType::from(v)), v);
        }
        assert_eq!(EtherType::from(0x1234), EtherType::Unknown(0x1234));
        assert!(EtherType::QinQ.is_vlan() && !EtherType::Ipv6.is_vlan());
    }

    fn tagged(tags: &[u16], inner: u16) -> Vec<u8> {
        let mut f = FRAME[..12].to_vec();
        for (i, t) in tags.iter().enumerate() {
            f.extend_from_slice(&t.to_be_bytes());
            f.extend_from_slice(&[0x00, 10 + i as u8]); // TCI
        }
        f.extend_from_slice(&inner.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f
    }

    #[test]
    fn l3_offsets() {
        assert_eq!(l3_offset(&FRAME), Some((EtherType::Ipv4, 14)));
        assert_eq!(
            l3_offset(&tagged(&[0x8100], 0x86dd)),
            Some((EtherType::Ipv6, 18))
        );
        assert_eq!(
            l3_offset(&tagged(&[0x88a8, 0x8100], 0x0800)),
            Some((EtherType::Ipv4, 22))
        );
        assert_eq!(
            l3_offset(&tagged(&[0x8100, 0x8100, 0x8100], 0x0800)),
            Some((EtherType::Vlan, 22))
        );
        // Header exactly present, empty payload.
        assert_eq!(l3_offset(&FRAME[..14]), Some((EtherType::Ipv4, 14)));
        assert_eq!(l3_offset(&FRAME[..13]), None);
        assert_eq!(l3_offset(&[]), None);
        let t = tagged(&[0x8100], 0x0800);
        assert_eq!(l3_offset(&t[..17]), None);
        assert_eq!(l3_offset(&t[..18]), Some((EtherType::Ipv4, 18)));
    }

    #[test]
    fn mac_classes() {
        assert!(is_broadcast(&BROADCAST) && is_multicast(&BROADCAST));
        assert!(is_multicast(&[0x01, 0x00, 0x5e, 0, 0, 1]));
        assert!(is_multicast(&[0x33, 0x33, 0, 0, 0, 1]));
        assert!(!is_multicast(&[0x02, 0, 0, 0, 0, 1]));
        assert!(!is_broadcast(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]));
    }

    #[test]
    fn mac_display_and_parse() {
        let m = MacAddr([0x52, 0x54, 0x00, 0xab, 0xCD, 0x0f]);
        assert_eq!(m.to_string(), "52:54:00:ab:cd:0f");
        assert_eq!("52:54:00:AB:cd:0f".parse::<MacAddr>(), Ok(m));
        assert_eq!(m.to_string().parse::<MacAddr>(), Ok(m));
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0f:",
            "52-54-00-ab-cd-0f",
            "52:54:00:ab:cd:0g",
            "5:254:00:ab:cd:0f",
            "52:54:00:ab:cd:+f",
            "52:54:00:ab:cd:0f0",
            "52:54:00:ab:cd:é",
        ] {
            assert_eq!(
                bad.parse::<MacAddr>(),
                Err(EthernetError::InvalidMac),
                "{bad}"
            );
        }
    }
}
