//! The connection table at 100 000 flows, its keyed index, and the verdicts it keeps.

use crate::nf::firewall::conntrack::{Conntrack, Key, Seen, Verdict};
use crate::nf::firewall::index::{Index, WAYS};
use crate::nf::firewall::{CONNTRACK_MAX, rules::ct};

fn udp(i: u32) -> Key {
    Key {
        v6: false,
        proto: 17,
        src: u128::from(0x0a50_0000 + (i % 60_000)),
        dst: u128::from(0x0a50_0263u32),
        sport: 1024 + (i / 60_000) as u16,
        dport: 4001,
    }
}

#[test]
fn hundred_thousand_flows_fit_without_evictions() {
    let mut t = Conntrack::new(CONNTRACK_MAX);
    const { assert!(CONNTRACK_MAX >= 100_000) };
    for i in 0..100_000 {
        let k = udp(i);
        assert_eq!(t.find(&k), Seen::Unknown);
        assert!(t.update(&k, Seen::Unknown, 0).is_some());
    }
    assert_eq!(t.len(), 100_000);
    assert_eq!((t.evictions, t.bucket_full, t.created), (0, 0, 100_000));
    for i in 0..100_000 {
        let k = udp(i);
        assert!(
            matches!(t.find(&k), Seen::Known { reply: false, .. }),
            "flow {i}"
        );
        assert!(
            matches!(t.find(&k.reversed()), Seen::Known { reply: true, .. }),
            "reply of flow {i}"
        );
    }
    // Distinct connections get distinct slots.
    let slot = |k: &Key| match t.find(k) {
        Seen::Known { slot, .. } => slot,
        Seen::Unknown => panic!(),
    };
    assert_ne!(slot(&udp(1)), slot(&udp(2)));
    assert_eq!(slot(&udp(7)), slot(&udp(7).reversed()));
    // About 2.4 MB of index and 10 MB of connections at the default size.
    assert!(t.bytes() < 16 << 20, "{}", t.bytes());
}

#[test]
fn a_full_table_evicts_and_counts() {
    let mut t = Conntrack::new(1000);
    for i in 0..1500 {
        let k = udp(i);
        t.update(&k, t.find(&k), 0);
    }
    assert_eq!(t.len(), 1000);
    assert_eq!(t.evictions, 500);
    assert_eq!(t.bucket_full, 0, "the index has room for twice the table");
    assert!(matches!(t.find(&udp(1499)), Seen::Known { .. }));
    assert_eq!(
        t.find(&udp(0)),
        Seen::Unknown,
        "the oldest slots were evicted"
    );
    // The timer sweeps the whole table within SWEEP_SECONDS: unreplied UDP lives 30 s.
    for _ in 0..31 * 4 {
        let budget = t.sweep_budget();
        t.tick(budget);
    }
    assert_eq!(t.len(), 0);
    assert_eq!(t.expired, 1000);
    assert_eq!(t.find(&udp(1499)), Seen::Unknown);
}

#[test]
fn an_expired_connection_is_replaced_not_duplicated() {
    let mut t = Conntrack::new(16);
    let k = udp(1);
    t.update(&k, Seen::Unknown, 0);
    for _ in 0..31 * 4 {
        t.tick(0); // time passes, nothing swept
    }
    assert_eq!(t.find(&k), Seen::Unknown, "expired");
    assert_eq!(t.len(), 1, "still in the table");
    t.update(&k, Seen::Unknown, 0);
    assert_eq!((t.len(), t.expired, t.created), (1, 1, 2));
    assert!(matches!(t.find(&k), Seen::Known { .. }));
}

#[test]
fn verdicts_are_kept_per_direction() {
    let mut t = Conntrack::new(16);
    let k = udp(1);
    let slot = t.update(&k, Seen::Unknown, 0).unwrap();
    let v = Verdict {
        generation: 3,
        context: 42,
        rule: 7,
    };
    t.remember(slot, false, v);
    assert_eq!(t.verdict(slot, false), v);
    assert_eq!(t.verdict(slot, true), Verdict::default());
    t.forget_verdicts();
    assert_eq!(t.verdict(slot, false), Verdict::default());
    assert_eq!(t.state(t.find(&k), 17, 0), ct::NEW);
    assert_eq!(t.state(t.find(&k.reversed()), 17, 0), ct::ESTABLISHED);
}

#[test]
fn the_index_probes_two_buckets_and_is_keyed() {
    // 2 buckets of WAYS: the 17th key has nowhere to go (the table then evicts).
    let mut ix = Index::new(4);
    let mut placed = 0;
    for i in 0..(2 * WAYS as u32 + 1) {
        if ix.insert(ix.hash(&udp(i)), i).is_some() {
            placed += 1;
        }
    }
    assert_eq!(placed, 2 * WAYS);
    assert_eq!(ix.candidates(ix.hash(&udp(0))).count(), 2 * WAYS);
    // Two tables hash the same flows differently (a random key each).
    let (a, b) = (Index::new(1 << 16), Index::new(1 << 16));
    let same = (0..32)
        .filter(|i| a.hash(&udp(*i)) == b.hash(&udp(*i)))
        .count();
    assert!(same < 32, "keyed: {same} of 32 hashed alike");
}
