//! GSO super-frames are judged and timed per wire frame.

use super::super::counters::Dropped;
use super::{MS, frame, stage};
use crate::wire::vnet::{self, Csum, GsoType};
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

const MSS: usize = 1000;
const SEGMENTS: usize = 10;

/// A TCP/IPv4 super-frame of 10 segments of 1000 bytes, with its vnet header.
fn super_frame() -> (Vec<u8>, vnet::Repr) {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(1000, 2000, 0x1000_0000, 65535)
        .ack(1);
    let payload: Vec<u8> = (0..MSS * SEGMENTS).map(|i| i as u8).collect();
    let mut f = Vec::new();
    b.write(&mut f, &payload).unwrap();
    let v = vnet::Repr {
        gso_type: GsoType::TcpV4,
        gso_size: MSS as u16,
        hdr_len: 54,
        csum: Some(Csum {
            start: 34,
            offset: 16,
        }),
        ..vnet::Repr::NONE
    };
    (f, v)
}

fn released(s: &mut super::super::stage::Stage, now: u64) -> Vec<(Vec<u8>, vnet::Repr, u64)> {
    let mut out = Vec::new();
    s.release(now, usize::MAX, |b, v, _| {
        out.push((b.to_vec(), v, now));
        true
    });
    out
}

fn tcp_seq(f: &[u8]) -> u32 {
    let p = SlicedPacket::from_ethernet(f).unwrap();
    match p.transport {
        Some(TransportSlice::Tcp(t)) => t.sequence_number(),
        _ => panic!("not TCP"),
    }
}

#[test]
fn an_untouched_super_frame_stays_whole_and_counts_as_its_segments() {
    let (f, v) = super_frame();
    let mut s = stage("delay=5ms");
    s.offer(0, &f, &v, 1514);
    let out = released(&mut s, 5 * MS);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, f);
    assert_eq!(out[0].1, v);
    assert_eq!(s.counters.frames_in, SEGMENTS as u64);
    assert_eq!(s.counters.frames_out, SEGMENTS as u64);
}

#[test]
fn loss_is_drawn_per_segment_like_for_single_frames() {
    // The segments dropped from a super-frame are the frame numbers a run of single
    // frames with the same seed drops: one loss draw per wire frame either way.
    let singles = {
        let mut s = stage("loss=30% seed=4");
        let mut kept = Vec::new();
        for i in 0..SEGMENTS as u64 {
            s.offer(0, &frame(i), &vnet::Repr::NONE, 1514);
        }
        s.release(0, usize::MAX, |_, _, id| {
            kept.push(id);
            true
        });
        kept
    };
    let (f, v) = super_frame();
    let mut s = stage("loss=30% seed=4");
    s.offer(0, &f, &v, 1514);
    let out = released(&mut s, 0);
    let kept: Vec<u64> = out
        .iter()
        .map(|(b, _, _)| u64::from(tcp_seq(b) - 0x1000_0000) / MSS as u64)
        .collect();
    assert_eq!(kept, singles);
    assert!(kept.len() < SEGMENTS && !kept.is_empty(), "{kept:?}");
    assert_eq!(
        s.counters.dropped(Dropped::Loss),
        (SEGMENTS - kept.len()) as u64
    );
    for (b, v, _) in &out {
        assert_eq!(b.len(), 54 + MSS);
        assert!(
            v.csum.is_some() && !v.is_gso(),
            "segments keep the checksum for offload"
        );
    }
}

#[test]
fn with_a_rate_every_segment_has_its_own_slot() {
    // 1054-byte segments at 8.432 Mbit/s take exactly 1 ms each.
    let (f, v) = super_frame();
    let mut s = stage("rate=8432kbit");
    s.offer(0, &f, &v, 1514);
    let mut times = Vec::new();
    while let Some(t) = s.next_deadline() {
        for (b, _, now) in released(&mut s, t) {
            times.push((tcp_seq(&b), now));
        }
    }
    let want: Vec<(u32, u64)> = (0..SEGMENTS as u64)
        .map(|i| (0x1000_0000 + (i as u32) * MSS as u32, (i + 1) * MS))
        .collect();
    assert_eq!(times, want);
}

#[test]
fn segments_are_cut_to_the_output_mtu() {
    let (f, v) = super_frame();
    let mut s = stage("rate=1gbit");
    s.offer(0, &f, &v, 54 + 500);
    let out = released(&mut s, MS);
    assert_eq!(out.len(), 2 * SEGMENTS);
    assert!(out.iter().all(|(b, _, _)| b.len() == 554));
}
