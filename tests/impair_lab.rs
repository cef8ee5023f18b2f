//! Impairments in labs: `impair:` in a topology file on a guest link and on a host↔host
//! veth link (where vecbox inserts its own datapath), seen by ping through real
//! namespaces; `vecbox impair` changing a running lab's link; `vecbox link` down and up;
//! bad input refused with its position; nothing left behind.

mod common;

use common::lab::{TestLab, assert_clean, snapshot, vecbox, vecbox_ok};

const LAB: &str = "\
name: @LAB@
nodes:
  a:
    kind: host
    interfaces:
      eth0: {addresses: [10.0.0.1/24]}
  b:
    kind: host
    interfaces:
      eth0: {addresses: [10.0.0.2/24]}
  x:
    kind: xconnect
  c:
    kind: host
    interfaces:
      eth0: {addresses: [10.0.1.1/24]}
  d:
    kind: host
    interfaces:
      eth0: {addresses: [10.0.1.2/24]}
links:
  - endpoints: [a:eth0, x:vec0]
    impair: {delay: 20ms}
  - endpoints: [x:vec1, b:eth0]
  - endpoints: [c:eth0, d:eth0]
    impair:
      a_to_b: {delay: 30ms, seed: 7}
";

/// Minimum round-trip time in ms of `count` pings from `node` to `ip`, or `None` when
/// no reply came back.
fn min_rtt(lab: &TestLab, node: &str, ip: &str, count: u32) -> Option<f64> {
    let n = count.to_string();
    let out = lab.exec(node, &["ping", "-c", &n, "-i", "0.2", "-W", "3", ip]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("min/avg/max"))?;
    let nums = line.split('=').nth(1)?.trim();
    nums.split('/').next()?.trim().parse().ok()
}

/// The settings `vecbox impair LAB --json` reports now for the direction leaving `end`.
fn now_of(lab: &str, end: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&vecbox_ok(&["impair", lab, "--json"])).unwrap();
    for l in v.as_array().unwrap() {
        for side in 0..2 {
            if l["ends"][side] == end {
                return l["now"][side].as_str().unwrap_or("?").to_string();
            }
        }
    }
    panic!("no link end {end} in {v}");
}

/// Wait until `node`'s eth0 shows NO-CARRIER (`no_carrier`) or not; `false` if it
/// did not within a few seconds.
fn carrier_becomes(lab: &TestLab, node: &str, no_carrier: bool) -> bool {
    eventually(|| {
        let out = lab.exec(node, &["ip", "-o", "link", "show", "eth0"]);
        String::from_utf8_lossy(&out.stdout).contains("NO-CARRIER") == no_carrier
    })
}

#[test]
fn lab_impairments_from_the_file_and_live() {
    let lab = TestLab::new(LAB);
    let before = snapshot(&lab.name);
    lab.up();

    // The guest link: 20 ms each way at x's vec0 (rx towards b, tx towards a).
    assert!(lab.ping("a", "10.0.0.2"), "a cannot reach b");
    let rtt = min_rtt(&lab, "a", "10.0.0.2", 5).expect("no ping replies a → b");
    assert!(
        (40.0..1000.0).contains(&rtt),
        "a → b round trip {rtt} ms; 2 × 20 ms delay set"
    );

    // The host↔host veth link: c → d only, through the datapath vecbox inserted.
    assert!(lab.ping("c", "10.0.1.2"), "c cannot reach d");
    let rtt = min_rtt(&lab, "c", "10.0.1.2", 5).expect("no ping replies c → d");
    assert!(
        (30.0..1000.0).contains(&rtt),
        "c → d round trip {rtt} ms; 30 ms delay set on c → d"
    );
    let st = lab.status();
    let imp = st["impairments"].as_array().unwrap();
    let cd = imp
        .iter()
        .find(|l| l["ends"][0] == "c:eth0")
        .expect("no impairment entry for c:eth0");
    let dp = cd["datapath"]
        .as_str()
        .expect("no datapath inserted on c – d");
    assert_eq!(cd["set"][0], "delay=30ms seed=7");
    assert_eq!(cd["set"][1], "none");
    assert_eq!(cd["at"][0]["node"], dp);
    let ax = imp.iter().find(|l| l["ends"][0] == "a:eth0").unwrap();
    assert!(
        ax["datapath"].is_null(),
        "a guest end needs no datapath: {ax}"
    );
    assert_eq!(ax["at"][0]["node"], "x");
    assert_eq!(ax["at"][0]["dir"], "rx");
    assert_eq!(lab.node_state(dp)["state"], "running");
    let text = vecbox_ok(&["status", &lab.name]);
    assert!(
        text.contains("on the datapath vecbox inserted"),
        "status does not say where c – d is impaired:\n{text}"
    );

    // A live change: only the keys given change.
    let out = vecbox_ok(&["impair", &lab.name, "c:eth0", "delay=80ms"]);
    assert!(out.contains("c:eth0 → d:eth0: delay=80ms seed=7"), "{out}");
    let rtt = min_rtt(&lab, "c", "10.0.1.2", 5).expect("no replies after the change");
    assert!(rtt >= 80.0, "c → d round trip {rtt} ms after delay=80ms");
    vecbox_ok(&["impair", &lab.name, "c:eth0", "loss=0.1%"]);
    assert_eq!(now_of(&lab.name, "c:eth0"), "delay=80ms loss=0.1% seed=7");

    // A refused change: one line naming the key, and nothing changed.
    let out = vecbox(&["impair", &lab.name, "c:eth0", "loss=150%", "delay=1ms"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("loss: \"150%\""), "{err}");
    let out = vecbox(&["impair", &lab.name, "c:eth0", "--both", "jitter=5ms"]);
    assert_eq!(out.status.code(), Some(2), "jitter without delay on d → c");
    assert!(String::from_utf8_lossy(&out.stderr).contains("jitter: needs delay"));
    assert_eq!(now_of(&lab.name, "c:eth0"), "delay=80ms loss=0.1% seed=7");
    assert_eq!(now_of(&lab.name, "d:eth0"), "none");

    // --both and --clear.
    vecbox_ok(&["impair", &lab.name, "d:eth0", "--both", "delay=10ms"]);
    assert_eq!(now_of(&lab.name, "c:eth0"), "delay=10ms loss=0.1% seed=7");
    assert_eq!(now_of(&lab.name, "d:eth0"), "delay=10ms");
    vecbox_ok(&["impair", &lab.name, "c:eth0", "--clear"]);
    assert_eq!(now_of(&lab.name, "c:eth0"), "none");
    assert_eq!(now_of(&lab.name, "d:eth0"), "delay=10ms");

    // Link down stops traffic both ways; up restores it with the settings kept.
    let out = vecbox_ok(&["link", &lab.name, "d:eth0", "down"]);
    assert!(out.contains("down=true"), "{out}");
    assert!(
        min_rtt(&lab, "c", "10.0.1.2", 3).is_none(),
        "c reaches d with the link down"
    );
    assert!(
        min_rtt(&lab, "d", "10.0.1.1", 3).is_none(),
        "d reaches c with the link down"
    );
    vecbox_ok(&["link", &lab.name, "d:eth0", "up"]);
    assert!(
        carrier_becomes(&lab, "c", false),
        "c:eth0 has no carrier after link up"
    );
    assert!(
        carrier_becomes(&lab, "d", false),
        "d:eth0 has no carrier after link up"
    );
    assert!(lab.ping("c", "10.0.1.2"), "c cannot reach d after link up");
    assert_eq!(now_of(&lab.name, "d:eth0"), "delay=10ms");

    // The guest link can be taken down too (stages on x).
    vecbox_ok(&["link", &lab.name, "a:eth0", "down"]);
    assert!(
        min_rtt(&lab, "a", "10.0.0.2", 2).is_none(),
        "a reaches b with the link down"
    );
    vecbox_ok(&["link", &lab.name, "a:eth0", "up"]);
    assert!(lab.ping("a", "10.0.0.2"), "a cannot reach b after link up");

    // Unknown ends are named with a suggestion.
    let out = vecbox(&["impair", &lab.name, "c:eth1", "delay=1ms"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `c:eth0`"));

    lab.down();
    assert_clean(&lab.name, &before);
}

#[test]
fn bad_impairment_in_a_file_is_refused_with_its_position() {
    let lab = TestLab::new(
        "\
name: @LAB@
nodes:
  a: {kind: host}
  b: {kind: host}
links:
  - endpoints: [a:eth0, b:eth0]
    impair: {delay: 5ms, loss: 5 percent}
",
    );
    let before = snapshot(&lab.name);
    let file = lab.file.to_str().unwrap();
    let out = vecbox(&["check", file, "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &v["errors"][0];
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(7), Some(32))
    );
    assert!(e["message"].as_str().unwrap().contains("loss"), "{e}");
    assert!(e["hint"].as_str().unwrap().contains("loss: 1%"), "{e}");
    // `up` builds nothing from it.
    let out = vecbox(&["up", file, "--detach"]);
    assert_eq!(out.status.code(), Some(2));
    assert_clean(&lab.name, &before);
}

/// `vecbox apply FILE ARGS` → (exit status, stdout + stderr).
fn apply(file: &str, args: &[&str]) -> (i32, String) {
    let mut a = vec!["apply", file];
    a.extend_from_slice(args);
    let out = vecbox(&a);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Poll until `f` holds, for up to 10 s.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    false
}

#[test]
fn apply_changes_an_impairment_in_place() {
    let lab = TestLab::new(LAB);
    let before = snapshot(&lab.name);
    let file = lab.file.to_str().unwrap().to_string();
    lab.up();
    let x = format!("{}.x", lab.name);
    assert!(lab.ping("a", "10.0.0.2"), "a cannot reach b");
    let dp = lab.status()["impairments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["ends"][0] == "c:eth0")
        .and_then(|l| l["datapath"].as_str().map(String::from))
        .expect("no datapath on c – d");
    let pids = |n: &str| lab.node_state(n)["pid"].as_i64().unwrap_or(0);
    let (pid_x, pid_dp) = (pids("x"), pids(&dp));
    assert!(pid_x > 0 && pid_dp > 0);
    // Frames x's vec0 has received so far (at least the 10 echo requests): a reopened
    // port counts from 0 again, and the 3 pings below would not bring it back there.
    assert!(
        min_rtt(&lab, "a", "10.0.0.2", 10).is_some(),
        "a cannot reach b"
    );
    let rx0 = common::console_rx(&x, "vec0");
    assert!(rx0 >= 10, "x:vec0 received {rx0} frames");

    // Only `impair:` changes: a → x loses everything (x's vec0 rx stage); c → d gets
    // 60 ms instead of 30 ms on the inserted datapath; d → c stays as it was.
    let changed = LAB
        .replace(
            "    impair: {delay: 20ms}\n",
            "    impair: {a_to_b: {loss: 100%}}\n",
        )
        .replace("delay: 30ms, seed: 7", "delay: 60ms, seed: 7")
        .replace("@LAB@", &lab.name);
    std::fs::write(&lab.file, &changed).unwrap();
    let (code, plan) = apply(&file, &["--dry-run", "--detailed-exitcode"]);
    assert_eq!(code, 2, "{plan}");
    let line = |needle: &str| {
        plan.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{plan}"))
            .to_string()
    };
    let ax = line("impairment a:eth0 → x:vec0: delay=20ms → loss=100%");
    assert!(
        ax.trim_start().starts_with('~') && ax.trim_end().ends_with("none"),
        "{plan}"
    );
    assert!(line("impairment x:vec0 → a:eth0: delay=20ms → none").contains("link a:eth0"));
    let cd = line("impairment c:eth0 → d:eth0 (at _");
    assert!(
        cd.contains(":vec1): delay=30ms seed=7 → delay=60ms seed=7"),
        "{plan}"
    );
    assert!(
        cd.trim_start().starts_with('~') && cd.trim_end().ends_with("none"),
        "{plan}"
    );
    assert!(
        !plan.contains("reopened") && !plan.contains("bounce"),
        "{plan}"
    );
    assert!(!plan.contains("d:eth0 →"), "d → c does not change:\n{plan}");

    let (code, out) = apply(&file, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(now_of(&lab.name, "a:eth0"), "loss=100%");
    assert_eq!(now_of(&lab.name, "x:vec0"), "none");
    assert_eq!(now_of(&lab.name, "c:eth0"), "delay=60ms seed=7");
    assert_eq!(now_of(&lab.name, "d:eth0"), "none");
    assert!(
        min_rtt(&lab, "a", "10.0.0.2", 3).is_none(),
        "a reaches b through loss=100%"
    );
    let rtt = min_rtt(&lab, "c", "10.0.1.2", 3).expect("no replies c → d");
    assert!(rtt >= 60.0, "c → d round trip {rtt} ms after delay=60ms");
    // Nothing was restarted or reopened: same processes, x's port kept counting.
    assert_eq!((pids("x"), pids(&dp)), (pid_x, pid_dp));
    let rx1 = common::console_rx(&x, "vec0");
    assert!(
        rx1 > rx0,
        "x:vec0 counts {rx1} frames, had {rx0}: the port was reopened"
    );

    // A second apply has nothing to do.
    let (code, out) = apply(&file, &["--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No changes"), "{out}");

    // Removed again: traffic passes, still without a restart.
    std::fs::write(
        &lab.file,
        changed.replace("    impair: {a_to_b: {loss: 100%}}\n", ""),
    )
    .unwrap();
    let (code, out) = apply(&file, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(now_of(&lab.name, "a:eth0"), "none");
    assert!(
        eventually(|| lab.ping("a", "10.0.0.2")),
        "a cannot reach b once the impairment is removed"
    );
    assert_eq!(pids("x"), pid_x);
    assert!(common::console_rx(&x, "vec0") > rx1);
    let (code, out) = apply(&file, &["--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}");

    lab.down();
    assert_clean(&lab.name, &before);
}
