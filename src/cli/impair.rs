//! `vecbox impair` and `vecbox link`: impairments of a running lab's links.

use clap::{Args, ValueEnum};

use crate::lab;
use crate::lab::impair::live::{self, Action, LiveError};

pub const IMPAIR_HELP: &str = "\
Without NODE:IF, lists every link of LAB: the settings each direction has now (asked
from the guests that realise it), where it is realised, and its counters (--json for
a machine-readable list).

With NODE:IF, changes the impairment of the frames that leave NODE:IF onto its link
(one direction; --both for both directions of that link). Keys are those of a
topology file's `impair:` and the console's `impair` (docs/impairments.md):
  delay=20ms jitter=2ms distribution=normal correlation=50% reorder_on_jitter=true
  loss=5% loss=gemodel:1%:25% duplicate=1% corrupt=0.1% reorder=25% gap=5
  rate=10mbit overhead=24 cell=53 cell_overhead=5 queue=50ms seed=7 down=true
KEY=default puts one key back. A change names only what it changes: keys not given
keep their values. Every stage is checked before any changes, so a refused change
(one line naming the key) changes nothing. Frames already in flight keep their
departure time; the change applies to every frame after it.

Where a direction is realised: A→B at A's tx stage when A is a vecbox guest, else at
B's rx stage when B is one, else on the xconnect datapath vecbox inserted on the link
(links with `impair:` and no guest end; `vecbox status` names it).

Examples:
  vecbox impair lab1 h1:eth0 delay=20ms loss=1%
  vecbox impair lab1 h1:eth0 rate=10mbit queue=50ms --both
  vecbox impair lab1 h1:eth0 --clear
  vecbox impair lab1 --json";

pub const LINK_HELP: &str = "\
Takes the whole link of NODE:IF down (nothing passes either way; frames already in
flight are still delivered) or up again: `down=true` / `down=false` on both directions'
impairment stages, other settings kept. A host end whose veth peer is a vecbox guest's
port also sees carrier down (NO-CARRIER) until `up`; UML and tap ends keep their
carrier, but nothing passes either way.

Example:
  vecbox link lab1 h1:eth0 down
  vecbox link lab1 h1:eth0 up";

#[derive(Args, Debug)]
pub struct ImpairArgs {
    /// Lab name.
    lab: String,
    /// Link end `NODE:IF` as written in the topology file.
    end: Option<String>,
    /// KEY=VALUE settings (delay=20ms loss=1% rate=10mbit ...).
    #[arg(value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Change both directions of the link.
    #[arg(long)]
    both: bool,
    /// Remove the impairment (of this direction, or both with --both).
    #[arg(long, conflicts_with = "settings")]
    clear: bool,
    /// Machine-readable listing.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum UpDown {
    Down,
    Up,
}

#[derive(Args, Debug)]
pub struct LinkArgs {
    /// Lab name.
    lab: String,
    /// Link end `NODE:IF` as written in the topology file.
    end: String,
    /// down or up.
    state: UpDown,
}

fn fail(e: &LiveError) -> i32 {
    eprintln!("vecbox: error: {e}");
    1
}

pub fn impair(a: &ImpairArgs) -> i32 {
    let plan = match lab::saved_plan(&a.lab) {
        Ok(p) => p,
        Err(e) => return super::lab::fail(&e),
    };
    let Some(end) = &a.end else {
        return list(&plan, a.json);
    };
    if !a.clear && a.settings.is_empty() {
        eprintln!(
            "vecbox: error: give KEY=VALUE settings (e.g. delay=20ms loss=1%) or --clear; `vecbox impair {}` shows every link",
            a.lab
        );
        return 2;
    }
    let (l, side) = match live::find(&plan, end) {
        Ok(x) => x,
        Err(e) => return fail(&e),
    };
    let dirs: Vec<usize> = if a.both { vec![0, 1] } else { vec![side] };
    let action = if a.clear {
        Action::Clear
    } else {
        Action::Set(a.settings.clone())
    };
    match live::change(l, &dirs, &action) {
        Ok(lines) => {
            for x in lines {
                println!("{x}");
            }
            0
        }
        Err(e @ LiveError::Key(_)) => {
            eprintln!("vecbox: error: {e}");
            2
        }
        Err(e) => fail(&e),
    }
}

fn list(plan: &lab::Plan, json: bool) -> i32 {
    let now = live::show(plan);
    if json {
        println!("{}", serde_json::to_string_pretty(&now).unwrap_or_default());
        return 0;
    }
    if now.is_empty() {
        println!("lab `{}` has no links", plan.lab);
    }
    for l in &now {
        println!("{}  ({})", l.link.title(), l.link.kind);
        for d in 0..2 {
            let set = l.now[d].as_deref().unwrap_or("?");
            println!(
                "  {} → {}: {set}  [{}]",
                l.link.ends[d],
                l.link.ends[1 - d],
                l.link.where_(d)
            );
            if !l.counters[d].is_empty() {
                println!("    {}", l.counters[d]);
            }
        }
        for e in &l.errors {
            println!("  error: {e}");
        }
    }
    0
}

pub fn link(a: &LinkArgs) -> i32 {
    let plan = match lab::saved_plan(&a.lab) {
        Ok(p) => p,
        Err(e) => return super::lab::fail(&e),
    };
    match live::link(&plan, &a.end, matches!(a.state, UpDown::Down)) {
        Ok(lines) => {
            for x in lines {
                println!("{x}");
            }
            0
        }
        Err(e) => fail(&e),
    }
}
