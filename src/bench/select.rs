//! Which slice of the matrix runs: axis flags, name globs, and the rows each selected
//! scenario needs (its ceiling and baselines), in run order.

use super::BenchError;
use super::scenario::{
    DEFAULT_DEPTH, DEPTHS, Dut, FLOWS, FUNCTIONS, Function, Kind, Rules, SIZES, Scenario, Size,
    TRANSPORTS, Transport,
};

/// Which slice of the matrix to run.
#[derive(Clone, Debug)]
pub struct Selection {
    pub functions: Vec<Function>,
    pub transports: Vec<Transport>,
    pub sizes: Vec<Size>,
    pub depths: Vec<u16>,
    /// Concurrent flows for the functions whose work depends on them (router,
    /// firewall); run at the first transport and size.
    pub flows: Vec<u32>,
    /// The full cartesian product (otherwise one axis at a time around the default
    /// point raw/64/d64/vec/offloads on/one flow).
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
            flows: FLOWS.to_vec(),
            full: false,
            tcp: true,
            patterns: Vec::new(),
        }
    }
}

/// Functions that run across every transport and size in the default matrix; the
/// other firewall rule sets run on the flow axis only.
fn across_transports(f: Function) -> bool {
    !matches!(f, Function::Firewall(Rules::One | Rules::Mixed))
}

impl Selection {
    /// The vecbox scenarios selected, in run order; [`Selection::with_baselines`] adds
    /// the rows they are compared with.
    pub fn vecbox(&self) -> Vec<Scenario> {
        let mut out = Vec::new();
        let mut push = |s: Scenario| {
            if !out.contains(&s) {
                out.push(s);
            }
        };
        let pps = |function, transport, size, depth, vector, offloads, flows| Scenario {
            dut: Dut::Vecbox,
            kind: Kind::Pps {
                function,
                transport,
                size,
                depth,
                vector,
                offloads,
                flows,
            },
        };
        let def_depth = if self.depths.contains(&DEFAULT_DEPTH) {
            DEFAULT_DEPTH
        } else {
            self.depths[0]
        };
        let flows_of = |f: Function| -> Vec<u32> {
            if f.per_flow() {
                self.flows.clone()
            } else {
                vec![1]
            }
        };
        for &t in &self.transports {
            for &f in &self.functions {
                if self.full {
                    for &s in &self.sizes {
                        for &d in &self.depths {
                            for v in [true, false] {
                                for o in [true, false] {
                                    for n in flows_of(f) {
                                        push(pps(f, t, s, d, v, o, n));
                                    }
                                }
                            }
                        }
                    }
                    continue;
                }
                if !across_transports(f) {
                    continue;
                }
                for &s in &self.sizes {
                    push(pps(f, t, s, def_depth, true, true, 1));
                }
                // The other axes, one at a time, at the first selected size.
                let s = self.sizes[0];
                for &d in &self.depths {
                    push(pps(f, t, s, d, true, true, 1));
                }
                push(pps(f, t, s, def_depth, false, true, 1));
                push(pps(f, t, s, def_depth, true, false, 1));
            }
        }
        if !self.full {
            // The flow axis: every per-flow function at the first transport and size.
            let (t, s) = (self.transports[0], self.sizes[0]);
            for &n in &self.flows {
                for &f in self.functions.iter().filter(|f| f.per_flow()) {
                    push(pps(f, t, s, def_depth, true, true, n));
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

    /// Selected vecbox scenarios plus the rows they are compared with (each once, and
    /// each before the first row that needs it: ceilings, then baselines).
    pub fn with_baselines(&self) -> Vec<Scenario> {
        fn add(out: &mut Vec<Scenario>, s: Scenario) {
            if out.contains(&s) {
                return;
            }
            for r in s.refs().all() {
                add(out, r.clone());
            }
            out.push(s);
        }
        let mut out = Vec::new();
        for s in self.vecbox() {
            add(&mut out, s);
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

/// Parse a comma-separated list with `parse` (each item may stand for several).
pub fn list<T>(
    s: &str,
    parse: impl Fn(&str) -> Result<Vec<T>, BenchError>,
) -> Result<Vec<T>, BenchError> {
    let mut v = Vec::new();
    for item in s.split(',').filter(|x| !x.trim().is_empty()) {
        v.extend(parse(item)?);
    }
    if v.is_empty() {
        return Err(BenchError::Usage(format!("empty list {s:?}")));
    }
    Ok(v)
}

/// One item of a list that names one value.
pub fn one<T>(r: Result<T, BenchError>) -> Result<Vec<T>, BenchError> {
    r.map(|v| vec![v])
}

/// A `--flows` item: 1..=MAX_FLOWS.
pub fn parse_flows(s: &str) -> Result<u32, BenchError> {
    let t = s.trim().replace('_', "");
    match t.parse::<u32>() {
        Ok(n) if (1..=super::scenario::MAX_FLOWS).contains(&n) => Ok(n),
        _ => Err(BenchError::Usage(format!(
            "flows {s:?}: expected 1..={} concurrent flows (e.g. --flows 1,10000,100000)",
            super::scenario::MAX_FLOWS
        ))),
    }
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
    fn default_matrix_has_every_axis_ceilings_and_baselines_once() {
        let all = Selection::default().with_baselines();
        let names: Vec<String> = all.iter().map(Scenario::name).collect();
        for want in [
            "ceiling/64/off1",
            "ceiling/64/off0",
            "ceiling/imix/off1",
            "ceiling/64/off1/f100000",
            "ceiling/tcp/1s/off1",
            "vecbox/xconnect/raw/64/d64/vec/off1",
            "vecbox/xconnect/raw/64/d16/vec/off1",
            "vecbox/xconnect/raw/64/d256/vec/off1",
            "vecbox/xconnect/raw/64/d64/vec0/off1",
            "vecbox/xconnect/raw/64/d64/vec/off0",
            "vecbox/firewall-port/bess/imix/d64/vec/off1",
            "vecbox/firewall-port/raw/64/d64/vec/off1/f10000",
            "vecbox/firewall-mixed/raw/64/d64/vec/off1/f100000",
            "vecbox/firewall-one/raw/64/d64/vec/off1",
            "vecbox/router/raw/64/d64/vec/off1/f100000",
            "kernel/forward/64/off1/f10000",
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
        // The extra rule sets and the flow counts run at the default point only.
        assert!(!names.iter().any(|n| n.contains("firewall-mixed/tap")));
        assert!(
            !names
                .iter()
                .any(|n| n.contains("xconnect") && n.contains("/f1"))
        );
        let mut dedup = names.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), names.len(), "duplicates");
        // Every reference comes before the first row that uses it.
        for (i, s) in all.iter().enumerate() {
            for r in s.refs().all() {
                assert!(all[..i].contains(r), "{} before {}", r.name(), s.name());
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
            flows: vec![1, 10],
            full: true,
            tcp: false,
            patterns: vec![],
        };
        assert_eq!(sel.vecbox().len(), 2 * 2 * 2 * 2 * 2);
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
        let e = list("raw,vde", |s| one(s.parse::<Transport>()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("vde") && e.contains("l2tpv3-ip"), "{e}");
        assert!(list("", Function::parse_item).is_err());
        assert_eq!(
            list("10_000,1", |s| one(parse_flows(s))).unwrap(),
            [10_000, 1]
        );
        let e = parse_flows("0").unwrap_err().to_string();
        assert!(e.contains("\"0\"") && e.contains("--flows"), "{e}");
    }
}
