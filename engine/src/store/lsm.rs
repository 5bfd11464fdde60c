//! fjall, the LSM engine.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use fjall::compaction::filter::{
    CompactionFilter, CompactionFilterResult, Context, Factory, ItemAccessor, Verdict,
};
use fjall::compaction::{Fifo, Leveled};
use fjall::config::{BloomConstructionPolicy, FilterPolicy, FilterPolicyEntry};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use wkp1_protocol::Clock;

use super::{Durability, KeyRange, Op, RawIter};
use crate::codec;
use crate::error::{Error, Result};
use crate::family::DATA_PREFIX;
use crate::options::{Compaction, FamilyOptions};

pub(crate) struct LsmStore {
    db: Database,
    keyspaces: RwLock<HashMap<String, Keyspace>>,
}

pub(crate) struct LsmSnapshot {
    snapshot: fjall::Snapshot,
    keyspaces: HashMap<String, Keyspace>,
}

/// Drops values whose TTL has passed when compaction rewrites them (`Remove` leaves a
/// tombstone, so an older version cannot reappear).
struct TtlFilter {
    now: u64,
}

impl CompactionFilter for TtlFilter {
    fn filter_item(&mut self, item: ItemAccessor<'_>, _ctx: &Context) -> CompactionFilterResult {
        let value = item.value()?;
        Ok(match codec::expires_at(&value) {
            Some(at) if at <= self.now => Verdict::Remove,
            _ => Verdict::Keep,
        })
    }
}

struct TtlFactory {
    // fjall asks factories to be unwind-safe; a clock that panicked has no state to corrupt.
    clock: std::panic::AssertUnwindSafe<Clock>,
}

impl Factory for TtlFactory {
    fn name(&self) -> &str {
        "weftkit-ttl"
    }

    fn make_filter(&self, _ctx: &Context) -> Box<dyn CompactionFilter> {
        Box::new(TtlFilter { now: self.clock.now() })
    }
}

impl LsmStore {
    pub(crate) fn open(dir: &Path, cache_bytes: u64, clock: Clock) -> Result<Self> {
        let factory: Arc<dyn Factory> =
            Arc::new(TtlFactory { clock: std::panic::AssertUnwindSafe(clock) });
        let db = Database::builder(dir)
            .cache_size(cache_bytes)
            .with_compaction_filter_factories(Arc::new(move |name: &str| {
                name.starts_with(DATA_PREFIX).then(|| factory.clone())
            }))
            .open()?;
        let mut keyspaces = HashMap::new();
        for name in db.list_keyspace_names() {
            let name: &str = &name;
            keyspaces.insert(name.to_owned(), db.keyspace(name, KeyspaceCreateOptions::default)?);
        }
        Ok(Self { db, keyspaces: RwLock::new(keyspaces) })
    }

    fn handle(&self, name: &str) -> Result<Keyspace> {
        self.keyspaces
            .read()
            .expect("keyspace map lock")
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Corrupt(format!("keyspace {name} is missing")))
    }

    pub(crate) fn create_keyspace(
        &self,
        name: &str,
        options: Option<&FamilyOptions>,
    ) -> Result<()> {
        let mut create = KeyspaceCreateOptions::default();
        if let Some(options) = options {
            let bits = f64::from(options.bloom_bits_per_key.max(0.0));
            create = create.filter_policy(FilterPolicy::all(FilterPolicyEntry::Bloom(
                BloomConstructionPolicy::BitsPerKey(bits as f32),
            )));
            create = match options.compaction {
                Compaction::Leveled => create.compaction_strategy(Arc::new(Leveled::default())),
                Compaction::Fifo { max_bytes, ttl_seconds } => {
                    create.compaction_strategy(Arc::new(Fifo::new(max_bytes, ttl_seconds)))
                }
                Compaction::SizeTiered => {
                    return Err(Error::invalid(
                        "size-tiered compaction is not supported yet (fjall 3 has no size-tiered strategy); use leveled or fifo",
                    ));
                }
            };
        }
        let keyspace = self.db.keyspace(name, move || create)?;
        self.keyspaces.write().expect("keyspace map lock").insert(name.to_owned(), keyspace);
        Ok(())
    }

    pub(crate) fn drop_keyspace(&self, name: &str) -> Result<()> {
        let removed = self.keyspaces.write().expect("keyspace map lock").remove(name);
        if let Some(keyspace) = removed {
            self.db.delete_keyspace(keyspace)?;
        }
        Ok(())
    }

    pub(crate) fn keyspaces(&self) -> Result<Vec<String>> {
        Ok(self.keyspaces.read().expect("keyspace map lock").keys().cloned().collect())
    }

    pub(crate) fn write(&self, ops: &[Op], durability: Durability) -> Result<()> {
        let mode = match durability {
            Durability::None => None,
            Durability::Buffer => Some(PersistMode::Buffer),
            Durability::Sync => Some(PersistMode::SyncAll),
        };
        let mut batch = self.db.batch().durability(mode);
        let keyspaces = self.keyspaces.read().expect("keyspace map lock");
        let find = |name: &str| {
            keyspaces.get(name).ok_or_else(|| Error::Corrupt(format!("keyspace {name} is missing")))
        };
        for op in ops {
            match op {
                Op::Put { keyspace, key, value } => {
                    batch.insert(find(keyspace)?, key.as_slice(), value.as_slice())
                }
                Op::Remove { keyspace, key } => batch.remove(find(keyspace)?, key.as_slice()),
            }
        }
        drop(keyspaces);
        batch.commit()?;
        Ok(())
    }

    /// One journal batch per batch (each keeps its own atomicity and sequence number in fjall),
    /// then one flush or fsync for all of them.
    pub(crate) fn write_group(&self, batches: &[Vec<Op>], durability: Durability) -> Result<()> {
        for batch in batches {
            self.write(batch, Durability::None)?;
        }
        match durability {
            Durability::None => Ok(()),
            Durability::Buffer => Ok(self.db.persist(PersistMode::Buffer)?),
            Durability::Sync => Ok(self.db.persist(PersistMode::SyncAll)?),
        }
    }

    pub(crate) fn sync(&self) -> Result<()> {
        Ok(self.db.persist(PersistMode::SyncAll)?)
    }

    pub(crate) fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.handle(keyspace)?.get(key)?.map(|v| v.to_vec()))
    }

    pub(crate) fn snapshot(&self) -> LsmSnapshot {
        // The map first: a keyspace created after the snapshot is empty in it anyway.
        let keyspaces = self.keyspaces.read().expect("keyspace map lock").clone();
        LsmSnapshot { snapshot: self.db.snapshot(), keyspaces }
    }

    pub(crate) fn compact(&self, keyspace: &str) -> Result<()> {
        let keyspace = self.handle(keyspace)?;
        keyspace.rotate_memtable_and_wait()?;
        keyspace.major_compact()?;
        Ok(())
    }
}

impl LsmSnapshot {
    pub(crate) fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.keyspaces.get(keyspace) {
            Some(ks) => Ok(self.snapshot.get(ks, key)?.map(|v| v.to_vec())),
            None => Ok(None),
        }
    }

    pub(crate) fn range(&self, keyspace: &str, range: &KeyRange, reverse: bool) -> Result<RawIter> {
        let Some(ks) = self.keyspaces.get(keyspace) else {
            return Ok(Box::new(std::iter::empty()));
        };
        let iter = self.snapshot.range(ks, (range.lower.clone(), range.upper.clone()));
        let pairs = |guard: fjall::Guard| -> Result<(Vec<u8>, Vec<u8>)> {
            let (k, v) = guard.into_inner()?;
            Ok((k.to_vec(), v.to_vec()))
        };
        Ok(if reverse { Box::new(iter.rev().map(pairs)) } else { Box::new(iter.map(pairs)) })
    }
}
