//! A classic BPF interpreter with the kernel's semantics, for ports without a socket to
//! attach to (tap) and for `vecbox bpf test`.
//!
//! Semantics follow the kernel's classic-to-eBPF conversion: a packet load outside the
//! frame ends the program with 0, division or modulo by X = 0 returns 0, shifts by X use
//! the low five bits, negative offsets address the link-layer (`SKF_LL_OFF`) or network
//! (`SKF_NET_OFF`) header, and `SKF_AD_*` loads read [`Meta`]. The program must have
//! passed [`super::validate`]; nothing here allocates.

use super::SockFilter;
use super::insn::{
    self, A, ABS, ADD, ALU, AND, DIV, IMM, IND, JA, JEQ, JGE, JGT, JMP, JSET, LD, LDX, LEN, LL_OFF,
    LSH, MEM, MISC, MOD, MSH, MUL, NEG, NET_OFF, OR, RET, RSH, ST, STX, SUB, TXA, X, XOR,
};

/// `PACKET_HOST`, `PACKET_OUTGOING`: values of the `type` ancillary load.
pub const PACKET_HOST: u32 = 0;
pub const PACKET_OUTGOING: u32 = 4;

/// What a socket filter could read besides the frame (`skb` fields).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// `skb->protocol` (host order), e.g. 0x0800.
    pub protocol: u16,
    /// `skb->pkt_type` (`PACKET_HOST`, `PACKET_OUTGOING`, ...).
    pub pkttype: u32,
    pub ifindex: u32,
    pub mark: u32,
    pub queue: u32,
    /// `dev->type` (ARPHRD_ETHER = 1).
    pub hatype: u32,
    pub rxhash: u32,
    pub cpu: u32,
    pub vlan_tci: u32,
    pub vlan_avail: u32,
    pub vlan_tpid: u32,
    /// Offset of the network header from the frame start (14 for Ethernet).
    pub net_off: u32,
}

impl Meta {
    /// What the kernel would show for an Ethernet `frame` on a packet socket.
    pub fn ethernet(frame: &[u8], pkttype: u32) -> Meta {
        let protocol = frame
            .get(12..14)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .unwrap_or(0);
        Meta {
            protocol,
            pkttype,
            hatype: 1,
            net_off: 14,
            ..Meta::default()
        }
    }

    /// What the kernel shows a filter on an AF_UNIX socket (bess): the frame's bytes,
    /// no protocol, no device, network header at offset 0.
    pub fn unix() -> Meta {
        Meta::default()
    }
}

fn load(pkt: &[u8], off: usize, size: u16) -> Option<u32> {
    let n = match size {
        insn::W => 4,
        insn::H => 2,
        _ => 1,
    };
    let b = pkt.get(off..off.checked_add(n)?)?;
    Some(match n {
        4 => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        2 => u32::from(u16::from_be_bytes([b[0], b[1]])),
        _ => u32::from(b[0]),
    })
}

/// Resolve a (possibly negative) packet offset to an index into the frame.
fn resolve(off: i64, meta: &Meta) -> Option<usize> {
    if off >= 0 {
        return usize::try_from(off).ok();
    }
    let off = i32::try_from(off).ok()?;
    if off >= NET_OFF {
        usize::try_from(i64::from(meta.net_off) + i64::from(off - NET_OFF)).ok()
    } else if off >= LL_OFF {
        usize::try_from(off - LL_OFF).ok()
    } else {
        None
    }
}

fn ancillary(k: u32, a: u32, x: u32, pkt: &[u8], meta: &Meta) -> u32 {
    match k - insn::AD_OFF {
        0 => u32::from(meta.protocol),
        4 => meta.pkttype,
        8 => meta.ifindex,
        20 => meta.mark,
        24 => meta.queue,
        28 => meta.hatype,
        32 => meta.rxhash,
        36 => meta.cpu,
        40 => a ^ x,
        44 => meta.vlan_tci,
        48 => meta.vlan_avail,
        52 => payload_offset(pkt, meta),
        60 => meta.vlan_tpid,
        // nla/nlan need netlink messages; rand cannot agree with the kernel.
        _ => 0,
    }
}

/// `SKF_AD_PAY_OFFSET`: offset of the transport payload (kernel's flow dissector,
/// reduced to IPv4/IPv6 + TCP/UDP), or 0 when it cannot be found.
fn payload_offset(pkt: &[u8], meta: &Meta) -> u32 {
    let n = meta.net_off as usize;
    let (proto, l4) = match meta.protocol {
        0x0800 => match (pkt.get(n), pkt.get(n + 9)) {
            (Some(v), Some(p)) => (*p, n + usize::from(v & 0xf) * 4),
            _ => return 0,
        },
        0x86dd => match pkt.get(n + 6) {
            Some(p) => (*p, n + 40),
            None => return 0,
        },
        _ => return 0,
    };
    match proto {
        6 => pkt
            .get(l4 + 12)
            .map_or(0, |b| (l4 + usize::from(b >> 4) * 4) as u32),
        17 => (l4 + 8) as u32,
        _ => l4 as u32,
    }
}

/// Run `prog` over `pkt`; returns the kernel's verdict: 0 = drop, otherwise the number
/// of bytes to keep.
pub fn run(prog: &[SockFilter], pkt: &[u8], meta: &Meta) -> u32 {
    let mut a: u32 = 0;
    let mut x: u32 = 0;
    let mut mem = [0u32; insn::MEMWORDS as usize];
    let mut pc = 0usize;
    while let Some(i) = prog.get(pc) {
        pc += 1;
        let k = i.k;
        match insn::class(i.code) {
            LD => {
                let size = i.code & 0x18;
                a = match i.code & 0xe0 {
                    ABS if k >= insn::AD_OFF => ancillary(k, a, x, pkt, meta),
                    ABS => {
                        match resolve(i64::from(k as i32), meta).and_then(|o| load(pkt, o, size)) {
                            Some(v) => v,
                            None => return 0,
                        }
                    }
                    IND => {
                        let off = i64::from(x as i32).wrapping_add(i64::from(k as i32));
                        // The kernel adds in 32 bits: X + k wraps.
                        let off = i64::from(off as i32);
                        match resolve(off, meta).and_then(|o| load(pkt, o, size)) {
                            Some(v) => v,
                            None => return 0,
                        }
                    }
                    LEN => pkt.len() as u32,
                    IMM => k,
                    MEM => mem[(k & 15) as usize],
                    _ => return 0,
                };
            }
            LDX => {
                x = match i.code & 0xe0 {
                    LEN => pkt.len() as u32,
                    IMM => k,
                    MEM => mem[(k & 15) as usize],
                    MSH => match resolve(i64::from(k as i32), meta).and_then(|o| pkt.get(o)) {
                        Some(b) => u32::from(b & 0xf) * 4,
                        None => return 0,
                    },
                    _ => return 0,
                };
            }
            ST => mem[(k & 15) as usize] = a,
            STX => mem[(k & 15) as usize] = x,
            ALU => {
                let src = if i.code & X != 0 { x } else { k };
                a = match i.code & 0xf0 {
                    ADD => a.wrapping_add(src),
                    SUB => a.wrapping_sub(src),
                    MUL => a.wrapping_mul(src),
                    DIV => match a.checked_div(src) {
                        Some(v) => v,
                        None => return 0,
                    },
                    MOD => match a.checked_rem(src) {
                        Some(v) => v,
                        None => return 0,
                    },
                    OR => a | src,
                    AND => a & src,
                    XOR => a ^ src,
                    LSH => a.wrapping_shl(src),
                    RSH => a.wrapping_shr(src),
                    NEG => a.wrapping_neg(),
                    _ => return 0,
                };
            }
            JMP => {
                let src = if i.code & X != 0 { x } else { k };
                let taken = match i.code & 0xf0 {
                    JA => {
                        pc += k as usize;
                        continue;
                    }
                    JEQ => a == src,
                    JGT => a > src,
                    JGE => a >= src,
                    JSET => a & src != 0,
                    _ => return 0,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            RET => return if i.code & 0x18 == A { a } else { k },
            MISC => {
                if i.code & 0xf8 == TXA {
                    a = x;
                } else {
                    x = a;
                }
            }
            _ => return 0,
        }
    }
    0
}
