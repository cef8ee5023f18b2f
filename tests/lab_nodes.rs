//! How a lab treats its nodes: the restart policies when a guest ends cleanly and when
//! it is killed, and UML nodes booted from one shared disk image, each writing to its
//! own copy-on-write file.

mod common;

use std::time::{Duration, Instant};

use common::lab::{TestLab, assert_clean, snapshot};
use common::{require_tool, vecbox_console};

/// A chain of three xconnects between two hosts, one per restart policy.
const POLICIES: &str = "\
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
  onfail:
    kind: xconnect
    restart: on-failure
  never:
    kind: xconnect
    restart: never
  always:
    kind: xconnect
    restart: always
links:
  - endpoints: [a:eth0, onfail:p0]
  - endpoints: [onfail:p1, never:p0]
  - endpoints: [never:p1, always:p0]
  - endpoints: [always:p1, b:eth0]
";

fn wait_node(
    lab: &TestLab,
    node: &str,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let n = lab.node_state(node);
        if f(&n) {
            return n;
        }
        assert!(Instant::now() < deadline, "{node} never {what}: {n}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn halt(lab: &TestLab, node: &str) {
    let (code, out) = vecbox_console(&format!("{}.{node}", lab.name), &["halt"]);
    assert_eq!(code, 0, "halt {node}: {out}");
}

/// `on-failure` restarts a killed guest but not one that ended cleanly (a console
/// `halt`, exit status 0); `never` restarts neither; `always` restarts both.
#[test]
fn restart_policies_on_a_clean_exit_and_on_a_kill() {
    let lab = TestLab::new(POLICIES);
    let before = snapshot(&lab.name);
    lab.up();
    assert!(lab.ping("a", "10.0.0.2"), "a -> b through three guests");
    // A failure: SIGKILL. on-failure restarts it.
    let pid = lab.node_state("onfail")["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let n = wait_node(&lab, "onfail", "restarted after SIGKILL", |n| {
        n["restarts"] == 1 && n["state"] == "running"
    });
    assert_ne!(n["pid"].as_i64().unwrap() as i32, pid);
    // Clean exits.
    for node in ["onfail", "never", "always"] {
        halt(&lab, node);
    }
    let n = wait_node(&lab, "always", "restarted after a clean exit", |n| {
        n["restarts"] == 1 && n["state"] == "running"
    });
    assert!(n["pid"].is_i64(), "{n}");
    for (node, restarts) in [("onfail", 1), ("never", 0)] {
        let n = wait_node(&lab, node, "stopped after a clean exit", |n| {
            n["state"] == "stopped"
        });
        assert_eq!(n["restarts"], restarts, "{node}: {n}");
        assert!(n["pid"].is_null(), "{node}: {n}");
        assert_eq!(n["last_exit"], "exit status: 0", "{node}: {n}");
    }
    // Still down a while later (a restart would have come after 100 ms).
    std::thread::sleep(Duration::from_millis(1500));
    for node in ["onfail", "never"] {
        let n = lab.node_state(node);
        assert_eq!(n["state"], "stopped", "{node}: {n}");
    }
    assert!(
        !lab.ping("a", "10.0.0.2"),
        "the chain is broken at the stopped guests"
    );
    lab.down();
    assert_clean(&lab.name, &before);
}

/// Build an ext2 image holding a static busybox and `init`: the init remounts the root
/// read-write, writes `/mine-NODE`, reads it back and says so on the console.
fn image(lab: &TestLab) -> std::path::PathBuf {
    require_tool("mke2fs");
    require_tool("busybox");
    let stage = lab.dir.join("image-root");
    for d in ["bin", "proc", "dev", "tmp"] {
        std::fs::create_dir_all(stage.join(d)).unwrap();
    }
    let busybox = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("busybox"))
        .find(|p| p.is_file())
        .unwrap();
    std::fs::copy(busybox, stage.join("bin/busybox")).unwrap();
    let init = stage.join("init");
    std::fs::write(
        &init,
        "#!/bin/busybox sh\n\
         bb=/bin/busybox\n\
         $bb mount -t proc proc /proc\n\
         $bb mount -o remount,rw /\n\
         echo \"$VB_NODE\" > /mine-$VB_NODE\n\
         $bb sync\n\
         echo \"WROTE $($bb cat /mine-$VB_NODE) ON $($bb grep ' / ' /proc/mounts)\"\n\
         echo IMAGE-NODE-READY\n\
         exec $bb sleep 2147483647\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).unwrap();
    common::run(&[
        "mknod",
        stage.join("dev/console").to_str().unwrap(),
        "c",
        "5",
        "1",
    ]);
    let img = lab.dir.join("root.img");
    common::run(&[
        "mke2fs",
        "-q",
        "-F",
        "-t",
        "ext2",
        "-d",
        stage.to_str().unwrap(),
        img.to_str().unwrap(),
        "16M",
    ]);
    img
}

/// Two UML nodes boot from one image: each writes to its own copy-on-write file in the
/// run directory, and the image itself is not changed by a byte.
#[test]
fn uml_nodes_share_a_read_only_image_with_their_own_cow_files() {
    require_tool("linux.uml");
    let lab = TestLab::new("name: @LAB@\n");
    let img = image(&lab);
    let pristine = std::fs::read(&img).unwrap();
    let node = |n: &str| {
        format!(
            "  {n}:\n    kind: uml\n    image: {}\n    init: /init\n    args: [VB_NODE={n}]\n    ready: IMAGE-NODE-READY\n",
            img.display()
        )
    };
    std::fs::write(
        &lab.file,
        format!(
            "name: {}\nnodes:\n{}{}links:\n  - endpoints: [u1:vec0, u2:vec0]\n",
            lab.name,
            node("u1"),
            node("u2")
        ),
    )
    .unwrap();
    let before = snapshot(&lab.name);
    lab.up();
    let run = std::path::Path::new("/run/vecbox").join(&lab.name);
    for n in ["u1", "u2"] {
        let st = wait_node(&lab, n, "running", |s| s["state"] == "running");
        let log = std::fs::read_to_string(st["log"].as_str().unwrap()).unwrap();
        let wrote = log
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("WROTE {n} ON ")))
            .unwrap_or_else(|| panic!("{n} did not write to its root:\n{log}"));
        // The image's ext2 file system (the kernel mounts it with its ext4 driver),
        // read-write through the copy-on-write layer.
        assert!(
            wrote.contains(" / ext") && wrote.contains(" rw,"),
            "{n}'s root: {wrote}"
        );
        let cow = run.join(format!("{n}.cow"));
        let meta = std::fs::metadata(&cow)
            .unwrap_or_else(|e| panic!("{n}'s copy-on-write file {}: {e}", cow.display()));
        assert!(meta.len() > 0, "{}", cow.display());
    }
    let (c1, c2) = (
        std::fs::read(run.join("u1.cow")).unwrap(),
        std::fs::read(run.join("u2.cow")).unwrap(),
    );
    assert_ne!(c1, c2, "each node wrote its own file into its own COW");
    assert!(
        std::fs::read(&img).unwrap() == pristine,
        "the shared image was written to"
    );
    lab.down();
    assert_clean(&lab.name, &before);
    assert!(std::fs::read(&img).unwrap() == pristine);
}

/// The console's `sysrq` on a vecbox guest: `t` dumps the state, `b` restarts the
/// datapath (the guest forwards again afterwards), `o` powers it off (exit 0).
#[test]
fn sysrq_t_b_and_o_on_a_guest() {
    let lab = TestLab::new(
        POLICIES
            .replace("restart: always", "restart: on-failure")
            .as_str(),
    );
    let before = snapshot(&lab.name);
    lab.up();
    let umid = format!("{}.never", lab.name);
    let state = || {
        let (code, out) = vecbox_console(&umid, &["sysrq", "t"]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("SysRq : Show State"), "{out}");
        out
    };
    let t = state();
    assert!(
        t.contains("function xconnect") && t.contains("running restarts 0"),
        "{t}"
    );
    let pid = lab.node_state("never")["pid"].clone();
    let (code, out) = vecbox_console(&umid, &["sysrq", "b"]);
    assert_eq!(code, 0, "{out}");
    // The same process reopened its interfaces (one datapath restart) and forwards.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !state().contains("running restarts 1") {
        assert!(
            Instant::now() < deadline,
            "no datapath restart: {}",
            state()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(lab.ping("a", "10.0.0.2"), "forwarding after sysrq b");
    let n = lab.node_state("never");
    assert_eq!(
        n["pid"], pid,
        "sysrq b restarts the datapath, not the process: {n}"
    );
    assert_eq!(n["restarts"], 0, "{n}");
    let (code, out) = vecbox_console(&umid, &["sysrq", "o"]);
    assert_eq!(code, 0, "{out}");
    let n = wait_node(&lab, "never", "stopped after sysrq o", |n| {
        n["state"] == "stopped"
    });
    assert_eq!(n["last_exit"], "exit status: 0", "{n}");
    assert!(!lab.ping("a", "10.0.0.2"), "powered off");
    lab.down();
    assert_clean(&lab.name, &before);
}
