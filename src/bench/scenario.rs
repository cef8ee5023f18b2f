//! The benchmark matrix: what a scenario is, its name, and the rows it is compared
//! with (its ceiling, kernel and UML baselines). Picking a slice of the matrix is in
//! [`super::select`].

use std::fmt;

use serde::Serialize;

use super::BenchError;

/// Firewall rule set (see [`super::rulesets`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rules {
    /// Only the flow's own rule: connection tracking and the classifier's base cost.
    One,
    /// `--rules` rules on the flow's own protocol and port, distinct source prefixes,
    /// the flow's rule last: every rule is a candidate the classifier must consider.
    Port,
    /// A mixed ClassBench-like access list from a fixed seed, the flow's rule last.
    Mixed,
}

/// Network function run by the device under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    Xconnect,
    Router,
    Firewall(Rules),
}

/// Vector transport of the DUT's egress port (the ingress port is always `raw` on the
/// generator's veth).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    Raw,
    Tap,
    Hybrid,
    Gre,
    L2tpv3Ip,
    L2tpv3Udp,
    Bess,
}

/// Frame size: an Ethernet frame length including the 4-byte FCS (RFC 2544 style), or
/// IMIX (7:4:1 of 64, 594 and 1518 byte frames). `1500` means a full-MTU frame: a
/// 1500-byte IP packet, 1518 bytes with FCS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    Bytes(u16),
    Imix,
}

/// Who forwards: vecbox, the Linux kernel of the DUT namespace, a real UML kernel, or
/// nobody (the ceiling: the generator straight into a sink over one veth).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dut {
    Vecbox,
    /// Kernel bridge (L2, compared with xconnect) or kernel IPv4 forwarding (compared
    /// with router and firewall).
    Kernel,
    /// Debian's linux.uml routing between its vector ports.
    Uml,
    /// No hop: what the generator (and the iperf3 endpoints) reach on their own.
    Ceiling,
}

/// One cell of the matrix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Kind {
    /// Packet rate of UDP frames from the generator, counted at the sink.
    Pps {
        #[serde(serialize_with = "ser_function")]
        function: Function,
        transport: Transport,
        #[serde(serialize_with = "ser_size")]
        size: Size,
        depth: u16,
        vector: bool,
        offloads: bool,
        /// Concurrent flows (distinct source address and port pairs).
        flows: u32,
    },
    /// iperf3 TCP, gen → sink.
    Tcp { streams: u8, offloads: bool },
}

fn ser_size<S: serde::Serializer>(s: &Size, ser: S) -> Result<S::Ok, S::Error> {
    ser.collect_str(s)
}

fn ser_function<S: serde::Serializer>(f: &Function, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(f.name())
}

/// A scenario: a DUT and what is measured through it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Scenario {
    pub dut: Dut,
    #[serde(flatten)]
    pub kind: Kind,
}

pub const TRANSPORTS: [Transport; 7] = [
    Transport::Raw,
    Transport::Tap,
    Transport::Hybrid,
    Transport::Gre,
    Transport::L2tpv3Ip,
    Transport::L2tpv3Udp,
    Transport::Bess,
];
pub const FUNCTIONS: [Function; 5] = [
    Function::Xconnect,
    Function::Router,
    Function::Firewall(Rules::Port),
    Function::Firewall(Rules::One),
    Function::Firewall(Rules::Mixed),
];
pub const SIZES: [Size; 4] = [
    Size::Bytes(64),
    Size::Bytes(512),
    Size::Bytes(1500),
    Size::Imix,
];
pub const DEPTHS: [u16; 3] = [16, 64, 256];
/// Concurrent flows of the default matrix's flow axis.
pub const FLOWS: [u32; 3] = [1, 10_000, 100_000];
/// Most flows a generator can send (distinct sources in 10.96.0.0/12).
pub const MAX_FLOWS: u32 = 1 << 20;
/// Default queue depth (UML's default).
pub const DEFAULT_DEPTH: u16 = 64;

impl Size {
    /// IP packet lengths of one generator cycle (one entry, or the 12 of IMIX).
    pub fn ip_lengths(self) -> Vec<u16> {
        match self {
            Size::Bytes(1500) => vec![1500],
            Size::Bytes(n) => vec![n.saturating_sub(18).max(28)],
            Size::Imix => [46; 7].into_iter().chain([576; 4]).chain([1500]).collect(),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Bytes(n) => write!(f, "{n}"),
            Size::Imix => f.write_str("imix"),
        }
    }
}

impl std::str::FromStr for Size {
    type Err = BenchError;
    fn from_str(s: &str) -> Result<Size, BenchError> {
        let s = s.trim().trim_end_matches(['B', 'b']);
        if s.eq_ignore_ascii_case("imix") || s.eq_ignore_ascii_case("imi") {
            return Ok(Size::Imix);
        }
        match s.parse::<u16>() {
            Ok(n) if (64..=1500).contains(&n) => Ok(Size::Bytes(n)),
            _ => Err(BenchError::Usage(format!(
                "frame size {s:?}: expected 64..=1500 bytes or imix (e.g. --sizes 64,512,1500,imix)"
            ))),
        }
    }
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Raw => "raw",
            Transport::Tap => "tap",
            Transport::Hybrid => "hybrid",
            Transport::Gre => "gre",
            Transport::L2tpv3Ip => "l2tpv3-ip",
            Transport::L2tpv3Udp => "l2tpv3-udp",
            Transport::Bess => "bess",
        }
    }

    /// Tunnels carry frames over an underlay veth to the sink namespace.
    pub fn is_tunnel(self) -> bool {
        matches!(
            self,
            Transport::Gre | Transport::L2tpv3Ip | Transport::L2tpv3Udp
        )
    }
}

impl std::str::FromStr for Transport {
    type Err = BenchError;
    fn from_str(s: &str) -> Result<Transport, BenchError> {
        TRANSPORTS
            .into_iter()
            .find(|t| t.name() == s.trim())
            .ok_or_else(|| {
                BenchError::Usage(format!(
                    "transport {s:?}: expected one of raw, tap, hybrid, gre, l2tpv3-ip, l2tpv3-udp, bess"
                ))
            })
    }
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Function::Xconnect => "xconnect",
            Function::Router => "router",
            Function::Firewall(Rules::One) => "firewall-one",
            Function::Firewall(Rules::Port) => "firewall-port",
            Function::Firewall(Rules::Mixed) => "firewall-mixed",
        }
    }

    /// The guest function vecbox runs (`vecbox guest NAME`).
    pub fn guest(self) -> &'static str {
        match self {
            Function::Firewall(_) => "firewall",
            f => f.name(),
        }
    }

    /// Functions whose work depends on the number of flows (the flow axis applies).
    pub fn per_flow(self) -> bool {
        self != Function::Xconnect
    }

    /// Parse one `--functions` item; `firewall` stands for the three rule sets.
    pub fn parse_item(s: &str) -> Result<Vec<Function>, BenchError> {
        let s = s.trim();
        if s == "firewall" {
            return Ok(FUNCTIONS
                .into_iter()
                .filter(|f| matches!(f, Function::Firewall(_)))
                .collect());
        }
        FUNCTIONS
            .into_iter()
            .find(|f| f.name() == s)
            .map(|f| vec![f])
            .ok_or_else(|| {
                BenchError::Usage(format!(
                    "function {s:?}: expected xconnect, router, firewall (all three rule sets), firewall-port, firewall-mixed or firewall-one"
                ))
            })
    }
}

impl Kind {
    /// A packet-rate kind with the default depth, vector I/O and one flow.
    pub fn pps(function: Function, transport: Transport, size: Size, offloads: bool) -> Kind {
        Kind::Pps {
            function,
            transport,
            size,
            depth: DEFAULT_DEPTH,
            vector: true,
            offloads,
            flows: 1,
        }
    }

    /// The same kind with `n` flows (packet-rate kinds only).
    pub fn with_flows(mut self, n: u32) -> Kind {
        if let Kind::Pps { flows, .. } = &mut self {
            *flows = n;
        }
        self
    }
}

/// The rows a scenario is compared with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refs {
    /// The generator straight into a sink with the same traffic (none for a ceiling).
    pub ceiling: Option<Scenario>,
    pub kernel: Option<Scenario>,
    pub uml: Option<Scenario>,
}

impl Refs {
    pub fn all(&self) -> impl Iterator<Item = &Scenario> {
        [&self.ceiling, &self.kernel, &self.uml]
            .into_iter()
            .flatten()
    }
}

fn off(b: bool) -> &'static str {
    if b { "off1" } else { "off0" }
}

fn flows_suffix(flows: u32) -> String {
    if flows == 1 {
        String::new()
    } else {
        format!("/f{flows}")
    }
}

impl Scenario {
    /// Stable, glob-friendly name, e.g. `vecbox/xconnect/raw/64/d64/vec/off1`,
    /// `vecbox/firewall-port/raw/64/d64/vec/off1/f10000`, `kernel/bridge/64/off1`,
    /// `uml/gre/64`, `ceiling/64/off1`, `vecbox/tcp/4s/off1`, `ceiling/tcp/1s/off1`.
    pub fn name(&self) -> String {
        match (&self.dut, &self.kind) {
            (
                Dut::Vecbox,
                Kind::Pps {
                    function,
                    transport,
                    size,
                    depth,
                    vector,
                    offloads,
                    flows,
                },
            ) => format!(
                "vecbox/{}/{}/{size}/d{depth}/{}/{}{}",
                function.name(),
                transport.name(),
                if *vector { "vec" } else { "vec0" },
                off(*offloads),
                flows_suffix(*flows)
            ),
            (
                Dut::Kernel,
                Kind::Pps {
                    function,
                    size,
                    offloads,
                    flows,
                    ..
                },
            ) => format!(
                "kernel/{}/{size}/{}{}",
                kernel_mode(*function),
                off(*offloads),
                flows_suffix(*flows)
            ),
            (
                Dut::Uml,
                Kind::Pps {
                    transport, size, ..
                },
            ) => format!("uml/{}/{size}", transport.name()),
            (
                Dut::Ceiling,
                Kind::Pps {
                    size,
                    offloads,
                    flows,
                    ..
                },
            ) => format!("ceiling/{size}/{}{}", off(*offloads), flows_suffix(*flows)),
            (dut, Kind::Tcp { streams, offloads }) => {
                let who = match dut {
                    Dut::Vecbox => "vecbox",
                    Dut::Kernel => "kernel",
                    Dut::Uml => "uml",
                    Dut::Ceiling => "ceiling",
                };
                format!("{who}/tcp/{streams}s/{}", off(*offloads))
            }
        }
    }

    /// The rows this one is compared with: every row but a ceiling has a ceiling (the
    /// same traffic, no hop); vecbox rows also have a kernel and (for one flow) a UML
    /// baseline.
    pub fn refs(&self) -> Refs {
        let ceiling = match self.kind {
            _ if self.dut == Dut::Ceiling => None,
            Kind::Pps {
                size,
                offloads,
                flows,
                ..
            } => Some(Scenario::ceiling_pps(size, offloads, flows)),
            Kind::Tcp { streams, offloads } => Some(Scenario {
                dut: Dut::Ceiling,
                kind: Kind::Tcp { streams, offloads },
            }),
        };
        if self.dut != Dut::Vecbox {
            return Refs {
                ceiling,
                ..Refs::default()
            };
        }
        let (kernel, uml) = match self.kind {
            Kind::Pps {
                function,
                transport,
                size,
                offloads,
                flows,
                ..
            } => (
                Scenario::kernel_pps(function, size, offloads, flows),
                (flows == 1).then(|| Scenario::uml_pps(transport, size)),
            ),
            Kind::Tcp { streams, offloads } => (
                Scenario {
                    dut: Dut::Kernel,
                    kind: Kind::Tcp { streams, offloads },
                },
                Some(Scenario {
                    dut: Dut::Uml,
                    kind: Kind::Tcp {
                        streams,
                        offloads: true,
                    },
                }),
            ),
        };
        Refs {
            ceiling,
            kernel: Some(kernel),
            uml,
        }
    }

    pub fn ceiling_pps(size: Size, offloads: bool, flows: u32) -> Scenario {
        Scenario {
            dut: Dut::Ceiling,
            kind: Kind::pps(Function::Xconnect, Transport::Raw, size, offloads).with_flows(flows),
        }
    }

    pub fn kernel_pps(function: Function, size: Size, offloads: bool, flows: u32) -> Scenario {
        // Kernel baselines are keyed by L2 (bridge) or L3 (forward) only.
        let function = match function {
            Function::Xconnect => Function::Xconnect,
            _ => Function::Router,
        };
        Scenario {
            dut: Dut::Kernel,
            kind: Kind::pps(function, Transport::Raw, size, offloads).with_flows(flows),
        }
    }

    /// UML routing onto `transport`. Debian's UML hybrid transport transmits nothing
    /// (docs/transports.md); its transmit side is the tap's (one `writev` per frame), so
    /// hybrid rows are compared with UML on tap.
    pub fn uml_pps(transport: Transport, size: Size) -> Scenario {
        let transport = match transport {
            Transport::Hybrid => Transport::Tap,
            t => t,
        };
        Scenario {
            dut: Dut::Uml,
            kind: Kind::pps(Function::Router, transport, size, true),
        }
    }

    /// Flows of the traffic (TCP: the streams).
    pub fn flows(&self) -> u32 {
        match self.kind {
            Kind::Pps { flows, .. } => flows,
            Kind::Tcp { streams, .. } => u32::from(streams),
        }
    }
}

/// `bridge` for L2 functions, `forward` (ip_forward) for L3 ones.
pub fn kernel_mode(f: Function) -> &'static str {
    match f {
        Function::Xconnect => "bridge",
        _ => "forward",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_map_to_ip_lengths() {
        assert_eq!("64".parse::<Size>().unwrap().ip_lengths(), vec![46]);
        assert_eq!("1500".parse::<Size>().unwrap().ip_lengths(), vec![1500]);
        assert_eq!("IMIX".parse::<Size>().unwrap().ip_lengths().len(), 12);
        let e = "9000".parse::<Size>().unwrap_err().to_string();
        assert!(e.contains("9000") && e.contains("imix"), "{e}");
    }

    #[test]
    fn names_and_refs() {
        let fw = Scenario {
            dut: Dut::Vecbox,
            kind: Kind::pps(
                Function::Firewall(Rules::Mixed),
                Transport::Raw,
                Size::Bytes(64),
                true,
            )
            .with_flows(10_000),
        };
        assert_eq!(
            fw.name(),
            "vecbox/firewall-mixed/raw/64/d64/vec/off1/f10000"
        );
        let r = fw.refs();
        assert_eq!(r.ceiling.unwrap().name(), "ceiling/64/off1/f10000");
        assert_eq!(r.kernel.unwrap().name(), "kernel/forward/64/off1/f10000");
        assert_eq!(r.uml, None, "UML baselines run one flow only");
        let k = Scenario::kernel_pps(Function::Xconnect, Size::Imix, false, 1);
        assert_eq!(k.name(), "kernel/bridge/imix/off0");
        assert_eq!(k.refs().ceiling.unwrap().name(), "ceiling/imix/off0");
        assert_eq!(k.refs().kernel, None);
        let c = Scenario::ceiling_pps(Size::Bytes(64), true, 1);
        assert_eq!(c.refs(), Refs::default());
        let tcp = Scenario {
            dut: Dut::Vecbox,
            kind: Kind::Tcp {
                streams: 4,
                offloads: false,
            },
        };
        let r = tcp.refs();
        assert_eq!(r.ceiling.unwrap().name(), "ceiling/tcp/4s/off0");
        assert_eq!(r.uml.unwrap().name(), "uml/tcp/4s/off1");
        assert_eq!(
            Scenario::uml_pps(Transport::Hybrid, Size::Bytes(64)).name(),
            "uml/tap/64"
        );
    }

    #[test]
    fn functions_parse_with_the_firewall_shorthand() {
        assert_eq!(Function::parse_item("firewall").unwrap().len(), 3);
        assert_eq!(
            Function::parse_item("firewall-one").unwrap(),
            vec![Function::Firewall(Rules::One)]
        );
        let e = Function::parse_item("nat").unwrap_err().to_string();
        assert!(e.contains("nat") && e.contains("firewall-port"), "{e}");
        let j = serde_json::to_value(Scenario {
            dut: Dut::Vecbox,
            kind: Kind::pps(
                Function::Firewall(Rules::Port),
                Transport::Raw,
                Size::Imix,
                true,
            ),
        })
        .unwrap();
        assert_eq!(j["function"], "firewall-port");
        assert_eq!(j["size"], "imix");
        assert_eq!(j["flows"], 1);
    }
}
