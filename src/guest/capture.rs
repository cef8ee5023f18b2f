//! Captures inside the guest (console `capture ...`, see docs/capture.md).
//!
//! `capture start` arrives from `vecbox capture` with two descriptors: the capture ring
//! (a memfd holding the configuration: ports, points, snap length, filter) and the read
//! end of a pipe whose write end the capturing process holds. The guest maps the ring,
//! checks the configuration, and puts a tap on each asked-for port. Once a tick it
//! looks at the pipe: when the capturing process is gone (the pipe hung up) the capture
//! ends. No file is opened and no new system call is made for any of this: `recvmsg`,
//! `mmap`, `munmap`, `statx` and `poll` are already on the sandbox's allowlist.
//!
//! Taps are rebuilt from the list of captures whenever the ports change (console
//! `config`, `remove`, `reboot`), so a capture follows its interfaces by unit number.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

use super::Guest;
use crate::capture::config::Config;
use crate::capture::ring::{self, CloseReason, Producer, counter_index};
use crate::capture::tap::{Attach, PortTap, SharedRing};
use crate::capture::{Point, config::PortSel};
use crate::filter::Program;
use crate::metrics::names;
use crate::metrics::sink::MetricSink;
use crate::sys::shm::SharedWords;

/// Most captures one guest runs at once.
const MAX_SESSIONS: usize = 16;

type Reply = (u32, String);

/// One capture.
struct Live {
    id: u32,
    ring: SharedRing,
    /// Read end of the capturing process's pipe.
    alive: OwnedFd,
    config: Config,
    filter: Option<Rc<Program>>,
    reason: Option<CloseReason>,
}

impl Live {
    /// (captured, dropped) of configuration slot `slot`, both sides.
    fn counts(&self, slot: usize) -> (u64, u64) {
        let r = self.ring.borrow();
        [false, true].iter().fold((0, 0), |(c, d), &post| {
            let k = r.counters(counter_index(slot, post));
            (c + k.captured(), d + k.dropped)
        })
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.ring
            .borrow_mut()
            .close(self.reason.unwrap_or(CloseReason::GuestExit));
    }
}

/// The guest's captures.
#[derive(Default)]
pub(super) struct Captures {
    live: Vec<Live>,
    next_id: u32,
    /// (captured, dropped) per unit, of captures that ended.
    totals: BTreeMap<u32, (u64, u64)>,
}

impl Captures {
    /// `true` while some capture runs (the taps need rebuilding after port changes).
    pub(super) fn any(&self) -> bool {
        !self.live.is_empty()
    }

    fn end(&mut self, i: usize, reason: CloseReason) -> Live {
        let mut l = self.live.remove(i);
        l.reason = Some(reason);
        for (slot, p) in l.config.ports.iter().enumerate() {
            let (c, d) = l.counts(slot);
            let t = self.totals.entry(p.unit).or_default();
            t.0 += c;
            t.1 += d;
        }
        l
    }

    /// Report `vecbox_capture_*` per interface that was ever captured.
    pub(super) fn metrics(&self, sink: &mut dyn MetricSink) {
        let mut per: BTreeMap<u32, (u64, u64)> = self.totals.clone();
        for l in &self.live {
            for (slot, p) in l.config.ports.iter().enumerate() {
                let (c, d) = l.counts(slot);
                let t = per.entry(p.unit).or_default();
                t.0 += c;
                t.1 += d;
            }
        }
        for (unit, (c, d)) in per {
            names::capture(sink, &format!("vec{unit}"), c, d);
        }
    }
}

fn ok(s: impl Into<String>) -> Reply {
    (0, s.into())
}

fn err(s: impl Into<String>) -> Reply {
    (1, s.into())
}

fn points_text(mask: u8) -> String {
    Point::ALL
        .iter()
        .filter(|p| mask & p.bit() != 0)
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(",")
}

impl Guest {
    /// `capture`, `capture list`, `capture start` (with its descriptors), `capture stop N`.
    pub(super) fn capture_command(&mut self, rest: &str, fds: Vec<OwnedFd>) -> Reply {
        let mut words = rest.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (None | Some("list"), None, None) => ok(self.capture_list()),
            (Some("start"), None, None) => self.capture_start(fds),
            (Some("stop"), Some(n), None) => match n.parse::<u32>() {
                Ok(id) => self.capture_stop(id),
                Err(_) => err(format!("capture stop: {n:?} is not a capture number")),
            },
            _ => err(
                "usage: capture [list] | capture stop N (captures are started by `vecbox capture`, which passes the ring)",
            ),
        }
    }

    fn capture_list(&self) -> String {
        if self.captures.live.is_empty() {
            return "no captures".into();
        }
        let mut s = String::new();
        for l in &self.captures.live {
            let _ = write!(s, "capture {}:", l.id);
            for (slot, p) in l.config.ports.iter().enumerate() {
                let (c, d) = l.counts(slot);
                let _ = write!(
                    s,
                    " vec{} ({}) captured {c} dropped {d};",
                    p.unit,
                    points_text(p.points)
                );
            }
            let _ = writeln!(
                s,
                " snaplen {}, {}",
                l.config.snaplen,
                l.filter
                    .as_ref()
                    .map_or("no filter".to_string(), |f| format!(
                        "filter of {} instructions",
                        f.insns().len()
                    ))
            );
        }
        s
    }

    fn capture_start(&mut self, fds: Vec<OwnedFd>) -> Reply {
        let Ok::<[OwnedFd; 2], _>([ring_fd, alive]) = fds.try_into() else {
            return err(
                "capture start needs the ring and pipe descriptors that `vecbox capture` passes with it; use `vecbox capture --guest UMID vecN`",
            );
        };
        if self.captures.live.len() >= MAX_SESSIONS {
            return err(format!(
                "this guest already runs {MAX_SESSIONS} captures; stop one first (capture list)"
            ));
        }
        let file = std::fs::File::from(ring_fd);
        let map = match SharedWords::map(&file, true) {
            Ok(m) => m,
            Err(e) => return err(format!("capture start: mapping the ring: {e}")),
        };
        let config = match ring::read_config(&map)
            .map_err(|e| e.to_string())
            .and_then(|b| Config::decode(&b).map_err(|e| e.to_string()))
        {
            Ok(c) => c,
            Err(e) => return err(format!("capture start: {e}")),
        };
        let missing: Vec<String> = config
            .ports
            .iter()
            .filter(|p| self.port_index(p.unit).is_none())
            .map(|p| format!("vec{}", p.unit))
            .collect();
        if !missing.is_empty() {
            let have: Vec<&str> = self.ports.iter().map(|p| p.name.as_str()).collect();
            return err(format!(
                "capture start: no {} in this guest (it has {})",
                missing.join(", "),
                have.join(", ")
            ));
        }
        self.captures.next_id += 1;
        let id = self.captures.next_id;
        let producer = match Producer::attach(map, config.ports.len(), id) {
            Ok(p) => p,
            Err(e) => return err(format!("capture start: {e}")),
        };
        let ports: Vec<String> = config
            .ports
            .iter()
            .map(|p| format!("vec{} ({})", p.unit, points_text(p.points)))
            .collect();
        tracing::info!(capture = id, ports = %ports.join(" "), "capture started");
        self.captures.live.push(Live {
            id,
            ring: Rc::new(RefCell::new(producer)),
            alive,
            filter: config.filter.clone().map(Rc::new),
            config,
            reason: None,
        });
        self.retap();
        ok(format!("capture {id} started: {}", ports.join(", ")))
    }

    fn capture_stop(&mut self, id: u32) -> Reply {
        let Some(i) = self.captures.live.iter().position(|l| l.id == id) else {
            let ids: Vec<String> = self
                .captures
                .live
                .iter()
                .map(|l| l.id.to_string())
                .collect();
            return err(format!(
                "no capture {id} (running: {})",
                if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.join(", ")
                }
            ));
        };
        let l = self.captures.end(i, CloseReason::Stopped);
        let (c, d) = (0..l.config.ports.len())
            .map(|s| l.counts(s))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        drop(l);
        self.retap();
        tracing::info!(capture = id, captured = c, dropped = d, "capture stopped");
        ok(format!("capture {id} stopped: captured {c}, dropped {d}"))
    }

    /// Periodic check: captures whose reader went away end.
    pub(super) fn capture_tick(&mut self) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut gone = Vec::new();
        for (i, l) in self.captures.live.iter().enumerate() {
            let mut fds = [PollFd::new(l.alive.as_fd(), PollFlags::POLLIN)];
            let hung = poll(&mut fds, PollTimeout::ZERO).is_ok()
                && fds[0].revents().is_some_and(|r| {
                    r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
                });
            if hung {
                gone.push(i);
            }
        }
        if gone.is_empty() {
            return;
        }
        for i in gone.into_iter().rev() {
            let l = self.captures.end(i, CloseReason::ReaderGone);
            tracing::info!(capture = l.id, "capture ended: its reader went away");
        }
        self.retap();
    }

    /// Put on every port the taps its captures ask for; captures whose interfaces are
    /// all gone end.
    pub(super) fn retap(&mut self) {
        let mut orphaned = Vec::new();
        for (i, l) in self.captures.live.iter().enumerate() {
            if l.config
                .ports
                .iter()
                .all(|p| self.port_index(p.unit).is_none())
            {
                orphaned.push(i);
            }
        }
        for i in orphaned.into_iter().rev() {
            let l = self.captures.end(i, CloseReason::PortsRemoved);
            tracing::info!(capture = l.id, "capture ended: its interfaces were removed");
        }
        for port in &mut self.ports {
            let unit = port.spec.unit;
            let attaches: Vec<Attach> = self
                .captures
                .live
                .iter()
                .filter_map(|l| {
                    let slot = l.config.ports.iter().position(|p| p.unit == unit)?;
                    let PortSel { points, .. } = l.config.ports[slot];
                    Some(Attach {
                        ring: l.ring.clone(),
                        slot: slot as u16,
                        points,
                        snaplen: l.config.snaplen,
                        filter: l.filter.clone(),
                    })
                })
                .collect();
            // Packet ids keep counting across rebuilds.
            let next_id = port.tap.as_ref().map_or(1, |t| t.peek_id());
            port.tap = PortTap::new(attaches, next_id);
        }
    }

    /// End every capture (the guest is exiting).
    pub(super) fn capture_close_all(&mut self) {
        while !self.captures.live.is_empty() {
            self.captures.end(0, CloseReason::GuestExit);
        }
        for p in &mut self.ports {
            p.tap = None;
        }
    }
}
