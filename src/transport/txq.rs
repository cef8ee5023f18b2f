//! A port's transmit queue: a ring of `depth` entries, each a buffer reference plus a
//! per-slot prefix (vnet/encapsulation header, and rewritten L2–L4 headers for a
//! software-GSO segment). Entries are sent straight from the pool buffers.

use crate::buf::{BufId, Pool};
use crate::sys::mmsg::Part;
use crate::wire::gso;

use super::framing::MAX_TX_PREFIX;

/// Room for the transport prefix plus a segment's headers.
pub const SCRATCH: usize = MAX_TX_PREFIX + gso::MAX_HEADERS;

#[derive(Clone, Copy, Debug)]
struct Entry {
    buf: BufId,
    off: u32,
    len: u32,
    prefix_len: u16,
    /// Bytes of the Ethernet frame this entry puts on the wire (for tx_bytes).
    frame_len: u32,
    /// Place in a UDP segmentation group.
    part: Part,
}

/// Ring of pending transmissions.
pub struct TxQueue {
    entries: Box<[Option<Entry>]>,
    scratch: Box<[[u8; SCRATCH]]>,
    head: usize,
    len: usize,
}

impl TxQueue {
    /// A queue of `depth` entries.
    pub fn new(depth: usize) -> Self {
        let depth = depth.max(1);
        TxQueue {
            entries: vec![None; depth].into_boxed_slice(),
            scratch: vec![[0u8; SCRATCH]; depth].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `true` when no entry can be added.
    pub fn is_full(&self) -> bool {
        self.len == self.entries.len()
    }

    /// Queue `buf[off..off+len]` (the caller's buffer reference moves into the queue).
    /// `prefix` writes the bytes sent before it into the slot's scratch area and returns
    /// (prefix length, Ethernet bytes in the prefix). Returns `false`, keeping nothing,
    /// when the queue is full.
    pub fn push(
        &mut self,
        buf: BufId,
        off: usize,
        len: usize,
        prefix: impl FnOnce(&mut [u8; SCRATCH]) -> (usize, usize),
    ) -> bool {
        self.push_part(buf, off, len, Part::Single, prefix)
    }

    /// As [`TxQueue::push`], as a member of a UDP segmentation group.
    pub fn push_part(
        &mut self,
        buf: BufId,
        off: usize,
        len: usize,
        part: Part,
        prefix: impl FnOnce(&mut [u8; SCRATCH]) -> (usize, usize),
    ) -> bool {
        if self.is_full() {
            return false;
        }
        let slot = (self.head + self.len) % self.entries.len();
        let (prefix_len, prefix_frame_bytes) = prefix(&mut self.scratch[slot]);
        self.entries[slot] = Some(Entry {
            buf,
            off: off as u32,
            len: len as u32,
            prefix_len: prefix_len.min(SCRATCH) as u16,
            frame_len: (prefix_frame_bytes + len) as u32,
            part,
        });
        self.len += 1;
        true
    }

    /// The queued messages in order, as (prefix, frame bytes) pairs.
    pub fn messages<'a>(
        &'a self,
        pool: &'a Pool,
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.parts(pool).map(|(p, f, _)| (p, f))
    }

    /// The queued messages with their segmentation group marks.
    pub fn parts<'a>(
        &'a self,
        pool: &'a Pool,
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8], Part)> + 'a {
        let depth = self.entries.len();
        (0..self.len).filter_map(move |i| {
            let slot = (self.head + i) % depth;
            let e = self.entries[slot].as_ref()?;
            let buf = pool.buf(e.buf);
            Some((
                &self.scratch[slot][..e.prefix_len as usize],
                &buf[e.off as usize..(e.off + e.len) as usize],
                e.part,
            ))
        })
    }

    /// Entries of the group at the head (1 unless it opens a UDP segmentation group).
    pub fn head_group_len(&self) -> usize {
        let depth = self.entries.len();
        let mut n = 0;
        while n < self.len {
            let e = self.entries[(self.head + n) % depth].as_ref();
            if n > 0 && !matches!(e.map(|e| e.part), Some(Part::Cont)) {
                break;
            }
            n += 1;
        }
        n.max(1)
    }

    /// Remove the first `n` entries (sent or given up), releasing their buffers.
    /// Returns (frames, Ethernet bytes) removed.
    pub fn consume(&mut self, n: usize, pool: &mut Pool) -> (u64, u64) {
        let n = n.min(self.len);
        let depth = self.entries.len();
        let mut bytes = 0u64;
        for _ in 0..n {
            if let Some(e) = self.entries[self.head].take() {
                bytes += u64::from(e.frame_len);
                pool.release(e.buf);
            }
            self.head = (self.head + 1) % depth;
        }
        self.len -= n;
        if self.len == 0 {
            self.head = 0;
        }
        (n as u64, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_wraps_and_releases() {
        let mut pool = Pool::new(8, 32);
        let mut q = TxQueue::new(3);
        let ids: Vec<_> = (0..3).map(|_| pool.alloc().unwrap()).collect();
        for (i, id) in ids.iter().enumerate() {
            pool.buf_mut(*id)[0] = i as u8;
            assert!(q.push(*id, 0, 4, |s| {
                s[0] = 0xaa;
                (1, 0)
            }));
        }
        let extra = pool.alloc().unwrap();
        assert!(!q.push(extra, 0, 4, |_| (0, 0)));
        let msgs: Vec<_> = q.messages(&pool).collect();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[2].0, &[0xaa]);
        assert_eq!(msgs[2].1[0], 2);
        assert_eq!(q.consume(2, &mut pool), (2, 8));
        assert_eq!(pool.available(), 8 - 4 + 2);
        // Wrap around: two more fit now.
        assert!(q.push(extra, 0, 4, |_| (0, 0)));
        let again = pool.alloc().unwrap();
        assert!(q.push(again, 0, 2, |_| (0, 0)));
        let order: Vec<_> = q.messages(&pool).map(|(_, f)| f.len()).collect();
        assert_eq!(order, vec![4, 4, 2]);
        q.consume(10, &mut pool);
        assert!(q.is_empty());
        assert_eq!(pool.available(), 8);
    }
}
