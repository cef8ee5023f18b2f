//! Making and breaking: namespaces, underlays, links (kernel side and ports of
//! running guests), swaps of interfaces that move, and replacements.

use std::collections::BTreeMap;

use super::super::actions::{Line, Record, Step, Symbol};
use super::super::alloc::link_id;
use super::super::diff::{LinkFate, NodeFate, UnderlayFate};
use super::super::objects::{LinkObj, UnderlayObj};
use super::super::topology::{LinkType, NodeKind};
use super::{Builder, line};

impl Builder<'_> {
    /// Namespace (and file, sysctls) of a node made now.
    pub(super) fn make_node(&mut self, name: &str, symbol: Option<(Symbol, String, String)>) {
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

    pub(super) fn make_underlay(
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
    pub(super) fn make_link_steps(&mut self, l: &LinkObj) -> Vec<Step> {
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
        // A link between hosts: the local end's socket, bound on this machine.
        let sock = l.ends.iter().find(|e| {
            self.want.nodes.contains_key(&e.node)
                && e.spec
                    .as_deref()
                    .is_some_and(super::super::hosts::is_handed_socket)
        });
        if let Some(e) = sock {
            steps.push(Step::Sock {
                link: id.clone(),
                spec: e.spec.clone().unwrap_or_default(),
            });
        }
        let mut ends: Vec<&super::super::objects::EndObj> = l.ends.iter().collect();
        ends.sort_by_key(|e| l.listener.as_deref() != Some(e.name().as_str()));
        for e in ends {
            if e.unit.is_some() && self.hot(&e.node) {
                steps.push(Step::PortAdd {
                    node: e.node.clone(),
                    spec: e.spec.clone().unwrap_or_default(),
                    tap: (l.kind == LinkType::Tap || sock.is_some()).then(|| id.clone()),
                });
                self.ports_changed.insert(e.node.clone());
            }
        }
        steps
    }

    /// Ports of running nodes, then the kernel side of link `l` (`id`).
    pub(super) fn break_link_steps(&mut self, id: &str, l: &LinkObj) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut ends: Vec<&super::super::objects::EndObj> = l.ends.iter().collect();
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
            // Deleted explicitly even when an end's node goes too: a namespace is
            // destroyed asynchronously (and not at all while a process still holds
            // it), so the surviving end would linger in its peer's namespace.
            LinkType::Veth => steps.push(Step::VethDelete {
                netns: [
                    self.netns_of(&l.ends[0].node),
                    self.netns_of(&l.ends[1].node),
                ],
                kernel: [
                    l.ends[0].kernel.clone().unwrap_or_default(),
                    l.ends[1].kernel.clone().unwrap_or_default(),
                ],
            }),
            LinkType::Tap => steps.push(Step::TapDelete {
                link: id.to_string(),
            }),
            _ if l.ends.iter().any(|e| {
                e.spec
                    .as_deref()
                    .is_some_and(super::super::hosts::is_handed_socket)
            }) =>
            {
                steps.push(Step::TapDelete {
                    link: id.to_string(),
                })
            }
            _ => {}
        }
        steps
    }

    pub(super) fn disruption_of_link(&self, l: &LinkObj) -> String {
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

pub(super) fn made(b: &mut Builder, swaps: &BTreeMap<String, Vec<String>>) {
    let (diff, want) = (b.diff, b.want);
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
                mtu_action(b, id, &u, old);
            }
            _ => {}
        }
    }
    for (id, f) in &diff.links {
        if *f != LinkFate::Create || swaps.contains_key(id) {
            continue;
        }
        push_create_link(b, id, want.links[id].clone());
    }
}

/// The action that makes link `id` as `l`: its steps and its record.
fn push_create_link(b: &mut Builder, id: &str, l: LinkObj) {
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
            id: id.to_string(),
            obj: Some(l),
        }],
    );
}

/// The impairment datapath vecbox inserts with link `l`, when one of its ends is on
/// one that is new (a node `_…`, which no file can name).
fn datapath_of(b: &Builder, l: &LinkObj) -> Option<String> {
    l.ends
        .iter()
        .map(|e| &e.node)
        .find(|n| n.starts_with('_') && !b.rec.nodes.contains_key(*n))
        .cloned()
}

pub(super) fn replaced(b: &mut Builder, swaps: &BTreeMap<String, Vec<String>>) {
    let (diff, want) = (b.diff, b.want);
    for (name, f) in &diff.nodes {
        if let NodeFate::Replace(why) = f {
            replace_node(b, name, why);
        }
    }
    let mut broken: Vec<&String> = Vec::new();
    for (id, olds) in swaps {
        for old in olds {
            // A link split in two (an inserted impairment datapath) is broken once.
            if broken.contains(&old) {
                continue;
            }
            broken.push(old);
            let l = b.rec.links[old].clone();
            let why = match datapath_of(b, &want.links[id]) {
                Some(x) => format!(
                    "{} (its impairment needs vecbox's datapath {x}: the link is swapped onto it)",
                    l.kind
                ),
                None => format!("{} (its interface moves to another link)", l.kind),
            };
            let steps = b.break_link_steps(old, &l);
            let d = b.disruption_of_link(&l);
            b.push(
                line(Symbol::Remove, format!("link {}", l.title()), why, d),
                steps,
                vec![Record::Link {
                    id: old.clone(),
                    obj: None,
                }],
            );
        }
        push_create_link(b, id, want.links[id].clone());
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
}

pub(super) fn mtu_action(b: &mut Builder, id: &str, u: &UnderlayObj, old: u32) {
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
