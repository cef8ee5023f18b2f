//! Baselines measured in the same run and placement as vecbox:
//! - the Linux kernel of the DUT namespace: a bridge (compared with xconnect) or IPv4
//!   forwarding to the sink as a static neighbour (compared with router and firewall);
//! - a real UML kernel (Debian's `linux.uml`, booted from a busybox hostfs root, pinned
//!   to CPU 1) routing from its raw port on d0 to the same egress transport vecbox
//!   uses. Debian's UML has no bridge built in, so UML always routes (IPv4, static
//!   neighbour for the sink), which is the closest it gets to xconnect.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::BenchError;
use super::dut::{Running, SINK_VETH, bess_peer, egress_spec, sink_for, tap_up};
use super::scenario::{Function, Transport, kernel_mode};
use super::topo::{DUT_MAC, Proc, SINK_MAC, Topo};

/// Printed by the guest's init once its script has run.
const READY: &str = "VECBOX-BENCH-UML-READY";

/// Configure the DUT namespace's kernel for `function`.
pub fn kernel(topo: &Topo, function: Function) -> Result<Running, BenchError> {
    // The row's lab made d0/d1 a bridge or a forwarding hop ([`super::lab::fabric`]).
    let mode = kernel_mode(function);
    Ok(Running {
        procs: Vec::new(),
        sink: SINK_VETH,
        // The kernel router is the next hop: the generator sends to d0's MAC.
        dst_mac: if mode == "bridge" {
            SINK_MAC.to_string()
        } else {
            topo.mac("dut", "d0")?
        },
    })
}

/// A busybox hostfs root whose init runs `script`, prints [`READY`] and sleeps.
fn root(topo: &Topo, script: &str) -> Result<std::path::PathBuf, BenchError> {
    let io = |e: std::io::Error| BenchError::Command(format!("UML root: {e}"));
    let root = topo.dir.join("umlroot");
    let _ = std::fs::remove_dir_all(&root);
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
        std::fs::create_dir_all(root.join(d)).map_err(io)?;
    }
    let busybox = crate::uml::find_kernel("busybox")
        .ok_or_else(|| BenchError::Command("busybox not found".into()))?;
    std::fs::copy(&busybox, root.join("bin/busybox")).map_err(io)?;
    let init = format!(
        "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nexport PATH=/bin\n\
         mount -t proc proc /proc\nmount -t sysfs sys /sys\nip link set lo up\n\
         {script}\necho {READY}\nexec sleep 100000\n"
    );
    let p = root.join("init");
    std::fs::write(&p, init).map_err(io)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    Ok(root)
}

/// Boot linux.uml in the DUT namespace with `args` and `script`; wait until ready and
/// pin it to CPU 1.
fn boot(topo: &Topo, args: &[String], script: &str) -> Result<Proc, BenchError> {
    let root = root(topo, script)?;
    let umid = format!("{}-uml", topo.tag);
    if let Some(h) = std::env::var_os("HOME") {
        let _ = std::fs::remove_dir_all(std::path::Path::new(&h).join(".uml").join(&umid));
    }
    let mut cmd = topo.command("dut", &["linux.uml"])?;
    cmd.args(crate::uml::hostfs_args(&root, "/init", 96));
    cmd.arg(format!("umid={umid}"));
    cmd.args(args);
    crate::uml::prepare(&mut cmd).map_err(|e| BenchError::Dut(format!("preparing UML: {e}")))?;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut p = Proc::spawn(&mut cmd, &topo.tag)?;
    let out = p.child().stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut log = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(READY) => break,
            Ok(l) => log.push(l),
            Err(_) => {
                let tail = log[log.len().saturating_sub(15)..].join("\n");
                return Err(BenchError::Dut(format!(
                    "UML guest did not come up:\n{tail}"
                )));
            }
        }
    }
    // Keep draining the console so the guest never blocks on it.
    std::thread::spawn(move || for _ in rx {});
    topo.pin_all("dut", 1);
    Ok(p)
}

/// UML routing from d0 (raw, `gro=1`) to `transport`.
pub fn uml(topo: &Topo, transport: Transport) -> Result<Running, BenchError> {
    let script = format!(
        "ip addr add 10.80.1.254/24 dev vec0\nip link set vec0 up\n\
         ip addr add 10.80.2.254/24 dev vec1\nip link set vec1 up\n\
         echo 1 > /proc/sys/net/ipv4/ip_forward\n\
         arp -i vec1 -s 10.80.2.99 {SINK_MAC}\n"
    );
    let gro = if matches!(
        transport,
        Transport::Raw | Transport::Tap | Transport::Hybrid
    ) {
        ",gro=1"
    } else {
        ""
    };
    let mut procs = Vec::new();
    if transport == Transport::Bess {
        procs.push(bess_peer(
            topo,
            &std::env::current_exe().map_err(exe_err)?,
            true,
        )?);
    }
    let args = [
        format!("vec0:transport=raw,ifname=d0,gro=1,mac={DUT_MAC}"),
        format!(
            "vec1:{}{gro},mac=02:00:00:00:00:d1",
            egress_spec(topo, transport, true)
        ),
    ];
    procs.insert(0, boot(topo, &args, &script)?);
    if matches!(transport, Transport::Tap | Transport::Hybrid) {
        tap_up(topo, "dut", "vbbtap0")?;
    }
    Ok(Running {
        procs,
        sink: sink_for(transport),
        dst_mac: DUT_MAC.to_string(),
    })
}

/// UML routing between raw ports for TCP (hosts routed through .254).
pub fn uml_tcp(topo: &Topo) -> Result<Running, BenchError> {
    let script = "ip addr add 10.80.1.254/24 dev vec0\nip link set vec0 up\n\
         ip addr add 10.80.2.254/24 dev vec1\nip link set vec1 up\n\
         echo 1 > /proc/sys/net/ipv4/ip_forward\n";
    let args = [
        format!("vec0:transport=raw,ifname=d0,gro=1,mac={DUT_MAC}"),
        "vec1:transport=raw,ifname=d1,gro=1,mac=02:00:00:00:00:d1".to_string(),
    ];
    let p = boot(topo, &args, script)?;
    Ok(Running {
        procs: vec![p],
        sink: SINK_VETH,
        dst_mac: DUT_MAC.to_string(),
    })
}

fn exe_err(e: std::io::Error) -> BenchError {
    BenchError::Command(format!("locating the vecbox binary: {e}"))
}

/// Remove what a UML baseline leaves besides its processes: tap devices persist only
/// while open, so nothing but the console directory.
pub fn uml_cleanup(topo: &Topo) {
    if let Some(h) = std::env::var_os("HOME") {
        let _ = std::fs::remove_dir_all(
            std::path::Path::new(&h)
                .join(".uml")
                .join(format!("{}-uml", topo.tag)),
        );
    }
}
