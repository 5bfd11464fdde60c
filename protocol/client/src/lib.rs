#![doc = include_str!("../README.md")]
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
