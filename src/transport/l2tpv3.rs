//! `transport=l2tpv3`: Ethernet over L2TPv3 with static sessions, on a raw IP socket
//! (protocol 115) or, with `udp=1`, a UDP socket (`srcport`/`dstport`); IPv4 or IPv6
//! (`v6=1`); optional 32/64-bit cookies and counter. Wire format and receive checks:
//! [`crate::wire::l2tpv3`].

use super::demux::Claim;
use super::framing::Framing;
use super::port::Opened;
use super::tunnel::{self, Carrier, Request, Siblings};
use super::{Kind, OpenError, Spec};
use crate::wire::l2tpv3;

/// The L2TPv3 settings of a `transport=l2tpv3` spec.
pub fn config(spec: &Spec) -> Option<l2tpv3::Config> {
    match &spec.kind {
        Kind::L2tpv3 {
            udp,
            rx_session,
            tx_session,
            cookie64,
            rx_cookie,
            tx_cookie,
            counter,
            pin_counter,
            ..
        } => Some(l2tpv3::Config {
            udp: *udp,
            rx_session: *rx_session,
            tx_session: *tx_session,
            cookies: rx_cookie.zip(*tx_cookie),
            cookie64: *cookie64,
            counter: *counter,
            pin_counter: *pin_counter,
        }),
        _ => None,
    }
}

/// What identifies this tunnel's packets among others from the same peer: the session.
pub fn claim(cfg: &l2tpv3::Config) -> Claim {
    Claim(vec![(cfg.session_offset() as u32, cfg.rx_session)])
}

/// Open an L2TPv3 tunnel port.
pub fn open(name: &str, spec: &Spec, siblings: &Siblings) -> Result<Opened, OpenError> {
    let Kind::L2tpv3 {
        src,
        dst,
        v6,
        udp,
        srcport,
        dstport,
        ..
    } = &spec.kind
    else {
        unreachable!("l2tpv3::open called with another transport");
    };
    let cfg = config(spec).expect("l2tpv3 spec");
    let carrier = if *udp {
        Carrier::Udp
    } else {
        Carrier::Ip(l2tpv3::IPPROTO_L2TP)
    };
    tunnel::open(Request {
        name,
        spec,
        src,
        dst,
        srcport: *srcport,
        dstport: *dstport,
        v6: *v6,
        carrier,
        framing: Framing::l2tpv3(cfg, !*v6 && !*udp),
        own: claim(&cfg),
        siblings,
    })
}
