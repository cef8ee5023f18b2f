//! A real UML kernel on one end of every transport, a vecbox guest on the other.
//!
//! ```text
//!  host A ─veth─ [UML: vec0 raw ─ routes ─ vec1 <transport>] ═ link ═ [vecbox: vec0 <transport> ─ xconnect ─ vec1 raw] ─veth─ host B
//! ```
//! UML's busybox has no iperf3, so UML routes between A (10.82.1.0/24) and B
//! (10.82.2.0/24): UML itself pings B across the link, and iperf3 TCP streams between
//! the hosts cross UML, the link under test and vecbox in both directions.

mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use common::uml::Uml;
use common::{Guest, Lab, port_drops, port_stat};

const A_IP: &str = "10.82.1.1";
const UA_IP: &str = "10.82.1.2";
const UB_IP: &str = "10.82.2.1";
const B_IP: &str = "10.82.2.2";
/// Underlay of the IP tunnels: UML's end and vecbox's end.
const T_UML: &str = "172.30.0.1";
const T_VB: &str = "172.30.0.2";

/// How the two ends are linked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    /// IP tunnel over a veth underlay between UML's and vecbox's namespaces.
    Tunnel,
    /// A veth pair: UML raw on one end, vecbox raw on the other.
    Veth,
    /// A tap UML creates; vecbox runs raw on it in UML's namespace.
    UmlTap,
    /// A tap vecbox creates (tap/hybrid); UML runs raw on it in vecbox's namespace.
    VecboxTap,
    /// vecbox listens on a bess socket, UML connects.
    Bess,
    /// A socketpair, one end inherited by each.
    Fd,
}

/// Run one interop case; `uml_link`/`vb_link` are the link's `transport=...` specs
/// (`{PATH}` and `{FD}` are filled in).
fn interop(link: Link, uml_link: &str, vb_link: &str) -> serde_json::Value {
    let mut lab = Lab::new();
    let a = lab.ns("a");
    let u = lab.ns("u");
    let b = lab.ns("b");
    let shared = matches!(link, Link::UmlTap | Link::VecboxTap);
    let g = if shared { u.clone() } else { lab.ns("g") };
    lab.veth(&a, "a0", &u, "ua");
    lab.veth(&b, "b0", &g, "gb");
    lab.quiet(&u, "ua");
    lab.quiet(&g, "gb");
    lab.addr(&a, "a0", &format!("{A_IP}/24"));
    lab.addr(&b, "b0", &format!("{B_IP}/24"));
    common::run(&["ip", "-n", &a, "route", "add", "10.82.2.0/24", "via", UA_IP]);
    common::run(&["ip", "-n", &b, "route", "add", "10.82.1.0/24", "via", UB_IP]);
    match link {
        Link::Tunnel => {
            lab.veth(&u, "t0", &g, "t1");
            for (ns, i, ip) in [(&u, "t0", T_UML), (&g, "t1", T_VB)] {
                common::run(&["ip", "-n", ns, "link", "set", i, "mtu", "1600"]);
                lab.addr(ns, i, &format!("{ip}/24"));
            }
        }
        Link::Veth => {
            lab.veth(&u, "l0", &g, "l1");
            lab.quiet(&g, "l1");
        }
        _ => {}
    }
    let path = lab.dir.join("bess.sock").display().to_string();
    let pair = (link == Link::Fd).then(|| {
        let (x, y) =
            socket2::Socket::pair(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None).unwrap();
        x.set_cloexec(false).unwrap();
        y.set_cloexec(false).unwrap();
        (x, y)
    });
    let fill = |s: &str, fd: Option<&socket2::Socket>| {
        let s = s.replace("{PATH}", &path);
        match fd {
            Some(f) => s.replace("{FD}", &f.as_raw_fd().to_string()),
            None => s,
        }
    };
    let vb_spec = format!("vec0:{}", fill(vb_link, pair.as_ref().map(|p| &p.1)));
    let mut uml_spec = format!("vec1:{}", fill(uml_link, pair.as_ref().map(|p| &p.0)));
    if link == Link::UmlTap {
        // UML's tap interface dies for good if its first write meets a host tap that is
        // still down (EIO sets its in_error state): let UML's own ifup= helper bring the
        // host side up as soon as the tap exists.
        let ifup = lab.dir.join("ifup.sh");
        std::fs::write(&ifup, "#!/bin/sh\nexec ip link set dev \"$1\" up\n").unwrap();
        common::run(&["chmod", "755", ifup.to_str().unwrap()]);
        uml_spec.push_str(&format!(",ifup={}", ifup.display()));
    }
    let start_vb = |lab: &Lab| {
        Guest::start(
            lab,
            &g,
            "xconnect",
            &[&vb_spec, "vec1:transport=raw,ifname=gb,gro=1"],
        )
    };
    let ifname_of = |spec: &str| {
        spec.split(',')
            .find_map(|kv| kv.strip_prefix("ifname="))
            .unwrap()
            .to_string()
    };
    let early = matches!(link, Link::Bess | Link::VecboxTap).then(|| start_vb(&lab));
    if link == Link::VecboxTap {
        let tap = ifname_of(vb_link);
        common::run(&["ip", "-n", &g, "link", "set", &tap, "up"]);
        lab.quiet(&g, &tap);
    }
    let script = format!(
        "ip addr add {UA_IP}/24 dev vec0\nip link set vec0 up\n\
         ip addr add {UB_IP}/24 dev vec1\nip link set vec1 up\n\
         echo 1 > /proc/sys/net/ipv4/ip_forward\n\
         (for i in $(seq 1 40); do if ping -c 1 -W 1 {B_IP} >/dev/null 2>&1; then echo PING-OK; exit; fi; done; echo PING-FAIL) &"
    );
    let mut uml = Uml::boot(
        &lab,
        &u,
        &["vec0:transport=raw,ifname=ua,gro=1", &uml_spec],
        &script,
    );
    if link == Link::UmlTap {
        let tap = ifname_of(uml_link);
        common::run(&["ip", "-n", &u, "link", "set", &tap, "up"]);
        lab.quiet(&u, &tap);
    }
    let guest = early.unwrap_or_else(|| start_vb(&lab));
    drop(pair);
    let pinged = uml.wait_for("PING-", Duration::from_secs(45));
    let ok = pinged.as_deref().is_some_and(|l| l.contains("PING-OK"));
    let (up, down) = if ok {
        (lab.iperf3(&b, &a, B_IP, 1), lab.iperf3(&a, &b, A_IP, 1))
    } else {
        (0.0, 0.0)
    };
    uml.stop();
    let r = guest.stop();
    assert!(
        ok,
        "UML could not ping across {uml_link} <-> {vb_link}:\n{}\n{r}",
        uml.log.join("\n")
    );
    assert!(
        up > 1e6 && down > 1e6,
        "TCP across UML {uml_link} <-> vecbox {vb_link}: A->B {up} bit/s, B->A {down} bit/s\n{r}"
    );
    assert!(port_stat(&r, 0, "rx_packets") > 100, "{r}");
    assert!(port_stat(&r, 0, "tx_packets") > 100, "{r}");
    for reason in [
        "bad_ip_header",
        "bad_gre_header",
        "not_ethernet",
        "bad_key",
        "bad_l2tp_header",
        "bad_session",
        "bad_cookie",
        "runt",
        "oversize",
    ] {
        assert_eq!(port_drops(&r, 0, reason), 0, "{reason}: {r}");
    }
    r
}

fn gre(uml: &str, vb: &str) -> serde_json::Value {
    interop(
        Link::Tunnel,
        &format!("transport=gre,src={T_UML},dst={T_VB}{uml}"),
        &format!("transport=gre,src={T_VB},dst={T_UML}{vb}"),
    )
}

fn l2tp(uml: &str, vb: &str) -> serde_json::Value {
    interop(
        Link::Tunnel,
        &format!("transport=l2tpv3,src={T_UML},dst={T_VB}{uml}"),
        &format!("transport=l2tpv3,src={T_VB},dst={T_UML}{vb}"),
    )
}

/// vecbox's raw port with default options passes 64 KiB TCP frames from host B to UML
/// whole (the veth has TSO on); UML's raw port (its default gro=0, vnet headers) takes
/// them, and TCP crosses both ways.
#[test]
fn uml_raw() {
    let r = interop(
        Link::Veth,
        "transport=raw,ifname=l0",
        "transport=raw,ifname=l1",
    );
    assert_eq!(r["ports"][0]["tx_gso"], true, "{r}");
    assert!(port_stat(&r, 0, "tx_gso_frames") > 0, "{r}");
    assert_eq!(port_stat(&r, 0, "tx_gso_segmented"), 0, "{r}");
}

#[test]
fn uml_tap() {
    interop(
        Link::UmlTap,
        "transport=tap,ifname=ut",
        "transport=raw,ifname=ut",
    );
}

#[test]
fn uml_raw_on_vecbox_tap() {
    interop(
        Link::VecboxTap,
        "transport=raw,ifname=vt",
        "transport=tap,ifname=vt",
    );
}

/// UML's own hybrid transport (Debian's 6.1 kernel) transmits nothing and drops what
/// it receives (see docs/transports.md), so vecbox's hybrid is paired with UML's raw
/// transport on the tap vecbox creates.
#[test]
fn uml_raw_on_vecbox_hybrid() {
    interop(
        Link::VecboxTap,
        "transport=raw,ifname=vh",
        "transport=hybrid,ifname=vh",
    );
}

#[test]
fn uml_gre_without_key() {
    gre("", "");
}

#[test]
fn uml_gre_with_key() {
    gre(
        ",rx_key=0x1234,tx_key=0x4321",
        ",rx_key=0x4321,tx_key=0x1234",
    );
}

#[test]
fn uml_gre_with_key_and_sequence() {
    gre(
        ",rx_key=5,tx_key=6,sequence=1",
        ",rx_key=6,tx_key=5,sequence=1",
    );
}

#[test]
fn uml_l2tpv3_ip() {
    l2tp(
        ",rx_session=0x10,tx_session=0x20",
        ",rx_session=0x20,tx_session=0x10",
    );
}

#[test]
fn uml_l2tpv3_udp() {
    l2tp(
        ",udp=1,srcport=1701,dstport=1702,rx_session=3,tx_session=4",
        ",udp=1,srcport=1702,dstport=1701,rx_session=4,tx_session=3",
    );
}

#[test]
fn uml_l2tpv3_32bit_cookies() {
    l2tp(
        ",rx_session=1,tx_session=2,rx_cookie=0xcafe0001,tx_cookie=0xcafe0002",
        ",rx_session=2,tx_session=1,rx_cookie=0xcafe0002,tx_cookie=0xcafe0001",
    );
}

#[test]
fn uml_l2tpv3_64bit_cookies() {
    l2tp(
        ",udp=1,srcport=1801,dstport=1802,rx_session=1,tx_session=2,cookie64=1,rx_cookie=0x0102030405060708,tx_cookie=0x1112131415161718",
        ",udp=1,srcport=1802,dstport=1801,rx_session=2,tx_session=1,cookie64=1,rx_cookie=0x1112131415161718,tx_cookie=0x0102030405060708",
    );
}

#[test]
fn uml_l2tpv3_counter() {
    l2tp(
        ",rx_session=7,tx_session=8,counter=1",
        ",rx_session=8,tx_session=7,counter=1",
    );
}

#[test]
fn uml_bess_into_vecbox_listener() {
    let r = interop(
        Link::Bess,
        "transport=bess,dst={PATH}",
        "transport=bess,listen={PATH}",
    );
    assert_eq!(port_stat(&r, 0, "peer_connects"), 1, "{r}");
}

#[test]
fn uml_fd_socketpair() {
    interop(Link::Fd, "transport=fd,fd={FD}", "transport=fd,fd={FD}");
}
