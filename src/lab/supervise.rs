//! The supervisor: the process of `vecbox up` that keeps a lab's guests and UML kernels
//! running according to their restart policy (with exponential backoff, counted), holds
//! the host ends of tap links, samples link counters and publishes the lab's state, and
//! answers `vecbox apply` on its control socket ([`super::control`]): nodes started,
//! stopped and redefined, taps created and released. On shutdown it stops every node
//! and tears the lab down.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::control::{self, Procs, Request, Response, SlotInfo, Status};
use super::journal::{self, Entry, Journal};
use super::plan::{PNode, Plan};
use super::state::{self, LabState, LinkState, NodeState};
use super::teardown::{self, Report};
use super::topology::{NodeKind, Restart};
use super::{LabError, ops, spawn};
use crate::metrics::collect::GuestCollector;

/// First restart delay; doubled for each restart in a row, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest restart delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A node that ran this long before dying starts again from [`FIRST_BACKOFF`].
pub const STABLE: Duration = Duration::from_secs(10);
/// How long a stopped node gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_millis(1500);

struct Slot {
    def: PNode,
    /// Descriptor numbers of the node's tap ends and their link ids.
    taps: Vec<(i32, String)>,
    child: Option<Child>,
    /// Start time of `child`.
    start: u64,
    state: &'static str,
    restarts: u32,
    last_exit: Option<String>,
    started: Instant,
    next: Option<Instant>,
    backoff: Duration,
    since: usize,
}

/// A running lab.
pub struct Supervisor {
    pub plan: Plan,
    pub dir: PathBuf,
    journal: Journal,
    slots: Vec<Slot>,
    /// Host ends of tap links, by link id.
    taps: BTreeMap<String, File>,
    links: Vec<LinkState>,
    last_sample: Instant,
    control: Option<control::Server>,
    /// The lab's metrics endpoint, when it has one: guests are added and removed.
    pub metrics: Option<Arc<GuestCollector>>,
}

/// Whether policy `p` restarts a node that ended with `st`.
pub fn wants_restart(p: Restart, st: &ExitStatus) -> bool {
    match p {
        Restart::Always => true,
        Restart::OnFailure => !st.success(),
        Restart::Never => false,
    }
}

/// SIGTERM, a grace period, then SIGKILL; reaped.
fn stop_child(mut c: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let t0 = Instant::now();
    while t0.elapsed() < GRACE {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = c.kill();
    let _ = c.wait();
}

impl Supervisor {
    /// A supervisor of lab `plan` (run directory `dir`) with no node running yet.
    pub fn new(plan: Plan, dir: PathBuf, journal: Journal) -> Supervisor {
        let now = Instant::now();
        Supervisor {
            plan,
            dir,
            journal,
            slots: Vec::new(),
            taps: BTreeMap::new(),
            links: Vec::new(),
            last_sample: now - Duration::from_secs(1),
            control: None,
            metrics: None,
        }
    }

    /// Open the control socket `vecbox apply` talks to.
    pub fn listen(&mut self) -> std::io::Result<()> {
        self.control = Some(control::Server::bind(&self.dir)?);
        Ok(())
    }

    fn slot(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.def.name == name)
    }

    /// Start `def`'s process with its taps and journal it.
    fn spawn(&mut self, def: &PNode, taps: &[(i32, String)]) -> Result<(Child, u64), LabError> {
        let mut fds: Vec<(i32, &File)> = Vec::new();
        for (num, link) in taps {
            let file = self.taps.get(link).ok_or_else(|| {
                LabError::Supervisor(format!(
                    "node `{}`: the tap of link {link} is not held",
                    def.name
                ))
            })?;
            fds.push((*num, file));
        }
        let child = spawn::start(&self.dir, def, &fds)?;
        let pid = child.id() as i32;
        let start = journal::start_time(pid).unwrap_or(0);
        self.journal
            .record(&Entry::Proc {
                node: def.name.clone(),
                pid,
                start,
            })
            .map_err(|e| LabError::object("writing the journal", e))?;
        Ok((child, start))
    }

    fn watch_metrics(&self, def: &PNode, on: bool) {
        let Some(c) = &self.metrics else { return };
        c.remove(&self.plan.lab, &def.name);
        if on && def.kind.is_guest() {
            let base = crate::console::rundir::uml_dir()
                .unwrap_or_else(|_| crate::console::rundir::TMP_UML_DIR.into());
            let names = def
                .ifaces
                .iter()
                .filter_map(|i| i.unit.map(|u| (format!("vec{u}"), i.name.clone())))
                .collect();
            c.add_named(
                &self.plan.lab,
                &def.name,
                base.join(&def.umid).join("metrics"),
                names,
            );
        }
    }

    /// Answer one control request.
    pub fn handle(&mut self, req: Request) -> Response {
        match self.handle_inner(req) {
            Ok(r) => r,
            Err(e) => Response::Error {
                message: e.to_string(),
            },
        }
    }

    fn handle_inner(&mut self, req: Request) -> Result<Response, LabError> {
        match req {
            Request::Status => Ok(Response::Status(self.status())),
            Request::Start { node, taps } => {
                if let Some(i) = self.slot(&node.name) {
                    let s = self.slots.remove(i);
                    if let Some(c) = s.child {
                        stop_child(c);
                    }
                }
                let since = spawn::log_len(&self.dir, &node.name);
                let (child, start) = self.spawn(&node, &taps)?;
                let pid = child.id() as i32;
                self.watch_metrics(&node, true);
                self.slots.push(Slot {
                    def: *node,
                    taps,
                    child: Some(child),
                    start,
                    state: "starting",
                    restarts: 0,
                    last_exit: None,
                    started: Instant::now(),
                    next: None,
                    backoff: FIRST_BACKOFF,
                    since,
                });
                Ok(Response::Started { pid, start, since })
            }
            Request::Stop { node } => {
                if let Some(i) = self.slot(&node) {
                    let s = self.slots.remove(i);
                    self.watch_metrics(&s.def, false);
                    if let Some(c) = s.child {
                        stop_child(c);
                    }
                }
                Ok(Response::Ok)
            }
            Request::Define { node, taps } => {
                self.watch_metrics(&node, true);
                if let Some(i) = self.slot(&node.name) {
                    self.slots[i].def = *node;
                    self.slots[i].taps = taps;
                }
                Ok(Response::Ok)
            }
            Request::Tap {
                link,
                netns,
                name,
                mtu,
            } => {
                if !self.taps.contains_key(&link) {
                    let f = ops::tap(&self.plan.lab, &netns, &name, mtu)?;
                    self.taps.insert(link, f);
                }
                Ok(Response::Ok)
            }
            Request::Sock { link, spec } => {
                if let std::collections::btree_map::Entry::Vacant(e) = self.taps.entry(link) {
                    let f = super::hosts::bind_socket(e.key(), &spec)?;
                    e.insert(f);
                }
                Ok(Response::Ok)
            }
            Request::Untap { link } => {
                self.taps.remove(&link);
                Ok(Response::Ok)
            }
            Request::Attach { umid, spec, link } => {
                let tap = self.taps.get(&link).ok_or_else(|| {
                    LabError::Supervisor(format!("the tap of link {link} is not held"))
                })?;
                super::guestctl::attach(&umid, &spec, tap)?;
                Ok(Response::Ok)
            }
            Request::Reload => {
                let p = super::saved_plan(&self.plan.lab)?;
                self.plan = p;
                self.links.clear();
                // The next turn of the loop writes the state with the new nodes and
                // links (not before answering: sampling reads every namespace).
                self.last_sample = Instant::now() - Duration::from_secs(1);
                Ok(Response::Ok)
            }
        }
    }

    /// The nodes and taps held.
    pub fn status(&self) -> Status {
        Status {
            slots: self
                .slots
                .iter()
                .map(|s| SlotInfo {
                    name: s.def.name.clone(),
                    pid: s.child.as_ref().map(|c| (c.id() as i32, s.start)),
                    state: s.state.to_string(),
                    restarts: s.restarts,
                    def: s.def.clone(),
                })
                .collect(),
            taps: self.taps.keys().cloned().collect(),
        }
    }

    /// Reap dead nodes, start those whose backoff expired, update readiness.
    pub fn tick(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            let s = &mut self.slots[i];
            let name = s.def.name.clone();
            if let Some(c) = &mut s.child
                && let Ok(Some(st)) = c.try_wait()
            {
                s.child = None;
                s.last_exit = Some(describe_exit(&st));
                if wants_restart(s.def.restart, &st) {
                    if now.duration_since(s.started) >= STABLE {
                        s.backoff = FIRST_BACKOFF;
                    }
                    s.next = Some(now + s.backoff);
                    s.backoff = (s.backoff * 2).min(MAX_BACKOFF);
                    s.state = "restarting";
                    tracing::warn!(node = %name, status = %describe_exit(&st), "node exited; restarting");
                } else {
                    s.state = if st.success() { "stopped" } else { "failed" };
                    tracing::warn!(node = %name, status = %describe_exit(&st), "node exited; not restarted (restart: {:?})", s.def.restart);
                }
            }
            if self.slots[i].next.is_some_and(|t| now >= t) {
                self.slots[i].next = None;
                self.slots[i].since = spawn::log_len(&self.dir, &name);
                let (def, taps) = (self.slots[i].def.clone(), self.slots[i].taps.clone());
                match self.spawn(&def, &taps) {
                    Ok((c, start)) => {
                        let s = &mut self.slots[i];
                        s.child = Some(c);
                        s.start = start;
                        s.restarts += 1;
                        s.started = now;
                        s.state = "starting";
                    }
                    Err(e) => {
                        let s = &mut self.slots[i];
                        s.last_exit = Some(e.to_string());
                        s.next = Some(now + s.backoff);
                        s.backoff = (s.backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            let s = &mut self.slots[i];
            if s.state == "starting" && spawn::is_ready(&self.dir, &s.def, s.since) {
                s.state = "running";
            }
        }
    }

    /// Sample link rates (at most once a second) and write the state file.
    pub fn sample(&mut self) -> Option<LabState> {
        let dt = self.last_sample.elapsed();
        if dt < Duration::from_millis(950) {
            return None;
        }
        self.last_sample = Instant::now();
        self.links = state::sample_links(&self.plan, &self.links, dt);
        let st = self.state();
        if let Err(e) = state::write(&self.dir, &st) {
            tracing::warn!("writing the lab state: {e}");
        }
        Some(st)
    }

    /// The current state.
    pub fn state(&self) -> LabState {
        let p = &self.plan;
        let nodes = p
            .nodes
            .iter()
            .map(|n| {
                let slot = self.slot(&n.name).map(|i| &self.slots[i]);
                NodeState {
                    name: n.name.clone(),
                    kind: n.kind.to_string(),
                    state: slot
                        .map_or(if n.kind.is_process() { "stopped" } else { "up" }, |s| {
                            s.state
                        })
                        .to_string(),
                    pid: slot.and_then(|s| s.child.as_ref()).map(|c| c.id() as i32),
                    restarts: slot.map_or(0, |s| s.restarts),
                    last_exit: slot.and_then(|s| s.last_exit.clone()),
                    console: (n.kind != NodeKind::Host).then(|| n.umid.clone()),
                    log: (n.kind != NodeKind::Host)
                        .then(|| spawn::log_path(&self.dir, &n.name).display().to_string()),
                }
            })
            .collect();
        LabState {
            lab: p.lab.clone(),
            supervisor: std::process::id() as i32,
            nodes,
            links: self.links.clone(),
            updated: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    /// Serve control requests until nothing waits, for at most `wait`.
    fn serve(&mut self, wait: Duration) {
        let Some(server) = &self.control else {
            std::thread::sleep(wait);
            return;
        };
        {
            use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
            let fds = server.fds();
            let mut pfds: Vec<PollFd> = fds
                .iter()
                .map(|f| PollFd::new(*f, PollFlags::POLLIN))
                .collect();
            let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
            let _ = poll(&mut pfds, PollTimeout::from(ms));
        }
        let reqs = self.control.as_mut().map(|s| s.poll()).unwrap_or_default();
        for (conn, req) in reqs {
            let r = self.handle(req);
            if let Some(s) = &mut self.control {
                s.reply(conn, &r);
            }
        }
    }

    /// Run until `stop()` says so, calling `show` with each new state.
    pub fn run(&mut self, stop: &mut dyn FnMut() -> bool, show: &mut dyn FnMut(&LabState)) {
        while !stop() {
            self.tick();
            if let Some(st) = self.sample() {
                show(&st);
            }
            self.serve(Duration::from_millis(50));
        }
    }

    /// Kill every started process at once (a failed `up`).
    pub fn kill_all(&mut self) {
        for s in &mut self.slots {
            if let Some(mut c) = s.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Stop every node (SIGTERM, then SIGKILL after a grace period) and tear the lab
    /// down from its journal.
    pub fn shutdown(mut self) -> Report {
        self.control = None;
        for s in &mut self.slots {
            if let Some(c) = &s.child {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(c.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        let t0 = Instant::now();
        for s in &mut self.slots {
            if let Some(mut c) = s.child.take() {
                while t0.elapsed() < GRACE {
                    if let Ok(Some(_)) = c.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let lab = self.plan.lab.clone();
        self.taps.clear();
        teardown::teardown(&lab)
    }
}

impl Procs for Supervisor {
    fn call(&mut self, req: Request) -> Result<Response, LabError> {
        Ok(self.handle(req))
    }
}

/// An exit status for `status` and the log; a guest killed by SIGSYS made a system call
/// outside its seccomp allowlist, which says where to look.
fn describe_exit(st: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if st.signal() == Some(libc::SIGSYS) {
        format!(
            "{st}: a system call outside the guest's seccomp allowlist \
             (`dmesg | grep type=1326` names it; `options: {{seccomp: log}}` on the node \
             logs instead of killing)"
        )
    } else {
        st.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    #[test]
    fn sigsys_names_the_seccomp_allowlist() {
        let sys = super::describe_exit(&ExitStatus::from_raw(libc::SIGSYS));
        assert!(sys.contains("SIGSYS") && sys.contains("type=1326"), "{sys}");
        let term = super::describe_exit(&ExitStatus::from_raw(libc::SIGKILL));
        assert!(!term.contains("seccomp"), "{term}");
    }
}
