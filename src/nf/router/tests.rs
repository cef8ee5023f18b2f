use super::config::RouterConfig;
use super::*;
use crate::nf::testing::Recorder;

const CFG: &str = "\
interfaces:
  - port: vec0
    addresses: [10.1.0.1/24, fd00:1::1/64]
  - port: vec1
    addresses: [10.2.0.1/24, fd00:2::1/64]
routes:
  - to: 10.9.0.0/16
    via: 10.2.0.254
icmp_errors_per_second: 4
neighbors:
  - {port: vec1, address: 10.2.0.254, mac: \"02:00:00:00:00:fe\"}
";

const M0: Mac = [2, 0, 0, 0, 0, 0x10];
const M1: Mac = [2, 0, 0, 0, 0, 0x11];
const HOST_A: Mac = [2, 0, 0, 0, 0, 0xa];
const HOST_B: Mac = [2, 0, 0, 0, 0, 0xb];

fn router() -> Router {
    let names = vec!["vec0".to_string(), "vec1".to_string()];
    let cfg = RouterConfig::parse("r.yaml", CFG, &names).unwrap();
    Router::with_config(&cfg, &names, &[M0, M1])
}

fn udp4(dst_mac: Mac, src: [u8; 4], dst: [u8; 4], ttl: u8) -> Vec<u8> {
    let mut v = Vec::new();
    etherparse::PacketBuilder::ethernet2(HOST_A, dst_mac)
        .ipv4(src, dst, ttl)
        .udp(1000, 2000)
        .write(&mut v, &[7; 32])
        .unwrap();
    v
}

fn arp_reply(from_mac: Mac, from_ip: [u8; 4], to_mac: Mac, to_ip: [u8; 4]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&to_mac);
    v.extend_from_slice(&from_mac);
    v.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 2]);
    v.extend_from_slice(&from_mac);
    v.extend_from_slice(&from_ip);
    v.extend_from_slice(&to_mac);
    v.extend_from_slice(&to_ip);
    v.resize(60, 0);
    v
}

#[test]
fn forwards_after_arp_with_ttl_decremented_and_checksum_valid() {
    let mut r = router();
    let mut rec = Recorder::new(2);
    let pkt = udp4(M0, [10, 1, 0, 5], [10, 2, 0, 7], 64);
    rec.feed(&mut r, 0, &[&pkt]);
    // Held while an ARP request for 10.2.0.7 goes out of vec1.
    assert_eq!(rec.sent.len(), 1);
    let (port, req) = &rec.sent[0];
    assert_eq!(*port, 1);
    assert_eq!(&req[12..14], &[8, 6]);
    assert_eq!(&req[38..42], &[10, 2, 0, 7]);
    assert_eq!(
        &req[28..32],
        &[10, 2, 0, 1],
        "asks from the port's own address"
    );
    rec.clear();
    rec.feed(
        &mut r,
        1,
        &[&arp_reply(HOST_B, [10, 2, 0, 7], M1, [10, 2, 0, 1])],
    );
    assert_eq!(rec.sent.len(), 1, "{:?}", rec.dropped);
    let (port, out) = &rec.sent[0];
    assert_eq!(*port, 1);
    assert_eq!(&out[0..6], &HOST_B);
    assert_eq!(&out[6..12], &M1);
    assert_eq!(out[22], 63);
    assert!(crate::wire::checksum::verify_ipv4_header(&out[14..34]));
    // Now resolved: the next packet goes straight out.
    rec.clear();
    rec.feed(&mut r, 0, &[&pkt]);
    assert_eq!(rec.sent.len(), 1);
    assert_eq!(r.stats.forwarded, 2);
    assert_eq!(
        rec.pool.available(),
        rec.pool.capacity(),
        "no buffer leaked"
    );
}

#[test]
fn static_neighbors_need_no_resolution() {
    let mut r = router();
    let mut rec = Recorder::new(2);
    rec.feed(&mut r, 0, &[&udp4(M0, [10, 1, 0, 5], [10, 9, 3, 3], 64)]);
    let (port, out) = &rec.sent[0];
    assert_eq!(*port, 1);
    assert_eq!(
        &out[0..6],
        &[2, 0, 0, 0, 0, 0xfe],
        "straight to the gateway's configured MAC"
    );
    for _ in 0..1000 {
        r.timer(std::time::Instant::now(), &mut rec);
    }
    assert!(
        r.neigh.lookup(1, "10.2.0.254".parse().unwrap()).is_some(),
        "never aged"
    );
}

#[test]
fn answers_arp_and_ping_for_its_addresses() {
    let mut r = router();
    let mut rec = Recorder::new(2);
    let mut req = arp_reply(HOST_A, [10, 1, 0, 5], [0xff; 6], [10, 1, 0, 1]);
    req[21] = 1; // request
    req[32..38].fill(0);
    rec.feed(&mut r, 0, &[&req]);
    let (port, rep) = &rec.sent[0];
    assert_eq!((*port, rep[21]), (0, 2));
    assert_eq!(&rep[22..28], &M0);
    assert_eq!(&rep[0..6], &HOST_A);
    rec.clear();
    let mut ping = Vec::new();
    etherparse::PacketBuilder::ethernet2(HOST_A, M0)
        .ipv4([10, 1, 0, 5], [10, 2, 0, 1], 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut ping, &[1; 16])
        .unwrap();
    rec.feed(&mut r, 0, &[&ping]);
    let (port, rep) = &rec.sent[0];
    assert_eq!(*port, 0);
    let p = etherparse::SlicedPacket::from_ethernet(rep).unwrap();
    let Some(etherparse::NetSlice::Ipv4(v4)) = &p.net else {
        panic!()
    };
    assert_eq!(v4.header().source(), [10, 2, 0, 1]);
    assert_eq!(v4.header().destination(), [10, 1, 0, 5]);
    assert!(crate::wire::checksum::verify_ipv4_header(&rep[14..34]));
    let Some(etherparse::TransportSlice::Icmpv4(ic)) = &p.transport else {
        panic!()
    };
    assert!(matches!(
        ic.icmp_type(),
        etherparse::Icmpv4Type::EchoReply(_)
    ));
    let sum = crate::wire::checksum::sum(&rep[34..], 0);
    assert_eq!(crate::wire::checksum::fold(sum), 0xffff, "ICMP checksum");
}

#[test]
fn ttl_expiry_and_no_route_send_rate_limited_icmp_errors() {
    let mut r = router();
    let mut rec = Recorder::new(2);
    rec.feed(&mut r, 0, &[&udp4(M0, [10, 1, 0, 5], [10, 2, 0, 7], 1)]);
    let (port, err) = &rec.sent[0];
    assert_eq!(*port, 0);
    assert_eq!(&err[0..6], &HOST_A);
    assert_eq!((err[34], err[35]), (11, 0), "time exceeded");
    assert_eq!(&err[26..30], &[10, 1, 0, 1]);
    assert_eq!(rec.dropped[0].1, DropReason::TtlExceeded);
    rec.clear();
    for _ in 0..10 {
        rec.feed(&mut r, 0, &[&udp4(M0, [10, 1, 0, 5], [192, 0, 2, 1], 64)]);
    }
    assert_eq!(rec.sent.len(), 3, "rate limit: 4 per second, one used");
    assert!(rec.sent.iter().all(|(_, e)| (e[34], e[35]) == (3, 0)));
    assert_eq!(r.stats.icmp_rate_limited, 7);
    assert_eq!(rec.dropped.len(), 10);
    assert_eq!(rec.pool.available(), rec.pool.capacity());
}

#[test]
fn unresolved_neighbours_fail_with_host_unreachable() {
    let mut r = router();
    let mut rec = Recorder::new(2);
    for _ in 0..6 {
        rec.feed(&mut r, 0, &[&udp4(M0, [10, 1, 0, 5], [10, 2, 0, 99], 64)]);
    }
    assert_eq!(r.neigh.held(), neigh::HOLD);
    assert_eq!(r.stats.hold_full, 2);
    rec.clear();
    for _ in 0..20 {
        r.timer(std::time::Instant::now(), &mut rec);
    }
    let arps = rec.sent.iter().filter(|(_, f)| f[12..14] == [8, 6]).count();
    let unreach = rec
        .sent
        .iter()
        .filter(|(_, f)| f[12..14] == [8, 0] && (f[34], f[35]) == (3, 1))
        .count();
    assert_eq!(arps, 2, "two more requests after the first");
    assert_eq!(unreach, neigh::HOLD);
    assert_eq!(r.neigh.held(), 0);
    assert_eq!(rec.pool.available(), rec.pool.capacity());
}

#[test]
fn ipv6_neighbor_discovery_and_forwarding() {
    let mut r = router();
    let mut rec = Recorder::new(2);
    let a: Ipv6Addr = "fd00:1::5".parse().unwrap();
    let me: Ipv6Addr = "fd00:1::1".parse().unwrap();
    // A host solicits our address.
    let mut ns = vec![0u8; 86];
    build::neighbor_solicit(&mut ns, HOST_A, a, me);
    rec.feed(&mut r, 0, &[&ns]);
    let (port, na) = &rec.sent[0];
    assert_eq!(*port, 0);
    assert_eq!(na[54], 136);
    assert_eq!(&na[62..78], &me.octets());
    assert_eq!(&na[0..6], &HOST_A);
    let s = crate::wire::checksum::sum(
        &na[54..86],
        crate::wire::checksum::pseudo_v6(me.octets(), a.octets(), 58, 32),
    );
    assert_eq!(crate::wire::checksum::fold(s), 0xffff);
    rec.clear();
    // Forward a packet to fd00:2::7: solicitation out of vec1, then delivery.
    let mut pkt = Vec::new();
    etherparse::PacketBuilder::ethernet2(HOST_A, M0)
        .ipv6(
            a.octets(),
            "fd00:2::7".parse::<Ipv6Addr>().unwrap().octets(),
            64,
        )
        .udp(1, 2)
        .write(&mut pkt, &[0; 10])
        .unwrap();
    rec.feed(&mut r, 0, &[&pkt]);
    let (port, sol) = &rec.sent[0];
    assert_eq!((*port, sol[54]), (1, 135));
    assert_eq!(&sol[0..3], &[0x33, 0x33, 0xff]);
    rec.clear();
    let b: Ipv6Addr = "fd00:2::7".parse().unwrap();
    let mut na = vec![0u8; 86];
    build::neighbor_advert(&mut na, HOST_B, M1, b, "fd00:2::1".parse().unwrap(), true);
    rec.feed(&mut r, 1, &[&na]);
    let (port, fwd) = &rec.sent[0];
    assert_eq!(*port, 1);
    assert_eq!(&fwd[0..6], &HOST_B);
    assert_eq!(fwd[21], 63, "hop limit decremented");
}

#[test]
fn malformed_frames_are_counted_not_panicking() {
    let mut r = router();
    let mut rec = Recorder::new(2);
    let good = udp4(M0, [10, 1, 0, 5], [10, 2, 0, 7], 64);
    for cut in [10, 14, 20, 33] {
        rec.feed(&mut r, 0, &[&good[..cut]]);
    }
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x44;
    rec.feed(&mut r, 0, &[&bad_ihl]);
    let mut other = good.clone();
    other[0..6].copy_from_slice(&[2, 9, 9, 9, 9, 9]);
    rec.feed(&mut r, 0, &[&other]);
    assert!(rec.sent.is_empty());
    assert_eq!(rec.dropped.len(), 6);
    assert_eq!(r.stats.not_for_us, 1);
    assert_eq!(rec.pool.available(), rec.pool.capacity());
}

#[test]
fn config_errors_have_positions_and_hints() {
    let names = vec!["vec0".to_string(), "vec1".to_string()];
    for (text, needle) in [
        (
            "interfaces:\n  - port: vec0\n    adresses: [10.0.0.1/24]\n",
            "r.yaml:3:",
        ),
        (
            "interfaces:\n  - port: vec0\n    addresses: [10.0.0.1/33]\n",
            "prefix length",
        ),
        ("interfaces:\n  - port: vec3\n    addresses: []\n", "vec3"),
        (
            "interfaces: []\nroutes:\n  - to: 10.0.0.0/8\n    via: 10.1.1.1\n",
            "not on any interface",
        ),
        (
            "interfaces: []\nroutes:\n  - to: 10.0.0.0/8\n",
            "needs `via",
        ),
    ] {
        let e = RouterConfig::parse("r.yaml", text, &names)
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{text}: {e}");
    }
}

proptest::proptest! {
    #[test]
    fn random_frames_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
                                 kind in 0u8..4) {
        let mut r = router();
        let mut rec = Recorder::new(2);
        let mut f = M0.to_vec();
        f.extend_from_slice(&HOST_A);
        f.extend_from_slice(match kind { 0 => &[8, 0], 1 => &[0x86, 0xdd], 2 => &[8, 6], _ => &[0x88, 0x47] });
        f.extend_from_slice(&bytes);
        rec.feed(&mut r, 0, &[&f]);
        r.timer(std::time::Instant::now(), &mut rec);
    }
}

proptest::proptest! {
    #[test]
    fn config_parser_never_panics(s in "[a-z0-9:/. \\[\\]{},\\n-]{0,160}") {
        let names = vec!["vec0".to_string()];
        let _ = RouterConfig::parse("x.yaml", &s, &names);
    }
}

/// Value of the first series named `name` whose labels include `label` (counters and
/// gauges only: one value slot each).
fn series(snap: &crate::metrics::sink::Snapshot, name: &str, label: Option<(&str, &str)>) -> f64 {
    let i = snap
        .series
        .iter()
        .position(|s| {
            s.name == name
                && label.is_none_or(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
        })
        .unwrap_or_else(|| panic!("no series {name} {label:?}"));
    match snap.series[i].kind {
        crate::metrics::sink::Kind::Gauge => f64::from_bits(snap.values[i]),
        _ => snap.values[i] as f64,
    }
}

#[test]
fn console_files_and_metrics_show_tables() {
    let mut r = router();
    let mut rec = Recorder::new(2);
    rec.feed(&mut r, 0, &[&udp4(M0, [10, 1, 0, 5], [10, 2, 0, 7], 64)]);
    let routes = r.proc_file("routes").unwrap();
    assert!(
        routes.contains("10.9.0.0/16 dev vec1 via 10.2.0.254\n"),
        "{routes}"
    );
    assert!(routes.contains("10.1.0.0/24 dev vec0\n"), "{routes}");
    assert!(routes.contains("fd00:2::/64 dev vec1\n"), "{routes}");
    // Most specific first.
    assert!(
        routes.find("/24").unwrap() < routes.find("/16").unwrap(),
        "{routes}"
    );
    let neigh = r.proc_file("neigh").unwrap();
    assert!(
        neigh.contains("10.2.0.254 dev vec1 lladdr 02:00:00:00:00:fe PERMANENT 0"),
        "{neigh}"
    );
    assert!(
        neigh.contains("10.2.0.7 dev vec1 lladdr - INCOMPLETE"),
        "{neigh}"
    );
    assert!(r.proc_file("fdb").is_none());
    assert_eq!(r.proc_files(), &["routes", "neigh"]);

    let mut snap = crate::metrics::sink::Snapshot::default();
    snap.begin();
    r.metrics(&mut snap);
    snap.end();
    assert_eq!(
        series(&snap, "vecbox_router_routes", None),
        r.routes.len() as f64
    );
    assert_eq!(series(&snap, "vecbox_router_neighbours", None), 2.0);
    assert_eq!(series(&snap, "vecbox_router_held_frames", None), 1.0);
    assert_eq!(
        series(
            &snap,
            "vecbox_router_events_total",
            Some(("event", "arp_requests"))
        ),
        1.0
    );
}

/// A fresh file under the system temp directory (removed by the caller).
fn temp_file(tag: &str, text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("vecbox-{tag}-{}.yaml", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn interfaces_changed_at_run_time_reread_the_configuration() {
    use crate::nf::testing::specs;
    let path = temp_file("router-reconf", CFG);
    let opts = [("config".to_string(), path.display().to_string())];
    let mut r = Router::new(&specs(&[0, 1]), &opts).unwrap();
    let (m0, m1) = (r.mac(0), r.mac(1));
    let mut rec = Recorder::new(2);
    // 10.2.0.7 resolved on vec1, 10.2.0.8 pending with one frame held.
    rec.feed(&mut r, 0, &[&udp4(m0, [10, 1, 0, 5], [10, 2, 0, 7], 64)]);
    rec.feed(
        &mut r,
        1,
        &[&arp_reply(HOST_B, [10, 2, 0, 7], m1, [10, 2, 0, 1])],
    );
    rec.feed(&mut r, 0, &[&udp4(m0, [10, 1, 0, 5], [10, 2, 0, 8], 64)]);
    assert_eq!(r.neigh.held(), 1);
    let forwarded = r.stats.forwarded;

    // Add vec2: the file now gives it an address.
    let with_vec2 =
        format!("{CFG}  - {{port: vec2, address: 10.3.0.9, mac: \"02:00:00:00:00:39\"}}\n")
            .replace(
                "routes:",
                "  - port: vec2\n    addresses: [10.3.0.1/24]\nroutes:",
            );
    std::fs::write(&path, &with_vec2).unwrap();
    rec.clear();
    r.set_ports(&specs(&[0, 1, 2]), &mut rec).unwrap();
    assert_eq!(
        rec.dropped.iter().map(|d| d.1).collect::<Vec<_>>(),
        vec![DropReason::NoNeighbor],
        "the held frame is released"
    );
    assert_eq!(r.neigh.held(), 0);
    assert_eq!(
        (r.mac(0), r.mac(1)),
        (m0, m1),
        "surviving ports keep their MAC"
    );
    assert_eq!(r.stats.forwarded, forwarded, "counters carry on");
    let neigh = r.proc_file("neigh").unwrap();
    assert!(
        neigh.contains("10.2.0.7 dev vec1 lladdr 02:00:00:00:00:0b"),
        "{neigh}"
    );
    assert!(!neigh.contains("10.2.0.8"), "{neigh}");
    assert!(neigh.contains("10.3.0.9 dev vec2"), "{neigh}");
    assert!(
        r.proc_file("routes")
            .unwrap()
            .contains("10.3.0.0/24 dev vec2\n")
    );
    let mut rec = Recorder::new(3);
    rec.feed(&mut r, 0, &[&udp4(m0, [10, 1, 0, 5], [10, 3, 0, 9], 64)]);
    assert_eq!(rec.sent.len(), 1, "{:?}", rec.dropped);
    assert_eq!(rec.sent[0].0, 2, "routed out of the new port");
    assert_eq!(&rec.sent[0].1[0..6], &[2, 0, 0, 0, 0, 0x39]);

    // Remove vec0 while the file still names it: accepted, vec1 is now port 0.
    rec.clear();
    r.set_ports(&specs(&[1, 2]), &mut rec).unwrap();
    assert_eq!(r.mac(0), m1);
    let neigh = r.proc_file("neigh").unwrap();
    assert!(neigh.contains("10.2.0.7 dev vec1"), "{neigh}");
    let routes = r.proc_file("routes").unwrap();
    assert!(!routes.contains("10.1.0.0/24"), "{routes}");
    let mut rec = Recorder::new(2);
    rec.feed(
        &mut r,
        1,
        &[&udp4([2, 0, 0, 0, 0, 2], [10, 3, 0, 9], [10, 2, 0, 7], 64)],
    );
    assert_eq!(rec.sent.len(), 1, "{:?}", rec.dropped);
    assert_eq!((rec.sent[0].0, &rec.sent[0].1[0..6]), (0, &HOST_B[..]));

    // A file that no longer loads, or names a port that never existed: refused.
    std::fs::write(&path, "interfaces: [oops").unwrap();
    let e = r
        .set_ports(&specs(&[1, 2, 3]), &mut rec)
        .unwrap_err()
        .to_string();
    assert!(e.contains("re-read because the interfaces change"), "{e}");
    std::fs::write(&path, CFG.replace("vec0", "vec7")).unwrap();
    let e = r
        .set_ports(&specs(&[1, 2]), &mut rec)
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"vec7\" is not an interface"), "{e}");
    assert_eq!(r.mac(0), m1, "a refused change leaves the router as it was");
    std::fs::remove_file(&path).unwrap();

    // Built without a file: interfaces are fixed.
    let e = router().set_ports(&specs(&[0]), &mut rec).unwrap_err();
    assert!(matches!(e, NfError::FixedPorts { .. }), "{e}");
}
