//! The neighbour table (ARP for IPv4, neighbour discovery for IPv6): resolved MACs with
//! aging, and a few frames held per unresolved neighbour while it is being resolved.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::buf::Frame;
use crate::wire::Mac;

/// Frames held per unresolved neighbour.
pub const HOLD: usize = 4;
/// Frames held in the whole table at most (the pool is sized for them).
pub const MAX_HELD: usize = 256;
/// Requests sent before a neighbour is declared unreachable.
pub const PROBES: u8 = 3;
/// Ticks between requests (4 ticks = 1 s).
pub const PROBE_INTERVAL: u32 = 4;

/// A held frame and the port it arrived on.
pub type Held = Option<(Frame, usize)>;

#[derive(Clone, Copy)]
pub struct Neighbor {
    pub mac: Option<Mac>,
    /// Tick of the last confirmation (resolved) or the last request (unresolved).
    pub updated: u32,
    pub probes: u8,
    pub held: [Held; HOLD],
    /// Configured, never aged.
    pub permanent: bool,
}

/// Result of [`Neighbors::hold`].
pub enum Hold {
    /// Queued; `true` if the entry is new (send a request now).
    Queued(bool),
    /// No room: the frame comes back to be dropped.
    Full(Frame),
}

/// What aging asks the router to do.
pub enum Event {
    /// Send another request for `ip` on `port`.
    Probe { port: usize, ip: IpAddr },
    /// Resolution failed: drop this held frame (and report unreachable).
    Failed { frame: Frame, in_port: usize },
}

/// The table, keyed by (port, address).
pub struct Neighbors {
    map: HashMap<(usize, IpAddr), Neighbor>,
    max: usize,
    held: usize,
    /// Entries dropped to make room for new ones.
    pub evictions: u64,
}

impl Neighbors {
    /// A table of at most `max` entries.
    pub fn new(max: usize) -> Self {
        Neighbors {
            map: HashMap::with_capacity(max),
            max,
            held: 0,
            evictions: 0,
        }
    }

    /// Resolved MAC of `ip` on `port`.
    pub fn lookup(&self, port: usize, ip: IpAddr) -> Option<Mac> {
        self.map.get(&(port, ip)).and_then(|n| n.mac)
    }

    /// Make room for one entry: drop the oldest resolved entry (never one holding frames).
    fn make_room(&mut self) -> bool {
        if self.map.len() < self.max {
            return true;
        }
        let victim = self
            .map
            .iter()
            .filter(|(_, n)| n.held.iter().all(Option::is_none))
            .min_by_key(|(_, n)| n.updated)
            .map(|(k, _)| *k);
        match victim {
            Some(k) => {
                self.map.remove(&k);
                self.evictions += 1;
                true
            }
            None => false,
        }
    }

    /// Keep `f` (from `in_port`) until `ip` on `port` is resolved.
    pub fn hold(&mut self, port: usize, ip: IpAddr, f: Frame, in_port: usize, now: u32) -> Hold {
        if self.held >= MAX_HELD {
            return Hold::Full(f);
        }
        let new = !self.map.contains_key(&(port, ip));
        if new && !self.make_room() {
            return Hold::Full(f);
        }
        let n = self.map.entry((port, ip)).or_insert(Neighbor {
            mac: None,
            updated: now,
            probes: 1,
            held: [None; HOLD],
            permanent: false,
        });
        match n.held.iter_mut().find(|h| h.is_none()) {
            Some(slot) => {
                *slot = Some((f, in_port));
                self.held += 1;
                Hold::Queued(new)
            }
            None => Hold::Full(f),
        }
    }

    /// Record that `ip` on `port` is at `mac`. Creates the entry only if `create`
    /// (the neighbour asked for one of our addresses, or we asked for it). Returns the
    /// frames that were waiting for it.
    pub fn learn(
        &mut self,
        port: usize,
        ip: IpAddr,
        mac: Mac,
        now: u32,
        create: bool,
    ) -> [Held; HOLD] {
        if !(self.map.contains_key(&(port, ip)) || create && self.make_room()) {
            return [None; HOLD];
        }
        let Some(n) = self.map.get_mut(&(port, ip)) else {
            return [None; HOLD];
        };
        if n.permanent {
            return [None; HOLD];
        }
        n.mac = Some(mac);
        n.updated = now;
        n.probes = 0;
        let out = n.held;
        let released = n.held.iter().filter(|h| h.is_some()).count();
        n.held = [None; HOLD];
        self.held -= released;
        out
    }

    /// Add an entry for `ip` if there is none (used before a probe of a new neighbour).
    pub fn touch(&mut self, port: usize, ip: IpAddr, now: u32) {
        if !self.map.contains_key(&(port, ip)) && self.make_room() {
            self.map.insert(
                (port, ip),
                Neighbor {
                    mac: None,
                    updated: now,
                    probes: 1,
                    held: [None; HOLD],
                    permanent: false,
                },
            );
        }
    }

    /// Age the table at tick `now`: resolved entries older than `timeout` ticks go;
    /// unresolved ones are probed again, or fail after [`PROBES`] requests.
    pub fn age(&mut self, now: u32, timeout: u32, mut on: impl FnMut(Event)) {
        let mut released = 0;
        self.map.retain(|&(port, ip), n| {
            let age = now.wrapping_sub(n.updated);
            if n.permanent {
                return true;
            }
            if n.mac.is_some() {
                return age <= timeout;
            }
            if age < PROBE_INTERVAL {
                return true;
            }
            if n.probes < PROBES {
                n.probes += 1;
                n.updated = now;
                on(Event::Probe { port, ip });
                return true;
            }
            for (frame, in_port) in n.held.iter().flatten() {
                released += 1;
                on(Event::Failed {
                    frame: *frame,
                    in_port: *in_port,
                });
            }
            false
        });
        self.held -= released;
    }

    /// Add a permanent entry (configured MAC).
    pub fn add_permanent(&mut self, port: usize, ip: IpAddr, mac: Mac) {
        self.map.insert(
            (port, ip),
            Neighbor {
                mac: Some(mac),
                updated: 0,
                probes: 0,
                held: [None; HOLD],
                permanent: true,
            },
        );
    }

    /// Every entry as ((port, address), entry), sorted by port then address.
    pub fn entries(&self) -> Vec<((usize, IpAddr), Neighbor)> {
        let mut v: Vec<_> = self.map.iter().map(|(k, n)| (*k, *n)).collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// Entries (resolved and not).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// `true` when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Frames currently held.
    pub fn held(&self) -> usize {
        self.held
    }
}
