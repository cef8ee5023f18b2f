//! Rule lookup that does not scan every rule per packet.
//!
//! Each rule is filed under its most selective field, in one of four indexes:
//! 1. destination port (rules with `proto tcp|udp|sctp` and a `dport` set of at most
//!    [`PORT_INDEX_MAX`] ports): a hash map (protocol, port) → rules;
//! 2. destination prefix: one hash map per (family, prefix length) in use;
//! 3. source prefix: likewise;
//! 4. everything else: one list.
//!
//! A packet looks up its port bucket, one bucket per destination and source prefix
//! length in use, and the rest list. Every list holds rule indices in file order, so a
//! k-way merge visits candidates in order and the first that fully matches wins: the
//! result is exactly that of a linear first-match scan, at the cost of a few hash
//! lookups plus the candidates that share a key with the packet.

use std::collections::HashMap;

use super::rules::{Packet, Rule};

/// Rules whose `dport` covers more ports than this go to another index.
pub const PORT_INDEX_MAX: usize = 64;
/// Most lists merged per packet; beyond this (unusual: very many distinct prefix
/// lengths) the lookup falls back to a scan.
const MAX_LISTS: usize = 48;

/// Small rule sets are scanned: below this a scan beats the hash lookups.
const SCAN_BELOW: usize = 16;

/// A fast hasher for the fixed-size integer keys of the indexes and the connection
/// table (multiply-rotate, as rustc's FxHasher); keys come from packets but the tables
/// are bounded, so hash flooding costs speed, never memory.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut v = [0u8; 8];
            v[..c.len()].copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(v));
        }
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

/// `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

type Prefixes = Vec<(bool, u8, u128, FastMap<u128, Vec<u32>>)>;

/// The index over a rule list.
pub struct Classifier {
    rules: Vec<Rule>,
    by_port: FastMap<(u8, u16), Vec<u32>>,
    by_dst: Prefixes,
    by_src: Prefixes,
    rest: Vec<u32>,
}

fn file(list: &mut Prefixes, v6: bool, len: u8, mask: u128, addr: u128, idx: u32) {
    let i = match list.iter().position(|(f, l, _, _)| *f == v6 && *l == len) {
        Some(i) => i,
        None => {
            list.push((v6, len, mask, FastMap::default()));
            list.len() - 1
        }
    };
    let v = list[i].3.entry(addr).or_default();
    if v.last() != Some(&idx) {
        v.push(idx);
    }
}

fn port_count(r: &Rule) -> usize {
    r.dport.iter().map(|(a, b)| usize::from(*b - *a) + 1).sum()
}

impl Classifier {
    /// Index `rules` (kept in order).
    pub fn new(rules: Vec<Rule>) -> Classifier {
        let mut c = Classifier {
            rules: Vec::new(),
            by_port: FastMap::default(),
            by_dst: Vec::new(),
            by_src: Vec::new(),
            rest: Vec::new(),
        };
        for (i, r) in rules.iter().enumerate() {
            let idx = i as u32;
            if let Some(proto) = r.proto
                && !r.dport.is_empty()
                && port_count(r) <= PORT_INDEX_MAX
            {
                for &(a, b) in &r.dport {
                    for p in a..=b {
                        let v = c.by_port.entry((proto, p)).or_default();
                        if v.last() != Some(&idx) {
                            v.push(idx);
                        }
                    }
                }
            } else if !r.dst.is_empty() && r.dst.iter().all(|p| p.len > 0) {
                for p in &r.dst {
                    file(&mut c.by_dst, p.v6, p.len, p.mask, p.addr, idx);
                }
            } else if !r.src.is_empty() && r.src.iter().all(|p| p.len > 0) {
                for p in &r.src {
                    file(&mut c.by_src, p.v6, p.len, p.mask, p.addr, idx);
                }
            } else {
                c.rest.push(idx);
            }
        }
        c.rules = rules;
        c
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Index of the first rule matching `p`.
    pub fn lookup(&self, p: &Packet) -> Option<usize> {
        if self.rules.len() < SCAN_BELOW {
            return self.scan(p);
        }
        let mut lists: [&[u32]; MAX_LISTS] = [&[]; MAX_LISTS];
        let mut n = 0;
        if let Some((_, dport)) = p.ports
            && let Some(v) = self.by_port.get(&(p.proto, dport))
        {
            lists[n] = v;
            n += 1;
        }
        for (table, addr) in [(&self.by_dst, p.dst), (&self.by_src, p.src)] {
            for (v6, _, mask, m) in table {
                if *v6 != p.v6 {
                    continue;
                }
                if let Some(v) = m.get(&(addr & mask)) {
                    if n == MAX_LISTS - 1 {
                        return self.scan(p);
                    }
                    lists[n] = v;
                    n += 1;
                }
            }
        }
        lists[n] = &self.rest;
        n += 1;
        // k-way merge by rule index; the first full match is the answer.
        let mut heads = [0usize; MAX_LISTS];
        loop {
            let mut best: Option<(u32, usize)> = None;
            for (k, l) in lists[..n].iter().enumerate() {
                if let Some(&idx) = l.get(heads[k])
                    && best.is_none_or(|(b, _)| idx < b)
                {
                    best = Some((idx, k));
                }
            }
            let (idx, k) = best?;
            heads[k] += 1;
            if self.rules[idx as usize].matches(p) {
                return Some(idx as usize);
            }
        }
    }

    /// First match by scanning every rule (the reference for [`Classifier::lookup`]).
    pub fn scan(&self, p: &Packet) -> Option<usize> {
        self.rules.iter().position(|r| r.matches(p))
    }
}
