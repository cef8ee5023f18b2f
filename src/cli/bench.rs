//! `vecbox bench` and `vecbox gen`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::bench::scenario::{self, Function};
use crate::bench::select::{self, Selection, one};
use crate::bench::traffic::{self, GenOptions, Generator};
use crate::bench::{self as b, BenchError, Options, render, svg};

pub const HELP: &str = "\
Measures vecbox guests forwarding UDP frames (packets per second) and TCP (Gbit/s),
side by side with the Linux kernel and a real UML kernel in the same run, against
the ceiling of the traffic itself, with the CPU time each row costs. Runs as root;
everything it creates lives in namespaces vbb<pid>-gen, -dut, -sink and is removed
at the end or on Ctrl-C/SIGTERM.

Placement: generator in `gen` pinned to CPU 0 -> DUT in `dut` (vecbox or UML pinned
to CPU 1) -> `sink`. The sink counts in the kernel (/sys/class/net/*/statistics of
s0; of the tap for tap/hybrid; of the underlay veth for tunnels; of a peer guest's
tap for bess). A veth delivers to its peer on the sending CPU: the kernel baselines
forward in the generator's softirq on CPU 0, vecbox's ingress is delivered on CPU 0
and its egress on CPU 1. Each row says where its work ran (measured per CPU).
vecbox's ports run with its defaults (raw and hybrid: the frame receive ring; GSO
frames whole where the veths have TSO on); --port-opts adds keys to every DUT port
(e.g. --port-opts ring=2 for the block ring, --port-opts ring=0,gro=0 for UML's
receive path and software segmentation) to compare against them.

Scenarios (names are globbable, e.g. 'vecbox/router/*/64/*', '*/tcp/*'):
  vecbox/FUNCTION/TRANSPORT/SIZE/dDEPTH/vec|vec0/off1|off0[/fFLOWS]
      FUNCTION  xconnect, router, firewall-port (--rules rules on the flow's own
                protocol and port, distinct source prefixes), firewall-mixed (a
                ClassBench-like list from a fixed seed), firewall-one (the flow's
                rule only); the flow's rule is last in every set
      TRANSPORT the egress port: raw, tap, hybrid, gre, l2tpv3-ip, l2tpv3-udp, bess
                (the ingress port is raw on the generator's veth)
      SIZE      64, 512, 1500 (full-MTU frame), imix (7:4:1 of 64/594/1518)
      off1/off0 veth offloads at the kernel's defaults or all off (TSO, GSO, GRO,
                tx and rx checksumming)
      fFLOWS    concurrent flows (distinct source addresses and ports; 1 when absent)
  vecbox/tcp/1s|4s/off1|off0   iperf3, 1 or 4 streams, xconnect over raw ports
  ceiling/SIZE/offN[/fFLOWS]   the generator straight into a sink over one veth
  ceiling/tcp/...              iperf3 client and server over one veth
  kernel/bridge/SIZE/offN      baseline for xconnect: a Linux bridge in `dut`
  kernel/forward/SIZE/offN[/fFLOWS]  baseline for router/firewall: ip_forward
  kernel/tcp/..., uml/tcp/...  TCP baselines (kernel bridge; UML routing)
  uml/TRANSPORT/SIZE           baseline: Debian's linux.uml routing from its raw
                               port to the same egress transport, pinned to CPU 1
Every row has a ceiling with the same traffic; vecbox rows also a kernel and (one
flow) a UML baseline. They run first, each once.

Matrix: by default every transport x size at depth 64 with vector I/O and offloads
on for xconnect, router and firewall-port, plus the depth, vec=0 and offloads-off
variants at the first size, plus router and the three firewall rule sets with
--flows 1,10000,100000 at the first transport and size; --full runs the whole
product. Narrow it with --functions, --transports, --sizes, --depths, --flows,
--no-tcp and name patterns; --list prints what would run.

Output: a table as it goes (progress bar on a terminal); --json or --csv print
the results on stdout instead (the table then goes to stderr); --svg FILE draws
the chart; --report rewrites the block between <!-- bench:begin --> and
<!-- bench:end --> of docs/performance.md and docs/bench.svg.

Columns: offered (generator tx) and delivered (sink rx) Mpps, median (min-max) over
--reps windows of --secs seconds; Gbit/s delivered; loss = 1 - delivered/offered;
of ceiling = delivered over the ceiling row's (GB: within 5 %, generator-bound:
the generator set the rate, not the DUT); CPU/frame = busy ns of all CPUs (from
/proc/stat) per delivered frame less the ceiling's generator and sink cost (TCP:
ms per Gbit); x kernel and x UML = rate ratio / cost ratio against the baseline.

Targets (64 B xconnect/router >= 1.2x kernel and >= 5x UML, TCP >= 1x kernel and
>= 2x UML, vector >= 1.3x vec=0, firewall >= 0.85x router with 1 and 10 000 flows,
GRE >= 3x UML GRE) are judged on the ranges: met when the lowest ratio the windows
allow (min over max) is at or above the target, MISSED when the highest is below,
otherwise inconclusive with the range (also with fewer than 3 windows); a target on
a generator-bound row reads >= X (or <= X for its baseline) instead.

Exit status: 0 when every row produced a result; 1 (after printing everything)
when any row failed or was skipped - a selected scenario, or a ceiling or baseline
it needs - naming the rows; 2 for bad flags. A no-drop rate of 0 fails its row.

Generators: trafgen (netsniff-ng) or vecbox's own sendmmsg generator (`vecbox
gen`); both send many flows as per-packet counters on the source address and port.
--generator auto (default) offers traffic with both for a second and uses the
faster. --ndr searches the no-drop rate of 64-byte scenarios (binary search,
rate-limited vecbox generator, loss <= 0.1 %).

Tools: linux.uml and busybox (UML baselines), iperf3 (TCP), trafgen (with
--generator trafgen). A row whose tool is missing is skipped with the
reason, the rest runs, and the exit status is 1.

Each row runs on a lab (lab `vbbPID`: namespaces vbbPID.gen, .dut, .sink) that
the lab layer builds and removes with its journal; a bench killed outright is
cleaned up by `vecbox down --lab vbbPID`. --topology SCENARIO writes that lab as a
topology file (stdout, or -o FILE; --lab NAME names it) to bring up by hand with
`vecbox up`, impair with `vecbox impair` and capture with `vecbox capture`.

The machine must be otherwise idle for figures worth quoting: 2 cores are fully
used (generator and DUT).

Examples:
  sudo vecbox bench --quick                         # < 2 minutes smoke run
  sudo vecbox bench 'vecbox/xconnect/raw/*' --reps 3
  sudo vecbox bench --transports gre,l2tpv3-udp --sizes 64 --no-tcp
  sudo vecbox bench --functions router,firewall --transports raw --sizes 64 --no-tcp
  sudo vecbox bench --functions router --ndr --sizes 64 --no-tcp
  sudo vecbox bench --report                        # full run, regenerates docs
  vecbox bench --topology kernel/forward/64/off1 -o fwd.yaml   # then: vecbox up fwd.yaml";

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
    /// Functions: xconnect,router,firewall-port,firewall-mixed,firewall-one
    /// (`firewall` = the three firewall rule sets).
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
    /// Concurrent flows for router and firewall rows: e.g. 1,10000,100000.
    #[arg(long, value_name = "LIST")]
    flows: Option<String>,
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
    /// Rules of the firewall-port and firewall-mixed rule sets (the flow's included).
    #[arg(long, default_value_t = 1000)]
    rules: usize,
    /// Keys added to every port of the vecbox DUTs, e.g. `ring=2` (block ring),
    /// `ring=0,gro=0` (UML's receive path and software segmentation); `ring=` goes to
    /// raw and hybrid ports only, `gro=` to raw, tap and hybrid ones. Default: none,
    /// vecbox's defaults.
    #[arg(long, value_name = "KEYS", default_value = "")]
    port_opts: String,
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
    /// Write scenario SCENARIO (a name from --list, e.g. kernel/forward/64/off1) as a
    /// topology file and exit without running anything: the lab the row runs on
    /// (namespaces gen, dut, sink, their veths, the kernel bridge or forwarding,
    /// addresses, routes, neighbour entries, offload switches), for `vecbox up`,
    /// `vecbox impair` and `vecbox capture`.
    #[arg(long, value_name = "SCENARIO")]
    topology: Option<String>,
    /// With --topology: write the file to FILE instead of stdout.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        requires = "topology"
    )]
    output: Option<PathBuf>,
    /// With --topology: the lab's name (namespaces NAME.gen, NAME.dut, NAME.sink).
    #[arg(long, value_name = "NAME", default_value = "bench")]
    lab: String,
}

/// `--topology`: the lab of scenario `name` (searched in the whole product of the
/// selected axes) as a topology file.
fn write_topology(a: &BenchArgs, opts: &Options, name: &str) -> Result<(), BenchError> {
    let mut sel = opts.selection.clone();
    sel.full = true;
    sel.patterns.clear();
    let all = sel.with_baselines();
    let Some(s) = all.iter().find(|s| s.name() == name) else {
        return Err(BenchError::Usage(format!(
            "--topology {name:?}: no such scenario; `vecbox bench --list --full` names them (e.g. kernel/bridge/64/off1)"
        )));
    };
    if !crate::lab::plan::valid_name(&a.lab, 30) {
        return Err(BenchError::Usage(format!(
            "--lab {:?}: a lab name is 1 to 30 characters of a-z A-Z 0-9 _ -, starting with a letter",
            a.lab
        )));
    }
    let text = crate::bench::lab::yaml(
        &a.lab,
        &crate::bench::lab::fabric(s),
        &crate::bench::lab::about(s, &a.lab),
    );
    match &a.output {
        Some(f) => std::fs::write(f, text)
            .map_err(|e| BenchError::Command(format!("writing {}: {e}", f.display()))),
        None => {
            print!("{text}");
            Ok(())
        }
    }
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
            sel.functions = select::list(s, Function::parse_item)?;
            sel.functions.dedup();
        }
        if let Some(s) = &a.transports {
            sel.transports = select::list(s, |t| one(t.parse()))?;
        }
        if let Some(s) = &a.sizes {
            sel.sizes = select::list(s, |t| one(t.parse()))?;
        }
        if let Some(s) = &a.depths {
            sel.depths = select::list(s, |d| {
                one(match d.trim().parse::<u16>() {
                    Ok(n) if (1..=4096).contains(&n) => Ok(n),
                    _ => Err(BenchError::Usage(format!(
                        "depth {d:?}: expected 1..=4096 (e.g. --depths 16,64,256)"
                    ))),
                })
            })?;
        }
        if let Some(s) = &a.flows {
            sel.flows = select::list(s, |f| one(select::parse_flows(f)))?;
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
            port_opts: String::new(),
        }
    };
    if a.quick {
        if !a.patterns.is_empty() {
            o.selection.patterns = a.patterns.clone();
        }
        o.ndr = a.ndr;
        o.rules = a.rules;
    }
    if a.rules == 0 {
        return Err(BenchError::Usage(
            "--rules 0: a rule set holds at least the flow's own rule (e.g. --rules 1000)".into(),
        ));
    }
    o.port_opts = check_port_opts(&a.port_opts)?;
    o.generator = match a.generator.as_str() {
        "auto" => None,
        g => Some(g.parse::<Generator>()?),
    };
    Ok(o)
}

/// `--port-opts` as a spec accepts it: every key must parse on a raw port.
fn check_port_opts(opts: &str) -> Result<String, BenchError> {
    let opts = opts.trim().trim_matches(',');
    if opts.is_empty() {
        return Ok(String::new());
    }
    format!("vec0:transport=raw,ifname=vbb0,{opts}")
        .parse::<crate::transport::Spec>()
        .map_err(|e| BenchError::Usage(format!("--port-opts {opts:?}: {e}")))?;
    Ok(opts.to_string())
}

pub fn run(a: &BenchArgs) -> i32 {
    let result = run_inner(a);
    crate::bench::topo::wait_if_stopping();
    match result {
        Ok(failures) if failures.is_empty() => 0,
        Ok(failures) => {
            eprintln!(
                "vecbox: error: {} of the rows produced no result, so the comparisons that need them are incomplete:",
                failures.len()
            );
            for f in &failures {
                eprintln!("  {f}");
            }
            1
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

/// Run the bench; the rows that produced no result.
fn run_inner(a: &BenchArgs) -> Result<Vec<String>, BenchError> {
    let opts = options(a)?;
    if let Some(name) = &a.topology {
        write_topology(a, &opts, name)?;
        return Ok(Vec::new());
    }
    if a.list {
        for s in opts.selection.with_baselines() {
            println!("{}", s.name());
        }
        return Ok(Vec::new());
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
    say(render::TABLE_HEADER);
    let res = b::run(&opts, &mut |row, done, _total| {
        say(&render::table_line(row));
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
            "{:<56} {:>7}  (target >= {}x: {})",
            t.what,
            t.value.map_or("-".into(), |v| format!("{v:.2}x")),
            t.target,
            t.text()
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
        print!("{}", render::csv(&res));
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
            &render::splice(&doc, &render::markdown(&res, "bench.svg")),
        )?;
        write(&a.docs.join("bench.svg"), &svg::render(&res))?;
        say(&format!(
            "wrote {} and {}",
            md.display(),
            a.docs.join("bench.svg").display()
        ));
    }
    Ok(res.failures())
}

pub const GEN_HELP: &str = "\
Sends UDP frames 10.80.1.1:4000 -> 10.80.2.99:4001 out of an interface through a
transmit-only AF_PACKET socket (qdisc bypass), DEPTH frames per sendmmsg, nothing
allocated per packet. The source MAC is the interface's. With --flows N (N > 1) the
frames come from N distinct source address and port pairs in 10.96.0.0/12 and ports
1024-1055, cycled packet by packet (each frame's source and IP checksum rewritten
before it is sent). After --secs seconds it
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
    /// Concurrent flows (distinct source address and port pairs).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(scenario::MAX_FLOWS)))]
    flows: u32,
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
            flows: a.flows,
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
