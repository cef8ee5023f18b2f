//! `transport=gre`: Ethernet over GRE on a raw IP socket (protocol 47), IPv4 or IPv6
//! (`v6=1`), with optional key (`rx_key`/`tx_key`) and sequence numbers (`sequence`,
//! `pin_sequence`). Wire format and receive checks: [`crate::wire::gre`].

use super::demux::Claim;
use super::framing::Framing;
use super::port::Opened;
use super::tunnel::{self, Carrier, Request, Siblings};
use super::{Kind, OpenError, Spec};
use crate::wire::gre;

/// The GRE settings of a `transport=gre` spec.
pub fn config(spec: &Spec) -> Option<gre::Config> {
    match &spec.kind {
        Kind::Gre {
            rx_key,
            tx_key,
            sequence,
            pin_sequence,
            ..
        } => Some(gre::Config {
            keys: rx_key.zip(*tx_key),
            sequence: *sequence,
            pin_sequence: *pin_sequence,
        }),
        _ => None,
    }
}

/// What identifies this tunnel's packets among others from the same peer: the
/// flags/protocol word, and the key when there is one.
pub fn claim(cfg: &gre::Config) -> Claim {
    let mut c = vec![(0, cfg.expected_word())];
    if let Some((rx, _)) = cfg.keys {
        c.push((4, rx));
    }
    Claim(c)
}

/// Open a GRE tunnel port.
pub fn open(name: &str, spec: &Spec, siblings: &Siblings) -> Result<Opened, OpenError> {
    let Kind::Gre { src, dst, v6, .. } = &spec.kind else {
        unreachable!("gre::open called with another transport");
    };
    let cfg = config(spec).expect("gre spec");
    tunnel::open(Request {
        name,
        spec,
        src,
        dst,
        srcport: None,
        dstport: None,
        v6: *v6,
        carrier: Carrier::Ip(gre::IPPROTO_GRE),
        framing: Framing::gre(cfg, !*v6),
        own: claim(&cfg),
        siblings,
    })
}
