//! SSH mode of multi-host labs: `vecbox up FILE` when the hosts have `ssh:`, and
//! `status`, `down`, `exec` of a lab brought up that way, each host over its own
//! multiplexed `ssh` connection (docs/multihost.md "SSH mode").
//!
//! `up` runs in steps, every host in parallel within a step: reach the host and
//! compare its vecbox version; send the topology file and its lock (to
//! `~/.vecbox/labs/LAB/` of the remote user); preflight (`up --host NAME --preflight`:
//! address, UDP ports, underlay MTU); then `up FILE --host NAME --detach` everywhere.
//! Nothing is built before every host passed the preflight; a host that fails to come
//! up has its whole lab taken down again on every host where `up` ran.

use std::io::{IsTerminal, Write};
use std::sync::mpsc;

use super::lab::{ExecArgs, UpArgs};
use crate::lab::hosts::ssh::{Record, Remote, control_sockets, quote};
use crate::lab::{LabError, Plan};

/// `true` when `up` on this plan drives its hosts over SSH: a multi-host file, no
/// `--host`, and `ssh:` on the hosts. Some hosts with and some without `ssh:` is an
/// error naming those without.
pub fn ssh_mode(plan: &Plan) -> Result<bool, LabError> {
    let without: Vec<&str> = plan
        .hosts
        .iter()
        .filter(|h| h.ssh.is_none())
        .map(|h| h.name.as_str())
        .collect();
    if plan.hosts.is_empty() || without.len() == plan.hosts.len() {
        return Ok(false);
    }
    if without.is_empty() {
        return Ok(true);
    }
    Err(LabError::Unsupported(format!(
        "lab `{}`: host(s) {} have no `ssh:`; give every host `ssh: user@host[:port]` to drive them from here, or run `vecbox up FILE --host NAME` on each host",
        plan.lab,
        without.join(", ")
    )))
}

/// This vecbox's `--version` line, which every host must print too.
fn version() -> String {
    format!("vecbox {}", env!("CARGO_PKG_VERSION"))
}

/// Where the remote copy of the file goes, for the remote shell (`$HOME` expands there).
fn remote_file(lab: &str, name: &str) -> String {
    format!("\"$HOME\"/.vecbox/labs/{}/{}", quote(lab), quote(name))
}

/// One host's step: `Err` is the message naming what failed.
fn reach(r: &Remote) -> Result<(), String> {
    let v = r.run("vecbox --version", None);
    if v.unreachable() {
        return Err(format!("ssh {} failed: {}", r.ssh, v.stderr));
    }
    if !v.ok {
        return Err(format!(
            "`vecbox --version` failed (exit {}): {}; is vecbox installed and on the PATH of {}?",
            v.code, v.stderr, r.ssh
        ));
    }
    let theirs = v.stdout.trim();
    if theirs != version() {
        return Err(format!(
            "runs `{theirs}`, this controller `{}`: install the same vecbox on every host",
            version()
        ));
    }
    Ok(())
}

fn send(r: &Remote, lab: &str, files: &[(String, Vec<u8>)]) -> Result<(), String> {
    for (name, data) in files {
        let cmd = format!(
            "mkdir -p \"$HOME\"/.vecbox/labs/{lab} && cat > {}",
            remote_file(lab, name),
            lab = quote(lab)
        );
        let o = r.run(&cmd, Some(data));
        if !o.ok {
            return Err(format!("sending {name}: {}", o.stderr));
        }
    }
    Ok(())
}

/// Run vecbox on the host; `Err` carries its messages.
fn vecbox(r: &Remote, args: &str) -> Result<String, String> {
    let o = r.run(&format!("vecbox {args}"), None);
    if o.ok {
        Ok(o.stdout)
    } else if o.unreachable() {
        Err(format!("ssh {} failed: {}", r.ssh, o.stderr))
    } else {
        let msg: Vec<&str> = o
            .stderr
            .lines()
            .chain(o.stdout.lines())
            .filter(|l| !l.trim().is_empty())
            .collect();
        Err(msg.join("\n    "))
    }
}

/// Run `f` on every host in parallel; results in host order.
fn each<T: Send>(
    remotes: &[Remote],
    f: impl Fn(&Remote) -> Result<T, String> + Sync,
) -> Vec<Result<T, String>> {
    std::thread::scope(|s| {
        let hs: Vec<_> = remotes.iter().map(|r| s.spawn(|| f(r))).collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect()
    })
}

/// One line per host that is redrawn on a terminal, a line per event otherwise.
struct Progress {
    names: Vec<String>,
    state: Vec<String>,
    live: bool,
    quiet: bool,
}

impl Progress {
    fn show(&mut self, host: usize, what: &str) {
        self.state[host] = what.to_string();
        if self.quiet {
            return;
        }
        if self.live {
            let line: Vec<String> = self
                .names
                .iter()
                .zip(&self.state)
                .map(|(n, s)| format!("{n}: {s}"))
                .collect();
            print!("\r\x1b[K{}", line.join(" · "));
            let _ = std::io::stdout().flush();
        } else {
            println!("[{}] {what}", self.names[host]);
        }
    }

    fn end(&self) {
        if self.live && !self.quiet {
            println!();
        }
    }
}

pub fn up(plan: &Plan, a: &UpArgs) -> i32 {
    let remotes: Vec<Remote> = plan
        .hosts
        .iter()
        .filter_map(|h| Remote::new(h, &control_sockets()))
        .collect();
    let names: Vec<String> = remotes.iter().map(|r| r.name.clone()).collect();
    let mut progress = Progress {
        state: vec!["connecting".into(); names.len()],
        names,
        live: std::io::stdout().is_terminal(),
        quiet: a.quiet,
    };
    let fname = |p: &std::path::Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let lock = crate::lab::hosts::lock_path(&plan.file);
    let mut files = Vec::new();
    for f in [&plan.file, &lock] {
        match std::fs::read(f) {
            Ok(d) => files.push((fname(f), d)),
            Err(e) => {
                eprintln!("vecbox: error: reading {}: {e}", f.display());
                return 1;
            }
        }
    }
    let remote = remote_file(&plan.lab, &fname(&plan.file));
    let lab = plan.lab.as_str();
    let (tx, rx) = mpsc::channel::<(usize, String)>();
    let steps = |i: usize, r: &Remote| -> Result<(), String> {
        reach(r)?;
        let _ = tx.send((i, "sending the file".into()));
        send(r, lab, &files)?;
        let _ = tx.send((i, "preflight".into()));
        let out = vecbox(
            r,
            &format!("up {remote} --host {} --preflight", quote(&r.name)),
        )?;
        let _ = tx.send((i, format!("ready{}", mtu_note(&out))));
        Ok(())
    };
    let failed = run_steps(&remotes, &mut progress, &rx, &steps);
    if !failed.is_empty() {
        progress.end();
        for (h, e) in failed {
            eprintln!("vecbox: error: host `{h}`: {e}");
        }
        eprintln!("vecbox: nothing was created on any host");
        close(&remotes, &plan.lab);
        return 1;
    }
    let record = Record {
        lab: plan.lab.clone(),
        file: plan.file.clone(),
        hosts: plan.hosts.clone(),
        nodes: plan
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.host.clone()))
            .collect(),
    };
    if let Err(e) = record.save() {
        eprintln!(
            "vecbox: error: writing {}: {e}",
            Record::path(&plan.lab).display()
        );
        return 1;
    }
    let started: Vec<std::sync::atomic::AtomicBool> = remotes
        .iter()
        .map(|_| std::sync::atomic::AtomicBool::new(false))
        .collect();
    let bring_up = |i: usize, r: &Remote| -> Result<(), String> {
        let _ = tx.send((i, "starting".into()));
        started[i].store(true, std::sync::atomic::Ordering::Relaxed);
        vecbox(
            r,
            &format!("up {remote} --host {} --detach --quiet", quote(&r.name)),
        )?;
        let _ = tx.send((i, "up".into()));
        Ok(())
    };
    let failed = run_steps(&remotes, &mut progress, &rx, &bring_up);
    progress.end();
    if failed.is_empty() {
        println!(
            "lab `{}` is up on {} hosts ({}); `vecbox status {0}` shows it, `vecbox down --lab {0}` removes it",
            plan.lab,
            remotes.len(),
            progress.names.join(", ")
        );
        return 0;
    }
    for (h, e) in &failed {
        eprintln!("vecbox: error: host `{h}`: {e}");
    }
    eprintln!("vecbox: taking lab `{}` down on every host", plan.lab);
    if down_on(&remotes, &plan.lab).is_empty() {
        close(&remotes, &plan.lab);
    }
    1
}

/// Close the hosts' connections and forget the lab (the controller directory goes once
/// it is empty).
fn close(remotes: &[Remote], lab: &str) {
    each(remotes, |r| {
        r.close();
        Ok(())
    });
    Record::remove(lab);
}

/// Drive `step` on every host in parallel, showing progress; the hosts that failed.
fn run_steps(
    remotes: &[Remote],
    progress: &mut Progress,
    rx: &mpsc::Receiver<(usize, String)>,
    step: &(dyn Fn(usize, &Remote) -> Result<(), String> + Sync),
) -> Vec<(String, String)> {
    let results = std::thread::scope(|s| {
        let hs: Vec<_> = remotes
            .iter()
            .enumerate()
            .map(|(i, r)| s.spawn(move || step(i, r)))
            .collect();
        while hs.iter().any(|h| !h.is_finished()) {
            if let Ok((i, what)) = rx.recv_timeout(std::time::Duration::from_millis(50)) {
                progress.show(i, &what);
            }
        }
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect::<Vec<_>>()
    });
    while let Ok((i, what)) = rx.try_recv() {
        progress.show(i, &what);
    }
    let mut failed = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        if let Err(e) = r {
            progress.show(i, "failed");
            failed.push((remotes[i].name.clone(), e));
        }
    }
    failed
}

/// `, MTU …` from the preflight's lines.
fn mtu_note(out: &str) -> String {
    let m: Vec<&str> = out.lines().filter(|l| l.contains("MTU")).collect();
    if m.is_empty() {
        String::new()
    } else {
        format!(" ({})", m.join("; "))
    }
}

/// `down --lab LAB --local` on every host in parallel; the hosts that failed.
fn down_on(remotes: &[Remote], lab: &str) -> Vec<(String, String)> {
    let rs = each(remotes, |r| {
        vecbox(r, &format!("down --lab {} --local", quote(lab)))
    });
    let mut failed = Vec::new();
    for (r, res) in remotes.iter().zip(rs) {
        match res {
            Ok(out) => {
                for l in out.lines() {
                    println!("[{}] {l}", r.name);
                }
            }
            Err(e) => {
                eprintln!("vecbox: error: host `{}`: down: {e}", r.name);
                failed.push((r.name.clone(), e));
            }
        }
    }
    failed
}

/// `down` of a lab brought up from here over SSH.
pub fn down(rec: &Record) -> i32 {
    let remotes = rec.remotes();
    if down_on(&remotes, &rec.lab).is_empty() {
        close(&remotes, &rec.lab);
        0
    } else {
        eprintln!(
            "vecbox: lab `{}` is still recorded ({}): run `vecbox down --lab {0}` again once the host(s) can be reached, or `vecbox down --lab {0} --local` on them",
            rec.lab,
            Record::path(&rec.lab).display()
        );
        1
    }
}

/// `status` of a lab brought up from here over SSH: every host's, labelled.
pub fn status(rec: &Record, json: bool) -> i32 {
    let remotes = rec.remotes();
    let args = format!(
        "status {} --local{}",
        quote(&rec.lab),
        if json { " --json" } else { "" }
    );
    let rs = each(&remotes, |r| vecbox(r, &args));
    let mut code = 0;
    let mut all = Vec::new();
    for (r, res) in remotes.iter().zip(rs) {
        match res {
            Ok(out) if json => match serde_json::from_str::<Vec<serde_json::Value>>(&out) {
                Ok(v) => all.extend(v.into_iter().map(|mut e| {
                    e["host"] = serde_json::json!(r.name);
                    e
                })),
                Err(e) => {
                    eprintln!("vecbox: error: host `{}`: status --json: {e}", r.name);
                    code = 1;
                }
            },
            Ok(out) => {
                println!("host `{}` ({}):", r.name, r.ssh);
                print!("{out}");
            }
            Err(e) => {
                eprintln!("vecbox: error: host `{}`: {e}", r.name);
                code = 1;
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
    }
    code
}

/// `exec LAB NODE -- CMD` on the node's host, over SSH, with this terminal's
/// standard input and output; the command's exit status.
pub fn exec(rec: &Record, a: &ExecArgs) -> i32 {
    let Some((_, host)) = rec.nodes.iter().find(|(n, _)| n == &a.node) else {
        let names: Vec<&str> = rec.nodes.iter().map(|(n, _)| n.as_str()).collect();
        eprintln!(
            "vecbox: error: lab `{}` has no node `{}` (nodes: {})",
            rec.lab,
            a.node,
            names.join(", ")
        );
        return 2;
    };
    let Some(r) = rec.remotes().into_iter().find(|r| &r.name == host) else {
        eprintln!(
            "vecbox: error: host `{host}` of node `{}` has no `ssh:`",
            a.node
        );
        return 2;
    };
    let cmd: Vec<String> = a.cmd.iter().map(|c| quote(c)).collect();
    let line = format!(
        "vecbox exec {} {} --local -- {}",
        quote(&rec.lab),
        quote(&a.node),
        cmd.join(" ")
    );
    match r.command(&line).status() {
        Ok(s) => s.code().unwrap_or(1),
        Err(e) => {
            eprintln!("vecbox: error: running ssh: {e}");
            255
        }
    }
}
