//! Removing a lab from its journal: stop the supervisor, stop every process the lab
//! started (identified by pid and start time), kill whatever still runs inside the
//! lab's namespaces, delete the namespaces (which removes every interface in them),
//! remove the control directories and the run directory.
//!
//! Only objects the journal lists are touched. A namespace that was recorded but not
//! confirmed as made is removed only if it carries the lab's marker (the alias of its
//! `lo`), so a name that belonged to someone else is left alone.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::journal::{self, Entry};
use super::plan;
use crate::netlink::{self, NetNs};

/// What a teardown did.
#[derive(Debug, Default)]
pub struct Report {
    /// Processes signalled.
    pub processes: usize,
    /// Namespaces removed.
    pub namespaces: Vec<String>,
    /// Objects listed in the journal but left alone, with the reason.
    pub skipped: Vec<String>,
}

/// The supervisor of lab `lab` if it is alive: (pid, start).
pub fn live_supervisor(lab: &str) -> Option<(i32, u64)> {
    let entries = journal::read(&plan::run_dir(lab)).ok()?;
    entries.iter().rev().find_map(|e| match e {
        Entry::Run { pid, start, .. } if journal::same_process(*pid, *start) => {
            Some((*pid, *start))
        }
        _ => None,
    })
}

fn signal_all(procs: &[(i32, u64)], sig: Signal) {
    for &(pid, start) in procs {
        if journal::same_process(pid, start) {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }
}

/// Wait until none of `procs` runs any more, at most `limit`.
fn wait_gone(procs: &[(i32, u64)], limit: Duration) -> bool {
    let t0 = Instant::now();
    loop {
        if !procs.iter().any(|&(p, s)| journal::same_process(p, s)) {
            return true;
        }
        if t0.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stop the supervisor of `lab` (SIGTERM: it tears the lab down itself), waiting at
/// most `limit`, then SIGKILL. Returns `true` if one was running.
pub fn stop_supervisor(lab: &str, limit: Duration) -> bool {
    let me = std::process::id() as i32;
    let Some(sup) = live_supervisor(lab).filter(|(p, _)| *p != me) else {
        return false;
    };
    signal_all(&[sup], Signal::SIGTERM);
    if !wait_gone(&[sup], limit) {
        signal_all(&[sup], Signal::SIGKILL);
        wait_gone(&[sup], Duration::from_secs(2));
    }
    true
}

/// Processes whose network namespace is the one mounted at `ns_path`.
pub fn pids_in_netns(ns_path: &Path) -> Vec<i32> {
    let Ok(meta) = std::fs::metadata(ns_path) else {
        return Vec::new();
    };
    let (dev, ino) = (meta.dev(), meta.ino());
    let me = std::process::id() as i32;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
        })
        .collect()
}

/// Kill whatever runs inside namespace `name`, then delete it (and every interface in
/// it).
pub fn remove_namespace(name: &str) -> Result<(), netlink::NetlinkError> {
    let path = Path::new(netlink::NETNS_DIR).join(name);
    let pids = pids_in_netns(&path);
    for &p in &pids {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
    let gone: Vec<(i32, u64)> = pids
        .iter()
        .filter_map(|&p| Some((p, journal::start_time(p)?)))
        .collect();
    wait_gone(&gone, Duration::from_secs(2));
    NetNs::existing(name).delete()
}

/// `true` if namespace `name` carries lab `lab`'s marker.
pub fn marked(name: &str, lab: &str) -> bool {
    let want = plan::marker(lab);
    NetNs::existing(name)
        .rtnl(|h| async move { netlink::alias(&h, "lo").await })
        .is_ok_and(|a| a == want)
}

/// Tear down the lab whose run directory is `dir` (named `lab`), from its journal.
/// Idempotent: running it again finds nothing left to do.
pub fn teardown(lab: &str) -> Report {
    let dir = plan::run_dir(lab);
    let mut report = Report::default();
    let entries = journal::read(&dir).unwrap_or_default();
    let me = std::process::id() as i32;
    // 1. Supervisors other than us, then the processes the lab started.
    let sups: Vec<(i32, u64)> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Run { pid, start, .. } if *pid != me => Some((*pid, *start)),
            _ => None,
        })
        .collect();
    signal_all(&sups, Signal::SIGKILL);
    let procs: Vec<(i32, u64)> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Proc { pid, start, .. } => Some((*pid, *start)),
            _ => None,
        })
        .filter(|&(p, s)| journal::same_process(p, s))
        .collect();
    report.processes = procs.len();
    signal_all(&procs, Signal::SIGTERM);
    if !wait_gone(&procs, Duration::from_millis(1500)) {
        signal_all(&procs, Signal::SIGKILL);
        wait_gone(&procs, Duration::from_secs(2));
    }
    // 2. Namespaces: everything still inside is the lab's; then unmount and unlink.
    // The last line about a name wins: made, only intended, or removed by an apply.
    let mut last: Vec<(String, bool)> = Vec::new();
    for e in &entries {
        let (name, made) = match e {
            Entry::Netns { name } => (name, false),
            Entry::NetnsMade { name } => (name, true),
            Entry::NetnsGone { name } => {
                last.retain(|(n, _)| n != name);
                continue;
            }
            _ => continue,
        };
        match last.iter_mut().find(|(n, _)| n == name) {
            Some(x) => x.1 = made,
            None => last.push((name.clone(), made)),
        }
    }
    for (name, made) in &last {
        let path = Path::new(netlink::NETNS_DIR).join(name);
        if !path.exists() {
            continue;
        }
        if !made && !marked(name, lab) {
            report.skipped.push(format!(
                "namespace {name}: not confirmed as made by lab `{lab}` and not marked; left alone"
            ));
            continue;
        }
        match remove_namespace(name) {
            Ok(()) => report.namespaces.push(name.clone()),
            Err(e) => report.skipped.push(format!("namespace {name}: {e}")),
        }
    }
    // 3. Control directories, then the run directory (journal last).
    for e in &entries {
        if let Entry::Dir { path } = e
            && path.exists()
        {
            let _ = std::fs::remove_dir_all(path);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    report
}
