//! Recorded objects against desired ones: what happens to each node, link and underlay.
//! Fields are compared by what changing them takes:
//!
//! | object | in place (`~`) | restart of the process (`-/+`, `guest restart`) | replace (`-/+`) |
//! |---|---|---|---|
//! | host | sysctls, routes | — | kind, `exec` (commands run once, when made) |
//! | guest | `config`/`rules` (re-read, state kept), `options` (function rebuilt), `restart`, `ready_timeout` | `cpu`, `seccomp` | kind |
//! | UML | `restart`, `ready`, `ready_timeout` | `kernel`, `mem`, `root`, `image`, `init`, `args`; an interface changed, removed, or a tap added | kind |
//! | link | host addresses and MAC, MTU of kernel devices; impairments (set live); a guest port's spec other than its impairment keys (port reopened: `link bounce`) | (UML end, above) | type, bess listener, endpoints' names |
//! | underlay | MTU | — | its names or addresses |
//!
//! Drift found by the live re-read forces a replacement of what it concerns.

use std::collections::{BTreeMap, BTreeSet};

use super::LabError;
use super::objects::{EndObj, LinkObj, Objects};
use super::observe::{Drift, Observed};
use super::plan::{PNode, PRoute};
use super::topology::{LinkType, NodeKind};

/// What happens to a node.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeFate {
    Keep,
    Create,
    Remove,
    /// Namespace and all made again (its links too).
    Replace(String),
    /// The process started again with the new definition; namespace and links stay.
    Restart(String),
    Change(NodeEdit),
    /// Recorded, but never completed (process not started / commands not run).
    Up,
}

/// In-place changes of a node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeEdit {
    pub sysctls: Vec<(String, String)>,
    pub routes_add: Vec<PRoute>,
    pub routes_del: Vec<PRoute>,
    /// The router/firewall file changed: written and re-read.
    pub file: bool,
    /// Function options changed: the function is rebuilt.
    pub options: bool,
    /// Only what the supervisor keeps changed (restart policy, readiness).
    pub define: bool,
    pub notes: Vec<String>,
}

/// What happens to a link.
#[derive(Clone, Debug, PartialEq)]
pub enum LinkFate {
    Keep,
    Create,
    Remove,
    Replace(String),
    Change(LinkEdit),
}

/// In-place changes of a link.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkEdit {
    /// MTU of the kernel devices.
    pub mtu: Option<u32>,
    /// Host ends whose addresses or MAC change.
    pub hosts: Vec<HostEnd>,
    /// Guest ends whose port is reopened with a new spec.
    pub respec: Vec<String>,
    /// Guest ends whose port is missing (drift): added again.
    pub repair: Vec<String>,
    /// The impairment changed (see [`impairment_changed`]).
    pub impair: bool,
    pub notes: Vec<String>,
}

/// New settings of a host end of a link.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostEnd {
    /// `NODE:IFACE`.
    pub end: String,
    /// The new MAC, if it changes.
    pub mac: Option<String>,
    pub add: Vec<String>,
    pub del: Vec<String>,
}

/// What happens to an underlay.
#[derive(Clone, Debug, PartialEq)]
pub enum UnderlayFate {
    Keep,
    Create,
    Remove,
    Replace(String),
    Mtu(u32),
}

/// Every object's fate, and the leftovers to remove first.
#[derive(Debug, Default)]
pub struct Diff {
    pub nodes: BTreeMap<String, NodeFate>,
    pub links: BTreeMap<String, LinkFate>,
    pub underlays: BTreeMap<String, UnderlayFate>,
    pub leftovers: Vec<Drift>,
}

/// The directions of a link whose impairment changes: the ends (`NODE:IF`) whose
/// leaving frames get other settings ([`super::objects::EndObj::impair`]). Changed in
/// place by step [`super::actions::Step::Impair`] through the same path as `vecbox
/// impair`; the port spec's impairment keys are not compared as a spec change
/// ([`without_impairment`]).
pub fn impairment_changes(old: &LinkObj, new: &LinkObj) -> Vec<String> {
    new.ends
        .iter()
        .filter(|n| old.end(&n.name()).is_some_and(|o| o.impair != n.impair))
        .map(EndObj::name)
        .collect()
}

/// Whether any direction of the link's impairment changes.
pub fn impairment_changed(old: &LinkObj, new: &LinkObj) -> bool {
    !impairment_changes(old, new).is_empty()
}

/// A port spec without its impairment keys (`tx_delay=…`, `rx_loss=…`): what reopening
/// the port would change. UML's own `tx_`/`rx_` keys (`tx_key`, …) stay.
pub fn without_impairment(spec: &str) -> String {
    let is_impair = |item: &str| {
        let key = item.split('=').next().unwrap_or("");
        ["tx_", "rx_"].iter().any(|p| {
            key.strip_prefix(p)
                .is_some_and(|k| crate::impair::KEYS.iter().any(|x| x.name == k))
        })
    };
    spec.split(',')
        .filter(|item| !is_impair(item))
        .collect::<Vec<_>>()
        .join(",")
}

fn upgrade(f: &mut NodeFate, reason: String) {
    match f {
        NodeFate::Keep | NodeFate::Change(_) | NodeFate::Up => *f = NodeFate::Restart(reason),
        NodeFate::Restart(r) if !r.contains(&reason) => {
            r.push_str("; ");
            r.push_str(&reason);
        }
        _ => {}
    }
}

fn node_fate(old: &super::objects::NodeObj, new: &PNode) -> NodeFate {
    let o = &old.node;
    if o.kind != new.kind {
        return NodeFate::Replace(format!("kind {} → {}", o.kind, new.kind));
    }
    if o.netns != new.netns || o.umid != new.umid {
        return NodeFate::Replace("namespace name changes".into());
    }
    let mut e = NodeEdit::default();
    let mut restart: Vec<String> = Vec::new();
    match new.kind {
        NodeKind::Host => {
            if o.exec != new.exec {
                return NodeFate::Replace(
                    "exec changes (commands run once, when the node is made)".into(),
                );
            }
            if o.net != new.net {
                return NodeFate::Replace(
                    "bridges, neighbours or offloads change (made with the node)".into(),
                );
            }
            for (k, v) in &new.sysctls {
                if !o.sysctls.contains(&(k.clone(), v.clone())) {
                    e.sysctls.push((k.clone(), v.clone()));
                }
            }
            for (k, v) in &o.sysctls {
                if !new.sysctls.iter().any(|(n, _)| n == k) {
                    e.notes.push(format!("sysctl {k} left at {v}"));
                }
            }
            e.routes_add = new
                .routes
                .iter()
                .filter(|r| !o.routes.contains(r))
                .cloned()
                .collect();
            e.routes_del = o
                .routes
                .iter()
                .filter(|r| !new.routes.contains(r))
                .cloned()
                .collect();
        }
        NodeKind::Uml => {
            if let (Some(a), Some(b)) = (&o.uml, &new.uml) {
                for (what, differs) in [
                    ("kernel", a.kernel != b.kernel),
                    ("mem", a.mem != b.mem),
                    ("root", a.root != b.root),
                    ("image", a.image != b.image),
                    ("init", a.init != b.init),
                    ("args", a.args != b.args),
                ] {
                    if differs {
                        restart.push(format!("{what} changes"));
                    }
                }
            }
        }
        _ => {
            if o.cpu != new.cpu {
                restart.push("cpu changes".into());
            }
            let seccomp = |n: &PNode| {
                n.options
                    .iter()
                    .find(|(k, _)| k == "seccomp")
                    .map(|(_, v)| v.clone())
            };
            if seccomp(o) != seccomp(new) {
                restart.push("seccomp mode changes".into());
            }
            let function = |n: &PNode| -> Vec<(String, String)> {
                n.options
                    .iter()
                    .filter(|(k, _)| k != "seccomp")
                    .cloned()
                    .collect()
            };
            e.options = function(o) != function(new);
            e.file = o.config != new.config;
        }
    }
    e.define = o.restart != new.restart
        || o.ready != new.ready
        || o.ready_timeout != new.ready_timeout
        || e.options
        || e.file;
    if !restart.is_empty() {
        return NodeFate::Restart(restart.join(", "));
    }
    if !old.up {
        return NodeFate::Up;
    }
    if e == NodeEdit::default() {
        NodeFate::Keep
    } else {
        NodeFate::Change(e)
    }
}

/// Compare the observed lab with the desired objects.
pub fn diff(obs: &Observed, want: &Objects) -> Result<Diff, LabError> {
    let rec = &obs.recorded.objects;
    let mut d = Diff::default();
    let mut forced_nodes: BTreeMap<String, String> = BTreeMap::new();
    let mut forced_links: BTreeMap<String, String> = BTreeMap::new();
    let mut forced_underlays: BTreeMap<String, String> = BTreeMap::new();
    let mut repairs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for dr in &obs.drift {
        match dr {
            Drift::NetnsMissing { node } | Drift::NetnsChanged { node } => {
                forced_nodes.insert(node.clone(), format!("drift: {}", dr.describe()));
            }
            Drift::IfaceMissing { object, .. } | Drift::IfaceChanged { object, .. } => {
                let why = format!("drift: {}", dr.describe());
                if let Some(id) = object.strip_prefix("link ") {
                    forced_links.insert(id.to_string(), why);
                } else if let Some(id) = object.strip_prefix("underlay ") {
                    forced_underlays.insert(id.to_string(), why);
                }
            }
            Drift::Foreign { netns, kernel } => {
                return Err(LabError::Busy {
                    what: format!("interface {kernel} in {netns}"),
                    hint: "it is where the lab's interface should be but does not carry the lab's marker; vecbox will not touch it: remove or rename it".into(),
                });
            }
            Drift::PortMissing { node, unit } => {
                if let Some((id, _)) = rec.links.iter().find(|(_, l)| {
                    l.ends
                        .iter()
                        .any(|e| &e.node == node && e.unit == Some(*unit))
                }) {
                    repairs
                        .entry(id.clone())
                        .or_default()
                        .push(format!("{node}:vec{unit}"));
                }
            }
            Drift::NotRunning { .. } => {}
            _ => d.leftovers.push(dr.clone()),
        }
    }
    // Nodes.
    let names: BTreeSet<&String> = rec.nodes.keys().chain(want.nodes.keys()).collect();
    for name in names {
        let fate = match (rec.nodes.get(name), want.nodes.get(name)) {
            (Some(_), None) => NodeFate::Remove,
            (None, Some(_)) => NodeFate::Create,
            (Some(o), Some(n)) => match forced_nodes.get(name) {
                Some(why) => NodeFate::Replace(why.clone()),
                None => node_fate(o, &n.node),
            },
            (None, None) => continue,
        };
        d.nodes.insert(name.clone(), fate);
    }
    let replaced = |d: &Diff, n: &str| matches!(d.nodes.get(n), Some(NodeFate::Replace(_)));
    let is_uml = |n: &str| {
        want.nodes
            .get(n)
            .or_else(|| rec.nodes.get(n))
            .is_some_and(|x| x.node.kind == NodeKind::Uml)
    };
    // Links.
    let ids: BTreeSet<&String> = rec.links.keys().chain(want.links.keys()).collect();
    let mut uml_restarts: Vec<(String, String)> = Vec::new();
    for id in ids {
        let fate = match (rec.links.get(id), want.links.get(id)) {
            (Some(o), None) => {
                for e in &o.ends {
                    if is_uml(&e.node)
                        && matches!(d.nodes.get(&e.node), Some(f) if !matches!(f, NodeFate::Remove | NodeFate::Replace(_)))
                    {
                        uml_restarts.push((
                            e.node.clone(),
                            format!(
                                "interface {} removed: UML cannot remove an interface that is up",
                                e.iface
                            ),
                        ));
                    }
                }
                LinkFate::Remove
            }
            (None, Some(n)) => {
                for e in &n.ends {
                    if n.kind == LinkType::Tap && is_uml(&e.node) && rec.nodes.contains_key(&e.node)
                    {
                        uml_restarts.push((
                            e.node.clone(),
                            format!(
                                "tap link on {}: a running UML kernel cannot be handed a tap",
                                e.iface
                            ),
                        ));
                    }
                }
                LinkFate::Create
            }
            (Some(o), Some(n)) => {
                if let Some(why) = forced_links.get(id) {
                    LinkFate::Replace(why.clone())
                } else if let Some(e) = o.ends.iter().find(|e| replaced(&d, &e.node)) {
                    LinkFate::Replace(format!("node {} is replaced", e.node))
                } else {
                    link_fate(o, n, is_uml, &mut uml_restarts)
                }
            }
            (None, None) => continue,
        };
        d.links.insert(id.clone(), fate);
    }
    for (id, ends) in repairs {
        if let Some(f) = d.links.get_mut(&id) {
            match f {
                LinkFate::Keep => {
                    *f = LinkFate::Change(LinkEdit {
                        repair: ends,
                        ..LinkEdit::default()
                    })
                }
                LinkFate::Change(e) => e.repair.extend(ends),
                _ => {}
            }
        }
    }
    for (node, why) in uml_restarts {
        if let Some(f) = d.nodes.get_mut(&node) {
            upgrade(f, why);
        }
    }
    // Underlays.
    let ids: BTreeSet<&String> = rec.underlays.keys().chain(want.underlays.keys()).collect();
    for id in ids {
        let fate = match (rec.underlays.get(id), want.underlays.get(id)) {
            (Some(_), None) => UnderlayFate::Remove,
            (None, Some(_)) => UnderlayFate::Create,
            (Some(o), Some(n)) => {
                if let Some(why) = forced_underlays.get(id) {
                    UnderlayFate::Replace(why.clone())
                } else if let Some(x) = o.nodes.iter().find(|x| replaced(&d, x)) {
                    UnderlayFate::Replace(format!("node {x} is replaced"))
                } else if o.kernel != n.kernel || o.addr != n.addr {
                    UnderlayFate::Replace("names or addresses change".into())
                } else if o.mtu != n.mtu {
                    UnderlayFate::Mtu(n.mtu)
                } else {
                    UnderlayFate::Keep
                }
            }
            (None, None) => continue,
        };
        d.underlays.insert(id.clone(), fate);
    }
    Ok(d)
}

fn link_fate(
    o: &LinkObj,
    n: &LinkObj,
    is_uml: impl Fn(&str) -> bool,
    uml_restarts: &mut Vec<(String, String)>,
) -> LinkFate {
    if o.kind != n.kind {
        return LinkFate::Replace(format!("type {} → {}", o.kind, n.kind));
    }
    if o.listener != n.listener {
        return LinkFate::Replace("the listening end changes".into());
    }
    if o.socket != n.socket || o.underlay != n.underlay {
        return LinkFate::Replace("its socket or underlay changes".into());
    }
    let mut e = LinkEdit::default();
    for new in &n.ends {
        let Some(old) = o.end(&new.name()) else {
            return LinkFate::Replace("its endpoints change".into());
        };
        if old.kernel != new.kernel {
            return LinkFate::Replace(format!("{} gets another interface name", new.name()));
        }
        if new.unit.is_none() {
            // A host end.
            let add: Vec<String> = new
                .addresses
                .iter()
                .filter(|a| !old.addresses.contains(a))
                .cloned()
                .collect();
            let del: Vec<String> = old
                .addresses
                .iter()
                .filter(|a| !new.addresses.contains(a))
                .cloned()
                .collect();
            let mac = (old.mac != new.mac).then(|| new.mac.clone()).flatten();
            if !add.is_empty() || !del.is_empty() || mac.is_some() {
                e.hosts.push(HostEnd {
                    end: new.name(),
                    mac,
                    add,
                    del,
                });
            }
        } else if old.spec.as_deref().map(without_impairment)
            != new.spec.as_deref().map(without_impairment)
            || old.unit != new.unit
        {
            if is_uml(&new.node) {
                uml_restarts.push((
                    new.node.clone(),
                    format!(
                        "interface {} changes: UML cannot change an interface in place",
                        new.iface
                    ),
                ));
            } else {
                e.respec.push(new.name());
            }
        }
    }
    if o.mtu != n.mtu {
        e.mtu = Some(u32::from(n.mtu));
        e.notes.push(format!("mtu {} → {}", o.mtu, n.mtu));
    }
    e.impair = impairment_changed(o, n);
    if e == LinkEdit::default() {
        LinkFate::Keep
    } else {
        LinkFate::Change(e)
    }
}

/// Ends of `l` whose node is `node`.
pub fn ends_at<'a>(l: &'a LinkObj, node: &str) -> impl Iterator<Item = &'a EndObj> {
    l.ends.iter().filter(move |e| e.node == node)
}
