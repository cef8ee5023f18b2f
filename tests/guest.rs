//! `vecbox guest` as a process: the bridge over three hosts, the degraded paths when
//! kernel features are missing, running unprivileged with file capabilities, bad command
//! lines, an fd transport joining two guests, garbage frames on the wire, and the
//! sandbox (capabilities, no_new_privs and the seccomp allowlist on every thread).

mod common;

use std::os::fd::AsRawFd;
use std::process::Command;

use common::{Guest, Lab, VECBOX, port_drops, port_stat, run};

/// Three hosts on a three-port bridge guest.
#[test]
fn bridge_learns_and_forwards_between_three_hosts() {
    let mut lab = Lab::new();
    let g = lab.ns("g");
    let hosts: Vec<String> = ["a", "b", "c"].iter().map(|r| lab.ns(r)).collect();
    for (i, h) in hosts.iter().enumerate() {
        lab.veth(h, "eth0", &g, &format!("p{i}"));
        lab.quiet(&g, &format!("p{i}"));
        lab.addr(h, "eth0", &format!("10.73.0.{}/24", i + 1));
    }
    let guest = Guest::start(
        &lab,
        &g,
        "bridge",
        &[
            "aging=60",
            "vec0:transport=raw,ifname=p0,gro=1",
            "vec1:transport=raw,ifname=p1,gro=1",
            "vec2:transport=raw,ifname=p2,gro=0",
        ],
    );
    for (i, h) in hosts.iter().enumerate() {
        for j in 0..3 {
            if i != j {
                assert!(
                    lab.ping(h, &format!("10.73.0.{}", j + 1), 2),
                    "ping {i} -> {j}"
                );
            }
        }
    }
    let c_before = lab.counter(&hosts[2], "eth0", "rx_bytes");
    let bps = lab.iperf3(&hosts[1], &hosts[0], "10.73.0.2", 2);
    assert!(bps > 20e6, "TCP a -> b through the bridge: {bps}");
    let c_after = lab.counter(&hosts[2], "eth0", "rx_bytes");
    let r = guest.stop();
    // Known unicast goes only to its port: host c saw next to nothing of the TCP stream.
    // Bytes, not frames: with gro=1 a frame may carry 64 KiB, so frame counts vary with
    // load while the bytes of a 2 s stream at > 50 Mbit/s do not.
    let to_b = port_stat(&r, 1, "tx_bytes");
    assert!(to_b > 10_000_000, "{r}");
    assert!(
        c_after - c_before < to_b / 100,
        "c received {} bytes during the a->b stream ({to_b} bytes to b)",
        c_after - c_before
    );
    let fdb: u64 = common::function_state(&r, "fdb_entries").parse().unwrap();
    assert!(fdb >= 3, "{r}");
    // gro=0 on p2 with TSO traffic arriving elsewhere: nothing oversize was sent to it.
    assert_eq!(port_drops(&r, 2, "oversize"), 0, "{r}");
}

/// The paths vecbox takes when the kernel lacks PACKET_VNET_HDR, PACKET_QDISC_BYPASS and
/// PACKET_IGNORE_OUTGOING: forwarding still works (with offloads off on the hosts, as the
/// docs require for kernels without vnet headers) and each fallback is counted.
#[test]
fn degraded_kernel_features_still_forward_and_are_counted() {
    let mut lab = Lab::new();
    let (a, g, b) = (lab.ns("a"), lab.ns("g"), lab.ns("b"));
    lab.veth(&a, "a0", &g, "ga");
    lab.veth(&b, "b0", &g, "gb");
    lab.quiet(&g, "ga");
    lab.quiet(&g, "gb");
    for (ns, i) in [(&a, "a0"), (&b, "b0")] {
        run(&[
            "ip", "netns", "exec", ns, "ethtool", "-K", i, "tx", "off", "tso", "off", "gso", "off",
        ]);
    }
    lab.addr(&a, "a0", "10.74.0.1/24");
    lab.addr(&b, "b0", "10.74.0.2/24");
    let guest = Guest::start_with(
        &lab,
        &g,
        "xconnect",
        &[
            "vec0:transport=raw,ifname=ga,gro=1,ring=1",
            "vec1:transport=raw,ifname=gb,gro=1,ring=1",
        ],
        &[(
            "VECBOX_DISABLE",
            "packet_vnet_hdr,qdisc_bypass,ignore_outgoing",
        )],
        None,
    );
    assert!(lab.ping(&a, "10.74.0.2", 2));
    let bps = lab.iperf3(&b, &a, "10.74.0.2", 2);
    assert!(bps > 20e6, "{bps}");
    let r = guest.stop();
    for p in 0..2 {
        assert_eq!(port_stat(&r, p, "fallbacks"), 3, "{r}");
        assert_eq!(r["ports"][p]["vnet"], false, "{r}");
        // The ring still works without vnet headers, behind the pkt_type filter.
        assert_eq!(r["ports"][p]["rx_ring"], true, "{r}");
        assert_eq!(port_drops(&r, p, "oversize"), 0, "{r}");
    }
}

/// A kernel that refuses PACKET_RX_RING: raw ports receive with recvmmsg, and say so.
#[test]
fn refused_receive_ring_falls_back_to_recvmmsg() {
    let mut lab = Lab::new();
    let (a, g, b) = (lab.ns("a"), lab.ns("g"), lab.ns("b"));
    lab.veth(&a, "a0", &g, "ga");
    lab.veth(&b, "b0", &g, "gb");
    lab.quiet(&g, "ga");
    lab.quiet(&g, "gb");
    lab.addr(&a, "a0", "10.74.1.1/24");
    lab.addr(&b, "b0", "10.74.1.2/24");
    let guest = Guest::start_with(
        &lab,
        &g,
        "xconnect",
        &[
            "vec0:transport=raw,ifname=ga,ring=1",
            "vec1:transport=raw,ifname=gb,ring=1",
        ],
        &[("VECBOX_DISABLE", "packet_rx_ring")],
        None,
    );
    assert!(lab.ping(&a, "10.74.1.2", 2));
    let r = guest.stop();
    for p in 0..2 {
        assert_eq!(port_stat(&r, p, "fallbacks"), 1, "{r}");
        assert_eq!(r["ports"][p]["rx_ring"], false, "{r}");
        assert!(port_stat(&r, p, "rx_packets") >= 2, "{r}");
    }
}

/// A tap without a vnet header (driver feature turned off) still forwards.
#[test]
fn tap_without_vnet_header() {
    let mut lab = Lab::new();
    let (a, b) = (lab.ns("a"), lab.ns("b"));
    lab.veth(&a, "a0", &b, "ga");
    lab.quiet(&b, "ga");
    run(&[
        "ip",
        "netns",
        "exec",
        &b,
        "sysctl",
        "-qw",
        "net.ipv4.conf.ga.arp_ignore=8",
    ]);
    lab.addr(&a, "a0", "10.75.0.1/24");
    let guest = Guest::start_with(
        &lab,
        &b,
        "xconnect",
        &[
            "vec0:transport=raw,ifname=ga,gro=1",
            "vec1:transport=tap,ifname=tb,gro=1",
        ],
        &[("VECBOX_DISABLE", "tap_vnet_hdr")],
        None,
    );
    lab.addr(&b, "tb", "10.75.0.2/24");
    assert!(lab.ping(&a, "10.75.0.2", 2));
    let bps = lab.iperf3(&b, &a, "10.75.0.2", 2);
    assert!(bps > 20e6, "{bps}");
    let r = guest.stop();
    assert_eq!(r["ports"][1]["vnet"], false, "{r}");
    assert!(port_stat(&r, 1, "fallbacks") >= 1, "{r}");
    // GSO frames from the raw side were cut to size for the tap, checksums completed.
    assert!(port_stat(&r, 1, "tx_gso_segmented") > 0, "{r}");
}

/// As an ordinary user, the binary works with `setcap cap_net_raw,cap_net_admin+ep`,
/// drops the capabilities once its ports are open, and without them fails with a message
/// that says what is missing.
#[test]
fn unprivileged_user_with_file_capabilities() {
    common::require_tool("setcap");
    common::require_tool("setpriv");
    let mut lab = Lab::new();
    let (a, g, b) = (lab.ns("a"), lab.ns("g"), lab.ns("b"));
    lab.veth(&a, "a0", &g, "ga");
    lab.veth(&b, "b0", &g, "gb");
    lab.addr(&a, "a0", "10.76.0.1/24");
    lab.addr(&b, "b0", "10.76.0.2/24");
    let bin = binary_copy(&lab, "vecbox-caps", true);
    let wrapper = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        bin.to_str().unwrap(),
    ];
    let ports = [
        "vec0:transport=raw,ifname=ga",
        "vec1:transport=raw,ifname=gb",
    ];
    let guest = Guest::start_with(&lab, &g, "xconnect", &ports, &[], Some(&wrapper));
    let pid = guest.child.as_ref().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(field("Uid:"), "65534");
    assert_eq!(
        field("CapEff:"),
        "0000000000000000",
        "capabilities dropped after opening ports"
    );
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("Seccomp:"), "2", "seccomp allowlist in force");
    assert!(lab.ping(&a, "10.76.0.2", 2));
    let r = guest.stop();
    assert!(port_stat(&r, 0, "rx_packets") >= 2, "{r}");

    // Same user, binary without capabilities: a clear error naming what is needed.
    let plain = binary_copy(&lab, "vecbox-plain", false);
    let wrapper = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        plain.to_str().unwrap(),
    ];
    let err = Guest::try_start(&lab, &g, "xconnect", &ports, &[], Some(&wrapper))
        .err()
        .unwrap();
    assert!(
        err.contains("CAP_NET_RAW") && err.contains("setcap"),
        "{err}"
    );
}

/// A copy of vecbox in the lab's directory that user 65534 may run, with
/// `cap_net_raw,cap_net_admin+ep` when `caps`.
fn binary_copy(lab: &Lab, name: &str, caps: bool) -> std::path::PathBuf {
    run(&["chmod", "1777", lab.dir.to_str().unwrap()]);
    let bin = lab.dir.join(name);
    std::fs::copy(VECBOX, &bin).unwrap();
    run(&["chmod", "755", bin.to_str().unwrap()]);
    if caps {
        run(&[
            "setcap",
            "cap_net_raw,cap_net_admin+ep",
            bin.to_str().unwrap(),
        ]);
    }
    bin
}

/// A tap port as user 65534 with `/dev/net/tun` replaced, in a private mount namespace,
/// by a node of mode `mode` (root-owned, same device numbers as the real one): the
/// message names the real cause. 0600 refuses the user whatever its capabilities, so the
/// device is blamed and the fix is a chmod; at 0666 a binary without capabilities is told
/// that CAP_NET_ADMIN is missing and the device is fine; with both, the guest runs.
#[test]
fn tap_permission_errors_name_the_real_cause() {
    for tool in ["setcap", "setpriv", "unshare", "mknod"] {
        common::require_tool(tool);
    }
    let mut lab = Lab::new();
    let g = lab.ns("g");
    let caps = binary_copy(&lab, "vecbox-caps", true);
    let plain = binary_copy(&lab, "vecbox-plain", false);
    let dev = lab.dir.join("dev");
    std::fs::create_dir_all(&dev).unwrap();
    let script = |mode: &str| {
        let d = dev.display();
        format!(
            "mount -t tmpfs -o mode=0755 vbt-dev {d} && mknod -m {mode} {d}/tun c 10 200 \
             && mount --bind {d}/tun /dev/net/tun && exec \"$@\""
        )
    };
    let (t0, t1) = (format!("{}a", lab.tag), format!("{}b", lab.tag));
    let ports = [
        format!("vec0:transport=tap,ifname={t0}"),
        format!("vec1:transport=tap,ifname={t1}"),
    ];
    let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
    let start = |mode: &str, bin: &std::path::Path| {
        let script = script(mode);
        let wrapper = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin.to_str().unwrap(),
        ];
        Guest::try_start(&lab, &g, "xconnect", &ports, &[], Some(&wrapper))
    };

    let err = start("0600", &caps)
        .err()
        .expect("0600 device refuses user 65534");
    for want in [
        "opening /dev/net/tun for tap",
        "Permission denied",
        "the device's permissions refuse this user, whatever its capabilities",
        "crw------- (mode 0600, owner uid 0",
        "runs as uid 65534 gid 65534",
        "chmod 0666 /dev/net/tun",
    ] {
        assert!(err.contains(want), "missing {want:?} in: {err}");
    }
    assert!(
        !err.contains("setcap"),
        "the binary has its capabilities: {err}"
    );

    let err = start("0666", &plain)
        .err()
        .expect("no CAP_NET_ADMIN to create a tap");
    for want in [
        &format!("TUNSETIFF (tap {t0}): Operation not permitted") as &str,
        "a missing capability is the problem, not the device",
        "CAP_NET_ADMIN",
        &format!("setcap cap_net_raw,cap_net_admin+ep {}", plain.display()),
        &format!("ip tuntap add dev {t0} mode tap user 65534"),
    ] {
        assert!(err.contains(want), "missing {want:?} in: {err}");
    }

    // Both right: the same setup runs (so the node above was a working tun device).
    let guest = start("0666", &caps).unwrap_or_else(|e| panic!("0666 with caps: {e}"));
    assert!(guest.ready.contains(&t0), "{}", guest.ready);
    guest.stop();
}

fn vecbox(args: &[&str]) -> std::process::Output {
    Command::new(VECBOX).args(args).output().unwrap()
}

#[test]
fn bad_command_lines_exit_2_with_one_clear_line() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["guest", "xconnect", "vec0:transport=raw,ifname=a,depth=abc"],
            "depth",
        ),
        (
            &["guest", "xconnect", "vec0:transport=raw,ifname=a,depth=0"],
            "depth",
        ),
        (
            &["guest", "xconnect", "vec0:transport=raw,depth=64"],
            "ifname",
        ),
        (
            &["guest", "xconnect", "vec0:transport=raw,ifname=a,rx_key=1"],
            "rx_key",
        ),
        (
            &["guest", "xconnect", "vec0:transport=rawx,ifname=a"],
            "transport",
        ),
        (
            &[
                "guest",
                "xconnect",
                "vec0:transport=raw,ifname=a",
                "vec1:transport=raw,ifname=b",
                "vec2:transport=raw,ifname=c",
            ],
            "exactly 2",
        ),
        (
            &["guest", "router9", "vec0:transport=raw,ifname=a"],
            "router9",
        ),
        (
            &[
                "guest",
                "bridge",
                "aging=never",
                "vec0:transport=raw,ifname=a",
                "vec1:transport=raw,ifname=b",
            ],
            "aging",
        ),
        (
            &[
                "guest",
                "xconnect",
                "seccomp=strict",
                "vec0:transport=raw,ifname=a",
                "vec1:transport=raw,ifname=b",
            ],
            "seccomp must be kill",
        ),
    ];
    for (args, needle) in cases {
        let out = vecbox(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line, got: {err}"
        );
    }
}

#[test]
fn missing_interface_is_named() {
    let mut lab = Lab::new();
    let g = lab.ns("g");
    let out = lab.exec(
        &g,
        &[
            VECBOX,
            "guest",
            "xconnect",
            "vec0:transport=raw,ifname=nosuch0",
            "vec1:transport=raw,ifname=lo",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("nosuch0") && err.contains("does not exist"),
        "{err}"
    );
}

/// Two guests joined by an inherited socketpair (`transport=fd`), hosts on the far
/// sides. Runts and garbage written into the pair are dropped and counted; valid
/// traffic is unaffected.
#[test]
fn fd_transport_joins_two_guests_and_drops_garbage() {
    let mut lab = Lab::new();
    let (a, g1, g2, b) = (lab.ns("a"), lab.ns("g1"), lab.ns("g2"), lab.ns("b"));
    lab.veth(&a, "a0", &g1, "ga");
    lab.veth(&b, "b0", &g2, "gb");
    lab.quiet(&g1, "ga");
    lab.quiet(&g2, "gb");
    lab.addr(&a, "a0", "10.77.0.1/24");
    lab.addr(&b, "b0", "10.77.0.2/24");
    let (s1, s2) = std::os::unix::net::UnixDatagram::pair().unwrap();
    let (inject, s3) = std::os::unix::net::UnixDatagram::pair().unwrap();
    for s in [&s1, &s2, &s3] {
        nix::fcntl::fcntl(
            s,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .unwrap();
    }
    let fd1 = format!("vec1:transport=fd,fd={}", s1.as_raw_fd());
    let fd2 = format!("vec0:transport=fd,fd={}", s2.as_raw_fd());
    let fd3 = format!("vec2:transport=fd,fd={}", s3.as_raw_fd());
    // Guest 1 is a bridge so that garbage arriving on its third port has somewhere to go.
    let g1_guest = Guest::start(
        &lab,
        &g1,
        "bridge",
        &["vec0:transport=raw,ifname=ga", &fd1, &fd3],
    );
    let g2_guest = Guest::start(
        &lab,
        &g2,
        "xconnect",
        &[&fd2, "vec1:transport=raw,ifname=gb"],
    );
    drop((s1, s2, s3));
    for junk in [&[][..], &[1u8; 5][..], &[2u8; 13][..]] {
        inject.send(junk).unwrap();
    }
    assert!(lab.ping(&a, "10.77.0.2", 3));
    let bps = lab.iperf3(&b, &a, "10.77.0.2", 2);
    assert!(bps > 20e6, "TCP over the fd link: {bps}");
    let r1 = g1_guest.stop();
    let r2 = g2_guest.stop();
    assert_eq!(port_drops(&r1, 2, "runt"), 3, "{r1}");
    assert!(port_stat(&r1, 1, "tx_packets") > 1000, "{r1}");
    // TSO frames from host A were segmented for the fd link (no vnet header there).
    assert!(port_stat(&r1, 1, "tx_gso_segmented") > 0, "{r1}");
    assert!(port_stat(&r2, 1, "tx_packets") > 1000, "{r2}");
}

/// `(CapEff, NoNewPrivs, Seccomp)` of every thread of `pid`.
fn thread_sandbox(pid: u32) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let st = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
        let field = |k: &str| {
            st.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        out.push((field("CapEff:"), field("NoNewPrivs:"), field("Seccomp:")));
    }
    out
}

/// A root guest keeps forwarding under its seccomp allowlist, on the main thread and on
/// the metrics= thread started after the sandbox; `seccomp=log` installs the filter in
/// log mode and `seccomp=off` leaves it out.
#[test]
fn sandboxed_guest_forwards_under_seccomp_on_every_thread() {
    common::require_tool("curl");
    let mut lab = Lab::new();
    let (a, g, b) = (lab.ns("a"), lab.ns("g"), lab.ns("b"));
    lab.veth(&a, "a0", &g, "ga");
    lab.veth(&b, "b0", &g, "gb");
    lab.addr(&a, "a0", "10.77.0.1/24");
    lab.addr(&b, "b0", "10.77.0.2/24");
    let ports = [
        "vec0:transport=raw,ifname=ga",
        "vec1:transport=raw,ifname=gb",
    ];
    let guest = Guest::start(
        &lab,
        &g,
        "xconnect",
        &["metrics=127.0.0.1:9471", ports[0], ports[1]],
    );
    let pid = guest.child.as_ref().unwrap().id();
    let threads = thread_sandbox(pid);
    assert!(threads.len() >= 2, "main and metrics threads: {threads:?}");
    for t in &threads {
        assert_eq!(
            (t.0.as_str(), t.1.as_str(), t.2.as_str()),
            ("0000000000000000", "1", "2"),
            "CapEff, NoNewPrivs, Seccomp of each thread: {threads:?}"
        );
    }
    assert!(
        lab.ping(&a, "10.77.0.2", 3),
        "ping through the sandboxed guest"
    );
    let bps = lab.iperf3(&b, &a, "10.77.0.2", 1);
    assert!(bps > 10e6, "TCP through the sandboxed guest: {bps}");
    let m = lab.exec(&g, &["curl", "-sf", "http://127.0.0.1:9471/metrics"]);
    let body = String::from_utf8_lossy(&m.stdout);
    assert!(
        m.status.success() && body.contains("vecbox_rx_packets_total"),
        "metrics thread serves under the filter: {body}"
    );
    let r = guest.stop();
    assert!(port_stat(&r, 0, "rx_packets") >= 3, "{r}");

    for (mode, want) in [("log", "2"), ("off", "0")] {
        let seccomp = format!("seccomp={mode}");
        let guest = Guest::start(&lab, &g, "xconnect", &[&seccomp, ports[0], ports[1]]);
        let t = thread_sandbox(guest.child.as_ref().unwrap().id());
        assert_eq!(t[0].2, want, "{seccomp}: {t:?}");
        assert_eq!(t[0].0, "0000000000000000", "{seccomp}: {t:?}");
        assert!(lab.ping(&a, "10.77.0.2", 3), "{seccomp}");
        guest.stop();
    }
}
