//! Capture benchmark, every figure a ratio or a comparison with a baseline measured in
//! the same run:
//!
//! 1. forwarding rate through one xconnect guest (64-byte UDP frames from trafgen, the
//!    guest on CPU 1, trafgen on CPU 0) without and with a capture of its input port
//!    (`vecbox capture --guest ... -w /dev/null`), runs alternating; target ≥ 90 %;
//! 2. the same through a 10-link lab (host — 9 xconnect guests — host) without and
//!    with every link captured (`vecbox capture LAB -w /dev/null`); target ≥ 85 %;
//! 3. 1500-byte frames at 100 kpps through the guest for SOAK seconds, captured into a
//!    file on tmpfs: copies dropped (target 0) against frames sent, with the capture
//!    process's CPU per frame written, the guest's CPU share and the CPU left idle;
//! 4. time to the first packet: `tshark -i vecbox:LAB/x1:a -c 1` (extcap installed in a
//!    temporary HOME) against `tshark -i eth0 -c 1` on a kernel interface of the same
//!    lab, with pings every 10 ms; and the extcap alone (start to first frame in its
//!    fifo), and vecbox's share of the first split from tshark's by the extcap's
//!    trace (`VECBOX_CAPTURE_TRACE`). Target ≤ 250 ms.
//!
//! Run as root on a quiet machine:
//!
//!   cargo bench --bench capture
//!   VECBOX_BENCH_SECS=2 VECBOX_BENCH_REPS=3 VECBOX_CAPTURE_SOAK=60 cargo bench --bench capture
//!
//! `VECBOX_CAPTURE_PARTS=soak,first` runs only those parts (rate, soak, links, first);
//! `VECBOX_CAPTURE_BIN=PATH` runs another vecbox build (to alternate two builds).
//!
//! Results are printed and written to target/bench/capture.json.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "capture/first_packet.rs"]
mod first_packet;

/// The vecbox under test: this build's, or `VECBOX_CAPTURE_BIN` (to compare two
/// builds in alternating runs on the same machine).
fn vecbox() -> String {
    std::env::var("VECBOX_CAPTURE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_vecbox").into())
}

/// `true` when part `name` is to run: all, or those `VECBOX_CAPTURE_PARTS` lists
/// (comma-separated: rate, soak, links, first).
fn part(name: &str) -> bool {
    std::env::var("VECBOX_CAPTURE_PARTS").map_or(true, |p| p.split(',').any(|x| x.trim() == name))
}

/// User plus system CPU seconds of process `pid` so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) : utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks
        / nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as f64
}

/// (idle, total) jiffies of all CPUs.
fn cpu_idle() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (idle, v.iter().sum())
}

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn run(cmd: &[&str]) -> Output {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Namespaces and processes of the one-guest line; removed on drop.
struct Line {
    tag: String,
    guest: Option<Child>,
    umid: String,
}

impl Line {
    fn new() -> Line {
        let tag = format!("vbc{}", std::process::id());
        let l = Line {
            umid: format!("{tag}-x"),
            tag,
            guest: None,
        };
        for r in ["gen", "dut", "sink"] {
            run(&["ip", "netns", "add", &l.ns(r)]);
            run(&["ip", "-n", &l.ns(r), "link", "set", "lo", "up"]);
        }
        for (a, ai, b, bi) in [("gen", "g0", "dut", "da"), ("sink", "s0", "dut", "db")] {
            let (na, nb) = (l.ns(a), l.ns(b));
            run(&[
                "ip", "-n", &na, "link", "add", ai, "type", "veth", "peer", "name", bi, "netns",
                &nb,
            ]);
            run(&["ip", "-n", &na, "link", "set", ai, "up"]);
            run(&["ip", "-n", &nb, "link", "set", bi, "up"]);
        }
        for i in ["da", "db"] {
            run(&[
                "ip",
                "netns",
                "exec",
                &l.ns("dut"),
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{i}.disable_ipv6=1"),
            ]);
        }
        run(&[
            "ip",
            "-n",
            &l.ns("gen"),
            "addr",
            "add",
            "10.80.0.1/24",
            "dev",
            "g0",
        ]);
        l
    }

    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.tag)
    }

    fn start_guest(&mut self) {
        let mut c = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("dut"),
                &vecbox(),
                "guest",
                "xconnect",
                "cpu=1",
            ])
            .arg(format!("umid={}", self.umid))
            .args([
                "vec0:transport=raw,ifname=da",
                "vec1:transport=raw,ifname=db",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for(&mut c, " ready: ");
        self.guest = Some(c);
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if let Some(mut g) = self.guest.take() {
            let _ = g.kill();
            let _ = g.wait();
        }
        for r in ["gen", "dut", "sink"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(r)])
                .status();
        }
        if let Some(h) = std::env::var_os("HOME") {
            let _ = std::fs::remove_dir_all(std::path::Path::new(&h).join(".uml").join(&self.umid));
        }
    }
}

fn read_counter(ns: &str, dev: &str) -> u64 {
    let out = run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "cat",
        &format!("/sys/class/net/{dev}/statistics/rx_packets"),
    ]);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn mac(ns: &str, dev: &str) -> String {
    let out = run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "cat",
        &format!("/sys/class/net/{dev}/address"),
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// trafgen from `dev` in `ns`: `size`-byte UDP frames to `dst_mac`, on CPU 0, at `rate`
/// (trafgen's units; `None`: as fast as it can), `count` frames (0: until killed).
fn trafgen(
    ns: &str,
    dev: &str,
    dst_mac: &str,
    size: usize,
    rate: Option<&str>,
    count: u64,
) -> Child {
    let conf = std::env::temp_dir().join(format!("vbc{}-{size}.cfg", std::process::id()));
    std::fs::write(
        &conf,
        format!(
            "{{ eth(da={dst_mac}, sa={}, type=0x0800), ipv4(saddr=10.80.0.1, daddr=10.80.0.2, ttl=64), udp(sp=9, dp=9), fill(0x41, {}) }}\n",
            mac(ns, dev),
            size - 42
        ),
    )
    .unwrap();
    let mut c = Command::new("ip");
    c.args([
        "netns", "exec", ns, "taskset", "-c", "0", "trafgen", "--dev", dev, "--conf",
    ])
    .arg(&conf)
    .args(["--cpus", "1", "-q", "--num", &count.to_string()]);
    if let Some(r) = rate {
        c.args(["-b", r]);
    }
    c.process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Frames per second counted at `dev` in `ns` over `secs` while `traffic` runs.
fn rate(ns: &str, dev: &str, secs: u64, traffic: impl FnOnce() -> Child) -> f64 {
    let mut t = traffic();
    std::thread::sleep(Duration::from_millis(500));
    let (c0, t0) = (read_counter(ns, dev), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let (c1, dt) = (read_counter(ns, dev), t0.elapsed());
    common::stop_group(&mut t);
    settle(ns, dev);
    (c1 - c0) as f64 / dt.as_secs_f64()
}

/// Wait until the counter of `dev` stops moving (queues drained).
fn settle(ns: &str, dev: &str) {
    let mut last = read_counter(ns, dev);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(300));
        let now = read_counter(ns, dev);
        if now == last {
            return;
        }
        last = now;
    }
}

/// `vecbox capture ARGS`, waiting until it says what it captures.
fn capture(args: &[&str]) -> Child {
    let mut c = Command::new(vecbox())
        .arg("capture")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&mut c, "capturing ");
    c
}

/// Read `c`'s stderr until a line holds `marker` (the rest is read in the background).
fn wait_for(c: &mut Child, marker: &str) {
    let err = c.stderr.take().unwrap();
    let mut lines = BufReader::new(err).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains(marker))),
        "no {marker:?} from {c:?}"
    );
    std::thread::spawn(move || for _ in lines {});
}

fn stop(mut c: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let _ = c.wait();
}

/// Alternating runs without and with `capture_args` running: (median pps without,
/// median pps with).
fn with_and_without(
    reps: u64,
    secs: u64,
    sink: (&str, &str),
    traffic: &dyn Fn() -> Child,
    capture_args: &[&str],
) -> (f64, f64) {
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        off.push(rate(sink.0, sink.1, secs, traffic));
        let c = capture(capture_args);
        on.push(rate(sink.0, sink.1, secs, traffic));
        stop(c);
    }
    (median(off), median(on))
}

/// A chain host — x1 — ... — x9 — host: 10 links.
fn chain_yaml(name: &str) -> String {
    let mut s = format!(
        "name: {name}\nnodes:\n  gen:\n    kind: host\n    interfaces:\n      eth0: {{addresses: [10.81.0.1/24]}}\n  sink:\n    kind: host\n    interfaces:\n      eth0: {{addresses: [10.81.0.2/24]}}\n"
    );
    for i in 1..=9 {
        s.push_str(&format!("  x{i}:\n    kind: xconnect\n"));
    }
    s.push_str("links:\n  - endpoints: [gen:eth0, x1:a]\n");
    for i in 1..9 {
        s.push_str(&format!("  - endpoints: [x{i}:b, x{}:a]\n", i + 1));
    }
    s.push_str("  - endpoints: [x9:b, sink:eth0]\n");
    s
}

struct ChainLab {
    name: String,
    file: std::path::PathBuf,
}

impl Drop for ChainLab {
    fn drop(&mut self) {
        let _ = Command::new(vecbox())
            .args(["down", "--lab", &self.name])
            .output();
        let _ = std::fs::remove_file(&self.file);
    }
}

type Json = serde_json::Map<String, serde_json::Value>;

/// Part 1: one guest, one capture.
fn one_capture(line: &Line, reps: u64, secs: u64, json: &mut Json) {
    let (gen_ns, sink_ns) = (line.ns("gen"), line.ns("sink"));
    let dst = mac(&sink_ns, "s0");
    let traffic = || trafgen(&gen_ns, "g0", &dst, 64, None, 0);
    let (off, on) = with_and_without(
        reps,
        secs,
        (&sink_ns, "s0"),
        &traffic,
        &["--guest", &line.umid, "vec0", "-w", "/dev/null"],
    );
    println!(
        "1. one capture, 64 B: {off:.0} pps without, {on:.0} pps with: {:.1} % (target >= 90 %)",
        100.0 * on / off
    );
    json.insert(
        "one_capture".into(),
        serde_json::json!({"pps_without": off, "pps_with": on, "ratio": on / off, "target": 0.9}),
    );
}

/// Part 3, the soak: 100 kpps of 1500 B into a file on tmpfs, once the guest has forwarded
/// what the last run left queued; with the CPU the capture process and the guest
/// used and the CPU left idle.
fn soak_into_file(line: &Line, soak: u64, json: &mut Json) {
    let (gen_ns, sink_ns) = (line.ns("gen"), line.ns("sink"));
    let dst = mac(&sink_ns, "s0");
    settle(&sink_ns, "s0");
    let file = format!("/dev/shm/vbc{}.pcapng", std::process::id());
    let sent = 100_000 * soak;
    let mut c = Command::new(vecbox())
        .args(["capture", "--guest", &line.umid, "vec0", "-w", &file])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(c.stderr.take().unwrap());
    let mut l = String::new();
    let _ = err.read_line(&mut l);
    let guest_pid = line.guest.as_ref().map_or(0, |g| g.id());
    let before = read_counter(&sink_ns, "s0");
    let (w0, g0, idle0, t0) = (
        cpu_secs(c.id()),
        cpu_secs(guest_pid),
        cpu_idle(),
        Instant::now(),
    );
    let mut t = trafgen(&gen_ns, "g0", &dst, 1500, Some("100000pps"), sent);
    let _ = t.wait();
    std::thread::sleep(Duration::from_secs(1));
    let (w1, g1, idle1, dt) = (
        cpu_secs(c.id()),
        cpu_secs(guest_pid),
        cpu_idle(),
        t0.elapsed(),
    );
    let delivered = read_counter(&sink_ns, "s0") - before;
    stop(c);
    let mut summary = String::new();
    let _ = err.read_to_string(&mut summary);
    let _ = std::fs::remove_file(&file);
    let number_before = |what: &str| -> u64 {
        summary
            .split(what)
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX)
    };
    let (written, dropped) = (number_before(" frames written"), number_before(" dropped"));
    let writer_us = (w1 - w0) * 1e6 / written.max(1) as f64;
    let idle = 100.0 * (idle1.0 - idle0.0) as f64 / (idle1.1 - idle0.1).max(1) as f64;
    let secs = dt.as_secs_f64();
    println!(
        "3. {soak} s of 1500 B at 100 kpps into a file: {sent} sent, {delivered} forwarded, {dropped} capture copies dropped (target 0): {}",
        summary.trim()
    );
    println!(
        "   capture process {:.1} % of a CPU, {writer_us:.2} us per frame written; guest {:.1} % of a CPU; CPUs idle {idle:.1} %",
        100.0 * (w1 - w0) / secs,
        100.0 * (g1 - g0) / secs
    );
    json.insert("soak".into(), serde_json::json!({"secs": soak, "sent": sent, "forwarded": delivered, "written": written, "dropped": dropped, "target": 0,
        "writer_cpu_us_per_frame": writer_us, "writer_cpu_share": (w1 - w0) / secs, "guest_cpu_share": (g1 - g0) / secs, "idle_share": idle / 100.0}));
}

/// Part 2: ten links, all captured.
fn ten_links(name: &str, reps: u64, secs: u64, json: &mut Json) {
    let (gen_ns, sink_ns) = (format!("{name}.gen"), format!("{name}.sink"));
    let dst = mac(&sink_ns, "eth0");
    let traffic = || trafgen(&gen_ns, "eth0", &dst, 64, None, 0);
    let (off, on) = with_and_without(
        reps,
        secs,
        (&sink_ns, "eth0"),
        &traffic,
        &[name, "-w", "/dev/null"],
    );
    println!(
        "2. 10 links all captured, 64 B: {off:.0} pps without, {on:.0} pps with: {:.1} % (target >= 85 %)",
        100.0 * on / off
    );
    json.insert(
        "ten_links".into(),
        serde_json::json!({"pps_without": off, "pps_with": on, "ratio": on / off, "target": 0.85}),
    );
}

/// Part 4: time to the first packet, through the extcap and on a kernel interface of the
/// same lab in the same run; the extcap's trace splits the first into tshark's part
/// and vecbox's.
fn first_packet_part(name: &str, reps: u64, json: &mut Json) {
    use first_packet::{first_line, median_split, split};
    let gen_ns = format!("{name}.gen");
    let home = std::env::temp_dir().join(format!("vbc{}-home", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    run(&[
        "env",
        &format!("HOME={}", home.display()),
        &vecbox(),
        "extcap",
        "--install",
    ]);
    let mut ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &gen_ns,
            "ping",
            "-q",
            "-i",
            "0.01",
            "10.81.0.2",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let iface = format!("vecbox:{name}/x1:a");
    let trace = home.join("trace");
    let (mut via_extcap, mut kernel, mut extcap_alone, mut splits) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // tshark's arguments after `-i IFACE`: the first ICMP frame's number, at once.
    let first_icmp = [
        "-f",
        "icmp",
        "-c",
        "1",
        "-l",
        "-T",
        "fields",
        "-e",
        "frame.number",
    ];
    for _ in 0..reps.max(3) {
        let _ = std::fs::remove_file(&trace);
        let mut c = Command::new("tshark");
        // tshark keeps each live capture in a temporary file: in HOME, removed with it.
        c.env("HOME", &home)
            .env("TMPDIR", &home)
            .env("VECBOX_CAPTURE_TRACE", &trace)
            .args(["-i", &iface])
            .args(first_icmp);
        let (dt, w0, w1) = first_line(c);
        via_extcap.push(dt);
        let text = std::fs::read_to_string(&trace).unwrap_or_default();
        if let Some(s) = split(&text, w0, w1) {
            splits.push(s);
        }
        let mut c = Command::new("ip");
        c.env("TMPDIR", &home)
            .args(["netns", "exec", &gen_ns, "tshark", "-i", "eth0"])
            .args(first_icmp);
        kernel.push(first_line(c).0);
        extcap_alone.push(extcap_first_frame(&iface));
    }
    let _ = ping.kill();
    let _ = ping.wait();
    let _ = std::fs::remove_dir_all(&home);
    let (a, b, e) = (
        median(via_extcap) * 1e3,
        median(kernel) * 1e3,
        median(extcap_alone) * 1e3,
    );
    println!(
        "4. first packet: tshark -i vecbox:... {a:.0} ms; tshark -i eth0 (kernel interface) {b:.0} ms, so vecbox adds {:.0} ms; the extcap alone {e:.0} ms (target <= 250 ms)",
        a - b
    );
    let mut j = serde_json::json!({"tshark_vecbox": a, "tshark_kernel_interface": b, "added_over_kernel_interface": a - b, "extcap_alone": e, "target": 250});
    if splits.is_empty() {
        println!("   (no extcap trace: the split is missing)");
    } else {
        let m = median_split(&splits);
        println!(
            "   split (medians of {} runs): vecbox {:.0} ms = extcap queries {:.0} + capture set-up {:.0} + first frame {:.0} (a ping every 10 ms); tshark {:.0} ms = start {:.0} + between calls {:.0} + fifo to print {:.0}",
            splits.len(),
            m.vecbox(),
            m.queries,
            m.capture_setup,
            m.first_frame,
            m.tshark(),
            m.tshark_start,
            m.tshark_between,
            m.tshark_after
        );
        j["split_ms"] = serde_json::json!({"vecbox": m.vecbox(), "extcap_queries": m.queries, "capture_setup": m.capture_setup, "first_frame": m.first_frame,
            "tshark": m.tshark(), "tshark_start": m.tshark_start, "tshark_between_calls": m.tshark_between, "tshark_fifo_to_print": m.tshark_after});
    }
    json.insert("first_packet_ms".into(), j);
}

/// Time from starting the extcap on `iface` to the first packet block in its fifo.
fn extcap_first_frame(iface: &str) -> f64 {
    let fifo = std::env::temp_dir().join(format!("vbc{}-fifo", std::process::id()));
    let _ = std::fs::remove_file(&fifo);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let t0 = Instant::now();
    let c = Command::new(vecbox())
        .args([
            "extcap",
            "--capture",
            "--extcap-interface",
            iface,
            "--extcap-capture-filter",
            "icmp",
            "--fifo",
        ])
        .arg(&fifo)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut f = std::fs::File::open(&fifo).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let dt = loop {
        let n = f.read(&mut chunk).unwrap();
        assert!(n > 0, "extcap ended without a frame");
        buf.extend_from_slice(&chunk[..n]);
        let mut off = 0;
        let mut found = false;
        while off + 8 <= buf.len() {
            let kind = u32::from_le_bytes(buf[off..off + 4].try_into().unwrap());
            let len = u32::from_le_bytes(buf[off + 4..off + 8].try_into().unwrap()) as usize;
            if kind == 6 {
                found = true;
                break;
            }
            if len < 12 || off + len > buf.len() {
                break;
            }
            off += len;
        }
        if found {
            break t0.elapsed().as_secs_f64();
        }
    };
    stop(c);
    let _ = std::fs::remove_file(&fifo);
    dt
}

fn main() {
    // `cargo test --all-targets` also runs bench targets (without `--bench`): this one
    // needs root, namespaces and minutes of traffic, so it only runs under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("capture: a benchmark; run it with `cargo bench --bench capture` (as root)");
        return;
    }
    // trafgen's configuration files are removed however the run ends.
    struct Confs;
    impl Drop for Confs {
        fn drop(&mut self) {
            for size in [64, 1500] {
                let _ = std::fs::remove_file(
                    std::env::temp_dir().join(format!("vbc{}-{size}.cfg", std::process::id())),
                );
            }
        }
    }
    let _confs = Confs;
    let secs = env_u64("VECBOX_BENCH_SECS", 5);
    let reps = env_u64("VECBOX_BENCH_REPS", 3);
    let soak = env_u64("VECBOX_CAPTURE_SOAK", 60);
    let mut json = serde_json::Map::new();

    if part("rate") || part("soak") {
        let mut line = Line::new();
        line.start_guest();
        if part("rate") {
            one_capture(&line, reps, secs, &mut json);
        }
        if part("soak") {
            soak_into_file(&line, soak, &mut json);
        }
    }
    if part("links") || part("first") {
        let name = format!("vbc{}l", std::process::id());
        let lab = ChainLab {
            file: std::env::temp_dir().join(format!("{name}.yaml")),
            name: name.clone(),
        };
        std::fs::write(&lab.file, chain_yaml(&name)).unwrap();
        run(&[
            &vecbox(),
            "up",
            lab.file.to_str().unwrap(),
            "--detach",
            "-q",
        ]);
        if part("links") {
            ten_links(&name, reps, secs, &mut json);
        }
        if part("first") {
            first_packet_part(&name, reps, &mut json);
        }
    }

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("capture.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
}
