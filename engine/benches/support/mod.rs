//! The engines under benchmark, behind one interface: WeftKitKV in both modes, and the raw
//! fjall and redb crates underneath them as the baseline, all set up alike.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::sync::Arc;

use fjall::{KeyspaceCreateOptions, PersistMode};
use redb::{ReadableDatabase, TableDefinition};
use weftkit_kv::{Database, Direction, Mode, Options, SyncMode, WriteBatch, WriteOptions};

pub const KEYS: u64 = 100_000;
pub const VALUE_BYTES: usize = 100;
pub const SCAN: usize = 1000;
const TABLE: TableDefinition<'static, &'static [u8], &'static [u8]> = TableDefinition::new("bench");

pub fn key(i: u64) -> Vec<u8> {
    format!("key/{i:012}").into_bytes()
}

pub fn value(i: u64) -> Vec<u8> {
    let mut v = vec![b'v'; VALUE_BYTES];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v
}

/// One engine set up for the benchmarks.
#[derive(Clone)]
pub enum Engine {
    Ours(Database),
    Fjall(fjall::Database, fjall::Keyspace),
    Redb(Arc<redb::Database>),
}

impl Engine {
    pub fn name(&self) -> String {
        match self {
            Engine::Ours(db) => format!("weftkit-kv {}", db.mode()),
            Engine::Fjall(..) => "fjall (raw)".into(),
            Engine::Redb(_) => "redb (raw)".into(),
        }
    }

    pub fn ours(dir: &Path, mode: Mode) -> Self {
        let options = Options {
            maintenance_interval: None,
            cache_bytes: 64 << 20,
            ..Options::default().mode(mode)
        };
        Engine::Ours(Database::open(dir, options).unwrap())
    }

    pub fn fjall(dir: &Path) -> Self {
        use fjall::config::{BloomConstructionPolicy, FilterPolicy, FilterPolicyEntry};
        let db = fjall::Database::builder(dir).cache_size(64 << 20).open().unwrap();
        let ks = db
            .keyspace("bench", || {
                KeyspaceCreateOptions::default().filter_policy(FilterPolicy::all(
                    FilterPolicyEntry::Bloom(BloomConstructionPolicy::BitsPerKey(10.0)),
                ))
            })
            .unwrap();
        Engine::Fjall(db, ks)
    }

    pub fn redb(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let db = redb::Database::builder()
            .set_cache_size(64 << 20)
            .create(dir.join("bench.redb"))
            .unwrap();
        Engine::Redb(Arc::new(db))
    }

    /// Loads `KEYS` keys in large batches, then syncs.
    pub fn load(&self) {
        for chunk in (0..KEYS).collect::<Vec<_>>().chunks(1000) {
            match self {
                Engine::Ours(db) => {
                    let mut batch = WriteBatch::new();
                    for &i in chunk {
                        batch.put("default", key(i), value(i));
                    }
                    db.write(&batch, WriteOptions { sync: SyncMode::None }).unwrap();
                }
                Engine::Fjall(db, ks) => {
                    let mut batch = db.batch();
                    for &i in chunk {
                        batch.insert(ks, key(i), value(i));
                    }
                    batch.commit().unwrap();
                }
                Engine::Redb(db) => {
                    let txn = db.begin_write().unwrap();
                    {
                        let mut table = txn.open_table(TABLE).unwrap();
                        for &i in chunk {
                            table.insert(key(i).as_slice(), value(i).as_slice()).unwrap();
                        }
                    }
                    txn.commit().unwrap();
                }
            }
        }
        self.sync();
    }

    pub fn sync(&self) {
        match self {
            Engine::Ours(db) => db.sync().unwrap(),
            Engine::Fjall(db, _) => db.persist(PersistMode::SyncAll).unwrap(),
            Engine::Redb(_) => {}
        }
    }

    pub fn get(&self, i: u64) -> Option<Vec<u8>> {
        let k = key(i);
        match self {
            Engine::Ours(db) => db.get("default", &k).unwrap(),
            Engine::Fjall(_, ks) => ks.get(&k).unwrap().map(|v| v.to_vec()),
            Engine::Redb(db) => {
                let txn = db.begin_read().unwrap();
                let table = txn.open_table(TABLE).unwrap();
                table.get(k.as_slice()).unwrap().map(|v| v.value().to_vec())
            }
        }
    }

    /// One put, durable (fsync) before it returns.
    pub fn synced_put(&self, i: u64) {
        let (k, v) = (key(i), value(i));
        match self {
            Engine::Ours(db) => {
                let mut batch = WriteBatch::new();
                batch.put("default", k, v);
                db.write(&batch, WriteOptions { sync: SyncMode::Fsync }).unwrap();
            }
            Engine::Fjall(db, ks) => {
                let mut batch = db.batch().durability(Some(PersistMode::SyncAll));
                batch.insert(ks, k, v);
                batch.commit().unwrap();
            }
            Engine::Redb(db) => {
                let txn = db.begin_write().unwrap();
                txn.open_table(TABLE).unwrap().insert(k.as_slice(), v.as_slice()).unwrap();
                txn.commit().unwrap();
            }
        }
    }

    /// Reads `SCAN` consecutive pairs from `start` into owned buffers, as WeftKitKV's API hands
    /// them out; returns how many it read.
    pub fn scan(&self, start: u64) -> usize {
        let from = key(start);
        let owned = |(k, v): (Vec<u8>, Vec<u8>)| usize::from(!k.is_empty() && !v.is_empty());
        match self {
            Engine::Ours(db) => db
                .range("default", from.., Direction::Forward)
                .unwrap()
                .take(SCAN)
                .map(|r| owned(r.unwrap()))
                .sum(),
            Engine::Fjall(_, ks) => ks
                .range(from..)
                .take(SCAN)
                .map(|g| {
                    let (k, v) = g.into_inner().unwrap();
                    owned((k.to_vec(), v.to_vec()))
                })
                .sum(),
            Engine::Redb(db) => {
                let txn = db.begin_read().unwrap();
                let table = txn.open_table(TABLE).unwrap();
                table
                    .range(from.as_slice()..)
                    .unwrap()
                    .take(SCAN)
                    .map(|r| {
                        let (k, v) = r.unwrap();
                        owned((k.value().to_vec(), v.value().to_vec()))
                    })
                    .sum()
            }
        }
    }
}

/// Every engine, freshly loaded, each in its own directory under `root`.
pub fn engines(root: &Path) -> Vec<Engine> {
    let all = vec![
        Engine::fjall(&root.join("fjall")),
        Engine::ours(&root.join("ours-lsm"), Mode::Lsm),
        Engine::redb(&root.join("redb")),
        Engine::ours(&root.join("ours-btree"), Mode::Btree),
    ];
    for engine in &all {
        engine.load();
    }
    all
}
