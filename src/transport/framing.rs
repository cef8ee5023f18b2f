//! What sits in front of the Ethernet frame on a transport's descriptor: nothing (fd,
//! bess), a virtio-net header (tap, hybrid, raw), or a tunnel header (GRE, L2TPv3),
//! itself behind the IPv4 header on raw IPv4 sockets.

use crate::metrics::DropReason;
use crate::wire::{gre, ipv4, l2tpv3, vnet};

/// Longest transmit prefix a framing writes before the frame.
pub const MAX_TX_PREFIX: usize = 32;

/// Per-transport header handling on receive and transmit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Framing {
    /// The descriptor carries bare Ethernet frames.
    Bare,
    /// Each frame is preceded by a 10-byte `virtio_net_hdr`.
    Vnet,
    /// Ethernet over GRE. `ipv4`: received datagrams start with the IPv4 header (raw
    /// IPv4 sockets). `seq`: the last sequence number sent.
    Gre {
        cfg: gre::Config,
        ipv4: bool,
        seq: u32,
    },
    /// Ethernet over L2TPv3 (IP or UDP). `ipv4` as for GRE (IP mode over IPv4 only);
    /// `counter`: the last counter value sent.
    L2tpv3 {
        cfg: l2tpv3::Config,
        ipv4: bool,
        counter: u32,
    },
}

/// A successfully decapsulated frame: where it starts and its offload metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decapped {
    pub off: usize,
    pub vnet: vnet::Repr,
}

impl Framing {
    /// GRE framing for a new tunnel (sequence counter at 0: the first frame carries 1).
    pub fn gre(cfg: gre::Config, ipv4: bool) -> Framing {
        Framing::Gre { cfg, ipv4, seq: 0 }
    }

    /// L2TPv3 framing for a new tunnel (counter at 0: the first frame carries 1).
    pub fn l2tpv3(cfg: l2tpv3::Config, ipv4: bool) -> Framing {
        Framing::L2tpv3 {
            cfg,
            ipv4,
            counter: 0,
        }
    }

    /// Bytes in front of the frame on receive (the IPv4 header counted at its minimum).
    pub fn rx_header_len(&self) -> usize {
        let ip = |v4: bool| if v4 { 20 } else { 0 };
        match self {
            Framing::Bare => 0,
            Framing::Vnet => vnet::HEADER_LEN,
            Framing::Gre { cfg, ipv4, .. } => ip(*ipv4) + cfg.header_len(),
            Framing::L2tpv3 { cfg, ipv4, .. } => ip(*ipv4) + cfg.header_len(),
        }
    }

    /// Bytes this framing writes in front of each transmitted frame.
    pub fn tx_header_len(&self) -> usize {
        match self {
            Framing::Bare => 0,
            Framing::Vnet => vnet::HEADER_LEN,
            Framing::Gre { cfg, .. } => cfg.header_len(),
            Framing::L2tpv3 { cfg, .. } => cfg.header_len(),
        }
    }

    /// `true` if frames carry checksum/GSO metadata.
    pub fn has_vnet(&self) -> bool {
        matches!(self, Framing::Vnet)
    }

    /// Parse what precedes the frame in `msg` (a whole received datagram).
    pub fn decap(&mut self, msg: &[u8]) -> Result<Decapped, DropReason> {
        let bare = |off| {
            Ok(Decapped {
                off,
                vnet: vnet::Repr::default(),
            })
        };
        match self {
            Framing::Bare => bare(0),
            Framing::Vnet => {
                let hdr = vnet::Header::new_checked(msg).map_err(|_| DropReason::Runt)?;
                let repr = vnet::Repr::parse(&hdr).map_err(|_| DropReason::BadVnetHeader)?;
                Ok(Decapped {
                    off: vnet::HEADER_LEN,
                    vnet: repr,
                })
            }
            Framing::Gre { cfg, ipv4, .. } => {
                let ip = ip_skip(msg, *ipv4, gre::IPPROTO_GRE)?;
                let n = cfg.verify(&msg[ip..]).map_err(|e| match e {
                    gre::GreError::NotEthernet { .. } => DropReason::NotEthernet,
                    gre::GreError::Key { .. } => DropReason::BadKey,
                    _ => DropReason::BadGreHeader,
                })?;
                bare(ip + n)
            }
            Framing::L2tpv3 { cfg, ipv4, .. } => {
                let ip = ip_skip(msg, *ipv4, l2tpv3::IPPROTO_L2TP)?;
                let n = cfg.verify(&msg[ip..]).map_err(l2tp_reason)?;
                bare(ip + n)
            }
        }
    }

    /// Write the transmit prefix for a frame with offload state `meta` into `out`;
    /// returns its length. Tunnel framings advance their sequence/counter here (the
    /// first frame carries 1, as UML's pre-increment).
    pub fn encap(&mut self, meta: &vnet::Repr, out: &mut [u8]) -> usize {
        match self {
            Framing::Bare => 0,
            Framing::Vnet => {
                let mut tx = *meta;
                // DATA_VALID is a receive-side hint; it means nothing on transmit.
                tx.data_valid = false;
                let mut hdr = vnet::Header::new_unchecked(&mut out[..vnet::HEADER_LEN]);
                tx.emit(&mut hdr);
                vnet::HEADER_LEN
            }
            Framing::Gre { cfg, seq, .. } => {
                *seq = seq.wrapping_add(1);
                cfg.emit(*seq, out)
            }
            Framing::L2tpv3 { cfg, counter, .. } => {
                *counter = counter.wrapping_add(1);
                cfg.emit(*counter, out)
            }
        }
    }
}

/// Drop reason of an L2TPv3 header error.
pub fn l2tp_reason(e: l2tpv3::L2tpError) -> DropReason {
    match e {
        l2tpv3::L2tpError::Cookie { .. } => DropReason::BadCookie,
        l2tpv3::L2tpError::Session { .. } => DropReason::BadSession,
        _ => DropReason::BadL2tpHeader,
    }
}

fn ip_skip(msg: &[u8], ipv4: bool, proto: u8) -> Result<usize, DropReason> {
    if ipv4 {
        ipv4::payload_offset(msg, proto).map_err(|_| DropReason::BadIpHeader)
    } else {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ipv4_header(proto: u8, ihl: u8) -> Vec<u8> {
        let mut h = vec![0u8; usize::from(ihl) * 4];
        h[0] = 0x40 | ihl;
        h[9] = proto;
        h
    }

    #[test]
    fn gre_sequence_starts_at_one_and_ip_options_are_skipped() {
        let cfg = gre::Config {
            keys: Some((5, 6)),
            sequence: true,
            pin_sequence: false,
        };
        let mut f = Framing::gre(cfg, true);
        let mut out = [0u8; MAX_TX_PREFIX];
        let meta = vnet::Repr::default();
        assert_eq!(f.encap(&meta, &mut out), 12);
        assert_eq!(&out[8..12], &[0, 0, 0, 1]);
        f.encap(&meta, &mut out);
        assert_eq!(&out[8..12], &[0, 0, 0, 2]);
        // A peer configured the other way round accepts it behind a 24-byte IPv4 header.
        let mut peer = Framing::gre(
            gre::Config {
                keys: Some((6, 5)),
                ..cfg
            },
            true,
        );
        let msg = [&ipv4_header(47, 6)[..], &out[..12], &[0xab; 14]].concat();
        assert_eq!(peer.decap(&msg).unwrap().off, 36);
        assert_eq!(f.decap(&msg), Err(DropReason::BadKey));
        let wrong_proto = [&ipv4_header(115, 5)[..], &out[..12]].concat();
        assert_eq!(peer.decap(&wrong_proto), Err(DropReason::BadIpHeader));
        // IPv6 sockets deliver no IP header.
        let mut v6 = Framing::gre(
            gre::Config {
                keys: Some((6, 5)),
                ..cfg
            },
            false,
        );
        assert_eq!(v6.decap(&out[..12]).unwrap().off, 12);
        let mut tebless = out;
        tebless[2..4].copy_from_slice(&[8, 0]);
        assert_eq!(v6.decap(&tebless[..12]), Err(DropReason::NotEthernet));
        tebless[0] |= 0x80;
        assert_eq!(v6.decap(&tebless[..12]), Err(DropReason::BadGreHeader));
    }

    #[test]
    fn l2tp_counter_and_reasons() {
        let cfg = l2tpv3::Config {
            udp: false,
            rx_session: 1,
            tx_session: 2,
            cookies: Some((3, 4)),
            cookie64: true,
            counter: true,
            pin_counter: false,
        };
        let mut f = Framing::l2tpv3(cfg, true);
        let mut out = [0u8; MAX_TX_PREFIX];
        assert_eq!(f.encap(&vnet::Repr::default(), &mut out), 16);
        assert_eq!(&out[12..16], &[0, 0, 0, 1]);
        let mut peer = Framing::l2tpv3(
            l2tpv3::Config {
                rx_session: 2,
                tx_session: 1,
                cookies: Some((4, 3)),
                ..cfg
            },
            true,
        );
        let msg = [&ipv4_header(115, 5)[..], &out[..16], &[0; 14]].concat();
        assert_eq!(peer.decap(&msg).unwrap().off, 36);
        assert_eq!(f.decap(&msg), Err(DropReason::BadCookie));
        let mut other = cfg;
        other.cookies = Some((4, 3));
        assert_eq!(
            Framing::l2tpv3(other, true).decap(&msg),
            Err(DropReason::BadSession)
        );
        assert_eq!(peer.decap(&msg[..30]), Err(DropReason::BadL2tpHeader));
    }

    proptest! {
        /// Every decapsulation path, fed arbitrary datagrams: never panics, and an
        /// accepted frame offset lies inside the datagram.
        #[test]
        fn decap_never_panics(
            msg in proptest::collection::vec(any::<u8>(), 0..96),
            which in 0u8..6,
            key in any::<u32>(),
            flags in any::<u8>(),
        ) {
            let mut f = match which {
                0 => Framing::Bare,
                1 => Framing::Vnet,
                2 | 3 => Framing::gre(gre::Config {
                    keys: (flags & 1 != 0).then_some((key, key)),
                    sequence: flags & 2 != 0,
                    pin_sequence: false,
                }, which == 2),
                _ => Framing::l2tpv3(l2tpv3::Config {
                    udp: flags & 1 != 0,
                    rx_session: key,
                    tx_session: key,
                    cookies: (flags & 2 != 0).then_some((u64::from(key), u64::from(key))),
                    cookie64: flags & 4 != 0,
                    counter: flags & 8 != 0,
                    pin_counter: false,
                }, which == 4 && flags & 1 == 0),
            };
            if let Ok(d) = f.decap(&msg) {
                prop_assert!(d.off <= msg.len());
            }
        }
    }
}
