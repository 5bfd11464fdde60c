//! Merge families under churn: the same keys written, merged and deleted over and over, and
//! new keys written and deleted, keep a bounded size once maintenance runs; tombstones and
//! overridden operands are collected whether this process wrote them or found them on disk.

mod common;

use common::{TestDb, contents, options};
use weftkit_kv::{Database, FamilyOptions, Mode, SyncMode, WriteBatch, WriteOptions};

const FAMILY: &str = "counters";
/// Keys deleted at the end of every round, and keys that stay.
const CHURNED: u32 = 40;
const LIVE: u32 = 10;
/// New keys every round, deleted in the same round.
const ONCE: u32 = 10;
/// Rounds of the long churn.
const ROUNDS: u32 = 40;

fn merge_family(db: &Database) {
    db.create_family(FAMILY, FamilyOptions::default().with_merge_operator("int_add")).unwrap();
}

fn int(db: &Database, key: &str) -> Option<i64> {
    db.get(FAMILY, key.as_bytes()).unwrap().map(|v| i64::from_le_bytes(v.try_into().unwrap()))
}

/// Commits one batch, unsynced: the churn is about what is stored, not how durably.
fn write(db: &Database, build: impl FnOnce(&mut WriteBatch) -> &mut WriteBatch) {
    let mut batch = WriteBatch::new();
    build(&mut batch);
    db.write(&batch, WriteOptions { sync: SyncMode::None }).unwrap();
}

/// One round of churn: operands then a put then an operand then a delete on the same keys
/// (some in one batch, some across batches), new keys that live one round, and live keys
/// whose value is replaced and merged into. One batch per step, so operands are stored.
fn churn(db: &Database, round: u32) {
    let n = |v: i64| v.to_le_bytes();
    for k in 0..CHURNED {
        let key = format!("churn/{k:03}");
        let key = key.as_str();
        write(db, |b| b.merge(FAMILY, key, n(1)));
        write(db, |b| b.merge(FAMILY, key, n(2)));
        write(db, |b| b.put(FAMILY, key, n(100)));
        write(db, |b| b.merge(FAMILY, key, n(3)));
        if k % 2 == 0 {
            write(db, |b| b.delete(FAMILY, key));
        } else {
            write(db, |b| b.merge(FAMILY, key, n(4)).delete(FAMILY, key));
        }
    }
    for k in 0..ONCE {
        // Half leave operands behind their tombstone, half only a tombstone.
        let key = format!("once/{round:05}/{k}");
        let key = key.as_str();
        if k % 2 == 0 {
            write(db, |b| b.merge(FAMILY, key, n(5)));
        } else {
            write(db, |b| b.put(FAMILY, key, n(5)));
        }
        write(db, |b| b.delete(FAMILY, key));
    }
    for k in 0..LIVE {
        let key = format!("live/{k}");
        let key = key.as_str();
        write(db, |b| b.put(FAMILY, key, n(i64::from(round))));
        write(db, |b| b.merge(FAMILY, key, n(1)));
    }
}

/// What a reader must see after any round: the live keys, nothing else.
fn assert_reads(db: &Database, round: u32) {
    let pairs = contents(db, FAMILY);
    assert_eq!(pairs.len(), LIVE as usize, "only the live keys remain visible");
    for k in 0..LIVE {
        assert_eq!(int(db, &format!("live/{k}")), Some(i64::from(round) + 1));
    }
    assert_eq!(int(db, "churn/000"), None);
    assert_eq!(int(db, "churn/001"), None);
}

/// Entries the family stores, and records a snapshot segment of the database carries.
fn footprint(db: &Database) -> (usize, u64) {
    let records = db.export_snapshot(std::io::sink()).unwrap().records;
    (db.stored_entries(FAMILY).unwrap(), records)
}

fn churn_keeps_a_merge_family_bounded(mode: Mode) {
    let t = TestDb::new(mode);
    merge_family(&t.db);
    let mut after_three = None;
    let mut collected = 0;
    for round in 0..ROUNDS {
        churn(&t.db, round);
        collected += t.db.maintenance().unwrap().collected_keys;
        assert_reads(&t.db, round);
        if round == 2 {
            after_three = Some(footprint(&t.db));
        }
    }
    let (entries_3, records_3) = after_three.unwrap();
    let (entries_n, records_n) = footprint(&t.db);
    // A live key holds its value and the operand merged after it (every other round the put
    // overrode the operand before, and collecting it folded the new one too).
    assert_eq!(entries_3, 2 * LIVE as usize, "after three rounds");
    assert!(
        entries_n <= entries_3,
        "{mode:?}: the family grew from {entries_3} entries after 3 rounds to {entries_n} \
         after {ROUNDS}"
    );
    assert!(
        records_n <= records_3,
        "{mode:?}: snapshots grew from {records_3} records after 3 rounds to {records_n} after \
         {ROUNDS}"
    );
    // Every round each churned and one-round key; every other round each live key.
    let rounds = ROUNDS as usize;
    assert_eq!(collected, rounds * (CHURNED + ONCE) as usize + rounds / 2 * LIVE as usize);
}

fn tombstones_from_before_a_restart_are_collected(mode: Mode) {
    let t = TestDb::new(mode);
    merge_family(&t.db);
    for round in 0..5 {
        churn(&t.db, round);
    }
    let before = t.db.stored_entries(FAMILY).unwrap();
    // The queue of deleted keys is in memory only; the reopened database finds them on disk.
    let t = t.reopen();
    assert_reads(&t.db, 4);
    let report = t.db.maintenance().unwrap();
    // Live keys are down to their folded value.
    assert_eq!(t.db.stored_entries(FAMILY).unwrap(), LIVE as usize, "from {before}");
    assert_eq!(report.collected_keys, (CHURNED + 5 * ONCE + LIVE) as usize);
    assert_reads(&t.db, 4);
    // The scan after opening is done once; later rounds collect what deletes queued.
    churn(&t.db, 5);
    let report = t.db.maintenance().unwrap();
    assert_eq!(report.collected_keys, (CHURNED + ONCE) as usize);
    assert_eq!(t.db.stored_entries(FAMILY).unwrap(), 2 * LIVE as usize);
    assert_reads(&t.db, 5);
}

fn an_imported_snapshot_with_tombstones_is_collected_and_reads_the_same(mode: Mode) {
    let t = TestDb::new(mode);
    merge_family(&t.db);
    for round in 0..3 {
        churn(&t.db, round);
    }
    // Exported before any maintenance: the segment carries tombstones and dead operands.
    let path = t.dir.path().join("snapshot.wkp");
    t.db.export_snapshot(std::fs::File::create(&path).unwrap()).unwrap();
    let other = if mode == Mode::Lsm { Mode::Btree } else { Mode::Lsm };
    let imported = Database::import(
        t.dir.path().join("imported"),
        options(other, &t.clock),
        Some(std::fs::File::open(&path).unwrap()),
        Vec::<std::fs::File>::new(),
    )
    .unwrap();
    let stored = imported.stored_entries(FAMILY).unwrap();
    assert!(stored > 2 * LIVE as usize, "the import holds what was exported: {stored}");
    imported.maintenance().unwrap();
    assert_eq!(imported.stored_entries(FAMILY).unwrap(), LIVE as usize);
    assert_reads(&imported, 2);
    assert_eq!(contents(&imported, FAMILY), contents(&t.db, FAMILY));
    // Operands merged after the collection apply as before it.
    imported.merge(FAMILY, "churn/000", 7i64.to_le_bytes()).unwrap();
    imported.merge(FAMILY, "live/0", 7i64.to_le_bytes()).unwrap();
    assert_eq!(int(&imported, "churn/000"), Some(7));
    assert_eq!(int(&imported, "live/0"), Some(2 + 1 + 7));
}

fn a_fold_after_the_value_expired_keeps_the_operands_merged_since(mode: Mode) {
    let t = TestDb::new(mode);
    merge_family(&t.db);
    t.db.merge(FAMILY, "k", 5i64.to_le_bytes()).unwrap();
    t.db.put_expiring(FAMILY, "k", 100i64.to_le_bytes(), weftkit_kv::Expiry::After(10)).unwrap();
    t.clock.advance(20);
    t.db.merge(FAMILY, "k", 1i64.to_le_bytes()).unwrap();
    assert_eq!(int(&t.db, "k"), Some(1), "the expired value and the operand before it are gone");
    // Maintenance drops the operand the put overrode and folds the one after it.
    t.db.maintenance().unwrap();
    assert_eq!(int(&t.db, "k"), Some(1), "the fold must not give the result the old expiry");
    assert_eq!(t.db.stored_entries(FAMILY).unwrap(), 1);
}

for_both_modes!(
    churn_keeps_a_merge_family_bounded,
    tombstones_from_before_a_restart_are_collected,
    an_imported_snapshot_with_tombstones_is_collected_and_reads_the_same,
    a_fold_after_the_value_expired_keeps_the_operands_merged_since,
);
