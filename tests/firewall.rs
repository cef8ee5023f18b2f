//! A `firewall` guest in the wire between a client (A, on vec0) and a server (B, on
//! vec1), enforcing a documented rule file with connection tracking: allowed flows and
//! their replies pass, unsolicited inbound traffic is dropped, `reject` answers with a
//! TCP RST or an ICMP port unreachable that the client's own socket reports, and the
//! per-rule counters match the traffic sent.

mod common;

use common::{Guest, Lab, port_drops};

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
