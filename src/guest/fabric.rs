//! The [`Output`] a guest gives its function: frames go to the ports' transmit queues.

use crate::buf::{Frame, Pool};
use crate::metrics::DropReason;
use crate::nf::Output;
use crate::transport::Port;
use crate::wire::{gso, vnet};

/// Ports and pool, seen from the function processing a batch from `in_port`.
pub struct Fabric<'a> {
    pub pool: &'a mut Pool,
    pub ports: &'a mut [Port],
    pub in_port: usize,
}

impl Output for Fabric<'_> {
    fn ports(&self) -> usize {
        self.ports.len()
    }

    fn frame(&self, f: &Frame) -> &[u8] {
        self.pool.frame(f)
    }

    fn frame_mut(&mut self, f: &Frame) -> &mut [u8] {
        self.pool.frame_mut(f)
    }

    fn alloc(&mut self, len: usize) -> Option<Frame> {
        if len > self.pool.stride() {
            return None;
        }
        let buf = self.pool.alloc()?;
        Some(Frame {
            buf,
            off: 0,
            len: len as u32,
            vnet: vnet::Repr::default(),
        })
    }

    fn forward(&mut self, port: usize, f: Frame) {
        match self.ports.get_mut(port) {
            Some(p) => p.enqueue(self.pool, f),
            None => self.discard(f, DropReason::NoRoute),
        }
    }

    fn flood(&mut self, from: usize, mut f: Frame) {
        let targets = self
            .ports
            .len()
            .saturating_sub(usize::from(from < self.ports.len()));
        if targets == 0 {
            self.discard(f, DropReason::NoRoute);
            return;
        }
        // One buffer goes to several ports. A pending checksum is completed once, in
        // place, before any port queues it, if some port cannot carry it pending.
        if f.vnet.csum.is_some()
            && !f.vnet.is_gso()
            && self
                .ports
                .iter()
                .enumerate()
                .any(|(i, p)| i != from && !p.caps.vnet)
        {
            if gso::finish_partial(self.pool.frame_mut(&f), &f.vnet).is_err() {
                self.discard(f, DropReason::ChecksumError);
                return;
            }
            f.vnet = vnet::Repr::default();
        }
        let mut left = targets;
        for (i, p) in self.ports.iter_mut().enumerate() {
            if i == from {
                continue;
            }
            left -= 1;
            if left > 0 {
                self.pool.retain(f.buf);
            }
            p.enqueue(self.pool, f);
        }
    }

    fn discard(&mut self, f: Frame, reason: DropReason) {
        if let Some(p) = self.ports.get_mut(self.in_port) {
            p.stats.drop(reason);
        }
        self.pool.release(f.buf);
    }
}
