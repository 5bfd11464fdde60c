//! redb, the B+tree engine.

use std::collections::HashMap;
use std::path::Path;

use redb::{Database, ReadTransaction, ReadableDatabase, TableDefinition, TableError, TableHandle};

use super::{Durability, KeyRange, Op, RawIter};
use crate::error::Result;
use crate::options::FamilyOptions;

type Def<'a> = TableDefinition<'a, &'static [u8], &'static [u8]>;
type Guard = redb::AccessGuard<'static, &'static [u8]>;

fn def(name: &str) -> Def<'_> {
    TableDefinition::new(name)
}

pub(crate) struct BTreeStore {
    db: Database,
}

pub(crate) struct BTreeSnapshot {
    txn: ReadTransaction,
}

impl BTreeStore {
    pub(crate) fn open(file: &Path, cache_bytes: u64) -> Result<Self> {
        let db = Database::builder().set_cache_size(cache_bytes as usize).create(file)?;
        Ok(Self { db })
    }

    pub(crate) fn create_keyspace(
        &self,
        name: &str,
        _options: Option<&FamilyOptions>,
    ) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(def(name))?;
        txn.commit()?;
        Ok(())
    }

    pub(crate) fn drop_keyspace(&self, name: &str) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.delete_table(def(name))?;
        txn.commit()?;
        Ok(())
    }

    pub(crate) fn keyspaces(&self) -> Result<Vec<String>> {
        let txn = self.db.begin_read()?;
        Ok(txn.list_tables()?.map(|t| t.name().to_owned()).collect())
    }

    pub(crate) fn write(&self, ops: &[Op], durability: Durability) -> Result<()> {
        self.apply(ops.iter(), durability)
    }

    /// Every batch in one transaction: one commit, one fsync when asked. A crash loses the
    /// group or keeps it whole, so each batch stays atomic.
    pub(crate) fn write_group(&self, batches: &[Vec<Op>], durability: Durability) -> Result<()> {
        self.apply(batches.iter().flatten(), durability)
    }

    fn apply<'a>(&self, ops: impl Iterator<Item = &'a Op>, durability: Durability) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(match durability {
            Durability::None => redb::Durability::None,
            Durability::Buffer | Durability::Sync => redb::Durability::Immediate,
        })?;
        {
            let mut tables = HashMap::new();
            for op in ops {
                let name = match op {
                    Op::Put { keyspace, .. } | Op::Remove { keyspace, .. } => keyspace.as_str(),
                };
                if !tables.contains_key(name) {
                    tables.insert(name, txn.open_table(def(name))?);
                }
                let table = tables.get_mut(name).expect("just opened");
                match op {
                    Op::Put { key, value, .. } => {
                        table.insert(key.as_slice(), value.as_slice())?;
                    }
                    Op::Remove { key, .. } => {
                        table.remove(key.as_slice())?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// A durable commit makes every earlier non-durable commit durable too.
    pub(crate) fn sync(&self) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        txn.commit()?;
        Ok(())
    }

    pub(crate) fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.snapshot()?.get(keyspace, key)
    }

    pub(crate) fn snapshot(&self) -> Result<BTreeSnapshot> {
        Ok(BTreeSnapshot { txn: self.db.begin_read()? })
    }
}

impl BTreeSnapshot {
    pub(crate) fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.txn.open_table(def(keyspace)) {
            Ok(table) => Ok(table.get(key)?.map(|v| v.value().to_vec())),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn range(&self, keyspace: &str, range: &KeyRange, reverse: bool) -> Result<RawIter> {
        let table = match self.txn.open_table(def(keyspace)) {
            Ok(table) => table,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Box::new(std::iter::empty())),
            Err(e) => return Err(e.into()),
        };
        let bounds =
            (range.lower.as_ref().map(Vec::as_slice), range.upper.as_ref().map(Vec::as_slice));
        let iter = table.range::<&[u8]>(bounds)?;
        let pairs = |item: std::result::Result<(Guard, Guard), redb::StorageError>| -> Result<(Vec<u8>, Vec<u8>)> {
            let (k, v) = item?;
            Ok((k.value().to_vec(), v.value().to_vec()))
        };
        Ok(if reverse { Box::new(iter.rev().map(pairs)) } else { Box::new(iter.map(pairs)) })
    }
}
