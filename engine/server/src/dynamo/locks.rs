//! Serialising the read-modify-write operations (conditions, updates, transactions) per item.
//!
//! The engine commits each batch atomically but does not compare-and-set, so two UpdateItems of
//! one item must not interleave their read and their write. Items hash onto a fixed set of
//! stripes; an operation on several items takes their stripes in index order, so two
//! transactions can never wait on each other in a cycle.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};

use super::error::{DynamoError, Kind};

const STRIPES: usize = 1024;

#[derive(Debug)]
pub(crate) struct Locks {
    stripes: Vec<Mutex<()>>,
    /// Table creation, deletion and TTL changes, one at a time.
    catalog: Mutex<()>,
    /// Whether writes are accepted; shutdown closes it once in-flight writes finished.
    writes_open: RwLock<bool>,
}

impl Default for Locks {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            catalog: Mutex::new(()),
            writes_open: RwLock::new(true),
        }
    }
}

/// Locks held for one write: keeps shutdown waiting until it is done.
#[derive(Debug)]
pub(crate) struct WriteGuard<'a> {
    _items: Vec<MutexGuard<'a, ()>>,
    _open: RwLockReadGuard<'a, bool>,
}

fn stripe(family: &str, key: &[u8]) -> usize {
    let mut hasher = DefaultHasher::new();
    family.hash(&mut hasher);
    key.hash(&mut hasher);
    (hasher.finish() % STRIPES as u64) as usize
}

impl Locks {
    /// Admits one write touching `items` (family, key), or refuses it when shutting down.
    pub(crate) fn write<'k>(
        &self,
        items: impl IntoIterator<Item = (&'k str, &'k [u8])>,
    ) -> Result<WriteGuard<'_>, DynamoError> {
        let open = self.writes_open.read().expect("write gate");
        if !*open {
            return Err(DynamoError::new(
                Kind::Unavailable,
                "the server is shutting down and accepts no more writes",
            ));
        }
        let mut indexes: Vec<usize> = items.into_iter().map(|(f, k)| stripe(f, k)).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let items =
            indexes.into_iter().map(|i| self.stripes[i].lock().expect("item lock")).collect();
        Ok(WriteGuard { _items: items, _open: open })
    }

    pub(crate) fn catalog(&self) -> MutexGuard<'_, ()> {
        self.catalog.lock().expect("catalog lock")
    }

    /// Refuses new writes and waits for the ones in flight. Returns whether this call closed
    /// the gate (false when it was closed already).
    pub(crate) fn close_writes(&self) -> bool {
        let mut open = self.writes_open.write().expect("write gate");
        std::mem::replace(&mut *open, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_waits_for_writes_in_flight_and_refuses_new_ones() {
        let locks = std::sync::Arc::new(Locks::default());
        let guard = locks.write([("t", b"k".as_slice())]).unwrap();
        let closer = {
            let locks = locks.clone();
            std::thread::spawn(move || locks.close_writes())
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!closer.is_finished(), "close waits for the write in flight");
        drop(guard);
        assert!(closer.join().unwrap());
        let refused = locks.write([("t", b"k".as_slice())]).unwrap_err();
        assert_eq!(refused.kind, Kind::Unavailable);
        assert!(!locks.close_writes(), "already closed");
    }
}
