//! The database: opening, the public read and write API, families, snapshots, the change log.

use std::collections::BTreeSet;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, RwLock};

use crate::batch::{BatchOp, Expiry, WriteBatch};
use crate::codec::{self, Change, ChangeOp};
use crate::commit::{Committer, LAST_SEQ_KEY, Prepared};
use crate::error::{Error, Result};
use crate::family::{CHANGELOG, DATA_PREFIX, DEFAULT_FAMILY, Family, META, OPERAND_PREFIX};
use crate::inner::Inner;
use crate::maintenance;
use crate::meta;
use crate::options::{FamilyOptions, Mode, Options, WriteOptions};
use crate::read::{self, Iter};
use crate::store::{KeyRange, Op, Store, StoreSnapshot};
use crate::write::{self, Families};

const TRIMMED_KEY: &[u8] = b"changelog_trimmed_upto";
const FAMILY_PREFIX: &[u8] = b"family/";

/// Iteration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    Forward,
    Reverse,
}

/// An open WeftKitKV database. Cheap to clone; all clones share one engine.
#[derive(Clone)]
pub struct Database {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.inner.path)
            .field("mode", &self.mode())
            .finish()
    }
}

fn u64_of(bytes: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(
        bytes.try_into().map_err(|_| Error::Corrupt("stored counter is not 8 bytes".into()))?,
    ))
}

impl Database {
    /// Opens the database at `path`, creating it (in `options.mode`) if there is none.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let created = match meta::read(&path)? {
            Some(existing) if existing.mode != options.mode => {
                return Err(Error::ModeMismatch {
                    path: path.display().to_string(),
                    found: existing.mode.as_str(),
                    asked: options.mode.as_str(),
                });
            }
            Some(_) => false,
            None if !options.create_if_missing => {
                return Err(Error::invalid(format!(
                    "{} holds no database and create_if_missing is off",
                    path.display()
                )));
            }
            None => {
                let occupied =
                    std::fs::read_dir(&path).map(|mut d| d.next().is_some()).unwrap_or(false);
                if occupied {
                    return Err(Error::invalid(format!(
                        "{} is not empty and holds no WeftKitKV database",
                        path.display()
                    )));
                }
                meta::create(&path, options.mode)?;
                true
            }
        };
        let store = Store::open(&path, options.mode, options.cache_bytes, options.clock.clone())?;
        store.create_keyspace(META, None)?;
        store.create_keyspace(CHANGELOG, None)?;
        let snapshot = store.snapshot()?;
        let last_seq =
            snapshot.get(META, LAST_SEQ_KEY)?.map(|b| u64_of(&b)).transpose()?.unwrap_or(0);
        let mut families = load_families(&snapshot, &options)?;
        drop(snapshot);
        if created {
            let default =
                Family::new(DEFAULT_FAMILY, FamilyOptions::default(), &options.merge_operators)?;
            store.create_keyspace(&default.data, Some(&default.options))?;
            store.write(&[family_meta_op(&default)?], crate::store::Durability::Buffer)?;
            store.sync()?;
            families.insert(DEFAULT_FAMILY.into(), Arc::new(default));
        }
        reconcile_keyspaces(&store, &families)?;
        let inner = Arc::new(Inner {
            path,
            committer: Committer::new(last_seq, options.change_log),
            store,
            families: RwLock::new(Arc::new(families)),
            folds: Mutex::new(BTreeSet::new()),
            tombstones: Mutex::new(BTreeSet::new()),
            tombstone_scan: AtomicBool::new(true),
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            options,
        });
        if let Some(interval) = inner.options.maintenance_interval {
            maintenance::spawn(Arc::downgrade(&inner), inner.stop.clone(), interval);
        }
        Ok(Self { inner })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn mode(&self) -> Mode {
        self.inner.store.mode()
    }

    /// The sequence number of the last committed batch (0 for a new database).
    pub fn last_seq(&self) -> u64 {
        self.inner.committer.last_seq()
    }

    pub(crate) fn families(&self) -> Arc<Families> {
        self.inner.families.read().expect("families lock").clone()
    }

    fn family(&self, name: &str) -> Result<Arc<Family>> {
        self.families().get(name).cloned().ok_or_else(|| Error::NoSuchFamily(name.to_owned()))
    }

    fn now(&self) -> u64 {
        self.inner.options.clock.now()
    }

    // ---- families ----------------------------------------------------------------------------

    /// The families and their options, by name.
    pub fn list_families(&self) -> Vec<(String, FamilyOptions)> {
        self.families().values().map(|f| (f.name.clone(), f.options.clone())).collect()
    }

    /// Creates a column family; its options are fixed from now on.
    pub fn create_family(&self, name: &str, options: FamilyOptions) -> Result<u64> {
        let family = Family::new(name, options, &self.inner.options.merge_operators)?;
        let inner = &self.inner;
        inner.committer.commit(&inner.store, inner.options.sync, |_seq| {
            let mut families = inner.families.write().expect("families lock");
            if families.contains_key(name) {
                return Err(Error::FamilyExists(name.to_owned()));
            }
            create_keyspaces(&inner.store, &family)?;
            let options_json = serde_json::to_vec(&family.options).expect("options serialize");
            let prepared = Prepared {
                ops: vec![family_meta_op(&family)?],
                changes: vec![ChangeOp::CreateFamily { family: name.to_owned(), options_json }],
            };
            Arc::make_mut(&mut families).insert(name.to_owned(), Arc::new(family.clone()));
            Ok(prepared)
        })
    }

    /// Drops a column family and everything in it.
    pub fn drop_family(&self, name: &str) -> Result<u64> {
        let inner = &self.inner;
        let mut dropped = None;
        let seq = inner.committer.commit(&inner.store, inner.options.sync, |_seq| {
            let mut families = inner.families.write().expect("families lock");
            let family = Arc::make_mut(&mut families)
                .remove(name)
                .ok_or_else(|| Error::NoSuchFamily(name.to_owned()))?;
            let ops = vec![Op::Remove { keyspace: META.into(), key: Family::meta_key(name) }];
            dropped = Some(family);
            Ok(Prepared { ops, changes: vec![ChangeOp::DropFamily { family: name.to_owned() }] })
        })?;
        if let Some(family) = dropped {
            drop_keyspaces(&inner.store, &family)?;
        }
        Ok(seq)
    }

    // ---- writes --------------------------------------------------------------------------------

    /// Commits a batch atomically; returns its sequence number.
    pub fn write(&self, batch: &WriteBatch, options: WriteOptions) -> Result<u64> {
        if batch.is_empty() {
            return Err(Error::invalid("an empty batch has nothing to commit"));
        }
        let inner = &self.inner;
        let now = self.now();
        let seq = inner.committer.commit(&inner.store, options.sync, |seq| {
            write::prepare(&self.families(), batch, seq, now)
        })?;
        self.note_tombstones(&self.families(), batch);
        Ok(seq)
    }

    /// Queues the merge-family keys `batch` deleted, so maintenance collects their tombstones.
    fn note_tombstones(&self, families: &Families, batch: &WriteBatch) {
        let mut deleted = batch
            .ops
            .iter()
            .filter_map(|op| match op {
                BatchOp::Delete { family, key }
                    if families.get(family).is_some_and(|f| f.merge.is_some()) =>
                {
                    Some((family.clone(), key.clone()))
                }
                _ => None,
            })
            .peekable();
        if deleted.peek().is_some() {
            self.inner.tombstones.lock().expect("tombstones lock").extend(deleted);
        }
    }

    fn write_one(&self, batch: WriteBatch) -> Result<u64> {
        self.write(&batch, WriteOptions { sync: self.inner.options.sync })
    }

    pub fn put(
        &self,
        family: &str,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Result<u64> {
        let mut batch = WriteBatch::new();
        batch.put(family, key, value);
        self.write_one(batch)
    }

    pub fn put_expiring(
        &self,
        family: &str,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        expiry: Expiry,
    ) -> Result<u64> {
        let mut batch = WriteBatch::new();
        batch.put_expiring(family, key, value, expiry);
        self.write_one(batch)
    }

    pub fn delete(&self, family: &str, key: impl Into<Vec<u8>>) -> Result<u64> {
        let mut batch = WriteBatch::new();
        batch.delete(family, key);
        self.write_one(batch)
    }

    pub fn merge(
        &self,
        family: &str,
        key: impl Into<Vec<u8>>,
        operand: impl Into<Vec<u8>>,
    ) -> Result<u64> {
        let mut batch = WriteBatch::new();
        batch.merge(family, key, operand);
        self.write_one(batch)
    }

    /// Engine syncs (fsyncs) performed since open: fewer than synced writes when they overlap.
    pub fn syncs(&self) -> u64 {
        self.inner.committer.syncs()
    }

    /// Makes every committed write durable now.
    pub fn sync(&self) -> Result<()> {
        self.inner.committer.sync_all(&self.inner.store)
    }

    // ---- reads ----------------------------------------------------------------------------------

    /// The value of `key`, if it has one that has not expired.
    pub fn get(&self, family: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let family = self.family(family)?;
        let now = self.now();
        if family.operands.is_none() {
            // Fast path: one engine read, no snapshot.
            return Ok(self
                .inner
                .store
                .get(&family.data, key)?
                .map(|s| read::plain(s, now))
                .transpose()?
                .flatten());
        }
        let snapshot = self.inner.store.snapshot()?;
        let read = read::get(&snapshot, &family, key, now)?;
        self.note_operands(&family, key, read.operands);
        Ok(read.value)
    }

    pub(crate) fn note_operands(&self, family: &Family, key: &[u8], operands: usize) {
        if operands >= self.inner.options.fold_threshold {
            self.inner
                .folds
                .lock()
                .expect("folds lock")
                .insert((family.name.clone(), key.to_vec()));
        }
    }

    /// A consistent view of every family at the current sequence number.
    pub fn snapshot(&self) -> Result<Snapshot> {
        // The families first: a family created after them cannot be half-visible.
        let families = self.families();
        let snap = self.inner.store.snapshot()?;
        Ok(Snapshot {
            db: self.clone(),
            snap,
            families,
            seq: std::sync::OnceLock::new(),
            now: self.now(),
        })
    }

    /// Key-value pairs with keys in `range`, in `direction`; take as many as you need.
    pub fn range(
        &self,
        family: &str,
        range: impl RangeBounds<Vec<u8>>,
        direction: Direction,
    ) -> Result<Iter> {
        self.snapshot()?.range(family, range, direction)
    }

    /// Key-value pairs whose keys start with `prefix`.
    pub fn prefix(&self, family: &str, prefix: &[u8], direction: Direction) -> Result<Iter> {
        self.snapshot()?.prefix(family, prefix, direction)
    }

    // ---- change log -------------------------------------------------------------------------

    /// Every committed batch after `seq`, oldest first, streamed from a consistent snapshot.
    pub fn changes_since(&self, seq: u64) -> Result<Changes> {
        let snap = self.inner.store.snapshot()?;
        let trimmed = snap.get(META, TRIMMED_KEY)?.map(|b| u64_of(&b)).transpose()?.unwrap_or(0);
        let last = snap.get(META, LAST_SEQ_KEY)?.map(|b| u64_of(&b)).transpose()?.unwrap_or(0);
        if seq < trimmed && seq < last {
            return Err(Error::invalid(format!(
                "changes up to {trimmed} were trimmed; changes after {seq} are gone"
            )));
        }
        if !self.inner.options.change_log && seq < last {
            return Err(Error::invalid("the change log is off (Options::change_log)"));
        }
        let range = KeyRange {
            lower: Bound::Excluded(seq.to_be_bytes().to_vec()),
            upper: Bound::Included(last.to_be_bytes().to_vec()),
        };
        let raw = snap.range(CHANGELOG, &range, false)?;
        Ok(Changes { raw, expect: seq + 1, last })
    }

    /// Forgets the change log up to and including `seq` (once WKP-1 acknowledged it).
    pub fn trim_changes(&self, seq: u64) -> Result<usize> {
        let inner = &self.inner;
        let upto = seq.min(self.last_seq());
        inner.committer.exclusive(|| {
            let snap = inner.store.snapshot()?;
            let range = KeyRange {
                lower: Bound::Unbounded,
                upper: Bound::Included(upto.to_be_bytes().to_vec()),
            };
            let mut removed = 0;
            let mut ops = Vec::new();
            for item in snap.range(CHANGELOG, &range, false)? {
                ops.push(Op::Remove { keyspace: CHANGELOG.into(), key: item?.0 });
                if ops.len() == 1024 {
                    removed += ops.len();
                    inner.store.write(&std::mem::take(&mut ops), crate::store::Durability::None)?;
                }
            }
            removed += ops.len();
            ops.push(Op::Put {
                keyspace: META.into(),
                key: TRIMMED_KEY.to_vec(),
                value: upto.to_be_bytes().to_vec(),
            });
            inner.store.write(&ops, crate::store::Durability::None)?;
            Ok(removed)
        })
    }

    // ---- maintenance -------------------------------------------------------------------------

    /// Runs maintenance now: folds hot merge keys, sweeps expired values (B+tree), syncs
    /// buffered commits (B+tree).
    pub fn maintenance(&self) -> Result<maintenance::Report> {
        maintenance::run(&self.inner)
    }

    /// Compacts a family now. On the LSM this drops expired values (the compaction filter).
    pub fn compact(&self, family: &str) -> Result<()> {
        let family = self.family(family)?;
        self.inner.store.compact(&family.data)?;
        if let Some(operands) = &family.operands {
            self.inner.store.compact(operands)?;
        }
        Ok(())
    }

    /// Entries stored for a family: values (expired ones included, what TTL reclaim shrinks),
    /// and in a merge family also tombstones and pending operands (what maintenance folds and
    /// collects).
    pub fn stored_entries(&self, family: &str) -> Result<usize> {
        let family = self.family(family)?;
        let snap = self.inner.store.snapshot()?;
        let mut count = 0;
        for keyspace in std::iter::once(&family.data).chain(&family.operands) {
            for item in snap.range(keyspace, &KeyRange::all(), false)? {
                item?;
                count += 1;
            }
        }
        Ok(count)
    }
}

/// The change log from a point on.
pub struct Changes {
    raw: crate::store::RawIter,
    expect: u64,
    last: u64,
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes").field("next", &self.expect).field("last", &self.last).finish()
    }
}

impl Changes {
    /// The sequence number the stream ends at.
    pub fn last_seq(&self) -> u64 {
        self.last
    }
}

impl Iterator for Changes {
    type Item = Result<Change>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.raw.next();
        let Some(item) = item else {
            // Batches never leave a hole; a short log means records are missing.
            if self.expect <= self.last {
                let missing = self.expect;
                self.expect = self.last + 1;
                return Some(Err(Error::Corrupt(format!("change log lacks batch {missing}"))));
            }
            return None;
        };
        Some(item.and_then(|(_, bytes)| {
            let change = codec::decode_change(&bytes)?;
            if change.seq != self.expect {
                return Err(Error::Corrupt(format!(
                    "change log jumps from {} to {}",
                    self.expect, change.seq
                )));
            }
            self.expect += 1;
            Ok(change)
        }))
    }
}

/// A consistent read view of a database at one sequence number.
pub struct Snapshot {
    db: Database,
    snap: StoreSnapshot,
    families: Arc<Families>,
    /// Read on first use: most snapshots are range reads that never ask.
    seq: std::sync::OnceLock<u64>,
    now: u64,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("seq", &self.seq.get()).finish()
    }
}

impl Snapshot {
    /// The sequence number of the last batch this view includes.
    pub fn seq(&self) -> Result<u64> {
        if let Some(seq) = self.seq.get() {
            return Ok(*seq);
        }
        let seq = self.snap.get(META, LAST_SEQ_KEY)?.map(|b| u64_of(&b)).transpose()?.unwrap_or(0);
        Ok(*self.seq.get_or_init(|| seq))
    }

    fn family(&self, name: &str) -> Result<&Arc<Family>> {
        self.families.get(name).ok_or_else(|| Error::NoSuchFamily(name.to_owned()))
    }

    pub fn get(&self, family: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let family = self.family(family)?;
        let read = read::get(&self.snap, family, key, self.now)?;
        self.db.note_operands(family, key, read.operands);
        Ok(read.value)
    }

    pub fn range(
        &self,
        family: &str,
        range: impl RangeBounds<Vec<u8>>,
        direction: Direction,
    ) -> Result<Iter> {
        let family = self.family(family)?;
        let range =
            KeyRange { lower: range.start_bound().cloned(), upper: range.end_bound().cloned() };
        Iter::new(&self.snap, family, &range, direction == Direction::Reverse, self.now)
    }

    pub fn prefix(&self, family: &str, prefix: &[u8], direction: Direction) -> Result<Iter> {
        let upper = match read::prefix_end(prefix) {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        self.range(family, (Bound::Included(prefix.to_vec()), upper), direction)
    }

    pub(crate) fn store(&self) -> &StoreSnapshot {
        &self.snap
    }

    pub(crate) fn families(&self) -> &Families {
        &self.families
    }
}

pub(crate) fn family_meta_op(family: &Family) -> Result<Op> {
    let json = serde_json::to_vec(&family.options).map_err(|e| Error::Corrupt(e.to_string()))?;
    Ok(Op::Put { keyspace: META.into(), key: Family::meta_key(&family.name), value: json })
}

pub(crate) fn create_keyspaces(store: &Store, family: &Family) -> Result<()> {
    store.create_keyspace(&family.data, Some(&family.options))?;
    if let Some(operands) = &family.operands {
        store.create_keyspace(operands, None)?;
    }
    Ok(())
}

pub(crate) fn drop_keyspaces(store: &Store, family: &Family) -> Result<()> {
    store.drop_keyspace(&family.data)?;
    if let Some(operands) = &family.operands {
        store.drop_keyspace(operands)?;
    }
    Ok(())
}

fn load_families(snapshot: &StoreSnapshot, options: &Options) -> Result<Families> {
    let mut families = Families::new();
    let range = KeyRange {
        lower: Bound::Included(FAMILY_PREFIX.to_vec()),
        upper: Bound::Excluded(b"family0".to_vec()),
    };
    for item in snapshot.range(META, &range, false)? {
        let (key, value) = item?;
        let name = String::from_utf8(key[FAMILY_PREFIX.len()..].to_vec())
            .map_err(|_| Error::Corrupt("family name is not UTF-8".into()))?;
        let family_options: FamilyOptions = serde_json::from_slice(&value)
            .map_err(|e| Error::Corrupt(format!("options of family {name}: {e}")))?;
        families.insert(
            name.clone(),
            Arc::new(Family::new(&name, family_options, &options.merge_operators)?),
        );
    }
    Ok(families)
}

/// Makes the engine's keyspaces match the families: a crash between a family's definition and
/// its keyspaces leaves one without the other.
fn reconcile_keyspaces(store: &Store, families: &Families) -> Result<()> {
    let existing = store.keyspaces()?;
    for family in families.values() {
        create_keyspaces(store, family)?;
    }
    for name in existing {
        let owned = [DATA_PREFIX, OPERAND_PREFIX].iter().any(|p| name.starts_with(p));
        let known = families
            .values()
            .any(|f| f.data == name || f.operands.as_deref() == Some(name.as_str()));
        if owned && !known {
            tracing::warn!(
                keyspace = name,
                "dropping a keyspace no family owns (left by an interrupted drop)"
            );
            store.drop_keyspace(&name)?;
        }
    }
    Ok(())
}
