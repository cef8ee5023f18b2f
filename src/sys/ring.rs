//! TPACKET_V3 memory-mapped receive rings on AF_PACKET sockets (PACKET_RX_RING).
//!
//! The kernel copies each received frame into a block of a ring shared with user space
//! (`tpacket_rcv`, in the softirq of whichever CPU delivers the frame: on a veth the
//! *sender's* CPU) and frees the skb there. A block is handed to user space when it is
//! full or its retire timer fires (`TP_STATUS_USER` in the block header, followed by a
//! wakeup); user space walks its frames and gives it back by writing
//! `TP_STATUS_KERNEL`. No system call and no per-frame kernel copy on the reader's CPU.
//!
//! This module owns the mapping and the block ownership protocol; walking the frames of
//! a block is plain safe code over the byte slice [`RxRing::user_block`] returns.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::cvt;

const PACKET_RX_RING: libc::c_int = 5;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_VERSION: libc::c_int = 10;
const TPACKET_V3: libc::c_int = 2;

/// Block owned by the kernel (being filled or free).
pub const TP_STATUS_KERNEL: u32 = 0;
/// Block handed to user space.
pub const TP_STATUS_USER: u32 = 1;
/// The kernel dropped frames (ring full) since the statistics were last read.
pub const TP_STATUS_LOSING: u32 = 1 << 2;

/// Offset of `hdr.bh1.block_status` in `struct tpacket_block_desc`.
const BLOCK_STATUS_OFF: usize = 8;
/// Size of `struct tpacket_block_desc` (the block header, no private area).
pub const BLOCK_HEADER_LEN: usize = 48;

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

/// `struct tpacket_stats_v3`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TpacketStatsV3 {
    packets: u32,
    drops: u32,
    freeze_q_cnt: u32,
}

/// Shape of a receive ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes per block: a multiple of the page size, large enough for the largest frame
    /// plus its headers (a frame never spans blocks).
    pub block_size: usize,
    /// Number of blocks.
    pub blocks: usize,
    /// Milliseconds after which a partly filled block is handed to user space.
    pub retire_ms: u32,
}

/// Frames the kernel counted on a ring socket since the last call (the counters reset
/// on read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Frames that passed the socket filter (delivered or dropped).
    pub packets: u32,
    /// Frames dropped because no block was free (or the frame could not be copied).
    pub drops: u32,
}

/// A mapped TPACKET_V3 receive ring. Unmapped on drop; the socket it was set up on may
/// be closed independently (the mapping keeps the ring alive).
pub struct RxRing {
    base: NonNull<u8>,
    len: usize,
    block_size: usize,
    blocks: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; access to a block is
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

impl RxRing {
    /// Switch `fd` (an AF_PACKET socket, PACKET_VNET_HDR already set if wanted: the
    /// kernel refuses it once a ring exists) to TPACKET_V3, create the ring and map it.
    pub fn new(fd: impl AsFd, geo: Geometry) -> io::Result<RxRing> {
        let page = 4096;
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
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
        set_opt(fd, PACKET_VERSION, &TPACKET_V3)?;
        // Frames are variable-sized in V3; frame_size/frame_nr only have to be consistent.
        let frame_size = 2048u32;
        let req = TpacketReq3 {
            block_size,
            block_nr: blocks,
            frame_size,
            frame_nr: (block_size / frame_size) * blocks,
            retire_blk_tov: geo.retire_ms,
            ..TpacketReq3::default()
        };
        set_opt(fd, PACKET_RX_RING, &req)?;
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
            block_size: geo.block_size,
            blocks: geo.blocks,
        })
    }

    /// Number of blocks.
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    fn status_word(&self, i: usize) -> &AtomicU32 {
        assert!(i < self.blocks, "block index out of range");
        // SAFETY: `i < blocks`, so the word lies inside the mapping; block starts are
        // page-aligned, so the u32 at offset 8 is aligned. The kernel and this process
        // access the word concurrently, which is why it is only used as an atomic.
        unsafe {
            AtomicU32::from_ptr(
                self.base
                    .as_ptr()
                    .add(i * self.block_size + BLOCK_STATUS_OFF)
                    .cast(),
            )
        }
    }

    /// Block `i`'s status and bytes, if the kernel has handed it to user space.
    ///
    /// The acquire load pairs with the kernel's write barrier before it publishes the
    /// status, so the frames are complete when seen. The kernel does not write a block
    /// it has handed over until [`RxRing::release`] gives it back, which needs `&mut
    /// self` and so ends the borrow of the returned slice first.
    pub fn user_block(&self, i: usize) -> Option<(u32, &[u8])> {
        let status = self.status_word(i).load(Ordering::Acquire);
        if status & TP_STATUS_USER == 0 {
            return None;
        }
        // SAFETY: the block lies inside the mapping (`status_word` checked `i`); while its
        // status is TP_STATUS_USER only this process writes it, and only through
        // `release`, which cannot run while the returned shared borrow lives.
        let bytes = unsafe {
            std::slice::from_raw_parts(self.base.as_ptr().add(i * self.block_size), self.block_size)
        };
        Some((status, bytes))
    }

    /// Give block `i` back to the kernel. The release store orders every read of the
    /// block before the kernel can see it free.
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

/// Read and reset the ring socket's counters (PACKET_STATISTICS, `tpacket_stats_v3`).
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
        let geo = Geometry {
            block_size: 1000,
            blocks: 4,
            retire_ms: 1,
        };
        let e = RxRing::new(&a, geo).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // A socket that is not AF_PACKET refuses the ring itself.
        let geo = Geometry {
            block_size: 4096,
            blocks: 4,
            retire_ms: 1,
        };
        assert!(RxRing::new(&a, geo).is_err());
    }
}
