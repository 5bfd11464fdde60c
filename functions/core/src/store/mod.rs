//! The object-store seam: the few verbs WKP-1 needs, and nothing else.
//!
//! # Contract
//!
//! - Keys are `/`-separated and contain only `a-z 0-9 _ - . /`; implementations map them to
//!   their own names unchanged.
//! - `put` with [`PutMode::Create`] MUST be atomic "create if absent": of two concurrent creates
//!   of one key exactly one succeeds, the other gets [`StoreError::AlreadyExists`]. Every store
//!   offers this (S3 and Azure `If-None-Match: *`, GCS `ifGenerationMatch=0`, `link(2)` or
//!   `O_EXCL` on a file system), and it is all the function core relies on.
//! - `put` with [`PutMode::Update`] is compare-and-swap against a version from `head`/`list`;
//!   stores without it return [`StoreError::Unsupported`]. The core does not need it.
//! - `list` takes a prefix ending in `/` and returns every object whose key starts with it
//!   (all pages), in any order.
//! - Errors name the kind of failure; their messages are for logs, never for clients.

#[cfg(feature = "object-store")]
pub mod object_store;
pub mod probe;
#[cfg(feature = "testing")]
pub mod suite;
#[cfg(feature = "object-store")]
pub mod url;

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

/// A stream of an object's bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StoreError>> + Send>>;

/// How a put treats an existing object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMode {
    Overwrite,
    /// Create only if absent.
    Create,
    /// Replace only if the object is still at this version (ETag or generation).
    Update(String),
}

/// What a store knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// Unix seconds, by the store's clock.
    pub last_modified: u64,
    /// ETag, generation or similar; what `PutMode::Update` compares against.
    pub version: Option<String>,
}

/// What a store can do beyond the required verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub update_cas: bool,
    pub presign: bool,
}

/// A store failure, by kind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("object already exists: {0}")]
    AlreadyExists(String),
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    #[error("object not found: {0}")]
    NotFound(String),
    #[error("store operation not supported: {0}")]
    Unsupported(String),
    #[error("store timed out: {0}")]
    Timeout(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// The verbs of an object store, as the function core uses them.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// The whole object, or `None` when absent. For small objects (manifests, records).
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send;

    /// Bytes `range` of an object, streamed.
    fn get_range(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> impl Future<Output = Result<ByteStream, StoreError>> + Send;

    fn put(
        &self,
        key: &str,
        body: Bytes,
        mode: PutMode,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn head(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<ObjectMeta>, StoreError>> + Send;

    fn list(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<ObjectMeta>, StoreError>> + Send;

    /// Deletes an object; deleting an absent object succeeds.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// A presigned create-only PUT of `key`, valid for `expires_in_secs`, when the store offers
    /// it (`LARGE-4`).
    fn presign_put(
        &self,
        key: &str,
        expires_in_secs: u64,
    ) -> impl Future<Output = Result<Option<wkp1_protocol::manifest::PresignedRequest>, StoreError>> + Send
    {
        let _ = (key, expires_in_secs);
        async { Ok(None) }
    }

    /// A presigned GET of the whole object `key`, valid for `expires_in_secs`, when the store
    /// offers it (`LARGE-7`).
    fn presign_get(
        &self,
        key: &str,
        expires_in_secs: u64,
    ) -> impl Future<Output = Result<Option<wkp1_protocol::manifest::PresignedRequest>, StoreError>> + Send
    {
        let _ = (key, expires_in_secs);
        async { Ok(None) }
    }
}

/// Attempts of a create-only write whose outcome was unknown (timeout, dropped connection).
const CREATE_ATTEMPTS: u32 = 3;

/// A create-only write that resolves its own ambiguity (`IDEM-4`): when the store fails in a
/// way that leaves unknown whether the object landed, the same write is sent again. A retry
/// that finds the object present returns [`StoreError::AlreadyExists`], and the caller reads it
/// back to tell its own landed write from someone else's.
pub(crate) async fn create<S: Store>(store: &S, key: &str, body: Bytes) -> Result<(), StoreError> {
    let mut attempt = 1;
    loop {
        match store.put(key, body.clone(), PutMode::Create).await {
            Err(StoreError::Timeout(e) | StoreError::Unavailable(e))
                if attempt < CREATE_ATTEMPTS =>
            {
                tracing::warn!(key, attempt, error = %e, "create-only write failed ambiguously; sending it again");
                tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}
