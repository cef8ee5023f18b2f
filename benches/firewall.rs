//! Firewall rule lookup: the indexed classifier against a linear first-match scan, for
//! rule sets of 1, 100, 1000 and 10000 rules, and the whole per-packet path (parse,
//! conntrack, lookup, counters) for an established flow behind 1000 rules.
//!
//! Run: cargo bench --bench firewall
//! Figures are only meaningful as ratios measured in the same run.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use vecbox::nf::firewall::{Firewall, classify::Classifier, rules};
use vecbox::nf::testing::Recorder;

/// `n` rules like a real policy: per-service TCP rules for /24 networks, then a
/// catch-all for the client network.
fn rule_text(n: usize) -> String {
    let mut s = String::from("accept ct established,related\n");
    for i in 0..n.saturating_sub(2) {
        s += &format!(
            "accept proto tcp dst 10.{}.{}.0/24 dport {} ct new\n",
            (i / 256) % 256,
            i % 256,
            1000 + i % 50000
        );
    }
    s += "accept in vec0 src 192.168.0.0/16\n";
    s
}

fn names() -> Vec<String> {
    vec!["vec0".into(), "vec1".into()]
}

fn packet() -> rules::Packet {
    // Matches only the last rule: the worst case for a scan.
    rules::Packet {
        in_port: 0,
        out_port: Some(1),
        v6: false,
        src: u128::from(u32::from_be_bytes([192, 168, 1, 1])),
        dst: u128::from(u32::from_be_bytes([172, 16, 0, 1])),
        proto: 6,
        ports: Some((40000, 443)),
        icmp_type: None,
        ct: rules::ct::NEW,
    }
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("firewall_lookup");
    for n in [1usize, 100, 1000, 10000] {
        let set = rules::parse("bench", &rule_text(n), &names()).unwrap();
        let cls = Classifier::new(set.rules);
        let p = packet();
        assert_eq!(cls.lookup(&p), cls.scan(&p));
        g.bench_with_input(BenchmarkId::new("indexed", n), &p, |b, p| {
            b.iter(|| std::hint::black_box(cls.lookup(std::hint::black_box(p))))
        });
        if n <= 1000 {
            g.bench_with_input(BenchmarkId::new("linear_scan", n), &p, |b, p| {
                b.iter(|| std::hint::black_box(cls.scan(std::hint::black_box(p))))
            });
        }
    }
    g.finish();
}

fn frame() -> Vec<u8> {
    let mut v = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([192, 168, 1, 1], [172, 16, 0, 1], 64)
        .tcp(40000, 443, 1, 1000)
        .ack(1)
        .write(&mut v, &[0u8; 18])
        .unwrap();
    v
}

fn whole_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("firewall_process");
    for n in [1usize, 1000] {
        let set = rules::parse("bench", &rule_text(n), &names()).unwrap();
        let mut fw = Firewall::with_rules(set, 2, false, 65536, 300);
        let mut rec = Recorder::new(2);
        // Open the connection (SYN from the client) so later packets are established.
        let mut syn = frame();
        syn[47] = 0x02;
        rec.feed(&mut fw, 0, &[&syn]);
        let f = frame();
        g.bench_function(BenchmarkId::new("established_64B", n), |b| {
            b.iter(|| {
                rec.feed(&mut fw, 0, &[&f]);
                rec.clear();
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    targets = lookup, whole_path
}
criterion_main!(benches);
