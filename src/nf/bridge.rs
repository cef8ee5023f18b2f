//! `bridge`: an L2 learning switch over N ports.
//!
//! Source MACs are learned per port and age out after `aging` seconds (default 300, as
//! Linux bridges). Frames to a known unicast MAC go to its port; broadcast, multicast and
//! unknown unicast are flooded to every other port; frames whose destination sits on the
//! ingress port are dropped (`no_route`). The forwarding database is a fixed-size,
//! 4-way set-associative table (`fdb_size` entries, default 4096): no allocation per
//! frame, and when a set is full the least recently seen entry is evicted (counted).
//! Time advances on the guest's tick, so the hot path never reads a clock.

use std::time::Instant;

use super::{Function, NfError, Output};
use crate::buf::Frame;
use crate::metrics::{DropReason, MetricSink};
use crate::transport::Spec;
use crate::wire::ethernet;

const WAYS: usize = 4;
const OPTIONS: &str = "aging=SECONDS (default 300), fdb_size=ENTRIES (default 4096)";

#[derive(Clone, Copy, Default)]
struct Entry {
    mac: [u8; 6],
    port: u16,
    /// Tick (in seconds) when last seen; 0 = empty slot.
    seen: u32,
}

/// The forwarding database.
pub struct Fdb {
    sets: Box<[[Entry; WAYS]]>,
    mask: usize,
    /// Current time in seconds since start, plus one (so 0 means empty).
    now: u32,
    aging: u32,
    /// Entries evicted to make room.
    pub evictions: u64,
    /// Stations that moved to another port.
    pub moves: u64,
}

fn hash(mac: &[u8; 6]) -> usize {
    let mut v = [0u8; 8];
    v[..6].copy_from_slice(mac);
    let x = u64::from_le_bytes(v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 32) as usize
}

impl Fdb {
    /// A table with room for about `entries` MACs (rounded up to a power of two).
    pub fn new(entries: usize, aging_secs: u32) -> Self {
        let sets = (entries.max(WAYS) / WAYS).next_power_of_two();
        Fdb {
            sets: vec![[Entry::default(); WAYS]; sets].into_boxed_slice(),
            mask: sets - 1,
            now: 1,
            aging: aging_secs.max(1),
            evictions: 0,
            moves: 0,
        }
    }

    fn live(&self, e: &Entry) -> bool {
        e.seen != 0 && self.now - e.seen <= self.aging
    }

    /// Port where `mac` was last seen, if the entry has not aged out.
    pub fn lookup(&self, mac: &[u8; 6]) -> Option<usize> {
        let set = &self.sets[hash(mac) & self.mask];
        set.iter()
            .find(|e| e.mac == *mac && self.live(e))
            .map(|e| usize::from(e.port))
    }

    /// Record that `mac` was seen on `port`.
    pub fn learn(&mut self, mac: &[u8; 6], port: usize) {
        let now = self.now;
        let aging = self.aging;
        let set = &mut self.sets[hash(mac) & self.mask];
        if let Some(e) = set.iter_mut().find(|e| e.seen != 0 && e.mac == *mac) {
            if usize::from(e.port) != port {
                self.moves += 1;
                e.port = port as u16;
            }
            e.seen = now;
            return;
        }
        let slot = match set.iter().position(|e| e.seen == 0 || now - e.seen > aging) {
            Some(i) => i,
            None => {
                self.evictions += 1;
                (0..WAYS).min_by_key(|&i| set[i].seen).unwrap_or(0)
            }
        };
        set[slot] = Entry {
            mac: *mac,
            port: port as u16,
            seen: now,
        };
    }

    /// Advance the clock to `secs` since start and clear aged-out entries.
    pub fn advance(&mut self, secs: u32) {
        self.now = secs.saturating_add(1).max(self.now);
        let (now, aging) = (self.now, self.aging);
        for set in self.sets.iter_mut() {
            for e in set.iter_mut() {
                if e.seen != 0 && now - e.seen > aging {
                    *e = Entry::default();
                }
            }
        }
    }

    /// Move every entry to the port `map` gives for its port, forgetting those it gives
    /// none (ports renumbered because interfaces were added or removed).
    pub fn remap(&mut self, map: impl Fn(usize) -> Option<usize>) {
        for e in self.sets.iter_mut().flatten() {
            if e.seen == 0 {
                continue;
            }
            match map(usize::from(e.port)) {
                Some(p) => e.port = p as u16,
                None => *e = Entry::default(),
            }
        }
    }

    /// Forget every entry.
    pub fn clear(&mut self) {
        for e in self.sets.iter_mut().flatten() {
            *e = Entry::default();
        }
    }

    /// Slots in the table.
    pub fn capacity(&self) -> usize {
        self.sets.len() * WAYS
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.sets.iter().flatten().filter(|e| self.live(e)).count()
    }

    /// `true` when no entry is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live entries as (mac, port, age in seconds).
    pub fn entries(&self) -> Vec<([u8; 6], usize, u32)> {
        self.sets
            .iter()
            .flatten()
            .filter(|e| self.live(e))
            .map(|e| (e.mac, usize::from(e.port), self.now - e.seen))
            .collect()
    }
}

/// The learning bridge function.
pub struct Bridge {
    ports: usize,
    /// The unit (`vecN`) of each port, to follow stations when ports change.
    units: Vec<u32>,
    pub fdb: Fdb,
    started: Instant,
}

fn parse_u32(
    key: &str,
    value: &str,
    range: std::ops::RangeInclusive<u32>,
    expected: &'static str,
) -> Result<u32, NfError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|v| range.contains(v))
        .ok_or_else(|| NfError::BadOption {
            function: "bridge",
            key: key.to_string(),
            value: value.to_string(),
            expected,
        })
}

impl Bridge {
    /// A bridge over `ports` (at least 2) ports; options `aging=`, `fdb_size=`.
    pub fn new(ports: usize, options: &[(String, String)]) -> Result<Self, NfError> {
        if ports < 2 {
            return Err(NfError::TooFewPorts {
                function: "bridge",
                min: 2,
                got: ports,
            });
        }
        let (mut aging, mut size) = (300, 4096);
        for (k, v) in options {
            match k.as_str() {
                "aging" => {
                    aging = parse_u32(k, v, 1..=86_400, "seconds 1..=86400, e.g. aging=300")?
                }
                "fdb_size" => {
                    size = parse_u32(k, v, 4..=1 << 20, "entries 4..=1048576, e.g. fdb_size=4096")?
                }
                _ => {
                    return Err(NfError::UnknownOption {
                        function: "bridge",
                        key: k.clone(),
                        accepted: OPTIONS,
                    });
                }
            }
        }
        Ok(Bridge {
            ports,
            units: (0..ports as u32).collect(),
            fdb: Fdb::new(size as usize, aging),
            started: Instant::now(),
        })
    }
}

impl Bridge {
    /// A bridge over the ports `specs` (their units identify them when ports change).
    pub fn for_ports(specs: &[Spec], options: &[(String, String)]) -> Result<Self, NfError> {
        let mut b = Bridge::new(specs.len(), options)?;
        b.units = specs.iter().map(|s| s.unit).collect();
        Ok(b)
    }
}

impl Function for Bridge {
    fn name(&self) -> &'static str {
        "bridge"
    }

    fn process(&mut self, port: usize, frames: &[Frame], out: &mut dyn Output) {
        for f in frames {
            let bytes = out.frame(f);
            let (Some(Ok(dst)), Some(Ok(src))) = (
                bytes.get(0..6).map(<[u8; 6]>::try_from),
                bytes.get(6..12).map(<[u8; 6]>::try_from),
            ) else {
                out.discard(*f, DropReason::Runt);
                continue;
            };
            if !ethernet::is_multicast(&src) && src != [0; 6] {
                self.fdb.learn(&src, port);
            }
            if ethernet::is_multicast(&dst) {
                out.flood(port, *f);
                continue;
            }
            match self.fdb.lookup(&dst) {
                Some(p) if p == port => out.discard(*f, DropReason::NoRoute),
                Some(p) if p < self.ports => out.forward(p, *f),
                _ => out.flood(port, *f),
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        let secs = now.duration_since(self.started).as_secs();
        self.fdb.advance(u32::try_from(secs).unwrap_or(u32::MAX));
    }

    fn summary(&self) -> Vec<(&'static str, String)> {
        vec![
            ("fdb_entries", self.fdb.len().to_string()),
            ("fdb_evictions", self.fdb.evictions.to_string()),
            ("fdb_moves", self.fdb.moves.to_string()),
        ]
    }

    fn metrics(&self, out: &mut dyn MetricSink) {
        out.gauge(
            "vecbox_bridge_fdb_entries",
            "Live MAC addresses in the bridge's forwarding database.",
            &[],
            self.fdb.len() as f64,
        );
        out.gauge(
            "vecbox_bridge_fdb_capacity",
            "Slots in the forwarding database (fdb_size rounded up).",
            &[],
            self.fdb.capacity() as f64,
        );
        out.counter(
            "vecbox_bridge_fdb_evictions_total",
            "Entries evicted from a full set of the forwarding database.",
            &[],
            self.fdb.evictions,
        );
        out.counter(
            "vecbox_bridge_fdb_moves_total",
            "Stations seen on a different port than before.",
            &[],
            self.fdb.moves,
        );
    }

    fn proc_files(&self) -> &'static [&'static str] {
        &["fdb"]
    }

    /// `fdb`: one line per live entry, `MAC PORT AGE`, as `brctl showmacs` (port = the
    /// function's port number, i.e. the interface's position by unit).
    fn proc_file(&self, name: &str) -> Option<String> {
        if name != "fdb" {
            return None;
        }
        let mut e = self.fdb.entries();
        e.sort_by_key(|(mac, port, _)| (*port, *mac));
        let mut s = String::from("mac               port  age\n");
        for (mac, port, age) in e {
            let m: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
            s.push_str(&format!("{} {port:>4} {age:>4}\n", m.join(":")));
        }
        Some(s)
    }

    /// Any number of ports; stations stay learned on the ports that stay (their port
    /// numbers follow their units), those of removed ports are forgotten.
    fn set_ports(&mut self, ports: &[Spec], _out: &mut dyn Output) -> Result<(), NfError> {
        let new: Vec<u32> = ports.iter().map(|s| s.unit).collect();
        let old = std::mem::replace(&mut self.units, new.clone());
        self.fdb
            .remap(|p| old.get(p).and_then(|u| new.iter().position(|n| n == u)));
        self.ports = ports.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nf::testing::Recorder;

    fn eth(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = Vec::from(dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x00]);
        f.resize(60, 0xab);
        f
    }
    const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];
    const BCAST: [u8; 6] = [0xff; 6];

    #[test]
    fn learns_floods_unknown_and_forwards_known() {
        let mut br = Bridge::new(3, &[]).unwrap();
        let mut r = Recorder::new(3);
        // Unknown destination: flooded to ports 1 and 2.
        r.feed(&mut br, 0, &[&eth(B, A)]);
        assert_eq!(r.sent.iter().map(|s| s.0).collect::<Vec<_>>(), vec![1, 2]);
        r.clear();
        // B answers from port 2: A is known on port 0.
        r.feed(&mut br, 2, &[&eth(A, B)]);
        assert_eq!(r.sent.iter().map(|s| s.0).collect::<Vec<_>>(), vec![0]);
        r.clear();
        // Now A -> B goes only to port 2.
        r.feed(&mut br, 0, &[&eth(B, A)]);
        assert_eq!(r.sent.iter().map(|s| s.0).collect::<Vec<_>>(), vec![2]);
        r.clear();
        // Broadcast always floods.
        r.feed(&mut br, 2, &[&eth(BCAST, B)]);
        assert_eq!(r.sent.iter().map(|s| s.0).collect::<Vec<_>>(), vec![0, 1]);
        r.clear();
        // Destination on the ingress port: dropped.
        r.feed(&mut br, 0, &[&eth(A, [0x02, 0, 0, 0, 0, 0xc])]);
        assert!(r.sent.is_empty());
        assert_eq!(r.dropped[0].1, DropReason::NoRoute);
        assert_eq!(r.pool.available(), r.pool.capacity());
    }

    #[test]
    fn multicast_source_is_not_learned_and_stations_move() {
        let mut br = Bridge::new(2, &[]).unwrap();
        let mut r = Recorder::new(2);
        r.feed(&mut br, 0, &[&eth(B, BCAST)]);
        assert!(br.fdb.is_empty());
        r.feed(&mut br, 0, &[&eth(B, A)]);
        r.feed(&mut br, 1, &[&eth(B, A)]);
        assert_eq!(br.fdb.lookup(&A), Some(1));
        assert_eq!(br.fdb.moves, 1);
    }

    #[test]
    fn entries_age_out() {
        let mut fdb = Fdb::new(64, 10);
        fdb.learn(&A, 1);
        fdb.advance(10);
        assert_eq!(fdb.lookup(&A), Some(1));
        fdb.advance(11);
        assert_eq!(fdb.lookup(&A), None);
        assert_eq!(fdb.len(), 0);
    }

    #[test]
    fn full_sets_evict_the_oldest() {
        // 4 entries = one set of 4 ways: a fifth MAC evicts the least recently seen.
        let mut fdb = Fdb::new(4, 300);
        let macs: Vec<[u8; 6]> = (0..5u8).map(|i| [2, 0, 0, 0, 1, i]).collect();
        for (i, m) in macs.iter().enumerate() {
            fdb.advance(i as u32);
            fdb.learn(m, 0);
        }
        assert_eq!(fdb.evictions, 1);
        assert_eq!(fdb.lookup(&macs[0]), None);
        assert_eq!(fdb.lookup(&macs[4]), Some(0));
        assert_eq!(fdb.len(), 4);
    }

    #[test]
    fn fdb_file_metrics_and_port_changes() {
        let mut br = Bridge::new(2, &[]).unwrap();
        let mut r = Recorder::new(2);
        r.feed(&mut br, 1, &[&eth(B, A)]);
        let f = br.proc_file("fdb").unwrap();
        assert!(f.contains("02:00:00:00:00:0a    1    0"), "{f}");
        assert!(br.proc_file("routes").is_none());
        let mut snap = crate::metrics::sink::Snapshot::default();
        snap.begin();
        br.metrics(&mut snap);
        snap.end();
        assert_eq!(snap.series[0].name, "vecbox_bridge_fdb_entries");
        assert_eq!(f64::from_bits(snap.values[0]), 1.0);
        // A port added before it: the station follows its port (unit 1), now third.
        br.set_ports(
            &crate::nf::testing::specs(&[0, 5, 1]),
            &mut Recorder::new(2),
        )
        .unwrap();
        assert_eq!(br.fdb.lookup(&[0x02, 0, 0, 0, 0, 0xa]), Some(2));
        // Its port removed: forgotten.
        br.set_ports(&crate::nf::testing::specs(&[0, 5]), &mut Recorder::new(3))
            .unwrap();
        assert!(br.fdb.is_empty());
    }

    #[test]
    fn options_are_checked() {
        assert!(Bridge::new(1, &[]).is_err());
        let e = Bridge::new(2, &[("aging".into(), "x".into())])
            .err()
            .unwrap();
        assert!(e.to_string().contains("aging=300"), "{e}");
        let e = Bridge::new(2, &[("agin".into(), "5".into())])
            .err()
            .unwrap();
        assert!(e.to_string().contains("aging=SECONDS"), "{e}");
        assert!(
            Bridge::new(
                2,
                &[
                    ("fdb_size".into(), "16".into()),
                    ("aging".into(), "5".into())
                ]
            )
            .is_ok()
        );
    }
}
