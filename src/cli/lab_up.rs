//! `vecbox up` (foreground or detached supervisor) and `vecbox status`.

use std::io::{BufRead, BufReader, IsTerminal, Write};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::lab::{StatusArgs, UpArgs, fail};
use crate::lab::{self, LabError, Plan, deploy, plan, state, supervise::Supervisor, teardown};

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
    if let Some(h) = &a.host
        && let Err(e) = lab::hosts::project(&mut plan, h)
    {
        return fail(&e);
    }
    if a.preflight {
        return match lab::hosts::preflight::check(&plan) {
            Ok(notes) => {
                notes.iter().for_each(|n| println!("{n}"));
                0
            }
            Err(errs) => {
                errs.iter().for_each(|e| eprintln!("vecbox: error: {e}"));
                1
            }
        };
    }
    if let Err(e) = lab::hosts::write_lock(&plan) {
        eprintln!(
            "vecbox: warning: writing {}: {e}",
            lab::hosts::lock_path(&plan.file).display()
        );
    }
    if a.host.is_none() && !a.supervisor {
        match super::multihost::ssh_mode(&plan) {
            Ok(true) => return super::multihost::up(&plan, a),
            Ok(false) => {}
            Err(e) => return fail(&e),
        }
    }
    if a.detach && !a.supervisor {
        return detach(a);
    }
    // Bind the metrics port before building anything: a busy port is an error at start.
    let metrics = match bind_metrics(&plan) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("vecbox: error: {e}");
            return 1;
        }
    };
    // SIGINT/SIGTERM/SIGHUP are taken through a signalfd by the supervision loop; a
    // signal during the build is acted on once the build ends.
    let mut mask = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        mask.add(s);
    }
    let _ = mask.thread_block();
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ok();
    let collector = metrics
        .is_some()
        .then(|| std::sync::Arc::new(crate::metrics::collect::GuestCollector::new()));
    let sup = match build(&plan, a.quiet || a.supervisor, collector.clone()) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    print_summary(&sup.plan);
    start_metrics(metrics, collector);
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
            .open(sup.dir.join("supervisor.log"));
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

/// Clean leftovers of a crashed run, deploy, and return the supervisor (listening for
/// `vecbox apply`); on failure everything made so far is removed.
fn build(
    plan: &Plan,
    quiet: bool,
    metrics: Option<std::sync::Arc<crate::metrics::collect::GuestCollector>>,
) -> Result<Supervisor, LabError> {
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
    let (dir, journal) = deploy::begin(plan)?;
    let mut sup = Supervisor::new(plan.clone(), dir, journal);
    sup.metrics = metrics;
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
    let r = deploy::build(plan, &mut sup, &mut progress).and_then(|()| {
        sup.listen()
            .map_err(|e| LabError::object("opening the lab's control socket", e))
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    match r {
        Ok(()) => Ok(sup),
        Err(e) => {
            sup.kill_all();
            drop(sup);
            teardown::teardown(&plan.lab);
            Err(e)
        }
    }
}

fn bind_metrics(plan: &Plan) -> Result<Option<std::net::TcpListener>, String> {
    let Some(addr) = &plan.metrics else {
        return Ok(None);
    };
    let addr: std::net::SocketAddr = addr.parse().map_err(|_| {
        format!("metrics address {addr:?} is not ADDRESS:PORT, e.g. 127.0.0.1:9464")
    })?;
    crate::metrics::http::bind(addr)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Serve every guest of the lab at `/metrics` from the guests' shared counter regions
/// (labels `lab`, `node`; see docs/metrics.md), on a thread of the supervisor. The
/// supervisor adds each guest it starts to `collector` (and removes those `vecbox
/// apply` removes).
fn start_metrics(
    listener: Option<std::net::TcpListener>,
    collector: Option<std::sync::Arc<crate::metrics::collect::GuestCollector>>,
) {
    let (Some(listener), Some(c)) = (listener, collector) else {
        return;
    };
    if let Err(e) = crate::metrics::http::spawn(listener, c) {
        eprintln!("vecbox: error: {e}");
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
    if let Some(h) = &a.host {
        cmd.args(["--host", h]);
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
    let here = |n: &plan::PNode| p.local.as_ref().is_none_or(|h| &n.host == h);
    println!(
        "lab `{}` is up{}: {} nodes, {} links",
        p.lab,
        p.local
            .as_ref()
            .map_or(String::new(), |h| format!(" on host {h}")),
        p.nodes.iter().filter(|n| here(n)).count(),
        p.links.len()
    );
    for n in p.nodes.iter().filter(|n| here(n)) {
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
        if let Some(c) = &l.cross {
            println!(
                "  {} ({}) – {} ({}) ({} between hosts, mtu {})",
                l.names[0], c.hosts[0], l.names[1], c.hosts[1], l.kind, l.mtu
            );
            continue;
        }
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
    if !a.local
        && let Some(rec) = a.lab.as_deref().and_then(lab::hosts::ssh::Record::load)
    {
        return super::multihost::status(&rec, a.json);
    }
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
            .map(|(l, alive, st)| {
                let impairs = lab::saved_plan(l).map(|p| p.impairs).unwrap_or_default();
                serde_json::json!({"lab": l, "supervisor_running": alive, "state": st, "impairments": impairs})
            })
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
        let impairs = lab::saved_plan(&l).map(|p| p.impairs).unwrap_or_default();
        let lines = lab::impair::summary(&impairs);
        if !lines.is_empty() {
            println!("  impairments (as the file sets them; `vecbox impair {l}` shows them now):");
        }
        for line in lines {
            println!("  {line}");
        }
    }
    0
}
