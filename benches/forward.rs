//! Forwarding benchmark: generator namespace -> device under test -> sink namespace.
//!
//! Measures, in one run on one machine, delivered packets per second of 64-byte frames
//! (trafgen generator pinned to CPU 0, device under test pinned to CPU 1, counted by the
//! sink's kernel in /sys/class/net/*/statistics) through:
//!   - the Linux kernel forwarding IPv4 between the same namespaces (the baseline),
//!   - `vecbox guest xconnect` over raw ports, depth 64 and 256 (receive ring, the
//!     default), and the receive ring against recvmmsg (`ring=1` vs `ring=0`, run by
//!     run interleaved; `VECBOX_BENCH_ONLY=ring` runs only this pair),
//!   - the same with `vec=0` (one frame per system call),
//!   - `vecbox guest router` (IPv4 forwarding, TTL decrement, static next hop),
//!   - `vecbox guest firewall` with conntrack and 1, 100, 1000 and 10000 rules (the
//!     flow's rule last),
//!
//! and iperf3 TCP Gbit/s (offloads on) through kernel forwarding and through vecbox
//! (gro=1). Each figure is the median of REPS runs; ratios are against the baselines of
//! the same run. Run as root:
//!
//!   cargo bench --bench forward            # REPS=5, 3 s windows
//!   VECBOX_BENCH_REPS=3 VECBOX_BENCH_SECS=2 cargo bench --bench forward
//!
//! Results are printed and written to target/bench/forward.json.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const VECBOX: &str = env!("CARGO_BIN_EXE_vecbox");
const SINK_MAC: &str = "02:00:00:00:00:99";

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn tool(name: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success());
    assert!(ok.unwrap_or(false), "the benchmark needs `{name}`");
}

/// gen ─ g0 | d0 [DUT] d1 | s0 ─ sink
struct Topo {
    tag: String,
}

impl Topo {
    fn new() -> Topo {
        let tag = format!("vbb{}", std::process::id());
        let t = Topo { tag };
        for r in ["gen", "dut", "sink"] {
            sh(&["ip", "netns", "add", &t.ns(r)]);
            sh(&["ip", "-n", &t.ns(r), "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip",
            "-n",
            &t.ns("gen"),
            "link",
            "add",
            "g0",
            "type",
            "veth",
            "peer",
            "name",
            "d0",
            "netns",
            &t.ns("dut"),
        ]);
        sh(&[
            "ip",
            "-n",
            &t.ns("sink"),
            "link",
            "add",
            "s0",
            "type",
            "veth",
            "peer",
            "name",
            "d1",
            "netns",
            &t.ns("dut"),
        ]);
        for (r, i) in [("gen", "g0"), ("dut", "d0"), ("dut", "d1"), ("sink", "s0")] {
            sh(&["ip", "-n", &t.ns(r), "link", "set", i, "up"]);
        }
        for i in ["d0", "d1"] {
            sh(&[
                "ip",
                "netns",
                "exec",
                &t.ns("dut"),
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{i}.disable_ipv6=1"),
            ]);
        }
        t
    }

    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.tag)
    }

    fn exec(&self, role: &str, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec"];
        let ns = self.ns(role);
        v.push(&ns);
        v.extend_from_slice(args);
        sh(&v)
    }

    fn counter(&self, role: &str, ifname: &str, name: &str) -> u64 {
        self.exec(
            role,
            &["cat", &format!("/sys/class/net/{ifname}/statistics/{name}")],
        )
        .trim()
        .parse()
        .unwrap()
    }

    fn mac(&self, role: &str, ifname: &str) -> String {
        let out = self.exec(role, &["cat", &format!("/sys/class/net/{ifname}/address")]);
        out.trim().to_string()
    }

    /// Configure the DUT namespace as a kernel IPv4 router, or clear it for vecbox.
    fn kernel_forwarding(&self, on: bool) {
        let dut = self.ns("dut");
        if on {
            sh(&[
                "ip",
                "-n",
                &dut,
                "addr",
                "add",
                "10.80.1.254/24",
                "dev",
                "d0",
            ]);
            sh(&[
                "ip",
                "-n",
                &dut,
                "addr",
                "add",
                "10.80.2.254/24",
                "dev",
                "d1",
            ]);
            sh(&[
                "ip",
                "netns",
                "exec",
                &dut,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ]);
            // The flow's next hop is a MAC nobody has: the sink counts and drops early.
            sh(&[
                "ip",
                "-n",
                &dut,
                "neigh",
                "replace",
                "10.80.2.99",
                "lladdr",
                SINK_MAC,
                "dev",
                "d1",
                "nud",
                "permanent",
            ]);
        } else {
            sh(&["ip", "-n", &dut, "addr", "flush", "dev", "d0"]);
            sh(&["ip", "-n", &dut, "addr", "flush", "dev", "d1"]);
            sh(&[
                "ip",
                "netns",
                "exec",
                &dut,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=0",
            ]);
        }
    }

    /// Host addresses for the TCP runs (routed or on one L2 segment).
    fn hosts(&self, routed: bool) {
        let (g, s) = (self.ns("gen"), self.ns("sink"));
        let _ = Command::new("ip")
            .args(["-n", &g, "addr", "flush", "dev", "g0"])
            .status();
        let _ = Command::new("ip")
            .args(["-n", &s, "addr", "flush", "dev", "s0"])
            .status();
        if routed {
            sh(&["ip", "-n", &g, "addr", "add", "10.80.1.1/24", "dev", "g0"]);
            sh(&["ip", "-n", &s, "addr", "add", "10.80.2.2/24", "dev", "s0"]);
            sh(&[
                "ip",
                "-n",
                &g,
                "route",
                "replace",
                "10.80.2.0/24",
                "via",
                "10.80.1.254",
            ]);
            sh(&[
                "ip",
                "-n",
                &s,
                "route",
                "replace",
                "10.80.1.0/24",
                "via",
                "10.80.2.254",
            ]);
        } else {
            sh(&["ip", "-n", &g, "addr", "add", "10.80.1.1/24", "dev", "g0"]);
            sh(&["ip", "-n", &s, "addr", "add", "10.80.1.2/24", "dev", "s0"]);
        }
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        for r in ["gen", "dut", "sink"] {
            let ns = self.ns(r);
            if let Ok(o) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

/// Remove the benchmark's namespaces (and whatever runs in them) on SIGINT/SIGTERM.
fn cleanup_on_signal(tag: String) {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    if set.thread_block().is_err() {
        return;
    }
    std::thread::spawn(move || {
        if set.wait().is_ok() {
            drop(Topo { tag });
            std::process::exit(130);
        }
    });
}

/// A child started in its own process group; dropping it ends the whole group (trafgen
/// forks its workers, which a signal to the parent alone would leave running).
struct Proc(Child);

fn spawn(cmd: &mut Command) -> Proc {
    use std::os::unix::process::CommandExt;
    Proc(
        cmd.process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}")),
    )
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        // SIGINT stops trafgen's workers, SIGTERM the guest and iperf3.
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGINT);
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && !matches!(self.0.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left of the group (workers outliving their parent) goes now.
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

fn start_guest(t: &Topo, opts: &str) -> Proc {
    start_nf(t, "xconnect", &[], "", opts)
}

/// MAC of the router's port 0 in the router scenario.
const ROUTER_MAC: &str = "02:00:00:00:00:d0";

/// Router configuration: the kernel scenario's addresses, the sink as a static neighbour.
fn router_config(t: &Topo) -> String {
    let p = std::env::temp_dir().join(format!("{}-router.yaml", t.tag));
    std::fs::write(
        &p,
        format!(
            "interfaces:\n  - port: vec0\n    addresses: [10.80.1.254/24]\n  - port: vec1\n    addresses: [10.80.2.254/24]\nneighbors:\n  - {{port: vec1, address: 10.80.2.99, mac: \"{SINK_MAC}\"}}\n"
        ),
    )
    .unwrap();
    format!("config={}", p.display())
}

/// `n` firewall rules: per-service TCP rules, then the benchmark flow's rule last.
fn firewall_rules(t: &Topo, n: usize) -> String {
    let p = std::env::temp_dir().join(format!("{}-fw{n}.rules", t.tag));
    let mut s = String::from("policy drop\n");
    for i in 0..n.saturating_sub(1) {
        s += &format!(
            "accept proto tcp dst 10.{}.{}.0/24 dport {} ct new\n",
            100 + (i / 256) % 100,
            i % 256,
            1000 + i % 50000
        );
    }
    s += "accept in vec0 proto udp dport 4001\n";
    std::fs::write(&p, s).unwrap();
    format!("rules={}", p.display())
}

fn start_nf(t: &Topo, function: &str, extra: &[String], p0_opts: &str, opts: &str) -> Proc {
    let dut = t.ns("dut");
    let p0 = format!("vec0:transport=raw,ifname=d0{p0_opts}{opts}");
    let p1 = format!("vec1:transport=raw,ifname=d1{opts}");
    let mut proc = spawn(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &dut,
                VECBOX,
                "guest",
                function,
                "umid=bench",
                "cpu=1",
            ])
            .args(extra)
            .args([&p0, &p1])
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let err = proc.0.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(err));
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains(" ready: ") => break,
            Some(Ok(_)) => continue,
            _ => panic!("vecbox guest did not start"),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    proc
}

/// Offered and delivered pps of 64-byte frames over a `secs` window.
fn pps_run(t: &Topo, dst_mac: &str, secs: f64) -> (f64, f64) {
    let conf = std::env::temp_dir().join(format!("{}-trafgen.cfg", t.tag));
    let src = t.mac("gen", "g0");
    std::fs::write(
        &conf,
        format!(
            "{{ eth(da={dst_mac}, sa={src}, type=0x0800), ipv4(saddr=10.80.1.1, daddr=10.80.2.99, ttl=64), udp(sp=4000, dp=4001), fill(0x00, 18) }}\n"
        ),
    )
    .unwrap();
    let gen_ns = t.ns("gen");
    let conf_s = conf.to_str().unwrap().to_string();
    let _gen = spawn(
        Command::new("ip")
            .args([
                "netns", "exec", &gen_ns, "taskset", "-c", "0", "trafgen", "--dev", "g0", "--conf",
                &conf_s, "--cpus", "1", "-q",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    std::thread::sleep(Duration::from_millis(700));
    let (tx0, rx0, t0) = (
        t.counter("gen", "g0", "tx_packets"),
        t.counter("sink", "s0", "rx_packets"),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (tx1, rx1) = (
        t.counter("gen", "g0", "tx_packets"),
        t.counter("sink", "s0", "rx_packets"),
    );
    let dt = t0.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&conf);
    ((tx1 - tx0) as f64 / dt, (rx1 - rx0) as f64 / dt)
}

fn tcp_run(t: &Topo, dst: &str, secs: u32) -> f64 {
    let sink = t.ns("sink");
    let _srv = spawn(
        Command::new("ip")
            .args(["netns", "exec", &sink, "iperf3", "-s", "-1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    std::thread::sleep(Duration::from_millis(300));
    let out = t.exec(
        "gen",
        &[
            "timeout",
            "30",
            "taskset",
            "-c",
            "0",
            "iperf3",
            "-c",
            dst,
            "-t",
            &secs.to_string(),
            "-J",
            "--connect-timeout",
            "3000",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
}

#[derive(serde::Serialize)]
struct Row {
    scenario: String,
    median: f64,
    min: f64,
    max: f64,
    offered_median: f64,
    unit: &'static str,
}

fn stats(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    // `cargo test --all-targets` also runs bench targets (without `--bench`): this one
    // needs root, namespaces and minutes of traffic, so it only runs under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("forward: a benchmark; run it with `cargo bench --bench forward` (as root)");
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "run the benchmark as root"
    );
    for t in ["ip", "trafgen", "iperf3", "taskset"] {
        tool(t);
    }
    let reps: usize = std::env::var("VECBOX_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let secs: f64 = std::env::var("VECBOX_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0);
    let t = Topo::new();
    cleanup_on_signal(t.tag.clone());
    let only = std::env::var("VECBOX_BENCH_ONLY").unwrap_or_default();
    let want = |kind: &str| only.is_empty() || only == kind;
    let d0_mac = t.mac("dut", "d0");
    let mut rows = Vec::new();
    let pps = |name: &str, rows: &mut Vec<Row>, f: &mut dyn FnMut() -> (f64, f64)| {
        let (mut off, mut del): (Vec<f64>, Vec<f64>) = (0..reps).map(|_| f()).unzip();
        let (o, _, _) = stats(&mut off);
        let (m, lo, hi) = stats(&mut del);
        println!(
            "{name:<34} delivered {:>9.0} pps (min {:>9.0}, max {:>9.0}), offered {:>9.0}",
            m, lo, hi, o
        );
        rows.push(Row {
            scenario: name.into(),
            median: m,
            min: lo,
            max: hi,
            offered_median: o,
            unit: "pps",
        });
    };

    if want("pps") || want("ring") {
        // Receive ring (ring=1, the default) against recvmmsg (ring=0), interleaved run
        // by run so that both see the same background load.
        let (mut mmsg, mut ring) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            for (v, opts) in [
                (&mut mmsg, ",depth=64,ring=0"),
                (&mut ring, ",depth=64,ring=1"),
            ] {
                let _g = start_guest(&t, opts);
                v.push(pps_run(&t, SINK_MAC, secs));
            }
        }
        for (name, v) in [
            ("64B vecbox xconnect recvmmsg ring=0", mmsg),
            ("64B vecbox xconnect ring=1", ring),
        ] {
            let mut v = v;
            pps(name, &mut rows, &mut || {
                v.pop().unwrap_or((f64::NAN, f64::NAN))
            });
        }
    }

    if want("pps") {
        t.kernel_forwarding(true);
        pps("64B kernel IPv4 forwarding", &mut rows, &mut || {
            pps_run(&t, &d0_mac, secs)
        });
        t.kernel_forwarding(false);
        for (name, opts) in [
            ("64B vecbox xconnect depth=64", ",depth=64"),
            ("64B vecbox xconnect depth=256", ",depth=256"),
            ("64B vecbox xconnect vec=0", ",vec=0"),
        ] {
            let _g = start_guest(&t, opts);
            pps(name, &mut rows, &mut || pps_run(&t, SINK_MAC, secs));
        }
        {
            let cfg = router_config(&t);
            let _g = start_nf(&t, "router", &[cfg], &format!(",mac={ROUTER_MAC}"), "");
            pps("64B vecbox router", &mut rows, &mut || {
                pps_run(&t, ROUTER_MAC, secs)
            });
        }
        for n in [1usize, 100, 1000, 10000] {
            let rules = firewall_rules(&t, n);
            let _g = start_nf(&t, "firewall", &[rules], "", "");
            pps(
                &format!("64B vecbox firewall {n} rules"),
                &mut rows,
                &mut || pps_run(&t, SINK_MAC, secs),
            );
        }
    }

    let tcp_secs = secs.ceil() as u32;
    let tcp = |name: &str, rows: &mut Vec<Row>, dst: &str| {
        let mut v: Vec<f64> = (0..reps).map(|_| tcp_run(&t, dst, tcp_secs)).collect();
        let (m, lo, hi) = stats(&mut v);
        println!(
            "{name:<34} {:>6.2} Gbit/s (min {:.2}, max {:.2})",
            m / 1e9,
            lo / 1e9,
            hi / 1e9
        );
        rows.push(Row {
            scenario: name.into(),
            median: m,
            min: lo,
            max: hi,
            offered_median: 0.0,
            unit: "bit/s",
        });
    };
    if want("tcp") {
        t.kernel_forwarding(true);
        t.hosts(true);
        tcp("TCP kernel IPv4 forwarding", &mut rows, "10.80.2.2");
        t.kernel_forwarding(false);
        t.hosts(false);
        {
            let _g = start_guest(&t, ",gro=1");
            tcp("TCP vecbox xconnect gro=1", &mut rows, "10.80.1.2");
        }
        {
            let _g = start_guest(&t, ",gro=1,ring=0");
            tcp("TCP vecbox xconnect gro=1 ring=0", &mut rows, "10.80.1.2");
        }
    }

    let get = |n: &str| {
        rows.iter()
            .find(|r| r.scenario == n)
            .map(|r| r.median)
            .unwrap_or(f64::NAN)
    };
    let ratios = [
        (
            "64B xconnect depth=64 / kernel forwarding",
            get("64B vecbox xconnect depth=64") / get("64B kernel IPv4 forwarding"),
            1.2,
        ),
        (
            "64B xconnect depth=256 / kernel forwarding",
            get("64B vecbox xconnect depth=256") / get("64B kernel IPv4 forwarding"),
            1.2,
        ),
        (
            "64B xconnect depth=64 / vec=0",
            get("64B vecbox xconnect depth=64") / get("64B vecbox xconnect vec=0"),
            1.3,
        ),
        (
            "64B xconnect ring=1 / ring=0 (recvmmsg)",
            get("64B vecbox xconnect ring=1") / get("64B vecbox xconnect recvmmsg ring=0"),
            1.1,
        ),
        (
            "64B router / kernel forwarding",
            get("64B vecbox router") / get("64B kernel IPv4 forwarding"),
            1.2,
        ),
        (
            "64B firewall 1000 rules / router",
            get("64B vecbox firewall 1000 rules") / get("64B vecbox router"),
            0.85,
        ),
        (
            "64B firewall 10000 rules / 1 rule",
            get("64B vecbox firewall 10000 rules") / get("64B vecbox firewall 1 rules"),
            0.9,
        ),
        (
            "TCP xconnect / kernel forwarding",
            get("TCP vecbox xconnect gro=1") / get("TCP kernel IPv4 forwarding"),
            1.0,
        ),
    ];
    println!();
    for (n, r, target) in &ratios {
        println!(
            "{n:<44} {r:>5.2}x  (target >= {target}x: {})",
            if r >= target { "met" } else { "MISSED" }
        );
    }
    let json = serde_json::json!({
        "reps": reps,
        "window_secs": secs,
        "rows": rows,
        "ratios": ratios.iter().map(|(n, r, t)| serde_json::json!({"ratio": n, "value": r, "target": t})).collect::<Vec<_>>(),
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("forward.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
}
