//! Store URLs and the conditional-write probe.
//!
//! | URL | store |
//! |---|---|
//! | `file:///var/lib/wkp1` | a local directory (the embedded default, no cloud) |
//! | `s3://bucket/prefix` | S3 or any S3-compatible server; endpoint and credentials from the usual `AWS_*` variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`) |
//! | `memory://` | in memory, for tests |

use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use rand::Rng;
use url::Url;
use wkp1_function::store::object_store::ObjectStoreBackend;
use wkp1_function::{PutMode, Store, StoreError};

/// A store opened from a URL, with the key prefix the URL's path names.
#[derive(Debug)]
pub struct OpenedStore {
    pub store: ObjectStoreBackend,
    /// The URL's path (for `s3://bucket/a/b`, `a/b`), to prepend to the configured prefix.
    pub prefix: String,
    /// What to call it in logs: the URL without credentials.
    pub description: String,
}

/// Opens the store a URL names.
pub fn open(url: &str) -> anyhow::Result<OpenedStore> {
    let parsed = Url::parse(url).with_context(|| format!("parse store URL {url:?}"))?;
    let description =
        format!("{}://{}{}", parsed.scheme(), parsed.host_str().unwrap_or(""), parsed.path());
    let (inner, prefix, update_cas): (Arc<dyn ObjectStore>, String, bool) = match parsed.scheme() {
        "file" => {
            let path = parsed
                .to_file_path()
                .map_err(|()| anyhow::anyhow!("store URL {url:?} is not an absolute file path"))?;
            std::fs::create_dir_all(&path)
                .with_context(|| format!("create store directory {}", path.display()))?;
            let fs = LocalFileSystem::new_with_prefix(&path)
                .with_context(|| format!("open store directory {}", path.display()))?;
            (Arc::new(fs), String::new(), false)
        }
        "memory" => (Arc::new(InMemory::new()), String::new(), true),
        "s3" => {
            let bucket =
                parsed.host_str().filter(|b| !b.is_empty()).context("s3:// URL names no bucket")?;
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            let endpoint =
                std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT")).ok();
            if let Some(endpoint) = endpoint {
                builder = builder
                    .with_endpoint(&endpoint)
                    .with_allow_http(endpoint.starts_with("http://"));
            }
            let s3 = builder.build().context("configure S3 store from AWS_* environment")?;
            (Arc::new(s3), parsed.path().trim_matches('/').to_owned(), true)
        }
        other => bail!("unsupported store URL scheme {other:?}: use file://, s3:// or memory://"),
    };
    Ok(OpenedStore { store: ObjectStoreBackend::new(inner, update_cas), prefix, description })
}

/// Refuses a store that does not honour create-only writes: without them WKP-1 would silently
/// lose its no-overwrite and fencing guarantees (`MAN-2`, `MAN-4`).
pub async fn probe_create_only(store: &impl Store, prefix: &str) -> anyhow::Result<()> {
    let prefix = prefix.trim_matches('/');
    let separator = if prefix.is_empty() { "" } else { "/" };
    let key = format!("{prefix}{separator}.wkp1-probe-{:016x}", rand::rng().random::<u64>());
    store
        .put(&key, Bytes::from_static(b"first"), PutMode::Create)
        .await
        .with_context(|| format!("probe the store with a create-only write of {key}"))?;
    let second = store.put(&key, Bytes::from_static(b"second"), PutMode::Create).await;
    let cleanup = store.delete(&key).await;
    match second {
        Err(StoreError::AlreadyExists(_)) => {}
        Ok(()) => bail!(
            "the store accepted a second create-only write of {key}: it ignores If-None-Match, so \
             segments could be overwritten and stale writers could not be fenced; refusing to start"
        ),
        Err(e) => bail!("probe the store's create-only writes: {e}"),
    }
    cleanup.with_context(|| format!("delete probe object {key}"))?;
    Ok(())
}
