//! A guest's port: one open transport with its receive slots, transmit queue, offload
//! handling and counters. The transport-specific parts are only how descriptors were
//! opened ([`RxMode`]/[`TxMode`]) and what precedes a frame ([`Framing`]).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::buf::{BufId, Frame, Pool};
use crate::metrics::{DropReason, PortStats};
use crate::sys::mmsg::{RecvMeta, RecvRing, SendRing};
use crate::wire::{ethernet, gso, offload, vnet};

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
    /// Receive filter run by vecbox itself (ports without a socket, e.g. tap).
    soft_filter: Option<crate::filter::Program>,
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
            send_ring: SendRing::new(depth, o.dest),
            txq: TxQueue::new(depth + MAX_SEGMENTS),
            gso_scratch: [0; gso::MAX_HEADERS],
            last_tx_error_log: None,
            soft_filter: None,
        }
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
        if self.rx_mode == RxMode::Mmsg {
            self.stats.rx_batch.record(got);
        } else {
            (0..got).for_each(|_| self.stats.rx_batch.record(1));
        }
        for i in 0..got {
            let m = self.meta[i];
            let id = self.slots[i];
            match self.accept(pool, id, m, slot_len) {
                Ok(f) => {
                    self.taken[i] = true;
                    self.stats.rx_packets += 1;
                    self.stats.rx_bytes += u64::from(f.len);
                    out.push(f);
                }
                Err(reason) => self.stats.drop(reason),
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

    fn accept(
        &mut self,
        pool: &mut Pool,
        id: BufId,
        m: RecvMeta,
        slot_len: usize,
    ) -> Result<Frame, DropReason> {
        if m.truncated || m.len >= slot_len {
            return Err(DropReason::Oversize);
        }
        let msg = &pool.buf(id)[..m.len];
        let d = self.framing.decap(msg)?;
        let len = m.len.checked_sub(d.off).ok_or(DropReason::Runt)?;
        if len < ethernet::HEADER_LEN {
            return Err(DropReason::Runt);
        }
        let mut meta = d.vnet;
        let mut len = len;
        if let Some(prog) = &self.soft_filter {
            let frame = &pool.buf(id)[d.off..d.off + len];
            let keep = prog.run(
                frame,
                &crate::filter::Meta::ethernet(frame, crate::filter::interp::PACKET_OUTGOING),
            ) as usize;
            if keep == 0 {
                return Err(DropReason::Filtered);
            }
            if keep < len {
                // Truncated as the kernel's snap length would; offload state no longer fits.
                len = keep.max(ethernet::HEADER_LEN);
                meta = vnet::Repr::default();
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

    /// Queue `f` for transmission (its buffer reference moves here). GSO frames are
    /// split in software when this port cannot take them whole, and pending checksums
    /// are completed when it has no vnet header. Frames that cannot be sent are dropped
    /// and counted on this port.
    pub fn enqueue(&mut self, pool: &mut Pool, f: Frame) {
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
        let framing = &mut self.framing;
        let txq = &mut self.txq;
        let frame = pool.frame(&f);
        let base = f.off as usize;
        let mut pushed = 0usize;
        let mut full = false;
        let res = gso::segment(frame, &f.vnet, mode, &mut self.gso_scratch, |seg| {
            let ok = txq.push(f.buf, base + seg.payload.start, seg.payload.len(), |s| {
                let p = framing.encap(&seg.vnet, &mut s[..]);
                s[p..p + seg.headers.len()].copy_from_slice(seg.headers);
                (p + seg.headers.len(), seg.headers.len())
            });
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
            let offered = self.txq.len().min(self.caps.depth);
            let fd = self.tx_fd.as_ref().unwrap_or(&self.rx_fd).as_fd();
            let r = match self.tx_mode {
                TxMode::Mmsg => self.send_ring.send(fd, self.txq.messages(pool)),
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
                Err(e) => {
                    self.txq.consume(1, pool);
                    self.stats.drop(DropReason::TxError);
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
