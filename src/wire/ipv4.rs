//! The IPv4 header a raw IPv4 socket delivers in front of the payload (GRE, L2TPv3
//! over IP). UML skips a fixed 20 bytes; vecbox reads the real header length (IHL), so
//! packets with IP options are decapsulated correctly instead of being misread.

use thiserror::Error;

/// Why the IPv4 header in front of a tunnel payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Ipv4Error {
    #[error("IPv4 header truncated ({len} bytes)")]
    Truncated { len: usize },
    #[error("not an IPv4 header (version {version})")]
    Version { version: u8 },
    #[error("IPv4 header length {ihl} words is below the minimum of 5")]
    BadIhl { ihl: u8 },
    #[error("IPv4 protocol {got}, expecting {expected}")]
    Protocol { expected: u8, got: u8 },
}

/// Offset of the payload of the IPv4 packet `msg` carrying `protocol`.
pub fn payload_offset(msg: &[u8], protocol: u8) -> Result<usize, Ipv4Error> {
    let Some(&b0) = msg.first() else {
        return Err(Ipv4Error::Truncated { len: 0 });
    };
    let version = b0 >> 4;
    if version != 4 {
        return Err(Ipv4Error::Version { version });
    }
    let ihl = b0 & 0xf;
    if ihl < 5 {
        return Err(Ipv4Error::BadIhl { ihl });
    }
    let len = usize::from(ihl) * 4;
    if msg.len() < len {
        return Err(Ipv4Error::Truncated { len: msg.len() });
    }
    if msg[9] != protocol {
        return Err(Ipv4Error::Protocol {
            expected: protocol,
            got: msg[9],
        });
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn options_are_skipped_by_ihl() {
        let mut h = [0u8; 28];
        h[0] = 0x47;
        h[9] = 47;
        assert_eq!(payload_offset(&h, 47), Ok(28));
        h[0] = 0x45;
        assert_eq!(payload_offset(&h, 47), Ok(20));
        assert_eq!(
            payload_offset(&h, 115),
            Err(Ipv4Error::Protocol {
                expected: 115,
                got: 47
            })
        );
        h[0] = 0x44;
        assert_eq!(payload_offset(&h, 47), Err(Ipv4Error::BadIhl { ihl: 4 }));
        h[0] = 0x65;
        assert_eq!(
            payload_offset(&h, 47),
            Err(Ipv4Error::Version { version: 6 })
        );
        h[0] = 0x4f;
        assert!(matches!(
            payload_offset(&h, 47),
            Err(Ipv4Error::Truncated { .. })
        ));
        assert!(payload_offset(&[], 47).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(msg in proptest::collection::vec(any::<u8>(), 0..80), p in any::<u8>()) {
            if let Ok(off) = payload_offset(&msg, p) {
                prop_assert!((20..=60).contains(&off) && off <= msg.len());
            }
        }
    }
}
