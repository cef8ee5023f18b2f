//! A port's impairment stages ([`crate::impair::Stage`]): `tx` for frames leaving onto
//! the link (entered in [`Port::enqueue`]), `rx` for frames arriving from it (entered
//! in [`Port::recv`], before the function sees them). Without a stage the packet path
//! pays one branch on an `Option`.
//!
//! A frame entering a stage is copied into the stage's own memory and its pool buffer
//! is freed at once, so delayed frames never pin the guest's 64 KiB buffers. When its
//! departure time comes ([`Port::release_tx`], [`Port::release_rx`], called by the
//! guest loop on its impairment timer) it is copied into a fresh pool buffer and goes on
//! as if it had just arrived: transmit queue and `sendmmsg`, or the function.
//!
//! A capture on the port ([`crate::capture::tap`]) sees a frame at the pre point as it
//! enters a stage (with the stage's packet id and verdict) and at the post point as it
//! leaves; without a capture this costs the branch on `self.tap`.

use crate::buf::{Frame, Pool};
use crate::capture::Point;
use crate::impair::{Change, Direction, ImpairError, Params, PortParams, Stage};
use crate::metrics::DropReason;

use super::Port;

/// Nanoseconds on CLOCK_MONOTONIC, the clock of every impairment stage (and of the
/// guest's absolute timerfd).
pub fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Both stages of a port, taken out of it to carry over a reopen (console `reboot`).
pub struct Stages {
    tx: Option<Box<Stage>>,
    rx: Option<Box<Stage>>,
}

impl Port {
    /// Stages from the spec's `tx_*`/`rx_*` keys (already checked when parsing).
    pub(super) fn open_impairments(&mut self) {
        for dir in Direction::BOTH {
            let p = *self.spec.common.impair.get(dir);
            if p.is_default() {
                continue;
            }
            match Stage::new(p) {
                Ok(s) => *self.stage_slot(dir) = Some(Box::new(s)),
                Err(e) => {
                    tracing::error!(port = %self.name, direction = dir.name(), error = %e, "impairment refused")
                }
            }
        }
    }

    fn stage_slot(&mut self, dir: Direction) -> &mut Option<Box<Stage>> {
        match dir {
            Direction::Tx => &mut self.imp_tx,
            Direction::Rx => &mut self.imp_rx,
        }
    }

    /// The stage of direction `dir`, if one was ever configured.
    pub fn impairment(&self, dir: Direction) -> Option<&Stage> {
        match dir {
            Direction::Tx => self.imp_tx.as_deref(),
            Direction::Rx => self.imp_rx.as_deref(),
        }
    }

    /// `true` if any direction has a stage.
    pub fn has_impairment(&self) -> bool {
        self.imp_tx.is_some() || self.imp_rx.is_some()
    }

    /// Current settings of both directions.
    pub fn impair_params(&self) -> PortParams {
        PortParams {
            tx: self
                .imp_tx
                .as_ref()
                .map(|s| *s.params())
                .unwrap_or_default(),
            rx: self
                .imp_rx
                .as_ref()
                .map(|s| *s.params())
                .unwrap_or_default(),
        }
    }

    /// The settings `changes` (tx, rx) would give, checked; nothing changes.
    pub fn check_impairment(
        &self,
        changes: [Option<&Change>; 2],
    ) -> Result<PortParams, ImpairError> {
        let mut p = self.impair_params();
        for dir in Direction::BOTH {
            if let Some(c) = changes[dir.index()] {
                *p.get_mut(dir) = p.get(dir).apply(c)?;
            }
        }
        Ok(p)
    }

    /// Apply `changes` (tx, rx) at time `now`: both are checked first, so a refused
    /// change changes nothing. Frames in flight are kept (see [`Stage::apply`]).
    pub fn set_impairment(
        &mut self,
        changes: [Option<&Change>; 2],
        now: u64,
    ) -> Result<(), ImpairError> {
        let merged = self.check_impairment(changes)?;
        for dir in Direction::BOTH {
            let Some(c) = changes[dir.index()] else {
                continue;
            };
            match self.stage_slot(dir) {
                Some(s) => s.apply(c, now)?,
                slot @ None => {
                    let p: Params = *merged.get(dir);
                    if !p.is_default() {
                        *slot = Some(Box::new(Stage::new(p)?));
                    }
                }
            }
            if let Some(s) = self.stage_slot(dir) {
                s.trim();
            }
        }
        // `config vecN` and a datapath restart show and keep the current settings.
        self.spec.common.impair = merged;
        Ok(())
    }

    /// Earliest departure time of a held frame, ns (`tx` only if `tx` is wanted).
    pub fn impair_deadline(&self, tx: bool) -> Option<u64> {
        let t = self
            .imp_tx
            .as_ref()
            .filter(|_| tx)
            .and_then(|s| s.next_deadline());
        let r = self.imp_rx.as_ref().and_then(|s| s.next_deadline());
        match (t, r) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Take both stages out (before the port is closed for a reopen).
    pub fn take_impairments(&mut self) -> Stages {
        Stages {
            tx: self.imp_tx.take(),
            rx: self.imp_rx.take(),
        }
    }

    /// Put stages taken from the previous incarnation of this port back, with their
    /// frames in flight and counters.
    pub fn restore_impairments(&mut self, s: Stages) {
        if s.tx.is_some() {
            self.imp_tx = s.tx;
        }
        if s.rx.is_some() {
            self.imp_rx = s.rx;
        }
        self.spec.common.impair = self.impair_params();
    }

    /// A frame for the `tx` stage: `true` if the stage took it (its buffer is freed).
    #[inline]
    pub(super) fn impair_tx(&mut self, pool: &mut Pool, f: &Frame) -> bool {
        let Some(st) = self.imp_tx.as_deref_mut() else {
            return false;
        };
        if st.is_idle() {
            return false;
        }
        let (now, max) = (now_ns(), self.caps.max_tx_frame);
        match self.tap.as_deref_mut() {
            None => st.offer(now, pool.frame(f), &f.vnet, max),
            Some(t) => t.enter(Point::TxPre, st, now, pool.frame(f), &f.vnet, max),
        };
        log_full(st, &self.name, Direction::Tx);
        pool.release(f.buf);
        true
    }

    /// Received frames in `out` go into the `rx` stage; what is due comes back out.
    /// `false` if the stage is idle (the frames stay in `out`).
    pub(super) fn impair_rx(&mut self, pool: &mut Pool, out: &mut Vec<Frame>) -> bool {
        let Some(st) = self.imp_rx.as_deref_mut() else {
            return false;
        };
        if st.is_idle() {
            return false;
        }
        let now = now_ns();
        for f in out.drain(..) {
            match self.tap.as_deref_mut() {
                None => st.offer(now, pool.frame(&f), &f.vnet, usize::MAX),
                Some(t) => t.enter(Point::RxPre, st, now, pool.frame(&f), &f.vnet, usize::MAX),
            };
            pool.release(f.buf);
        }
        log_full(st, &self.name, Direction::Rx);
        self.release_rx(pool, now, out);
        true
    }

    /// Frames of the `tx` stage due at `now` go to the transmit queue, as many as it
    /// has room for (the rest wait for the next flush). Returns how many.
    pub fn release_tx(&mut self, pool: &mut Pool, now: u64) -> usize {
        let Some(mut st) = self.imp_tx.take() else {
            return 0;
        };
        let room = self.caps.depth.saturating_sub(self.txq.len());
        let n = st.release(now, room, |bytes, vnet, id| {
            match copy_out(pool, bytes, vnet) {
                Ok(f) => {
                    if let Some(t) = self.tap.as_deref_mut() {
                        t.leave(Point::TxPost, bytes, id);
                    }
                    self.enqueue_now(pool, f);
                    true
                }
                Err(Some(reason)) => {
                    self.stats.drop(reason);
                    true
                }
                Err(None) => false,
            }
        });
        st.trim();
        self.imp_tx = Some(st);
        n
    }

    /// Frames of the `rx` stage due at `now`, up to one batch, into `out` (cleared
    /// first), for the function. Returns how many.
    pub fn release_rx(&mut self, pool: &mut Pool, now: u64, out: &mut Vec<Frame>) -> usize {
        out.clear();
        let Some(st) = self.imp_rx.as_deref_mut() else {
            return 0;
        };
        let (stats, tap) = (&mut self.stats, &mut self.tap);
        let n = st.release(now, self.caps.depth, |bytes, vnet, id| {
            match copy_out(pool, bytes, vnet) {
                Ok(f) => {
                    if let Some(t) = tap.as_deref_mut() {
                        t.leave(Point::RxPost, bytes, id);
                    }
                    out.push(f);
                    true
                }
                Err(Some(reason)) => {
                    stats.drop(reason);
                    true
                }
                Err(None) => false,
            }
        });
        st.trim();
        n
    }
}

/// A frame held by a stage, copied into a fresh pool buffer: `Err(None)` when the pool
/// has no buffer free (the frame waits), `Err(Some(reason))` when it can never fit.
fn copy_out(
    pool: &mut Pool,
    bytes: &[u8],
    vnet: crate::wire::vnet::Repr,
) -> Result<Frame, Option<DropReason>> {
    if bytes.len() > pool.stride() {
        return Err(Some(DropReason::Oversize));
    }
    let buf = pool.alloc().ok_or(None)?;
    pool.buf_mut(buf)[..bytes.len()].copy_from_slice(bytes);
    Ok(Frame {
        buf,
        off: 0,
        len: bytes.len() as u32,
        vnet,
    })
}

fn log_full(st: &mut Stage, port: &str, dir: Direction) {
    if let Some(bytes) = st.take_full_event() {
        tracing::warn!(
            port,
            direction = dir.name(),
            bytes,
            "impairment: frames in flight reached the stage's memory limit; frames are dropped (buffer_full) until some leave"
        );
    }
}
