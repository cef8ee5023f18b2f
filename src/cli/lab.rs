//! `vecbox check | up | status | down | graph | exec`: labs from topology files.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::lab::{self, LabError, Plan, deploy, plan, state, supervise::Supervisor, teardown};

pub const CHECK_HELP: &str = "\
Reads FILE and reports every problem with file:line:col, what is wrong and a suggestion;
touches nothing. Exit status 0 when valid, 2 when not.

Checked: unknown keys (with the nearest known key), node and lab names, dangling
endpoints, interfaces used twice, keys that do not apply to a node's kind, link types a
kind cannot take, host interface names over 15 bytes, MTU against encapsulation overhead,
GRE keys and L2TPv3 sessions that the receiving end cannot tell apart, missing UML
kernels, roots and images, and every generated vecN: spec (through the same parser the
guests use).

  --json     print {\"valid\": bool, \"errors\": [{file,line,column,message,hint}]}
  --schema   print the JSON Schema of topology files (docs/topology.schema.json)";

pub const UP_HELP: &str = "\
Validates FILE (nothing is created from an invalid file), then builds the lab:
namespaces LAB.NODE, veth pairs, taps, underlays for gre/l2tpv3 links, guests and UML
kernels, host addresses, routes and commands. Every kernel object is written to the
journal /run/vecbox/LAB/journal before it is created and marked with the alias
vecbox:LAB. If anything fails half-way, everything made so far is removed and the
error names the object that failed. Leftovers of a crashed run of the same lab are
removed first.

Stays in the foreground showing per-link rates; Ctrl-C tears the lab down. With
--detach a background supervisor keeps the lab (and restarts guests) until
`vecbox down`.";

pub const DOWN_HELP: &str = "\
Stops the lab's supervisor, every guest and UML kernel, kills whatever still runs in
the lab's namespaces, deletes the namespaces (and with them every interface) and the
run directory. Works from the journal alone: after a crash, after kill -9 of vecbox
and every guest, and when the topology file is gone. Never touches objects vecbox did
not create. Running it twice is harmless.";

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Topology file.
    #[arg(required_unless_present = "schema")]
    file: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Print the topology JSON Schema instead.
    #[arg(long)]
    schema: bool,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Topology file.
    file: PathBuf,
    /// Return once the lab is ready; a background supervisor keeps it running.
    #[arg(long)]
    detach: bool,
    /// No progress bar or live rates.
    #[arg(long, short)]
    quiet: bool,
    /// Serve Prometheus metrics for the lab at ADDR (overrides `metrics:` in FILE).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Internal: run as the detached supervisor.
    #[arg(long, hide = true)]
    supervisor: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Lab name (default: every lab that is up).
    lab: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct DownArgs {
    /// Topology file naming the lab.
    #[arg(conflicts_with_all = ["lab", "all"], required_unless_present_any = ["lab", "all"])]
    file: Option<PathBuf>,
    /// Lab name.
    #[arg(long)]
    lab: Option<String>,
    /// Every lab under /run/vecbox.
    #[arg(long)]
    all: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Dot,
    Mermaid,
}

#[derive(Args, Debug)]
pub struct GraphArgs {
    /// Topology file.
    file: PathBuf,
    #[arg(long, value_enum, default_value = "dot")]
    format: Format,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Lab name.
    lab: String,
    /// Node name.
    node: String,
    /// Command and arguments.
    #[arg(last = true, required = true)]
    cmd: Vec<String>,
}

fn fail(e: &LabError) -> i32 {
    eprintln!("vecbox: error: {e}");
    e.exit_code()
}

pub fn check(a: &CheckArgs) -> i32 {
    if a.schema {
        println!("{}", lab::schema());
        return 0;
    }
    let Some(file) = &a.file else { return 2 };
    let r = lab::load(file);
    if a.json {
        let errors = match &r {
            Ok(_) => Vec::new(),
            Err(LabError::Invalid(d)) => d.clone(),
            Err(e) => vec![lab::Diagnostic {
                file: file.display().to_string(),
                line: 0,
                column: 0,
                message: e.to_string(),
                hint: None,
            }],
        };
        let v = serde_json::json!({"valid": r.is_ok(), "errors": errors});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return if r.is_ok() { 0 } else { 2 };
    }
    match r {
        Ok(p) => {
            println!(
                "{}: lab `{}` is valid: {} nodes, {} links",
                file.display(),
                p.lab,
                p.nodes.len(),
                p.links.len()
            );
            0
        }
        Err(LabError::Invalid(d)) => {
            eprintln!("{}", LabError::Invalid(d));
            2
        }
        Err(e) => fail(&e),
    }
}

pub fn graph(a: &GraphArgs) -> i32 {
    match lab::load(&a.file) {
        Ok(p) => {
            print!(
                "{}",
                match a.format {
                    Format::Dot => lab::graph::dot(&p),
                    Format::Mermaid => lab::graph::mermaid(&p),
                }
            );
            0
        }
        Err(e) => fail(&e),
    }
}

/// Marker line the detached supervisor prints once the lab is ready.
const READY_MARK: &str = "\u{1}vecbox-lab-ready";

pub fn up(a: &UpArgs) -> i32 {
    let mut plan = match lab::load(&a.file) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    if let Some(m) = &a.metrics {
        plan.metrics = Some(m.clone());
    }
    if a.detach && !a.supervisor {
        return detach(a);
    }
    // SIGINT/SIGTERM/SIGHUP are taken through a signalfd by the supervision loop; a
    // signal during the build is acted on once the build ends.
    let mut mask = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        mask.add(s);
    }
    let _ = mask.thread_block();
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ok();
    let sup = match build(&plan, a.quiet || a.supervisor) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    print_summary(&sup.dep.plan);
    start_metrics(&sup.dep.plan);
    let mut sup = sup;
    let mut stop = || {
        sigfd
            .as_ref()
            .is_some_and(|fd| matches!(fd.read_signal(), Ok(Some(_))))
    };
    if a.supervisor {
        println!("{READY_MARK}");
        let _ = std::io::stdout().flush();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(sup.dep.dir.join("supervisor.log"));
        if let Ok(f) = log {
            let _ = crate::sys::process::redirect_stdio(&f);
        }
        sup.run(&mut stop, &mut |_| {});
    } else {
        let live = !a.quiet && std::io::stdout().is_terminal();
        println!("Ctrl-C tears the lab down.");
        sup.run(&mut stop, &mut |st| {
            if live {
                show_rates(st);
            }
        });
    }
    let r = sup.shutdown();
    eprintln!(
        "lab `{}` down: {} namespaces removed{}",
        plan.lab,
        r.namespaces.len(),
        if r.skipped.is_empty() {
            String::new()
        } else {
            format!("; left alone: {}", r.skipped.join("; "))
        }
    );
    0
}

/// Clean leftovers of a crashed run, deploy, and return the supervisor; on failure
/// everything made so far is removed.
fn build(plan: &Plan, quiet: bool) -> Result<Supervisor, LabError> {
    let dir = plan.run_dir();
    if dir.exists() {
        if let Some((pid, _)) = teardown::live_supervisor(&plan.lab) {
            return Err(LabError::AlreadyUp {
                lab: plan.lab.clone(),
                pid,
            });
        }
        eprintln!(
            "vecbox: removing leftovers of a previous run of lab `{}`",
            plan.lab
        );
        let r = teardown::teardown(&plan.lab);
        for s in r.skipped {
            eprintln!("vecbox: warning: {s}");
        }
    }
    let mut dep = deploy::begin(plan)?;
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(1);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut progress = |i: usize, n: usize, what: &str| {
        if let Some(b) = &bar {
            b.set_length(n as u64);
            b.set_position(i as u64);
            b.set_message(what.to_string());
        }
    };
    let r = dep.build(&mut progress);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    match r {
        Ok(()) => Ok(Supervisor::new(dep)),
        Err(e) => {
            let children = std::mem::take(&mut dep.children);
            drop(dep);
            for (_, mut c) in children {
                let _ = c.kill();
                let _ = c.wait();
            }
            teardown::teardown(&plan.lab);
            Err(e)
        }
    }
}

/// Where the lab's Prometheus exporter starts. The collector over the guests' shared
/// counters is added with the metrics work; until then the address is validated and
/// reported only.
fn start_metrics(plan: &Plan) {
    if let Some(addr) = &plan.metrics {
        eprintln!(
            "vecbox: note: metrics endpoint {addr} requested; this build has no lab exporter yet"
        );
    }
}

fn detach(a: &UpArgs) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("vecbox: error: {e}");
            return 1;
        }
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("up")
        .arg(&a.file)
        .arg("--supervisor")
        .arg("--quiet");
    if let Some(m) = &a.metrics {
        cmd.args(["--metrics", m]);
    }
    let (reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("vecbox: error: {e}");
            return 1;
        }
    };
    let writer2 = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("vecbox: error: {e}");
            return 1;
        }
    };
    cmd.stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(writer2);
    crate::sys::process::new_session(&mut cmd);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vecbox: error: starting the supervisor: {e}");
            return 1;
        }
    };
    drop(cmd);
    let mut to_err = false;
    for line in BufReader::new(reader).lines().map_while(Result::ok) {
        if line == READY_MARK {
            println!(
                "supervisor pid {} (log in {}/supervisor.log)",
                child.id(),
                plan::run_dir(&lab_of(a)).display()
            );
            return 0;
        }
        // The supervisor's messages and errors go to stderr, the summary to stdout.
        to_err |= line.starts_with("vecbox: error");
        if to_err || line.starts_with("vecbox: ") {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    1
}

fn lab_of(a: &UpArgs) -> String {
    lab::load(&a.file).map(|p| p.lab).unwrap_or_default()
}

fn print_summary(p: &Plan) {
    println!(
        "lab `{}` is up: {} nodes, {} links",
        p.lab,
        p.nodes.len(),
        p.links.len()
    );
    for n in &p.nodes {
        let extra = if n.kind.is_process() {
            format!(
                "console: vecbox console {}   log: {}",
                n.umid,
                p.run_dir().join(format!("{}.log", n.name)).display()
            )
        } else {
            format!("exec: vecbox exec {} {} -- CMD", p.lab, n.name)
        };
        println!(
            "  {:<16} {:<9} netns {:<24} {extra}",
            n.name,
            n.kind.as_str(),
            n.netns
        );
    }
    for l in &p.links {
        println!("  {} – {} ({})", l.names[0], l.names[1], l.kind);
    }
    let _ = std::io::stdout().flush();
}

fn show_rates(st: &state::LabState) {
    let mut out = String::from("\x1b[s");
    for l in &st.links {
        out.push_str(&format!(
            "\n  {:<40} →{:>8}pps {:>8}b/s  ←{:>8}pps {:>8}b/s",
            l.name,
            state::human(l.pps[0]),
            state::human(l.bps[0]),
            state::human(l.pps[1]),
            state::human(l.bps[1])
        ));
    }
    let restarts: u32 = st.nodes.iter().map(|n| n.restarts).sum();
    out.push_str(&format!("\n  restarts: {restarts}\x1b[u"));
    print!("{out}");
    let _ = std::io::stdout().flush();
}

pub fn status(a: &StatusArgs) -> i32 {
    let labs = match &a.lab {
        Some(l) => vec![l.clone()],
        None => lab::labs(),
    };
    let mut all = Vec::new();
    for l in &labs {
        let dir = plan::run_dir(l);
        if !dir.exists() {
            return fail(&LabError::NoLab(l.clone()));
        }
        let alive = teardown::live_supervisor(l).is_some();
        let st = state::read(&dir);
        all.push((l.clone(), alive, st));
    }
    if a.json {
        let v: Vec<_> = all
            .iter()
            .map(|(l, alive, st)| serde_json::json!({"lab": l, "supervisor_running": alive, "state": st}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return 0;
    }
    if all.is_empty() {
        println!("no lab is up");
    }
    for (l, alive, st) in all {
        if !alive {
            println!(
                "lab `{l}`: supervisor not running (crashed or killed); `vecbox down --lab {l}` removes what is left"
            );
        }
        let Some(st) = st else {
            println!("lab `{l}`: starting (no state yet)");
            continue;
        };
        println!("lab `{l}` (supervisor pid {})", st.supervisor);
        println!(
            "  {:<16} {:<9} {:<11} {:>8} {:>8}  console",
            "NODE", "KIND", "STATE", "PID", "RESTARTS"
        );
        for n in &st.nodes {
            println!(
                "  {:<16} {:<9} {:<11} {:>8} {:>8}  {}",
                n.name,
                n.kind,
                n.state,
                n.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                n.restarts,
                n.console.clone().unwrap_or_default()
            );
        }
        println!(
            "  {:<40} {:<6} {:>10} {:>10} {:>10} {:>10}",
            "LINK", "TYPE", "A→B pps", "A→B b/s", "B→A pps", "B→A b/s"
        );
        for k in &st.links {
            println!(
                "  {:<40} {:<6} {:>10} {:>10} {:>10} {:>10}",
                k.name,
                k.kind,
                state::human(k.pps[0]),
                state::human(k.bps[0]),
                state::human(k.pps[1]),
                state::human(k.bps[1])
            );
        }
    }
    0
}

pub fn down(a: &DownArgs) -> i32 {
    let labs = if a.all {
        lab::labs()
    } else if let Some(l) = &a.lab {
        vec![l.clone()]
    } else if let Some(f) = &a.file {
        match lab::load(f) {
            Ok(p) => vec![p.lab],
            Err(e) => {
                eprintln!(
                    "vecbox: error: {e}\n  hint: `vecbox down --lab NAME` works without the file"
                );
                return e.exit_code();
            }
        }
    } else {
        Vec::new()
    };
    for l in labs {
        if !plan::run_dir(&l).exists() {
            println!("lab `{l}` is not up; nothing to do");
            continue;
        }
        let supervised = teardown::stop_supervisor(&l, Duration::from_secs(8));
        let r = teardown::teardown(&l);
        if supervised && r.namespaces.is_empty() {
            println!(
                "lab `{l}` down: its supervisor stopped every node and removed every namespace"
            );
        } else {
            println!(
                "lab `{l}` down: {} processes stopped, {} namespaces removed{}",
                r.processes,
                r.namespaces.len(),
                if supervised {
                    ""
                } else {
                    " (no supervisor was running)"
                }
            );
        }
        for s in r.skipped {
            eprintln!("vecbox: warning: {s}");
        }
    }
    0
}

pub fn exec(a: &ExecArgs) -> i32 {
    use std::os::unix::process::CommandExt;
    let plan = match lab::saved_plan(&a.lab) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let Some(node) = plan.node(&a.node) else {
        let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
        let hint = lab::diag::closest(&a.node, &names)
            .map(|c| format!("; did you mean `{c}`?"))
            .unwrap_or_else(|| format!(" (nodes: {})", names.join(", ")));
        return fail(&LabError::NoNode {
            lab: a.lab.clone(),
            node: a.node.clone(),
            hint,
        });
    };
    let ns = match std::fs::File::open(format!("{}/{}", crate::netlink::NETNS_DIR, node.netns)) {
        Ok(f) => f,
        Err(e) => {
            return fail(&LabError::object(
                format!("opening namespace {}", node.netns),
                e,
            ));
        }
    };
    let mut cmd = std::process::Command::new(&a.cmd[0]);
    cmd.args(&a.cmd[1..]);
    if let Err(e) = crate::sys::process::enter_netns_with_sys(&mut cmd, ns.into()) {
        return fail(&LabError::object("preparing the command", e));
    }
    let e = cmd.exec();
    eprintln!("vecbox: error: running {:?}: {e}", a.cmd[0]);
    127
}
