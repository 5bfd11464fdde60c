//! The write path: one writer at a time assigns sequence numbers and writes; writers that want
//! their batch on disk share fsyncs (group commit).
//!
//! A batch is written with its change-log record and the new last sequence number in one
//! atomic engine write, so the log and the data never disagree. Waiting for an fsync happens
//! outside the write lock: while one leader syncs, others keep writing, and the next leader's
//! single fsync covers all of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use crate::codec::{ChangeOp, encode_change};
use crate::error::Result;
use crate::family::{CHANGELOG, META};
use crate::options::{Mode, SyncMode};
use crate::store::{Durability, Op, Store};

pub(crate) const LAST_SEQ_KEY: &[u8] = b"last_seq";

#[derive(Debug)]
struct SyncState {
    synced_upto: u64,
    syncing: bool,
}

#[derive(Debug)]
pub(crate) struct Committer {
    /// The next sequence number; held while a batch is written.
    next_seq: Mutex<u64>,
    /// The highest sequence number written (not necessarily synced).
    written_upto: AtomicU64,
    sync: Mutex<SyncState>,
    synced: Condvar,
    change_log: bool,
    /// Engine syncs performed: with group commit, fewer than synced writes.
    syncs: AtomicU64,
}

/// What a batch becomes once it has its sequence number.
pub(crate) struct Prepared {
    pub(crate) ops: Vec<Op>,
    pub(crate) changes: Vec<ChangeOp>,
}

impl Committer {
    pub(crate) fn new(last_seq: u64, change_log: bool) -> Self {
        Self {
            next_seq: Mutex::new(last_seq + 1),
            written_upto: AtomicU64::new(last_seq),
            sync: Mutex::new(SyncState { synced_upto: last_seq, syncing: false }),
            synced: Condvar::new(),
            change_log,
            syncs: AtomicU64::new(0),
        }
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.written_upto.load(Ordering::Acquire)
    }

    /// Writes a batch built for its sequence number, and waits for the durability asked.
    pub(crate) fn commit(
        &self,
        store: &Store,
        sync: SyncMode,
        build: impl FnOnce(u64) -> Result<Prepared>,
    ) -> Result<u64> {
        let seq = {
            let mut next = self.next_seq.lock().expect("write lock");
            let seq = *next;
            let Prepared { mut ops, changes } = build(seq)?;
            if self.change_log {
                ops.push(Op::Put {
                    keyspace: CHANGELOG.into(),
                    key: seq.to_be_bytes().to_vec(),
                    value: encode_change(seq, &changes),
                });
            }
            ops.push(Op::Put {
                keyspace: META.into(),
                key: LAST_SEQ_KEY.to_vec(),
                value: seq.to_be_bytes().to_vec(),
            });
            let durability = match (store.mode(), sync) {
                (Mode::Lsm, SyncMode::Buffered) => Durability::Buffer,
                _ => Durability::None,
            };
            store.write(&ops, durability)?;
            *next = seq + 1;
            self.written_upto.store(seq, Ordering::Release);
            seq
        };
        // redb has no OS-buffered level: a buffered write there is a synced one.
        let needs_sync =
            sync == SyncMode::Fsync || (sync == SyncMode::Buffered && store.mode() == Mode::Btree);
        if needs_sync {
            self.sync_upto(store, seq)?;
        }
        Ok(seq)
    }

    /// Runs `f` with the write lock held and no sequence number consumed: for maintenance that
    /// rewrites stored data without changing what it means (merge folds, TTL sweeps).
    pub(crate) fn exclusive<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let _guard = self.next_seq.lock().expect("write lock");
        f()
    }

    /// Returns once everything up to `seq` is durable, sharing one fsync with concurrent callers.
    pub(crate) fn sync_upto(&self, store: &Store, seq: u64) -> Result<()> {
        let mut state = self.sync.lock().expect("sync lock");
        loop {
            if state.synced_upto >= seq {
                return Ok(());
            }
            if state.syncing {
                state = self.synced.wait(state).expect("sync lock");
                continue;
            }
            state.syncing = true;
            let target = self.written_upto.load(Ordering::Acquire);
            drop(state);
            let result = store.sync();
            self.syncs.fetch_add(1, Ordering::Relaxed);
            state = self.sync.lock().expect("sync lock");
            state.syncing = false;
            if result.is_ok() {
                state.synced_upto = state.synced_upto.max(target);
            }
            self.synced.notify_all();
            result?;
        }
    }

    /// Syncs whatever was written since the last sync.
    pub(crate) fn sync_all(&self, store: &Store) -> Result<()> {
        self.sync_upto(store, self.last_seq())
    }

    pub(crate) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    pub(crate) fn unsynced(&self) -> bool {
        self.sync.lock().expect("sync lock").synced_upto < self.last_seq()
    }
}
