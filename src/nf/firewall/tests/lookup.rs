//! The classifier against the linear first-match scan it replaces.

use proptest::prelude::*;

use crate::bench::rulesets::{ct_state_file, flow_packet, rule_file};
use crate::bench::scenario::Rules;
use crate::nf::firewall::classify::Classifier;
use crate::nf::firewall::rules::{self, Action, Packet, Prefix, Rule};

fn prefix(v6: bool, addr: u128, len: u8) -> Prefix {
    let bits = if v6 { 128 } else { 32 };
    let mask = if len == 0 {
        0
    } else {
        (u128::MAX >> (128 - bits)) & !((1u128 << (bits - u32::from(len))) - 1)
    };
    Prefix {
        v6,
        addr: addr & mask,
        mask,
        len,
    }
}

/// Addresses near each other, so prefixes nest and overlap and packets hit them.
const V4_BASES: [u128; 5] = [0x0a00_0000, 0x0a01_0000, 0x0a01_0200, 0xc0a8_0100, 0];
const V6_BASES: [u128; 3] = [0xfd00 << 112, (0xfd00 << 112) | (1 << 80), 1];
const PORTS: [u16; 10] = [0, 1, 53, 80, 443, 1023, 1024, 4000, 4001, 65535];
const PROTOS: [u8; 7] = [6, 17, 1, 58, 47, 132, 99];
const ICMP: [u8; 5] = [0, 3, 8, 128, 129];

fn address(v6: bool) -> impl Strategy<Value = u128> {
    let bases: Vec<u128> = if v6 {
        V6_BASES.to_vec()
    } else {
        V4_BASES.to_vec()
    };
    (prop::sample::select(bases), any::<u16>(), 0u8..3).prop_map(move |(b, low, spread)| {
        // Mostly close to a base, sometimes a little further.
        b | u128::from(low) << (u32::from(spread) * 4)
    })
}

fn prefixes(v6: bool) -> impl Strategy<Value = Vec<Prefix>> {
    let lens: Vec<u8> = if v6 {
        vec![0, 16, 48, 64, 100, 120, 127, 128]
    } else {
        vec![0, 8, 16, 20, 24, 28, 30, 31, 32]
    };
    prop::collection::vec(
        (address(v6), prop::sample::select(lens)).prop_map(move |(a, l)| prefix(v6, a, l)),
        0..3,
    )
}

fn port_ranges() -> impl Strategy<Value = Vec<(u16, u16)>> {
    prop::collection::vec(
        (
            prop::sample::select(PORTS.to_vec()),
            0u16..2000,
            any::<bool>(),
        )
            .prop_map(|(a, w, exact)| {
                if exact {
                    (a, a)
                } else {
                    (a, a.saturating_add(w))
                }
            }),
        0..3,
    )
}

/// Any rule the classifier may meet, including combinations the parser refuses.
fn arb_rule() -> impl Strategy<Value = Rule> {
    let family = prop_oneof![Just(None), Just(Some(false)), Just(Some(true))];
    (
        family.prop_flat_map(|f| {
            let v6 = f.unwrap_or(false);
            (Just(f), prefixes(v6), prefixes(v6))
        }),
        prop::option::of(prop::sample::select(PROTOS.to_vec())),
        port_ranges(),
        port_ranges(),
        prop::option::of(prop::sample::select(ICMP.to_vec())),
        0u8..16,
        prop::option::of(0usize..3),
        prop::option::of(0usize..3),
        0u8..3,
    )
        .prop_map(
            |((v6, src, dst), proto, sport, dport, icmp_type, ct, in_port, out_port, action)| {
                Rule {
                    line: 0,
                    text: String::new(),
                    action: [Action::Accept, Action::Drop, Action::Reject][usize::from(action)],
                    in_port,
                    out_port,
                    v6,
                    src,
                    dst,
                    proto,
                    sport,
                    dport,
                    icmp_type,
                    ct,
                    log: false,
                }
            },
        )
}

fn arb_packet() -> impl Strategy<Value = Packet> {
    any::<bool>().prop_flat_map(|v6| {
        (
            address(v6),
            address(v6),
            prop_oneof![prop::sample::select(PROTOS.to_vec()), any::<u8>()],
            prop::option::of((
                prop::sample::select(PORTS.to_vec()),
                prop::sample::select(PORTS.to_vec()),
                0u16..3,
            )),
            prop::option::of(prop::sample::select(ICMP.to_vec())),
            prop_oneof![
                4 => prop::sample::select(vec![1u8, 2, 4, 8]),
                1 => any::<u8>(),
            ],
            prop_oneof![4 => 0usize..4, 1 => Just(300usize)],
            prop_oneof![
                Just(None),
                (0usize..4).prop_map(Some),
                Just(Some(1000usize))
            ],
        )
            .prop_map(
                move |(src, dst, proto, ports, icmp_type, ct, in_port, out_port)| Packet {
                    in_port,
                    out_port,
                    v6,
                    src,
                    dst,
                    proto,
                    ports: ports.map(|(s, d, off)| (s.wrapping_add(off), d.wrapping_sub(off))),
                    icmp_type,
                    ct,
                },
            )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Trees (one, or several groups past 64 rules) give exactly the first match of a
    /// linear scan, for any rules and any packet.
    #[test]
    fn trees_agree_with_linear_scan(
        rules in prop::collection::vec(arb_rule(), 0..150),
        packets in prop::collection::vec(arb_packet(), 1..64),
    ) {
        let c = Classifier::new(rules);
        for p in &packets {
            prop_assert_eq!(c.lookup(p), c.scan(p), "{:?}", p);
        }
        let l = Classifier::linear(c.rules().to_vec());
        for p in &packets {
            prop_assert_eq!(l.lookup(p), c.scan(p));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Past 64 rules the separable groups are joined into fewer trees when those fit
    /// the memory allowance: whichever trees are kept, the answers are the scan's.
    #[test]
    fn joined_trees_agree_with_linear_scan(
        rules in prop::collection::vec(arb_rule(), 65..300),
        packets in prop::collection::vec(arb_packet(), 1..64),
    ) {
        let c = Classifier::new(rules);
        prop_assert!(!c.stats().trees[0].is_empty() || c.rules().iter().all(|r| r.v6 == Some(true)));
        for p in &packets {
            prop_assert_eq!(c.lookup(p), c.scan(p), "{:?}", p);
        }
    }
}

/// A tree build stops at its memory limit (that is how a join that would take too
/// much is abandoned); within the limit it is the same tree.
#[test]
fn tree_build_respects_its_memory_limit() {
    use crate::nf::firewall::{cuts, fields};
    let set = rules::parse("x", &rule_file(Rules::Mixed, 1000), &names()).unwrap();
    let axes = fields::Axes::new(&set.rules);
    let space = fields::Space::new(&set.rules, false, &axes);
    let all = space.rules();
    let whole = cuts::tree::<u32>(&space, &axes, &all, usize::MAX).expect("no limit");
    let bytes = whole.stats().bytes;
    assert!(cuts::tree::<u32>(&space, &axes, &all, bytes / 2).is_none());
    let again = cuts::tree::<u32>(&space, &axes, &all, bytes).expect("fits its own size");
    assert_eq!(again.stats(), whole.stats());
    for i in (0..100_000).step_by(991) {
        let p = flow_packet(100_000, i);
        let x = axes.point::<u32>(&p).unwrap();
        assert_eq!(again.lookup(&x, u32::MAX), Some(999));
        assert_eq!(whole.lookup(&x, u32::MAX), Some(999));
    }
}

fn names() -> Vec<String> {
    vec!["vec0".into(), "vec1".into()]
}

/// The rule sets of the benchmarks (one generator: `bench::rulesets`) and the
/// `ct`-state set, `n` rules each.
fn sets(n: usize) -> [(&'static str, String); 3] {
    [
        ("own-port", rule_file(Rules::Port, n)),
        ("mixed", rule_file(Rules::Mixed, n)),
        ("ct-states", ct_state_file(n)),
    ]
}

#[test]
fn benchmark_sets_end_with_the_traffic_rule_and_agree_with_the_scan() {
    for n in [2, 10, 100, 1000] {
        for (name, text) in sets(n) {
            let set = rules::parse("scenario", &text, &names()).unwrap();
            assert_eq!(set.rules.len(), n, "{name}");
            let c = Classifier::new(set.rules);
            for i in (0..100_000).step_by(997) {
                let p = flow_packet(100_000, i);
                assert_eq!(c.lookup(&p), Some(n - 1), "{name} {n}: flow {i}");
                assert_eq!(c.scan(&p), Some(n - 1));
                // The same packet in other states, protocols and ports.
                for q in [
                    Packet { ct: 2, ..p },
                    Packet { ct: 8, ..p },
                    Packet { proto: 6, ..p },
                    Packet {
                        ports: Some((53, 4002)),
                        ..p
                    },
                    Packet { in_port: 1, ..p },
                    Packet { ports: None, ..p },
                ] {
                    assert_eq!(c.lookup(&q), c.scan(&q), "{name} {n}: {q:?}");
                }
            }
        }
    }
}

#[test]
fn benchmark_sets_stay_shallow_and_leaves_small() {
    // The shape that defeated the old per-port index: 1000 rules on one port.
    for (name, text) in sets(1000) {
        let c = Classifier::new(rules::parse("x", &text, &names()).unwrap().rules);
        let s = c.stats();
        // Every tree is searched: few trees, and few steps down them all.
        assert!(s.trees[0].len() <= 2, "{name}: {s:?}");
        let steps: usize = s.trees[0].iter().map(|t| t.depth).sum();
        assert!(steps <= 16, "{name}: {s:?}");
        for t in &s.trees[0] {
            assert!(t.largest_leaf <= 8, "{name}: {t:?}");
        }
        assert!(s.bytes < 4 << 20, "{name}: {} bytes", s.bytes);
    }
}

#[test]
fn shadowed_and_duplicate_rules_never_match_first() {
    // Rule 1 covers rule 2 entirely; 3 is a duplicate of 0: the tree drops them, and
    // the counters (by first match) stay as the scan's.
    let text = "\
accept in vec0 proto udp dport 4001 src 10.80.1.0/24
drop proto udp
accept proto udp dport 4001
accept in vec0 proto udp dport 4001 src 10.80.1.0/24
";
    let c = Classifier::new(rules::parse("x", text, &names()).unwrap().rules);
    let p = flow_packet(1, 0);
    assert_eq!(c.lookup(&p), Some(0));
    let q = Packet {
        src: u128::from(u32::from_be_bytes([10, 9, 9, 9])),
        ..p
    };
    assert_eq!(c.lookup(&q), Some(1));
    assert!(c.indexed());
    assert!(!Classifier::linear(Vec::new()).indexed());
}
