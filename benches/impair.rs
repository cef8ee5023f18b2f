//! Accuracy and cost of impairments (docs/impairments.md, "Accuracy").
//!
//! ```text
//! A (a0) ─veth─ ga [vecbox xconnect, CPU 1] gb ─veth─ b0 (B)      sender pinned to CPU 0
//! ```
//!
//! Sections (all by default; `VECBOX_BENCH_ONLY=model,delay,...` picks some):
//! - `model`: the scheduler alone on a virtual clock: jitter standard deviation and
//!   lag-1 correlation for correlation 0–0.95 next to what netem's smoother gives,
//!   reorders, loss band, Gilbert-Elliott, rate error. No root needed.
//! - `cost`: the stage alone on a virtual clock, 64-byte frames in batches of 64: ns
//!   per frame (VECBOX_BENCH_FRAMES, 10⁷). The profile target: `valgrind
//!   --tool=callgrind target/…/impair-… --bench` with `VECBOX_BENCH_ONLY=cost`.
//!
//! The path (sender, veth, the guest's wake-up, veth, receiver) has latency and spread
//! of its own, larger on a VM than some of what is measured. So the network sections
//! send the unimpaired and the impaired stream alternately, REPS times each, in the
//! same run, and compare like with like (docs/impairments.md, "Accuracy"):
//!
//! - `delay`: one-way delay of UDP datagrams sent from A and received at B, both
//!   timestamped on one clock (CLOCK_REALTIME: the sender before `sendto`, the
//!   receiver's kernel with SO_TIMESTAMPNS), at 1, 10 and 100 kpps
//!   (VECBOX_BENCH_PPS=1000,100000 picks rates), `delay=10ms`. Error per percentile =
//!   impaired pX − 10 ms − unimpaired pX (p50, p99); "early" = impaired samples below
//!   10 ms + the unimpaired minimum (goal 0). The stage's own lateness histogram (the
//!   console's `late p50 ≤ … p99 ≤ …`) is printed beside.
//! - `jitter`: `delay=20ms jitter=2ms` uniform (σ 1.155 ms, far above the path's) at
//!   10 kpps with `reorder_on_jitter=true`, for correlation 0, 0.5, 0.95: the
//!   impairment's σ = √(σ_impaired² − σ_path²) (independent sources) against the
//!   configured σ, lag-1 correlation from autocovariances the same way, and the σ of
//!   the seeded draws replayed on a virtual clock. Then the same spread with
//!   `reorder_on_jitter` off: sequence inversions at B (0 expected).
//! - `loss`: 1 % over 10⁵ frames: the count against the 99.9 % binomial band.
//! - `rate`: trafgen floods 1042-byte frames; `rate=10mbit`, `100mbit`, `1gbit` for
//!   VECBOX_BENCH_SECS (10) seconds: bytes B's kernel received per second against R.
//! - `tcp`: iperf3 through `rate=100mbit` with 10 ms each way and a 50 ms queue (2.5×
//!   the BDP): goodput against R·1448/1514 (the TCP payload share of a full frame).
//! - `forward`: 64-byte frames flooded by trafgen: frames B receives per second with
//!   `delay=1ms loss=1%` against the same guest unimpaired (divided by 0.99 for the
//!   loss asked for), alternating twice, VECBOX_BENCH_SECS in all for each.
//!
//! Run as root on a quiet machine:
//!
//! ```sh
//! cargo bench --bench impair
//! VECBOX_BENCH_ONLY=model,cost cargo bench --bench impair # no root, seconds
//! VECBOX_BENCH_SECS=5 cargo bench --bench impair           # about 4 minutes
//! VECBOX_BENCH_ONLY=delay VECBOX_BENCH_PPS=100000 cargo bench --bench impair
//! ```
//!
//! Prints a Markdown table and writes target/bench/impair.json. Under `cargo test` it
//! does nothing.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Guest, Lab};
use vecbox::impair::{Change, Dropped, Params, Stage, dist, loss::stationary_loss};

const A_IP: &str = "10.87.0.1";
const B_IP: &str = "10.87.0.2";
const MS: u64 = 1_000_000;

fn secs() -> u64 {
    std::env::var("VECBOX_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(10)
}

fn wanted(section: &str) -> bool {
    std::env::var("VECBOX_BENCH_ONLY")
        .map(|v| v.split(',').any(|s| s == section))
        .unwrap_or(true)
}

/// `VECBOX_BENCH_PPS=1000,100000` limits the delay section to those rates.
fn rate_wanted(pps: u64) -> bool {
    std::env::var("VECBOX_BENCH_PPS")
        .map(|v| v.split(',').any(|s| s.trim().parse() == Ok(pps)))
        .unwrap_or(true)
}

/// One result row: what, measured value, goal, and whether it meets the goal.
struct Row {
    what: String,
    value: String,
    goal: &'static str,
    ok: bool,
}

fn row(rows: &mut Vec<Row>, what: impl Into<String>, value: String, goal: &'static str, ok: bool) {
    let r = Row {
        what: what.into(),
        value,
        goal,
        ok,
    };
    eprintln!(
        "{}: {} (goal {}){}",
        r.what,
        r.value,
        r.goal,
        if r.ok { "" } else { "  MISSED" }
    );
    rows.push(r);
}

fn stage(words: &str) -> Stage {
    let c = Change::parse_words(words.split_whitespace()).unwrap();
    Stage::new(Params::default().apply(&c).unwrap()).unwrap()
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n).sqrt(),
    )
}

fn lag1(v: &[f64]) -> f64 {
    let (m, s) = mean_std(v);
    let n = v.len() - 1;
    (0..n).map(|i| (v[i] - m) * (v[i + 1] - m)).sum::<f64>() / n as f64 / (s * s)
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// (id, delay ns, release time) of `n` frames of `size` bytes offered every `gap` ns,
/// in release order.
fn virtual_run(s: &mut Stage, n: u64, gap: u64, size: usize) -> Vec<(u64, f64, u64)> {
    let frame = vec![0u8; size];
    let mut out = Vec::new();
    let mut arrival = std::collections::HashMap::new();
    for i in 0..n {
        let now = i * gap;
        while let Some(t) = s.next_deadline().filter(|t| *t < now) {
            s.release(t, usize::MAX, |_, _, id| {
                out.push((id, (t - arrival[&id]) as f64, t));
                true
            });
        }
        arrival.insert(i, now);
        s.offer(now, &frame, &Default::default(), 1514);
    }
    while let Some(t) = s.next_deadline() {
        s.release(t, usize::MAX, |_, _, id| {
            out.push((id, (t - arrival[&id]) as f64, t));
            true
        });
    }
    out
}

/// As [`virtual_run`] with 64-byte frames: (id, delay ns).
fn virtual_delays(s: &mut Stage, n: u64, gap: u64) -> Vec<(u64, f64)> {
    virtual_run(s, n, gap, 64)
        .into_iter()
        .map(|(id, d, _)| (id, d))
        .collect()
}

fn model(rows: &mut Vec<Row>) {
    let j = 1_000_000f64; // 1 ms
    for dist_name in ["uniform", "normal"] {
        let d = if dist_name == "uniform" {
            vecbox::impair::Distribution::Uniform
        } else {
            vecbox::impair::Distribution::Normal
        };
        let want = dist::moments(d).1 * j;
        for c in [0.0f64, 0.25, 0.5, 0.75, 0.9, 0.95] {
            let mut s = stage(&format!(
                "delay=10ms jitter=1ms distribution={dist_name} correlation={c} reorder_on_jitter=true seed=1"
            ));
            let mut got = virtual_delays(&mut s, 200_000, 10 * MS);
            got.sort_by_key(|x| x.0);
            let d: Vec<f64> = got.iter().map(|x| x.1).collect();
            let (_, sd) = mean_std(&d);
            let err = sd / want - 1.0;
            let netem = ((1.0 - c) / (1.0 + c)).sqrt();
            row(
                rows,
                format!("model: jitter σ {dist_name}, correlation {c}"),
                format!(
                    "{:+.2} % (lag-1 {:.3}; netem's smoother: σ × {netem:.2})",
                    err * 100.0,
                    lag1(&d)
                ),
                "±3 %, lag-1 ±0.03",
                err.abs() <= 0.03 && (lag1(&d) - c).abs() <= 0.03,
            );
        }
    }
    let mut s = stage("delay=10ms jitter=5ms seed=2");
    let got = virtual_delays(&mut s, 200_000, 100_000);
    let inversions = got.windows(2).filter(|w| w[0].0 > w[1].0).count();
    row(
        rows,
        "model: reorders, jitter 5 ms at 10 kpps",
        inversions.to_string(),
        "0",
        inversions == 0,
    );
    let n = 1_000_000u64;
    let mut s = stage("loss=1% seed=3");
    virtual_delays(&mut s, n, 1000);
    let k = s.counters.dropped(Dropped::Loss) as f64;
    let band = 3.29 * (n as f64 * 0.01 * 0.99).sqrt();
    row(
        rows,
        "model: loss 1 % of 10⁶",
        format!(
            "{k} (band {:.0}–{:.0})",
            n as f64 * 0.01 - band,
            n as f64 * 0.01 + band
        ),
        "inside 99.9 % band",
        (k - n as f64 * 0.01).abs() <= band,
    );
    let mut s = stage("loss=gemodel:1%:25% seed=4");
    virtual_delays(&mut s, n, 1000);
    let want = stationary_loss(&s.params().loss).unwrap();
    let got = s.counters.dropped(Dropped::Loss) as f64 / n as f64;
    row(
        rows,
        "model: Gilbert-Elliott p=1 % r=25 %",
        format!("{:.3} % (stationary {:.3} %)", got * 100.0, want * 100.0),
        "±5 %",
        (got / want - 1.0).abs() <= 0.05,
    );
    for r in ["10mbit", "100mbit", "1gbit"] {
        let rate = vecbox::impair::units::rate(r).unwrap();
        let per = 1042 * 8 * 1_000_000_000 / rate;
        let mut s = stage(&format!("rate={r} queue=100ms"));
        // Offered at 1.2× the rate for 10 s; what left by then, against R × 10 s.
        let n = 10_000_000_000 / (per * 10 / 12);
        let got = virtual_run(&mut s, n, per * 10 / 12, 1042);
        let served = got.iter().filter(|x| x.2 <= 10_000_000_000).count() as f64 * 1042.0 * 8.0;
        let err = served / (rate as f64 * 10.0) - 1.0;
        row(
            rows,
            format!("model: rate {r} over 10 s"),
            format!("{:+.3} %", err * 100.0),
            "±1 %",
            err.abs() <= 0.01,
        );
    }
}

/// The stage's own cost per 64-byte frame: batches of 64 offered and released on a
/// virtual clock at 350 kpps with `words`, in ns of CPU per frame (the loop's
/// bookkeeping included). Also the profile target: `valgrind --tool=callgrind` on the
/// bench binary with `VECBOX_BENCH_ONLY=cost`.
fn stage_cost(words: &str, frames: u64) -> f64 {
    let mut s = stage(words);
    let frame = [0x41u8; 64];
    let gap = 1_000_000_000 / 350_000;
    let start = Instant::now();
    let mut out = 0u64;
    let mut now = 0;
    for _ in 0..frames / 64 {
        for _ in 0..64 {
            s.offer(now, &frame, &Default::default(), 1514);
        }
        now += 64 * gap;
        s.release(now, usize::MAX, |b, _, _| {
            out += b.len() as u64;
            true
        });
    }
    std::hint::black_box(out);
    start.elapsed().as_nanos() as f64 / frames as f64
}

fn cost(rows: &mut Vec<Row>) {
    let n = std::env::var("VECBOX_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    // VECBOX_BENCH_COST="delay=1ms" measures (or profiles) one setting.
    let only = std::env::var("VECBOX_BENCH_COST").ok();
    let all = [
        "delay=1ms loss=1%",
        "delay=1ms jitter=100us loss=1%",
        "rate=1gbit",
    ];
    for words in only.as_deref().map_or(all.to_vec(), |w| vec![w]) {
        let ns = stage_cost(&format!("{words} seed=1"), n);
        row(
            rows,
            format!("stage alone, 64 B frames, {words}"),
            format!("{ns:.0} ns per frame"),
            "(cost; 2800 ns is the whole budget at 358 kpps)",
            true,
        );
    }
}

/// The bench topology and its guest.
struct Line {
    lab: Lab,
    a: String,
    b: String,
    umid: String,
}

fn line(keys1: &str) -> (Line, Guest) {
    let mut lab = Lab::new();
    let a = lab.ns("a");
    let b = lab.ns("b");
    let g = lab.ns("g");
    lab.veth(&a, "a0", &g, "ga");
    lab.veth(&b, "b0", &g, "gb");
    for (ns, i) in [(&g, "ga"), (&g, "gb"), (&a, "a0"), (&b, "b0")] {
        lab.quiet(ns, i);
    }
    lab.addr(&a, "a0", &format!("{A_IP}/24"));
    lab.addr(&b, "b0", &format!("{B_IP}/24"));
    let (ma, mb) = (lab.mac(&a, "a0"), lab.mac(&b, "b0"));
    common::run(&[
        "ip",
        "-n",
        &a,
        "neigh",
        "replace",
        B_IP,
        "lladdr",
        &mb,
        "dev",
        "a0",
        "nud",
        "permanent",
    ]);
    common::run(&[
        "ip",
        "-n",
        &b,
        "neigh",
        "replace",
        A_IP,
        "lladdr",
        &ma,
        "dev",
        "b0",
        "nud",
        "permanent",
    ]);
    let umid = format!("{}-bench", lab.tag);
    let guest = Guest::start(
        &lab,
        &g,
        "xconnect",
        &[
            &format!("umid={umid}"),
            "cpu=1",
            "vec0:transport=raw,ifname=ga,gro=1",
            &format!("vec1:transport=raw,ifname=gb,gro=1{keys1}"),
        ],
    );
    (Line { lab, a, b, umid }, guest)
}

impl Line {
    fn console(&self, cmd: &str) -> String {
        let (rc, out) = common::vecbox_console(&self.umid, &cmd.split(' ').collect::<Vec<_>>());
        assert_eq!(rc, 0, "{cmd}: {out}");
        out
    }

    /// `dropped loss N` from the console's listing of vec1.
    fn lost(&self) -> u64 {
        let out = self.console("impair vec1");
        out.split("dropped loss ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
}

fn realtime_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME).unwrap();
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// (sequence, one-way delay ns) of every datagram B received.
type Received = Vec<(u64, i64)>;

fn receiver(l: &Line, port: u16) -> (Arc<AtomicBool>, JoinHandle<Received>) {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let (tx, ready) = mpsc::channel();
    let h = in_ns(&l.b, move || {
        let sock = UdpSocket::bind(format!("{B_IP}:{port}")).unwrap();
        setsockopt(&sock, sockopt::RcvBufForce, &(32 << 20)).unwrap();
        setsockopt(&sock, sockopt::ReceiveTimestampns, &true).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        tx.send(()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let r = recvmsg::<()>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            );
            let Ok(msg) = r else {
                if s.load(Ordering::SeqCst) {
                    return got;
                }
                continue;
            };
            let mut rx = 0;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmTimestampns(t) = c {
                        rx = t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64;
                    }
                }
            }
            if msg.bytes >= 16 {
                let seq = u64::from_be_bytes(buf[..8].try_into().unwrap());
                let sent = u64::from_be_bytes(buf[8..16].try_into().unwrap());
                got.push((seq, rx as i64 - sent as i64));
            }
        }
    });
    ready.recv_timeout(Duration::from_secs(10)).unwrap();
    (stop, h)
}

/// Send `count` timestamped datagrams at `pps` from A (pinned to CPU 0).
fn send(l: &Line, port: u16, count: u64, pps: u64, size: usize) -> JoinHandle<()> {
    in_ns(&l.a, move || {
        let mut set = nix::sched::CpuSet::new();
        let _ = set.set(0);
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
        let sock = UdpSocket::bind(format!("{A_IP}:0")).unwrap();
        let to: SocketAddr = format!("{B_IP}:{port}").parse().unwrap();
        let gap = 1_000_000_000 / pps;
        let start = Instant::now();
        let mut payload = vec![0x5au8; size.max(16)];
        for n in 0..count {
            while (start.elapsed().as_nanos() as u64) < gap * n {
                std::hint::spin_loop();
            }
            payload[..8].copy_from_slice(&n.to_be_bytes());
            payload[8..16].copy_from_slice(&realtime_ns().to_be_bytes());
            let _ = sock.send_to(&payload, to);
        }
    })
}

/// One stream of `count` datagrams at `pps`: what B received.
fn stream(l: &Line, port: u16, count: u64, pps: u64) -> Received {
    let (stop, rx) = receiver(l, port);
    send(l, port, count, pps, 64).join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    rx.join().unwrap()
}

/// Repetitions of the unimpaired and the impaired stream, interleaved, per rate or
/// setting (so drift of the path over the run affects both alike).
const REPS: u64 = 4;

/// The stage's own lateness on vec1 tx as the console shows it (`late p50 ≤ …`).
fn stage_late(l: &Line) -> String {
    let out = l.console("impair vec1");
    out.split("late ")
        .nth(1)
        .map(|r| r.lines().next().unwrap_or("").trim().to_string())
        .unwrap_or_else(|| "?".into())
}

fn delay(rows: &mut Vec<Row>) {
    let (l, g) = line("");
    for (pps, port) in [(1_000u64, 7101u16), (10_000, 7102), (100_000, 7103)] {
        if !rate_wanted(pps) {
            continue;
        }
        let n = (pps * 2).min(200_000) / REPS;
        let (mut base, mut imp) = (Vec::new(), Vec::new());
        let mut late = String::new();
        for _ in 0..REPS {
            l.console("impair vec1 clear");
            base.extend(stream(&l, port, n, pps).iter().map(|x| x.1 as f64));
            // The stage stays (idle) when cleared: its lateness counts every run.
            l.console("impair vec1 tx delay=10ms");
            imp.extend(stream(&l, port, n, pps).iter().map(|x| x.1 as f64 - 10e6));
            late = stage_late(&l);
        }
        let base_min = base.iter().copied().fold(f64::INFINITY, f64::min);
        let early = imp.iter().filter(|x| **x < base_min).count();
        let margin = imp.iter().copied().fold(f64::INFINITY, f64::min) - base_min;
        let (b50, b99) = (quantile(&mut base, 0.5), quantile(&mut base, 0.99));
        let (i50, i99) = (quantile(&mut imp, 0.5), quantile(&mut imp, 0.99));
        let (e50, e99) = (i50 - b50, i99 - b99);
        row(
            rows,
            format!("delay 10 ms at {} kpps: error p50 / p99, early", pps / 1000),
            format!(
                "{:+.0} / {:+.0} µs, {early} early (min {:+.0} µs over the path's min); path alone p50 {:.0} p99 {:.0} µs; {} + {} of {} received; stage late {late}",
                e50 / 1e3,
                e99 / 1e3,
                margin / 1e3,
                b50 / 1e3,
                b99 / 1e3,
                base.len(),
                imp.len(),
                2 * n * REPS,
            ),
            "p99 ≤ 200 µs, 0 early",
            e99 <= 200e3 && early == 0,
        );
    }
    drop(g);
}

/// Autocovariance at lag 1 of `v` (in sequence order) and its variance.
fn cov01(v: &[f64]) -> (f64, f64) {
    let (m, s) = mean_std(v);
    let n = v.len() - 1;
    let c1 = (0..n).map(|i| (v[i] - m) * (v[i + 1] - m)).sum::<f64>() / n as f64;
    (s * s, c1)
}

/// The jitter draws a seeded stage makes for `n` frames (virtual clock, the same
/// settings): their σ is what an exact datapath would show.
fn drawn_sigma(words: &str, n: u64, gap: u64) -> f64 {
    let mut s = stage(words);
    let mut d = virtual_delays(&mut s, n, gap);
    d.sort_by_key(|x| x.0);
    mean_std(&d.iter().map(|x| x.1).collect::<Vec<_>>()).1
}

/// Delays (ns) of a stream in sequence order, and the sequence inversions in arrival
/// order.
fn by_seq(got: &Received) -> (Vec<f64>, usize) {
    let inversions = got.windows(2).filter(|w| w[0].0 > w[1].0).count();
    let mut v = got.clone();
    v.sort_by_key(|x| x.0);
    (v.iter().map(|x| x.1 as f64).collect(), inversions)
}

fn jitter(rows: &mut Vec<Row>) {
    let (l, g) = line("");
    let pps = 10_000;
    // Per correlation: REPS × (n impaired, n/2 unimpaired) frames.
    let n = 25_000;
    let want = 2e6 / 3f64.sqrt(); // uniform, jitter 2 ms
    let port = 7201;
    for (i, c) in [0.0, 0.5, 0.95].into_iter().enumerate() {
        let (mut var_imp, mut cov_imp, mut var_path, mut cov_path) = (0.0, 0.0, 0.0, 0.0);
        let mut drawn = 0.0;
        for r in 0..REPS {
            l.console("impair vec1 clear");
            let (b, _) = by_seq(&stream(&l, port, n / 2, pps));
            let (v, c1) = cov01(&b);
            var_path += v / REPS as f64;
            cov_path += c1 / REPS as f64;
            let words = format!(
                "delay=20ms jitter=2ms correlation={c} reorder_on_jitter=true seed={}",
                100 * (i as u64 + 1) + r
            );
            l.console(&format!("impair vec1 tx {words}"));
            let (d, _) = by_seq(&stream(&l, port, n, pps));
            let (v, c1) = cov01(&d);
            var_imp += v / REPS as f64;
            cov_imp += c1 / REPS as f64;
            let s = drawn_sigma(&words, d.len() as u64, 1_000_000_000 / pps);
            drawn += s * s / REPS as f64;
        }
        // Path and impairment are independent: their variances and covariances add.
        let var = (var_imp - var_path).max(0.0);
        let sd = var.sqrt();
        let err = sd / want - 1.0;
        // No variance left over the path's: the impairment is not resolved.
        let rho = if var > 0.0 {
            (cov_imp - cov_path) / var
        } else {
            f64::NAN
        };
        row(
            rows,
            format!("jitter σ, delay 20 ms ± 2 ms uniform, correlation {c}"),
            format!(
                "{:+.1} % (σ {:.1} µs, configured {:.1}, the seeded draws {:.1}; path alone {:.1} µs; lag-1 {rho:.3})",
                err * 100.0,
                sd / 1e3,
                want / 1e3,
                drawn.sqrt() / 1e3,
                var_path.sqrt() / 1e3,
            ),
            "±3 %, lag-1 ±0.03",
            err.abs() <= 0.03 && (rho - c).abs() <= 0.03,
        );
    }
    // Without reorder_on_jitter the same spread must not reorder (frames 100 µs apart,
    // a spread of 4 ms).
    l.console("impair vec1 tx delay=20ms jitter=2ms correlation=0 reorder_on_jitter=false seed=9");
    let (_, inversions) = by_seq(&stream(&l, port, n, pps));
    row(
        rows,
        "reorders with jitter 2 ms at 10 kpps (reorder_on_jitter off)",
        inversions.to_string(),
        "0",
        inversions == 0,
    );
    drop(g);
}

fn loss(rows: &mut Vec<Row>) {
    let (l, g) = line(",tx_loss=1%");
    let n = 100_000u64;
    let got = stream(&l, 7301, n, 20_000);
    let k = l.lost();
    let band = 3.29 * (n as f64 * 0.01 * 0.99).sqrt();
    row(
        rows,
        "loss 1 % of 10⁵ frames",
        format!("{k} lost, {} received (band 1000 ± {band:.0})", got.len()),
        "inside 99.9 % band",
        (k as f64 - 1000.0).abs() <= band,
    );
    drop(g);
}

/// trafgen flooding `size`-byte frames from A to B (CPU 0) until killed.
fn flood(l: &Line, size: usize) -> Child {
    let mac = l.lab.mac(&l.b, "b0");
    let src = l.lab.mac(&l.a, "a0");
    let conf = l.lab.dir.join(format!("flood{size}.cfg"));
    let fill = size - 42;
    std::fs::write(
        &conf,
        format!(
            "{{ eth(da={mac}, sa={src}, type=0x0800), ipv4(saddr={A_IP}, daddr=10.87.0.99, ttl=64), udp(sp=9, dp=9), fill(0x41, {fill}) }}\n"
        ),
    )
    .unwrap();
    Command::new("ip")
        .args([
            "netns", "exec", &l.a, "taskset", "-c", "0", "trafgen", "--dev", "a0",
        ])
        .args(["--conf", conf.to_str().unwrap(), "--cpus", "1", "-q"])
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Counter `name` of B's b0 over `secs` seconds after a 1 s warm-up, per second.
fn per_second(l: &Line, name: &str, secs: u64) -> f64 {
    std::thread::sleep(Duration::from_secs(1));
    let (c0, t0) = (l.lab.counter(&l.b, "b0", name), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let (c1, t1) = (l.lab.counter(&l.b, "b0", name), Instant::now());
    (c1 - c0) as f64 / (t1 - t0).as_secs_f64()
}

fn rate(rows: &mut Vec<Row>) {
    common::require_tool("trafgen");
    let (l, g) = line("");
    for r in ["10mbit", "100mbit", "1gbit"] {
        let bps = vecbox::impair::units::rate(r).unwrap() as f64;
        l.console(&format!("impair vec1 tx rate={r} queue=100ms"));
        let mut t = flood(&l, 1042);
        let got = per_second(&l, "rx_bytes", secs()) * 8.0;
        common::stop_group(&mut t);
        let err = got / bps - 1.0;
        row(
            rows,
            format!("rate {r} over {} s", secs()),
            format!("{:+.2} % ({:.2} Mbit/s)", err * 100.0, got / 1e6),
            "±1 %",
            err.abs() <= 0.01,
        );
        l.console("impair vec1 clear");
    }
    drop(g);
}

fn tcp(rows: &mut Vec<Row>) {
    common::require_tool("iperf3");
    let (mut l, g) = line(",tx_rate=100mbit,tx_delay=10ms,tx_queue=50ms");
    l.console("impair vec0 tx delay=10ms");
    let (a, b) = (l.a.clone(), l.b.clone());
    let bps = l.lab.iperf3(&b, &a, B_IP, secs() as u32);
    let cap = 100e6 * 1448.0 / 1514.0;
    row(
        rows,
        "TCP through rate 100 Mbit/s, RTT 20 ms, queue 2.5 BDP",
        format!(
            "{:.1} % of the payload rate ({:.1} Mbit/s)",
            bps / cap * 100.0,
            bps / 1e6
        ),
        "≥ 95 %",
        bps / cap >= 0.95,
    );
    drop(g);
}

fn forward(rows: &mut Vec<Row>) {
    common::require_tool("trafgen");
    let (l, g) = line("");
    let run = |l: &Line, secs: u64| {
        let mut t = flood(l, 64);
        let pps = per_second(l, "rx_packets", secs);
        common::stop_group(&mut t);
        pps
    };
    // Unimpaired and impaired alternate, VECBOX_BENCH_SECS in all for each.
    let reps = 2;
    let per = secs().div_ceil(reps).max(1);
    let (mut plain, mut impaired) = (0.0, 0.0);
    for _ in 0..reps {
        l.console("impair vec1 clear");
        plain += run(&l, per) / reps as f64;
        l.console("impair vec1 tx delay=1ms loss=1%");
        impaired += run(&l, per) / 0.99 / reps as f64;
    }
    row(
        rows,
        "64 B forwarding with delay 1 ms + loss 1 %",
        format!(
            "{:.1} % of unimpaired ({:.0} vs {:.0} kpps; stage late {})",
            impaired / plain * 100.0,
            impaired / 1e3,
            plain / 1e3,
            stage_late(&l),
        ),
        "≥ 90 %",
        impaired / plain >= 0.9,
    );
    drop(g);
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut rows = Vec::new();
    type Section = fn(&mut Vec<Row>);
    let sections: [(&str, Section); 8] = [
        ("model", model),
        ("cost", cost),
        ("delay", delay),
        ("jitter", jitter),
        ("loss", loss),
        ("rate", rate),
        ("tcp", tcp),
        ("forward", forward),
    ];
    for (name, f) in sections {
        if wanted(name) {
            eprintln!("== {name}");
            f(&mut rows);
        }
    }
    println!("| measurement | result | goal | met |");
    println!("|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} |",
            r.what,
            r.value,
            r.goal,
            if r.ok { "yes" } else { "no" }
        );
    }
    let json: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::json!({"what": r.what, "value": r.value, "goal": r.goal, "met": r.ok}))
        .collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        dir.join("impair.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    );
}
