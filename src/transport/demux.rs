//! Kernel-side demultiplexing of tunnels that share a local address.
//!
//! A raw GRE or L2TPv3-over-IP socket receives every packet of its protocol sent to its
//! bound address, from anyone (UML's "one tunnel per IP address" caveat). vecbox gives
//! each tunnel socket a classic BPF filter:
//! - only packets whose IP source is the tunnel's `dst` are accepted (UML accepts any
//!   source and relies on the header checks alone);
//! - when several ports of one vecbox process use the same protocol, local address and
//!   peer, each port also claims its own GRE key (with the K/S word) or L2TPv3 session,
//!   and the first of them additionally takes whatever no sibling claims, so a packet
//!   with an unknown key or session is still counted (`bad_key`, `bad_session`) once.
//!
//! Tunnels to different peers are therefore separated across processes too; tunnels to
//! the same peer are separated by key/session only inside one process (another process
//! cannot see this process's claims). GRE without a key cannot be told apart from a
//! second keyless tunnel to the same peer: vecbox refuses that combination at open.

use std::net::IpAddr;

use crate::filter::{ACCEPT, SockFilter};

/// `BPF_LD | BPF_W | BPF_ABS`
const LD_W_ABS: u16 = 0x20;
/// `BPF_LD | BPF_W | BPF_IND`
const LD_W_IND: u16 = 0x40;
/// `BPF_LDX | BPF_B | BPF_MSH`: X = 4 * (pkt[k] & 0xf)
const LDX_MSH: u16 = 0xb1;
/// `BPF_LDX | BPF_W | BPF_IMM`
const LDX_IMM: u16 = 0x01;
/// `BPF_JMP | BPF_JEQ | BPF_K`
const JEQ_K: u16 = 0x15;
/// `BPF_RET | BPF_K`
const RET_K: u16 = 0x06;
/// `SKF_NET_OFF`: loads relative to the network header.
const NET_OFF: u32 = 0xfff0_0000;

/// Where the tunnel header starts in what the socket filter sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Raw IPv4 socket: after the IPv4 header (its IHL read at run time).
    AfterIpv4,
    /// At a fixed offset (raw IPv6: 0; UDP: 8).
    At(u32),
}

/// 32-bit words at given offsets of the tunnel header that identify one tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim(pub Vec<(u32, u32)>);

/// Build the filter: peer source address, then (with siblings) the claims.
pub fn program(
    peer: IpAddr,
    payload: Payload,
    own: &Claim,
    siblings: &[Claim],
    first: bool,
) -> Vec<SockFilter> {
    let i = |code, jt, jf, k| SockFilter { code, jt, jf, k };
    // Jumps to "drop" are patched at the end (offsets are relative and need the length).
    const DROP: u8 = u8::MAX;
    let mut p = Vec::new();
    let words: Vec<(u32, u32)> = match peer {
        IpAddr::V4(a) => vec![(12, u32::from(a))],
        IpAddr::V6(a) => a
            .octets()
            .chunks(4)
            .enumerate()
            .map(|(n, c)| {
                (
                    8 + 4 * n as u32,
                    u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                )
            })
            .collect(),
    };
    for (off, v) in words {
        p.push(i(LD_W_ABS, 0, 0, NET_OFF + off));
        p.push(i(JEQ_K, 0, DROP, v));
    }
    if siblings.is_empty() {
        p.push(i(RET_K, 0, 0, ACCEPT));
        p.push(i(RET_K, 0, 0, 0));
        return patch(p, DROP);
    }
    match payload {
        Payload::AfterIpv4 => p.push(i(LDX_MSH, 0, 0, 0)),
        Payload::At(off) => p.push(i(LDX_IMM, 0, 0, off)),
    }
    // Own claim → accept. Each claim is a run of compares; a mismatch skips the rest
    // of the run and its return.
    let claim = |p: &mut Vec<SockFilter>, c: &Claim, verdict: u32| {
        let n = c.0.len();
        for (j, (off, v)) in c.0.iter().enumerate() {
            p.push(i(LD_W_IND, 0, 0, *off));
            // Remaining instructions in this run after the jeq: 2 per later word + ret.
            let skip = (2 * (n - j - 1) + 1) as u8;
            p.push(i(JEQ_K, 0, skip, *v));
        }
        p.push(i(RET_K, 0, 0, verdict));
    };
    claim(&mut p, own, ACCEPT);
    if first {
        for s in siblings {
            claim(&mut p, s, 0);
        }
        p.push(i(RET_K, 0, 0, ACCEPT));
    }
    p.push(i(RET_K, 0, 0, 0));
    patch(p, DROP)
}

/// Point every `jf == DROP` at the final `ret #0`.
fn patch(mut p: Vec<SockFilter>, marker: u8) -> Vec<SockFilter> {
    let last = p.len() - 1;
    for (n, ins) in p.iter_mut().enumerate() {
        if ins.code == JEQ_K && ins.jf == marker {
            ins.jf = u8::try_from(last - n - 1).unwrap_or(u8::MAX);
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny classic-BPF interpreter for the instructions used here.
    fn run(p: &[SockFilter], pkt: &[u8], net: usize) -> u32 {
        let word = |at: usize| {
            pkt.get(at..at + 4)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        };
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        loop {
            let ins = p[pc];
            pc += 1;
            match ins.code {
                LD_W_ABS => {
                    let at = if ins.k >= NET_OFF {
                        net + (ins.k - NET_OFF) as usize
                    } else {
                        ins.k as usize
                    };
                    match word(at) {
                        Some(w) => a = w,
                        None => return 0,
                    }
                }
                LD_W_IND => match word(x as usize + ins.k as usize) {
                    Some(w) => a = w,
                    None => return 0,
                },
                LDX_MSH => x = 4 * u32::from(pkt[ins.k as usize] & 0xf),
                LDX_IMM => x = ins.k,
                JEQ_K => pc += usize::from(if a == ins.k { ins.jt } else { ins.jf }),
                RET_K => return ins.k,
                c => panic!("unexpected {c:#x}"),
            }
        }
    }

    fn v4_gre(src: [u8; 4], ihl: u8, key: u32) -> Vec<u8> {
        let mut h = vec![0u8; usize::from(ihl) * 4];
        h[0] = 0x40 | ihl;
        h[9] = 47;
        h[12..16].copy_from_slice(&src);
        h.extend_from_slice(&[0x20, 0, 0x65, 0x58]);
        h.extend_from_slice(&key.to_be_bytes());
        h
    }

    fn keyed(k: u32) -> Claim {
        Claim(vec![(0, 0x2000_6558), (4, k)])
    }

    #[test]
    fn peer_only_and_key_demux() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let lone = program(peer, Payload::AfterIpv4, &keyed(1), &[], true);
        assert_eq!(run(&lone, &v4_gre([10, 0, 0, 2], 5, 9), 0), ACCEPT);
        assert_eq!(run(&lone, &v4_gre([10, 0, 0, 3], 5, 1), 0), 0);

        let first = program(peer, Payload::AfterIpv4, &keyed(1), &[keyed(2)], true);
        let second = program(peer, Payload::AfterIpv4, &keyed(2), &[keyed(1)], false);
        for ihl in [5, 6] {
            let k1 = v4_gre([10, 0, 0, 2], ihl, 1);
            let k2 = v4_gre([10, 0, 0, 2], ihl, 2);
            let k3 = v4_gre([10, 0, 0, 2], ihl, 3);
            assert_eq!((run(&first, &k1, 0), run(&second, &k1, 0)), (ACCEPT, 0));
            assert_eq!((run(&first, &k2, 0), run(&second, &k2, 0)), (0, ACCEPT));
            // Unclaimed key: the first port takes it (and counts it as bad_key).
            assert_eq!((run(&first, &k3, 0), run(&second, &k3, 0)), (ACCEPT, 0));
        }
    }

    #[test]
    fn ipv6_peer_words() {
        let peer: IpAddr = "fd00::2".parse().unwrap();
        let p = program(
            peer,
            Payload::At(0),
            &Claim(vec![(0, 7)]),
            &[Claim(vec![(0, 8)])],
            false,
        );
        let mut net = vec![0u8; 40];
        net[8..24].copy_from_slice(&"fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
        // The filter sees the payload at 0 and the IPv6 header through SKF_NET_OFF; model
        // that by placing the header after the payload.
        let mut pkt = 7u32.to_be_bytes().to_vec();
        pkt.extend_from_slice(&net);
        assert_eq!(run(&p, &pkt, 4), ACCEPT);
        pkt[3] = 8;
        assert_eq!(run(&p, &pkt, 4), 0);
        pkt[3] = 7;
        pkt[4 + 23] = 3;
        assert_eq!(run(&p, &pkt, 4), 0);
    }
}
