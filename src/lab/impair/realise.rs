//! Where each direction of a link is impaired, decided once every link and spec is
//! planned: A→B at A's `tx` stage when A is a vecbox guest, else at B's `rx` stage when
//! B is one; on a link with neither (host↔host, host↔UML, UML↔UML) that has `impair:`
//! (or defaults with it), vecbox inserts an xconnect guest of its own, so the link
//! becomes A — datapath — B, and impairs at the datapath's `tx` stages.
//!
//! Settings a file gives go into the guests' port specs (`tx_delay=20ms`), so a guest
//! starts with them and keeps them across restarts.

use super::parse;
use super::{LinkImpair, StageAt};
use crate::impair::{Direction, Params};
use crate::lab::diag::Diags;
use crate::lab::plan::{PIface, PLink, PNode, Plan};
use crate::lab::topology::{LinkType, NodeKind, Restart, Topology};
use crate::transport::Spec;

/// FNV-1a of `parts` as `n` base-32 characters: identity-derived names.
fn ident(parts: &[&str], n: usize) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..n)
        .map(|i| ALPHABET[((h >> (5 * i)) & 31) as usize] as char)
        .collect()
}

/// Name of the datapath node inserted on the link `a` – `b` (as written): `_` and 7
/// characters of a hash of the ends. No file node can have it (names start with a
/// letter).
pub fn datapath_name(a: &str, b: &str) -> String {
    format!("_{}", ident(&["impair", a, b], 7))
}

/// Kernel name of the datapath's veth end `side` (0 towards A): `vb` TAG `x` 7 chars
/// `a`|`b`, 15 bytes.
pub fn datapath_kernel_name(tag: &str, a: &str, b: &str, side: usize) -> String {
    format!(
        "vb{tag}x{}{}",
        ident(&["impair", a, b], 7),
        if side == 0 { 'a' } else { 'b' }
    )
}

/// The `tx_`/`rx_` spec keys of `p` for a port's `dir` stage.
fn spec_keys(dir: Direction, p: &Params) -> String {
    p.pairs()
        .iter()
        .map(|(k, v)| format!(",{}_{k}={v}", dir.name()))
        .collect()
}

fn stage(p: &Plan, n: usize, f: usize, dir: Direction) -> StageAt {
    let node = &p.nodes[n];
    StageAt {
        node: node.name.clone(),
        umid: node.umid.clone(),
        port: format!("vec{}", node.ifaces[f].unit.unwrap_or(0)),
        dir: dir.name().into(),
    }
}

/// Decide every link's realisation, write the settings into the specs and insert
/// datapaths. Problems are reported in `d`.
pub fn plan(d: &mut Diags, topo: &Topology, p: &mut Plan) {
    let none = [Params::default(); 2];
    // Refused defaults are reported once; the links are still checked on their own.
    let base = topo
        .defaults
        .impair
        .as_ref()
        .and_then(|m| {
            let c = parse::changes(d, m)?;
            parse::merged(d, &none, &c, m.referenced, "defaults")
        })
        .unwrap_or(none);
    for li in 0..p.links.len() {
        let l = p.links[li].clone();
        let Some(tl) = topo.links.get(l.pos) else {
            continue;
        };
        let own = tl.value.impair.as_ref();
        let set = match own {
            Some(m) => {
                let what = format!("link {}", l.pos);
                let Some(c) = parse::changes(d, m) else {
                    continue;
                };
                let Some(s) = parse::merged(d, &base, &c, m.referenced, &what) else {
                    continue;
                };
                s
            }
            None => base,
        };
        let given = own.is_some() || topo.defaults.impair.is_some();
        let [(na, fa), (nb, fb)] = l.ends;
        let guest = [na, nb].map(|n| p.nodes[n].kind.is_guest());
        let mut entry = LinkImpair {
            ends: l.names.clone(),
            kind: l.kind,
            set: set.map(|s| s.to_string()),
            at: None,
            datapath: None,
        };
        if guest[0] || guest[1] {
            // A→B: A tx or B rx; B→A: B tx or A rx.
            let ab = if guest[0] {
                (na, fa, Direction::Tx)
            } else {
                (nb, fb, Direction::Rx)
            };
            let ba = if guest[1] {
                (nb, fb, Direction::Tx)
            } else {
                (na, fa, Direction::Rx)
            };
            for ((n, f, dir), s) in [ab, ba].into_iter().zip(&set) {
                add_keys(d, p, n, f, dir, s, tl.referenced);
            }
            entry.at = Some([stage(p, ab.0, ab.1, ab.2), stage(p, ba.0, ba.1, ba.2)]);
        } else if given {
            if l.kind != LinkType::Veth {
                d.at(
                    own.map_or(tl.referenced, |m| m.referenced),
                    format!(
                        "link {} ({}, {} – {}): neither end is a vecbox guest, and vecbox inserts its impairment datapath only on veth links",
                        l.pos, l.kind, l.names[0], l.names[1]
                    ),
                    Some("make it a veth link (`type: veth`), or put an xconnect guest on it yourself".into()),
                );
                continue;
            }
            let gro = tl.value.gro.or(topo.defaults.gro).unwrap_or(true);
            let x = insert(p, li, gro);
            for (side, s) in set.iter().enumerate() {
                // A→B leaves the datapath by its port towards B (vec1), B→A by vec0.
                add_keys(d, p, x, 1 - side, Direction::Tx, s, tl.referenced);
            }
            entry.at = Some([stage(p, x, 1, Direction::Tx), stage(p, x, 0, Direction::Tx)]);
            entry.datapath = Some(p.nodes[x].name.clone());
        }
        p.impairs.push(entry);
    }
}

/// Append the settings `s` of stage `dir` to the spec of port `f` of node `n`.
fn add_keys(
    d: &mut Diags,
    p: &mut Plan,
    n: usize,
    f: usize,
    dir: Direction,
    s: &Params,
    at: serde_saphyr::Location,
) {
    if s.is_default() {
        return;
    }
    let node = &mut p.nodes[n];
    let who = format!("{}:{}", node.name, node.ifaces[f].name);
    let Some(spec) = node.ifaces[f].spec.as_mut() else {
        return;
    };
    spec.push_str(&spec_keys(dir, s));
    if let Err(e) = spec.parse::<Spec>() {
        d.at(
            at,
            format!("the impairment of `{who}` makes an invalid spec: {e}"),
            Some(format!("generated spec: {spec}")),
        );
    }
}

/// Put an xconnect guest on veth link `li`: A — X:vec0, X:vec1 — B. Returns X's index.
fn insert(p: &mut Plan, li: usize, gro: bool) -> usize {
    let l = p.links[li].clone();
    let name = datapath_name(&l.names[0], &l.names[1]);
    let (nx, j) = (p.nodes.len(), p.links.len());
    let port = |unit: usize, link: usize, side: usize| {
        let kernel = datapath_kernel_name(&p.tag, &l.names[0], &l.names[1], unit);
        let mut spec = format!("vec{unit}:transport=raw,ifname={kernel}");
        if l.mtu != 1500 {
            spec.push_str(&format!(",mtu={}", l.mtu));
        }
        if gro {
            spec.push_str(",gro=1");
        }
        PIface {
            name: format!("vec{unit}"),
            kernel: Some(kernel),
            link,
            side,
            unit: Some(unit as u32),
            spec: Some(spec),
            addresses: Vec::new(),
            mac: None,
            tap_fd: None,
        }
    };
    let ifaces = vec![port(0, li, 1), port(1, j, 0)];
    let netns = format!("{}.{name}", p.lab);
    // A veth link joins two nodes on one machine: the datapath runs there too.
    let host = p.nodes[l.ends[0].0].host.clone();
    p.nodes.push(PNode {
        name: name.clone(),
        kind: NodeKind::Xconnect,
        host,
        umid: netns.clone(),
        netns,
        ifaces,
        routes: Vec::new(),
        sysctls: Vec::new(),
        exec: Vec::new(),
        net: Default::default(),
        restart: Restart::OnFailure,
        options: Vec::new(),
        cpu: None,
        config: None,
        uml: None,
        ready: None,
        ready_timeout: 10,
    });
    let (nb, fb) = l.ends[1];
    p.nodes[nb].ifaces[fb].link = j;
    p.links[li].ends[1] = (nx, 0);
    p.links[li].names[1] = format!("{name}:vec0");
    p.links.push(PLink {
        ends: [(nx, 1), (nb, fb)],
        names: [format!("{name}:vec1"), l.names[1].clone()],
        ..l
    });
    nx
}
