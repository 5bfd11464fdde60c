//! Criterion benchmarks of WeftKitKV against the raw engines underneath, in the same run:
//! `cargo bench -p weftkit-kv --bench kv`. For p50/p99 and throughput with several threads, see
//! the `latency` bench.

mod support;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use support::{KEYS, engines};

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let engines = engines(dir.path());
    let mut get = c.benchmark_group("point_get");
    for engine in &engines {
        let mut i = 0u64;
        get.bench_with_input(BenchmarkId::from_parameter(engine.name()), engine, |b, e| {
            b.iter(|| {
                i = (i + 7919) % KEYS;
                assert!(e.get(i).is_some());
            })
        });
    }
    get.finish();
    let mut scan = c.benchmark_group("range_scan_1000");
    for engine in &engines {
        let mut i = 0u64;
        scan.bench_with_input(BenchmarkId::from_parameter(engine.name()), engine, |b, e| {
            b.iter(|| {
                i = (i + 7919) % (KEYS - 1000);
                assert_eq!(e.scan(i), 1000);
            })
        });
    }
    scan.finish();
    let mut put = c.benchmark_group("synced_put");
    put.sample_size(30);
    for engine in &engines {
        let mut i = KEYS;
        put.bench_with_input(BenchmarkId::from_parameter(engine.name()), engine, |b, e| {
            b.iter(|| {
                i += 1;
                e.synced_put(i);
            })
        });
    }
    put.finish();
}

criterion_group!(kv, benches);
criterion_main!(kv);
