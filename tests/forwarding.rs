//! A guest between two hosts in network namespaces, over raw, tap and hybrid ports,
//! with gro=1 and gro=0: ping, iperf3 TCP (TSO/GRO on the veths) in both directions and
//! a trafgen burst must all cross, and the guest's counters must say how.

mod common;

use common::{Guest, Lab, port_drops, port_stat};

/// Host A ─ veth ─ [guest] ─ port 1 ─ host B.
///
/// raw: the guest runs in its own namespace `g` holding `ga` and `gb`, peers of A's `a0`
/// and B's `b0`. tap/hybrid: the guest runs inside host B's namespace, its second port is
/// tap `tb` there (B's address is on the tap) and `ga` sits beside it with ARP and IPv6
/// off, so B is reachable only through the guest.
struct Line {
    lab: Lab,
    a: String,
    b: String,
    guest_ns: String,
    b_if: &'static str,
}

const A_IP: &str = "10.71.0.1";
const B_IP: &str = "10.71.0.2";

fn line(second: &str) -> Line {
    let mut lab = Lab::new();
    let a = lab.ns("a");
    let b = lab.ns("b");
    if second == "raw" {
        let g = lab.ns("g");
        lab.veth(&a, "a0", &g, "ga");
        lab.veth(&b, "b0", &g, "gb");
        lab.quiet(&g, "ga");
        lab.quiet(&g, "gb");
        lab.addr(&a, "a0", &format!("{A_IP}/24"));
        lab.addr(&b, "b0", &format!("{B_IP}/24"));
        Line {
            lab,
            a,
            b,
            guest_ns: g,
            b_if: "b0",
        }
    } else {
        lab.veth(&a, "a0", &b, "ga");
        lab.quiet(&b, "ga");
        common::run(&[
            "ip",
            "netns",
            "exec",
            &b,
            "sysctl",
            "-qw",
            "net.ipv4.conf.ga.arp_ignore=8",
        ]);
        lab.addr(&a, "a0", &format!("{A_IP}/24"));
        let guest_ns = b.clone();
        Line {
            lab,
            a,
            b,
            guest_ns,
            b_if: "tb",
        }
    }
}

impl Line {
    fn start(&self, function: &str, second: &str, opts: &str) -> Guest {
        let p0 = format!("vec0:transport=raw,ifname=ga{opts}");
        let p1 = if second == "raw" {
            format!("vec1:transport=raw,ifname=gb{opts}")
        } else {
            format!("vec1:transport={second},ifname=tb{opts}")
        };
        // umids name run directories (~/.uml/UMID): unique per test.
        let umid = format!("umid={}-t", self.lab.tag);
        let g = Guest::start(&self.lab, &self.guest_ns, function, &[&umid, &p0, &p1]);
        if second != "raw" {
            self.lab.addr(&self.b, "tb", &format!("{B_IP}/24"));
        }
        g
    }
}

/// ping, TCP both ways, a trafgen burst; then the counters.
fn exercise(second: &str, opts: &str) -> serde_json::Value {
    exercise_with(second, opts, |_| {})
}

/// [`exercise`], with `more` run against the line while the guest forwards.
fn exercise_with(second: &str, opts: &str, more: impl Fn(&Line)) -> serde_json::Value {
    let mut l = line(second);
    let g = l.start("xconnect", second, opts);
    more(&l);
    assert!(
        l.lab.ping(&l.a, B_IP, 3),
        "ping A -> B through {second}{opts}"
    );
    let (a, b) = (l.a.clone(), l.b.clone());
    let up = l.lab.iperf3(&b, &a, B_IP, 2);
    assert!(up > 20e6, "TCP A -> B through {second}{opts}: {up} bit/s");
    let down = l.lab.iperf3(&a, &b, A_IP, 2);
    assert!(
        down > 20e6,
        "TCP B -> A through {second}{opts}: {down} bit/s"
    );

    let b_mac = l.lab.mac(&l.b, l.b_if);
    let before = l.lab.counter(&l.b, l.b_if, "rx_packets");
    l.lab.trafgen(&l.a, "a0", &b_mac, A_IP, B_IP, 2000);
    let after = l
        .lab
        .counter_reaches(&l.b, l.b_if, "rx_packets", before + 2000);
    assert!(
        after - before >= 2000,
        "trafgen burst: B received {} of 2000",
        after - before
    );

    let r = g.stop();
    // The frame ring (TPACKET_V2) is the default receive path of the raw port 0;
    // ring=2 asks for the block ring, ring=0 and vec=0 for recvmmsg/recvmsg.
    let layout = if opts.contains("ring=0") || opts.contains("vec=0") {
        serde_json::Value::Null
    } else if opts.contains("ring=2") {
        "blocks".into()
    } else {
        "frames".into()
    };
    assert_eq!(r["ports"][0]["rx_ring"], !layout.is_null(), "{r}");
    assert_eq!(r["ports"][0]["rx_ring_layout"], layout, "{r}");
    assert_eq!(port_stat(&r, 0, "fallbacks"), 0, "{r}");
    assert!(port_stat(&r, 0, "rx_packets") >= 2000, "{r}");
    assert!(port_stat(&r, 1, "tx_packets") >= 2000, "{r}");
    assert_eq!(
        port_drops(&r, 0, "oversize") + port_drops(&r, 1, "oversize"),
        0,
        "{r}"
    );
    assert_eq!(
        port_drops(&r, 0, "tx_error") + port_drops(&r, 1, "tx_error"),
        0,
        "{r}"
    );
    r
}

/// Python's side of [`tcp_copy`]: `serve IP PORT` reads one connection to its end,
/// `send IP PORT N SEED` writes N seeded pseudo-random bytes; each prints its byte
/// count and SHA-256.
const TCP_COPY: &str = r#"
import hashlib, random, socket, sys, time
h = hashlib.sha256(); n = 0
if sys.argv[1] == "serve":
    s = socket.socket(); s.bind((sys.argv[2], int(sys.argv[3]))); s.listen(1)
    s.settimeout(60); c, _ = s.accept(); c.settimeout(60)
    while True:
        b = c.recv(1 << 20)
        if not b: break
        h.update(b); n += len(b)
else:
    data = random.Random(int(sys.argv[5])).randbytes(int(sys.argv[4]))
    deadline = time.time() + 10
    while True:
        try:
            c = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=2); break
        except OSError:
            if time.time() > deadline: raise
            time.sleep(0.2)
    c.settimeout(60); c.sendall(data); c.shutdown(socket.SHUT_WR); c.recv(1)
    h.update(data); n = len(data)
print(n, h.hexdigest())
"#;

/// Copy `bytes` seeded pseudo-random bytes over one TCP connection from `ns_c` to a
/// server at `ip` in `ns_s` and check that exactly those bytes arrived: offloaded
/// checksums would let a corrupted 64 KiB frame through where iperf3 would not notice.
fn tcp_copy(ns_s: &str, ns_c: &str, ip: &str, bytes: usize) {
    common::require_tool("python3");
    let netns = |ns: &str, args: &[&str]| {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", ns, "python3", "-c", TCP_COPY])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    };
    let server = netns(ns_s, &["serve", ip, "5201"]).spawn().unwrap();
    let sent = netns(ns_c, &["send", ip, "5201", &bytes.to_string(), "7"])
        .output()
        .unwrap();
    let got = server.wait_with_output().unwrap();
    let text = |o: &std::process::Output| {
        format!(
            "{} {}",
            String::from_utf8_lossy(&o.stdout).trim(),
            String::from_utf8_lossy(&o.stderr).trim()
        )
    };
    assert!(
        sent.status.success(),
        "TCP sender in {ns_c}: {}",
        text(&sent)
    );
    assert!(
        got.status.success(),
        "TCP receiver in {ns_s}: {}",
        text(&got)
    );
    assert!(
        text(&sent).starts_with(&format!("{bytes} ")),
        "sender: {}",
        text(&sent)
    );
    assert_eq!(
        text(&got),
        text(&sent),
        "bytes received differ from bytes sent"
    );
}

fn gso_passed_whole(r: &serde_json::Value) -> bool {
    port_stat(r, 1, "tx_gso_frames") > 0 && port_stat(r, 1, "tx_gso_segmented") == 0
}

fn gso_segmented(r: &serde_json::Value) -> bool {
    port_stat(r, 1, "tx_gso_segmented") > 0 && port_stat(r, 1, "tx_gso_frames") == 0
}

#[test]
fn xconnect_raw_gro1_passes_64k_frames_whole() {
    let r = exercise("raw", ",gro=1");
    assert!(
        port_stat(&r, 0, "rx_gso_frames") > 0,
        "the veth delivered GSO frames: {r}"
    );
    assert!(gso_passed_whole(&r), "{r}");
}

#[test]
fn xconnect_raw_gro0_segments_in_software() {
    let r = exercise("raw", ",gro=0");
    assert!(gso_segmented(&r), "{r}");
    assert!(
        port_stat(&r, 1, "tx_gso_segments") > port_stat(&r, 1, "tx_gso_segmented"),
        "{r}"
    );
}

/// 24 MiB each way over TCP, byte for byte.
fn copy_both_ways(l: &Line) {
    tcp_copy(&l.b, &l.a, B_IP, 24 << 20);
    tcp_copy(&l.a, &l.b, A_IP, 24 << 20);
}

/// Default options: the frame ring, and 64 KiB frames whole both ways (the veths have
/// TSO on). GSO frames do not fit a ring slot: they come through the socket, whole.
#[test]
fn xconnect_raw_default_passes_64k_frames_whole() {
    let r = exercise_with("raw", "", copy_both_ways);
    assert!(port_stat(&r, 0, "rx_gso_frames") > 0, "{r}");
    assert!(gso_passed_whole(&r), "{r}");
    for p in 0..2 {
        assert_eq!(r["ports"][p]["tx_gso"], true, "{r}");
        assert_eq!(r["ports"][p]["rx_ring_layout"], "frames", "{r}");
        assert_eq!(port_drops(&r, p, "ring_full"), 0, "{r}");
    }
}

#[test]
fn xconnect_raw_recvmmsg_gro1_passes_64k_frames_whole() {
    let r = exercise("raw", ",gro=1,ring=0");
    assert!(port_stat(&r, 0, "rx_gso_frames") > 0, "{r}");
    assert!(gso_passed_whole(&r), "{r}");
}

#[test]
fn xconnect_raw_block_ring_gro1_passes_64k_frames_whole() {
    let r = exercise("raw", ",gro=1,ring=2");
    assert!(port_stat(&r, 0, "rx_gso_frames") > 0, "{r}");
    assert!(gso_passed_whole(&r), "{r}");
}

#[test]
fn xconnect_raw_block_ring_gro0() {
    let r = exercise("raw", ",gro=0,ring=2");
    assert!(gso_segmented(&r), "{r}");
}

/// A burst through ring ports is counted frame for frame: every frame delivered or
/// counted as a ring drop, none of the guest's own transmissions read back.
#[test]
fn frame_ring_counts_a_burst_and_not_its_own_frames() {
    ring_counts_a_burst_and_not_its_own_frames(",depth=32");
}

#[test]
fn block_ring_counts_a_burst_and_not_its_own_frames() {
    ring_counts_a_burst_and_not_its_own_frames(",ring=2,depth=32");
}

fn ring_counts_a_burst_and_not_its_own_frames(opts: &str) {
    let l = line("raw");
    let g = l.start("xconnect", "raw", opts);
    let b_mac = l.lab.mac(&l.b, l.b_if);
    let before = l.lab.counter(&l.b, l.b_if, "rx_packets");
    l.lab.trafgen(&l.a, "a0", &b_mac, A_IP, B_IP, 5000);
    let delivered = l
        .lab
        .counter_reaches(&l.b, l.b_if, "rx_packets", before + 5000)
        - before;
    let r = g.stop();
    assert_eq!(r["ports"][0]["rx_ring"], true, "{r}");
    assert_eq!(r["ports"][1]["rx_ring"], true, "{r}");
    let rx0 = port_stat(&r, 0, "rx_packets");
    let full = port_drops(&r, 0, "ring_full");
    // Quiet namespaces: only the burst (plus at most a few stray frames) arrives.
    assert!(
        (5000..5050).contains(&(rx0 + full)),
        "port 0 took {rx0}, ring_full {full}: {r}"
    );
    assert!(delivered + full >= 5000, "B got {delivered}: {r}");
    // Port 1 sent ≥ 5000 frames on gb; reading them back would show here (and loop).
    assert!(port_stat(&r, 1, "tx_packets") >= 5000 - full, "{r}");
    assert!(port_stat(&r, 1, "rx_packets") < 50, "{r}");
    assert!(port_stat(&r, 0, "tx_packets") < 50, "{r}");
    assert!(
        r["ports"][0]["stats"]["rx_batch"]["max"].as_u64().unwrap() <= 32,
        "{r}"
    );
}

/// Default options on a tap: TSO asked for, 64 KiB frames whole both ways.
#[test]
fn xconnect_tap_default_passes_64k_frames_whole() {
    let r = exercise_with("tap", "", copy_both_ways);
    assert!(gso_passed_whole(&r), "{r}");
    assert!(port_stat(&r, 1, "rx_gso_frames") > 0, "{r}");
}

#[test]
fn xconnect_hybrid_default_passes_64k_frames_whole() {
    let r = exercise_with("hybrid", "", copy_both_ways);
    assert!(gso_passed_whole(&r), "{r}");
    assert_eq!(r["ports"][1]["rx_ring_layout"], "frames", "{r}");
}

#[test]
fn xconnect_tap_gro1() {
    let r = exercise("tap", ",gro=1");
    assert!(gso_passed_whole(&r), "{r}");
}

#[test]
fn xconnect_tap_gro0() {
    let r = exercise("tap", ",gro=0");
    assert!(gso_segmented(&r), "{r}");
    // With gro=0 the kernel segments before the tap: nothing large comes out of it.
    assert_eq!(port_stat(&r, 1, "rx_gso_frames"), 0, "{r}");
}

#[test]
fn xconnect_hybrid_gro1() {
    let r = exercise("hybrid", ",gro=1");
    assert!(gso_passed_whole(&r), "{r}");
}

#[test]
fn xconnect_hybrid_gro0() {
    let r = exercise("hybrid", ",gro=0");
    assert!(gso_segmented(&r), "{r}");
}

#[test]
fn xconnect_raw_vec0_moves_one_frame_per_call() {
    let r = exercise("raw", ",gro=1,vec=0");
    for p in 0..2 {
        assert_eq!(r["ports"][p]["stats"]["rx_batch"]["max"], 1, "{r}");
        assert_eq!(r["ports"][p]["stats"]["tx_batch"]["max"], 1, "{r}");
    }
}

#[test]
fn xconnect_raw_small_depth() {
    let r = exercise("raw", ",gro=0,depth=4");
    assert!(
        r["ports"][0]["stats"]["rx_batch"]["max"].as_u64().unwrap() <= 4,
        "{r}"
    );
    assert!(gso_segmented(&r), "{r}");
}

/// Frames for a tap nobody has brought up yet are refused by the kernel (EIO): they are
/// counted as `link_down`, not as transmit errors, and forwarding starts once it is up.
#[test]
fn frames_for_a_down_tap_count_as_link_down() {
    let l = line("tap");
    let umid = format!("umid={}-t", l.lab.tag);
    let g = Guest::start(
        &l.lab,
        &l.guest_ns,
        "xconnect",
        &[
            &umid,
            "vec0:transport=raw,ifname=ga",
            "vec1:transport=tap,ifname=tb",
        ],
    );
    l.lab
        .trafgen(&l.a, "a0", "ff:ff:ff:ff:ff:ff", A_IP, B_IP, 200);
    // Bring tb up only once the guest has read the whole burst (console `proc stats`).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while common::console_rx(&format!("{}-t", l.lab.tag), "vec0") < 200
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    l.lab.addr(&l.b, "tb", &format!("{B_IP}/24"));
    assert!(l.lab.ping(&l.a, B_IP, 3), "forwarding once tb is up");
    let r = g.stop();
    assert!(port_drops(&r, 1, "link_down") >= 200, "{r}");
    assert_eq!(port_drops(&r, 1, "tx_error"), 0, "{r}");
}
