//! What a host node adds in its own namespace once its links exist: Linux bridges over
//! its interfaces, permanent neighbour entries and per-interface offload switches. Each
//! is made over netlink or the `SIOCETHTOOL` ioctl ([`crate::sys::ethtool`]), never by
//! running a tool, and lives inside the node's namespace, so that removing the
//! namespace (`vecbox down`, the crash recovery) removes it with everything else; the
//! step that makes them is journaled like every other step.
//!
//! ```yaml
//! nodes:
//!   sw:
//!     kind: host
//!     bridges: {br0: [eth0, eth1]}        # a Linux bridge, ports from this node
//!     neighbours:
//!       - {address: 10.0.0.9, mac: "02:00:00:00:00:99", dev: eth1}
//!     interfaces:
//!       eth0: {offloads: {tso: false, gso: false, gro: false, tx: false, rx: false}}
//! ```

use std::net::IpAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LabError;
use super::diag::Diags;
use super::plan::{PNode, Plan};
use super::topology::{NodeKind, Topology};
use crate::netlink::{self, NetNs};
use crate::sys::ethtool::{self, Offload};

/// A permanent neighbour (ARP or NDP) entry of a host.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Neighbour {
    /// The neighbour's IPv4 or IPv6 address.
    pub address: String,
    /// Its MAC address, `xx:xx:xx:xx:xx:xx`.
    pub mac: String,
    /// The host interface (or bridge) it is reached on.
    pub dev: String,
}

/// The bridges, neighbours and offload switches of one host node.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct HostNet {
    /// Bridge name and its ports (kernel names of the node's interfaces).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bridges: Vec<(String, Vec<String>)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neighbours: Vec<Neighbour>,
    /// Interface and its switches (`tso`, `gso`, `gro`, `tx`, `rx`), in file order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offloads: Vec<(String, Vec<(String, bool)>)>,
}

impl HostNet {
    /// Nothing to make.
    pub fn is_empty(&self) -> bool {
        self.bridges.is_empty() && self.neighbours.is_empty() && self.offloads.is_empty()
    }
}

/// Check the `bridges`, `neighbours` and interface `offloads` of every node of `topo`
/// (after the links gave the nodes their interfaces) and put them into `p`.
pub fn validate(d: &mut Diags, topo: &Topology, p: &mut Plan) {
    for (ni, (name, n)) in topo.nodes.iter().enumerate() {
        let Some(node) = p.nodes.get_mut(ni) else {
            continue;
        };
        let host = n.kind.value == NodeKind::Host;
        let ifaces: Vec<String> = node.ifaces.iter().map(|f| f.name.clone()).collect();
        let mut net = HostNet::default();
        for (br, ports) in n.bridges.iter() {
            if !host {
                d.on(
                    br,
                    format!(
                        "`bridges` of node `{}`: only host nodes have Linux bridges",
                        name.value
                    ),
                    Some("use a `kind: bridge` node for a vecbox bridge".into()),
                );
                continue;
            }
            let b = &br.value;
            if b.is_empty() || b.len() > 15 || b.contains(['/', ' ', ':']) {
                d.on(
                    br,
                    format!("bridge name {b:?} is not an interface name"),
                    Some("use 1 to 15 characters without `/`, `:` or spaces".into()),
                );
            }
            if ifaces.contains(b) {
                d.on(
                    br,
                    format!(
                        "bridge `{b}` has the name of an interface of `{}`",
                        name.value
                    ),
                    Some("give the bridge its own name, e.g. br0".into()),
                );
            }
            for port in ports {
                if !ifaces.contains(port) {
                    d.on(
                        br,
                        format!(
                            "bridge `{b}`: `{port}` is not an interface of `{}`",
                            name.value
                        ),
                        Some(format!(
                            "its interfaces (from `links`): {}",
                            ifaces.join(", ")
                        )),
                    );
                } else if net.bridges.iter().any(|(_, ps)| ps.contains(port)) {
                    d.on(
                        br,
                        format!("bridge `{b}`: `{port}` is already a port of another bridge"),
                        None,
                    );
                }
            }
            net.bridges.push((b.clone(), ports.clone()));
        }
        for nb in &n.neighbours {
            if !host {
                d.on(
                    nb,
                    format!(
                        "`neighbours` of node `{}`: only host nodes take neighbour entries",
                        name.value
                    ),
                    None,
                );
                continue;
            }
            let v = &nb.value;
            if v.address.parse::<IpAddr>().is_err() {
                d.on(
                    nb,
                    format!("neighbour address {:?} is not an IP address", v.address),
                    Some("write e.g. 10.0.0.9 or fd00::9".into()),
                );
            }
            if v.mac.parse::<crate::transport::spec::MacAddr>().is_err() {
                d.on(
                    nb,
                    format!("neighbour MAC {:?} is not a MAC address", v.mac),
                    Some("write xx:xx:xx:xx:xx:xx".into()),
                );
            }
            if !ifaces.contains(&v.dev) && !net.bridges.iter().any(|(b, _)| *b == v.dev) {
                d.on(
                    nb,
                    format!(
                        "neighbour dev `{}` is not an interface or bridge of `{}`",
                        v.dev, name.value
                    ),
                    None,
                );
            }
            net.neighbours.push(v.clone());
        }
        for (ifn, cfg) in n.interfaces.iter() {
            if cfg.offloads.is_empty() {
                continue;
            }
            if !host {
                d.on(
                    ifn,
                    format!(
                        "`offloads` of `{}:{}`: only host interfaces take offload switches",
                        name.value, ifn.value
                    ),
                    Some("guest ports take `gro:` on their link".into()),
                );
                continue;
            }
            let mut set = Vec::new();
            for (k, on) in cfg.offloads.iter() {
                if Offload::parse(&k.value).is_none() {
                    d.on(
                        k,
                        format!("`{}` is not an offload switch", k.value),
                        Some("use tso, gso, gro, tx (checksumming) or rx (checksumming)".into()),
                    );
                }
                set.push((k.value.clone(), *on));
            }
            net.offloads.push((ifn.value.clone(), set));
        }
        node.net = net;
    }
}

fn nl(what: String) -> impl FnOnce(netlink::NetlinkError) -> LabError {
    move |e| LabError::object(what, e)
}

/// Make the bridges, offload switches and neighbour entries of host `def` (idempotent:
/// a bridge that exists is kept, switches and entries are set again).
pub fn make(lab: &str, def: &PNode) -> Result<(), LabError> {
    let net = def.net.clone();
    if net.is_empty() {
        return Ok(());
    }
    let ns = NetNs::existing(&def.netns);
    let marker = super::plan::marker(lab);
    let bridges = net.bridges.clone();
    ns.rtnl(move |h| async move {
        for (br, ports) in &bridges {
            netlink::add_bridge(&h, br, &marker).await?;
            for p in ports {
                netlink::set_master(&h, p, br).await?;
            }
            netlink::set_up(&h, br).await?;
        }
        Ok(())
    })
    .map_err(nl(format!("host `{}`: bridges", def.name)))?;
    let (node, offloads) = (def.name.clone(), net.offloads.clone());
    ns.run(move || -> Result<(), LabError> {
        for (ifn, set) in &offloads {
            // Checksumming first: segmentation offloads need it when turned on.
            let mut set = set.clone();
            set.sort_by_key(|(k, _)| Offload::parse(k));
            for (k, on) in &set {
                let Some(o) = Offload::parse(k) else { continue };
                ethtool::set(ifn, o, *on).map_err(|e| {
                    LabError::object(
                        format!(
                            "host `{node}`: offload {k} {} on {ifn}",
                            if *on { "on" } else { "off" }
                        ),
                        e,
                    )
                })?;
            }
        }
        Ok(())
    })
    .map_err(nl(format!("offloads in {}", def.netns)))??;
    let mut neigh = Vec::new();
    for n in &net.neighbours {
        let ip: IpAddr = n
            .address
            .parse()
            .map_err(|e| LabError::object(format!("neighbour {}", n.address), e))?;
        let mac = n
            .mac
            .parse::<crate::transport::spec::MacAddr>()
            .map_err(|e| LabError::object(format!("neighbour MAC {}", n.mac), e))?;
        neigh.push((n.dev.clone(), ip, mac.0));
    }
    ns.rtnl(move |h| async move {
        for (dev, ip, mac) in neigh {
            netlink::add_neighbour(&h, &dev, ip, mac).await?;
        }
        Ok(())
    })
    .map_err(nl(format!("host `{}`: neighbour entries", def.name)))
}
