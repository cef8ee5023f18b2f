//! Receiving through a memory-mapped ring ([`RxMode::Ring`]; raw and hybrid ports,
//! `ring=1`, the default, and `ring=2`).
//!
//! The kernel copies each frame into the ring on the CPU that delivers it. `ring=1` is a
//! TPACKET_V2 frame ring: one slot per frame, each handed over (and the reader woken)
//! as soon as it is written; frames too large for a slot (64 KiB GSO frames) are queued
//! on the socket too and read from there with `recvmsg`, in ring order. `ring=2` is a
//! TPACKET_V3 block ring: frames packed into blocks handed over when full or after the
//! retire timeout. Either way the port copies each frame (with its virtio-net header,
//! which the kernel puts right before the MAC header) into a pool buffer, so the rest of
//! the datapath sees exactly what `recvmmsg` would have produced, and gives the slot or
//! block back at once. Frames the kernel dropped for lack of room are read from
//! PACKET_STATISTICS and counted as `ring_full`.

use std::os::fd::AsFd;

use crate::buf::{BufId, Pool};
use crate::metrics::{DropReason, PortStats};
use crate::sys::mmsg::RecvMeta;
use crate::sys::ring::{
    self, BLOCK_HEADER_LEN, Geometry, Layout, RxRing, TP_STATUS_COPY, TP_STATUS_LOSING,
};

use super::{Opened, RxMode};
use crate::transport::probe::{self, Feature};
use crate::transport::spec::{Kind, RingMode, Spec};

/// Receive-ring bytes a guest's ring ports share when they do not set `ring_kib=`:
/// 5120 frame-ring slots at MTU 1500 (a port alone gets all of them, each port of an
/// xconnect or router 2560: 5.7 ms of 64-byte frames at 450 kpps while the guest is not
/// scheduled).
pub const GUEST_RING_BYTES: usize = 8 << 20;
/// No default ring is smaller: four 64 KiB blocks, 160 slots at MTU 1500.
pub const MIN_PORT_RING_BYTES: usize = 256 << 10;

/// A port's default ring size when the guest has `ring_ports` ports with a ring:
/// [`GUEST_RING_BYTES`] split evenly, at least [`MIN_PORT_RING_BYTES`]. A ring is kernel
/// memory mapped into the guest for as long as the port is open (a `recvmmsg` socket
/// buffer is only charged while frames wait in it), so a guest with many ports gets a
/// smaller ring per port rather than a larger total: its ports share one CPU, and so
/// the rate the guest can take from all of them together.
pub fn default_bytes(ring_ports: usize) -> usize {
    (GUEST_RING_BYTES / ring_ports.max(1)).max(MIN_PORT_RING_BYTES)
}

/// How many of one guest's ports share [`GUEST_RING_BYTES`]: raw and hybrid ports that
/// receive through a ring without their own `ring_kib=`.
pub fn sharing_ports(specs: &[Spec]) -> usize {
    specs
        .iter()
        .filter(|s| matches!(s.kind, Kind::Raw { .. } | Kind::Hybrid { .. }))
        .filter(|s| s.common.rx_ring() != RingMode::Off && s.common.ring_kib.is_none())
        .count()
}

/// The ring size for `spec`'s port: `ring_kib=` if given, else [`default_bytes`].
pub fn ring_bytes(spec: &Spec, ring_ports: usize) -> usize {
    spec.common
        .ring_kib
        .map_or_else(|| default_bytes(ring_ports), |k| k as usize * 1024)
}

/// Smallest block: enough 64-byte frames per block that wakeups stay rare under load.
const MIN_BLOCK: usize = 64 << 10;
/// Room for the block header and one frame's `tpacket3_hdr`, `sockaddr_ll` and padding.
const FRAME_OVERHEAD: usize = 256;
/// Room before the frame in a V2 slot: `tpacket2_hdr`, `sockaddr_ll`, alignment and the
/// vnet header (the kernel puts the MAC header at offset 76 with a vnet header, 66
/// without).
const SLOT_OVERHEAD: usize = 76;
/// A partly filled block is handed over after this many milliseconds (latency bound at
/// low rates, `ring=2`).
pub const RETIRE_MS: u32 = 1;

/// Size of `struct tpacket3_hdr` fields read here: through `tp_net`.
const FRAME_HEADER_LEN: usize = 28;
/// Size of `struct tpacket2_hdr`.
const SLOT_HEADER_LEN: usize = 32;

/// Ring geometry for `mode`, about `bytes` in all (whole blocks, at least four).
/// `rx_slot` is the port's receive slot (prefix + largest frame, 64 KiB with GSO),
/// `max_frame` the largest non-GSO Ethernet frame (MTU, header and one VLAN tag). Frame
/// rings have slots for such frames, rounded up to 64 bytes (larger ones take the
/// socket); block rings have blocks that hold the largest frame whole.
pub fn geometry(mode: RingMode, rx_slot: usize, max_frame: usize, bytes: usize) -> Geometry {
    match mode {
        RingMode::Blocks | RingMode::Off => {
            let block_size = (rx_slot + FRAME_OVERHEAD)
                .next_power_of_two()
                .max(MIN_BLOCK);
            Geometry {
                block_size,
                blocks: (bytes / block_size).max(4),
                layout: Layout::Blocks {
                    retire_ms: RETIRE_MS,
                },
            }
        }
        RingMode::Frames => {
            let frame_size = (max_frame + SLOT_OVERHEAD).next_multiple_of(64).max(256);
            // Slots do not span blocks; a block's tail shorter than a slot is unused.
            let block_size = frame_size.next_multiple_of(4096).max(MIN_BLOCK);
            Geometry {
                block_size,
                blocks: (bytes / block_size).max(4),
                layout: Layout::Frames { frame_size },
            }
        }
    }
}

/// Turn an opened raw/hybrid receive socket into a ring if the spec asks for it (and
/// vector IO is on), sized by [`ring_bytes`] for a guest with `ring_ports` ring ports.
/// A kernel that refuses is a logged, counted fallback to `recvmmsg`. Must run after
/// PACKET_VNET_HDR is set on the socket and before it is bound.
pub fn enable(spec: &Spec, o: &mut Opened, ring_ports: usize) {
    let mode = spec.common.rx_ring();
    if mode == RingMode::Off || o.rx_mode != RxMode::Mmsg {
        return;
    }
    let bytes = ring_bytes(spec, ring_ports);
    let geo = geometry(mode, o.caps.rx_slot, o.caps.max_tx_frame, bytes);
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

/// The fields of a V2 slot's `tpacket2_hdr` the port needs: (bytes captured, bytes on
/// the wire, offset of the MAC header). `None` if they do not describe a frame inside
/// the slot with room for `prefix` bytes before it (the kernel never writes such a
/// slot; this keeps a corrupted ring from turning into out-of-bounds reads).
pub fn slot_frame(slot: &[u8], prefix: usize) -> Option<RingFrame> {
    let len = u32_at(slot, 4)? as usize;
    let snaplen = u32_at(slot, 8)? as usize;
    let mac = usize::from(u16_at(slot, 12)?);
    if mac < SLOT_HEADER_LEN + prefix || mac.checked_add(snaplen)? > slot.len() {
        return None;
    }
    Some(RingFrame { mac, snaplen, len })
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
    /// Next slot (V2) or block (V3) to look at.
    unit: usize,
    /// Position in the current V3 block.
    cursor: Option<Cursor>,
    /// A unit carried TP_STATUS_LOSING: read the drop counter.
    losing: bool,
}

/// What one [`RingRx::fill`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filled {
    /// Frames placed in slots.
    pub got: usize,
    /// Frames the kernel could neither fit in a slot nor queue on the socket (its
    /// receive buffer was full): only their start reached the ring.
    pub cut: u64,
}

impl RingRx {
    pub fn new(map: RxRing) -> RingRx {
        RingRx {
            map,
            unit: 0,
            cursor: None,
            losing: false,
        }
    }

    /// `true` for a TPACKET_V2 frame ring.
    pub fn frames(&self) -> bool {
        matches!(self.map.layout(), Layout::Frames { .. })
    }

    /// Copy up to `slots.len()` frames into the slot buffers (`prefix` bytes before each
    /// MAC header included), describing each in `meta` as `recvmmsg` would. A V2 slot
    /// marked TP_STATUS_COPY stands for a frame queued on the socket: `from_socket` reads
    /// it into the buffer it is given.
    pub fn fill(
        &mut self,
        pool: &mut Pool,
        slots: &[BufId],
        slot_len: usize,
        prefix: usize,
        meta: &mut [RecvMeta],
        from_socket: &mut dyn FnMut(&mut [u8]) -> Option<RecvMeta>,
    ) -> Filled {
        if self.frames() {
            self.fill_frames(pool, slots, slot_len, prefix, meta, from_socket)
        } else {
            Filled {
                got: self.fill_blocks(pool, slots, slot_len, prefix, meta),
                cut: 0,
            }
        }
    }

    fn fill_frames(
        &mut self,
        pool: &mut Pool,
        slots: &[BufId],
        slot_len: usize,
        prefix: usize,
        meta: &mut [RecvMeta],
        from_socket: &mut dyn FnMut(&mut [u8]) -> Option<RecvMeta>,
    ) -> Filled {
        let mut done = Filled::default();
        while done.got < slots.len() {
            let Some((status, slot)) = self.map.user_unit(self.unit) else {
                break;
            };
            self.losing |= status & TP_STATUS_LOSING != 0;
            let buf = &mut pool.buf_mut(slots[done.got])[..slot_len];
            let m = if status & TP_STATUS_COPY != 0 {
                // The whole frame waits on the socket, queued before this slot was
                // published (the kernel does both under one lock, in ring order).
                from_socket(buf)
            } else {
                match slot_frame(slot, prefix) {
                    Some(f) if f.snaplen == f.len && prefix + f.snaplen < slot_len => {
                        let total = prefix + f.snaplen;
                        buf[..total].copy_from_slice(&slot[f.mac - prefix..f.mac + f.snaplen]);
                        Some(RecvMeta {
                            len: total,
                            truncated: false,
                            segment: 0,
                        })
                    }
                    _ => None,
                }
            };
            match m {
                Some(m) => {
                    meta[done.got] = m;
                    done.got += 1;
                }
                None => done.cut += 1,
            }
            self.map.release(self.unit);
            self.unit = (self.unit + 1) % self.map.units();
        }
        done
    }

    fn fill_blocks(
        &mut self,
        pool: &mut Pool,
        slots: &[BufId],
        slot_len: usize,
        prefix: usize,
        meta: &mut [RecvMeta],
    ) -> usize {
        let mut got = 0;
        while got < slots.len() {
            let Some((status, block)) = self.map.user_unit(self.unit) else {
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
                    self.map.release(self.unit);
                    self.unit = (self.unit + 1) % self.map.units();
                }
            }
        }
        got
    }

    /// Count the frames the kernel dropped for want of room, if a slot or block said
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
        let fd = self.rx_fd.as_fd();
        let single = &mut self.rx_ring;
        let mut from_socket = |buf: &mut [u8]| single.recv_one(fd, buf).ok().flatten();
        let done = r.fill(
            pool,
            &self.slots,
            slot_len,
            prefix,
            &mut self.meta,
            &mut from_socket,
        );
        self.stats.drop_n(DropReason::RingFull, done.cut);
        r.account_drops(fd, &mut self.stats, false);
        done.got
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

    /// The receive ring's name for reports: `frames` (TPACKET_V2), `blocks`
    /// (TPACKET_V3), or `None` without a ring.
    pub fn ring_kind(&self) -> Option<&'static str> {
        self.ring
            .as_ref()
            .map(|r| if r.frames() { "frames" } else { "blocks" })
    }
}

#[cfg(test)]
mod tests;
