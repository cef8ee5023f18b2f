//! vecbox ↔ vecbox over every tunnel transport: host A ─ guest 1 ═ tunnel ═ guest 2 ─
//! host B. Each guest cross-connects a raw port facing its host with a tunnel port;
//! the tunnel's outer packets cross an "underlay" veth between the guests'
//! namespaces (bess: a socket file). ping and iperf3 TCP must cross both ways, and the
//! guests' counters must show the traffic went through the tunnel without drops.

mod common;

use common::{Guest, Lab, port_drops, port_stat};
use std::time::Duration;

const A_IP: &str = "10.81.0.1";
const B_IP: &str = "10.81.0.2";

/// Underlay addresses of guest 1 and guest 2.
const U1: &str = "172.31.0.1";
const U2: &str = "172.31.0.2";
const U1_6: &str = "fd31::1";
const U2_6: &str = "fd31::2";

pub struct Pair {
    pub lab: Lab,
    pub a: String,
    pub b: String,
    pub g1: String,
    pub g2: String,
}

/// Namespaces and links; the guests are started by the caller.
pub fn pair() -> Pair {
    let mut lab = Lab::new();
    let a = lab.ns("a");
    let b = lab.ns("b");
    let g1 = lab.ns("g1");
    let g2 = lab.ns("g2");
    lab.veth(&a, "a0", &g1, "ga");
    lab.veth(&b, "b0", &g2, "gb");
    lab.veth(&g1, "u1", &g2, "u2");
    for (ns, i) in [(&g1, "ga"), (&g2, "gb")] {
        lab.quiet(ns, i);
    }
    // Room for a full Ethernet frame plus tunnel and IP headers: no fragmentation.
    for (ns, i) in [(&g1, "u1"), (&g2, "u2")] {
        common::run(&["ip", "-n", ns, "link", "set", i, "mtu", "1600"]);
    }
    lab.addr(&g1, "u1", &format!("{U1}/24"));
    lab.addr(&g2, "u2", &format!("{U2}/24"));
    common::run(&[
        "ip",
        "-n",
        &g1,
        "addr",
        "add",
        &format!("{U1_6}/64"),
        "dev",
        "u1",
        "nodad",
    ]);
    common::run(&[
        "ip",
        "-n",
        &g2,
        "addr",
        "add",
        &format!("{U2_6}/64"),
        "dev",
        "u2",
        "nodad",
    ]);
    lab.addr(&a, "a0", &format!("{A_IP}/24"));
    lab.addr(&b, "b0", &format!("{B_IP}/24"));
    Pair { lab, a, b, g1, g2 }
}

impl Pair {
    pub fn start(&self, left: &str, right: &str) -> (Guest, Guest) {
        self.start_env(left, right, &[])
    }

    pub fn start_env(&self, left: &str, right: &str, env: &[(&str, &str)]) -> (Guest, Guest) {
        let l = format!("vec1:{left}");
        let r = format!("vec0:{right}");
        let g1 = Guest::start_with(
            &self.lab,
            &self.g1,
            "xconnect",
            &["vec0:transport=raw,ifname=ga,gro=1", &l],
            env,
            None,
        );
        let g2 = Guest::start_with(
            &self.lab,
            &self.g2,
            "xconnect",
            &[&r, "vec1:transport=raw,ifname=gb,gro=1"],
            env,
            None,
        );
        (g1, g2)
    }

    /// ping and TCP streams both ways; returns a description of what failed.
    pub fn traffic(&mut self, what: &str) -> Result<(), String> {
        if !self.lab.ping(&self.a, B_IP, 3) {
            return Err(format!("ping A -> B over {what}"));
        }
        let (a, b) = (self.a.clone(), self.b.clone());
        let up = self.lab.iperf3(&b, &a, B_IP, 2);
        let down = self.lab.iperf3(&a, &b, A_IP, 2);
        if up < 20e6 || down < 20e6 {
            return Err(format!(
                "TCP over {what}: A -> B {up} bit/s, B -> A {down} bit/s"
            ));
        }
        Ok(())
    }
}

/// The tunnel ports of both reports carried the traffic, GSO frames from the raw
/// ports were segmented for them, and nothing was dropped on the tunnel.
fn check(r1: &serde_json::Value, r2: &serde_json::Value) {
    check_allowing(r1, r2, None)
}

/// As [`check`], but up to `allowed.1` drops of reason `allowed.0` are expected.
fn check_allowing(r1: &serde_json::Value, r2: &serde_json::Value, allowed: Option<(&str, u64)>) {
    for (r, tport) in [(r1, 1), (r2, 0)] {
        assert!(port_stat(r, tport, "rx_packets") > 1000, "{r}");
        assert!(port_stat(r, tport, "tx_packets") > 1000, "{r}");
        assert!(port_stat(r, tport, "tx_gso_segmented") > 0, "{r}");
        let drops = r["ports"][tport]["drops"].as_object().unwrap();
        let unexpected = drops.iter().filter(|(name, n)| {
            let n = n.as_u64().unwrap_or(0);
            n > 0 && allowed.is_none_or(|(reason, max)| *name != reason || n > max)
        });
        assert_eq!(unexpected.count(), 0, "tunnel port dropped frames: {r}");
    }
}

fn run(left: &str, right: &str) -> (serde_json::Value, serde_json::Value) {
    run_env(left, right, &[])
}

fn run_env(
    left: &str,
    right: &str,
    env: &[(&str, &str)],
) -> (serde_json::Value, serde_json::Value) {
    let mut p = pair();
    let (g1, g2) = p.start_env(left, right, env);
    let t = p.traffic(left);
    let r1 = g1.stop();
    let r2 = g2.stop();
    if let Err(e) = t {
        panic!("{e}\n{r1}\n{r2}");
    }
    check(&r1, &r2);
    (r1, r2)
}

fn gre(extra1: &str, extra2: &str) -> (String, String) {
    (
        format!("transport=gre,src={U1},dst={U2}{extra1}"),
        format!("transport=gre,src={U2},dst={U1}{extra2}"),
    )
}

#[test]
fn gre_without_key() {
    let (l, r) = gre("", "");
    run(&l, &r);
}

#[test]
fn gre_with_key_and_sequence() {
    let (l, r) = gre(
        ",rx_key=0x10,tx_key=0x20,sequence=1",
        ",rx_key=0x20,tx_key=0x10,sequence=1",
    );
    run(&l, &r);
}

#[test]
fn gre_over_ipv6_with_pinned_sequence() {
    run(
        &format!(
            "transport=gre,src={U1_6},dst={U2_6},v6=1,rx_key=7,tx_key=7,sequence=1,pin_sequence=1"
        ),
        &format!("transport=gre,src={U2_6},dst={U1_6},v6=1,rx_key=7,tx_key=7,sequence=1"),
    );
}

#[test]
fn l2tpv3_ip_with_64bit_cookies_and_counter() {
    run(
        &format!(
            "transport=l2tpv3,src={U1},dst={U2},rx_session=0x11,tx_session=0x22,cookie64=1,rx_cookie=0x0102030405060708,tx_cookie=0x1112131415161718,counter=1"
        ),
        &format!(
            "transport=l2tpv3,src={U2},dst={U1},rx_session=0x22,tx_session=0x11,cookie64=1,rx_cookie=0x1112131415161718,tx_cookie=0x0102030405060708,counter=1"
        ),
    );
}

/// UDP mode: segments leave as UDP_SEGMENT super-datagrams, arrive coalesced (UDP_GRO)
/// on this kernel, and are joined back into TCP GSO frames for the raw ports.
#[test]
fn l2tpv3_udp_with_32bit_cookies() {
    let (r1, r2) = run(
        &format!(
            "transport=l2tpv3,udp=1,src={U1},dst={U2},srcport=1701,dstport=1702,rx_session=1,tx_session=2,rx_cookie=0xabcdef01,tx_cookie=0x12345678"
        ),
        &format!(
            "transport=l2tpv3,udp=1,src={U2},dst={U1},srcport=1702,dstport=1701,rx_session=2,tx_session=1,rx_cookie=0x12345678,tx_cookie=0xabcdef01"
        ),
    );
    for (r, p) in [(&r1, 1), (&r2, 0)] {
        assert!(port_stat(r, p, "tx_udp_gso_sends") > 0, "{r}");
        assert!(port_stat(r, p, "rx_gro_coalesced") > 0, "{r}");
        assert!(port_stat(r, p, "rx_coalesced") > 0, "{r}");
        assert_eq!(port_stat(r, p, "fallbacks"), 0, "{r}");
    }
    // Joined segments leave the raw ports as whole GSO frames.
    assert!(port_stat(&r1, 0, "tx_gso_frames") > 0, "{r1}");
    assert!(port_stat(&r2, 1, "tx_gso_frames") > 0, "{r2}");
}

/// A UDP tunnel whose peer is not up yet: its socket is connected, so the peer's
/// "port unreachable" comes back as ECONNREFUSED on a later send or receive. That is
/// not a transmit error and does not pause the port: traffic flows as soon as the peer
/// starts.
#[test]
fn l2tpv3_udp_before_its_peer_is_up() {
    let mut p = pair();
    let left = format!(
        "vec1:transport=l2tpv3,udp=1,src={U1},dst={U2},srcport=1801,dstport=1802,rx_session=3,tx_session=3"
    );
    let g1 = Guest::start(
        &p.lab,
        &p.g1,
        "xconnect",
        &["vec0:transport=raw,ifname=ga", &left],
    );
    // Nobody on 1802 yet: A's ARP requests cross the tunnel and are refused.
    assert!(!p.lab.ping(&p.a, B_IP, 4), "ping with no peer guest");
    let right = format!(
        "vec0:transport=l2tpv3,udp=1,src={U2},dst={U1},srcport=1802,dstport=1801,rx_session=3,tx_session=3"
    );
    let g2 = Guest::start(
        &p.lab,
        &p.g2,
        "xconnect",
        &[&right, "vec1:transport=raw,ifname=gb"],
    );
    // A's failed ARP entry for B would hold back new requests for a while.
    common::run(&["ip", "-n", &p.a, "neigh", "flush", "all"]);
    let t = p.traffic("l2tpv3/udp once the peer is up");
    let (r1, r2) = (g1.stop(), g2.stop());
    if let Err(e) = t {
        panic!("{e}\n{r1}\n{r2}");
    }
    // The refusal surfaces on whichever call comes next: a receive (nothing read) or a
    // send (that frame counted as link_down), never as a transmit error.
    assert_eq!(port_drops(&r1, 1, "tx_error"), 0, "{r1}");
    assert!(port_stat(&r1, 1, "rx_packets") > 1000, "{r1}");
}

/// The same without UDP_SEGMENT/UDP_GRO (as on a kernel that lacks them): counted
/// fallbacks, one datagram per segment, same traffic.
#[test]
fn l2tpv3_udp_without_udp_offloads() {
    let (r1, r2) = run_env(
        &format!(
            "transport=l2tpv3,udp=1,src={U1},dst={U2},srcport=1711,dstport=1712,rx_session=1,tx_session=2"
        ),
        &format!(
            "transport=l2tpv3,udp=1,src={U2},dst={U1},srcport=1712,dstport=1711,rx_session=2,tx_session=1"
        ),
        &[("VECBOX_DISABLE", "udp_gso,udp_gro")],
    );
    for (r, p) in [(&r1, 1), (&r2, 0)] {
        assert_eq!(port_stat(r, p, "tx_udp_gso_sends"), 0, "{r}");
        assert_eq!(port_stat(r, p, "rx_gro_coalesced"), 0, "{r}");
        assert_eq!(port_stat(r, p, "fallbacks"), 2, "{r}");
    }
}

#[test]
fn l2tpv3_over_ipv6_udp() {
    run(
        &format!(
            "transport=l2tpv3,udp=1,v6=1,src={U1_6},dst={U2_6},srcport=5001,dstport=5002,rx_session=9,tx_session=9"
        ),
        &format!(
            "transport=l2tpv3,udp=1,v6=1,src={U2_6},dst={U1_6},srcport=5002,dstport=5001,rx_session=9,tx_session=9"
        ),
    );
}

#[test]
fn bess_listen_and_connect() {
    let mut p = pair();
    let sock = p.lab.dir.join("bess0.sock");
    let path = sock.display().to_string();
    let (g1, g2) = p.start(
        &format!("transport=bess,listen={path}"),
        &format!("transport=bess,dst={path}"),
    );
    let t = p.traffic("bess");
    let r2 = g2.stop();
    let r1 = g1.stop();
    if let Err(e) = t {
        panic!("{e}\n{r1}\n{r2}");
    }
    // The connector stops first: a frame or two still in flight towards it (neighbour
    // discovery, a late ACK) meets a gone peer at the listener, counted as such.
    check_allowing(&r1, &r2, Some(("peer_gone", 8)));
    assert_eq!(port_stat(&r2, 0, "peer_connects"), 1, "{r2}");
    assert!(!sock.exists(), "the listener removed its socket file");
}

/// A bess peer that sends garbage and vanishes, a stale socket file, a connector that
/// starts before its listener, and a peer that comes back: the guests keep running,
/// count each event, and traffic flows once a real peer is there.
#[test]
fn bess_survives_garbage_vanishing_and_stale_paths() {
    use socket2::{Domain, SockAddr, Socket, Type};
    let mut p = pair();
    let sock = p.lab.dir.join("bess1.sock");
    let path = sock.display().to_string();
    // A stale socket file: bound, never listened on, left behind.
    {
        let s = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
        s.bind(&SockAddr::unix(&sock).unwrap()).unwrap();
    }
    assert!(sock.exists());
    // The connecting guest starts first and waits for its listener.
    let g2 = Guest::start(
        &p.lab,
        &p.g2,
        "xconnect",
        &[
            &format!("vec0:transport=bess,dst={path}"),
            "vec1:transport=raw,ifname=gb,gro=1",
        ],
    );
    let g1 = Guest::start(
        &p.lab,
        &p.g1,
        "xconnect",
        &[
            "vec0:transport=raw,ifname=ga,gro=1",
            &format!("vec1:transport=bess,listen={path}"),
        ],
    );
    // g2 reconnects within its retry period and grabs the listener; wait for the link.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !p.lab.ping(&p.a, B_IP, 1) {
        assert!(
            std::time::Instant::now() < deadline,
            "bess link never came up"
        );
    }
    let r2 = g2.stop();
    assert_eq!(port_stat(&r2, 0, "peer_connects"), 1, "{r2}");

    // A misbehaving peer: empty, runt and oversized messages, then it disappears.
    let bad = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while bad.connect(&SockAddr::unix(&sock).unwrap()).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "listener did not come back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for m in [&[][..], &[1u8; 5][..], &vec![0xeeu8; 9000][..]] {
        bad.send(m).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(bad);
    std::thread::sleep(Duration::from_millis(300));

    // A real peer again.
    let g2 = Guest::start(
        &p.lab,
        &p.g2,
        "xconnect",
        &[
            &format!("vec0:transport=bess,dst={path}"),
            "vec1:transport=raw,ifname=gb,gro=1",
        ],
    );
    let t = p.traffic("bess after reconnect");
    let r2 = g2.stop();
    let r1 = g1.stop();
    if let Err(e) = t {
        panic!("{e}\n{r1}\n{r2}");
    }
    assert_eq!(port_stat(&r1, 1, "peer_connects"), 3, "{r1}");
    assert_eq!(port_stat(&r1, 1, "peer_losses"), 3, "{r1}");
    assert_eq!(port_drops(&r1, 1, "runt"), 2, "{r1}");
    assert_eq!(port_drops(&r1, 1, "oversize"), 1, "{r1}");
    assert!(port_stat(&r1, 1, "rx_packets") > 1000, "{r1}");
    assert!(!sock.exists());
}

/// Several GRE tunnels on one local address, to the same peer, told apart by key.
/// Guest 1 (one process) bridges host A onto tunnels with keys 1 and 2; behind guest
/// 2's address, separate processes terminate keys 1, 2 and 3 towards hosts B1, B2, B3.
/// In guest 1 the kernel filter hands each key to its own port and the unclaimed key 3
/// to the first port, which counts it as `bad_key` (once); the terminating processes,
/// being separate, each see the other keys and count them (the documented limit).
#[test]
fn gre_tunnels_share_an_address_demultiplexed_by_key() {
    demux_by_key(U1, U2, "");
}

/// The same over IPv6 (the filter reads the source address relative to the network
/// header, the key at the start of what an IPv6 raw socket delivers).
#[test]
fn gre_v6_tunnels_share_an_address_demultiplexed_by_key() {
    demux_by_key(U1_6, U2_6, ",v6=1");
}

fn demux_by_key(u1: &str, u2: &str, v6: &str) {
    let mut p = pair();
    let mut hosts = Vec::new();
    for n in 1..=3 {
        let h = p.lab.ns(&format!("b{n}"));
        p.lab.veth(&h, "h0", &p.g2, &format!("gb{n}"));
        p.lab.quiet(&p.g2, &format!("gb{n}"));
        p.lab.addr(&h, "h0", &format!("10.81.0.1{n}/24"));
        hosts.push(h);
    }
    let g1 = Guest::start(
        &p.lab,
        &p.g1,
        "bridge",
        &[
            "vec0:transport=raw,ifname=ga",
            &format!("vec1:transport=gre,src={u1},dst={u2},rx_key=1,tx_key=1{v6}"),
            &format!("vec2:transport=gre,src={u1},dst={u2},rx_key=2,tx_key=2{v6}"),
        ],
    );
    let far: Vec<Guest> = (1..=3)
        .map(|n| {
            Guest::start(
                &p.lab,
                &p.g2,
                "xconnect",
                &[
                    &format!("vec0:transport=gre,src={u2},dst={u1},rx_key={n},tx_key={n}{v6}"),
                    &format!("vec1:transport=raw,ifname=gb{n}"),
                ],
            )
        })
        .collect();
    assert!(p.lab.ping(&p.a, "10.81.0.11", 2), "A -> B1 over key 1");
    assert!(p.lab.ping(&p.a, "10.81.0.12", 2), "A -> B2 over key 2");
    // Key 3 has no port in guest 1.
    assert!(
        !p.lab.ping(&hosts[2], A_IP, 2),
        "B3's key 3 must not get through"
    );
    let r1 = g1.stop();
    let far: Vec<_> = far.into_iter().map(Guest::stop).collect();
    assert!(port_stat(&r1, 1, "rx_packets") >= 2, "{r1}");
    assert!(port_stat(&r1, 2, "rx_packets") >= 2, "{r1}");
    assert!(
        port_drops(&r1, 1, "bad_key") >= 1,
        "key 3 counted on the first port: {r1}"
    );
    assert_eq!(port_drops(&r1, 2, "bad_key"), 0, "demultiplexed: {r1}");
    // Across processes there is no demultiplexing: each sees the others' keys.
    assert!(port_drops(&far[0], 0, "bad_key") >= 1, "{}", far[0]);
}

/// A tunnel MTU below host A's (mtu=1000, as host B's): TCP (MSS from B) crosses, a
/// frame larger than the tunnel MTU is counted as oversize, and an MTU that can never
/// fit in an IP packet is refused at open with a clear message.
#[test]
fn tunnel_mtu_is_enforced() {
    let mut p = pair();
    common::run(&["ip", "-n", &p.b, "link", "set", "b0", "mtu", "1000"]);
    let (g1, g2) = p.start(
        &format!("transport=gre,src={U1},dst={U2},mtu=1000"),
        &format!("transport=gre,src={U2},dst={U1},mtu=1000"),
    );
    let (a, b) = (p.a.clone(), p.b.clone());
    let bps = p.lab.iperf3(&b, &a, B_IP, 1);
    let big = p.lab.exec(
        &a,
        &[
            "ping", "-c", "2", "-i", "0.2", "-W", "1", "-s", "1400", B_IP,
        ],
    );
    let r1 = g1.stop();
    let r2 = g2.stop();
    assert!(bps > 20e6, "TCP through mtu=1000: {bps} bit/s\n{r1}\n{r2}");
    assert!(
        !big.status.success(),
        "1428-byte ping cannot cross mtu=1000"
    );
    assert!(port_drops(&r1, 1, "oversize") >= 2, "{r1}");

    let out = p.lab.exec(
        &p.g1,
        &[
            common::VECBOX,
            "guest",
            "xconnect",
            "vec0:transport=raw,ifname=ga",
            &format!("vec1:transport=l2tpv3,src={U1},dst={U2},rx_session=1,tx_session=1,mtu=65534"),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("mtu=65534 cannot fit") && err.contains("use mtu="),
        "{err}"
    );
}

/// Send `packets` to `to` from a thread inside namespace `ns` over a raw IP socket of
/// protocol `proto` bound to `from` (protocol 17: each packet carries its own UDP
/// header).
fn inject(ns: &str, from: &str, to: std::net::SocketAddr, proto: i32, packets: &[Vec<u8>]) {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let ns = ns.to_string();
    let from = from.to_string();
    let packets = packets.to_vec();
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(proto))).unwrap();
        let local: std::net::SocketAddr = format!("{from}:0").parse().unwrap();
        s.bind(&SockAddr::from(local)).unwrap();
        for p in &packets {
            s.send_to(p, &SockAddr::from(to)).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .join()
    .unwrap();
}

fn frame() -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x77]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0x78]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

/// Malformed and foreign tunnel packets from the peer's address: each is dropped and
/// counted by reason, the guest keeps running and valid traffic still crosses.
#[test]
fn bad_tunnel_packets_are_counted_and_traffic_continues() {
    let mut p = pair();
    let (g1, g2) = p.start(
        &format!("transport=gre,src={U1},dst={U2},rx_key=5,tx_key=5,sequence=1"),
        &format!("transport=gre,src={U2},dst={U1},rx_key=5,tx_key=5,sequence=1"),
    );
    let p2 = pair();
    let (g3, g4) = p2.start(
        &format!("transport=l2tpv3,udp=1,src={U1},dst={U2},srcport=1901,dstport=1902,rx_session=7,tx_session=7,rx_cookie=0x11223344,tx_cookie=0x11223344"),
        &format!("transport=l2tpv3,udp=1,src={U2},dst={U1},srcport=1902,dstport=1901,rx_session=7,tx_session=7,rx_cookie=0x11223344,tx_cookie=0x11223344"),
    );
    let gre = |flags: [u8; 2], proto: [u8; 2], key: u32, body: &[u8]| {
        let mut v = vec![flags[0], flags[1], proto[0], proto[1]];
        v.extend_from_slice(&key.to_be_bytes());
        v.extend_from_slice(&1u32.to_be_bytes());
        v.extend_from_slice(body);
        v
    };
    let f = frame();
    let to: std::net::SocketAddr = format!("{U1}:0").parse().unwrap();
    inject(
        &p.g2,
        U2,
        to,
        47,
        &[
            gre([0x30, 0], [0x65, 0x58], 6, &f),               // wrong key
            gre([0xb0, 0], [0x65, 0x58], 5, &f),               // checksum bit
            gre([0x70, 0], [0x65, 0x58], 5, &f),               // routing bit
            gre([0x30, 0], [0x08, 0x00], 5, &f),               // IPv4 payload, not Ethernet
            gre([0x20, 0], [0x65, 0x58], 5, &f),               // no sequence bit
            vec![0x30, 0],                                     // truncated
            gre([0x30, 0], [0x65, 0x58], 5, &[]),              // no frame at all
            gre([0x30, 0], [0x65, 0x58], 5, &vec![0u8; 3000]), // oversized
        ],
    );
    let l2tp = |word: u32, session: u32, cookie: u32, body: &[u8]| {
        let mut v = word.to_be_bytes().to_vec();
        v.extend_from_slice(&session.to_be_bytes());
        v.extend_from_slice(&cookie.to_be_bytes());
        v.extend_from_slice(body);
        v
    };
    // The UDP tunnel's socket is connected to the peer's address and port: garbage
    // must come from the peer's own port (1902, where its guest is bound), so it is sent
    // over a raw UDP socket with a hand-made UDP header (checksum 0: none, IPv4). The
    // same from another port never reaches the guest (the kernel's UDP lookup).
    let udp = |from_port: u16, body: Vec<u8>| {
        let mut v = from_port.to_be_bytes().to_vec();
        v.extend_from_slice(&1901u16.to_be_bytes());
        v.extend_from_slice(&((body.len() + 8) as u16).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&body);
        v
    };
    let to: std::net::SocketAddr = format!("{U1}:0").parse().unwrap();
    inject(
        &p2.g2,
        U2,
        to,
        17,
        &[
            udp(1902, l2tp(0x0003_0000, 8, 0x1122_3344, &f)), // wrong session
            udp(1902, l2tp(0x0003_0000, 7, 0x1122_3345, &f)), // wrong cookie
            udp(1902, l2tp(0xc803_0000, 7, 0x1122_3344, &f)), // control message
            udp(1902, l2tp(0x0002_0000, 7, 0x1122_3344, &f)), // L2TP version 2
            udp(1902, vec![0, 3, 0, 0, 0, 0]),                // truncated
            udp(1902, l2tp(0x0003_0000, 7, 0x1122_3344, &[1; 5])), // runt frame
            udp(1999, l2tp(0x0003_0000, 8, 0x1122_3344, &f)), // another port: not seen
        ],
    );
    // Valid traffic still crosses both tunnels.
    let t = p.traffic("gre after garbage");
    let ok2 = p2.lab.ping(&p2.a, B_IP, 2);
    let (r1, r2, r3, r4) = (g1.stop(), g2.stop(), g3.stop(), g4.stop());
    if let Err(e) = t {
        panic!("{e}\n{r1}\n{r2}");
    }
    assert!(ok2, "ping over l2tpv3 after garbage\n{r3}\n{r4}");
    for (reason, n) in [
        ("bad_key", 1),
        ("bad_gre_header", 4),
        ("not_ethernet", 1),
        ("runt", 1),
        ("oversize", 1),
    ] {
        assert_eq!(port_drops(&r1, 1, reason), n, "{reason}: {r1}");
    }
    for (reason, n) in [
        ("bad_session", 1),
        ("bad_cookie", 1),
        ("bad_l2tp_header", 3),
        ("runt", 1),
    ] {
        assert_eq!(port_drops(&r3, 1, reason), n, "{reason}: {r3}");
    }
}
