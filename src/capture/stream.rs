//! Many capture sources, one pcapng stream: an interface block per captured end (and
//! point side), every frame with its direction, packet id and impairment comment, a
//! statistics block per interface every second and at the end (the last ones carry
//! the reason the capture ended as a comment). The output is flushed after every batch,
//! so a reader on a pipe follows live.
//!
//! Guests are drained by polling their rings (every 2 ms when idle); packet sockets and
//! a signalfd (SIGINT, SIGTERM, SIGHUP end the capture cleanly) are waited on in the
//! same `poll`.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::host::{HostCapture, HostError};
use super::pcapng::{Direction, Packet, Stats, Writer};
use super::remote::{GuestCapture, RemoteError};
use super::ring::{RingError, State};
use super::{Side, now_ns};
use crate::filter::Program;

/// Records taken from one source before the others get a turn (a write of up to
/// 1.5 MB at 1500-byte frames).
const BATCH: usize = 1024;
/// Idle wait between polls of the guest rings.
const IDLE: Duration = Duration::from_millis(2);
/// How often sources are checked for having ended.
const CHECK: Duration = Duration::from_millis(250);

/// Where an end's frames come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Ports of the guest whose control socket is `socket`: one for an end the guest
    /// carries, two for a host end on a link with an impairment datapath.
    Guest {
        socket: PathBuf,
        ports: Vec<GuestPort>,
    },
    /// A kernel interface, through a packet socket in namespace `netns`; `flip`: it is
    /// the other end of the link, directions are swapped.
    Host {
        netns: Option<String>,
        ifname: String,
        flip: bool,
    },
}

/// A guest port an end is captured on, and which of its points belong to the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestPort {
    /// Port `vec{unit}`.
    pub unit: u32,
    /// The points taken (a mask of [`super::Point::bit`]); [`super::Side`] narrows it.
    pub points: u8,
    /// The port is at the other end of the link: directions are swapped.
    pub flip: bool,
}

impl GuestPort {
    /// Every point of port `vec{unit}`, directions as seen by the port itself.
    pub fn whole(unit: u32) -> GuestPort {
        GuestPort {
            unit,
            points: super::RX_POINTS | super::TX_POINTS,
            flip: false,
        }
    }
}

/// One requested link end.
#[derive(Clone, Debug)]
pub struct End {
    /// `if_name` of its interface block(s), e.g. `lab/node:eth0`.
    pub name: String,
    /// `if_description`: link type and peer.
    pub description: String,
    pub source: Source,
}

/// How to capture.
#[derive(Clone, Debug)]
pub struct Options {
    /// The expression as written and its compiled program.
    pub filter: Option<(String, Program)>,
    pub snaplen: u32,
    pub side: Side,
    /// Stop after this many frames written.
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Ring size per guest; `None`: [`super::ring::auto_bytes`].
    pub ring_bytes: Option<usize>,
    /// Statistics block period.
    pub stats_every: Duration,
    /// Say on stderr which ends are captured, once every source has started.
    pub announce: bool,
}

/// How a capture went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub written: u64,
    /// Copies the guests or the kernel dropped for want of room.
    pub dropped: u64,
    pub reason: String,
}

/// Errors of a capture.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{end}: {source}")]
    Guest {
        end: String,
        #[source]
        source: RemoteError,
    },
    #[error("{end}: {source}")]
    Host {
        end: String,
        #[source]
        source: HostError,
    },
    #[error("writing the capture: {0}")]
    Write(io::Error),
    #[error("{0}")]
    Ring(#[from] RingError),
    #[error("setting up signal handling: {0}")]
    Signal(io::Error),
}

/// Where a record of a guest slot goes: interface ids of its pre and post sides.
#[derive(Clone, Copy, Debug)]
struct Route {
    pre: Option<u32>,
    post: Option<u32>,
    /// The points of the slot that belong to this end.
    points: u8,
    flip: bool,
}

/// One guest's part while the stream is being set up: its socket, the units asked
/// for (configuration slots), their routes, and the first end's name (for messages).
type GuestPlan = (PathBuf, Vec<u32>, Vec<Vec<Route>>, String);

struct GuestSrc {
    cap: GuestCapture,
    /// Routes per configuration slot.
    slots: Vec<Vec<Route>>,
    ended: Option<String>,
}

struct HostSrc {
    cap: HostCapture,
    iface: u32,
    flip: bool,
    ended: Option<String>,
}

/// Where an interface's counters come from.
enum Counted {
    /// Guest `g`, the slots of the end's ports, one side.
    Guest {
        g: usize,
        slots: Vec<usize>,
        post: bool,
    },
    Host(usize),
}

struct Iface {
    counted: Counted,
    written: u64,
}

/// A capture in progress.
struct Run<W: Write> {
    out: Writer<W>,
    guests: Vec<GuestSrc>,
    hosts: Vec<HostSrc>,
    ifaces: Vec<Iface>,
    written: u64,
    limit: Option<u64>,
    started_ns: u64,
    /// The last drain left records behind (a source gave a whole batch).
    backlog: bool,
}

/// Capture `ends` into `out` until a count, a duration, a signal, the end of every
/// source or `watch` (asked every 250 ms; `Some(reason)` ends the capture, e.g. when
/// the lab went down) says so.
pub fn run<W: Write>(
    ends: &[End],
    opts: &Options,
    out: W,
    watch: &mut dyn FnMut() -> Option<String>,
) -> Result<Summary, StreamError> {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        mask.add(s);
    }
    let old = mask
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .map_err(|e| StreamError::Signal(e.into()))?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| StreamError::Signal(e.into()));
    let result = sigfd.and_then(|fd| {
        let mut r = Run::open(ends, opts, out)?;
        super::trace("capture set up");
        if opts.announce {
            let mut seen = std::collections::BTreeSet::new();
            for e in ends.iter().filter(|e| seen.insert(&e.name)) {
                eprintln!("capturing {} ({})", e.name, e.description);
            }
        }
        r.pump(opts, &fd, watch)
    });
    let _ = old.thread_set_mask();
    result
}

impl<W: Write> Run<W> {
    fn full(&self) -> bool {
        self.limit.is_some_and(|l| self.written >= l)
    }

    /// Write what the sources hold (up to a batch each); frames written.
    fn drain(&mut self) -> Result<u64, StreamError> {
        let before = self.written;
        self.backlog = false;
        for gi in 0..self.guests.len() {
            for i in 0..=BATCH {
                if i == BATCH {
                    // More is waiting: come back without sleeping.
                    self.backlog = true;
                    break;
                }
                if self.full() {
                    break;
                }
                let g = &mut self.guests[gi];
                let Some(rec) = g.cap.next_record()? else {
                    break;
                };
                let m = rec.meta;
                let routes = g.slots.get(usize::from(m.slot)).map_or(&[][..], |r| r);
                let comment = m.note.comment();
                for r in routes.iter().filter(|r| r.points & m.point.bit() != 0) {
                    let Some(iface) = (if m.point.is_post() { r.post } else { r.pre }) else {
                        continue;
                    };
                    let dir = match (m.point.is_rx(), r.flip) {
                        (true, false) | (false, true) => Direction::Inbound,
                        _ => Direction::Outbound,
                    };
                    let head = Packet {
                        iface,
                        ts_ns: m.ts_ns,
                        data: &[],
                        orig_len: m.orig_len,
                        direction: Some(dir),
                        id: Some(m.id),
                        comment: comment.as_deref(),
                    };
                    // The frame goes from the ring straight into the output buffer.
                    self.out
                        .packet_with(&head, rec.caplen, |dst| g.cap.frame_into(&rec, dst))
                        .map_err(StreamError::Write)?;
                    self.written += 1;
                    self.ifaces[iface as usize].written += 1;
                }
            }
            self.guests[gi].cap.commit();
        }
        for hi in 0..self.hosts.len() {
            for i in 0..=BATCH {
                if i == BATCH {
                    self.backlog = true;
                    break;
                }
                if self.full() || self.hosts[hi].ended.is_some() {
                    break;
                }
                let h = &mut self.hosts[hi];
                let (iface, flip) = (h.iface, h.flip);
                let (r, data) = match h.cap.recv() {
                    Ok(Some(x)) => x,
                    Ok(None) => break,
                    Err(e) => {
                        h.ended = Some(format!("reading the interface failed: {e}"));
                        break;
                    }
                };
                let dir = if r.outgoing != flip {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                };
                self.out
                    .packet(&Packet {
                        iface,
                        ts_ns: now_ns(),
                        data,
                        orig_len: r.orig_len as u32,
                        direction: Some(dir),
                        id: None,
                        comment: None,
                    })
                    .map_err(StreamError::Write)?;
                self.written += 1;
                self.ifaces[iface as usize].written += 1;
            }
        }
        Ok(self.written - before)
    }

    /// A statistics block per interface.
    fn stats(&mut self, end: Option<&str>) -> Result<(), StreamError> {
        let now = now_ns();
        for h in &mut self.hosts {
            h.cap.update_drops();
        }
        for (id, i) in self.ifaces.iter().enumerate() {
            let (received, dropped, accepted) = self.counted(&i.counted);
            let comment = end.map(|r| format!("capture ended: {r}"));
            self.out
                .stats(&Stats {
                    iface: id as u32,
                    ts_ns: now,
                    start_ns: Some(self.started_ns),
                    end_ns: end.map(|_| now),
                    received,
                    dropped,
                    accepted,
                    delivered: Some(i.written),
                    comment: comment.as_deref(),
                })
                .map_err(StreamError::Write)?;
        }
        self.out.flush().map_err(StreamError::Write)
    }

    /// Frames seen, dropped and (guests only) accepted by the filter for one
    /// interface: the sum over the guest slots it is captured on.
    fn counted(&self, c: &Counted) -> (u64, u64, Option<u64>) {
        match c {
            Counted::Guest { g, slots, post } => {
                let (mut seen, mut dropped, mut accepted) = (0, 0, 0);
                for &slot in slots {
                    let c = self.guests[*g].cap.counters(slot, *post);
                    seen += c.seen;
                    dropped += c.dropped;
                    accepted += c.accepted;
                }
                (seen, dropped, Some(accepted))
            }
            Counted::Host(h) => (
                self.hosts[*h].cap.received,
                self.hosts[*h].cap.dropped,
                None,
            ),
        }
    }

    fn dropped(&self) -> u64 {
        self.ifaces.iter().map(|i| self.counted(&i.counted).1).sum()
    }

    /// Mark sources that ended; `true` when none is left.
    fn check_sources(&mut self) -> bool {
        for g in &mut self.guests {
            if g.ended.is_some() {
                continue;
            }
            if let State::Closed(r) = g.cap.state() {
                if g.cap.pending() == 0 {
                    g.ended = Some(r.text().to_string());
                }
            } else if !crate::console::rundir::pid_alive(g.cap.pid as i32) {
                g.ended = Some(format!("the guest (pid {}) died", g.cap.pid));
            }
        }
        self.guests.iter().all(|g| g.ended.is_some())
            && self.hosts.iter().all(|h| h.ended.is_some())
    }

    fn reasons(&self) -> String {
        let mut v: Vec<String> = self
            .guests
            .iter()
            .filter_map(|g| g.ended.clone())
            .chain(self.hosts.iter().filter_map(|h| h.ended.clone()))
            .collect();
        v.dedup();
        v.join("; ")
    }

    fn pump(
        &mut self,
        opts: &Options,
        sigfd: &SignalFd,
        watch: &mut dyn FnMut() -> Option<String>,
    ) -> Result<Summary, StreamError> {
        let start = Instant::now();
        let mut last_stats = Instant::now();
        let mut last_check = Instant::now();
        let mut signalled = false;
        let reason = loop {
            let n = match self.drain() {
                Ok(n) => n,
                Err(StreamError::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                    break "the output was closed".to_string();
                }
                Err(e) => return Err(e),
            };
            if n > 0 {
                let first = self.written == n;
                match self.out.flush() {
                    Ok(()) if first => super::trace("first frame written"),
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                        break "the output was closed".to_string();
                    }
                    Err(e) => return Err(StreamError::Write(e)),
                }
            }
            if let Some(l) = self.limit.filter(|_| self.full()) {
                break format!("{l} frames captured");
            }
            if signalled {
                signalled = false;
                if let Ok(Some(s)) = sigfd.read_signal() {
                    let name = Signal::try_from(s.ssi_signo as i32)
                        .map(|s| s.as_str())
                        .unwrap_or("a signal");
                    break format!("interrupted ({name})");
                }
            }
            if let Some(d) = opts.duration.filter(|d| start.elapsed() >= *d) {
                break format!("{} s elapsed", d.as_secs_f64());
            }
            if last_stats.elapsed() >= opts.stats_every {
                last_stats = Instant::now();
                self.stats(None)?;
            }
            if last_check.elapsed() >= CHECK {
                last_check = Instant::now();
                // Under a steady backlog the wait below is skipped: look for signals here.
                signalled = true;
                if let Some(r) = watch() {
                    break r;
                }
                if self.check_sources() {
                    // The lab's own teardown usually explains why its guests went away.
                    let deadline = Instant::now() + Duration::from_millis(1500);
                    let mut why = None;
                    while why.is_none() && Instant::now() < deadline {
                        why = watch();
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    break why.unwrap_or_else(|| self.reasons());
                }
            }
            // Sleep unless a source has more than a batch waiting: a reader that
            // polled without pause would take a core from the datapath it watches.
            if !self.backlog {
                signalled |= self.wait(sigfd);
            }
        };
        // Stop the guests, then take what they wrote before they stopped.
        for g in &mut self.guests {
            g.cap.stop(Duration::from_secs(1));
        }
        if reason != "the output was closed" {
            let _ = self.drain();
            let _ = self.stats(Some(&reason));
        }
        Ok(Summary {
            written: self.written,
            dropped: self.dropped(),
            reason,
        })
    }

    /// Sleep until a packet socket or a signal is ready, at most [`IDLE`]; `true` if a
    /// signal is pending.
    fn wait(&self, sigfd: &SignalFd) -> bool {
        let mut fds: Vec<PollFd<'_>> = vec![PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        fds.extend(
            self.hosts
                .iter()
                .filter(|h| h.ended.is_none())
                .map(|h| PollFd::new(h.cap.fd(), PollFlags::POLLIN)),
        );
        let _ = poll(&mut fds, PollTimeout::from(IDLE.as_millis() as u16));
        fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
    }
}

mod setup;
