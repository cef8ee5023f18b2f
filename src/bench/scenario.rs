//! The benchmark matrix: what a scenario is, its name, and how a user picks a slice of
//! the matrix (axis flags and name globs).

use std::fmt;

use serde::Serialize;

use super::BenchError;

/// Network function run by the device under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    Xconnect,
    Router,
    Firewall,
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

/// Who forwards: vecbox, the Linux kernel of the DUT namespace, or a real UML kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dut {
    Vecbox,
    /// Kernel bridge (L2, compared with xconnect) or kernel IPv4 forwarding (compared
    /// with router and firewall).
    Kernel,
    /// Debian's linux.uml routing between its vector ports.
    Uml,
}

/// One cell of the matrix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Kind {
    /// Packet rate of UDP frames from the generator, counted at the sink.
    Pps {
        function: Function,
        transport: Transport,
        #[serde(serialize_with = "ser_size")]
        size: Size,
        depth: u16,
        vector: bool,
        offloads: bool,
    },
    /// iperf3 TCP, gen → sink.
    Tcp { streams: u8, offloads: bool },
}

fn ser_size<S: serde::Serializer>(s: &Size, ser: S) -> Result<S::Ok, S::Error> {
    ser.collect_str(s)
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
pub const FUNCTIONS: [Function; 3] = [Function::Xconnect, Function::Router, Function::Firewall];
pub const SIZES: [Size; 4] = [
    Size::Bytes(64),
    Size::Bytes(512),
    Size::Bytes(1500),
    Size::Imix,
];
pub const DEPTHS: [u16; 3] = [16, 64, 256];
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
            Function::Firewall => "firewall",
        }
    }
}

impl std::str::FromStr for Function {
    type Err = BenchError;
    fn from_str(s: &str) -> Result<Function, BenchError> {
        FUNCTIONS
            .into_iter()
            .find(|f| f.name() == s.trim())
            .ok_or_else(|| {
                BenchError::Usage(format!(
                    "function {s:?}: expected xconnect, router or firewall"
                ))
            })
    }
}

impl Scenario {
    /// Stable, glob-friendly name, e.g. `vecbox/xconnect/raw/64/d64/vec/off1`,
    /// `kernel/bridge/64/off1`, `uml/gre/64`, `vecbox/tcp/4s/off1`.
    pub fn name(&self) -> String {
        let o = |b: bool| if b { "off1" } else { "off0" };
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
                },
            ) => format!(
                "vecbox/{}/{}/{size}/d{depth}/{}/{}",
                function.name(),
                transport.name(),
                if *vector { "vec" } else { "vec0" },
                o(*offloads)
            ),
            (
                Dut::Kernel,
                Kind::Pps {
                    function,
                    size,
                    offloads,
                    ..
                },
            ) => format!("kernel/{}/{size}/{}", kernel_mode(*function), o(*offloads)),
            (
                Dut::Uml,
                Kind::Pps {
                    transport, size, ..
                },
            ) => {
                format!("uml/{}/{size}", transport.name())
            }
            (dut, Kind::Tcp { streams, offloads }) => {
                let who = match dut {
                    Dut::Vecbox => "vecbox",
                    Dut::Kernel => "kernel",
                    Dut::Uml => "uml",
                };
                format!("{who}/tcp/{streams}s/{}", o(*offloads))
            }
        }
    }

    /// The baselines this scenario is compared with (kernel, UML), when it is a vecbox
    /// scenario.
    pub fn baselines(&self) -> Option<(Scenario, Scenario)> {
        if self.dut != Dut::Vecbox {
            return None;
        }
        Some(match self.kind {
            Kind::Pps {
                function,
                transport,
                size,
                offloads,
                ..
            } => (
                Scenario::kernel_pps(function, size, offloads),
                Scenario::uml_pps(transport, size),
            ),
            Kind::Tcp { streams, offloads } => (
                Scenario {
                    dut: Dut::Kernel,
                    kind: Kind::Tcp { streams, offloads },
                },
                Scenario {
                    dut: Dut::Uml,
                    kind: Kind::Tcp {
                        streams,
                        offloads: true,
                    },
                },
            ),
        })
    }

    pub fn kernel_pps(function: Function, size: Size, offloads: bool) -> Scenario {
        // Kernel baselines are keyed by L2 (bridge) or L3 (forward) only.
        let function = match function {
            Function::Xconnect => Function::Xconnect,
            _ => Function::Router,
        };
        Scenario {
            dut: Dut::Kernel,
            kind: Kind::Pps {
                function,
                transport: Transport::Raw,
                size,
                depth: DEFAULT_DEPTH,
                vector: true,
                offloads,
            },
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
            kind: Kind::Pps {
                function: Function::Router,
                transport,
                size,
                depth: DEFAULT_DEPTH,
                vector: true,
                offloads: true,
            },
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

/// Which slice of the matrix to run.
#[derive(Clone, Debug)]
pub struct Selection {
    pub functions: Vec<Function>,
    pub transports: Vec<Transport>,
    pub sizes: Vec<Size>,
    pub depths: Vec<u16>,
    /// The full cartesian product (otherwise one axis at a time around the default
    /// point raw/64/d64/vec/offloads on).
    pub full: bool,
    pub tcp: bool,
    /// Name globs; a scenario runs when it matches any (all when empty).
    pub patterns: Vec<String>,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            functions: FUNCTIONS.to_vec(),
            transports: TRANSPORTS.to_vec(),
            sizes: SIZES.to_vec(),
            depths: DEPTHS.to_vec(),
            full: false,
            tcp: true,
            patterns: Vec::new(),
        }
    }
}

impl Selection {
    /// The vecbox scenarios selected, in run order, each followed by nothing: the
    /// baselines are added by [`Selection::with_baselines`].
    pub fn vecbox(&self) -> Vec<Scenario> {
        let mut out = Vec::new();
        let mut push = |s: Scenario| {
            if !out.contains(&s) {
                out.push(s);
            }
        };
        let pps = |function, transport, size, depth, vector, offloads| Scenario {
            dut: Dut::Vecbox,
            kind: Kind::Pps {
                function,
                transport,
                size,
                depth,
                vector,
                offloads,
            },
        };
        let def_depth = if self.depths.contains(&DEFAULT_DEPTH) {
            DEFAULT_DEPTH
        } else {
            self.depths[0]
        };
        for &t in &self.transports {
            for &f in &self.functions {
                for &s in &self.sizes {
                    if self.full {
                        for &d in &self.depths {
                            for v in [true, false] {
                                for o in [true, false] {
                                    push(pps(f, t, s, d, v, o));
                                }
                            }
                        }
                    } else {
                        push(pps(f, t, s, def_depth, true, true));
                    }
                }
                if !self.full {
                    // The other axes, one at a time, at the first selected size.
                    let s = self.sizes[0];
                    for &d in &self.depths {
                        push(pps(f, t, s, d, true, true));
                    }
                    push(pps(f, t, s, def_depth, false, true));
                    push(pps(f, t, s, def_depth, true, false));
                }
            }
        }
        if self.tcp {
            for offloads in [true, false] {
                for streams in [1, 4] {
                    push(Scenario {
                        dut: Dut::Vecbox,
                        kind: Kind::Tcp { streams, offloads },
                    });
                }
            }
        }
        out.retain(|s| self.matches(s));
        out
    }

    fn matches(&self, s: &Scenario) -> bool {
        let name = s.name();
        self.patterns.is_empty() || self.patterns.iter().any(|p| glob(p, &name))
    }

    /// Selected vecbox scenarios plus the baselines they are compared with (each once).
    pub fn with_baselines(&self) -> Vec<Scenario> {
        let mut out: Vec<Scenario> = Vec::new();
        for s in self.vecbox() {
            if let Some((k, u)) = s.baselines() {
                for b in [k, u] {
                    if !out.contains(&b) {
                        out.push(b);
                    }
                }
            }
            out.push(s);
        }
        out
    }
}

/// Shell-style glob: `*` any run of characters (also `/`), `?` one character. A pattern
/// without `*`/`?` matches as a substring.
pub fn glob(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return name.contains(pattern);
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Parse a comma-separated list with `parse`.
pub fn list<T>(
    s: &str,
    parse: impl Fn(&str) -> Result<T, BenchError>,
) -> Result<Vec<T>, BenchError> {
    let v: Vec<T> = s
        .split(',')
        .filter(|x| !x.trim().is_empty())
        .map(parse)
        .collect::<Result<_, _>>()?;
    if v.is_empty() {
        return Err(BenchError::Usage(format!("empty list {s:?}")));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob(
            "vecbox/xconnect/*",
            "vecbox/xconnect/raw/64/d64/vec/off1"
        ));
        assert!(glob("*/64/*", "kernel/bridge/64/off1"));
        assert!(!glob("*/512/*", "kernel/bridge/64/off1"));
        assert!(glob("raw", "vecbox/router/raw/64/d64/vec/off1"));
        assert!(glob("uml/?re/*", "uml/gre/64"));
        assert!(!glob("uml", "kernel/tcp/1s/off1"));
    }

    #[test]
    fn sizes_parse_and_map_to_ip_lengths() {
        assert_eq!("64".parse::<Size>().unwrap().ip_lengths(), vec![46]);
        assert_eq!("1500".parse::<Size>().unwrap().ip_lengths(), vec![1500]);
        assert_eq!("IMIX".parse::<Size>().unwrap().ip_lengths().len(), 12);
        let e = "9000".parse::<Size>().unwrap_err().to_string();
        assert!(e.contains("9000") && e.contains("imix"), "{e}");
    }

    #[test]
    fn default_matrix_has_every_axis_and_baselines_once() {
        let all = Selection::default().with_baselines();
        let names: Vec<String> = all.iter().map(Scenario::name).collect();
        for want in [
            "vecbox/xconnect/raw/64/d64/vec/off1",
            "vecbox/xconnect/raw/64/d16/vec/off1",
            "vecbox/xconnect/raw/64/d256/vec/off1",
            "vecbox/xconnect/raw/64/d64/vec0/off1",
            "vecbox/xconnect/raw/64/d64/vec/off0",
            "vecbox/firewall/bess/imix/d64/vec/off1",
            "kernel/bridge/64/off1",
            "kernel/forward/512/off1",
            "kernel/bridge/64/off0",
            "uml/l2tpv3-udp/1500",
            "vecbox/tcp/4s/off0",
            "kernel/tcp/1s/off1",
            "uml/tcp/4s/off1",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing");
        }
        let mut dedup = names.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), names.len(), "duplicates");
        // Every baseline comes before the first scenario that uses it.
        for (i, s) in all.iter().enumerate() {
            if let Some((k, u)) = s.baselines() {
                assert!(all[..i].contains(&k) && all[..i].contains(&u));
            }
        }
    }

    #[test]
    fn full_product_and_filters() {
        let sel = Selection {
            functions: vec![Function::Router],
            transports: vec![Transport::Gre],
            sizes: vec![Size::Bytes(64), Size::Imix],
            depths: vec![16, 256],
            full: true,
            tcp: false,
            patterns: vec![],
        };
        assert_eq!(sel.vecbox().len(), 2 * 2 * 2 * 2);
        let sel = Selection {
            patterns: vec!["*/d256/*".into()],
            ..sel
        };
        assert!(sel.vecbox().iter().all(|s| s.name().contains("/d256/")));
        assert!(
            Selection {
                patterns: vec!["nothing".into()],
                ..Selection::default()
            }
            .vecbox()
            .is_empty()
        );
    }

    #[test]
    fn bad_axis_values_name_the_value() {
        let e = list("raw,vde", str::parse::<Transport>)
            .unwrap_err()
            .to_string();
        assert!(e.contains("vde") && e.contains("l2tpv3-ip"), "{e}");
        assert!(list("", str::parse::<Function>).is_err());
    }
}
