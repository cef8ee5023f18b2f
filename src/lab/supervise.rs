//! The supervisor: keeps a deployed lab's guests and UML kernels running according to
//! their restart policy (with exponential backoff, counted), samples link counters and
//! publishes the lab's state; on shutdown stops every node and tears the lab down.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::deploy::Deployment;
use super::spawn;
use super::state::{self, LabState, LinkState, NodeState};
use super::teardown::{self, Report};
use super::topology::{NodeKind, Restart};

/// First restart delay; doubled for each restart in a row, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest restart delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A node that ran this long before dying starts again from [`FIRST_BACKOFF`].
pub const STABLE: Duration = Duration::from_secs(10);

struct Slot {
    ni: usize,
    child: Option<Child>,
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
    pub dep: Deployment,
    slots: Vec<Slot>,
    links: Vec<LinkState>,
    last_sample: Instant,
}

/// Whether policy `p` restarts a node that ended with `st`.
pub fn wants_restart(p: Restart, st: &ExitStatus) -> bool {
    match p {
        Restart::Always => true,
        Restart::OnFailure => !st.success(),
        Restart::Never => false,
    }
}

impl Supervisor {
    /// Take over the processes started by `dep`.
    pub fn new(mut dep: Deployment) -> Supervisor {
        let now = Instant::now();
        let slots = std::mem::take(&mut dep.children)
            .into_iter()
            .map(|(ni, child)| Slot {
                ni,
                child: Some(child),
                state: "running",
                restarts: 0,
                last_exit: None,
                started: now,
                next: None,
                backoff: FIRST_BACKOFF,
                since: 0,
            })
            .collect();
        Supervisor {
            dep,
            slots,
            links: Vec::new(),
            last_sample: now - Duration::from_secs(1),
        }
    }

    /// Reap dead nodes, start those whose backoff expired, update readiness.
    pub fn tick(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            let ni = self.slots[i].ni;
            let node = self.dep.plan.nodes[ni].clone();
            let s = &mut self.slots[i];
            if let Some(c) = &mut s.child
                && let Ok(Some(st)) = c.try_wait()
            {
                s.child = None;
                s.last_exit = Some(describe_exit(&st));
                if wants_restart(node.restart, &st) {
                    if now.duration_since(s.started) >= STABLE {
                        s.backoff = FIRST_BACKOFF;
                    }
                    s.next = Some(now + s.backoff);
                    s.backoff = (s.backoff * 2).min(MAX_BACKOFF);
                    s.state = "restarting";
                    tracing::warn!(node = %node.name, status = %describe_exit(&st), "node exited; restarting");
                } else {
                    s.state = if st.success() { "stopped" } else { "failed" };
                    tracing::warn!(node = %node.name, status = %describe_exit(&st), "node exited; not restarted (restart: {:?})", node.restart);
                }
            }
            if s.next.is_some_and(|t| now >= t) {
                s.next = None;
                s.since = spawn::log_len(&self.dep.dir, &node.name);
                match self.dep.spawn(ni) {
                    Ok(c) => {
                        let s = &mut self.slots[i];
                        s.child = Some(c);
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
            if s.state == "starting" && spawn::is_ready(&self.dep.dir, &node, s.since) {
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
        self.links = state::sample_links(&self.dep.plan, &self.links, dt);
        let st = self.state();
        if let Err(e) = state::write(&self.dep.dir, &st) {
            tracing::warn!("writing the lab state: {e}");
        }
        Some(st)
    }

    /// The current state.
    pub fn state(&self) -> LabState {
        let p = &self.dep.plan;
        let nodes = p
            .nodes
            .iter()
            .enumerate()
            .map(|(ni, n)| {
                let slot = self.slots.iter().find(|s| s.ni == ni);
                NodeState {
                    name: n.name.clone(),
                    kind: n.kind.to_string(),
                    state: slot.map_or("up", |s| s.state).to_string(),
                    pid: slot.and_then(|s| s.child.as_ref()).map(|c| c.id() as i32),
                    restarts: slot.map_or(0, |s| s.restarts),
                    last_exit: slot.and_then(|s| s.last_exit.clone()),
                    console: (n.kind != NodeKind::Host).then(|| n.umid.clone()),
                    log: (n.kind != NodeKind::Host).then(|| {
                        spawn::log_path(&self.dep.dir, &n.name)
                            .display()
                            .to_string()
                    }),
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

    /// Run until `stop()` says so, calling `show` with each new state.
    pub fn run(&mut self, stop: &mut dyn FnMut() -> bool, show: &mut dyn FnMut(&LabState)) {
        while !stop() {
            self.tick();
            if let Some(st) = self.sample() {
                show(&st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop every node (SIGTERM, then SIGKILL after a grace period) and tear the lab
    /// down from its journal.
    pub fn shutdown(mut self) -> Report {
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
                while t0.elapsed() < Duration::from_millis(1500) {
                    if let Ok(Some(_)) = c.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let lab = self.dep.plan.lab.clone();
        drop(self.dep.taps);
        teardown::teardown(&lab)
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
