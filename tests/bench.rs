//! `vecbox bench` end to end, as root: the `--quick` slice produces every scenario, its
//! ceilings included, with traffic flowing, CPU costs, placement and ratios computed;
//! with tools missing from PATH the scenarios that need them are skipped with a reason,
//! the rest still runs (with a no-drop-rate search), and the bench exits 1 naming the
//! rows without a result; an interrupted bench leaves no namespace, process or
//! directory behind. No assertion on the figures themselves (the machine may be busy).

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

const QUICK: [&str; 8] = [
    "ceiling/64/off1",
    "kernel/bridge/64/off1",
    "uml/raw/64",
    "vecbox/xconnect/raw/64/d64/vec/off1",
    "ceiling/tcp/1s/off1",
    "kernel/tcp/1s/off1",
    "uml/tcp/1s/off1",
    "vecbox/tcp/1s/off1",
];

/// `vecbox bench --quick --json EXTRA...` with PATH `path`: the JSON, stderr and the
/// exit status.
fn quick_json(path: Option<&str>, extra: &[&str]) -> (Value, String, Option<i32>) {
    let mut cmd = Command::new(VECBOX);
    cmd.args(["bench", "--quick", "--json"]).args(extra);
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let t = Instant::now();
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        t.elapsed() < Duration::from_secs(150),
        "--quick took {:?}",
        t.elapsed()
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (v, stderr, out.status.code())
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
fn quick_reports_every_scenario_with_ceilings_costs_and_ratios() {
    require_root();
    for t in ["trafgen", "iperf3", "linux.uml", "busybox", "ethtool"] {
        require_tool(t);
    }
    let _g = lock();
    let (v, stderr, code) = quick_json(None, &[]);
    assert_eq!(code, Some(0), "every row measured:\n{stderr}");
    let rows = v["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, QUICK, "run order: each ceiling and baseline first");
    for name in QUICK {
        let r = row(&v, name);
        assert_eq!(r["status"], "ok", "{name}: {r:#}");
        assert_eq!(r["reps"], 1, "{name}");
        let usage = &r["usage"];
        assert_eq!(
            usage["per_cpu"].as_array().unwrap().len(),
            2,
            "{name}: {r:#}"
        );
        let busy: f64 = usage["per_cpu"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                ["user_s", "system_s", "softirq_s"]
                    .iter()
                    .map(|k| c[*k].as_f64().unwrap())
                    .sum::<f64>()
            })
            .sum();
        assert!(busy > 0.0, "{name}: the generator kept a CPU busy: {r:#}");
        assert!(
            r["placement"]["measured"]
                .as_str()
                .unwrap()
                .contains("cpu1"),
            "{name}: {r:#}"
        );
        let dut_s = usage["dut_s"].as_f64().unwrap();
        if name.starts_with("vecbox/") || name.starts_with("uml/") {
            assert!(dut_s > 0.0, "{name}: the DUT's processes used CPU: {r:#}");
        } else {
            assert_eq!(dut_s, 0.0, "{name}: no DUT process: {r:#}");
        }
        if name.contains("/tcp/") {
            assert!(
                r["delivered_gbps"]["median"].as_f64().unwrap() > 0.0,
                "{name}: {r:#}"
            );
            assert!(r["cost"]["ms_per_gbit"].as_f64().unwrap() > 0.0, "{name}");
        } else {
            for k in ["offered_pps", "delivered_pps"] {
                assert!(r[k]["median"].as_f64().unwrap() > 0.0, "{name}: {r:#}");
            }
            let loss = r["loss"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&loss), "{name}: loss {loss}");
            assert!(r["generator"].is_string(), "{name}");
            assert!(r["cost"]["ns_per_pkt"].as_f64().unwrap() > 0.0, "{name}");
        }
        if name.starts_with("ceiling/") {
            assert!(r["ceiling"].is_null() && r["ceiling_share"].is_null());
        } else {
            let share = r["ceiling_share"].as_f64().unwrap();
            assert!(share > 0.0, "{name}: {r:#}");
            assert_eq!(r["generator_bound"].as_bool().unwrap(), share >= 0.95);
            assert!(r["ceiling"].as_str().unwrap().starts_with("ceiling/"));
            let net = r["cost"]["net_ns_per_pkt"]
                .as_f64()
                .or(r["cost"]["net_ms_per_gbit"].as_f64());
            assert!(net.is_some(), "{name}: net cost: {r:#}");
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
    assert!(
        row(&v, "kernel/bridge/64/off1")["placement"]["softirq"]
            .as_str()
            .unwrap()
            .contains("generator")
    );
    let gen_rates = v["generator_rates"].as_object().unwrap();
    assert_eq!(gen_rates.len(), 2, "both generators compared: {v:#}");
    assert!(v["generator"].is_string());
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 11);
    let measured: Vec<&Value> = targets.iter().filter(|t| !t["value"].is_null()).collect();
    assert_eq!(measured.len(), 4, "xconnect and TCP targets: {targets:#?}");
    // One window per row supports no verdict, whatever the ratio.
    for t in measured {
        assert!(
            ["inconclusive", "at-least", "at-most", "generator-bound"]
                .contains(&t["verdict"].as_str().unwrap()),
            "{t:#}"
        );
    }
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

/// A selected scenario that cannot run (its tool is missing) fails the bench: exit 1,
/// every such row named, everything else measured and reported; the no-drop-rate
/// search runs on the packet rows that remain.
#[test]
fn missing_tools_fail_the_run_naming_the_rows_and_the_rest_runs() {
    require_root();
    let _g = lock();
    let dir = path_without_iperf3_and_uml();
    let (v, stderr, code) = quick_json(Some(dir.to_str().unwrap()), &["--ndr"]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, Some(1), "{stderr}");
    let skipped: Vec<&str> = QUICK
        .iter()
        .copied()
        .filter(|n| n.starts_with("uml/") || n.contains("/tcp/"))
        .collect();
    assert!(
        stderr.contains(&format!("{} of the rows produced no result", skipped.len())),
        "{stderr}"
    );
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
            // Named in the table and in the closing list of failed rows.
            assert!(stderr.contains(reason), "reason printed: {reason}");
            assert!(
                stderr.contains(&format!("  {name} (skipped: needs")),
                "{name} named at the end:\n{stderr}"
            );
        }
    }
    let x = row(&v, "vecbox/xconnect/raw/64/d64/vec/off1");
    assert!(x["ratio_kernel"].as_f64().unwrap() > 0.0);
    assert!(x["ratio_uml"].is_null(), "no UML baseline, no ratio");
    let t = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["denominator"] == "uml/raw/64")
        .unwrap();
    assert_eq!(t["verdict"], "not-measured", "{t:#}");
    // The no-drop rate: found (above 0), and no higher than what was offered.
    for name in [
        "kernel/bridge/64/off1",
        "vecbox/xconnect/raw/64/d64/vec/off1",
    ] {
        let r = row(&v, name);
        let ndr = r["ndr_pps"].as_f64().unwrap();
        let offered = r["offered_pps"]["max"].as_f64().unwrap();
        assert!(
            ndr > 0.0 && ndr <= offered * 1.06,
            "{name}: NDR {ndr} of {offered} offered"
        );
    }
    assert!(row(&v, "ceiling/64/off1")["ndr_pps"].is_null());
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
        .filter(|l| l.starts_with(&format!("{tag}.")))
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

/// `--port-opts` is checked as port keys before anything runs: a bad value exits 2
/// naming the flag and the key, a good one is accepted.
#[test]
fn port_opts_are_checked_as_port_keys() {
    let out = Command::new(VECBOX)
        .args(["bench", "--list", "--port-opts", "ring=7"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--port-opts") && err.contains("ring"), "{err}");
    let out = Command::new(VECBOX)
        .args(["bench", "--list", "--port-opts", "ring=2,gro=0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("vecbox/xconnect/raw/64"));
}
