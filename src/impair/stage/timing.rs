//! The timing half of a stage: the bottleneck queue in front of `rate`, the virtual
//! link clock that gives each frame its serialization slot, the delay line, and
//! re-timing what still waits when settings change.

use super::super::counters::Dropped;
use super::super::store::Meta;
use super::super::units::QueueLimit;
use super::Stage;
use crate::wire::vnet;

impl Stage {
    /// Bottleneck queue, rate slot, delay and reorder for a frame of `len` bytes;
    /// `None` if the queue is full.
    pub(super) fn schedule(
        &mut self,
        now: u64,
        id: u64,
        frames: u16,
        len: usize,
        vnet: &vnet::Repr,
        may_reorder: bool,
    ) -> Option<Meta> {
        let p = &self.params;
        let (mut start, mut end) = (now, now);
        if let Some(rate) = p.rate {
            let full = match p.queue {
                QueueLimit::Packets(n) => self.queued >= u64::from(n),
                QueueLimit::Bytes(b) => self.queued_bytes + len as u64 > b,
                QueueLimit::Time(t) => self.free.saturating_sub(now) > t,
            };
            if full {
                self.counters.drop_n(Dropped::QueueFull, u64::from(frames));
                return None;
            }
            (start, end) = self.serialize(now, len, rate);
        }
        let p = &self.params;
        let x = if p.jitter > 0 {
            self.jitter.next(&mut self.streams.jitter) as f32
        } else {
            0.0
        };
        let mut reordered = false;
        if may_reorder && !p.reorder.is_zero() {
            if self.reorder_count + 1 >= p.gap() && p.reorder.hit(self.streams.reorder.next_u64()) {
                reordered = true;
                self.reorder_count = 0;
                self.counters.reordered += u64::from(frames);
            } else {
                self.reorder_count = self.reorder_count.saturating_add(1);
            }
        }
        let deliver = self.deliver_time(end, x, reordered);
        Some(Meta {
            id,
            arrival: now,
            start,
            end,
            deliver,
            jitter: x,
            pos: 0,
            len: 0,
            frames,
            reordered,
            done: false,
            heaped: false,
            vnet: *vnet,
        })
    }

    /// Departure after serialization end `end` with jitter offset `x`.
    fn deliver_time(&mut self, end: u64, x: f32, reordered: bool) -> u64 {
        let p = &self.params;
        if reordered {
            return end;
        }
        let d = if p.jitter == 0 {
            p.delay
        } else {
            (p.delay as f64 + f64::from(x) * p.jitter as f64)
                .max(0.0)
                .round() as u64
        };
        let mut deliver = end.saturating_add(d);
        if !p.reorder_on_jitter {
            deliver = deliver.max(self.last_deliver);
        }
        self.last_deliver = self.last_deliver.max(deliver);
        deliver
    }

    /// The serialization slot of `len` bytes at `rate`: (start, end) ns. Fractions of a
    /// nanosecond are carried exactly, so the long-run rate has no rounding error; the
    /// end is rounded up (a frame never leaves early).
    fn serialize(&mut self, now: u64, len: usize, rate: u64) -> (u64, u64) {
        let p = &self.params;
        let mut wire = (len as i64 + i64::from(p.overhead)).max(1) as u64;
        if p.cell > 0 {
            let cell = u64::from(p.cell);
            let per = (cell as i64 + i64::from(p.cell_overhead)).max(1) as u64;
            wire = wire.div_ceil(cell) * per;
        }
        if now > self.free || (now == self.free && self.free_frac == 0) {
            self.free = now;
            self.free_frac = 0;
        }
        let start = self.free + u64::from(self.free_frac > 0);
        let num = u128::from(wire) * 8 * 1_000_000_000;
        let q = (num / u128::from(rate)) as u64;
        let r = (num % u128::from(rate)) as u64;
        self.free += q;
        self.free_frac += r;
        if self.free_frac >= rate {
            self.free += 1;
            self.free_frac -= rate;
        }
        (start, self.free + u64::from(self.free_frac > 0))
    }

    /// Move the queue cursor past frames whose serialization has ended by `now`.
    pub(super) fn advance(&mut self, now: u64) {
        let seqs = self.store.seqs();
        if self.queued == 0 {
            // Nothing waits for `rate` (always so without one): every frame held has
            // been serialized.
            self.cursor = seqs.end;
            return;
        }
        self.cursor = self.cursor.max(seqs.start);
        while self.cursor < seqs.end {
            let m = self.store.meta(self.cursor);
            if m.end > now {
                break;
            }
            if m.end > m.arrival {
                self.queued -= 1;
                self.queued_bytes -= u64::from(m.len);
            }
            self.cursor += 1;
        }
    }

    /// Re-time the frames whose serialization has not started by `now` (settings
    /// changed): new rate slots and delays, same order, same jitter draws.
    pub(super) fn retime(&mut self, now: u64) {
        self.advance(now);
        let seqs = self.store.seqs();
        let mut first = seqs.end;
        let mut last = 0;
        let mut free = now;
        for seq in seqs.clone() {
            let m = self.store.meta(seq);
            if m.start > now && first == seqs.end {
                first = seq;
            }
            if first == seqs.end {
                free = free.max(m.end);
                if !m.reordered {
                    last = last.max(m.deliver);
                }
            }
        }
        self.free = free;
        self.free_frac = 0;
        self.last_deliver = last;
        for seq in first..seqs.end {
            let m = *self.store.meta(seq);
            let (start, end) = match self.params.rate {
                Some(rate) => self.serialize(m.arrival.max(now), m.len as usize, rate),
                None => (m.arrival, m.arrival),
            };
            let deliver = self.deliver_time(end, m.jitter, m.reordered);
            let mm = self.store.meta_mut(seq);
            mm.start = start;
            mm.end = end;
            mm.deliver = deliver;
        }
        // Queue accounting from the (unchanged) cursor on.
        self.queued = 0;
        self.queued_bytes = 0;
        for seq in self.cursor..seqs.end {
            let m = self.store.meta(seq);
            if m.end > m.arrival && m.end > now {
                self.queued += 1;
                self.queued_bytes += u64::from(m.len);
            }
        }
        self.store.reindex();
    }
}
