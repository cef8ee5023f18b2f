//! `vecbox bench` end to end, as root: the `--quick` slice produces every scenario with
//! traffic flowing and ratios computed; with tools missing from PATH the scenarios that
//! need them are skipped with a reason and the rest still run; an interrupted bench
//! leaves no namespace, process or directory behind. No assertion on the figures
//! themselves (the machine may be busy).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{VECBOX, require_root, require_tool};
use serde_json::Value;

/// One bench at a time: each uses both cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const QUICK: [&str; 6] = [
    "kernel/bridge/64/off1",
    "uml/raw/64",
    "vecbox/xconnect/raw/64/d64/vec/off1",
    "kernel/tcp/1s/off1",
    "uml/tcp/1s/off1",
    "vecbox/tcp/1s/off1",
];

fn quick_json(path: Option<&str>) -> (Value, String) {
    let mut cmd = Command::new(VECBOX);
    cmd.args(["bench", "--quick", "--json"]);
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let t = Instant::now();
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "vecbox bench --quick failed:\n{stderr}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(120),
        "--quick took {:?}",
        t.elapsed()
    );
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)));
    (v, stderr)
}

fn row<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("scenario {name} missing from {v:#}"))
}

#[test]
fn quick_reports_every_scenario_with_traffic_and_ratios() {
    require_root();
    for t in ["trafgen", "iperf3", "linux.uml", "busybox", "ethtool"] {
        require_tool(t);
    }
    let _g = lock();
    let (v, stderr) = quick_json(None);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), QUICK.len(), "{v:#}");
    for name in QUICK {
        let r = row(&v, name);
        assert_eq!(r["status"], "ok", "{name}: {r:#}");
        assert_eq!(r["reps"], 1, "{name}");
        if name.contains("/tcp/") {
            assert!(
                r["delivered_gbps"]["median"].as_f64().unwrap() > 0.0,
                "{name}: {r:#}"
            );
        } else {
            assert!(
                r["offered_pps"]["median"].as_f64().unwrap() > 0.0,
                "{name}: {r:#}"
            );
            assert!(
                r["delivered_pps"]["median"].as_f64().unwrap() > 0.0,
                "{name}: {r:#}"
            );
            let loss = r["loss"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&loss), "{name}: loss {loss}");
            assert!(r["generator"].is_string(), "{name}");
        }
        if name.starts_with("vecbox/") {
            for k in ["ratio_kernel", "ratio_uml"] {
                assert!(r[k].as_f64().unwrap() > 0.0, "{name}: {k} {r:#}");
            }
        } else {
            assert!(r["ratio_kernel"].is_null(), "baselines have no ratio");
        }
    }
    assert_eq!(
        row(&v, "vecbox/xconnect/raw/64/d64/vec/off1")["kernel_baseline"],
        "kernel/bridge/64/off1"
    );
    let gen_rates = v["generator_rates"].as_object().unwrap();
    assert_eq!(gen_rates.len(), 2, "both generators compared: {v:#}");
    assert!(v["generator"].is_string());
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 9);
    let measured: Vec<&Value> = targets.iter().filter(|t| !t["value"].is_null()).collect();
    assert_eq!(measured.len(), 4, "xconnect and TCP targets: {targets:#?}");
    assert!(measured.iter().all(|t| t["met"].is_boolean()));
    // The table went to stderr, row by row.
    for name in QUICK {
        assert!(stderr.contains(name), "table lacks {name}:\n{stderr}");
    }
}

/// A PATH directory with links to everything the bench needs except iperf3 and
/// linux.uml.
fn path_without_iperf3_and_uml() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vbtbenchpath{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for t in [
        "ip", "taskset", "sysctl", "ethtool", "trafgen", "cat", "timeout", "busybox", "sh",
    ] {
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|d| d.join(t))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("this test needs `{t}`"));
        let _ = std::os::unix::fs::symlink(found, dir.join(t));
    }
    dir
}

#[test]
fn missing_tools_skip_their_scenarios_and_the_rest_runs() {
    require_root();
    let _g = lock();
    let dir = path_without_iperf3_and_uml();
    let (v, stderr) = quick_json(Some(dir.to_str().unwrap()));
    std::fs::remove_dir_all(&dir).unwrap();
    for name in QUICK {
        let r = row(&v, name);
        let reason = r["reason"].as_str().unwrap_or("");
        if name.starts_with("uml/") {
            assert_eq!(r["status"], "skipped", "{name}");
            assert!(reason.contains("linux.uml"), "{name}: {reason}");
        } else if name.contains("/tcp/") {
            assert_eq!(r["status"], "skipped", "{name}");
            assert!(reason.contains("iperf3"), "{name}: {reason}");
        } else {
            assert_eq!(r["status"], "ok", "{name}: {r:#}");
            assert!(r["delivered_pps"]["median"].as_f64().unwrap() > 0.0);
        }
        if r["status"] == "skipped" {
            assert!(stderr.contains(reason), "reason printed: {reason}");
        }
    }
    let x = row(&v, "vecbox/xconnect/raw/64/d64/vec/off1");
    assert!(x["ratio_kernel"].as_f64().unwrap() > 0.0);
    assert!(x["ratio_uml"].is_null(), "no UML baseline, no ratio");
}

/// Processes carrying the bench's tag in their environment.
fn tagged_processes(tag: &str) -> Vec<String> {
    let needle = format!("VECBOX_BENCH={tag}\0");
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(env) = std::fs::read(e.path().join("environ"))
            && env.windows(needle.len()).any(|w| w == needle.as_bytes())
        {
            let cmd = std::fs::read_to_string(e.path().join("cmdline")).unwrap_or_default();
            found.push(format!("{pid}: {}", cmd.replace('\0', " ")));
        }
    }
    found
}

fn namespaces(tag: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&format!("{tag}-")))
        .map(str::to_string)
        .collect()
}

#[test]
fn interrupted_bench_removes_everything_it_started() {
    require_root();
    let _g = lock();
    for (sig, after) in [
        (nix::sys::signal::Signal::SIGINT, "kernel/bridge/64/off1"),
        (nix::sys::signal::Signal::SIGTERM, "vecbox/xconnect/raw"),
    ] {
        let mut child = Command::new(VECBOX)
            .args(["bench", "--quick"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let tag = format!("vbb{}", child.id());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Wait until a row is out: the next scenario (a UML boot, or TCP) is starting.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            assert!(Instant::now() < deadline, "no row from the bench");
            match lines.next() {
                Some(Ok(l)) if l.starts_with(after) => break,
                Some(Ok(_)) => continue,
                _ => panic!("bench ended early"),
            }
        }
        // The next scenario sets up its namespaces and starts its processes.
        let deadline = Instant::now() + Duration::from_secs(15);
        while (namespaces(&tag).is_empty() || tagged_processes(&tag).is_empty())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            !namespaces(&tag).is_empty(),
            "bench namespaces exist mid-run"
        );
        assert!(
            !tagged_processes(&tag).is_empty(),
            "bench processes exist mid-run"
        );
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "{sig:?}: exit status");
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(err.contains("removed every namespace"), "{err}");
        assert_eq!(
            namespaces(&tag),
            Vec::<String>::new(),
            "{sig:?}: namespaces left"
        );
        assert_eq!(
            tagged_processes(&tag),
            Vec::<String>::new(),
            "{sig:?}: processes left"
        );
        assert!(!std::env::temp_dir().join(&tag).exists(), "temp dir left");
        if let Some(home) = std::env::var_os("HOME") {
            let uml = std::path::Path::new(&home).join(".uml");
            let left: Vec<String> = std::fs::read_dir(uml)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().to_string())
                        .filter(|n| n.starts_with(&tag))
                        .collect()
                })
                .unwrap_or_default();
            assert!(left.is_empty(), "console dirs left: {left:?}");
        }
    }
}
