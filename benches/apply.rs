//! `vecbox apply` on a running 50-node lab (25 hosts, 24 xconnect guests, 1 bridge
//! guest, 49 veth links): the wall time of one `vecbox apply FILE` process (validate,
//! observe the lab, plan, make the change) for
//!
//! - nothing to change (the baseline: reading the file and the running lab),
//! - one link added (a new interface on a host, a port hot-added to the bridge), and
//!   removed again,
//! - a 10-object change (5 hosts, each with a link to the bridge), and its reverse.
//!
//! Goals: one link ≤ 300 ms, 10 objects ≤ 1 s (2-core machine). Each figure is the
//! median of REPS runs, also given as a ratio to the no-change baseline of the same run.
//! Run as root, on a quiet machine:
//!
//!   cargo bench --bench apply                     # REPS=5
//!   VECBOX_BENCH_REPS=11 cargo bench --bench apply
//!
//! Results are printed and written to target/bench/apply.json. The lab is named
//! `vbb<pid>a` (scripts/leakcheck knows the prefix) and is taken down on every way out:
//! the end, a failed assertion (a guard's drop) and SIGINT, SIGTERM or SIGHUP (a thread
//! waits for them, stops the running `vecbox` command, runs `vecbox down` and exits 130).

#[path = "../tests/common/mod.rs"]
mod common;
use common::{bench_mode, bench_reps, median};

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Instant;

const VECBOX: &str = env!("CARGO_BIN_EXE_vecbox");

/// Hosts h0..h23 each reach the bridge `core` through their own xconnect x0..x23;
/// h24 is on the bridge directly. `extra` adds text to `nodes:`, `links` to `links:`.
fn topology(name: &str, extra: &str, links: &str) -> String {
    let mut s = format!("name: {name}\nnodes:\n  core:\n    kind: bridge\n");
    for i in 0..25 {
        let _ = write!(
            s,
            "  h{i}:\n    kind: host\n    interfaces:\n      eth0: {{addresses: [10.50.0.{}/24]}}\n",
            i + 1
        );
    }
    for i in 0..24 {
        let _ = writeln!(s, "  x{i}:\n    kind: xconnect");
    }
    s.push_str(extra);
    s.push_str("links:\n");
    for i in 0..24 {
        let _ = writeln!(s, "  - endpoints: [h{i}:eth0, x{i}:a]");
        let _ = writeln!(s, "  - endpoints: [x{i}:b, core:p{i}]");
    }
    s.push_str("  - endpoints: [h24:eth0, core:p24]\n");
    s.push_str(links);
    s
}

/// The pid of the `vecbox` command running now (0: none), for the signal thread.
static CHILD: AtomicI32 = AtomicI32::new(0);
/// Set by the signal thread before it kills that command: the main thread then waits
/// for the process to exit instead of reporting the command's failure.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Run `vecbox ARGS`, return stdout and the wall time in seconds.
fn vecbox(args: &[&str]) -> (String, f64) {
    let t = Instant::now();
    let child = Command::new(VECBOX)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    CHILD.store(child.id() as i32, Ordering::SeqCst);
    let out = child.wait_with_output().unwrap();
    CHILD.store(0, Ordering::SeqCst);
    while STOPPING.load(Ordering::SeqCst) {
        std::thread::park();
    }
    let dt = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "vecbox {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), dt)
}

/// The benchmark's lab and its directory: taken down and removed when dropped (the end
/// of `main`, or a panic unwinding through it).
struct Lab {
    name: String,
    dir: PathBuf,
}

impl Lab {
    fn down(name: &str, dir: &std::path::Path) {
        let _ = Command::new(VECBOX)
            .args(["down", "--lab", name])
            .stdout(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(dir);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        Lab::down(&self.name, &self.dir);
    }
}

/// On SIGINT, SIGTERM or SIGHUP: kill the `vecbox` command running (an apply killed at
/// any step is what `down` cleans up), take the lab down, exit 130. Called before any
/// other thread starts, so every thread has the signals blocked; child processes get a
/// clean mask.
fn down_on_signals(name: String, dir: PathBuf) {
    use nix::sys::signal::{SigSet, Signal, kill};
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block().expect("blocking SIGINT/SIGTERM/SIGHUP");
    std::thread::spawn(move || {
        let Ok(sig) = set.wait() else { return };
        STOPPING.store(true, Ordering::SeqCst);
        let pid = CHILD.load(Ordering::SeqCst);
        if pid > 0 {
            let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
        Lab::down(&name, &dir);
        eprintln!("apply bench: {sig:?}: lab {name} taken down");
        std::process::exit(130);
    });
}

fn main() {
    if !bench_mode("apply") {
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "run the benchmark as root"
    );
    let reps = bench_reps(5);
    let name = format!("vbb{}a", std::process::id());
    let dir = std::env::temp_dir().join(&name);
    down_on_signals(name.clone(), dir.clone());
    let lab = Lab {
        name: name.clone(),
        dir: dir.clone(),
    };
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lab50.yaml");
    let f = file.to_str().unwrap().to_string();
    let base = topology(&name, "", "");
    let one = topology(&name, "", "  - endpoints: [h24:eth1, core:q0]\n").replace(
        "      eth0: {addresses: [10.50.0.25/24]}\n",
        "      eth0: {addresses: [10.50.0.25/24]}\n      eth1: {addresses: [10.51.0.25/24]}\n",
    );
    let (mut nodes, mut links) = (String::new(), String::new());
    for i in 0..5 {
        let _ = write!(
            nodes,
            "  n{i}:\n    kind: host\n    interfaces:\n      eth0: {{addresses: [10.50.0.{}/24]}}\n",
            100 + i
        );
        let _ = writeln!(links, "  - endpoints: [n{i}:eth0, core:n{i}]");
    }
    let ten = topology(&name, &nodes, &links);
    std::fs::write(&file, &base).unwrap();
    vecbox(&["up", &f, "--detach", "--quiet"]);
    let apply = |text: &str, want: &str| -> f64 {
        std::fs::write(&file, text).unwrap();
        let (out, dt) = vecbox(&["apply", &f, "--quiet"]);
        assert!(out.contains(want), "expected `{want}` in:\n{out}");
        dt
    };
    let (mut noop, mut add, mut del, mut add10, mut del10) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        noop.push(apply(&base, "No changes"));
        add.push(apply(&one, "1 to add"));
        del.push(apply(&base, "1 to remove"));
        add10.push(apply(&ten, "10 to add"));
        // Sanity: a new host reaches one behind an xconnect through the bridge.
        let ping = Command::new(VECBOX)
            .args(["exec", &name, "n0", "--", "ping", "-c1", "-W2", "10.50.0.1"])
            .output()
            .unwrap();
        assert!(ping.status.success(), "n0 cannot reach h0 after the apply");
        del10.push(apply(&base, "10 to remove"));
    }
    drop(lab);
    let (n, a, d, a10, d10) = (
        median(noop),
        median(add),
        median(del),
        median(add10),
        median(del10),
    );
    println!("vecbox apply on a running 50-node lab, median of {reps} (wall time of the command):");
    println!("  no change (baseline)    {:7.1} ms", n * 1e3);
    println!(
        "  one link added          {:7.1} ms  ({:.2}× baseline; goal ≤ 300 ms)",
        a * 1e3,
        a / n
    );
    println!(
        "  one link removed        {:7.1} ms  ({:.2}× baseline)",
        d * 1e3,
        d / n
    );
    println!(
        "  10 objects added        {:7.1} ms  ({:.2}× baseline; goal ≤ 1 s)",
        a10 * 1e3,
        a10 / n
    );
    println!(
        "  10 objects removed      {:7.1} ms  ({:.2}× baseline)",
        d10 * 1e3,
        d10 / n
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let json = serde_json::json!({
        "nodes": 50, "reps": reps,
        "noop_s": n, "add_link_s": a, "remove_link_s": d,
        "add_10_objects_s": a10, "remove_10_objects_s": d10,
    });
    let _ = std::fs::write(out.join("apply.json"), json.to_string());
}
