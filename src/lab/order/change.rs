//! Starting, changing in place, restarting, removing, and what the supervisor is told
//! at the end.

use std::collections::BTreeSet;

use super::super::actions::{Record, Step, Symbol};
use super::super::diff::{LinkFate, NodeFate, UnderlayFate, impairment_changes};
use super::super::objects::{EndObj, Objects};
use super::super::topology::{LinkType, NodeKind};
use super::{Builder, line};

/// Start new (and replaced, and never started) nodes, bess listeners first; run the
/// routes and commands of new hosts.
pub(super) fn start_new(b: &mut Builder) {
    let pending: Vec<String> = b
        .diff
        .nodes
        .iter()
        .filter(|(_, f)| matches!(f, NodeFate::Create | NodeFate::Replace(_) | NodeFate::Up))
        .map(|(n, _)| n.clone())
        .collect();
    let listeners: BTreeSet<String> = b
        .want
        .links
        .values()
        .filter_map(|l| {
            l.listener
                .as_ref()
                .and_then(|e| l.end(e))
                .map(|e| e.node.clone())
        })
        .collect();
    let procs: Vec<&String> = pending
        .iter()
        .filter(|n| b.want.nodes[*n].node.kind.is_process())
        .collect();
    let first: Vec<String> = procs
        .iter()
        .filter(|n| listeners.contains(**n))
        .map(|n| (*n).clone())
        .collect();
    let rest: Vec<String> = procs
        .iter()
        .filter(|n| !listeners.contains(**n))
        .map(|n| (*n).clone())
        .collect();
    for group in [first, rest] {
        if group.is_empty() {
            continue;
        }
        let mut steps: Vec<Step> = group
            .iter()
            .map(|n| Step::Start { node: n.clone() })
            .collect();
        steps.push(Step::Ready {
            nodes: group.clone(),
        });
        let recs = group
            .iter()
            .map(|n| Record::Node {
                name: n.clone(),
                obj: b.node_obj(n, true),
            })
            .collect();
        b.push(None, steps, recs);
    }
    for n in pending
        .iter()
        .filter(|n| !b.want.nodes[*n].node.kind.is_process())
    {
        let node = b.want.nodes[n].node.clone();
        let mut steps: Vec<Step> = Vec::new();
        if !node.net.is_empty() {
            steps.push(Step::HostNet { node: n.clone() });
        }
        steps.extend(node.routes.iter().map(|r| Step::Route {
            node: n.clone(),
            route: r.clone(),
            add: true,
        }));
        if !node.exec.is_empty() {
            steps.push(Step::Exec { node: n.clone() });
        }
        let up = b.node_obj(n, true);
        b.push(
            None,
            steps,
            vec![Record::Node {
                name: n.clone(),
                obj: up,
            }],
        );
    }
}

pub(super) fn change_in_place(b: &mut Builder) {
    let diff = b.diff;
    for (name, f) in &diff.nodes {
        let NodeFate::Change(e) = f else { continue };
        let mut steps = Vec::new();
        let mut what = Vec::new();
        if !e.sysctls.is_empty() {
            steps.push(Step::Sysctls {
                node: name.clone(),
                set: e.sysctls.clone(),
            });
            what.push("sysctls".to_string());
        }
        for r in &e.routes_del {
            steps.push(Step::Route {
                node: name.clone(),
                route: r.clone(),
                add: false,
            });
        }
        for r in &e.routes_add {
            steps.push(Step::Route {
                node: name.clone(),
                route: r.clone(),
                add: true,
            });
        }
        if !e.routes_add.is_empty() || !e.routes_del.is_empty() {
            what.push("routes".into());
        }
        let hot = b.hot(name);
        let kind = b.want.nodes[name].node.kind;
        if e.file {
            steps.push(Step::File { node: name.clone() });
            if hot {
                steps.push(Step::Reload { node: name.clone() });
            }
            what.push(match kind {
                NodeKind::Firewall if forgets_stations(Some(&b.want.nodes[name].node)) => {
                    "rules re-read (connections kept, stations learned again)".into()
                }
                NodeKind::Firewall => "rules re-read (connections kept)".into(),
                NodeKind::Router => "configuration re-read (neighbours kept)".into(),
                _ => "file re-read".into(),
            });
        }
        if e.options {
            if hot {
                steps.push(Step::Options { node: name.clone() });
            }
            what.push("options (the function starts with an empty state)".into());
        }
        if e.define && kind.is_process() {
            steps.push(Step::Define { node: name.clone() });
            if !e.file && !e.options {
                what.push("restart policy or readiness".into());
            }
        }
        what.extend(e.notes.iter().cloned());
        b.push(
            line(
                Symbol::Change,
                format!("node {name}"),
                what.join(", "),
                "none",
            ),
            steps,
            vec![Record::Node {
                name: name.clone(),
                obj: b.node_obj(name, true),
            }],
        );
    }
    for (id, f) in &diff.links {
        let LinkFate::Change(e) = f else { continue };
        let (old, new) = (b.rec.links[id].clone(), b.want.links[id].clone());
        let mut steps = Vec::new();
        let mut what = e.notes.clone();
        let mut bounce = Vec::new();
        if let Some(m) = e.mtu {
            for (s, end) in new.ends.iter().enumerate() {
                let kernel = match (new.kind, &end.kernel) {
                    (LinkType::Veth | LinkType::Tap, Some(k)) if b.stays(&end.node) => k.clone(),
                    _ => continue,
                };
                let _ = s;
                steps.push(Step::Iface {
                    netns: b.netns_of(&end.node),
                    kernel,
                    mac: None,
                    mtu: Some(m),
                    add: vec![],
                    del: vec![],
                });
            }
        }
        for h in &e.hosts {
            let Some(x) = new.end(&h.end) else { continue };
            steps.push(Step::Iface {
                netns: b.netns_of(&x.node),
                kernel: x.kernel.clone().unwrap_or_else(|| x.iface.clone()),
                mac: h.mac.clone(),
                mtu: None,
                add: h.add.clone(),
                del: h.del.clone(),
            });
            what.push(format!("{} addresses", h.end));
        }
        for end in &e.respec {
            let (Some(o), Some(n)) = (old.end(end), new.end(end)) else {
                continue;
            };
            if !b.hot(&n.node) {
                continue;
            }
            if let Some(u) = o.unit {
                steps.push(Step::PortRemove {
                    node: n.node.clone(),
                    unit: u,
                });
            }
            steps.push(Step::PortAdd {
                node: n.node.clone(),
                spec: n.spec.clone().unwrap_or_default(),
                tap: (new.kind == LinkType::Tap).then(|| id.clone()),
            });
            b.ports_changed.insert(n.node.clone());
            bounce.push(end.clone());
            what.push(format!("{end} reopened with a new spec"));
        }
        for end in &e.repair {
            let Some(n) = new
                .ends
                .iter()
                .find(|x| format!("{}:vec{}", x.node, x.unit.unwrap_or(0)) == *end)
            else {
                continue;
            };
            if b.hot(&n.node) {
                steps.push(Step::PortAdd {
                    node: n.node.clone(),
                    spec: n.spec.clone().unwrap_or_default(),
                    tap: (new.kind == LinkType::Tap).then(|| id.clone()),
                });
                what.push(format!("drift: port {end} added again"));
            }
        }
        if e.impair {
            let mut live = false;
            for end in impairment_changes(&old, &new) {
                let (Some(o), Some(n)) = (old.end(&end), new.end(&end)) else {
                    continue;
                };
                let peer = new.ends.iter().find(|x| x.name() != end).unwrap_or(n);
                // On an inserted datapath `_x`, the direction is named by the file's
                // ends: `_x:vec1` carries A → B, `_x:vec0` B → A.
                let from = datapath_far_end(b.want, n).unwrap_or_else(|| end.clone());
                let via = if from == end {
                    String::new()
                } else {
                    format!(" (at {end})")
                };
                what.push(format!(
                    "impairment {from} → {}{via}: {} → {}",
                    peer.name(),
                    o.impair,
                    n.impair
                ));
                // The guest whose stage realises it: this end's (tx) or the peer's (rx).
                // One that is started again gets the settings from its new spec.
                let guest = |x: &str| b.want.nodes.get(x).is_some_and(|g| g.node.kind.is_guest());
                let at = if guest(&n.node) { &n.node } else { &peer.node };
                live |= b.hot(at);
            }
            if live {
                steps.push(Step::Impair { link: id.clone() });
            }
        }
        let disruption = if bounce.is_empty() {
            "none".to_string()
        } else {
            format!("link bounce {}", bounce.join(", "))
        };
        b.push(
            line(
                Symbol::Change,
                format!("link {}", new.title()),
                what.join(", "),
                disruption,
            ),
            steps,
            vec![Record::Link {
                id: id.clone(),
                obj: Some(new.clone()),
            }],
        );
        for end in &bounce {
            if let Some(peer) = new.ends.iter().find(|x| &x.name() != end) {
                let node = peer.node.clone();
                if b.stays(&node) {
                    b.push(
                        line(
                            Symbol::Affected,
                            format!("node {node}"),
                            format!("frames over {} are lost while {end} reopens", peer.name()),
                            "none",
                        ),
                        vec![],
                        vec![],
                    );
                }
            }
        }
    }
}

/// For a port `_x:vecN` of an inserted impairment datapath: the file's end on the other
/// side of the datapath (the peer of `_x:vec(1-N)`), where the frames leaving `_x:vecN`
/// come from.
fn datapath_far_end(want: &Objects, end: &EndObj) -> Option<String> {
    if !end.node.starts_with('_') {
        return None;
    }
    let unit = end.unit?;
    let other = format!("{}:vec{}", end.node, 1 - unit.min(1));
    want.links
        .values()
        .find(|l| l.end(&other).is_some())
        .and_then(|l| l.ends.iter().find(|e| e.name() != other))
        .map(EndObj::name)
}

pub(super) fn restarts(b: &mut Builder) {
    let (diff, want) = (b.diff, b.want);
    for (name, f) in &diff.nodes {
        if let NodeFate::Restart(why) = f {
            let mut steps = Vec::new();
            if want.nodes[name].node.config.is_some() {
                steps.push(Step::File { node: name.clone() });
            }
            steps.push(Step::Start { node: name.clone() });
            steps.push(Step::Ready {
                nodes: vec![name.clone()],
            });
            b.push(
                line(
                    Symbol::Replace,
                    format!("node {name}"),
                    why.clone(),
                    format!("guest restart {name}"),
                ),
                steps,
                vec![Record::Node {
                    name: name.clone(),
                    obj: b.node_obj(name, true),
                }],
            );
            affected_peers(
                b,
                name,
                &format!("frames to {name} are lost while it restarts"),
            );
        }
    }
}

pub(super) fn removals(b: &mut Builder, swapped_old: &BTreeSet<String>) {
    let (diff, want) = (b.diff, b.want);
    for (id, f) in &diff.links {
        if *f == LinkFate::Remove && !swapped_old.contains(id) {
            let l = b.rec.links[id].clone();
            let steps = b.break_link_steps(id, &l);
            b.push(
                line(
                    Symbol::Remove,
                    format!("link {}", l.title()),
                    l.kind.to_string(),
                    "none",
                ),
                steps,
                vec![Record::Link {
                    id: id.clone(),
                    obj: None,
                }],
            );
        }
    }
    for (name, f) in &diff.nodes {
        if *f == NodeFate::Remove {
            let n = &b.rec.nodes[name].node;
            let mut steps = Vec::new();
            if n.kind.is_process() {
                steps.push(Step::Stop { node: name.clone() });
            }
            steps.push(Step::NetnsDelete { node: name.clone() });
            let kind = n.kind.to_string();
            b.push(
                line(Symbol::Remove, format!("node {name}"), kind, "none"),
                steps,
                vec![Record::Node {
                    name: name.clone(),
                    obj: None,
                }],
            );
        }
    }
    for (id, f) in &diff.underlays {
        match f {
            UnderlayFate::Remove => {
                let u = b.rec.underlays[id].clone();
                // Deleted explicitly even when a node goes too (see the veth links in
                // make.rs): the surviving end would outlive the namespace for a while.
                let netns = [b.netns_of(&u.nodes[0]), b.netns_of(&u.nodes[1])];
                let steps = vec![Step::VethDelete {
                    netns,
                    kernel: u.kernel.clone(),
                }];
                b.push(
                    line(
                        Symbol::Remove,
                        format!("underlay {id}"),
                        "no tunnel left",
                        "none",
                    ),
                    steps,
                    vec![Record::Underlay {
                        id: id.clone(),
                        obj: None,
                    }],
                );
            }
            UnderlayFate::Mtu(m) if *m < b.rec.underlays[id].mtu => {
                let (u, old) = (want.underlays[id].clone(), b.rec.underlays[id].mtu);
                super::make::mtu_action(b, id, &u, old);
            }
            _ => {}
        }
    }
}

pub(super) fn definitions(b: &mut Builder) {
    let want = b.want;
    // Functions that forget what they learned when their ports change.
    let relearn: Vec<String> = b
        .ports_changed
        .iter()
        .filter(|n| forgets_stations(b.want.nodes.get(*n).map(|x| &x.node)))
        .cloned()
        .collect();
    for n in relearn {
        b.push(
            line(
                Symbol::Affected,
                format!("node {n}"),
                "firewall in bridge mode: learns its stations again (ports change)",
                "none",
            ),
            vec![],
            vec![],
        );
    }
    let defs: Vec<Step> = b
        .ports_changed
        .iter()
        .filter(|n| {
            matches!(b.fate(n), NodeFate::Keep | NodeFate::Change(_)) && want.nodes.contains_key(*n)
        })
        .map(|n| Step::Define { node: n.clone() })
        .collect();
    if !defs.is_empty() {
        let recs = b
            .ports_changed
            .iter()
            .filter_map(|n| {
                let obj = b.rec.nodes.get(n)?.clone();
                Some(Record::Node {
                    name: n.clone(),
                    obj: Some(obj),
                })
            })
            .collect();
        b.push(None, defs, recs);
    }
}

/// A firewall in bridge mode forgets its stations when its ports change or its rules
/// are re-read.
fn forgets_stations(n: Option<&super::super::plan::PNode>) -> bool {
    n.is_some_and(|n| {
        n.kind == NodeKind::Firewall && n.options.iter().any(|(k, v)| k == "mode" && v == "bridge")
    })
}

/// `!` lines for the nodes on the other end of `name`'s links.
fn affected_peers(b: &mut Builder, name: &str, what: &str) {
    let peers: BTreeSet<String> = b
        .want
        .links
        .values()
        .filter(|l| l.ends.iter().any(|e| e.node == name))
        .flat_map(|l| {
            l.ends
                .iter()
                .filter(|e| e.node != name)
                .map(|e| e.node.clone())
        })
        .filter(|p| b.stays(p) && !matches!(b.fate(p), NodeFate::Restart(_)))
        .collect();
    for p in peers {
        b.push(
            line(
                Symbol::Affected,
                format!("node {p}"),
                what.to_string(),
                "none",
            ),
            vec![],
            vec![],
        );
    }
}
