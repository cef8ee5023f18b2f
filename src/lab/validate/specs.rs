//! The `vecN:` spec of every guest and UML port, built from the link options and
//! validated by the same parser the guests use; and interface names in router/firewall
//! files translated to ports.

use std::path::PathBuf;

use super::super::diag::Diags;
use super::super::plan::Plan;
use super::super::topology::{LinkType, Topology};
use crate::transport::Spec;

pub(super) fn specs(
    d: &mut Diags,
    topo: &Topology,
    p: &mut Plan,
    ni: usize,
    node_depth: Option<u32>,
) {
    let mut taps = 0;
    for fi in 0..p.nodes[ni].ifaces.len() {
        let f = p.nodes[ni].ifaces[fi].clone();
        let link = p.links[f.link].clone();
        let pos = link.pos;
        let Some(sl) = topo.links.get(pos) else {
            continue;
        };
        let l = &sl.value;
        let unit = f.unit.unwrap_or(0);
        let mut kv: Vec<String> = Vec::new();
        if link.cross.is_some() {
            // Between hosts: the tunnel on a socket the supervisor binds and hands over.
            let fd = 3 + taps;
            taps += 1;
            p.nodes[ni].ifaces[fi].tap_fd = Some(fd);
            kv.extend(super::super::hosts::spec_keys(p, f.link, f.side, fd));
        } else {
            match link.kind {
                LinkType::Veth => {
                    kv.push("transport=raw".into());
                    kv.push(format!("ifname={}", f.kernel.clone().unwrap_or_default()));
                }
                LinkType::Tap => {
                    let fd = 3 + taps;
                    taps += 1;
                    p.nodes[ni].ifaces[fi].tap_fd = Some(fd);
                    kv.push("transport=fd".into());
                    kv.push(format!("fd={fd}"));
                }
                LinkType::Bess => {
                    kv.push("transport=bess".into());
                    let path = link.socket.clone().unwrap_or_else(|| PathBuf::from("/"));
                    let key = if link.listener == Some(f.side) {
                        "listen"
                    } else {
                        "dst"
                    };
                    kv.push(format!("{key}={}", path.display()));
                }
                LinkType::Gre | LinkType::L2tpv3 => {
                    let u = &p.underlays[link.underlay.unwrap_or(0)];
                    let me = usize::from(u.nodes[0] != ni);
                    kv.push(format!("transport={}", link.kind));
                    kv.push(format!("src={}", u.addr[me]));
                    kv.push(format!("dst={}", u.addr[1 - me]));
                    let flip = |pair: (u64, u64)| if f.side == 0 { pair } else { (pair.1, pair.0) };
                    if link.kind == LinkType::Gre {
                        if let Some((tx, rx)) =
                            l.key.as_ref().and_then(|k| k.value.pair()).map(flip)
                        {
                            kv.push(format!("rx_key={rx}"));
                            kv.push(format!("tx_key={tx}"));
                        }
                        flag(&mut kv, "sequence", l.sequence);
                        flag(&mut kv, "pin_sequence", l.pin_sequence);
                    } else {
                        let s = l.session.as_ref().and_then(|k| k.value.pair());
                        if s.is_none() && f.side == 0 {
                            d.at(
                                sl.referenced,
                                format!("l2tpv3 link {pos} needs `session`"),
                                Some("session: 1 (or [A_TO_B, B_TO_A])".into()),
                            );
                        }
                        let (tx, rx) = flip(s.unwrap_or((1, 1)));
                        kv.push(format!("rx_session={rx}"));
                        kv.push(format!("tx_session={tx}"));
                        if let Some((tx, rx)) =
                            l.cookie.as_ref().and_then(|k| k.value.pair()).map(flip)
                        {
                            kv.push(format!("rx_cookie={rx}"));
                            kv.push(format!("tx_cookie={tx}"));
                        }
                        flag(&mut kv, "cookie64", l.cookie64);
                        flag(&mut kv, "counter", l.counter);
                        flag(&mut kv, "pin_counter", l.pin_counter);
                        if l.udp == Some(true) {
                            kv.push("udp=1".into());
                            // As written (the spec parser checks the range), else allocated.
                            let (pa, pb) = match &l.ports {
                                Some(p) if p.value.len() == 2 => (p.value[0], p.value[1]),
                                _ => link
                                    .udp_ports
                                    .map_or((0, 0), |(a, b)| (u32::from(a), u32::from(b))),
                            };
                            let (src, dst) = if f.side == 0 { (pa, pb) } else { (pb, pa) };
                            kv.push(format!("srcport={src}"));
                            kv.push(format!("dstport={dst}"));
                        }
                    }
                    for (k, v) in [
                        ("key", &l.key),
                        ("session", &l.session),
                        ("cookie", &l.cookie),
                    ] {
                        if let Some(v) = v
                            && f.side == 0
                            && v.value.pair().is_none()
                        {
                            d.on(
                                v,
                                format!("`{k}` takes one number or a list of two"),
                                Some(format!("{k}: 7 or {k}: [7, 8]")),
                            );
                        }
                    }
                }
            }
        }
        if link.mtu != 1500 {
            kv.push(format!("mtu={}", link.mtu));
        }
        let depth = l.depth.as_ref().map(|x| x.value).or(node_depth).or(topo
            .defaults
            .depth
            .as_ref()
            .map(|x| x.value));
        if let Some(depth) = depth {
            kv.push(format!("depth={depth}"));
        }
        let gro = l
            .gro
            .or(topo.defaults.gro)
            .unwrap_or(link.kind == LinkType::Veth);
        if gro && link.kind != LinkType::Tap {
            kv.push("gro=1".into());
        }
        if link.kind == LinkType::Tap || l.vec == Some(false) {
            kv.push("vec=0".into());
        }
        if let Some(h) = &l.headroom {
            kv.push(format!("headroom={}", h.value));
        }
        if let Some(mac) = &f.mac {
            kv.push(format!("mac={mac}"));
        }
        let text = format!("vec{unit}:{}", kv.join(","));
        match text.parse::<Spec>() {
            Ok(spec) => p.nodes[ni].ifaces[fi].spec = Some(spec.to_string()),
            Err(e) => d.at(
                sl.referenced,
                format!(
                    "link {pos} ({}): end `{}:{}` would get an invalid spec: {e}",
                    link.kind, p.nodes[ni].name, f.name
                ),
                Some(format!("generated spec: {text}")),
            ),
        }
    }
}

fn flag(kv: &mut Vec<String>, key: &str, v: Option<bool>) {
    if v == Some(true) {
        kv.push(format!("{key}=1"));
    }
}

/// In router/firewall files, replace the node's interface names by their `vecN`:
/// string values equal to a name in a structured file (`port: lan`), and the word after
/// `in`/`out` in a rule text (`accept in inside ...`).
pub(super) fn translate_ports(p: &mut Plan, ni: usize) {
    let node = &p.nodes[ni];
    let map: Vec<(String, String)> = node
        .ifaces
        .iter()
        .filter(|f| !f.name.starts_with("vec"))
        .map(|f| (f.name.clone(), format!("vec{}", f.unit.unwrap_or(0))))
        .collect();
    let Some(file) = &node.config else { return };
    let rename = |s: &str| {
        map.iter()
            .find(|(from, _)| from == s)
            .map(|(_, to)| to.clone())
    };
    let text = match serde_json::from_str::<serde_json::Value>(&file.text) {
        Ok(mut v) if v.is_object() || v.is_array() => {
            fn walk(v: &mut serde_json::Value, rename: &dyn Fn(&str) -> Option<String>) {
                match v {
                    serde_json::Value::String(s) => {
                        if let Some(to) = rename(s) {
                            *s = to;
                        }
                    }
                    serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, rename)),
                    serde_json::Value::Object(o) => o.values_mut().for_each(|x| walk(x, rename)),
                    _ => {}
                }
            }
            walk(&mut v, &rename);
            serde_json::to_string_pretty(&v).unwrap_or_default()
        }
        _ => {
            file.text
                .lines()
                .map(|line| {
                    let mut prev = "";
                    let mut out = Vec::new();
                    for w in line.split(' ') {
                        let r = if prev == "in" || prev == "out" {
                            rename(w)
                        } else {
                            None
                        };
                        out.push(r.unwrap_or_else(|| w.to_string()));
                        prev = w;
                    }
                    out.join(" ")
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        }
    };
    if let Some(c) = p.nodes[ni].config.as_mut() {
        c.text = text;
    }
}
