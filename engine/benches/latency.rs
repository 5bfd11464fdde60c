//! Latency percentiles and throughput of WeftKitKV and of the raw engines underneath, measured
//! in the same run: `cargo bench -p weftkit-kv --bench latency`. Prints Markdown tables with
//! the ratio of each WeftKitKV mode to its raw engine. `WEFTKIT_BENCH_SECONDS` sets each
//! measurement's length (default 2).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use support::{Engine, KEYS, engines};

#[derive(Clone, Copy)]
struct Measured {
    p50_us: f64,
    p99_us: f64,
    ops_per_sec: f64,
}

/// Runs `op` on `threads` threads for `seconds`, recording every call's latency.
fn measure(engine: &Engine, threads: usize, seconds: f64, op: fn(&Engine, u64)) -> Measured {
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (engine, counter) = (engine.clone(), counter.clone());
            std::thread::spawn(move || {
                let mut histogram = Histogram::<u64>::new(3).unwrap();
                let mut i = t as u64 * 104_729;
                while Instant::now() < deadline {
                    i = i.wrapping_add(7919);
                    let start = Instant::now();
                    op(&engine, i);
                    histogram.record(start.elapsed().as_nanos() as u64).unwrap();
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                histogram
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new(3).unwrap();
    for h in handles {
        all.add(h.join().unwrap()).unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    Measured {
        p50_us: all.value_at_quantile(0.50) as f64 / 1000.0,
        p99_us: all.value_at_quantile(0.99) as f64 / 1000.0,
        ops_per_sec: counter.load(Ordering::Relaxed) as f64 / elapsed,
    }
}

fn get(engine: &Engine, i: u64) {
    assert!(engine.get(i % KEYS).is_some());
}

fn scan(engine: &Engine, i: u64) {
    assert_eq!(engine.scan(i % (KEYS - 1000)), 1000);
}

/// Fresh keys above the loaded ones, distinct per call.
fn put(engine: &Engine, _i: u64) {
    static NEXT: AtomicU64 = AtomicU64::new(KEYS);
    engine.synced_put(NEXT.fetch_add(1, Ordering::Relaxed));
}

/// A measurement: its label, threads, and the operation each thread repeats.
type Case = (&'static str, usize, fn(&Engine, u64));

#[allow(clippy::print_stdout)]
fn main() {
    let seconds: f64 =
        std::env::var("WEFTKIT_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let dir = tempfile::tempdir().unwrap();
    let engines = engines(dir.path());
    let cases: [Case; 5] = [
        ("point get, 1 thread", 1, get),
        ("point get, 2 threads", 2, get),
        ("synced put, 1 writer", 1, put),
        ("synced put, 16 writers", 16, put),
        ("1000-key range scan", 1, scan),
    ];
    println!("| operation | engine | p50 µs | p99 µs | ops/s | p99 ÷ raw | ops/s ÷ raw |");
    println!("|---|---|---|---|---|---|---|");
    for (label, threads, op) in cases {
        // Raw engine first, then ours on top of it: fjall, ours lsm, redb, ours btree.
        let mut raw = None;
        for engine in &engines {
            let m = measure(engine, threads, seconds, op);
            let is_raw = !matches!(engine, Engine::Ours(_));
            let (p99_ratio, ops_ratio) = match (is_raw, raw) {
                (false, Some(r)) => {
                    let r: Measured = r;
                    (
                        format!("{:.2}", m.p99_us / r.p99_us),
                        format!("{:.2}", m.ops_per_sec / r.ops_per_sec),
                    )
                }
                _ => ("".into(), "".into()),
            };
            if is_raw {
                raw = Some(m);
            }
            println!(
                "| {label} | {} | {:.1} | {:.1} | {:.0} | {p99_ratio} | {ops_ratio} |",
                engine.name(),
                m.p50_us,
                m.p99_us,
                m.ops_per_sec
            );
        }
    }
}
