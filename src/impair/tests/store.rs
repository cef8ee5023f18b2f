//! The store's departure order: in-order frames leave from the front of the arrival
//! order, the others through the heap; together they must give exactly the order of one
//! min-heap over (departure, arrival) — checked against that reference under random
//! mixes, frames put back, and departure times changed.

use super::super::rng::Xoshiro256pp;
use super::super::store::{Meta, Store};
use crate::wire::vnet;

fn meta(deliver: u64) -> Meta {
    Meta {
        id: 0,
        arrival: 0,
        start: 0,
        end: 0,
        deliver,
        jitter: 0.0,
        pos: 0,
        len: 0,
        frames: 1,
        reordered: false,
        done: false,
        heaped: false,
        vnet: vnet::Repr::NONE,
    }
}

/// The reference: every waiting (departure, seq), smallest first.
fn reference_next(r: &std::collections::BTreeSet<(u64, u64)>) -> Option<(u64, u64)> {
    r.iter().next().copied()
}

#[test]
fn departure_order_matches_one_heap_under_random_mixes() {
    for seed in 0..20u64 {
        let mut rng = Xoshiro256pp::seed_from_u64(seed);
        let mut st = Store::new(1 << 16, 1 << 20);
        let mut reference = std::collections::BTreeSet::new();
        let mut now = 0u64;
        let mut last = 0u64;
        // Share of out-of-order arrivals grows with the seed (0 % .. 95 %).
        let ooo = seed * 5;
        for step in 0..5_000u64 {
            now += rng.below(20);
            if rng.below(3) > 0 {
                let deliver = if rng.below(100) < ooo {
                    now + rng.below(2_000)
                } else {
                    last = last.max(now + 1_000);
                    last
                };
                assert!(st.push(meta(deliver), 64, |b| b.fill(step as u8)));
                reference.insert((deliver, st.last().unwrap()));
            }
            if step % 97 == 0 {
                // A frame popped and put back (the output was full) changes nothing.
                if let Some(seq) = st.pop_due(now) {
                    st.unpop(seq);
                }
            }
            while let Some(seq) = st.pop_due(now) {
                let want = reference_next(&reference).unwrap();
                assert_eq!((st.meta(seq).deliver, seq), want, "seed {seed} step {step}");
                reference.remove(&want);
                st.done(seq);
            }
            assert_eq!(st.next_deliver(), reference_next(&reference).map(|x| x.0));
            assert_eq!(st.waiting(), reference.len());
        }
        while let Some((t, _)) = reference_next(&reference) {
            let seq = st.pop_due(t).unwrap();
            assert_eq!(
                (st.meta(seq).deliver, seq),
                reference_next(&reference).unwrap()
            );
            reference.remove(&(t, seq));
            st.done(seq);
        }
        assert!(st.is_empty() && st.pop_due(u64::MAX).is_none());
    }
}

#[test]
fn reindex_after_departures_change_keeps_one_heap_order() {
    let mut rng = Xoshiro256pp::seed_from_u64(7);
    let mut st = Store::new(1 << 16, 1 << 20);
    for i in 0..1_000u64 {
        assert!(st.push(meta(i * 10), 64, |_| {}));
    }
    // Leave some, then give the rest new (partly decreasing) departure times.
    for _ in 0..100 {
        let seq = st.pop_due(u64::MAX).unwrap();
        st.done(seq);
    }
    let mut reference = std::collections::BTreeSet::new();
    for seq in st.seqs() {
        let t = 5_000 + rng.below(10_000);
        st.meta_mut(seq).deliver = t;
        reference.insert((t, seq));
    }
    st.reindex();
    assert_eq!(st.waiting(), 900);
    while let Some(want) = reference_next(&reference) {
        let seq = st.pop_due(u64::MAX).unwrap();
        assert_eq!((st.meta(seq).deliver, seq), want);
        reference.remove(&want);
        st.done(seq);
    }
    assert!(st.is_empty());
}

#[test]
fn frames_in_order_never_touch_the_heap() {
    // 10 000 frames with non-decreasing departures (a plain delay line) leave in
    // arrival order, with the same departure repeated where frames tie.
    let mut st = Store::new(1 << 16, 1 << 24);
    for i in 0..10_000u64 {
        assert!(st.push(meta(1_000 + i / 3), 64, |_| {}));
    }
    let mut prev = None;
    while let Some(seq) = st.pop_due(u64::MAX) {
        assert!(!st.meta(seq).heaped);
        assert!(prev.is_none_or(|p| p + 1 == seq));
        prev = Some(seq);
        st.done(seq);
    }
    assert_eq!(prev, Some(9_999));
}
