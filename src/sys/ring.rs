//! Memory-mapped receive rings on AF_PACKET sockets (PACKET_RX_RING), in two layouts:
//!
//! - **TPACKET_V2, a frame ring**: fixed-size frame slots, each with its own status word.
//!   The kernel copies a frame into the next free slot (`tpacket_rcv`, in the softirq of
//!   whichever CPU delivers it: on a veth the *sender's* CPU), frees the skb there, marks
//!   the slot `TP_STATUS_USER` and wakes the reader, frame by frame: no added latency.
//!   Frames larger than a slot are queued on the socket as well (PACKET_COPY_THRESH) and
//!   their slot says so (`TP_STATUS_COPY`); they are read with `recvmsg`, in order.
//! - **TPACKET_V3, a block ring**: variable-sized frames packed into blocks; a block is
//!   handed over when it is full or its retire timer fires (`TP_STATUS_USER` in the block
//!   header, one wakeup per block). Fewer wakeups under load, up to one retire timeout
//!   of latency at low rates.
//!
//! User space gives a slot or block back by writing `TP_STATUS_KERNEL`. No receive
//! system call and no per-frame kernel copy on the reader's CPU.
//!
//! This module owns the mapping and the ownership protocol; parsing the frame headers
//! is plain safe code over the byte slices [`RxRing::user_unit`] returns.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::cvt;

const PACKET_RX_RING: libc::c_int = 5;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_COPY_THRESH: libc::c_int = 7;
const PACKET_VERSION: libc::c_int = 10;
const TPACKET_V2: libc::c_int = 1;
const TPACKET_V3: libc::c_int = 2;

/// Unit owned by the kernel (being filled or free).
pub const TP_STATUS_KERNEL: u32 = 0;
/// Unit handed to user space.
pub const TP_STATUS_USER: u32 = 1;
/// V2: the frame did not fit its slot; the slot holds its start, and the whole frame is
/// queued on the socket (read it with `recvmsg`).
pub const TP_STATUS_COPY: u32 = 1 << 1;
/// The kernel dropped frames (ring full) since the statistics were last read.
pub const TP_STATUS_LOSING: u32 = 1 << 2;

/// Offset of `hdr.bh1.block_status` in `struct tpacket_block_desc`.
const BLOCK_STATUS_OFF: usize = 8;
/// Size of `struct tpacket_block_desc` (the block header, no private area).
pub const BLOCK_HEADER_LEN: usize = 48;

/// `struct tpacket_req` (linux/if_packet.h): the V1/V2 ring request.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TpacketReq {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
}

/// `struct tpacket_req3` (linux/if_packet.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TpacketReq3 {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
    retire_blk_tov: u32,
    sizeof_priv: u32,
    feature_req_word: u32,
}

/// `struct tpacket_stats_v3` (V2 sockets fill the first two fields).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TpacketStatsV3 {
    packets: u32,
    drops: u32,
    freeze_q_cnt: u32,
}

/// Ring layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// TPACKET_V2: slots of `frame_size` bytes (a multiple of 16, at most a block; each
    /// block holds as many whole slots as fit), one status word each; frames too large
    /// for a slot come through the socket.
    Frames { frame_size: usize },
    /// TPACKET_V3: variable-sized frames in blocks handed over whole, a partly filled
    /// block after `retire_ms` milliseconds.
    Blocks { retire_ms: u32 },
}

/// Shape of a receive ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes per block: a non-zero multiple of the page size. A V3 frame never spans
    /// blocks, so V3 blocks hold the largest frame plus its headers.
    pub block_size: usize,
    /// Number of blocks.
    pub blocks: usize,
    pub layout: Layout,
}

impl Geometry {
    /// Bytes of the whole ring (kernel memory, mapped into the process).
    pub fn bytes(&self) -> usize {
        self.block_size * self.blocks
    }
}

/// Frames the kernel counted on a ring socket since the last call (the counters reset
/// on read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Frames that passed the socket filter (delivered or dropped).
    pub packets: u32,
    /// Frames dropped because no slot or block was free (or the frame could not be copied).
    pub drops: u32,
}

/// A mapped receive ring. Unmapped on drop; the socket it was set up on may be closed
/// independently (the mapping keeps the ring alive).
///
/// The ring is a sequence of *units* that change hands between the kernel and user
/// space: frame slots (V2) or blocks (V3), each with a status word.
pub struct RxRing {
    base: NonNull<u8>,
    len: usize,
    unit_size: usize,
    units: usize,
    /// Units per block (1 for V3) and the block size, to find a unit.
    per_block: usize,
    block_size: usize,
    layout: Layout,
}

// SAFETY: the mapping is plain shared memory owned by this value; access to a unit is
// only through `&self`/`&mut self` methods that follow the ownership protocol, so moving
// the value to another thread is sound.
unsafe impl Send for RxRing {}

fn set_opt<T>(fd: impl AsFd, opt: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live, initialised `T` of the size passed; the kernel only
    // reads it during the call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            libc::SOL_PACKET,
            opt,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

impl RxRing {
    /// Switch `fd` (an AF_PACKET socket, PACKET_VNET_HDR already set if wanted: the
    /// kernel refuses it once a ring exists) to the layout's TPACKET version, create the
    /// ring and map it.
    pub fn new(fd: impl AsFd, geo: Geometry) -> io::Result<RxRing> {
        let page = 4096;
        if geo.block_size == 0 || !geo.block_size.is_multiple_of(page) || geo.blocks == 0 {
            return Err(invalid(
                "ring block size must be a non-zero multiple of 4096",
            ));
        }
        let block_size = u32::try_from(geo.block_size).map_err(|_| invalid("block too large"))?;
        let blocks = u32::try_from(geo.blocks).map_err(|_| invalid("too many blocks"))?;
        let len = geo
            .block_size
            .checked_mul(geo.blocks)
            .ok_or_else(|| invalid("ring too large"))?;
        let fd = fd.as_fd();
        let (unit_size, units, per_block) = match geo.layout {
            Layout::Frames { frame_size } => {
                if frame_size < 64 || !frame_size.is_multiple_of(16) || frame_size > geo.block_size
                {
                    return Err(invalid(
                        "ring frame size must be a multiple of 16, at most the block size",
                    ));
                }
                let per_block = geo.block_size / frame_size;
                let frames = per_block * geo.blocks;
                let req = TpacketReq {
                    block_size,
                    block_nr: blocks,
                    frame_size: u32::try_from(frame_size)
                        .map_err(|_| invalid("frame too large"))?,
                    frame_nr: u32::try_from(frames).map_err(|_| invalid("too many frames"))?,
                };
                set_opt(fd, PACKET_VERSION, &TPACKET_V2)?;
                // Any non-zero value: frames that do not fit a slot are queued on the
                // socket too, instead of being cut.
                let thresh: libc::c_int = 1;
                set_opt(fd, PACKET_COPY_THRESH, &thresh)?;
                set_opt(fd, PACKET_RX_RING, &req)?;
                (frame_size, frames, per_block)
            }
            Layout::Blocks { retire_ms } => {
                // Frames are variable-sized in V3; frame_size/frame_nr only have to be
                // consistent.
                let frame_size = 2048u32;
                let req = TpacketReq3 {
                    block_size,
                    block_nr: blocks,
                    frame_size,
                    frame_nr: (block_size / frame_size) * blocks,
                    retire_blk_tov: retire_ms,
                    ..TpacketReq3::default()
                };
                set_opt(fd, PACKET_VERSION, &TPACKET_V3)?;
                set_opt(fd, PACKET_RX_RING, &req)?;
                (geo.block_size, geo.blocks, 1)
            }
        };
        // SAFETY: mapping a fresh region (address chosen by the kernel) of exactly the
        // ring's size over the socket, as packet_mmap requires; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or_else(|| invalid("mmap returned null"))?;
        Ok(RxRing {
            base,
            len,
            unit_size,
            units,
            per_block,
            block_size: geo.block_size,
            layout: geo.layout,
        })
    }

    /// The ring's layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Number of units: frame slots (V2) or blocks (V3).
    pub fn units(&self) -> usize {
        self.units
    }

    /// Bytes per unit.
    pub fn unit_size(&self) -> usize {
        self.unit_size
    }

    /// Offset of unit `i` in the mapping (`i < units`): whole slots per block.
    fn unit_offset(&self, i: usize) -> usize {
        (i / self.per_block) * self.block_size + (i % self.per_block) * self.unit_size
    }

    fn status_word(&self, i: usize) -> &AtomicU32 {
        assert!(i < self.units, "ring unit index out of range");
        let off = match self.layout {
            Layout::Frames { .. } => 0,
            Layout::Blocks { .. } => BLOCK_STATUS_OFF,
        };
        // SAFETY: `i < units`, so the unit (and the word) lies inside the mapping; units
        // start at multiples of 16 from a page-aligned base, so the u32 at offset 0 or 8
        // is aligned. The kernel and this process access the word concurrently, which is
        // why it is only used as an atomic.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(self.unit_offset(i) + off).cast()) }
    }

    /// Unit `i`'s status and bytes, if the kernel has handed it to user space.
    ///
    /// The acquire load pairs with the kernel's write barrier before it publishes the
    /// status, so the frames are complete when seen. The kernel does not write a unit it
    /// has handed over until [`RxRing::release`] gives it back, which needs `&mut self`
    /// and so ends the borrow of the returned slice first.
    pub fn user_unit(&self, i: usize) -> Option<(u32, &[u8])> {
        let status = self.status_word(i).load(Ordering::Acquire);
        if status & TP_STATUS_USER == 0 {
            return None;
        }
        // SAFETY: the unit lies inside the mapping (`status_word` checked `i`); while its
        // status is TP_STATUS_USER the kernel does not write it, and this process writes
        // it only through `user_unit_mut` or `release`, which need `&mut self` and so
        // cannot run while the returned shared borrow lives.
        let bytes = unsafe {
            std::slice::from_raw_parts(self.base.as_ptr().add(self.unit_offset(i)), self.unit_size)
        };
        Some((status, bytes))
    }

    /// Unit `i`'s bytes, writable, if the kernel has handed it to user space (frames are
    /// processed in place).
    pub fn user_unit_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        if self.status_word(i).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
            return None;
        }
        // SAFETY: as in `user_unit`; `&mut self` makes this the only borrow of the
        // mapping, and the kernel does not touch a unit it has handed over.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                self.base.as_ptr().add(self.unit_offset(i)),
                self.unit_size,
            )
        };
        Some(bytes)
    }

    /// Give unit `i` back to the kernel. The release store orders every access to the
    /// unit before the kernel can see it free.
    pub fn release(&mut self, i: usize) {
        self.status_word(i)
            .store(TP_STATUS_KERNEL, Ordering::Release);
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` describe the mapping created in `new`, unmapped only here;
        // no borrow of it can outlive `self`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// Read and reset the ring socket's counters (PACKET_STATISTICS).
pub fn take_stats(fd: impl AsFd) -> io::Result<RingStats> {
    let mut st = TpacketStatsV3::default();
    let mut len = std::mem::size_of::<TpacketStatsV3>() as libc::socklen_t;
    // SAFETY: `st` is a live, writable struct of `len` bytes and `len` is a live
    // socklen_t; the kernel writes at most `len` bytes.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_STATISTICS,
            (&mut st as *mut TpacketStatsV3).cast(),
            &mut len,
        )
    })?;
    Ok(RingStats {
        packets: st.packets,
        drops: st.drops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_geometry_is_refused_before_any_syscall() {
        let (a, _b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        for (block_size, layout) in [
            (1000, Layout::Blocks { retire_ms: 1 }),
            // Frame slots must be multiples of 16, at most a block.
            (4096, Layout::Frames { frame_size: 1000 }),
            (4096, Layout::Frames { frame_size: 8192 }),
        ] {
            let geo = Geometry {
                block_size,
                blocks: 4,
                layout,
            };
            let e = RxRing::new(&a, geo).err().unwrap();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{geo:?}");
        }
        // A socket that is not AF_PACKET refuses the ring itself.
        for layout in [
            Layout::Blocks { retire_ms: 1 },
            Layout::Frames { frame_size: 2048 },
        ] {
            let geo = Geometry {
                block_size: 4096,
                blocks: 4,
                layout,
            };
            assert!(RxRing::new(&a, geo).is_err());
        }
    }
}
