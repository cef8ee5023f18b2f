//! A guest's port: one open transport with its receive slots, transmit queue, offload
//! handling and counters. The transport-specific parts are only how descriptors were
//! opened ([`RxMode`]/[`TxMode`]) and what precedes a frame ([`Framing`]).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use crate::buf::{BufId, Frame, Pool};
use crate::metrics::{DropReason, PortStats};
use crate::sys::mmsg::{RecvMeta, RecvRing, SendRing};
use crate::wire::{ethernet, gso, offload};

use super::bess::{self, Link};
use super::framing::Framing;
use super::spec::Spec;
use super::txq::TxQueue;

/// Largest number of segments one GSO frame can need (64 KiB at the smallest MSS).
const MAX_SEGMENTS: usize = 128;

/// How a port receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxMode {
    /// `recvmmsg`, `depth` frames per call.
    Mmsg,
    /// `recvmsg`, one frame per call (`vec=0`).
    Single,
    /// `read`, one frame per call (tap descriptors, non-sockets).
    Read,
    /// A TPACKET_V3 memory-mapped ring on an AF_PACKET socket (`ring=1`), up to `depth`
    /// frames per batch.
    Ring,
}

/// How a port transmits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxMode {
    /// `sendmmsg`, up to `depth` frames per call.
    Mmsg,
    /// `sendmsg`, one frame per call (`vec=0`).
    Single,
    /// `writev`, one frame per call (tap descriptors, non-sockets).
    Write,
}

/// What a port can carry, decided when it was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Bytes per receive slot (prefix + largest frame).
    pub rx_slot: usize,
    /// Frames carry a virtio-net header: NEEDS_CSUM frames pass without software checksum.
    pub vnet: bool,
    /// GSO super-frames may leave whole through this port (`gro=1` and a vnet header).
    pub tx_gso: bool,
    /// Largest non-GSO Ethernet frame this port may send (MTU + header + one VLAN tag).
    pub max_tx_frame: usize,
    /// Frames per batch.
    pub depth: usize,
}

/// Result of flushing a transmit queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// Everything queued was handed to the kernel.
    Done,
    /// The kernel took only part; wait for the descriptor to become writable.
    Blocked,
}

/// Descriptors and modes of an opened transport, produced by each transport's `open`.
pub struct Opened {
    pub rx_fd: OwnedFd,
    /// Transmit descriptor when it differs from `rx_fd`.
    pub tx_fd: Option<OwnedFd>,
    pub rx_mode: RxMode,
    pub tx_mode: TxMode,
    pub framing: Framing,
    pub caps: Caps,
    /// Host interface the port is attached to, for messages.
    pub host_if: Option<String>,
    /// Kernel features the transport had to do without.
    pub fallbacks: u64,
    /// Destination for unconnected sockets.
    pub dest: Option<socket2::SockAddr>,
    /// The mapped receive ring when `rx_mode` is [`RxMode::Ring`].
    pub ring: Option<crate::sys::ring::RxRing>,
}

/// One open `vecN` interface of a guest.
pub struct Port {
    pub name: String,
    pub spec: Spec,
    pub host_if: Option<String>,
    pub caps: Caps,
    pub stats: PortStats,
    rx_fd: OwnedFd,
    tx_fd: Option<OwnedFd>,
    rx_mode: RxMode,
    tx_mode: TxMode,
    framing: Framing,
    rx_ring: RecvRing,
    slots: Vec<BufId>,
    taken: Vec<bool>,
    meta: Vec<RecvMeta>,
    send_ring: SendRing,
    txq: TxQueue,
    gso_scratch: [u8; gso::MAX_HEADERS],
    last_tx_error_log: Option<Instant>,
    /// Connection state of transports with a peer that can come and go (bess).
    link: Option<Link>,
    /// The descriptors changed since the event loop last registered them.
    fds_changed: bool,
    /// Segments of a GSO frame leave as UDP_SEGMENT super-datagrams.
    udp_gso: bool,
    /// Frames of the UDP GRO buffer being handled (capacity reserved when GRO is on).
    gro: Vec<Frame>,
    /// Receive filter run by vecbox itself (ports without a socket, e.g. tap).
    soft_filter: Option<crate::filter::Program>,
    /// A new bess connection's filter, also run by vecbox over what the peer queued
    /// before the kernel had it: until a receive first finds the connection empty.
    catch_up: Option<crate::filter::Program>,
    /// The memory-mapped receive ring ([`RxMode::Ring`]).
    ring: Option<ring::RingRx>,
    /// Capture points ([`crate::capture::tap`]); `None` while nobody captures this port.
    pub tap: Option<Box<crate::capture::tap::PortTap>>,
    /// Impairment of frames leaving onto the link and arriving from it ([`impair`]).
    imp_tx: Option<Box<crate::impair::Stage>>,
    imp_rx: Option<Box<crate::impair::Stage>>,
}

impl Port {
    /// Wrap an opened transport.
    pub fn new(name: String, spec: Spec, o: Opened) -> Port {
        let depth = o.caps.depth.max(1);
        let stats = PortStats {
            fallbacks: o.fallbacks,
            ..PortStats::default()
        };
        let mut p = Port {
            name,
            spec,
            host_if: o.host_if,
            caps: o.caps,
            stats,
            rx_fd: o.rx_fd,
            tx_fd: o.tx_fd,
            rx_mode: o.rx_mode,
            tx_mode: o.tx_mode,
            framing: o.framing,
            rx_ring: RecvRing::new(depth),
            slots: Vec::with_capacity(depth),
            taken: vec![false; depth],
            meta: vec![RecvMeta::default(); depth],
            send_ring: SendRing::with_items(depth, depth + MAX_SEGMENTS, o.dest),
            txq: TxQueue::new(depth + MAX_SEGMENTS),
            gso_scratch: [0; gso::MAX_HEADERS],
            last_tx_error_log: None,
            link: None,
            fds_changed: false,
            udp_gso: false,
            gro: Vec::new(),
            soft_filter: None,
            catch_up: None,
            ring: o.ring.map(ring::RingRx::new),
            tap: None,
            imp_tx: None,
            imp_rx: None,
        };
        p.open_impairments();
        p
    }

    /// Descriptor to poll for readability.
    pub fn rx_fd(&self) -> BorrowedFd<'_> {
        self.rx_fd.as_fd()
    }

    /// Descriptor to poll for writability (may be the receive descriptor).
    pub fn tx_fd(&self) -> BorrowedFd<'_> {
        self.tx_fd.as_ref().unwrap_or(&self.rx_fd).as_fd()
    }

    /// `true` if transmit uses its own descriptor.
    pub fn has_separate_tx_fd(&self) -> bool {
        self.tx_fd.is_some()
    }

    /// Frames waiting to be sent.
    pub fn tx_pending(&self) -> usize {
        self.txq.len()
    }

    /// Buffers this port holds at most (receive slots + transmit queue), for pool sizing.
    pub fn buffers_needed(&self) -> usize {
        2 * self.caps.depth + MAX_SEGMENTS
    }

    /// `true` if receive filters run in vecbox's interpreter (the receive descriptor is
    /// not a socket), `false` if they are attached to the socket (SO_ATTACH_FILTER).
    pub fn filters_in_software(&self) -> bool {
        self.rx_mode == RxMode::Read
    }

    /// Install `prog` as this port's receive filter, replacing any previous one: attached
    /// to the receive socket, or run by vecbox for ports without one.
    pub fn set_filter(&mut self, prog: crate::filter::Program) -> io::Result<()> {
        if self.filters_in_software() {
            self.soft_filter = Some(prog);
            Ok(())
        } else if self.link.is_some() {
            self.set_bess_filter(prog)
        } else if matches!(self.spec.kind, super::Kind::Hybrid { .. }) {
            let prog = crate::filter::only_outgoing_then(&prog)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            crate::sys::packet::attach_filter(self.rx_fd.as_fd(), prog.insns())
        } else {
            crate::sys::packet::attach_filter(self.rx_fd.as_fd(), prog.insns())
        }
    }

    /// Give every receive slot back to the pool and drop everything queued.
    pub fn release_all(&mut self, pool: &mut Pool) {
        for id in self.slots.drain(..) {
            pool.release(id);
        }
        let n = self.txq.len();
        self.txq.consume(n, pool);
    }

    fn refill(&mut self, pool: &mut Pool) {
        while self.slots.len() < self.caps.depth {
            match pool.alloc() {
                Some(id) => self.slots.push(id),
                None => break,
            }
        }
    }

    /// Receive one batch (up to `depth` frames) into `out` (cleared first). Frames that
    /// cannot be handled are dropped and counted here; their buffers are reused.
    pub fn recv(&mut self, pool: &mut Pool, out: &mut Vec<Frame>) -> io::Result<usize> {
        out.clear();
        if let Some(link) = self.link.as_mut() {
            if link.is_listening() {
                if let Some(fd) = link.accept(self.rx_fd.as_fd())? {
                    self.connected(fd);
                }
                return Ok(0);
            }
            if !link.is_up() {
                return Ok(0);
            }
        }
        let got = match self.recv_batch(pool, out) {
            Err(e) if self.link.is_some() && bess::is_peer_gone(&e) => {
                self.peer_lost(pool);
                Ok(0)
            }
            other => other,
        };
        // Capture sees the batch here unless an rx stage took it (it shows frames at
        // rx-pre as they enter and rx-post as they leave).
        if !(self.imp_rx.is_some() && self.impair_rx(pool, out))
            && let Some(t) = self.tap.as_deref_mut()
        {
            t.rx(pool, out);
        }
        got
    }

    fn recv_batch(&mut self, pool: &mut Pool, out: &mut Vec<Frame>) -> io::Result<usize> {
        self.refill(pool);
        let n = self.slots.len();
        if n == 0 {
            self.stats.drop(DropReason::NoBuffer);
            return Ok(0);
        }
        let slot_len = self.caps.rx_slot.min(pool.stride());
        let got = match self.rx_mode {
            RxMode::Ring => self.recv_ring(pool, slot_len),
            RxMode::Mmsg => {
                let stride = pool.stride();
                let slots = &self.slots;
                self.rx_ring.recv(
                    self.rx_fd.as_fd(),
                    pool.memory(),
                    n,
                    |i| {
                        let s = slots[i].0 as usize * stride;
                        s..s + slot_len
                    },
                    &mut self.meta,
                )?
            }
            RxMode::Single | RxMode::Read => {
                let mut got = 0;
                while got < n {
                    let buf = &mut pool.buf_mut(self.slots[got])[..slot_len];
                    let m = if self.rx_mode == RxMode::Single {
                        self.rx_ring.recv_one(self.rx_fd.as_fd(), buf)?
                    } else {
                        read_one(self.rx_fd.as_fd(), buf)?
                    };
                    match m {
                        Some(m) => {
                            self.meta[got] = m;
                            got += 1;
                        }
                        None => break,
                    }
                }
                got
            }
        };
        // Fewer frames than asked for: the queue is empty, everything queued before a
        // new connection's filter was attached has been read.
        let drained = got < n;
        if got == 0 {
            self.catch_up = None;
            return Ok(0);
        }
        if self.link.is_some()
            && self.meta[..got].iter().any(|m| m.len == 0)
            && bess::peer_hung_up(self.rx_fd.as_fd())
        {
            // End of the connection (reads return 0): not frames.
            self.peer_lost(pool);
            return Ok(0);
        }
        if matches!(self.rx_mode, RxMode::Mmsg | RxMode::Ring) {
            self.stats.rx_batch.record(got);
        } else {
            (0..got).for_each(|_| self.stats.rx_batch.record(1));
        }
        for i in 0..got {
            let m = self.meta[i];
            let id = self.slots[i];
            if m.truncated || m.len >= slot_len {
                self.stats.drop(DropReason::Oversize);
                continue;
            }
            // A UDP GRO buffer holds several datagrams of `segment` bytes (the last may
            // be shorter); anything else is one datagram.
            let seg = usize::from(m.segment);
            let step = if seg > 0 && seg < m.len { seg } else { m.len };
            if step < m.len {
                self.stats.rx_gro_coalesced += 1;
            }
            let gro = step < m.len;
            self.gro.clear();
            let mut at = 0;
            loop {
                let chunk = step.min(m.len - at);
                match self.accept(pool, id, at, chunk) {
                    Ok(f) => {
                        self.stats.rx_packets += 1;
                        self.stats.rx_bytes += u64::from(f.len);
                        if gro {
                            self.gro.push(f);
                        } else {
                            self.taken[i] = true;
                            out.push(f);
                        }
                    }
                    Err(reason) => self.stats.drop(reason),
                }
                at += chunk;
                if at >= m.len || chunk == 0 {
                    break;
                }
            }
            if gro {
                self.emit_coalesced(pool, i, out);
            }
        }
        // Keep the buffers of dropped frames (and unused slots) for the next batch.
        let mut w = 0;
        for i in 0..n {
            if !self.taken[i] {
                self.slots[w] = self.slots[i];
                w += 1;
            }
            self.taken[i] = false;
        }
        self.slots.truncate(w);
        if drained {
            self.catch_up = None;
        }
        Ok(got)
    }

    /// Hand on the frames of one UDP GRO buffer (slot `i`): runs of consecutive TCP
    /// segments are joined into one GSO frame in a fresh buffer
    /// ([`crate::wire::coalesce`]); the rest go on as they are, referencing the slot.
    fn emit_coalesced(&mut self, pool: &mut Pool, i: usize, out: &mut Vec<Frame>) {
        use crate::wire::coalesce;
        let id = self.slots[i];
        let mut k = 0;
        while k < self.gro.len() {
            let n = (self.gro.len() - k).min(coalesce::MAX_RUN);
            let frames = &self.gro[k..k + n];
            let run = {
                let src = pool.buf(id);
                let mut refs: [&[u8]; coalesce::MAX_RUN] = [&[]; coalesce::MAX_RUN];
                for (r, f) in refs.iter_mut().zip(frames) {
                    *r = &src[f.range()];
                }
                coalesce::run_len(&refs[..n])
            };
            if run >= 2
                && let Some(dst) = pool.alloc()
            {
                let built = pool.pair_mut(id, dst).and_then(|(src, out_buf)| {
                    let mut refs: [&[u8]; coalesce::MAX_RUN] = [&[]; coalesce::MAX_RUN];
                    for (r, f) in refs.iter_mut().zip(&frames[..run]) {
                        *r = &src[f.range()];
                    }
                    coalesce::build(&refs[..run], out_buf)
                });
                match built {
                    Some((len, vnet)) => {
                        self.stats.rx_coalesced += run as u64;
                        out.push(Frame {
                            buf: dst,
                            off: 0,
                            len: len as u32,
                            vnet,
                        });
                        k += run;
                        continue;
                    }
                    None => pool.release(dst),
                }
            }
            if self.taken[i] {
                pool.retain(id);
            }
            self.taken[i] = true;
            out.push(self.gro[k]);
            k += 1;
        }
    }

    /// Decapsulate the datagram at `buf[start..start + dlen]`.
    fn accept(
        &mut self,
        pool: &mut Pool,
        id: BufId,
        start: usize,
        dlen: usize,
    ) -> Result<Frame, DropReason> {
        let msg = &pool.buf(id)[start..start + dlen];
        let mut d = self.framing.decap(msg)?;
        let len = dlen.checked_sub(d.off).ok_or(DropReason::Runt)?;
        d.off += start;
        if len < ethernet::HEADER_LEN {
            return Err(DropReason::Runt);
        }
        let mut meta = d.vnet;
        let mut len = len;
        if let Some(prog) = self.soft_filter.as_ref().or(self.catch_up.as_ref()) {
            let frame = &pool.buf(id)[d.off..d.off + len];
            let fmeta = if self.link.is_some() {
                crate::filter::Meta::unix()
            } else {
                crate::filter::Meta::ethernet(frame, crate::filter::interp::PACKET_OUTGOING)
            };
            let keep = prog.run(frame, &fmeta) as usize;
            if keep == 0 {
                return Err(DropReason::Filtered);
            }
            if keep < len {
                // Truncated as the kernel's snap length would; offload state no longer fits.
                len = keep.max(ethernet::HEADER_LEN);
                meta = crate::wire::vnet::Repr::default();
            }
        }
        if meta.data_valid {
            self.stats.rx_csum_offload_good += 1;
        }
        if meta.is_gso() {
            self.stats.rx_gso_frames += 1;
        }
        let frame = &mut pool.buf_mut(id)[d.off..d.off + len];
        offload::normalize_rx(frame, &mut meta).map_err(|_| DropReason::BadVnetHeader)?;
        Ok(Frame {
            buf: id,
            off: d.off as u32,
            len: len as u32,
            vnet: meta,
        })
    }
}

fn read_one(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<RecvMeta>> {
    match nix::unistd::read(fd, buf) {
        Ok(len) => Ok(Some(RecvMeta {
            len,
            truncated: len >= buf.len(),
            segment: 0,
        })),
        Err(nix::errno::Errno::EAGAIN) => Ok(None),
        Err(nix::errno::Errno::EINTR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub mod impair;
mod link;
pub mod ring;
#[cfg(test)]
mod tests;
mod tx;
