//! The transmit side of a port: queueing with software segmentation and checksum
//! completion, UDP segmentation groups, and flushing with `sendmmsg`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use super::super::bess;
use super::{Flush, Port, TxMode};
use crate::buf::{Frame, Pool};
use crate::metrics::DropReason;
use crate::sys::mmsg::Part;
use crate::wire::{gso, vnet};

/// Most datagrams the kernel cuts one UDP_SEGMENT send into (`UDP_MAX_SEGMENTS`).
const UDP_MAX_SEGMENTS: usize = 64;
/// Most payload bytes of one UDP_SEGMENT send (an IPv6 packet without jumbograms).
const UDP_GSO_MAX_BYTES: usize = 65535 - 8 - 40;

impl Port {
    /// Queue `f` for transmission (its buffer reference moves here): through the
    /// port's `tx` impairment stage if it has one, else straight to the transmit queue
    /// ([`Port::enqueue_now`]).
    #[inline]
    pub fn enqueue(&mut self, pool: &mut Pool, f: Frame) {
        if self.imp_tx.is_some() && self.impair_tx(pool, &f) {
            return;
        }
        if let Some(t) = self.tap.as_deref_mut() {
            t.tx(pool.frame(&f));
        }
        self.enqueue_now(pool, f);
    }

    /// Queue `f` on the transmit queue. GSO frames are split in software when this
    /// port cannot take them whole, and pending checksums are completed when it has no
    /// vnet header. Frames that cannot be sent are dropped and counted on this port.
    pub(super) fn enqueue_now(&mut self, pool: &mut Pool, f: Frame) {
        if !self.is_up() {
            self.stats.drop(DropReason::PeerGone);
            pool.release(f.buf);
            return;
        }
        if self.txq.len() >= self.caps.depth {
            self.flush(pool);
            if self.txq.len() >= self.caps.depth {
                self.stats.drop(DropReason::TxQueueFull);
                pool.release(f.buf);
                return;
            }
        }
        let mut meta = f.vnet;
        if f.vnet.is_gso() && !(self.caps.tx_gso && self.fits_whole(pool, &f, &mut meta)) {
            self.enqueue_segments(pool, f);
            return;
        }
        if !f.vnet.is_gso() {
            if f.len as usize > self.caps.max_tx_frame {
                self.stats.drop(DropReason::Oversize);
                pool.release(f.buf);
                return;
            }
            if meta.csum.is_some() && !self.caps.vnet {
                if gso::finish_partial(pool.frame_mut(&f), &meta).is_err() {
                    self.stats.drop(DropReason::ChecksumError);
                    pool.release(f.buf);
                    return;
                }
                self.stats.tx_csum_completed += 1;
                meta = vnet::Repr::default();
            }
        } else {
            self.stats.tx_gso_frames += 1;
        }
        let framing = &mut self.framing;
        let pushed = self.txq.push(f.buf, f.off as usize, f.len as usize, |s| {
            (framing.encap(&meta, &mut s[..]), 0)
        });
        if !pushed {
            self.stats.drop(DropReason::TxQueueFull);
            pool.release(f.buf);
        }
    }

    /// Whether GSO frame `f` may leave whole: its segments must fit this port's MTU (the
    /// kernel cuts at `gso_size` without looking at the egress MTU). A TCP frame whose
    /// segments are too large has its `gso_size` lowered in `meta` (TCP segments can be
    /// cut anywhere); a UDP one cannot (datagram boundaries do not move).
    fn fits_whole(&self, pool: &Pool, f: &Frame, meta: &mut vnet::Repr) -> bool {
        let Ok(plan) = gso::Plan::new(pool.frame(f), meta) else {
            // The kernel validates what it is handed; vecbox's segmenter would fail too.
            return true;
        };
        let hdr = plan.header_len();
        if hdr + usize::from(meta.gso_size) <= self.caps.max_tx_frame {
            return true;
        }
        let tcp = matches!(meta.gso_type, vnet::GsoType::TcpV4 | vnet::GsoType::TcpV6);
        match self.caps.max_tx_frame.checked_sub(hdr) {
            Some(room) if tcp && room >= 64 => {
                meta.gso_size = room as u16;
                true
            }
            _ => false,
        }
    }

    fn enqueue_segments(&mut self, pool: &mut Pool, f: Frame) {
        // `enqueue` flushed down to fewer than `depth` entries, so MAX_SEGMENTS fit.
        let mode = if self.caps.vnet {
            gso::CsumMode::Partial
        } else {
            gso::CsumMode::Full
        };
        let frame = pool.frame(&f);
        // Segments must fit this port's MTU (a tunnel's is often smaller than the
        // sender's): TCP is re-segmented at a smaller size; UDP datagram boundaries
        // cannot move, so oversized UDP segments are dropped.
        let mut meta = f.vnet;
        if let Ok(plan) = gso::Plan::new(frame, &meta) {
            let hdr = plan.header_len();
            if hdr + usize::from(meta.gso_size) > self.caps.max_tx_frame {
                let tcp = matches!(meta.gso_type, vnet::GsoType::TcpV4 | vnet::GsoType::TcpV6);
                match self.caps.max_tx_frame.checked_sub(hdr) {
                    Some(room) if tcp && room >= 64 => meta.gso_size = room as u16,
                    _ => {
                        self.stats.drop(DropReason::Oversize);
                        pool.release(f.buf);
                        return;
                    }
                }
            }
        }
        let framing = &mut self.framing;
        let txq = &mut self.txq;
        let base = f.off as usize;
        let mut pushed = 0usize;
        let mut full = false;
        let prefix_len = framing.tx_header_len();
        // UDP segmentation groups: (datagram size, members, bytes, closed).
        let udp_gso = self.udp_gso;
        let mut group: Option<(usize, usize, usize, bool)> = None;
        let mut groups = 0u64;
        let res = gso::segment(frame, &meta, mode, &mut self.gso_scratch, |seg| {
            let dlen = prefix_len + seg.headers.len() + seg.payload.len();
            let part = match group.as_mut() {
                _ if !udp_gso => Part::Single,
                Some((size, count, bytes, closed))
                    if !*closed
                        && *count < UDP_MAX_SEGMENTS
                        && *bytes + dlen <= UDP_GSO_MAX_BYTES
                        && dlen <= *size =>
                {
                    *count += 1;
                    *bytes += dlen;
                    *closed = dlen < *size;
                    if *count == 2 {
                        groups += 1;
                    }
                    Part::Cont
                }
                _ => {
                    group = Some((dlen, 1, dlen, false));
                    Part::Head {
                        gso_size: dlen as u16,
                    }
                }
            };
            let ok = txq.push_part(
                f.buf,
                base + seg.payload.start,
                seg.payload.len(),
                part,
                |s| {
                    let p = framing.encap(&seg.vnet, &mut s[..]);
                    s[p..p + seg.headers.len()].copy_from_slice(seg.headers);
                    (p + seg.headers.len(), seg.headers.len())
                },
            );
            if ok {
                pushed += 1;
            } else {
                full = true;
            }
            ok
        });
        // One reference came with `f`; each queued segment holds one.
        match pushed {
            0 => pool.release(f.buf),
            n => {
                for _ in 1..n {
                    pool.retain(f.buf);
                }
            }
        }
        match res {
            Ok(_) if !full => {
                self.stats.tx_udp_gso_sends += groups;
                self.stats.tx_gso_segmented += 1;
                self.stats.tx_gso_segments += pushed as u64;
            }
            Ok(_) => self.stats.drop(DropReason::TxQueueFull),
            Err(e) => {
                tracing::debug!(port = %self.name, error = %e, "cannot segment GSO frame");
                self.stats.drop(if pushed == 0 {
                    DropReason::GsoUnsupported
                } else {
                    DropReason::BadVnetHeader
                });
            }
        }
    }

    /// Hand queued frames to the kernel, `depth` per call, until the queue is empty or
    /// the kernel pushes back. Frames the kernel refuses with a hard error are dropped
    /// one at a time and counted (`tx_error`); the rest still go out.
    pub fn flush(&mut self, pool: &mut Pool) -> Flush {
        while !self.txq.is_empty() {
            let mut offered = self.txq.len().min(self.caps.depth);
            let fd = self.tx_fd.as_ref().unwrap_or(&self.rx_fd).as_fd();
            let r = match self.tx_mode {
                TxMode::Mmsg => self
                    .send_ring
                    .send_parts(fd, self.txq.parts(pool))
                    .map(|s| {
                        offered = s.offered;
                        s.items
                    }),
                TxMode::Single | TxMode::Write => {
                    let mut sent = 0;
                    let mut res = Ok(0);
                    for (prefix, frame) in self.txq.messages(pool).take(offered) {
                        let one = if self.tx_mode == TxMode::Single {
                            self.send_ring.send_one(fd, prefix, frame)
                        } else {
                            write_one(fd, prefix, frame)
                        };
                        match one {
                            Ok(true) => sent += 1,
                            Ok(false) => break,
                            Err(e) if sent == 0 => {
                                res = Err(e);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    res.map(|_| sent)
                }
            };
            match r {
                Ok(0) => {
                    self.stats.tx_restart_queue += 1;
                    return Flush::Blocked;
                }
                Ok(n) => {
                    let (p, b) = self.txq.consume(n, pool);
                    self.stats.tx_packets += p;
                    self.stats.tx_bytes += b;
                    if self.tx_mode == TxMode::Mmsg {
                        self.stats.tx_batch.record(n);
                    } else {
                        (0..n).for_each(|_| self.stats.tx_batch.record(1));
                    }
                    if n < offered {
                        self.stats.tx_restart_queue += 1;
                        return Flush::Blocked;
                    }
                }
                Err(e) if self.link.is_some() && bess::is_peer_gone(&e) => {
                    self.peer_lost(pool);
                    return Flush::Done;
                }
                Err(e) => {
                    let group = self.txq.head_group_len();
                    if group > 1 && self.udp_gso {
                        // The kernel refused UDP segmentation on this path: send
                        // segments one by one from now on.
                        self.udp_gso = false;
                        self.stats.fallbacks += 1;
                        tracing::warn!(port = %self.name, error = %e, "UDP segmentation offload refused; sending segments one by one");
                    }
                    self.txq.consume(group, pool);
                    let reason = if link_down(&e) {
                        DropReason::LinkDown
                    } else {
                        DropReason::TxError
                    };
                    self.stats.drops[reason as usize] += group as u64;
                    self.log_tx_error(&e);
                }
            }
        }
        Flush::Done
    }

    fn log_tx_error(&mut self, e: &io::Error) {
        let now = Instant::now();
        if self
            .last_tx_error_log
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(1))
        {
            self.last_tx_error_log = Some(now);
            tracing::warn!(port = %self.name, error = %e, "transmit failed; frame dropped");
        }
    }
}

/// Errors that mean "the link is down", not "this frame is bad": tap writes before the
/// interface is up fail with EIO, AF_PACKET sends on a down interface with ENETDOWN or
/// ENXIO, a connected UDP tunnel whose peer answered with port unreachable with
/// ECONNREFUSED.
fn link_down(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::ENETDOWN | libc::ENXIO | libc::ECONNREFUSED)
    )
}

fn write_one(fd: BorrowedFd<'_>, prefix: &[u8], frame: &[u8]) -> io::Result<bool> {
    let iov = [io::IoSlice::new(prefix), io::IoSlice::new(frame)];
    match nix::sys::uio::writev(fd, &iov) {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::ENOBUFS) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
