//! Client configuration.

use std::time::Duration;

use url::Url;
use wkp1_protocol::{Clock, KeyId, Secret, Subtree};

/// When and how often to retry (`CLI-3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Give up once the delays add up to this.
    pub max_total_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 8,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_total_delay: Duration::from_secs(60),
        }
    }
}

/// Where and as whom to talk.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The function's base URL; may carry a path prefix (`/api`, `/lambda-url/name`).
    pub base_url: Url,
    pub subtree: Subtree,
    pub key_id: KeyId,
    pub secret: Secret,
    pub connect_timeout: Duration,
    /// Longest wait for any single read or write on a connection (`CLI-1`).
    pub io_timeout: Duration,
    /// Longest a small (JSON) request may take in all.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// Parts uploaded, and segments downloaded, at once.
    pub concurrency: usize,
    /// Signs request timestamps.
    pub clock: Clock,
}

impl ClientConfig {
    pub fn new(base_url: Url, subtree: Subtree, key_id: KeyId, secret: Secret) -> Self {
        Self {
            base_url,
            subtree,
            key_id,
            secret,
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            concurrency: 4,
            clock: Clock::system(),
        }
    }
}
