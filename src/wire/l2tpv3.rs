//! L2TPv3 data messages (RFC 3931) for an Ethernet pseudowire with static sessions, as
//! UML's `transport=l2tpv3` puts them on the wire.
//!
//! IP mode (protocol 115): `[session][cookie?][counter?][frame]`. UDP mode adds a
//! leading word `00 03 00 00` (T=0 data, version 3, reserved 0):
//! `[00 03 00 00][session][cookie?][counter?][frame]`. All fields big-endian. The cookie
//! is 0, 4 (`rx_cookie`/`tx_cookie`) or 8 (`cookie64=1`) bytes; the counter (`counter=1`)
//! is a plain 32-bit number pre-incremented per frame (first frame 1), or 0 with
//! `pin_counter=1`.
//!
//! Receive validation follows UML's `l2tpv3_verify_header`: cookie, then session must
//! match; the counter is ignored. vecbox also checks the UDP word's T bit and version
//! (UML does not look at it): a control message or another L2TP version on the data
//! port is refused instead of being read as a frame.

use thiserror::Error;

/// IP protocol number of L2TPv3 over IP.
pub const IPPROTO_L2TP: u8 = 115;
/// The UDP-mode word: T=0, L=0, S=0, version 3, reserved 0.
pub const UDP_WORD: [u8; 4] = [0x00, 0x03, 0x00, 0x00];
/// Longest header: UDP word + session + 64-bit cookie + counter.
pub const MAX_HEADER_LEN: usize = 20;

/// Why a received L2TPv3 header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum L2tpError {
    /// Shorter than the configured header.
    #[error("L2TPv3 header needs {need} bytes, got {len}")]
    Truncated { need: usize, len: usize },
    /// UDP mode: not a version-3 data message.
    #[error("L2TP over UDP: {word:#010x} is not a version 3 data message")]
    NotData { word: u32 },
    /// Cookie differs from `rx_cookie`.
    #[error("unknown L2TPv3 cookie {got:#x}, expecting {expected:#x}")]
    Cookie { expected: u64, got: u64 },
    /// Session differs from `rx_session`.
    #[error("L2TPv3 session mismatch: got {got:#x}, expecting {expected:#x}")]
    Session { expected: u32, got: u32 },
}

/// One tunnel's L2TPv3 settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Config {
    /// UDP encapsulation (the leading data word).
    pub udp: bool,
    pub rx_session: u32,
    pub tx_session: u32,
    /// Cookie mode when set: (rx_cookie, tx_cookie).
    pub cookies: Option<(u64, u64)>,
    /// 64-bit cookies (else 32-bit).
    pub cookie64: bool,
    /// 4-byte counter / L2-specific sublayer present.
    pub counter: bool,
    /// Counter field always 0.
    pub pin_counter: bool,
}

impl Config {
    /// Cookie length on the wire: 0, 4 or 8.
    pub fn cookie_len(&self) -> usize {
        match (self.cookies, self.cookie64) {
            (None, _) => 0,
            (Some(_), false) => 4,
            (Some(_), true) => 8,
        }
    }

    /// Offset of the session field (4 in UDP mode).
    pub fn session_offset(&self) -> usize {
        if self.udp { 4 } else { 0 }
    }

    /// Header length: 4 (session) + cookie + 4 (counter) + 4 (UDP word).
    pub fn header_len(&self) -> usize {
        self.session_offset() + 4 + self.cookie_len() + if self.counter { 4 } else { 0 }
    }

    /// Write the header for a frame with counter value `counter` (ignored unless
    /// `counter`; 0 when pinned) into `out`; returns its length.
    ///
    /// Panics if `out` is shorter than [`Config::header_len`].
    pub fn emit(&self, counter: u32, out: &mut [u8]) -> usize {
        let mut at = 0;
        if self.udp {
            out[..4].copy_from_slice(&UDP_WORD);
            at = 4;
        }
        out[at..at + 4].copy_from_slice(&self.tx_session.to_be_bytes());
        at += 4;
        if let Some((_, tx)) = self.cookies {
            if self.cookie64 {
                out[at..at + 8].copy_from_slice(&tx.to_be_bytes());
            } else {
                out[at..at + 4].copy_from_slice(&(tx as u32).to_be_bytes());
            }
            at += self.cookie_len();
        }
        if self.counter {
            let c = if self.pin_counter { 0 } else { counter };
            out[at..at + 4].copy_from_slice(&c.to_be_bytes());
            at += 4;
        }
        at
    }

    /// Check the L2TPv3 header at the start of `msg`; returns its length (the offset of
    /// the Ethernet frame). Checked in UML's order: cookie, then session.
    pub fn verify(&self, msg: &[u8]) -> Result<usize, L2tpError> {
        let need = self.header_len();
        if msg.len() < need {
            return Err(L2tpError::Truncated {
                need,
                len: msg.len(),
            });
        }
        let be32 = |at: usize| u32::from_be_bytes([msg[at], msg[at + 1], msg[at + 2], msg[at + 3]]);
        if self.udp {
            let word = be32(0);
            // T bit (0x8000_0000) clear, version (low 4 bits of the first 16) = 3.
            if word & 0x8000_0000 != 0 || (word >> 16) & 0xf != 3 {
                return Err(L2tpError::NotData { word });
            }
        }
        let s = self.session_offset();
        if let Some((rx, _)) = self.cookies {
            let c = s + 4;
            let (got, expected) = if self.cookie64 {
                ((u64::from(be32(c)) << 32) | u64::from(be32(c + 4)), rx)
            } else {
                (u64::from(be32(c)), rx & 0xffff_ffff)
            };
            if got != expected {
                return Err(L2tpError::Cookie { expected, got });
            }
        }
        let got = be32(s);
        if got != self.rx_session {
            return Err(L2tpError::Session {
                expected: self.rx_session,
                got,
            });
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
        let mut b = [0u8; MAX_HEADER_LEN];
        let ip = Config {
            rx_session: 1,
            tx_session: 0x01020304,
            ..Config::default()
        };
        assert_eq!(ip.emit(9, &mut b), 4);
        assert_eq!(&b[..4], &[1, 2, 3, 4]);
        let full = Config {
            udp: true,
            rx_session: 1,
            tx_session: 0xaabbccdd,
            cookies: Some((0, 0x1122334455667788)),
            cookie64: true,
            counter: true,
            pin_counter: false,
        };
        assert_eq!(full.emit(1, &mut b), 20);
        assert_eq!(
            b,
            [
                0, 3, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
                0, 0, 0, 1
            ]
        );
        let c32 = Config {
            cookies: Some((0, 0xdeadbeef)),
            cookie64: false,
            udp: false,
            ..full
        };
        assert_eq!(c32.emit(2, &mut b), 12);
        assert_eq!(
            &b[..12],
            &[0xaa, 0xbb, 0xcc, 0xdd, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 2]
        );
        let pinned = Config {
            pin_counter: true,
            ..c32
        };
        pinned.emit(77, &mut b);
        assert_eq!(&b[8..12], &[0, 0, 0, 0]);
    }

    #[test]
    fn verification_reasons() {
        let cfg = Config {
            udp: true,
            rx_session: 0x10,
            tx_session: 0x20,
            cookies: Some((0xc0ffee, 1)),
            cookie64: false,
            counter: true,
            pin_counter: false,
        };
        let ok = [0, 3, 0, 0, 0, 0, 0, 0x10, 0, 0xc0, 0xff, 0xee, 0, 0, 0, 5];
        assert_eq!(cfg.verify(&ok), Ok(16));
        let mut bad_cookie = ok;
        bad_cookie[11] = 0xef;
        assert!(matches!(
            cfg.verify(&bad_cookie),
            Err(L2tpError::Cookie { .. })
        ));
        let mut bad_session = ok;
        bad_session[7] = 0x11;
        assert_eq!(
            cfg.verify(&bad_session),
            Err(L2tpError::Session {
                expected: 0x10,
                got: 0x11
            })
        );
        let mut control = ok;
        control[0] = 0xc8;
        assert!(matches!(
            cfg.verify(&control),
            Err(L2tpError::NotData { .. })
        ));
        let mut v2 = ok;
        v2[1] = 2;
        assert!(matches!(cfg.verify(&v2), Err(L2tpError::NotData { .. })));
        assert!(matches!(
            cfg.verify(&ok[..15]),
            Err(L2tpError::Truncated { need: 16, len: 15 })
        ));
        // Both wrong: the cookie is reported, as UML checks it first.
        let mut both = bad_cookie;
        both[7] = 0x11;
        assert!(matches!(cfg.verify(&both), Err(L2tpError::Cookie { .. })));
    }

    fn arb_config() -> impl Strategy<Value = Config> {
        (
            any::<bool>(),
            any::<u32>(),
            any::<u32>(),
            proptest::option::of((any::<u64>(), any::<u64>())),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(udp, rx_session, tx_session, cookies, cookie64, counter, pin)| {
                    let cookies = cookies.map(|(r, t)| {
                        if cookie64 {
                            (r, t)
                        } else {
                            (r & 0xffff_ffff, t & 0xffff_ffff)
                        }
                    });
                    Config {
                        udp,
                        rx_session,
                        tx_session,
                        cookies,
                        cookie64,
                        counter,
                        pin_counter: counter && pin,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn verify_never_panics(cfg in arb_config(), msg in proptest::collection::vec(any::<u8>(), 0..48)) {
            if let Ok(off) = cfg.verify(&msg) {
                prop_assert_eq!(off, cfg.header_len());
                prop_assert!(off <= msg.len());
            }
        }

        #[test]
        fn emitted_headers_verify_at_the_peer(cfg in arb_config(), n in any::<u32>(), tail in proptest::collection::vec(any::<u8>(), 0..16)) {
            let peer = Config {
                rx_session: cfg.tx_session,
                tx_session: cfg.rx_session,
                cookies: cfg.cookies.map(|(r, t)| (t, r)),
                ..cfg
            };
            let mut b = vec![0u8; MAX_HEADER_LEN];
            let len = cfg.emit(n, &mut b);
            prop_assert_eq!(len, cfg.header_len());
            b.truncate(len);
            b.extend_from_slice(&tail);
            prop_assert_eq!(peer.verify(&b), Ok(len));
        }
    }
}
