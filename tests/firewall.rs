//! A `firewall` guest in the wire between a client (A, on vec0) and a server (B, on
//! vec1), enforcing a documented rule file with connection tracking: allowed flows and
//! their replies pass, unsolicited inbound traffic is dropped, `reject` answers with a
//! TCP RST or an ICMP port unreachable that the client's own socket reports, and the
//! per-rule counters match the traffic sent.

mod common;

use common::{Guest, Lab, port_drops};
use vecbox::bench::rulesets::rule_file;
use vecbox::bench::scenario::Rules;

const A_IP: &str = "10.82.0.1";
const B_IP: &str = "10.82.0.2";

const RULES: &str = "\
# vec0 = clients, vec1 = servers
policy drop
accept ct established,related
accept in vec0 proto tcp dport 20000-29999 ct new
accept in vec0 proto icmp icmp-type echo-request
reject in vec0 proto tcp dport 9 log
reject in vec0 proto udp dport 9
";

fn state(r: &serde_json::Value, key: &str) -> String {
    common::function_state(r, key)
}

/// Packets counted for the rule on `line` (from `rule_hits`, "L3=12/1400 ...").
fn hits(r: &serde_json::Value, line: usize) -> u64 {
    let want = format!("L{line}=");
    state(r, "rule_hits")
        .split_whitespace()
        .find_map(|h| h.strip_prefix(&want))
        .and_then(|v| v.split('/').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no hits for line {line} in {r}"))
}

fn sh(lab: &Lab, ns: &str, script: &str) -> (bool, String) {
    let out = lab.exec(ns, &["timeout", "3", "bash", "-c", script]);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn firewall_enforces_stateful_rules() {
    common::require_tool("python3");
    let mut lab = Lab::new();
    let a = lab.ns("a");
    let b = lab.ns("b");
    let g = lab.ns("g");
    lab.veth(&a, "a0", &g, "ga");
    lab.veth(&b, "b0", &g, "gb");
    lab.quiet(&g, "ga");
    lab.quiet(&g, "gb");
    lab.quiet(&a, "a0");
    lab.quiet(&b, "b0");
    lab.addr(&a, "a0", &format!("{A_IP}/24"));
    lab.addr(&b, "b0", &format!("{B_IP}/24"));
    let rules = common::lab_file(&lab, "fw.rules");
    std::fs::write(&rules, RULES).unwrap();
    let guest = Guest::start(
        &lab,
        &g,
        "firewall",
        &[
            &format!("rules={}", rules.display()),
            "vec0:transport=raw,ifname=ga,gro=1",
            "vec1:transport=raw,ifname=gb,gro=1",
        ],
    );
    // Allowed: ping from the client side, and its replies.
    assert!(lab.ping(&a, B_IP, 3), "ping A -> B is allowed");
    // Unsolicited inbound: the server side cannot ping the client.
    assert!(!lab.ping(&b, A_IP, 2), "ping B -> A must be dropped");
    // An allowed TCP flow (iperf3 uses a port in 20000-29999), with TSO frames.
    let bps = lab.iperf3(&b, &a, B_IP, 2);
    assert!(bps > 20e6, "TCP A -> B through the firewall: {bps} bit/s");
    // Unsolicited TCP from the server side: the SYN is dropped, the connect times out.
    lab.spawn(&a, &["iperf3", "-s", "-1", "-B", A_IP, "-p", "20999"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (ok, out) = sh(&lab, &b, &format!("echo > /dev/tcp/{A_IP}/20999"));
    assert!(
        !ok && !out.contains("refused"),
        "B -> A TCP must time out: {out}"
    );
    // Reject: B listens on port 9, yet A's connect is refused by the firewall's RST.
    lab.spawn(&b, &["iperf3", "-s", "-1", "-B", B_IP, "-p", "9"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (ok, out) = sh(&lab, &a, &format!("echo > /dev/tcp/{B_IP}/9"));
    assert!(
        !ok && out.contains("Connection refused"),
        "RST expected: {out}"
    );
    // Reject for UDP: the client's connected socket reports the port unreachable.
    let py = format!(
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(2)\n\
         s.connect(('{B_IP}',9))\ns.send(b'x')\ntry:\n    s.recv(100)\n    print('ANSWER')\n\
         except ConnectionRefusedError:\n    print('REFUSED')\nexcept socket.timeout:\n    print('TIMEOUT')\n"
    );
    let out = lab.exec(&a, &["python3", "-c", &py]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("REFUSED"),
        "ICMP port unreachable expected: {text}"
    );

    let r = guest.stop();
    // Rule lines: 3 established, 4 tcp new, 5 ping, 6 reject tcp/9, 7 reject udp/9.
    // ping uses one ICMP id: the first request opens the flow, the rest are established.
    assert_eq!(hits(&r, 5), 1, "one new echo flow: {r}");
    assert!(
        hits(&r, 3) >= 3,
        "echo replies and TCP replies are established: {r}"
    );
    assert!(
        hits(&r, 4) >= 2,
        "iperf3 opened control and data connections: {r}"
    );
    assert_eq!(hits(&r, 6), 1, "one SYN to port 9: {r}");
    assert_eq!(hits(&r, 7), 1, "one UDP datagram to port 9: {r}");
    assert_eq!(state(&r, "rst_sent"), "1", "{r}");
    assert_eq!(state(&r, "unreachable_sent"), "1", "{r}");
    assert!(state(&r, "logged").parse::<u64>().unwrap() >= 1, "{r}");
    let policy: u64 = state(&r, "rule_hits")
        .split_whitespace()
        .find_map(|h| h.strip_prefix("policy="))
        .and_then(|v| v.split('/').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        policy >= 3,
        "pings and SYNs from B hit the drop policy: {r}"
    );
    assert!(port_drops(&r, 1, "filtered") >= 3, "{r}");
}

#[test]
fn firewall_rejects_a_bad_rule_file_with_its_position() {
    let mut lab = Lab::new();
    let g = lab.ns("g");
    lab.veth(&g, "ga", &g, "gb");
    let rules = common::lab_file(&lab, "bad.rules");
    std::fs::write(&rules, "policy drop\naccept in vec0 proto tpc\n").unwrap();
    let e = Guest::try_start(
        &lab,
        &g,
        "firewall",
        &[
            &format!("rules={}", rules.display()),
            "vec0:transport=raw,ifname=ga",
            "vec1:transport=raw,ifname=gb",
        ],
        &[],
        None,
    )
    .err()
    .expect("a bad rule file must stop the guest");
    assert!(
        e.contains("bad.rules:2:") && e.contains("did you mean `tcp`?"),
        "{e}"
    );
}

/// Packets per rule line from `rule_hits` ("L3=12/1400 ... policy=5/418"), and the
/// policy's under line 0.
fn all_hits(r: &serde_json::Value) -> Vec<(usize, u64)> {
    state(r, "rule_hits")
        .split_whitespace()
        .map(|h| {
            let (rule, v) = h.split_once('=').unwrap();
            let line = rule.strip_prefix('L').map_or(0, |l| l.parse().unwrap());
            (line, v.split('/').next().unwrap().parse().unwrap())
        })
        .collect()
}

const SERVER: &str = "\
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
s.bind((sys.argv[1], 4001))
open(sys.argv[2] + '.ready', 'w').close()
seen = {}
s.settimeout(30)
while True:
    try:
        data, (a, p) = s.recvfrom(100)
    except socket.timeout:
        break
    seen[a] = seen.get(a, 0) + 1
    s.settimeout(3)
with open(sys.argv[2] + '.tmp', 'w') as f:
    json.dump(seen, f)
import os
os.rename(sys.argv[2] + '.tmp', sys.argv[2])
";

const CLIENT: &str = "\
import socket, sys, time
dst = sys.argv[1]
socks = []
for spec in sys.argv[2:]:
    addr, flows = spec.split('x')
    for _ in range(int(flows)):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, 0))
        socks.append(s)
        for _ in range(3):
            s.sendto(b'x' * 18, (dst, 4001))
    time.sleep(0.02)
print(len(socks))
";

/// 1000 rules in the shape that made the old per-port index scan: every rule on the
/// traffic's protocol and port (UDP 4001) with distinct source prefixes, the traffic's
/// rule last, and one `drop` for part of its sources just before it. 250 UDP flows from
/// 30 source addresses: exactly the two rules' counters move, the flows behind the
/// `drop` never reach the server, every other flow does, each tracked once.
#[test]
fn a_thousand_rules_on_one_port_count_each_flow_on_its_rule() {
    common::require_tool("python3");
    let mut lab = Lab::new();
    let a = lab.ns("a");
    let b = lab.ns("b");
    let g = lab.ns("g");
    lab.veth(&a, "a0", &g, "ga");
    lab.veth(&b, "b0", &g, "gb");
    for (ns, i) in [(&g, "ga"), (&g, "gb"), (&a, "a0"), (&b, "b0")] {
        lab.quiet(ns, i);
    }
    let server = "10.83.0.200";
    lab.addr(&a, "a0", "10.83.0.1/24");
    let accepted: Vec<String> = (1..=20).map(|h| format!("10.83.0.{h}")).collect();
    let dropped: Vec<String> = (70..80).map(|h| format!("10.83.0.{h}")).collect();
    for ip in accepted.iter().skip(1).chain(&dropped) {
        common::run(&[
            "ip",
            "-n",
            &a,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            "a0",
        ]);
    }
    lab.addr(&b, "b0", &format!("{server}/24"));
    // No ARP from the client, so nothing but the test's datagrams crosses.
    let mac = lab.mac(&b, "b0");
    common::run(&[
        "ip",
        "-n",
        &a,
        "neigh",
        "add",
        server,
        "lladdr",
        &mac,
        "dev",
        "a0",
        "nud",
        "permanent",
    ]);

    // `policy drop` (line 1), 998 rules on UDP 4001 with distinct source prefixes
    // (2..999, the benchmarks' own-port set without its flow rule), then the drop (1000)
    // and the traffic's rule (1001).
    let text = rule_file(Rules::Port, 999);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with('#') && lines[1] == "policy drop",
        "{text}"
    );
    let rules = format!(
        "{}\ndrop in vec0 proto udp src 10.83.0.64/26 dport 4001\n\
         accept in vec0 proto udp src 10.83.0.0/25 dst {server} dport 4001\n",
        lines[1..lines.len() - 1].join("\n")
    );
    assert_eq!(rules.lines().count(), 1001);
    let path = common::lab_file(&lab, "fw1000.rules");
    std::fs::write(&path, &rules).unwrap();
    let guest = Guest::start(
        &lab,
        &g,
        "firewall",
        &[
            &format!("rules={}", path.display()),
            "vec0:transport=raw,ifname=ga",
            "vec1:transport=raw,ifname=gb",
        ],
    );

    let result = common::lab_file(&lab, "received.json");
    let res = result.display().to_string();
    lab.spawn(&b, &["python3", "-c", SERVER, server, &res]);
    let ready = std::path::PathBuf::from(format!("{res}.ready"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ready.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "UDP server never bound"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut args = vec![
        "python3".to_string(),
        "-c".into(),
        CLIENT.into(),
        server.into(),
    ];
    args.extend(accepted.iter().map(|ip| format!("{ip}x10")));
    args.extend(dropped.iter().map(|ip| format!("{ip}x5")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = lab.exec(&a, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "250",
        "flows opened"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !result.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "UDP server never finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let seen: std::collections::BTreeMap<String, u64> =
        serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();

    let r = guest.stop();
    // The server heard every accepted source, 10 flows x 3 datagrams each, and none of
    // the dropped ones.
    let want: std::collections::BTreeMap<String, u64> =
        accepted.iter().map(|ip| (ip.clone(), 30)).collect();
    assert_eq!(seen, want, "{r}");
    let hits = all_hits(&r);
    assert_eq!(hits.len(), 1001, "1000 rules and the policy");
    for (line, n) in &hits {
        let expected = match line {
            1001 => 600,
            1000 => 150,
            _ => 0,
        };
        assert_eq!(*n, expected, "rule on line {line} (0 = policy): {r}");
    }
    assert_eq!(port_drops(&r, 0, "filtered"), 150, "{r}");
    assert_eq!(
        state(&r, "connections"),
        "200",
        "accepted flows tracked: {r}"
    );
    assert_eq!(state(&r, "conntrack_created"), "200", "{r}");
    assert_eq!(
        state(&r, "verdicts_cached"),
        "400",
        "the 2nd and 3rd datagram of each accepted flow reuse its verdict: {r}"
    );
    assert_eq!(state(&r, "conntrack_evictions"), "0", "{r}");
}

/// Console `reload` in a running (seccomp-confined) guest: the new rules apply at once
/// (scanned while their trees are built on a background thread), and again after a
/// second reload, with the guest alive throughout.
#[test]
fn reload_applies_new_rules_in_a_running_guest() {
    let mut lab = Lab::new();
    let a = lab.ns("a");
    let b = lab.ns("b");
    let g = lab.ns("g");
    lab.veth(&a, "a0", &g, "ga");
    lab.veth(&b, "b0", &g, "gb");
    for (ns, i) in [(&g, "ga"), (&g, "gb"), (&a, "a0"), (&b, "b0")] {
        lab.quiet(ns, i);
    }
    lab.addr(&a, "a0", &format!("{A_IP}/24"));
    lab.addr(&b, "b0", &format!("{B_IP}/24"));
    let allow = "policy drop\naccept proto icmp\naccept ip6\n";
    let deny = "policy accept\ndrop proto icmp\n";
    let rules = common::lab_file(&lab, "reload.rules");
    std::fs::write(&rules, allow).unwrap();
    let guest = Guest::start(
        &lab,
        &g,
        "firewall",
        &[
            &format!("rules={}", rules.display()),
            "vec0:transport=raw,ifname=ga",
            "vec1:transport=raw,ifname=gb",
        ],
    );
    assert!(lab.ping(&a, B_IP, 2), "ICMP allowed by the first rules");
    std::fs::write(&rules, deny).unwrap();
    let (rc, out) = common::vecbox_console(&guest.umid, &["reload"]);
    assert_eq!(rc, 0, "reload: {out}");
    assert!(!lab.ping(&a, B_IP, 2), "ICMP dropped after the reload");
    std::fs::write(&rules, allow).unwrap();
    let (rc, out) = common::vecbox_console(&guest.umid, &["reload"]);
    assert_eq!(rc, 0, "second reload: {out}");
    assert!(lab.ping(&a, B_IP, 2), "ICMP allowed again");
    let r = guest.stop();
    assert!(
        hits(&r, 2) >= 2,
        "the reloaded file's ICMP rule counts the last pings: {r}"
    );
    // Only the pings sent under the second file were dropped, on the client's port.
    assert!(port_drops(&r, 0, "filtered") >= 2, "{r}");
}
