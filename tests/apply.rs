//! `vecbox apply` on real labs (namespaces, guests, a UML kernel): a change made while
//! sequence-numbered traffic crosses the untouched paths, which must not notice; plans
//! that match what is done; stale plans and invalid files refused; `kill -9` at every
//! step, then `apply` or `down`, leaving nothing behind.

mod common;
#[path = "apply/probe.rs"]
mod probe;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::lab::{TestLab, assert_clean, snapshot, vecbox, vecbox_ok};
use probe::Probe;

/// `vecbox apply ARGS` → (exit status, stdout, stderr).
fn apply(args: &[&str]) -> (i32, String, String) {
    let mut a = vec!["apply"];
    a.extend_from_slice(args);
    let out = vecbox(&a);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn journal(lab: &TestLab) -> Vec<serde_json::Value> {
    std::fs::read_to_string(format!("/run/vecbox/{}/journal", lab.name))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn inode(lab: &TestLab, node: &str) -> u64 {
    std::fs::metadata(format!("/run/netns/{}.{node}", lab.name))
        .unwrap()
        .ino()
}

/// Interface name → index in a node's namespace.
fn ifindexes(lab: &TestLab, node: &str) -> BTreeMap<String, u32> {
    let out = common::run(&["ip", "-n", &format!("{}.{node}", lab.name), "-o", "link"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(": ");
            let idx = f.next()?.trim().parse().ok()?;
            let name = f.next()?.split('@').next()?.to_string();
            Some((name, idx))
        })
        .collect()
}

fn pid(lab: &TestLab, node: &str) -> i64 {
    lab.node_state(node)["pid"].as_i64().unwrap_or(0)
}

/// Write `text` (with `@LAB@`) as the lab's file.
fn rewrite(lab: &TestLab, text: &str) {
    std::fs::write(&lab.file, text.replace("@LAB@", &lab.name)).unwrap();
}

/// A `key=value` number from a guest's `proc stats` function line.
fn stat(lab: &TestLab, node: &str, key: &str) -> u64 {
    let (_, out) = common::vecbox_console(&format!("{}.{node}", lab.name), &["proc", "stats"]);
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in the stats of {node}: {out}"))
}

const BIG: &str = "\
name: @LAB@
nodes:
  h1: {kind: host, interfaces: {eth0: {addresses: [10.0.0.1/24]}}}
  h2: {kind: host, interfaces: {eth0: {addresses: [10.0.0.2/24]}}}
  old: {kind: host, interfaces: {eth0: {addresses: [10.0.0.9/24]}}}
  sw: {kind: bridge}
  h3: {kind: host, interfaces: {eth0: {addresses: [10.0.1.3/24]}}}
  h4: {kind: host, interfaces: {eth0: {addresses: [10.0.1.4/24]}}}
  fw:
    kind: firewall
    rules: |
      policy accept
  h5: {kind: host, interfaces: {eth0: {addresses: [10.0.2.5/24]}}}
  h6: {kind: host, interfaces: {eth0: {addresses: [10.0.2.6/24]}}}
  x: {kind: xconnect}
links:
  - endpoints: [h1:eth0, sw:p1]
  - endpoints: [h2:eth0, sw:p2]
  - endpoints: [old:eth0, sw:p9]
  - endpoints: [h3:eth0, fw:inside]
  - endpoints: [fw:outside, h4:eth0]
  - endpoints: [h5:eth0, x:a]
  - endpoints: [x:b, h6:eth0]
    impair: {delay: 1ms}
";

/// [`BIG`] changed in one apply: `old` goes, `n` (an xconnect with two links) and the
/// host behind it come, the firewall gets another rule set, the impairment on the
/// h5→h6 path changes (in place, under that path's traffic).
fn big_changed() -> String {
    BIG.replace("impair: {delay: 1ms}", "impair: {delay: 3ms}")
        .replace(
        "  old: {kind: host, interfaces: {eth0: {addresses: [10.0.0.9/24]}}}\n",
        "  n: {kind: xconnect}\n  h7: {kind: host, interfaces: {eth0: {addresses: [10.0.0.7/24]}}}\n",
    )
    .replace(
        "      policy accept\n",
        "      policy accept\n      drop in inside proto tcp dport 9999\n      drop in inside proto udp dport 9998\n",
    )
    .replace(
        "  - endpoints: [old:eth0, sw:p9]\n",
        "  - endpoints: [sw:p7, n:a]\n  - endpoints: [n:b, h7:eth0]\n",
    )
}

#[test]
fn untouched_paths_lose_nothing_while_a_lab_changes() {
    let lab = TestLab::new(BIG);
    let before = snapshot(&lab.name);
    lab.up();
    for (from, to) in [("h1", "10.0.0.2"), ("h3", "10.0.1.4"), ("h5", "10.0.2.6")] {
        assert!(lab.ping(from, to), "{from} -> {to} before the change");
    }
    // Two more flows through the firewall, so a firewall that lost its connection
    // table would show it in `conntrack_created`.
    assert!(
        lab.exec(
            "h3",
            &["ping", "-c", "1", "-W", "2", "-p", "aa", "10.0.1.4"]
        )
        .status
        .success()
    );
    let ns = |n: &str| format!("{}.{n}", lab.name);
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    let every = Duration::from_millis(5);
    let (n1, n2, n3, n4, n5, n6) = (ns("h1"), ns("h2"), ns("h3"), ns("h4"), ns("h5"), ns("h6"));
    let probes = vec![
        Probe::start(
            "h1→h2 over the bridge",
            (&n1, ip("10.0.0.1")),
            (&n2, ip("10.0.0.2")),
            7001,
            every,
        ),
        Probe::start(
            "h3→h4 through the firewall",
            (&n3, ip("10.0.1.3")),
            (&n4, ip("10.0.1.4")),
            7002,
            every,
        ),
        Probe::start(
            "h5→h6 over the xconnect",
            (&n5, ip("10.0.2.5")),
            (&n6, ip("10.0.2.6")),
            7003,
            every,
        ),
        Probe::start(
            "h2→h1 over the bridge",
            (&n2, ip("10.0.0.2")),
            (&n1, ip("10.0.0.1")),
            7004,
            every,
        ),
    ];
    std::thread::sleep(Duration::from_millis(800));
    let untouched = ["h1", "h2", "sw", "h3", "h4", "fw", "h5", "h6", "x"];
    let pids: BTreeMap<&str, i64> = ["sw", "fw", "x"]
        .iter()
        .map(|n| (*n, pid(&lab, n)))
        .collect();
    let inodes: BTreeMap<&str, u64> = untouched.iter().map(|n| (*n, inode(&lab, n))).collect();
    let links: BTreeMap<&str, BTreeMap<String, u32>> =
        untouched.iter().map(|n| (*n, ifindexes(&lab, n))).collect();
    let created = stat(&lab, "fw", "conntrack_created");
    assert!(created >= 2, "the firewall tracked {created} connections");

    rewrite(&lab, &big_changed());
    let (code, plan, err) = apply(&[lab.file.to_str().unwrap(), "--detailed-exitcode"]);
    assert_eq!(code, 2, "{plan}{err}");
    std::thread::sleep(Duration::from_millis(800));
    let outcomes: Vec<_> = probes.into_iter().map(Probe::finish).collect();

    for o in &outcomes {
        eprintln!(
            "{}: sent {}, received {}, largest gap {:.1} ms",
            o.name, o.sent, o.received, o.max_gap_ms
        );
    }
    for o in &outcomes {
        assert!(o.sent >= 200, "{o:?}");
        assert!(
            o.lost.is_empty(),
            "{}: lost {} of {}: {:?}",
            o.name,
            o.lost.len(),
            o.sent,
            o
        );
        assert_eq!(o.duplicates, 0, "{o:?}");
        assert_eq!(o.received as u64, o.sent, "{o:?}");
        assert!(
            o.max_gap_ms < 50.0,
            "{}: gap of {:.1} ms",
            o.name,
            o.max_gap_ms
        );
    }
    for (line, want) in [
        ("node old", "-"),
        ("node n", "+"),
        ("node h7", "+"),
        ("link sw:p7 – n:a", "+"),
        ("link n:b – h7:eth0", "+"),
        ("node fw", "~"),
    ] {
        assert!(
            plan.lines()
                .any(|l| l.starts_with(want) && l.contains(line)),
            "no `{want} {line}` in:\n{plan}"
        );
    }
    assert!(plan.contains("connections kept"), "{plan}");
    for dir in ["x:b → h6:eth0", "h6:eth0 → x:b"] {
        let want = format!("impairment {dir}: delay=1ms → delay=3ms");
        assert!(
            plan.lines().any(|l| l.trim_start().starts_with('~')
                && l.contains(&want)
                && l.trim_end().ends_with("none")),
            "no in-place `{want}` in:\n{plan}"
        );
    }
    // Untouched: same processes, namespaces, interfaces.
    for (n, p) in &pids {
        assert_eq!(pid(&lab, n), *p, "{n} was restarted");
    }
    for (n, i) in &inodes {
        assert_eq!(inode(&lab, n), *i, "the namespace of {n} was made again");
    }
    for (n, was) in &links {
        let now = ifindexes(&lab, n);
        for (name, idx) in was {
            if *n == "sw" && !now.contains_key(name) {
                continue; // the port to `old` went with it
            }
            assert_eq!(
                now.get(name),
                Some(idx),
                "{n}: interface {name} was made again"
            );
        }
    }
    assert!(
        stat(&lab, "fw", "conntrack_created") >= created,
        "the firewall's connection table was reset"
    );
    // The new path carries traffic, the old node is gone, the new rules hold.
    assert!(lab.ping("h7", "10.0.0.2"), "h7 -> h2 through n and sw");
    assert!(!std::path::Path::new(&format!("/run/netns/{}", ns("old"))).exists());
    let (_, rules) = common::vecbox_console(&ns("fw"), &["proc", "rules"]);
    assert!(rules.contains("dport 9999"), "{rules}");
    let impairs = vecbox(&["impair", &lab.name, "--json"]);
    let impairs: serde_json::Value = serde_json::from_slice(&impairs.stdout).unwrap();
    let now: Vec<&str> = impairs
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["ends"][0] == "x:b")
        .flat_map(|l| [l["now"][0].as_str(), l["now"][1].as_str()])
        .flatten()
        .collect();
    assert_eq!(now, ["delay=3ms", "delay=3ms"], "{impairs}");
    // A second apply has nothing to do and does nothing.
    let lines = journal(&lab).len();
    let (code, out, err) = apply(&[lab.file.to_str().unwrap(), "--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("No changes"), "{out}");
    assert_eq!(
        journal(&lab).len(),
        lines,
        "a second apply wrote to the journal"
    );
    lab.down();
    assert_clean(&lab.name, &before);
}

const SMALL: &str = "\
name: @LAB@
nodes:
  a: {kind: host, interfaces: {eth0: {addresses: [10.0.0.1/24]}}}
  b: {kind: host, interfaces: {eth0: {addresses: [10.0.0.2/24]}}}
  sw: {kind: bridge}
links:
  - endpoints: [a:eth0, sw:p1]
  - endpoints: [b:eth0, sw:p2]
";

/// [`SMALL`] with a third host.
fn small_grown() -> String {
    SMALL.replace(
        "  sw: {kind: bridge}\n",
        "  c: {kind: host, interfaces: {eth0: {addresses: [10.0.0.3/24]}}}\n  sw: {kind: bridge}\n",
    ) + "  - endpoints: [c:eth0, sw:p3]\n"
}

#[test]
fn plans_reordered_dry_run_stale_invalid_and_lab_state_messages() {
    let lab = TestLab::new(SMALL);
    let before = snapshot(&lab.name);
    let file = lab.file.to_str().unwrap().to_string();
    // Not up: apply says so and points to up.
    let (code, _, err) = apply(&[&file]);
    assert_eq!(code, 1);
    assert!(
        err.contains("is not up") && err.contains("vecbox up"),
        "{err}"
    );
    lab.up();
    // Up again: it says so and points to apply.
    let out = vecbox(&["up", &file, "--detach"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already up") && err.contains("vecbox apply"),
        "{err}"
    );

    // Reordered links and nodes: nothing to do.
    let reordered = "\
name: @LAB@
nodes:
  sw: {kind: bridge}
  b: {kind: host, interfaces: {eth0: {addresses: [10.0.0.2/24]}}}
  a: {kind: host, interfaces: {eth0: {addresses: [10.0.0.1/24]}}}
links:
  - endpoints: [b:eth0, sw:p2]
  - endpoints: [a:eth0, sw:p1]
";
    rewrite(&lab, reordered);
    let (code, out, err) = apply(&[&file, "--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("No changes"), "{out}");

    // An invalid file changes nothing (exit 1 with the file's position).
    let lines = journal(&lab).len();
    let inode_a = inode(&lab, "a");
    rewrite(
        &lab,
        &small_grown().replace("[c:eth0, sw:p3]", "[c:eth0, sw:p1]"),
    );
    let (code, out, err) = apply(&[&file, "--detailed-exitcode"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("lab.yaml:") && err.contains("already used by link"),
        "{err}"
    );
    assert_eq!(journal(&lab).len(), lines);
    assert!(!std::path::Path::new(&format!("/run/netns/{}.c", lab.name)).exists());

    // A dry run changes nothing; its plan is what apply then does, step by step.
    rewrite(&lab, &small_grown());
    let saved = lab.dir.join("plan.json");
    let (code, out, err) = apply(&[
        &file,
        "--dry-run",
        "--detailed-exitcode",
        "--out",
        saved.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("+   node c") && out.contains("+   link c:eth0 – sw:p3"),
        "{out}"
    );
    assert_eq!(journal(&lab).len(), lines, "a dry run wrote to the journal");
    assert!(!std::path::Path::new(&format!("/run/netns/{}.c", lab.name)).exists());
    let plan: vecbox::lab::actions::ApplyPlan =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let planned: Vec<String> = plan.steps().map(|s| s.describe()).collect();
    assert!(!planned.is_empty());
    let (code, out2, err) = apply(&[&file, "--detailed-exitcode"]);
    assert_eq!(code, 2, "{out2}{err}");
    assert_eq!(
        out2.lines()
            .take_while(|l| !l.starts_with("Plan:"))
            .collect::<Vec<_>>(),
        out.lines()
            .take_while(|l| !l.starts_with("Plan:"))
            .collect::<Vec<_>>(),
        "the plan printed by the dry run and by the apply differ"
    );
    let done: Vec<String> = journal(&lab)[lines..]
        .iter()
        .filter(|e| e["op"] == "step")
        .map(|e| e["what"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(done, planned, "the apply did not make the dry run's plan");
    assert!(lab.ping("c", "10.0.0.1"), "c joined the lab");
    assert_eq!(inode(&lab, "a"), inode_a);

    // The saved plan is stale now: the lab moved on.
    let (code, out, err) = apply(&["--plan", saved.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("stale plan") && err.contains("generation"),
        "{err}"
    );
    // And a plan made, then overtaken by another apply, is refused too.
    rewrite(&lab, SMALL);
    let (code, _, err) = apply(&[&file, "--dry-run", "--out", saved.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    vecbox_ok(&["apply", &file]);
    let (code, _, err) = apply(&["--plan", saved.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("stale plan"), "{err}");
    assert!(!std::path::Path::new(&format!("/run/netns/{}.c", lab.name)).exists());
    lab.down();
    assert_clean(&lab.name, &before);
}

/// Guests, a tap, a firewall and a bess pair: every kind of step.
const FAULTS: &str = "\
name: @LAB@
nodes:
  a: {kind: host, interfaces: {eth0: {addresses: [10.0.0.1/24]}}}
  b: {kind: host, interfaces: {eth0: {addresses: [10.0.0.2/24]}}}
  sw: {kind: bridge}
  fw:
    kind: firewall
    rules: |
      policy accept
  c: {kind: host, interfaces: {eth0: {addresses: [10.0.0.3/24]}}}
links:
  - endpoints: [a:eth0, sw:p1]
  - endpoints: [b:eth0, sw:p2]
  - endpoints: [sw:f, fw:in]
  - endpoints: [fw:out, c:eth0]
";

/// [`FAULTS`] changed: the firewall and `c` go; an xconnect pair over bess with a host
/// behind, a tap host, and a gre link come.
fn faults_changed() -> String {
    "\
name: @LAB@
nodes:
  a: {kind: host, interfaces: {eth0: {addresses: [10.0.0.1/24]}}}
  b: {kind: host, interfaces: {eth0: {addresses: [10.0.0.2/24]}}}
  sw: {kind: bridge}
  x: {kind: xconnect}
  y: {kind: xconnect}
  d: {kind: host, interfaces: {eth0: {addresses: [10.0.0.4/24]}}, exec: [\"true\"]}
  t: {kind: host, interfaces: {tap0: {addresses: [10.0.0.5/24]}}}
links:
  - endpoints: [a:eth0, sw:p1]
  - endpoints: [b:eth0, sw:p2]
  - {endpoints: [sw:g, x:a], type: gre, key: 3}
  - {endpoints: [x:b, y:a], type: bess}
  - endpoints: [y:b, d:eth0]
  - {endpoints: [t:tap0, sw:t], type: tap}
"
    .to_string()
}

/// The lab works as `text` says: every host reaches `a`, and a second apply is empty.
fn converged(lab: &TestLab, hosts: &[&str]) {
    let (code, out, err) = apply(&[lab.file.to_str().unwrap(), "--detailed-exitcode"]);
    assert_eq!(code, 0, "not converged:\n{out}{err}");
    for h in hosts {
        assert!(lab.ping(h, "10.0.0.1"), "{h} -> a");
    }
}

#[test]
fn kill_9_at_every_step_then_apply_or_down_converges_and_leaves_nothing() {
    let lab = TestLab::new(FAULTS);
    let before = snapshot(&lab.name);
    let file = lab.file.to_str().unwrap().to_string();
    lab.up();
    rewrite(&lab, &faults_changed());
    let saved = lab.dir.join("plan.json");
    let (code, out, err) = apply(&[
        &file,
        "--dry-run",
        "--detailed-exitcode",
        "--out",
        saved.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}{err}");
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let steps = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["steps"].as_array().unwrap().len())
        .sum::<usize>();
    assert!(steps >= 15, "{out}");
    for k in 1..=steps {
        // The forward change killed at step k (after it is made; every third one before).
        let at = if k % 3 == 0 {
            format!("{k}:before")
        } else {
            k.to_string()
        };
        let out = std::process::Command::new(common::VECBOX)
            .args(["apply", &file])
            .env("VECBOX_APPLY_KILL_AT", &at)
            .output()
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "step {at}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if k % 2 == 1 {
            // Apply again: it finishes the change.
            let (code, out, err) = apply(&[&file]);
            assert_eq!(code, 0, "after a kill at step {at}:\n{out}{err}");
            assert!(out.contains("interrupted apply"), "{out}");
            converged(&lab, &["b", "d", "t"]);
            // And back, for the next round.
            rewrite(&lab, FAULTS);
            vecbox_ok(&["apply", &file]);
            converged(&lab, &["b", "c"]);
            rewrite(&lab, &faults_changed());
        } else {
            // Down: nothing is left.
            lab.down();
            assert_clean(&lab.name, &before);
            rewrite(&lab, FAULTS);
            lab.up();
            rewrite(&lab, &faults_changed());
        }
    }
    lab.down();
    assert_clean(&lab.name, &before);
}

#[test]
fn a_uml_node_gains_an_interface_without_rebooting() {
    let text = "\
name: @LAB@
nodes:
  h1: {kind: host, interfaces: {eth0: {addresses: [10.0.0.1/24]}}}
  u1:
    kind: uml
    root: /
    init: @TOPO@/uml/init.sh
    args: [VB_ADDR0=10.0.0.11/24, VB_ADDR1=10.0.1.11/24]
    ready: VECBOX-UML-READY
links:
  - endpoints: [h1:eth0, u1:vec0]
";
    let lab = TestLab::new(text);
    let before = snapshot(&lab.name);
    lab.up();
    assert!(lab.ping("h1", "10.0.0.11"));
    let uml = pid(&lab, "u1");
    let grown = std::fs::read_to_string(&lab.file).unwrap().replace(
        "links:\n",
        "  h2: {kind: host, interfaces: {eth0: {addresses: [10.0.1.2/24]}}}\nlinks:\n",
    ) + "  - endpoints: [h2:eth0, u1:vec1]\n";
    std::fs::write(&lab.file, grown).unwrap();
    let (code, out, err) = apply(&[lab.file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("+   link h2:eth0 – u1:vec1"), "{out}");
    assert!(!out.contains("guest restart"), "{out}");
    // The kernel configures vec1 when it appears (topologies/uml/init.sh).
    assert!(
        lab.ping("h2", "10.0.1.11"),
        "h2 -> u1 over its new interface"
    );
    assert_eq!(pid(&lab, "u1"), uml, "the UML kernel rebooted");
    assert!(lab.ping("h1", "10.0.0.11"));
    // Taking the interface away again restarts it, and the plan says so.
    std::fs::write(
        &lab.file,
        text.replace("@LAB@", &lab.name)
            .replace("@TOPO@", &common::lab::topologies().display().to_string()),
    )
    .unwrap();
    let (code, out, err) = apply(&[lab.file.to_str().unwrap(), "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("-/+ node u1")
            && out.contains("guest restart u1")
            && out.contains("UML cannot remove"),
        "{out}"
    );
    lab.down();
    assert_clean(&lab.name, &before);
}
