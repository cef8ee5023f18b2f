//! Ports whose descriptors change at run time: bess peers coming and going, and the
//! UDP offloads of L2TPv3-over-UDP ports.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use super::super::bess::Link;
use super::{Port, RxMode, TxMode};
use crate::buf::Pool;
use crate::metrics::DropReason;

impl Port {
    /// UDP tunnel ports: send software-GSO segments as UDP_SEGMENT super-datagrams
    /// and receive UDP_GRO coalesced datagrams, where the kernel has them (probed once;
    /// each missing feature is logged and counted in `fallbacks`).
    pub fn enable_udp_offloads(&mut self) {
        use crate::transport::probe::{self, Feature};
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
            self.gro.reserve(crate::wire::coalesce::MAX_RUN);
            self.rx_ring.want_gro_segments();
            // Coalesced datagrams reach 64 KiB.
            self.caps.rx_slot = self.caps.rx_slot.max(crate::transport::GSO_FRAME_MAX);
        }
        self.stats.fallbacks += u64::from(!self.udp_gso) + u64::from(!gro);
    }

    /// Attach the connection state of a bess port.
    pub fn with_link(mut self, link: Link) -> Port {
        if link.is_up() {
            self.stats.peer_connects += 1;
            self.catch_up = link.filter().cloned();
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
        self.sync_ring_stats();
        if let Some(fd) = self.link.as_mut().and_then(|l| l.retry(now)) {
            self.connected(fd);
        }
    }

    /// A new filter for a bess port: on the connection if there is one, and on every
    /// later one.
    pub(super) fn set_bess_filter(&mut self, prog: crate::filter::Program) -> io::Result<()> {
        let Some(link) = self.link.as_mut() else {
            return Ok(());
        };
        if link.is_up() {
            crate::sys::packet::attach_filter(self.rx_fd.as_fd(), prog.insns())?;
        }
        for f in [&mut self.catch_up, &mut self.soft_filter] {
            if f.is_some() {
                *f = Some(prog.clone());
            }
        }
        link.set_filter(prog);
        Ok(())
    }

    /// A bess peer connected on `fd`. The filter goes on the connection now, but the
    /// peer may have sent before that: vecbox also runs it over what it reads until it
    /// has once read the connection dry (see `catch_up`).
    pub(super) fn connected(&mut self, fd: OwnedFd) {
        let prog = self.link.as_ref().and_then(Link::filter).cloned();
        self.soft_filter = None;
        if let Some(p) = &prog
            && let Err(e) = crate::sys::packet::attach_filter(fd.as_fd(), p.insns())
        {
            tracing::warn!(port = %self.name, error = %e,
                "filter not attached to the new bess connection; vecbox runs it itself");
            self.soft_filter = Some(p.clone());
        }
        self.catch_up = prog;
        self.stats.peer_connects += 1;
        self.rx_fd = fd;
        self.fds_changed = true;
    }

    /// The peer is gone: drop what was queued for it and wait for the next one.
    pub(super) fn peer_lost(&mut self, pool: &mut Pool) {
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
}
