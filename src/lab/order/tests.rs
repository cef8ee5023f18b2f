//! Plans made from a recorded lab and a changed file, without a kernel: what is done,
//! in which order, with which symbol and disruption.

use std::path::Path;

use crate::lab::actions::{ApplyPlan, Step, Symbol};
use crate::lab::control::SlotInfo;
use crate::lab::objects::Objects;
use crate::lab::observe::{self, Drift, Observed};
use crate::lab::{Plan, apply, check_text, check_text_with};

fn plan_of(text: &str) -> Plan {
    check_text("t.yaml", text, Path::new("/tmp/t.yaml")).unwrap()
}

/// The lab of `text` as running: recorded, every process node running.
fn running(text: &str) -> Observed {
    let p = plan_of(text);
    let mut o = observe::empty(&p.lab, &p);
    o.recorded.objects = Objects::of(&p);
    o.status.slots = p
        .nodes
        .iter()
        .filter(|n| n.kind.is_process())
        .map(|n| SlotInfo {
            name: n.name.clone(),
            pid: Some((1, 1)),
            state: "running".into(),
            restarts: 0,
            def: n.clone(),
        })
        .collect();
    o
}

fn plan(obs: &Observed, text: &str) -> ApplyPlan {
    let desired = check_text_with("t.yaml", text, Path::new("/tmp/t.yaml"), &obs.lock()).unwrap();
    apply::make_plan(obs, desired).unwrap()
}

fn pos(p: &ApplyPlan, f: impl Fn(&Step) -> bool) -> usize {
    p.steps()
        .position(f)
        .unwrap_or_else(|| panic!("step not found in {:#?}", p.steps().collect::<Vec<_>>()))
}

fn has_line(p: &ApplyPlan, sym: Symbol, object: &str, disruption: &str) -> bool {
    p.lines()
        .any(|l| l.symbol == sym && l.object == object && l.disruption.contains(disruption))
}

const LAB: &str = "\
name: t
nodes:
  a: {kind: host, interfaces: {eth0: {addresses: [10.0.0.1/24]}}}
  b: {kind: host, interfaces: {eth0: {addresses: [10.0.0.2/24]}}}
  sw: {kind: bridge}
  fw:
    kind: firewall
    rules: |
      policy accept
  c: {kind: host, interfaces: {eth0: {addresses: [10.0.1.3/24]}}}
links:
  - endpoints: [a:eth0, sw:p1]
  - endpoints: [b:eth0, sw:p2]
  - endpoints: [sw:f, fw:in]
  - endpoints: [fw:out, c:eth0]
";

#[test]
fn the_same_lab_reordered_plans_nothing() {
    let obs = running(LAB);
    let reordered = "\
name: t
nodes:
  c: {kind: host, interfaces: {eth0: {addresses: [10.0.1.3/24]}}}
  fw:
    kind: firewall
    rules: |
      policy accept
  sw: {kind: bridge}
  b: {kind: host, interfaces: {eth0: {addresses: [10.0.0.2/24]}}}
  a: {kind: host, interfaces: {eth0: {addresses: [10.0.0.1/24]}}}
links:
  - endpoints: [fw:out, c:eth0]
  - endpoints: [sw:f, fw:in]
  - endpoints: [b:eth0, sw:p2]
  - endpoints: [a:eth0, sw:p1]
";
    let p = plan(&obs, reordered);
    assert!(p.is_empty(), "{}", p.render());
    assert!(p.render().contains("No changes"));
}

#[test]
fn new_things_come_before_removals_and_running_guests_get_ports_hot() {
    let obs = running(LAB);
    let changed = LAB
        .replace(
            "  b: {kind: host, interfaces: {eth0: {addresses: [10.0.0.2/24]}}}\n",
            "  d: {kind: host, interfaces: {eth0: {addresses: [10.0.0.4/24]}}}\n",
        )
        .replace("[b:eth0, sw:p2]", "[d:eth0, sw:p4]");
    let p = plan(&obs, &changed);
    let made = pos(&p, |s| matches!(s, Step::Netns { node } if node == "d"));
    let hot = pos(
        &p,
        |s| matches!(s, Step::PortAdd { node, .. } if node == "sw"),
    );
    let unplug = pos(
        &p,
        |s| matches!(s, Step::PortRemove { node, .. } if node == "sw"),
    );
    let gone = pos(
        &p,
        |s| matches!(s, Step::NetnsDelete { node } if node == "b"),
    );
    let define = pos(&p, |s| matches!(s, Step::Define { node } if node == "sw"));
    assert!(
        made < hot && hot < unplug && unplug < gone && gone < define,
        "{}",
        p.render()
    );
    // The new port takes a unit the running bridge does not use (p2 still holds one).
    let units: Vec<u32> = p
        .steps()
        .filter_map(|s| match s {
            Step::PortAdd { spec, .. } => crate::lab::guestctl::unit_of_spec(spec),
            Step::PortRemove { unit, .. } => Some(*unit),
            _ => None,
        })
        .collect();
    assert_eq!(units.len(), 2);
    assert_ne!(units[0], units[1]);
    assert!(has_line(&p, Symbol::Create, "node d", "none"));
    assert!(has_line(&p, Symbol::Remove, "node b", "none"));
    assert!(
        !p.steps()
            .any(|s| matches!(s, Step::Start { .. } | Step::Stop { .. }))
    );
}

#[test]
fn rules_change_in_place_and_cpu_restarts() {
    let obs = running(LAB);
    let p = plan(
        &obs,
        &LAB.replace("      policy accept\n", "      policy drop\n"),
    );
    let file = pos(&p, |s| matches!(s, Step::File { node } if node == "fw"));
    let reload = pos(&p, |s| matches!(s, Step::Reload { node } if node == "fw"));
    assert!(file < reload);
    assert!(
        has_line(&p, Symbol::Change, "node fw", "none"),
        "{}",
        p.render()
    );
    assert!(p.render().contains("connections kept"));
    let p = plan(&obs, &LAB.replace("kind: bridge}", "kind: bridge, cpu: 0}"));
    assert!(
        has_line(&p, Symbol::Replace, "node sw", "guest restart sw"),
        "{}",
        p.render()
    );
    assert!(
        p.steps()
            .any(|s| matches!(s, Step::Start { node } if node == "sw"))
    );
    assert!(
        p.lines()
            .any(|l| l.symbol == Symbol::Affected && l.object == "node a"),
        "{}",
        p.render()
    );
    // A kind that changes replaces the node and its links.
    let p = plan(
        &obs,
        &LAB.replace(
            "sw: {kind: bridge}",
            "sw: {kind: firewall, rules: \"policy accept\"}",
        ),
    );
    assert!(
        has_line(&p, Symbol::Replace, "node sw", "guest restart sw"),
        "{}",
        p.render()
    );
    assert!(
        has_line(
            &p,
            Symbol::Replace,
            "link a:eth0 – sw:p1",
            "link bounce a:eth0"
        ),
        "{}",
        p.render()
    );
}

const UML: &str = "\
name: t
nodes:
  h: {kind: host, interfaces: {eth0: {addresses: [10.0.0.1/24]}}}
  g: {kind: host, interfaces: {eth0: {addresses: [10.0.1.1/24]}}}
  u:
    kind: uml
    root: /
links:
  - endpoints: [h:eth0, u:vec0]
  - endpoints: [g:eth0, u:vec1]
";

#[test]
fn uml_gains_interfaces_hot_but_restarts_to_lose_one() {
    // Validating the file needs a UML kernel (Debian's user-mode-linux): without one
    // this fails, naming it.
    let one = UML
        .replace("  - endpoints: [g:eth0, u:vec1]\n", "")
        .replace(
            "  g: {kind: host, interfaces: {eth0: {addresses: [10.0.1.1/24]}}}\n",
            "",
        );
    let obs = running(&one);
    let p = plan(&obs, UML);
    assert!(
        p.steps()
            .any(|s| matches!(s, Step::PortAdd { node, .. } if node == "u"))
    );
    assert!(
        !p.steps().any(|s| matches!(s, Step::Start { .. })),
        "{}",
        p.render()
    );
    let obs = running(UML);
    let p = plan(&obs, &one);
    assert!(
        has_line(&p, Symbol::Replace, "node u", "guest restart u"),
        "{}",
        p.render()
    );
    assert!(
        p.render()
            .contains("UML cannot remove an interface that is up")
    );
    let restart = pos(&p, |s| matches!(s, Step::Start { node } if node == "u"));
    let gone = pos(
        &p,
        |s| matches!(s, Step::NetnsDelete { node } if node == "g"),
    );
    assert!(restart < gone);
}

#[test]
fn a_moving_interface_is_swapped_before_the_new_node_starts() {
    let obs = running(LAB);
    // a moves from sw to a new bridge sw2 (with b).
    let moved = LAB
        .replace(
            "  sw: {kind: bridge}\n",
            "  sw: {kind: bridge}\n  sw2: {kind: bridge}\n",
        )
        .replace("[a:eth0, sw:p1]", "[a:eth0, sw2:p1]")
        + "  - endpoints: [sw:x, sw2:x]\n";
    let p = plan(&obs, &moved);
    let old = pos(
        &p,
        |s| matches!(s, Step::PortRemove { node, .. } if node == "sw"),
    );
    let new = pos(
        &p,
        |s| matches!(s, Step::Veth { kernel, .. } if kernel[0] == "eth0"),
    );
    let start = pos(&p, |s| matches!(s, Step::Start { node } if node == "sw2"));
    let other = pos(&p, |s| matches!(s, Step::Netns { node } if node == "sw2"));
    assert!(other < old && old < new && new < start, "{}", p.render());
    assert!(p.render().contains("its interface moves"), "{}", p.render());
}

#[test]
fn drift_is_shown_and_repaired_only_as_planned() {
    let mut obs = running(LAB);
    obs.drift = vec![
        Drift::NetnsMissing { node: "c".into() },
        Drift::LeftoverIface {
            netns: "t.sw".into(),
            kernel: "vbzzzz".into(),
        },
        Drift::NotRunning {
            node: "fw".into(),
            state: "restarting".into(),
        },
    ];
    let p = plan(&obs, LAB);
    assert!(
        p.drift.iter().any(|d| d.contains("namespace is gone")),
        "{:?}",
        p.drift
    );
    assert!(p.drift.iter().any(|d| d.contains("restarting")));
    assert!(
        has_line(&p, Symbol::Replace, "node c", "link bounce fw:out"),
        "{}",
        p.render()
    );
    let leftover = pos(
        &p,
        |s| matches!(s, Step::IfaceDelete { kernel, .. } if kernel == "vbzzzz"),
    );
    assert_eq!(leftover, 0, "leftovers go first");
    // Nothing is done for the process the supervisor is restarting.
    assert!(
        !p.steps()
            .any(|s| matches!(s, Step::Start { node } if node == "fw"))
    );
}

#[test]
fn an_impairment_change_is_planned_in_place_without_a_port_reopen() {
    let with = |imp: &str| {
        LAB.replace(
            "  - endpoints: [a:eth0, sw:p1]\n",
            &format!("  - endpoints: [a:eth0, sw:p1]\n    impair: {imp}\n"),
        )
    };
    let obs = running(&with("{delay: 20ms}"));
    // One direction changes (a → sw), the other (sw → a) stays.
    let p = plan(
        &obs,
        &with("{a_to_b: {delay: 20ms, loss: 100%}, b_to_a: {delay: 20ms}}"),
    );
    assert!(
        has_line(&p, Symbol::Change, "link a:eth0 – sw:p1", "none"),
        "{}",
        p.render()
    );
    let l = p
        .lines()
        .find(|l| l.object == "link a:eth0 – sw:p1")
        .unwrap();
    assert!(
        l.detail
            .contains("impairment a:eth0 → sw:p1: delay=20ms → delay=20ms loss=100%"),
        "{}",
        l.detail
    );
    assert!(!l.detail.contains("sw:p1 → a:eth0"), "{}", l.detail);
    let id = "a:eth0|sw:p1".to_string();
    let steps: Vec<&Step> = p.steps().collect();
    assert_eq!(
        steps,
        [&Step::Impair { link: id.clone() }],
        "{}",
        p.render()
    );
    assert_eq!(p.lines().count(), 1, "{}", p.render());
    // Removed entirely: cleared in place too.
    let p = plan(&obs, LAB);
    assert!(has_line(&p, Symbol::Change, "link a:eth0 – sw:p1", "none"));
    let l = p
        .lines()
        .find(|l| l.object == "link a:eth0 – sw:p1")
        .unwrap();
    assert!(l.detail.contains("delay=20ms → none"), "{}", l.detail);
    assert!(p.steps().all(|s| matches!(s, Step::Impair { .. })));
    // Nothing recorded differs from what is desired: nothing to set.
    let want = Objects::of(&plan_of(&with("{delay: 20ms}")));
    crate::lab::execute::impair(&plan_of(&with("{delay: 20ms}")), &want, &id).unwrap();
}

#[test]
fn an_impairment_that_needs_a_new_datapath_swaps_the_link() {
    let lab = "\
name: t
nodes:
  a: {kind: host, interfaces: {eth0: {addresses: [10.0.0.1/24]}}}
  b: {kind: host, interfaces: {eth0: {addresses: [10.0.0.2/24]}}}
links:
  - endpoints: [a:eth0, b:eth0]
";
    let obs = running(lab);
    let imp = lab.replace("b:eth0]\n", "b:eth0]\n    impair: {delay: 5ms}\n");
    let p = plan(&obs, &imp);
    let r = p.render();
    assert!(
        has_line(&p, Symbol::Remove, "link a:eth0 – b:eth0", ""),
        "{r}"
    );
    assert!(
        r.contains("its impairment needs vecbox's datapath _"),
        "{r}"
    );
    assert_eq!(
        p.lines().filter(|l| l.symbol == Symbol::Remove).count(),
        1,
        "the link is broken once: {r}"
    );
    // With the datapath there, a changed setting is in place.
    let obs = running(&imp);
    let p = plan(&obs, &imp.replace("5ms", "7ms"));
    assert!(
        p.steps().all(|s| matches!(s, Step::Impair { .. })),
        "{}",
        p.render()
    );
    // Both directions (one map for both): one step on each of the datapath's links.
    assert_eq!(p.steps().count(), 2, "{}", p.render());
    assert!(p.lines().all(|l| l.disruption == "none"), "{}", p.render());
    assert!(
        p.lines()
            .any(|l| l.detail.contains("delay=5ms → delay=7ms")),
        "{}",
        p.render()
    );
}
