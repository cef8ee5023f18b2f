//! GRE as UML's `transport=gre` puts it on the wire (RFC 2890 layout, Transparent
//! Ethernet Bridging): a 4-byte flags/protocol word, then a 4-byte key if K is set,
//! then a 4-byte sequence number if S is set, then the Ethernet frame.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | flags/version: K = `0x2000`, S = `0x1000`; C, R and version always 0 |
//! | 2 | 2 | protocol `0x6558` |
//! | 4 | 4 | key (K only) |
//! | 4/8 | 4 | sequence (S only) |
//!
//! Receive validation follows UML's `gre_verify_header`: the flags/protocol word must
//! equal the locally expected one exactly (so a peer must use the same K/S settings),
//! and in key mode the key must equal `rx_key`. The sequence number is not checked.
//! Where UML counts every failure as one `rx_encaps_errors`, [`GreError`] says which
//! check failed.

use thiserror::Error;

/// Transparent Ethernet Bridging, the GRE protocol type of Ethernet payloads.
pub const PROTO_TEB: u16 = 0x6558;
/// IP protocol number of GRE.
pub const IPPROTO_GRE: u8 = 47;

/// Flag bits of the first 16-bit word.
pub mod flags {
    /// Checksum present (never sent by UML; always refused).
    pub const C: u16 = 0x8000;
    /// Routing present (RFC 1701; always refused).
    pub const R: u16 = 0x4000;
    /// Key present.
    pub const K: u16 = 0x2000;
    /// Sequence number present.
    pub const S: u16 = 0x1000;
    /// Version bits (must be 0).
    pub const VERSION: u16 = 0x0007;
}

/// Why a received GRE header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum GreError {
    /// Shorter than the configured header.
    #[error("GRE header needs {need} bytes, got {len}")]
    Truncated { need: usize, len: usize },
    /// Checksum (C) or routing (R) bit set: UML never sends these and cannot skip them.
    #[error("GRE checksum/routing bits set (flags {flags:#06x})")]
    ChecksumOrRouting { flags: u16 },
    /// The payload is not Ethernet (protocol other than 0x6558).
    #[error("GRE protocol {proto:#06x} is not Transparent Ethernet Bridging (0x6558)")]
    NotEthernet { proto: u16 },
    /// K/S bits or version differ from the configuration.
    #[error("GRE header type disagreement, expecting {expected:#010x}, got {got:#010x}")]
    Flags { expected: u32, got: u32 },
    /// Key differs from `rx_key`.
    #[error("unknown GRE key {got:#x}, expecting {expected:#x}")]
    Key { expected: u32, got: u32 },
}

/// One tunnel's GRE settings (`rx_key`/`tx_key`, `sequence`, `pin_sequence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Config {
    /// Key mode when set: (rx_key, tx_key).
    pub keys: Option<(u32, u32)>,
    /// S bit and sequence field.
    pub sequence: bool,
    /// Sequence field always 0.
    pub pin_sequence: bool,
}

impl Config {
    /// Header length: 4, +4 with a key, +4 with a sequence number.
    pub fn header_len(&self) -> usize {
        4 + if self.keys.is_some() { 4 } else { 0 } + if self.sequence { 4 } else { 0 }
    }

    /// Flags/version word for this configuration.
    pub fn flags(&self) -> u16 {
        (if self.keys.is_some() { flags::K } else { 0 })
            | (if self.sequence { flags::S } else { 0 })
    }

    /// The first 32 bits every frame of this tunnel carries.
    pub fn expected_word(&self) -> u32 {
        (u32::from(self.flags()) << 16) | u32::from(PROTO_TEB)
    }

    /// Write the header for a frame with sequence number `seq` (ignored unless
    /// `sequence`; 0 is written when pinned) into `out`; returns its length.
    ///
    /// Panics if `out` is shorter than [`Config::header_len`].
    pub fn emit(&self, seq: u32, out: &mut [u8]) -> usize {
        out[0..4].copy_from_slice(&self.expected_word().to_be_bytes());
        let mut at = 4;
        if let Some((_, tx)) = self.keys {
            out[at..at + 4].copy_from_slice(&tx.to_be_bytes());
            at += 4;
        }
        if self.sequence {
            let s = if self.pin_sequence { 0 } else { seq };
            out[at..at + 4].copy_from_slice(&s.to_be_bytes());
            at += 4;
        }
        at
    }

    /// Check the GRE header at the start of `msg`; returns its length (the offset of
    /// the Ethernet frame).
    pub fn verify(&self, msg: &[u8]) -> Result<usize, GreError> {
        let need = self.header_len();
        let word = match msg.get(0..4) {
            Some(w) => u32::from_be_bytes([w[0], w[1], w[2], w[3]]),
            None => {
                return Err(GreError::Truncated {
                    need,
                    len: msg.len(),
                });
            }
        };
        let expected = self.expected_word();
        if word != expected {
            let f = (word >> 16) as u16;
            let proto = word as u16;
            return Err(if f & (flags::C | flags::R) != 0 {
                GreError::ChecksumOrRouting { flags: f }
            } else if proto != PROTO_TEB {
                GreError::NotEthernet { proto }
            } else {
                GreError::Flags {
                    expected,
                    got: word,
                }
            });
        }
        if msg.len() < need {
            return Err(GreError::Truncated {
                need,
                len: msg.len(),
            });
        }
        if let Some((rx, _)) = self.keys {
            let got = u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]);
            if got != rx {
                return Err(GreError::Key { expected: rx, got });
            }
        }
        Ok(need)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn byte_fixtures_match_uml() {
        let mut b = [0u8; 12];
        let plain = Config::default();
        assert_eq!(plain.emit(7, &mut b), 4);
        assert_eq!(&b[..4], &[0x00, 0x00, 0x65, 0x58]);
        let keyed = Config {
            keys: Some((1, 0x0a0b0c0d)),
            ..Config::default()
        };
        assert_eq!(keyed.emit(7, &mut b), 8);
        assert_eq!(&b[..8], &[0x20, 0x00, 0x65, 0x58, 0x0a, 0x0b, 0x0c, 0x0d]);
        let seq = Config {
            keys: Some((1, 2)),
            sequence: true,
            pin_sequence: false,
        };
        assert_eq!(seq.emit(0x01020304, &mut b), 12);
        assert_eq!(&b[..12], &[0x30, 0x00, 0x65, 0x58, 0, 0, 0, 2, 1, 2, 3, 4]);
        let pinned = Config {
            pin_sequence: true,
            ..seq
        };
        pinned.emit(99, &mut b);
        assert_eq!(&b[8..12], &[0, 0, 0, 0]);
        let seq_only = Config {
            keys: None,
            sequence: true,
            pin_sequence: false,
        };
        assert_eq!(seq_only.emit(5, &mut b), 8);
        assert_eq!(&b[..8], &[0x10, 0x00, 0x65, 0x58, 0, 0, 0, 5]);
    }

    #[test]
    fn verification_reasons() {
        let keyed = Config {
            keys: Some((0x11, 0x22)),
            ..Config::default()
        };
        let ok = [0x20, 0, 0x65, 0x58, 0, 0, 0, 0x11, 0xee];
        assert_eq!(keyed.verify(&ok), Ok(8));
        let mut wrong_key = ok;
        wrong_key[7] = 0x12;
        assert_eq!(
            keyed.verify(&wrong_key),
            Err(GreError::Key {
                expected: 0x11,
                got: 0x12
            })
        );
        // No key bit while we expect one.
        assert!(matches!(
            keyed.verify(&[0, 0, 0x65, 0x58, 0, 0, 0, 0x11]),
            Err(GreError::Flags { .. })
        ));
        // Checksum bit, routing bit, IPv4 payload.
        assert!(matches!(
            keyed.verify(&[0xa0, 0, 0x65, 0x58, 0, 0, 0, 0, 0, 0, 0, 0x11]),
            Err(GreError::ChecksumOrRouting { .. })
        ));
        assert!(matches!(
            keyed.verify(&[0x60, 0, 0x65, 0x58, 0, 0, 0, 0x11]),
            Err(GreError::ChecksumOrRouting { .. })
        ));
        assert_eq!(
            keyed.verify(&[0x20, 0, 0x08, 0x00, 0, 0, 0, 0x11]),
            Err(GreError::NotEthernet { proto: 0x0800 })
        );
        assert!(matches!(
            keyed.verify(&[0x20, 0, 0x65, 0x58, 0]),
            Err(GreError::Truncated { need: 8, len: 5 })
        ));
        assert!(matches!(keyed.verify(&[]), Err(GreError::Truncated { .. })));
        // Version 1 (PPTP) is a flags disagreement.
        assert!(matches!(
            Config::default().verify(&[0, 1, 0x65, 0x58]),
            Err(GreError::Flags { .. })
        ));
    }

    fn arb_config() -> impl Strategy<Value = Config> {
        (
            proptest::option::of((any::<u32>(), any::<u32>())),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(keys, sequence, pin)| Config {
                keys,
                sequence,
                pin_sequence: sequence && pin,
            })
    }

    proptest! {
        #[test]
        fn verify_never_panics(cfg in arb_config(), msg in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(off) = cfg.verify(&msg) {
                prop_assert_eq!(off, cfg.header_len());
                prop_assert!(off <= msg.len());
            }
        }

        #[test]
        fn emitted_headers_verify_at_the_peer(cfg in arb_config(), seq in any::<u32>(), tail in proptest::collection::vec(any::<u8>(), 0..16)) {
            // The peer's rx_key is our tx_key.
            let peer = Config { keys: cfg.keys.map(|(rx, tx)| (tx, rx)), ..cfg };
            let mut b = vec![0u8; 12];
            let n = cfg.emit(seq, &mut b);
            b.truncate(n);
            b.extend_from_slice(&tail);
            prop_assert_eq!(peer.verify(&b), Ok(n));
            if cfg.keys.is_some_and(|(rx, tx)| rx != tx) {
                let bad_key = matches!(cfg.verify(&b), Err(GreError::Key { .. }));
                prop_assert!(bad_key);
            }
        }
    }
}
