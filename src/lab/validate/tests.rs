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
    // x sorts before y: it has the underlay's first address.
    let u = &p.underlays[0];
    assert_eq!(p.nodes[u.nodes[0]].name, "x");
    assert!(
        x.contains(&format!("src={},dst={}", u.addr[0], u.addr[1]))
            && y.contains(&format!("src={},dst={}", u.addr[1], u.addr[0])),
        "{x} {y}"
    );
    assert!(
        u.kernel[0].ends_with('a') && u.kernel[1].ends_with('b'),
        "{u:?}"
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
    let mac = x.ifaces[0].mac.clone().unwrap();
    assert_eq!(
        x.ifaces[0].spec.as_deref(),
        Some(format!("vec0:transport=fd,fd=3,mac={mac},vec=0").as_str())
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
    let args = crate::lab::spawn::guest_args(&p.run_dir(), p.node("sw").unwrap());
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

/// Every link type, guests and hosts: what reordering must not change.
const ALL_TYPES: &str = "\
name: ident
nodes:
  h1: {kind: host}
  h2: {kind: host}
  sw: {kind: bridge}
  x: {kind: xconnect}
  y: {kind: bridge}
  z: {kind: bridge}
links:
  - {endpoints: [h1:eth0, sw:left]}
  - {endpoints: [h2:tap0, x:host], type: tap}
  - {endpoints: [x:up, sw:right]}
  - {endpoints: [sw:t1, y:t1], type: gre, key: 7}
  - {endpoints: [sw:t2, y:t2], type: l2tpv3, session: 9, udp: true}
  - {endpoints: [y:b, z:b], type: bess}
  - {endpoints: [z:l2, sw:l2], type: l2tpv3, session: 3, udp: true}
";

/// Reverse the order of the `links:` and `nodes:` lists of [`ALL_TYPES`].
fn reversed(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let n = lines.iter().position(|l| *l == "nodes:").unwrap();
    let l = lines.iter().position(|l| *l == "links:").unwrap();
    let mut out: Vec<&str> = lines[..=n].to_vec();
    out.extend(lines[n + 1..l].iter().rev());
    out.push("links:");
    out.extend(lines[l + 1..].iter().rev());
    out.join("\n") + "\n"
}

/// Everything generated, by identity.
fn by_identity(p: &crate::lab::Plan) -> Vec<String> {
    let mut v = Vec::new();
    for n in &p.nodes {
        for f in &n.ifaces {
            v.push(format!(
                "{}:{} {:?} {:?} {:?} {:?} {:?}",
                n.name, f.name, f.kernel, f.unit, f.mac, f.tap_fd, f.spec
            ));
        }
        v.push(format!("{} {:?}", n.name, n.config));
    }
    for l in &p.links {
        let id = crate::lab::alloc::link_id(&l.names[0], &l.names[1]);
        v.push(format!("{id} {:?} {:?}", l.socket, l.udp_ports));
    }
    for u in &p.underlays {
        let names = [&p.nodes[u.nodes[0]].name, &p.nodes[u.nodes[1]].name];
        v.push(format!("{names:?} {:?} {:?} {}", u.kernel, u.addr, u.mtu));
    }
    v.sort();
    v
}

#[test]
fn reordering_nodes_and_links_changes_no_allocation() {
    let a = check(ALL_TYPES).unwrap();
    let b = check(&reversed(ALL_TYPES)).unwrap();
    assert_eq!(b.nodes[0].name, "z", "the file really was reordered");
    assert_eq!(by_identity(&a), by_identity(&b));
    assert_eq!(a.lock, b.lock);
    // Names fit, and are unique where they share a namespace (the lab, here).
    let mut names: Vec<&String> = a
        .nodes
        .iter()
        .flat_map(|n| n.ifaces.iter().filter_map(|f| f.kernel.as_ref()))
        .chain(a.underlays.iter().flat_map(|u| u.kernel.iter()))
        .collect();
    assert!(names.iter().all(|k| k.len() <= 15), "{names:?}");
    let all = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), all, "{names:?}");
    // Units: the names sorted (host < up); MACs everywhere; sockets in the run directory.
    let x = a.node("x").unwrap();
    assert_eq!(
        x.ifaces
            .iter()
            .map(|f| (f.name.as_str(), f.unit))
            .collect::<Vec<_>>(),
        [("host", Some(0)), ("up", Some(1))]
    );
    assert!(
        a.nodes
            .iter()
            .all(|n| n.ifaces.iter().all(|f| f.mac.is_some()))
    );
    let bess = a.links.iter().find(|l| l.socket.is_some()).unwrap();
    let sock = bess.socket.as_ref().unwrap();
    let sock = sock.to_str().unwrap();
    assert!(sock.starts_with("/run/vecbox/ident/bess-"), "{sock}");
}

#[test]
fn allocations_of_a_running_lab_are_kept() {
    let before = check(ALL_TYPES).unwrap();
    // A new interface `a` on `sw` sorts first: alone it would take vec0, but `left`
    // already has it in the running lab.
    let grown = ALL_TYPES.replace(
        "  h2: {kind: host}\n",
        "  h2: {kind: host}\n  h3: {kind: host}\n",
    ) + "  - {endpoints: [h3:eth0, sw:a]}\n";
    let fresh = check(&grown).unwrap();
    let kept =
        crate::lab::check_text_with("t.yaml", &grown, Path::new("/tmp/t.yaml"), &before.lock)
            .unwrap();
    let unit = |p: &crate::lab::Plan, f: &str| {
        p.node("sw")
            .unwrap()
            .ifaces
            .iter()
            .find(|i| i.name == f)
            .unwrap()
            .unit
    };
    assert_eq!(unit(&fresh, "a"), Some(0));
    assert_eq!(unit(&kept, "left"), unit(&before, "left"));
    assert_ne!(unit(&kept, "a"), unit(&kept, "left"));
    // Everything the old lab had keeps its value.
    let old = by_identity(&before);
    let new = by_identity(&kept);
    for line in &old {
        if line.starts_with("sw ") {
            continue; // the bridge has no file; its line lists no ports
        }
        assert!(new.contains(line), "{line} changed:\n{new:#?}");
    }
}

#[test]
fn a_colliding_new_underlay_probes_and_the_old_one_keeps_its_slot() {
    let two = "\
name: probe
nodes:
  a: {kind: bridge}
  b: {kind: bridge}
links:
  - {endpoints: [a:t0, b:t0], type: gre}
  - {endpoints: [a:t1, b:t1], type: gre, key: 1}
";
    let three = format!(
        "{two}  - {{endpoints: [a:t2, c:t0], type: gre}}\n  - {{endpoints: [b:t2, c:t1], type: gre}}\n"
    )
    .replace("  b: {kind: bridge}\n", "  b: {kind: bridge}\n  c: {kind: bridge}\n");
    let fresh = check(&three).unwrap();
    let slot_of = |p: &crate::lab::Plan, id: &str| p.lock.underlays[id].slot;
    // Pretend the running lab's a|b underlay already holds the slot a|c hashes to.
    let mut prior = check(two).unwrap().lock;
    let wanted = slot_of(&fresh, "a|c");
    prior.underlays.get_mut("a|b").unwrap().slot = wanted;
    let kept =
        crate::lab::check_text_with("t.yaml", &three, Path::new("/tmp/t.yaml"), &prior).unwrap();
    assert_eq!(slot_of(&kept, "a|b"), wanted, "the running underlay stays");
    assert_ne!(slot_of(&kept, "a|c"), wanted, "the new one probes past it");
    let slots: std::collections::BTreeSet<u32> =
        kept.lock.underlays.values().map(|u| u.slot).collect();
    assert_eq!(slots.len(), 3);
}

#[test]
fn values_of_removed_objects_are_not_reused_in_the_same_change() {
    let before = check(ALL_TYPES).unwrap();
    // `right` (x:up – sw:right) goes, `zz` comes: it must not take `right`'s unit,
    // kernel name or MAC while `right` still exists.
    let changed = ALL_TYPES.replace(
        "{endpoints: [x:up, sw:right]}",
        "{endpoints: [x:up, sw:zz]}",
    );
    let after =
        crate::lab::check_text_with("t.yaml", &changed, Path::new("/tmp/t.yaml"), &before.lock)
            .unwrap();
    let f = |p: &crate::lab::Plan, name: &str| {
        p.node("sw")
            .unwrap()
            .ifaces
            .iter()
            .find(|i| i.name == name)
            .cloned()
            .unwrap()
    };
    let (old, new) = (f(&before, "right"), f(&after, "zz"));
    assert_ne!(old.unit, new.unit);
    assert_ne!(old.kernel, new.kernel);
    assert_ne!(old.mac, new.mac);
    // A fresh lab from the same file may use them.
    let fresh = check(&changed).unwrap();
    let units: Vec<_> = fresh
        .node("sw")
        .unwrap()
        .ifaces
        .iter()
        .map(|i| i.unit)
        .collect();
    assert!(units.contains(&old.unit), "{units:?}");
}
