//! Running a plan's actions through the journal: a new generation begins (`apply`
//! line), every step is journaled (`step` line) before it is made, the record
//! (`recorded.json`) is rewritten once an action's steps are all done, and the
//! generation ends (`done` line) with the new `plan.json` and the supervisor told to
//! re-read it. Steps are idempotent, so after a crash at any point the next `apply`
//! (which observes what is there) or `down` (which works from the journal) converges.
//!
//! Tests kill the process at a chosen step (see [`Fault`]) to prove it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::actions::{ApplyPlan, Record, Step};
use super::alloc::link_id;
use super::control::{Procs, Request, Response, call_ok};
use super::impair::live::{self, Action};
use super::journal::{self, Entry, Journal};
use super::objects::{Objects, leaving};
use super::observe::{self, Recorded};
use super::plan::{PNode, Plan};
use super::topology::NodeKind;
use super::{LabError, guestctl, ops, spawn};

/// Where a test kills the applying process (SIGKILL, as a crash): at step `n` (1-based),
/// after it is journaled and `before` it is made, or after it is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub step: usize,
    pub before: bool,
}

impl Fault {
    /// From `VECBOX_APPLY_KILL_AT` (`N` or `N:before`); tests only.
    pub fn from_env() -> Option<Fault> {
        let v = std::env::var("VECBOX_APPLY_KILL_AT").ok()?;
        let (n, before) = match v.split_once(':') {
            Some((n, "before")) => (n, true),
            _ => (v.as_str(), false),
        };
        Some(Fault {
            step: n.parse().ok()?,
            before,
        })
    }

    fn hit(&self, n: usize, before: bool) {
        if self.step == n && self.before == before {
            let _ =
                nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
            // SIGKILL is not delivered synchronously to ourselves in every case.
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// Progress callback: (step, total, what).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize, &str);

/// What a run did.
#[derive(Debug, Default)]
pub struct Done {
    pub generation: u64,
    /// Every step made, described, in order.
    pub steps: Vec<String>,
}

struct Run<'a> {
    lab: String,
    dir: PathBuf,
    desired: &'a Plan,
    procs: &'a mut dyn Procs,
    journal: Journal,
    recorded: Recorded,
    /// Namespaces the journal says are the lab's.
    made: Vec<String>,
    started: BTreeMap<String, (i32, u64, usize)>,
}

/// Run `plan` on the lab whose record is `recorded`, through `procs` (its supervisor).
pub fn execute(
    plan: &ApplyPlan,
    recorded: Recorded,
    procs: &mut dyn Procs,
    fault: Option<Fault>,
    progress: Progress<'_>,
) -> Result<Done, LabError> {
    let dir = plan.desired.run_dir();
    let mut journal = Journal::open(&dir)
        .map_err(|e| LabError::object(format!("opening the journal in {}", dir.display()), e))?;
    let generation = plan.generation + 1;
    let me = std::process::id() as i32;
    journal
        .record(&Entry::Apply {
            generation,
            pid: me,
            start: journal::start_time(me).unwrap_or(0),
        })
        .map_err(|e| LabError::object("writing the journal", e))?;
    let made = journal::live_namespaces(&journal::read(&dir).unwrap_or_default());
    let mut run = Run {
        lab: plan.lab.clone(),
        dir: dir.clone(),
        desired: &plan.desired,
        procs,
        journal,
        recorded,
        made,
        started: BTreeMap::new(),
    };
    let total = plan.steps().count();
    let mut done = Done {
        generation,
        steps: Vec::new(),
    };
    let mut n = 0;
    for action in &plan.actions {
        for step in &action.steps {
            n += 1;
            let what = step.describe();
            progress(n, total, &what);
            run.journal
                .record(&Entry::Step {
                    generation,
                    n,
                    what: what.clone(),
                })
                .map_err(|e| LabError::object("writing the journal", e))?;
            if let Some(f) = fault {
                f.hit(n, true);
            }
            let t = Instant::now();
            run.step(step)?;
            tracing::debug!(step = n, ms = t.elapsed().as_secs_f64() * 1e3, "{what}");
            done.steps.push(what);
            if let Some(f) = fault {
                f.hit(n, false);
            }
        }
        if !action.record.is_empty() {
            for r in &action.record {
                apply_record(&mut run.recorded.objects, r);
                if let Record::Node { name, obj: None } = r {
                    run.recorded.inodes.remove(name);
                }
            }
            run.save()?;
        }
    }
    // The lab is what the plan says: record identities, the plan, the end.
    let t = Instant::now();
    run.refresh_identity(&touched(plan));
    tracing::debug!(ms = t.elapsed().as_secs_f64() * 1e3, "identities recorded");
    run.recorded.generation = generation;
    run.save()?;
    let text = serde_json::to_string_pretty(&plan.desired)
        .map_err(|e| LabError::object("saving the plan", e))?;
    let tmp = dir.join("plan.json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, dir.join("plan.json")))
        .map_err(|e| LabError::object("saving the plan", e))?;
    run.journal
        .record(&Entry::Done { generation })
        .map_err(|e| LabError::object("writing the journal", e))?;
    call_ok(run.procs, Request::Reload)?;
    Ok(done)
}

/// The namespaces a plan's steps touch.
fn touched(plan: &ApplyPlan) -> std::collections::BTreeSet<String> {
    let lab = &plan.lab;
    let mut t = std::collections::BTreeSet::new();
    for s in plan.steps() {
        match s {
            Step::Veth { netns, .. } | Step::VethDelete { netns, .. } => {
                t.extend(netns.iter().cloned());
            }
            Step::Iface { netns, .. }
            | Step::IfaceDelete { netns, .. }
            | Step::Tap { netns, .. } => {
                t.insert(netns.clone());
            }
            Step::Netns { node } | Step::NetnsDelete { node } => {
                t.insert(format!("{lab}.{node}"));
            }
            _ => {}
        }
    }
    t
}

/// A link's impairment changed: every direction whose settings differ from what
/// `recorded` holds is set, live, to exactly what `desired` says, through the guests'
/// control sockets as `vecbox impair` does ([`live::change`] with [`Action::Replace`];
/// no setting is `clear`). The port is not reopened and no frame already in flight
/// is lost.
///
/// - `desired`: the lab as the file now says; `recorded`: what runs now;
/// - `link`: the link's id (`NODE:IFACE|NODE:IFACE`, sorted, [`super::alloc::link_id`]).
///
/// Idempotent: killed after it and run again, the same settings are set again.
pub fn impair(desired: &Plan, recorded: &Objects, link: &str) -> Result<(), LabError> {
    let Some(pl) = desired
        .links
        .iter()
        .find(|l| link_id(&l.names[0], &l.names[1]) == link)
    else {
        return Ok(());
    };
    for end in &pl.names {
        let want = leaving(desired, end);
        let have = recorded
            .links
            .get(link)
            .and_then(|l| l.end(end))
            .map(|e| e.impair.as_str());
        if have == Some(want.as_str()) {
            continue;
        }
        let Some((l, d)) = desired.impairs.iter().find_map(|l| {
            let ends = match &l.datapath {
                Some(x) => [format!("{x}:vec1"), format!("{x}:vec0")],
                None => l.ends.clone(),
            };
            ends.iter().position(|e| e == end).map(|d| (l, d))
        }) else {
            continue;
        };
        let what = || format!("the impairment of {} → {}", l.ends[d], l.ends[1 - d]);
        let p = live::parse_settings(&want).map_err(|e| LabError::object(what(), e))?;
        live::change(l, &[d], &Action::Replace(p)).map_err(|e| LabError::object(what(), e))?;
    }
    Ok(())
}

/// Change `o` as record `r` says.
pub fn apply_record(o: &mut Objects, r: &Record) {
    match r {
        Record::Node { name, obj } => match obj {
            Some(x) => {
                o.nodes.insert(name.clone(), x.clone());
            }
            None => {
                o.nodes.remove(name);
            }
        },
        Record::Link { id, obj } => match obj {
            Some(x) => {
                o.links.insert(id.clone(), x.clone());
            }
            None => {
                o.links.remove(id);
            }
        },
        Record::Underlay { id, obj } => match obj {
            Some(x) => {
                o.underlays.insert(id.clone(), x.clone());
            }
            None => {
                o.underlays.remove(id);
            }
        },
    }
}

impl Run<'_> {
    fn save(&self) -> Result<(), LabError> {
        observe::write_record(&self.dir, &self.recorded)
            .map_err(|e| LabError::object("writing the lab's record", e))
    }

    fn netns(&self, node: &str) -> String {
        format!("{}.{node}", self.lab)
    }

    fn def(&self, node: &str) -> Result<&PNode, LabError> {
        self.desired.node(node).ok_or_else(|| LabError::NoNode {
            lab: self.lab.clone(),
            node: node.to_string(),
            hint: String::new(),
        })
    }

    /// The kind of `node`, as planned or as recorded.
    fn kind(&self, node: &str) -> NodeKind {
        self.desired
            .node(node)
            .map(|n| n.kind)
            .or_else(|| self.recorded.objects.nodes.get(node).map(|n| n.node.kind))
            .unwrap_or(NodeKind::Host)
    }

    /// Tap descriptor numbers of `node` and their link ids.
    fn taps(&self, node: &PNode) -> Vec<(i32, String)> {
        node.ifaces
            .iter()
            .filter_map(|f| {
                let fd = f.tap_fd?;
                let l = self.desired.links.get(f.link)?;
                Some((fd, link_id(&l.names[0], &l.names[1])))
            })
            .collect()
    }

    fn step(&mut self, s: &Step) -> Result<(), LabError> {
        let lab = self.lab.clone();
        match s {
            Step::Netns { node } => {
                let def = self.def(node)?.clone();
                let ours = self.made.contains(&def.netns);
                ops::netns(&mut self.journal, &lab, &def, ours)?;
                if !ours {
                    self.made.push(def.netns.clone());
                }
                if let Some(i) = ops::ns_inode(&def.netns) {
                    self.recorded.inodes.insert(node.clone(), i);
                }
                Ok(())
            }
            Step::NetnsDelete { node } => {
                let ns = self.netns(node);
                ops::netns_delete(&mut self.journal, &lab, &ns, &ns)?;
                self.made.retain(|n| n != &ns);
                for f in [
                    format!("{node}.stats.json"),
                    format!("{node}.config.yaml"),
                    format!("{node}.rules.yaml"),
                    format!("{node}.cow"),
                ] {
                    let _ = std::fs::remove_file(self.dir.join(f));
                }
                Ok(())
            }
            Step::File { node } => {
                let def = self.def(node)?;
                let Some(f) = &def.config else { return Ok(()) };
                let path = spawn::guest_file(&self.dir, def);
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, &f.text)
                    .and_then(|()| std::fs::rename(&tmp, &path))
                    .map_err(|e| LabError::object(format!("writing {}", path.display()), e))
            }
            Step::Sysctls { node, set } => ops::sysctls(node, &self.netns(node), set),
            Step::Route { node, route, add } => ops::route(node, &self.netns(node), route, *add),
            Step::Veth { netns, kernel, mtu } => ops::veth(&lab, netns, kernel, *mtu),
            Step::VethDelete { netns, kernel } => ops::veth_delete(&lab, netns, kernel),
            Step::Tap {
                link,
                netns,
                name,
                mtu,
            } => call_ok(
                self.procs,
                Request::Tap {
                    link: link.clone(),
                    netns: netns.clone(),
                    name: name.clone(),
                    mtu: *mtu,
                },
            )
            .map(drop),
            Step::Sock { link, spec } => call_ok(
                self.procs,
                Request::Sock {
                    link: link.clone(),
                    spec: spec.clone(),
                },
            )
            .map(drop),
            Step::TapDelete { link } => {
                call_ok(self.procs, Request::Untap { link: link.clone() }).map(drop)
            }
            Step::Iface {
                netns,
                kernel,
                mac,
                mtu,
                add,
                del,
            } => ops::iface(netns, kernel, mac.as_deref(), *mtu, add, del),
            Step::IfaceDelete { netns, kernel } => ops::iface_delete(&lab, netns, kernel),
            Step::PortAdd { node, spec, tap } => {
                let umid = self.netns(node);
                match tap {
                    Some(link) => call_ok(
                        self.procs,
                        Request::Attach {
                            umid,
                            spec: spec.clone(),
                            link: link.clone(),
                        },
                    )
                    .map(drop),
                    None => guestctl::port_add(&umid, spec, self.kind(node) == NodeKind::Uml),
                }
            }
            Step::PortRemove { node, unit } => guestctl::port_remove(&self.netns(node), *unit),
            Step::Reload { node } => guestctl::reload(&self.netns(node)),
            Step::Options { node } => {
                let opts = spawn::function_options(&self.dir, self.def(node)?);
                guestctl::options(&self.netns(node), &opts)
            }
            Step::Start { node } => {
                let def = self.def(node)?.clone();
                let taps = self.taps(&def);
                match call_ok(
                    self.procs,
                    Request::Start {
                        node: Box::new(def),
                        taps,
                    },
                )? {
                    Response::Started { pid, start, since } => {
                        self.started.insert(node.clone(), (pid, start, since));
                        Ok(())
                    }
                    other => Err(LabError::Supervisor(format!(
                        "unexpected answer to start: {other:?}"
                    ))),
                }
            }
            Step::Ready { nodes } => self.ready(nodes),
            Step::Stop { node } => {
                call_ok(self.procs, Request::Stop { node: node.clone() }).map(drop)
            }
            Step::Define { node } => {
                let def = self.def(node)?.clone();
                let taps = self.taps(&def);
                call_ok(
                    self.procs,
                    Request::Define {
                        node: Box::new(def),
                        taps,
                    },
                )
                .map(drop)
            }
            Step::HostNet { node } => {
                let def = self.def(node)?.clone();
                super::hostnet::make(&lab, &def)
            }
            Step::Exec { node } => {
                let def = self.def(node)?.clone();
                for cmd in &def.exec {
                    ops::run_in(&def.name, &def.netns, cmd)?;
                }
                Ok(())
            }
            Step::Impair { link } => impair(self.desired, &self.recorded.objects, link),
        }
    }

    /// Wait until every node of `nodes` reports ready; fail when one dies or times out.
    fn ready(&mut self, nodes: &[String]) -> Result<(), LabError> {
        let t0 = Instant::now();
        let mut pending: Vec<String> = nodes.to_vec();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for name in pending {
                let def = self.def(&name)?.clone();
                let Some(&(pid, start, since)) = self.started.get(&name) else {
                    continue;
                };
                if spawn::is_ready(&self.dir, &def, since) {
                    continue;
                }
                if !journal::same_process(pid, start) {
                    return Err(LabError::Died {
                        node: name.clone(),
                        status: "exited".into(),
                        log: spawn::log_tail(&self.dir, &name, 8),
                    });
                }
                if t0.elapsed() > Duration::from_secs(u64::from(def.ready_timeout)) {
                    return Err(LabError::NotReady {
                        node: name.clone(),
                        secs: def.ready_timeout,
                        log: spawn::log_tail(&self.dir, &name, 8),
                    });
                }
                still.push(name);
            }
            pending = still;
            if !pending.is_empty() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(())
    }

    /// Record the index of every interface the record has in the namespaces `touched`
    /// (the others keep theirs), and every namespace inode.
    fn refresh_identity(&mut self, touched: &std::collections::BTreeSet<String>) {
        let o = &self.recorded.objects;
        let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for l in o.links.values() {
            for e in &l.ends {
                if let (Some(n), Some(k)) = (o.nodes.get(&e.node), &e.kernel) {
                    want.entry(n.node.netns.clone())
                        .or_default()
                        .push(k.clone());
                }
            }
        }
        for u in o.underlays.values() {
            for s in 0..2 {
                if let Some(n) = o.nodes.get(&u.nodes[s]) {
                    want.entry(n.node.netns.clone())
                        .or_default()
                        .push(u.kernel[s].clone());
                }
            }
        }
        let inodes: BTreeMap<String, u64> = o
            .nodes
            .iter()
            .filter_map(|(name, n)| Some((name.clone(), ops::ns_inode(&n.node.netns)?)))
            .collect();
        let names: Vec<String> = want
            .keys()
            .filter(|n| touched.contains(*n))
            .cloned()
            .collect();
        // Namespaces this apply did not touch keep what was recorded for them.
        let mut idx: BTreeMap<String, u32> = self
            .recorded
            .ifindex
            .iter()
            .filter(|(k, _)| {
                let (ns, name) = k.split_once('/').unwrap_or_default();
                !touched.contains(ns) && want.get(ns).is_some_and(|w| w.iter().any(|n| n == name))
            })
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (ns, found) in names.iter().zip(ops::list_all(&names)) {
            for i in found.unwrap_or_default() {
                if want[ns].contains(&i.name) {
                    idx.insert(format!("{ns}/{}", i.name), i.index);
                }
            }
        }
        self.recorded.ifindex = idx;
        self.recorded.inodes = inodes;
    }
}
