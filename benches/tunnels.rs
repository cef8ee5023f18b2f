//! Tunnel throughput: vecbox ↔ vecbox against UML ↔ UML over the same tunnels, in one
//! run on the same machine, reported as ratios.
//!
//! ```text
//! vecbox: A ─veth─ [vecbox xconnect raw|tunnel] ═underlay veth═ [vecbox xconnect tunnel|raw] ─veth─ B
//! UML:    A ─veth─ [UML raw → route → tunnel]   ═underlay veth═ [UML tunnel → route → raw]   ─veth─ B
//! ```
//! For each of gre, l2tpv3 over IP and l2tpv3 over UDP: packets per second of 64-byte
//! UDP frames sent by trafgen from A (pinned to CPU 0; the forwarders share CPU 1),
//! counted at B's interface (to a closed port: B drops them, its ICMP replies are
//! rate-limited to a few per second),
//! and Gbit/s of a 2-second iperf3 TCP stream A → B. UML has no bridge in Debian's
//! build, so the UML pair routes (two hops) where vecbox cross-connects at layer 2.
//!
//! Each figure is the median of REPS runs. Run as root:
//!
//!   cargo bench --bench tunnels            # REPS=3, 2 s windows
//!   VECBOX_BENCH_REPS=5 VECBOX_BENCH_SECS=3 cargo bench --bench tunnels
//!
//! Results are printed and written to target/bench/tunnels.json. Every tool's exit
//! status is checked: a measurement that fails (trafgen or iperf3 failing, a link
//! that does not come up, nothing reaching B) fails its row, a ratio is printed only
//! when both sides measured more than nothing, and the bench exits with status 1
//! naming the failed rows. Under `cargo test` it does nothing.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::uml::Uml;
use common::{Guest, Lab};

const T1: &str = "172.28.0.1";
const T2: &str = "172.28.0.2";
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

fn secs() -> u64 {
    env_or("VECBOX_BENCH_SECS", 2)
}

fn reps() -> usize {
    env_or("VECBOX_BENCH_REPS", 3) as usize
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// REPS measurements of (pps, bit/s); their medians.
fn measure(mut once: impl FnMut() -> (f64, f64)) -> (f64, f64) {
    let (p, b): (Vec<f64>, Vec<f64>) = (0..reps()).map(|_| once()).unzip();
    (median(p), median(b))
}

/// Run one side of a row; a panic (a failed tool, a link that never came up, an
/// assertion on a result) becomes the row's failure, with its message.
fn attempt(what: &str, f: impl FnOnce() -> (f64, f64)) -> Result<(f64, f64), String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok((pps, bps)) if pps > 0.0 && bps > 0.0 => Ok((pps, bps)),
        Ok((pps, bps)) => Err(format!(
            "{what}: measured nothing ({pps:.0} pps, {bps:.0} bit/s)"
        )),
        Err(e) => Err(format!(
            "{what}: {}",
            e.downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| e.downcast_ref::<&str>().copied())
                .unwrap_or("failed")
        )),
    }
}

/// `a / b` when both were measured.
fn ratio(a: &Result<(f64, f64), String>, b: &Result<(f64, f64), String>, gbit: bool) -> String {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            let (x, y) = if gbit { (a.1, b.1) } else { (a.0, b.0) };
            format!("{:.2}x", x / y)
        }
        _ => "-".into(),
    }
}

#[derive(Clone, Copy)]
struct Tunnel {
    name: &'static str,
    spec: &'static str,
}

const TUNNELS: [Tunnel; 3] = [
    Tunnel {
        name: "gre",
        spec: "transport=gre,src={S},dst={D}",
    },
    Tunnel {
        name: "l2tpv3-ip",
        spec: "transport=l2tpv3,src={S},dst={D},rx_session=1,tx_session=1",
    },
    Tunnel {
        name: "l2tpv3-udp",
        spec: "transport=l2tpv3,udp=1,src={S},dst={D},srcport=1701,dstport=1701,rx_session=1,tx_session=1",
    },
];

fn spec(t: Tunnel, src: &str, dst: &str) -> String {
    t.spec.replace("{S}", src).replace("{D}", dst)
}

/// Namespaces A, X (first forwarder), Y (second), B; veths A–X, X–Y (underlay, MTU
/// 1600, T1/T2), Y–B.
fn line(lab: &mut Lab) -> [String; 4] {
    let a = lab.ns("a");
    let x = lab.ns("x");
    let y = lab.ns("y");
    let b = lab.ns("b");
    lab.veth(&a, "a0", &x, "xa");
    lab.veth(&x, "t0", &y, "t1");
    lab.veth(&y, "yb", &b, "b0");
    for (ns, i) in [(&x, "xa"), (&y, "yb"), (&a, "a0"), (&b, "b0")] {
        lab.quiet(ns, i);
    }
    for (ns, i, ip) in [(&x, "t0", T1), (&y, "t1", T2)] {
        common::run(&["ip", "-n", ns, "link", "set", i, "mtu", "1600"]);
        lab.addr(ns, i, &format!("{ip}/24"));
    }
    [a, x, y, b]
}

/// trafgen from A's a0 for SECS seconds; frames B's b0 received per second. Panics
/// when trafgen fails (anything but being stopped by `timeout`) or nothing arrives.
fn pps(lab: &Lab, a: &str, b: &str, dst_mac: &str, src_ip: &str, dst_ip: &str) -> f64 {
    let conf = lab.dir.join("trafgen.cfg");
    let src_mac = lab.mac(a, "a0");
    std::fs::write(
        &conf,
        format!(
            "{{ eth(da={dst_mac}, sa={src_mac}, type=0x0800), ipv4(saddr={src_ip}, daddr={dst_ip}, ttl=64), udp(sp=9, dp=9), fill(0x41, 18) }}\n"
        ),
    )
    .unwrap();
    let before = lab.counter(b, "b0", "rx_packets");
    let t = Instant::now();
    let out = lab.exec(
        a,
        &[
            "timeout",
            &secs().to_string(),
            "taskset",
            "-c",
            "0",
            "trafgen",
            "--dev",
            "a0",
            "--conf",
            conf.to_str().unwrap(),
            "--cpus",
            "1",
            "-q",
        ],
    );
    let secs = t.elapsed().as_secs_f64();
    // `timeout` ends trafgen after SECS seconds and exits 124: the expected outcome.
    assert!(
        out.status.code() == Some(124),
        "trafgen did not run for {} s ({}): {}",
        self::secs(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    std::thread::sleep(Duration::from_millis(300));
    let after = lab.counter(b, "b0", "rx_packets");
    let got = after.saturating_sub(before);
    assert!(got > 0, "no frame from trafgen reached B");
    got as f64 / secs
}

fn vecbox(t: Tunnel) -> (f64, f64) {
    let mut lab = Lab::new();
    let [a, x, y, b] = line(&mut lab);
    lab.addr(&a, "a0", "10.86.1.1/24");
    lab.addr(&b, "b0", "10.86.1.2/24");
    let g1 = Guest::start(
        &lab,
        &x,
        "xconnect",
        &[
            "cpu=1",
            "vec0:transport=raw,ifname=xa,gro=1",
            &format!("vec1:{}", spec(t, T1, T2)),
        ],
    );
    let g2 = Guest::start(
        &lab,
        &y,
        "xconnect",
        &[
            "cpu=1",
            &format!("vec0:{}", spec(t, T2, T1)),
            "vec1:transport=raw,ifname=yb,gro=1",
        ],
    );
    assert!(lab.ping(&a, "10.86.1.2", 2), "vecbox {} link", t.name);
    let b_mac = lab.mac(&b, "b0");
    let r = measure(|| {
        let p = pps(&lab, &a, &b, &b_mac, "10.86.1.1", "10.86.1.2");
        (p, lab.iperf3(&b, &a, "10.86.1.2", secs() as u32))
    });
    g1.stop();
    g2.stop();
    r
}

/// Pin every process of namespace `ns` (a UML kernel and its helpers) to CPU 1.
fn pin(ns: &str) {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .unwrap();
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let _ = Command::new("taskset")
            .args(["-a", "-p", "-c", "1", pid])
            .output();
    }
}

fn uml(t: Tunnel) -> (f64, f64) {
    let mut lab = Lab::new();
    let [a, x, y, b] = line(&mut lab);
    lab.addr(&a, "a0", "10.86.1.1/24");
    lab.addr(&b, "b0", "10.86.3.2/24");
    common::run(&[
        "ip",
        "-n",
        &a,
        "route",
        "add",
        "10.86.3.0/24",
        "via",
        "10.86.1.2",
    ]);
    common::run(&[
        "ip",
        "-n",
        &b,
        "route",
        "add",
        "10.86.1.0/24",
        "via",
        "10.86.3.1",
    ]);
    let x_mac = "02:00:00:86:01:02";
    let up = |dev: &str, ip: &str| format!("ip addr add {ip}/24 dev {dev}\nip link set {dev} up\n");
    let fwd = "echo 1 > /proc/sys/net/ipv4/ip_forward\n";
    let mut u1 = Uml::boot(
        &lab,
        &x,
        &[
            &format!("vec0:transport=raw,ifname=xa,gro=1,mac={x_mac}"),
            &format!("vec1:{},mac=02:00:00:86:02:01", spec(t, T1, T2)),
        ],
        &format!(
            "{}{}{fwd}ip route add 10.86.3.0/24 via 10.86.2.2",
            up("vec0", "10.86.1.2"),
            up("vec1", "10.86.2.1")
        ),
    );
    let mut u2 = Uml::boot(
        &lab,
        &y,
        &[
            "vec0:transport=raw,ifname=yb,gro=1",
            &format!("vec1:{},mac=02:00:00:86:02:02", spec(t, T2, T1)),
        ],
        &format!(
            "{}{}{fwd}ip route add 10.86.1.0/24 via 10.86.2.1",
            up("vec0", "10.86.3.1"),
            up("vec1", "10.86.2.2")
        ),
    );
    pin(&x);
    pin(&y);
    assert!(lab.ping(&a, "10.86.3.2", 3), "UML {} link", t.name);
    let r = measure(|| {
        let p = pps(&lab, &a, &b, x_mac, "10.86.1.1", "10.86.3.2");
        (p, lab.iperf3(&b, &a, "10.86.3.2", secs() as u32))
    });
    u1.stop();
    u2.stop();
    r
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // A failing side prints its panic once, as the row's reason below.
    std::panic::set_hook(Box::new(|_| {}));
    let mut rows = Vec::new();
    for t in TUNNELS {
        let v = attempt(&format!("vecbox {}", t.name), || vecbox(t));
        let u = attempt(&format!("UML {}", t.name), || uml(t));
        let show = |r: &Result<(f64, f64), String>| match r {
            Ok((p, b)) => format!("{p:.0} pps {:.2} Gbit/s", b / 1e9),
            Err(e) => format!("FAILED ({e})"),
        };
        eprintln!("{}: vecbox {}; UML {}", t.name, show(&v), show(&u));
        rows.push((t.name, v, u));
    }
    println!(
        "| tunnel | vecbox kpps | UML kpps | pps ratio | vecbox Gbit/s | UML Gbit/s | Gbit/s ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let cell = |r: &Result<(f64, f64), String>, gbit: bool| match r {
        Ok((p, _)) if !gbit => format!("{:.0}", p / 1e3),
        Ok((_, b)) => format!("{:.2}", b / 1e9),
        Err(_) => "failed".into(),
    };
    let mut json = Vec::new();
    for (name, v, u) in &rows {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            cell(v, false),
            cell(u, false),
            ratio(v, u, false),
            cell(v, true),
            cell(u, true),
            ratio(v, u, true),
        );
        let side = |r: &Result<(f64, f64), String>| match r {
            Ok((p, b)) => serde_json::json!({"pps": p, "bps": b}),
            Err(e) => serde_json::json!({"error": e}),
        };
        json.push(serde_json::json!({"tunnel": name, "vecbox": side(v), "uml": side(u)}));
    }
    let get = |n: &str| rows.iter().find(|r| r.0 == n).map(|r| &r.1);
    if let (Some(udp), Some(ip)) = (get("l2tpv3-udp"), get("l2tpv3-ip")) {
        println!();
        println!(
            "vecbox l2tpv3-udp (UDP GSO/GRO) / l2tpv3-ip Gbit/s: {}",
            ratio(udp, ip, true)
        );
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(
        out.join("tunnels.json"),
        serde_json::Value::Array(json).to_string(),
    );
    let failed: Vec<String> = rows
        .iter()
        .flat_map(|(_, v, u)| [v, u])
        .filter_map(|r| r.as_ref().err().cloned())
        .collect();
    if !failed.is_empty() {
        eprintln!("tunnels: {} measurements failed:", failed.len());
        for f in &failed {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
}
