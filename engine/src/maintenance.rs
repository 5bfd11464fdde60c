//! Background maintenance: fold hot merge keys, collect what merge families no longer need
//! (tombstones, operands a later put or delete overrode), sweep expired values out of the
//! B+tree, and make buffered B+tree commits durable. None of it changes what a read returns, so
//! none of it takes a sequence number or enters the change log: the log keeps each delete as
//! the history WKP-1 ships, and a database a delta is replayed into collects its own tombstones.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use crate::codec::{decode_operand_key, decode_value, encode_value, operand_key};
use crate::error::Result;
use crate::family::Family;
use crate::inner::Inner;
use crate::options::Mode;
use crate::read;
use crate::store::{Durability, KeyRange, Op};

/// What one maintenance pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Keys whose merge operands were folded into their value.
    pub folded_keys: usize,
    /// Merge-family keys whose tombstone, or operands a later put or delete overrode, were
    /// removed.
    pub collected_keys: usize,
    /// Expired values removed (B+tree; the LSM drops them while compacting).
    pub expired_removed: usize,
    /// Whether buffered commits were made durable.
    pub synced: bool,
}

/// Runs maintenance every `interval` until the database is dropped.
pub(crate) fn spawn(inner: Weak<Inner>, stop: Arc<(Mutex<bool>, Condvar)>, interval: Duration) {
    let spawned = std::thread::Builder::new().name("weftkit-maintenance".into()).spawn(move || {
        loop {
            {
                let (stopped, wake) = &*stop;
                let guard = stopped.lock().expect("stop lock");
                let (guard, _) = wake
                    .wait_timeout_while(guard, interval, |stopped| !*stopped)
                    .expect("stop lock");
                if *guard {
                    return;
                }
            }
            let Some(inner) = inner.upgrade() else { return };
            if let Err(e) = run(&inner) {
                tracing::warn!(error = %e, "background maintenance failed; will retry");
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "start background maintenance; it will run only on demand");
    }
}

pub(crate) fn run(inner: &Inner) -> Result<Report> {
    let mut report = Report::default();
    let pending: Vec<(String, Vec<u8>)> =
        std::mem::take(&mut *inner.folds.lock().expect("folds lock")).into_iter().collect();
    let families = inner.families.read().expect("families lock").clone();
    for (name, key) in pending {
        if let Some(family) = families.get(&name) {
            report.folded_keys += usize::from(fold(inner, family, &key)?.changed());
        }
    }
    report.collected_keys = collect(inner, &families)?;
    if inner.store.mode() == Mode::Btree {
        for family in families.values() {
            report.expired_removed += sweep(inner, family)?;
        }
        if inner.committer.unsynced() {
            inner.committer.sync_all(&inner.store)?;
            report.synced = true;
        }
    }
    Ok(report)
}

/// What folding one key did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Folded {
    /// Operands removed, live (folded into the value) or dead (older than the value).
    operands: usize,
    /// Whether a tombstone was removed: nothing was left for it to mask.
    tombstone: bool,
}

impl Folded {
    fn changed(self) -> bool {
        self.operands > 0 || self.tombstone
    }
}

/// Folds a key's operands into its value. The result is stamped with the newest folded
/// operand's sequence number, so exactly those operands stop applying. A tombstone with no
/// operand after it goes too, in the same write as the operands before it: the key reads as
/// absent either way, and nothing is left that it would have to mask.
pub(crate) fn fold(inner: &Inner, family: &Family, key: &[u8]) -> Result<Folded> {
    let Some(operands_ks) = &family.operands else { return Ok(Folded::default()) };
    inner.committer.exclusive(|| {
        let snap = inner.store.snapshot()?;
        let now = inner.options.clock.now();
        let stored = snap.get(&family.data, key)?;
        let base = stored.as_deref().map(decode_value).transpose()?;
        let base_seq = base.as_ref().and_then(|b| b.seq).unwrap_or(0);
        let range = KeyRange {
            lower: Bound::Included(operand_key(key, 0, 0)),
            upper: Bound::Included(operand_key(key, u64::MAX, u32::MAX)),
        };
        let mut remove = Vec::new();
        let mut live = Vec::new();
        let mut newest = base_seq;
        for item in snap.range(operands_ks, &range, false)? {
            let (operand_key, operand) = item?;
            let (_, seq) = crate::codec::decode_operand_key(&operand_key)?;
            if seq > base_seq {
                live.push(operand);
                newest = newest.max(seq);
            }
            remove.push(Op::Remove { keyspace: operands_ks.clone(), key: operand_key });
        }
        let tombstone = base.as_ref().is_some_and(|b| b.tombstone);
        if remove.is_empty() && !tombstone {
            return Ok(Folded::default());
        }
        let base_value =
            base.as_ref().filter(|b| !b.tombstone && !b.expired(now)).map(|b| b.payload);
        // An expired base is no base: a read folds the later operands onto nothing and the
        // result does not expire, so the folded value must not take the old expiry either.
        let expires_at =
            base.as_ref().filter(|b| !b.tombstone && !b.expired(now)).and_then(|b| b.expires_at);
        let mut folded = Folded { operands: remove.len(), tombstone: false };
        let mut ops = remove;
        match read::fold(family, key, base_value, &live)? {
            Some(value) => ops.push(Op::Put {
                keyspace: family.data.clone(),
                key: key.to_vec(),
                value: encode_value(&value, expires_at, Some(newest)),
            }),
            None if tombstone => {
                ops.push(Op::Remove { keyspace: family.data.clone(), key: key.to_vec() });
                folded.tombstone = true;
            }
            None => {}
        }
        inner.store.write(&ops, Durability::None)?;
        Ok(folded)
    })
}

/// Collects what merge families no longer need: tombstones deletes queued, operands a later
/// put or delete overrode, and (once after opening) tombstones nobody queued. Each key goes
/// through [`fold`], which re-reads it under the write lock. Returns the keys collected.
fn collect(inner: &Inner, families: &crate::write::Families) -> Result<usize> {
    let queued = std::mem::take(&mut *inner.tombstones.lock().expect("tombstones lock"));
    let scan_tombstones = inner.tombstone_scan.swap(false, Ordering::SeqCst);
    let result = (|| -> Result<usize> {
        let mut collected = 0;
        for family in families.values().filter(|f| f.operands.is_some()) {
            let mut keys: BTreeSet<Vec<u8>> = queued
                .iter()
                .filter(|(name, _)| *name == family.name)
                .map(|(_, key)| key.clone())
                .collect();
            let complete = collectable(inner, family, scan_tombstones, &mut keys)?;
            if !complete {
                // More than one round's worth: look again next round.
                inner.tombstone_scan.store(true, Ordering::SeqCst);
            }
            for key in keys {
                collected += usize::from(fold(inner, family, &key)?.changed());
            }
        }
        Ok(collected)
    })();
    if result.is_err() {
        // Queued keys were taken: find them again by scanning.
        inner.tombstone_scan.store(true, Ordering::SeqCst);
    }
    result
}

/// Adds to `keys` up to `sweep_batch` keys of a merge family with operands older than their
/// stored value or tombstone (a put or delete overrode them) and, with `tombstones`, keys
/// holding a tombstone. Returns whether the scans saw everything.
fn collectable(
    inner: &Inner,
    family: &Family,
    tombstones: bool,
    keys: &mut BTreeSet<Vec<u8>>,
) -> Result<bool> {
    let Some(operands_ks) = &family.operands else { return Ok(true) };
    let limit = keys.len() + inner.options.sweep_batch;
    let snap = inner.store.snapshot()?;
    // Operands come in key order: look each key's base sequence up once.
    let mut base: Option<(Vec<u8>, u64)> = None;
    for item in snap.range(operands_ks, &KeyRange::all(), false)? {
        let (operand_key, _) = item?;
        let (key, seq) = decode_operand_key(&operand_key)?;
        let base_seq = match &base {
            Some((k, s)) if *k == key => *s,
            _ => {
                let stored = snap.get(&family.data, &key)?;
                let s = stored.as_deref().map(decode_value).transpose()?.and_then(|b| b.seq);
                base.insert((key.clone(), s.unwrap_or(0))).1
            }
        };
        if seq <= base_seq && keys.insert(key) && keys.len() >= limit {
            return Ok(false);
        }
    }
    if tombstones {
        for item in snap.range(&family.data, &KeyRange::all(), false)? {
            let (key, stored) = item?;
            if decode_value(&stored)?.tombstone && keys.insert(key) && keys.len() >= limit {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Removes up to `sweep_batch` expired values of a family, re-checking each under the write
/// lock so a value written meanwhile is never removed.
fn sweep(inner: &Inner, family: &Family) -> Result<usize> {
    let now = inner.options.clock.now();
    let snap = inner.store.snapshot()?;
    let mut expired = Vec::new();
    for item in snap.range(&family.data, &KeyRange::all(), false)? {
        let (key, stored) = item?;
        if decode_value(&stored)?.expired(now) {
            expired.push(key);
            if expired.len() >= inner.options.sweep_batch {
                break;
            }
        }
    }
    drop(snap);
    if expired.is_empty() {
        return Ok(0);
    }
    inner.committer.exclusive(|| {
        let mut ops = Vec::new();
        for key in expired {
            let still = inner
                .store
                .get(&family.data, &key)?
                .map(|s| decode_value(&s).map(|v| v.expired(now)))
                .transpose()?;
            if still == Some(true) {
                ops.push(Op::Remove { keyspace: family.data.clone(), key });
            }
        }
        let removed = ops.len();
        if removed > 0 {
            inner.store.write(&ops, Durability::None)?;
        }
        Ok(removed)
    })
}
