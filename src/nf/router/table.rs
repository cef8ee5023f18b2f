//! Longest-prefix-match route table: one hash map per prefix length in use, searched
//! from the longest length down (at most 33 or 129 lookups, usually a handful).

use std::collections::HashMap;
use std::net::IpAddr;

use super::config::{Cidr, mask};

/// Where a matching packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub port: usize,
    /// Gateway to resolve, or `None` for on-link destinations.
    pub gateway: Option<IpAddr>,
}

/// Routes for both IP versions.
#[derive(Default)]
pub struct Routes {
    v4: Vec<(u8, HashMap<u32, NextHop>)>,
    v6: Vec<(u8, HashMap<u128, NextHop>)>,
}

fn insert<K: std::hash::Hash + Eq>(
    t: &mut Vec<(u8, HashMap<K, NextHop>)>,
    len: u8,
    k: K,
    nh: NextHop,
) {
    let i = match t.iter().position(|(l, _)| *l == len) {
        Some(i) => i,
        None => {
            t.push((len, HashMap::new()));
            t.sort_by_key(|e| std::cmp::Reverse(e.0));
            t.iter().position(|(l, _)| *l == len).unwrap_or(0)
        }
    };
    // The first route for a prefix wins (connected routes are added first).
    t[i].1.entry(k).or_insert(nh);
}

impl Routes {
    /// Add a route for `prefix`; an existing route for the same prefix is kept.
    pub fn add(&mut self, prefix: Cidr, nh: NextHop) {
        match mask(prefix.addr, prefix.len) {
            IpAddr::V4(a) => insert(&mut self.v4, prefix.len, u32::from(a), nh),
            IpAddr::V6(a) => insert(&mut self.v6, prefix.len, u128::from(a), nh),
        }
    }

    /// The most specific route for `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<NextHop> {
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().find_map(|(len, m)| {
                    let k = a & u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
                    m.get(&k).copied()
                })
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().find_map(|(len, m)| {
                    let k = a & u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
                    m.get(&k).copied()
                })
            }
        }
    }

    /// Every route as (prefix, next hop), most specific first, IPv4 before IPv6.
    pub fn entries(&self) -> Vec<(Cidr, NextHop)> {
        let mut v: Vec<(Cidr, NextHop)> = Vec::with_capacity(self.len());
        for (len, m) in &self.v4 {
            let mut e: Vec<_> = m.iter().collect();
            e.sort_by_key(|(k, _)| **k);
            v.extend(e.into_iter().map(|(k, nh)| {
                let addr = IpAddr::V4((*k).into());
                (Cidr { addr, len: *len }, *nh)
            }));
        }
        for (len, m) in &self.v6 {
            let mut e: Vec<_> = m.iter().collect();
            e.sort_by_key(|(k, _)| **k);
            v.extend(e.into_iter().map(|(k, nh)| {
                let addr = IpAddr::V6((*k).into());
                (Cidr { addr, len: *len }, *nh)
            }));
        }
        v
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.v4.iter().map(|(_, m)| m.len()).sum::<usize>()
            + self.v6.iter().map(|(_, m)| m.len()).sum::<usize>()
    }

    /// `true` when there are no routes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let mut r = Routes::default();
        let nh = |port| NextHop {
            port,
            gateway: None,
        };
        r.add("0.0.0.0/0".parse().unwrap(), nh(0));
        r.add("10.0.0.0/8".parse().unwrap(), nh(1));
        r.add("10.1.2.0/24".parse().unwrap(), nh(2));
        r.add("10.1.2.7/32".parse().unwrap(), nh(3));
        r.add("fd00::/16".parse().unwrap(), nh(4));
        r.add("fd00:1::/64".parse().unwrap(), nh(5));
        let l = |s: &str| r.lookup(s.parse().unwrap()).map(|n| n.port);
        assert_eq!(l("10.1.2.7"), Some(3));
        assert_eq!(l("10.1.2.8"), Some(2));
        assert_eq!(l("10.9.0.1"), Some(1));
        assert_eq!(l("192.0.2.1"), Some(0));
        assert_eq!(l("fd00:1::9"), Some(5));
        assert_eq!(l("fd00:2::9"), Some(4));
        assert_eq!(l("2001:db8::1"), None);
        assert_eq!(r.len(), 6);
    }
}
