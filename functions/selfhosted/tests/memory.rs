//! The `wkp1-selfhosted` binary holds a bounded amount of memory per request: a state many
//! times its part size goes up inline and comes back, and the process's peak RSS grows by a few
//! parts, not by the state.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wkp1_client::{Client, ClientConfig};
use wkp1_protocol::KeyId;
use wkp1_protocol::segment::SegmentHeader;
use wkp1_testkit::{self as testing, KEY_ID, noise, secret, segment};

const PART_SIZE: u64 = 2 << 20;
const STATE_BYTES: usize = 64 << 20;
/// What one request may cost beyond the idle process: the parts in flight (four written at
/// once, four read ahead) and their buffers. Measured: +14 MiB up, +20 MiB down with 2 MiB
/// parts; holding the 64 MiB state would exceed it.
const BUDGET: u64 = 16 * PART_SIZE;

/// The peak RSS of process `pid`. A `/proc` that cannot be read fails the test rather than
/// read 0, which would pass any bound.
fn peak_rss(pid: u32) -> u64 {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {path}: {e}; this test measures memory through it"));
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("read VmHWM from {path}: not there"));
    assert!(kb > 0, "VmHWM of {pid} reads 0 kB");
    kb * 1024
}

/// Kills the function when the test ends, passed or not.
struct Function(Child);

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_many_parts_large_moves_through_the_function_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let function = Function(
        Command::new(env!("CARGO_BIN_EXE_wkp1-selfhosted"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--store")
            .arg(format!("file://{}", dir.path().join("store").display()))
            .env("WKP1_KEYS", format!("{KEY_ID} {}", secret().to_base64()))
            .env("WKP1_PART_SIZE", PART_SIZE.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = function.0.id();
    let mut config = ClientConfig::new(
        format!("http://127.0.0.1:{port}").parse().unwrap(),
        testing::subtree("replica-0"),
        KeyId::new(KEY_ID).unwrap(),
        secret(),
    );
    config.request_timeout = Duration::from_secs(120);
    let client = Client::new(config).unwrap();
    let mut generation = None;
    for _ in 0..200 {
        if let Ok(plan) = client.plan(true).await {
            generation = Some(plan.generation);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let generation = generation.expect("the function answers a plan");
    let state = segment(SegmentHeader::snapshot(1), &noise(STATE_BYTES, 11)).await;
    let idle = peak_rss(pid);

    let committed = client.persist(generation, &state.file).await.unwrap();
    assert_eq!(committed.last_seq, 1);
    let after_persist = peak_rss(pid);
    let restored = client.restore(false, &dir.path().join("restored")).await.unwrap();
    assert_eq!(restored.bytes(), state.bytes.len() as u64);
    let downloaded = std::fs::read(&restored.segments[0].path).unwrap();
    assert!(downloaded == state.bytes, "the restored state differs");
    let after_restore = peak_rss(pid);

    let (up, down) = (after_persist - idle, after_restore - idle);
    eprintln!(
        "{} MiB state in {} MiB parts: function peak RSS {} MiB idle, +{} MiB up, +{} MiB down",
        STATE_BYTES >> 20,
        PART_SIZE >> 20,
        idle >> 20,
        up >> 20,
        down >> 20
    );
    assert!(up < BUDGET, "persisting grew the function by {} MiB", up >> 20);
    assert!(down < BUDGET, "restoring grew the function by {} MiB", down >> 20);
}
