//! Multi-host labs on three simulated hosts (scripts/sim-hosts: network namespaces on
//! an underlay, h3 behind a 1400-byte hop, each with its own OpenSSH server), in manual
//! mode (`up FILE --host NAME` and `down --lab NAME` run on each host with its own
//! VECBOX_RUN_DIR and HOME) and in SSH mode (`up FILE` on the controller namespace,
//! which drives every host through the real `ssh` client and sshd).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VECBOX: &str = env!("CARGO_BIN_EXE_vecbox");

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sim-hosts")
}

/// The simulated hosts and the labs started on them; everything goes on drop.
struct Sim {
    prefix: String,
    labs: Vec<(String, Vec<&'static str>)>,
}

impl Sim {
    fn new() -> Sim {
        // One set of hosts per test: the tests of this file run in parallel in one
        // process, and other test binaries may run alongside (pid in the prefix).
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("vbt{}m{n}", std::process::id());
        let out = Command::new(script())
            .args(["up", &prefix])
            .env("VECBOX", VECBOX)
            .output()
            .expect("scripts/sim-hosts");
        let sim = Sim {
            prefix,
            labs: Vec::new(),
        };
        assert!(out.status.success(), "sim-hosts up: {}", text(&out));
        sim
    }

    /// Run vecbox on simulated host `host`.
    fn vecbox(&self, host: &str, args: &[&str]) -> Output {
        Command::new(script())
            .args(["exec", &self.prefix, host, VECBOX])
            .args(args)
            .output()
            .expect("vecbox")
    }

    fn dir(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/{}", self.prefix))
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        for (lab, hosts) in &self.labs {
            for h in hosts {
                let _ = self.vecbox(h, &["down", "--lab", lab]);
            }
        }
        let _ = Command::new(script()).args(["down", &self.prefix]).output();
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn in_ns(ns: &str, cmd: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .output()
        .expect("ip netns exec")
}

fn lab_file(sim: &Sim, lab: &str) -> PathBuf {
    let hosts = concat!(
        "  h1: {address: 10.250.0.1}\n",
        "  h2: {address: 10.250.0.2}\n",
        "  h3: {address: 10.250.1.3, underlay_mtu: 1400}\n",
    );
    write_lab(sim, lab, hosts)
}

/// The lab of [`lab_file`] with `ssh:` on every host (`ssh[i]` for host i+1) and the
/// simulation's keys in `ssh_options:`; h3's `underlay_mtu` is `h3_mtu`.
fn ssh_lab_file(sim: &Sim, lab: &str, ssh: [&str; 3], h3_mtu: u32) -> PathBuf {
    let opts = std::fs::read_to_string(sim.dir().join("ssh/ssh_options")).unwrap();
    let opts: Vec<String> = opts.lines().map(|l| format!("'{l}'")).collect();
    let opts = opts.join(", ");
    let hosts = format!(
        concat!(
            "  h1: {{address: 10.250.0.1, ssh: '{}', ssh_options: [{o}]}}\n",
            "  h2: {{address: 10.250.0.2, ssh: '{}', ssh_options: [{o}]}}\n",
            "  h3: {{address: 10.250.1.3, underlay_mtu: {m}, ssh: '{}', ssh_options: [{o}]}}\n",
        ),
        ssh[0],
        ssh[1],
        ssh[2],
        o = opts,
        m = h3_mtu
    );
    write_lab(sim, lab, &hosts)
}

const SSH: [&str; 3] = ["root@10.250.0.1", "root@10.250.0.2", "root@10.250.1.3"];

fn write_lab(sim: &Sim, lab: &str, hosts: &str) -> PathBuf {
    let dir = sim.dir().join("labs");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join(format!("{lab}.yaml"));
    std::fs::write(
        &f,
        format!(
            "\
name: {lab}
hosts:
{hosts}nodes:
  a: {{kind: xconnect}}
  b: {{kind: bridge, host: h3}}
  c: {{kind: host, interfaces: {{eth0: {{addresses: [10.0.0.1/24]}}}}}}
  d: {{kind: host, host: h3, interfaces: {{eth0: {{addresses: [10.0.0.2/24]}}}}}}
  e: {{kind: xconnect, host: h2}}
  f: {{kind: host, host: h2, interfaces: {{eth0: {{addresses: [10.0.0.3/24]}}}}}}
links:
  - {{endpoints: [c:eth0, a:p0]}}
  - {{endpoints: [a:p1, b:p1]}}
  - {{endpoints: [b:p0, d:eth0]}}
  - {{endpoints: [b:p2, e:p1], type: gre}}
  - {{endpoints: [e:p0, f:eth0]}}
"
        ),
    )
    .unwrap();
    f
}

fn up_everywhere(sim: &mut Sim, lab: &str) -> PathBuf {
    let f = lab_file(sim, lab);
    up_manual(sim, lab, &f);
    f
}

/// `up FILE --host NAME --detach` on each host.
fn up_manual(sim: &mut Sim, lab: &str, f: &Path) {
    let hosts = vec!["h1", "h2", "h3"];
    sim.labs.push((lab.to_string(), hosts.clone()));
    for h in hosts {
        let o = sim.vecbox(
            h,
            &[
                "up",
                f.to_str().unwrap(),
                "--host",
                h,
                "--detach",
                "--quiet",
            ],
        );
        assert!(o.status.success(), "up on {h}: {}", text(&o));
        assert!(
            text(&o).contains(&format!("is up on host {h}")),
            "{}",
            text(&o)
        );
    }
}

fn ping(ns: &str, args: &[&str], to: &str) -> Output {
    let mut cmd = vec!["ping", "-n", "-W", "3"];
    cmd.extend_from_slice(args);
    cmd.push(to);
    in_ns(ns, &cmd)
}

/// Packets received on the tunnel port `vec1` of guest `umid` on `host`.
fn tunnel_rx(sim: &Sim, host: &str, umid: &str) -> u64 {
    let o = sim.vecbox(host, &["console", umid, "proc", "stats"]);
    let t = text(&o);
    let line = t
        .lines()
        .find(|l| l.starts_with("vec1 "))
        .unwrap_or_else(|| panic!("no vec1 in {t}"));
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// ICMP messages received in namespace `ns` (`Icmp: InMsgs` of /proc/net/snmp).
fn icmp_in(ns: &str) -> u64 {
    let o = in_ns(ns, &["cat", "/proc/net/snmp"]);
    let t = text(&o);
    let mut rows = t.lines().filter(|l| l.starts_with("Icmp: "));
    let (names, values) = (rows.next().unwrap(), rows.next().unwrap());
    let i = names
        .split_whitespace()
        .position(|n| n == "InMsgs")
        .unwrap_or_else(|| panic!("no InMsgs in {t}"));
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

#[test]
fn three_hosts_manual_mode() {
    let mut sim = Sim::new();
    let pid = std::process::id();
    let (l1, l2) = (format!("vbt{pid}x"), format!("vbt{pid}y"));
    let file = up_everywhere(&mut sim, &l1);
    // Every host computed the same lock, written beside the file.
    let lock = std::fs::read_to_string(file.with_file_name(format!("{l1}.lock.json"))).unwrap();
    assert!(
        lock.contains("\"a:p1|b:p1\"") && lock.contains("cookies"),
        "{lock}"
    );

    // Node namespaces are made only on their host's vecbox (all in this machine's
    // /run/netns), each host's state in its own run directory.
    for (h, n) in [("h1", "a"), ("h3", "b"), ("h2", "e")] {
        let st = sim.dir().join(h).join("run").join(&l1).join("plan.json");
        assert!(st.exists(), "{}", st.display());
        let s = sim.vecbox(h, &["status", &l1]);
        assert!(text(&s).contains(n), "status on {h}: {}", text(&s));
    }
    let (c, d, f) = (format!("{l1}.c"), format!("{l1}.d"), format!("{l1}.f"));
    // h1 → h3 (L2TPv3/UDP through the 1400 hop) and h1 → h2 via the bridge on h3 (GRE).
    let o = ping(&c, &["-c", "3", "-i", "0.3"], "10.0.0.2");
    assert!(o.status.success(), "{}", text(&o));
    let o = ping(&c, &["-c", "3", "-i", "0.3"], "10.0.0.3");
    assert!(o.status.success(), "{}", text(&o));

    // The L2 domain spanning the hosts gets the resolved MTU: 1400 − 58.
    for ns in [&c, &d, &f] {
        let o = in_ns(ns, &["cat", "/sys/class/net/eth0/mtu"]);
        assert_eq!(text(&o).trim(), "1342", "{ns}");
    }
    // DF pings at the MTU pass; one byte more is refused and counted by the sender.
    let o = ping(&c, &["-c", "2", "-M", "do", "-s", "1314"], "10.0.0.2");
    assert!(o.status.success(), "{}", text(&o));
    let o = ping(&c, &["-c", "2", "-M", "do", "-s", "1315"], "10.0.0.2");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("+2 errors") || text(&o).contains("too long"),
        "{}",
        text(&o)
    );

    // A TCP stream across hosts.
    let srv = Command::new("ip")
        .args(["netns", "exec", &d, "iperf3", "-s", "-1", "-p", "5299"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 (Debian package iperf3, scripts/setup)");
    let mut srv = scopeguard(srv);
    // iperf3 -J may exit 0 with only an `error` in its JSON (a refused connect before
    // the server listens): that is a retry, not a result.
    let mut out = None;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while out.is_none() && std::time::Instant::now() < deadline {
        let o = in_ns(
            &c,
            &["iperf3", "-c", "10.0.0.2", "-p", "5299", "-t", "2", "-J"],
        );
        let failed = serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .map_or(true, |v| v.get("error").is_some());
        if o.status.success() && !failed {
            out = Some(o);
        } else {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    let o = out.expect("iperf3 client never connected");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let bytes = v["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    assert!(bytes > 100_000, "{}", text(&o));
    let _ = srv.0.wait();

    // A second lab on the same hosts, same inner addresses: its frames never reach
    // the first lab's hosts (other sessions, cookies and ports). The first lab's
    // tunnels are not silent meanwhile (its hosts' own IPv6 neighbour and multicast
    // chatter), so what is counted is ICMPv4, which only the second lab sends: a leaked
    // echo request would reach the first lab's d, a leaked reply its c.
    let lab1_hosts = [&c, &d, &f];
    let before: Vec<u64> = lab1_hosts.iter().map(|ns| icmp_in(ns)).collect();
    up_everywhere(&mut sim, &l2);
    let o = ping(&format!("{l2}.c"), &["-c", "5", "-i", "0.2"], "10.0.0.2");
    assert!(o.status.success(), "{}", text(&o));
    let o = ping(&format!("{l2}.c"), &["-c", "5", "-i", "0.2"], "10.0.0.3");
    assert!(o.status.success(), "{}", text(&o));
    let after: Vec<u64> = lab1_hosts.iter().map(|ns| icmp_in(ns)).collect();
    assert_eq!(after, before, "ICMP in first lab's c, d, f");
    assert!(tunnel_rx(&sim, "h1", &format!("{l2}.a")) >= 10);

    // `down` on every host leaves nothing of either lab.
    for lab in [&l1, &l2] {
        for h in ["h1", "h2", "h3"] {
            let o = sim.vecbox(h, &["down", "--lab", lab]);
            assert!(o.status.success(), "down on {h}: {}", text(&o));
        }
    }
    sim.labs.clear();
    nothing_left(&sim, &l1);
    nothing_left(&sim, &l2);
}

#[test]
fn bad_host_names_create_nothing() {
    let sim = Sim::new();
    let lab = format!("vbt{}z", std::process::id());
    let f = lab_file(&sim, &lab);
    let o = sim.vecbox(
        "h1",
        &["up", f.to_str().unwrap(), "--host", "h9", "--detach"],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("has no host `h9` (hosts: h1, h2, h3)"),
        "{}",
        text(&o)
    );
    let run = sim.dir().join("h1").join("run");
    assert_eq!(std::fs::read_dir(&run).map_or(0, |r| r.count()), 0);

    // `apply` changes one machine's lab: a multi-host file is refused, nothing made.
    for args in [
        vec!["apply", f.to_str().unwrap()],
        vec!["apply", "--dry-run", f.to_str().unwrap()],
    ] {
        let o = sim.vecbox("h1", &args);
        assert!(!o.status.success(), "{args:?}: {}", text(&o));
        assert!(
            text(&o).contains(&format!("lab `{lab}` spans hosts (h1, h2, h3)"))
                && text(&o).contains("--host NAME"),
            "{}",
            text(&o)
        );
        assert_eq!(std::fs::read_dir(&run).map_or(0, |r| r.count()), 0);
    }
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!text(&ns).contains(&lab), "{}", text(&ns));
}

/// Lab state that must not depend on how the lab was brought up: every host's saved
/// plan (names, ids, MACs, sessions, cookies, ports, MTUs; without the path of the
/// file it was read from) and the node and link names its `status --json` shows.
fn identity(sim: &Sim, lab: &str) -> Vec<(String, serde_json::Value, Vec<String>)> {
    let mut out = Vec::new();
    for h in ["h1", "h2", "h3"] {
        let path = sim.dir().join(h).join("run").join(lab).join("plan.json");
        let saved =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut plan: serde_json::Value = serde_json::from_str(&saved).unwrap();
        plan.as_object_mut().unwrap().remove("file");
        let o = sim.vecbox(h, &["status", lab, "--json"]);
        assert!(o.status.success(), "status on {h}: {}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let st = &v[0]["state"];
        let mut names: Vec<String> = ["nodes", "links"]
            .iter()
            .flat_map(|k| st[k].as_array().cloned().unwrap_or_default())
            .map(|n| n["name"].as_str().unwrap_or_default().to_string())
            .collect();
        names.sort();
        assert!(!names.is_empty(), "status on {h}: {v}");
        out.push((h.to_string(), plan, names));
    }
    out
}

/// Nothing of lab `lab` on any simulated host: no namespace, empty run directories.
fn nothing_left(sim: &Sim, lab: &str) {
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left: Vec<String> = text(&ns)
        .lines()
        .filter(|l| l.starts_with(&format!("{lab}.")))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    for h in ["h1", "h2", "h3"] {
        let run = sim.dir().join(h).join("run");
        let n = std::fs::read_dir(&run).map_or(0, |r| r.count());
        assert_eq!(n, 0, "{} not empty", run.display());
    }
    let procs = Command::new("pgrep")
        .args(["-f", &format!("umid={lab}")])
        .output()
        .unwrap();
    assert!(text(&procs).trim().is_empty(), "guests: {}", text(&procs));
}

#[test]
fn ssh_mode_builds_the_manual_lab() {
    let mut sim = Sim::new();
    let lab = format!("vbt{}s", std::process::id());
    let f = ssh_lab_file(&sim, &lab, SSH, 1400);
    let file = f.to_str().unwrap();
    sim.labs.push((lab.clone(), vec!["h1", "h2", "h3"]));

    // The controller (a fourth namespace without a lab of its own) drives all three
    // hosts through ssh and their sshd.
    let o = sim.vecbox("ctl", &["up", file]);
    assert!(o.status.success(), "up over ssh: {}", text(&o));
    assert!(
        text(&o).contains(&format!("lab `{lab}` is up on 3 hosts (h1, h2, h3)")),
        "{}",
        text(&o)
    );
    // Each host got the file and the lock in its own home, and runs its own part.
    for h in ["h1", "h2", "h3"] {
        let home = sim.dir().join(h).join(".vecbox/labs").join(&lab);
        assert!(
            home.join(format!("{lab}.yaml")).exists(),
            "{}",
            home.display()
        );
        assert!(home.join(format!("{lab}.lock.json")).exists());
    }
    let ctl_run = sim.dir().join("ctl/run");
    assert!(
        !ctl_run.join(&lab).exists(),
        "the controller built a lab itself"
    );
    // Across hosts: h1 → h3 (L2TPv3 through the 1400 hop), h1 → h2 (via GRE from h3).
    let c = format!("{lab}.c");
    for to in ["10.0.0.2", "10.0.0.3"] {
        let o = ping(&c, &["-c", "3", "-i", "0.3"], to);
        assert!(o.status.success(), "{}", text(&o));
    }
    // status from the controller: every host's part, labelled by host.
    let o = sim.vecbox("ctl", &["status", &lab, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let hosts: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["h1", "h2", "h3"], "{v}");
    let o = sim.vecbox("ctl", &["status", &lab]);
    assert!(
        text(&o).contains("host `h3` (root@10.250.1.3):"),
        "{}",
        text(&o)
    );
    // exec reaches a node on another host, with its exit status.
    let o = sim.vecbox(
        "ctl",
        &["exec", &lab, "d", "--", "cat", "/sys/class/net/eth0/mtu"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(text(&o).trim(), "1342");
    let o = sim.vecbox("ctl", &["exec", &lab, "f", "--", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    let over_ssh = identity(&sim, &lab);

    // down from the controller leaves nothing on any host, and no record.
    let o = sim.vecbox("ctl", &["down", "--lab", &lab]);
    assert!(o.status.success(), "down over ssh: {}", text(&o));
    assert!(text(&o).contains("[h3] lab"), "{}", text(&o));
    nothing_left(&sim, &lab);
    // No record and no ssh connection (control socket) left on the controller.
    assert!(!ctl_run.join(".hosts").exists());

    // The same file in manual mode, with the lock removed so every host computes its
    // allocations afresh: the same lab, value for value.
    std::fs::remove_file(f.with_file_name(format!("{lab}.lock.json"))).unwrap();
    up_manual(&mut sim, &lab, &f);
    let manual = identity(&sim, &lab);
    for (s, m) in over_ssh.iter().zip(&manual) {
        assert_eq!(s.0, m.0);
        assert_eq!(
            s.1, m.1,
            "plan on {} differs between SSH and manual mode",
            s.0
        );
        assert_eq!(s.2, m.2, "status names on {}", s.0);
    }
    for h in ["h1", "h2", "h3"] {
        let o = sim.vecbox(h, &["down", "--lab", &lab]);
        assert!(o.status.success(), "{}", text(&o));
    }
    sim.labs.clear();
    nothing_left(&sim, &lab);
}

#[test]
fn ssh_preflight_failures_create_nothing() {
    let mut sim = Sim::new();
    let lab = format!("vbt{}p", std::process::id());
    sim.labs.push((lab.clone(), vec!["h1", "h2", "h3"]));
    // No record of the lab, no ssh connection left open on the controller.
    let no_record = |sim: &Sim| {
        let ctl = sim.dir().join("ctl/run/.hosts");
        assert!(!ctl.exists(), "{}", ctl.display());
    };

    // h2 cannot be reached (nothing listens on that port): ssh's own words, the host
    // named, nothing made anywhere.
    let f = ssh_lab_file(&sim, &lab, [SSH[0], "root@10.250.0.2:2222", SSH[2]], 1400);
    let o = sim.vecbox("ctl", &["up", f.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("host `h2`: ssh root@10.250.0.2:2222 failed: ssh: connect to host 10.250.0.2 port 2222: Connection refused"),
        "{t}"
    );
    assert!(t.contains("nothing was created on any host"), "{t}");
    nothing_left(&sim, &lab);
    no_record(&sim);

    // h3 runs another vecbox version: refused before anything is built.
    let bin = sim.dir().join("h3/bin/vecbox");
    std::fs::remove_file(&bin).unwrap();
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\n[ \"$1\" = --version ] && {{ echo 'vecbox 0.0.1-other'; exit 0; }}\nexec {VECBOX} \"$@\"\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = ssh_lab_file(&sim, &lab, SSH, 1400);
    let o = sim.vecbox("ctl", &["up", f.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains(&format!(
            "host `h3`: runs `vecbox 0.0.1-other`, this controller `vecbox {}`",
            env!("CARGO_PKG_VERSION")
        )),
        "{t}"
    );
    nothing_left(&sim, &lab);
    no_record(&sim);
    std::fs::remove_file(&bin).unwrap();
    std::os::unix::fs::symlink(VECBOX, &bin).unwrap();

    // h3 claims a 1500-byte underlay behind the 1400-byte hop: the preflight's probe
    // (h1 → h3 learns 1400 from the router, h3 from its own interface) refuses it.
    let f = ssh_lab_file(&sim, &lab, SSH, 1500);
    let o = sim.vecbox("ctl", &["up", f.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("host `h1`: ")
            && t.contains("(10.250.1.3) carries 1400 bytes, less than underlay_mtu 1500"),
        "{t}"
    );
    nothing_left(&sim, &lab);
    no_record(&sim);

    // Every host passes the preflight but h3 cannot build its part (a namespace of the
    // lab's name is already there, not vecbox's): h1 and h2, already up, are taken down
    // again; the error names the host and the object.
    let f = ssh_lab_file(&sim, &lab, SSH, 1400);
    let squatter = format!("{lab}.d");
    let o = Command::new("ip")
        .args(["netns", "add", &squatter])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = sim.vecbox("ctl", &["up", f.to_str().unwrap()]);
    let _ = Command::new("ip")
        .args(["netns", "del", &squatter])
        .output();
    assert!(!o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("host `h3`: ") && t.contains(&squatter), "{t}");
    assert!(
        t.contains(&format!("taking lab `{lab}` down on every host")),
        "{t}"
    );
    for h in ["h1", "h2"] {
        assert!(t.contains(&format!("[{h}] lab `{lab}` down")), "{t}");
    }
    nothing_left(&sim, &lab);
    no_record(&sim);
}

/// Kills a child on drop.
struct Guard(std::process::Child);

fn scopeguard(c: std::process::Child) -> Guard {
    Guard(c)
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
