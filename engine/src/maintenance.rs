//! Background maintenance: fold hot merge keys, sweep expired values out of the B+tree, and
//! make buffered B+tree commits durable. None of it changes what a read returns, so none of it
//! takes a sequence number or enters the change log.

use std::ops::Bound;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use crate::codec::{decode_value, encode_value, operand_key};
use crate::db::Inner;
use crate::error::Result;
use crate::family::Family;
use crate::options::Mode;
use crate::read;
use crate::store::{Durability, KeyRange, Op};

/// What one maintenance pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Keys whose merge operands were folded into their value.
    pub folded_keys: usize,
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
            report.folded_keys += usize::from(fold(inner, family, &key)?);
        }
    }
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

/// Folds a key's operands into its value. The result is stamped with the newest folded
/// operand's sequence number, so exactly those operands stop applying.
pub(crate) fn fold(inner: &Inner, family: &Family, key: &[u8]) -> Result<bool> {
    let Some(operands_ks) = &family.operands else { return Ok(false) };
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
        if remove.is_empty() {
            return Ok(false);
        }
        let base_value =
            base.as_ref().filter(|b| !b.tombstone && !b.expired(now)).map(|b| b.payload);
        let expires_at = base.as_ref().filter(|b| !b.tombstone).and_then(|b| b.expires_at);
        let mut ops = remove;
        if let Some(value) = read::fold(family, key, base_value, &live)? {
            ops.push(Op::Put {
                keyspace: family.data.clone(),
                key: key.to_vec(),
                value: encode_value(&value, expires_at, Some(newest)),
            });
        }
        inner.store.write(&ops, Durability::None)?;
        Ok(true)
    })
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
