//! An independent decoder agrees: tshark decodes the GRE and L2TPv3 packets vecbox
//! puts on the wire (captured on the underlay between two vecbox guests, and from a
//! real UML kernel for comparison) as the configured key, sequence, session, cookie
//! and counter, with no malformed-packet or warning-level expert info.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Guest, Lab, require_tool};

const U1: &str = "172.29.0.1";
const U2: &str = "172.29.0.2";

/// tshark capturing on `ifname` in `ns` until dropped (then the file is complete).
struct Capture {
    child: std::process::Child,
    file: PathBuf,
}

impl Capture {
    fn start(lab: &Lab, ns: &str, ifname: &str, filter: &str) -> Capture {
        require_tool("tshark");
        let file = lab.dir.join(format!("{ifname}.pcapng"));
        let mut child = Command::new("ip")
            .args([
                "netns", "exec", ns, "tshark", "-q", "-i", ifname, "-f", filter, "-w",
            ])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        loop {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(l) if l.contains("Capturing on") => {
                    // tshark says so slightly before its capture process is reading:
                    // give it a moment so the first frames (sequence 1) are not missed.
                    std::thread::sleep(Duration::from_millis(2000));
                    break;
                }
                Ok(_) => {}
                Err(_) => panic!("tshark did not start capturing"),
            }
        }
        Capture { child, file }
    }

    /// Stop capturing and decode with `opts`; one row of `fields` per packet.
    fn decode(mut self, opts: &[&str], fields: &[&str]) -> Vec<Vec<String>> {
        std::thread::sleep(Duration::from_millis(300));
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let _ = self.child.wait();
        let mut cmd = Command::new("tshark");
        cmd.arg("-r").arg(&self.file).args(opts);
        cmd.args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]);
        for f in fields {
            cmd.args(["-e", f]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('|').map(str::to_string).collect())
            .collect()
    }
}

/// Fields every check reads after its own ones: source, malformed, expert severity.
const TAIL: [&str; 3] = ["ip.src", "_ws.malformed", "_ws.expert.severity"];

/// Two vecbox guests joined by the tunnel `left`/`right` (host A behind guest 1, host B
/// behind guest 2); capture on guest 1's underlay while A pings B.
fn capture(
    left: &str,
    right: &str,
    filter: &str,
    opts: &[&str],
    fields: &[&str],
) -> Vec<Vec<String>> {
    let mut lab = Lab::new();
    let a = lab.ns("a");
    let b = lab.ns("b");
    let g1 = lab.ns("g1");
    let g2 = lab.ns("g2");
    lab.veth(&a, "a0", &g1, "ga");
    lab.veth(&b, "b0", &g2, "gb");
    lab.veth(&g1, "u1", &g2, "u2");
    lab.quiet(&g1, "ga");
    lab.quiet(&g2, "gb");
    lab.quiet(&g1, "u1");
    lab.quiet(&g2, "u2");
    lab.addr(&g1, "u1", &format!("{U1}/24"));
    lab.addr(&g2, "u2", &format!("{U2}/24"));
    lab.addr(&a, "a0", "10.83.0.1/24");
    lab.addr(&b, "b0", "10.83.0.2/24");
    lab.quiet(&a, "a0");
    lab.quiet(&b, "b0");
    let cap = Capture::start(&lab, &g1, "u1", filter);
    let g1g = Guest::start(
        &lab,
        &g1,
        "xconnect",
        &["vec0:transport=raw,ifname=ga", &format!("vec1:{left}")],
    );
    let g2g = Guest::start(
        &lab,
        &g2,
        "xconnect",
        &[&format!("vec0:{right}"), "vec1:transport=raw,ifname=gb"],
    );
    assert!(lab.ping(&a, "10.83.0.2", 4));
    let all: Vec<&str> = fields.iter().copied().chain(TAIL).collect();
    let rows = cap.decode(opts, &all);
    g1g.stop();
    g2g.stop();
    rows
}

/// Rows sent by `src`, each checked for malformation; at least `min` of them.
fn from<'a>(rows: &'a [Vec<String>], src: &str, min: usize) -> Vec<&'a Vec<String>> {
    let n = rows[0].len();
    for r in rows {
        assert!(r[n - 2].is_empty(), "malformed packet: {r:?}");
        let sev: u32 = r[n - 1].parse().unwrap_or(0);
        // Expert severities: chat 0x200000, note 0x400000, warn 0x600000, error 0x800000.
        assert!(sev < 0x600000, "expert warning/error: {r:?}");
    }
    let mine: Vec<_> = rows.iter().filter(|r| r[n - 3] == src).collect();
    assert!(
        mine.len() >= min,
        "only {} packets from {src}: {rows:?}",
        mine.len()
    );
    mine
}

fn num(s: &str) -> u64 {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap(),
        None => s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}")),
    }
}

#[test]
fn tshark_decodes_gre_key_and_sequence() {
    let rows = capture(
        &format!("transport=gre,src={U1},dst={U2},rx_key=0x2222,tx_key=0x1111,sequence=1"),
        &format!("transport=gre,src={U2},dst={U1},rx_key=0x1111,tx_key=0x2222,sequence=1"),
        "ip proto 47",
        &[],
        &["gre.key", "gre.sequence_number", "gre.proto", "eth.type"],
    );
    let mine = from(&rows, U1, 4);
    for (i, r) in mine.iter().enumerate() {
        assert_eq!(num(&r[0]), 0x1111, "{r:?}");
        // Pre-incremented: the first frame carries 1, then one more per frame.
        assert_eq!(num(&r[1]), i as u64 + 1, "{r:?}");
        assert_eq!(num(&r[2]), 0x6558, "{r:?}");
        assert!(!r[3].is_empty(), "inner Ethernet decoded: {r:?}");
    }
    let theirs = from(&rows, U2, 4);
    assert!(theirs.iter().all(|r| num(&r[0]) == 0x2222));
}

#[test]
fn tshark_decodes_l2tpv3_ip_session_cookie64_counter() {
    let rows = capture(
        &format!(
            "transport=l2tpv3,src={U1},dst={U2},rx_session=0x2002,tx_session=0x1001,cookie64=1,rx_cookie=0x0a0b0c0d0e0f1011,tx_cookie=0x0102030405060708,counter=1"
        ),
        &format!(
            "transport=l2tpv3,src={U2},dst={U1},rx_session=0x1001,tx_session=0x2002,cookie64=1,rx_cookie=0x0102030405060708,tx_cookie=0x0a0b0c0d0e0f1011,counter=1"
        ),
        "ip proto 115",
        &[
            "-o",
            "l2tp.cookie_size:8 Byte Cookie",
            "-o",
            "l2tp.l2_specific:Default L2-Specific",
        ],
        &[
            "l2tp.sid",
            "l2tp.cookie",
            "l2tp.l2_spec_sequence",
            "eth.type",
        ],
    );
    let mine = from(&rows, U1, 4);
    for (i, r) in mine.iter().enumerate() {
        assert_eq!(num(&r[0]), 0x1001, "{r:?}");
        assert_eq!(r[1].replace(':', ""), "0102030405060708", "{r:?}");
        assert_eq!(num(&r[2]), i as u64 + 1, "{r:?}");
        assert!(!r[3].is_empty(), "inner Ethernet decoded: {r:?}");
    }
}

#[test]
fn tshark_decodes_l2tpv3_udp_session_cookie32() {
    let rows = capture(
        &format!(
            "transport=l2tpv3,udp=1,src={U1},dst={U2},srcport=5701,dstport=5702,rx_session=0x22,tx_session=0x11,rx_cookie=0xbbbbbbbb,tx_cookie=0xaaaaaaaa"
        ),
        &format!(
            "transport=l2tpv3,udp=1,src={U2},dst={U1},srcport=5702,dstport=5701,rx_session=0x11,tx_session=0x22,rx_cookie=0xaaaaaaaa,tx_cookie=0xbbbbbbbb"
        ),
        "udp",
        &[
            "-d",
            "udp.port==5702,l2tp",
            "-d",
            "udp.port==5701,l2tp",
            "-o",
            "l2tp.cookie_size:4 Byte Cookie",
            "-o",
            "l2tp.l2_specific:None",
        ],
        &["l2tp.version", "l2tp.sid", "l2tp.cookie", "eth.type"],
    );
    let mine = from(&rows, U1, 4);
    for r in mine {
        assert_eq!(num(&r[0]), 3, "{r:?}");
        assert_eq!(num(&r[1]), 0x11, "{r:?}");
        assert_eq!(r[2].replace(':', ""), "aaaaaaaa", "{r:?}");
        assert!(!r[3].is_empty(), "inner Ethernet decoded: {r:?}");
    }
}

/// What a real UML kernel emits with the same settings, captured the same way: checks
/// the spec's reading of UML (key and sequence as configured, first sequence number /
/// counter 1, plain 32-bit counter) against the real thing.
fn uml_emits(vec: &str, filter: &str, opts: &[&str], fields: &[&str]) -> Vec<Vec<String>> {
    let mut lab = Lab::new();
    let u = lab.ns("u");
    let p = lab.ns("p");
    lab.veth(&u, "u1", &p, "u2");
    lab.quiet(&u, "u1");
    lab.quiet(&p, "u2");
    lab.addr(&u, "u1", &format!("{U1}/24"));
    lab.addr(&p, "u2", &format!("{U2}/24"));
    let cap = Capture::start(&lab, &u, "u1", filter);
    // Nobody answers; a static ARP entry makes each of the four echo requests leave
    // through the tunnel as one frame, whatever the ARP retry timing.
    let mut uml = common::uml::Uml::boot(
        &lab,
        &u,
        &[vec],
        "ip addr add 10.84.0.1/24 dev vec0\nip link set vec0 up\n\
         arp -i vec0 -s 10.84.0.2 02:00:00:00:84:02\n\
         ping -c 4 -W 1 10.84.0.2 >/dev/null 2>&1",
    );
    let all: Vec<&str> = fields.iter().copied().chain(TAIL).collect();
    let rows = cap.decode(opts, &all);
    uml.stop();
    rows
}

#[test]
fn uml_gre_sequence_starts_at_one() {
    let rows = uml_emits(
        &format!("vec0:transport=gre,src={U1},dst={U2},rx_key=1,tx_key=0x1234,sequence=1"),
        "ip proto 47",
        &[],
        &["gre.key", "gre.sequence_number"],
    );
    let mine = from(&rows, U1, 3);
    for (i, r) in mine.iter().enumerate() {
        assert_eq!(num(&r[0]), 0x1234, "{r:?}");
        assert_eq!(num(&r[1]), i as u64 + 1, "{r:?}");
    }
}

#[test]
fn uml_l2tpv3_counter_starts_at_one() {
    let rows = uml_emits(
        &format!(
            "vec0:transport=l2tpv3,src={U1},dst={U2},rx_session=1,tx_session=0x77,rx_cookie=1,tx_cookie=0xdeadbeef,counter=1"
        ),
        "ip proto 115",
        &[
            "-o",
            "l2tp.cookie_size:4 Byte Cookie",
            "-o",
            "l2tp.l2_specific:Default L2-Specific",
        ],
        &["l2tp.sid", "l2tp.cookie", "l2tp.l2_spec_sequence"],
    );
    let mine = from(&rows, U1, 3);
    for (i, r) in mine.iter().enumerate() {
        assert_eq!(num(&r[0]), 0x77, "{r:?}");
        assert_eq!(r[1].replace(':', ""), "deadbeef", "{r:?}");
        assert_eq!(num(&r[2]), i as u64 + 1, "{r:?}");
    }
}
