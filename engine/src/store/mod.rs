//! The storage seam: the few operations WeftKitKV needs from an engine, over fjall (LSM) or
//! redb (B+tree). Everything above it (families, TTL, merges, the change log) is engine-free.
//!
//! A "keyspace" here is the engine's own namespace (a fjall keyspace, a redb table); one column
//! family uses one or two of them.

mod btree;
mod lsm;

use std::ops::Bound;
use std::path::Path;

pub(crate) use btree::BTreeStore;
pub(crate) use lsm::LsmStore;
use wkp1_protocol::Clock;

use crate::error::Result;
use crate::options::{FamilyOptions, Mode};

/// One write of a batch.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Put { keyspace: String, key: Vec<u8>, value: Vec<u8> },
    Remove { keyspace: String, key: Vec<u8> },
}

/// How far a write goes before `write` returns (ordered: each includes the one before).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Durability {
    /// Engine buffers only.
    None,
    /// Handed to the operating system (fjall); on redb, a durable commit.
    Buffer,
    /// On disk.
    Sync,
}

/// Key-value pairs from a range read.
pub(crate) type RawIter = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + Send>;

/// A key range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyRange {
    pub(crate) lower: Bound<Vec<u8>>,
    pub(crate) upper: Bound<Vec<u8>>,
}

impl KeyRange {
    pub(crate) fn all() -> Self {
        Self { lower: Bound::Unbounded, upper: Bound::Unbounded }
    }
}

/// An engine.
pub(crate) enum Store {
    Lsm(LsmStore),
    Btree(BTreeStore),
}

/// A consistent read view of an engine.
pub(crate) enum StoreSnapshot {
    Lsm(lsm::LsmSnapshot),
    Btree(btree::BTreeSnapshot),
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $body:expr) => {
        match $self {
            Self::Lsm($store) => $body,
            Self::Btree($store) => $body,
        }
    };
}

impl Store {
    /// Opens the engine's files under `dir`; `is_data` tells the LSM which keyspaces hold
    /// values with TTL headers (its compaction filter drops expired ones).
    pub(crate) fn open(dir: &Path, mode: Mode, cache_bytes: u64, clock: Clock) -> Result<Self> {
        Ok(match mode {
            Mode::Lsm => Store::Lsm(LsmStore::open(&dir.join("lsm"), cache_bytes, clock)?),
            Mode::Btree => Store::Btree(BTreeStore::open(&dir.join("data.redb"), cache_bytes)?),
        })
    }

    /// Creates a keyspace if it does not exist; `options` shape LSM data keyspaces.
    pub(crate) fn create_keyspace(
        &self,
        name: &str,
        options: Option<&FamilyOptions>,
    ) -> Result<()> {
        dispatch!(self, s => s.create_keyspace(name, options))
    }

    pub(crate) fn drop_keyspace(&self, name: &str) -> Result<()> {
        dispatch!(self, s => s.drop_keyspace(name))
    }

    pub(crate) fn keyspaces(&self) -> Result<Vec<String>> {
        dispatch!(self, s => s.keyspaces())
    }

    /// Applies `ops` atomically.
    pub(crate) fn write(&self, ops: &[Op], durability: Durability) -> Result<()> {
        dispatch!(self, s => s.write(ops, durability))
    }

    /// Applies several batches in order, each atomically, then makes them as durable as asked:
    /// what group commit needs.
    pub(crate) fn write_group(&self, batches: &[Vec<Op>], durability: Durability) -> Result<()> {
        dispatch!(self, s => s.write_group(batches, durability))
    }

    /// Makes every write so far durable.
    pub(crate) fn sync(&self) -> Result<()> {
        dispatch!(self, s => s.sync())
    }

    pub(crate) fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        dispatch!(self, s => s.get(keyspace, key))
    }

    pub(crate) fn snapshot(&self) -> Result<StoreSnapshot> {
        Ok(match self {
            Store::Lsm(s) => StoreSnapshot::Lsm(s.snapshot()),
            Store::Btree(s) => StoreSnapshot::Btree(s.snapshot()?),
        })
    }

    /// Compacts a keyspace now (LSM: flush and major compaction, which runs the TTL filter).
    pub(crate) fn compact(&self, keyspace: &str) -> Result<()> {
        match self {
            Store::Lsm(s) => s.compact(keyspace),
            Store::Btree(_) => Ok(()),
        }
    }

    pub(crate) fn mode(&self) -> Mode {
        match self {
            Store::Lsm(_) => Mode::Lsm,
            Store::Btree(_) => Mode::Btree,
        }
    }
}

impl StoreSnapshot {
    pub(crate) fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        dispatch!(self, s => s.get(keyspace, key))
    }

    pub(crate) fn range(&self, keyspace: &str, range: &KeyRange, reverse: bool) -> Result<RawIter> {
        dispatch!(self, s => s.range(keyspace, range, reverse))
    }
}
