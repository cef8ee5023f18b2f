//! Devices under test: a `vecbox guest` in the DUT namespace (and, for BESS, its peer
//! in the sink namespace), the Linux kernel of the DUT namespace, or a real UML kernel.
//! Each returns where the sink counts ([`Sink`]) and the MAC the generator sends to.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use super::BenchError;
use super::scenario::{Function, Transport};
use super::topo::{DUT_MAC, Proc, SINK_MAC, T_DUT, T_SINK, Topo};

/// The interface whose kernel receive counters are the delivered traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sink {
    pub role: &'static str,
    pub ifname: &'static str,
}

pub const SINK_VETH: Sink = Sink {
    role: "sink",
    ifname: "s0",
};

/// What runs as the DUT; dropping it stops everything.
pub struct Running {
    pub procs: Vec<Proc>,
    pub sink: Sink,
    /// Destination MAC of the generator's frames.
    pub dst_mac: String,
}

impl Running {
    /// Process groups of the DUT's processes (for their CPU time).
    pub fn pgids(&self) -> Vec<i32> {
        self.procs.iter().map(Proc::pgid).collect()
    }
}

/// Where the ceiling counts: d0, the generator's veth peer, in the DUT namespace with
/// nothing configured. Frames to [`SINK_MAC`] are dropped there as cheaply as at s0.
pub const CEILING_SINK: Sink = Sink {
    role: "dut",
    ifname: "d0",
};

/// The ceiling: no DUT; the generator's frames end at d0.
pub fn ceiling() -> Running {
    Running {
        procs: Vec::new(),
        sink: CEILING_SINK,
        dst_mac: SINK_MAC.to_string(),
    }
}

/// Egress `vecN:` keys for `transport` (without the `vecN:` prefix); `peer_listens`
/// selects which BESS side listens.
pub fn egress_spec(topo: &Topo, transport: Transport, peer_listens: bool) -> String {
    let bess = topo.dir.join("bess.sock").display().to_string();
    match transport {
        Transport::Raw => "transport=raw,ifname=d1".into(),
        Transport::Tap => "transport=tap,ifname=vbbtap0".into(),
        Transport::Hybrid => "transport=hybrid,ifname=vbbtap0".into(),
        Transport::Gre => format!("transport=gre,src={T_DUT},dst={T_SINK}"),
        Transport::L2tpv3Ip => {
            format!("transport=l2tpv3,src={T_DUT},dst={T_SINK},rx_session=1,tx_session=1")
        }
        Transport::L2tpv3Udp => format!(
            "transport=l2tpv3,udp=1,src={T_DUT},dst={T_SINK},srcport=1701,dstport=1701,rx_session=1,tx_session=1"
        ),
        Transport::Bess if peer_listens => format!("transport=bess,dst={bess}"),
        Transport::Bess => format!("transport=bess,listen={bess}"),
    }
}

/// Where frames leaving the DUT over `transport` are counted.
pub fn sink_for(transport: Transport) -> Sink {
    match transport {
        Transport::Raw => SINK_VETH,
        Transport::Tap | Transport::Hybrid => Sink {
            role: "dut",
            ifname: "vbbtap0",
        },
        Transport::Gre | Transport::L2tpv3Ip | Transport::L2tpv3Udp => Sink {
            role: "sink",
            ifname: "t1",
        },
        Transport::Bess => Sink {
            role: "sink",
            ifname: "vbbtap1",
        },
    }
}

/// Start `vecbox guest ARGS` in `role`'s namespace and wait for its ready line.
pub fn guest(topo: &Topo, role: &str, exe: &Path, args: &[String]) -> Result<Proc, BenchError> {
    let exe = exe.display().to_string();
    let mut a: Vec<&str> = vec![&exe, "guest"];
    a.extend(args.iter().map(String::as_str));
    let mut cmd = topo.command(role, &a)?;
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut p = Proc::spawn(&mut cmd, &topo.tag)?;
    let err = p.child().stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut ready = false;
        let mut log = Vec::new();
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if !ready {
                ready = l.contains(" ready: ");
                log.push(l);
                if ready {
                    let _ = tx.send(Ok(()));
                }
            }
        }
        if !ready {
            let _ = tx.send(Err(log.join("\n")));
        }
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => Ok(p),
        Ok(Err(log)) => Err(BenchError::Dut(format!(
            "vecbox guest {} exited before it was ready:\n{log}",
            args.join(" ")
        ))),
        Err(_) => Err(BenchError::Dut(format!(
            "vecbox guest {} not ready after 10 s",
            args.join(" ")
        ))),
    }
}

/// Bring up a tap interface (created by a guest) in `role`'s namespace.
pub fn tap_up(topo: &Topo, role: &str, ifname: &str) -> Result<(), BenchError> {
    topo.iface_up(role, ifname)
}

/// The BESS peer: a vecbox xconnect in the sink namespace (CPU 0) from the BESS socket
/// to tap vbbtap1, where the sink counts.
pub fn bess_peer(topo: &Topo, exe: &Path, listens: bool) -> Result<Proc, BenchError> {
    let bess = topo.dir.join("bess.sock").display().to_string();
    let side = if listens {
        format!("vec0:transport=bess,listen={bess}")
    } else {
        format!("vec0:transport=bess,dst={bess}")
    };
    let p = guest(
        topo,
        "sink",
        exe,
        &[
            "xconnect".into(),
            format!("umid={}-peer", topo.tag),
            "cpu=0".into(),
            side,
            "vec1:transport=tap,ifname=vbbtap1".into(),
        ],
    )?;
    tap_up(topo, "sink", "vbbtap1")?;
    Ok(p)
}

/// Router configuration: the kernel baseline's addresses, the sink a static neighbour.
fn router_config(topo: &Topo) -> Result<String, BenchError> {
    let p = topo.dir.join("router.yaml");
    let text = format!(
        "interfaces:\n  - port: vec0\n    addresses: [10.80.1.254/24]\n  - port: vec1\n    addresses: [10.80.2.254/24]\nneighbors:\n  - {{port: vec1, address: 10.80.2.99, mac: \"{SINK_MAC}\"}}\n"
    );
    std::fs::write(&p, text).map_err(|e| BenchError::Command(format!("{}: {e}", p.display())))?;
    Ok(format!("config={}", p.display()))
}

/// Settings of one vecbox DUT.
pub struct VecboxDut {
    pub function: Function,
    pub transport: Transport,
    pub depth: u16,
    pub vector: bool,
    pub offloads: bool,
    /// Firewall rule count (own-port and mixed sets).
    pub rules: usize,
    /// Concurrent flows of the traffic (sizes the firewall's connection table).
    pub flows: u32,
    /// Keys added to both ports (`--port-opts`); empty: vecbox's defaults.
    pub port_opts: String,
}

/// Connection-table size for `flows` flows: the default 65536, or room for twice as
/// many, so that every flow stays tracked.
pub fn conntrack_max(flows: u32) -> usize {
    65536usize.max((flows as usize * 2).next_power_of_two())
}

/// The `--port-opts` keys a port of `transport` takes, each with a leading comma:
/// `ring=` only on raw and hybrid ports, `gro=` only on raw, tap and hybrid ones.
pub fn port_opts(transport: Transport, opts: &str) -> String {
    opts.split(',')
        .filter(|kv| !kv.is_empty())
        .filter(|kv| match kv.split('=').next().unwrap_or("") {
            "ring" => matches!(transport, Transport::Raw | Transport::Hybrid),
            "gro" => matches!(
                transport,
                Transport::Raw | Transport::Tap | Transport::Hybrid
            ),
            _ => true,
        })
        .map(|kv| format!(",{kv}"))
        .collect()
}

/// Start the vecbox DUT (and the BESS peer).
pub fn vecbox(topo: &Topo, exe: &Path, d: &VecboxDut) -> Result<Running, BenchError> {
    let mut common = format!(",depth={}", d.depth);
    if !d.vector {
        common += ",vec=0";
    }
    let mut args = vec![
        d.function.guest().to_string(),
        format!("umid={}-dut", topo.tag),
        "cpu=1".into(),
    ];
    // Ports run with vecbox's defaults (receive ring, GSO frames whole where the veths
    // have TSO on) unless --port-opts says otherwise; off0 rows turn veth offloads off.
    let mut p0 = format!(
        "vec0:transport=raw,ifname=d0{common}{}",
        port_opts(Transport::Raw, &d.port_opts)
    );
    let dst_mac = match d.function {
        Function::Router => {
            args.push(router_config(topo)?);
            p0 += &format!(",mac={DUT_MAC}");
            DUT_MAC
        }
        Function::Firewall(set) => {
            let p = topo.dir.join("fw.rules");
            std::fs::write(&p, super::rulesets::rule_file(set, d.rules))
                .map_err(|e| BenchError::Command(format!("{}: {e}", p.display())))?;
            args.push(format!("rules={}", p.display()));
            args.push(format!("conntrack_max={}", conntrack_max(d.flows)));
            SINK_MAC
        }
        Function::Xconnect => SINK_MAC,
    };
    args.push(p0);
    args.push(format!(
        "vec1:{}{common}{}",
        egress_spec(topo, d.transport, false),
        port_opts(d.transport, &d.port_opts)
    ));
    let mut procs = vec![guest(topo, "dut", exe, &args)?];
    match d.transport {
        Transport::Tap | Transport::Hybrid => tap_up(topo, "dut", "vbbtap0")?,
        Transport::Bess => procs.push(bess_peer(topo, exe, false)?),
        _ => {}
    }
    Ok(Running {
        procs,
        sink: sink_for(d.transport),
        dst_mac: dst_mac.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_table_holds_every_flow() {
        assert_eq!(conntrack_max(1), 65536);
        assert_eq!(conntrack_max(100_000), 262_144);
    }

    #[test]
    fn port_opts_reach_only_ports_that_take_them() {
        assert_eq!(port_opts(Transport::Raw, ""), "");
        assert_eq!(port_opts(Transport::Raw, "ring=2,gro=0"), ",ring=2,gro=0");
        assert_eq!(
            port_opts(Transport::Hybrid, "ring=0,gro=0"),
            ",ring=0,gro=0"
        );
        assert_eq!(port_opts(Transport::Tap, "ring=2,gro=0"), ",gro=0");
        assert_eq!(
            port_opts(Transport::Gre, "ring=2,gro=0,depth=32"),
            ",depth=32"
        );
    }

    #[test]
    fn every_transport_has_a_kernel_counted_sink() {
        for t in super::super::scenario::TRANSPORTS {
            let s = sink_for(t);
            assert!(["sink", "dut"].contains(&s.role), "{t:?}");
        }
    }
}
