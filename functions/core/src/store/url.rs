//! Store URLs, for functions that store through the `object_store` crate (feature
//! `object-store`; `s3://` needs feature `object-store-s3`).
//!
//! | URL | store |
//! |---|---|
//! | `file:///var/lib/wkp1` | a local directory (the embedded default, no cloud) |
//! | `s3://bucket/prefix` | S3 or any S3-compatible server; endpoint and credentials from the usual `AWS_*` variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`) |
//! | `memory://` | in memory, for tests |

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use url::Url;

use super::object_store::ObjectStoreBackend;

/// A store opened from a URL, with the key prefix the URL's path names.
#[derive(Debug)]
pub struct OpenedStore {
    pub store: ObjectStoreBackend,
    /// The URL's path (for `s3://bucket/a/b`, `a/b`), to prepend to the configured prefix.
    pub prefix: String,
    /// What to call it in logs: the URL without credentials.
    pub description: String,
}

/// Where an `s3://` store is and who to be: from `AWS_*` variables, or set by tests.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// An S3-compatible server's URL (MinIO, ...); `None` for AWS itself.
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub region: Option<String>,
    /// Per-request timeout of the S3 client (default: `object_store`'s, 30 s).
    pub timeout: Option<Duration>,
    /// Retries of the S3 client on 5xx, timeouts and dropped connections (default 10).
    pub max_retries: Option<usize>,
}

impl S3Options {
    /// `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`); credentials and region are read by the S3 builder.
    pub fn from_env() -> Self {
        let endpoint =
            std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT")).ok();
        Self { endpoint, ..Self::default() }
    }
}

/// Why a store URL could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreUrlError {
    #[error("parse store URL {url:?}: {source}")]
    Parse { url: String, source: url::ParseError },
    #[error("store URL {0:?} is not an absolute file path")]
    NotAbsolute(String),
    #[error("{action} store directory {path}: {source}")]
    Directory {
        action: &'static str,
        path: std::path::PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("s3:// URL {0:?} names no bucket")]
    NoBucket(String),
    #[error("configure S3 store from AWS_* environment: {0}")]
    S3(object_store::Error),
    #[error("unsupported store URL scheme {0:?}: use file://, s3:// or memory://")]
    Scheme(String),
    #[error("this build has no S3 support (feature object-store-s3): {0:?}")]
    NoS3Support(String),
}

/// Opens the store a URL names, configuring S3 from the environment.
pub fn open(url: &str) -> Result<OpenedStore, StoreUrlError> {
    open_with(url, &S3Options::from_env())
}

/// Opens the store a URL names.
pub fn open_with(url: &str, s3: &S3Options) -> Result<OpenedStore, StoreUrlError> {
    let parsed =
        Url::parse(url).map_err(|source| StoreUrlError::Parse { url: url.to_owned(), source })?;
    let description =
        format!("{}://{}{}", parsed.scheme(), parsed.host_str().unwrap_or(""), parsed.path());
    let (inner, prefix, update_cas): (Arc<dyn ObjectStore>, String, bool) = match parsed.scheme() {
        "file" => {
            let path =
                parsed.to_file_path().map_err(|()| StoreUrlError::NotAbsolute(url.to_owned()))?;
            std::fs::create_dir_all(&path).map_err(|e| StoreUrlError::Directory {
                action: "create",
                path: path.clone(),
                source: Box::new(e),
            })?;
            let fs = LocalFileSystem::new_with_prefix(&path).map_err(|e| {
                StoreUrlError::Directory { action: "open", path: path.clone(), source: Box::new(e) }
            })?;
            (Arc::new(fs), String::new(), false)
        }
        "memory" => (Arc::new(InMemory::new()), String::new(), true),
        "s3" => (s3_store(url, &parsed, s3)?, parsed.path().trim_matches('/').to_owned(), true),
        other => return Err(StoreUrlError::Scheme(other.to_owned())),
    };
    Ok(OpenedStore { store: ObjectStoreBackend::new(inner, update_cas), prefix, description })
}

#[cfg(not(feature = "object-store-s3"))]
fn s3_store(url: &str, _: &Url, _: &S3Options) -> Result<Arc<dyn ObjectStore>, StoreUrlError> {
    Err(StoreUrlError::NoS3Support(url.to_owned()))
}

#[cfg(feature = "object-store-s3")]
fn s3_store(
    url: &str,
    parsed: &Url,
    s3: &S3Options,
) -> Result<Arc<dyn ObjectStore>, StoreUrlError> {
    use object_store::aws::AmazonS3Builder;
    use object_store::{BackoffConfig, ClientOptions, RetryConfig};

    let bucket = parsed
        .host_str()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| StoreUrlError::NoBucket(url.to_owned()))?;
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    // One ClientOptions: setting it replaces what `with_allow_http` would have set.
    let mut options = ClientOptions::new();
    if let Some(endpoint) = &s3.endpoint {
        builder = builder.with_endpoint(endpoint);
        options = options.with_allow_http(endpoint.starts_with("http://"));
    }
    if let Some(timeout) = s3.timeout {
        options = options.with_timeout(timeout);
    }
    builder = builder.with_client_options(options);
    if let (Some(id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
        builder = builder.with_access_key_id(id).with_secret_access_key(secret);
    }
    if let Some(region) = &s3.region {
        builder = builder.with_region(region);
    }
    if let Some(max_retries) = s3.max_retries {
        let backoff = BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        };
        let retry_timeout = Duration::from_secs(60);
        builder = builder.with_retry(RetryConfig { backoff, max_retries, retry_timeout });
    }
    Ok(Arc::new(builder.build().map_err(StoreUrlError::S3)?))
}
