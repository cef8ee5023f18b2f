//! Cost of publishing counters, on the guest's side (every ≥ 5 ms while frames flow)
//! and on the reader's side (every scrape, off the data path):
//!   - one publication round of a guest with 2 and with 8 ports: the series reported to
//!     the reused `Snapshot` and copied into the shared region under the seqlock;
//!   - baseline in the same run: copying the same ports' raw `PortStats` (what any
//!     publication must at least do);
//!   - one scrape: reading the region and encoding the Prometheus text.
//!
//!   cargo bench --bench metrics

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use vecbox::metrics::PortStats;
use vecbox::metrics::collect::GuestCollector;
use vecbox::metrics::names::{self, GuestInfo, PortLabels};
use vecbox::metrics::region::RegionWriter;
use vecbox::metrics::sink::Snapshot;

fn round(snap: &mut Snapshot, region: &mut RegionWriter, ports: &[(String, PortStats)]) {
    snap.begin();
    names::guest(
        snap,
        GuestInfo {
            function: "xconnect",
            start_time: 0.0,
            restarts: 0,
            stopped: false,
            ports: ports.len(),
            console_requests: 0,
            console_errors: 0,
        },
    );
    for (name, st) in ports {
        names::port(
            snap,
            PortLabels {
                iface: name,
                transport: "raw",
                host_if: "veth0",
            },
            st,
            true,
            false,
        );
    }
    snap.end();
    region.publish(snap);
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("vbbmetrics{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut g = c.benchmark_group("metrics");
    for n in [2usize, 8] {
        let path = dir.join(format!("r{n}"));
        let _ = std::fs::remove_file(&path);
        let mut region = RegionWriter::create(&path).unwrap();
        let mut snap = Snapshot::default();
        let mut ports: Vec<(String, PortStats)> = (0..n)
            .map(|i| (format!("vec{i}"), PortStats::default()))
            .collect();
        for (_, s) in &mut ports {
            s.rx_batch.record(64);
        }
        round(&mut snap, &mut region, &ports);
        g.bench_function(format!("publish round, {n} ports"), |b| {
            b.iter(|| {
                ports[0].1.rx_packets += 1;
                round(&mut snap, &mut region, black_box(&ports));
            })
        });
        let mut copy = vec![PortStats::default(); n];
        g.bench_function(format!("baseline: copy PortStats, {n} ports"), |b| {
            b.iter(|| {
                for (d, (_, s)) in copy.iter_mut().zip(black_box(&ports)) {
                    *d = *s;
                }
                black_box(&copy);
            })
        });
        let coll = GuestCollector::new();
        coll.add("lab", "g1", path.clone());
        g.bench_function(format!("scrape (read + encode), {n} ports"), |b| {
            b.iter(|| black_box(coll.encode().len()))
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
