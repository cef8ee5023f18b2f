//! A guest's port: one open transport with its receive slots, transmit queue, offload
//! handling and counters. The transport-specific parts are only how descriptors were
//! opened ([`RxMode`]/[`TxMode`]) and what precedes a frame ([`Framing`]).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::buf::{BufId, Frame, Pool};
use crate::metrics::{DropReason, PortStats};
use crate::sys::mmsg::{Part, RecvMeta, RecvRing, SendRing};
use crate::wire::{ethernet, gso, offload, vnet};

use super::bess::{self, Link};
use super::framing::Framing;
use super::spec::Spec;
use super::txq::TxQueue;

/// Largest number of segments one GSO frame can need (64 KiB at the smallest MSS).
const MAX_SEGMENTS: usize = 128;
/// Most datagrams the kernel cuts one UDP_SEGMENT send into (`UDP_MAX_SEGMENTS`).
const UDP_MAX_SEGMENTS: usize = 64;
/// Most payload bytes of one UDP_SEGMENT send (an IPv6 packet without jumbograms).
const UDP_GSO_MAX_BYTES: usize = 65535 - 8 - 40;

/// How a port receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxMode {
    /// `recvmmsg`, `depth` frames per call.
    Mmsg,
    /// `recvmsg`, one frame per call (`vec=0`).
    Single,
    /// `read`, one frame per call (tap descriptors, non-sockets).
    Read,
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
}

impl Port {
    /// Wrap an opened transport.
    pub fn new(name: String, spec: Spec, o: Opened) -> Port {
        let depth = o.caps.depth.max(1);
        let stats = PortStats {
            fallbacks: o.fallbacks,
            ..PortStats::default()
        };
        Port {
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
        }
    }

    /// UDP tunnel ports: send software-GSO segments as UDP_SEGMENT super-datagrams
    /// and receive UDP_GRO coalesced datagrams, where the kernel has them (probed once;
    /// each missing feature is logged and counted in `fallbacks`).
    pub fn enable_udp_offloads(&mut self) {
        use super::probe::{self, Feature};
        use nix::sys::socket::{setsockopt, sockopt};
        let fd = self.rx_fd.as_fd();
        let vector = self.rx_mode == RxMode::Mmsg && self.tx_mode == TxMode::Mmsg;
        if !vector {
            return;
        }
        // Setting a segment size of 0 changes nothing but fails where UDP_SEGMENT is
        // unknown; the size itself goes with each message.
        self.udp_gso = probe::try_enable(
            Feature::UdpGso,
            "sending UDP tunnel segments one datagram each",
            || setsockopt(&fd, sockopt::UdpGsoSegment, &0).map_err(io::Error::from),
        );
        let gro = probe::try_enable(
            Feature::UdpGro,
            "receiving UDP tunnel datagrams one by one",
            || setsockopt(&fd, sockopt::UdpGroSegment, &true).map_err(io::Error::from),
        );
        if gro {
            self.rx_ring.want_gro_segments();
            // Coalesced datagrams reach 64 KiB.
            self.caps.rx_slot = self.caps.rx_slot.max(super::GSO_FRAME_MAX);
        }
        self.stats.fallbacks += u64::from(!self.udp_gso) + u64::from(!gro);
    }

    /// Attach the connection state of a bess port.
    pub fn with_link(mut self, link: Link) -> Port {
        if link.is_up() {
            self.stats.peer_connects += 1;
        }
        self.link = Some(link);
        self
    }

    /// `true` (once) when the port replaced its descriptors (a bess peer came or went):
    /// the event loop must register [`Port::rx_fd`] again. The old descriptors are
    /// closed, which removes them from any epoll set.
    pub fn take_fds_changed(&mut self) -> bool {
        std::mem::take(&mut self.fds_changed)
    }

    /// `false` while a bess port has no peer.
    pub fn is_up(&self) -> bool {
        self.link.as_ref().is_none_or(Link::is_up)
    }

    /// Periodic work: a bess port without a peer tries to reconnect.
    pub fn maintain(&mut self, now: Instant) {
        if let Some(fd) = self.link.as_mut().and_then(|l| l.retry(now)) {
            self.connected(fd);
        }
    }

    fn connected(&mut self, fd: OwnedFd) {
        if self.spec.common.bpffile.is_some()
            && let Err(e) = super::attach_bpffile(&self.name, &self.spec, fd.as_fd())
        {
            tracing::warn!(port = %self.name, error = %e, "bpffile not attached to the new bess connection");
        }
        self.stats.peer_connects += 1;
        self.rx_fd = fd;
        self.fds_changed = true;
    }

    /// The peer is gone: drop what was queued for it and wait for the next one.
    fn peer_lost(&mut self, pool: &mut Pool) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if !link.is_up() {
            return;
        }
        self.stats.peer_losses += 1;
        match link.down() {
            Ok(fd) => {
                self.rx_fd = fd;
                self.fds_changed = true;
            }
            Err(e) => {
                tracing::error!(port = %self.name, error = %e, "cannot wait for a new bess peer");
            }
        }
        let n = self.txq.len();
        self.txq.consume(n, pool);
        self.stats.drops[DropReason::PeerGone as usize] += n as u64;
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
        match self.recv_batch(pool, out) {
            Err(e) if self.link.is_some() && bess::is_peer_gone(&e) => {
                self.peer_lost(pool);
                Ok(0)
            }
            other => other,
        }
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
        if got == 0 {
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
        if self.rx_mode == RxMode::Mmsg {
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
            let mut at = 0;
            loop {
                let chunk = step.min(m.len - at);
                match self.accept(pool, id, at, chunk) {
                    Ok(f) => {
                        if self.taken[i] {
                            pool.retain(id);
                        }
                        self.taken[i] = true;
                        self.stats.rx_packets += 1;
                        self.stats.rx_bytes += u64::from(f.len);
                        out.push(f);
                    }
                    Err(reason) => self.stats.drop(reason),
                }
                at += chunk;
                if at >= m.len || chunk == 0 {
                    break;
                }
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
        Ok(got)
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

    /// Queue `f` for transmission (its buffer reference moves here). GSO frames are
    /// split in software when this port cannot take them whole, and pending checksums
    /// are completed when it has no vnet header. Frames that cannot be sent are dropped
    /// and counted on this port.
    pub fn enqueue(&mut self, pool: &mut Pool, f: Frame) {
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
        if f.vnet.is_gso() && !self.caps.tx_gso {
            self.enqueue_segments(pool, f);
            return;
        }
        let mut meta = f.vnet;
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
                    self.stats.drops[DropReason::TxError as usize] += group as u64;
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

fn write_one(fd: BorrowedFd<'_>, prefix: &[u8], frame: &[u8]) -> io::Result<bool> {
    let iov = [io::IoSlice::new(prefix), io::IoSlice::new(frame)];
    match nix::sys::uio::writev(fd, &iov) {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::ENOBUFS) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::spec::{Kind, Spec};
    use std::os::unix::net::UnixDatagram;

    /// A port over one end of a datagram socketpair, with the given framing.
    fn port(framing: Framing, vector: bool, gso: bool) -> (Port, UnixDatagram) {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let vnet = framing.has_vnet();
        let mut spec = Spec::new(0, Kind::Fd { fd: 0 });
        spec.common.gro = gso;
        let opened = Opened {
            rx_fd: OwnedFd::from(a),
            tx_fd: None,
            rx_mode: if vector { RxMode::Mmsg } else { RxMode::Single },
            tx_mode: if vector { TxMode::Mmsg } else { TxMode::Single },
            framing,
            caps: Caps {
                rx_slot: super::super::rx_slot(&spec, if vnet { 10 } else { 0 }, gso),
                vnet,
                tx_gso: gso,
                max_tx_frame: super::super::max_tx_frame(&spec),
                depth: 8,
            },
            host_if: None,
            fallbacks: 0,
            dest: None,
        };
        (Port::new("vec0".into(), spec, opened), b)
    }

    fn eth(len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f
    }

    #[test]
    fn bad_frames_are_dropped_by_reason_and_the_rest_pass() {
        for vector in [true, false] {
            let (mut p, peer) = port(Framing::Vnet, vector, false);
            let mut pool = Pool::new(64, p.caps.rx_slot);
            let good = [&[0u8; 10][..], &eth(60)].concat();
            let mut bad_flags = good.clone();
            bad_flags[0] = 0x40;
            let mut gso_no_size = good.clone();
            gso_no_size[1] = 1;
            gso_no_size[0] = 1;
            let runt = [&[0u8; 10][..], &[1u8; 13]].concat();
            let tiny = [0u8; 6];
            let huge = [&[0u8; 10][..], &eth(p.caps.rx_slot)].concat();
            for m in [
                &good[..],
                &bad_flags,
                &gso_no_size,
                &runt,
                &tiny,
                &huge,
                &good,
            ] {
                peer.send(m).unwrap();
            }
            let mut frames = Vec::new();
            let mut got = 0;
            let mut accepted = Vec::new();
            while got < 7 {
                let n = p.recv(&mut pool, &mut frames).unwrap();
                assert!(n > 0, "vector={vector}: stalled after {got}");
                got += n;
                accepted.append(&mut frames);
            }
            assert_eq!(accepted.len(), 2, "vector={vector}");
            for f in &accepted {
                assert_eq!(pool.frame(f), &eth(60)[..]);
                pool.release(f.buf);
            }
            assert_eq!(p.stats.dropped(DropReason::BadVnetHeader), 2);
            assert_eq!(p.stats.dropped(DropReason::Runt), 2);
            assert_eq!(p.stats.dropped(DropReason::Oversize), 1);
            assert_eq!(p.stats.rx_packets, 2);
            p.release_all(&mut pool);
            assert_eq!(pool.available(), pool.capacity(), "no buffer leaked");
        }
    }

    #[test]
    fn transmit_adds_the_vnet_header_and_completes_checksums_without_one() {
        // NEEDS_CSUM frame through a bare port: the checksum is completed in software.
        let (mut p, peer) = port(Framing::Bare, true, false);
        let mut pool = Pool::new(16, 2048);
        let mut pkt = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1, 2)
            .write(&mut pkt, &[7u8; 100])
            .unwrap();
        let want = pkt.clone();
        // Replace the UDP checksum with the pseudo-header sum, as CHECKSUM_PARTIAL does.
        let pseudo = crate::wire::checksum::fold(crate::wire::checksum::pseudo_v4(
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            17,
            108,
        ));
        pkt[40..42].copy_from_slice(&pseudo.to_be_bytes());
        let id = pool.alloc().unwrap();
        pool.buf_mut(id)[..pkt.len()].copy_from_slice(&pkt);
        let meta = vnet::Repr {
            csum: Some(vnet::Csum {
                start: 34,
                offset: 6,
            }),
            ..vnet::Repr::NONE
        };
        p.enqueue(
            &mut pool,
            Frame {
                buf: id,
                off: 0,
                len: pkt.len() as u32,
                vnet: meta,
            },
        );
        assert_eq!(p.flush(&mut pool), Flush::Done);
        let mut buf = [0u8; 2048];
        let n = peer.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &want[..]);
        assert_eq!(p.stats.tx_csum_completed, 1);
        assert_eq!(pool.available(), pool.capacity());

        // The same frame through a vnet port keeps the checksum pending in the header.
        let (mut v, peer) = port(Framing::Vnet, true, false);
        let id = pool.alloc().unwrap();
        pool.buf_mut(id)[..pkt.len()].copy_from_slice(&pkt);
        v.enqueue(
            &mut pool,
            Frame {
                buf: id,
                off: 0,
                len: pkt.len() as u32,
                vnet: meta,
            },
        );
        v.flush(&mut pool);
        let n = peer.recv(&mut buf).unwrap();
        assert_eq!(vnet::Repr::parse_bytes(&buf[..10]).unwrap(), meta);
        assert_eq!(&buf[10..n], &pkt[..]);
    }

    #[test]
    fn gso_frames_are_segmented_for_ports_without_gso() {
        let (mut p, peer) = port(Framing::Bare, true, false);
        let mut pool = Pool::new(16, 70_000);
        let mut pkt = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1, 2, 100, 1000)
            .write(&mut pkt, &vec![9u8; 20_000])
            .unwrap();
        let id = pool.alloc().unwrap();
        pool.buf_mut(id)[..pkt.len()].copy_from_slice(&pkt);
        let mut meta = vnet::Repr {
            gso_type: vnet::GsoType::TcpV4,
            gso_size: 1448,
            data_valid: true,
            ..vnet::Repr::NONE
        };
        offload::normalize_rx(
            pool.frame_mut(&Frame {
                buf: id,
                off: 0,
                len: pkt.len() as u32,
                vnet: meta,
            }),
            &mut meta,
        )
        .unwrap();
        p.enqueue(
            &mut pool,
            Frame {
                buf: id,
                off: 0,
                len: pkt.len() as u32,
                vnet: meta,
            },
        );
        assert_eq!(p.flush(&mut pool), Flush::Done);
        let segs = 20_000usize.div_ceil(1448);
        assert_eq!(p.stats.tx_packets, segs as u64);
        assert_eq!(p.stats.tx_gso_segments, segs as u64);
        let mut payload = 0;
        let mut buf = [0u8; 2048];
        for _ in 0..segs {
            let n = peer.recv(&mut buf).unwrap();
            assert!(n <= 1514);
            let s = etherparse::SlicedPacket::from_ethernet(&buf[..n]).unwrap();
            let Some(etherparse::TransportSlice::Tcp(t)) = s.transport else {
                panic!()
            };
            payload += t.payload().len();
        }
        assert_eq!(payload, 20_000);
        assert_eq!(
            pool.available(),
            pool.capacity(),
            "segment references released"
        );
    }
}
