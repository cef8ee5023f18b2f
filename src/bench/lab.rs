//! Every bench scenario as a lab: the generator, DUT and sink namespaces, their veths,
//! and what the row's kernel needs (a Linux bridge or IPv4 forwarding on the DUT,
//! host addresses and routes for TCP, permanent neighbour entries, offload switches)
//! are one topology ([`yaml`]) brought up and torn down by the lab layer ([`Lab`]). So a
//! bench that is killed is cleaned up like any lab (`vecbox down --lab vbbPID`), and
//! `vecbox bench --topology SCENARIO` writes the same file for `vecbox up`.
//!
//! ```text
//!  gen ── g0 | d0 [DUT] d1 | s0 ── sink          (veth; the sink counts s0 rx)
//!                  [DUT] t0 | t1 ── sink         (underlay veth for tunnels, MTU 1600)
//! ```

use std::fmt::Write as _;
use std::path::Path;

use super::BenchError;
use super::scenario::{Dut, Function, Kind, Scenario, kernel_mode};
use super::topo::{SINK_MAC, T_DUT, T_SINK};
use crate::lab::journal::Entry;
use crate::lab::supervise::Supervisor;
use crate::lab::{deploy, teardown};

/// The network one row runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fabric {
    /// The DUT's kernel: `bridge` (br0 over d0, d1) or `forward` (IPv4 forwarding to
    /// the sink as a permanent neighbour).
    pub kernel: Option<&'static str>,
    /// TCP host addresses: one L2 segment (`false`) or two subnets routed through the
    /// DUT's .254 addresses (`true`).
    pub hosts: Option<bool>,
    /// The TCP ceiling's server end: 10.80.1.2/24 on d0.
    pub endpoint_on_d0: bool,
    /// Veth offloads left at the kernel's defaults (`true`) or all five switched off.
    pub offloads: bool,
}

impl Fabric {
    /// The plain fabric: no kernel function, no host addresses, offloads as `offloads`.
    pub fn plain(offloads: bool) -> Fabric {
        Fabric {
            kernel: None,
            hosts: None,
            endpoint_on_d0: false,
            offloads,
        }
    }
}

/// The fabric scenario `s` runs on (what the bench configured row by row before the
/// scenarios were labs).
pub fn fabric(s: &Scenario) -> Fabric {
    match s.kind {
        Kind::Pps {
            function, offloads, ..
        } => Fabric {
            kernel: (s.dut == Dut::Kernel).then(|| kernel_mode(function)),
            ..Fabric::plain(offloads)
        },
        Kind::Tcp { offloads, .. } => Fabric {
            kernel: (s.dut == Dut::Kernel).then(|| kernel_mode(Function::Xconnect)),
            hosts: Some(s.dut == Dut::Uml),
            endpoint_on_d0: s.dut == Dut::Ceiling,
            offloads,
        },
    }
}

const OFF: &str = "{tso: false, gso: false, gro: false, tx: false, rx: false}";

/// The topology file of lab `lab` for `f`; `about` is written as its first comment.
pub fn yaml(lab: &str, f: &Fabric, about: &str) -> String {
    let mut y = String::new();
    for l in about.lines() {
        let _ = writeln!(y, "# {l}");
    }
    let _ = writeln!(y, "name: {lab}\nnodes:");
    let off = |y: &mut String, iface: &str, addrs: &[&str]| {
        let mut keys = Vec::new();
        if !addrs.is_empty() {
            keys.push(format!("addresses: [{}]", addrs.join(", ")));
        }
        if !f.offloads {
            keys.push(format!("offloads: {OFF}"));
        }
        if !keys.is_empty() {
            let _ = writeln!(y, "      {iface}: {{{}}}", keys.join(", "));
        }
    };
    let sysctls = |y: &mut String, forward: bool| {
        // No IPv6 on the lab's interfaces (no router solicitations, no DAD traffic).
        let _ = writeln!(
            y,
            "    sysctls:\n      net.ipv6.conf.default.disable_ipv6: 1"
        );
        if forward {
            let _ = writeln!(y, "      net.ipv4.ip_forward: 1");
        }
    };
    // gen
    let _ = writeln!(y, "  gen:\n    kind: host");
    sysctls(&mut y, false);
    let gen_addr: &[&str] = if f.hosts.is_some() {
        &["10.80.1.1/24"]
    } else {
        &[]
    };
    if !gen_addr.is_empty() || !f.offloads {
        let _ = writeln!(y, "    interfaces:");
        off(&mut y, "g0", gen_addr);
    }
    if f.hosts == Some(true) {
        let _ = writeln!(
            y,
            "    routes:\n      - {{to: 10.80.2.0/24, via: 10.80.1.254}}"
        );
    }
    // dut
    let forward = f.kernel == Some("forward");
    let _ = writeln!(y, "  dut:\n    kind: host");
    sysctls(&mut y, forward);
    let _ = writeln!(y, "    interfaces:");
    let d0: Vec<&str> = match (forward, f.endpoint_on_d0) {
        (true, _) => vec!["10.80.1.254/24"],
        (false, true) => vec!["10.80.1.2/24"],
        _ => vec![],
    };
    let d1: Vec<&str> = if forward {
        vec!["10.80.2.254/24"]
    } else {
        vec![]
    };
    off(&mut y, "d0", &d0);
    off(&mut y, "d1", &d1);
    let _ = writeln!(y, "      t0: {{addresses: [{T_DUT}/24]}}");
    if f.kernel == Some("bridge") {
        let _ = writeln!(y, "    bridges:\n      br0: [d0, d1]");
    }
    if forward {
        // Many-flow sources (10.96.0.0/12) are reached back through d0, so
        // reverse-path filtering passes them whatever its setting.
        let _ = writeln!(y, "    routes:\n      - {{to: 10.96.0.0/12, dev: d0}}");
    }
    // Tunnel packets (and forwarded ones) go to a MAC nobody owns: the sink's kernel
    // counts and drops them on arrival. Addressed to the sink itself, each would be
    // answered with an ICMP protocol unreachable (no GRE/L2TPv3 there), work the veth
    // runs on the DUT's core.
    let _ = writeln!(y, "    neighbours:");
    let _ = writeln!(
        y,
        "      - {{address: {T_SINK}, mac: \"{SINK_MAC}\", dev: t0}}"
    );
    if forward {
        let _ = writeln!(
            y,
            "      - {{address: 10.80.2.99, mac: \"{SINK_MAC}\", dev: d1}}"
        );
    }
    // sink
    let _ = writeln!(y, "  sink:\n    kind: host");
    sysctls(&mut y, false);
    let s0: &[&str] = match f.hosts {
        Some(false) => &["10.80.1.2/24"],
        Some(true) => &["10.80.2.2/24"],
        None => &[],
    };
    let _ = writeln!(y, "    interfaces:");
    off(&mut y, "s0", s0);
    let _ = writeln!(y, "      t1: {{addresses: [{T_SINK}/24]}}");
    if f.hosts == Some(true) {
        let _ = writeln!(
            y,
            "    routes:\n      - {{to: 10.80.1.0/24, via: 10.80.2.254}}"
        );
    }
    let _ = writeln!(
        y,
        "links:\n  - {{endpoints: [gen:g0, dut:d0]}}\n  - {{endpoints: [dut:d1, sink:s0]}}\n  - {{endpoints: [dut:t0, sink:t1], mtu: 1600}}"
    );
    y
}

/// What `--topology` writes above a scenario's lab: what the bench runs on it.
pub fn about(s: &Scenario, lab: &str) -> String {
    let run = match (s.dut, &s.kind) {
        (Dut::Vecbox, _) => format!(
            "vecbox bench starts the DUT (a vecbox guest) in namespace {lab}.dut on d0 and d1\n(tunnel transports: over t0 to a peer guest in {lab}.sink)"
        ),
        (Dut::Kernel, _) => "the DUT is the kernel of node dut, as configured below".to_string(),
        (Dut::Uml, _) => {
            format!("vecbox bench boots a UML kernel in namespace {lab}.dut on d0 and d1")
        }
        (Dut::Ceiling, _) => "no DUT: the generator sends straight to d0 (the ceiling)".to_string(),
    };
    format!(
        "vecbox bench scenario {} as a lab (`vecbox up FILE`).\nThe generator runs in {lab}.gen on g0, the sink counts frames received on s0 in {lab}.sink;\n{run}.",
        s.name()
    )
}

/// A scenario's lab, up; torn down from its journal when dropped.
pub struct Lab {
    pub name: String,
    pub fabric: Fabric,
    sup: Option<Supervisor>,
}

fn lab_err(e: crate::lab::LabError) -> BenchError {
    BenchError::Command(format!("bench lab: {e}"))
}

impl Lab {
    /// Bring up lab `name` for `fabric` (its file is written to `dir/lab.yaml`),
    /// removing the leftovers of an earlier run of the same name first.
    pub fn up(name: &str, fabric: &Fabric, dir: &Path) -> Result<Lab, BenchError> {
        let text = yaml(name, fabric, "vecbox bench");
        std::fs::create_dir_all(dir)
            .map_err(|e| BenchError::Command(format!("creating {}: {e}", dir.display())))?;
        let file = dir.join("lab.yaml");
        std::fs::write(&file, &text)
            .map_err(|e| BenchError::Command(format!("writing {}: {e}", file.display())))?;
        let plan =
            crate::lab::check_text(&file.display().to_string(), &text, &file).map_err(lab_err)?;
        if plan.run_dir().exists() {
            teardown::teardown(name);
        }
        super::topo::register_lab(name);
        let (run, mut journal) = deploy::begin(&plan).map_err(lab_err)?;
        // The bench's work directory and its guests' console directories go with the
        // lab, also when the bench was killed and `vecbox down` removes it.
        let mut dirs = vec![dir.to_path_buf()];
        if let Some(home) = std::env::var_os("HOME") {
            for role in ["dut", "peer", "uml"] {
                dirs.push(Path::new(&home).join(".uml").join(format!("{name}-{role}")));
            }
        }
        for path in dirs {
            journal
                .record(&Entry::Dir { path })
                .map_err(|e| BenchError::Command(format!("writing the lab's journal: {e}")))?;
        }
        let mut sup = Supervisor::new(plan.clone(), run, journal);
        let mut quiet = |_: usize, _: usize, _: &str| {};
        match deploy::build(&plan, &mut sup, &mut quiet) {
            Ok(()) => Ok(Lab {
                name: name.to_string(),
                fabric: fabric.clone(),
                sup: Some(sup),
            }),
            Err(e) => {
                drop(sup.shutdown());
                super::topo::unregister_lab(name);
                Err(lab_err(e))
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        match self.sup.take() {
            Some(s) => drop(s.shutdown()),
            None => drop(teardown::teardown(&self.name)),
        }
        super::topo::unregister_lab(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fabric_is_a_valid_topology() {
        for kernel in [None, Some("bridge"), Some("forward")] {
            for hosts in [None, Some(false), Some(true)] {
                for offloads in [true, false] {
                    let f = Fabric {
                        kernel,
                        hosts,
                        endpoint_on_d0: hosts == Some(false) && kernel.is_none(),
                        offloads,
                    };
                    let text = yaml("vbtlab", &f, "test");
                    let p = crate::lab::check_text("t.yaml", &text, Path::new("/tmp/t.yaml"))
                        .unwrap_or_else(|e| panic!("{f:?}: {e}\n{text}"));
                    let dut = p.node("dut").unwrap();
                    assert_eq!(dut.net.bridges.len(), usize::from(kernel == Some("bridge")));
                    assert_eq!(
                        dut.sysctls
                            .iter()
                            .any(|(k, v)| k == "net.ipv4.ip_forward" && v == "1"),
                        kernel == Some("forward")
                    );
                    assert_eq!(dut.net.offloads.len(), if offloads { 0 } else { 2 });
                }
            }
        }
    }
}
