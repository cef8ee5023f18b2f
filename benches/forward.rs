//! Forwarding benchmark: a thin wrapper over `vecbox bench` (src/bench), which does the
//! work — generator → DUT → sink namespaces, kernel and UML baselines in the same run,
//! ratios and targets. By default it runs the raw-port slice: xconnect, router and
//! firewall (1000 rules) with 64-byte frames, their depth / vec=0 / offload variants,
//! and TCP. Run as root:
//!
//!   cargo bench --bench forward                       # 5 reps of 2 s
//!   VECBOX_BENCH_REPS=3 VECBOX_BENCH_SECS=1 cargo bench --bench forward
//!   VECBOX_BENCH_ARGS="--transports gre --sizes 64,imix --no-tcp" cargo bench --bench forward
//!
//! Results are printed and written to target/bench/forward.json. See docs/bench.md for
//! the full matrix (`vecbox bench --help`).

use std::process::Command;

fn main() {
    // `cargo test --all-targets` also runs bench targets (without `--bench`): this one
    // needs root, namespaces and minutes of traffic, so it only runs under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("forward: a benchmark; run it with `cargo bench --bench forward` (as root)");
        return;
    }
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("creating target/bench");
    let extra = env("VECBOX_BENCH_ARGS", "--transports raw --sizes 64");
    let out = Command::new(env!("CARGO_BIN_EXE_vecbox"))
        .arg("bench")
        .args(["--reps", &env("VECBOX_BENCH_REPS", "5")])
        .args(["--secs", &env("VECBOX_BENCH_SECS", "2")])
        .args(extra.split_whitespace())
        .arg("--json")
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("running vecbox bench");
    std::fs::write(dir.join("forward.json"), &out.stdout).expect("writing forward.json");
    // vecbox bench has named the rows without a result on stderr.
    if !out.status.success() {
        eprintln!("forward: vecbox bench failed ({})", out.status);
        std::process::exit(1);
    }
}
