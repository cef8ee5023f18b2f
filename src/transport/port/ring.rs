//! Receiving through a TPACKET_V3 memory-mapped ring ([`RxMode::Ring`], `ring=1` on raw
//! and hybrid ports).
//!
//! The kernel fills ring blocks on the CPU that delivers each frame; the port walks the
//! blocks handed to user space and copies each frame (with its virtio-net header, which
//! the kernel puts right before the MAC header) into a pool buffer, so the rest of the
//! datapath sees exactly what `recvmmsg` would have produced. A block is given back
//! once all its frames are taken; a batch may stop mid-block and the next one resumes
//! there. Frames the kernel dropped for lack of a free block are read from
//! PACKET_STATISTICS and counted as `ring_full`.

use std::os::fd::AsFd;

use crate::buf::{BufId, Pool};
use crate::metrics::{DropReason, PortStats};
use crate::sys::mmsg::RecvMeta;
use crate::sys::ring::{self, BLOCK_HEADER_LEN, Geometry, RxRing, TP_STATUS_LOSING};

use super::{Opened, RxMode};
use crate::transport::probe::{self, Feature};
use crate::transport::spec::Spec;

/// Bytes of ring per port; the block count follows from the block size.
pub const RING_BYTES: usize = 4 << 20;
/// Smallest block: enough 64-byte frames per block that wakeups stay rare under load.
const MIN_BLOCK: usize = 64 << 10;
/// Room for the block header and one frame's `tpacket3_hdr`, `sockaddr_ll` and padding.
const FRAME_OVERHEAD: usize = 256;
/// A partly filled block is handed over after this many milliseconds (latency bound at
/// low rates).
pub const RETIRE_MS: u32 = 1;

/// Size of `struct tpacket3_hdr` fields read here: through `tp_net`.
const FRAME_HEADER_LEN: usize = 28;

/// Ring geometry for receive slots of `rx_slot` bytes (prefix + largest frame): blocks
/// hold the largest frame whole, [`RING_BYTES`] in all.
pub fn geometry(rx_slot: usize) -> Geometry {
    let block_size = (rx_slot + FRAME_OVERHEAD)
        .next_power_of_two()
        .max(MIN_BLOCK);
    Geometry {
        block_size,
        blocks: (RING_BYTES / block_size).max(4),
        retire_ms: RETIRE_MS,
    }
}

/// Turn an opened raw/hybrid receive socket into a ring if the spec asks for it (and
/// vector IO is on). A kernel that refuses is a logged, counted fallback to `recvmmsg`.
/// Must run after PACKET_VNET_HDR is set on the socket.
pub fn enable(spec: &Spec, o: &mut Opened) {
    if !spec.common.rx_ring() || o.rx_mode != RxMode::Mmsg {
        return;
    }
    let geo = geometry(o.caps.rx_slot);
    let mut map = None;
    let ok = probe::try_enable(
        Feature::PacketRxRing,
        "receiving with recvmmsg instead of a memory-mapped ring",
        || {
            map = Some(RxRing::new(o.rx_fd.as_fd(), geo)?);
            Ok(())
        },
    );
    match map {
        Some(m) if ok => {
            o.rx_mode = RxMode::Ring;
            o.ring = Some(m);
        }
        _ => o.fallbacks += 1,
    }
}

/// One frame found in a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingFrame {
    /// Offset of the MAC header in the block.
    pub mac: usize,
    /// Bytes captured.
    pub snaplen: usize,
    /// Bytes on the wire (larger than `snaplen` when the kernel had to cut the frame).
    pub len: usize,
}

/// Position in a block handed to user space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    next: usize,
    left: u32,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes([s[0], s[1]]))
}

impl Cursor {
    /// Start walking `block` (its `tpacket_block_desc` header says how many frames and
    /// where the first is).
    pub fn open(block: &[u8]) -> Cursor {
        match (u32_at(block, 12), u32_at(block, 16)) {
            (Some(n), Some(first)) if (first as usize) >= BLOCK_HEADER_LEN => Cursor {
                next: first as usize,
                left: n,
            },
            _ => Cursor::default(),
        }
    }

    /// The next frame of `block`, or `None` at its end. A header or frame that would
    /// reach outside the block ends the walk (the kernel never writes one; this keeps a
    /// corrupted ring from turning into out-of-bounds reads). `prefix` bytes (the vnet
    /// header) must fit between the frame header and the MAC header.
    pub fn next(&mut self, block: &[u8], prefix: usize) -> Option<RingFrame> {
        if self.left == 0 {
            return None;
        }
        let at = self.next;
        let parsed = (|| {
            let next_off = u32_at(block, at)? as usize;
            let snaplen = u32_at(block, at + 12)? as usize;
            let len = u32_at(block, at + 16)? as usize;
            let mac = at + usize::from(u16_at(block, at + 24)?);
            if mac < at + FRAME_HEADER_LEN + prefix || mac.checked_add(snaplen)? > block.len() {
                return None;
            }
            Some((next_off, RingFrame { mac, snaplen, len }))
        })();
        let Some((next_off, f)) = parsed else {
            self.left = 0;
            return None;
        };
        self.left -= 1;
        if self.left > 0 {
            if next_off == 0 {
                self.left = 0;
            } else {
                self.next = at + next_off;
            }
        }
        Some(f)
    }
}

/// A port's ring and its read position.
pub struct RingRx {
    map: RxRing,
    block: usize,
    cursor: Option<Cursor>,
    /// A released block carried TP_STATUS_LOSING: read the drop counter.
    losing: bool,
}

impl RingRx {
    pub fn new(map: RxRing) -> RingRx {
        RingRx {
            map,
            block: 0,
            cursor: None,
            losing: false,
        }
    }

    /// Copy up to `slots.len()` frames into the slot buffers (`prefix` bytes before each
    /// MAC header included), describing each in `meta` as `recvmmsg` would. Returns the
    /// number of frames taken.
    pub fn fill(
        &mut self,
        pool: &mut Pool,
        slots: &[BufId],
        slot_len: usize,
        prefix: usize,
        meta: &mut [RecvMeta],
    ) -> usize {
        let mut got = 0;
        while got < slots.len() {
            let Some((status, block)) = self.map.user_block(self.block) else {
                break;
            };
            let cursor = self.cursor.get_or_insert_with(|| Cursor::open(block));
            match cursor.next(block, prefix) {
                Some(f) => {
                    let total = prefix + f.snaplen;
                    let truncated = f.snaplen < f.len || total >= slot_len;
                    let len = if truncated {
                        slot_len
                    } else {
                        let src = &block[f.mac - prefix..f.mac + f.snaplen];
                        pool.buf_mut(slots[got])[..total].copy_from_slice(src);
                        total
                    };
                    meta[got] = RecvMeta {
                        len,
                        truncated,
                        segment: 0,
                    };
                    got += 1;
                }
                None => {
                    self.losing |= status & TP_STATUS_LOSING != 0;
                    self.cursor = None;
                    self.map.release(self.block);
                    self.block = (self.block + 1) % self.map.blocks();
                }
            }
        }
        got
    }

    /// Count the frames the kernel dropped for want of a free block, if a block said
    /// there were any (or `force`).
    pub fn account_drops(&mut self, fd: impl AsFd, stats: &mut PortStats, force: bool) {
        if !(self.losing || force) {
            return;
        }
        self.losing = false;
        if let Ok(s) = ring::take_stats(fd) {
            stats.drop_n(DropReason::RingFull, u64::from(s.drops));
        }
    }
}

impl super::Port {
    /// Fill the receive slots from the ring; see [`RingRx::fill`].
    pub(super) fn recv_ring(&mut self, pool: &mut Pool, slot_len: usize) -> usize {
        let prefix = self.framing.rx_header_len();
        let Some(r) = self.ring.as_mut() else {
            return 0;
        };
        let got = r.fill(pool, &self.slots, slot_len, prefix, &mut self.meta);
        r.account_drops(self.rx_fd.as_fd(), &mut self.stats, false);
        got
    }

    /// Bring `ring_full` up to date with the kernel's drop counter (timer ticks and
    /// exit; a block marked TP_STATUS_LOSING triggers it on the datapath too).
    pub fn sync_ring_stats(&mut self) {
        if let Some(r) = self.ring.as_mut() {
            r.account_drops(self.rx_fd.as_fd(), &mut self.stats, true);
        }
    }

    /// `true` if this port receives through a memory-mapped ring.
    pub fn uses_ring(&self) -> bool {
        self.rx_mode == RxMode::Ring
    }
}

#[cfg(test)]
mod tests;
