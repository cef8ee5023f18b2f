//! Measurements: packet rate windows counted by the kernel, iperf3 TCP runs, summary
//! statistics over repetitions, and the no-drop-rate (NDR) binary search.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::BenchError;
use super::cpu::{self, Usage};
use super::dut::Sink;
use super::topo::{Proc, Topo};
use super::traffic::{self, Flow, Generator};

/// One measurement window.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Sample {
    /// Frames per second leaving the generator (g0 tx).
    pub offered_pps: f64,
    /// Frames per second the sink's kernel received.
    pub delivered_pps: f64,
    /// Bits per second the sink received (frame bytes without FCS, or iperf3 goodput).
    pub delivered_bps: f64,
}

/// Median, minimum and maximum.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(values: &[f64]) -> Stat {
        if values.is_empty() {
            return Stat::default();
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stat {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// Counters read at one instant.
#[derive(Clone, Copy)]
struct Snapshot {
    at: Instant,
    tx: u64,
    rx: u64,
    rx_bytes: u64,
}

fn snapshot(topo: &Topo, sink: &Sink) -> Result<Snapshot, BenchError> {
    Ok(Snapshot {
        tx: topo.counter("gen", "g0", "tx_packets")?,
        rx: topo.counter(sink.role, sink.ifname, "rx_packets")?,
        rx_bytes: topo.counter(sink.role, sink.ifname, "rx_bytes")?,
        at: Instant::now(),
    })
}

/// `reps` back-to-back windows of `secs` with the generator already running, and the
/// CPU time of the whole span (all CPUs, and the process groups `dut_pgids`).
pub fn windows(
    topo: &Topo,
    sink: &Sink,
    reps: usize,
    secs: f64,
    dut_pgids: &[i32],
) -> Result<(Vec<Sample>, Usage), BenchError> {
    let mut out = Vec::with_capacity(reps);
    let cpu0 = cpu::snapshot(dut_pgids)?;
    let mut a = snapshot(topo, sink)?;
    let first = a;
    for _ in 0..reps {
        std::thread::sleep(Duration::from_secs_f64(secs));
        let b = snapshot(topo, sink)?;
        let dt = b.at.duration_since(a.at).as_secs_f64().max(1e-6);
        out.push(Sample {
            offered_pps: b.tx.saturating_sub(a.tx) as f64 / dt,
            delivered_pps: b.rx.saturating_sub(a.rx) as f64 / dt,
            delivered_bps: b.rx_bytes.saturating_sub(a.rx_bytes) as f64 * 8.0 / dt,
        });
        a = b;
    }
    let cpu1 = cpu::snapshot(dut_pgids)?;
    let mut usage = Usage::between(&cpu0, &cpu1);
    usage.offered_pkts = a.tx.saturating_sub(first.tx) as f64;
    usage.delivered_pkts = a.rx.saturating_sub(first.rx) as f64;
    usage.delivered_bits = a.rx_bytes.saturating_sub(first.rx_bytes) as f64 * 8.0;
    Ok((out, usage))
}

/// Where the traffic goes and who forwards it.
pub struct Meter<'a> {
    pub sink: &'a Sink,
    /// Process groups of the DUT (empty for the kernel and the ceiling).
    pub dut_pgids: &'a [i32],
}

/// Start the generator, wait until it sends (trafgen reads its configuration first),
/// let the DUT settle, measure `reps` windows.
pub fn pps(
    topo: &Topo,
    generator: Generator,
    flow: &Flow,
    meter: &Meter<'_>,
    exe: &std::path::Path,
    reps: usize,
    secs: f64,
) -> Result<(Vec<Sample>, Usage), BenchError> {
    let _g = traffic::start(topo, generator, flow, None, exe)?;
    wait_sending(topo)?;
    std::thread::sleep(Duration::from_millis(500));
    windows(topo, meter.sink, reps, secs, meter.dut_pgids)
}

/// Wait (at most 20 s) until the generator's frames leave g0.
fn wait_sending(topo: &Topo) -> Result<(), BenchError> {
    let start = topo.counter("gen", "g0", "tx_packets")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        if topo.counter("gen", "g0", "tx_packets")? > start + 1000 {
            return Ok(());
        }
    }
    Err(BenchError::Dut(
        "the generator sent nothing out of g0 within 20 s".into(),
    ))
}

/// Loss allowed at the no-drop rate (counters also see stray frames; RFC 2544 asks for
/// zero, a 0.1 % allowance keeps the search stable on a shared machine).
pub const NDR_LOSS: f64 = 0.001;

/// Binary search for the highest offered rate with loss ≤ [`NDR_LOSS`], using the
/// rate-limited vecbox generator; `ceiling` is the unlimited generator's rate.
pub fn ndr(
    topo: &Topo,
    flow: &Flow,
    sink: &Sink,
    exe: &std::path::Path,
    ceiling: f64,
    trial_secs: f64,
    steps: usize,
) -> Result<f64, BenchError> {
    let (mut lo, mut hi) = (0.0f64, ceiling.max(1000.0));
    for _ in 0..steps {
        let rate = (lo + hi) / 2.0;
        let g = traffic::start(topo, Generator::Vecbox, flow, Some(rate as u64), exe)?;
        std::thread::sleep(Duration::from_millis(300));
        let s = windows(topo, sink, 1, trial_secs, &[])?.0[0];
        drop(g);
        let loss = 1.0 - s.delivered_pps / s.offered_pps.max(1.0);
        if s.offered_pps > 0.0 && loss <= NDR_LOSS {
            lo = s.offered_pps.min(rate * 1.05);
        } else {
            hi = rate;
        }
    }
    Ok(lo)
}

/// One iperf3 TCP run from gen (CPU 0) to `server_ip` in namespace `server_role`
/// with `streams` streams: received bits per second, and the CPU time of the run.
pub fn tcp(
    topo: &Topo,
    server_role: &str,
    server_ip: &str,
    streams: u8,
    secs: f64,
    dut_pgids: &[i32],
) -> Result<(f64, Usage), BenchError> {
    let mut srv = topo.command(
        server_role,
        &["iperf3", "-s", "-1", "-B", server_ip, "-p", "5299"],
    )?;
    srv.stdout(Stdio::null()).stderr(Stdio::null());
    let _srv: Proc = Proc::spawn(&mut srv, &topo.tag)?;
    let t = (secs.ceil() as u64).max(1).to_string();
    let p = streams.to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let mut c = topo.command(
            "gen",
            &[
                "timeout",
                "60",
                "taskset",
                "-c",
                "0",
                "iperf3",
                "-c",
                server_ip,
                "-p",
                "5299",
                "-t",
                &t,
                "-P",
                &p,
                "-J",
                "--connect-timeout",
                "2000",
            ],
        )?;
        c.env(super::topo::TAG_ENV, &topo.tag);
        let cpu0 = cpu::snapshot(dut_pgids)?;
        let out = c
            .output()
            .map_err(|e| BenchError::Command(format!("iperf3: {e}")))?;
        let cpu1 = cpu::snapshot(dut_pgids)?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if out.status.success() && v.get("error").is_none() {
            let received = &v["end"]["sum_received"];
            let bps = received["bits_per_second"].as_f64().unwrap_or(0.0);
            let mut usage = Usage::between(&cpu0, &cpu1);
            usage.delivered_bits = received["bytes"].as_f64().unwrap_or(0.0) * 8.0;
            return Ok((bps, usage));
        }
        if Instant::now() > deadline {
            return Err(BenchError::Dut(format!(
                "iperf3 to {server_ip} failed: {}",
                v.get("error")
                    .and_then(|e| e.as_str())
                    .unwrap_or("no result")
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_median_min_max() {
        assert_eq!(
            Stat::of(&[3.0, 1.0, 2.0]),
            Stat {
                median: 2.0,
                min: 1.0,
                max: 3.0
            }
        );
        assert_eq!(Stat::of(&[4.0, 1.0]).median, 2.5);
        assert_eq!(Stat::of(&[]), Stat::default());
    }
}
