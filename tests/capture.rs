//! `vecbox capture` and `vecbox extcap` against real labs, with Debian's tshark as the
//! reader: files open without malformed packets and show the expected frames with the
//! right interface names, directions and packet ids; tshark lists and captures lab
//! links through the installed extcap; GRE and BESS links show their inner Ethernet
//! frames; host-host veths are captured by packet socket; bad filters and unknown
//! names get their messages; a slow reader makes counted drops while forwarding goes
//! on; a lab going down ends a capture cleanly.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::lab::{TestLab, vecbox};
use common::{Guest, Lab, VECBOX, require_tool};

/// A running `vecbox capture`, its stderr collected line by line.
struct Capture {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Capture {
    /// Start `vecbox capture ARGS` (stdout piped when `pipe`) and wait until it says
    /// what it captures (every source has started then).
    fn start(args: &[&str], pipe: bool) -> Capture {
        let mut child = Command::new(VECBOX)
            .arg("capture")
            .args(args)
            .stdin(Stdio::null())
            .stdout(if pipe { Stdio::piped() } else { Stdio::null() })
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut c = Capture {
            child,
            lines: rx,
            seen: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.seen.iter().any(|l| l.starts_with("capturing ")) {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("capture {args:?} did not start: {:?}", c.seen));
            match c.lines.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(l) => c.seen.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => panic!("capture {args:?} exited: {:?}", c.seen),
            }
        }
        c
    }

    /// Read the whole stream from stdout, then wait as [`Capture::wait`] does.
    fn stream(mut self, secs: u64) -> (i32, String, Vec<u8>) {
        let mut stream = Vec::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut stream)
            .unwrap();
        let (code, err) = self.wait(secs);
        (code, err, stream)
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, sig).unwrap();
    }

    /// Wait for the exit (at most `secs`); (status code, all of stderr).
    fn wait(mut self, secs: u64) -> (i32, String) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("capture did not end within {secs} s: {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(l);
        }
        (status.code().unwrap_or(-1), self.seen.join("\n"))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tshark -r FILE -T fields -e F...` (`-` reads `input`): one row per frame.
fn fields(file: &Path, input: Option<&[u8]>, f: &[&str]) -> Vec<Vec<String>> {
    require_tool("tshark");
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "separator=|"]);
    for x in f {
        cmd.args(["-e", x]);
    }
    let out = match input {
        None => cmd.output().unwrap(),
        Some(data) => {
            let mut c = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = c.stdin.take().unwrap();
            let data = data.to_vec();
            let w = std::thread::spawn(move || {
                let _ = std::io::Write::write_all(&mut stdin, &data);
            });
            let out = c.wait_with_output().unwrap();
            w.join().unwrap();
            out
        }
    };
    assert!(
        out.status.success(),
        "tshark -r {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

/// tshark's expert info of `file` at error level (malformed packets are errors).
fn expert_errors(file: &Path) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-q", "-z", "expert,error"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut bad = String::new();
    if text.contains("Malformed") || text.contains("Errors (") {
        bad = text;
    }
    bad
}

/// One interface statistics block, read back by hand.
#[derive(Debug, Default, Clone)]
struct Isb {
    iface: u32,
    received: u64,
    dropped: u64,
    accepted: Option<u64>,
    delivered: Option<u64>,
    comment: Option<String>,
}

/// The interface names and the statistics blocks of a little-endian pcapng stream.
fn blocks(data: &[u8]) -> (Vec<String>, Vec<Isb>, usize) {
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
    let mut names = Vec::new();
    let mut isbs = Vec::new();
    let mut epbs = 0;
    let mut off = 0;
    while off + 12 <= data.len() {
        let (kind, len) = (u32_at(off), u32_at(off + 4) as usize);
        assert!(
            len >= 12 && len % 4 == 0 && off + len <= data.len(),
            "block at {off}"
        );
        let body = &data[off + 8..off + len - 4];
        let opts_at = match kind {
            1 => 8,
            5 => 12,
            6 => {
                epbs += 1;
                usize::MAX
            }
            _ => usize::MAX,
        };
        if opts_at != usize::MAX {
            let mut isb = Isb {
                iface: u32::from_le_bytes(body[0..4].try_into().unwrap()),
                ..Isb::default()
            };
            let mut o = opts_at;
            while o + 4 <= body.len() {
                let code = u16::from_le_bytes([body[o], body[o + 1]]);
                let n = u16::from_le_bytes([body[o + 2], body[o + 3]]) as usize;
                if code == 0 {
                    break;
                }
                let v = &body[o + 4..o + 4 + n];
                let u64v = || u64::from_le_bytes(v[..8].try_into().unwrap());
                match (kind, code) {
                    (1, 2) => names.push(String::from_utf8_lossy(v).into_owned()),
                    (5, 1) => isb.comment = Some(String::from_utf8_lossy(v).into_owned()),
                    (5, 4) => isb.received = u64v(),
                    (5, 5) => isb.dropped = u64v(),
                    (5, 6) => isb.accepted = Some(u64v()),
                    (5, 8) => isb.delivered = Some(u64v()),
                    _ => {}
                }
                o += 4 + n.div_ceil(4) * 4;
            }
            if kind == 5 {
                isbs.push(isb);
            }
        }
        off += len;
    }
    (names, isbs, epbs)
}

/// The last statistics block of each interface.
fn final_stats(isbs: &[Isb]) -> Vec<Isb> {
    let n = isbs.iter().map(|i| i.iface + 1).max().unwrap_or(0);
    (0..n)
        .filter_map(|i| isbs.iter().rev().find(|b| b.iface == i).cloned())
        .collect()
}

/// Ping in the background from `node` for a while.
fn pinger(lab: &TestLab, node: &str, ip: &str, count: u32) -> Child {
    Command::new(VECBOX)
        .args(["exec", &lab.name, node, "--", "ping", "-c"])
        .arg(count.to_string())
        .args(["-i", "0.2", ip])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn stop(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A short TCP exchange to the quickstart server's port 5201 (iperf3).
fn tcp_5201(lab: &TestLab) {
    let server = Command::new(VECBOX)
        .args([
            "exec", &lab.name, "server", "--", "iperf3", "-s", "-1", "-B", "10.0.0.2",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = lab.exec(
            "client",
            &[
                "iperf3",
                "-c",
                "10.0.0.2",
                "-n",
                "64K",
                "--connect-timeout",
                "2000",
            ],
        );
        if out.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "iperf3: {}", text(&out));
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = common::lab::reap(server);
}

/// The quickstart lab: a capture of both sides of the firewall's inside link (one end
/// on the guest, one facing it) to a file, ended by SIGINT; then `--point both` into a
/// pipe; bad names and filters; and the lab going down under a running capture.
#[test]
fn quickstart_capture_files_pipes_errors_and_lab_down() {
    require_tool("tshark");
    require_tool("iperf3");
    let lab = TestLab::from_repo("quickstart.yaml");
    lab.up();
    assert!(lab.ping("client", "10.0.0.2"));
    let file = lab.dir.join("inside.pcapng");
    let cap = Capture::start(
        &[
            &lab.name,
            "fw:inside",
            "client:eth0",
            "-f",
            "icmp or tcp port 5201",
            "-w",
            file.to_str().unwrap(),
        ],
        false,
    );
    assert!(lab.ping("client", "10.0.0.2"));
    tcp_5201(&lab);
    cap.signal(nix::sys::signal::Signal::SIGINT);
    let (code, err) = cap.wait(20);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("interrupted (SIGINT)"), "{err}");
    assert!(err.contains("0 dropped"), "{err}");

    let inside = format!("{}/fw:inside", lab.name);
    let client = format!("{}/client:eth0", lab.name);
    let rows = fields(
        &file,
        None,
        &[
            "frame.interface_name",
            "frame.p2p_dir",
            "icmp.type",
            "tcp.dstport",
            "tcp.flags.syn",
            "tcp.flags.ack",
            "frame.packet_id",
        ],
    );
    let has = |iface: &str, dir: &str, pred: &dyn Fn(&[String]) -> bool| {
        rows.iter().any(|r| r[0] == iface && r[1] == dir && pred(r))
    };
    // Echo requests enter the firewall on inside (inbound) and leave the client
    // (outbound); replies the other way.
    let request = |r: &[String]| r[2] == "8";
    let reply = |r: &[String]| r[2] == "0";
    assert!(has(&inside, "1", &request), "{rows:?}");
    assert!(has(&client, "0", &request), "{rows:?}");
    assert!(has(&inside, "0", &reply), "{rows:?}");
    assert!(has(&client, "1", &reply), "{rows:?}");
    let syn = |r: &[String]| r[3] == "5201" && r[4] == "1" && r[5] == "0";
    assert!(has(&inside, "1", &syn), "TCP SYN to 5201: {rows:?}");
    assert!(has(&client, "0", &syn), "TCP SYN to 5201: {rows:?}");
    assert!(rows.iter().all(|r| !r[6].is_empty()), "packet ids");
    assert!(
        rows.iter()
            .all(|r| r[2] == "8" || r[2] == "0" || !r[3].is_empty()),
        "the filter let through only ICMP and TCP 5201: {rows:?}"
    );
    assert_eq!(expert_errors(&file), "", "malformed frames");
    let data = std::fs::read(&file).unwrap();
    let (names, isbs, epbs) = blocks(&data);
    assert_eq!(names, vec![inside.clone(), client.clone()]);
    assert_eq!(epbs, rows.len());
    let last = final_stats(&isbs);
    assert_eq!(last.len(), 2);
    for s in &last {
        assert_eq!(
            s.comment.as_deref(),
            Some("capture ended: interrupted (SIGINT)")
        );
        assert_eq!(s.dropped, 0);
        let written = rows
            .iter()
            .filter(|r| r[0] == names[s.iface as usize])
            .count() as u64;
        assert_eq!(s.delivered, Some(written), "{s:?}");
        assert!(s.received >= written, "{s:?}");
    }

    // Both points into a pipe: two interfaces per end, the copies share a packet id.
    let p = pinger(&lab, "client", "10.0.0.2", 20);
    let cap = Capture::start(
        &[
            &lab.name,
            "fw:inside",
            "--point",
            "both",
            "-f",
            "icmp",
            "-c",
            "8",
            "-w",
            "-",
        ],
        true,
    );
    let (code, err, stream) = cap.stream(20);
    stop(p);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("8 frames captured"), "{err}");
    let rows = fields(
        Path::new("-"),
        Some(&stream),
        &["frame.interface_name", "frame.packet_id", "icmp.type"],
    );
    assert_eq!(rows.len(), 8, "{rows:?}");
    for pair in rows.chunks(2) {
        assert_eq!(pair[0][0], format!("{inside}:pre"), "{rows:?}");
        assert_eq!(pair[1][0], format!("{inside}:post"), "{rows:?}");
        assert_eq!(pair[0][1], pair[1][1], "same packet id: {rows:?}");
    }

    // Bad input: each message names what is wrong and what exists.
    let out = vecbox(&["capture", &lab.name, "fw:nope", "-w", "/dev/null"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("has no interface `nope`"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("inside, outside"), "{}", text(&out));
    let out = vecbox(&["capture", &lab.name, "fx:eth0", "-w", "/dev/null"]);
    assert!(
        text(&out).contains("no node `fx`; its nodes: client, server, fw"),
        "{}",
        text(&out)
    );
    let out = vecbox(&["capture", "vbnosuchlab", "fw:inside", "-w", "/dev/null"]);
    assert!(
        text(&out).contains("no lab named `vbnosuchlab` is up"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains(&lab.name),
        "labs up are listed: {}",
        text(&out)
    );
    let out = vecbox(&[
        "capture",
        &lab.name,
        "fw:inside",
        "-f",
        "tcp prot 80",
        "-w",
        "/dev/null",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains(
            "bad capture filter \"tcp prot 80\": can't parse filter expression: syntax error"
        ),
        "{}",
        text(&out)
    );
    // The extcap's filter check: libpcap's message, nothing for a good filter.
    let iface = format!("vecbox:{inside}");
    let out = vecbox(&[
        "extcap",
        "--extcap-interface",
        &iface,
        "--extcap-capture-filter",
        "tcp prot 80",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("syntax error"),
        "{}",
        text(&out)
    );
    let out = vecbox(&[
        "extcap",
        "--extcap-interface",
        &iface,
        "--extcap-capture-filter",
        "icmp",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    let out = vecbox(&[
        "extcap",
        "--capture",
        "--extcap-interface",
        &format!("vecbox:{}/fw:dmz", lab.name),
        "--fifo",
        "/dev/null",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("has no interface `dmz`"),
        "{}",
        text(&out)
    );
    // Nothing was left running in the guest by all this.
    assert_eq!(
        common::vecbox_console(&format!("{}.fw", lab.name), &["capture", "list"])
            .1
            .trim(),
        "OK no captures"
    );

    // The lab goes down under a running capture of every link: it ends, complete.
    let file = lab.dir.join("down.pcapng");
    let cap = Capture::start(&[&lab.name, "-w", file.to_str().unwrap()], false);
    assert!(lab.ping("client", "10.0.0.2"));
    lab.down();
    let (code, err) = cap.wait(30);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("lab {} went down", lab.name)),
        "{err}"
    );
    let rows = fields(&file, None, &["frame.interface_name", "icmp.type"]);
    assert!(rows.iter().any(|r| r[1] == "8"), "{rows:?}");
    let (names, isbs, _) = blocks(&std::fs::read(&file).unwrap());
    assert_eq!(names.len(), 2, "one end per link: {names:?}");
    for s in final_stats(&isbs) {
        assert_eq!(
            s.comment,
            Some(format!("capture ended: lab {} went down", lab.name))
        );
    }
}

/// `vecbox extcap --install` into a temporary HOME, then tshark lists the lab's ends
/// and captures pings through vecbox; the capture ends in the guest with tshark.
#[test]
fn tshark_lists_and_captures_lab_links_through_extcap() {
    require_tool("tshark");
    let lab = TestLab::from_repo("quickstart.yaml");
    lab.up();
    let home = lab.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let with_home = |cmd: &mut Command| {
        cmd.env("HOME", &home);
    };
    let mut c = Command::new(VECBOX);
    c.args(["extcap", "--install"]);
    with_home(&mut c);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let link: PathBuf = home.join(".config/wireshark/extcap/vecbox-extcap");
    assert!(
        text(&out).contains(link.to_str().unwrap()),
        "{}",
        text(&out)
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );

    let mut c = Command::new("tshark");
    c.arg("-D");
    with_home(&mut c);
    let listed = text(&c.output().unwrap());
    for want in [
        format!("vecbox:{} (", lab.name),
        format!("vecbox:{}/fw:inside (", lab.name),
        format!("vecbox:{}/client:eth0 (", lab.name),
        format!("vecbox:{}/server:eth0 (", lab.name),
    ] {
        assert!(listed.contains(&want), "{want} not in tshark -D:\n{listed}");
    }

    let p = pinger(&lab, "client", "10.0.0.2", 60);
    let mut c = Command::new("tshark");
    c.args(["-i", &format!("vecbox:{}/fw:inside", lab.name)])
        .args(["-f", "icmp", "-c", "4", "-T", "fields"])
        .args([
            "-e",
            "frame.interface_name",
            "-e",
            "icmp.type",
            "-e",
            "frame.p2p_dir",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    with_home(&mut c);
    let child = c.spawn().unwrap();
    let out = wait_output(child, 60);
    stop(p);
    let rows: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(rows.len(), 4, "{}", text(&out));
    for r in &rows {
        let f: Vec<&str> = r.split('\t').collect();
        assert_eq!(f[0], format!("{}/fw:inside", lab.name), "{r}");
        assert!(
            (f[1] == "8" && f[2] == "1") || (f[1] == "0" && f[2] == "0"),
            "requests in, replies out: {r}"
        );
    }
    // tshark stopped the extcap: the guest ends that capture.
    let umid = format!("{}.fw", lab.name);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = common::vecbox_console(&umid, &["capture", "list"]);
        if list.trim() == "OK no captures" {
            break;
        }
        assert!(Instant::now() < deadline, "capture still running: {list}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut c = Command::new(VECBOX);
    c.args(["extcap", "--uninstall"]);
    with_home(&mut c);
    assert!(c.output().unwrap().status.success());
    assert!(std::fs::symlink_metadata(&link).is_err());
}

fn wait_output(mut child: Child, secs: u64) -> std::process::Output {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// Guests joined by GRE and BESS: the capture shows the inner Ethernet frames on
/// every tunnel end.
const TUNNELS: &str = "\
name: @LAB@
nodes:
  h1:
    kind: host
    interfaces:
      eth0: {addresses: [10.61.0.1/24]}
  h2:
    kind: host
    interfaces:
      eth0: {addresses: [10.61.0.2/24]}
  x1:
    kind: xconnect
  x2:
    kind: xconnect
  x3:
    kind: xconnect
links:
  - endpoints: [h1:eth0, x1:a]
  - endpoints: [x1:b, x2:a]
    type: gre
    key: 7
  - endpoints: [x2:b, x3:a]
    type: bess
  - endpoints: [x3:b, h2:eth0]
";

#[test]
fn gre_and_bess_links_show_inner_ethernet_frames() {
    require_tool("tshark");
    let lab = TestLab::new(TUNNELS);
    lab.up();
    assert!(lab.ping("h1", "10.61.0.2"));
    let p = pinger(&lab, "h1", "10.61.0.2", 40);
    let ends = ["x1:b", "x2:a", "x2:b", "x3:a"];
    let mut args = vec![lab.name.as_str()];
    args.extend_from_slice(&ends);
    args.extend_from_slice(&["-f", "icmp", "-c", "24", "-w", "-"]);
    let cap = Capture::start(&args, true);
    let (code, err, stream) = cap.stream(30);
    stop(p);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("gre link to x2:a"), "{err}");
    assert!(err.contains("bess link to x3:a"), "{err}");
    let rows = fields(
        Path::new("-"),
        Some(&stream),
        &["frame.interface_name", "frame.protocols", "frame.p2p_dir"],
    );
    assert_eq!(rows.len(), 24, "{rows:?}");
    for e in ends {
        let name = format!("{}/{e}", lab.name);
        let mine: Vec<_> = rows.iter().filter(|r| r[0] == name).collect();
        assert!(mine.len() >= 2, "{name}: {rows:?}");
        assert!(
            mine.iter().all(|r| r[1] == "eth:ethertype:ip:icmp:data"),
            "{name} shows the inner frames, no tunnel header: {mine:?}"
        );
        assert!(
            mine.iter().any(|r| r[2] == "0") && mine.iter().any(|r| r[2] == "1"),
            "{mine:?}"
        );
    }
}

/// A link between two hosts has no guest: a packet socket in the host's namespace.
#[test]
fn host_to_host_veth_through_a_packet_socket() {
    require_tool("tshark");
    let lab = TestLab::new(
        "\
name: @LAB@
nodes:
  h1:
    kind: host
    interfaces:
      eth0: {addresses: [10.62.0.1/24]}
  h2:
    kind: host
    interfaces:
      eth0: {addresses: [10.62.0.2/24]}
links:
  - endpoints: [h1:eth0, h2:eth0]
",
    );
    lab.up();
    let p = pinger(&lab, "h1", "10.62.0.2", 40);
    let cap = Capture::start(
        &[&lab.name, "h2:eth0", "-f", "icmp", "-c", "6", "-w", "-"],
        true,
    );
    let (code, err, stream) = cap.stream(30);
    stop(p);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("captured on eth0 in namespace"), "{err}");
    let rows = fields(
        Path::new("-"),
        Some(&stream),
        &["frame.interface_name", "icmp.type", "frame.p2p_dir"],
    );
    assert_eq!(rows.len(), 6, "{rows:?}");
    let name = format!("{}/h2:eth0", lab.name);
    assert!(rows.iter().all(|r| r[0] == name), "{rows:?}");
    // At h2, requests come in and replies go out.
    assert!(
        rows.iter()
            .all(|r| (r[1] == "8" && r[2] == "1") || (r[1] == "0" && r[2] == "0")),
        "{rows:?}"
    );
}

/// `GET http://127.0.0.1:port/metrics` from inside namespace `ns`.
fn metrics(ns: &str, port: u16) -> String {
    use std::io::Write;
    let ns_path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(&ns_path).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .join()
    .unwrap()
}

fn metric(text: &str, name: &str, iface: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(&format!("iface=\"{iface}\"")))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no {name}{{iface={iface}}} in:\n{text}"))
}

/// A reader that stops reading: the guest drops and counts copies (statistics blocks,
/// console, metrics) and keeps forwarding; a reader killed outright ends its capture in
/// the guest.
#[test]
fn a_slow_reader_makes_counted_drops_while_forwarding_goes_on() {
    require_tool("trafgen");
    let mut lab = Lab::new();
    let a = lab.ns("a");
    let b = lab.ns("b");
    let g = lab.ns("g");
    lab.veth(&a, "a0", &g, "ga");
    lab.veth(&b, "b0", &g, "gb");
    lab.quiet(&g, "ga");
    lab.quiet(&g, "gb");
    lab.addr(&a, "a0", "10.63.0.1/24");
    lab.addr(&b, "b0", "10.63.0.2/24");
    let umid = format!("{}-cap", lab.tag);
    let guest = Guest::start(
        &lab,
        &g,
        "xconnect",
        &[
            &format!("umid={umid}"),
            "metrics=127.0.0.1:19470",
            "vec0:transport=raw,ifname=ga",
            "vec1:transport=raw,ifname=gb",
        ],
    );
    assert!(lab.ping(&a, "10.63.0.2", 2));

    // Not an extcap or lab capture: a guest started by hand, a 1 MiB ring, and a pipe
    // nobody reads.
    let mut cap = Capture::start(
        &["--guest", &umid, "vec0", "--ring-size", "1", "-w", "-"],
        true,
    );
    let b_mac = lab.mac(&b, "b0");
    let sink_before = lab.counter(&b, "b0", "rx_packets");
    let (rx_before, _) = guest_counts(&umid);
    // 1400-byte frames: the 1 MiB ring, the capture's 1 MiB buffer and the pipe hold
    // under 2000 of them.
    let sent = 20_000;
    trafgen_paced(&lab, &a, &b_mac, sent, 1400, "20000pps");
    // Every frame the guest received was forwarded (the machine's load may make the
    // kernel drop some before the guest sees them; that is not the capture's doing).
    let deadline = Instant::now() + Duration::from_secs(10);
    let (rx, tx) = loop {
        let (rx, tx) = guest_counts(&umid);
        if rx == tx || Instant::now() > deadline {
            break (rx, tx);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(rx, tx, "the guest forwards everything it receives");
    let received = rx - rx_before;
    assert!(
        received * 4 >= sent,
        "forwarding stalled behind the capture: the guest took {received} of {sent}"
    );
    let sink = lab.counter_reaches(&b, "b0", "rx_packets", sink_before + received);
    assert!(
        sink - sink_before >= received,
        "sink got {}",
        sink - sink_before
    );
    let (_, list) = common::vecbox_console(&umid, &["capture", "list"]);
    let dropped: u64 = list
        .split("dropped ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(dropped > 0, "the ring should have overflowed: {list}");
    let m = metrics(&g, 19470);
    assert!(
        metric(&m, "vecbox_capture_dropped_total", "vec0") > 0,
        "{m}"
    );
    assert!(
        metric(&m, "vecbox_capture_packets_total", "vec0") > 0,
        "{m}"
    );

    // Now read, and end it: the statistics add up.
    let mut out = cap.child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        out.read_to_end(&mut v).unwrap();
        v
    });
    std::thread::sleep(Duration::from_millis(500));
    cap.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, err) = cap.wait(30);
    let stream = reader.join().unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("interrupted (SIGTERM)"), "{err}");
    let (names, isbs, epbs) = blocks(&stream);
    assert_eq!(names, vec![format!("{umid}:vec0")]);
    let last = final_stats(&isbs);
    let s = &last[0];
    assert!(s.dropped >= dropped, "{s:?} vs console {dropped}");
    assert_eq!(s.delivered, Some(epbs as u64), "{s:?}");
    assert_eq!(
        s.accepted.unwrap(),
        s.dropped + epbs as u64,
        "every accepted frame is written or counted as dropped: {s:?}"
    );
    assert!(s.received >= s.accepted.unwrap(), "{s:?}");
    assert!(s.accepted.unwrap() >= received, "{s:?}");
    assert!(err.contains(&format!("{} dropped", s.dropped)), "{err}");

    // A reader killed outright: the guest notices within a tick or two.
    let cap = Capture::start(&["--guest", &umid, "vec0", "-w", "/dev/null"], false);
    let (_, list) = common::vecbox_console(&umid, &["capture", "list"]);
    assert!(list.contains("capture "), "{list}");
    cap.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = cap.wait(10);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = common::vecbox_console(&umid, &["capture", "list"]);
        if list.trim() == "OK no captures" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "capture outlived its reader: {list}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = vecbox(&[
        "capture",
        "--guest",
        "vbt-no-such-guest",
        "vec0",
        "-w",
        "/dev/null",
    ]);
    assert!(
        text(&out).contains("no control socket for guest"),
        "{}",
        text(&out)
    );
    let out = vecbox(&["capture", "--guest", &umid, "vec7", "-w", "/dev/null"]);
    assert!(
        text(&out).contains("no vec7 in this guest (it has vec0, vec1)"),
        "{}",
        text(&out)
    );
    let r = guest.stop();
    assert_eq!(
        common::port_stat(&r, 0, "rx_packets"),
        common::port_stat(&r, 1, "tx_packets"),
        "{r}"
    );
}

/// (frames received on vec0, frames sent on vec1) from the guest's `proc stats`.
fn guest_counts(umid: &str) -> (u64, u64) {
    let (_, out) = common::vecbox_console(umid, &["proc", "stats"]);
    let col = |port: &str, i: usize| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(port))
            .and_then(|l| l.split_whitespace().nth(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {port} in {out}"))
    };
    (col("vec0", 3), col("vec1", 5))
}

/// `count` UDP frames of `size` bytes from `a0` in `ns` to `dst_mac`, at `rate`
/// (trafgen's units).
fn trafgen_paced(lab: &Lab, ns: &str, dst_mac: &str, count: u64, size: usize, rate: &str) {
    let conf = lab.dir.join("paced.cfg");
    let src_mac = lab.mac(ns, "a0");
    std::fs::write(
        &conf,
        format!(
            "{{ eth(da={dst_mac}, sa={src_mac}, type=0x0800), ipv4(saddr=10.63.0.1, daddr=10.63.0.2, ttl=64), udp(sp=9, dp=9), fill(0x41, {}) }}\n",
            size - 42
        ),
    )
    .unwrap();
    let out = lab.exec(
        ns,
        &[
            "trafgen",
            "--dev",
            "a0",
            "--conf",
            conf.to_str().unwrap(),
            "--num",
            &count.to_string(),
            "--cpus",
            "1",
            "-b",
            rate,
            "-q",
        ],
    );
    assert!(out.status.success(), "trafgen: {}", text(&out));
}

/// Counters of one impairment direction from the console's `impair vecN`: frames in,
/// out, dropped by loss, in flight.
fn impair_counters(umid: &str, port: &str, dir: &str) -> [u64; 4] {
    let (rc, out) = common::vecbox_console(umid, &["impair", port]);
    assert_eq!(rc, 0, "{out}");
    let head = format!("{port} {dir}:");
    let line = out
        .lines()
        .skip_while(|l| !l.contains(&head))
        .nth(1)
        .unwrap_or_else(|| panic!("no {head} counters in {out}"));
    let after = |word: &str| -> u64 {
        let w: Vec<&str> = line.split_whitespace().collect();
        let i = w.windows(2).position(|p| p[0] == word).unwrap();
        w[i + 1].trim_end_matches(';').parse().unwrap()
    };
    [after("in"), after("out"), after("loss"), after("flight")]
}

/// Ping `count` times from the quickstart client to the server and wait for the end.
fn ping_through(lab: &TestLab, count: u32) {
    ping_wait(lab, "client", "10.0.0.2", count);
}

/// Ping `ip` `count` times from `node` and wait for the end.
fn ping_wait(lab: &TestLab, node: &str, ip: &str, count: u32) {
    let p = pinger(lab, node, ip, count);
    let deadline = Instant::now() + Duration::from_secs(u64::from(count) + 20);
    let mut p = p;
    while p.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "ping did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Impairments on the firewall's outside link (its `tx`, towards the server) seen at
/// both capture points: with a 40 ms delay every echo request appears at tx-pre and,
/// with the same packet id, at tx-post at least 40 ms later, while replies (not
/// impaired) show pre and post at once; with a loss model the frames it drops appear
/// at pre only, commented `dropped: loss`, exactly as many as the stage counted, and
/// the pre and post counts equal the stage's frames in and out.
#[test]
fn pre_and_post_points_show_delay_and_loss_per_frame() {
    require_tool("tshark");
    let lab = TestLab::from_repo("quickstart.yaml");
    lab.up();
    assert!(lab.ping("client", "10.0.0.2"));
    let umid = format!("{}.fw", lab.name);
    let outside = format!("{}/fw:outside", lab.name);
    let (pre, post) = (format!("{outside}:pre"), format!("{outside}:post"));
    let console = |cmd: &[&str]| {
        let (rc, out) = common::vecbox_console(&umid, cmd);
        assert_eq!(rc, 0, "{cmd:?}: {out}");
    };
    let fields_of = |stream: &[u8]| {
        fields(
            Path::new("-"),
            Some(stream),
            &[
                "frame.interface_name",
                "frame.p2p_dir",
                "frame.packet_id",
                "frame.time_epoch",
                "icmp.type",
                "frame.comment",
            ],
        )
    };

    // Delay.
    console(&["impair", "vec1", "tx", "delay=40ms"]);
    let cap = Capture::start(
        &[
            &lab.name,
            "fw:outside",
            "--point",
            "both",
            "-f",
            "icmp",
            "-w",
            "-",
        ],
        true,
    );
    ping_through(&lab, 6);
    // The last request left the stage 40 ms after it entered; give it time to show.
    std::thread::sleep(Duration::from_millis(300));
    cap.signal(nix::sys::signal::Signal::SIGINT);
    let (code, err, stream) = cap.stream(30);
    assert_eq!(code, 0, "{err}");
    let rows = fields_of(&stream);
    let at = |iface: &str, dir: &str, icmp: &str| -> Vec<(u64, f64)> {
        rows.iter()
            .filter(|r| r[0] == iface && r[1] == dir && r[4] == icmp)
            .map(|r| (r[2].parse().unwrap(), r[3].parse().unwrap()))
            .collect()
    };
    let (req_pre, req_post) = (at(&pre, "0", "8"), at(&post, "0", "8"));
    assert!(req_pre.len() >= 5, "{rows:?}");
    assert_eq!(
        req_pre.iter().map(|x| x.0).collect::<Vec<_>>(),
        req_post.iter().map(|x| x.0).collect::<Vec<_>>(),
        "each request at pre and post with one packet id: {rows:?}"
    );
    for ((id, t0), (_, t1)) in req_pre.iter().zip(&req_post) {
        // The two timestamps are read around the stage's clock: allow 1 ms for that.
        assert!(
            t1 - t0 >= 0.039,
            "request {id} left {:.6} s after it entered: {rows:?}",
            t1 - t0
        );
    }
    let (rep_pre, rep_post) = (at(&pre, "1", "0"), at(&post, "1", "0"));
    assert!(rep_pre.len() >= 5, "{rows:?}");
    assert_eq!(
        rep_pre.iter().map(|x| x.0).collect::<Vec<_>>(),
        rep_post.iter().map(|x| x.0).collect::<Vec<_>>(),
        "replies at pre and post with one packet id: {rows:?}"
    );
    assert!(
        rows.iter().all(|r| r[5].is_empty()),
        "no comments: {rows:?}"
    );

    // Loss: everything that leaves on outside is captured (no filter), so the notes
    // and copies can be held against the stage's counters.
    console(&["impair", "vec1", "tx", "clear"]);
    console(&["impair", "vec1", "tx", "loss=40%", "seed=11"]);
    let file = lab.dir.join("loss.pcapng");
    let cap = Capture::start(
        &[
            &lab.name,
            "fw:outside",
            "--point",
            "both",
            "-w",
            file.to_str().unwrap(),
        ],
        false,
    );
    let before = impair_counters(&umid, "vec1", "tx");
    ping_through(&lab, 25);
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let c = impair_counters(&umid, "vec1", "tx");
        if c[3] == 0 {
            break c;
        }
        assert!(Instant::now() < deadline, "frames stay in flight: {c:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    cap.signal(nix::sys::signal::Signal::SIGINT);
    let (code, err) = cap.wait(30);
    assert_eq!(code, 0, "{err}");
    assert_eq!(expert_errors(&file), "");
    let data = std::fs::read(&file).unwrap();
    let rows = fields_of(&data);
    let out_at = |iface: &str| -> Vec<&Vec<String>> {
        rows.iter()
            .filter(|r| r[0] == iface && r[1] == "0")
            .collect()
    };
    let lost: Vec<&str> = out_at(&pre)
        .iter()
        .filter(|r| r[5] == "dropped: loss")
        .map(|r| r[2].as_str())
        .collect();
    let delta = |i: usize| after[i] - before[i];
    assert_eq!(lost.len() as u64, delta(2), "{rows:?}");
    assert!(!lost.is_empty(), "40% loss dropped nothing: {rows:?}");
    assert_eq!(out_at(&pre).len() as u64, delta(0), "frames in: {rows:?}");
    assert_eq!(out_at(&post).len() as u64, delta(1), "frames out: {rows:?}");
    assert!(
        out_at(&post)
            .iter()
            .all(|r| !lost.contains(&r[2].as_str()) && r[5].is_empty()),
        "a dropped frame never appears after the stage: {rows:?}"
    );
    assert!(
        rows.iter()
            .all(|r| r[5].is_empty() || (r[0] == pre && r[5] == "dropped: loss")),
        "only losses are commented: {rows:?}"
    );
}

/// A link between two hosts with `impair:` gets a datapath vecbox inserts; a host end
/// of it is captured on that datapath, before and after the stage of each direction:
/// h1 → h2 duplicates every frame (each request once at pre, twice at post with one
/// packet id, the copy commented `duplicate`), h2 → h1 loses some (a lost reply at pre
/// only, commented `dropped: loss`). h2's end, captured in the same run, sees the
/// same frames with directions the other way round.
#[test]
fn host_end_on_an_impairment_datapath_shows_pre_and_post() {
    require_tool("tshark");
    let lab = TestLab::new(
        "\
name: @LAB@
nodes:
  h1:
    kind: host
    interfaces:
      eth0: {addresses: [10.63.0.1/24]}
  h2:
    kind: host
    interfaces:
      eth0: {addresses: [10.63.0.2/24]}
links:
  - endpoints: [h1:eth0, h2:eth0]
    impair:
      a_to_b: {duplicate: 100%}
      b_to_a: {loss: 40%, seed: 5}
",
    );
    lab.up();
    let file = lab.dir.join("datapath.pcapng");
    let cap = Capture::start(
        &[
            &lab.name,
            "h1:eth0",
            "h2:eth0",
            "--point",
            "both",
            "-f",
            "icmp",
            "-w",
            file.to_str().unwrap(),
        ],
        false,
    );
    assert!(
        cap.seen.iter().any(|l| l.contains("impairment datapath _")),
        "{:?}",
        cap.seen
    );
    ping_wait(&lab, "h1", "10.63.0.2", 20);
    std::thread::sleep(Duration::from_millis(300));
    cap.signal(nix::sys::signal::Signal::SIGINT);
    let (code, err) = cap.wait(30);
    assert_eq!(code, 0, "{err}");
    assert_eq!(expert_errors(&file), "");
    let rows = fields(
        &file,
        None,
        &[
            "frame.interface_name",
            "frame.p2p_dir",
            "frame.packet_id",
            "icmp.type",
            "frame.comment",
        ],
    );
    let end = |node: &str, point: &str| format!("{}/{node}:eth0:{point}", lab.name);
    let at = |iface: &str, dir: &str, icmp: &str| -> Vec<(u64, String)> {
        rows.iter()
            .filter(|r| r[0] == iface && r[1] == dir && r[3] == icmp)
            .map(|r| (r[2].parse().unwrap(), r[4].clone()))
            .collect()
    };
    let ids = |v: &[(u64, String)]| -> Vec<u64> {
        let mut i: Vec<u64> = v.iter().map(|x| x.0).collect();
        i.sort_unstable();
        i.dedup();
        i
    };
    // Directions (0 outbound, 1 inbound) of requests and replies at each end.
    for (node, req, rep) in [("h1", "0", "1"), ("h2", "1", "0")] {
        let (pre, post) = (end(node, "pre"), end(node, "post"));
        let (req_pre, req_post) = (at(&pre, req, "8"), at(&post, req, "8"));
        assert!(req_pre.len() >= 15, "{node}: {rows:?}");
        assert_eq!(req_post.len(), 2 * req_pre.len(), "{node}: {rows:?}");
        assert_eq!(ids(&req_pre), ids(&req_post), "{node}: {rows:?}");
        assert!(
            req_pre.iter().all(|r| r.1 == "duplicate"),
            "{node}: every request is duplicated: {rows:?}"
        );
        assert_eq!(
            req_post.iter().filter(|r| r.1 == "duplicate").count(),
            req_pre.len(),
            "{node}: one commented copy per request: {rows:?}"
        );
        let (rep_pre, rep_post) = (at(&pre, rep, "0"), at(&post, rep, "0"));
        let lost: Vec<u64> = rep_pre
            .iter()
            .filter(|r| r.1 == "dropped: loss")
            .map(|r| r.0)
            .collect();
        assert!(!lost.is_empty(), "{node}: 40% loss lost nothing: {rows:?}");
        assert_eq!(
            rep_post.len() + lost.len(),
            rep_pre.len(),
            "{node}: {rows:?}"
        );
        assert!(
            rep_post
                .iter()
                .all(|r| !lost.contains(&r.0) && r.1.is_empty()),
            "{node}: a lost reply never appears after the stage: {rows:?}"
        );
    }
}
