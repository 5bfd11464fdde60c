//! A state several times the memory budget moves through export and import in bounded memory.
//!
//! One test in this file, so the process's peak RSS is its own.

mod common;

use common::{TestClock, options};
use weftkit_kv::{Database, Mode, Options, WriteBatch, WriteOptions};

const STATE_BYTES: usize = 160 << 20;
const VALUE_BYTES: usize = 4096;
const BUDGET: u64 = 96 << 20;

/// A size from `/proc/self/status`; a missing file or field fails the test rather than read 0,
/// which would pass any bound.
fn status(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status")
        .expect("read /proc/self/status: this test measures memory through it");
    let kb = text
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("read {field} from /proc/self/status: not there"));
    assert!(kb > 0, "{field} reads 0 kB");
    kb * 1024
}

/// Resets the peak RSS to the current RSS, so the next peak measures only what follows.
fn reset_peak() -> u64 {
    std::fs::write("/proc/self/clear_refs", "5")
        .expect("reset the peak RSS through /proc/self/clear_refs: else the peak is stale");
    status("VmRSS:")
}

fn growth_since(start: u64) -> u64 {
    status("VmHWM:").saturating_sub(start)
}

#[test]
fn state_larger_than_memory_streams_through_export_and_import() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let small = |mode| Options { cache_bytes: 16 << 20, ..options(mode, &clock) };
    let db = Database::open(dir.path().join("lsm"), small(Mode::Lsm)).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut batch = WriteBatch::new();
    for i in 0..STATE_BYTES / VALUE_BYTES {
        let value: Vec<u8> = (0..VALUE_BYTES / 8)
            .flat_map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()
            })
            .collect();
        batch.put("default", format!("key/{i:08}"), value);
        if batch.len() == 256 {
            db.write(&batch, WriteOptions::default()).unwrap();
            batch = WriteBatch::new();
        }
    }
    db.sync().unwrap();

    let start = reset_peak();
    let snapshot = dir.path().join("snap.wkp");
    let exported = db
        .export_snapshot(std::io::BufWriter::new(std::fs::File::create(&snapshot).unwrap()))
        .unwrap();
    let export_growth = growth_since(start);
    assert!(exported.segment.size > STATE_BYTES as u64, "incompressible state");
    let expected_last = db.last_seq();
    drop(db);

    let start = reset_peak();
    let imported = Database::import(
        dir.path().join("btree"),
        small(Mode::Btree),
        Some(std::fs::File::open(&snapshot).unwrap()),
        Vec::<std::fs::File>::new(),
    )
    .unwrap();
    let import_growth = growth_since(start);
    assert_eq!(imported.last_seq(), expected_last);
    assert_eq!(imported.stored_entries("default").unwrap(), STATE_BYTES / VALUE_BYTES);
    eprintln!(
        "export grew RSS by {} MiB, import by {} MiB, for {} MiB",
        export_growth >> 20,
        import_growth >> 20,
        STATE_BYTES >> 20
    );
    assert!(export_growth < BUDGET, "export grew RSS by {} MiB", export_growth >> 20);
    assert!(import_growth < BUDGET, "import grew RSS by {} MiB", import_growth >> 20);
}
