//! [`Store`] over the `object_store` crate: local directories, memory, and (with that crate's
//! cloud features enabled by the caller) S3, GCS and Azure.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    Error as OsError, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutOptions, PutPayload,
    UpdateVersion,
};

use super::{ByteStream, Capabilities, ObjectMeta, PutMode, Store, StoreError};

/// Adapts any `object_store::ObjectStore`.
#[derive(Debug, Clone)]
pub struct ObjectStoreBackend {
    inner: Arc<dyn ObjectStore>,
    update_cas: bool,
}

impl ObjectStoreBackend {
    /// `update_cas` says whether the backend implements `PutMode::Update` (S3 with ETag
    /// matching does; the local file system and memory stores differ by version).
    pub fn new(inner: Arc<dyn ObjectStore>, update_cas: bool) -> Self {
        Self { inner, update_cas }
    }
}

/// Maps `object_store` errors to kinds. Vendor quirks (R2 answering 412 to a create, S3 answering
/// 304) are already folded into `AlreadyExists` by `object_store`.
fn map_error(err: OsError) -> StoreError {
    match err {
        OsError::AlreadyExists { path, .. } => StoreError::AlreadyExists(path),
        OsError::Precondition { path, .. } => StoreError::PreconditionFailed(path),
        OsError::NotFound { path, .. } => StoreError::NotFound(path),
        OsError::NotImplemented { operation, .. } => StoreError::Unsupported(operation),
        OsError::NotSupported { source } => StoreError::Unsupported(source.to_string()),
        other => {
            let text = other.to_string();
            // reqwest says "operation timed out"; "retry_timeout" in a retry summary is not one.
            if text.contains("timed out") {
                StoreError::Timeout(text)
            } else {
                StoreError::Unavailable(text)
            }
        }
    }
}

fn meta(m: object_store::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        key: m.location.to_string(),
        size: m.size,
        last_modified: m.last_modified.timestamp().max(0) as u64,
        version: m.e_tag.or(m.version),
    }
}

impl Store for ObjectStoreBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self.inner.get(&Path::from(key)).await {
            Ok(result) => result.bytes().await.map(Some).map_err(map_error),
            Err(OsError::NotFound { .. }) => Ok(None),
            Err(e) => Err(map_error(e)),
        }
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<ByteStream, StoreError> {
        let options = GetOptions { range: Some(GetRange::Bounded(range)), ..Default::default() };
        let result = self.inner.get_opts(&Path::from(key), options).await.map_err(map_error)?;
        Ok(result.into_stream().map_err(map_error).boxed())
    }

    async fn put(&self, key: &str, body: Bytes, mode: PutMode) -> Result<(), StoreError> {
        let mode = match mode {
            PutMode::Overwrite => object_store::PutMode::Overwrite,
            PutMode::Create => object_store::PutMode::Create,
            PutMode::Update(version) => {
                object_store::PutMode::Update(UpdateVersion { e_tag: Some(version), version: None })
            }
        };
        let options = PutOptions { mode, ..Default::default() };
        self.inner
            .put_opts(&Path::from(key), PutPayload::from_bytes(body), options)
            .await
            .map(|_| ())
            .map_err(map_error)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        match self.inner.head(&Path::from(key)).await {
            Ok(m) => Ok(Some(meta(m))),
            Err(OsError::NotFound { .. }) => Ok(None),
            Err(e) => Err(map_error(e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let prefix = Path::from(prefix.trim_end_matches('/'));
        self.inner.list(Some(&prefix)).map_ok(meta).map_err(map_error).try_collect().await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.inner.delete(&Path::from(key)).await {
            Ok(()) | Err(OsError::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_error(e)),
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { update_cas: self.update_cas, presign: false }
    }
}
