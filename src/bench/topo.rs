//! The benchmark's namespaces and processes:
//!
//! ```text
//!  gen ── g0 | d0 [DUT] d1 | s0 ── sink          (veth; the sink counts s0 rx)
//!                  [DUT] t0 | t1 ── sink         (underlay veth for tunnels, MTU 1600)
//! ```
//! Every namespace is `vbb<pid>-<role>` and every process is started in its own process
//! group with `VECBOX_BENCH=<tag>` in its environment; both are recorded in a registry
//! so that an interrupted bench ([`cleanup_all`], from the signal handler) removes them.
//!
//! Topology set-up runs `ip`, `sysctl` and `ethtool` (bridges, permanent neighbours,
//! offload switches and sysctls that the netlink module does not cover).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::BenchError;

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
    namespaces: BTreeSet<String>,
    groups: BTreeSet<i32>,
    dirs: BTreeSet<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    namespaces: BTreeSet::new(),
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
    let (groups, namespaces, dirs) = {
        let mut r = registry();
        (
            std::mem::take(&mut r.groups),
            std::mem::take(&mut r.namespaces),
            std::mem::take(&mut r.dirs),
        )
    };
    for g in &groups {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGKILL);
    }
    for ns in &namespaces {
        delete_ns(ns);
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

fn delete_ns(ns: &str) {
    if let Ok(o) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
            if let Ok(p) = pid.parse::<i32>() {
                let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
    }
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
}

/// A permanent neighbour entry in namespace `ns`: `ip` on `dev` is [`SINK_MAC`], a MAC
/// nobody owns.
fn to_sink_mac(ns: &str, ip: &str, dev: &str) -> Result<String, BenchError> {
    sh(&[
        "ip",
        "-n",
        ns,
        "neigh",
        "replace",
        ip,
        "lladdr",
        SINK_MAC,
        "dev",
        dev,
        "nud",
        "permanent",
    ])
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

/// The gen, dut and sink namespaces with their veths.
pub struct Topo {
    pub tag: String,
    pub dir: PathBuf,
}

impl Topo {
    pub fn new(tag: &str) -> Result<Topo, BenchError> {
        let dir = std::env::temp_dir().join(tag);
        std::fs::create_dir_all(&dir)
            .map_err(|e| BenchError::Command(format!("creating {}: {e}", dir.display())))?;
        registry().dirs.insert(dir.clone());
        let t = Topo {
            tag: tag.to_string(),
            dir,
        };
        for r in ["gen", "dut", "sink"] {
            let ns = t.ns(r);
            registry().namespaces.insert(ns.clone());
            sh(&["ip", "netns", "add", &ns])?;
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        }
        let (g, d, s) = (t.ns("gen"), t.ns("dut"), t.ns("sink"));
        for (na, a, nb, b) in [
            (&g, "g0", &d, "d0"),
            (&d, "d1", &s, "s0"),
            (&d, "t0", &s, "t1"),
        ] {
            sh(&[
                "ip", "-n", na, "link", "add", a, "type", "veth", "peer", "name", b, "netns", nb,
            ])?;
        }
        for (ns, i) in [
            (&g, "g0"),
            (&d, "d0"),
            (&d, "d1"),
            (&s, "s0"),
            (&d, "t0"),
            (&s, "t1"),
        ] {
            t.sysctl(ns, &format!("net.ipv6.conf.{i}.disable_ipv6=1"))?;
            sh(&["ip", "-n", ns, "link", "set", i, "up"])?;
        }
        for (ns, i) in [(&d, "t0"), (&s, "t1")] {
            sh(&["ip", "-n", ns, "link", "set", i, "mtu", "1600"])?;
        }
        sh(&[
            "ip",
            "-n",
            &d,
            "addr",
            "add",
            &format!("{T_DUT}/24"),
            "dev",
            "t0",
        ])?;
        sh(&[
            "ip",
            "-n",
            &s,
            "addr",
            "add",
            &format!("{T_SINK}/24"),
            "dev",
            "t1",
        ])?;
        // Tunnel packets go to a MAC nobody owns: the sink's kernel counts and drops
        // them on arrival. Addressed to the sink itself, each would be answered with an
        // ICMP protocol unreachable (no GRE/L2TPv3 there), work the veth runs on the
        // DUT's core (a quarter of it, measured with perf).
        to_sink_mac(&d, T_SINK, "t0")?;
        Ok(t)
    }

    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.tag)
    }

    pub fn sysctl(&self, ns: &str, kv: &str) -> Result<(), BenchError> {
        sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", kv]).map(|_| ())
    }

    /// `ip netns exec NS args...` as a command (not started).
    pub fn command(&self, role: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(role)]).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Kernel interface counter (`rx_packets`, `tx_bytes`, ...) of `ifname` in `role`'s
    /// namespace, read from /proc/<pid>/net/dev of no process: via `ip netns exec cat`
    /// of sysfs (which `ip netns exec` remounts for the namespace).
    pub fn counter(&self, role: &str, ifname: &str, name: &str) -> Result<u64, BenchError> {
        let path = format!("/sys/class/net/{ifname}/statistics/{name}");
        let out = sh(&["ip", "netns", "exec", &self.ns(role), "cat", &path])?;
        out.trim()
            .parse()
            .map_err(|_| BenchError::Command(format!("{path}: not a number: {out:?}")))
    }

    pub fn mac(&self, role: &str, ifname: &str) -> Result<String, BenchError> {
        let p = format!("/sys/class/net/{ifname}/address");
        Ok(sh(&["ip", "netns", "exec", &self.ns(role), "cat", &p])?
            .trim()
            .to_string())
    }

    /// Veth offloads (TSO/GSO/GRO/checksum) on all benchmark veths, on or off.
    pub fn offloads(&self, on: bool) -> Result<(), BenchError> {
        let v = if on { "on" } else { "off" };
        for (r, i) in [("gen", "g0"), ("dut", "d0"), ("dut", "d1"), ("sink", "s0")] {
            sh(&[
                "ip",
                "netns",
                "exec",
                &self.ns(r),
                "ethtool",
                "-K",
                i,
                "tso",
                v,
                "gso",
                v,
                "gro",
                v,
                "tx",
                v,
                "rx",
                v,
            ])?;
        }
        Ok(())
    }

    /// Kernel as the DUT: `bridge` (L2) or `forward` (IPv4 forwarding to the sink as a
    /// static neighbour); `None` clears both.
    pub fn kernel(&self, mode: Option<&str>) -> Result<(), BenchError> {
        let d = self.ns("dut");
        let _ = sh(&["ip", "-n", &d, "link", "del", "br0"]);
        let _ = sh(&["ip", "-n", &d, "route", "del", "10.96.0.0/12"]);
        for i in ["d0", "d1"] {
            sh(&["ip", "-n", &d, "addr", "flush", "dev", i])?;
        }
        self.sysctl(&d, "net.ipv4.ip_forward=0")?;
        match mode {
            Some("bridge") => {
                sh(&["ip", "-n", &d, "link", "add", "br0", "type", "bridge"])?;
                self.sysctl(&d, "net.ipv6.conf.br0.disable_ipv6=1")?;
                for i in ["d0", "d1"] {
                    sh(&["ip", "-n", &d, "link", "set", i, "master", "br0"])?;
                }
                sh(&["ip", "-n", &d, "link", "set", "br0", "up"])?;
            }
            Some(_) => {
                sh(&["ip", "-n", &d, "addr", "add", "10.80.1.254/24", "dev", "d0"])?;
                sh(&["ip", "-n", &d, "addr", "add", "10.80.2.254/24", "dev", "d1"])?;
                // Many-flow sources (10.96.0.0/12) are reached back through d0, so
                // reverse-path filtering passes them whatever its setting.
                sh(&[
                    "ip",
                    "-n",
                    &d,
                    "route",
                    "replace",
                    "10.96.0.0/12",
                    "dev",
                    "d0",
                ])?;
                self.sysctl(&d, "net.ipv4.ip_forward=1")?;
                to_sink_mac(&d, "10.80.2.99", "d1")?;
            }
            None => {}
        }
        Ok(())
    }

    /// The TCP ceiling's server end: 10.80.1.2/24 on d0, the generator's veth peer
    /// (removed again by [`Topo::kernel`]).
    pub fn endpoint_on_d0(&self) -> Result<(), BenchError> {
        sh(&[
            "ip",
            "-n",
            &self.ns("dut"),
            "addr",
            "add",
            "10.80.1.2/24",
            "dev",
            "d0",
        ])
        .map(|_| ())
    }

    /// Host addresses for TCP: one L2 segment (`routed == false`) or two subnets routed
    /// through the DUT's .254 addresses.
    pub fn hosts(&self, routed: Option<bool>) -> Result<(), BenchError> {
        let (g, s) = (self.ns("gen"), self.ns("sink"));
        sh(&["ip", "-n", &g, "addr", "flush", "dev", "g0"])?;
        sh(&["ip", "-n", &s, "addr", "flush", "dev", "s0"])?;
        match routed {
            None => {}
            Some(false) => {
                sh(&["ip", "-n", &g, "addr", "add", "10.80.1.1/24", "dev", "g0"])?;
                sh(&["ip", "-n", &s, "addr", "add", "10.80.1.2/24", "dev", "s0"])?;
            }
            Some(true) => {
                sh(&["ip", "-n", &g, "addr", "add", "10.80.1.1/24", "dev", "g0"])?;
                sh(&["ip", "-n", &s, "addr", "add", "10.80.2.2/24", "dev", "s0"])?;
                sh(&[
                    "ip",
                    "-n",
                    &g,
                    "route",
                    "replace",
                    "10.80.2.0/24",
                    "via",
                    "10.80.1.254",
                ])?;
                sh(&[
                    "ip",
                    "-n",
                    &s,
                    "route",
                    "replace",
                    "10.80.1.0/24",
                    "via",
                    "10.80.2.254",
                ])?;
            }
        }
        Ok(())
    }

    /// Pin every process of `role`'s namespace (a UML kernel and its helpers) to `cpu`.
    pub fn pin_all(&self, role: &str, cpu: u32) {
        if let Ok(out) = sh(&["ip", "netns", "pids", &self.ns(role)]) {
            for pid in out.split_whitespace() {
                let _ = sh(&["taskset", "-a", "-p", "-c", &cpu.to_string(), pid]);
            }
        }
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        for r in ["gen", "dut", "sink"] {
            let ns = self.ns(r);
            delete_ns(&ns);
            registry().namespaces.remove(&ns);
        }
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
