//! The guest's event loop: one epoll set holding every port's descriptors, the control
//! socket, a signalfd and a timerfd. A readable port is drained in batches of `depth`
//! (up to [`BUDGET`] batches before the others get a turn); each batch goes through the
//! function and then every port with queued frames is flushed, so a received batch
//! leaves as one `sendmmsg` per output port. Console requests are served between
//! batches, at most [`crate::console::server::BATCH`] per wake-up, so the data path
//! keeps running while the console is busy. While the console has the guest stopped,
//! the ports are left out of the epoll set.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use super::{Guest, GuestError, fabric};
use crate::buf::Frame;
use crate::metrics::collect::GuestCollector;
use crate::transport::Flush;

/// Batches taken from one port before the loop looks at the others again.
pub const BUDGET: usize = 8;
/// Period of the function tick.
pub const TICK: Duration = Duration::from_millis(250);
/// Counters are published at most this often while frames flow, and on every tick.
pub const PUBLISH: Duration = Duration::from_millis(5);

const TOKEN_SIGNAL: u64 = u64::MAX;
const TOKEN_TIMER: u64 = u64::MAX - 1;
const TOKEN_CONSOLE: u64 = u64::MAX - 2;
const TOKEN_IMPAIR: u64 = u64::MAX - 3;

fn setup(what: &'static str) -> impl FnOnce(nix::errno::Errno) -> GuestError {
    move |e| GuestError::Setup(what, e.into())
}

impl Guest {
    /// Run until SIGINT, SIGTERM or the console's `halt`.
    pub fn run(&mut self) -> Result<(), GuestError> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGINT);
        mask.add(Signal::SIGTERM);
        mask.thread_block().map_err(setup("blocking signals"))?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(setup("signalfd"))?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(setup("timerfd"))?;
        timer
            .set(
                Expiration::Interval(TICK.into()),
                TimerSetTimeFlags::empty(),
            )
            .map_err(setup("timerfd"))?;
        // The impairment timer: absolute deadlines on CLOCK_MONOTONIC, with the thread's
        // timer slack at 1 ns (the default 50 µs would add to every delay).
        let imp_timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(setup("timerfd"))?;
        if let Err(e) = nix::sys::prctl::set_timerslack(1) {
            tracing::warn!(error = %e, "cannot lower the timer slack; impairment delays may run up to 50 µs late");
        }
        if let Some(l) = self.metrics_listener.take() {
            let c = Arc::new(GuestCollector::new());
            c.add("", &self.args.umid, self.run_dir.metrics());
            crate::metrics::http::spawn(l, c)?;
        }

        let mut epoll = self.build_epoll(sigfd.as_fd(), timer.as_fd(), imp_timer.as_fd())?;
        let mut st = LoopState::new(self);
        self.publish(true);
        eprintln!("{}", self.ready_line());
        let mut events = [EpollEvent::empty(); 64];
        let mut last_publish = Instant::now();
        // `busy_poll=`: after frames, poll without sleeping until this window has passed
        // with none (a waking CPU costs more than the frame; docs/guest.md).
        let poll_window = Duration::from_micros(self.args.busy_poll_us.into());
        let mut last_rx: Option<Instant> = None;
        loop {
            let timeout = match last_rx {
                Some(t) if t.elapsed() < poll_window => EpollTimeout::ZERO,
                _ => EpollTimeout::NONE,
            };
            let n = match epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(GuestError::Setup("epoll_wait", e.into())),
            };
            let mut stop = false;
            let mut console = false;
            for ev in &events[..n] {
                match ev.data() {
                    TOKEN_SIGNAL => {
                        while let Ok(Some(_)) = sigfd.read_signal() {}
                        stop = true;
                    }
                    TOKEN_TIMER => {
                        let _ = timer.wait();
                        let now = Instant::now();
                        self.nf.tick(now);
                        self.ports.iter_mut().for_each(|p| p.maintain(now));
                        self.run_timer(now, &mut st);
                        self.capture_tick();
                        if !self.stopped {
                            self.rearm_ports(&epoll, &mut st);
                        }
                        self.flush_log(false);
                        self.publish(true);
                        last_publish = Instant::now();
                    }
                    TOKEN_CONSOLE => console = true,
                    TOKEN_IMPAIR => {
                        let _ = imp_timer.wait();
                        st.armed = None;
                    }
                    t => {
                        let (i, is_tx) = split_token(t);
                        if i >= st.readable.len() {
                            continue;
                        }
                        if is_tx || ev.events().contains(EpollFlags::EPOLLOUT) {
                            st.want_flush[i] = true;
                        }
                        if !is_tx
                            && ev.events().intersects(
                                EpollFlags::EPOLLIN | EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP,
                            )
                        {
                            st.readable[i] = true;
                        }
                    }
                }
            }
            if console {
                let a = self.serve_console();
                stop |= a.halt;
                if a.rebuild {
                    epoll = self.build_epoll(sigfd.as_fd(), timer.as_fd(), imp_timer.as_fd())?;
                    st = LoopState::new(self);
                    self.publish(true);
                }
            }
            if !self.stopped {
                for i in 0..self.ports.len() {
                    if std::mem::take(&mut st.readable[i]) {
                        if !poll_window.is_zero() {
                            last_rx = Some(Instant::now());
                        }
                        self.drain(i, &mut st);
                        if st.paused[i] {
                            // Persistent receive errors: stop polling until the next tick.
                            let _ = epoll.delete(self.ports[i].rx_fd());
                        }
                    }
                }
                self.impair_pass(&mut st);
                self.relink(&epoll, &st);
                self.flush_all(&epoll, &mut st);
            }
            self.arm_impair(&imp_timer, &mut st);
            let now = Instant::now();
            if now.duration_since(last_publish) >= PUBLISH {
                self.publish(false);
                last_publish = now;
            }
            if stop {
                break;
            }
        }
        for p in &mut self.ports {
            p.flush(&mut self.pool);
            p.sync_ring_stats();
        }
        self.capture_close_all();
        self.flush_log(true);
        self.publish(true);
        Ok(())
    }

    /// A fresh epoll set: signals, timer, console, and the ports unless stopped.
    fn build_epoll(
        &self,
        sigfd: BorrowedFd<'_>,
        timer: BorrowedFd<'_>,
        imp_timer: BorrowedFd<'_>,
    ) -> Result<Epoll, GuestError> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(setup("epoll"))?;
        let add = |fd: BorrowedFd<'_>, token: u64| {
            epoll
                .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
                .map_err(setup("epoll_ctl"))
        };
        add(sigfd, TOKEN_SIGNAL)?;
        add(timer, TOKEN_TIMER)?;
        add(imp_timer, TOKEN_IMPAIR)?;
        add(self.console.fd(), TOKEN_CONSOLE)?;
        if !self.stopped {
            for (i, p) in self.ports.iter().enumerate() {
                add(p.rx_fd(), rx_token(i))?;
            }
        }
        Ok(epoll)
    }

    /// Let the function send what its timers need (retries, expiries).
    fn run_timer(&mut self, now: Instant, st: &mut LoopState) {
        let mut fab = fabric::Fabric {
            pool: &mut self.pool,
            ports: &mut self.ports,
            in_port: usize::MAX,
        };
        self.nf.timer(now, &mut fab);
        for (p, port) in self.ports.iter().enumerate() {
            if port.tx_pending() > 0 {
                st.want_flush[p] = true;
            }
        }
    }

    /// Receive and process up to [`BUDGET`] batches from port `i`.
    fn drain(&mut self, i: usize, st: &mut LoopState) {
        for _ in 0..BUDGET {
            let got = match self.ports[i].recv(&mut self.pool, &mut st.frames) {
                Ok(n) => n,
                Err(e) => {
                    st.rx_errors[i] += 1;
                    if st.rx_errors[i] == 1 || st.rx_errors[i].is_power_of_two() {
                        tracing::warn!(port = %self.ports[i].name, error = %e, count = st.rx_errors[i], "receive failed");
                    }
                    st.paused[i] = st.rx_errors[i] >= 8;
                    return;
                }
            };
            st.rx_errors[i] = 0;
            if st.frames.is_empty() && got == 0 {
                return;
            }
            let mut fab = fabric::Fabric {
                pool: &mut self.pool,
                ports: &mut self.ports,
                in_port: i,
            };
            self.nf.process(i, &st.frames, &mut fab);
            for p in 0..self.ports.len() {
                if self.ports[p].tx_pending() > 0 {
                    st.want_flush[p] = true;
                }
            }
            if got < self.ports[i].caps.depth {
                return;
            }
        }
        // Budget used up with full batches: more is waiting; epoll (level-triggered)
        // reports the port again on the next wait.
    }

    /// Hand on what the ports' impairment stages hold and is due: `tx` frames to the
    /// transmit queues (not of ports the kernel pushes back on), `rx` frames to the
    /// function, a batch at a time.
    fn impair_pass(&mut self, st: &mut LoopState) {
        if !self
            .ports
            .iter()
            .any(crate::transport::Port::has_impairment)
        {
            return;
        }
        let now = crate::transport::port::impair::now_ns();
        for i in 0..self.ports.len() {
            // A transmit queue's worth at a time, flushed in between.
            for _ in 0..BUDGET {
                if st.blocked[i] || self.ports[i].release_tx(&mut self.pool, now) == 0 {
                    break;
                }
                st.want_flush[i] = true;
                if self.ports[i].flush(&mut self.pool) == Flush::Blocked {
                    break;
                }
            }
            for _ in 0..BUDGET {
                if self.ports[i].release_rx(&mut self.pool, now, &mut st.frames) == 0 {
                    break;
                }
                let mut fab = fabric::Fabric {
                    pool: &mut self.pool,
                    ports: &mut self.ports,
                    in_port: i,
                };
                self.nf.process(i, &st.frames, &mut fab);
                for (p, port) in self.ports.iter().enumerate() {
                    if port.tx_pending() > 0 {
                        st.want_flush[p] = true;
                    }
                }
            }
        }
    }

    /// Arm the impairment timer for the earliest departure (absolute time), or disarm
    /// it; ports the kernel pushes back on wait for writability instead. A timer armed
    /// for an earlier time is left alone: when it fires the loop re-arms.
    fn arm_impair(&self, timer: &TimerFd, st: &mut LoopState) {
        let next = if self.stopped {
            None
        } else {
            self.ports
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.impair_deadline(!st.blocked[i]))
                .min()
        };
        // An armed timer that fires early costs one spurious wake-up; re-arming on
        // every pass would cost a system call each time the next departure moves on.
        if next == st.armed || matches!((next, st.armed), (Some(n), Some(a)) if a < n) {
            return;
        }
        let r = match next {
            Some(t) => timer.set(
                Expiration::OneShot(nix::sys::time::TimeSpec::from(Duration::from_nanos(t))),
                TimerSetTimeFlags::TFD_TIMER_ABSTIME,
            ),
            None => timer.unset(),
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "cannot arm the impairment timer");
        }
        st.armed = next;
    }

    fn flush_all(&mut self, epoll: &Epoll, st: &mut LoopState) {
        for i in 0..self.ports.len() {
            if !std::mem::take(&mut st.want_flush[i]) && !st.blocked[i] {
                continue;
            }
            let blocked = self.ports[i].flush(&mut self.pool) == Flush::Blocked;
            if blocked != st.blocked[i] {
                st.blocked[i] = blocked;
                self.set_tx_interest(epoll, i, blocked);
            }
        }
    }

    /// Watch port `i`'s transmit descriptor for writability while it is blocked.
    fn set_tx_interest(&self, epoll: &Epoll, i: usize, on: bool) {
        let p = &self.ports[i];
        let r = if p.has_separate_tx_fd() {
            if on {
                epoll.add(
                    p.tx_fd(),
                    EpollEvent::new(EpollFlags::EPOLLOUT, tx_token(i)),
                )
            } else {
                epoll.delete(p.tx_fd())
            }
        } else {
            let mut flags = EpollFlags::EPOLLIN;
            if on {
                flags |= EpollFlags::EPOLLOUT;
            }
            epoll.modify(p.rx_fd(), &mut EpollEvent::new(flags, rx_token(i)))
        };
        if let Err(e) = r {
            tracing::warn!(port = %p.name, error = %e, "cannot change transmit wait");
        }
    }

    /// Register the new descriptor of ports whose peer came or went (bess). The old
    /// descriptor was closed, which took it out of the epoll set.
    fn relink(&mut self, epoll: &Epoll, st: &LoopState) {
        for i in 0..self.ports.len() {
            if !self.ports[i].take_fds_changed() || st.paused[i] {
                continue;
            }
            let mut flags = EpollFlags::EPOLLIN;
            if st.blocked[i] && !self.ports[i].has_separate_tx_fd() {
                flags |= EpollFlags::EPOLLOUT;
            }
            let mut ev = EpollEvent::new(flags, rx_token(i));
            let fd = self.ports[i].rx_fd();
            if let Err(e) = epoll.add(fd, ev).or_else(|_| epoll.modify(fd, &mut ev)) {
                tracing::error!(port = %self.ports[i].name, error = %e, "cannot watch the new descriptor");
            }
        }
    }

    /// Ports paused after repeated receive errors are retried on every tick.
    fn rearm_ports(&mut self, epoll: &Epoll, st: &mut LoopState) {
        for i in 0..self.ports.len() {
            if st.paused[i] {
                st.paused[i] = false;
                st.rx_errors[i] = 0;
                let mut flags = EpollFlags::EPOLLIN;
                if st.blocked[i] && !self.ports[i].has_separate_tx_fd() {
                    flags |= EpollFlags::EPOLLOUT;
                }
                let _ = epoll.add(self.ports[i].rx_fd(), EpollEvent::new(flags, rx_token(i)));
            }
        }
    }
}

/// Per-loop scratch state (allocated when the loop starts or the ports change).
struct LoopState {
    frames: Vec<Frame>,
    readable: Vec<bool>,
    want_flush: Vec<bool>,
    blocked: Vec<bool>,
    paused: Vec<bool>,
    rx_errors: Vec<u32>,
    /// Absolute time the impairment timer is armed for.
    armed: Option<u64>,
}

impl LoopState {
    fn new(g: &Guest) -> Self {
        let ports = g.ports.len();
        let depth = g.ports.iter().map(|p| p.caps.depth).max().unwrap_or(1);
        LoopState {
            frames: Vec::with_capacity(depth),
            readable: vec![false; ports],
            // Anything queued before a rebuild goes out on the next pass.
            want_flush: vec![true; ports],
            blocked: vec![false; ports],
            paused: vec![false; ports],
            rx_errors: vec![0; ports],
            armed: None,
        }
    }
}

fn rx_token(i: usize) -> u64 {
    (i as u64) << 1
}

fn tx_token(i: usize) -> u64 {
    ((i as u64) << 1) | 1
}

fn split_token(t: u64) -> (usize, bool) {
    ((t >> 1) as usize, t & 1 == 1)
}
