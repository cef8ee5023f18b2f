//! Allocations from identity: every generated name, number and address of a lab comes
//! from *what* an object is (lab, node and interface names), never from its position in
//! the file, so reordering `nodes:` or `links:` changes nothing.
//!
//! Values that could collide are hash-and-probe: the first candidate is a hash of the
//! object's identity, the next ones hash the identity with a probe counter, until one is
//! free. Collisions are rare but possible, so allocations are *sticky*: a running lab's
//! [`Lock`] (saved in its plan) is taken first, and a new object never moves an existing
//! one. Values of objects that a change removes stay taken during that change, so new
//! objects can be made before old ones are removed. Without a prior lock, objects are
//! allocated in sorted identity order, so the result does not depend on the file's
//! order either.
//!
//! | object | value | range |
//! |---|---|---|
//! | guest/UML veth end | kernel name `vb` TAG + 8 chars | unique in the lab |
//! | guest/UML port | unit `vecN` (a name `vecN` fixes it) | lowest free in the node |
//! | interface | MAC (unless given) | locally administered unicast, unique in the lab |
//! | tap end of a guest/UML | descriptor number | lowest free from 3 in the node |
//! | underlay (node pair) | kernel names `vb` TAG `u` + 5 chars + `a`/`b`; a /30 in 169.254.0.0/16 | unique in the lab |
//! | l2tpv3/UDP link without `ports` | UDP port | 1701..=18084, unique in the lab |
//! | bess link | socket `bess-` + 6 chars `.sock` in the run directory | unique in the lab |

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::plan::Plan;
use super::topology::{LinkType, NodeKind};

/// Underlay /30 slots in 169.254.0.0/16.
pub const UNDERLAY_SLOTS: u32 = 16_384;
/// First default L2TPv3/UDP port, and how many follow it.
pub const UDP_BASE: u16 = 1701;
pub const UDP_PORTS: u16 = 16_384;

/// The allocations of a lab (what a lock file holds), keyed by identity. Only values
/// vecbox chose are here; what the file gives (a `vecN` name, `mac:`, `ports:`) is not.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lock {
    /// By `NODE:IFACE`.
    #[serde(default)]
    pub ifaces: BTreeMap<String, IfaceAlloc>,
    /// By `NODE_A|NODE_B` (sorted).
    #[serde(default)]
    pub underlays: BTreeMap<String, UnderlayAlloc>,
    /// By link id ([`link_id`]).
    #[serde(default)]
    pub links: BTreeMap<String, LinkAlloc>,
    /// Links between hosts, by link id: sessions, cookies, UDP ports
    /// ([`super::hosts`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cross: BTreeMap<String, super::hosts::CrossAlloc>,
}

/// What was chosen for one interface.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct IfaceAlloc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tap_fd: Option<i32>,
}

/// What was chosen for the underlay of a node pair.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UnderlayAlloc {
    pub kernel: [String; 2],
    pub slot: u32,
}

/// What was chosen for one link.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LinkAlloc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
}

/// FNV-1a over `parts`, each followed by a separator byte no name contains.
pub fn hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// `n` lowercase base-32 characters of `h` (at most 12).
pub fn b32(h: u64, n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..n.min(12))
        .map(|i| ALPHABET[((h >> (5 * i)) & 31) as usize] as char)
        .collect()
}

/// Candidate `probe` for identity `parts` (probe 0 is the plain hash).
fn candidate(parts: &[&str], probe: u32) -> u64 {
    if probe == 0 {
        hash(parts)
    } else {
        let p = probe.to_string();
        let mut v: Vec<&str> = parts.to_vec();
        v.push(&p);
        hash(&v)
    }
}

/// The first candidate for `parts` that `make` turns into a value not in `taken`.
pub fn probe<T: Ord + Clone>(
    parts: &[&str],
    taken: &mut BTreeSet<T>,
    make: impl Fn(u64) -> T,
) -> T {
    let mut i = 0;
    loop {
        let v = make(candidate(parts, i));
        if taken.insert(v.clone()) {
            return v;
        }
        i += 1;
    }
}

/// The id of the link between `a` and `b` (`NODE:IFACE` each): the two ends sorted.
pub fn link_id(a: &str, b: &str) -> String {
    if a <= b {
        format!("{a}|{b}")
    } else {
        format!("{b}|{a}")
    }
}

/// The id of the underlay between nodes `a` and `b`, and whether `a` is its first end.
pub fn underlay_id(a: &str, b: &str) -> (String, bool) {
    if a <= b {
        (format!("{a}|{b}"), true)
    } else {
        (format!("{b}|{a}"), false)
    }
}

/// Addresses of underlay slot `slot`: a /30 in 169.254.0.0/16.
pub fn underlay_addrs(slot: u32) -> [Ipv4Addr; 2] {
    let base = 0xa9fe_0000u32 + (slot % UNDERLAY_SLOTS) * 4;
    [Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2)]
}

fn mac_of(h: u64) -> String {
    let b = h.to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        (b[0] & 0xfc) | 0x02,
        b[1],
        b[2],
        b[3],
        b[4],
        b[5]
    )
}

/// `vecN` → N.
pub fn unit_of(s: &str) -> Option<u32> {
    let n = s.strip_prefix("vec")?;
    (!n.is_empty() && n.len() <= 4 && n.chars().all(|c| c.is_ascii_digit()))
        .then(|| n.parse().ok())
        .flatten()
}

/// Fill in every generated value of `p` (kernel names, units, MACs, tap descriptors,
/// underlays, UDP ports, bess sockets), taking `prior`'s where the object still exists,
/// and record what was chosen in `p.lock`. Interface settings from the file (`mac`) and
/// link options (`ports`) must already be in `p`.
pub fn assign(p: &mut Plan, prior: &Lock) {
    let mut lock = Lock::default();
    ifaces(p, prior, &mut lock);
    underlays(p, prior, &mut lock);
    links(p, prior, &mut lock);
    super::hosts::assign(p, prior, &mut lock);
    p.lock = lock;
}

fn ifaces(p: &mut Plan, prior: &Lock, lock: &mut Lock) {
    let lab = p.lab.clone();
    let tag = p.tag.clone();
    // Every interface by identity; what the file fixes is taken first.
    let mut ids: Vec<(String, usize, usize)> = Vec::new();
    for (ni, n) in p.nodes.iter().enumerate() {
        for (fi, f) in n.ifaces.iter().enumerate() {
            ids.push((format!("{}:{}", n.name, f.name), ni, fi));
        }
    }
    ids.sort();
    let mut macs: BTreeSet<String> = p
        .nodes
        .iter()
        .flat_map(|n| n.ifaces.iter().filter_map(|f| f.mac.clone()))
        .map(|m| m.to_ascii_lowercase())
        .collect();
    let mut kernels: BTreeSet<String> = BTreeSet::new();
    let mut units: BTreeMap<usize, BTreeSet<u32>> = BTreeMap::new();
    let mut fds: BTreeMap<usize, BTreeSet<i32>> = BTreeMap::new();
    let mut chosen: BTreeMap<String, IfaceAlloc> = BTreeMap::new();
    for (id, ni, fi) in &ids {
        let n = &mut p.nodes[*ni];
        let f = &mut n.ifaces[*fi];
        if n.kind.is_process() {
            f.unit = unit_of(&f.name);
            if let Some(u) = f.unit {
                units.entry(*ni).or_default().insert(u);
            }
        }
        chosen.insert(id.clone(), IfaceAlloc::default());
    }
    // Sticky values of the running lab, where still valid and free.
    for (id, ni, fi) in &ids {
        let Some(old) = prior.ifaces.get(id) else {
            continue;
        };
        let kind = p.nodes[*ni].kind;
        let link_kind = link_kind_of(p, *ni, *fi);
        let f = &mut p.nodes[*ni].ifaces[*fi];
        let a = chosen.get_mut(id).expect("every id is in chosen");
        if needs_kernel(kind, link_kind)
            && let Some(k) = &old.kernel
            && kernels.insert(k.clone())
        {
            a.kernel = Some(k.clone());
        }
        if kind.is_process()
            && f.unit.is_none()
            && let Some(u) = old.unit
            && units.entry(*ni).or_default().insert(u)
        {
            a.unit = Some(u);
        }
        if f.mac.is_none()
            && let Some(m) = &old.mac
            && macs.insert(m.clone())
        {
            a.mac = Some(m.clone());
        }
        if needs_fd(kind, link_kind)
            && let Some(d) = old.tap_fd
            && fds.entry(*ni).or_default().insert(d)
        {
            a.tap_fd = Some(d);
        }
    }
    // Every value of the running lab stays taken during this change, also those of
    // interfaces that are going away: they exist until the change removes them, and a
    // new interface must not collide with them (that is what lets new objects be made
    // before old ones are removed).
    let index: BTreeMap<String, usize> = p
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i))
        .collect();
    for (id, old) in &prior.ifaces {
        kernels.extend(old.kernel.clone());
        macs.extend(old.mac.clone());
        if let Some(ni) = id.split_once(':').and_then(|(n, _)| index.get(n)) {
            units.entry(*ni).or_default().extend(old.unit);
            fds.entry(*ni).or_default().extend(old.tap_fd);
        }
    }
    // New values for the rest, in identity order.
    for (id, ni, fi) in &ids {
        let kind = p.nodes[*ni].kind;
        let link_kind = link_kind_of(p, *ni, *fi);
        let user_unit = p.nodes[*ni].ifaces[*fi].unit;
        let user_mac = p.nodes[*ni].ifaces[*fi].mac.is_some();
        let a = chosen.get_mut(id).expect("every id is in chosen");
        if needs_kernel(kind, link_kind) && a.kernel.is_none() {
            a.kernel = Some(probe(&[&lab, id], &mut kernels, |h| {
                format!("vb{tag}{}", b32(h, 8))
            }));
        }
        if kind.is_process() && user_unit.is_none() && a.unit.is_none() {
            let taken = units.entry(*ni).or_default();
            let u = (0..).find(|u| !taken.contains(u)).unwrap_or(0);
            taken.insert(u);
            a.unit = Some(u);
        }
        if !user_mac && a.mac.is_none() {
            a.mac = Some(probe(&[&lab, id, "mac"], &mut macs, mac_of));
        }
        if needs_fd(kind, link_kind) && a.tap_fd.is_none() {
            let taken = fds.entry(*ni).or_default();
            let d = (3..).find(|d| !taken.contains(d)).unwrap_or(3);
            taken.insert(d);
            a.tap_fd = Some(d);
        }
    }
    for (id, ni, fi) in &ids {
        let a = &chosen[id];
        let f = &mut p.nodes[*ni].ifaces[*fi];
        if a.kernel.is_some() {
            f.kernel = a.kernel.clone();
        }
        if a.unit.is_some() {
            f.unit = a.unit;
        }
        if a.mac.is_some() {
            f.mac = a.mac.clone();
        }
        f.tap_fd = a.tap_fd;
    }
    lock.ifaces = chosen
        .into_iter()
        .filter(|(_, a)| a != &IfaceAlloc::default())
        .collect();
}

/// A guest or UML end of a veth link has a generated kernel name.
fn needs_kernel(node: NodeKind, link: LinkType) -> bool {
    node.is_process() && link == LinkType::Veth
}

/// A guest or UML end of a tap link gets the tap as a descriptor.
fn needs_fd(node: NodeKind, link: LinkType) -> bool {
    node.is_process() && link == LinkType::Tap
}

/// The link type of interface `fi` of node `ni` as far as allocation goes: a link
/// between hosts hands its end a descriptor (the tunnel socket), like a tap.
fn link_kind_of(p: &Plan, ni: usize, fi: usize) -> LinkType {
    let l = &p.links[p.nodes[ni].ifaces[fi].link];
    if l.cross.is_some() {
        LinkType::Tap
    } else {
        l.kind
    }
}

fn underlays(p: &mut Plan, prior: &Lock, lock: &mut Lock) {
    let lab = p.lab.clone();
    let tag = p.tag.clone();
    let mut ids: Vec<(String, usize)> = p
        .underlays
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let (a, b) = (&p.nodes[u.nodes[0]].name, &p.nodes[u.nodes[1]].name);
            (underlay_id(a, b).0, i)
        })
        .collect();
    ids.sort();
    let mut stems: BTreeSet<String> = BTreeSet::new();
    let mut slots: BTreeSet<u32> = BTreeSet::new();
    let mut chosen: BTreeMap<String, (Option<String>, Option<u32>)> = BTreeMap::new();
    for (id, _) in &ids {
        let mut c = (None, None);
        if let Some(old) = prior.underlays.get(id) {
            let s = stem(old).to_string();
            if stems.insert(s.clone()) {
                c.0 = Some(s);
            }
            if old.slot < UNDERLAY_SLOTS && slots.insert(old.slot) {
                c.1 = Some(old.slot);
            }
        }
        chosen.insert(id.clone(), c);
    }
    // Those of underlays going away stay taken during this change (see `ifaces`).
    for old in prior.underlays.values() {
        stems.insert(stem(old).to_string());
        slots.insert(old.slot);
    }
    for (id, i) in &ids {
        let c = &chosen[id];
        let stem = c.0.clone().unwrap_or_else(|| {
            probe(&[&lab, id, "underlay"], &mut stems, |h| {
                format!("vb{tag}u{}", b32(h, 5))
            })
        });
        let slot = c.1.unwrap_or_else(|| {
            probe(&[&lab, id, "slot"], &mut slots, |h| {
                (h % u64::from(UNDERLAY_SLOTS)) as u32
            })
        });
        let u = &mut p.underlays[*i];
        u.kernel = [format!("{stem}a"), format!("{stem}b")];
        u.addr = underlay_addrs(slot);
        lock.underlays.insert(
            id.clone(),
            UnderlayAlloc {
                kernel: u.kernel.clone(),
                slot,
            },
        );
    }
}

/// The common stem of an underlay's two names (`…a`, `…b`).
fn stem(a: &UnderlayAlloc) -> &str {
    a.kernel[0].strip_suffix('a').unwrap_or(&a.kernel[0])
}

fn links(p: &mut Plan, prior: &Lock, lock: &mut Lock) {
    let lab = p.lab.clone();
    let mut ids: Vec<(String, usize)> = p
        .links
        .iter()
        .enumerate()
        .map(|(i, l)| (link_id(&l.names[0], &l.names[1]), i))
        .collect();
    ids.sort();
    let mut ports: BTreeSet<u16> = p
        .links
        .iter()
        .filter_map(|l| l.udp_ports)
        .flat_map(|(a, b)| [a, b])
        .collect();
    let mut sockets: BTreeSet<String> = BTreeSet::new();
    let wants_port = |l: &super::plan::PLink| l.udp && l.udp_ports.is_none();
    let mut chosen: BTreeMap<String, LinkAlloc> = BTreeMap::new();
    for (id, i) in &ids {
        let l = &p.links[*i];
        let mut c = LinkAlloc::default();
        if let Some(old) = prior.links.get(id) {
            if wants_port(l)
                && let Some(port) = old.udp_port
                && ports.insert(port)
            {
                c.udp_port = Some(port);
            }
            if l.kind == LinkType::Bess
                && let Some(s) = &old.socket
                && sockets.insert(s.clone())
            {
                c.socket = Some(s.clone());
            }
        }
        chosen.insert(id.clone(), c);
    }
    // Those of links going away stay taken during this change (see `ifaces`).
    for old in prior.links.values() {
        ports.extend(old.udp_port);
        sockets.extend(old.socket.clone());
    }
    for (id, i) in &ids {
        let c = chosen.get_mut(id).expect("every id is in chosen");
        let l = &mut p.links[*i];
        if wants_port(l) && c.udp_port.is_none() {
            c.udp_port = Some(probe(&[&lab, id, "udp"], &mut ports, |h| {
                UDP_BASE + (h % u64::from(UDP_PORTS)) as u16
            }));
        }
        if l.kind == LinkType::Bess && c.socket.is_none() {
            c.socket = Some(probe(&[&lab, id, "bess"], &mut sockets, |h| {
                format!("bess-{}.sock", b32(h, 6))
            }));
        }
        if let Some(port) = c.udp_port {
            l.udp_ports = Some((port, port));
        }
        if let Some(s) = &c.socket {
            l.socket = Some(super::plan::run_dir(&lab).join(s));
        }
    }
    lock.links = chosen
        .into_iter()
        .filter(|(_, a)| a != &LinkAlloc::default())
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_names_fit() {
        // Fixed values: a change here renames every running lab's objects.
        assert_eq!(hash(&["lab", "a:eth0"]), hash(&["lab", "a:eth0"]));
        assert_ne!(hash(&["lab", "a:eth0"]), hash(&["lab", "a:eth1"]));
        assert_ne!(hash(&["ab", "c"]), hash(&["a", "bc"]));
        assert_eq!(b32(0, 4), "aaaa");
        assert_eq!(b32(31, 2), "7a");
        let tag = b32(hash(&["x"]), 4);
        assert_eq!(format!("vb{tag}{}", b32(u64::MAX, 8)).len(), 14);
        assert_eq!(format!("vb{tag}u{}b", b32(u64::MAX, 5)).len(), 13);
    }

    #[test]
    fn probing_skips_taken_values() {
        let mut taken = BTreeSet::new();
        let first = probe(&["a"], &mut taken, |h| h % 2);
        let second = probe(&["a"], &mut taken, |h| h % 2);
        assert_ne!(first, second);
        assert_eq!(taken.len(), 2);
    }

    #[test]
    fn macs_are_local_unicast() {
        for i in 0..64u64 {
            let m = mac_of(hash(&[&i.to_string()]));
            let b0 = u8::from_str_radix(&m[..2], 16).unwrap();
            assert_eq!(b0 & 0x03, 0x02, "{m}");
        }
    }

    #[test]
    fn ids_ignore_order() {
        assert_eq!(link_id("b:x", "a:y"), link_id("a:y", "b:x"));
        assert_eq!(underlay_id("b", "a"), ("a|b".to_string(), false));
        assert_eq!(underlay_addrs(0)[0], Ipv4Addr::new(169, 254, 0, 1));
        assert_eq!(underlay_addrs(64)[1], Ipv4Addr::new(169, 254, 1, 2));
        assert_eq!(
            underlay_addrs(UNDERLAY_SLOTS - 1)[1],
            Ipv4Addr::new(169, 254, 255, 254)
        );
        assert_eq!(unit_of("vec12"), Some(12));
        assert_eq!(unit_of("vec"), None);
        assert_eq!(unit_of("eth0"), None);
    }
}
