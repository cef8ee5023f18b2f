//! Micro-benchmarks of the per-packet building blocks: Internet checksum over a 64 KiB
//! super-frame, software segmentation of a 64 KiB TCP frame, and bridge FDB operations.
//!
//!   cargo bench --bench wire

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use vecbox::nf::bridge::Fdb;
use vecbox::wire::{checksum, gso, vnet};

fn tcp_frame(payload: usize) -> Vec<u8> {
    let mut out = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(1, 2, 100, 1000)
        .write(&mut out, &vec![0x5a; payload])
        .unwrap();
    out
}

fn bench(c: &mut Criterion) {
    let data = vec![0xa5u8; 65536];
    let mut g = c.benchmark_group("checksum");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("sum 64KiB", |b| {
        b.iter(|| checksum::finish(checksum::sum(black_box(&data), 0)))
    });
    g.finish();

    let frame = tcp_frame(64_000);
    let meta = vnet::Repr {
        gso_type: vnet::GsoType::TcpV4,
        gso_size: 1448,
        csum: Some(vnet::Csum {
            start: 34,
            offset: 16,
        }),
        ..vnet::Repr::NONE
    };
    let mut scratch = [0u8; gso::MAX_HEADERS];
    let mut g = c.benchmark_group("gso");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    for (name, mode) in [
        ("segment 64KB full csum", gso::CsumMode::Full),
        ("segment 64KB partial csum", gso::CsumMode::Partial),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0usize;
                gso::segment(black_box(&frame), &meta, mode, &mut scratch, |s| {
                    n += s.headers.len();
                    true
                })
                .unwrap();
                n
            })
        });
    }
    g.finish();

    let mut fdb = Fdb::new(4096, 300);
    let macs: Vec<[u8; 6]> = (0..1024u32)
        .map(|i| [2, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8])
        .collect();
    for (i, m) in macs.iter().enumerate() {
        fdb.learn(m, i % 8);
    }
    c.bench_function("fdb learn+lookup (1024 stations)", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % macs.len();
            fdb.learn(&macs[i], i % 8);
            black_box(fdb.lookup(&macs[(i * 7) % macs.len()]))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
