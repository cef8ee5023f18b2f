//! Rule sets and traffic that exercise the classifier, for benchmarks
//! (`benches/firewall.rs`, the firewall rows of `vecbox bench`) and tests: the same
//! seed gives the same rules everywhere.
//!
//! Every set ends with the one rule that matches the benchmark traffic ([`Flows`]);
//! no rule before it matches any of that traffic, so the classifier has to find the
//! last rule among the others every time. Shapes:
//! - [`Shape::SamePort`]: every rule on the flows' own protocol and destination port,
//!   with distinct source prefixes (many rules guarding one service);
//! - [`Shape::Mixed`]: a ClassBench-like access list: random source and destination
//!   prefixes clustered in a few networks, exact ports and port ranges, TCP, UDP, ICMP
//!   and others, some `ct` states and input ports;
//! - [`Shape::CtStates`]: rules on the flows' protocol and port that differ in their
//!   `ct` states (half of them cover the traffic in every field but the state).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::rules::{Packet, ct};
use crate::nf::ip;

/// A rule-set shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    SamePort,
    Mixed,
    CtStates,
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 3] = [Shape::SamePort, Shape::Mixed, Shape::CtStates];

    /// Short name (`same-port`, `mixed`, `ct-states`).
    pub fn name(self) -> &'static str {
        match self {
            Shape::SamePort => "same-port",
            Shape::Mixed => "mixed",
            Shape::CtStates => "ct-states",
        }
    }
}

impl std::str::FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Shape, String> {
        Shape::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                format!("unknown rule-set shape `{s}`; use same-port, mixed or ct-states")
            })
    }
}

/// The benchmark traffic: UDP from many sources in one IPv4 prefix and many source
/// ports to one destination address and port, arriving on `vec0` and leaving by
/// `vec1`, never answered (so always in state `new`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flows {
    /// Source prefix (addresses .1 up to the last but one are used).
    pub src_net: Ipv4Addr,
    pub src_len: u8,
    /// Source ports used.
    pub sports: (u16, u16),
    pub dst: Ipv4Addr,
    pub dport: u16,
}

impl Default for Flows {
    /// `vecbox bench`'s flow: 10.80.1.0/24, ports 1024-65535 → 10.80.2.99:4001.
    fn default() -> Flows {
        Flows {
            src_net: Ipv4Addr::new(10, 80, 1, 0),
            src_len: 24,
            sports: (1024, 65535),
            dst: Ipv4Addr::new(10, 80, 2, 99),
            dport: 4001,
        }
    }
}

impl Flows {
    /// Usable source addresses.
    pub fn hosts(&self) -> u32 {
        (1u32 << (32 - u32::from(self.src_len)))
            .saturating_sub(2)
            .max(1)
    }

    /// Source address and port of flow `i` (0-based): addresses vary fastest, then
    /// ports, so `n` flows use min(n, hosts) addresses.
    pub fn flow(&self, i: usize) -> (Ipv4Addr, u16) {
        let h = self.hosts() as usize;
        let addr = u32::from(self.src_net) + 1 + (i % h) as u32;
        let span = usize::from(self.sports.1 - self.sports.0) + 1;
        let port = self.sports.0 as usize + (i / h) % span;
        (Ipv4Addr::from(addr), port as u16)
    }

    /// The rule that matches every flow (the last of every set).
    pub fn rule(&self) -> String {
        format!(
            "accept in vec0 proto udp src {}/{} dst {} dport {}",
            self.src_net, self.src_len, self.dst, self.dport
        )
    }

    /// Flow `i` as the classifier sees it on `vec0` towards `vec1`.
    pub fn packet(&self, i: usize) -> Packet {
        let (src, sport) = self.flow(i);
        Packet {
            in_port: 0,
            out_port: Some(1),
            v6: false,
            src: u128::from(u32::from(src)),
            dst: u128::from(u32::from(self.dst)),
            proto: ip::PROTO_UDP,
            ports: Some((sport, self.dport)),
            icmp_type: None,
            ct: ct::NEW,
        }
    }

    /// `true` if a prefix overlaps the flows' source prefix.
    fn src_overlaps(&self, a: u32, len: u8) -> bool {
        let l = len.min(self.src_len);
        let m = mask(l);
        a & m == u32::from(self.src_net) & m
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

/// SplitMix64: small, fast, and the same everywhere for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// `true` with probability p/100.
    fn pct(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

/// `n` rules (plus a `policy drop` line) of `shape` from `seed`; the last matches
/// `flows`, no other matches any of its packets.
pub fn rules(shape: Shape, n: usize, seed: u64, flows: &Flows) -> String {
    let mut rng = Rng(seed ^ (shape as u64 + 1).wrapping_mul(0x1000_0000_01b3));
    let mut out = String::from("policy drop\n");
    let mut seen = HashSet::new();
    for _ in 0..n.saturating_sub(1) {
        let r = match shape {
            Shape::SamePort => same_port(&mut rng, flows, &mut seen),
            Shape::Mixed => mixed(&mut rng, flows),
            Shape::CtStates => ct_states(&mut rng, flows, &mut seen),
        };
        out += &r;
        out.push('\n');
    }
    out += &flows.rule();
    out.push('\n');
    out
}

/// A prefix of `min_len` to 32 bits in one of a few private and public networks,
/// lengths skewed to the long end as in access lists (ClassBench's ACL seeds): about a
/// third host addresses, a third /24 to /31, the rest shorter.
fn prefix(rng: &mut Rng, min_len: u8) -> (u32, u8) {
    let len = match rng.below(100) {
        0..=34 => 32,
        35..=69 => 24 + rng.below(8) as u8,
        70..=89 => 16 + rng.below(8) as u8,
        _ => 8 + rng.below(8) as u8,
    }
    .max(min_len);
    let base = match rng.below(10) {
        0..=4 => 0x0a00_0000 | (rng.next() as u32 & 0x00ff_ffff), // 10/8
        5 | 6 => 0xac10_0000 | (rng.next() as u32 & 0x000f_ffff), // 172.16/12
        7 => 0xc0a8_0000 | (rng.next() as u32 & 0x0000_ffff),     // 192.168/16
        _ => rng.next() as u32,
    };
    (base & mask(len), len)
}

/// A prefix not seen before and apart from the flows' sources.
fn distinct_prefix(rng: &mut Rng, flows: &Flows, seen: &mut HashSet<(u32, u8)>) -> String {
    loop {
        let (a, l) = prefix(rng, 16);
        if !flows.src_overlaps(a, l) && seen.insert((a, l)) {
            return format!("{}/{l}", Ipv4Addr::from(a));
        }
    }
}

fn same_port(rng: &mut Rng, flows: &Flows, seen: &mut HashSet<(u32, u8)>) -> String {
    let action = if rng.pct(60) { "drop" } else { "accept" };
    format!(
        "{action} in vec0 proto udp src {} dport {}",
        distinct_prefix(rng, flows, seen),
        flows.dport
    )
}

fn ct_states(rng: &mut Rng, flows: &Flows, seen: &mut HashSet<(u32, u8)>) -> String {
    let action = rng.pick(&["accept", "drop", "reject"]);
    let head = format!("{action} in vec0 proto udp");
    if rng.pct(50) {
        // Everything but the state covers the flows.
        let state = rng.pick(&[
            "established",
            "related",
            "invalid",
            "established,related",
            "related,invalid",
        ]);
        let src = if rng.pct(50) {
            String::new()
        } else {
            format!(" src {}/{}", flows.src_net, flows.src_len)
        };
        format!("{head}{src} dport {} ct {state}", flows.dport)
    } else {
        let state = rng.pick(&["new", "new,established", "new,related", "new,invalid"]);
        format!(
            "{head} src {} dport {} ct {state}",
            distinct_prefix(rng, flows, seen),
            flows.dport
        )
    }
}

const WELL_KNOWN: [u16; 18] = [
    22, 25, 53, 80, 110, 123, 143, 443, 445, 993, 995, 1433, 1521, 3306, 3389, 5432, 8080, 8443,
];

/// One ClassBench-like access-list rule that none of `flows` matches.
fn mixed(rng: &mut Rng, flows: &Flows) -> String {
    loop {
        let mut r = String::new();
        let action = match rng.below(100) {
            0..=54 => "accept",
            55..=89 => "drop",
            _ => "reject",
        };
        r += action;
        let in_port = match rng.below(10) {
            0 | 1 => Some("vec0"),
            2 => Some("vec1"),
            _ => None,
        };
        if let Some(p) = in_port {
            let _ = write!(r, " in {p}");
        }
        let proto = match rng.below(100) {
            0..=59 => Some("tcp"),
            60..=84 => Some("udp"),
            85..=91 => Some("icmp"),
            92..=93 => Some("gre"),
            94 => Some("esp"),
            _ => None,
        };
        if let Some(p) = proto {
            let _ = write!(r, " proto {p}");
        }
        // Source: often any; destination: mostly specific.
        let src = (!rng.pct(30)).then(|| prefix(rng, 8));
        let dst = (!rng.pct(15)).then(|| prefix(rng, 8));
        if let Some((a, l)) = src {
            let _ = write!(r, " src {}/{l}", Ipv4Addr::from(a));
        }
        if let Some((a, l)) = dst {
            let _ = write!(r, " dst {}/{l}", Ipv4Addr::from(a));
        }
        let mut sport = None;
        let mut dport = None;
        if matches!(proto, Some("tcp" | "udp")) {
            sport = match rng.below(100) {
                0..=79 => None,
                80..=84 => Some(port_exact(rng.below(64512) as u16 + 1024)),
                85..=94 => Some((1024, 65535)),
                _ => Some(port_range(rng)),
            };
            dport = match rng.below(100) {
                0..=44 => Some(port_exact(rng.pick(&WELL_KNOWN))),
                45..=59 => Some(port_exact(rng.below(65535) as u16 + 1)),
                60..=74 => Some(port_range(rng)),
                75..=79 => Some((1024, 65535)),
                80..=84 => Some((0, 1023)),
                _ => None,
            };
        }
        for (kw, p) in [("sport", sport), ("dport", dport)] {
            match p {
                Some((a, b)) if a == b => {
                    let _ = write!(r, " {kw} {a}");
                }
                Some((a, b)) => {
                    let _ = write!(r, " {kw} {a}-{b}");
                }
                None => {}
            }
        }
        if proto == Some("icmp") && rng.pct(50) {
            let t = rng.pick(&[
                "echo-request",
                "echo-reply",
                "destination-unreachable",
                "time-exceeded",
            ]);
            let _ = write!(r, " icmp-type {t}");
        }
        let state = match rng.below(100) {
            0..=14 => Some("new"),
            15..=19 => Some("established,related"),
            20..=22 => Some("invalid"),
            _ => None,
        };
        if let Some(s) = state {
            let _ = write!(r, " ct {s}");
        }
        // Keep it only if it misses every flow.
        let hits = proto.is_none_or(|p| p == "udp")
            && in_port.is_none_or(|p| p == "vec0")
            && src.is_none_or(|(a, l)| flows.src_overlaps(a, l))
            && dst.is_none_or(|(a, l)| u32::from(flows.dst) & mask(l) == a)
            && sport.is_none_or(|(a, b)| a <= flows.sports.1 && flows.sports.0 <= b)
            && dport.is_none_or(|(a, b)| (a..=b).contains(&flows.dport))
            && state.is_none_or(|s| s.contains("new") || s.contains("established"));
        if !hits {
            return r;
        }
    }
}

fn port_exact(p: u16) -> (u16, u16) {
    (p, p)
}

fn port_range(rng: &mut Rng) -> (u16, u16) {
    let a = rng.below(65000) as u16;
    let len = rng.pick(&[7u16, 15, 63, 99, 255, 999, 4095]);
    (a, a.saturating_add(len))
}
