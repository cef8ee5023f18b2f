//! Firewall classification and the whole per-packet path, on the rule sets `vecbox
//! bench` uses (`vecbox::bench::rulesets`, the one generator of them): `own-port`:
//! every rule on the traffic's protocol and port, distinct source prefixes; `mixed`: a
//! ClassBench-like access list from a fixed seed; `ct-states` (`ct_state_file`): rules
//! on the traffic's port that differ from it only in their `ct` states, or in source
//! and states; `flow-only`: the traffic's rule alone (the base cost). In every set the
//! rule that matches the traffic is the last one; all but `flow-only` at 10, 100, 1000
//! and 10 000 rules.
//!
//! Groups:
//! - `classify/SHAPE/RULES`: the classifier alone, cold (no verdict cache), one lookup
//!   per iteration over 1024 different flows;
//! - `scan/SHAPE/RULES`: the linear first-match scan, the baseline of the same run;
//! - `packet/SHAPE/RULES/FLOWS`: the whole per-packet path (parse, connection tracking,
//!   remembered verdict or classifier, counters) of 64-byte UDP frames from 1, 10 000
//!   and 100 000 concurrent flows, all tracked before measuring;
//! - `build/SHAPE/RULES`: compiling the rules into trees (off the packet path);
//! - `new_flow/SHAPE/RULES`: the same path when every packet starts a new flow (the
//!   table full and evicting): the classifier runs for every packet.
//!
//! Run: cargo bench --bench firewall [-- FILTER]
//! Instruction counts (independent of machine load), per lookup or per packet:
//!   cargo bench --bench firewall --no-run   # then run the binary it names with
//!   valgrind --tool=callgrind --toggle-collect='*measured*' BENCH_BINARY --instructions classify own-port 1000 100000
//! (`--instructions scan SHAPE RULES COUNT` for the linear scan, `--instructions packet
//! SHAPE RULES COUNT FLOWS` for the whole path of established flows, `--instructions
//! new_flow SHAPE RULES COUNT` for new flows; divide Ir by COUNT).
//! Memory and tree shapes: BENCH_BINARY --stats.
//! Figures are only meaningful as ratios measured in the same run.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use vecbox::bench::rulesets::{ct_state_file, flow_packet, rule_file};
use vecbox::bench::scenario::Rules;
use vecbox::bench::traffic::{DPORT, DST_IP, flow_source};
use vecbox::buf::{Frame, Pool};
use vecbox::metrics::DropReason;
use vecbox::nf::firewall::classify::Classifier;
use vecbox::nf::firewall::rules::{self, Packet};
use vecbox::nf::firewall::{CONNTRACK_MAX, Firewall};
use vecbox::nf::{Function, Output};
use vecbox::wire::{checksum, vnet};

const BATCH: usize = 32;

/// A rule-set scenario: one of `vecbox bench`'s sets, or the `ct`-state set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Bench(Rules),
    CtStates,
}

impl Shape {
    const ALL: [Shape; 4] = [
        Shape::Bench(Rules::One),
        Shape::Bench(Rules::Port),
        Shape::Bench(Rules::Mixed),
        Shape::CtStates,
    ];

    fn name(self) -> &'static str {
        match self {
            Shape::Bench(Rules::One) => "flow-only",
            Shape::Bench(Rules::Port) => "own-port",
            Shape::Bench(Rules::Mixed) => "mixed",
            Shape::CtStates => "ct-states",
        }
    }

    /// The rule file with `n` rules.
    fn text(self, n: usize) -> String {
        match self {
            Shape::Bench(r) => rule_file(r, n),
            Shape::CtStates => ct_state_file(n),
        }
    }

    /// Rule counts to measure: the flow-only set has one rule whatever is asked.
    fn counts(self, sizes: &[usize]) -> Vec<usize> {
        if self == Shape::Bench(Rules::One) {
            vec![1]
        } else {
            sizes.to_vec()
        }
    }
}

impl std::str::FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Shape, String> {
        Shape::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                format!("unknown rule set `{s}`; use own-port, mixed, ct-states or flow-only")
            })
    }
}

struct Sizes {
    rules: &'static [usize],
    flows: &'static [usize],
    /// Distinct packets the classification benchmark cycles through.
    packets: usize,
    /// Connections tracked before the `new_flow` benchmark.
    table: usize,
}

const FULL: Sizes = Sizes {
    rules: &[10, 100, 1000, 10_000],
    flows: &[1, 10_000, 100_000],
    packets: 1024,
    table: CONNTRACK_MAX,
};
/// Under `cargo test --all-targets` (no `--bench`): a small run that checks the setup.
const SMOKE: Sizes = Sizes {
    rules: &[10, 100],
    flows: &[1, 100],
    packets: 64,
    table: 100,
};

/// Flows of the many-flow traffic the classification benchmark draws packets from.
const FLOWS: u32 = 100_000;

fn names() -> Vec<String> {
    vec!["vec0".into(), "vec1".into()]
}

fn rule_set(shape: Shape, n: usize) -> rules::RuleSet {
    let text = shape.text(n);
    rules::parse("bench", &text, &names()).expect("generated rules parse")
}

/// Packets of `count` different flows spread over the 100 000 of the many-flow traffic.
fn packets(count: usize) -> Vec<Packet> {
    (0..count)
        .map(|i| flow_packet(FLOWS, (i * 97) as u32 % FLOWS))
        .collect()
}

/// A classifier for `shape` with `n` rules, checked to pick the last rule for every
/// flow, exactly as the scan does.
fn classifier(shape: Shape, n: usize, pk: &[Packet]) -> Classifier {
    let cls = Classifier::new(rule_set(shape, n).rules);
    let last = cls.rules().len() - 1;
    for p in pk {
        assert_eq!(cls.lookup(p), Some(last), "{} {n}: {p:?}", shape.name());
        assert_eq!(cls.scan(p), Some(last));
    }
    cls
}

#[inline(never)]
fn measured_lookups(cls: &Classifier, pk: &[Packet], count: usize) -> usize {
    let mut sum = 0;
    for i in 0..count {
        sum += black_box(cls.lookup(black_box(&pk[i % pk.len()]))).unwrap_or(0);
    }
    sum
}

#[inline(never)]
fn measured_scans(cls: &Classifier, pk: &[Packet], count: usize) -> usize {
    let mut sum = 0;
    for i in 0..count {
        sum += black_box(cls.scan(black_box(&pk[i % pk.len()]))).unwrap_or(0);
    }
    sum
}

/// Counts what the firewall does with frames; releases every buffer.
struct Sink {
    pool: Pool,
    forwarded: u64,
    dropped: u64,
}

impl Output for Sink {
    fn ports(&self) -> usize {
        2
    }
    fn frame(&self, f: &Frame) -> &[u8] {
        self.pool.frame(f)
    }
    fn frame_mut(&mut self, f: &Frame) -> &mut [u8] {
        self.pool.frame_mut(f)
    }
    fn alloc(&mut self, len: usize) -> Option<Frame> {
        let buf = self.pool.alloc()?;
        Some(Frame {
            buf,
            off: 0,
            len: len as u32,
            vnet: vnet::Repr::default(),
        })
    }
    fn forward(&mut self, _port: usize, f: Frame) {
        self.forwarded += 1;
        self.pool.release(f.buf);
    }
    fn flood(&mut self, _from: usize, f: Frame) {
        self.forwarded += 1;
        self.pool.release(f.buf);
    }
    fn discard(&mut self, f: Frame, _reason: DropReason) {
        self.dropped += 1;
        self.pool.release(f.buf);
    }
}

/// 64-byte UDP frames of the benchmark flows (`flow_source`), written in place.
struct Frames {
    template: Vec<u8>,
    /// Flows the traffic spreads over.
    flows: u32,
}

impl Frames {
    fn new(flows: u32) -> Frames {
        let mut template = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], DST_IP, 64)
            .udp(1024, DPORT)
            .write(&mut template, &[0u8; 18])
            .unwrap();
        template[40..42].copy_from_slice(&[0, 0]); // no UDP checksum
        Frames { template, flows }
    }

    /// Put flow `i`'s frame into a buffer.
    fn write(&self, sink: &mut Sink, i: usize) -> Frame {
        let buf = sink.pool.alloc().expect("pool");
        let b = &mut sink.pool.buf_mut(buf)[..self.template.len()];
        b.copy_from_slice(&self.template);
        let (src, sport) = flow_source(self.flows, (i % self.flows as usize) as u32);
        b[26..30].copy_from_slice(&src);
        b[34..36].copy_from_slice(&sport.to_be_bytes());
        checksum::set_ipv4_header_checksum(&mut b[14..34]).expect("IPv4 header");
        Frame {
            buf,
            off: 0,
            len: self.template.len() as u32,
            vnet: vnet::Repr::default(),
        }
    }
}

/// A firewall with `n` rules of `shape` that has seen each of `seen` flows (of traffic
/// over `flows` flows) once.
fn firewall(shape: Shape, n: usize, seen: usize, flows: u32) -> (Firewall, Sink, Frames) {
    let set = rule_set(shape, n);
    let last = set.rules.len() - 1;
    let mut fw = Firewall::with_rules(set, 2, false, CONNTRACK_MAX, 300);
    let mut sink = Sink {
        pool: Pool::new(4 * BATCH, 128),
        forwarded: 0,
        dropped: 0,
    };
    let frames = Frames::new(flows);
    let mut i = 0;
    while i < seen {
        let k = BATCH.min(seen - i);
        send(&mut fw, &mut sink, &frames, i, k);
        i += k;
    }
    assert_eq!(fw.connections(), seen, "every flow tracked");
    let hits = fw.rule_counters();
    assert_eq!(hits[last].1, seen as u64, "every flow on the last rule");
    assert_eq!(sink.dropped, 0);
    (fw, sink, frames)
}

/// Send frames of flows `first..first + k` (modulo the traffic's flows).
#[inline(never)]
fn send(fw: &mut Firewall, sink: &mut Sink, frames: &Frames, first: usize, k: usize) {
    let mut batch = [Frame {
        buf: vecbox::buf::BufId(0),
        off: 0,
        len: 0,
        vnet: vnet::Repr::default(),
    }; BATCH];
    for (j, f) in batch[..k].iter_mut().enumerate() {
        *f = frames.write(sink, first + j);
    }
    fw.process(0, &batch[..k], sink);
}

/// Send `count` frames of flows `first..`.
#[inline(never)]
fn measured_packets(
    fw: &mut Firewall,
    sink: &mut Sink,
    frames: &Frames,
    first: usize,
    count: usize,
) {
    let mut i = 0;
    while i < count {
        send(fw, sink, frames, first + i, BATCH);
        i += BATCH;
    }
}

fn bench_classify(c: &mut Criterion, s: &Sizes) {
    let pk = packets(s.packets);
    // The classifier and the linear scan over the same rules, one after the other in
    // the same run: compare `classify/X/N` with `scan/X/N`.
    for (group, scan) in [("classify", false), ("scan", true)] {
        let mut g = c.benchmark_group(group);
        for shape in Shape::ALL {
            for n in shape.counts(s.rules) {
                let cls = classifier(shape, n, &pk);
                let mut i = 0;
                g.bench_function(BenchmarkId::new(shape.name(), n), |b| {
                    b.iter(|| {
                        i = (i + 1) % pk.len();
                        let p = black_box(&pk[i]);
                        black_box(if scan { cls.scan(p) } else { cls.lookup(p) })
                    })
                });
            }
        }
        g.finish();
    }
}

/// Building the trees (at start and after the rules are re-read, off the packet path).
fn bench_build(c: &mut Criterion, s: &Sizes) {
    let mut g = c.benchmark_group("build");
    g.sample_size(10);
    for shape in Shape::ALL {
        for n in shape.counts(s.rules) {
            let set = rule_set(shape, n).rules;
            g.bench_function(BenchmarkId::new(shape.name(), n), |b| {
                b.iter(|| black_box(Classifier::new(black_box(set.clone()))))
            });
        }
    }
    g.finish();
}

/// `--stats`: the shape and memory of the classifier for every set and size, and of
/// the connection table (deterministic: no timing).
fn stats() {
    for shape in Shape::ALL {
        for n in shape.counts(FULL.rules) {
            let s = Classifier::new(rule_set(shape, n).rules).stats();
            let t = &s.trees[0];
            println!(
                "{} {n}: {} bytes, {} IPv4 trees, depth <= {}, largest leaf {}, leaf entries {}",
                shape.name(),
                s.bytes,
                t.len(),
                t.iter().map(|t| t.depth).max().unwrap_or(0),
                t.iter().map(|t| t.largest_leaf).max().unwrap_or(0),
                t.iter().map(|t| t.entries).sum::<usize>(),
            );
        }
    }
    let ct = vecbox::nf::firewall::conntrack::Conntrack::new(CONNTRACK_MAX);
    println!("conntrack {CONNTRACK_MAX}: {} bytes", ct.bytes());
}

fn bench_packet(c: &mut Criterion, s: &Sizes) {
    let mut g = c.benchmark_group("packet");
    g.throughput(Throughput::Elements(BATCH as u64));
    for shape in Shape::ALL {
        for n in shape.counts(s.rules) {
            for &flows in s.flows {
                let (mut fw, mut sink, frames) = firewall(shape, n, flows, flows as u32);
                let mut i = 0;
                let id = BenchmarkId::new(format!("{}/{n}", shape.name()), flows);
                g.bench_function(id, |b| {
                    b.iter(|| {
                        send(&mut fw, &mut sink, &frames, i, BATCH);
                        i = (i + BATCH) % flows;
                    })
                });
                assert_eq!(sink.dropped, 0);
            }
        }
    }
    g.finish();
    // Every packet a new flow, the table full: 4 times as many flows as it holds, in
    // turn, so each packet evicts the oldest connection.
    let mut g = c.benchmark_group("new_flow");
    g.throughput(Throughput::Elements(BATCH as u64));
    let flows = 4 * CONNTRACK_MAX;
    for shape in Shape::ALL {
        for n in shape.counts(s.rules) {
            let (mut fw, mut sink, frames) = firewall(shape, n, s.table, flows as u32);
            let mut i = s.table;
            g.bench_function(BenchmarkId::new(shape.name(), n), |b| {
                b.iter(|| {
                    send(&mut fw, &mut sink, &frames, i, BATCH);
                    i = (i + BATCH) % flows;
                })
            });
        }
    }
    g.finish();
}

/// `--instructions classify|scan SHAPE RULES COUNT`, `--instructions packet SHAPE RULES
/// COUNT FLOWS` or `--instructions new_flow SHAPE RULES COUNT`: run only that, for
/// callgrind (see the top of the file).
fn instructions(args: &[String]) {
    let usage = "--instructions classify|scan|packet|new_flow own-port|mixed|ct-states|flow-only RULES COUNT [FLOWS]";
    let what = args.first().map(String::as_str).expect(usage);
    let shape: Shape = args.get(1).expect(usage).parse().unwrap();
    let n: usize = args.get(2).and_then(|v| v.parse().ok()).expect(usage);
    let count: usize = args.get(3).and_then(|v| v.parse().ok()).expect(usage);
    match what {
        "classify" | "scan" => {
            let pk = packets(FULL.packets);
            let cls = classifier(shape, n, &pk);
            println!("{:?}", cls.stats());
            if what == "scan" {
                println!("{}", measured_scans(&cls, &pk, count));
            } else {
                println!("{}", measured_lookups(&cls, &pk, count));
            }
        }
        "packet" => {
            let flows: usize = args.get(4).and_then(|v| v.parse().ok()).expect(usage);
            let (mut fw, mut sink, frames) = firewall(shape, n, flows, flows as u32);
            measured_packets(&mut fw, &mut sink, &frames, 0, count);
            println!("forwarded {} dropped {}", sink.forwarded, sink.dropped);
        }
        "new_flow" => {
            let flows = 4 * CONNTRACK_MAX as u32;
            let (mut fw, mut sink, frames) = firewall(shape, n, CONNTRACK_MAX, flows);
            measured_packets(&mut fw, &mut sink, &frames, CONNTRACK_MAX, count);
            let s = fw.summary();
            let ev = s.iter().find(|(k, _)| *k == "conntrack_evictions").unwrap();
            println!(
                "forwarded {} dropped {} evictions {}",
                sink.forwarded, sink.dropped, ev.1
            );
        }
        _ => panic!("{usage}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--instructions") {
        return instructions(&args[i + 1..]);
    }
    if args.iter().any(|a| a == "--stats") {
        return stats();
    }
    // `cargo test --all-targets` runs this without `--bench`: check the small sizes.
    let sizes = if args.iter().any(|a| a == "--bench") {
        &FULL
    } else {
        &SMOKE
    };
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
        .configure_from_args();
    bench_classify(&mut c, sizes);
    bench_build(&mut c, sizes);
    bench_packet(&mut c, sizes);
    c.final_summary();
}
