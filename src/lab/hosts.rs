//! Multi-host labs: the `hosts:` map, node placement (`host:`), and links between nodes
//! on different hosts, carried as Ethernet over L2TPv3/UDP (or GRE) between the two
//! hosts' underlay addresses.
//!
//! Everything here is a pure function of the topology and the lock: every host computes
//! the same plan from the same file and `NAME.lock.json`. Per link and direction vecbox
//! allocates a session id (the GRE key for `type: gre`), a 64-bit cookie and a UDP
//! port, from a hash of the lab name and the link's identity (its two endpoints), probed
//! past collisions and kept in the lock so they never move when nodes are added.
//!
//! The link's MTU is resolved against the underlay: `min(mtu, underlay_mtu −
//! overhead)` on both ends (`mtu_policy: clamp`, the default), or the file is rejected
//! (`mtu_policy: fail`). Overhead with IPv4: L2TPv3/UDP with 64-bit cookies is 58 bytes
//! (IP 20, UDP 8, L2TPv3 header 4, session 4, cookie 8, inner Ethernet 14); GRE with a
//! key is 42. An IPv6 underlay adds 20.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::alloc::{self, Lock, link_id};
use super::diag::{Diags, closest};
use super::plan::{self, MAX_NODE, Plan};

mod local;
pub mod preflight;
pub mod ssh;
use super::topology::{Link, LinkType, MtuPolicy, Node, Topology};
pub use local::{
    bind_socket, is_handed_socket, lock_path, project, read_lock, summary, write_lock,
};

/// Default underlay MTU of a host.
pub const DEFAULT_UNDERLAY_MTU: u32 = 1500;
/// Smallest MTU a link may end up with.
pub const MIN_MTU: u32 = 576;
/// First UDP port of cross-host links, and how many follow it.
pub const PORT_BASE: u16 = 20_000;
pub const PORTS: u16 = 40_000;

/// One machine of the lab.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PHost {
    pub name: String,
    /// Underlay address: tunnels are bound to it and sent to the peer's.
    pub address: IpAddr,
    /// `user@host[:port]` for the controller (SSH mode).
    pub ssh: Option<String>,
    /// Extra `ssh -o` options for reaching the host (`Key=value`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_options: Vec<String>,
    pub underlay_mtu: u32,
}

/// How a link between two hosts crosses: end A is on `hosts[0]`, end B on `hosts[1]`.
/// Index 0 of each pair is what A sends (and B expects), index 1 the reverse.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PCross {
    pub hosts: [String; 2],
    /// `l2tpv3` (over UDP) or `gre`.
    pub kind: LinkType,
    /// The link's MTU as asked for (`mtu`, default 1500); [`super::plan::PLink::mtu`]
    /// is the resolved one.
    pub requested: u32,
    /// Bytes of encapsulation around the inner frame's payload.
    pub overhead: u32,
    /// The smaller underlay MTU of the two hosts.
    pub underlay_mtu: u32,
    #[serde(flatten)]
    pub ids: CrossAlloc,
}

/// What was allocated for one cross-host link (the `cross` map of the lock). In the
/// lock, index 0 is the endpoint whose `NODE:IFACE` sorts first; in a [`PCross`] it is
/// the link's end A.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CrossAlloc {
    /// L2TPv3 session ids (GRE keys), per direction.
    pub sessions: [u32; 2],
    /// 64-bit L2TPv3 cookies, per direction (unused by GRE).
    pub cookies: [u64; 2],
    /// UDP port of end A, of end B (unused by GRE).
    pub ports: [u16; 2],
}

/// Bytes around the inner payload for a cross-host link of `kind` over IPv4 or IPv6.
pub fn overhead(kind: LinkType, v6: bool) -> u32 {
    let ip = if v6 { 40 } else { 20 };
    match kind {
        LinkType::Gre => ip + 4 + 4 + 14,
        _ => ip + 8 + 4 + 4 + 8 + 14,
    }
}

/// Check the `hosts:` map.
pub fn hosts(d: &mut Diags, topo: &Topology) -> Vec<PHost> {
    let mut out: Vec<PHost> = Vec::new();
    let mut seen: BTreeMap<IpAddr, String> = BTreeMap::new();
    for (name, h) in topo.hosts.iter() {
        if !plan::valid_name(&name.value, MAX_NODE) {
            d.on(
                name,
                format!("host name {:?} is not valid", name.value),
                Some(format!(
                    "use 1 to {MAX_NODE} characters of a-z A-Z 0-9 _ -, starting with a letter"
                )),
            );
        }
        let address = match &h.address {
            None => {
                d.on(
                    name,
                    format!("host `{}` has no `address`", name.value),
                    Some("add the host's underlay address, e.g. `address: 192.0.2.11`".into()),
                );
                None
            }
            Some(a) => {
                match a.value.parse::<IpAddr>() {
                    Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
                        d.on(
                            a,
                            format!(
                                "address {} of host `{}` is not a unicast address",
                                ip, name.value
                            ),
                            Some("use the address the other hosts reach this one at".into()),
                        );
                        None
                    }
                    Ok(ip) => {
                        if let Some(other) = seen.insert(ip, name.value.clone()) {
                            d.on(
                                a,
                                format!(
                                    "hosts `{other}` and `{}` have the same address {ip}",
                                    name.value
                                ),
                                Some("every host needs its own underlay address".into()),
                            );
                        }
                        Some(ip)
                    }
                    Err(_) => {
                        d.on(
                        a,
                        format!("address {:?} of host `{}` is not an IP address", a.value, name.value),
                        Some("write the underlay address literally, e.g. 192.0.2.11 or 2001:db8::11".into()),
                    );
                        None
                    }
                }
            }
        };
        let underlay_mtu = h.underlay_mtu.as_ref().map_or(DEFAULT_UNDERLAY_MTU, |m| {
            if !(MIN_MTU..=65535).contains(&m.value) {
                d.on(
                    m,
                    format!(
                        "underlay_mtu {} of host `{}` is out of range",
                        m.value, name.value
                    ),
                    Some(format!(
                        "{MIN_MTU}..=65535 (the MTU of the path between the hosts)"
                    )),
                );
            }
            m.value.clamp(MIN_MTU, 65535)
        });
        if let Some(s) = &h.ssh
            && ssh::parse_target(&s.value).is_none()
        {
            d.on(
                s,
                format!(
                    "ssh {:?} of host `{}` is not user@host[:port]",
                    s.value, name.value
                ),
                Some("e.g. ssh: root@192.0.2.11 or ssh: root@h1:2222".into()),
            );
        }
        for o in h.ssh_options.iter().flatten() {
            if !ssh::option_ok(&o.value) {
                d.on(
                    o,
                    format!(
                        "ssh option {:?} of host `{}` is not Key=value",
                        o.value, name.value
                    ),
                    Some("e.g. ssh_options: [IdentityFile=~/.ssh/lab, ConnectTimeout=5]".into()),
                );
            }
        }
        out.push(PHost {
            name: name.value.clone(),
            address: address.unwrap_or(IpAddr::from([0, 0, 0, 0])),
            ssh: h.ssh.as_ref().map(|s| s.value.clone()),
            ssh_options: h
                .ssh_options
                .iter()
                .flatten()
                .map(|o| o.value.clone())
                .collect(),
            underlay_mtu,
        });
    }
    out
}

#[cfg(test)]
fn ssh_ok(s: &str) -> bool {
    ssh::parse_target(s).is_some()
}

/// The host node `name` runs on: its `host:`, else the first host ("" without hosts).
pub fn place(
    d: &mut Diags,
    topo: &Topology,
    hosts: &[PHost],
    name: &Spanned<String>,
    n: &Node,
) -> String {
    let Some(h) = &n.host else {
        return hosts.first().map(|h| h.name.clone()).unwrap_or_default();
    };
    if hosts.iter().any(|x| x.name == h.value) {
        return h.value.clone();
    }
    let names: Vec<&str> = hosts.iter().map(|x| x.name.as_str()).collect();
    let hint = if topo.hosts.is_empty() {
        "add a `hosts:` map naming the machines (see docs/multihost.md), or remove `host:`"
            .to_string()
    } else {
        match closest(&h.value, &names) {
            Some(c) => format!("did you mean `{c}`? (hosts: {})", names.join(", ")),
            None => format!("hosts: {}", names.join(", ")),
        }
    };
    d.on(
        h,
        format!(
            "node `{}` is placed on host `{}`, which is not in `hosts:`",
            name.value, h.value
        ),
        Some(hint),
    );
    hosts.first().map(|h| h.name.clone()).unwrap_or_default()
}

/// How link `li` between nodes `a` and `b` (node indices of `p`) crosses hosts, when
/// they are on different ones: the link type it is realised with and its [`PCross`]
/// (ids allocated later by [`assign`]), and the resolved MTU. Problems go to `d`.
pub fn cross_link(
    d: &mut Diags,
    topo: &Topology,
    p: &Plan,
    li: usize,
    sl: &Spanned<Link>,
    ends: [usize; 2],
) -> Option<(LinkType, PCross, u32)> {
    let [a, b] = ends.map(|i| &p.nodes[i]);
    if a.host == b.host || a.host.is_empty() || b.host.is_empty() {
        return None;
    }
    let l = &sl.value;
    let here = sl.referenced;
    let declared = l
        .link_type
        .as_ref()
        .map(|t| t.value)
        .or(topo.defaults.link_type.as_ref().map(|t| t.value))
        .unwrap_or_default();
    let between = format!("`{}` on {} and `{}` on {}", a.name, a.host, b.name, b.host);
    let kind = match declared {
        LinkType::Veth | LinkType::L2tpv3 => LinkType::L2tpv3,
        LinkType::Gre => LinkType::Gre,
        other => {
            d.at(
                here,
                format!(
                    "link {li} ({other}) joins {between}: a {other} link cannot leave its machine"
                ),
                Some("leave `type` out (L2TPv3/UDP between the hosts) or use `type: gre`".into()),
            );
            return None;
        }
    };
    let given: Vec<&str> = [
        ("key", l.key.is_some()),
        ("session", l.session.is_some()),
        ("cookie", l.cookie.is_some()),
        ("cookie64", l.cookie64.is_some()),
        ("udp", l.udp.is_some()),
        ("ports", l.ports.is_some()),
        ("underlay_mtu", l.underlay_mtu.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    if !given.is_empty() {
        d.at(
            here,
            format!("link {li} joins {between}; `{}` cannot be set on a link between hosts", given.join("`, `")),
            Some("vecbox allocates sessions, cookies and ports (kept in NAME.lock.json) and takes the underlay MTU from `hosts:`; remove them".into()),
        );
    }
    for n in [a, b] {
        if !n.kind.is_guest() {
            d.at(
                here,
                format!("link {li} joins {between}, and `{}` is a {} node", n.name, n.kind),
                Some(format!(
                    "a link between hosts needs a vecbox guest (xconnect, bridge, router, firewall) at each end in this version: put an xconnect next to `{}` on host {}",
                    n.name, n.host
                )),
            );
            return None;
        }
    }
    let host = |name: &str| p.hosts.iter().find(|h| h.name == name);
    let (ha, hb) = (host(&a.host)?, host(&b.host)?);
    if ha.address.is_ipv4() != hb.address.is_ipv4() {
        d.at(
            here,
            format!(
                "link {li} joins {between}, but one host has an IPv4 and the other an IPv6 address"
            ),
            Some("give both hosts addresses of the same family".into()),
        );
        return None;
    }
    let over = overhead(kind, ha.address.is_ipv6());
    let underlay_mtu = ha.underlay_mtu.min(hb.underlay_mtu);
    let fit = underlay_mtu.saturating_sub(over);
    let requested = l
        .mtu
        .as_ref()
        .or(topo.defaults.mtu.as_ref())
        .map_or(1500, |m| m.value);
    let policy = l
        .mtu_policy
        .or(topo.defaults.mtu_policy)
        .unwrap_or_default();
    let at = l.mtu.as_ref().map_or(here, |m| m.referenced);
    if fit < MIN_MTU {
        d.at(
            at,
            format!("link {li} joins {between}: underlay MTU {underlay_mtu} minus {over} bytes of {kind} overhead leaves {fit}, below {MIN_MTU}"),
            Some(format!("raise `underlay_mtu` of the hosts to at least {}", MIN_MTU + over)),
        );
        return None;
    }
    if requested > fit && policy == MtuPolicy::Fail {
        d.at(
            at,
            format!("link {li} joins {between}: mtu {requested} plus {over} bytes of {kind} overhead does not fit underlay MTU {underlay_mtu} (mtu_policy: fail)"),
            Some(format!("use mtu ≤ {fit}, raise the hosts' `underlay_mtu`, or `mtu_policy: clamp`")),
        );
        return None;
    }
    let mtu = requested.min(fit);
    let cross = PCross {
        hosts: [a.host.clone(), b.host.clone()],
        kind,
        requested,
        overhead: over,
        underlay_mtu,
        ids: CrossAlloc::default(),
    };
    Some((kind, cross, mtu))
}

/// Give every link of an L2 domain that reaches a cross-host link (through xconnect and
/// bridge guests) the domain's smallest MTU, so no port of it takes frames the tunnel
/// cannot carry.
pub fn domain_mtu(p: &mut Plan) {
    use super::topology::NodeKind;
    let n = p.links.len();
    let mut seen = vec![false; n];
    for start in 0..n {
        if seen[start] || p.links[start].cross.is_none() {
            continue;
        }
        let mut domain = vec![start];
        seen[start] = true;
        let mut i = 0;
        while i < domain.len() {
            let l = domain[i];
            i += 1;
            for &(ni, _) in &p.links[l].ends {
                let node = &p.nodes[ni];
                if !matches!(node.kind, NodeKind::Xconnect | NodeKind::Bridge) {
                    continue;
                }
                for f in &node.ifaces {
                    if !seen[f.link] {
                        seen[f.link] = true;
                        domain.push(f.link);
                    }
                }
            }
        }
        let min = domain.iter().map(|&l| p.links[l].mtu).min().unwrap_or(1500);
        for l in domain {
            p.links[l].mtu = min;
        }
    }
}

/// Allocate sessions, cookies and ports of every cross-host link of `p`, keeping
/// `prior`'s, and record them in `lock`.
pub fn assign(p: &mut Plan, prior: &Lock, lock: &mut Lock) {
    let lab = p.lab.clone();
    let mut ids: Vec<(String, usize)> = p
        .links
        .iter()
        .enumerate()
        .filter(|(_, l)| l.cross.is_some())
        .map(|(i, l)| (link_id(&l.names[0], &l.names[1]), i))
        .collect();
    ids.sort();
    let mut sessions: BTreeSet<u32> = BTreeSet::new();
    let mut ports: BTreeSet<u16> = BTreeSet::new();
    let mut chosen: BTreeMap<String, CrossAlloc> = BTreeMap::new();
    // Kept values first, then new ones in identity order.
    for (id, _) in &ids {
        if let Some(old) = prior.cross.get(id)
            && old
                .sessions
                .iter()
                .all(|s| *s != 0 && !sessions.contains(s))
            && old.ports.iter().all(|x| !ports.contains(x))
            && old.sessions[0] != old.sessions[1]
            && old.ports[0] != old.ports[1]
        {
            sessions.extend(old.sessions);
            ports.extend(old.ports);
            chosen.insert(id.clone(), old.clone());
        }
    }
    for old in prior.cross.values() {
        sessions.extend(old.sessions);
        ports.extend(old.ports);
    }
    for (id, li) in &ids {
        let a = chosen.entry(id.clone()).or_insert_with(|| {
            // The direction is named by the sending endpoint, so it does not depend on
            // the order the file writes the endpoints in.
            let mut names = p.links[*li].names.clone();
            names.sort();
            let mut v = CrossAlloc::default();
            for (s, from) in names.iter().enumerate() {
                let from = from.as_str();
                v.sessions[s] = alloc::probe(&[&lab, id, from, "session"], &mut sessions, |h| {
                    ((h as u32) & 0x7fff_ffff).max(1)
                });
                v.cookies[s] = alloc::hash(&[&lab, id, from, "cookie"]) | 1;
                v.ports[s] = alloc::probe(&[&lab, id, from, "port"], &mut ports, |h| {
                    PORT_BASE + (h % u64::from(PORTS)) as u16
                });
            }
            v
        });
        // The lock is in endpoint-name order, the plan in the file's order.
        let l = &mut p.links[*li];
        let flip = l.names[0] > l.names[1];
        if let Some(c) = l.cross.as_mut() {
            c.ids = a.clone();
            if flip {
                c.ids.sessions.swap(0, 1);
                c.ids.cookies.swap(0, 1);
                c.ids.ports.swap(0, 1);
            }
        }
    }
    lock.cross = chosen;
}

/// The `vecN:` keys of the end on `side` of cross-host link `li` (without unit, MTU,
/// MAC and the common keys): the tunnel transport on a socket the supervisor binds on
/// the host's address and hands over as descriptor `fd`.
pub fn spec_keys(p: &Plan, li: usize, side: usize, fd: i32) -> Vec<String> {
    let l = &p.links[li];
    let Some(c) = &l.cross else {
        return Vec::new();
    };
    let addr = |h: &str| {
        p.hosts
            .iter()
            .find(|x| x.name == h)
            .map_or(IpAddr::from([0, 0, 0, 0]), |x| x.address)
    };
    let (me, peer) = (side, 1 - side);
    let (src, dst) = (addr(&c.hosts[me]), addr(&c.hosts[peer]));
    let ids = &c.ids;
    let mut kv = vec![
        format!("transport={}", c.kind),
        format!("fd={fd}"),
        format!("src={src}"),
        format!("dst={dst}"),
    ];
    if src.is_ipv6() {
        kv.push("v6=1".into());
    }
    if c.kind == LinkType::Gre {
        kv.push(format!("rx_key={}", ids.sessions[peer]));
        kv.push(format!("tx_key={}", ids.sessions[me]));
    } else {
        kv.extend([
            "udp=1".to_string(),
            format!("srcport={}", ids.ports[me]),
            format!("dstport={}", ids.ports[peer]),
            format!("rx_session={}", ids.sessions[peer]),
            format!("tx_session={}", ids.sessions[me]),
            "cookie64=1".to_string(),
            format!("rx_cookie={}", ids.cookies[peer]),
            format!("tx_cookie={}", ids.cookies[me]),
        ]);
    }
    kv
}

#[cfg(test)]
mod tests;
