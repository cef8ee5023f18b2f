//! Links: endpoints, which kinds take which link type, transport options, the `vecN:`
//! specs of guest and UML ends (validated by the real spec parser), underlays, MTU
//! against encapsulation overhead, GRE key and L2TPv3 session clashes.

use std::collections::BTreeMap;

use serde_saphyr::{Location, Spanned};

use super::super::alloc::unit_of;
use super::super::diag::Diags;
use super::super::plan::{PIface, PLink, Plan, Underlay};
use super::super::topology::{Link, LinkType, NodeKind, Topology};
use super::{parse_cidr, suggest_node};

/// Bytes a tunnel adds around an inner frame of `mtu` bytes of payload: outer IPv4,
/// encapsulation header, inner Ethernet header.
pub fn overhead(l: &Link, kind: LinkType) -> u32 {
    let eth = 14;
    let ip = 20;
    match kind {
        LinkType::Gre => {
            ip + 4
                + if l.key.is_some() { 4 } else { 0 }
                + if l.sequence == Some(true) { 4 } else { 0 }
                + eth
        }
        LinkType::L2tpv3 => {
            let cookie = match (&l.cookie, l.cookie64) {
                (None, _) => 0,
                (Some(_), Some(true)) => 8,
                (Some(_), _) => 4,
            };
            let udp = if l.udp == Some(true) { 8 + 4 } else { 0 };
            let counter = if l.counter == Some(true) { 4 } else { 0 };
            ip + udp + 4 + cookie + counter + eth
        }
        _ => 0,
    }
}

fn ifname_ok(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s != "."
        && s != ".."
        && !s.contains(['/', ':'])
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

struct Endpoint {
    node: usize,
    iface: String,
    at: Location,
}

fn endpoint(d: &mut Diags, topo: &Topology, p: &Plan, e: &Spanned<String>) -> Option<Endpoint> {
    let Some((node, iface)) = e.value.split_once(':') else {
        d.on(
            e,
            format!("endpoint {:?} is not NODE:INTERFACE", e.value),
            Some("e.g. client:eth0".into()),
        );
        return None;
    };
    let Some(ni) = p.nodes.iter().position(|n| n.name == node) else {
        d.on(
            e,
            format!(
                "endpoint {:?} names node `{node}`, which does not exist",
                e.value
            ),
            suggest_node(topo, node),
        );
        return None;
    };
    let kind = p.nodes[ni].kind;
    let max = if kind == NodeKind::Host { 15 } else { 32 };
    if !ifname_ok(iface, max) {
        let hint = if kind == NodeKind::Host && iface.len() > 15 && ifname_ok(iface, 64) {
            format!(
                "Linux interface names are at most 15 bytes and `{node}` is a host, so the name is used as is; e.g. `{node}:{}`",
                &iface[..15]
            )
        } else {
            format!("1 to {max} bytes without '/', ':' or whitespace")
        };
        d.on(
            e,
            format!("interface name {iface:?} of `{node}` is not valid"),
            Some(hint),
        );
        return None;
    }
    if kind == NodeKind::Uml && unit_of(iface).is_none() {
        d.on(
            e,
            format!("UML node `{node}` has no interface {iface:?}"),
            Some(format!(
                "a UML kernel names its interfaces vec0, vec1, ...: write `{node}:vec0`"
            )),
        );
        return None;
    }
    if kind == NodeKind::Host && iface == "lo" {
        d.on(
            e,
            "`lo` cannot be a link endpoint",
            Some("name another interface, e.g. eth0".into()),
        );
        return None;
    }
    Some(Endpoint {
        node: ni,
        iface: iface.to_string(),
        at: e.referenced,
    })
}

/// Options that only some link types take: (key, set, types).
fn typed_options(l: &Link) -> Vec<(&'static str, bool, &'static [LinkType])> {
    const GRE: &[LinkType] = &[LinkType::Gre];
    const L2: &[LinkType] = &[LinkType::L2tpv3];
    const TUN: &[LinkType] = &[LinkType::Gre, LinkType::L2tpv3];
    vec![
        ("key", l.key.is_some(), GRE),
        ("sequence", l.sequence.is_some(), GRE),
        ("pin_sequence", l.pin_sequence.is_some(), GRE),
        ("session", l.session.is_some(), L2),
        ("cookie", l.cookie.is_some(), L2),
        ("cookie64", l.cookie64.is_some(), L2),
        ("udp", l.udp.is_some(), L2),
        ("ports", l.ports.is_some(), L2),
        ("counter", l.counter.is_some(), L2),
        ("pin_counter", l.pin_counter.is_some(), L2),
        ("underlay_mtu", l.underlay_mtu.is_some(), TUN),
    ]
}

/// Check and record every link.
pub fn links(d: &mut Diags, topo: &Topology, p: &mut Plan) {
    let mut used: BTreeMap<(usize, String), usize> = BTreeMap::new();
    let mut pairs: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (li, sl) in topo.links.iter().enumerate() {
        let l = &sl.value;
        let kind = l
            .link_type
            .as_ref()
            .map(|t| t.value)
            .or(topo.defaults.link_type.as_ref().map(|t| t.value))
            .unwrap_or_default();
        let here = sl.referenced;
        if l.endpoints.len() != 2 {
            d.at(
                here,
                format!(
                    "link {li} has {} endpoints; a link joins exactly two",
                    l.endpoints.len()
                ),
                Some("endpoints: [a:eth0, b:eth0]".into()),
            );
            continue;
        }
        for (key, set, types) in typed_options(l) {
            if set && !types.contains(&kind) {
                let names: Vec<_> = types.iter().map(|t| t.as_str()).collect();
                d.at(
                    here,
                    format!(
                        "link {li} is {kind}; `{key}` is an option of {} links",
                        names.join("/")
                    ),
                    Some(format!("remove `{key}` or set `type: {}`", names[0])),
                );
            }
        }
        let ends: Vec<_> = l
            .endpoints
            .iter()
            .map(|e| endpoint(d, topo, p, e))
            .collect();
        let (Some(a), Some(b)) = (&ends[0], &ends[1]) else {
            continue;
        };
        let mut dup = false;
        for e in [a, b] {
            if let Some(prev) = used.insert((e.node, e.iface.clone()), li) {
                dup = true;
                d.at(
                    e.at,
                    format!(
                        "interface `{}:{}` is already used by link {prev}",
                        p.nodes[e.node].name, e.iface
                    ),
                    Some("each interface joins one link; name another interface".into()),
                );
            }
        }
        if a.node == b.node {
            d.at(
                here,
                format!("link {li} joins node `{}` to itself", p.nodes[a.node].name),
                None,
            );
            continue;
        }
        if dup {
            continue;
        }
        // Between hosts: L2TPv3/UDP or GRE between the hosts' addresses.
        let cross = super::super::hosts::cross_link(d, topo, p, li, sl, [a.node, b.node]);
        if cross.is_none() && p.nodes[a.node].host != p.nodes[b.node].host {
            continue;
        }
        let kind = cross.as_ref().map_or(kind, |c| c.0);
        if cross.is_none() && !kinds_fit(d, p, li, kind, [a, b], here) {
            continue;
        }
        let mtu = l
            .mtu
            .as_ref()
            .or(topo.defaults.mtu.as_ref())
            .map(|m| m.value)
            .unwrap_or(1500);
        if !(576..=65534).contains(&mtu) {
            let at = l.mtu.as_ref().map(|m| m.referenced).unwrap_or(here);
            d.at(
                at,
                format!("mtu {mtu} is out of range"),
                Some("576..=65534".into()),
            );
        }
        let mtu = cross.as_ref().map_or(mtu, |c| c.2);
        let underlay = (cross.is_none() && matches!(kind, LinkType::Gre | LinkType::L2tpv3)).then(|| {
            // Ordered by node name, so the underlay does not depend on the file's order.
            let (na, nb) = (&p.nodes[a.node].name, &p.nodes[b.node].name);
            let key = if na <= nb {
                (a.node, b.node)
            } else {
                (b.node, a.node)
            };
            let names = (p.nodes[key.0].name.clone(), p.nodes[key.1].name.clone());
            let next = pairs.len();
            let u = *pairs.entry(names).or_insert(next);
            if u == p.underlays.len() {
                // Names and addresses are allocated once every link is known.
                p.underlays.push(Underlay {
                    nodes: [key.0, key.1],
                    kernel: [String::new(), String::new()],
                    addr: [std::net::Ipv4Addr::UNSPECIFIED; 2],
                    mtu: 0,
                });
            }
            let need = mtu + overhead(l, kind);
            match &l.underlay_mtu {
                Some(um) if need > um.value => d.on(
                    um,
                    format!(
                        "mtu {mtu} plus {} bytes of {kind} overhead needs an underlay MTU of {need}, above underlay_mtu {}",
                        overhead(l, kind),
                        um.value
                    ),
                    Some(format!("lower `mtu` to {} or raise `underlay_mtu`", um.value.saturating_sub(overhead(l, kind)))),
                ),
                _ if need > 65535 => d.at(
                    here,
                    format!("mtu {mtu} plus {} bytes of {kind} overhead exceeds 65535", overhead(l, kind)),
                    Some(format!("use mtu ≤ {}", 65535 - overhead(l, kind))),
                ),
                _ => {}
            }
            let want = l.underlay_mtu.as_ref().map_or(need, |m| m.value);
            let un = &mut p.underlays[u];
            un.mtu = un.mtu.max(want.min(65535));
            u
        });
        let listener = (kind == LinkType::Bess).then(|| {
            if p.nodes[a.node].kind.is_guest() {
                0
            } else {
                1
            }
        });
        let names = [a, b].map(|e| format!("{}:{}", p.nodes[e.node].name, e.iface));
        let mut idx = [0usize; 2];
        let plan_index = p.links.len();
        for (side, e) in [a, b].into_iter().enumerate() {
            let node = &mut p.nodes[e.node];
            // Guest/UML veth ends get generated names (super::super::alloc).
            let kernel = match (kind, node.kind) {
                (LinkType::Veth | LinkType::Tap, NodeKind::Host) => Some(e.iface.clone()),
                _ => None,
            };
            idx[side] = node.ifaces.len();
            node.ifaces.push(PIface {
                name: e.iface.clone(),
                kernel,
                link: plan_index,
                side,
                unit: None,
                spec: None,
                addresses: Vec::new(),
                mac: None,
                tap_fd: None,
            });
        }
        p.links.push(PLink {
            pos: li,
            kind,
            ends: [(a.node, idx[0]), (b.node, idx[1])],
            names,
            mtu: mtu.min(65534) as u16,
            underlay,
            socket: None,
            listener,
            udp: kind == LinkType::L2tpv3 && l.udp == Some(true),
            udp_ports: given_ports(l),
            cross: cross.map(|c| c.1),
        });
    }
}

/// `ports: [A, B]` as written (validated when the ends' specs are built).
fn given_ports(l: &Link) -> Option<(u16, u16)> {
    match &l.ports {
        Some(p) if p.value.len() == 2 => Some((
            u16::try_from(p.value[0]).unwrap_or(0),
            u16::try_from(p.value[1]).unwrap_or(0),
        )),
        _ => None,
    }
}

fn kinds_fit(
    d: &mut Diags,
    p: &Plan,
    li: usize,
    kind: LinkType,
    e: [&Endpoint; 2],
    here: Location,
) -> bool {
    let k = [p.nodes[e[0].node].kind, p.nodes[e[1].node].kind];
    let hosts = k.iter().filter(|k| **k == NodeKind::Host).count();
    let umls = k.iter().filter(|k| **k == NodeKind::Uml).count();
    let problem = match kind {
        LinkType::Veth => None,
        LinkType::Tap if hosts != 1 => Some((
            "a tap link joins a host node (which gets the tap device) to a guest or UML node (which drives it)".to_string(),
            if hosts == 2 { "use a veth link between two hosts" } else { "use veth or bess between guests and UML nodes" },
        )),
        LinkType::Gre | LinkType::L2tpv3 | LinkType::Bess if hosts > 0 => Some((
            format!("a {kind} link needs a vecbox guest or UML node at both ends; host nodes take veth and tap links (this kernel has no gretap/l2tp modules)"),
            "join the host to an xconnect guest with a veth link and put the tunnel between guests",
        )),
        LinkType::Bess if umls == 2 => Some((
            "a bess link needs a listening end, and a UML kernel can only connect".to_string(),
            "put a vecbox guest (e.g. xconnect) at one end",
        )),
        _ => None,
    };
    if let Some((what, hint)) = problem {
        d.at(
            here,
            format!(
                "link {li} ({}:{} – {}:{}): {what}",
                p.nodes[e[0].node].name, e[0].iface, p.nodes[e[1].node].name, e[1].iface
            ),
            Some(hint.to_string()),
        );
        return false;
    }
    true
}

/// Two gre (or l2tpv3) links over the same underlay that a receiving socket cannot tell
/// apart: same key / session (and ports for UDP). Run after allocation.
pub fn clashes(d: &mut Diags, topo: &Topology, p: &Plan) {
    let ident = |li: usize| -> Option<(LinkType, bool, String)> {
        let pl = &p.links[li];
        let l = &topo.links.get(link_pos(p, li))?.value;
        let a_first = p.underlays[pl.underlay?].nodes[0] == pl.ends[0].0;
        let (ab, ba) = match pl.kind {
            LinkType::Gre => l
                .key
                .as_ref()
                .and_then(|k| k.value.pair())
                .unwrap_or((u64::MAX, u64::MAX)),
            _ => l
                .session
                .as_ref()
                .and_then(|k| k.value.pair())
                .unwrap_or((0, 0)),
        };
        // What the underlay's first node receives, then what the second receives.
        let (rx0, rx1) = if a_first { (ba, ab) } else { (ab, ba) };
        let ports = pl.udp.then_some(pl.udp_ports).flatten();
        Some((pl.kind, ports.is_some(), format!("{rx0}/{rx1}/{ports:?}")))
    };
    for i in 0..p.links.len() {
        for j in 0..i {
            let (li, lj) = (&p.links[i], &p.links[j]);
            if li.underlay.is_none() || li.underlay != lj.underlay {
                continue;
            }
            let (Some(a), Some(b)) = (ident(i), ident(j)) else {
                continue;
            };
            if a == b {
                let what = if li.kind == LinkType::Gre {
                    "key"
                } else {
                    "session"
                };
                let n = &p.underlays[li.underlay.unwrap_or(0)].nodes;
                d.at(
                    topo.links[link_pos(p, i)].referenced,
                    format!(
                        "links {} and {} both carry {} between `{}` and `{}` with the same {what}; the receiving socket cannot tell them apart",
                        link_pos(p, j),
                        link_pos(p, i),
                        li.kind,
                        p.nodes[n[0]].name,
                        p.nodes[n[1]].name
                    ),
                    Some(format!("give each link its own `{what}`")),
                );
            }
        }
    }
}

/// Position in the file of planned link `i`.
fn link_pos(p: &Plan, i: usize) -> usize {
    p.links[i].pos
}

/// After all links: interface settings (addresses, MACs) and route devices.
pub fn settings(d: &mut Diags, topo: &Topology, p: &mut Plan, links_ok: bool) {
    for (ni, (name, n)) in topo.nodes.iter().enumerate() {
        let kind = p.nodes[ni].kind;
        for (ifn, cfg) in n.interfaces.iter() {
            let Some(pi) = p.nodes[ni].ifaces.iter().position(|f| f.name == ifn.value) else {
                if !links_ok {
                    continue;
                }
                d.on(
                    ifn,
                    format!(
                        "interface `{}` of `{}` is not on any link",
                        ifn.value, name.value
                    ),
                    Some(format!(
                        "add a link with endpoint {}:{}",
                        name.value, ifn.value
                    )),
                );
                continue;
            };
            for a in &cfg.addresses {
                if kind != NodeKind::Host {
                    d.on(
                        a,
                        format!(
                            "`{}` is a {kind} node; only host interfaces take addresses",
                            name.value
                        ),
                        Some("configure addresses inside the guest (router: `config`)".into()),
                    );
                } else if parse_cidr(&a.value).is_none() {
                    d.on(
                        a,
                        format!("address {:?} is not ADDRESS/PREFIX", a.value),
                        Some("e.g. 10.0.0.1/24 or fd00::1/64".into()),
                    );
                }
            }
            if let Some(m) = &cfg.mac
                && m.value.parse::<crate::transport::spec::MacAddr>().is_err()
            {
                d.on(
                    m,
                    format!("MAC {:?} is not valid", m.value),
                    Some("e.g. 02:00:00:00:00:01".into()),
                );
            }
            let f = &mut p.nodes[ni].ifaces[pi];
            f.addresses = cfg.addresses.iter().map(|a| a.value.clone()).collect();
            f.mac = cfg.mac.as_ref().map(|m| m.value.clone());
        }
        for r in &p.nodes[ni].routes {
            if let Some(dev) = &r.dev
                && !p.nodes[ni].ifaces.iter().any(|f| &f.name == dev)
            {
                d.on(
                    name,
                    format!(
                        "route to {} uses `dev: {dev}`, which is not an interface of `{}`",
                        r.to, name.value
                    ),
                    None,
                );
            }
        }
        if kind.is_process() {
            let mut units: Vec<u32> = p.nodes[ni]
                .ifaces
                .iter()
                .filter_map(|f| unit_of(&f.name))
                .collect();
            units.sort_unstable();
            if units.windows(2).any(|w| w[0] == w[1]) {
                d.on(
                    name,
                    format!("`{}` names the same vecN twice", name.value),
                    None,
                );
            }
        }
    }
}

/// After allocation: ports in unit order, port counts, specs, guest files.
pub fn finish_nodes(d: &mut Diags, topo: &Topology, p: &mut Plan, links_ok: bool) {
    for (ni, (name, n)) in topo.nodes.iter().enumerate() {
        if p.nodes[ni].kind.is_process() {
            sort_ports(p, ni);
            if links_ok {
                ports_count(d, p, ni, name);
            }
            super::specs::specs(d, topo, p, ni, n.depth.as_ref().map(|x| x.value));
            super::specs::translate_ports(p, ni);
        }
    }
}

/// Put a guest's or UML node's interfaces in port (unit) order.
fn sort_ports(p: &mut Plan, ni: usize) {
    let node = &mut p.nodes[ni];
    node.ifaces.sort_by_key(|f| f.unit);
    // Re-point the links at the sorted interfaces.
    for (fi, f) in node.ifaces.iter().enumerate() {
        p.links[f.link].ends[f.side] = (ni, fi);
    }
}

fn ports_count(d: &mut Diags, p: &Plan, ni: usize, name: &Spanned<String>) {
    let node = &p.nodes[ni];
    let n = node.ifaces.len();
    let bad = match node.kind {
        NodeKind::Xconnect if n != 2 => Some("exactly 2"),
        NodeKind::Bridge if n < 2 => Some("at least 2"),
        NodeKind::Router | NodeKind::Firewall if n < 1 => Some("at least 1"),
        _ => None,
    };
    if let Some(want) = bad {
        d.on(
            name,
            format!(
                "{} `{}` has {n} link(s); it needs {want}",
                node.kind, name.value
            ),
            Some("add or remove links ending at this node".into()),
        );
    }
}
