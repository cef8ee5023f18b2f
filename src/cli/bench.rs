//! `vecbox bench` and `vecbox gen`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::bench::scenario::{self, Selection};
use crate::bench::traffic::{self, GenOptions, Generator};
use crate::bench::{self as b, BenchError, Options, report, svg};

pub const HELP: &str = "\
Measures vecbox guests forwarding UDP frames (packets per second) and TCP (Gbit/s),
side by side with the Linux kernel and a real UML kernel, in the same run and
placement, and reports ratios. Runs as root; everything it creates lives in
namespaces vbb<pid>-gen, -dut, -sink and is removed at the end or on Ctrl-C/SIGTERM.

Placement: generator in `gen` on CPU 0 → DUT in `dut` on CPU 1 → `sink`. The sink
counts in the kernel (/sys/class/net/*/statistics of s0; of the tap for tap/hybrid;
of the underlay veth for tunnels; of a peer guest's tap for bess). vecbox's raw and
hybrid ports run with ring=1 (the TPACKET_V3 receive ring) in `vec` rows.

Scenarios (names are globbable, e.g. 'vecbox/router/*/64/*', '*/tcp/*'):
  vecbox/FUNCTION/TRANSPORT/SIZE/dDEPTH/vec|vec0/off1|off0
      FUNCTION  xconnect, router, firewall (1000 rules, the flow's rule last)
      TRANSPORT the egress port: raw, tap, hybrid, gre, l2tpv3-ip, l2tpv3-udp, bess
                (the ingress port is raw on the generator's veth)
      SIZE      64, 512, 1500 (full-MTU frame), imix (7:4:1 of 64/594/1518)
      off1/off0 offloads on (veth TSO/GRO, gro=1) or off (ethtool -K ... off)
  vecbox/tcp/1s|4s/off1|off0   iperf3, 1 or 4 streams, xconnect over raw ports
  kernel/bridge/SIZE/offN      baseline for xconnect: a Linux bridge in `dut`
  kernel/forward/SIZE/offN     baseline for router/firewall: ip_forward in `dut`
  kernel/tcp/..., uml/tcp/...  TCP baselines (kernel bridge; UML routing)
  uml/TRANSPORT/SIZE           baseline: Debian's linux.uml routing from its raw
                               port to the same egress transport (no bridge in
                               Debian's UML build), pinned to CPU 1
Each vecbox row is compared with its kernel and UML baseline, which run first.

Matrix: by default every transport × size at depth 64 with vector I/O and offloads
on, plus the depth, vec=0 and offloads-off variants at the first size; --full runs
the whole product. Narrow it with --functions, --transports, --sizes, --depths,
--no-tcp and name patterns; --list prints what would run.

Output: a table as it goes (progress bar on a terminal); --json or --csv print
the results on stdout instead (the table then goes to stderr); --svg FILE draws
the chart; --report rewrites the block between <!-- bench:begin --> and
<!-- bench:end --> of docs/performance.md and docs/bench.svg.

Columns: offered (generator tx) and delivered (sink rx) Mpps, median (min-max) over
--reps windows of --secs seconds; Gbit/s delivered (frame bytes without FCS, or
iperf3 goodput); loss = 1 - delivered/offered; x kernel and x UML = this row's
median over its baseline's. Targets (64 B xconnect/router >= 1.2x kernel and
>= 5x UML, TCP >= 1x kernel and >= 2x UML, vector >= 1.3x vec=0, firewall >= 0.85x
router, GRE >= 3x UML GRE) are checked at the end: met, MISSED or not measured.

Generators: trafgen (netsniff-ng) or vecbox's own sendmmsg generator (`vecbox
gen`). --generator auto (default) offers traffic with both for a second and uses
the faster. --ndr searches the no-drop rate of 64-byte scenarios (binary search,
rate-limited vecbox generator, loss <= 0.1 %).

Missing tools skip only the scenarios that need them, with the reason: linux.uml
and busybox (UML baselines), iperf3 (TCP), ethtool (offloads off), trafgen (when
forced with --generator trafgen).

The machine must be otherwise idle for figures worth quoting: 2 cores are fully
used (generator and DUT).

Examples:
  sudo vecbox bench --quick                         # < 2 minutes smoke run
  sudo vecbox bench 'vecbox/xconnect/raw/*' --reps 3
  sudo vecbox bench --transports gre,l2tpv3-udp --sizes 64 --no-tcp
  sudo vecbox bench --functions router --ndr --sizes 64 --no-tcp
  sudo vecbox bench --report                        # full run, regenerates docs";

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Scenario names or globs (`*` any text, `?` one character); plain words match
    /// as substrings. All selected scenarios when none.
    #[arg(value_name = "SCENARIO")]
    patterns: Vec<String>,
    /// Smoke run under 2 minutes: raw 64 B xconnect and one TCP run with baselines,
    /// 1 window of 1 s.
    #[arg(long)]
    quick: bool,
    /// Functions: xconnect,router,firewall.
    #[arg(long, value_name = "LIST")]
    functions: Option<String>,
    /// Egress transports: raw,tap,hybrid,gre,l2tpv3-ip,l2tpv3-udp,bess.
    #[arg(long, value_name = "LIST")]
    transports: Option<String>,
    /// Frame sizes: 64,512,1500,imix.
    #[arg(long, value_name = "LIST")]
    sizes: Option<String>,
    /// Queue depths: e.g. 16,64,256.
    #[arg(long, value_name = "LIST")]
    depths: Option<String>,
    /// The full cartesian product of the axes.
    #[arg(long)]
    full: bool,
    /// Leave out the TCP scenarios.
    #[arg(long)]
    no_tcp: bool,
    /// Measurement windows per scenario.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Seconds per window (and per iperf3 run).
    #[arg(long, default_value_t = 2.0)]
    secs: f64,
    /// No-drop-rate search for 64-byte scenarios.
    #[arg(long)]
    ndr: bool,
    /// trafgen, vecbox or auto (the faster of the two).
    #[arg(long, default_value = "auto")]
    generator: String,
    /// Firewall rule count.
    #[arg(long, default_value_t = 1000)]
    rules: usize,
    /// Print the results as JSON on stdout.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print the results as CSV on stdout.
    #[arg(long)]
    csv: bool,
    /// Write the SVG chart to FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Regenerate the marked block of DOCS/performance.md and DOCS/bench.svg.
    #[arg(long)]
    report: bool,
    /// Documentation directory for --report.
    #[arg(long, default_value = "docs", value_name = "DIR")]
    docs: PathBuf,
    /// List the selected scenarios and exit.
    #[arg(long)]
    list: bool,
}

fn options(a: &BenchArgs) -> Result<Options, BenchError> {
    let exe = std::env::current_exe()
        .map_err(|e| BenchError::Command(format!("locating the vecbox binary: {e}")))?;
    let command = std::iter::once("vecbox".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let mut o = if a.quick {
        Options::quick(exe, command)
    } else {
        let mut sel = Selection::default();
        if let Some(s) = &a.functions {
            sel.functions = scenario::list(s, str::parse)?;
        }
        if let Some(s) = &a.transports {
            sel.transports = scenario::list(s, str::parse)?;
        }
        if let Some(s) = &a.sizes {
            sel.sizes = scenario::list(s, str::parse)?;
        }
        if let Some(s) = &a.depths {
            sel.depths = scenario::list(s, |d| match d.trim().parse::<u16>() {
                Ok(n) if (1..=4096).contains(&n) => Ok(n),
                _ => Err(BenchError::Usage(format!(
                    "depth {d:?}: expected 1..=4096 (e.g. --depths 16,64,256)"
                ))),
            })?;
        }
        sel.full = a.full;
        sel.tcp = !a.no_tcp;
        sel.patterns = a.patterns.clone();
        Options {
            selection: sel,
            reps: a.reps,
            secs: a.secs,
            ndr: a.ndr,
            generator: None,
            rules: a.rules,
            exe,
            command,
        }
    };
    if a.quick && !a.patterns.is_empty() {
        o.selection.patterns = a.patterns.clone();
    }
    o.generator = match a.generator.as_str() {
        "auto" => None,
        g => Some(g.parse::<Generator>()?),
    };
    Ok(o)
}

pub fn run(a: &BenchArgs) -> i32 {
    let result = run_inner(a);
    crate::bench::topo::wait_if_stopping();
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vecbox: error: {e}");
            if matches!(e, BenchError::Usage(_)) {
                2
            } else {
                1
            }
        }
    }
}

fn run_inner(a: &BenchArgs) -> Result<(), BenchError> {
    let opts = options(a)?;
    if a.list {
        for s in opts.selection.with_baselines() {
            println!("{}", s.name());
        }
        return Ok(());
    }
    b::cleanup_on_signals();
    let machine_output = a.json || a.csv;
    let bar = (std::io::stderr().is_terminal()).then(|| {
        let pb = indicatif::ProgressBar::new(opts.selection.with_baselines().len() as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb.enable_steady_tick(Duration::from_millis(200));
        pb
    });
    let say = |line: &str| match (&bar, machine_output) {
        (Some(pb), _) => pb.println(line),
        (None, true) => eprintln!("{line}"),
        (None, false) => println!("{line}"),
    };
    say(report::TABLE_HEADER);
    let res = b::run(&opts, &mut |row, done, _total| {
        say(&report::table_line(row));
        if let Some(pb) = &bar {
            pb.set_position(done as u64);
        }
    })?;
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    say("");
    for t in &res.targets {
        say(&format!(
            "{:<40} {:>7}  (target >= {}x: {})",
            t.what,
            t.value.map_or("-".into(), |v| format!("{v:.2}x")),
            t.target,
            match t.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "not measured",
            }
        ));
    }
    if let Some(g) = res.generator {
        say(&format!("generator: {g:?} {:?}", res.generator_rates));
    }
    if a.json {
        let j = serde_json::to_string_pretty(&res)
            .map_err(|e| BenchError::Command(format!("JSON: {e}")))?;
        println!("{j}");
    } else if a.csv {
        print!("{}", report::csv(&res));
    }
    let write = |p: &std::path::Path, text: &str| {
        std::fs::write(p, text)
            .map_err(|e| BenchError::Command(format!("writing {}: {e}", p.display())))
    };
    if let Some(p) = &a.svg {
        write(p, &svg::render(&res))?;
    }
    if a.report {
        let md = a.docs.join("performance.md");
        let doc = std::fs::read_to_string(&md).unwrap_or_else(|_| "# Performance\n".into());
        write(
            &md,
            &report::splice(&doc, &report::markdown(&res, "bench.svg")),
        )?;
        write(&a.docs.join("bench.svg"), &svg::render(&res))?;
        say(&format!(
            "wrote {} and {}",
            md.display(),
            a.docs.join("bench.svg").display()
        ));
    }
    Ok(())
}

pub const GEN_HELP: &str = "\
Sends UDP frames 10.80.1.1:4000 -> 10.80.2.99:4001 out of an interface through a
transmit-only AF_PACKET socket (qdisc bypass), DEPTH frames per sendmmsg, nothing
allocated per packet. The source MAC is the interface's. After --secs seconds it
prints what it sent as JSON (sent, seconds, pps); with --secs 0 it runs until
killed, without a report. Needs CAP_NET_RAW. `vecbox bench` uses it as its own
generator (and, rate-limited, for the no-drop-rate search).

Example:
  vecbox gen --dev veth0 --dst-mac 02:00:00:00:00:99 --size 64 --rate 500000 --secs 2";

#[derive(Args, Debug)]
pub struct GenArgs {
    /// Interface to send on.
    #[arg(long)]
    dev: String,
    /// Destination MAC of the frames.
    #[arg(long, value_name = "MAC")]
    dst_mac: String,
    /// Frame size: 64..=1500 bytes (with FCS; 1500 = full-MTU frame) or imix.
    #[arg(long, default_value = "64")]
    size: String,
    /// Packets per second; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Stop after this many seconds; 0 = run until killed.
    #[arg(long, default_value_t = 0.0)]
    secs: f64,
    /// Frames per sendmmsg call.
    #[arg(long, default_value_t = 64)]
    depth: usize,
}

pub fn run_gen(a: &GenArgs) -> i32 {
    let parsed = (|| -> Result<GenOptions, BenchError> {
        Ok(GenOptions {
            dev: a.dev.clone(),
            dst_mac: traffic::parse_mac(&a.dst_mac)?,
            size: a.size.parse()?,
            rate: a.rate,
            duration: (a.secs > 0.0).then(|| Duration::from_secs_f64(a.secs)),
            depth: a.depth,
        })
    })();
    let report = parsed.and_then(|o| traffic::run(&o));
    match report {
        Ok(r) => {
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
            0
        }
        Err(e) => {
            eprintln!("vecbox: error: {e}");
            if matches!(e, BenchError::Usage(_)) {
                2
            } else {
                1
            }
        }
    }
}
