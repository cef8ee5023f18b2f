//! Bench scenarios as labs, on real namespaces: `vecbox bench --topology SCENARIO`
//! writes a file that `vecbox check` accepts and `vecbox up` brings up with the
//! scenario's kernel objects (read back from the kernel: the Linux bridge and its
//! ports, permanent neighbour entries, offload switches, sysctls), and `vecbox down`
//! removes without a trace; the lab layer's host objects are made and removed on a
//! lab of their own; a bench killed outright (SIGKILL, no handler runs) is removed by
//! `vecbox down --lab vbbPID` from its journal.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{TestLab, assert_clean, snapshot, vecbox, vecbox_ok};
use common::{VECBOX, require_root, require_tool};

/// `ip -n NS ARGS...` (reading the kernel back); stdout.
fn ip(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip -n {ns} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ethtool -k IF` in namespace `ns`: the line of feature `name` says on.
fn offload_on(ns: &str, iface: &str, name: &str) -> bool {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ethtool", "-k", iface])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in ethtool -k {iface}:\n{text}"));
    line.split(':').nth(1).unwrap().trim().starts_with("on")
}

fn sysctl(ns: &str, path: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", &format!("/proc/sys/{path}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `vecbox bench --topology SCENARIO` for a lab named like the tests' labs.
fn scenario_lab(scenario: &str) -> TestLab {
    let lab = TestLab::new("name: @LAB@\nnodes: {}\n");
    let out = vecbox(&[
        "bench",
        "--topology",
        scenario,
        "--lab",
        &lab.name,
        "-o",
        lab.file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "--topology {scenario}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&lab.file).unwrap();
    assert!(text.contains(&format!("name: {}", lab.name)), "{text}");
    assert!(
        text.contains(scenario),
        "the file names its scenario:\n{text}"
    );
    vecbox_ok(&["check", lab.file.to_str().unwrap()]);
    lab
}

#[test]
fn kernel_bridge_scenario_comes_up_forwards_and_goes_down_clean() {
    require_root();
    require_tool("ethtool");
    let lab = scenario_lab("kernel/tcp/1s/off0");
    let before = snapshot(&lab.name);
    lab.up();
    let (gn, dut, sink) = (
        format!("{}.gen", lab.name),
        format!("{}.dut", lab.name),
        format!("{}.sink", lab.name),
    );
    // The Linux bridge and its two ports.
    let br = ip(&dut, &["-d", "link", "show", "br0"]);
    assert!(br.contains("bridge"), "{br}");
    for port in ["d0", "d1"] {
        let l = ip(&dut, &["link", "show", port]);
        assert!(l.contains("master br0"), "{port}: {l}");
    }
    // Permanent neighbour entry of the tunnel underlay.
    let n = ip(&dut, &["neigh", "show", "dev", "t0"]);
    assert!(
        n.contains("172.28.80.2") && n.contains("02:00:00:00:00:99") && n.contains("PERMANENT"),
        "{n}"
    );
    // off0: every offload switch off on the four veth ends; the underlay keeps the
    // kernel's default (TSO on).
    for (ns, i) in [(&gn, "g0"), (&dut, "d0"), (&dut, "d1"), (&sink, "s0")] {
        for f in [
            "tcp-segmentation-offload",
            "generic-segmentation-offload",
            "generic-receive-offload",
            "tx-checksumming",
            "rx-checksumming",
        ] {
            assert!(!offload_on(ns, i, f), "{ns}/{i}: {f} still on");
        }
    }
    assert!(offload_on(&dut, "t0", "tcp-segmentation-offload"));
    // No IPv6 on the interfaces the lab made.
    assert_eq!(sysctl(&dut, "net/ipv6/conf/d0/disable_ipv6"), "1");
    // The bridge forwards: gen reaches sink across it.
    assert!(
        lab.ping("gen", "10.80.1.2"),
        "no ping across the kernel bridge"
    );
    lab.down();
    assert_clean(&lab.name, &before);
}

#[test]
fn kernel_forward_scenario_sets_forwarding_routes_and_neighbours() {
    require_root();
    require_tool("ethtool");
    let lab = scenario_lab("kernel/forward/64/off1");
    let before = snapshot(&lab.name);
    lab.up();
    let dut = format!("{}.dut", lab.name);
    assert_eq!(sysctl(&dut, "net/ipv4/ip_forward"), "1");
    let n = ip(&dut, &["neigh", "show", "dev", "d1"]);
    assert!(n.contains("10.80.2.99") && n.contains("PERMANENT"), "{n}");
    let r = ip(&dut, &["route", "show", "10.96.0.0/12"]);
    assert!(r.contains("dev d0"), "{r}");
    let a = ip(&dut, &["-4", "addr", "show", "dev", "d0"]);
    assert!(a.contains("10.80.1.254/24"), "{a}");
    // off1: offloads stay at the kernel's defaults (TSO on).
    assert!(offload_on(&dut, "d0", "tcp-segmentation-offload"));
    assert!(!ip(&dut, &["link"]).contains("br0"));
    lab.down();
    assert_clean(&lab.name, &before);
}

/// The lab layer's host objects on a lab of their own: an offload switched *on*
/// (GRO is off by default on a veth) and others off, a bridge over three ports, a
/// neighbour on the bridge, a sysctl; all read back, then all gone with the lab.
#[test]
fn host_bridges_neighbours_offloads_and_sysctls_are_made_and_removed() {
    require_root();
    require_tool("ethtool");
    let lab = TestLab::new(
        "name: @LAB@
nodes:
  a: {kind: host, interfaces: {e0: {addresses: [10.77.0.1/24]}}}
  b: {kind: host, interfaces: {e0: {addresses: [10.77.0.2/24]}}}
  sw:
    kind: host
    sysctls: {net.ipv4.conf.all.forwarding: 1}
    bridges: {vbr7: [p0, p1]}
    neighbours:
      - {address: 10.77.0.9, mac: '02:00:00:00:77:09', dev: vbr7}
    interfaces:
      p0: {offloads: {gro: true, tso: false}}
links:
  - {endpoints: [a:e0, sw:p0]}
  - {endpoints: [sw:p1, b:e0]}
",
    );
    let before = snapshot(&lab.name);
    lab.up();
    let sw = format!("{}.sw", lab.name);
    assert!(ip(&sw, &["link", "show", "p1"]).contains("master vbr7"));
    let br = ip(&sw, &["-d", "link", "show", "vbr7"]);
    assert!(
        br.contains("bridge") && br.contains("alias vecbox:"),
        "{br}"
    );
    let n = ip(&sw, &["neigh", "show", "dev", "vbr7"]);
    assert!(
        n.contains("10.77.0.9") && n.contains("02:00:00:00:77:09") && n.contains("PERMANENT"),
        "{n}"
    );
    assert!(
        offload_on(&sw, "p0", "generic-receive-offload"),
        "gro was not turned on"
    );
    assert!(
        !offload_on(&sw, "p0", "tcp-segmentation-offload"),
        "tso was not turned off"
    );
    assert!(
        offload_on(&sw, "p1", "tcp-segmentation-offload"),
        "p1 keeps its default"
    );
    assert_eq!(sysctl(&sw, "net/ipv4/conf/all/forwarding"), "1");
    assert!(lab.ping("a", "10.77.0.2"), "no ping across the bridge");
    lab.down();
    assert_clean(&lab.name, &before);
}

#[test]
fn bad_host_objects_are_named_by_check() {
    require_root();
    let lab = TestLab::new(
        "name: @LAB@
nodes:
  a: {kind: host}
  sw:
    kind: host
    bridges: {br0: [p0, nope]}
    neighbours: [{address: 10.0.0.300, mac: '02:00:00:00:00:01', dev: p0}]
    interfaces:
      p0: {offloads: {lro: false}}
links:
  - {endpoints: [a:e0, sw:p0]}
",
    );
    let out = vecbox(&["check", lab.file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`nope` is not an interface of `sw`"), "{err}");
    assert!(
        err.contains("10.0.0.300") && err.contains("not an IP address"),
        "{err}"
    );
    assert!(err.contains("`lro` is not an offload switch"), "{err}");
}

#[test]
fn unknown_topology_scenario_is_a_usage_error() {
    let out = vecbox(&["bench", "--topology", "kernel/nothing/64"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kernel/nothing/64") && err.contains("--list"),
        "{err}"
    );
}

/// A bench killed with SIGKILL (no handler) leaves its lab; `vecbox down --lab vbbPID`
/// removes its namespaces, the processes in them and its directories.
#[test]
fn killed_bench_is_removed_by_vecbox_down() {
    require_root();
    require_tool("iperf3");
    let mut child = Command::new(VECBOX)
        .args([
            "bench",
            "--quick",
            "--generator",
            "vecbox",
            "vecbox/xconnect/raw",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tag = format!("vbb{}", child.id());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Past the ceiling row: the vecbox row's guest is starting or running.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "no row from the bench");
        match lines.next() {
            Some(Ok(l)) if l.starts_with("ceiling/64") => break,
            Some(Ok(_)) => continue,
            _ => panic!("bench ended early"),
        }
    }
    let ns_of = |tag: &str| -> Vec<String> {
        std::fs::read_dir("/run/netns")
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .filter(|n| n.starts_with(&format!("{tag}.")))
                    .collect()
            })
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while ns_of(&tag).len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let left = ns_of(&tag);
    let journal = std::path::Path::new("/run/vecbox")
        .join(&tag)
        .join("journal");
    let had_lab = !left.is_empty() && journal.exists();
    let out = vecbox(&["down", "--lab", &tag]);
    assert!(
        ns_of(&tag).is_empty(),
        "namespaces left after down: {:?}",
        ns_of(&tag)
    );
    assert!(!std::path::Path::new("/run/vecbox").join(&tag).exists());
    assert!(!std::env::temp_dir().join(&tag).exists(), "work dir left");
    // Processes the bench started (their environment carries its tag) are gone.
    let needle = format!("VECBOX_BENCH={tag}\0");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("environ"))
                .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle.as_bytes()))
        });
        if !alive {
            break;
        }
        assert!(Instant::now() < deadline, "bench processes left after down");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        had_lab,
        "the killed bench left no lab to remove (namespaces {left:?}); down said: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
