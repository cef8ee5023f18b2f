//! Ping latency through a forwarder: the kernel bridge against a vecbox xconnect guest
//! with default port options and with each explicit receive path, in one run on the
//! same machine (docs/performance.md, "Latency").
//!
//! ```text
//! A (a0) ─veth─ da [DUT] db ─veth─ b0 (B)
//! ```
//!
//! DUTs, each in namespaces of its own, all set up before the first measurement:
//! - `bridge`: the kernel bridge (`br0`, STP off) in the DUT namespace;
//! - `default`: `vecbox guest xconnect` on raw ports with no options (receive through
//!   the TPACKET_V2 frame ring);
//! - `ring=0`: the same guest receiving with `recvmmsg`;
//! - `ring=2`: the same guest on the TPACKET_V3 block ring (its retire timer bounds the
//!   wait for a block that does not fill);
//! - `busy_poll`: the default guest with `busy_poll=3000` (it keeps polling for 3 ms
//!   after each frame, longer than the 2 ms between pings, so it never sleeps while the
//!   pings run: what the guest's own wake-up costs, bought with a busy CPU).
//!
//! Each repetition pings A → B through every DUT in turn (`ping -i 0.002 -c PINGS`,
//! one `time=` per reply, in µs), so slow drifts of the machine hit every DUT alike.
//! Per repetition: p50, p99, p99.9 and the maximum; the table shows the median over
//! repetitions with the min–max range, and the p99 difference to the bridge of the same
//! repetition. Nothing is pinned: the guests run with their default CPU placement, as a
//! user's would.
//!
//! Goal (issue 16): p99 through the default guest within 50 µs of the bridge.
//!
//! Run as root on a quiet machine:
//!
//! ```sh
//! cargo bench --bench latency                     # REPS=5, PINGS=2000
//! VECBOX_BENCH_REPS=9 VECBOX_BENCH_PINGS=5000 cargo bench --bench latency
//! VECBOX_BENCH_ONLY=bridge,default cargo bench --bench latency
//! VECBOX_BENCH_ONLY=bridge,default,busy_poll VECBOX_BENCH_REPS=9 VECBOX_BENCH_PINGS=5000 cargo bench --bench latency
//! ```
//!
//! Prints a Markdown table and writes target/bench/latency.json. A measurement that
//! fails (ping failing, a reply missing beyond 1 %, a guest that does not start) is
//! named and the bench exits with status 1. SIGINT, SIGTERM and SIGHUP end it after
//! the ping running at the time, with every namespace and guest removed. Under
//! `cargo test` it does nothing.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::{Guest, Lab};
use nix::sys::signal::{SigSet, Signal};

const A_IP: &str = "10.88.0.1";
const B_IP: &str = "10.88.0.2";

/// Set once a signal asked the bench to stop.
static STOP: AtomicBool = AtomicBool::new(false);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

fn wanted(dut: &str) -> bool {
    std::env::var("VECBOX_BENCH_ONLY")
        .map(|v| v.split(',').any(|s| s == dut))
        .unwrap_or(true)
}

/// A device under test: its name, what it is, the xconnect port keys (`None`: the
/// kernel bridge) and guest settings.
struct Dut {
    name: &'static str,
    what: &'static str,
    keys: Option<&'static str>,
    guest: &'static [&'static str],
}

const DUTS: [Dut; 5] = [
    Dut {
        name: "bridge",
        what: "kernel bridge",
        keys: None,
        guest: &[],
    },
    Dut {
        name: "default",
        what: "xconnect, default options (TPACKET_V2 frame ring)",
        keys: Some(""),
        guest: &[],
    },
    Dut {
        name: "ring=0",
        what: "xconnect, ring=0 (recvmmsg)",
        keys: Some(",ring=0"),
        guest: &[],
    },
    Dut {
        name: "ring=2",
        what: "xconnect, ring=2 (TPACKET_V3 block ring)",
        keys: Some(",ring=2"),
        guest: &[],
    },
    Dut {
        name: "busy_poll",
        what: "xconnect, default options, busy_poll=3000 (never sleeps between pings)",
        keys: Some(""),
        guest: &["busy_poll=3000"],
    },
];

/// One DUT set up: its namespaces (removed on drop) and guest.
struct Line {
    lab: Lab,
    a: String,
    _guest: Option<Guest>,
}

fn line(dut: &Dut) -> Line {
    let mut lab = Lab::new();
    let a = lab.ns("a");
    let b = lab.ns("b");
    let d = lab.ns("d");
    lab.veth(&a, "a0", &d, "da");
    lab.veth(&b, "b0", &d, "db");
    for (ns, i) in [(&d, "da"), (&d, "db"), (&a, "a0"), (&b, "b0")] {
        lab.quiet(ns, i);
    }
    lab.addr(&a, "a0", &format!("{A_IP}/24"));
    lab.addr(&b, "b0", &format!("{B_IP}/24"));
    let guest = match dut.keys {
        None => {
            common::run(&[
                "ip",
                "-n",
                &d,
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "stp_state",
                "0",
            ]);
            lab.quiet(&d, "br0");
            for p in ["da", "db"] {
                common::run(&["ip", "-n", &d, "link", "set", p, "master", "br0"]);
            }
            common::run(&["ip", "-n", &d, "link", "set", "br0", "up"]);
            None
        }
        Some(keys) => Some(Guest::start(
            &lab,
            &d,
            "xconnect",
            &[
                "vec0:transport=raw,ifname=da".to_string() + keys,
                "vec1:transport=raw,ifname=db".to_string() + keys,
            ]
            .iter()
            .map(String::as_str)
            .chain(dut.guest.iter().copied())
            .collect::<Vec<_>>(),
        )),
    };
    // Neighbours resolved and the path proven before anything is timed.
    assert!(
        lab.ping(&a, B_IP, 3),
        "{}: A cannot ping B through the DUT",
        dut.name
    );
    Line {
        lab,
        a,
        _guest: guest,
    }
}

/// RTTs in µs of `count` pings A → B, or why the measurement failed.
fn rtts(l: &Line, count: u64) -> Result<Vec<f64>, String> {
    let deadline = (count / 400 + 10).to_string();
    let out = l.lab.exec(
        &l.a,
        &[
            "ping",
            "-n",
            "-i",
            "0.002",
            "-c",
            &count.to_string(),
            "-w",
            &deadline,
            B_IP,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .map(|ms| ms * 1000.0)
        .collect();
    if STOP.load(Ordering::SeqCst) {
        return Err("stopped by a signal".into());
    }
    if !out.status.success() && v.is_empty() {
        return Err(format!(
            "ping failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let lost = count.saturating_sub(v.len() as u64);
    if lost * 100 > count {
        return Err(format!("{lost} of {count} replies missing"));
    }
    Ok(v)
}

/// p50, p99, p99.9 and max of `v`.
fn percentiles(mut v: Vec<f64>) -> [f64; 4] {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    [q(0.5), q(0.99), q(0.999), v[v.len() - 1]]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `median (min–max)` of `v`, in µs.
fn spread(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.0} ({lo:.0}–{hi:.0})", median(v.to_vec()))
}

/// Block the stop signals in this thread (inherited by threads started later; child
/// processes start with an empty mask) and let one thread wait for them.
fn catch_signals() {
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block().expect("blocking the stop signals");
    std::thread::spawn(move || {
        if let Ok(sig) = set.wait() {
            eprintln!("{sig}: stopping after the running ping");
            STOP.store(true, Ordering::SeqCst);
        }
    });
}

/// Per DUT: its percentiles per repetition, or the first failure.
type Results = Vec<(&'static Dut, Result<Vec<[f64; 4]>, String>)>;

fn measure(reps: u64, pings: u64) -> Results {
    let mut lines: Vec<(&'static Dut, Result<Line, String>)> = Vec::new();
    for dut in DUTS.iter().filter(|d| wanted(d.name)) {
        let l = std::panic::catch_unwind(|| line(dut)).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "setting up failed".into())
        });
        lines.push((dut, l));
    }
    let mut out: Results = lines
        .iter()
        .map(|(d, l)| (*d, l.as_ref().map(|_| Vec::new()).map_err(Clone::clone)))
        .collect();
    for rep in 0..reps {
        for (i, (dut, l)) in lines.iter().enumerate() {
            if STOP.load(Ordering::SeqCst) {
                return out;
            }
            let (Ok(l), Ok(_)) = (l, &out[i].1) else {
                continue;
            };
            let r = rtts(l, pings).map(percentiles);
            match &r {
                Ok(p) => eprintln!(
                    "rep {}/{reps} {}: p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs",
                    rep + 1,
                    dut.name,
                    p[0],
                    p[1],
                    p[2],
                    p[3]
                ),
                Err(e) => eprintln!("rep {}/{reps} {}: FAILED: {e}", rep + 1, dut.name),
            }
            match r {
                Ok(p) => {
                    if let Ok(v) = &mut out[i].1 {
                        v.push(p);
                    }
                }
                Err(e) => out[i].1 = Err(e),
            }
        }
    }
    // `lines` (namespaces, guests) are removed here, before anything is printed.
    out
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    common::require_tool("ping");
    catch_signals();
    // A failed set-up reports its panic once, as the DUT's reason below.
    std::panic::set_hook(Box::new(|_| {}));
    let (reps, pings) = (
        env_or("VECBOX_BENCH_REPS", 5),
        env_or("VECBOX_BENCH_PINGS", 2000),
    );
    eprintln!("{reps} repetitions of {pings} pings at 2 ms intervals per DUT");
    let results = measure(reps, pings);
    let bridge_p99: Option<Vec<f64>> = results
        .iter()
        .find(|(d, _)| d.keys.is_none())
        .and_then(|(_, r)| r.as_ref().ok())
        .map(|v| v.iter().map(|p| p[1]).collect());
    println!(
        "| DUT | p50 µs | p99 µs | p99.9 µs | max µs | p99 − bridge µs | goal (default: ≤ 50 µs) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    let mut failed = Vec::new();
    let mut json = Vec::new();
    for (dut, r) in &results {
        let v = match r {
            Ok(v) if v.len() as u64 == reps => v,
            Ok(v) => {
                let e = format!("{} of {reps} repetitions ran", v.len());
                failed.push(format!("{}: {e}", dut.name));
                println!("| {} | failed: {e} | | | | | |", dut.what);
                json.push(serde_json::json!({"dut": dut.name, "error": e}));
                continue;
            }
            Err(e) => {
                failed.push(format!("{}: {e}", dut.name));
                println!("| {} | failed: {e} | | | | | |", dut.what);
                json.push(serde_json::json!({"dut": dut.name, "error": e}));
                continue;
            }
        };
        let col = |k: usize| v.iter().map(|p| p[k]).collect::<Vec<f64>>();
        let diff: Option<Vec<f64>> = bridge_p99
            .as_ref()
            .filter(|b| b.len() == v.len())
            .map(|b| v.iter().zip(b).map(|(p, b)| p[1] - b).collect());
        let (diff_cell, goal) = match (&diff, dut.keys) {
            (_, None) => ("—".to_string(), String::new()),
            (Some(d), Some(keys)) => {
                let m = median(d.clone());
                let goal = if keys.is_empty() && dut.guest.is_empty() {
                    if m <= 50.0 { "met" } else { "missed" }.to_string()
                } else {
                    String::new()
                };
                (spread(d), goal)
            }
            (None, Some(_)) => ("no bridge figure".into(), String::new()),
        };
        println!(
            "| {} | {} | {} | {} | {} | {diff_cell} | {goal} |",
            dut.what,
            spread(&col(0)),
            spread(&col(1)),
            spread(&col(2)),
            spread(&col(3)),
        );
        json.push(serde_json::json!({
            "dut": dut.name,
            "p50_us": col(0),
            "p99_us": col(1),
            "p999_us": col(2),
            "max_us": col(3),
            "p99_minus_bridge_us": diff,
        }));
    }
    println!(
        "\n{reps} repetitions × {pings} pings A → B per DUT, interleaved; median over repetitions (min–max)."
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        dir.join("latency.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    );
    if !failed.is_empty() {
        eprintln!("failed: {}", failed.join("; "));
        std::process::exit(1);
    }
}
