//! Persistence costs of the server, each against the raw store speed measured in the same run:
//! `cargo bench -p weftkit-kv-server --bench persistence`.
//!
//! - persist (snapshot export + upload) and restore (download + verify + import) of 100 MB and
//!   1 GB of state, through the self-hosted function on a local directory, against writing and
//!   reading the same bytes straight to and from that directory;
//! - the delta after changing one key of the largest state;
//! - the final flush after 15 minutes of writes at a steady rate.
//!
//! `WEFTKIT_BENCH_SIZES_MB` (default `100,1024`), `WEFTKIT_BENCH_RATE` (writes per second,
//! default 200) and `WEFTKIT_BENCH_ITEM_BYTES` (default 1024) change the workload. Prints
//! Markdown tables.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use weftkit_kv::{Database, Options, WriteBatch, WriteOptions};
use wkp1_client::SegmentFile;
use wkp1_testkit::{Backend, Server};

const FAMILY: &str = "bench";
const VALUE_BYTES: usize = 4096;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A value that compresses about 2:1, like typical item data.
fn value(rng: &mut rand::rngs::StdRng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill(&mut v[..len / 2]);
    for (i, b) in v[len / 2..].iter_mut().enumerate() {
        *b = b"weftkit "[i % 8];
    }
    v
}

fn fill(db: &Database, bytes: u64) -> u64 {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let (mut written, mut i) = (0u64, 0u64);
    while written < bytes {
        let mut batch = WriteBatch::new();
        for _ in 0..256 {
            batch.put(FAMILY, format!("key/{i:012}").into_bytes(), value(&mut rng, VALUE_BYTES));
            written += VALUE_BYTES as u64;
            i += 1;
        }
        db.write(&batch, WriteOptions::default()).unwrap();
    }
    i
}

fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds
}

/// The raw store speed for the same bytes: writing them to a file in `dir` (synced), the floor
/// of a persist, and copying that file to a new one (synced), the floor of a restore, which
/// reads the stored bytes and writes them to the volume.
fn raw_store(dir: &Path, bytes: u64) -> (f64, f64) {
    let path = dir.join("raw-baseline");
    let copy = dir.join("raw-baseline-copy");
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let chunk = value(&mut rng, 1 << 20);
    let started = Instant::now();
    let mut file = std::fs::File::create(&path).unwrap();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    file.sync_all().unwrap();
    let write = started.elapsed().as_secs_f64();
    let started = Instant::now();
    std::fs::copy(&path, &copy).unwrap();
    std::fs::File::open(&copy).unwrap().sync_all().unwrap();
    let read = started.elapsed().as_secs_f64();
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(&copy).unwrap();
    (write, read)
}

struct Sized {
    state_mb: u64,
    persist_s: f64,
    segment_bytes: u64,
    raw_write_s: f64,
    restore_s: f64,
    raw_read_s: f64,
    delta_bytes: u64,
}

async fn state_round_trip(
    function: &Server,
    store_dir: &Path,
    size_mb: u64,
    replica: &str,
) -> Sized {
    let work = tempfile::tempdir_in(store_dir.parent().unwrap()).unwrap();
    let db = Database::open(work.path().join("db"), Options::default()).unwrap();
    db.create_family(FAMILY, Default::default()).unwrap();
    let bytes = size_mb << 20;
    fill(&db, bytes);
    db.sync().unwrap();
    let client = function.client(replica);
    let generation = client.plan(true).await.unwrap().generation;

    let started = Instant::now();
    let path = work.path().join("snapshot.wkp1");
    let exported = {
        let (db, path) = (db.clone(), path.clone());
        tokio::task::spawn_blocking(move || {
            db.export_snapshot(std::io::BufWriter::new(std::fs::File::create(path).unwrap()))
                .unwrap()
        })
        .await
        .unwrap()
    };
    let segment = SegmentFile::open(&path).await.unwrap();
    client.persist(generation, &segment).await.unwrap();
    let persist_s = started.elapsed().as_secs_f64();
    let seq = exported.segment.header.last_seq;

    // One changed key: the delta carries that change, not the state.
    db.put(FAMILY, b"key/000000000001".to_vec(), b"changed".to_vec()).unwrap();
    let delta = db.export_delta(seq, std::io::sink()).unwrap().unwrap();

    let (raw_write_s, raw_read_s) = raw_store(store_dir, bytes);

    let restore_dir = work.path().join("restore");
    let started = Instant::now();
    let restored = client.restore(true, &restore_dir.join("download")).await.unwrap();
    let target = restore_dir.join("db");
    let db2 = tokio::task::spawn_blocking(move || {
        let files: Vec<_> =
            restored.segments.iter().map(|s| std::fs::File::open(&s.path).unwrap()).collect();
        let mut files = files.into_iter();
        Database::import(&target, Options::default(), files.next(), files).unwrap()
    })
    .await
    .unwrap();
    let restore_s = started.elapsed().as_secs_f64();
    assert_eq!(db2.last_seq(), seq);
    Sized {
        state_mb: size_mb,
        persist_s,
        segment_bytes: exported.segment.size,
        raw_write_s,
        restore_s,
        raw_read_s,
        delta_bytes: delta.segment.size,
    }
}

struct Flush {
    writes: u64,
    delta_bytes: u64,
    flush_s: f64,
    raw_write_s: f64,
}

/// 15 minutes of writes at `rate` per second, then the final flush.
async fn final_flush(function: &Server, store_dir: &Path, rate: u64, item_bytes: usize) -> Flush {
    let work = tempfile::tempdir_in(store_dir.parent().unwrap()).unwrap();
    let db = Database::open(work.path().join("db"), Options::default()).unwrap();
    db.create_family(FAMILY, Default::default()).unwrap();
    let client = function.client("flush");
    let generation = client.plan(true).await.unwrap().generation;
    // From the empty state: the delta carries the family's creation too.
    let since = 0;
    let writes = rate * 15 * 60;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for _ in 0..writes {
        // A working set of 50 000 keys: updates as well as inserts.
        let key = format!("item/{:08}", rng.random_range(0..50_000u64));
        db.put(FAMILY, key.into_bytes(), value(&mut rng, item_bytes)).unwrap();
    }
    let started = Instant::now();
    let path = work.path().join("final.wkp1");
    let exported = db
        .export_delta(since, std::io::BufWriter::new(std::fs::File::create(&path).unwrap()))
        .unwrap()
        .unwrap();
    let segment = SegmentFile::open(&path).await.unwrap();
    client.flush(generation, Some(&segment)).await.unwrap();
    let flush_s = started.elapsed().as_secs_f64();
    let (raw_write_s, _) = raw_store(store_dir, exported.segment.size);
    Flush { writes, delta_bytes: exported.segment.size, flush_s, raw_write_s }
}

#[tokio::main]
async fn main() {
    let sizes: Vec<u64> = std::env::var("WEFTKIT_BENCH_SIZES_MB")
        .unwrap_or_else(|_| "100,1024".into())
        .split(',')
        .map(|s| s.trim().parse().expect("sizes in MB"))
        .collect();
    let rate: u64 = env_or("WEFTKIT_BENCH_RATE", 200);
    let item_bytes: usize = env_or("WEFTKIT_BENCH_ITEM_BYTES", 1024);
    // The target directory, not /tmp: on many machines /tmp is memory, which would flatter both sides.
    let store = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store_dir = store.path().join("store");
    std::fs::create_dir_all(&store_dir).unwrap();
    let function = Server::start(Backend::file_at(&store_dir)).await;

    let mut rows = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        eprintln!("state of {size} MB ...");
        rows.push(state_round_trip(&function, &store_dir, *size, &format!("size-{i}")).await);
    }
    println!(
        "| state | persist (export + upload) | raw store write | ratio | restore (download + import) | raw copy to the volume | ratio | segment | delta after 1 changed key |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let bytes = r.state_mb << 20;
        println!(
            "| {} MB | {:.2} s ({:.0} MB/s) | {:.2} s ({:.0} MB/s) | {:.2}x | {:.2} s ({:.0} MB/s) | {:.2} s | {:.1}x | {:.1} MB | {} bytes |",
            r.state_mb,
            r.persist_s,
            mb_per_s(bytes, r.persist_s),
            r.raw_write_s,
            mb_per_s(bytes, r.raw_write_s),
            r.persist_s / r.raw_write_s,
            r.restore_s,
            mb_per_s(bytes, r.restore_s),
            r.raw_read_s,
            r.restore_s / r.raw_read_s,
            r.segment_bytes as f64 / 1e6,
            r.delta_bytes,
        );
    }

    eprintln!("15 minutes of writes at {rate}/s ...");
    let flush = final_flush(&function, &store_dir, rate, item_bytes).await;
    println!();
    println!(
        "| writes (15 min at {rate}/s, {item_bytes} B values) | final delta | final flush (export + upload) | raw store write of the delta | ratio |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {:.1} MB | {:.2} s | {:.2} s | {:.1}x |",
        flush.writes,
        flush.delta_bytes as f64 / 1e6,
        flush.flush_s,
        flush.raw_write_s,
        flush.flush_s / flush.raw_write_s
    );
}
