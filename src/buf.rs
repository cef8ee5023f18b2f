//! The frame buffer pool and the frame handle that moves between ports.
//!
//! A guest allocates one pool at start: `count` buffers of `stride` bytes in a single
//! allocation. A receive slot owns a buffer; the received frame is handed to the network
//! function as a [`Frame`] (buffer id, offset, length, offload metadata) and then to the
//! transmit queues of output ports, which send straight from the buffer. Buffers are
//! reference counted so one frame can sit in several transmit queues (flooding) or be
//! split into several segments without copying. Nothing here allocates after `new`.

use crate::wire::vnet;

/// Index of a buffer in a [`Pool`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufId(pub u32);

/// A frame inside a pool buffer, with the offload metadata it arrived with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub buf: BufId,
    /// Offset of the Ethernet header in the buffer.
    pub off: u32,
    /// Length of the frame from the Ethernet header, without FCS.
    pub len: u32,
    /// Checksum/GSO state (from the virtio-net header, or none).
    pub vnet: vnet::Repr,
}

impl Frame {
    /// Byte range of the frame inside its buffer.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.off as usize..(self.off as usize + self.len as usize)
    }
}

/// Fixed set of equally sized buffers with reference counts.
pub struct Pool {
    data: Vec<u8>,
    stride: usize,
    refs: Vec<u16>,
    free: Vec<u32>,
}

impl Pool {
    /// `count` buffers of `stride` bytes each (both at least 1).
    pub fn new(count: usize, stride: usize) -> Self {
        let count = count.clamp(1, u32::MAX as usize);
        let stride = stride.max(1);
        Pool {
            data: vec![0u8; count * stride],
            stride,
            refs: vec![0; count],
            free: (0..count as u32).rev().collect(),
        }
    }

    /// Bytes per buffer.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Total number of buffers.
    pub fn capacity(&self) -> usize {
        self.refs.len()
    }

    /// Buffers not in use.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Take a free buffer (reference count 1), or `None` when all are in use.
    pub fn alloc(&mut self) -> Option<BufId> {
        let id = self.free.pop()?;
        self.refs[id as usize] = 1;
        Some(BufId(id))
    }

    /// Add a reference to a buffer in use.
    pub fn retain(&mut self, id: BufId) {
        let r = &mut self.refs[id.0 as usize];
        debug_assert!(*r > 0, "retain of a free buffer");
        *r = r.saturating_add(1);
    }

    /// Drop a reference; the buffer is free again when the last one goes.
    pub fn release(&mut self, id: BufId) {
        let r = &mut self.refs[id.0 as usize];
        debug_assert!(*r > 0, "release of a free buffer");
        if *r <= 1 {
            *r = 0;
            self.free.push(id.0);
        } else {
            *r -= 1;
        }
    }

    /// Current reference count of `id`.
    pub fn refs(&self, id: BufId) -> u16 {
        self.refs[id.0 as usize]
    }

    /// Byte range of buffer `id` in [`Pool::memory`].
    pub fn span(&self, id: BufId) -> std::ops::Range<usize> {
        let start = id.0 as usize * self.stride;
        start..start + self.stride
    }

    /// Whole buffer `id`.
    pub fn buf(&self, id: BufId) -> &[u8] {
        &self.data[self.span(id)]
    }

    /// Whole buffer `id`, writable.
    pub fn buf_mut(&mut self, id: BufId) -> &mut [u8] {
        let span = self.span(id);
        &mut self.data[span]
    }

    /// The bytes of `frame`.
    pub fn frame(&self, f: &Frame) -> &[u8] {
        &self.buf(f.buf)[f.range()]
    }

    /// The bytes of `frame`, writable.
    pub fn frame_mut(&mut self, f: &Frame) -> &mut [u8] {
        let r = f.range();
        &mut self.buf_mut(f.buf)[r]
    }

    /// Buffer `src` to read and a different buffer `dst` to write, at the same time.
    /// `None` if they are the same buffer.
    pub fn pair_mut(&mut self, src: BufId, dst: BufId) -> Option<(&[u8], &mut [u8])> {
        let (s, d) = (self.span(src), self.span(dst));
        if s.start == d.start {
            return None;
        }
        if s.start < d.start {
            let (lo, hi) = self.data.split_at_mut(d.start);
            Some((&lo[s], &mut hi[..self.stride]))
        } else {
            let (lo, hi) = self.data.split_at_mut(s.start);
            Some((&hi[..self.stride], &mut lo[d]))
        }
    }

    /// All buffers as one slice (for batched receive into several buffers at once).
    pub fn memory(&mut self) -> &mut [u8] {
        &mut self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_release_and_refcounts() {
        let mut p = Pool::new(3, 100);
        let a = p.alloc().unwrap();
        let b = p.alloc().unwrap();
        let c = p.alloc().unwrap();
        assert!(p.alloc().is_none());
        assert_ne!(a, b);
        assert_eq!(p.span(c).len(), 100);
        p.retain(b);
        p.release(b);
        assert_eq!(p.available(), 0);
        p.release(b);
        assert_eq!(p.available(), 1);
        assert_eq!(p.alloc(), Some(b));
        p.buf_mut(a)[5] = 9;
        let f = Frame {
            buf: a,
            off: 5,
            len: 2,
            vnet: vnet::Repr::default(),
        };
        assert_eq!(p.frame(&f), &[9, 0]);
        let (src, dst) = p.pair_mut(a, c).unwrap();
        dst[..2].copy_from_slice(&src[5..7]);
        assert_eq!(&p.buf(c)[..2], &[9, 0]);
        let (src, dst) = p.pair_mut(c, a).unwrap();
        assert_eq!((src.len(), dst.len()), (100, 100));
        assert!(p.pair_mut(a, a).is_none());
    }
}
