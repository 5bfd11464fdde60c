//! The write path: sequence numbers, the change log, and group commit.
//!
//! Writers queue their batches, each built under the queue lock for its sequence number. The
//! first writer to find no write in progress becomes the leader: it takes every queued batch,
//! writes them together (on redb, one transaction; on fjall, one journal write each, in order)
//! and, if any of them asked for it, makes them durable with one fsync. Writers that queued
//! meanwhile are carried by that leader or the next. A batch is written with its change-log
//! record, and the group with the new last sequence number, so log and data never disagree.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::codec::{ChangeOp, encode_change};
use crate::error::{Error, Result};
use crate::family::{CHANGELOG, META};
use crate::options::{Mode, SyncMode};
use crate::store::{Durability, Op, Store};

pub(crate) const LAST_SEQ_KEY: &[u8] = b"last_seq";

/// What a batch becomes once it has its sequence number.
pub(crate) struct Prepared {
    pub(crate) ops: Vec<Op>,
    pub(crate) changes: Vec<ChangeOp>,
}

#[derive(Debug)]
struct Queued {
    seq: u64,
    ops: Vec<Op>,
    durability: Durability,
}

/// Failures remembered for writers still to wake up and read them.
const FAILURES_KEPT: usize = 64;

#[derive(Debug)]
struct State {
    next_seq: u64,
    queue: Vec<Queued>,
    /// A leader is writing (or maintenance holds the store).
    busy: bool,
    written_upto: u64,
    synced_upto: u64,
    /// Bumped by every failed group: numbering restarts, so a sequence number names a batch
    /// only together with the epoch it was assigned in.
    epoch: u64,
    /// (epoch, first sequence number lost, why): in that epoch, it and every later one failed.
    failed: Vec<(u64, u64, String)>,
}

#[derive(Debug)]
pub(crate) struct Committer {
    state: Mutex<State>,
    changed: Condvar,
    change_log: bool,
    /// Mirrors `written_upto` for lock-free reads.
    last_seq: AtomicU64,
    /// Engine syncs performed: with group commit, fewer than synced writes.
    syncs: AtomicU64,
}

impl Committer {
    pub(crate) fn new(last_seq: u64, change_log: bool) -> Self {
        Self {
            state: Mutex::new(State {
                next_seq: last_seq + 1,
                queue: Vec::new(),
                busy: false,
                written_upto: last_seq,
                synced_upto: last_seq,
                epoch: 0,
                failed: Vec::new(),
            }),
            changed: Condvar::new(),
            change_log,
            last_seq: AtomicU64::new(last_seq),
            syncs: AtomicU64::new(0),
        }
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }

    pub(crate) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("commit lock")
    }

    /// Commits a batch built for its sequence number, durable as `sync` asks.
    pub(crate) fn commit(
        &self,
        store: &Store,
        sync: SyncMode,
        build: impl FnOnce(u64) -> Result<Prepared>,
    ) -> Result<u64> {
        let mut state = self.lock();
        let seq = state.next_seq;
        let Prepared { mut ops, changes } = build(seq)?;
        if self.change_log {
            ops.push(Op::Put {
                keyspace: CHANGELOG.into(),
                key: seq.to_be_bytes().to_vec(),
                value: encode_change(seq, &changes),
            });
        }
        let durability = match (store.mode(), sync) {
            (_, SyncMode::None) => Durability::None,
            (Mode::Lsm, SyncMode::Buffered) => Durability::Buffer,
            // redb has no OS-buffered level: a buffered write there is a synced one.
            (Mode::Btree, SyncMode::Buffered) | (_, SyncMode::Fsync) => Durability::Sync,
        };
        state.next_seq = seq + 1;
        state.queue.push(Queued { seq, ops, durability });
        let epoch = state.epoch;
        loop {
            if let Some(result) = outcome(&state, seq, epoch, durability) {
                return result.map(|()| seq);
            }
            if state.busy {
                state = self.changed.wait(state).expect("commit lock");
                continue;
            }
            state = self.lead(store, state);
        }
    }

    /// Writes every queued batch as one group; returns with the lock held again.
    fn lead<'a>(
        &'a self,
        store: &Store,
        mut state: MutexGuard<'a, State>,
    ) -> MutexGuard<'a, State> {
        state.busy = true;
        let group = std::mem::take(&mut state.queue);
        drop(state);
        let (first, last) = (group.first().map_or(0, |q| q.seq), group.last().map_or(0, |q| q.seq));
        let durability = group.iter().map(|q| q.durability).max().unwrap_or(Durability::None);
        let mut batches: Vec<Vec<Op>> = group.into_iter().map(|q| q.ops).collect();
        if let Some(tail) = batches.last_mut() {
            tail.push(Op::Put {
                keyspace: META.into(),
                key: LAST_SEQ_KEY.to_vec(),
                value: last.to_be_bytes().to_vec(),
            });
        }
        let result =
            if batches.is_empty() { Ok(()) } else { store.write_group(&batches, durability) };
        if durability == Durability::Sync && !batches.is_empty() {
            self.syncs.fetch_add(1, Ordering::Relaxed);
        }
        let mut state = self.lock();
        state.busy = false;
        match result {
            Ok(()) if !batches.is_empty() => {
                state.written_upto = last;
                if durability == Durability::Sync {
                    state.synced_upto = last;
                }
                self.last_seq.store(last, Ordering::Release);
            }
            Ok(()) => {}
            Err(e) => {
                // The group's sequence numbers were never written. Batches queued after it were
                // built on them, so they fail too, and numbering resumes where the group began.
                state.queue.clear();
                let epoch = state.epoch;
                state.failed.push((epoch, first, e.to_string()));
                if state.failed.len() > FAILURES_KEPT {
                    state.failed.remove(0);
                }
                state.epoch += 1;
                state.next_seq = first;
            }
        }
        self.changed.notify_all();
        state
    }

    /// Runs `f` with no write in progress and none starting: for maintenance that rewrites
    /// stored data without changing what it means (merge folds, TTL sweeps, change-log trims).
    pub(crate) fn exclusive<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let mut state = self.lock();
        while state.busy {
            state = self.changed.wait(state).expect("commit lock");
        }
        f()
    }

    /// Makes every write so far durable, with one sync shared with anyone waiting.
    pub(crate) fn sync_all(&self, store: &Store) -> Result<()> {
        let mut state = self.lock();
        let target = state.next_seq - 1;
        loop {
            if state.synced_upto >= target {
                return Ok(());
            }
            if state.busy {
                state = self.changed.wait(state).expect("commit lock");
                continue;
            }
            if !state.queue.is_empty() {
                state = self.lead(store, state);
                continue;
            }
            state.busy = true;
            let written = state.written_upto;
            drop(state);
            let result = store.sync();
            self.syncs.fetch_add(1, Ordering::Relaxed);
            state = self.lock();
            state.busy = false;
            if result.is_ok() {
                state.synced_upto = state.synced_upto.max(written);
            }
            self.changed.notify_all();
            result?;
        }
    }

    pub(crate) fn unsynced(&self) -> bool {
        let state = self.lock();
        state.synced_upto < state.written_upto
    }
}

/// Whether batch `seq` of `epoch` is done: written (and synced, if asked), or failed.
fn outcome(state: &State, seq: u64, epoch: u64, durability: Durability) -> Option<Result<()>> {
    // Checked first: after a failure the same number may be written again, by another batch.
    let failure = state.failed.iter().find(|(e, first, _)| *e == epoch && *first <= seq);
    if let Some((_, _, why)) = failure {
        return Some(Err(Error::Storage {
            engine: "commit",
            message: format!("batch {seq} was not written: {why}"),
        }));
    }
    if state.epoch != epoch && state.written_upto < seq {
        return Some(Err(Error::Storage {
            engine: "commit",
            message: format!("batch {seq} was not written: an earlier batch failed"),
        }));
    }
    let done =
        state.written_upto >= seq && (durability != Durability::Sync || state.synced_upto >= seq);
    done.then_some(Ok(()))
}
