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
//! id. An impairment stage passes its own ids through [`PortTap::at`].
//!
//! Where the port calls it: [`PortTap::rx`] once per received batch (end of the
//! receive path) and [`PortTap::tx`] once per frame handed to `Port::enqueue`, each
//! covering both points. With an impairment stage on a direction, that direction's
//! call becomes two: `at(pre, frame, id, Note::None)` where the frame enters the stage
//! (`id` from [`PortTap::next_id`], or the stage's own), and `at(post, ...)` with the
//! same id where the stage lets it go. A frame the stage drops appears at the pre point
//! with `Note::Dropped(..)` (and never at post), a duplicate at the post point with
//! `Note::Duplicate`, a corrupted frame at the post point with `Note::Corrupt(bit)`.

use std::cell::RefCell;
use std::rc::Rc;

use super::ring::{Meta, Producer, counter_index};
use super::{Note, Point, RX_POINTS, TX_POINTS, now_ns};
use crate::buf::{Frame, Pool};
use crate::filter::Program;
use crate::filter::interp::{Meta as FilterMeta, PACKET_HOST, PACKET_OUTGOING};

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

/// The captures on one port.
pub struct PortTap {
    attaches: Vec<Attach>,
    points: u8,
    next_id: u64,
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
}
