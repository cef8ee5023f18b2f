//! Lab lifecycle benchmark: a 50-node lab (25 hosts, 24 xconnect guests, 1 bridge
//! guest, 49 veth links) brought up with `vecbox up --detach` and removed with
//! `vecbox down`; also the resident memory of each guest once up.
//!
//! A guest's RSS has two parts, shown apart: its own memory (heap, stacks, the mapped
//! binary) and the receive rings of its raw ports (the `socket:[…]` mappings in
//! /proc/PID/smaps: kernel memory the packet socket maps into the guest, held for as
//! long as the port is open). A `recvmmsg` port (`ring=0`) maps nothing; its socket
//! buffer is charged only while frames wait in it, up to its limit (4 MiB per port),
//! which is printed beside the rings for comparison.
//!
//! Targets: up ≤ 5 s, down ≤ 3 s, ≤ 10 MiB own memory per guest (2-core machine). Each
//! figure is the median of REPS runs. Run as root:
//!
//!   cargo bench --bench lab                       # REPS=3
//!   VECBOX_BENCH_REPS=1 cargo bench --bench lab
//!
//! Results are printed and written to target/bench/lab.json. `cargo test
//! --all-targets` also builds and starts bench targets (without `--bench`): then it
//! only prints how to run it, since it needs root and brings up 150 kernel objects.

#[path = "../tests/common/mod.rs"]
mod common;
use common::{bench_mode, bench_reps, median};

use std::fmt::Write as _;
use std::process::Command;
use std::time::Instant;

const VECBOX: &str = env!("CARGO_BIN_EXE_vecbox");

/// Hosts h0..h23 each reach the bridge `core` through their own xconnect x0..x23;
/// h24 is on the bridge directly.
fn topology(name: &str) -> String {
    let mut s = format!("name: {name}\nnodes:\n  core:\n    kind: bridge\n");
    for i in 0..25 {
        let _ = write!(
            s,
            "  h{i}:\n    kind: host\n    interfaces:\n      eth0: {{addresses: [10.50.0.{}/24]}}\n",
            i + 1
        );
    }
    for i in 0..24 {
        let _ = writeln!(s, "  x{i}:\n    kind: xconnect");
    }
    s.push_str("links:\n");
    for i in 0..24 {
        let _ = writeln!(s, "  - endpoints: [h{i}:eth0, x{i}:a]");
        let _ = writeln!(s, "  - endpoints: [x{i}:b, core:p{i}]");
    }
    s.push_str("  - endpoints: [h24:eth0, core:p24]\n");
    s
}

fn vecbox(args: &[&str]) {
    let out = Command::new(VECBOX).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "vecbox {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A guest's resident memory in KiB: everything, the packet-socket (receive ring)
/// mappings, their number, and anonymous memory (heap and stacks).
#[derive(Clone, Copy, Debug, Default)]
struct Mem {
    rss: u64,
    rings: u64,
    ring_maps: u64,
    anon: u64,
}

impl Mem {
    fn own(&self) -> u64 {
        self.rss - self.rings
    }
}

/// Sum the `Rss:` and `Anonymous:` lines of /proc/PID/smaps, the rings apart.
fn mem(pid: i64) -> Mem {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut m = Mem::default();
    let mut in_ring = false;
    for l in text.lines() {
        let kib = |l: &str| -> u64 {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        if l.starts_with("Rss:") {
            m.rss += kib(l);
            if in_ring {
                m.rings += kib(l);
            }
        } else if l.starts_with("Anonymous:") {
            m.anon += kib(l);
        } else if l.split_whitespace().next().is_some_and(|a| {
            a.contains('-') && a.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        }) {
            // A mapping's header line ("start-end perms offset dev inode [path]").
            in_ring = l
                .split_whitespace()
                .nth(5)
                .is_some_and(|p| p.starts_with("socket:["));
            m.ring_maps += u64::from(in_ring);
        }
    }
    m
}

fn main() {
    if !bench_mode("lab") {
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "run the benchmark as root"
    );
    let reps = bench_reps(3);
    let name = format!("vbb{}", std::process::id());
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lab50.yaml");
    std::fs::write(&file, topology(&name)).unwrap();
    let f = file.to_str().unwrap();
    let (mut ups, mut downs) = (Vec::new(), Vec::new());
    // Per repetition: the largest guest (by RSS) and the smallest.
    let (mut big, mut small, mut lab_rings) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        let t = Instant::now();
        vecbox(&["up", f, "--detach", "--quiet"]);
        ups.push(t.elapsed().as_secs_f64());
        // Sanity: traffic crosses the lab end to end (h0 → x0 → core → h24).
        let ping = Command::new(VECBOX)
            .args([
                "exec",
                &name,
                "h0",
                "--",
                "ping",
                "-c1",
                "-W2",
                "10.50.0.25",
            ])
            .output()
            .unwrap();
        assert!(ping.status.success(), "ping across the 50-node lab failed");
        std::thread::sleep(std::time::Duration::from_millis(1200));
        let st = Command::new(VECBOX)
            .args(["status", &name, "--json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
        let pids: Vec<i64> = v[0]["state"]["nodes"]
            .as_array()
            .map(|a| a.iter().filter_map(|n| n["pid"].as_i64()).collect())
            .unwrap_or_default();
        assert_eq!(pids.len(), 25, "25 guests");
        let mems: Vec<Mem> = pids.iter().map(|p| mem(*p)).collect();
        big.push(
            mems.iter()
                .copied()
                .max_by_key(|m| m.rss)
                .unwrap_or_default(),
        );
        small.push(
            mems.iter()
                .copied()
                .min_by_key(|m| m.rss)
                .unwrap_or_default(),
        );
        lab_rings.push(mems.iter().map(|m| m.rings).sum::<u64>() as f64 / 1024.0);
        let t = Instant::now();
        vecbox(&["down", "--lab", &name]);
        downs.push(t.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (up, down) = (median(ups), median(downs));
    let mib =
        |v: &[Mem], f: fn(&Mem) -> u64| median(v.iter().map(|m| f(m) as f64 / 1024.0).collect());
    println!("50-node lab (25 hosts, 25 guests, 49 veth links), median of {reps}:");
    println!("  up   {up:6.2} s   (target ≤ 5 s)");
    println!("  down {down:6.2} s   (target ≤ 3 s)");
    let mut json = serde_json::json!({"nodes": 50, "reps": reps, "up_s": up, "down_s": down});
    for (what, v) in [("largest", &big), ("smallest", &small)] {
        let (rss, own, rings, anon) = (
            mib(v, |m| m.rss),
            mib(v, Mem::own),
            mib(v, |m| m.rings),
            mib(v, |m| m.anon),
        );
        let ports = v[v.len() / 2].ring_maps;
        let sockbuf = ports * 4;
        println!(
            "  {what} guest: RSS {rss:5.1} MiB = own {own:5.1} MiB (target ≤ 10 MiB; anonymous {anon:4.1}) \
             + receive rings {rings:5.1} MiB ({ports} ports; as recvmmsg: 0 idle, ≤ {sockbuf} MiB of socket buffers when full)"
        );
        json[format!("{what}_guest")] = serde_json::json!({
            "rss_mib": rss, "own_mib": own, "anon_mib": anon, "rings_mib": rings,
            "ring_ports": ports, "socket_buffer_limit_mib": sockbuf,
        });
    }
    let rings = median(lab_rings);
    println!("  receive rings of all 25 guests: {rings:5.1} MiB");
    json["max_guest_rss_mib"] = mib(&big, |m| m.rss).into();
    json["max_guest_own_mib"] = mib(&big, Mem::own).into();
    json["lab_rings_mib"] = rings.into();
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join("lab.json"), json.to_string());
}
