use super::*;
use proptest::prelude::*;

fn pair(bytes: usize, slots: usize) -> (Producer, Consumer) {
    let (file, reader) = create(bytes).unwrap();
    let guest = SharedWords::map(&file, true).unwrap();
    let c = Consumer::new(reader).unwrap();
    let p = Producer::attach(guest, slots, 7).unwrap();
    (p, c)
}

fn meta(slot: u16, id: u64, len: usize) -> Meta {
    Meta {
        slot,
        point: if id.is_multiple_of(2) {
            Point::RxPost
        } else {
            Point::TxPre
        },
        note: if id.is_multiple_of(5) {
            Note::Corrupt(id as u32)
        } else {
            Note::None
        },
        orig_len: len as u32 + 3,
        ts_ns: 1_700_000_000_000_000_000 + id,
        id,
    }
}

fn frame(id: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (id as usize * 31 + i) as u8).collect()
}

#[test]
fn records_come_out_as_they_went_in() {
    let (mut p, mut c) = pair(MIN_BYTES, 2);
    assert_eq!(c.state(), State::Running);
    assert_eq!(c.owner(), (std::process::id(), 7));
    assert!(c.read().unwrap().is_none());
    for id in 0..10u64 {
        let f = frame(id, 60 + id as usize);
        assert!(p.push(&meta(1, id, f.len()), &f));
    }
    for id in 0..10u64 {
        let (m, data) = c.read().unwrap().unwrap();
        assert_eq!(m, meta(1, id, 60 + id as usize));
        assert_eq!(data, frame(id, 60 + id as usize).as_slice());
    }
    assert!(c.read().unwrap().is_none());
    c.commit();
    assert_eq!(c.pending(), 0);
}

#[test]
fn the_ring_wraps_around_many_times() {
    let (mut p, mut c) = pair(MIN_BYTES, 1);
    // Odd sizes so that padding records land at every offset near the end.
    let mut next_read = 0u64;
    for id in 0..5000u64 {
        let len = 60 + (id as usize * 97) % 1500;
        let f = frame(id, len);
        assert!(p.push(&meta(0, id, len), &f), "frame {id} should fit");
        // Read every few frames, so the ring is sometimes nearly full.
        if id % 7 == 6 {
            while let Some((m, data)) = c.read().unwrap() {
                assert_eq!(m.id, next_read);
                let want = frame(next_read, 60 + (next_read as usize * 97) % 1500);
                assert_eq!(data, want.as_slice());
                next_read += 1;
            }
            c.commit();
        }
    }
    while let Some((m, _)) = c.read().unwrap() {
        assert_eq!(m.id, next_read);
        next_read += 1;
    }
    assert_eq!(next_read, 5000);
}

#[test]
fn a_slow_reader_makes_counted_drops_never_a_wait() {
    let (mut p, mut c) = pair(MIN_BYTES, 2);
    let f = frame(1, 1500);
    let idx = counter_index(1, true);
    let mut stored = 0;
    for id in 0..200u64 {
        let before = p.counters(idx).dropped;
        p.offer(idx, true, &meta(1, id, f.len()), &f);
        if p.counters(idx).dropped == before {
            stored += 1;
        }
    }
    // Frames the filter refused are seen but neither accepted nor dropped.
    p.offer(idx, false, &meta(1, 999, f.len()), &f);
    let mine = p.counters(idx);
    assert_eq!((mine.seen, mine.accepted), (201, 200));
    assert!(mine.dropped > 0 && stored > 0, "{mine:?}");
    assert_eq!(mine.captured(), stored);
    // The reader sees the counters only once published.
    assert_eq!(c.counters(idx), Counters::default());
    p.publish(idx);
    assert_eq!(c.counters(idx), mine);
    let mut read = 0;
    while c.read().unwrap().is_some() {
        read += 1;
    }
    assert_eq!(read, stored);
    c.commit();
    // Room again after the reader caught up.
    assert!(p.push(&meta(1, 500, f.len()), &f));
    p.close(CloseReason::Stopped);
    assert_eq!(c.state(), State::Closed(CloseReason::Stopped));
}

#[test]
fn a_frame_larger_than_the_ring_is_dropped() {
    let (mut p, _c) = pair(MIN_BYTES, 1);
    let big = vec![0u8; MIN_BYTES];
    p.offer(0, true, &meta(0, 1, big.len()), &big);
    assert_eq!(p.counters(0).dropped, 1);
    // Out-of-range counter indexes are ignored, not a panic.
    p.offer(99, true, &meta(0, 1, 10), &big[..10]);
}

#[test]
fn damaged_records_are_an_error_not_a_panic() {
    let (file, reader) = create(MIN_BYTES).unwrap();
    let guest = SharedWords::map(&file, true).unwrap();
    let mut c = Consumer::new(reader).unwrap();
    let mut p = Producer::attach(guest, 1, 1).unwrap();
    assert!(p.push(&meta(0, 1, 100), &[0u8; 100]));
    // Another writer scribbles an impossible length over the record.
    let evil = SharedWords::map(&file, true).unwrap();
    evil.write_bytes(DATA_OFF, &3u32.to_ne_bytes());
    assert!(matches!(c.read(), Err(RingError::Corrupt { .. })));
}

#[test]
fn attach_checks_the_mapping() {
    let (file, _reader) = create(MIN_BYTES).unwrap();
    let m = || SharedWords::map(&file, true).unwrap();
    assert!(Producer::attach(m(), 0, 1).is_err());
    assert!(Producer::attach(m(), MAX_SLOTS + 1, 1).is_err());
    let _p = Producer::attach(m(), 1, 1).unwrap();
    let e = Producer::attach(m(), 1, 2).err().unwrap().to_string();
    assert!(e.contains("already in use"), "{e}");
    // A file that is not a ring.
    let other = nix::sys::memfd::memfd_create("x", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map(File::from)
        .unwrap();
    other.set_len((DATA_OFF + MIN_BYTES) as u64).unwrap();
    let e = Producer::attach(SharedWords::map(&other, true).unwrap(), 1, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not a capture ring"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever the sizes and the reader's pace, every accepted frame is either read
    /// back, in order and intact, or counted as dropped.
    #[test]
    fn accepted_frames_are_read_or_counted(
        steps in proptest::collection::vec((0usize..3000, any::<bool>()), 1..400)
    ) {
        let (mut p, mut c) = pair(MIN_BYTES, 1);
        let mut sent = Vec::new();
        let mut read = Vec::new();
        for (id, (len, drain)) in steps.iter().enumerate() {
            let id = id as u64;
            let f = frame(id, *len);
            let before = p.counters(0).dropped;
            p.offer(0, true, &meta(0, id, *len), &f);
            if p.counters(0).dropped == before {
                sent.push(id);
            }
            if *drain {
                while let Some((m, data)) = c.read().unwrap() {
                    let want = frame(m.id, m.orig_len as usize - 3);
                    prop_assert_eq!(data, want.as_slice());
                    read.push(m.id);
                }
                c.commit();
            }
        }
        while let Some((m, _)) = c.read().unwrap() {
            read.push(m.id);
        }
        prop_assert_eq!(&read, &sent);
        let k = p.counters(0);
        prop_assert_eq!(k.accepted, steps.len() as u64);
        prop_assert_eq!(k.captured(), sent.len() as u64);
    }
}
