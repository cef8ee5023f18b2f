use std::path::Path;

use crate::lab::{LabError, check_text};

fn check(text: &str) -> Result<crate::lab::Plan, Vec<crate::lab::Diagnostic>> {
    check_text("t.yaml", text, Path::new("/tmp/t.yaml")).map_err(|e| match e {
        LabError::Invalid(d) => d,
        other => panic!("{other}"),
    })
}

const BASIC: &str = "\
name: t1
nodes:
  a:
    kind: host
    interfaces:
      eth0: {addresses: [10.0.0.1/24]}
  sw:
    kind: bridge
  b:
    kind: host
    interfaces:
      eth0: {addresses: [10.0.0.2/24]}
links:
  - endpoints: [a:eth0, sw:p0]
  - endpoints: [b:eth0, sw:p1]
";

#[test]
fn basic_plan() {
    let p = check(BASIC).unwrap();
    assert_eq!(p.nodes.len(), 3);
    let sw = p.node("sw").unwrap();
    assert_eq!(sw.netns, "t1.sw");
    assert_eq!(sw.ifaces.len(), 2);
    let spec = sw.ifaces[0].spec.as_deref().unwrap();
    assert!(spec.starts_with("vec0:transport=raw,ifname=vb"), "{spec}");
    assert!(spec.contains("gro=1"), "{spec}");
    assert_eq!(
        p.node("a").unwrap().ifaces[0].kernel.as_deref(),
        Some("eth0")
    );
    for n in &p.nodes {
        for f in &n.ifaces {
            assert!(f.kernel.as_ref().is_none_or(|k| k.len() <= 15));
        }
    }
}

#[test]
fn errors_have_positions() {
    let bad = BASIC.replace("[b:eth0, sw:p1]", "[c:eth0, sw:p1]");
    let d = check(&bad).unwrap_err();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].line, 15);
    assert!(d[0].message.contains("`c`"), "{}", d[0]);
}

#[test]
fn interface_used_twice() {
    let bad = BASIC.replace("[b:eth0, sw:p1]", "[b:eth0, sw:p0]");
    let d = check(&bad).unwrap_err();
    assert!(d[0].message.contains("already used by link 0"), "{}", d[0]);
}

#[test]
fn long_host_ifname() {
    let bad = BASIC.replace("[a:eth0, sw:p0]", "[a:averyveryverylongname, sw:p0]");
    let d = check(&bad).unwrap_err();
    assert!(
        d.iter()
            .any(|x| x.hint.as_deref().unwrap_or("").contains("15 bytes")),
        "{d:?}"
    );
}

#[test]
fn gre_between_guests_gets_underlay_and_keys() {
    let t = "\
name: g
nodes:
  x: {kind: xconnect}
  y: {kind: xconnect}
  h1: {kind: host}
  h2: {kind: host}
links:
  - endpoints: [h1:eth0, x:vec0]
  - endpoints: [x:vec1, y:vec1]
    type: gre
    key: [5, 6]
  - endpoints: [h2:eth0, y:vec0]
";
    let p = check(t).unwrap();
    assert_eq!(p.underlays.len(), 1);
    let x = p.node("x").unwrap().ifaces[1].spec.clone().unwrap();
    let y = p.node("y").unwrap().ifaces[1].spec.clone().unwrap();
    assert!(x.contains("rx_key=6") && x.contains("tx_key=5"), "{x}");
    assert!(y.contains("rx_key=5") && y.contains("tx_key=6"), "{y}");
    assert!(
        x.contains("src=169.254.0.1") && y.contains("src=169.254.0.2"),
        "{x} {y}"
    );
}

#[test]
fn gre_key_clash() {
    let t = "\
name: g
nodes:
  x: {kind: bridge}
  y: {kind: bridge}
links:
  - {endpoints: [x:vec0, y:vec0], type: gre, key: 1}
  - {endpoints: [x:vec1, y:vec1], type: gre, key: 1}
";
    let d = check(t).unwrap_err();
    assert!(d.iter().any(|x| x.message.contains("same key")), "{d:?}");
}

#[test]
fn host_cannot_take_gre() {
    let t = "\
name: g
nodes:
  x: {kind: bridge}
  h: {kind: host}
links:
  - {endpoints: [x:vec0, h:eth0], type: gre}
";
    let d = check(t).unwrap_err();
    assert!(d[0].message.contains("both ends"), "{d:?}");
}

#[test]
fn mtu_below_overhead() {
    let t = "\
name: g
nodes:
  x: {kind: bridge}
  y: {kind: bridge}
links:
  - {endpoints: [x:vec0, y:vec0], type: l2tpv3, session: 1, udp: true, mtu: 1500, underlay_mtu: 1500}
  - {endpoints: [x:vec1, y:vec1], type: gre, key: 2}
";
    let d = check(t).unwrap_err();
    assert!(d[0].message.contains("overhead"), "{d:?}");
    assert!(d[0].hint.as_deref().unwrap().contains("1450"), "{d:?}");
}

#[test]
fn option_of_other_type() {
    let t = BASIC.replace("[b:eth0, sw:p1]", "[b:eth0, sw:p1]\n    key: 3");
    let d = check(&t).unwrap_err();
    assert!(
        d[0].message.contains("`key` is an option of gre links"),
        "{d:?}"
    );
}

#[test]
fn tap_needs_a_host() {
    let t = "\
name: g
nodes:
  x: {kind: bridge}
  y: {kind: bridge}
links:
  - {endpoints: [x:vec0, y:vec0], type: tap}
";
    let d = check(t).unwrap_err();
    assert!(d[0].message.contains("tap link joins a host"), "{d:?}");
}

#[test]
fn tap_end_gets_fd_spec() {
    let t = "\
name: g
nodes:
  x: {kind: xconnect}
  h: {kind: host}
  h2: {kind: host}
links:
  - {endpoints: [h:tap0, x:vec0], type: tap}
  - {endpoints: [h2:eth0, x:vec1]}
";
    let p = check(t).unwrap();
    let x = p.node("x").unwrap();
    assert_eq!(x.ifaces[0].tap_fd, Some(3));
    assert_eq!(
        x.ifaces[0].spec.as_deref(),
        Some("vec0:transport=fd,fd=3,vec=0")
    );
}

#[test]
fn kind_specific_keys() {
    let t = BASIC.replace("kind: bridge", "kind: bridge\n    mem: 64M");
    let d = check(&t).unwrap_err();
    assert!(d[0].message.contains("`mem` does not apply"), "{d:?}");
}

#[test]
fn uml_needs_vec_names_and_root() {
    let t = "\
name: g
nodes:
  u: {kind: uml, root: /nonexistent-vecbox-root}
  h: {kind: host}
links:
  - {endpoints: [h:eth0, u:eth0]}
";
    let d = check(t).unwrap_err();
    assert!(
        d.iter()
            .any(|x| x.message.contains("UML node `u` has no interface")),
        "{d:?}"
    );
    assert!(
        d.iter().any(|x| x.message.contains("does not exist")),
        "{d:?}"
    );
}

#[test]
fn router_ports_are_translated() {
    let t = "\
name: r
nodes:
  r1:
    kind: router
    config:
      interfaces:
        - {port: left, addresses: [10.1.0.1/24]}
        - {port: right, addresses: [10.2.0.1/24]}
  a: {kind: host}
  b: {kind: host}
links:
  - {endpoints: [a:eth0, r1:left]}
  - {endpoints: [b:eth0, r1:right]}
";
    let p = check(t).unwrap();
    let cfg = &p.node("r1").unwrap().config.as_ref().unwrap().text;
    assert!(
        cfg.contains("\"vec0\"") && cfg.contains("\"vec1\""),
        "{cfg}"
    );
    assert!(!cfg.contains("left"), "{cfg}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
    #[test]
    fn never_panics_on_arbitrary_text(s in ".{0,400}") {
        let _ = check_text("f.yaml", &s, Path::new("/tmp/f.yaml"));
    }

    #[test]
    fn never_panics_on_mutated_topology(pos in 0usize..300, byte in proptest::prelude::any::<u8>()) {
        let mut b = BASIC.as_bytes().to_vec();
        let i = pos % b.len();
        b[i] = byte;
        let s = String::from_utf8_lossy(&b).into_owned();
        let _ = check_text("f.yaml", &s, Path::new("/tmp/f.yaml"));
    }
}

#[test]
fn firewall_rule_text_ports_are_translated() {
    let t = "\
name: q
nodes:
  fw:
    kind: firewall
    rules: |
      policy drop
      accept in inside proto icmp
      accept out outside proto tcp dport 5201
  a: {kind: host}
  b: {kind: host}
links:
  - {endpoints: [a:eth0, fw:inside]}
  - {endpoints: [fw:outside, b:eth0]}
";
    let p = check(t).unwrap();
    let f = p.node("fw").unwrap().config.as_ref().unwrap();
    assert_eq!(f.key, "rules");
    assert_eq!(
        f.text,
        "policy drop\naccept in vec0 proto icmp\naccept out vec1 proto tcp dport 5201\n"
    );
}

#[test]
fn seccomp_option_reaches_the_guest_and_is_checked() {
    let t = BASIC.replace("kind: bridge", "kind: bridge\n    options: {seccomp: log}");
    let p = check(&t).unwrap();
    let args = crate::lab::spawn::guest_args(&p, p.node("sw").unwrap());
    assert!(args.iter().any(|a| a == "seccomp=log"), "{args:?}");
    let t = BASIC.replace(
        "kind: bridge",
        "kind: bridge\n    options: {seccomp: strict}",
    );
    let d = check(&t).unwrap_err();
    assert!(
        d[0].message.contains("seccomp") && d[0].to_string().contains("kill"),
        "{d:?}"
    );
}
