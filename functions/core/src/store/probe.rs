//! The create-only probe every adapter runs at start: a store that does not honour create-only
//! writes would silently lose WKP-1's no-overwrite and fencing guarantees (`MAN-2`, `MAN-4`),
//! so the function refuses to start on it; one whose create-only writes are not atomic when
//! raced is allowed, with a warning the adapter logs.

use bytes::Bytes;
use rand::Rng;

use super::{PutMode, Store, StoreError};

/// Concurrent create-only writes raced against one key.
const RACERS: usize = 16;

/// Whether racing create-only writes of one key let exactly one through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Atomicity {
    Atomic,
    /// More than one racing writer succeeded.
    NotAtomic {
        winners: usize,
    },
}

/// What to log about a store whose create-only writes are not atomic.
pub const NOT_ATOMIC_WARNING: &str = "create-only writes are not atomic on this store: two concurrent \
    writers of one subtree can both succeed, so a zombie writer racing a new claim may not be \
    fenced (SPEC MAN-2, GEN-4). Sequential writers are still fenced. Use a store with atomic \
    conditional writes (AWS S3, GCS, Azure Blob, MinIO, a local directory) in production.";

/// Why the probe refused the store, or could not tell.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    #[error("probe the store with a create-only write of {key}: {source}")]
    Write { key: String, source: StoreError },
    #[error(
        "the store accepted a second create-only write of {key}: it ignores If-None-Match, so \
         segments could be overwritten and stale writers could not be fenced; refusing to start"
    )]
    NotExclusive { key: String },
    #[error("probe the store's create-only writes: {0}")]
    Second(StoreError),
    #[error("delete probe object {key}: {source}")]
    Cleanup { key: String, source: StoreError },
    #[error("probe racing create-only writes: {0}")]
    Race(StoreError),
}

/// Refuses a store whose create-only writes overwrite; reports whether they are also atomic
/// when raced (some servers check for the object and write it in two steps, so two concurrent
/// writers can both succeed: not refused, since sequential writers are still fenced, but the
/// caller must say so). Leaves no object behind.
pub async fn probe_create_only(store: &impl Store, prefix: &str) -> Result<Atomicity, ProbeError> {
    let key = probe_key(prefix);
    store
        .put(&key, Bytes::from_static(b"first"), PutMode::Create)
        .await
        .map_err(|source| ProbeError::Write { key: key.clone(), source })?;
    let second = store.put(&key, Bytes::from_static(b"second"), PutMode::Create).await;
    let cleanup = store.delete(&key).await;
    match second {
        Err(StoreError::AlreadyExists(_)) => {}
        Ok(()) => return Err(ProbeError::NotExclusive { key }),
        Err(e) => return Err(ProbeError::Second(e)),
    }
    cleanup.map_err(|source| ProbeError::Cleanup { key, source })?;
    race_create_only(store, prefix).await
}

async fn race_create_only(store: &impl Store, prefix: &str) -> Result<Atomicity, ProbeError> {
    let key = probe_key(prefix);
    let attempts =
        (0..RACERS).map(|i| store.put(&key, Bytes::from(format!("racer {i}")), PutMode::Create));
    let results = futures::future::join_all(attempts).await;
    let _ = store.delete(&key).await;
    let mut winners = 0;
    for result in results {
        match result {
            Ok(()) => winners += 1,
            Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(ProbeError::Race(e)),
        }
    }
    Ok(if winners == 1 { Atomicity::Atomic } else { Atomicity::NotAtomic { winners } })
}

fn probe_key(prefix: &str) -> String {
    let prefix = prefix.trim_matches('/');
    let separator = if prefix.is_empty() { "" } else { "/" };
    format!("{prefix}{separator}.wkp1-probe-{:016x}", rand::rng().random::<u64>())
}
