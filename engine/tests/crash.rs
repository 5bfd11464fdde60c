//! Crash safety: a child process commits synced batches and is killed with SIGKILL at a random
//! moment after its first acknowledgement; on reopen every acknowledged batch is there, whole, and no batch is there in part.
//!
//! The child is this same test binary, re-run with `WEFTKIT_CRASH_CHILD` set.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::Rng;
use weftkit_kv::{Database, FamilyOptions, Mode, Options, SyncMode, WriteBatch, WriteOptions};

const CHILD: &str = "WEFTKIT_CRASH_CHILD";
const KEYS_PER_BATCH: u64 = 8;

fn child_options(mode: Mode) -> Options {
    // Background maintenance on, and often: it must not break crash safety either.
    Options {
        maintenance_interval: Some(Duration::from_millis(20)),
        ..Options::default().mode(mode)
    }
}

/// In the child: write synced batches forever, printing `ack N` after each returns.
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD) else { return };
    let (mode, rest) = spec.split_once(':').unwrap();
    let (first, path) = rest.split_once(':').unwrap();
    let mode: Mode = mode.parse().unwrap();
    let first: u64 = first.parse().unwrap();
    let db = Database::open(path, child_options(mode)).unwrap();
    if !db.list_families().iter().any(|(n, _)| n == "other") {
        let _ = db.create_family("other", FamilyOptions::default());
    }
    let mut out = std::io::stdout().lock();
    for id in first.. {
        let mut batch = WriteBatch::new();
        for j in 0..KEYS_PER_BATCH {
            let family = if j % 2 == 0 { "default" } else { "other" };
            batch.put(family, format!("b{id:012}/{j}"), id.to_le_bytes().repeat(16));
        }
        db.write(&batch, WriteOptions { sync: SyncMode::Fsync }).unwrap();
        writeln!(out, "ack {id}").unwrap();
        out.flush().unwrap();
    }
}

fn keys_of(db: &Database, family: &str) -> Vec<Vec<u8>> {
    db.range(family, .., weftkit_kv::Direction::Forward).unwrap().map(|r| r.unwrap().0).collect()
}

fn crash_repeatedly(mode: Mode) {
    let iterations: u64 =
        std::env::var("WEFTKIT_CRASH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(25);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut rng = rand::rng();
    let mut acked_total = 0u64;
    for iteration in 0..iterations {
        let first = iteration * 1_000_000;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD, format!("{}:{first}:{}", mode.as_str(), path.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_ack, first_acked) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(id) = line.strip_prefix("ack ").and_then(|n| n.parse::<u64>().ok()) {
                    if acked.is_empty() {
                        let _ = first_ack.send(());
                    }
                    acked.push(id);
                }
            }
            acked
        });
        // Killed only once writes are being acknowledged, so every round tests acknowledged
        // batches rather than a child still opening its database.
        let started = first_acked.recv_timeout(Duration::from_secs(60));
        if started.is_ok() {
            std::thread::sleep(Duration::from_millis(rng.random_range(0..200)));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        assert!(started.is_ok(), "iteration {iteration}: the child acknowledged nothing in 60 s");
        assert!(!acked.is_empty());
        acked_total += acked.len() as u64;

        let db = Database::open(
            &path,
            Options { maintenance_interval: None, ..Options::default().mode(mode) },
        )
        .unwrap();
        let mut present = std::collections::BTreeMap::<u64, u64>::new();
        for family in ["default", "other"] {
            if !db.list_families().iter().any(|(n, _)| n == family) {
                continue;
            }
            for key in keys_of(&db, family) {
                let id: u64 = std::str::from_utf8(&key[1..13]).unwrap().parse().unwrap();
                *present.entry(id).or_default() += 1;
            }
        }
        for id in &acked {
            assert_eq!(
                present.get(id).copied(),
                Some(KEYS_PER_BATCH),
                "iteration {iteration}: acknowledged batch {id} is not whole"
            );
        }
        for (id, keys) in &present {
            assert_eq!(
                *keys, KEYS_PER_BATCH,
                "iteration {iteration}: batch {id} is only partly there"
            );
        }
        // The change log agrees with the data: one record per batch, readable to the end.
        let changes = db.changes_since(0).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
        assert_eq!(changes.last().map_or(0, |c| c.seq), db.last_seq());
        drop(db);
    }
    eprintln!("{mode}: {iterations} kills, {acked_total} acknowledged batches, all whole");
}

#[test]
fn synced_batches_survive_sigkill_lsm() {
    crash_repeatedly(Mode::Lsm);
}

#[test]
fn synced_batches_survive_sigkill_btree() {
    crash_repeatedly(Mode::Btree);
}
