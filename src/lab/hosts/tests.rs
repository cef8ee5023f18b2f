use std::path::Path;

use super::*;
use crate::lab::{LabError, check_text, check_text_with};

const TWO: &str = "\
name: two
hosts:
  h1: {address: 192.0.2.1}
  h2: {address: 192.0.2.2, underlay_mtu: 1400}
nodes:
  a: {kind: xconnect}
  b: {kind: xconnect, host: h2}
  c: {kind: host, interfaces: {eth0: {addresses: [10.0.0.1/24]}}}
  d: {kind: host, host: h2, interfaces: {eth0: {addresses: [10.0.0.2/24]}}}
links:
  - {endpoints: [c:eth0, a:p0]}
  - {endpoints: [a:p1, b:p1]}
  - {endpoints: [b:p0, d:eth0]}
";

fn plan(text: &str) -> Plan {
    check_text("t.yaml", text, Path::new("/tmp/t.yaml")).unwrap()
}

fn errors(text: &str) -> Vec<String> {
    match check_text("t.yaml", text, Path::new("/tmp/t.yaml")) {
        Err(LabError::Invalid(d)) => d
            .iter()
            .map(|x| format!("{}:{} {}", x.line, x.column, x.message))
            .collect(),
        Ok(_) => panic!("valid: {text}"),
        Err(e) => panic!("{e}"),
    }
}

fn cross(p: &Plan) -> Vec<&crate::lab::plan::PLink> {
    p.links.iter().filter(|l| l.cross.is_some()).collect()
}

#[test]
fn placement_defaults_to_the_first_host() {
    let p = plan(TWO);
    let host = |n: &str| p.node(n).unwrap().host.clone();
    assert_eq!(
        [host("a"), host("b"), host("c"), host("d")],
        ["h1", "h2", "h1", "h2"]
    );
    assert_eq!(p.hosts.len(), 2);
    assert_eq!(p.hosts[1].underlay_mtu, 1400);
}

#[test]
fn a_file_without_hosts_is_one_machine() {
    let text = TWO.replace(", host: h2", "").replace(
        "hosts:\n  h1: {address: 192.0.2.1}\n  h2: {address: 192.0.2.2, underlay_mtu: 1400}\n",
        "",
    );
    let p = plan(&text);
    assert!(p.hosts.is_empty());
    assert!(p.nodes.iter().all(|n| n.host.is_empty()));
    assert!(cross(&p).is_empty());
    assert!(p.lock.cross.is_empty());
    assert!(summary(&p).is_empty());
    // The plan's JSON has no multi-host keys at all.
    let json = serde_json::to_string(&p).unwrap();
    assert!(
        !json.contains("\"hosts\"") && !json.contains("\"cross\""),
        "{json}"
    );
}

#[test]
fn cross_host_link_is_l2tpv3_udp_clamped_to_the_smaller_underlay() {
    let p = plan(TWO);
    let c = cross(&p);
    assert_eq!(c.len(), 1);
    let l = c[0];
    assert_eq!(l.kind, LinkType::L2tpv3);
    assert_eq!(l.underlay, None);
    let x = l.cross.as_ref().unwrap();
    assert_eq!(x.overhead, 58);
    assert_eq!(x.requested, 1500);
    assert_eq!(l.mtu, 1400 - 58);
    let s = summary(&p);
    assert!(
        s.contains("a:p1 (h1) – b:p1 (h2): l2tpv3/udp mtu 1342"),
        "{s}"
    );
    assert!(s.contains("clamped from 1500"), "{s}");
    assert!(
        s.contains("host h1 (192.0.2.1, underlay MTU 1500): a, c"),
        "{s}"
    );
}

#[test]
fn ends_get_mirrored_tunnel_specs_on_a_handed_over_socket() {
    let p = plan(TWO);
    let a = &p
        .node("a")
        .unwrap()
        .ifaces
        .iter()
        .find(|f| f.name == "p1")
        .unwrap();
    let b = &p
        .node("b")
        .unwrap()
        .ifaces
        .iter()
        .find(|f| f.name == "p1")
        .unwrap();
    let ids = &cross(&p)[0].cross.as_ref().unwrap().ids;
    let sa = a.spec.clone().unwrap();
    let sb = b.spec.clone().unwrap();
    assert!(a.kernel.is_none() && a.tap_fd == Some(3), "{a:?}");
    for (s, me, peer, src, dst) in [
        (&sa, 0, 1, "192.0.2.1", "192.0.2.2"),
        (&sb, 1, 0, "192.0.2.2", "192.0.2.1"),
    ] {
        for want in [
            "transport=l2tpv3".to_string(),
            format!("src={src}"),
            format!("dst={dst}"),
            "udp=1".to_string(),
            format!("srcport={}", ids.ports[me]),
            format!("dstport={}", ids.ports[peer]),
            format!("tx_session={}", ids.sessions[me]),
            format!("rx_session={}", ids.sessions[peer]),
            format!("tx_cookie={}", ids.cookies[me]),
            format!("rx_cookie={}", ids.cookies[peer]),
            "cookie64=1".to_string(),
            "mtu=1342".to_string(),
            "fd=3".to_string(),
        ] {
            assert!(
                s.split(',')
                    .any(|kv| kv == want || kv.ends_with(&format!(":{want}"))),
                "{want} not in {s}"
            );
        }
    }
    assert_ne!(ids.sessions[0], ids.sessions[1]);
    assert_ne!(ids.cookies[0], ids.cookies[1]);
    assert!(
        ids.ports
            .iter()
            .all(|p| (PORT_BASE..PORT_BASE + PORTS).contains(p))
    );
}

#[test]
fn gre_between_hosts() {
    let p = plan(&TWO.replace("[a:p1, b:p1]}", "[a:p1, b:p1], type: gre}"));
    let l = cross(&p)[0];
    assert_eq!(l.kind, LinkType::Gre);
    assert_eq!(l.mtu, 1400 - 42);
    let spec = p.node("a").unwrap().ifaces[1].spec.clone().unwrap();
    assert!(
        spec.contains("transport=gre") && spec.contains("tx_key="),
        "{spec}"
    );
}

#[test]
fn mtu_policy_fail_and_a_fitting_mtu() {
    let fail = TWO.replace("[a:p1, b:p1]}", "[a:p1, b:p1], mtu_policy: fail}");
    let e = errors(&fail);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("12:5 link 1 joins `a` on h1 and `b` on h2: mtu 1500 plus 58"),
        "{e:?}"
    );
    let fits = TWO.replace(
        "[a:p1, b:p1]}",
        "[a:p1, b:p1], mtu: 1300, mtu_policy: fail}",
    );
    assert_eq!(cross(&plan(&fits))[0].mtu, 1300);
    let defaults = TWO.replace("nodes:\n", "defaults: {mtu_policy: fail}\nnodes:\n");
    assert_eq!(errors(&defaults).len(), 1);
}

#[test]
fn bad_hosts_and_placements_are_named_with_their_position() {
    let e = errors(
        "\
name: bad
hosts:
  h1: {address: 192.0.2.1}
  h2: {underlay_mtu: 600}
  h3: {address: nope, ssh: 'root@h3:x'}
nodes:
  a: {kind: xconnect, host: h9}
  b: {kind: xconnect, host: h2}
  c: {kind: host}
links:
  - {endpoints: [c:eth0, a:p0]}
  - {endpoints: [a:p1, b:p1]}
  - {endpoints: [b:p0, c:eth1]}
  - {endpoints: [c:eth2, b:p2], type: bess}
",
    );
    let want = [
        "4:3 host `h2` has no `address`",
        "5:17 address \"nope\" of host `h3` is not an IP address",
        "ssh \"root@h3:x\" of host `h3` is not user@host[:port]",
        "7:29 node `a` is placed on host `h9`, which is not in `hosts:`",
        "12:5 link 1 joins `a` on h1 and `b` on h2: underlay MTU 600 minus 58 bytes of l2tpv3 overhead leaves 542, below 576",
        "13:5 link 2 joins `b` on h2 and `c` on h1, and `c` is a host node",
        "14:5 link 3 (bess) joins `c` on h1 and `b` on h2: a bess link cannot leave its machine",
    ];
    for w in want {
        assert!(
            e.iter().any(|x| x == w || x.ends_with(&format!(" {w}"))),
            "missing {w:?} in {e:#?}"
        );
    }
}

#[test]
fn host_without_hosts_map_and_options_vecbox_allocates() {
    let e = errors(
        "name: x\nnodes:\n  a: {kind: xconnect, host: h1}\n  b: {kind: xconnect}\nlinks:\n  - {endpoints: [a:p0, b:p0]}\n  - {endpoints: [a:p1, b:p1]}\n",
    );
    assert!(
        e[0].contains("node `a` is placed on host `h1`, which is not in `hosts:`"),
        "{e:?}"
    );
    let e = errors(&TWO.replace("[a:p1, b:p1]}", "[a:p1, b:p1], type: l2tpv3, session: 4}"));
    assert!(
        e.iter()
            .any(|x| x.contains("`session` cannot be set on a link between hosts")),
        "{e:?}"
    );
}

#[test]
fn allocations_do_not_depend_on_order_and_never_move() {
    let a = plan(TWO);
    let reordered =
        TWO.replace("  - {endpoints: [a:p1, b:p1]}\n", "") + "  - {endpoints: [b:p1, a:p1]}\n";
    let b = plan(&reordered);
    assert_eq!(a.lock, b.lock);
    let (la, lb) = (cross(&a)[0], cross(&b)[0]);
    let (xa, xb) = (
        &la.cross.as_ref().unwrap().ids,
        &lb.cross.as_ref().unwrap().ids,
    );
    assert_eq!(
        xa.sessions,
        [xb.sessions[1], xb.sessions[0]],
        "end A of b is end B of a"
    );
    assert_eq!(p_spec(&a, "a"), p_spec(&b, "a"));
    // A new cross-host link, with the old lock: the old link keeps everything.
    let grown = TWO.replace(
        "  d: {kind",
        "  e: {kind: bridge, host: h2}\n  f: {kind: bridge}\n  d: {kind",
    ) + "  - {endpoints: [e:p0, f:p0]}\n  - {endpoints: [e:p1, f:p1]}\n";
    let c = check_text_with("t.yaml", &grown, Path::new("/tmp/t.yaml"), &a.lock).unwrap();
    for (id, v) in &a.lock.cross {
        assert_eq!(c.lock.cross.get(id), Some(v), "{id}");
    }
    for (id, v) in &a.lock.ifaces {
        assert_eq!(c.lock.ifaces.get(id), Some(v), "{id}");
    }
    assert_eq!(c.lock.cross.len(), 3);
    let all: BTreeSet<u32> = c.lock.cross.values().flat_map(|x| x.sessions).collect();
    assert_eq!(all.len(), 6, "sessions are unique in the lab");
}

fn p_spec(p: &Plan, node: &str) -> Vec<Option<String>> {
    p.node(node)
        .unwrap()
        .ifaces
        .iter()
        .map(|f| f.spec.clone())
        .collect()
}

#[test]
fn two_labs_on_the_same_hosts_get_different_cookies() {
    let a = plan(TWO);
    let b = plan(&TWO.replace("name: two", "name: other"));
    let (x, y) = (&a.lock.cross, &b.lock.cross);
    let (x, y) = (x.values().next().unwrap(), y.values().next().unwrap());
    assert!(x.cookies.iter().all(|c| !y.cookies.contains(c)));
    assert_ne!(x.ports, y.ports);
}

#[test]
fn lock_file_beside_the_topology() {
    assert_eq!(
        lock_path(Path::new("/srv/labs/lan.yaml")),
        Path::new("/srv/labs/lan.lock.json")
    );
    let dir = std::env::temp_dir().join(format!("vbt{}-lock", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("two.yaml");
    std::fs::write(&file, TWO).unwrap();
    let p = crate::lab::load(&file).unwrap();
    assert!(write_lock(&p).unwrap());
    assert!(!write_lock(&p).unwrap(), "unchanged lock is not rewritten");
    assert_eq!(read_lock(&file).unwrap(), p.lock);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ssh_forms() {
    for ok in [
        "root@h1",
        "h1",
        "root@h1:2222",
        "u@192.0.2.1",
        "u@2001:db8::1",
    ] {
        assert!(ssh_ok(ok), "{ok}");
    }
    for bad in [
        "",
        "root@",
        "root@h1:0",
        "root@h1:x",
        "-oProxyCommand=x",
        "a b@h",
    ] {
        assert!(!ssh_ok(bad), "{bad}");
    }
}

#[test]
fn ssh_targets_and_options() {
    use super::ssh::{Target, option_ok, parse_target, quote};
    assert_eq!(
        parse_target("lab@h2.example:2222"),
        Some(Target {
            user: Some("lab".into()),
            host: "h2.example".into(),
            port: Some(2222)
        })
    );
    assert_eq!(
        parse_target("2001:db8::1").map(|t| (t.user, t.host, t.port)),
        Some((None, "2001:db8::1".into(), None))
    );
    assert!(option_ok("IdentityFile=/tmp/k"));
    assert!(option_ok("ConnectTimeout=5"));
    for bad in ["IdentityFile", "=x", "Proxy-Command=x", "A=b\nc"] {
        assert!(!option_ok(bad), "{bad:?}");
    }
    assert_eq!(quote("vbt1.lab"), "vbt1.lab");
    assert_eq!(quote("it's here"), r"'it'\''s here'");
    assert_eq!(quote(""), "''");
}

#[test]
fn ssh_options_are_checked() {
    let text = TWO.replace(
        "h1: {address: 192.0.2.1}",
        "h1: {address: 192.0.2.1, ssh: root@h1, ssh_options: [Port=22, nonsense]}",
    );
    let e = errors(&text);
    assert!(
        e.iter()
            .any(|m| m.contains("ssh option \"nonsense\" of host `h1` is not Key=value")),
        "{e:?}"
    );
    let ok = TWO.replace(
        "h1: {address: 192.0.2.1}",
        "h1: {address: 192.0.2.1, ssh: root@h1, ssh_options: [Port=22]}",
    );
    assert_eq!(plan(&ok).hosts[0].ssh_options, ["Port=22"]);
}
