//! `vecbox check | up | status | down | graph | exec`: labs from topology files.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::lab::{self, LabError, plan, teardown};

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
`vecbox down`. A lab that is already up is refused: change it with `vecbox apply FILE`.

Multi-host labs (`hosts:`, docs/multihost.md): `--host NAME` builds that host's part
here. Without --host, when the hosts have `ssh:`, every host is driven over OpenSSH
(one shared `ssh` connection per host, `ssh_options:` for extra -o options): each host
is reached and must run the same vecbox version, gets the file and its lock, checks its
address, tunnel ports and underlay MTU, and only then do all hosts come up in parallel
(detached); a failure on one host takes the lab down on all of them. `status`, `exec`
and `down` of such a lab go to its hosts the same way (`--local`: this machine only).";

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
    pub(super) file: PathBuf,
    /// Return once the lab is ready; a background supervisor keeps it running.
    #[arg(long)]
    pub(super) detach: bool,
    /// No progress bar or live rates.
    #[arg(long, short)]
    pub(super) quiet: bool,
    /// Serve Prometheus metrics for the lab at ADDR (overrides `metrics:` in FILE).
    #[arg(long, value_name = "ADDR")]
    pub(super) metrics: Option<String>,
    /// Multi-host lab: bring up only this host's part (a key of `hosts:`); run it on
    /// every host. See docs/multihost.md.
    #[arg(long, value_name = "NAME")]
    pub(super) host: Option<String>,
    /// Internal: run as the detached supervisor.
    #[arg(long, hide = true)]
    pub(super) supervisor: bool,
    /// Internal (SSH mode): check this host's address, tunnel ports and underlay MTU
    /// for `--host NAME`, build nothing.
    #[arg(long, hide = true, requires = "host")]
    pub(super) preflight: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Lab name (default: every lab that is up).
    pub(super) lab: Option<String>,
    #[arg(long)]
    pub(super) json: bool,
    /// This machine only, also for a lab this machine drives over SSH.
    #[arg(long)]
    pub(super) local: bool,
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
    /// This machine only, also for a lab this machine drives over SSH (its other
    /// hosts are left alone).
    #[arg(long)]
    local: bool,
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
    pub(super) lab: String,
    /// Node name.
    pub(super) node: String,
    /// Command and arguments.
    #[arg(last = true, required = true)]
    pub(super) cmd: Vec<String>,
    /// This machine only, also for a lab this machine drives over SSH.
    #[arg(long)]
    local: bool,
}

pub(super) fn fail(e: &LabError) -> i32 {
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
            print!("{}", lab::hosts::summary(&p));
            for line in lab::impair::summary(&p.impairs) {
                println!("  impair {line}");
            }
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
    let mut code = 0;
    for l in labs {
        if !a.all
            && !a.local
            && let Some(rec) = lab::hosts::ssh::Record::load(&l)
        {
            code = code.max(super::multihost::down(&rec));
            continue;
        }
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
    code
}

pub fn exec(a: &ExecArgs) -> i32 {
    use std::os::unix::process::CommandExt;
    if !a.local
        && let Some(rec) = lab::hosts::ssh::Record::load(&a.lab)
    {
        return super::multihost::exec(&rec, a);
    }
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
