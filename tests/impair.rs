//! Impairments with real traffic through real namespaces and a guest:
//!
//! ```text
//! A (a0 10.86.0.1) ─veth─ ga [vec0  xconnect  vec1] gb ─veth─ b0 (B 10.86.0.2)
//! ```
//!
//! A→B frames go through vec0's `rx` stage and vec1's `tx` stage; B→A through vec1's
//! `rx` and vec0's `tx`. The namespaces are quiet (no IPv6, static ARP), so the only
//! frames a stage judges are the test's own: that is what lets a seeded run be compared
//! frame by frame. Timing assertions are one-sided or tolerant (a loaded CI box runs
//! late, never early); accuracy is measured by `cargo bench --bench impair`.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Guest, Lab, require_tool, run, vecbox_out};
use vecbox::impair::{Change, Params, Stage};

const A_IP: &str = "10.86.0.1";
const B_IP: &str = "10.86.0.2";

struct Line {
    lab: Lab,
    a: String,
    b: String,
    g: String,
}

fn line() -> Line {
    let mut lab = Lab::new();
    let a = lab.ns("a");
    let b = lab.ns("b");
    let g = lab.ns("g");
    lab.veth(&a, "a0", &g, "ga");
    lab.veth(&b, "b0", &g, "gb");
    for (ns, i) in [(&g, "ga"), (&g, "gb"), (&a, "a0"), (&b, "b0")] {
        lab.quiet(ns, i);
    }
    lab.addr(&a, "a0", &format!("{A_IP}/24"));
    lab.addr(&b, "b0", &format!("{B_IP}/24"));
    let (ma, mb) = (lab.mac(&a, "a0"), lab.mac(&b, "b0"));
    run(&[
        "ip",
        "-n",
        &a,
        "neigh",
        "replace",
        B_IP,
        "lladdr",
        &mb,
        "dev",
        "a0",
        "nud",
        "permanent",
    ]);
    run(&[
        "ip",
        "-n",
        &b,
        "neigh",
        "replace",
        A_IP,
        "lladdr",
        &ma,
        "dev",
        "b0",
        "nud",
        "permanent",
    ]);
    Line { lab, a, b, g }
}

impl Line {
    fn umid(&self, n: u32) -> String {
        format!("{}-i{n}", self.lab.tag)
    }

    /// An xconnect guest with extra spec keys per port.
    fn start(&self, n: u32, keys0: &str, keys1: &str) -> Guest {
        let umid = format!("umid={}", self.umid(n));
        let p0 = format!("vec0:transport=raw,ifname=ga,gro=1{keys0}");
        let p1 = format!("vec1:transport=raw,ifname=gb,gro=1{keys1}");
        Guest::start(&self.lab, &self.g, "xconnect", &[&umid, &p0, &p1])
    }

    /// Debian's `uml_mconsole UMID CMD` (run in the guest's namespace: its reply socket
    /// is abstract); (exit status, output).
    fn console(&self, n: u32, cmd: &str) -> (i32, String) {
        require_tool("uml_mconsole");
        let umid = self.umid(n);
        let mut argv = vec!["uml_mconsole", umid.as_str()];
        argv.extend(cmd.split(' '));
        let out = self.lab.exec(&self.g, &argv);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Round-trip times (ms) of `count` pings from A to B.
    fn ping_ms(&self, count: u32) -> Vec<f64> {
        require_tool("ping");
        let out = self.lab.exec(
            &self.a,
            &[
                "ping",
                "-c",
                &count.to_string(),
                "-i",
                "0.05",
                "-W",
                "2",
                B_IP,
            ],
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split("time=").nth(1))
            .filter_map(|t| t.split_whitespace().next()?.parse().ok())
            .collect()
    }
}

/// Run `f` on a thread inside namespace `ns`.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
}

/// A UDP receiver on B: the sequence numbers of the datagrams it gets, in arrival
/// order, once `stop` is set and nothing came for half a second.
fn receiver(l: &Line, port: u16) -> (Arc<AtomicBool>, JoinHandle<Vec<u64>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready) = mpsc::channel();
    let s = stop.clone();
    let h = in_ns(&l.b, move || {
        let sock = UdpSocket::bind(format!("{B_IP}:{port}")).unwrap();
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBufForce, &(16 << 20))
            .unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            match sock.recv(&mut buf) {
                Ok(n) if n >= 8 => got.push(u64::from_be_bytes(buf[..8].try_into().unwrap())),
                Ok(_) => {}
                Err(_) if s.load(Ordering::SeqCst) => return got,
                Err(_) => {}
            }
        }
    });
    ready.recv_timeout(Duration::from_secs(10)).unwrap();
    (stop, h)
}

/// Send `count` datagrams numbered 0.. from A to B's `port`, one every `gap`.
fn send(l: &Line, port: u16, count: u64, gap: Duration) -> JoinHandle<()> {
    in_ns(&l.a, move || {
        let sock = UdpSocket::bind(format!("{A_IP}:0")).unwrap();
        let to: SocketAddr = format!("{B_IP}:{port}").parse().unwrap();
        let start = Instant::now();
        let mut payload = [0x5au8; 100];
        for n in 0..count {
            payload[..8].copy_from_slice(&n.to_be_bytes());
            // Paced on the clock, not by sleeping per frame (sleeps run long).
            while start.elapsed() < gap * n as u32 {
                std::hint::spin_loop();
            }
            sock.send_to(&payload, to).unwrap();
        }
    })
}

/// One direction's impairment counters from a guest report.
fn impair(r: &serde_json::Value, port: usize, dir: &str) -> serde_json::Value {
    r["ports"][port]["impair"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["direction"] == dir))
        .cloned()
        .unwrap_or_else(|| panic!("no {dir} impairment on port {port}: {r}"))
}

fn dropped(im: &serde_json::Value, reason: &str) -> u64 {
    im["dropped"][reason]
        .as_u64()
        .unwrap_or_else(|| panic!("no {reason} drops in {im}"))
}

fn counter(im: &serde_json::Value, name: &str) -> u64 {
    im[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {name} in {im}"))
}

#[test]
fn constant_delay_seen_by_ping_is_never_below_the_setting() {
    let l = line();
    // A→B: 15 ms (vec0 rx) + 10 ms (vec1 tx); B→A: 5 ms (vec0 tx): 30 ms round trip.
    let g = l.start(0, ",rx_delay=15ms,tx_delay=5ms", ",tx_delay=10ms");
    let rtt = l.ping_ms(30);
    assert_eq!(rtt.len(), 30, "every ping answered: {rtt:?}");
    let mut sorted = rtt.clone();
    sorted.sort_by(f64::total_cmp);
    assert!(sorted[0] >= 30.0, "a reply came early: {rtt:?}");
    // Late is allowed on a loaded box, but not by a whole tick.
    assert!(
        sorted[15] < 30.0 + 10.0,
        "median {} ms: {rtt:?}",
        sorted[15]
    );
    let (rc, out) = l.console(0, "impair vec1");
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("vec1 tx: delay=10ms"), "{out}");
    let r = g.stop();
    for (port, dir) in [(0, "rx"), (0, "tx"), (1, "tx")] {
        let im = impair(&r, port, dir);
        assert!(counter(&im, "delayed") >= 30, "{port} {dir}: {im}");
        assert_eq!(
            counter(&im, "frames_in"),
            counter(&im, "frames_out"),
            "{im}"
        );
    }
}

#[test]
fn loss_over_twenty_thousand_frames_is_inside_the_binomial_band() {
    let l = line();
    let g = l.start(0, ",rx_loss=10%", "");
    let before = l.lab.counter(&l.b, "b0", "rx_packets");
    let (stop, rx) = receiver(&l, 7001);
    send(&l, 7001, 20_000, Duration::from_micros(50))
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let got = rx.join().unwrap();
    let r = g.stop();
    let im = impair(&r, 0, "rx");
    let n = counter(&im, "frames_in");
    let k = dropped(&im, "loss");
    assert_eq!(n, 20_000, "only the test's frames were judged: {im}");
    let band = 3.29 * (n as f64 * 0.1 * 0.9).sqrt();
    assert!(
        (k as f64 - n as f64 * 0.1).abs() <= band,
        "{k} of {n} lost, outside 2000 ± {band:.0}"
    );
    // What the stage let through reached B.
    let delivered = l.lab.counter(&l.b, "b0", "rx_packets") - before;
    assert_eq!(delivered, n - k, "{im}");
    assert_eq!(got.len() as u64, n - k);
}

/// Sequence numbers of the datagrams lost by one guest run with `keys` on vec1 tx.
fn lost_in_run(l: &Line, n: u32, keys: &str, count: u64) -> Vec<u64> {
    let g = l.start(n, "", keys);
    let (stop, rx) = receiver(l, 7002);
    send(l, 7002, count, Duration::from_micros(200))
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let got: std::collections::BTreeSet<u64> = rx.join().unwrap().into_iter().collect();
    let r = g.stop();
    let im = impair(&r, 1, "tx");
    assert_eq!(counter(&im, "frames_in"), count, "{im}");
    assert_eq!(got.len() as u64 + dropped(&im, "loss"), count, "{im}");
    (0..count).filter(|s| !got.contains(s)).collect()
}

#[test]
fn a_seeded_run_drops_exactly_the_same_frames_twice() {
    let l = line();
    let count = 3000;
    let first = lost_in_run(&l, 0, ",tx_loss=20%,tx_seed=42", count);
    let second = lost_in_run(&l, 1, ",tx_loss=20%,tx_seed=42", count);
    assert_eq!(first, second);
    assert!(first.len() > 400 && first.len() < 800, "{}", first.len());
    // And they are the frames the model itself drops with that seed: the guest judged
    // frame i with loss draw i.
    let p = Params::default()
        .apply(&Change::parse_words(["loss=20%", "seed=42"]).unwrap())
        .unwrap();
    let mut model = Stage::new(p).unwrap();
    let mut kept = Vec::new();
    for i in 0..count {
        let id = model.offer(0, &[0u8; 64], &Default::default(), 1514);
        model.release(0, 1, |_, _, id| {
            kept.push(id);
            true
        });
        assert_eq!(id, i);
    }
    let modelled: Vec<u64> = (0..count).filter(|i| !kept.contains(i)).collect();
    assert_eq!(first, modelled);
    let other = lost_in_run(&l, 2, ",tx_loss=20%,tx_seed=43", count);
    assert_ne!(first, other, "another seed drops other frames");
}

/// iperf3 UDP from A to B at `offered` bit/s of `len`-byte datagrams for `secs`: the
/// rate B received (bit/s of UDP payload).
fn iperf3_udp(l: &mut Line, offered: &str, len: u32, secs: u32) -> f64 {
    require_tool("iperf3");
    let port = 5201 + (std::process::id() % 1000) as u16;
    let (a, b) = (l.a.clone(), l.b.clone());
    l.lab.spawn(
        &b,
        &["iperf3", "-s", "-1", "-B", B_IP, "-p", &port.to_string()],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = l.lab.exec(
            &a,
            &[
                "iperf3",
                "-c",
                B_IP,
                "-p",
                &port.to_string(),
                "-u",
                "-b",
                offered,
                "-l",
                &len.to_string(),
                "-t",
                &secs.to_string(),
                "-J",
            ],
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(bps) = v["end"]["sum_received"]["bits_per_second"].as_f64() {
            return bps;
        }
        assert!(Instant::now() < deadline, "iperf3: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn iperf3_through_a_rate_limit_measures_the_rate() {
    // UDP offered at 1.5× the rate keeps the bottleneck queue full: what B receives is
    // the link rate times the payload share of each 1442-byte frame.
    let mut l = line();
    let g = l.start(0, "", ",tx_rate=20mbit,tx_queue=200ms");
    let bps = iperf3_udp(&mut l, "30M", 1400, 5);
    let want = 20e6 * 1400.0 / 1442.0;
    assert!(
        (bps / want - 1.0).abs() <= 0.05,
        "iperf3 {:.2} Mbit/s, want {:.2} ± 5 %",
        bps / 1e6,
        want / 1e6
    );
    let r = g.stop();
    let im = impair(&r, 1, "tx");
    assert!(dropped(&im, "queue_full") > 0, "the queue overflowed: {im}");
    assert!(counter(&im, "frames_out") > 5000, "{im}");
}

#[test]
fn a_live_change_under_traffic_loses_nothing_in_flight() {
    let l = line();
    let g = l.start(0, "", ",tx_delay=40ms,tx_jitter=5ms,tx_rate=50mbit");
    let (stop, rx) = receiver(&l, 7003);
    let tx = send(&l, 7003, 4000, Duration::from_micros(500));
    let changes = [
        "impair vec1 tx delay=5ms jitter=1ms",
        "impair vec1 tx rate=5mbit",
        "impair vec1 both delay=60ms",
        "impair vec1 tx jitter=default",
    ];
    for c in changes {
        std::thread::sleep(Duration::from_millis(400));
        let (rc, out) = l.console(0, c);
        assert_eq!(rc, 0, "{c}: {out}");
    }
    tx.join().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let got = rx.join().unwrap();
    assert_eq!(got.len(), 4000, "every datagram arrived");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
    // The last change is in effect: 60 ms each way on vec1 (tx and rx).
    let rtt = l.ping_ms(5);
    assert!(rtt.len() == 5 && rtt.iter().all(|t| *t >= 120.0), "{rtt:?}");
    let (_, out) = l.console(0, "impair vec1");
    assert!(out.contains("vec1 tx: delay=60ms rate=5mbit\n"), "{out}");
    let r = g.stop();
    let im = impair(&r, 1, "tx");
    assert_eq!(
        counter(&im, "frames_in"),
        counter(&im, "frames_out"),
        "{im}"
    );
    for reason in ["loss", "queue_full", "link_down", "buffer_full"] {
        assert_eq!(dropped(&im, reason), 0, "{im}");
    }
}

#[test]
fn link_down_stops_traffic_and_up_restores_it() {
    let l = line();
    let g = l.start(0, "", ",tx_delay=1ms");
    assert_eq!(l.ping_ms(3).len(), 3);
    let (rc, out) = l.console(0, "link vec1 down");
    assert!(rc == 0 && out.starts_with("OK vec1: down"), "{out}");
    assert!(
        l.ping_ms(5).is_empty(),
        "nothing passes a link that is down"
    );
    let (_, out) = l.console(0, "impair vec1");
    assert!(
        out.contains("vec1 tx: delay=1ms down=true"),
        "settings kept: {out}"
    );
    let (rc, _) = l.console(0, "link vec1 up");
    assert_eq!(rc, 0);
    assert_eq!(l.ping_ms(3).len(), 3, "up again");
    let r = g.stop();
    assert!(dropped(&impair(&r, 1, "tx"), "link_down") >= 5, "{r}");
}

#[test]
fn corruption_reaches_the_receiver_with_wrong_checksums_and_tcp_survives_loss() {
    require_tool("iperf3");
    let mut l = line();
    let g = l.start(0, ",rx_loss=0.5%,rx_corrupt=0.5%", "");
    let (a, b) = (l.a.clone(), l.b.clone());
    let bps = l.lab.iperf3(&b, &a, B_IP, 2);
    assert!(bps > 1e6, "TCP crossed a lossy, corrupting link: {bps}");
    let r = g.stop();
    let im = impair(&r, 0, "rx");
    assert!(
        counter(&im, "corrupted") > 0 && dropped(&im, "loss") > 0,
        "{im}"
    );
    // GSO super-frames from A were judged per segment.
    assert!(counter(&im, "frames_in") > r["ports"][0]["stats"]["rx_packets"].as_u64().unwrap());
    // The flipped bits left IP or TCP checksums wrong on purpose: B's kernel saw them.
    let snmp =
        String::from_utf8_lossy(&l.lab.exec(&b, &["cat", "/proc/net/snmp"]).stdout).into_owned();
    let errors = csum_errors(&snmp);
    assert!(errors > 0, "no checksum errors at B: {snmp}");
}

/// IP header errors plus TCP/UDP checksum errors from /proc/net/snmp.
fn csum_errors(snmp: &str) -> u64 {
    let lines: Vec<&str> = snmp.lines().collect();
    let mut total = 0;
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (proto, names) = names.split_once(':').unwrap_or(("", ""));
        let values = values.split_once(':').map(|x| x.1).unwrap_or("");
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            let counted = matches!(
                (proto, n),
                ("Ip", "InHdrErrors" | "InCsumErrors")
                    | ("Tcp", "InCsumErrors")
                    | ("Udp", "InCsumErrors")
            );
            if counted {
                total += v.parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}

#[test]
fn bad_settings_on_the_command_line_exit_2_naming_the_key() {
    for (key, want) in [
        (
            "tx_delay=-5ms",
            "vec0: tx_delay: \"-5ms\" is negative; expected a duration",
        ),
        ("tx_loss=150%", "vec0: tx_loss: \"150%\" is above 100%"),
        (
            "tx_rate=10 furlongs",
            "vec0: tx_rate: \"10 furlongs\" has an unknown unit \"furlongs\"",
        ),
        (
            "rx_jitter=5ms",
            "vec0: rx_jitter: needs rx_delay (jitter spreads frames around the delay)",
        ),
        (
            "tx_dealy=5ms",
            "vec0: unknown impairment key \"tx_dealy\" (did you mean tx_delay?)",
        ),
    ] {
        let spec = format!("vec0:transport=tap,{key}");
        let (rc, out) = vecbox_out(&["guest", "xconnect", &spec, "vec1:transport=tap"]);
        assert_eq!(rc, 2, "{key}: {out}");
        assert_eq!(out.lines().count(), 1, "{key}: one line: {out}");
        assert!(
            out.starts_with(&format!("vecbox: error: {want}")),
            "{key}: {out}"
        );
    }
}

#[test]
fn bad_settings_on_the_console_change_nothing() {
    let l = line();
    let g = l.start(0, "", ",tx_delay=10ms,tx_loss=1%,tx_rate=10mbit");
    let (_, before) = l.console(0, "impair vec1");
    for (cmd, want) in [
        ("impair vec1 delay=-5ms", "ERR delay: \"-5ms\" is negative"),
        ("impair vec1 loss=150%", "ERR loss: \"150%\" is above 100%"),
        (
            "impair vec1 rate=10 furlongs",
            "ERR rate: \"10 furlongs\" has an unknown unit",
        ),
        ("impair vec1 rx jitter=5ms", "ERR jitter: needs delay"),
        (
            "impair vec1 dealy=5ms",
            "ERR unknown impairment key \"dealy\" (did you mean delay?)",
        ),
        // Valid for tx, not for rx (no delay there): both refused, tx unchanged.
        ("impair vec1 both jitter=1ms", "ERR jitter: needs delay"),
        (
            "impair vec1 queue=50ms rate=default",
            "ERR queue: needs rate",
        ),
        ("impair vec9 delay=1ms", "ERR impair: vec9 does not exist"),
        ("link vec1 sideways", "ERR usage: link [vecN [down|up]]"),
    ] {
        let (rc, out) = l.console(0, cmd);
        assert_eq!(rc, 1, "{cmd}: {out}");
        assert!(out.starts_with(want), "{cmd}: {out}");
        assert_eq!(out.trim_end().lines().count(), 1, "{cmd}: one line: {out}");
    }
    let (_, after) = l.console(0, "impair vec1");
    let settings = |s: &str| {
        s.lines()
            .filter(|l| l.contains(": "))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(settings(&before), settings(&after));
    assert!(
        after.contains("vec1 tx: delay=10ms loss=1% rate=10mbit"),
        "{after}"
    );
    drop(g);
}

/// The console's `late p50 ≤ … p99 ≤ …` comes from the lateness histogram's buckets:
/// the bound printed is the upper bound of the bucket holding that quantile.
#[test]
fn lateness_quantiles_name_the_bucket_holding_them() {
    use vecbox::impair::counters::{Hist, LATE_BOUNDS_NS};
    let mut l = Hist::<12>::default();
    assert_eq!(l.quantile_bound(&LATE_BOUNDS_NS, 0.5), None);
    // 90 frames under 1 µs late, 10 between 50 and 100 µs.
    l.record(&LATE_BOUNDS_NS, 500, 90);
    l.record(&LATE_BOUNDS_NS, 70_000, 10);
    assert_eq!(l.quantile_bound(&LATE_BOUNDS_NS, 0.5), Some(1_000));
    assert_eq!(l.quantile_bound(&LATE_BOUNDS_NS, 0.9), Some(1_000));
    assert_eq!(l.quantile_bound(&LATE_BOUNDS_NS, 0.99), Some(100_000));
    // Beyond the last bound: the unbounded bucket.
    l.record(&LATE_BOUNDS_NS, 20_000_000, 1_000);
    assert_eq!(l.quantile_bound(&LATE_BOUNDS_NS, 0.99), Some(u64::MAX));
}
