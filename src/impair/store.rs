//! Where frames wait: their bytes in one byte ring, their descriptions in arrival
//! order, and the departure order over them.
//!
//! Departure order costs O(1) per frame in the usual case: a frame whose departure is
//! no earlier than that of the last in-order frame (every frame of a direction without
//! `reorder` and `reorder_on_jitter`, since frames do not overtake) is *in order* and
//! leaves from the front of the arrival order; only the others (explicit reorders,
//! jitter allowed to reorder) go into a min-heap. The next frame to leave is the
//! earlier of the two fronts, ties by arrival, as one heap over all would give.
//!
//! The ring is allocated when the stage is configured, sized from the settings, and
//! only grows (by doubling, copying what it holds) when traffic needs more; it never
//! allocates per frame. Positions are logical byte offsets that only increase (the
//! physical offset is the position modulo the capacity); a frame never wraps: when it
//! would, the rest of the ring is skipped. Because the capacity only ever doubles, a
//! frame that was contiguous stays contiguous after growing.
//!
//! Frames usually leave in arrival order; when some leave early (reorder, jitter with
//! `reorder_on_jitter`) their space is reclaimed once every frame before them has
//! left too.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::wire::vnet;

/// One waiting frame.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    /// Packet id given when the frame entered the stage (for capture taps).
    pub id: u64,
    /// When it entered the stage, ns.
    pub arrival: u64,
    /// When its serialization by `rate` starts and ends, ns (equal to arrival without
    /// a rate).
    pub start: u64,
    pub end: u64,
    /// When it leaves, ns.
    pub deliver: u64,
    /// Jitter offset drawn for it, in units of jitter (kept when settings change).
    pub jitter: f32,
    /// Logical position and length of its bytes.
    pub pos: u64,
    pub len: u32,
    /// Wire frames it stands for (GSO segments kept whole).
    pub frames: u16,
    /// Skips the delay (explicit reorder).
    pub reordered: bool,
    /// Already sent; its space is reclaimed when the frames before it are gone.
    pub done: bool,
    /// Waits in the heap (departs out of arrival order) rather than in order.
    pub heaped: bool,
    pub vnet: vnet::Repr,
}

/// The frames of one stage.
#[derive(Debug)]
pub struct Store {
    bytes: Vec<u8>,
    /// Logical positions of the oldest byte in use and of the next free byte.
    head: u64,
    tail: u64,
    metas: VecDeque<Meta>,
    /// Sequence number of `metas[0]`.
    front: u64,
    /// Frames that depart out of arrival order: (departure, sequence number).
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    /// First sequence number that may be an in-order frame still waiting (frames before
    /// it in order have left), and the departure of the last in-order frame added.
    fifo: u64,
    fifo_last: u64,
    /// In-order frames waiting.
    in_order: usize,
    /// Most bytes the ring may grow to.
    limit: usize,
}

/// Smallest ring.
pub const MIN_BYTES: usize = 1 << 16;

impl Store {
    /// A ring of at least `bytes` (rounded up to a power of two, at least
    /// [`MIN_BYTES`]), allowed to grow to `limit`.
    pub fn new(bytes: usize, limit: usize) -> Self {
        let cap = bytes
            .clamp(MIN_BYTES, limit.max(MIN_BYTES))
            .next_power_of_two();
        let frames = cap / 256;
        Store {
            bytes: vec![0; cap],
            head: 0,
            tail: 0,
            metas: VecDeque::with_capacity(frames),
            front: 0,
            heap: BinaryHeap::new(),
            fifo: 0,
            fifo_last: 0,
            in_order: 0,
            limit: limit.max(MIN_BYTES),
        }
    }

    /// Physical offset of logical position `pos` (the capacity is a power of two).
    #[inline]
    fn offset(&self, pos: u64) -> usize {
        (pos & (self.bytes.len() as u64 - 1)) as usize
    }

    /// Ring capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes in use (including space skipped at the ring's end and not yet reclaimed).
    pub fn used(&self) -> u64 {
        self.tail - self.head
    }

    /// Frames not yet sent.
    pub fn waiting(&self) -> usize {
        self.heap.len() + self.in_order
    }

    /// `true` when no frame waits.
    pub fn is_empty(&self) -> bool {
        self.waiting() == 0
    }

    /// Grow the ring to at least `bytes` (used when settings need more).
    pub fn reserve(&mut self, bytes: usize) {
        if bytes > self.bytes.len() {
            self.grow(bytes.min(self.limit).next_power_of_two());
        }
    }

    /// Release the ring's memory if nothing waits (settings cleared).
    pub fn shrink_if_empty(&mut self) {
        if self.is_empty() && self.bytes.len() > MIN_BYTES {
            *self = Store::new(MIN_BYTES, self.limit);
        }
    }

    fn grow(&mut self, cap: usize) {
        let cap = cap.max(self.bytes.len() * 2);
        debug_assert!(cap.is_power_of_two());
        let mut new = vec![0u8; cap];
        let old = self.bytes.len() as u64;
        for m in self.metas.iter().filter(|m| !m.done) {
            let from = (m.pos % old) as usize;
            let to = (m.pos % cap as u64) as usize;
            new[to..to + m.len as usize].copy_from_slice(&self.bytes[from..from + m.len as usize]);
        }
        self.bytes = new;
    }

    /// Room for `len` bytes: the logical position to write at, growing the ring if
    /// needed; `None` if it would exceed the limit.
    fn place(&mut self, len: usize) -> Option<u64> {
        loop {
            let cap = self.bytes.len() as u64;
            if self.head == self.tail {
                // Empty: start at a ring boundary so the frame never has to skip.
                self.tail = self.tail.div_ceil(cap) * cap;
                self.head = self.tail;
            }
            let off = self.offset(self.tail) as u64;
            let pos = if off + len as u64 > cap {
                self.tail + (cap - off)
            } else {
                self.tail
            };
            if pos + len as u64 - self.head <= cap {
                return Some(pos);
            }
            if self.bytes.len() * 2 > self.limit {
                return None;
            }
            self.grow(self.bytes.len() * 2);
        }
    }

    /// Add a frame of `len` bytes described by `meta` (its `pos` and `len` are set
    /// here); `write` fills its bytes. Returns `false`, keeping nothing, when the ring
    /// is at its limit.
    pub fn push(&mut self, meta: Meta, len: usize, write: impl FnOnce(&mut [u8])) -> bool {
        let Some(pos) = self.place(len) else {
            return false;
        };
        let at = self.offset(pos);
        write(&mut self.bytes[at..at + len]);
        self.commit(meta, pos, len);
        true
    }

    fn commit(&mut self, mut meta: Meta, pos: u64, len: usize) {
        meta.pos = pos;
        meta.len = len as u32;
        meta.done = false;
        self.tail = pos + len as u64;
        let seq = self.front + self.metas.len() as u64;
        meta.heaped = !in_order(
            &mut self.fifo,
            &mut self.fifo_last,
            &mut self.in_order,
            meta.deliver,
            seq,
        );
        if meta.heaped {
            self.heap.push(Reverse((meta.deliver, seq)));
        }
        self.metas.push_back(meta);
    }

    /// The in-order frame that leaves next: (departure, sequence number).
    fn fifo_front(&self) -> Option<(u64, u64)> {
        (self.in_order > 0).then(|| (self.meta(self.fifo).deliver, self.fifo))
    }

    /// Move the in-order cursor to the next waiting in-order frame.
    fn settle(&mut self) {
        if self.in_order == 0 {
            return;
        }
        while self
            .metas
            .get((self.fifo - self.front) as usize)
            .is_some_and(|m| m.heaped || m.done)
        {
            self.fifo += 1;
        }
    }

    /// The next frame to leave: (departure, sequence number).
    fn next(&self) -> Option<(u64, u64)> {
        let h = self.heap.peek().map(|Reverse(x)| *x);
        match (self.fifo_front(), h) {
            (Some(f), Some(h)) => Some(f.min(h)),
            (f, h) => f.or(h),
        }
    }

    /// Departure time of the next frame to leave.
    pub fn next_deliver(&self) -> Option<u64> {
        self.next().map(|(t, _)| t)
    }

    /// The next frame to leave if it is due at `now`: its sequence number.
    pub fn pop_due(&mut self, now: u64) -> Option<u64> {
        let (t, seq) = self.next()?;
        if t > now {
            return None;
        }
        if self.meta(seq).heaped {
            self.heap.pop();
        } else {
            self.in_order -= 1;
            self.fifo = seq + 1;
            self.settle();
        }
        Some(seq)
    }

    /// Put the frame just popped back (it could not be sent now).
    pub fn unpop(&mut self, seq: u64) {
        let m = *self.meta(seq);
        if m.heaped {
            self.heap.push(Reverse((m.deliver, seq)));
        } else {
            self.in_order += 1;
            self.fifo = seq;
        }
    }

    /// Description of frame `seq`.
    pub fn meta(&self, seq: u64) -> &Meta {
        &self.metas[(seq - self.front) as usize]
    }

    /// The bytes of frame `seq`.
    pub fn bytes(&self, seq: u64) -> &[u8] {
        let m = self.meta(seq);
        let at = self.offset(m.pos);
        &self.bytes[at..at + m.len as usize]
    }

    /// Frame `seq` has been sent: reclaim it and every sent frame before it.
    pub fn done(&mut self, seq: u64) {
        let i = (seq - self.front) as usize;
        self.metas[i].done = true;
        while self.metas.front().is_some_and(|m| m.done) {
            self.metas.pop_front();
            self.front += 1;
        }
        self.head = self.metas.front().map_or(self.tail, |m| m.pos);
    }

    /// Sequence numbers of the frames held, oldest first (sent ones included until
    /// reclaimed).
    pub fn seqs(&self) -> std::ops::Range<u64> {
        self.front..self.front + self.metas.len() as u64
    }

    /// Sequence number of the newest frame.
    pub fn last(&self) -> Option<u64> {
        (!self.metas.is_empty()).then(|| self.front + self.metas.len() as u64 - 1)
    }

    /// The bytes of frame `seq`, writable.
    pub fn bytes_mut(&mut self, seq: u64) -> &mut [u8] {
        let m = *self.meta(seq);
        let at = self.offset(m.pos);
        &mut self.bytes[at..at + m.len as usize]
    }

    /// Add a copy of frame `src` described by `meta` (as [`Store::push`]).
    pub fn push_copy(&mut self, src: u64, meta: Meta) -> bool {
        let len = self.meta(src).len as usize;
        let Some(pos) = self.place(len) else {
            return false;
        };
        let from = self.offset(self.meta(src).pos);
        let to = self.offset(pos);
        self.bytes.copy_within(from..from + len, to);
        self.commit(meta, pos, len);
        true
    }

    /// Description of frame `seq`, writable. Call [`Store::reindex`] after changing
    /// departure times.
    pub fn meta_mut(&mut self, seq: u64) -> &mut Meta {
        &mut self.metas[(seq - self.front) as usize]
    }

    /// Rebuild the departure order after departure times changed.
    pub fn reindex(&mut self) {
        let mut v = std::mem::take(&mut self.heap).into_vec();
        v.clear();
        self.in_order = 0;
        self.fifo = self.front;
        self.fifo_last = 0;
        for (i, m) in self.metas.iter_mut().enumerate() {
            if m.done {
                continue;
            }
            let seq = self.front + i as u64;
            m.heaped = !in_order(
                &mut self.fifo,
                &mut self.fifo_last,
                &mut self.in_order,
                m.deliver,
                seq,
            );
            if m.heaped {
                v.push(Reverse((m.deliver, seq)));
            }
        }
        self.heap = BinaryHeap::from(v);
    }
}

/// Whether a frame due at `deliver` (sequence `seq`) joins the in-order run: it does
/// when the run is empty or it leaves no earlier than the run's last frame; then the
/// run (`first` sequence, `last` departure, `len` frames) is extended. Otherwise it
/// overtakes and goes to the heap.
fn in_order(first: &mut u64, last: &mut u64, len: &mut usize, deliver: u64, seq: u64) -> bool {
    if *len != 0 && deliver < *last {
        return false;
    }
    if *len == 0 {
        *first = seq;
    }
    *last = deliver;
    *len += 1;
    true
}
