mod lookup;
mod table;

use proptest::prelude::*;

use super::rules::{self, Packet, ct};
use super::*;
use crate::nf::testing::Recorder;

fn names() -> Vec<String> {
    vec!["vec0".into(), "vec1".into()]
}

const RULES: &str = "\
# client side is vec0
policy drop
accept ct established,related
accept in vec0 proto tcp dport 80 ct new log
reject in vec0 proto tcp dport 81
reject in vec0 proto udp dport 53
accept in vec0 proto icmp icmp-type echo-request
accept in vec0 ip6 proto icmpv6 icmp-type echo-request
";

fn fw() -> Firewall {
    let set = rules::parse("fw.rules", RULES, &names()).unwrap();
    Firewall::with_rules(set, 2, false, 16, 300)
}

const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

fn tcp(from_a: bool, sport: u16, dport: u16, syn: bool, ack: bool) -> Vec<u8> {
    let (sm, dm, s, d) = if from_a {
        (A, B, [10, 0, 0, 1], [10, 0, 0, 2])
    } else {
        (B, A, [10, 0, 0, 2], [10, 0, 0, 1])
    };
    let mut b = etherparse::PacketBuilder::ethernet2(sm, dm)
        .ipv4(s, d, 64)
        .tcp(sport, dport, 1000, 100);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(5000);
    }
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v
}

fn udp(from_a: bool, sport: u16, dport: u16) -> Vec<u8> {
    let (sm, dm, s, d) = if from_a {
        (A, B, [10, 0, 0, 1], [10, 0, 0, 2])
    } else {
        (B, A, [10, 0, 0, 2], [10, 0, 0, 1])
    };
    let mut v = Vec::new();
    etherparse::PacketBuilder::ethernet2(sm, dm)
        .ipv4(s, d, 64)
        .udp(sport, dport)
        .write(&mut v, &[1; 12])
        .unwrap();
    v
}

#[test]
fn stateful_tcp_allowed_flow_and_unsolicited_inbound() {
    let mut f = fw();
    let mut r = Recorder::new(2);
    r.feed(&mut f, 0, &[&tcp(true, 4000, 80, true, false)]);
    r.feed(&mut f, 1, &[&tcp(false, 80, 4000, true, true)]);
    r.feed(&mut f, 0, &[&tcp(true, 4000, 80, false, true)]);
    r.feed(&mut f, 1, &[&tcp(false, 80, 4000, false, true)]);
    assert_eq!(
        r.sent.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        vec![1, 0, 1, 0]
    );
    assert_eq!(f.connections(), 1);
    // Unsolicited from the server side: new SYN and a stray ACK are dropped.
    r.clear();
    r.feed(
        &mut f,
        1,
        &[
            &tcp(false, 5555, 22, true, false),
            &tcp(false, 5555, 4000, false, true),
        ],
    );
    assert!(r.sent.is_empty());
    assert_eq!(r.dropped.len(), 2);
    assert_eq!(f.stats.invalid, 1, "the stray ACK is invalid");
    let c = f.rule_counters();
    assert_eq!(
        c[0].1, 3,
        "ct established,related matched the three later packets"
    );
    assert_eq!(c[1].1, 1, "the SYN matched the port-80 rule");
    assert_eq!(c.last().unwrap().1, 2, "policy drop counted twice");
    assert_eq!(r.pool.available(), r.pool.capacity());
}

#[test]
fn reject_sends_rst_and_port_unreachable() {
    let mut f = fw();
    let mut r = Recorder::new(2);
    r.feed(&mut f, 0, &[&tcp(true, 4000, 81, true, false)]);
    let (port, rst) = r.sent[0].clone();
    assert_eq!(port, 0, "back to the sender");
    let p = etherparse::SlicedPacket::from_ethernet(&rst).unwrap();
    let Some(etherparse::TransportSlice::Tcp(t)) = &p.transport else {
        panic!()
    };
    assert!(t.rst() && t.ack());
    assert_eq!((t.source_port(), t.destination_port()), (81, 4000));
    assert_eq!(t.acknowledgment_number(), 1001);
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(
        t.to_header()
            .calc_checksum_ipv4_raw(ip.header().source(), ip.header().destination(), &[])
            .unwrap(),
        t.checksum(),
        "TCP checksum"
    );
    r.clear();
    r.feed(&mut f, 0, &[&udp(true, 999, 53)]);
    let (port, e) = &r.sent[0];
    assert_eq!(*port, 0);
    assert_eq!((e[34], e[35]), (3, 3));
    assert_eq!(&e[26..30], &[10, 0, 0, 2], "from the destination");
    assert_eq!(f.stats.rejected, 2);
}

#[test]
fn udp_replies_pass_only_after_an_accepted_request() {
    let set = rules::parse(
        "x",
        "accept ct established\naccept in vec0 proto udp dport 5000\n",
        &names(),
    )
    .unwrap();
    let mut f = Firewall::with_rules(set, 2, false, 16, 300);
    let mut r = Recorder::new(2);
    r.feed(&mut f, 1, &[&udp(false, 5000, 7000)]);
    assert!(r.sent.is_empty(), "no request yet");
    r.feed(&mut f, 0, &[&udp(true, 7000, 5000)]);
    r.feed(&mut f, 1, &[&udp(false, 5000, 7000)]);
    assert_eq!(r.sent.len(), 2);
}

#[test]
fn conntrack_table_is_bounded_and_evictions_counted() {
    let set = rules::parse("x", "policy accept\n", &names()).unwrap();
    let mut f = Firewall::with_rules(set, 2, false, 4, 300);
    let mut r = Recorder::new(2);
    for port in 1000..1010 {
        r.feed(&mut f, 0, &[&udp(true, port, 9)]);
    }
    assert_eq!(f.connections(), 4);
    assert_eq!(f.ct.evictions, 6);
    // Expiry: 30 s for unreplied UDP.
    for _ in 0..31 * 4 {
        f.timer(std::time::Instant::now(), &mut r);
    }
    assert_eq!(f.connections(), 0);
}

#[test]
fn rule_errors_have_positions_and_hints() {
    for (text, needle) in [
        (
            "acept proto tcp\n",
            "x:1:1: expected accept, drop or reject, found `acept`; did you mean `accept`?",
        ),
        ("accept prto tcp\n", "x:1:8: unknown word `prto`"),
        ("accept proto tpc\n", "did you mean `tcp`?"),
        ("accept in vec7\n", "no port `vec7`"),
        ("\n accept proto tcp dport 9-1\n", "x:2:25:"),
        ("accept dport 80\n", "need `proto tcp`"),
        ("accept ct estab\n", "unknown state"),
        (
            "accept src 10.0.0.0/8 dst fd00::/8\n",
            "mixes IPv4 and IPv6",
        ),
        ("policy drop\npolicy accept\n", "twice"),
        ("accept proto icmp icmp-type 8 ip6\n", "icmpv6"),
    ] {
        let e = rules::parse("x", text, &names()).unwrap_err().to_string();
        assert!(e.contains(needle), "{text:?}: {e}");
    }
}

fn arb_rule() -> impl Strategy<Value = String> {
    let action = prop_oneof![Just("accept"), Just("drop"), Just("reject")];
    let proto = prop_oneof![Just(""), Just("proto tcp"), Just("proto udp")];
    let net = prop_oneof![
        Just(String::new()),
        (0u8..4, prop_oneof![Just(8u8), Just(16), Just(24), Just(32)])
            .prop_map(|(x, l)| format!("10.{x}.0.0/{l}")),
    ];
    (
        action,
        proto,
        net.clone(),
        net,
        0u16..6,
        0u8..3,
        any::<bool>(),
    )
        .prop_map(|(a, p, s, d, port, ctsel, wide)| {
            let mut r = a.to_string();
            if !p.is_empty() {
                r += &format!(" {p}");
                if port > 0 {
                    if wide {
                        r += &format!(" dport {}-{}", port * 10, port * 10 + 100);
                    } else {
                        r += &format!(" dport {port}");
                    }
                }
            }
            if !s.is_empty() {
                r += &format!(" src {s}");
            }
            if !d.is_empty() {
                r += &format!(" dst {d}");
            }
            r += match ctsel {
                1 => " ct new",
                2 => " ct established",
                _ => "",
            };
            r
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The index gives exactly the first match of a linear scan.
    #[test]
    fn classifier_agrees_with_linear_scan(
        rules_text in prop::collection::vec(arb_rule(), 0..40),
        pkts in prop::collection::vec((0u8..4, 0u8..4, 0u16..120, any::<bool>(), 0u8..3), 1..20),
    ) {
        let set = rules::parse("x", &rules_text.join("\n"), &names()).unwrap();
        let c = classify::Classifier::new(set.rules);
        for (s, d, port, tcp, st) in pkts {
            let p = Packet {
                in_port: 0,
                out_port: Some(1),
                v6: false,
                src: u128::from(u32::from_be_bytes([10, s, 1, 1])),
                dst: u128::from(u32::from_be_bytes([10, d, 2, 2])),
                proto: if tcp { 6 } else { 17 },
                ports: Some((port, port)),
                icmp_type: None,
                ct: [ct::NEW, ct::ESTABLISHED, ct::INVALID][st as usize],
            };
            prop_assert_eq!(c.lookup(&p), c.scan(&p));
        }
    }

    #[test]
    fn random_frames_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), kind in 0u8..3) {
        let mut f = fw();
        let mut r = Recorder::new(2);
        let mut fr = B.to_vec();
        fr.extend_from_slice(&A);
        fr.extend_from_slice(match kind { 0 => &[8, 0], 1 => &[0x86, 0xdd], _ => &[8, 6] });
        fr.extend_from_slice(&bytes);
        r.feed(&mut f, 0, &[&fr]);
        r.feed(&mut f, 1, &[&fr]);
    }

    #[test]
    fn rule_parser_never_panics(s in "[a-z0-9 ./,:#-]{0,80}") {
        let _ = rules::parse("x", &s, &names());
    }
}

#[test]
fn console_files_and_metrics_show_rules_and_connections() {
    let mut f = fw();
    let mut r = Recorder::new(2);
    let syn = tcp(true, 40000, 80, true, false);
    r.feed(&mut f, 0, &[&syn]);
    r.feed(&mut f, 0, &[&udp(true, 5000, 9999)]);
    let rules = f.proc_file("rules").unwrap();
    let want = format!(
        "4 1 {} accept in vec0 proto tcp dport 80 ct new log\n",
        syn.len()
    );
    assert!(rules.contains(&want), "{rules}");
    assert!(rules.contains("\n- 1 "), "policy hit once: {rules}");
    assert!(rules.ends_with("policy drop\n"), "{rules}");
    let conns = f.proc_file("conntrack").unwrap();
    assert_eq!(conns.lines().count(), 1, "{conns}");
    assert!(
        conns.starts_with("tcp ")
            && conns.contains("SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80"),
        "{conns}"
    );
    assert!(f.proc_file("fdb").is_none());
    assert_eq!(f.proc_files(), &["rules", "conntrack"]);

    let mut snap = crate::metrics::sink::Snapshot::default();
    snap.begin();
    f.metrics(&mut snap);
    snap.end();
    let value = |name: &str, label: Option<(&str, &str)>| -> u64 {
        let i = snap
            .series
            .iter()
            .position(|s| {
                s.name == name
                    && label.is_none_or(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
            })
            .unwrap_or_else(|| panic!("no {name} {label:?}"));
        snap.values[i]
    };
    let l4 = Some(("rule", "L4"));
    assert_eq!(value("vecbox_firewall_rule_packets_total", l4), 1);
    assert_eq!(
        value("vecbox_firewall_rule_bytes_total", l4),
        syn.len() as u64
    );
    assert_eq!(
        value(
            "vecbox_firewall_rule_packets_total",
            Some(("rule", "policy"))
        ),
        1
    );
    assert_eq!(
        value(
            "vecbox_firewall_packets_total",
            Some(("verdict", "dropped"))
        ),
        1
    );
    assert_eq!(f64::from_bits(value("vecbox_conntrack_entries", None)), 1.0);
    assert_eq!(value("vecbox_conntrack_created_total", None), 1);
}

#[test]
fn interfaces_changed_at_run_time_reread_the_rules() {
    use crate::nf::testing::specs;
    let path = std::env::temp_dir().join(format!("vbt{}fwreconf.rules", std::process::id()));
    let text = "policy drop\naccept ct established,related\naccept in vec0 proto tcp dport 80\naccept in vec2 proto udp\n";
    std::fs::write(&path, text).unwrap();
    let opts = |mode: &str| {
        vec![
            ("rules".to_string(), path.display().to_string()),
            ("mode".to_string(), mode.to_string()),
        ]
    };
    let mut f = Firewall::new(&specs(&[0, 1, 2]), &opts("bridge")).unwrap();
    let mut r = Recorder::new(3);
    r.feed(&mut f, 0, &[&tcp(true, 40000, 80, true, false)]);
    assert_eq!(r.sent.len(), 2, "accepted and flooded");
    assert_eq!(f.connections(), 1);

    // vec1 goes: the same rules, re-resolved; vec2 is now port 1.
    let mut r = Recorder::new(2);
    f.set_ports(&specs(&[0, 2]), &mut r).unwrap();
    assert_eq!(f.connections(), 1, "connections stay tracked");
    assert_eq!(
        f.rule_counters()[1].1,
        1,
        "unchanged rules keep their counters"
    );
    r.feed(&mut f, 1, &[&udp(false, 5000, 53)]);
    assert_eq!(r.sent.iter().map(|s| s.0).collect::<Vec<_>>(), vec![0]);
    assert_eq!(
        f.rule_counters()[2].1,
        1,
        "`in vec2` matches vec2 at its new place"
    );
    r.clear();
    r.feed(&mut f, 0, &[&udp(true, 5000, 53)]);
    assert_eq!(r.dropped.len(), 1, "policy drop for UDP in vec0");

    // New rules with a new port: counters of changed rules restart, the policy's not.
    std::fs::write(&path, format!("{text}accept in vec3\n")).unwrap();
    f.set_ports(&specs(&[0, 2, 3]), &mut r).unwrap();
    let c = f.rule_counters();
    assert_eq!(c.len(), 5, "{c:?}");
    assert!(c[..4].iter().all(|x| x.1 == 0), "{c:?}");
    assert_eq!(c[4], (0, 1, c[4].2), "{c:?}");

    // A rule naming a port that never existed, or a third port in xconnect mode: refused.
    std::fs::write(&path, "accept in vec9\n").unwrap();
    let e = f
        .set_ports(&specs(&[0, 2]), &mut r)
        .unwrap_err()
        .to_string();
    assert!(e.contains("vec9") && e.contains("re-read"), "{e}");
    assert_eq!(f.ports, 3, "a refused change leaves the firewall as it was");
    std::fs::write(&path, text).unwrap();
    let mut x = Firewall::new(&specs(&[0, 2]), &opts("xconnect")).unwrap();
    let e = x
        .set_ports(&specs(&[0, 1, 2]), &mut r)
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs exactly 2 ports"), "{e}");
    x.set_ports(&specs(&[0]), &mut r).unwrap();
    std::fs::remove_file(&path).unwrap();
    let e = fw().set_ports(&specs(&[0]), &mut r).unwrap_err();
    assert!(matches!(e, NfError::FixedPorts { .. }), "{e}");
}

/// Replies use the ports the other way round: flow `f` from A is `P[f].0 -> P[f].1`.
const FLOW_PORTS: [(u16, u16); 4] = [(40000, 53), (40001, 80), (53, 53), (40002, 20)];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Verdicts remembered by connections give exactly what classifying every packet
    /// (by the linear scan) gives: same frames out, same per-rule counters.
    #[test]
    fn remembered_verdicts_equal_classifying_every_packet(
        rules_text in prop::collection::vec(arb_rule(), 0..30),
        frames in prop::collection::vec((any::<bool>(), 0usize..4, 0u8..4), 1..60),
    ) {
        let set = rules::parse("x", &rules_text.join("\n"), &names()).unwrap();
        let mut a = Firewall::with_rules(set.clone(), 2, false, 64, 300);
        let mut b = Firewall::with_rules(set, 2, false, 64, 300);
        b.uncached = true;
        let (mut ra, mut rb) = (Recorder::new(2), Recorder::new(2));
        for (from_a, f, kind) in frames {
            let (p, q) = FLOW_PORTS[f];
            let (sp, dp) = if from_a { (p, q) } else { (q, p) };
            let fr = match kind {
                0 => udp(from_a, sp, dp),
                1 => tcp(from_a, sp, dp, true, false),
                2 => tcp(from_a, sp, dp, true, true),
                _ => tcp(from_a, sp, dp, false, true),
            };
            let port = usize::from(!from_a);
            ra.feed(&mut a, port, &[&fr]);
            rb.feed(&mut b, port, &[&fr]);
            prop_assert_eq!(&ra.sent, &rb.sent);
            prop_assert_eq!(ra.dropped.len(), rb.dropped.len());
        }
        prop_assert_eq!(a.rule_counters(), b.rule_counters());
        prop_assert_eq!(b.stats.cached, 0);
    }
}

/// Poll the timer until the trees built in the background are in use.
fn wait_for_trees(f: &mut Firewall, r: &mut Recorder) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !f.rules_indexed() {
        assert!(std::time::Instant::now() < deadline, "trees never adopted");
        std::thread::sleep(std::time::Duration::from_millis(5));
        f.timer(std::time::Instant::now(), r);
    }
}

#[test]
fn established_flows_reuse_their_verdict_until_the_rules_change() {
    use crate::nf::testing::specs;
    let path = std::env::temp_dir().join(format!("vbt{}fwcache.rules", std::process::id()));
    std::fs::write(&path, "policy drop\naccept in vec0 proto udp dport 53\n").unwrap();
    let opts = vec![("rules".to_string(), path.display().to_string())];
    let mut f = Firewall::new(&specs(&[0, 1]), &opts).unwrap();
    let mut r = Recorder::new(2);
    for _ in 0..5 {
        r.feed(&mut f, 0, &[&udp(true, 5000, 53)]);
    }
    assert_eq!(r.sent.len(), 5);
    assert_eq!(
        f.stats.cached, 4,
        "the first packet classified, the rest remembered"
    );
    assert_eq!(f.rule_counters()[0].1, 5);

    // New rules: the remembered `accept` must not survive them.
    std::fs::write(
        &path,
        "policy drop\ndrop in vec0 proto udp dport 53\naccept in vec0 proto udp\n",
    )
    .unwrap();
    f.set_ports(&specs(&[0, 1]), &mut r).unwrap();
    r.clear();
    r.feed(&mut f, 0, &[&udp(true, 5000, 53), &udp(true, 5000, 53)]);
    assert!(r.sent.is_empty(), "dropped by the new first rule");
    assert_eq!(f.stats.cached, 5, "classified again once, then remembered");
    r.feed(&mut f, 0, &[&udp(true, 5001, 54)]);
    assert_eq!(r.sent.len(), 1, "another flow still passes by rule 2");
    wait_for_trees(&mut f, &mut r);
    r.clear();
    r.feed(&mut f, 0, &[&udp(true, 5000, 53), &udp(true, 5002, 54)]);
    assert_eq!(r.sent.len(), 1);
    let c = f.rule_counters();
    assert_eq!((c[0].1, c[1].1), (3, 2), "{c:?}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn conntrack_max_is_checked() {
    use crate::nf::testing::specs;
    let path = std::env::temp_dir().join(format!("vbt{}fwmax.rules", std::process::id()));
    std::fs::write(&path, "policy accept\n").unwrap();
    let opts = |v: &str| {
        vec![
            ("rules".to_string(), path.display().to_string()),
            ("conntrack_max".to_string(), v.to_string()),
        ]
    };
    for bad in ["0", "many", "4294967296"] {
        let e = Firewall::new(&specs(&[0, 1]), &opts(bad))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("conntrack_max") && e.contains("131072"), "{e}");
    }
    let f = Firewall::new(&specs(&[0, 1]), &opts("200000")).unwrap();
    assert_eq!(f.ct.capacity(), 200_000);
    let f = Firewall::new(&specs(&[0, 1]), &[opts("1")[0].clone()]).unwrap();
    assert_eq!(f.ct.capacity(), super::CONNTRACK_MAX);
    std::fs::remove_file(&path).unwrap();
}
