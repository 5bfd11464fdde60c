//! A store that counts the verbs the function sends it, for tests of what a request costs, and
//! can refuse deletes, for tests of what a failed cleanup must not break.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use wkp1_function::store::{ByteStream, Capabilities, ObjectMeta, PutMode, Store, StoreError};
use wkp1_protocol::manifest::PresignedRequest;

/// How many of each verb a [`CountingStore`] has passed on.
#[derive(Debug, Default)]
pub struct Counts {
    pub lists: AtomicU64,
    pub gets: AtomicU64,
    pub puts: AtomicU64,
    pub deletes: AtomicU64,
    /// While set, every delete fails as an unavailable store would.
    pub refuse_deletes: AtomicBool,
}

impl Counts {
    pub fn lists(&self) -> u64 {
        self.lists.load(Ordering::SeqCst)
    }

    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }

    pub fn puts(&self) -> u64 {
        self.puts.load(Ordering::SeqCst)
    }

    pub fn deletes(&self) -> u64 {
        self.deletes.load(Ordering::SeqCst)
    }
}

/// Passes every call to the store inside, counting them in a shared [`Counts`].
#[derive(Debug)]
pub struct CountingStore<S> {
    inner: S,
    counts: Arc<Counts>,
}

impl<S: Store> CountingStore<S> {
    pub fn new(inner: S, counts: Arc<Counts>) -> Self {
        Self { inner, counts }
    }
}

impl<S: Store> Store for CountingStore<S> {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.counts.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<ByteStream, StoreError> {
        self.counts.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get_range(key, range).await
    }

    async fn put(&self, key: &str, body: Bytes, mode: PutMode) -> Result<(), StoreError> {
        self.counts.puts.fetch_add(1, Ordering::SeqCst);
        self.inner.put(key, body, mode).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.counts.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.counts.deletes.fetch_add(1, Ordering::SeqCst);
        if self.counts.refuse_deletes.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(format!("delete of {key} refused by the test")));
        }
        self.inner.delete(key).await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn presign_put(
        &self,
        key: &str,
        expires_in_secs: u64,
    ) -> Result<Option<PresignedRequest>, StoreError> {
        self.inner.presign_put(key, expires_in_secs).await
    }

    async fn presign_get(
        &self,
        key: &str,
        expires_in_secs: u64,
    ) -> Result<Option<PresignedRequest>, StoreError> {
        self.inner.presign_get(key, expires_in_secs).await
    }
}
