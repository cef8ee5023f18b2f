//! `vecbox bench`: packet-rate and TCP throughput of vecbox guests, measured side by
//! side with the Linux kernel and a real UML kernel in the same run, against the
//! ceiling of the traffic itself (the generator straight into a sink), with the CPU
//! time every row costs.
//!
//! - [`scenario`] and [`select`]: the matrix (function × transport × size × depth ×
//!   vector × offloads × flows, TCP streams × offloads), its names, and selection by
//!   flags and name globs;
//! - [`topo`]: gen → DUT → sink namespaces, processes, clean-up on interruption;
//! - [`traffic`]: trafgen and vecbox's own `sendmmsg` generator (`vecbox gen`), one
//!   flow or many;
//! - [`dut`], [`baseline`] and [`rulesets`]: vecbox, kernel and UML devices under
//!   test, and the firewall rule sets;
//! - [`measure`] and [`cpu`]: kernel-counted windows, iperf3, CPU time, statistics,
//!   NDR search;
//! - [`report`], [`verdict`], [`render`] and [`svg`]: ceilings, costs, ratios,
//!   targets, table, CSV, JSON, Markdown, chart.
//!
//! See docs/bench.md.

pub mod baseline;
pub mod cpu;
pub mod dut;
pub mod lab;
pub mod measure;
pub mod render;
pub mod report;
pub mod rulesets;
pub mod scenario;
pub mod select;
pub mod svg;
pub mod topo;
pub mod traffic;
pub mod verdict;

use std::ffi::OsStr;
use std::path::PathBuf;

use thiserror::Error;

use self::dut::{Running, VecboxDut};
use self::measure::{Meter, Sample};
use self::report::{Results, Row, Status};
use self::scenario::{Dut, Function, Kind, Scenario, Size, Transport};
use self::select::Selection;
use self::topo::Topo;
use self::traffic::{Flow, Generator};

/// Errors of `vecbox bench`.
#[derive(Debug, Error)]
pub enum BenchError {
    /// A bad flag value or an impossible selection.
    #[error("{0}")]
    Usage(String),
    /// A command or file operation the bench needs failed.
    #[error("{0}")]
    Command(String),
    /// The device under test (vecbox, kernel or UML) could not be set up or measured.
    #[error("{0}")]
    Dut(String),
}

/// What to run and how.
#[derive(Clone, Debug)]
pub struct Options {
    pub selection: Selection,
    /// Measurement windows per scenario.
    pub reps: usize,
    /// Length of one window (and of one iperf3 run), seconds.
    pub secs: f64,
    /// No-drop-rate search for 64-byte scenarios.
    pub ndr: bool,
    /// Generator; `None` = measure both, use the faster.
    pub generator: Option<Generator>,
    /// Firewall rule count (own-port and mixed rule sets).
    pub rules: usize,
    /// The vecbox binary (guests and the own generator run from it).
    pub exe: PathBuf,
    /// The command line, for the report.
    pub command: String,
    /// Keys added to every port of vecbox DUTs (`--port-opts`, e.g. `ring=2`); empty:
    /// vecbox's defaults.
    pub port_opts: String,
}

impl Options {
    /// The `--quick` slice: raw 64 B xconnect and one TCP run with their ceilings,
    /// kernel and UML baselines, one 1 s window each.
    pub fn quick(exe: PathBuf, command: String) -> Options {
        Options {
            selection: Selection {
                functions: vec![Function::Xconnect],
                transports: vec![Transport::Raw],
                sizes: vec![Size::Bytes(64)],
                depths: vec![scenario::DEFAULT_DEPTH],
                flows: vec![1],
                full: false,
                tcp: true,
                patterns: vec![
                    "vecbox/xconnect/raw/64/d64/vec/off1".into(),
                    "vecbox/tcp/1s/off1".into(),
                ],
            },
            reps: 1,
            secs: 1.0,
            ndr: false,
            generator: None,
            rules: 1000,
            port_opts: String::new(),
            exe,
            command,
        }
    }
}

/// External tools found on `PATH`.
#[derive(Clone, Debug, Default)]
pub struct Tools {
    pub trafgen: bool,
    pub iperf3: bool,
    pub linux_uml: bool,
    pub busybox: bool,
}

impl Tools {
    pub fn detect() -> Tools {
        Tools::detect_in(&std::env::var_os("PATH").unwrap_or_default())
    }

    pub fn detect_in(path: &OsStr) -> Tools {
        let has = |t: &str| std::env::split_paths(path).any(|d| d.join(t).is_file());
        Tools {
            trafgen: has("trafgen"),
            iperf3: has("iperf3"),
            linux_uml: has("linux.uml"),
            busybox: has("busybox"),
        }
    }
}

/// Why `s` cannot run with `tools` and `generator`, if it cannot.
pub fn missing(s: &Scenario, tools: &Tools, generator: Generator) -> Option<String> {
    let mut need = Vec::new();
    if s.dut == Dut::Uml {
        if !tools.linux_uml {
            need.push("linux.uml (Debian package user-mode-linux)");
        }
        if !tools.busybox {
            need.push("busybox (Debian package busybox-static) for the UML root");
        }
    }
    match s.kind {
        Kind::Tcp { .. } => {
            if !tools.iperf3 {
                need.push("iperf3");
            }
        }
        Kind::Pps { .. } => {
            if generator == Generator::Trafgen && !tools.trafgen {
                need.push("trafgen (Debian package netsniff-ng)");
            }
        }
    }
    (!need.is_empty()).then(|| format!("skipped: needs {}", need.join(", ")))
}

/// Run the selected scenarios, their ceilings and baselines; `on_row(row, done, total)`
/// is called as each finishes. Rows that fail or cannot run are kept with their reason
/// ([`Results::failures`]); the run goes on.
pub fn run(
    opts: &Options,
    on_row: &mut dyn FnMut(&Row, usize, usize),
) -> Result<Results, BenchError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(BenchError::Usage(
            "vecbox bench creates network namespaces and runs guests on them: run it as root"
                .into(),
        ));
    }
    if !topo::have_tool("taskset") {
        return Err(BenchError::Usage(
            "vecbox bench needs `taskset` on PATH (util-linux)".into(),
        ));
    }
    if opts.reps == 0 || opts.secs.is_nan() || opts.secs <= 0.0 {
        return Err(BenchError::Usage(
            "--reps and --secs must be above 0".into(),
        ));
    }
    let scenarios = opts.selection.with_baselines();
    if scenarios.is_empty() {
        return Err(BenchError::Usage(
            "no scenario matches the selection (see `vecbox bench --list`)".into(),
        ));
    }
    let tools = Tools::detect();
    let tag = format!("vbb{}", std::process::id());
    let topo = Topo::new(&tag)?;
    let mut state = State { topo: &topo, opts };
    let any_pps = scenarios.iter().any(|s| matches!(s.kind, Kind::Pps { .. }));
    let (generator, generator_rates) = match opts.generator {
        Some(g) => (g, Vec::new()),
        None if any_pps => {
            topo.fabric(&lab::Fabric::plain(true))?;
            let flow = state.flow(topo::SINK_MAC, Size::Bytes(64), 1)?;
            traffic::pick_fastest(&topo, &flow, &opts.exe, opts.secs.min(1.0), tools.trafgen)?
        }
        None => (Generator::Vecbox, Vec::new()),
    };
    let mut rows: Vec<Row> = Vec::new();
    let total = scenarios.len();
    for s in &scenarios {
        topo::wait_if_stopping();
        let row = match missing(s, &tools, generator) {
            Some(reason) => Row::skipped(s, reason, Status::Skipped),
            None => match state.scenario(s, generator) {
                Ok(r) => r,
                Err(e) => Row::skipped(s, e.to_string(), Status::Failed),
            },
        };
        rows.push(row);
        let i = rows.len() - 1;
        report::link(&mut rows, i);
        topo::wait_if_stopping();
        on_row(&rows[i], rows.len(), total);
    }
    let targets = verdict::targets(&rows);
    let pps_ran = rows.iter().any(|r| r.status == Status::Ok && r.is_pps());
    Ok(Results {
        command: opts.command.clone(),
        date: now_utc(),
        machine: report::Machine::detect(),
        reps: opts.reps,
        window_secs: opts.secs,
        generator: pps_ran.then_some(generator),
        generator_rates,
        rows,
        targets,
    })
}

/// Mark a measured row failed when it measured nothing, or its no-drop rate is 0.
pub fn check_row(mut r: Row) -> Row {
    if r.metric() == Some(0.0) {
        r.status = Status::Failed;
        r.reason = Some(format!(
            "nothing reached the sink (delivered {:.0} pps, {:.3} Gbit/s): the DUT did not forward",
            r.delivered_pps.median, r.delivered_gbps.median
        ));
    } else if r.ndr_pps == Some(0.0) {
        r.status = Status::Failed;
        r.reason = Some(format!(
            "no-drop rate search: loss above {} % at every rate tried, down to {:.0} pps",
            measure::NDR_LOSS * 100.0,
            r.offered_pps.max / 2f64.powi(NDR_STEPS as i32)
        ));
    }
    r
}

/// Steps of the no-drop-rate binary search.
pub const NDR_STEPS: usize = 7;

/// `YYYY-MM-DD HH:MM UTC` without a date crate.
fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// The run's mutable placement state.
struct State<'a> {
    topo: &'a Topo,
    opts: &'a Options,
}

impl State<'_> {
    fn flow(&self, dst_mac: &str, size: Size, flows: u32) -> Result<Flow, BenchError> {
        Ok(Flow {
            src_mac: traffic::parse_mac(&self.topo.mac("gen", "g0")?)?,
            dst_mac: traffic::parse_mac(dst_mac)?,
            size,
            flows,
        })
    }

    fn scenario(&mut self, s: &Scenario, generator: Generator) -> Result<Row, BenchError> {
        let (o, t) = (self.opts, self.topo);
        match s.kind {
            Kind::Pps {
                function,
                transport,
                size,
                depth,
                vector,
                offloads,
                flows,
            } => {
                t.fabric(&lab::fabric(s))?;
                let running: Running = match s.dut {
                    Dut::Vecbox => dut::vecbox(
                        t,
                        &o.exe,
                        &VecboxDut {
                            function,
                            transport,
                            depth,
                            vector,
                            offloads,
                            rules: o.rules,
                            flows,
                            port_opts: o.port_opts.clone(),
                        },
                    )?,
                    Dut::Kernel => baseline::kernel(t, function)?,
                    Dut::Uml => baseline::uml(t, transport)?,
                    Dut::Ceiling => dut::ceiling(),
                };
                let flow = self.flow(&running.dst_mac, size, flows)?;
                let pgids = running.pgids();
                let meter = Meter {
                    sink: &running.sink,
                    dut_pgids: &pgids,
                };
                let (samples, usage) =
                    measure::pps(t, generator, &flow, &meter, &o.exe, o.reps, o.secs)?;
                let mut row = Row::new(s).measured(&samples).with_usage(usage);
                row.generator = Some(generator);
                if o.ndr && size == Size::Bytes(64) && s.dut != Dut::Ceiling {
                    let trial = o.secs.min(1.0);
                    row.ndr_pps = Some(measure::ndr(
                        t,
                        &flow,
                        &running.sink,
                        &o.exe,
                        row.offered_pps.max,
                        trial,
                        NDR_STEPS,
                    )?);
                }
                drop(running);
                if s.dut == Dut::Uml {
                    baseline::uml_cleanup(t);
                }
                Ok(check_row(row))
            }
            Kind::Tcp { streams, offloads } => {
                t.fabric(&lab::fabric(s))?;
                let (running, server_role, server) = match s.dut {
                    Dut::Vecbox => {
                        let d = VecboxDut {
                            function: Function::Xconnect,
                            transport: Transport::Raw,
                            depth: scenario::DEFAULT_DEPTH,
                            vector: true,
                            offloads,
                            rules: o.rules,
                            flows: 1,
                            port_opts: o.port_opts.clone(),
                        };
                        (dut::vecbox(t, &o.exe, &d)?, "sink", "10.80.1.2")
                    }
                    Dut::Kernel => (
                        baseline::kernel(t, Function::Xconnect)?,
                        "sink",
                        "10.80.1.2",
                    ),
                    Dut::Uml => (baseline::uml_tcp(t)?, "sink", "10.80.2.2"),
                    Dut::Ceiling => (dut::ceiling(), "dut", "10.80.1.2"),
                };
                let pgids = running.pgids();
                let mut samples = Vec::new();
                let mut total = cpu::Usage::default();
                for _ in 0..o.reps {
                    let (bps, usage) =
                        measure::tcp(t, server_role, server, streams, o.secs, &pgids)?;
                    total.add(&usage);
                    samples.push(Sample {
                        delivered_bps: bps,
                        ..Sample::default()
                    });
                }
                drop(running);
                if s.dut == Dut::Uml {
                    baseline::uml_cleanup(t);
                }
                Ok(check_row(Row::new(s).measured(&samples).with_usage(total)))
            }
        }
    }
}

/// Remove everything the bench started when SIGINT, SIGTERM or SIGHUP arrives, then
/// exit with status 130. Call before any other thread is started (the signals are
/// blocked in the calling thread and so in every thread it starts; child processes
/// get a clean mask).
pub fn cleanup_on_signals() {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    // Started in the background by a shell, SIGINT would be ignored and never seen.
    for s in [Signal::SIGINT, Signal::SIGTERM] {
        let _ = crate::sys::process::restore_default_signal(s);
    }
    if set.thread_block().is_err() {
        return;
    }
    std::thread::spawn(move || {
        if let Ok(sig) = set.wait() {
            topo::stop();
            topo::cleanup_all();
            eprintln!("vecbox bench: {sig:?}: removed every namespace and process it started");
            std::process::exit(130);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_skips_with_its_name() {
        let dir = std::env::temp_dir().join(format!("vbtbench-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tshark"), "").unwrap();
        let tools = Tools::detect_in(dir.as_os_str());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!tools.iperf3 && !tools.linux_uml && !tools.trafgen);
        let all = Selection::default().with_baselines();
        let get = |n: &str| all.iter().find(|s| s.name() == n).unwrap();
        let uml = missing(get("uml/raw/64"), &tools, Generator::Vecbox).unwrap();
        assert!(
            uml.contains("linux.uml") && uml.contains("busybox"),
            "{uml}"
        );
        let tcp = missing(get("vecbox/tcp/1s/off1"), &tools, Generator::Vecbox).unwrap();
        assert!(tcp.contains("iperf3"), "{tcp}");
        let tcp = missing(get("ceiling/tcp/1s/off1"), &tools, Generator::Vecbox).unwrap();
        assert!(tcp.contains("iperf3"), "{tcp}");
        let c = get("ceiling/64/off1");
        assert_eq!(missing(c, &tools, Generator::Vecbox), None);
        assert!(missing(c, &tools, Generator::Trafgen).is_some());
        let v = get("vecbox/xconnect/raw/64/d64/vec/off1");
        assert_eq!(missing(v, &tools, Generator::Vecbox), None);
        let t = missing(v, &tools, Generator::Trafgen).unwrap();
        assert!(t.contains("trafgen"), "{t}");
        // Offloads are switched by the lab layer (SIOCETHTOOL), not by ethtool.
        let off = get("vecbox/xconnect/raw/64/d64/vec/off0");
        assert_eq!(missing(off, &tools, Generator::Vecbox), None);
    }

    #[test]
    fn quick_is_a_small_slice_with_its_baselines() {
        let o = Options::quick("vecbox".into(), "vecbox bench --quick".into());
        let names: Vec<String> = o
            .selection
            .with_baselines()
            .iter()
            .map(Scenario::name)
            .collect();
        assert_eq!(
            names,
            [
                "ceiling/64/off1",
                "kernel/bridge/64/off1",
                "uml/raw/64",
                "vecbox/xconnect/raw/64/d64/vec/off1",
                "ceiling/tcp/1s/off1",
                "kernel/tcp/1s/off1",
                "uml/tcp/1s/off1",
                "vecbox/tcp/1s/off1",
            ]
        );
    }

    #[test]
    fn zero_rates_and_a_zero_ndr_fail_the_row() {
        let o = Options::quick("vecbox".into(), "x".into());
        let s = &o.selection.with_baselines()[3];
        let sample = |p: f64| Sample {
            offered_pps: 1000.0,
            delivered_pps: p,
            delivered_bps: p * 480.0,
        };
        let ok = check_row(Row::new(s).measured(&[sample(900.0)]));
        assert_eq!(ok.status, Status::Ok);
        let none = check_row(Row::new(s).measured(&[sample(0.0)]));
        assert_eq!(none.status, Status::Failed);
        assert!(none.reason.unwrap().contains("nothing reached the sink"));
        let mut zero_ndr = Row::new(s).measured(&[sample(900.0)]);
        zero_ndr.ndr_pps = Some(0.0);
        let r = check_row(zero_ndr);
        assert_eq!(r.status, Status::Failed);
        assert!(
            r.reason.unwrap().contains("no-drop rate"),
            "a zero NDR is no result"
        );
    }

    #[test]
    fn dates_are_civil() {
        let d = now_utc();
        assert!(
            d.len() == 20 && d.starts_with("20") && d.ends_with("UTC"),
            "{d}"
        );
    }
}
