//! SSH-mode bring-up of a multi-host lab: three simulated hosts (scripts/sim-hosts:
//! network namespaces with their own sshd), 60 xconnect guests (20 per host) in a ring
//! of 60 links, 30 of them cross-host (10 between each pair of hosts, L2TPv3/UDP; h3
//! behind the 1400-byte hop).
//!
//! Measured, each the median of REPS runs, as wall time:
//!
//! - `vecbox up FILE` from the controller namespace: every host over ssh (connect,
//!   version, file and lock sent, preflight with the MTU probe, `up --host --detach`
//!   on the three hosts in parallel). Goal ≤ 10 s (2-core machine).
//! - the baseline: the same three `up FILE --host NAME --detach` started at once
//!   directly in the hosts' namespaces (manual mode, no ssh); the ratio is the cost of
//!   driving the hosts over SSH.
//! - `vecbox down --lab LAB` from the controller.
//!
//! Run as root, on a quiet machine:
//!
//!   cargo bench --bench multihost                 # REPS=3
//!   VECBOX_BENCH_REPS=5 cargo bench --bench multihost
//!
//! Results are printed and written to target/bench/multihost.json. The hosts are
//! named vbb<pid>s… and removed at the end or on a failed assertion (a guard's drop);
//! `cargo test --all-targets` starts bench targets without `--bench`: then it only
//! prints how to run it.

#[path = "../tests/common/mod.rs"]
mod common;
use common::{bench_mode, bench_reps, median};

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

const VECBOX: &str = env!("CARGO_BIN_EXE_vecbox");
const HOSTS: [(&str, &str); 3] = [
    ("h1", "10.250.0.1"),
    ("h2", "10.250.0.2"),
    ("h3", "10.250.1.3"),
];

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sim-hosts")
}

/// The simulated hosts and the lab name; the lab is taken down on every host and the
/// hosts removed when dropped.
struct Sim(String, String);

impl Sim {
    fn run(&self, host: &str, args: &[&str]) -> Output {
        Command::new(script())
            .args(["exec", &self.0, host, VECBOX])
            .args(args)
            .output()
            .expect("scripts/sim-hosts exec")
    }

    fn dir(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/{}", self.0))
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        for (h, _) in HOSTS {
            let _ = self.run(h, &["down", "--lab", &self.1]);
        }
        let _ = Command::new(script()).args(["down", &self.0]).output();
    }
}

fn ok(o: Output, what: &str) -> String {
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{what}: {t}");
    t
}

/// A ring of 60 xconnect guests g0..g59, placed two by two on h1, h2, h3, h1, …: of
/// the 60 links of the ring, every second one crosses hosts.
fn topology(lab: &str, ssh_options: &str) -> String {
    let mut s = format!("name: {lab}\nhosts:\n");
    for (h, a) in HOSTS {
        let mtu = if h == "h3" { 1400 } else { 1500 };
        let _ = writeln!(
            s,
            "  {h}: {{address: {a}, underlay_mtu: {mtu}, ssh: 'root@{a}', ssh_options: [{ssh_options}]}}"
        );
    }
    s.push_str("nodes:\n");
    for i in 0..60 {
        let _ = writeln!(
            s,
            "  g{i}: {{kind: xconnect, host: {}}}",
            HOSTS[i / 2 % 3].0
        );
    }
    s.push_str("links:\n");
    for i in 0..60 {
        let _ = writeln!(s, "  - {{endpoints: [g{i}:p1, g{}:p0]}}", (i + 1) % 60);
    }
    s
}

fn main() {
    if !bench_mode("multihost") {
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "run the benchmark as root"
    );
    let reps = bench_reps(3);
    let lab = format!("vbb{}m", std::process::id());
    let sim = Sim(format!("vbb{}s", std::process::id()), lab.clone());
    let o = Command::new(script())
        .args(["up", &sim.0])
        .env("VECBOX", VECBOX)
        .output()
        .expect("scripts/sim-hosts");
    ok(o, "sim-hosts up");
    let opts = std::fs::read_to_string(sim.dir().join("ssh/ssh_options")).unwrap();
    let opts: Vec<String> = opts.lines().map(|l| format!("'{l}'")).collect();
    let file = sim.dir().join(format!("{lab}.yaml"));
    std::fs::write(&file, topology(&lab, &opts.join(", "))).unwrap();
    let f = file.to_str().unwrap();
    let (mut ssh_up, mut manual_up, mut down) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        let t = Instant::now();
        ok(sim.run("ctl", &["up", f, "--quiet"]), "up over ssh");
        ssh_up.push(t.elapsed().as_secs_f64());
        let lock = std::fs::read_to_string(file.with_extension("lock.json")).unwrap();
        let lock: serde_json::Value = serde_json::from_str(&lock).unwrap();
        let cross = lock["cross"].as_object().map_or(0, |m| m.len());
        assert_eq!(cross, 30, "cross-host links in the lock");
        // Sanity: 60 guests run.
        let n = Command::new("pgrep")
            .args(["-c", "-f", &format!("umid={lab}\\.")])
            .output()
            .unwrap();
        let n = String::from_utf8_lossy(&n.stdout)
            .trim()
            .parse::<usize>()
            .unwrap_or(0);
        assert_eq!(n, 60, "guests of lab {lab}");
        let t = Instant::now();
        ok(sim.run("ctl", &["down", "--lab", &lab]), "down over ssh");
        down.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        std::thread::scope(|sc| {
            let runs: Vec<_> = HOSTS
                .iter()
                .map(|(h, _)| {
                    sc.spawn(|| sim.run(h, &["up", f, "--host", h, "--detach", "--quiet"]))
                })
                .collect();
            for r in runs {
                ok(r.join().unwrap(), "up --host");
            }
        });
        manual_up.push(t.elapsed().as_secs_f64());
        for (h, _) in HOSTS {
            ok(sim.run(h, &["down", "--lab", &lab]), "down --host");
        }
    }
    drop(sim);
    let (s, m, d) = (median(ssh_up), median(manual_up), median(down));
    println!("multi-host lab, 3 hosts, 60 guests, 30 cross-host links, median of {reps}:");
    println!("  up over SSH (controller)   {s:6.2} s  (goal ≤ 10 s)");
    println!(
        "  up --host on 3 hosts       {m:6.2} s  (baseline, no ssh; SSH mode {:.2}×)",
        s / m
    );
    println!("  down over SSH              {d:6.2} s");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let json = serde_json::json!({
        "hosts": 3, "guests": 60, "cross_links": 30, "reps": reps,
        "ssh_up_s": s, "manual_up_s": m, "ssh_down_s": d,
    });
    let _ = std::fs::write(out.join("multihost.json"), json.to_string());
}
