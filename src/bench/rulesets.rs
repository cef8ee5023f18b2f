//! Firewall rule sets that make the classifier work for the benchmark's flows
//! ([`super::traffic::flow_source`]: UDP to 10.80.2.99:4001 from 10.80.1.1:4000, or
//! from sources in 10.96.0.0/12 with ports 1024–1055). Every set ends with the one
//! rule that accepts the flows, and no earlier rule matches any of them, so each
//! packet's lookup has to get past every rule the classifier considers for it:
//!
//! - [`Rules::One`]: the flow's rule alone (connection tracking and lookup, no rivals);
//! - [`Rules::Port`]: `n − 1` rules on the flow's own protocol and port (`udp dport
//!   4001`), each with a distinct source prefix (lengths /24, /32, /28, /26 in turn,
//!   all outside 10.0.0.0/8), action `drop`: a classifier that files rules by port
//!   finds all of them in the flow's bucket;
//! - [`Rules::Mixed`]: `n − 1` rules in the style of a ClassBench access list, drawn
//!   from a fixed seed: TCP, UDP, ICMP and any-protocol rules with random source and
//!   destination prefixes of mixed lengths (many near the flow's own addresses), exact
//!   ports, well-known ports, low/high and arbitrary port ranges.
//!
//! [`rule_file`] is the one entry point for these sets, used by `vecbox bench`,
//! `benches/firewall.rs` and the firewall's tests; [`flow_packet`] is a flow's packet.

use std::fmt::Write as _;

use super::scenario::Rules;
use super::traffic::{
    DPORT, DST_IP, MANY_SPORT, MANY_SRC, MANY_SRC_LEN, SPORT, SRC_IP, flow_source,
};
use crate::nf::firewall::rules::{Packet, ct};

/// Seed of the mixed rule set: the same rules in every run.
pub const SEED: u64 = 0x5eed_1515;

/// The rule that accepts every benchmark flow (last in every set).
pub fn flow_rule() -> String {
    let [a, b, c, d] = SRC_IP;
    let m = std::net::Ipv4Addr::from(MANY_SRC);
    format!("accept in vec0 proto udp src {a}.{b}.{c}.{d},{m}/{MANY_SRC_LEN} dport {DPORT}")
}

/// The rule file for `rules` with `n` rules (at least the flow's own), `policy drop`.
pub fn rule_file(rules: Rules, n: usize) -> String {
    let rivals = match rules {
        Rules::One => 0,
        _ => n.saturating_sub(1),
    };
    let mut s = format!(
        "# vecbox bench: {} rule set, {} rules, the flows' rule last\npolicy drop\n",
        match rules {
            Rules::One => "one-rule",
            Rules::Port => "own-port",
            Rules::Mixed => "mixed (ClassBench-like)",
        },
        rivals + 1
    );
    match rules {
        Rules::One => {}
        Rules::Port => {
            for i in 0..rivals {
                let _ = writeln!(
                    s,
                    "drop in vec0 proto udp src {} dport {DPORT}",
                    port_rival(i)
                );
            }
        }
        Rules::Mixed => {
            let mut rng = SplitMix(SEED);
            for _ in 0..rivals {
                let r = loop {
                    let r = MixedRule::draw(&mut rng);
                    if !r.could_match_a_flow() {
                        break r;
                    }
                };
                let _ = writeln!(s, "{}", r.text());
            }
        }
    }
    s.push_str(&flow_rule());
    s.push('\n');
    s
}

/// `n` rules on the benchmark flows' protocol and port that differ from them in their
/// `ct` states: every other one covers the flows in every field but the state, the
/// rest have distinct source prefixes with states that include `new`. The last rule
/// accepts the flows (`benches/firewall.rs` and the firewall's tests).
pub fn ct_state_file(n: usize) -> String {
    let mut s = String::from("policy drop\n");
    let states = [
        "established",
        "related",
        "invalid",
        "established,related",
        "related,invalid",
    ];
    let new = ["new", "new,established", "new,related", "new,invalid"];
    for i in 0..n.saturating_sub(1) {
        let action = ["accept", "drop", "reject"][i % 3];
        if i % 2 == 0 {
            // Matches the flows but for their state (`new`).
            let src = if i % 4 == 0 { "" } else { " src 10.96.0.0/12" };
            s += &format!(
                "{action} in vec0 proto udp{src} dport 4001 ct {}\n",
                states[i / 2 % states.len()]
            );
        } else {
            let a = std::net::Ipv4Addr::from(0xb000_0000u32 + ((i as u32) << 8));
            s += &format!(
                "{action} in vec0 proto udp src {a}/24 dport 4001 ct {}\n",
                new[i / 2 % new.len()]
            );
        }
    }
    s + &flow_rule() + "\n"
}

/// Source prefix of own-port rival `i`: a distinct /24 base above 176.0.0.0 for each
/// rule, as /24, /32, /28 or /26.
fn port_rival(i: usize) -> String {
    let base = 0xb000_0000u32.wrapping_add((i as u32) << 8);
    let (host, len) = [(0, 24), (1, 32), (16, 28), (64, 26)][i % 4];
    format!("{}/{len}", std::net::Ipv4Addr::from(base | host))
}

/// Flow `i` of `flows` ([`super::traffic::flow_source`]) as the firewall's classifier
/// sees its first packet: UDP arriving on `vec0`, leaving by `vec1`, state `new`.
pub fn flow_packet(flows: u32, i: u32) -> Packet {
    let (src, sport) = flow_source(flows, i);
    Packet {
        in_port: 0,
        out_port: Some(1),
        v6: false,
        src: u128::from(u32::from_be_bytes(src)),
        dst: u128::from(u32::from_be_bytes(DST_IP)),
        proto: UDP,
        ports: Some((sport, DPORT)),
        icmp_type: None,
        ct: ct::NEW,
    }
}

/// splitmix64: a small, well-mixed generator; enough for reproducible rule sets.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Index of `weights` drawn in proportion to them.
    fn pick(&mut self, weights: &[u64]) -> usize {
        let mut x = self.below(weights.iter().sum());
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

#[derive(Clone, Copy)]
struct Net {
    addr: u32,
    len: u8,
}

impl Net {
    fn mask(self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        }
    }

    fn new(addr: u32, len: u8) -> Net {
        let n = Net { addr, len };
        Net {
            addr: addr & n.mask(),
            len,
        }
    }

    fn contains(self, a: u32) -> bool {
        a & self.mask() == self.addr
    }

    fn overlaps(self, o: Net) -> bool {
        let m = self.mask() & o.mask();
        self.addr & m == o.addr & m
    }
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const WELL_KNOWN: [u16; 20] = [
    22, 25, 53, 80, 110, 123, 143, 161, 389, 443, 445, 993, 1433, 3306, 3389, 4001, 5060, 5432,
    8080, 8443,
];

struct MixedRule {
    accept: bool,
    proto: Option<u8>,
    src: Option<Net>,
    dst: Option<Net>,
    sport: Option<(u16, u16)>,
    dport: Option<(u16, u16)>,
    echo: bool,
}

impl MixedRule {
    fn draw(rng: &mut SplitMix) -> MixedRule {
        let proto = [Some(TCP), Some(UDP), Some(ICMP), None][rng.pick(&[55, 30, 7, 8])];
        // Sources: a quarter near the flows' own (10.96.0.0/12), the rest anywhere in
        // the private ranges or the public space.
        let src_len = [0, 8, 16, 24, 32][rng.pick(&[10, 5, 15, 35, 35])];
        let src_addr = match rng.pick(&[25, 25, 15, 10, 25]) {
            0 => MANY_SRC | (rng.below(1 << (32 - MANY_SRC_LEN)) as u32),
            1 => 0x0a00_0000 | (rng.below(1 << 24) as u32),
            2 => 0xac10_0000 | (rng.below(1 << 20) as u32),
            3 => 0xc0a8_0000 | (rng.below(1 << 16) as u32),
            _ => rng.next() as u32,
        };
        // Destinations: many in the flows' destination /16, as servers' networks are.
        let dst_len = [0, 16, 24, 28, 32][rng.pick(&[5, 10, 35, 10, 40])];
        let dst_addr = match rng.pick(&[40, 35, 25]) {
            0 => (u32::from_be_bytes(DST_IP) & 0xffff_0000) | (rng.below(1 << 16) as u32),
            1 => 0x0a00_0000 | (rng.below(1 << 24) as u32),
            _ => rng.next() as u32,
        };
        let ports = matches!(proto, Some(TCP | UDP));
        let sport = ports.then(|| match rng.pick(&[75, 10, 15]) {
            0 => None,
            1 => Some((1024, 65535)),
            _ => {
                let p = 1 + rng.below(65535) as u16;
                Some((p, p))
            }
        });
        // A tenth on the flows' own service port, as real lists guard one service with
        // many rules.
        let dport = ports.then(|| match rng.pick(&[10, 40, 10, 10, 15, 15]) {
            0 => None,
            1 => {
                let p = WELL_KNOWN[rng.below(WELL_KNOWN.len() as u64) as usize];
                Some((p, p))
            }
            2 => Some((DPORT, DPORT)),
            3 => Some((0, 1023)),
            4 => {
                let a = rng.below(60000) as u16;
                Some((a, a + 1 + rng.below(2000) as u16))
            }
            _ => Some((1024, 65535)),
        });
        MixedRule {
            accept: rng.below(2) == 0,
            proto,
            src: (src_len > 0).then(|| Net::new(src_addr, src_len)),
            dst: (dst_len > 0).then(|| Net::new(dst_addr, dst_len)),
            sport: sport.flatten(),
            dport: dport.flatten(),
            echo: proto == Some(ICMP) && rng.below(2) == 0,
        }
    }

    /// Whether this rule matches some benchmark flow (then it is drawn again).
    fn could_match_a_flow(&self) -> bool {
        let many = Net::new(MANY_SRC, MANY_SRC_LEN);
        let single = u32::from_be_bytes(SRC_IP);
        let sports_hit = |(a, b): (u16, u16)| {
            (a..=b).contains(&SPORT) || (a <= MANY_SPORT + 31 && b >= MANY_SPORT)
        };
        self.proto.is_none_or(|p| p == UDP)
            && self
                .src
                .is_none_or(|n| n.overlaps(many) || n.contains(single))
            && self
                .dst
                .is_none_or(|n| n.contains(u32::from_be_bytes(DST_IP)))
            && self.sport.is_none_or(sports_hit)
            && self.dport.is_none_or(|(a, b)| (a..=b).contains(&DPORT))
    }

    fn text(&self) -> String {
        let mut s = String::from(if self.accept { "accept" } else { "drop" });
        match self.proto {
            Some(TCP) => s += " proto tcp",
            Some(UDP) => s += " proto udp",
            Some(ICMP) => s += " proto icmp",
            _ => {}
        }
        if self.echo {
            s += " icmp-type echo-request";
        }
        for (word, net) in [("src", self.src), ("dst", self.dst)] {
            if let Some(n) = net {
                let _ = write!(s, " {word} {}/{}", std::net::Ipv4Addr::from(n.addr), n.len);
            }
        }
        for (word, range) in [("sport", self.sport), ("dport", self.dport)] {
            match range {
                Some((a, b)) if a == b => {
                    let _ = write!(s, " {word} {a}");
                }
                Some((a, b)) => {
                    let _ = write!(s, " {word} {a}-{b}");
                }
                None => {}
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nf::firewall::classify::Classifier;
    use crate::nf::firewall::rules;

    fn parse(text: &str) -> Vec<rules::Rule> {
        rules::parse("bench.rules", text, &["vec0".into(), "vec1".into()])
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
            .rules
    }

    #[test]
    fn every_flow_matches_the_last_rule_only() {
        for set in [Rules::One, Rules::Port, Rules::Mixed] {
            let rules = parse(&rule_file(set, 1000));
            let want = if set == Rules::One { 1 } else { 1000 };
            assert_eq!(rules.len(), want, "{set:?}");
            let cls = Classifier::new(rules);
            for flows in [1u32, 10_000, 100_000] {
                for i in [0, 1, 31, 32, 3124, 3125, flows / 2, flows - 1] {
                    let p = flow_packet(flows, i % flows);
                    assert_eq!(cls.scan(&p), Some(want - 1), "{set:?} {flows} flow {i}");
                    assert_eq!(cls.lookup(&p), Some(want - 1), "{set:?} {flows} flow {i}");
                }
            }
        }
    }

    #[test]
    fn own_port_rivals_share_the_flows_port_with_distinct_sources() {
        let rules = parse(&rule_file(Rules::Port, 1000));
        let rivals = &rules[..999];
        assert!(
            rivals
                .iter()
                .all(|r| r.proto == Some(UDP) && r.dport == [(DPORT, DPORT)] && r.src.len() == 1)
        );
        let srcs: std::collections::HashSet<_> = rivals
            .iter()
            .map(|r| (r.src[0].addr, r.src[0].len))
            .collect();
        assert_eq!(srcs.len(), 999, "distinct source prefixes");
        let lens: std::collections::HashSet<_> = rivals.iter().map(|r| r.src[0].len).collect();
        assert_eq!(lens.len(), 4, "{lens:?}");
    }

    #[test]
    fn mixed_set_is_reproducible_and_mixed() {
        let text = rule_file(Rules::Mixed, 1000);
        assert_eq!(text, rule_file(Rules::Mixed, 1000), "fixed seed");
        let rules = parse(&text);
        let count = |f: &dyn Fn(&rules::Rule) -> bool| rules.iter().filter(|r| f(r)).count();
        for (what, n) in [
            ("tcp", count(&|r| r.proto == Some(TCP))),
            ("udp", count(&|r| r.proto == Some(UDP))),
            ("icmp", count(&|r| r.proto == Some(ICMP))),
            ("any protocol", count(&|r| r.proto.is_none())),
            (
                "port ranges",
                count(&|r| r.dport.iter().any(|(a, b)| a != b)),
            ),
            (
                "exact ports",
                count(&|r| r.dport.iter().any(|(a, b)| a == b)),
            ),
            (
                "udp dport 4001",
                count(&|r| r.proto == Some(UDP) && r.dport == [(DPORT, DPORT)]),
            ),
            ("/32 sources", count(&|r| r.src.iter().any(|p| p.len == 32))),
            (
                "/24 destinations",
                count(&|r| r.dst.iter().any(|p| p.len == 24)),
            ),
            ("no source", count(&|r| r.src.is_empty())),
        ] {
            assert!(n >= 5, "{what}: {n} rules");
        }
        // About as many accepts as drops.
        let accepts = count(&|r| r.action == rules::Action::Accept);
        assert!((300..700).contains(&accepts), "{accepts}");
    }
}
