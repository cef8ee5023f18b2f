//! The topology file's types, exactly as written by the user (before validation).
//!
//! Every struct denies unknown keys. Values whose position matters for a later
//! semantic error are [`Spanned`], so `vecbox check` can point at `file:line:col`.
//! The JSON Schema published in `docs/topology.schema.json` is generated from these
//! types (`vecbox check --schema`); the doc comments become its descriptions.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// A lab: nodes joined by links.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "vecbox topology")]
pub struct Topology {
    /// Lab name: 1 to 30 characters of `a-z A-Z 0-9 _ -`, starting with a letter. Names
    /// the run directory (`/run/vecbox/NAME`), the namespaces (`NAME.NODE`) and the
    /// guests' umids. Two labs with the same name cannot be up at once.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Values every node and link inherits unless it sets its own.
    #[serde(default)]
    pub defaults: Defaults,
    /// The machines the lab spans, by name (same rules as node names). Without it the
    /// lab runs on one machine. Nodes are placed with `host:` (default: the first host);
    /// links between nodes on different hosts are carried over L2TPv3/UDP (or GRE)
    /// between the hosts' addresses (see docs/multihost.md).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, HostDef>")]
    pub hosts: Ordered<HostDef>,
    /// Prometheus endpoint for the whole lab, `ADDRESS:PORT` (e.g. `127.0.0.1:9464`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub metrics: Option<Spanned<String>>,
    /// The nodes, by name (same rules as the lab name, at most 32 characters).
    #[schemars(with = "BTreeMap<String, Node>")]
    pub nodes: Ordered<Node>,
    /// Point-to-point links between two node interfaces.
    #[serde(default)]
    #[schemars(with = "Vec<Link>")]
    pub links: Vec<Spanned<Link>>,
}

/// Inherited settings. A node's or link's own value wins.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Link type when a link names none (default `veth`).
    #[serde(default, rename = "type")]
    #[schemars(with = "Option<LinkType>")]
    pub link_type: Option<Spanned<LinkType>>,
    /// MTU of every link (576..=65534, default 1500).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub mtu: Option<Spanned<u32>>,
    /// Vector depth (frames per system call) of every guest and UML port (1..=4096).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub depth: Option<Spanned<u32>>,
    /// Large (GSO/GRO) frames pass whole through guest and UML ports (default true).
    #[serde(default)]
    pub gro: Option<bool>,
    /// Restart policy of guests and UML nodes (default `on-failure`).
    #[serde(default)]
    pub restart: Option<Restart>,
    /// UML kernel of `uml` nodes (default `linux.uml` on PATH).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub kernel: Option<Spanned<String>>,
    /// What a cross-host link does when its `mtu` does not fit the underlay:
    /// `clamp` (default) or `fail`.
    #[serde(default)]
    pub mtu_policy: Option<MtuPolicy>,
    /// Memory of `uml` nodes, e.g. `64M` (default `64M`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub mem: Option<Spanned<String>>,
    /// Impairment of every link (a link's own `impair:` keys win, key by key); see
    /// docs/impairments.md.
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub impair: Option<Spanned<super::impair::ImpairMap>>,
}

/// One machine of a multi-host lab.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostDef {
    /// The host's underlay address (IPv4 or IPv6): cross-host links are sent from and
    /// to it. Required.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub address: Option<Spanned<String>>,
    /// How a controller reaches the host, `user@host[:port]` (SSH mode).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub ssh: Option<Spanned<String>>,
    /// MTU of the host's underlay path (default 1500); a cross-host link's MTU is at
    /// most the smaller of its two hosts' values minus the encapsulation overhead.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub underlay_mtu: Option<Spanned<u32>>,
}

/// What a cross-host link does when its `mtu` plus the encapsulation does not fit the
/// underlay.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MtuPolicy {
    /// Lower the link's MTU on both ends to what fits.
    #[default]
    Clamp,
    /// Reject the file.
    Fail,
}

/// What a node is.
#[derive(Clone, Copy, Debug, Deserialize, serde::Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A network namespace with interfaces, addresses, routes and commands.
    Host,
    /// vecbox guest: two ports, every frame from one leaves by the other.
    Xconnect,
    /// vecbox guest: MAC-learning bridge over two or more ports.
    Bridge,
    /// vecbox guest: IPv4/IPv6 router (configuration in `config`).
    Router,
    /// vecbox guest: stateful firewall (rules in `rules`).
    Firewall,
    /// A real User Mode Linux kernel.
    Uml,
}

impl NodeKind {
    /// The name as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Host => "host",
            NodeKind::Xconnect => "xconnect",
            NodeKind::Bridge => "bridge",
            NodeKind::Router => "router",
            NodeKind::Firewall => "firewall",
            NodeKind::Uml => "uml",
        }
    }

    /// A vecbox guest process (`vecbox guest FUNCTION ...`).
    pub fn is_guest(self) -> bool {
        matches!(
            self,
            NodeKind::Xconnect | NodeKind::Bridge | NodeKind::Router | NodeKind::Firewall
        )
    }

    /// Runs as a supervised process (a guest or a UML kernel).
    pub fn is_process(self) -> bool {
        self != NodeKind::Host
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a dead guest or UML node is started again.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Whenever it exits.
    Always,
    /// When it exits with a non-zero status or is killed by a signal.
    #[default]
    OnFailure,
    /// Never: the node stays down.
    Never,
}

/// One node. Which keys apply depends on `kind` (see docs/topology.md); a key that does
/// not apply to the kind is an error.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// host, xconnect, bridge, router, firewall or uml.
    #[schemars(with = "NodeKind")]
    pub kind: Spanned<NodeKind>,
    /// The machine (a key of `hosts:`) the node runs on (default: the first host).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub host: Option<Spanned<String>>,
    /// Interface settings by interface name (the name used in `links`).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Interface>")]
    pub interfaces: Ordered<Interface>,
    /// host: static routes.
    #[serde(default)]
    #[schemars(with = "Vec<Route>")]
    pub routes: Vec<Spanned<Route>>,
    /// host: sysctls set in the node's namespace, e.g. `net.ipv4.ip_forward: 1`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Scalar>")]
    pub sysctls: Ordered<Scalar>,
    /// host: Linux bridges in the node's namespace, by name (at most 15 characters): the
    /// node's interfaces that are its ports, e.g. `br0: [eth0, eth1]`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Vec<String>>")]
    pub bridges: Ordered<Vec<String>>,
    /// host: permanent neighbour (ARP/NDP) entries, `{address, mac, dev}`.
    #[serde(default)]
    #[schemars(with = "Vec<super::hostnet::Neighbour>")]
    pub neighbours: Vec<Spanned<super::hostnet::Neighbour>>,
    /// host: shell commands run in the namespace once everything is up (each must exit 0).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub exec: Vec<Spanned<String>>,
    /// Guests: function options passed as `key=value` (e.g. bridge `aging: 60`).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Scalar>")]
    pub options: Ordered<Scalar>,
    /// router: the router configuration, same shape as its `config=FILE`. Interface names
    /// of this node may be used where the file takes a port (`vecN`).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub config: Option<Spanned<serde_json::Value>>,
    /// firewall: the text of its `rules=FILE` (the firewall's rule language, as a block
    /// string). Interface names of this node may follow `in`/`out` instead of `vecN`.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub rules: Option<Spanned<serde_json::Value>>,
    /// Guests: pin to this CPU.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub cpu: Option<Spanned<u32>>,
    /// Guests and UML: vector depth of this node's ports (1..=4096).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub depth: Option<Spanned<u32>>,
    /// Guests and UML: restart policy.
    #[serde(default)]
    pub restart: Option<Restart>,
    /// uml: kernel binary (path or name on PATH; default `linux.uml`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub kernel: Option<Spanned<String>>,
    /// uml: memory, e.g. `64M` or `1G`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub mem: Option<Spanned<String>>,
    /// uml: a directory booted as the root file system through hostfs.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub root: Option<Spanned<String>>,
    /// uml: a disk image used read-only as `ubd0` with a per-node copy-on-write file.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub image: Option<Spanned<String>>,
    /// uml: the init program (`init=`), e.g. `/init` or `/bin/sh`.
    #[serde(default)]
    pub init: Option<String>,
    /// uml: extra kernel arguments.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub args: Vec<Spanned<String>>,
    /// uml: the node is ready when this text appears on its console (default: when its
    /// mconsole socket exists).
    #[serde(default)]
    pub ready: Option<String>,
    /// Seconds to wait for the node to become ready (default 60 for uml, 10 otherwise).
    #[serde(default)]
    pub ready_timeout: Option<u32>,
}

/// Settings of one interface of a node.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// host: addresses, `ADDRESS/PREFIX` (IPv4 or IPv6).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub addresses: Vec<Spanned<String>>,
    /// MAC address (host interfaces, guest and UML ports).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub mac: Option<Spanned<String>>,
    /// host: offload switches, `tso`, `gso`, `gro`, `tx` and `rx` (checksumming), each
    /// `true` or `false` (as `ethtool -K`); unnamed switches keep the kernel's default.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, bool>")]
    pub offloads: Ordered<bool>,
}

/// A host route.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination prefix, e.g. `10.2.0.0/24`, or `default`.
    pub to: String,
    /// Gateway address.
    #[serde(default)]
    pub via: Option<String>,
    /// Output interface (for routes without a gateway).
    #[serde(default)]
    pub dev: Option<String>,
}

/// A scalar option value (string, number or boolean).
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{}", u8::from(*b)),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Str(s) => f.write_str(s),
        }
    }
}

/// How a link is realised.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LinkType {
    /// A veth pair (guests and UML use the raw transport on their end).
    #[default]
    Veth,
    /// A tap device on the host node's end, driven by the guest or UML node on the other.
    Tap,
    /// Ethernet over GRE between two guest/UML nodes.
    Gre,
    /// Ethernet over L2TPv3 (IP or UDP) between two guest/UML nodes.
    L2tpv3,
    /// AF_UNIX seqpacket (BESS framing) between two guest/UML nodes.
    Bess,
}

impl LinkType {
    /// The name as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkType::Veth => "veth",
            LinkType::Tap => "tap",
            LinkType::Gre => "gre",
            LinkType::L2tpv3 => "l2tpv3",
            LinkType::Bess => "bess",
        }
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A point-to-point link and its transport options. Which options apply depends on
/// `type`; an option of another type is an error.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The two ends, `NODE:INTERFACE`.
    #[schemars(with = "[String; 2]")]
    pub endpoints: Vec<Spanned<String>>,
    /// veth (default), tap, gre, l2tpv3 or bess.
    #[serde(default, rename = "type")]
    #[schemars(with = "Option<LinkType>")]
    pub link_type: Option<Spanned<LinkType>>,
    /// MTU of both ends (576..=65534). For gre/l2tpv3 the underlay is made larger by the
    /// encapsulation overhead.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub mtu: Option<Spanned<u32>>,
    /// Vector depth of guest/UML ends (1..=4096).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub depth: Option<Spanned<u32>>,
    /// Large frames pass whole through guest/UML ends (`gro=1`).
    #[serde(default)]
    pub gro: Option<bool>,
    /// Multi-frame I/O on guest/UML ends (`vec=`; default true).
    #[serde(default)]
    pub vec: Option<bool>,
    /// Headroom of guest/UML ends (`headroom=`, 0..=256).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub headroom: Option<Spanned<u32>>,
    /// gre: key in both directions, or `[A_TO_B, B_TO_A]`.
    #[serde(default)]
    #[schemars(with = "Option<KeyPair>")]
    pub key: Option<Spanned<KeyPair>>,
    /// gre: sequence numbers on transmit (`sequence=1`).
    #[serde(default)]
    pub sequence: Option<bool>,
    /// gre: fixed sequence number 0 (`pin_sequence=1`, needs `sequence`).
    #[serde(default)]
    pub pin_sequence: Option<bool>,
    /// l2tpv3: session id in both directions, or `[A_TO_B, B_TO_A]` (required).
    #[serde(default)]
    #[schemars(with = "Option<KeyPair>")]
    pub session: Option<Spanned<KeyPair>>,
    /// l2tpv3: cookie in both directions, or `[A_TO_B, B_TO_A]`.
    #[serde(default)]
    #[schemars(with = "Option<KeyPair>")]
    pub cookie: Option<Spanned<KeyPair>>,
    /// l2tpv3: 64-bit cookies (`cookie64=1`).
    #[serde(default)]
    pub cookie64: Option<bool>,
    /// l2tpv3: carry over UDP instead of IP protocol 115 (`udp=1`).
    #[serde(default)]
    pub udp: Option<bool>,
    /// l2tpv3 over UDP: ports `[A, B]` (default 1701 on both ends).
    #[serde(default)]
    #[schemars(with = "Option<[u16; 2]>")]
    pub ports: Option<Spanned<Vec<u32>>>,
    /// l2tpv3: counter field (`counter=1`).
    #[serde(default)]
    pub counter: Option<bool>,
    /// l2tpv3: fixed counter 0 (`pin_counter=1`, needs `counter`).
    #[serde(default)]
    pub pin_counter: Option<bool>,
    /// Cross-host links: `clamp` (default) lowers `mtu` to what the underlay carries,
    /// `fail` rejects the file instead.
    #[serde(default)]
    pub mtu_policy: Option<MtuPolicy>,
    /// gre/l2tpv3: MTU of the underlay carrying the tunnel (default: `mtu` plus the
    /// encapsulation overhead). `mtu` plus the overhead must fit in it.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub underlay_mtu: Option<Spanned<u32>>,
    /// Impairment of the link: one map for both directions (`{delay: 20ms, loss: 1%}`)
    /// or `{a_to_b: {...}, b_to_a: {...}}`; keys as in docs/impairments.md. On a link
    /// without a vecbox guest end, vecbox inserts an xconnect datapath to realise it.
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub impair: Option<Spanned<super::impair::ImpairMap>>,
}

/// A 32- or 64-bit identifier for both directions, or one per direction.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(untagged)]
pub enum KeyPair {
    /// The same value both ways.
    Both(u64),
    /// `[A_TO_B, B_TO_A]`: what endpoint A sends (and B expects), then the reverse.
    Each(Vec<u64>),
}

impl KeyPair {
    /// (A→B, B→A), or `None` for a list that is not two values.
    pub fn pair(&self) -> Option<(u64, u64)> {
        match self {
            KeyPair::Both(v) => Some((*v, *v)),
            KeyPair::Each(v) if v.len() == 2 => Some((v[0], v[1])),
            KeyPair::Each(_) => None,
        }
    }
}

/// A YAML mapping that keeps the file's order and each key's position.
#[derive(Debug)]
pub struct Ordered<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for Ordered<V> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<V> Ordered<V> {
    /// The entries in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&Spanned<String>, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k.value == key).map(|(_, v)| v)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `true` when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(Ordered(Vec::new()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(Spanned<String>, V)> = Vec::new();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    if out.iter().any(|(o, _)| o.value == k.value) {
                        return Err(serde::de::Error::custom(format!(
                            "`{}` is given twice",
                            k.value
                        )));
                    }
                    let v = map.next_value()?;
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}
