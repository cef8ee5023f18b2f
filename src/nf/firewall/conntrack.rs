//! Connection tracking: TCP (a SYN/FIN/RST state machine), UDP, ICMP echo and other
//! protocols by address pair, with per-state timeouts and a bounded table.
//!
//! Each connection is stored once in a slab and found under two keys (original and
//! reply direction) in a hash map sized at start, so tracking allocates nothing per
//! packet. When the table is full the entry under a rotating hand is evicted (counted).
//! Time is in guest ticks (4 per second), advanced by the timer.

use super::classify::FastMap;
use super::rules::ct;
use crate::nf::ip::tcp;

/// Ticks per second.
pub const TICKS: u32 = 4;

/// Timeouts in seconds.
pub mod timeout {
    pub const TCP_SYN: u32 = 60;
    pub const TCP_ESTABLISHED: u32 = 3600;
    pub const TCP_FIN: u32 = 120;
    pub const TCP_CLOSE: u32 = 10;
    pub const UDP: u32 = 30;
    pub const UDP_REPLIED: u32 = 180;
    pub const ICMP: u32 = 30;
    pub const OTHER: u32 = 60;
}

/// A flow in one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Key {
    pub v6: bool,
    pub proto: u8,
    pub src: u128,
    pub dst: u128,
    pub sport: u16,
    pub dport: u16,
}

impl Key {
    /// The same flow seen from the other end.
    pub fn reversed(&self) -> Key {
        Key {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            ..*self
        }
    }
}

/// TCP connection states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpState {
    SynSent,
    SynRecv,
    Established,
    /// One side sent FIN.
    FinWait,
    /// Both sides sent FIN.
    Closing,
    /// RST seen, or closed.
    Close,
}

#[derive(Clone, Copy, Debug)]
struct Conn {
    key: Key,
    tcp: TcpState,
    /// Which direction sent the first FIN (true = reply).
    fin_reply: bool,
    replied: bool,
    expires: u32,
    live: bool,
}

/// Result of looking a packet up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Part of a tracked connection: slot, and whether it travels in the reply direction.
    Known { slot: usize, reply: bool },
    /// Not tracked.
    Unknown,
}

/// The connection table.
pub struct Conntrack {
    map: FastMap<Key, (u32, bool)>,
    slots: Vec<Conn>,
    free: Vec<u32>,
    hand: usize,
    now: u32,
    /// Connections evicted because the table was full.
    pub evictions: u64,
    /// Connections that timed out.
    pub expired: u64,
    /// Connections created.
    pub created: u64,
}

impl Conntrack {
    /// A table for `max` connections.
    pub fn new(max: usize) -> Conntrack {
        let max = max.max(1);
        Conntrack {
            map: FastMap::with_capacity_and_hasher(2 * max, Default::default()),
            slots: vec![
                Conn {
                    key: Key::default(),
                    tcp: TcpState::Close,
                    fin_reply: false,
                    replied: false,
                    expires: 0,
                    live: false,
                };
                max
            ],
            free: (0..max as u32).rev().collect(),
            hand: 0,
            now: 0,
            evictions: 0,
            expired: 0,
            created: 0,
        }
    }

    /// Live connections.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// `true` when no connection is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Find the connection of a packet with flow `k`.
    #[inline]
    pub fn find(&self, k: &Key) -> Seen {
        match self.map.get(k) {
            Some(&(slot, reply)) if self.slots[slot as usize].expires > self.now => Seen::Known {
                slot: slot as usize,
                reply,
            },
            _ => Seen::Unknown,
        }
    }

    /// The state a packet has for rule matching, given what [`Conntrack::find`] said and
    /// its TCP flags (0 for other protocols).
    pub fn state(&self, seen: Seen, proto: u8, flags: u8) -> u8 {
        match seen {
            Seen::Known { slot, reply } => {
                if proto == crate::nf::ip::PROTO_TCP && bad_flags(flags) {
                    ct::INVALID
                } else if reply || self.slots[slot].replied {
                    ct::ESTABLISHED
                } else {
                    ct::NEW
                }
            }
            Seen::Unknown => {
                if proto == crate::nf::ip::PROTO_TCP
                    && (bad_flags(flags) || flags & (tcp::SYN | tcp::ACK) != tcp::SYN)
                {
                    ct::INVALID
                } else {
                    ct::NEW
                }
            }
        }
    }

    /// Update the connection for an accepted packet (creating it if new).
    pub fn update(&mut self, k: &Key, seen: Seen, flags: u8) {
        let slot = match seen {
            Seen::Known { slot, reply } => {
                let now = self.now;
                let c = &mut self.slots[slot];
                if reply {
                    c.replied = true;
                }
                if k.proto == crate::nf::ip::PROTO_TCP {
                    c.tcp = next_tcp(c.tcp, &mut c.fin_reply, reply, flags);
                }
                c.expires = now + lifetime(c) * TICKS;
                return;
            }
            Seen::Unknown => {
                // An expired connection may still hold this key: retire it first.
                if let Some(&(old, _)) = self.map.get(k) {
                    self.remove(old as usize);
                    self.expired += 1;
                }
                match self.alloc() {
                    Some(s) => s,
                    None => return,
                }
            }
        };
        let mut c = Conn {
            key: *k,
            tcp: TcpState::SynSent,
            fin_reply: false,
            replied: false,
            expires: 0,
            live: true,
        };
        c.expires = self.now + lifetime(&c) * TICKS;
        self.slots[slot] = c;
        self.map.insert(*k, (slot as u32, false));
        self.map.insert(k.reversed(), (slot as u32, true));
        self.created += 1;
    }

    fn alloc(&mut self) -> Option<usize> {
        if let Some(s) = self.free.pop() {
            return Some(s as usize);
        }
        // Full: evict the entry under the hand.
        let s = self.hand % self.slots.len();
        self.hand = s + 1;
        self.remove(s);
        self.evictions += 1;
        self.free.pop().map(|s| s as usize)
    }

    fn remove(&mut self, s: usize) {
        let c = self.slots[s];
        if !c.live {
            return;
        }
        for k in [c.key, c.key.reversed()] {
            if self.map.get(&k).is_some_and(|(x, _)| *x as usize == s) {
                self.map.remove(&k);
            }
        }
        self.slots[s].live = false;
        self.free.push(s as u32);
    }

    /// Advance one tick and expire up to `budget` slots' worth of old connections.
    pub fn tick(&mut self, budget: usize) {
        self.now += 1;
        let n = self.slots.len();
        for _ in 0..budget.min(n) {
            let s = self.hand % n;
            self.hand = s + 1;
            if self.slots[s].live && self.slots[s].expires <= self.now {
                self.remove(s);
                self.expired += 1;
            }
        }
    }

    /// Live connections as (original-direction flow, TCP state, seen a reply, seconds
    /// left), at most `max` of them, in slot order.
    pub fn entries(&self, max: usize) -> Vec<(Key, TcpState, bool, u32)> {
        self.slots
            .iter()
            .filter(|c| c.live)
            .take(max)
            .map(|c| {
                (
                    c.key,
                    c.tcp,
                    c.replied,
                    c.expires.saturating_sub(self.now) / TICKS,
                )
            })
            .collect()
    }

    /// TCP state of a tracked connection slot.
    pub fn tcp_state(&self, slot: usize) -> TcpState {
        self.slots[slot].tcp
    }
}

/// Impossible TCP flag combinations.
fn bad_flags(f: u8) -> bool {
    f & (tcp::SYN | tcp::FIN) == tcp::SYN | tcp::FIN
        || f & (tcp::SYN | tcp::RST) == tcp::SYN | tcp::RST
        || f & (tcp::SYN | tcp::FIN | tcp::RST | tcp::ACK) == 0
}

fn next_tcp(s: TcpState, fin_reply: &mut bool, reply: bool, flags: u8) -> TcpState {
    use TcpState::*;
    if flags & tcp::RST != 0 {
        return Close;
    }
    let syn = flags & tcp::SYN != 0;
    let ack = flags & tcp::ACK != 0;
    let fin = flags & tcp::FIN != 0;
    match s {
        SynSent if reply && syn && ack => SynRecv,
        SynRecv if !reply && ack => Established,
        Established | SynRecv if fin => {
            *fin_reply = reply;
            FinWait
        }
        FinWait if fin && reply != *fin_reply => Closing,
        other => other,
    }
}

fn lifetime(c: &Conn) -> u32 {
    use crate::nf::ip::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
    match c.key.proto {
        PROTO_TCP => match c.tcp {
            TcpState::SynSent | TcpState::SynRecv => timeout::TCP_SYN,
            TcpState::Established => timeout::TCP_ESTABLISHED,
            TcpState::FinWait | TcpState::Closing => timeout::TCP_FIN,
            TcpState::Close => timeout::TCP_CLOSE,
        },
        PROTO_UDP if c.replied => timeout::UDP_REPLIED,
        PROTO_UDP => timeout::UDP,
        PROTO_ICMP | PROTO_ICMPV6 => timeout::ICMP,
        _ => timeout::OTHER,
    }
}

/// The flow of the packet quoted in an ICMP error (IP header at `at`), in the
/// direction it was sent.
pub fn inner_key(fr: &[u8], at: usize, end: usize, v6: bool) -> Option<Key> {
    let h = fr.get(at..end)?;
    let (proto, src, dst, l4) = if v6 {
        if h.len() < 40 || h[0] >> 4 != 6 {
            return None;
        }
        let a = u128::from_be_bytes(h[8..24].try_into().ok()?);
        let b = u128::from_be_bytes(h[24..40].try_into().ok()?);
        (h[6], a, b, 40)
    } else {
        if h.len() < 20 || h[0] >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(h[0] & 0xf) * 4;
        let a = u128::from(u32::from_be_bytes(h[12..16].try_into().ok()?));
        let b = u128::from(u32::from_be_bytes(h[16..20].try_into().ok()?));
        (h[9], a, b, ihl)
    };
    let l = h.get(l4..l4 + 8)?;
    let (sport, dport) = match proto {
        crate::nf::ip::PROTO_TCP | crate::nf::ip::PROTO_UDP | 132 => (
            u16::from_be_bytes([l[0], l[1]]),
            u16::from_be_bytes([l[2], l[3]]),
        ),
        crate::nf::ip::PROTO_ICMP | crate::nf::ip::PROTO_ICMPV6 => {
            let id = u16::from_be_bytes([l[4], l[5]]);
            (id, id)
        }
        _ => (0, 0),
    };
    Some(Key {
        v6,
        proto,
        src,
        dst,
        sport,
        dport,
    })
}
