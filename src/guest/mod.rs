//! One guest process: parse its command line, open its transports, drop privileges and
//! run the network function in a single-threaded run-to-completion loop.
//!
//! The loop waits on one epoll set holding every port's descriptors, a signalfd
//! (SIGINT/SIGTERM end the guest cleanly) and a timerfd (function ticks). A readable
//! port is drained in batches of `depth` (up to [`BUDGET`] batches before the others get
//! a turn); each batch goes through the function and then every port with queued frames
//! is flushed, so a received batch leaves as one `sendmmsg` per output port.

mod args;
mod fabric;
mod filter;
mod report;

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

pub use args::{GUEST_KEYS, GuestArgs, GuestError};
pub use filter::FilterError;
pub use report::Report;

use crate::buf::{Frame, Pool};
use crate::nf::{self, Function};
use crate::transport::{self, Flush, Port};

/// Batches taken from one port before the loop looks at the others again.
pub const BUDGET: usize = 8;
/// Period of the function tick.
pub const TICK: Duration = Duration::from_millis(250);

const TOKEN_SIGNAL: u64 = u64::MAX;
const TOKEN_TIMER: u64 = u64::MAX - 1;

/// A running guest.
pub struct Guest {
    pub args: GuestArgs,
    pub ports: Vec<Port>,
    pub pool: Pool,
    pub nf: Box<dyn Function>,
    started: Instant,
}

impl Guest {
    /// Open every transport and build the function. Needs whatever privileges the
    /// transports need; call [`Guest::sandbox`] afterwards.
    pub fn open(args: GuestArgs) -> Result<Guest, GuestError> {
        let nf = nf::build_for(&args.function, &args.specs, &args.nf_options)?;
        for spec in &args.specs {
            for w in spec.warnings() {
                tracing::warn!("vec{}: {w}", spec.unit);
            }
        }
        let ports = transport::open_all(&args.specs)?;
        let stride = ports.iter().map(|p| p.caps.rx_slot).max().unwrap_or(2048);
        let count: usize =
            ports.iter().map(Port::buffers_needed).sum::<usize>() + nf.buffers_needed();
        Ok(Guest {
            args,
            ports,
            pool: Pool::new(count, stride),
            nf,
            started: Instant::now(),
        })
    }

    /// Pin to `cpu=` if given, then drop privileges: clear effective capabilities and
    /// set no_new_privs (see [`crate::sys::sandbox`]).
    pub fn sandbox(&self) -> Result<(), GuestError> {
        if let Some(cpu) = self.args.cpu {
            let mut set = nix::sched::CpuSet::new();
            set.set(cpu).map_err(|_| GuestError::Cpu(cpu))?;
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
                .map_err(|_| GuestError::Cpu(cpu))?;
        }
        crate::sys::sandbox::drop_all_capabilities().map_err(GuestError::Sandbox)
    }

    /// Counters and state, for printing.
    pub fn report(&self) -> Report {
        Report::new(self)
    }

    /// Run until SIGINT or SIGTERM.
    pub fn run(&mut self) -> Result<(), GuestError> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGINT);
        mask.add(Signal::SIGTERM);
        mask.thread_block()
            .map_err(|e| GuestError::Setup("blocking signals", e.into()))?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| GuestError::Setup("signalfd", e.into()))?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(|e| GuestError::Setup("timerfd", e.into()))?;
        timer
            .set(
                Expiration::Interval(TICK.into()),
                TimerSetTimeFlags::empty(),
            )
            .map_err(|e| GuestError::Setup("timerfd", e.into()))?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
            .map_err(|e| GuestError::Setup("epoll", e.into()))?;
        let add = |fd: std::os::fd::BorrowedFd<'_>, token: u64| {
            epoll
                .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
                .map_err(|e| GuestError::Setup("epoll_ctl", e.into()))
        };
        add(sigfd.as_fd(), TOKEN_SIGNAL)?;
        add(timer.as_fd(), TOKEN_TIMER)?;
        for (i, p) in self.ports.iter().enumerate() {
            add(p.rx_fd(), rx_token(i))?;
        }

        let mut loop_state = LoopState::new(
            self.ports.len(),
            self.ports.iter().map(|p| p.caps.depth).max().unwrap_or(1),
        );
        eprintln!("{}", self.ready_line());
        let mut events = [EpollEvent::empty(); 64];
        loop {
            let n = match epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(GuestError::Setup("epoll_wait", e.into())),
            };
            let mut stop = false;
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
                        self.run_timer(now, &mut loop_state);
                        self.rearm_ports(&epoll, &mut loop_state);
                    }
                    t => {
                        let (i, is_tx) = split_token(t);
                        if is_tx || ev.events().contains(EpollFlags::EPOLLOUT) {
                            loop_state.want_flush[i] = true;
                        }
                        if !is_tx
                            && ev.events().intersects(
                                EpollFlags::EPOLLIN | EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP,
                            )
                        {
                            loop_state.readable[i] = true;
                        }
                    }
                }
            }
            for i in 0..self.ports.len() {
                if std::mem::take(&mut loop_state.readable[i]) {
                    self.drain(i, &mut loop_state);
                    if loop_state.paused[i] {
                        // Persistent receive errors: stop polling until the next tick.
                        let _ = epoll.delete(self.ports[i].rx_fd());
                    }
                }
            }
            self.relink(&epoll, &loop_state);
            self.flush_all(&epoll, &mut loop_state);
            if stop {
                break;
            }
        }
        for p in &mut self.ports {
            p.flush(&mut self.pool);
        }
        Ok(())
    }

    fn ready_line(&self) -> String {
        let ports: Vec<String> = self
            .ports
            .iter()
            .map(|p| {
                format!(
                    "{}={}({})",
                    p.name,
                    p.spec.transport_name(),
                    p.host_if.as_deref().unwrap_or("-")
                )
            })
            .collect();
        format!(
            "vecbox guest {} ready: {} {}",
            self.args.umid,
            self.nf.name(),
            ports.join(" ")
        )
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

    /// Time since the guest opened its ports.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Per-loop scratch state (allocated once).
struct LoopState {
    frames: Vec<Frame>,
    readable: Vec<bool>,
    want_flush: Vec<bool>,
    blocked: Vec<bool>,
    paused: Vec<bool>,
    rx_errors: Vec<u32>,
}

impl LoopState {
    fn new(ports: usize, depth: usize) -> Self {
        LoopState {
            frames: Vec::with_capacity(depth),
            readable: vec![false; ports],
            want_flush: vec![false; ports],
            blocked: vec![false; ports],
            paused: vec![false; ports],
            rx_errors: vec![0; ports],
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
