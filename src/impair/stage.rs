//! One impairment direction: frames are offered as they arrive ([`Stage::offer`]),
//! judged, timed and kept in the stage's own memory, and handed back when their
//! departure time has come ([`Stage::release`]). Time is passed in by the caller (ns on
//! one monotonic clock), so everything here runs the same under a test's virtual clock.
//!
//! Per wire frame, in this order: `down` drops everything (`link_down`); the loss
//! model judges it (`loss`); corruption and duplication are drawn; the bottleneck
//! queue in front of `rate` drops it if full (`queue_full`); `rate` gives its
//! serialization slot on a virtual clock (`start = max(now, link free)`, `end = start +
//! (len + overhead, in cells)·8/rate`); delay and jitter are added (`deliver = end +
//! delay + jitter`), and unless `reorder_on_jitter` a frame never leaves before the one
//! ahead of it; a `reorder` candidate skips the delay instead. A duplicate is a second
//! copy right behind the first, with its own slot and delay.
//!
//! GSO super-frames are judged per segment (each loss, corruption and duplication
//! draw is for one wire frame). A super-frame none of whose segments is hit, on a
//! direction without `rate`, stays whole: one delay draw, counted as its segments. With
//! `rate`, or when any segment is hit, it is segmented in software here and every
//! segment is timed and delivered on its own (so a 64 KiB burst takes 52 ms to cross a
//! 10 Mbit/s link, as on a real one).
//!
//! Corruption flips one random bit after the Ethernet header. A checksum left for
//! offload is completed first, so the flipped bit leaves the IP, TCP or UDP checksum
//! wrong on purpose: receivers see a damaged frame, as after a real bit error.

use super::counters::{Counters, DELAY_BOUNDS_NS, Dropped, LATE_BOUNDS_NS};
use super::dist::Jitter;
use super::error::ImpairError;
use super::loss::LossState;
use super::params::{Change, Params};
use super::rng::{Streams, system_seed};
use super::store::{Meta, Store};
use crate::wire::{ethernet, gso, vnet};

mod timing;

/// Most segments one super-frame is judged as; a larger count is judged as one frame.
pub const MAX_SEGMENTS: usize = 4096;
/// Rate assumed to size the memory of a direction without `rate` (it grows if the
/// traffic needs more).
const SIZING_RATE: u64 = 1_000_000_000;

/// What happened to a frame offered to the stage, for observers (capture taps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// One wire frame of it was dropped.
    Dropped(Dropped),
    /// One wire frame of it was sent twice.
    Duplicated,
    /// Bit `bit` (from the start of the frame) of one wire frame was flipped.
    Corrupted { bit: u32 },
}

/// Decisions for one wire frame.
#[derive(Clone, Copy, Debug, Default)]
struct Draw {
    lost: bool,
    dup: bool,
    flip: Option<u32>,
}

/// One frame (or whole super-frame) to keep, with its draws.
#[derive(Clone, Copy, Debug)]
struct Unit {
    id: u64,
    /// Wire frames it stands for.
    frames: u16,
    vnet: vnet::Repr,
    draw: Draw,
    len: usize,
}

/// One direction's impairment.
#[derive(Debug)]
pub struct Stage {
    params: Params,
    /// `params.is_default()`, kept (asked for every frame).
    plain: bool,
    streams: Streams,
    jitter: Jitter,
    loss: LossState,
    reorder_count: u32,
    /// Virtual link clock: serialization of the last frame ends at `free` ns plus
    /// `free_frac / rate` ns.
    free: u64,
    free_frac: u64,
    /// Departure of the last frame that kept its place (no overtaking).
    last_deliver: u64,
    /// First frame (sequence number) whose serialization has not ended, and the frames
    /// and bytes from there on: the bottleneck queue.
    cursor: u64,
    queued: u64,
    queued_bytes: u64,
    store: Store,
    pub counters: Counters,
    next_id: u64,
    /// Segment headers (taken out while segmenting, so the stage can be borrowed).
    scratch: Option<Box<[u8; gso::MAX_HEADERS]>>,
    draws: Vec<Draw>,
    /// The store hit its limit since the caller last asked (for one log line), and
    /// whether that was already said once.
    full_event: bool,
    full_told: bool,
}

impl Stage {
    /// A stage with settings `params` (checked), memory sized from them.
    pub fn new(params: Params) -> Result<Stage, ImpairError> {
        params.validate()?;
        let seed = params.seed.unwrap_or_else(system_seed);
        let mut s = Stage {
            params,
            plain: params.is_default(),
            streams: Streams::new(seed),
            jitter: Jitter::new(params.distribution, params.correlation.fraction()),
            loss: LossState::new(params.loss),
            reorder_count: 0,
            free: 0,
            free_frac: 0,
            last_deliver: 0,
            cursor: 0,
            queued: 0,
            queued_bytes: 0,
            store: Store::new(0, super::params::MAX_STAGE_BYTES as usize),
            counters: Counters::default(),
            next_id: 0,
            scratch: Some(Box::new([0; gso::MAX_HEADERS])),
            draws: Vec::with_capacity(MAX_SEGMENTS),
            full_event: false,
            full_told: false,
        };
        s.store.reserve(memory_for(&params));
        Ok(s)
    }

    /// Current settings.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Merge `change` into the settings at time `now` (nothing changes on error).
    /// Frames already serialized keep their departure time; frames still waiting for
    /// `rate` are re-timed with the new settings (keeping their jitter draw). A `seed`
    /// in the change (even the same value) restarts every random stream.
    pub fn apply(&mut self, change: &Change, now: u64) -> Result<(), ImpairError> {
        let new = self.params.apply(change)?;
        let old = std::mem::replace(&mut self.params, new);
        self.plain = new.is_default();
        self.store.reserve(memory_for(&new));
        if change.seed.is_some() {
            self.streams = Streams::new(new.seed.unwrap_or_else(system_seed));
            self.jitter.reset();
            self.loss.reset();
            self.reorder_count = 0;
        }
        self.jitter
            .set(new.distribution, new.correlation.fraction());
        self.loss.set(new.loss);
        let timing = |p: &Params| {
            (
                p.rate,
                p.overhead,
                p.cell,
                p.cell_overhead,
                p.delay,
                p.jitter,
            )
        };
        if timing(&old) != timing(&new) || old.reorder_on_jitter != new.reorder_on_jitter {
            self.retime(now);
        }
        Ok(())
    }

    /// Frames waiting in the stage.
    pub fn in_flight(&self) -> usize {
        self.store.waiting()
    }

    /// Frames and bytes in the bottleneck queue (not yet serialized) at the last call.
    pub fn queue_depth(&self) -> (u64, u64) {
        (self.queued, self.queued_bytes)
    }

    /// Bytes of memory the stage holds for frames.
    pub fn memory(&self) -> usize {
        self.store.capacity()
    }

    /// `true` when the settings impair nothing and no frame waits: frames may go
    /// straight on without entering the stage.
    pub fn is_idle(&self) -> bool {
        self.plain && self.store.is_empty()
    }

    /// Free the frame memory of an idle stage.
    pub fn trim(&mut self) {
        if self.is_idle() {
            self.store.shrink_if_empty();
        }
    }

    /// Departure time of the next frame (ns), if any waits.
    pub fn next_deadline(&self) -> Option<u64> {
        self.store.next_deliver()
    }

    /// `Some(bytes)` the first time the memory limit dropped a frame (for one log line;
    /// the drops themselves are all counted as `buffer_full`).
    pub fn take_full_event(&mut self) -> Option<usize> {
        std::mem::take(&mut self.full_event).then(|| self.store.capacity())
    }

    /// Offer a frame (Ethernet header onward, with its offload state) at time `now`;
    /// `max_frame` is the largest plain frame the output can carry (TCP segments are
    /// cut to fit). Returns the packet id given to the frame.
    pub fn offer(&mut self, now: u64, frame: &[u8], meta: &vnet::Repr, max_frame: usize) -> u64 {
        self.offer_with(now, frame, meta, max_frame, |_, _| {})
    }

    /// As [`Stage::offer`], telling `observe` (packet id, verdict) what happened.
    pub fn offer_with(
        &mut self,
        now: u64,
        frame: &[u8],
        meta: &vnet::Repr,
        max_frame: usize,
        mut observe: impl FnMut(u64, Verdict),
    ) -> u64 {
        self.advance(now);
        let id = self.next_id;
        self.next_id += 1;
        let mut vnet = *meta;
        let plan = if vnet.is_gso() {
            shrink_mss(frame, &mut vnet, max_frame);
            gso::Plan::new(frame, &vnet)
                .ok()
                .filter(|p| p.count() <= MAX_SEGMENTS)
        } else {
            None
        };
        let n = plan.map_or(1, |p| p.count());
        self.counters.frames_in += n as u64;
        if self.params.down {
            self.counters.drop_n(Dropped::LinkDown, n as u64);
            observe(id, Verdict::Dropped(Dropped::LinkDown));
            return id;
        }
        self.draws.clear();
        let mut hit = false;
        for i in 0..n {
            let len = plan.map_or(frame.len(), |p| p.header_len() + p.payload_range(i).len());
            let d = self.draw(len, &mut observe, id);
            hit |= d.lost || d.dup || d.flip.is_some();
            self.draws.push(d);
        }
        match plan {
            Some(p) if hit || self.params.rate.is_some() => self.store_segments(now, frame, &p, id),
            _ => {
                let d = self.draws[0];
                let unit = Unit {
                    id,
                    frames: n as u16,
                    vnet,
                    draw: d,
                    len: frame.len(),
                };
                self.store_unit(now, unit, |b| b.copy_from_slice(frame));
            }
        }
        id
    }

    /// Loss, corruption and duplication draws for one wire frame of `len` bytes.
    fn draw(&mut self, len: usize, observe: &mut impl FnMut(u64, Verdict), id: u64) -> Draw {
        let p = &self.params;
        let mut d = Draw::default();
        if self.loss.lost(&mut self.streams.loss) {
            d.lost = true;
            self.counters.drop_n(Dropped::Loss, 1);
            observe(id, Verdict::Dropped(Dropped::Loss));
        }
        if !p.corrupt.is_zero() && p.corrupt.hit(self.streams.corrupt.next_u64()) {
            let bits = (len.saturating_sub(ethernet::HEADER_LEN) * 8) as u64;
            if bits > 0 {
                let bit = ethernet::HEADER_LEN as u32 * 8 + self.streams.corrupt.below(bits) as u32;
                d.flip = Some(bit);
            }
        }
        if !p.duplicate.is_zero() && p.duplicate.hit(self.streams.duplicate.next_u64()) {
            d.dup = true;
        }
        if !d.lost {
            if let Some(bit) = d.flip {
                self.counters.corrupted += 1;
                observe(id, Verdict::Corrupted { bit });
            }
            if d.dup {
                self.counters.duplicated += 1;
                observe(id, Verdict::Duplicated);
            }
        }
        d
    }

    /// Segment `frame` in software, keeping the segments that were not lost.
    fn store_segments(&mut self, now: u64, frame: &[u8], plan: &gso::Plan<'_>, id: u64) {
        let mut scratch = self
            .scratch
            .take()
            .unwrap_or_else(|| Box::new([0; gso::MAX_HEADERS]));
        let mut i = 0;
        plan.emit_from(0, gso::CsumMode::Partial, &mut scratch, |seg| {
            let d = self.draws[i];
            i += 1;
            if !d.lost {
                let h = seg.headers.len();
                let unit = Unit {
                    id,
                    frames: 1,
                    vnet: seg.vnet,
                    draw: d,
                    len: seg.wire_len(),
                };
                self.store_unit(now, unit, |b| {
                    b[..h].copy_from_slice(seg.headers);
                    b[h..].copy_from_slice(&frame[seg.payload.clone()]);
                });
            }
            true
        });
        self.scratch = Some(scratch);
    }

    /// Queue, time and keep one frame (and its duplicate).
    fn store_unit(&mut self, now: u64, u: Unit, write: impl FnOnce(&mut [u8])) {
        let Unit {
            id,
            frames,
            vnet,
            draw: d,
            len,
        } = u;
        let vnet = &vnet;
        if d.lost {
            return;
        }
        let Some(meta) = self.schedule(now, id, frames, len, vnet, true) else {
            return;
        };
        if !self.store.push(meta, len, write) {
            self.memory_full(frames);
            return;
        }
        self.account(&meta, len);
        let seq = self.store.last().unwrap_or(0);
        if let Some(bit) = d.flip {
            corrupt(self.store.bytes_mut(seq), vnet, bit);
            self.store.meta_mut(seq).vnet = vnet::Repr::NONE;
        }
        let v = self.store.meta(seq).vnet;
        if d.dup
            && let Some(copy) = self.schedule(now, id, frames, len, &v, false)
        {
            if self.store.push_copy(seq, copy) {
                self.account(&copy, len);
            } else {
                self.memory_full(frames);
            }
        }
    }

    fn account(&mut self, m: &Meta, len: usize) {
        if m.deliver > m.arrival {
            self.counters.delayed += u64::from(m.frames);
        }
        if m.end > m.arrival {
            self.queued += 1;
            self.queued_bytes += len as u64;
        }
    }

    fn memory_full(&mut self, frames: u16) {
        self.counters.drop_n(Dropped::BufferFull, u64::from(frames));
        self.full_event = !self.full_told;
        self.full_told = true;
    }

    /// Hand on up to `max` frames due at `now`, in departure order: `emit(bytes,
    /// offload state, packet id)` returns `false` to stop (the frame stays). Returns how
    /// many were handed on.
    pub fn release(
        &mut self,
        now: u64,
        max: usize,
        mut emit: impl FnMut(&[u8], vnet::Repr, u64) -> bool,
    ) -> usize {
        self.advance(now);
        let mut n = 0;
        while n < max {
            let Some(seq) = self.store.pop_due(now) else {
                break;
            };
            let m = *self.store.meta(seq);
            if !emit(self.store.bytes(seq), m.vnet, m.id) {
                self.store.unpop(seq);
                break;
            }
            let frames = u64::from(m.frames);
            self.counters.frames_out += frames;
            self.counters
                .delay
                .record(&DELAY_BOUNDS_NS, now - m.arrival.min(now), frames);
            self.counters
                .late
                .record(&LATE_BOUNDS_NS, now - m.deliver.min(now), frames);
            self.store.done(seq);
            n += 1;
        }
        n
    }
}

/// Bytes of frame memory to reserve for `p`: what `rate` lets through during the
/// longest delay and queue wait (at 1 Gbit/s without a rate), with a quarter more.
fn memory_for(p: &Params) -> usize {
    let bytes = p.bytes_bound().unwrap_or_else(|| {
        (u128::from(SIZING_RATE) * u128::from(p.max_delay()) / 8 / 1_000_000_000) as u64
    });
    (bytes + bytes / 4 + (256 << 10)) as usize
}

/// Cut the MSS of a TCP super-frame whose segments would exceed `max_frame`.
fn shrink_mss(frame: &[u8], v: &mut vnet::Repr, max_frame: usize) {
    let tcp = matches!(v.gso_type, vnet::GsoType::TcpV4 | vnet::GsoType::TcpV6);
    if let Ok(plan) = gso::Plan::new(frame, v) {
        let hdr = plan.header_len();
        if tcp && hdr + usize::from(v.gso_size) > max_frame && max_frame >= hdr + 64 {
            v.gso_size = (max_frame - hdr) as u16;
        }
    }
}

/// Flip bit `bit` of `frame` after completing any checksum left for offload.
fn corrupt(frame: &mut [u8], v: &vnet::Repr, bit: u32) {
    if v.csum.is_some() && !v.is_gso() {
        let _ = gso::finish_partial(frame, v);
    }
    let byte = (bit / 8) as usize;
    if let Some(b) = frame.get_mut(byte) {
        *b ^= 0x80 >> (bit % 8);
    }
}
