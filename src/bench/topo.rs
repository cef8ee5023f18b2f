//! The benchmark's processes and the lab each row runs on ([`super::lab`]).
//!
//! The namespaces are those of lab `vbb<pid>` (`vbb<pid>.gen`, `.dut`, `.sink`), made
//! and removed by the lab layer with its journal. Every process is started in its own
//! process group with `VECBOX_BENCH=<tag>` in its environment; process groups, the lab
//! and the work directory are recorded in a registry so that an interrupted bench
//! ([`cleanup_all`], from the signal handler) removes them; a bench killed outright is
//! removed by `vecbox down --lab vbb<pid>` from the lab's journal.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::BenchError;
use super::lab::{Fabric, Lab};
use crate::netlink::{self, NetNs};

/// MAC of the sink as the DUT's next hop: nobody has it, so s0 drops frames early.
pub const SINK_MAC: &str = "02:00:00:00:00:99";
/// MAC given to the DUT's ingress port where a function needs one (router, UML).
pub const DUT_MAC: &str = "02:00:00:00:00:d0";
/// Underlay addresses of tunnels (DUT t0, sink t1).
pub const T_DUT: &str = "172.28.80.1";
pub const T_SINK: &str = "172.28.80.2";
/// Environment variable carrying the bench tag into every process it starts.
pub const TAG_ENV: &str = "VECBOX_BENCH";

#[derive(Default)]
struct Registry {
    labs: BTreeSet<String>,
    groups: BTreeSet<i32>,
    dirs: BTreeSet<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    labs: BTreeSet::new(),
    groups: BTreeSet::new(),
    dirs: BTreeSet::new(),
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The bench is being interrupted: start no more processes.
pub fn stop() {
    STOPPING.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// When the bench is being interrupted, wait for the signal thread to finish cleaning
/// up and exit the process (so that the main thread, seeing its namespaces vanish,
/// never exits first with a success status).
pub fn wait_if_stopping() {
    while STOPPING.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kill every process group and remove every namespace and directory the bench made.
pub fn cleanup_all() {
    let (groups, labs, dirs) = {
        let mut r = registry();
        (
            std::mem::take(&mut r.groups),
            std::mem::take(&mut r.labs),
            std::mem::take(&mut r.dirs),
        )
    };
    for g in &groups {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGKILL);
    }
    for lab in &labs {
        crate::lab::teardown::teardown(lab);
    }
    for d in &dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    remove_console_dirs(&format!("vbb{}-", std::process::id()));
}

/// Remove the `~/.uml` console directories named `PREFIX*` of guests that were killed
/// before they could remove their own.
fn remove_console_dirs(prefix: &str) {
    if let Some(home) = std::env::var_os("HOME") {
        let uml = PathBuf::from(home).join(".uml");
        if let Ok(entries) = std::fs::read_dir(&uml) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
}

/// The lab `name` is up (removed by [`cleanup_all`] if the bench is interrupted).
pub fn register_lab(name: &str) {
    registry().labs.insert(name.to_string());
}

/// The lab `name` was torn down.
pub fn unregister_lab(name: &str) {
    registry().labs.remove(name);
}

/// Run a command; its stdout, or an error naming the command and its stderr.
pub fn sh(args: &[&str]) -> Result<String, BenchError> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BenchError::Command(format!("{}: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(BenchError::Command(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A child in its own process group; dropping it ends the whole group (trafgen forks
/// workers, UML forks helpers).
pub struct Proc {
    child: Child,
    pgid: i32,
}

impl Proc {
    pub fn spawn(cmd: &mut Command, tag: &str) -> Result<Proc, BenchError> {
        use std::os::unix::process::CommandExt;
        let child = cmd
            .env(TAG_ENV, tag)
            .process_group(0)
            .spawn()
            .map_err(|e| BenchError::Command(format!("{cmd:?}: {e}")))?;
        let pgid = child.id() as i32;
        registry().groups.insert(pgid);
        if STOPPING.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            return Err(BenchError::Command("interrupted".into()));
        }
        Ok(Proc { child, pgid })
    }

    /// The process group (its leader's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Wait for the process to exit by itself, at most `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.pgid);
        // SIGINT stops trafgen's workers, SIGTERM the guests, UML and iperf3.
        let _ = killpg(pid, Signal::SIGINT);
        let _ = killpg(pid, Signal::SIGTERM);
        self.wait_timeout(Duration::from_secs(3));
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = self.child.wait();
        registry().groups.remove(&self.pgid);
    }
}

/// The bench's work directory and the lab (gen, dut and sink namespaces) the current
/// row runs on.
pub struct Topo {
    pub tag: String,
    pub dir: PathBuf,
    lab: RefCell<Option<Lab>>,
}

impl Topo {
    /// The work directory `TMP/tag`; no lab yet ([`Topo::fabric`] brings one up).
    pub fn new(tag: &str) -> Result<Topo, BenchError> {
        let dir = std::env::temp_dir().join(tag);
        std::fs::create_dir_all(&dir)
            .map_err(|e| BenchError::Command(format!("creating {}: {e}", dir.display())))?;
        registry().dirs.insert(dir.clone());
        Ok(Topo {
            tag: tag.to_string(),
            dir,
            lab: RefCell::new(None),
        })
    }

    /// Make the lab the row's fabric `f`: kept when it already is, else the previous
    /// lab is torn down and `f` brought up (lab `tag`).
    pub fn fabric(&self, f: &Fabric) -> Result<(), BenchError> {
        let mut lab = self.lab.borrow_mut();
        if lab.as_ref().is_some_and(|l| &l.fabric == f) {
            return Ok(());
        }
        drop(lab.take());
        *lab = Some(Lab::up(&self.tag, f, &self.dir)?);
        Ok(())
    }

    pub fn ns(&self, role: &str) -> String {
        format!("{}.{role}", self.tag)
    }

    /// A command run in `role`'s namespace (with `/sys` remounted for it, as `ip netns
    /// exec` does); not started.
    pub fn command(&self, role: &str, args: &[&str]) -> Result<Command, BenchError> {
        let ns = crate::lab::ops::ns_file(&self.ns(role))
            .map_err(|e| BenchError::Command(e.to_string()))?;
        let mut c = Command::new(args[0]);
        c.args(&args[1..]).stdin(Stdio::null());
        crate::sys::process::enter_netns_with_sys(&mut c, ns.into())
            .map_err(|e| BenchError::Command(format!("entering {}: {e}", self.ns(role))))?;
        Ok(c)
    }

    /// Kernel interface counter (`rx_packets`, `tx_packets`, `rx_bytes`, `tx_bytes`) of
    /// `ifname` in `role`'s namespace, over netlink.
    pub fn counter(&self, role: &str, ifname: &str, name: &str) -> Result<u64, BenchError> {
        let ns = self.ns(role);
        let links = NetNs::existing(&ns)
            .rtnl(|h| async move { netlink::dump_links(&h).await })
            .map_err(|e| BenchError::Command(format!("counters of {ns}: {e}")))?;
        let Some((_, _, c)) = links.iter().find(|(n, _, _)| n == ifname) else {
            return Err(BenchError::Command(format!(
                "no interface {ifname} in {ns}"
            )));
        };
        match name {
            "rx_packets" => Ok(c.rx_packets),
            "tx_packets" => Ok(c.tx_packets),
            "rx_bytes" => Ok(c.rx_bytes),
            "tx_bytes" => Ok(c.tx_bytes),
            other => Err(BenchError::Command(format!("no counter {other}"))),
        }
    }

    /// MAC address of `ifname` in `role`'s namespace, `xx:xx:xx:xx:xx:xx`.
    pub fn mac(&self, role: &str, ifname: &str) -> Result<String, BenchError> {
        let (ns, i) = (self.ns(role), ifname.to_string());
        let m = NetNs::existing(&ns)
            .rtnl(move |h| async move { netlink::mac_of(&h, &i).await })
            .map_err(|e| BenchError::Command(format!("MAC of {ns}/{ifname}: {e}")))?;
        Ok(m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"))
    }

    /// Wait until `ifname` (a tap a guest creates) exists in `role`'s namespace, then
    /// bring it up (the lab's namespaces give new interfaces no IPv6).
    pub fn iface_up(&self, role: &str, ifname: &str) -> Result<(), BenchError> {
        let ns = self.ns(role);
        for _ in 0..100 {
            let i = ifname.to_string();
            let found = NetNs::existing(&ns)
                .rtnl(move |h| async move { netlink::link_index(&h, &i).await })
                .is_ok();
            if found {
                let i = ifname.to_string();
                return NetNs::existing(&ns)
                    .rtnl(move |h| async move { netlink::set_up(&h, &i).await })
                    .map_err(|e| BenchError::Command(format!("{ns}/{ifname}: {e}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(BenchError::Dut(format!(
            "tap {ifname} did not appear in {ns}"
        )))
    }

    /// Pin every process of `role`'s namespace (a UML kernel and its helpers) to `cpu`.
    pub fn pin_all(&self, role: &str, cpu: u32) {
        let path = std::path::Path::new(netlink::NETNS_DIR).join(self.ns(role));
        for pid in crate::lab::teardown::pids_in_netns(&path) {
            let _ = sh(&[
                "taskset",
                "-a",
                "-p",
                "-c",
                &cpu.to_string(),
                &pid.to_string(),
            ]);
        }
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        drop(self.lab.borrow_mut().take());
        let _ = std::fs::remove_dir_all(&self.dir);
        registry().dirs.remove(&self.dir);
        // A guest that needed SIGKILL (it did not stop within 3 s) left its own.
        remove_console_dirs(&format!("{}-", self.tag));
    }
}

/// Whether `tool` is an executable file on `PATH`.
pub fn have_tool(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}
