//! # wkp1-client
//!
//! The engine side of WKP-1: it signs every request, retries what may be retried with
//! exponential backoff and jitter (`CLI-1`, `CLI-3`), moves segments of any size by the path the
//! function advertises (`CLI-4`), and restores by streaming every segment to disk and verifying
//! it and the chain before the engine sees a byte (`CLI-5`, `REST-6`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), wkp1_client::ClientError> {
//! use wkp1_client::{Client, ClientConfig, SegmentFile};
//! use wkp1_protocol::{KeyId, Secret, Subtree};
//!
//! let config = ClientConfig::new(
//!     "https://fn.example.com".parse().unwrap(),
//!     Subtree::new("kv", "orders", "replica-0").unwrap(),
//!     KeyId::new("k2026a").unwrap(),
//!     Secret::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap(),
//! );
//! let client = Client::new(config)?;
//! let restored = client.restore(true, std::path::Path::new("/tmp/restore")).await?;
//! let generation = restored.plan.generation;
//! let delta = SegmentFile::open("/tmp/delta.wkp").await?;
//! client.persist(generation, &delta).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`config`]: endpoint, subtree, key, timeouts, retry policy.
//! - [`error`]: what can go wrong, and whether it may be retried.
//! - `transport`: one signed request, and the retry loop around it.
//! - [`segment_file`]: a segment on disk, verified before upload.
//! - `upload`: persist and flush, inline or in parts.
//! - `restore`: plans, verified downloads.

pub mod config;
pub mod error;
mod restore;
pub mod segment_file;
mod transport;
mod upload;

pub use config::{ClientConfig, RetryPolicy};
pub use error::ClientError;
pub use restore::{DownloadedSegment, Restored};
pub use segment_file::SegmentFile;

use wkp1_protocol::manifest::{PersistResponse, RestorePlan};

/// A WKP-1 client for one subtree.
#[derive(Debug, Clone)]
pub struct Client {
    transport: transport::Transport,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        Ok(Self { transport: transport::Transport::new(config)? })
    }

    pub fn config(&self) -> &ClientConfig {
        self.transport.config()
    }

    /// The restore plan; with `claim`, a new writer generation too (`GEN-1`, `GEN-2`).
    pub async fn plan(&self, claim: bool) -> Result<RestorePlan, ClientError> {
        restore::plan(&self.transport, claim).await
    }

    /// Claims (when asked), then downloads and verifies every segment of the chain into `dir`.
    /// Nothing in the result is unverified; apply its segments in order.
    pub async fn restore(
        &self,
        claim: bool,
        dir: &std::path::Path,
    ) -> Result<Restored, ClientError> {
        restore::restore(&self.transport, claim, dir).await
    }

    /// Persists one segment under `generation` (`PER-1`).
    pub async fn persist(
        &self,
        generation: u64,
        segment: &SegmentFile,
    ) -> Result<PersistResponse, ClientError> {
        upload::write(&self.transport, wkp1_protocol::Endpoint::Persist, generation, Some(segment))
            .await
    }

    /// Flushes: persists `segment` if given, then closes the generation (`FLUSH-1`).
    pub async fn flush(
        &self,
        generation: u64,
        segment: Option<&SegmentFile>,
    ) -> Result<PersistResponse, ClientError> {
        upload::write(&self.transport, wkp1_protocol::Endpoint::Flush, generation, segment).await
    }
}
