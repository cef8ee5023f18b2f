//! Shared pieces of the integration tests: uniquely named network namespaces that are
//! removed pass or fail, guests started and stopped, and real traffic tools (ping,
//! iperf3, trafgen) run inside the namespaces.
//!
//! Every kernel object a test creates lives inside a namespace named
//! `vbt<pid>x<n>-<role>`; deleting the namespace removes its interfaces. The whole
//! suite's leak check (scripts/leakcheck) looks for that prefix afterwards.
#![allow(dead_code)]

pub mod lab;
pub mod uml;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const VECBOX: &str = env!("CARGO_BIN_EXE_vecbox");

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `vecbox ARGS...`: (exit status, stdout then stderr).
pub fn vecbox_out(args: &[&str]) -> (i32, String) {
    let out = Command::new(VECBOX).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `vecbox console UMID CMD...`: (exit status, output).
pub fn vecbox_console(umid: &str, cmd: &[&str]) -> (i32, String) {
    let mut args = vec!["console", umid];
    args.extend_from_slice(cmd);
    vecbox_out(&args)
}

/// Frames port `port` (`vec0`, ...) of guest `umid` received, from the console's
/// `proc stats` (0 when the guest does not answer).
pub fn console_rx(umid: &str, port: &str) -> u64 {
    let (_, out) = vecbox_console(umid, &["proc", "stats"]);
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(port))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Fail loudly when a tool the test needs is missing (CI installs them all).
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(found, "this test needs `{tool}` (install it: see .ci/run)");
}

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "integration tests create network namespaces: run them as root (see README)"
    );
}

/// Run a command, panic with its output on failure.
pub fn run(cmd: &[&str]) -> Output {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A set of namespaces for one test; all removed on drop (with whatever they contain).
pub struct Lab {
    pub tag: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    pub dir: PathBuf,
}

impl Lab {
    pub fn new() -> Lab {
        require_root();
        require_tool("ip");
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tag = format!("vbt{}x{}", std::process::id(), n);
        let dir = std::env::temp_dir().join(&tag);
        std::fs::create_dir_all(&dir).unwrap();
        Lab {
            tag,
            namespaces: Vec::new(),
            children: Vec::new(),
            dir,
        }
    }

    /// Create namespace `<tag>-<role>` with loopback up; returns its name.
    pub fn ns(&mut self, role: &str) -> String {
        let name = format!("{}-{role}", self.tag);
        run(&["ip", "netns", "add", &name]);
        self.namespaces.push(name.clone());
        run(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// veth pair `a` (in `ns_a`) – `b` (in `ns_b`), both up.
    pub fn veth(&self, ns_a: &str, a: &str, ns_b: &str, b: &str) {
        run(&[
            "ip", "-n", ns_a, "link", "add", a, "type", "veth", "peer", "name", b, "netns", ns_b,
        ]);
        run(&["ip", "-n", ns_a, "link", "set", a, "up"]);
        run(&["ip", "-n", ns_b, "link", "set", b, "up"]);
    }

    /// Give `ifname` in `ns` an address (`10.x.y.z/24` form) and bring it up.
    pub fn addr(&self, ns: &str, ifname: &str, cidr: &str) {
        run(&["ip", "-n", ns, "addr", "add", cidr, "dev", ifname]);
        run(&["ip", "-n", ns, "link", "set", ifname, "up"]);
    }

    /// Keep a port of a guest's namespace quiet: no IPv6 on it, so the guest only
    /// forwards the test's own traffic.
    pub fn quiet(&self, ns: &str, ifname: &str) {
        run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{ifname}.disable_ipv6=1"),
        ]);
    }

    /// `ip netns exec ns cmd...`
    pub fn exec(&self, ns: &str, cmd: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(cmd);
        Command::new(full[0]).args(&full[1..]).output().unwrap()
    }

    /// Start a process inside `ns`, owned by the lab (killed on drop).
    pub fn spawn(&mut self, ns: &str, cmd: &[&str]) -> usize {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
        self.children.len() - 1
    }

    /// Ping `ip` from `ns`; true if at least one reply came back.
    pub fn ping(&self, ns: &str, ip: &str, count: u32) -> bool {
        require_tool("ping");
        let out = self.exec(
            ns,
            &["ping", "-c", &count.to_string(), "-i", "0.2", "-W", "2", ip],
        );
        out.status.success()
    }

    /// iperf3 TCP from `ns_c` to a server at `ip` in `ns_s`; bits/s received.
    pub fn iperf3(&mut self, ns_s: &str, ns_c: &str, ip: &str, secs: u32) -> f64 {
        require_tool("iperf3");
        let port = 20000 + (COUNTER.fetch_add(1, Ordering::SeqCst) % 10000) as u16;
        let port_s = port.to_string();
        self.spawn(ns_s, &["iperf3", "-s", "-1", "-B", ip, "-p", &port_s]);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = self.exec(
                ns_c,
                &[
                    "iperf3",
                    "-c",
                    ip,
                    "-p",
                    &port_s,
                    "-t",
                    &secs.to_string(),
                    "-J",
                    "--connect-timeout",
                    "2000",
                ],
            );
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            // iperf3 may exit 0 with {"error": ...} when the server is not up yet.
            if out.status.success() && v.get("error").is_none() {
                let bps = v["end"]["sum_received"]["bits_per_second"]
                    .as_f64()
                    .unwrap_or(0.0);
                assert!(bps > 0.0, "iperf3 {ns_c} -> {ip} moved nothing: {text}");
                return bps;
            }
            assert!(Instant::now() < deadline, "iperf3 failed: {text}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// MAC address of `ifname` in `ns`.
    pub fn mac(&self, ns: &str, ifname: &str) -> String {
        let out = run(&["ip", "-n", ns, "-j", "link", "show", ifname]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["address"].as_str().unwrap().to_string()
    }

    /// Poll counter `name` of `ifname` until it reaches `want` or 5 s pass (a guest
    /// descheduled on a busy machine forwards late); the last value read.
    pub fn counter_reaches(&self, ns: &str, ifname: &str, name: &str, want: u64) -> u64 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let v = self.counter(ns, ifname, name);
            if v >= want || std::time::Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Kernel counter `name` (rx_packets, tx_packets, ...) of `ifname` in `ns`; panics
    /// when it cannot be read (a missing interface or namespace is a failed test, never
    /// a count of 0).
    pub fn counter(&self, ns: &str, ifname: &str, name: &str) -> u64 {
        let path = format!("/sys/class/net/{ifname}/statistics/{name}");
        let out = self.exec(ns, &["cat", &path]);
        // /sys shows the namespace of whoever mounted it: `ip netns exec` remounts sysfs.
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "reading {path} in {ns} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{path} in {ns} is not a number: {text:?}"))
    }

    /// Send `count` 64-byte UDP frames with trafgen from `ifname` in `ns` to `dst_mac`/`dst_ip`.
    pub fn trafgen(
        &self,
        ns: &str,
        ifname: &str,
        dst_mac: &str,
        src_ip: &str,
        dst_ip: &str,
        count: u64,
    ) {
        require_tool("trafgen");
        let conf = self.dir.join(format!("trafgen-{ifname}.cfg"));
        let src_mac = self.mac(ns, ifname);
        std::fs::write(
            &conf,
            format!(
                "{{ eth(da={dst_mac}, sa={src_mac}, type=0x0800), ipv4(saddr={src_ip}, daddr={dst_ip}, ttl=64), udp(sp=9, dp=9), fill(0x41, 18) }}\n"
            ),
        )
        .unwrap();
        let out = self.exec(
            ns,
            &[
                "trafgen",
                "--dev",
                ifname,
                "--conf",
                conf.to_str().unwrap(),
                "--num",
                &count.to_string(),
                "--cpus",
                "1",
                "-q",
            ],
        );
        assert!(
            out.status.success(),
            "trafgen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip")
                .args(["netns", "pids", ns])
                .output()
                .map(|o| {
                    for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                        let _ = Command::new("kill").args(["-9", pid]).status();
                    }
                });
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        // Run directories (~/.uml/UMID) of guests killed before they could remove them.
        if let Some(home) = std::env::var_os("HOME") {
            let base = PathBuf::from(home).join(".uml");
            if let Ok(rd) = std::fs::read_dir(&base) {
                for e in rd.flatten() {
                    // Guests are named `<tag>-...` and UML kernels `<tag>u<n>`.
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name
                        .strip_prefix(&self.tag)
                        .is_some_and(|r| r.starts_with('-') || r.starts_with('u'))
                    {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
    }
}

/// A running `vecbox guest`.
pub struct Guest {
    pub child: Option<Child>,
    pub stats: PathBuf,
    pub stderr: mpsc::Receiver<String>,
    pub ready: String,
    /// The guest's `umid=`: the test's own, or `<lab tag>g<n>` (so that its console
    /// directory carries the lab's prefix).
    pub umid: String,
}

impl Guest {
    /// Start `vecbox guest FUNCTION ARGS` in `ns` and wait for its ready line.
    pub fn start(lab: &Lab, ns: &str, function: &str, args: &[&str]) -> Guest {
        Self::start_with(lab, ns, function, args, &[], None)
    }

    /// As [`Guest::start`], with environment variables and an optional wrapper command
    /// (e.g. `setpriv ...`) in front of vecbox.
    pub fn start_with(
        lab: &Lab,
        ns: &str,
        function: &str,
        args: &[&str],
        env: &[(&str, &str)],
        wrapper: Option<&[&str]>,
    ) -> Guest {
        Self::try_start(lab, ns, function, args, env, wrapper)
            .unwrap_or_else(|e| panic!("guest did not start: {e}"))
    }

    /// Start and wait for ready; `Err(stderr)` if it exits first.
    pub fn try_start(
        lab: &Lab,
        ns: &str,
        function: &str,
        args: &[&str],
        env: &[(&str, &str)],
        wrapper: Option<&[&str]>,
    ) -> Result<Guest, String> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let stats = lab.dir.join(format!("guest{n}.json"));
        let umid = args
            .iter()
            .find_map(|a| a.strip_prefix("umid="))
            .map_or_else(|| format!("{}g{n}", lab.tag), str::to_string);
        let vecbox = wrapper
            .map(|w| w.last().copied().unwrap_or(VECBOX))
            .unwrap_or(VECBOX);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]);
        if let Some(w) = wrapper {
            cmd.args(&w[..w.len() - 1]);
        }
        cmd.arg(vecbox).arg("guest").arg(function).args(args);
        if !args.iter().any(|a| a.starts_with("umid=")) {
            cmd.arg(format!("umid={umid}"));
        }
        cmd.arg(format!("stats={}", stats.display()));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(line) if line.contains(" ready: ") => {
                    return Ok(Guest {
                        child: Some(child),
                        stats,
                        stderr: rx,
                        ready: line,
                        umid,
                    });
                }
                Ok(line) => seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = child.kill();
        let status = child.wait().ok();
        while let Ok(line) = rx.try_recv() {
            seen.push(line);
        }
        Err(format!("{status:?}: {}", seen.join("\n")))
    }

    /// SIGTERM the guest, wait, and return its JSON report.
    pub fn stop(mut self) -> serde_json::Value {
        let mut child = self.child.take().unwrap();
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        // `ip netns exec` execs vecbox in place, so the child pid is vecbox's.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let status = child.wait().unwrap();
        assert!(status.success(), "guest exited with {status}");
        let text = std::fs::read_to_string(&self.stats).expect("guest stats file");
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for Guest {
    /// A test that ends without `stop` (it failed): SIGTERM, so that the guest removes
    /// its console directory itself; SIGKILL after 3 s, and remove the directory.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
            if let Some(home) = std::env::var_os("HOME") {
                let _ = std::fs::remove_dir_all(Path::new(&home).join(".uml").join(&self.umid));
            }
        }
    }
}

/// Port `i`'s counter `name` from a guest report.
pub fn port_stat(report: &serde_json::Value, i: usize, name: &str) -> u64 {
    report["ports"][i]["stats"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

/// Port `i`'s drops for `reason` from a guest report (every reason is in the report:
/// a name that is not is a mistake in the test).
pub fn port_drops(report: &serde_json::Value, i: usize, reason: &str) -> u64 {
    report["ports"][i]["drops"][reason]
        .as_u64()
        .unwrap_or_else(|| panic!("no drop reason {reason:?} for port {i} in {report}"))
}

/// All of port `i`'s drops, whatever the reason.
pub fn port_drops_total(report: &serde_json::Value, i: usize) -> u64 {
    report["ports"][i]["drops"]
        .as_object()
        .unwrap_or_else(|| panic!("no drops for port {i} in {report}"))
        .values()
        .map(|n| n.as_u64().unwrap_or(0))
        .sum()
}

/// The network function's value `key` from a guest report's `function_state`, as text
/// (counters are JSON integers there, composite values strings).
pub fn function_state(report: &serde_json::Value, key: &str) -> String {
    match &report["function_state"][key] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => panic!("no {key} in function_state of {report}"),
    }
}

/// A temporary file path in the lab's directory.
pub fn lab_file(lab: &Lab, name: &str) -> PathBuf {
    lab.dir.join(name)
}

/// `true` if `path` exists.
pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// Kill the process group `child` leads (it was spawned with `process_group(0)`) and
/// reap it. For trafgen: the workers it forks outlive a killed parent and would go on
/// sending into the next measurement.
pub fn stop_group(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
}

/// Whether this benchmark binary was started by `cargo bench` (with `--bench`); under
/// `cargo test` it says how to run it and does nothing else.
pub fn bench_mode(name: &str) -> bool {
    if std::env::args().any(|a| a == "--bench") {
        return true;
    }
    println!("{name}: a benchmark; run it with `cargo bench --bench {name}` (as root)");
    false
}

/// Median of benchmark samples (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Repetitions of a benchmark: `VECBOX_BENCH_REPS`, else `default`.
pub fn bench_reps(default: usize) -> usize {
    std::env::var("VECBOX_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
