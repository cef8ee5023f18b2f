//! A `router` guest between two hosts on different subnets (IPv4 and IPv6): the hosts
//! reach each other only through it; ping, TCP, TTL decrement, time-exceeded and
//! unreachable errors as the hosts' own tools see them, and the router's counters.

mod common;

use common::{Guest, Lab, port_drops, run, vecbox_console};

struct Net {
    lab: Lab,
    a: String,
    b: String,
    g: String,
    cfg: String,
}

const CONFIG: &str = "\
# Two subnets, one static route to a network behind host B.
interfaces:
  - port: vec0
    addresses: [10.81.1.1/24, fd00:81:1::1/64]
  - port: vec1
    addresses: [10.81.2.1/24, fd00:81:2::1/64]
routes:
  - to: 10.81.9.0/24
    via: 10.81.2.2
icmp_errors_per_second: 50
";

fn net() -> Net {
    let mut lab = Lab::new();
    let a = lab.ns("a");
    let b = lab.ns("b");
    let g = lab.ns("g");
    lab.veth(&a, "a0", &g, "ga");
    lab.veth(&b, "b0", &g, "gb");
    lab.quiet(&g, "ga");
    lab.quiet(&g, "gb");
    for (ns, ifname, v4, v6, gw4, gw6) in [
        (
            &a,
            "a0",
            "10.81.1.2/24",
            "fd00:81:1::2/64",
            "10.81.1.1",
            "fd00:81:1::1",
        ),
        (
            &b,
            "b0",
            "10.81.2.2/24",
            "fd00:81:2::2/64",
            "10.81.2.1",
            "fd00:81:2::1",
        ),
    ] {
        lab.addr(ns, ifname, v4);
        run(&["ip", "-n", ns, "addr", "add", v6, "dev", ifname, "nodad"]);
        run(&["ip", "-n", ns, "route", "add", "default", "via", gw4]);
        run(&["ip", "-n", ns, "-6", "route", "add", "default", "via", gw6]);
    }
    // B also owns 10.81.9.1 (the network behind it, reached through the static route).
    run(&["ip", "-n", &b, "addr", "add", "10.81.9.1/32", "dev", "lo"]);
    let cfg = common::lab_file(&lab, "router.yaml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let cfg = cfg.display().to_string();
    Net { lab, a, b, g, cfg }
}

impl Net {
    fn start(&self) -> Guest {
        Guest::start(
            &self.lab,
            &self.g,
            "router",
            &[
                &format!("umid={}-r", self.lab.tag),
                &format!("config={}", self.cfg),
                "vec0:transport=raw,ifname=ga,gro=1",
                "vec1:transport=raw,ifname=gb,gro=1",
            ],
        )
    }

    fn ping_out(&self, ns: &str, args: &[&str]) -> String {
        let mut cmd = vec!["ping", "-n"];
        cmd.extend_from_slice(args);
        let out = self.lab.exec(ns, &cmd);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

fn state(r: &serde_json::Value, key: &str) -> u64 {
    common::function_state(r, key)
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {r}"))
}

#[test]
fn router_forwards_v4_and_v6_between_subnets() {
    let mut n = net();
    // Without the router nothing gets through.
    assert!(!n.lab.ping(&n.a, "10.81.2.2", 1));
    let g = n.start();
    // A's kernel marked the gateway unreachable while nothing answered: forget that.
    run(&["ip", "-n", &n.a, "neigh", "flush", "all"]);
    let out = n.ping_out(
        &n.a,
        &["-c", "3", "-i", "0.2", "-W", "2", "-w", "8", "10.81.2.2"],
    );
    assert!(out.contains("3 received"), "{out}");
    assert!(
        out.contains("ttl=63"),
        "one hop: the reply's TTL was decremented: {out}"
    );
    let out = n.ping_out(
        &n.a,
        &[
            "-6",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "-w",
            "8",
            "fd00:81:2::2",
        ],
    );
    assert!(out.contains("3 received"), "{out}");
    assert!(out.contains("ttl=63"), "{out}");
    // The static route: 10.81.9.1 lives behind B.
    assert!(n.lab.ping(&n.a, "10.81.9.1", 2));
    // The router answers pings to its own addresses, on both sides.
    assert!(n.lab.ping(&n.a, "10.81.2.1", 3));
    assert!(n.lab.ping(&n.b, "fd00:81:1::1", 3));
    let (a, b) = (n.a.clone(), n.b.clone());
    let bps = n.lab.iperf3(&b, &a, "10.81.2.2", 2);
    assert!(bps > 20e6, "TCP through the router: {bps} bit/s");
    let bps = n.lab.iperf3(&a, &b, "fd00:81:1::2", 2);
    let r = g.stop();
    assert!(
        bps > 20e6,
        "TCP over IPv6 through the router: {bps} bit/s: {r}"
    );
    assert!(state(&r, "forwarded") > 1000, "{r}");
    assert!(state(&r, "arp_replies") >= 1, "{r}");
    assert!(state(&r, "nd_adverts") >= 1, "{r}");
    assert!(state(&r, "echo_replies") >= 2, "{r}");
    assert_eq!(
        port_drops(&r, 0, "tx_error") + port_drops(&r, 1, "tx_error"),
        0,
        "{r}"
    );
}

#[test]
fn router_reports_time_exceeded_and_unreachable() {
    let n = net();
    let g = n.start();
    // traceroute's first probe: TTL 1 expires at the router, which says so from its
    // address on A's side.
    let out = n.ping_out(&n.a, &["-c", "1", "-t", "1", "-W", "2", "10.81.2.2"]);
    assert!(
        out.contains("From 10.81.1.1") && out.contains("Time to live exceeded"),
        "{out}"
    );
    let out = n.ping_out(
        &n.a,
        &["-6", "-c", "1", "-t", "1", "-W", "2", "fd00:81:2::2"],
    );
    assert!(
        out.contains("From fd00:81:1::1") && out.contains("Time exceeded"),
        "{out}"
    );
    // No route.
    let out = n.ping_out(&n.a, &["-c", "1", "-W", "2", "10.99.0.1"]);
    assert!(out.contains("Destination Net Unreachable"), "{out}");
    let out = n.ping_out(&n.a, &["-6", "-c", "1", "-W", "2", "fd00:99::1"]);
    assert!(out.contains("Destination unreachable: No route"), "{out}");
    // A connected address nobody answers ARP for: host unreachable after the retries.
    let out = n.ping_out(&n.a, &["-c", "1", "-W", "6", "10.81.2.99"]);
    assert!(out.contains("Destination Host Unreachable"), "{out}");
    let r = g.stop();
    assert!(state(&r, "ttl_exceeded") >= 2, "{r}");
    assert!(state(&r, "no_route") >= 2, "{r}");
    assert!(state(&r, "neighbor_failed") >= 1, "{r}");
    assert!(state(&r, "icmp_errors") >= 5, "{r}");
    assert!(port_drops(&r, 0, "ttl_exceeded") >= 2, "{r}");
    assert!(port_drops(&r, 0, "no_route") >= 2, "{r}");
}

#[test]
fn router_rejects_a_bad_config_with_its_position() {
    let n = net();
    let bad = common::lab_file(&n.lab, "bad.yaml");
    std::fs::write(
        &bad,
        "interfaces:\n  - port: vec0\n    adresses: [10.0.0.1/24]\n",
    )
    .unwrap();
    let e = Guest::try_start(
        &n.lab,
        &n.g,
        "router",
        &[
            &format!("config={}", bad.display()),
            "vec0:transport=raw,ifname=ga",
        ],
        &[],
        None,
    )
    .err()
    .expect("a bad config must stop the guest");
    assert!(
        e.contains("bad.yaml:3:5") && e.contains("did you mean `addresses`"),
        "{e}"
    );
}

#[test]
fn router_takes_interfaces_added_and_removed_from_the_console() {
    let mut n = net();
    let c = n.lab.ns("c");
    n.lab.veth(&c, "c0", &n.g, "gc");
    n.lab.quiet(&n.g, "gc");
    n.lab.addr(&c, "c0", "10.81.3.2/24");
    run(&[
        "ip",
        "-n",
        &c,
        "route",
        "add",
        "default",
        "via",
        "10.81.3.1",
    ]);
    let g = n.start();
    let umid = format!("{}-r", n.lab.tag);
    assert!(n.lab.ping(&n.a, "10.81.2.2", 2));
    // A port the file does not name is added without addresses: nothing routes to it.
    let (rc, out) = vecbox_console(&umid, &["config", "vec2:transport=raw,ifname=gc"]);
    assert_eq!(rc, 0, "{out}");
    assert!(!n.lab.ping(&n.a, "10.81.3.2", 1), "no address on vec2 yet");
    let (_, routes) = vecbox_console(&umid, &["proc", "routes"]);
    assert!(!routes.contains("vec2"), "{routes}");
    assert_eq!(vecbox_console(&umid, &["remove", "vec2"]).0, 0);

    // Give vec2 its address in the file, then add it: C is reachable with TTL 63.
    let more = CONFIG.replace(
        "routes:",
        "  - port: vec2\n    addresses: [10.81.3.1/24]\nroutes:",
    );
    std::fs::write(&n.cfg, &more).unwrap();
    let (rc, out) = vecbox_console(&umid, &["config", "vec2:transport=raw,ifname=gc"]);
    assert_eq!(rc, 0, "{out}");
    let out = n.ping_out(&n.a, &["-c", "3", "-W", "2", "-w", "8", "10.81.3.2"]);
    assert!(
        out.contains("ttl=63") && out.contains("3 received"),
        "{out}"
    );
    let (_, routes) = vecbox_console(&umid, &["proc", "routes"]);
    assert!(routes.contains("10.81.3.0/24 dev vec2"), "{routes}");
    assert!(n.lab.ping(&n.a, "10.81.2.2", 1), "vec1 still routes");

    // Remove vec1 (the file still names it): B is gone, C stays.
    let (rc, out) = vecbox_console(&umid, &["remove", "vec1"]);
    assert_eq!(rc, 0, "{out}");
    assert!(!n.lab.ping(&n.a, "10.81.2.2", 1));
    assert!(n.lab.ping(&n.a, "10.81.3.2", 2));
    // A broken file refuses the next change, with the file's error.
    std::fs::write(&n.cfg, "interfaces: [oops").unwrap();
    let (rc, out) = vecbox_console(&umid, &["config", "vec1:transport=raw,ifname=gb"]);
    assert_eq!(rc, 1, "{out}");
    assert!(
        out.contains("re-read because the interfaces change"),
        "{out}"
    );
    assert!(
        n.lab.ping(&n.a, "10.81.3.2", 1),
        "a refused change keeps routing"
    );
    let r = g.stop();
    assert!(state(&r, "forwarded") >= 8, "{r}");
}
