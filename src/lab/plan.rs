//! The validated plan of a lab: every node, interface and link with the kernel names,
//! namespaces, `vecN:` specs and files vecbox will create. Produced by
//! [`super::validate`] from a [`super::topology::Topology`]; serialised to the lab's
//! run directory so that `status`, `exec` and `down` work without the topology file.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::alloc::Lock;
use super::topology::{LinkType, NodeKind, Restart};

/// Default root of every lab's run directory.
pub const RUN_ROOT: &str = "/run/vecbox";

/// The environment variable that moves the root of every lab's run directory (one
/// machine's vecbox state: labs, journals, plans, sockets). Several simulated hosts on
/// one machine each set their own.
pub const RUN_DIR_ENV: &str = "VECBOX_RUN_DIR";

/// Root of every lab's run directory: `$VECBOX_RUN_DIR`, else `/run/vecbox`.
pub fn run_root() -> PathBuf {
    match std::env::var_os(RUN_DIR_ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(RUN_ROOT),
    }
}

/// Longest lab name.
pub const MAX_LAB: usize = 30;
/// Longest node name.
pub const MAX_NODE: usize = 32;

/// A whole lab, ready to deploy.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    /// Lab name.
    pub lab: String,
    /// Short tag derived from the lab name, used in generated kernel names.
    pub tag: String,
    /// The topology file (absolute path) it came from.
    pub file: PathBuf,
    /// Prometheus listen address for the whole lab.
    pub metrics: Option<String>,
    pub nodes: Vec<PNode>,
    pub links: Vec<PLink>,
    /// Underlay veth pairs carrying the gre/l2tpv3 links between two nodes.
    pub underlays: Vec<Underlay>,
    /// The values vecbox chose (kernel names, units, MACs, ...), by identity: kept by
    /// the next `apply` for every object that is still there.
    #[serde(default)]
    pub lock: Lock,
    /// The machines of a multi-host lab (empty: one machine).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<super::hosts::PHost>,
    /// The host this plan runs on (`up --host NAME`); its nodes are the ones made here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// Impairments of the file's links and where each direction is realised.
    #[serde(default)]
    pub impairs: Vec<super::impair::LinkImpair>,
}

/// One node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PNode {
    pub name: String,
    pub kind: NodeKind,
    /// The host the node runs on (multi-host labs; empty otherwise).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// Network namespace, `LAB.NODE`.
    pub netns: String,
    /// umid of a guest or UML node (`LAB.NODE`): `~/.uml/UMID/`.
    pub umid: String,
    /// Interfaces; for guests and UML in port (unit) order.
    pub ifaces: Vec<PIface>,
    /// host: routes.
    pub routes: Vec<PRoute>,
    /// host: sysctls.
    pub sysctls: Vec<(String, String)>,
    /// host: commands run after bring-up.
    pub exec: Vec<String>,
    /// host: bridges, neighbour entries and offload switches.
    #[serde(default, skip_serializing_if = "super::hostnet::HostNet::is_empty")]
    pub net: super::hostnet::HostNet,
    pub restart: Restart,
    /// guests: `key=value` options for the function.
    pub options: Vec<(String, String)>,
    /// guests: CPU to pin to.
    pub cpu: Option<u32>,
    /// router `config=` / firewall `rules=` file content (JSON, which is YAML).
    pub config: Option<GuestFile>,
    pub uml: Option<PUml>,
    /// Console text that means "ready" (UML).
    pub ready: Option<String>,
    /// Seconds to wait for readiness.
    pub ready_timeout: u32,
}

/// A configuration file written for a guest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GuestFile {
    /// The guest option naming the file (`config` or `rules`).
    pub key: String,
    /// Contents.
    pub text: String,
}

/// UML settings of a node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PUml {
    pub kernel: PathBuf,
    /// `mem=` value, e.g. `64M`.
    pub mem: String,
    pub root: Option<PathBuf>,
    pub image: Option<PathBuf>,
    pub init: Option<String>,
    pub args: Vec<String>,
}

/// One interface of a node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PIface {
    /// The name the user wrote.
    pub name: String,
    /// The kernel interface in the node's namespace (host veth/tap ends, guest/UML veth
    /// ends); `None` for tunnel and bess ends, which have no device of their own.
    pub kernel: Option<String>,
    /// Index of the link in [`Plan::links`] and which end (0 = A, 1 = B).
    pub link: usize,
    pub side: usize,
    /// Guest/UML: the port's unit number (`vecN`) and its spec.
    pub unit: Option<u32>,
    pub spec: Option<String>,
    /// host: addresses `ADDR/PREFIX`.
    pub addresses: Vec<String>,
    /// MAC address.
    pub mac: Option<String>,
    /// Guest/UML end of a tap link: descriptor number the process finds the tap on.
    pub tap_fd: Option<i32>,
}

/// A host route.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PRoute {
    /// Destination `ADDR/PREFIX`.
    pub to: String,
    pub via: Option<String>,
    pub dev: Option<String>,
}

/// One link.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PLink {
    /// Position in the file's `links` list (used in messages only: identity and kernel
    /// names come from the endpoints).
    pub pos: usize,
    pub kind: LinkType,
    /// The two ends: (node index, interface index in that node).
    pub ends: [(usize, usize); 2],
    /// `node:iface` as written, for messages and status.
    pub names: [String; 2],
    pub mtu: u16,
    /// gre/l2tpv3: index into [`Plan::underlays`].
    pub underlay: Option<usize>,
    /// bess: the socket path (the listening end is [`PLink::listener`]).
    pub socket: Option<PathBuf>,
    /// bess: which end listens.
    pub listener: Option<usize>,
    /// l2tpv3: carried over UDP.
    #[serde(default)]
    pub udp: bool,
    /// l2tpv3 over UDP: the ports of ends A and B (given, or allocated).
    #[serde(default)]
    pub udp_ports: Option<(u16, u16)>,
    /// A link between nodes on different hosts: how it crosses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross: Option<super::hosts::PCross>,
}

/// A veth pair with one /30 between two nodes, carrying their tunnels.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Underlay {
    /// The two nodes, the one whose name sorts first first.
    pub nodes: [usize; 2],
    pub kernel: [String; 2],
    pub addr: [Ipv4Addr; 2],
    pub mtu: u32,
}

impl Plan {
    /// This lab's run directory.
    pub fn run_dir(&self) -> PathBuf {
        run_dir(&self.lab)
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&PNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The kernel device that carries link `i`'s traffic and is counted for its rates:
    /// (namespace, device), measured at end A when A has a device, else at end B.
    pub fn link_device(&self, i: usize) -> Option<(String, String)> {
        let l = &self.links[i];
        l.ends.iter().find_map(|&(n, f)| {
            let node = &self.nodes[n];
            node.ifaces[f]
                .kernel
                .clone()
                .map(|k| (node.netns.clone(), k))
        })
    }
}

/// `/run/vecbox/LAB` (under [`run_root`]).
pub fn run_dir(lab: &str) -> PathBuf {
    run_root().join(lab)
}

/// `true` for a valid lab or node name: `[A-Za-z][A-Za-z0-9_-]*`, at most `max` bytes.
pub fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Four lowercase base-32 characters from a hash of the lab name: kernel names made by
/// vecbox start with `vb` and this tag.
pub fn lab_tag(lab: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in lab.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..4)
        .map(|i| ALPHABET[((h >> (5 * i)) & 31) as usize] as char)
        .collect()
}

/// The marker vecbox writes as the alias of every interface it creates and of the
/// loopback device of every namespace it creates.
pub fn marker(lab: &str) -> String {
    format!("vecbox:{lab}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_differ() {
        assert_eq!(lab_tag("x").len(), 4);
        assert_ne!(lab_tag("lab1"), lab_tag("lab2"));
    }

    #[test]
    fn names() {
        assert!(valid_name("client-1", MAX_NODE));
        assert!(!valid_name("1client", MAX_NODE));
        assert!(!valid_name("a.b", MAX_NODE));
        assert!(!valid_name(&"a".repeat(31), MAX_LAB));
    }
}
