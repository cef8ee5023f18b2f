//! Connection tracking: TCP (a SYN/FIN/RST state machine), UDP, ICMP echo and other
//! protocols by address pair, with per-state timeouts and a bounded table.
//!
//! Each connection is stored once in a slab (capacity reserved at start, pages touched
//! as connections arrive) and found through [`Index`] under its direction-independent
//! key: one keyed hash and at most two buckets per packet, no rehash, ever. When the
//! table is full the connection under a rotating hand is evicted (counted). Time is in
//! guest ticks (4 per second), advanced by the timer, which also sweeps out expired
//! connections. Each connection also remembers, per direction, the rule its packets
//! were last classified to ([`Verdict`]), so the classifier runs once per flow.

use super::index::Index;
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
    /// The flow with its endpoints in a fixed order: equal for both directions.
    #[inline]
    pub fn canonical(&self) -> Key {
        if (self.src, self.sport) <= (self.dst, self.dport) {
            *self
        } else {
            self.reversed()
        }
    }

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

/// A key as the few words the index hashes: one write per word, not per field (IPv4
/// addresses fit one word together).
struct Words<'a>(&'a Key);

impl std::hash::Hash for Words<'_> {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let k = self.0;
        if k.v6 {
            for a in [k.src, k.dst] {
                h.write_u64(a as u64);
                h.write_u64((a >> 64) as u64);
            }
        } else {
            h.write_u64((k.src as u64) << 32 ^ k.dst as u64);
        }
        h.write_u64(
            u64::from(k.sport) << 48
                | u64::from(k.dport) << 32
                | u64::from(k.proto) << 8
                | u64::from(k.v6),
        );
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

/// The rule a direction of a connection was last classified to, and under what: the
/// classifier's generation and the packet fields the connection's key does not fix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub generation: u32,
    pub context: u64,
    /// Rule index, or `u32::MAX` for the policy.
    pub rule: u32,
}

#[derive(Clone, Copy, Debug)]
struct Conn {
    /// Original direction.
    key: Key,
    expires: u32,
    /// Position in the index.
    at: u32,
    tcp: TcpState,
    /// Which direction sent the first FIN (true = reply).
    fin_reply: bool,
    replied: bool,
    live: bool,
    /// Original, reply direction.
    verdict: [Verdict; 2],
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
    index: Index,
    /// Used slots; the capacity is reserved at start, so it never reallocates.
    slots: Vec<Conn>,
    max: usize,
    free: Vec<u32>,
    live: usize,
    hand: usize,
    now: u32,
    /// Connections evicted to make room: the table was full, or both of a new
    /// connection's buckets in the index were (the latter also in `bucket_full`).
    pub evictions: u64,
    /// Evictions because both candidate buckets were full (a sign of hash trouble).
    pub bucket_full: u64,
    /// Connections that timed out.
    pub expired: u64,
    /// Connections created.
    pub created: u64,
}

impl Conntrack {
    /// A table for `max` connections.
    pub fn new(max: usize) -> Conntrack {
        let max = max.clamp(1, u32::MAX as usize / 2);
        Conntrack {
            index: Index::new(max),
            slots: Vec::with_capacity(max),
            max,
            free: Vec::new(),
            live: 0,
            hand: 0,
            now: 0,
            evictions: 0,
            bucket_full: 0,
            expired: 0,
            created: 0,
        }
    }

    /// Live connections.
    pub fn len(&self) -> usize {
        self.live
    }

    /// `true` when no connection is tracked.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.max
    }

    /// Bytes the table takes at full capacity.
    pub fn bytes(&self) -> usize {
        self.index.bytes() + self.max * std::mem::size_of::<Conn>()
    }

    /// The slot holding `k` (either direction), live or expired, and whether `k` is
    /// its reply direction.
    #[inline]
    fn lookup(&self, k: &Key) -> Option<(usize, bool)> {
        let c = k.canonical();
        let h = self.index.hash(&Words(&c));
        let (slot, _) = self
            .index
            .find(h, |s| self.slots[s as usize].key.canonical() == c)?;
        let orig = &self.slots[slot as usize].key;
        Some((slot as usize, (k.src, k.sport) != (orig.src, orig.sport)))
    }

    /// Find the connection of a packet with flow `k`.
    #[inline]
    pub fn find(&self, k: &Key) -> Seen {
        match self.lookup(k) {
            Some((slot, reply)) if self.slots[slot].expires > self.now => {
                Seen::Known { slot, reply }
            }
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

    /// The verdict remembered for a direction of a tracked connection.
    #[inline]
    pub fn verdict(&self, slot: usize, reply: bool) -> Verdict {
        self.slots[slot].verdict[usize::from(reply)]
    }

    /// Remember a verdict for a direction of a tracked connection.
    #[inline]
    pub fn remember(&mut self, slot: usize, reply: bool, v: Verdict) {
        self.slots[slot].verdict[usize::from(reply)] = v;
    }

    /// Make every remembered verdict stale (the generation counter wrapped).
    pub fn forget_verdicts(&mut self) {
        for c in &mut self.slots {
            c.verdict = [Verdict::default(); 2];
        }
    }

    /// Update the connection for an accepted packet (creating it if new); its slot,
    /// unless a new connection found no room.
    pub fn update(&mut self, k: &Key, seen: Seen, flags: u8) -> Option<usize> {
        if let Seen::Known { slot, reply } = seen {
            let now = self.now;
            let c = &mut self.slots[slot];
            if reply {
                c.replied = true;
            }
            if k.proto == crate::nf::ip::PROTO_TCP {
                c.tcp = next_tcp(c.tcp, &mut c.fin_reply, reply, flags);
            }
            c.expires = now + lifetime(c) * TICKS;
            return Some(slot);
        }
        // An expired connection may still hold this key: retire it first.
        if let Some((old, _)) = self.lookup(k) {
            self.remove(old);
            self.expired += 1;
        }
        let h = self.index.hash(&Words(&k.canonical()));
        let slot = self.alloc()?;
        let at = match self.index.insert(h, slot as u32) {
            Some(at) => at,
            None => {
                // Both buckets full: evict the one of their connections closest to
                // expiry (never seen with a keyed hash at this load, but bounded).
                let victim = self
                    .index
                    .candidates(h)
                    .min_by_key(|s| self.slots[*s as usize].expires)?;
                self.remove(victim as usize);
                self.evictions += 1;
                self.bucket_full += 1;
                self.index.insert(h, slot as u32)?
            }
        };
        let mut c = Conn {
            key: *k,
            expires: 0,
            at,
            tcp: TcpState::SynSent,
            fin_reply: false,
            replied: false,
            live: true,
            verdict: [Verdict::default(); 2],
        };
        c.expires = self.now + lifetime(&c) * TICKS;
        self.slots[slot] = c;
        self.live += 1;
        self.created += 1;
        Some(slot)
    }

    /// A free slot (not yet in the index), evicting under the hand when full.
    fn alloc(&mut self) -> Option<usize> {
        if let Some(s) = self.free.pop() {
            return Some(s as usize);
        }
        if self.slots.len() < self.max {
            self.slots.push(EMPTY);
            return Some(self.slots.len() - 1);
        }
        let s = self.hand % self.slots.len();
        self.hand = s + 1;
        self.remove(s);
        self.evictions += 1;
        self.free.pop().map(|s| s as usize)
    }

    fn remove(&mut self, s: usize) {
        let c = &mut self.slots[s];
        if !c.live {
            return;
        }
        c.live = false;
        let at = c.at;
        self.index.remove(at);
        self.live -= 1;
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

    /// Slots to visit per tick so the whole table is swept every [`SWEEP_SECONDS`].
    pub fn sweep_budget(&self) -> usize {
        (self.max / (SWEEP_SECONDS * TICKS) as usize).max(1024)
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
}

/// Seconds in which the timer visits every slot once (expiry also happens on lookup).
pub const SWEEP_SECONDS: u32 = 5;

const EMPTY: Conn = Conn {
    key: Key {
        v6: false,
        proto: 0,
        src: 0,
        dst: 0,
        sport: 0,
        dport: 0,
    },
    expires: 0,
    at: 0,
    tcp: TcpState::Close,
    fin_reply: false,
    replied: false,
    live: false,
    verdict: [Verdict {
        generation: 0,
        context: 0,
        rule: 0,
    }; 2],
};

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
