//! Persist and restore throughput through the self-hosted function, against the same bytes
//! written to and read from the store directly, in the same run; and the function's peak RSS.
//!
//! ```text
//! cargo bench -p wkp1-selfhosted --bench throughput
//! WKP1_BENCH_SIZES_MIB=1,64,1024  sizes to measure (default)
//! WKP1_TEST_S3_S3S=http://...     also measure an S3 server (./scripts/bench.sh starts s3s-fs)
//! ```
//!
//! Each figure is the median of several runs (ten for 1 MiB, four for 64 MiB, one for 1 GiB).
//! Each run persists into a replica of its own, so every persist really stores and commits.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wkp1_client::{Client, ClientConfig, SegmentFile};
use wkp1_protocol::segment::{SegmentHeader, SegmentWriter};
use wkp1_protocol::{KeyId, Secret, Subtree};

const SECRET: &[u8; 32] = b"benchmark secret of 32 bytes!!!!";

struct Target {
    name: &'static str,
    /// The store URL the function is started with (a fresh prefix per measurement).
    url: Box<dyn Fn(&str) -> String>,
    direct: Arc<dyn ObjectStore>,
    env: Vec<(String, String)>,
}

struct Row {
    target: &'static str,
    mib: u64,
    direct_write: f64,
    direct_read: f64,
    persist: f64,
    restore: f64,
    rss_mib: f64,
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let sizes: Vec<u64> = std::env::var("WKP1_BENCH_SIZES_MIB")
        .unwrap_or_else(|_| "1,64,1024".into())
        .split(',')
        .map(|s| s.trim().parse().expect("sizes in MiB"))
        .collect();
    let work = tempfile::tempdir().unwrap();
    let store_dir = work.path().join("store");
    std::fs::create_dir_all(&store_dir).unwrap();

    let mut targets = vec![Target {
        name: "file://",
        url: {
            let dir = store_dir.clone();
            Box::new(move |prefix| format!("file://{}/{prefix}", dir.display()))
        },
        direct: Arc::new(LocalFileSystem::new_with_prefix(&store_dir).unwrap()),
        env: vec![],
    }];
    if let Ok(endpoint) = std::env::var("WKP1_TEST_S3_S3S") {
        let key = std::env::var("WKP1_TEST_S3_ACCESS_KEY").unwrap_or_else(|_| "wkp1test".into());
        let secret =
            std::env::var("WKP1_TEST_S3_SECRET_KEY").unwrap_or_else(|_| "wkp1test-secret".into());
        let bucket = std::env::var("WKP1_TEST_S3_BUCKET").unwrap_or_else(|_| "wkp1-test".into());
        let s3 = AmazonS3Builder::new()
            .with_endpoint(&endpoint)
            .with_bucket_name(&bucket)
            .with_access_key_id(&key)
            .with_secret_access_key(&secret)
            .with_region("us-east-1")
            .with_client_options(
                ClientOptions::new().with_allow_http(true).with_timeout(Duration::from_secs(600)),
            )
            .build()
            .unwrap();
        targets.push(Target {
            name: "s3 (s3s-fs)",
            url: Box::new(move |prefix| format!("s3://{bucket}/{prefix}")),
            direct: Arc::new(s3),
            env: vec![
                ("AWS_ENDPOINT_URL".into(), endpoint),
                ("AWS_ACCESS_KEY_ID".into(), key),
                ("AWS_SECRET_ACCESS_KEY".into(), secret),
                ("AWS_REGION".into(), "us-east-1".into()),
            ],
        });
    }

    let mut rows = Vec::new();
    for mib in &sizes {
        let segment = work.path().join(format!("{mib}.wkp"));
        make_segment(&segment, mib << 20);
        for target in &targets {
            let row = measure(target, *mib, &segment, work.path()).await;
            eprintln!(
                "{} {} MiB: direct {:.0}/{:.0} MB/s, function {:.0}/{:.0} MB/s, RSS {:.1} MiB",
                row.target,
                row.mib,
                row.direct_write,
                row.direct_read,
                row.persist,
                row.restore,
                row.rss_mib
            );
            rows.push(row);
        }
        std::fs::remove_file(&segment).unwrap();
    }
    print_table(&rows);
}

/// A segment of `size` incompressible payload bytes (a snapshot), so sizes on the wire are real.
fn make_segment(path: &Path, size: u64) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut writer = SegmentWriter::with_level(file, SegmentHeader::snapshot(1), 1).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(block.len() as u64) as usize;
        writer.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    writer.finish().unwrap();
}

fn mbps(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

/// Repetitions for a state of `mib` MiB: more for small states, whose timings are noisier.
fn repetitions(mib: u64) -> usize {
    (256 / mib.max(1)).clamp(1, 10) as usize
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn measure(target: &Target, mib: u64, segment: &Path, work: &Path) -> Row {
    let size = std::fs::metadata(segment).unwrap().len();
    let prefix = format!("bench-{mib}-{}", std::process::id());
    let (mut child, url) = start_function(target, &prefix);
    let file = SegmentFile::open(segment).await.unwrap();
    let (mut direct_write, mut direct_read, mut persist, mut restore) =
        (vec![], vec![], vec![], vec![]);
    for run in 0..repetitions(mib) {
        // A replica of its own per run, so every persist really stores and commits.
        let client = Client::new(ClientConfig::new(
            url.parse().unwrap(),
            Subtree::new("bench", "state", &format!("replica-{run}")).unwrap(),
            KeyId::new("bench").unwrap(),
            Secret::from_bytes(SECRET.to_vec()).unwrap(),
        ))
        .unwrap();
        // Direct: the same bytes into the store and back, streamed, through the same store client.
        let key = StorePath::from(format!("{prefix}-direct/segment"));
        let started = Instant::now();
        let mut upload = BufWriter::new(target.direct.clone(), key.clone());
        let mut input = tokio::fs::File::open(segment).await.unwrap();
        let mut buf = vec![0u8; 8 << 20];
        loop {
            let n = input.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            upload.write_all(&buf[..n]).await.unwrap();
        }
        upload.shutdown().await.unwrap();
        direct_write.push(mbps(size, started.elapsed()));
        let started = Instant::now();
        let mut out = tokio::fs::File::create(work.join("direct.out")).await.unwrap();
        let mut stream = target.direct.get(&key).await.unwrap().into_stream();
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk.unwrap()).await.unwrap();
        }
        out.sync_all().await.unwrap();
        direct_read.push(mbps(size, started.elapsed()));
        target.direct.delete(&key).await.unwrap();

        let generation = client.plan(true).await.unwrap().generation;
        let started = Instant::now();
        client.persist(generation, &file).await.unwrap();
        persist.push(mbps(size, started.elapsed()));
        let restore_dir = work.join(format!("restore-{mib}"));
        let started = Instant::now();
        let restored = client.restore(false, &restore_dir).await.unwrap();
        restore.push(mbps(size, started.elapsed()));
        assert_eq!(restored.bytes(), size);
        std::fs::remove_dir_all(&restore_dir).unwrap();
    }
    let rss_mib = peak_rss_kib(child.id()) as f64 / 1024.0;
    child.kill().unwrap();
    child.wait().unwrap();
    Row {
        target: target.name,
        mib,
        direct_write: median(direct_write),
        direct_read: median(direct_read),
        persist: median(persist),
        restore: median(restore),
        rss_mib,
    }
}

fn start_function(target: &Target, prefix: &str) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let secret = Secret::from_bytes(SECRET.to_vec()).unwrap().to_base64();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wkp1-selfhosted"));
    command
        .args(["--listen", &format!("127.0.0.1:{port}"), "--store", &(target.url)(prefix)])
        .env("WKP1_KEYS", format!("bench {secret}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in &target.env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (child, url);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("wkp1-selfhosted did not start");
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[allow(clippy::print_stdout)]
fn print_table(rows: &[Row]) {
    println!(
        "| store | state | direct write MB/s | persist MB/s | persist ÷ direct | direct read MB/s | restore MB/s | restore ÷ direct | function peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} MiB | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} | {:.2} | {:.0} MiB |",
            r.target,
            r.mib,
            r.direct_write,
            r.persist,
            r.persist / r.direct_write,
            r.direct_read,
            r.restore,
            r.restore / r.direct_read,
            r.rss_mib
        );
    }
}
