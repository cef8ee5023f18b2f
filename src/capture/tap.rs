//! A port's capture points, as the datapath calls them.
//!
//! A port without a capture holds no tap (`Option::None`): the datapath's only cost is
//! that check. With one or more captures on it, each frame at a wanted point goes
//! through the capture's filter (classic BPF in vecbox's interpreter) and, if it
//! passes, is copied into that capture's ring — or counted as dropped when the ring is
//! full. Nothing here blocks, allocates or makes a system call (timestamps come from
//! the vDSO clock).
//!
//! Packet ids: a frame gets one id from the port when it enters a point pair (rx or tx)
//! and keeps it at both points, so the pre and post copies of a frame carry the same
//! id. Through an impairment stage the id is the stage's own.
//!
//! Where the port calls it: [`PortTap::rx`] once per received batch and
//! [`PortTap::tx`] once per frame handed to `Port::enqueue`, each covering both points,
//! while that direction has no active impairment stage. With one, the frame is offered
//! to the stage through [`PortTap::enter`] (the pre point, with the stage's id and a
//! note of its verdict: `Note::Dropped(..)` for a frame that never reaches post,
//! `Note::Corrupt(bit)`, `Note::Duplicate`) and shown at the post point by
//! [`PortTap::leave`] when the stage lets it go (a corrupted frame's copy noted with
//! its bit, a duplicated frame's second copy as the duplicate). Marks for the post
//! copies live in a fixed table allocated with the tap: nothing per frame.

use std::cell::RefCell;
use std::rc::Rc;

use super::ring::{Meta, Producer, counter_index};
use super::{DropCause, Note, Point, RX_POINTS, TX_POINTS, now_ns};
use crate::buf::{Frame, Pool};
use crate::filter::Program;
use crate::filter::interp::{Meta as FilterMeta, PACKET_HOST, PACKET_OUTGOING};
use crate::impair::{Stage, Verdict};
use crate::wire::vnet::Repr;

/// One capture's ring, shared by the ports it captures (a guest is single-threaded).
pub type SharedRing = Rc<RefCell<Producer>>;

/// One capture on one port.
pub struct Attach {
    pub ring: SharedRing,
    /// The port's slot in the capture's configuration.
    pub slot: u16,
    /// Point mask.
    pub points: u8,
    pub snaplen: u32,
    pub filter: Option<Rc<Program>>,
}

impl Attach {
    /// Offer `frame` at every point of `mask` this capture wants.
    #[inline]
    fn offer(&self, ring: &mut Producer, mask: u8, frame: &[u8], at: (u64, u64, Note)) {
        let wanted = self.points & mask;
        if wanted == 0 {
            return;
        }
        let (ts_ns, id, note) = at;
        let pkttype = if mask & TX_POINTS != 0 {
            PACKET_OUTGOING
        } else {
            PACKET_HOST
        };
        let pass = self
            .filter
            .as_ref()
            .is_none_or(|p| p.run(frame, &FilterMeta::ethernet(frame, pkttype)) != 0);
        let keep = frame.len().min(self.snaplen as usize);
        for point in Point::ALL {
            if wanted & point.bit() == 0 {
                continue;
            }
            let meta = Meta {
                slot: self.slot,
                point,
                note,
                orig_len: frame.len() as u32,
                ts_ns,
                id,
            };
            ring.offer(
                counter_index(usize::from(self.slot), point.is_post()),
                pass,
                &meta,
                &frame[..keep],
            );
        }
    }

    /// Publish the counters of the points in `mask`.
    fn publish(&self, ring: &Producer, mask: u8) {
        let wanted = self.points & mask;
        for post in [false, true] {
            let side = if post {
                super::POST_POINTS
            } else {
                super::PRE_POINTS
            };
            if wanted & side != 0 {
                ring.publish(counter_index(usize::from(self.slot), post));
            }
        }
    }
}

/// Frames a stage duplicated or corrupted, remembered until their post copies pass.
const MARKS: usize = 64;

/// A frame whose post copies get a note: direction, packet id, flipped bit, duplicated,
/// post copies seen.
#[derive(Clone, Copy, Default)]
struct Mark {
    rx: bool,
    id: u64,
    flip: Option<u32>,
    dup: bool,
    seen: u8,
}

/// The captures on one port.
pub struct PortTap {
    attaches: Vec<Attach>,
    points: u8,
    next_id: u64,
    /// A small ring of marks (the oldest is overwritten; its copies then go unmarked).
    marks: Box<[Mark; MARKS]>,
    next_mark: usize,
    live_marks: usize,
}

impl PortTap {
    /// A tap for these captures, handing out packet ids from `next_id`; `None` when
    /// there are none (no tap at all).
    pub fn new(attaches: Vec<Attach>, next_id: u64) -> Option<Box<PortTap>> {
        if attaches.is_empty() {
            return None;
        }
        let points = attaches.iter().fold(0, |m, a| m | a.points);
        Some(Box::new(PortTap {
            attaches,
            points,
            next_id,
            marks: Box::new([Mark::default(); MARKS]),
            next_mark: 0,
            live_marks: 0,
        }))
    }

    /// The id the next frame will get.
    pub fn peek_id(&self) -> u64 {
        self.next_id
    }

    /// `true` if some capture wants frames at `p`.
    pub fn wants(&self, p: Point) -> bool {
        self.points & p.bit() != 0
    }

    /// A fresh packet id.
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// A received batch, at `rx-pre` and `rx-post` (the same frames while the port has
    /// no receive-side impairment).
    pub fn rx(&mut self, pool: &Pool, frames: &[Frame]) {
        if self.points & RX_POINTS == 0 || frames.is_empty() {
            return;
        }
        let ts = now_ns();
        let first = self.next_id;
        self.next_id += frames.len() as u64;
        for a in &self.attaches {
            let mut ring = a.ring.borrow_mut();
            for (i, f) in frames.iter().enumerate() {
                a.offer(
                    &mut ring,
                    RX_POINTS,
                    pool.frame(f),
                    (ts, first + i as u64, Note::None),
                );
            }
            a.publish(&ring, RX_POINTS);
        }
    }

    /// A frame the function hands to the port, at `tx-pre` and `tx-post` (the same
    /// frame while the port has no transmit-side impairment).
    pub fn tx(&mut self, frame: &[u8]) {
        if self.points & TX_POINTS == 0 {
            return;
        }
        let id = self.next_id();
        self.offer_all(TX_POINTS, frame, id, Note::None);
    }

    /// A frame at one point with an id and note given by an impairment stage.
    pub fn at(&mut self, point: Point, frame: &[u8], id: u64, note: Note) {
        if self.wants(point) {
            self.offer_all(point.bit(), frame, id, note);
        }
    }

    /// A frame an impairment stage lets go at point `post` (packet id `id`): a
    /// corrupted frame's copy is noted with its bit, a duplicated frame's second copy
    /// as the duplicate.
    pub fn leave(&mut self, post: Point, frame: &[u8], id: u64) {
        if !self.wants(post) {
            return;
        }
        let mut note = Note::None;
        if self.live_marks > 0 {
            let rx = post.is_rx();
            if let Some(m) = self
                .marks
                .iter_mut()
                .find(|m| m.seen < 2 && m.rx == rx && m.id == id && (m.dup || m.flip.is_some()))
            {
                m.seen += 1;
                note = match (m.seen, m.flip) {
                    (2, _) => Note::Duplicate,
                    (_, Some(bit)) => Note::Corrupt(bit),
                    _ => Note::None,
                };
                if !m.dup || m.seen == 2 {
                    *m = Mark::default();
                    self.live_marks -= 1;
                }
            }
        }
        self.offer_all(post.bit(), frame, id, note);
    }

    /// Remember that the frame `id` entering at `pre` was duplicated or corrupted.
    fn mark(&mut self, pre: Point, id: u64, flip: Option<u32>, dup: bool) {
        let slot = &mut self.marks[self.next_mark];
        if slot.dup || slot.flip.is_some() {
            self.live_marks -= 1;
        }
        *slot = Mark {
            rx: pre.is_rx(),
            id,
            flip,
            dup,
            seen: 0,
        };
        self.live_marks += 1;
        self.next_mark = (self.next_mark + 1) % MARKS;
    }

    /// Offer `frame` to an impairment stage at time `now` and show it at point `pre`
    /// with the packet id the stage gives it and a note of what the stage decided
    /// (dropped and why, corrupted, duplicated). `max_frame` as in [`Stage::offer`].
    pub fn enter(
        &mut self,
        pre: Point,
        stage: &mut Stage,
        now: u64,
        frame: &[u8],
        vnet: &Repr,
        max_frame: usize,
    ) -> u64 {
        let post = if pre.is_rx() {
            Point::RxPost
        } else {
            Point::TxPost
        };
        if !self.wants(pre) && !self.wants(post) {
            return stage.offer(now, frame, vnet, max_frame);
        }
        // Queue and memory drops are decided after the draws the stage reports.
        let queued =
            [DropCause::QueueFull, DropCause::BufferFull].map(|c| stage.counters.dropped(c));
        let (mut note, mut flip, mut dup) = (Note::None, None, false);
        let id = stage.offer_with(now, frame, vnet, max_frame, |_, v| {
            note = note.or(Note::of(v));
            match v {
                Verdict::Corrupted { bit } => flip = flip.or(Some(bit)),
                Verdict::Duplicated => dup = true,
                Verdict::Dropped(_) => {}
            }
        });
        if (dup || flip.is_some()) && self.wants(post) {
            self.mark(pre, id, flip, dup);
        }
        if !self.wants(pre) {
            return id;
        }
        for (c, before) in [DropCause::QueueFull, DropCause::BufferFull]
            .into_iter()
            .zip(queued)
        {
            if stage.counters.dropped(c) > before {
                note = note.or(Note::Dropped(c));
            }
        }
        self.offer_all(pre.bit(), frame, id, note);
        id
    }

    fn offer_all(&mut self, mask: u8, frame: &[u8], id: u64, note: Note) {
        let ts = now_ns();
        for a in &self.attaches {
            let mut ring = a.ring.borrow_mut();
            a.offer(&mut ring, mask, frame, (ts, id, note));
            a.publish(&ring, mask);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::ring::{self, Consumer};
    use crate::sys::shm::SharedWords;

    fn ring() -> (SharedRing, Consumer) {
        let (file, reader) = ring::create(ring::MIN_BYTES).unwrap();
        let guest = SharedWords::map(&file, true).unwrap();
        let p = Producer::attach(guest, 2, 1).unwrap();
        (Rc::new(RefCell::new(p)), Consumer::new(reader).unwrap())
    }

    fn icmp_filter() -> Rc<Program> {
        // ether type IPv4 and IP protocol 1: what `icmp` compiles to, by hand.
        use crate::filter::SockFilter as I;
        Rc::new(
            Program::new(vec![
                I {
                    code: 0x28,
                    jt: 0,
                    jf: 0,
                    k: 12,
                },
                I {
                    code: 0x15,
                    jt: 0,
                    jf: 3,
                    k: 0x0800,
                },
                I {
                    code: 0x30,
                    jt: 0,
                    jf: 0,
                    k: 23,
                },
                I {
                    code: 0x15,
                    jt: 0,
                    jf: 1,
                    k: 1,
                },
                I {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: 0x40000,
                },
                I {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: 0,
                },
            ])
            .unwrap(),
        )
    }

    fn frame(proto: u8, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[12] = 0x08;
        f[23] = proto;
        f
    }

    #[test]
    fn no_capture_means_no_tap() {
        assert!(PortTap::new(Vec::new(), 1).is_none());
    }

    #[test]
    fn rx_and_tx_points_filter_snap_and_share_ids() {
        let (r, mut c) = ring();
        let mut tap = PortTap::new(
            vec![Attach {
                ring: r.clone(),
                slot: 1,
                points: 0b1111,
                snaplen: 64,
                filter: Some(icmp_filter()),
            }],
            1,
        )
        .unwrap();
        let mut pool = Pool::new(4, 2048);
        let mut frames = Vec::new();
        for proto in [1u8, 6] {
            let id = pool.alloc().unwrap();
            let f = frame(proto, 100);
            pool.buf_mut(id)[..100].copy_from_slice(&f);
            frames.push(Frame {
                buf: id,
                off: 0,
                len: 100,
                vnet: Default::default(),
            });
        }
        tap.rx(&pool, &frames);
        tap.tx(&frame(1, 80));
        tap.at(Point::TxPre, &frame(1, 70), 42, Note::Corrupt(117));
        let mut got = Vec::new();
        while let Some((m, d)) = c.read().unwrap() {
            got.push((m, d.len()));
        }
        let pts: Vec<(Point, u64, usize)> = got.iter().map(|(m, l)| (m.point, m.id, *l)).collect();
        assert_eq!(
            pts,
            vec![
                (Point::RxPre, 1, 64),
                (Point::RxPost, 1, 64),
                (Point::TxPre, 3, 64),
                (Point::TxPost, 3, 64),
                (Point::TxPre, 42, 64),
            ]
        );
        assert!(got.iter().all(|(m, _)| m.slot == 1 && m.orig_len >= 70));
        assert_eq!(got[4].0.note, Note::Corrupt(117));
        // The TCP frame was seen, not accepted; counters are published per side.
        let pre = c.counters(counter_index(1, false));
        let post = c.counters(counter_index(1, true));
        assert_eq!((pre.seen, pre.accepted, pre.dropped), (4, 3, 0));
        assert_eq!((post.seen, post.accepted, post.dropped), (3, 2, 0));
    }

    #[test]
    fn a_capture_sees_only_its_points() {
        let (r, mut c) = ring();
        let mut tap = PortTap::new(
            vec![Attach {
                ring: r,
                slot: 0,
                points: crate::capture::POST_POINTS,
                snaplen: 1500,
                filter: None,
            }],
            1,
        )
        .unwrap();
        assert!(tap.wants(Point::TxPost) && !tap.wants(Point::RxPre));
        tap.tx(&frame(6, 60));
        tap.at(Point::RxPre, &frame(6, 60), 9, Note::None);
        let (m, d) = c.read().unwrap().unwrap();
        assert_eq!((m.point, d.len()), (Point::TxPost, 60));
        assert!(c.read().unwrap().is_none());
    }

    fn stage(words: &str) -> Stage {
        use crate::impair::{Change, Params};
        let c = Change::parse_words(words.split_whitespace()).unwrap();
        Stage::new(Params::default().apply(&c).unwrap()).unwrap()
    }

    /// Every frame a stage lets go, shown at `post` through the tap.
    fn release_all(tap: &mut PortTap, st: &mut Stage, now: u64, post: Point) {
        st.release(now, usize::MAX, |bytes, _, id| {
            tap.leave(post, bytes, id);
            true
        });
    }

    /// (point, id, note) of every record waiting.
    fn drain(c: &mut Consumer) -> Vec<(Point, u64, Note)> {
        let mut v = Vec::new();
        while let Some((m, _)) = c.read().unwrap() {
            v.push((m.point, m.id, m.note));
        }
        v
    }

    fn both_points(r: SharedRing) -> Box<PortTap> {
        PortTap::new(
            vec![Attach {
                ring: r,
                slot: 0,
                points: 0b1111,
                snaplen: 1500,
                filter: None,
            }],
            1,
        )
        .unwrap()
    }

    #[test]
    fn a_stage_reports_ids_and_verdicts_at_pre_and_post() {
        const MS: u64 = 1_000_000;
        let (r, mut c) = ring();
        let mut tap = both_points(r);
        let vnet = Repr::NONE;
        // Delay: the pre copy now, the post copy with the same id 10 ms later.
        let mut st = stage("delay=10ms seed=1");
        let a = tap.enter(Point::TxPre, &mut st, 0, &frame(1, 60), &vnet, 1514);
        let b = tap.enter(Point::TxPre, &mut st, MS, &frame(1, 60), &vnet, 1514);
        release_all(&mut tap, &mut st, 5 * MS, Point::TxPost);
        release_all(&mut tap, &mut st, 11 * MS, Point::TxPost);
        let got = drain(&mut c);
        assert_eq!(
            got,
            vec![
                (Point::TxPre, a, Note::None),
                (Point::TxPre, b, Note::None),
                (Point::TxPost, a, Note::None),
                (Point::TxPost, b, Note::None),
            ]
        );
        // Loss: noted at pre, never at post; the note count equals the stage's.
        let mut st = stage("loss=50% seed=7");
        for t in 0..200 {
            tap.enter(Point::RxPre, &mut st, t, &frame(1, 60), &vnet, usize::MAX);
        }
        release_all(&mut tap, &mut st, 1000, Point::RxPost);
        let (mut lost, mut pre, mut post) = (Vec::new(), 0, Vec::new());
        while let Some((m, _)) = c.read().unwrap() {
            match (m.point, m.note) {
                (Point::RxPre, Note::Dropped(DropCause::Loss)) => lost.push(m.id),
                (Point::RxPre, Note::None) => pre += 1,
                (Point::RxPost, Note::None) => post.push(m.id),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(lost.len() as u64, st.counters.dropped(DropCause::Loss));
        assert!(
            lost.len() > 50 && pre > 50,
            "{} lost, {pre} kept",
            lost.len()
        );
        assert_eq!(post.len(), pre);
        assert!(lost.iter().all(|id| !post.contains(id)));
        // Duplicate and corrupt: the pre copy says so; at post the first copy carries
        // the flipped bit, the second is the duplicate; a full queue is noted at pre.
        let mut st = stage("duplicate=100% corrupt=100% seed=3");
        let id = tap.enter(Point::TxPre, &mut st, 0, &frame(1, 60), &vnet, 1514);
        release_all(&mut tap, &mut st, 1, Point::TxPost);
        let got = drain(&mut c);
        let Note::Corrupt(bit) = got[0].2 else {
            panic!("{got:?}")
        };
        assert!(bit >= 14 * 8, "{got:?}");
        assert_eq!(
            got,
            vec![
                (Point::TxPre, id, Note::Corrupt(bit)),
                (Point::TxPost, id, Note::Corrupt(bit)),
                (Point::TxPost, id, Note::Duplicate),
            ]
        );
        let mut st = stage("rate=1mbit queue=2pkt seed=1");
        for t in 0..5 {
            tap.enter(Point::TxPre, &mut st, t, &frame(1, 1000), &vnet, 1514);
        }
        let notes: Vec<Note> = drain(&mut c).into_iter().map(|m| m.2).collect();
        let full = Note::Dropped(DropCause::QueueFull);
        assert_eq!(
            notes.iter().filter(|n| **n == full).count() as u64,
            st.counters.dropped(DropCause::QueueFull)
        );
        assert!(notes.contains(&full), "{notes:?}");
    }
}
