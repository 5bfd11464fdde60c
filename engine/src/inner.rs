//! The state every handle of one open database shares (a [`Database`](crate::Database) is an
//! `Arc` of it), apart from the handle's API so that background maintenance can hold it too.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, RwLock};

use crate::commit::Committer;
use crate::options::Options;
use crate::store::Store;
use crate::write::Families;

pub(crate) struct Inner {
    pub(crate) path: PathBuf,
    pub(crate) options: Options,
    pub(crate) store: Store,
    pub(crate) families: RwLock<Arc<Families>>,
    pub(crate) committer: Committer,
    /// Keys whose pending merge operands should be folded: (family, key).
    pub(crate) folds: Mutex<BTreeSet<(String, Vec<u8>)>>,
    /// Merge-family keys a delete left a tombstone on, for maintenance to collect.
    pub(crate) tombstones: Mutex<BTreeSet<(String, Vec<u8>)>>,
    /// Whether merge families may hold tombstones nobody queued (written before this process
    /// opened the database, or by an import): maintenance then scans for them.
    pub(crate) tombstone_scan: AtomicBool,
    /// Stops background maintenance.
    pub(crate) stop: Arc<(Mutex<bool>, Condvar)>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().expect("stop lock") = true;
        wake.notify_all();
        if let Err(e) = self.committer.sync_all(&self.store) {
            tracing::warn!(error = %e, "sync buffered writes on close");
        }
    }
}
