//! A lab as stable-identity objects — nodes by name, links by their two endpoints,
//! underlays by their two nodes — which is what `apply` records, observes and compares.
//! A [`Plan`] (indices, file order) projects onto [`Objects`] (names only), so two plans
//! of the same lab written in a different order give equal objects.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::alloc::{self, IfaceAlloc, LinkAlloc, Lock, UnderlayAlloc, link_id, underlay_id};
use super::plan::{PNode, Plan};
use super::topology::LinkType;

/// Every object of a lab, by identity.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Objects {
    pub nodes: BTreeMap<String, NodeObj>,
    /// By link id (`NODE:IF|NODE:IF`, sorted).
    pub links: BTreeMap<String, LinkObj>,
    /// By `NODE|NODE` (sorted).
    pub underlays: BTreeMap<String, UnderlayObj>,
}

/// A node without its interfaces (they belong to the links).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeObj {
    pub node: PNode,
    /// The node is complete: its process started (guests, UML) or its commands ran
    /// (hosts). A node whose namespace exists but that never got this far is not.
    #[serde(default)]
    pub up: bool,
}

/// One end of a link: the interface of a node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EndObj {
    pub node: String,
    pub iface: String,
    pub kernel: Option<String>,
    pub unit: Option<u32>,
    pub spec: Option<String>,
    pub addresses: Vec<String>,
    pub mac: Option<String>,
    pub tap_fd: Option<i32>,
    /// The impairment of the frames that leave this end onto the link, as `key=value`
    /// words (`none`: nothing), wherever vecbox realises it (this end's `tx` stage, the
    /// peer's `rx` stage, or the inserted datapath's port, which is then this end).
    /// Compared on its own, so changing it is not a change of the port spec.
    #[serde(default = "no_impairment")]
    pub impair: String,
}

fn no_impairment() -> String {
    "none".into()
}

impl EndObj {
    /// `NODE:IFACE`.
    pub fn name(&self) -> String {
        format!("{}:{}", self.node, self.iface)
    }
}

/// A link and its two ends, in the file's endpoint order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LinkObj {
    pub kind: LinkType,
    pub mtu: u16,
    pub ends: [EndObj; 2],
    /// gre/l2tpv3: the underlay id.
    pub underlay: Option<String>,
    pub socket: Option<PathBuf>,
    /// bess: the listening end, `NODE:IFACE`.
    pub listener: Option<String>,
    pub udp_ports: Option<(u16, u16)>,
}

impl LinkObj {
    /// `A – B` as written.
    pub fn title(&self) -> String {
        format!("{} – {}", self.ends[0].name(), self.ends[1].name())
    }

    /// The end at node `node`.
    pub fn end_at(&self, node: &str) -> Option<&EndObj> {
        self.ends.iter().find(|e| e.node == node)
    }

    /// The end named `NODE:IFACE`.
    pub fn end(&self, name: &str) -> Option<&EndObj> {
        self.ends.iter().find(|e| e.name() == name)
    }
}

/// The underlay veth pair of two nodes joined by tunnels.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UnderlayObj {
    /// Node names, sorted.
    pub nodes: [String; 2],
    pub kernel: [String; 2],
    pub addr: [Ipv4Addr; 2],
    pub mtu: u32,
}

/// The impairment `plan` gives the frames that leave link end `end` (`NODE:IF` of a plan
/// link) onto its link: direction A→B of a file link is recorded at A (or, with an
/// inserted datapath `_x`, at `_x:vec1`, the port it leaves towards B), B→A at B (or
/// `_x:vec0`).
pub fn leaving(plan: &Plan, end: &str) -> String {
    for l in &plan.impairs {
        let ends = match &l.datapath {
            Some(x) => [format!("{x}:vec1"), format!("{x}:vec0")],
            None => l.ends.clone(),
        };
        if let Some(d) = ends.iter().position(|e| e == end) {
            return l.set[d].clone();
        }
    }
    no_impairment()
}

impl Objects {
    /// The objects of `plan`; every node is taken as `up`.
    pub fn of(plan: &Plan) -> Objects {
        let mut o = Objects::default();
        let here = |n: &PNode| plan.local.as_ref().is_none_or(|h| &n.host == h);
        for n in plan.nodes.iter().filter(|n| here(n)) {
            let mut node = n.clone();
            node.ifaces.clear();
            o.nodes.insert(n.name.clone(), NodeObj { node, up: true });
        }
        for l in &plan.links {
            // Only this machine's part of a multi-host lab ([`super::hosts`]): a link
            // between hosts keeps its remote end as a name.
            if !l.ends.iter().any(|&(ni, _)| here(&plan.nodes[ni])) {
                continue;
            }
            let end = |side: usize| {
                let (ni, fi) = l.ends[side];
                let (n, f) = (&plan.nodes[ni], &plan.nodes[ni].ifaces[fi]);
                EndObj {
                    node: n.name.clone(),
                    iface: f.name.clone(),
                    kernel: f.kernel.clone(),
                    unit: f.unit,
                    spec: f.spec.clone(),
                    addresses: f.addresses.clone(),
                    mac: f.mac.clone(),
                    tap_fd: f.tap_fd,
                    impair: leaving(plan, &l.names[side]),
                }
            };
            let underlay = l.underlay.map(|u| {
                let un = &plan.underlays[u];
                underlay_id(&plan.nodes[un.nodes[0]].name, &plan.nodes[un.nodes[1]].name).0
            });
            o.links.insert(
                link_id(&l.names[0], &l.names[1]),
                LinkObj {
                    kind: l.kind,
                    mtu: l.mtu,
                    ends: [end(0), end(1)],
                    underlay,
                    socket: l.socket.clone(),
                    listener: l.listener.map(|s| l.names[s].clone()),
                    udp_ports: l.udp_ports,
                },
            );
        }
        for u in plan
            .underlays
            .iter()
            .filter(|u| u.nodes.iter().all(|&n| here(&plan.nodes[n])))
        {
            let names = [
                plan.nodes[u.nodes[0]].name.clone(),
                plan.nodes[u.nodes[1]].name.clone(),
            ];
            o.underlays.insert(
                underlay_id(&names[0], &names[1]).0,
                UnderlayObj {
                    nodes: names,
                    kernel: u.kernel.clone(),
                    addr: u.addr,
                    mtu: u.mtu,
                },
            );
        }
        o
    }

    /// The values these objects use, as a lock (for objects an apply made but whose
    /// plan was never saved).
    pub fn lock(&self) -> Lock {
        let mut l = Lock::default();
        for (id, link) in &self.links {
            for e in &link.ends {
                let process = self
                    .nodes
                    .get(&e.node)
                    .is_some_and(|n| n.node.kind.is_process());
                let a = IfaceAlloc {
                    kernel: e.kernel.clone().filter(|_| process),
                    unit: e.unit.filter(|_| alloc::unit_of(&e.iface).is_none()),
                    mac: e.mac.clone(),
                    tap_fd: e.tap_fd,
                };
                l.ifaces.insert(e.name(), a);
            }
            let a = LinkAlloc {
                udp_port: link.udp_ports.map(|(p, _)| p),
                socket: link
                    .socket
                    .as_ref()
                    .and_then(|s| s.file_name())
                    .map(|s| s.to_string_lossy().into_owned()),
            };
            if a != LinkAlloc::default() {
                l.links.insert(id.clone(), a);
            }
        }
        for (id, u) in &self.underlays {
            let slot = (u32::from(u.addr[0]).wrapping_sub(0xa9fe_0001) / 4) % alloc::UNDERLAY_SLOTS;
            l.underlays.insert(
                id.clone(),
                UnderlayAlloc {
                    kernel: u.kernel.clone(),
                    slot,
                },
            );
        }
        l
    }

    /// The links with an end at node `node`.
    pub fn links_of<'a>(
        &'a self,
        node: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a LinkObj)> {
        self.links
            .iter()
            .filter(move |(_, l)| l.ends.iter().any(|e| e.node == node))
    }

    /// The ends at node `node`, in unit order (guests and UML) or name order.
    pub fn ends_of(&self, node: &str) -> Vec<&EndObj> {
        let mut v: Vec<&EndObj> = self
            .links
            .values()
            .flat_map(|l| l.ends.iter())
            .filter(|e| e.node == node)
            .collect();
        v.sort_by(|a, b| (a.unit, &a.iface).cmp(&(b.unit, &b.iface)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const LAB: &str = "\
name: o
nodes:
  h: {kind: host, interfaces: {eth0: {addresses: [10.0.0.1/24]}}}
  sw: {kind: bridge}
  x: {kind: bridge}
links:
  - {endpoints: [h:eth0, sw:a]}
  - {endpoints: [sw:b, x:a], type: gre, key: 3}
  - {endpoints: [x:b, sw:c], type: bess}
";

    #[test]
    fn objects_do_not_depend_on_file_order() {
        let a = crate::lab::check_text("o.yaml", LAB, Path::new("/tmp/o.yaml")).unwrap();
        let reordered = LAB
            .replace("  - {endpoints: [h:eth0, sw:a]}\n", "")
            .replace(
                "type: bess}\n",
                "type: bess}\n  - {endpoints: [h:eth0, sw:a]}\n",
            );
        let b = crate::lab::check_text("o.yaml", &reordered, Path::new("/tmp/o.yaml")).unwrap();
        assert_ne!(a.links[0].names, b.links[0].names);
        assert_eq!(Objects::of(&a), Objects::of(&b));
        let o = Objects::of(&a);
        let l = &o.links["h:eth0|sw:a"];
        assert_eq!(l.end_at("h").unwrap().addresses, ["10.0.0.1/24"]);
        assert_eq!(o.links["sw:c|x:b"].listener.as_deref(), Some("x:b"));
        assert_eq!(o.links["sw:b|x:a"].underlay.as_deref(), Some("sw|x"));
        let units: Vec<_> = o.ends_of("sw").iter().map(|e| e.unit).collect();
        assert_eq!(units, [Some(0), Some(1), Some(2)]);
        assert_eq!(o.links_of("x").count(), 2);
    }
}
