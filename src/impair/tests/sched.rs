//! The departure-time scheduler: rate on a virtual clock, the bottleneck queue, memory,
//! and live changes.

use super::super::counters::Dropped;
use super::super::params::Change;
use super::{MS, US, drive, frame, seq_of, stage};
use crate::wire::vnet;

#[test]
fn rate_is_exact_over_ten_seconds() {
    // 10 Mbit/s, 64-byte frames + 24 bytes overhead (70.4 µs each) offered at 1.2× the
    // rate for 10 s of virtual time: the link is never idle, so the last frame leaves
    // exactly when the link has carried every frame served; the rest were dropped by
    // the queue, and offered = served + dropped.
    let mut s = stage("rate=10mbit overhead=24 queue=10000pkt");
    let per = 70_400;
    let gap = per * 10 / 12;
    let n = 10_000_000_000 / gap;
    let out = drive(&mut s, n, gap);
    let served = out.len() as u64;
    let dropped = s.counters.dropped(Dropped::QueueFull);
    assert_eq!(served + dropped, n);
    assert!(dropped > 0);
    assert_eq!(out.last().unwrap().1, served * per);
}

#[test]
fn fractional_nanoseconds_do_not_accumulate() {
    // 64-byte frames at 3 Mbit/s: 170666.67 ns each; after 30 000 back-to-back frames
    // the link has carried exactly 30 000 × 512 bits.
    let mut s = stage("rate=3mbit queue=40000pkt");
    let n = 30_000u64;
    for i in 0..n {
        s.offer(0, &frame(i), &vnet::Repr::NONE, 1514);
    }
    let want = (n * 512 * 1_000_000_000).div_ceil(3_000_000);
    let mut last = 0;
    while let Some(t) = s.next_deadline() {
        s.release(t, usize::MAX, |_, _, _| true);
        last = t;
    }
    assert_eq!(last, want);
}

#[test]
fn queue_limits_in_packets_bytes_and_time() {
    for (words, keep) in [
        ("rate=1mbit queue=10pkt", 10),
        ("rate=1mbit queue=640b", 10),
        // 64 bytes at 1 Mbit/s = 512 µs; a frame may wait at most 5 ms before it starts.
        ("rate=1mbit queue=5ms", 10),
    ] {
        let mut s = stage(words);
        for i in 0..100 {
            s.offer(0, &frame(i), &vnet::Repr::NONE, 1514);
        }
        let kept = s.in_flight() as u64;
        assert_eq!(kept, keep, "{words}");
        assert_eq!(
            s.counters.dropped(Dropped::QueueFull),
            100 - keep,
            "{words}"
        );
        let (q, b) = s.queue_depth();
        assert_eq!((q, b), (keep, keep * 64), "{words}");
    }
}

#[test]
fn the_delay_line_never_drops() {
    // 10 000 frames in flight behind a 1 s delay with the default queue of 1000: the
    // queue only bounds what waits for `rate`, not what is being delayed.
    let mut s = stage("delay=1s rate=1gbit");
    let out = drive(&mut s, 10_000, 10 * US);
    assert_eq!(out.len(), 10_000);
    assert_eq!(s.counters.dropped, [0; 4]);
}

#[test]
fn memory_grows_for_traffic_it_was_not_sized_for() {
    // No rate: sized for 1 Gbit/s; 40 MB offered at once for 100 ms.
    let mut s = stage("delay=100ms");
    let before = s.memory();
    let big = vec![0u8; 60_000];
    for _ in 0..700 {
        s.offer(0, &big, &vnet::Repr::NONE, 65_536);
    }
    assert!(s.memory() > before, "{} -> {}", before, s.memory());
    assert_eq!(s.in_flight(), 700);
    assert_eq!(s.take_full_event(), None);
    let mut n = 0;
    s.release(100 * MS, usize::MAX, |b, _, _| {
        n += 1;
        b.len() == 60_000
    });
    assert_eq!(n, 700);
}

#[test]
fn live_change_loses_nothing_and_retimes_the_queue() {
    let mut s = stage("rate=1mbit queue=1000pkt delay=10ms seed=3");
    for i in 0..100 {
        s.offer(0, &frame(i), &vnet::Repr::NONE, 1514);
    }
    // At 1 Mbit/s the 100th frame would start at 50.7 ms; raise the rate at 1 ms.
    let mut out = Vec::new();
    s.release(MS, usize::MAX, |b, _, _| {
        out.push(seq_of(b));
        true
    });
    let c = Change::parse_words(["rate=100mbit", "delay=1ms"]).unwrap();
    s.apply(&c, MS).unwrap();
    let mut now = MS;
    let mut times = Vec::new();
    while let Some(t) = s.next_deadline() {
        now = t;
        s.release(now, usize::MAX, |b, _, _| {
            out.push(seq_of(b));
            times.push(now);
            true
        });
    }
    assert_eq!(out, (0..100).collect::<Vec<_>>(), "all in order, none lost");
    assert!(now < 20 * MS, "queued frames were re-timed: last at {now}");
    // The frames already serialized (the first two) kept their 10 ms delay.
    assert!(times[0] >= 10 * MS);
    // A rejected change changes nothing.
    let before = *s.params();
    let bad = Change::parse_words(["jitter=5ms", "delay=default"]).unwrap();
    assert!(s.apply(&bad, now).is_err());
    assert_eq!(*s.params(), before);
}

#[test]
fn down_drops_everything_and_up_restores() {
    let mut s = stage("delay=1ms");
    s.apply(&Change::parse_words(["down=true"]).unwrap(), 0)
        .unwrap();
    for i in 0..10 {
        s.offer(0, &frame(i), &vnet::Repr::NONE, 1514);
    }
    assert_eq!(s.counters.dropped(Dropped::LinkDown), 10);
    assert_eq!(s.in_flight(), 0);
    s.apply(&Change::parse_words(["down=false"]).unwrap(), 0)
        .unwrap();
    s.offer(0, &frame(99), &vnet::Repr::NONE, 1514);
    assert_eq!(s.in_flight(), 1);
    assert_eq!(s.params().delay, MS, "delay kept across down/up");
}

#[test]
fn duplicates_and_corruption_are_counted_and_seeded() {
    let run = || {
        let mut s = stage("duplicate=10% corrupt=10% seed=5");
        let out = drive(&mut s, 10_000, US);
        (out.iter().map(|x| x.0).collect::<Vec<_>>(), s.counters)
    };
    let (a, ca) = run();
    let (b, cb) = run();
    assert_eq!(a, b);
    assert_eq!(ca, cb);
    assert_eq!(a.len() as u64, 10_000 + ca.duplicated);
    let band = 3.29 * (10_000.0f64 * 0.1 * 0.9).sqrt();
    assert!((ca.duplicated as f64 - 1000.0).abs() < band);
    assert!((ca.corrupted as f64 - 1000.0).abs() < band);
}

#[test]
fn corruption_flips_one_bit_after_the_ethernet_header() {
    let mut s = stage("corrupt=100% seed=11");
    let f = frame(5);
    let mut seen = Vec::new();
    s.offer_with(0, &f, &vnet::Repr::NONE, 1514, |_, v| seen.push(v));
    let mut got = Vec::new();
    s.release(0, 1, |b, v, _| {
        got = b.to_vec();
        assert_eq!(v, vnet::Repr::NONE);
        true
    });
    let diff: Vec<usize> = (0..64).filter(|i| got[*i] != f[*i]).collect();
    assert_eq!(diff.len(), 1);
    assert!(diff[0] >= 14);
    assert_eq!((got[diff[0]] ^ f[diff[0]]).count_ones(), 1);
    let super::super::stage::Verdict::Corrupted { bit } = seen[0] else {
        panic!("{seen:?}")
    };
    assert_eq!(bit as usize / 8, diff[0]);
}
