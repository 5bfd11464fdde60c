//! Snapshots and deltas in WKP-1 segments: export from one engine, import into the other, and
//! get the same database back.

mod common;

use common::{TestClock, TestDb, contents, options};
use weftkit_kv::{Database, Error, Expiry, FamilyOptions, Mode, WriteBatch, WriteOptions};
use wkp1_protocol::segment::{SegmentKind, SegmentReader};

fn other(mode: Mode) -> Mode {
    if mode == Mode::Lsm { Mode::Btree } else { Mode::Lsm }
}

/// A database with something of everything: families, TTLs, merges pending and folded, deletes.
fn populate(db: &Database, clock: &TestClock) {
    db.create_family("users", FamilyOptions::default()).unwrap();
    db.create_family("sessions", FamilyOptions::default().with_ttl(600)).unwrap();
    db.create_family("counters", FamilyOptions::default().with_merge_operator("int_add")).unwrap();
    for i in 0..300u32 {
        db.put("users", format!("user/{i:04}"), format!("{{\"name\":\"n{i}\",\"n\":{i}}}"))
            .unwrap();
    }
    db.delete("users", "user/0007").unwrap();
    db.put("sessions", "s1", "live").unwrap();
    db.put_expiring("sessions", "s2", "expires soon", Expiry::At(clock.now() + 5)).unwrap();
    for i in 0..20i64 {
        db.merge("counters", "visits", i.to_le_bytes()).unwrap();
    }
    db.put("counters", "fixed", 7i64.to_le_bytes()).unwrap();
    db.merge("counters", "fixed", 3i64.to_le_bytes()).unwrap();
}

/// Each family's name and pairs.
type Everything = Vec<(String, Vec<(Vec<u8>, Vec<u8>)>)>;

fn all_contents(db: &Database) -> Everything {
    let mut names: Vec<String> = db.list_families().into_iter().map(|(n, _)| n).collect();
    names.sort();
    names.into_iter().map(|n| (n.clone(), contents(db, &n))).collect()
}

fn export_to_file(db: &Database, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    db.export_snapshot(std::io::BufWriter::new(std::fs::File::create(&path).unwrap())).unwrap();
    path
}

fn cross_mode_round_trip(mode: Mode) {
    let t = TestDb::new(mode);
    populate(&t.db, &t.clock);
    let snapshot = export_to_file(&t.db, t.dir.path(), "snap.wkp");
    let imported = Database::import(
        t.dir.path().join("imported"),
        options(other(mode), &t.clock),
        Some(std::fs::File::open(&snapshot).unwrap()),
        Vec::<std::fs::File>::new(),
    )
    .unwrap();
    assert_eq!(imported.mode(), other(mode));
    assert_eq!(all_contents(&imported), all_contents(&t.db));
    assert_eq!(imported.last_seq(), t.db.last_seq());
    assert_eq!(imported.list_families(), t.db.list_families());
    // The import expires and merges as the source would.
    t.clock.advance(10);
    assert_eq!(imported.get("sessions", b"s2").unwrap(), None);
    assert_eq!(imported.get("sessions", b"s1").unwrap(), Some(b"live".to_vec()));
    imported.merge("counters", "visits", 1000i64.to_le_bytes()).unwrap();
    t.db.merge("counters", "visits", 1000i64.to_le_bytes()).unwrap();
    assert_eq!(
        imported.get("counters", b"visits").unwrap(),
        t.db.get("counters", b"visits").unwrap()
    );
    // ...and back into the original mode.
    let again_path = export_to_file(&imported, t.dir.path(), "again.wkp");
    let again = Database::import(
        t.dir.path().join("again"),
        options(mode, &t.clock),
        Some(std::fs::File::open(again_path).unwrap()),
        Vec::<std::fs::File>::new(),
    )
    .unwrap();
    assert_eq!(all_contents(&again), all_contents(&imported));
}

fn snapshot_then_deltas_rebuild_the_database(mode: Mode) {
    let t = TestDb::new(mode);
    populate(&t.db, &t.clock);
    let base = t.db.last_seq();
    let snapshot = export_to_file(&t.db, t.dir.path(), "snap.wkp");
    // Two scheduled deltas, with family changes and merges folded in between.
    t.db.put("users", "user/9999", "new").unwrap();
    t.db.merge("counters", "visits", 5i64.to_le_bytes()).unwrap();
    t.db.create_family("late", FamilyOptions::default()).unwrap();
    t.db.put("late", "k", "v").unwrap();
    let mid = t.db.last_seq();
    let d1 = t.dir.path().join("d1.wkp");
    let e1 = t.db.export_delta(base, std::fs::File::create(&d1).unwrap()).unwrap().unwrap();
    assert_eq!(
        (e1.segment.header.base_seq, e1.segment.header.last_seq, e1.records),
        (base, mid, mid - base)
    );
    let mut batch = WriteBatch::new();
    batch.delete("users", "user/0001").put("counters", "fresh", 1i64.to_le_bytes()).merge(
        "counters",
        "fresh",
        1i64.to_le_bytes(),
    );
    t.db.write(&batch, WriteOptions::default()).unwrap();
    t.db.drop_family("late").unwrap();
    let d2 = t.dir.path().join("d2.wkp");
    t.db.export_delta(mid, std::fs::File::create(&d2).unwrap()).unwrap().unwrap();
    assert!(
        t.db.export_delta(t.db.last_seq(), std::io::sink()).unwrap().is_none(),
        "nothing new, no delta"
    );

    let open = |p: &std::path::Path| std::fs::File::open(p).unwrap();
    let rebuilt = Database::import(
        t.dir.path().join("rebuilt"),
        options(other(mode), &t.clock),
        Some(open(&snapshot)),
        [open(&d1), open(&d2)],
    )
    .unwrap();
    assert_eq!(all_contents(&rebuilt), all_contents(&t.db));
    assert_eq!(rebuilt.last_seq(), t.db.last_seq());
    // Deltas alone rebuild a database that started empty.
    let fresh = TestDb::new(mode);
    fresh.db.put("default", "k", "v").unwrap();
    let d = fresh.dir.path().join("d.wkp");
    fresh.db.export_delta(0, std::fs::File::create(&d).unwrap()).unwrap().unwrap();
    let from_deltas = Database::import(
        fresh.dir.path().join("from-deltas"),
        options(mode, &fresh.clock),
        None::<std::fs::File>,
        [open(&d)],
    )
    .unwrap();
    assert_eq!(contents(&from_deltas, "default"), vec![(b"k".to_vec(), b"v".to_vec())]);
}

fn broken_chains_and_corrupt_segments_are_refused_and_leave_nothing(mode: Mode) {
    let t = TestDb::new(mode);
    populate(&t.db, &t.clock);
    let base = t.db.last_seq();
    let snapshot = export_to_file(&t.db, t.dir.path(), "snap.wkp");
    t.db.put("users", "a", "1").unwrap();
    let d1 = t.dir.path().join("d1.wkp");
    t.db.export_delta(base, std::fs::File::create(&d1).unwrap()).unwrap().unwrap();
    t.db.put("users", "b", "2").unwrap();
    let d2 = t.dir.path().join("d2.wkp");
    t.db.export_delta(base + 1, std::fs::File::create(&d2).unwrap()).unwrap().unwrap();
    let open = |p: &std::path::Path| std::fs::File::open(p).unwrap();

    let target = t.dir.path().join("target");
    let gap =
        Database::import(&target, options(mode, &t.clock), Some(open(&snapshot)), [open(&d2)])
            .unwrap_err();
    assert!(
        matches!(gap, Error::Import(_)) && gap.to_string().contains("does not follow"),
        "{gap}"
    );
    assert!(!target.exists(), "a refused import leaves no directory");

    let mut corrupt = std::fs::read(&snapshot).unwrap();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x40;
    let bad = t.dir.path().join("bad.wkp");
    std::fs::write(&bad, corrupt).unwrap();
    assert!(
        Database::import(
            &target,
            options(mode, &t.clock),
            Some(open(&bad)),
            Vec::<std::fs::File>::new()
        )
        .is_err()
    );
    assert!(!target.exists());

    let wrong_kind = Database::import(
        &target,
        options(mode, &t.clock),
        Some(open(&d1)),
        Vec::<std::fs::File>::new(),
    )
    .unwrap_err();
    assert!(wrong_kind.to_string().contains("snapshot"), "{wrong_kind}");
    assert!(
        Database::import(
            t.db.path(),
            options(mode, &t.clock),
            Some(open(&snapshot)),
            Vec::<std::fs::File>::new()
        )
        .is_err(),
        "never over an existing database"
    );
}

fn exports_are_wkp1_segments(mode: Mode) {
    let t = TestDb::new(mode);
    populate(&t.db, &t.clock);
    let path = export_to_file(&t.db, t.dir.path(), "snap.wkp");
    let mut reader = SegmentReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(reader.header().kind, SegmentKind::Snapshot);
    assert_eq!(reader.header().last_seq, t.db.last_seq());
    std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
    reader.finish().unwrap();
}

for_both_modes!(
    cross_mode_round_trip,
    snapshot_then_deltas_rebuild_the_database,
    broken_chains_and_corrupt_segments_are_refused_and_leave_nothing,
    exports_are_wkp1_segments,
);
