//! `vecbox apply`: change a running lab to match its topology file.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use crate::lab::execute::Fault;
use crate::lab::{LabError, apply};

pub const HELP: &str = "\
Validates FILE first (nothing changes when it is invalid), then reads the running lab:
its journal and record, and a live re-read of its namespaces (inode), interfaces (index,
ownership marker), processes (pid and start time) and guest ports. Differences found
there are printed as drift and changed only as the plan says. Then prints the plan:

  +    create                     -    remove
  ~    change in place            -/+  replace (with the reason)
  !    an object not changed that an action affects (a peer whose link bounces)

with a disruption column: none, link bounce NODE:IF, guest restart NODE. Objects are
identified by their names (lab, node, interface), never by their position in the file:
a reordered file plans nothing.

Then makes the change: new things first (namespaces, links, ports added to running
guests through their consoles, new nodes started), then changes in place, then
removals; every step is written to the journal before it is made, so after a crash
`vecbox apply` again (or `vecbox down`) converges. Untouched nodes keep their
processes, namespaces and interfaces. See docs/labs.md for what each change costs.

  --dry-run              print the plan, change nothing
  --out PLAN.json        save the plan; `vecbox apply --plan PLAN.json` makes exactly it,
                         and refuses when the lab changed since (a stale plan)
  --detailed-exitcode    0: no changes, 2: changes (planned or made), 1: error

`vecbox up` builds a lab that is not up; `vecbox apply` changes one that is.";

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Topology file of a running lab.
    #[arg(required_unless_present = "plan", conflicts_with = "plan")]
    file: Option<PathBuf>,
    /// Make a plan saved with --out (refused when the lab changed since).
    #[arg(long, value_name = "PLAN.json")]
    plan: Option<PathBuf>,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Save the plan as JSON.
    #[arg(long, value_name = "PLAN.json")]
    out: Option<PathBuf>,
    /// Exit 0 when there is nothing to change, 2 when there is, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
    /// No progress lines.
    #[arg(long, short)]
    quiet: bool,
}

fn fail(e: &LabError) -> i32 {
    eprintln!("vecbox: error: {e}");
    1
}

pub fn run(a: &ApplyArgs) -> i32 {
    // One apply at a time per lab: the lock is taken before the lab is observed, so the
    // plan is made from a lab nobody else is changing.
    let _lock = if a.dry_run {
        None
    } else {
        let lab = match (&a.plan, &a.file) {
            (Some(p), _) => std::fs::read_to_string(p)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["lab"].as_str().map(str::to_string)),
            (None, Some(f)) => crate::lab::load(f).ok().map(|p| p.lab),
            _ => None,
        };
        match lab
            .map(|l| crate::lab::plan::run_dir(&l))
            .filter(|d| d.exists())
        {
            Some(dir) => match apply::lock(&dir) {
                Ok(l) => Some(l),
                Err(e) => return fail(&e),
            },
            None => None,
        }
    };
    let prepared = match (&a.plan, &a.file) {
        (Some(p), _) => apply::prepare_saved(p),
        (None, Some(f)) => apply::prepare(f),
        (None, None) => return 1,
    };
    let (obs, plan) = match prepared {
        Ok(x) => x,
        Err(e) => return fail(&e),
    };
    print!("{}", plan.render());
    if let Some(out) = &a.out {
        let saved = serde_json::to_string_pretty(&plan)
            .map_err(std::io::Error::other)
            .and_then(|t| std::fs::write(out, t));
        if let Err(e) = saved {
            return fail(&LabError::object(format!("writing {}", out.display()), e));
        }
        println!("Plan saved to {}.", out.display());
    }
    let changes = !plan.is_empty();
    let code = if a.detailed_exitcode && changes { 2 } else { 0 };
    if a.dry_run || !changes {
        return code;
    }
    let live = !a.quiet && std::io::stderr().is_terminal();
    let mut progress = |i: usize, n: usize, what: &str| {
        if live {
            eprint!("\r\x1b[K[{i}/{n}] {what}");
        }
    };
    let r = apply::run(&plan, obs, Fault::from_env(), &mut progress);
    if live {
        eprint!("\r\x1b[K");
    }
    match r {
        Ok(done) => {
            println!(
                "Lab `{}` is at generation {}: {} steps made.",
                plan.lab,
                done.generation,
                done.steps.len()
            );
            code
        }
        Err(e) => {
            eprintln!(
                "vecbox: error: {e}\n  what was done is recorded; `vecbox apply` again continues (or `vecbox down` removes the lab)"
            );
            1
        }
    }
}
