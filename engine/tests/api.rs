//! The public API, against both engines.

mod common;

use std::sync::Arc;

use common::{TestDb, contents, options};
use weftkit_kv::{
    Compaction, Database, Direction, Error, Expiry, FamilyOptions, MergeOperator, Mode, Options,
    SyncMode, WriteBatch, WriteOptions,
};

for_both_modes!(
    put_get_delete_round_trip,
    reopening_keeps_data_sequence_and_families,
    reopening_in_the_other_mode_is_a_clear_error,
    families_are_created_listed_dropped_and_isolated,
    family_options_are_validated,
    range_and_prefix_iterate_both_ways_and_stop_where_asked,
    write_batches_are_atomic_across_families,
    snapshots_are_consistent_across_families,
    ttl_hides_expired_values_per_key_and_by_family_default,
    expired_values_are_reclaimed,
    merge_builtins_fold_without_reading,
    merges_interleave_with_puts_and_deletes,
    merges_survive_a_restart_and_a_background_fold,
    custom_merge_operators_are_used_and_required,
    sequence_numbers_increase_by_one_per_batch,
    every_sync_mode_commits,
    concurrent_fsync_writers_share_fsyncs,
    change_log_streams_batches_and_trims,
    keys_and_values_are_bounded,
);

fn put_get_delete_round_trip(mode: Mode) {
    let t = TestDb::new(mode);
    assert_eq!(t.db.mode(), mode);
    t.db.put("default", "k", "v1").unwrap();
    assert_eq!(t.db.get("default", b"k").unwrap(), Some(b"v1".to_vec()));
    t.db.put("default", "k", "v2").unwrap();
    assert_eq!(t.db.get("default", b"k").unwrap(), Some(b"v2".to_vec()));
    t.db.delete("default", "k").unwrap();
    assert_eq!(t.db.get("default", b"k").unwrap(), None);
    assert_eq!(t.db.get("default", b"never").unwrap(), None);
    assert!(matches!(t.db.get("nope", b"k"), Err(Error::NoSuchFamily(_))));
}

fn reopening_keeps_data_sequence_and_families(mode: Mode) {
    let t = TestDb::new(mode);
    t.db.create_family("users", FamilyOptions::default().with_ttl(3600)).unwrap();
    t.db.put("users", "u1", "ada").unwrap();
    let seq = t.db.last_seq();
    let t = t.reopen();
    assert_eq!(t.db.last_seq(), seq);
    assert_eq!(t.db.get("users", b"u1").unwrap(), Some(b"ada".to_vec()));
    let families = t.db.list_families();
    assert!(families.iter().any(|(n, o)| n == "users" && o.default_ttl_seconds == Some(3600)));
    assert_eq!(t.db.put("users", "u2", "bob").unwrap(), seq + 1);
}

fn reopening_in_the_other_mode_is_a_clear_error(mode: Mode) {
    let t = TestDb::new(mode);
    let path = t.db.path().to_path_buf();
    drop(t.db);
    let other = if mode == Mode::Lsm { Mode::Btree } else { Mode::Lsm };
    let err = Database::open(&path, options(other, &t.clock)).unwrap_err();
    assert!(matches!(err, Error::ModeMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(mode.as_str()) && message.contains(other.as_str()), "{message}");
}

fn families_are_created_listed_dropped_and_isolated(mode: Mode) {
    let t = TestDb::new(mode);
    t.db.create_family("a", FamilyOptions::default()).unwrap();
    t.db.create_family("b", FamilyOptions::default()).unwrap();
    assert!(matches!(
        t.db.create_family("a", FamilyOptions::default()),
        Err(Error::FamilyExists(_))
    ));
    t.db.put("a", "k", "in a").unwrap();
    t.db.put("b", "k", "in b").unwrap();
    assert_eq!(t.db.get("a", b"k").unwrap(), Some(b"in a".to_vec()));
    assert_eq!(t.db.get("b", b"k").unwrap(), Some(b"in b".to_vec()));
    let names: Vec<String> = t.db.list_families().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["a", "b", "default"]);
    t.db.drop_family("a").unwrap();
    assert!(matches!(t.db.get("a", b"k"), Err(Error::NoSuchFamily(_))));
    assert!(matches!(t.db.put("a", "k", "v"), Err(Error::NoSuchFamily(_))));
    t.db.create_family("a", FamilyOptions::default()).unwrap();
    assert_eq!(t.db.get("a", b"k").unwrap(), None, "a re-created family starts empty");
    let t = t.reopen();
    assert_eq!(t.db.get("b", b"k").unwrap(), Some(b"in b".to_vec()));
    assert_eq!(t.db.get("a", b"k").unwrap(), None);
}

fn family_options_are_validated(mode: Mode) {
    let t = TestDb::new(mode);
    for bad in ["", "has space", "slash/no", &"x".repeat(201)] {
        assert!(
            matches!(
                t.db.create_family(bad, FamilyOptions::default()),
                Err(Error::InvalidArgument(_))
            ),
            "{bad:?}"
        );
    }
    let tiered =
        t.db.create_family("t", FamilyOptions::default().with_compaction(Compaction::SizeTiered))
            .unwrap_err();
    assert!(tiered.to_string().contains("not supported yet"), "{tiered}");
    let unknown =
        t.db.create_family("m", FamilyOptions::default().with_merge_operator("nope")).unwrap_err();
    assert!(matches!(unknown, Error::UnknownMergeOperator(_)), "{unknown}");
    t.db.create_family(
        "logs",
        FamilyOptions::default()
            .with_compaction(Compaction::Fifo { max_bytes: 1 << 20, ttl_seconds: Some(60) }),
    )
    .unwrap();
    let bloom = FamilyOptions { bloom_bits_per_key: 16.0, ..FamilyOptions::default() };
    t.db.create_family("bloomy", bloom).unwrap();
    assert!(
        t.db.list_families().iter().any(|(n, o)| n == "bloomy" && o.bloom_bits_per_key == 16.0)
    );
}

fn range_and_prefix_iterate_both_ways_and_stop_where_asked(mode: Mode) {
    let t = TestDb::new(mode);
    for k in ["a1", "a2", "a3", "b1", "b2", "c"] {
        t.db.put("default", k, k.to_uppercase()).unwrap();
    }
    let keys = |iter: weftkit_kv::Iter| {
        iter.map(|r| String::from_utf8(r.unwrap().0).unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(keys(t.db.prefix("default", b"a", Direction::Forward).unwrap()), ["a1", "a2", "a3"]);
    assert_eq!(keys(t.db.prefix("default", b"a", Direction::Reverse).unwrap()), ["a3", "a2", "a1"]);
    assert_eq!(
        keys(t.db.range("default", b"a2".to_vec()..b"b2".to_vec(), Direction::Forward).unwrap()),
        ["a2", "a3", "b1"]
    );
    assert_eq!(
        keys(t.db.range("default", b"a2".to_vec()..=b"b2".to_vec(), Direction::Reverse).unwrap()),
        ["b2", "b1", "a3", "a2"]
    );
    assert_eq!(keys(t.db.range("default", .., Direction::Forward).unwrap()).len(), 6);
    let first_two: Vec<_> =
        t.db.range("default", b"b".to_vec().., Direction::Forward).unwrap().take(2).collect();
    assert_eq!(first_two.len(), 2);
    let values: Vec<_> = contents(&t.db, "default").into_iter().map(|(_, v)| v).collect();
    assert_eq!(values[0], b"A1");
}

fn write_batches_are_atomic_across_families(mode: Mode) {
    let t = TestDb::new(mode);
    t.db.create_family("orders", FamilyOptions::default()).unwrap();
    let mut batch = WriteBatch::new();
    batch.put("default", "user/1", "ada").put("orders", "order/1", "book").delete("default", "old");
    let seq = t.db.write(&batch, WriteOptions::default()).unwrap();
    assert_eq!(t.db.get("orders", b"order/1").unwrap(), Some(b"book".to_vec()));
    // One bad op refuses the whole batch, and no sequence number is used up.
    let mut bad = WriteBatch::new();
    bad.put("default", "user/2", "bob").merge("orders", "x", "1");
    assert!(matches!(t.db.write(&bad, WriteOptions::default()), Err(Error::InvalidArgument(_))));
    assert_eq!(t.db.get("default", b"user/2").unwrap(), None);
    let mut missing_family = WriteBatch::new();
    missing_family.put("default", "user/3", "cy").put("ghost", "k", "v");
    assert!(matches!(
        t.db.write(&missing_family, WriteOptions::default()),
        Err(Error::NoSuchFamily(_))
    ));
    assert_eq!(t.db.get("default", b"user/3").unwrap(), None);
    assert_eq!(t.db.last_seq(), seq);
    assert!(t.db.write(&WriteBatch::new(), WriteOptions::default()).is_err());
}

fn snapshots_are_consistent_across_families(mode: Mode) {
    let t = TestDb::new(mode);
    t.db.create_family("b", FamilyOptions::default()).unwrap();
    t.db.put("default", "k", "old").unwrap();
    t.db.put("b", "k", "old").unwrap();
    let snapshot = t.db.snapshot().unwrap();
    let seq = snapshot.seq().unwrap();
    let mut batch = WriteBatch::new();
    batch.put("default", "k", "new").put("b", "k", "new").put("b", "added", "x");
    t.db.write(&batch, WriteOptions::default()).unwrap();
    assert_eq!(snapshot.get("default", b"k").unwrap(), Some(b"old".to_vec()));
    assert_eq!(snapshot.get("b", b"k").unwrap(), Some(b"old".to_vec()));
    assert_eq!(snapshot.range("b", .., Direction::Forward).unwrap().count(), 1);
    assert_eq!(snapshot.seq().unwrap(), seq);
    assert_eq!(t.db.get("b", b"k").unwrap(), Some(b"new".to_vec()));
}

fn ttl_hides_expired_values_per_key_and_by_family_default(mode: Mode) {
    let t = TestDb::new(mode);
    t.db.create_family("sessions", FamilyOptions::default().with_ttl(60)).unwrap();
    t.db.put("sessions", "s1", "default ttl").unwrap();
    t.db.put_expiring("sessions", "s2", "own ttl", Expiry::After(300)).unwrap();
    t.db.put_expiring("sessions", "s3", "never", Expiry::Never).unwrap();
    t.db.put_expiring("default", "d1", "at", Expiry::At(t.clock.now() + 10)).unwrap();
    t.db.put("default", "d2", "forever").unwrap();
    t.clock.advance(59);
    assert_eq!(t.db.get("sessions", b"s1").unwrap(), Some(b"default ttl".to_vec()));
    t.clock.advance(1);
    assert_eq!(t.db.get("sessions", b"s1").unwrap(), None, "expired at exactly its TTL");
    assert_eq!(t.db.get("sessions", b"s2").unwrap(), Some(b"own ttl".to_vec()));
    assert_eq!(t.db.get("default", b"d1").unwrap(), None);
    assert_eq!(contents(&t.db, "sessions").len(), 2);
    assert_eq!(contents(&t.db, "default"), vec![(b"d2".to_vec(), b"forever".to_vec())]);
    t.clock.advance(1000);
    assert_eq!(contents(&t.db, "sessions"), vec![(b"s3".to_vec(), b"never".to_vec())]);
    assert_eq!(t.db.snapshot().unwrap().get("sessions", b"s2").unwrap(), None);
}

fn expired_values_are_reclaimed(mode: Mode) {
    let t = TestDb::new(mode);
    t.db.create_family("cache", FamilyOptions::default().with_ttl(10)).unwrap();
    for i in 0..200 {
        t.db.put("cache", format!("k{i:03}"), "v").unwrap();
    }
    t.db.put_expiring("cache", "keep", "v", Expiry::Never).unwrap();
    assert_eq!(t.db.stored_entries("cache").unwrap(), 201);
    t.clock.advance(11);
    // LSM: the compaction filter; B+tree: the bounded sweep.
    t.db.compact("cache").unwrap();
    let report = t.db.maintenance().unwrap();
    if mode == Mode::Btree {
        assert_eq!(report.expired_removed, 200);
    }
    assert_eq!(t.db.stored_entries("cache").unwrap(), 1);
    assert_eq!(t.db.get("cache", b"keep").unwrap(), Some(b"v".to_vec()));
}

fn merge_builtins_fold_without_reading(mode: Mode) {
    let t = TestDb::new(mode);
    for op in ["int_add", "append", "max", "min"] {
        t.db.create_family(op, FamilyOptions::default().with_merge_operator(op)).unwrap();
    }
    for n in [5i64, -2, 9] {
        for op in ["int_add", "max", "min"] {
            t.db.merge(op, "k", n.to_le_bytes()).unwrap();
        }
        t.db.merge("append", "k", n.to_string()).unwrap();
    }
    let int =
        |op: &str| i64::from_le_bytes(t.db.get(op, b"k").unwrap().unwrap().try_into().unwrap());
    assert_eq!((int("int_add"), int("max"), int("min")), (12, 9, -2));
    assert_eq!(t.db.get("append", b"k").unwrap(), Some(b"5-29".to_vec()));
    assert!(t.db.get("int_add", b"other").unwrap().is_none());
    // Iteration sees keys that exist only as operands, in both directions.
    t.db.merge("int_add", "j", 1i64.to_le_bytes()).unwrap();
    t.db.put("int_add", "l", 7i64.to_le_bytes()).unwrap();
    let keys = |d| t.db.range("int_add", .., d).unwrap().map(|r| r.unwrap().0).collect::<Vec<_>>();
    assert_eq!(keys(Direction::Forward), vec![b"j".to_vec(), b"k".to_vec(), b"l".to_vec()]);
    assert_eq!(keys(Direction::Reverse), vec![b"l".to_vec(), b"k".to_vec(), b"j".to_vec()]);
    let bad = t.db.merge("int_add", "k", "not eight bytes");
    assert!(bad.is_ok(), "a merge does not read, so it cannot check");
    assert!(
        matches!(t.db.get("int_add", b"k"), Err(Error::Merge(_))),
        "the read reports the bad operand"
    );
}

fn merges_interleave_with_puts_and_deletes(mode: Mode) {
    let t = TestDb::new(mode);
    t.db.create_family("n", FamilyOptions::default().with_merge_operator("int_add")).unwrap();
    let get =
        |k: &[u8]| t.db.get("n", k).unwrap().map(|v| i64::from_le_bytes(v.try_into().unwrap()));
    t.db.merge("n", "k", 5i64.to_le_bytes()).unwrap();
    t.db.put("n", "k", 100i64.to_le_bytes()).unwrap();
    assert_eq!(get(b"k"), Some(100), "a put replaces earlier operands");
    t.db.merge("n", "k", 1i64.to_le_bytes()).unwrap();
    assert_eq!(get(b"k"), Some(101));
    t.db.delete("n", "k").unwrap();
    assert_eq!(get(b"k"), None, "a delete hides earlier operands");
    t.db.merge("n", "k", 3i64.to_le_bytes()).unwrap();
    assert_eq!(get(b"k"), Some(3));
    // Within one batch, in order.
    let mut batch = WriteBatch::new();
    batch
        .merge("n", "b", 1i64.to_le_bytes())
        .put("n", "b", 10i64.to_le_bytes())
        .merge("n", "b", 2i64.to_le_bytes())
        .merge("n", "b", 3i64.to_le_bytes());
    t.db.write(&batch, WriteOptions::default()).unwrap();
    assert_eq!(get(b"b"), Some(15));
    let mut batch = WriteBatch::new();
    batch.merge("n", "c", 4i64.to_le_bytes()).merge("n", "c", 6i64.to_le_bytes());
    t.db.write(&batch, WriteOptions::default()).unwrap();
    assert_eq!(get(b"c"), Some(10), "two operands of one batch both count");
}

fn merges_survive_a_restart_and_a_background_fold(mode: Mode) {
    let t = TestDb::new(mode);
    t.db.create_family("n", FamilyOptions::default().with_merge_operator("int_add")).unwrap();
    for _ in 0..40 {
        t.db.merge("n", "hot", 1i64.to_le_bytes()).unwrap();
    }
    let t = t.reopen();
    let value = |t: &TestDb| {
        i64::from_le_bytes(t.db.get("n", b"hot").unwrap().unwrap().try_into().unwrap())
    };
    assert_eq!(value(&t), 40, "operands survive a restart");
    // That read folded 40 operands, over the threshold: the next maintenance folds them.
    let report = t.db.maintenance().unwrap();
    assert_eq!(report.folded_keys, 1);
    assert_eq!(value(&t), 40);
    t.db.merge("n", "hot", 2i64.to_le_bytes()).unwrap();
    let t = t.reopen();
    assert_eq!(value(&t), 42, "operands after a fold still apply, across a restart");
    assert_eq!(
        t.db.maintenance().unwrap().folded_keys,
        0,
        "a read of one operand does not ask for a fold"
    );
}

/// Keeps the largest value seen, byte-wise.
struct LongestWins;

impl MergeOperator for LongestWins {
    fn name(&self) -> &str {
        "longest_wins"
    }
    fn merge(
        &self,
        _key: &[u8],
        existing: Option<&[u8]>,
        operands: &[&[u8]],
    ) -> Result<Vec<u8>, String> {
        let mut best = existing.unwrap_or_default();
        for op in operands {
            if op.len() > best.len() {
                best = op;
            }
        }
        Ok(best.to_vec())
    }
}

fn custom_merge_operators_are_used_and_required(mode: Mode) {
    let dir = tempfile::tempdir().unwrap();
    let clock = common::TestClock::new();
    let mut with_custom = options(mode, &clock);
    with_custom.merge_operators.register(Arc::new(LongestWins));
    let db = Database::open(dir.path().join("db"), with_custom.clone()).unwrap();
    db.create_family("names", FamilyOptions::default().with_merge_operator("longest_wins"))
        .unwrap();
    for name in ["al", "alexandra", "alex"] {
        db.merge("names", "n", name).unwrap();
    }
    assert_eq!(db.get("names", b"n").unwrap(), Some(b"alexandra".to_vec()));
    drop(db);
    let err = Database::open(dir.path().join("db"), options(mode, &clock)).unwrap_err();
    assert!(matches!(&err, Error::UnknownMergeOperator(name) if name == "longest_wins"), "{err}");
    let db = Database::open(dir.path().join("db"), with_custom).unwrap();
    assert_eq!(db.get("names", b"n").unwrap(), Some(b"alexandra".to_vec()));
}

fn sequence_numbers_increase_by_one_per_batch(mode: Mode) {
    let t = TestDb::new(mode);
    let start = t.db.last_seq();
    let seqs: Vec<u64> =
        (0..5).map(|i| t.db.put("default", format!("k{i}"), "v").unwrap()).collect();
    assert_eq!(seqs, (start + 1..=start + 5).collect::<Vec<_>>());
    assert_eq!(t.db.last_seq(), start + 5);
}

/// Each mode commits, and goes exactly as far as it says: only `Fsync` (and `Buffered` on redb,
/// which has no OS-buffered level) syncs before returning. No `sync()` before the reopen, so
/// what is there after it is what the modes themselves wrote.
fn every_sync_mode_commits(mode: Mode) {
    let t = TestDb::new(mode);
    let buffered_syncs = u64::from(mode == Mode::Btree);
    let modes = [(SyncMode::None, 0), (SyncMode::Buffered, buffered_syncs), (SyncMode::Fsync, 1)];
    for (i, (sync, expected_syncs)) in modes.into_iter().enumerate() {
        let before = t.db.syncs();
        let mut batch = WriteBatch::new();
        batch.put("default", format!("k{i}"), "v");
        t.db.write(&batch, WriteOptions { sync }).unwrap();
        assert_eq!(t.db.syncs() - before, expected_syncs, "{mode}: a {sync:?} write");
        assert_eq!(t.db.get("default", format!("k{i}").as_bytes()).unwrap(), Some(b"v".to_vec()));
    }
    let t = t.reopen();
    assert_eq!(contents(&t.db, "default").len(), 3);
}

fn concurrent_fsync_writers_share_fsyncs(mode: Mode) {
    let t = TestDb::new(mode);
    let before = t.db.syncs();
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let db = t.db.clone();
            std::thread::spawn(move || {
                for i in 0..20 {
                    let mut batch = WriteBatch::new();
                    batch.put("default", format!("w{w:02}/{i:02}"), "v");
                    db.write(&batch, WriteOptions { sync: SyncMode::Fsync }).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let syncs = t.db.syncs() - before;
    assert_eq!(contents(&t.db, "default").len(), 320);
    eprintln!("{mode}: 320 fsync writes by 16 writers took {syncs} fsyncs");
    assert!(syncs < 320, "320 fsync writes by 16 writers took {syncs} fsyncs: no group commit");
    assert!(syncs > 0);
}

fn change_log_streams_batches_and_trims(mode: Mode) {
    let t = TestDb::new(mode);
    let start = t.db.last_seq();
    t.db.create_family("c", FamilyOptions::default().with_merge_operator("int_add")).unwrap();
    t.db.put("default", "a", "1").unwrap();
    t.db.merge("c", "n", 1i64.to_le_bytes()).unwrap();
    t.db.delete("default", "a").unwrap();
    let changes: Vec<weftkit_kv::Change> =
        t.db.changes_since(start).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(
        changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
        (start + 1..=start + 4).collect::<Vec<_>>()
    );
    assert!(
        matches!(&changes[0].ops[0], weftkit_kv::ChangeOp::CreateFamily { family, .. } if family == "c")
    );
    assert!(
        matches!(&changes[3].ops[0], weftkit_kv::ChangeOp::Delete { family, key } if family == "default" && key == b"a")
    );
    let tail: Vec<_> = t.db.changes_since(start + 2).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(tail.len(), 2);
    assert_eq!(start, 0, "a new database is at state 0");
    assert_eq!(t.db.trim_changes(start + 2).unwrap(), 2);
    assert!(t.db.changes_since(start).is_err(), "trimmed changes are gone, and says so");
    assert_eq!(t.db.changes_since(start + 2).unwrap().count(), 2);
    let t = t.reopen();
    assert_eq!(t.db.changes_since(start + 3).unwrap().count(), 1);
    assert_eq!(t.db.changes_since(t.db.last_seq()).unwrap().count(), 0);
}

fn keys_and_values_are_bounded(mode: Mode) {
    let t = TestDb::new(mode);
    assert!(matches!(t.db.put("default", "", "v"), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        t.db.put("default", vec![b'k'; weftkit_kv::MAX_KEY_BYTES + 1], "v"),
        Err(Error::InvalidArgument(_))
    ));
    t.db.put("default", vec![b'k'; weftkit_kv::MAX_KEY_BYTES], "v").unwrap();
    t.db.put("default", "binary\0key\u{ff}", vec![0u8, 255, 0]).unwrap();
    assert_eq!(t.db.get("default", b"binary\0key\xc3\xbf").unwrap(), Some(vec![0u8, 255, 0]));
}

/// Builder calls compose: each keeps what the others set, and the database opens as asked.
#[test]
fn option_builders_compose_and_open_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    let clock = common::TestClock::new();
    let o = Options { cache_bytes: 8 << 20, ..Options::default() }
        .clock(clock.clock())
        .mode(Mode::Btree);
    assert_eq!((o.mode, o.cache_bytes), (Mode::Btree, 8 << 20));
    let db = Database::open(dir.path().join("db"), o).unwrap();
    assert_eq!(db.mode(), Mode::Btree);
    db.put("default", "k", "v").unwrap();
    assert_eq!(db.get("default", b"k").unwrap(), Some(b"v".to_vec()));
}
