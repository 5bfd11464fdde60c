//! What one client may cost, with defaults meant for servers facing other programs (SDKs,
//! engines), not browsers on slow links.

use std::time::Duration;

/// The bounds [`serve`](crate::serve) enforces on every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once. One more is answered `503 Service Unavailable` and closed
    /// (not left waiting in the kernel's queue), so it can retry elsewhere or later.
    pub max_connections: usize,
    /// Largest request head (request line and headers) in bytes; larger is answered
    /// `431 Request Header Fields Too Large` and the connection closed.
    pub max_header_bytes: usize,
    /// Time a client has to send a whole request head, counted from when the server starts
    /// waiting for it, so it also closes idle keep-alive connections. A client that trickles
    /// its headers is dropped when it runs out.
    pub header_timeout: Duration,
    /// The window over which a request body's rate is measured: counting only the time the
    /// server waits for the body, every window must bring `min_body_rate × body_timeout`
    /// bytes (and at least one). A body that stalls or trickles is answered
    /// `408 Request Timeout` and the connection closed.
    pub body_timeout: Duration,
    /// Slowest request body accepted, in bytes per second, averaged over `body_timeout`.
    pub min_body_rate: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_header_bytes: 16 << 10,
            header_timeout: Duration::from_secs(20),
            body_timeout: Duration::from_secs(10),
            min_body_rate: 1024,
        }
    }
}

impl Limits {
    /// Refuses bounds that would refuse every client.
    pub fn check(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("max connections must be at least 1".into());
        }
        if self.max_header_bytes < 1024 {
            return Err("max header bytes must be at least 1024".into());
        }
        if self.header_timeout.is_zero() || self.body_timeout.is_zero() {
            return Err("header and body timeouts must be positive".into());
        }
        Ok(())
    }

    /// Bytes each body window must bring.
    pub(crate) fn min_bytes_per_window(&self) -> u64 {
        let bytes = self.min_body_rate as f64 * self.body_timeout.as_secs_f64();
        (bytes as u64).max(1)
    }
}
