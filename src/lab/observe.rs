//! Observing a running lab before changing it: its record (`recorded.json`: the objects
//! that exist, updated after every completed action, with the namespace inodes and
//! interface indexes they had when made), its journal (generation, an interrupted
//! apply), the supervisor's nodes and taps, and a live re-read of namespaces, interfaces
//! (index, ownership marker) and the ports of running guests. Differences are [`Drift`]:
//! shown in the plan, and changed only by the actions the plan lists for them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::control::{Client, Procs, Request, Response, Status};
use super::journal::{self, Entry};
use super::objects::Objects;
use super::plan::{self, Plan};
use super::topology::LinkType;
use super::{LabError, guestctl, ops, teardown};

/// The record file in a run directory.
pub const RECORD: &str = "recorded.json";

/// What exists in a lab, as vecbox made it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Recorded {
    pub generation: u64,
    pub objects: Objects,
    /// Namespace inode of each node, when made.
    #[serde(default)]
    pub inodes: BTreeMap<String, u64>,
    /// Index of each interface vecbox made, by `NETNS/NAME`.
    #[serde(default)]
    pub ifindex: BTreeMap<String, u32>,
}

/// Read the record of the lab in `dir`.
pub fn read_record(dir: &Path) -> Option<Recorded> {
    serde_json::from_slice(&std::fs::read(dir.join(RECORD)).ok()?).ok()
}

/// Write the record atomically.
pub fn write_record(dir: &Path, r: &Recorded) -> std::io::Result<()> {
    let tmp = dir.join(format!("{RECORD}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(r).map_err(std::io::Error::other)?)?;
    std::fs::rename(tmp, dir.join(RECORD))
}

/// A difference between the record and the running lab.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Drift {
    /// A node's namespace is gone.
    NetnsMissing {
        node: String,
    },
    /// A node's namespace was made again by someone else (another inode).
    NetnsChanged {
        node: String,
    },
    /// An interface of a link or underlay is gone.
    IfaceMissing {
        object: String,
        netns: String,
        kernel: String,
    },
    /// An interface of a link or underlay was made again (another index).
    IfaceChanged {
        object: String,
        netns: String,
        kernel: String,
    },
    /// Where the lab's interface should be is one vecbox did not make.
    Foreign {
        netns: String,
        kernel: String,
    },
    /// A node's process is not running (the supervisor's restart policy decides).
    NotRunning {
        node: String,
        state: String,
    },
    /// A running guest lacks a port it should have.
    PortMissing {
        node: String,
        unit: u32,
    },
    /// Made by an apply that did not finish, and not in the record: to be removed.
    LeftoverNetns {
        node: String,
    },
    LeftoverProcess {
        node: String,
    },
    LeftoverIface {
        netns: String,
        kernel: String,
    },
    LeftoverPort {
        node: String,
        unit: u32,
    },
    LeftoverTap {
        link: String,
    },
}

impl Drift {
    pub fn describe(&self) -> String {
        match self {
            Drift::NetnsMissing { node } => format!("node {node}: its namespace is gone"),
            Drift::NetnsChanged { node } => {
                format!("node {node}: its namespace was made again outside vecbox")
            }
            Drift::IfaceMissing {
                object,
                netns,
                kernel,
            } => format!("{object}: interface {netns}/{kernel} is gone"),
            Drift::IfaceChanged {
                object,
                netns,
                kernel,
            } => format!("{object}: interface {netns}/{kernel} was made again outside vecbox"),
            Drift::Foreign { netns, kernel } => {
                format!("interface {netns}/{kernel} does not carry the lab's marker")
            }
            Drift::NotRunning { node, state } => format!("node {node}: not running ({state})"),
            Drift::PortMissing { node, unit } => format!("node {node}: port vec{unit} is missing"),
            Drift::LeftoverNetns { node } => {
                format!("node {node}: namespace left by an interrupted apply")
            }
            Drift::LeftoverProcess { node } => {
                format!("node {node}: process left by an interrupted apply")
            }
            Drift::LeftoverIface { netns, kernel } => format!(
                "interface {netns}/{kernel}: the lab's, but no object has it (an interrupted apply)"
            ),
            Drift::LeftoverPort { node, unit } => {
                format!("node {node}: port vec{unit} that no link has (an interrupted apply)")
            }
            Drift::LeftoverTap { link } => {
                format!("tap of {link}: held, but no link has it (an interrupted apply)")
            }
        }
    }
}

/// A running lab as found.
pub struct Observed {
    pub lab: String,
    pub dir: PathBuf,
    /// The generation last begun, and whether it completed.
    pub generation: u64,
    pub complete: bool,
    /// The step an unfinished apply was about to make when it stopped.
    pub interrupted: Option<String>,
    pub recorded: Recorded,
    /// `plan.json` of the last completed generation (its lock is kept).
    pub saved: Plan,
    pub status: Status,
    pub drift: Vec<Drift>,
}

impl Observed {
    /// The lock a new plan keeps: every value the record has (an interrupted apply
    /// recorded what it finished), as the saved plan's lock says where it knows.
    pub fn lock(&self) -> super::alloc::Lock {
        let mut l = self.recorded.objects.lock();
        for (k, v) in &self.saved.lock.ifaces {
            if l.ifaces.contains_key(k) {
                l.ifaces.insert(k.clone(), v.clone());
            }
        }
        for (k, v) in &self.saved.lock.links {
            if l.links.contains_key(k) {
                l.links.insert(k.clone(), v.clone());
            }
        }
        l
    }

    /// Nodes whose process runs now (console requests reach them).
    pub fn live(&self) -> BTreeSet<String> {
        self.status
            .slots
            .iter()
            .filter(|s| s.pid.is_some() && matches!(s.state.as_str(), "running" | "starting"))
            .map(|s| s.name.clone())
            .collect()
    }

    /// A digest of everything observed: a saved plan is stale once it changes.
    pub fn digest(&self) -> String {
        let slots: Vec<(String, Option<(i32, u64)>)> = self
            .status
            .slots
            .iter()
            .map(|s| (s.name.clone(), s.pid))
            .collect();
        let text = format!(
            "{}|{}|{}|{:?}|{:?}|{:?}",
            self.generation,
            self.complete,
            serde_json::to_string(&self.recorded).unwrap_or_default(),
            slots,
            self.status.taps,
            self.drift
        );
        format!("{:016x}", super::alloc::hash(&[&text]))
    }
}

/// Observe lab `lab`, which must be up.
pub fn observe(lab: &str) -> Result<Observed, LabError> {
    let dir = plan::run_dir(lab);
    if !dir.exists() {
        return Err(LabError::NotUp {
            lab: lab.to_string(),
            why: format!(
                "nothing under {}; `vecbox up FILE` builds it",
                dir.display()
            ),
        });
    }
    if teardown::live_supervisor(lab).is_none() {
        return Err(LabError::NotUp {
            lab: lab.to_string(),
            why: format!(
                "its supervisor is not running (crashed or killed); `vecbox down --lab {lab}` removes what is left, then `vecbox up FILE` builds it again"
            ),
        });
    }
    let mut client = Client::connect(&dir)?;
    observe_with(lab, &dir, &mut client)
}

/// Observe the lab in `dir` through `procs` (its supervisor).
pub fn observe_with(lab: &str, dir: &Path, procs: &mut dyn Procs) -> Result<Observed, LabError> {
    let entries = journal::read(dir).unwrap_or_default();
    let (generation, complete) = journal::generation(&entries);
    let interrupted = (!complete)
        .then(|| {
            entries.iter().rev().find_map(|e| match e {
                Entry::Step {
                    generation: g,
                    n,
                    what,
                } if *g == generation => {
                    Some(format!("generation {g} stopped at step {n}: {what}"))
                }
                _ => None,
            })
        })
        .flatten()
        .or_else(|| {
            (!complete).then(|| format!("generation {generation} stopped before its first step"))
        });
    let saved = super::saved_plan(lab)?;
    let recorded = read_record(dir).unwrap_or_else(|| Recorded {
        generation,
        objects: Objects::of(&saved),
        ..Recorded::default()
    });
    let status = match procs.call(Request::Status)? {
        Response::Status(s) => s,
        other => {
            return Err(LabError::Supervisor(format!(
                "unexpected answer to status: {other:?}"
            )));
        }
    };
    let mut o = Observed {
        lab: lab.to_string(),
        dir: dir.to_path_buf(),
        generation,
        complete,
        interrupted,
        recorded,
        saved,
        status,
        drift: Vec::new(),
    };
    o.drift = live_reread(&o, &entries);
    o.drift.sort();
    o.drift.dedup();
    Ok(o)
}

/// Compare the record with what runs.
fn live_reread(o: &Observed, entries: &[Entry]) -> Vec<Drift> {
    let mut d = Vec::new();
    let rec = &o.recorded.objects;
    let marker = plan::marker(&o.lab);
    // Namespaces.
    let mut present: Vec<(String, String)> = Vec::new();
    for (name, n) in &rec.nodes {
        match ops::ns_inode(&n.node.netns) {
            None => d.push(Drift::NetnsMissing { node: name.clone() }),
            Some(i) => {
                if o.recorded.inodes.get(name).is_some_and(|r| *r != i) {
                    d.push(Drift::NetnsChanged { node: name.clone() });
                } else {
                    present.push((name.clone(), n.node.netns.clone()));
                }
            }
        }
    }
    let prefix = format!("{}.", o.lab);
    for ns in journal::live_namespaces(entries) {
        let Some(node) = ns.strip_prefix(&prefix) else {
            continue;
        };
        if !rec.nodes.contains_key(node) && ops::ns_inode(&ns).is_some() {
            d.push(Drift::LeftoverNetns {
                node: node.to_string(),
            });
        }
    }
    // Interfaces: what each namespace should have (object, kernel name).
    let mut want: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for (id, l) in &rec.links {
        for e in &l.ends {
            let n = &rec.nodes.get(&e.node).map(|n| n.node.netns.as_str());
            if let (Some(ns), Some(k)) = (n, &e.kernel) {
                want.entry(ns)
                    .or_default()
                    .push((format!("link {id}"), k.clone()));
            }
        }
    }
    for n in rec.nodes.values() {
        for (br, _) in &n.node.net.bridges {
            want.entry(n.node.netns.as_str())
                .or_default()
                .push((format!("bridge {}/{br}", n.node.name), br.clone()));
        }
    }
    for (id, u) in &rec.underlays {
        for s in 0..2 {
            if let Some(n) = rec.nodes.get(&u.nodes[s]) {
                want.entry(n.node.netns.as_str())
                    .or_default()
                    .push((format!("underlay {id}"), u.kernel[s].clone()));
            }
        }
    }
    let names: Vec<String> = present.iter().map(|(_, ns)| ns.clone()).collect();
    for (ns, found) in names.iter().zip(ops::list_all(&names)) {
        let Some(found) = found else { continue };
        let expected = want.get(ns.as_str()).cloned().unwrap_or_default();
        for (object, kernel) in &expected {
            match found.iter().find(|i| &i.name == kernel) {
                None => d.push(Drift::IfaceMissing {
                    object: object.clone(),
                    netns: ns.clone(),
                    kernel: kernel.clone(),
                }),
                Some(i) if i.alias != marker => d.push(Drift::Foreign {
                    netns: ns.clone(),
                    kernel: kernel.clone(),
                }),
                Some(i) => {
                    let key = format!("{ns}/{kernel}");
                    if o.recorded.ifindex.get(&key).is_some_and(|x| *x != i.index) {
                        d.push(Drift::IfaceChanged {
                            object: object.clone(),
                            netns: ns.clone(),
                            kernel: kernel.clone(),
                        });
                    }
                }
            }
        }
        for i in &found {
            if i.name != "lo" && i.alias == marker && !expected.iter().any(|(_, k)| *k == i.name) {
                d.push(Drift::LeftoverIface {
                    netns: ns.clone(),
                    kernel: i.name.clone(),
                });
            }
        }
    }
    // Processes.
    for (name, n) in &rec.nodes {
        if !n.node.kind.is_process() || !n.up {
            continue;
        }
        match o.status.slot(name) {
            None => d.push(Drift::NotRunning {
                node: name.clone(),
                state: "not supervised".into(),
            }),
            Some(s) if !matches!(s.state.as_str(), "running" | "starting") => {
                d.push(Drift::NotRunning {
                    node: name.clone(),
                    state: s.state.clone(),
                })
            }
            _ => {}
        }
    }
    for s in &o.status.slots {
        let known = rec
            .nodes
            .get(&s.name)
            .is_some_and(|n| n.node.kind.is_process());
        if !known {
            d.push(Drift::LeftoverProcess {
                node: s.name.clone(),
            });
        }
    }
    // Ports of running vecbox guests (asked in parallel).
    let live = o.live();
    let guests: Vec<(&String, &super::objects::NodeObj)> = rec
        .nodes
        .iter()
        .filter(|(name, n)| n.node.kind.is_guest() && live.contains(*name))
        .collect();
    let answers: Vec<Option<Vec<u32>>> = std::thread::scope(|sc| {
        let hs: Vec<_> = guests
            .iter()
            .map(|(_, n)| sc.spawn(move || guestctl::ports(&n.node.umid).ok()))
            .collect();
        hs.into_iter().map(|h| h.join().ok().flatten()).collect()
    });
    for ((name, _), have) in guests.iter().zip(answers) {
        let Some(have) = have else { continue };
        let should: Vec<u32> = rec.ends_of(name).iter().filter_map(|e| e.unit).collect();
        for u in &should {
            if !have.contains(u) {
                d.push(Drift::PortMissing {
                    node: (*name).clone(),
                    unit: *u,
                });
            }
        }
        for u in have {
            if !should.contains(&u) {
                d.push(Drift::LeftoverPort {
                    node: (*name).clone(),
                    unit: u,
                });
            }
        }
    }
    // Taps.
    for t in &o.status.taps {
        let known = rec.links.get(t).is_some_and(|l| l.kind == LinkType::Tap);
        if !known {
            d.push(Drift::LeftoverTap { link: t.clone() });
        }
    }
    d
}

/// An empty lab (what `up` applies to).
pub fn empty(lab: &str, plan: &Plan) -> Observed {
    Observed {
        lab: lab.to_string(),
        dir: plan.run_dir(),
        generation: 0,
        complete: true,
        interrupted: None,
        recorded: Recorded::default(),
        saved: plan.clone(),
        status: Status::default(),
        drift: Vec::new(),
    }
}
