//! From the fate of every object ([`super::diff`]) to the ordered actions of a plan.
//! Make before break:
//!
//! 1. leftovers of an interrupted apply are removed;
//! 2. new namespaces, underlays and links are made, and ports added to running guests
//!    (a bess listener before the end that connects to it);
//! 3. replacements, and links that move an interface another link still holds (that
//!    interface: the old link goes, then the new one comes);
//! 4. new nodes are started (bess listeners first) and new hosts run their commands;
//! 5. in-place changes, reopened ports, restarted processes;
//! 6. removals: ports from running guests, links, nodes, underlays;
//! 7. the supervisor takes the new definitions of nodes whose ports changed.

use std::collections::{BTreeMap, BTreeSet};

use super::actions::{Action, Line, Record, Step, Symbol};
use super::alloc::link_id;
use super::diff::{Diff, LinkFate, NodeFate, UnderlayFate};
use super::objects::{LinkObj, NodeObj, Objects, UnderlayObj};
use super::observe::{Drift, Observed};
use super::plan::Plan;
use super::topology::{LinkType, NodeKind};

struct Builder<'a> {
    rec: &'a Objects,
    want: &'a Objects,
    desired: &'a Plan,
    diff: &'a Diff,
    live: BTreeSet<String>,
    actions: Vec<Action>,
    /// Running nodes whose ports change (the supervisor needs their new definition).
    ports_changed: BTreeSet<String>,
}

fn line(
    symbol: Symbol,
    object: String,
    detail: impl Into<String>,
    disruption: impl Into<String>,
) -> Option<Line> {
    Some(Line {
        symbol,
        object,
        detail: detail.into(),
        disruption: disruption.into(),
    })
}

impl Builder<'_> {
    fn push(&mut self, line: Option<Line>, steps: Vec<Step>, record: Vec<Record>) {
        self.actions.push(Action {
            line,
            steps,
            record,
        });
    }

    fn fate(&self, node: &str) -> &NodeFate {
        self.diff.nodes.get(node).unwrap_or(&NodeFate::Keep)
    }

    /// A running node whose process stays: its ports change through its console.
    fn hot(&self, node: &str) -> bool {
        self.live.contains(node) && matches!(self.fate(node), NodeFate::Keep | NodeFate::Change(_))
    }

    /// A node that exists before and after without being made again.
    fn stays(&self, node: &str) -> bool {
        matches!(
            self.fate(node),
            NodeFate::Keep | NodeFate::Change(_) | NodeFate::Up | NodeFate::Restart(_)
        )
    }

    fn netns_of(&self, node: &str) -> String {
        self.want
            .nodes
            .get(node)
            .or_else(|| self.rec.nodes.get(node))
            .map(|n| n.node.netns.clone())
            .unwrap_or_default()
    }

    fn kind_of(&self, node: &str) -> NodeKind {
        self.want
            .nodes
            .get(node)
            .or_else(|| self.rec.nodes.get(node))
            .map_or(NodeKind::Host, |n| n.node.kind)
    }

    fn node_obj(&self, name: &str, up: bool) -> Option<NodeObj> {
        self.want.nodes.get(name).map(|n| NodeObj {
            node: n.node.clone(),
            up,
        })
    }

    fn leftovers(&mut self) {
        for d in &self.diff.leftovers {
            let steps = match d {
                Drift::LeftoverNetns { node } => vec![
                    Step::Stop { node: node.clone() },
                    Step::NetnsDelete { node: node.clone() },
                ],
                Drift::LeftoverProcess { node } => vec![Step::Stop { node: node.clone() }],
                Drift::LeftoverIface { netns, kernel } => vec![Step::IfaceDelete {
                    netns: netns.clone(),
                    kernel: kernel.clone(),
                }],
                Drift::LeftoverPort { node, unit } => vec![Step::PortRemove {
                    node: node.clone(),
                    unit: *unit,
                }],
                Drift::LeftoverTap { link } => vec![Step::TapDelete { link: link.clone() }],
                _ => continue,
            };
            let what = d.describe();
            self.push(
                line(Symbol::Remove, "leftover".into(), what, "none"),
                steps,
                vec![],
            );
        }
    }

    /// Namespace (and file, sysctls) of a node made now.
    fn make_node(&mut self, name: &str, symbol: Option<(Symbol, String, String)>) {
        let Some(n) = self.want.nodes.get(name) else {
            return;
        };
        let mut steps = vec![Step::Netns {
            node: name.to_string(),
        }];
        if n.node.config.is_some() {
            steps.push(Step::File {
                node: name.to_string(),
            });
        }
        if !n.node.sysctls.is_empty() {
            steps.push(Step::Sysctls {
                node: name.to_string(),
                set: n.node.sysctls.clone(),
            });
        }
        let l = symbol.map(|(s, detail, disruption)| Line {
            symbol: s,
            object: format!("node {name}"),
            detail,
            disruption,
        });
        let rec = vec![Record::Node {
            name: name.to_string(),
            obj: self.node_obj(name, false),
        }];
        self.push(l, steps, rec);
    }

    fn make_underlay(
        &mut self,
        id: &str,
        u: &UnderlayObj,
        shown: Option<(Symbol, String, String)>,
    ) {
        let netns = [self.netns_of(&u.nodes[0]), self.netns_of(&u.nodes[1])];
        let mut steps = vec![Step::Veth {
            netns: netns.clone(),
            kernel: u.kernel.clone(),
            mtu: u.mtu,
        }];
        for (s, ns) in netns.iter().enumerate() {
            steps.push(Step::Iface {
                netns: ns.clone(),
                kernel: u.kernel[s].clone(),
                mac: None,
                mtu: None,
                add: vec![format!("{}/30", u.addr[s])],
                del: vec![],
            });
        }
        let l = shown.map(|(symbol, detail, disruption)| Line {
            symbol,
            object: format!("underlay {id}"),
            detail,
            disruption,
        });
        self.push(
            l,
            steps,
            vec![Record::Underlay {
                id: id.to_string(),
                obj: Some(u.clone()),
            }],
        );
    }

    /// Kernel side of link `l`, then its ports on running nodes (listener first).
    fn make_link_steps(&mut self, l: &LinkObj) -> Vec<Step> {
        let mut steps = Vec::new();
        let id = link_id(&l.ends[0].name(), &l.ends[1].name());
        match l.kind {
            LinkType::Veth => {
                let netns = [
                    self.netns_of(&l.ends[0].node),
                    self.netns_of(&l.ends[1].node),
                ];
                let kernel = [
                    l.ends[0].kernel.clone().unwrap_or_default(),
                    l.ends[1].kernel.clone().unwrap_or_default(),
                ];
                steps.push(Step::Veth {
                    netns: netns.clone(),
                    kernel: kernel.clone(),
                    mtu: u32::from(l.mtu),
                });
                for (s, e) in l.ends.iter().enumerate() {
                    let host = e.unit.is_none();
                    steps.push(Step::Iface {
                        netns: netns[s].clone(),
                        kernel: kernel[s].clone(),
                        mac: e.mac.clone().filter(|_| host),
                        mtu: None,
                        add: e.addresses.clone(),
                        del: vec![],
                    });
                }
            }
            LinkType::Tap => {
                if let Some(h) = l.ends.iter().find(|e| e.unit.is_none()) {
                    let netns = self.netns_of(&h.node);
                    steps.push(Step::Tap {
                        link: id.clone(),
                        netns: netns.clone(),
                        name: h.iface.clone(),
                        mtu: u32::from(l.mtu),
                    });
                    steps.push(Step::Iface {
                        netns,
                        kernel: h.iface.clone(),
                        mac: h.mac.clone(),
                        mtu: None,
                        add: h.addresses.clone(),
                        del: vec![],
                    });
                }
            }
            LinkType::Gre | LinkType::L2tpv3 | LinkType::Bess => {}
        }
        let mut ends: Vec<&super::objects::EndObj> = l.ends.iter().collect();
        ends.sort_by_key(|e| l.listener.as_deref() != Some(e.name().as_str()));
        for e in ends {
            if e.unit.is_some() && self.hot(&e.node) {
                steps.push(Step::PortAdd {
                    node: e.node.clone(),
                    spec: e.spec.clone().unwrap_or_default(),
                    tap: (l.kind == LinkType::Tap).then(|| id.clone()),
                });
                self.ports_changed.insert(e.node.clone());
            }
        }
        steps
    }

    /// Ports of running nodes, then the kernel side of link `l` (`id`).
    fn break_link_steps(&mut self, id: &str, l: &LinkObj) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut ends: Vec<&super::objects::EndObj> = l.ends.iter().collect();
        // The connecting end of a bess link goes before its listener.
        ends.sort_by_key(|e| l.listener.as_deref() == Some(e.name().as_str()));
        for e in ends {
            if let Some(unit) = e.unit
                && self.hot(&e.node)
                && self.kind_of(&e.node) != NodeKind::Uml
            {
                steps.push(Step::PortRemove {
                    node: e.node.clone(),
                    unit,
                });
                self.ports_changed.insert(e.node.clone());
            }
        }
        match l.kind {
            LinkType::Veth => {
                let gone = |n: &str| !self.stays(n);
                if !(gone(&l.ends[0].node) || gone(&l.ends[1].node)) {
                    steps.push(Step::VethDelete {
                        netns: [
                            self.netns_of(&l.ends[0].node),
                            self.netns_of(&l.ends[1].node),
                        ],
                        kernel: [
                            l.ends[0].kernel.clone().unwrap_or_default(),
                            l.ends[1].kernel.clone().unwrap_or_default(),
                        ],
                    });
                }
            }
            LinkType::Tap => steps.push(Step::TapDelete {
                link: id.to_string(),
            }),
            _ => {}
        }
        steps
    }

    fn disruption_of_link(&self, l: &LinkObj) -> String {
        let ends: Vec<String> = l
            .ends
            .iter()
            .filter(|e| self.stays(&e.node))
            .map(|e| e.name())
            .collect();
        if ends.is_empty() {
            "none".into()
        } else {
            format!("link bounce {}", ends.join(", "))
        }
    }
}

/// The actions that take the observed lab to `desired` (objects `want`).
pub fn build(obs: &Observed, desired: &Plan, want: &Objects, diff: &Diff) -> Vec<Action> {
    let mut b = Builder {
        rec: &obs.recorded.objects,
        want,
        desired,
        diff,
        live: obs.live(),
        actions: Vec::new(),
        ports_changed: BTreeSet::new(),
    };
    let _ = b.desired;
    // 1. Leftovers.
    b.leftovers();
    // Interfaces that a new link takes over from a link going away: those links are
    // swapped in phase 3, the rest is made before anything is removed.
    let removed_ends: BTreeMap<String, String> = diff
        .links
        .iter()
        .filter(|(_, f)| matches!(f, LinkFate::Remove))
        .flat_map(|(id, _)| {
            b.rec.links[id]
                .ends
                .iter()
                .map(|e| (e.name(), id.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let swaps: BTreeMap<String, Vec<String>> = {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, f) in &diff.links {
            if *f != LinkFate::Create {
                continue;
            }
            for e in &want.links[id].ends {
                if let Some(old) = removed_ends.get(&e.name()) {
                    m.entry(id.clone()).or_default().push(old.clone());
                }
            }
        }
        m
    };
    let swapped_old: BTreeSet<String> = swaps.values().flatten().cloned().collect();
    // 2. Made: namespaces, underlays, links.
    for (name, f) in &diff.nodes {
        if *f == NodeFate::Create {
            let kind = want.nodes[name].node.kind;
            b.make_node(
                name,
                Some((Symbol::Create, kind.to_string(), "none".into())),
            );
        }
    }
    for (id, f) in &diff.underlays {
        match f {
            UnderlayFate::Create => {
                let u = want.underlays[id].clone();
                b.make_underlay(
                    id,
                    &u,
                    Some((Symbol::Create, format!("mtu {}", u.mtu), "none".into())),
                );
            }
            UnderlayFate::Mtu(m) if *m > b.rec.underlays[id].mtu => {
                let (u, old) = (want.underlays[id].clone(), b.rec.underlays[id].mtu);
                mtu_action(&mut b, id, &u, old);
            }
            _ => {}
        }
    }
    for (id, f) in &diff.links {
        if *f != LinkFate::Create || swaps.contains_key(id) {
            continue;
        }
        let l = want.links[id].clone();
        let steps = b.make_link_steps(&l);
        b.push(
            line(
                Symbol::Create,
                format!("link {}", l.title()),
                l.kind.to_string(),
                "none",
            ),
            steps,
            vec![Record::Link {
                id: id.clone(),
                obj: Some(l),
            }],
        );
    }
    // 3. Replacements and swaps.
    for (name, f) in &diff.nodes {
        if let NodeFate::Replace(why) = f {
            replace_node(&mut b, name, why);
        }
    }
    for (id, olds) in &swaps {
        for old in olds {
            let l = b.rec.links[old].clone();
            let steps = b.break_link_steps(old, &l);
            let d = b.disruption_of_link(&l);
            b.push(
                line(
                    Symbol::Remove,
                    format!("link {}", l.title()),
                    format!("{} (its interface moves to another link)", l.kind),
                    d,
                ),
                steps,
                vec![Record::Link {
                    id: old.clone(),
                    obj: None,
                }],
            );
        }
        let l = want.links[id].clone();
        let steps = b.make_link_steps(&l);
        b.push(
            line(
                Symbol::Create,
                format!("link {}", l.title()),
                l.kind.to_string(),
                "none",
            ),
            steps,
            vec![Record::Link {
                id: id.clone(),
                obj: Some(l),
            }],
        );
    }
    for (id, f) in &diff.links {
        if let LinkFate::Replace(why) = f
            && b.rec.links[id]
                .ends
                .iter()
                .all(|e| !matches!(b.fate(&e.node), NodeFate::Replace(_)))
        {
            let (old, new) = (b.rec.links[id].clone(), want.links[id].clone());
            let mut steps = b.break_link_steps(id, &old);
            steps.extend(b.make_link_steps(&new));
            let d = b.disruption_of_link(&old);
            b.push(
                line(
                    Symbol::Replace,
                    format!("link {}", new.title()),
                    why.clone(),
                    d,
                ),
                steps,
                vec![Record::Link {
                    id: id.clone(),
                    obj: Some(new),
                }],
            );
        }
    }
    for (id, f) in &diff.underlays {
        if let UnderlayFate::Replace(why) = f
            && !b.rec.underlays[id]
                .nodes
                .iter()
                .any(|x| matches!(b.fate(x), NodeFate::Replace(_)))
        {
            let (old, new) = (b.rec.underlays[id].clone(), want.underlays[id].clone());
            let netns = [b.netns_of(&old.nodes[0]), b.netns_of(&old.nodes[1])];
            b.push(
                None,
                vec![Step::VethDelete {
                    netns,
                    kernel: old.kernel.clone(),
                }],
                vec![],
            );
            b.make_underlay(
                id,
                &new,
                Some((Symbol::Replace, why.clone(), "none".into())),
            );
        }
    }
    // 4. New nodes start: bess listeners first.
    start_new(&mut b);
    // 5. In place, reopened ports, restarts.
    change_in_place(&mut b);
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
                &mut b,
                name,
                &format!("frames to {name} are lost while it restarts"),
            );
        }
    }
    // 6. Removals.
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
                let mut steps = Vec::new();
                if u.nodes.iter().all(|n| b.stays(n)) {
                    let netns = [b.netns_of(&u.nodes[0]), b.netns_of(&u.nodes[1])];
                    steps.push(Step::VethDelete {
                        netns,
                        kernel: u.kernel.clone(),
                    });
                }
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
                mtu_action(&mut b, id, &u, old);
            }
            _ => {}
        }
    }
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
    // 7. Definitions for the supervisor.
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
    b.actions
}

fn mtu_action(b: &mut Builder, id: &str, u: &UnderlayObj, old: u32) {
    let netns = [b.netns_of(&u.nodes[0]), b.netns_of(&u.nodes[1])];
    let steps = (0..2)
        .map(|s| Step::Iface {
            netns: netns[s].clone(),
            kernel: u.kernel[s].clone(),
            mac: None,
            mtu: Some(u.mtu),
            add: vec![],
            del: vec![],
        })
        .collect();
    b.push(
        line(
            Symbol::Change,
            format!("underlay {id}"),
            format!("mtu {old} → {}", u.mtu),
            "none",
        ),
        steps,
        vec![Record::Underlay {
            id: id.to_string(),
            obj: Some(u.clone()),
        }],
    );
}

/// A node made again: its links go (ports of running peers first), it goes, it comes
/// back with its links and underlays.
fn replace_node(b: &mut Builder, name: &str, why: &str) {
    let links: Vec<(String, LinkObj)> = b
        .rec
        .links
        .iter()
        .filter(|(_, l)| l.ends.iter().any(|e| e.node == name))
        .map(|(i, l)| (i.clone(), l.clone()))
        .collect();
    let mut steps = Vec::new();
    for (id, l) in &links {
        steps.extend(b.break_link_steps(id, l));
    }
    if b.rec.nodes[name].node.kind.is_process() {
        steps.push(Step::Stop {
            node: name.to_string(),
        });
    }
    steps.push(Step::NetnsDelete {
        node: name.to_string(),
    });
    let mut recs: Vec<Record> = links
        .iter()
        .map(|(id, _)| Record::Link {
            id: id.clone(),
            obj: None,
        })
        .collect();
    recs.push(Record::Node {
        name: name.to_string(),
        obj: None,
    });
    for (id, u) in b
        .rec
        .underlays
        .iter()
        .filter(|(_, u)| u.nodes.iter().any(|x| x == name))
    {
        recs.push(Record::Underlay {
            id: id.clone(),
            obj: None,
        });
        let _ = u;
    }
    let disruption = if b.kind_of(name).is_process() {
        format!("guest restart {name}")
    } else {
        let peers: Vec<String> = links
            .iter()
            .flat_map(|(_, l)| {
                l.ends
                    .iter()
                    .filter(|e| e.node != name && b.stays(&e.node))
                    .map(|e| e.name())
            })
            .collect();
        if peers.is_empty() {
            "none".into()
        } else {
            format!("link bounce {}", peers.join(", "))
        }
    };
    b.push(
        line(Symbol::Replace, format!("node {name}"), why, disruption),
        steps,
        recs,
    );
    b.make_node(name, None);
    let unders: Vec<(String, UnderlayObj)> = b
        .want
        .underlays
        .iter()
        .filter(|(_, u)| u.nodes.iter().any(|x| x == name))
        .map(|(i, u)| (i.clone(), u.clone()))
        .collect();
    for (id, u) in unders {
        b.make_underlay(&id, &u, None);
    }
    let new_links: Vec<(String, LinkObj)> = b
        .want
        .links
        .iter()
        .filter(|(_, l)| l.ends.iter().any(|e| e.node == name))
        .map(|(i, l)| (i.clone(), l.clone()))
        .collect();
    for (id, l) in new_links {
        let steps = b.make_link_steps(&l);
        let shown = b.rec.links.contains_key(&id).then(|| {
            line(
                Symbol::Replace,
                format!("link {}", l.title()),
                format!("node {name} is replaced"),
                b.disruption_of_link(&l),
            )
        });
        b.push(
            shown.flatten(),
            steps,
            vec![Record::Link { id, obj: Some(l) }],
        );
    }
}

/// Start new (and replaced, and never started) nodes, bess listeners first; run the
/// routes and commands of new hosts.
fn start_new(b: &mut Builder) {
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
        let mut steps: Vec<Step> = node
            .routes
            .iter()
            .map(|r| Step::Route {
                node: n.clone(),
                route: r.clone(),
                add: true,
            })
            .collect();
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

fn change_in_place(b: &mut Builder) {
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
            steps.push(Step::Impair { link: id.clone() });
            what.push("impairment".into());
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

/// A firewall in bridge mode forgets its stations when its ports change or its rules
/// are re-read.
fn forgets_stations(n: Option<&super::plan::PNode>) -> bool {
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
