//! Command-line flags, each with an environment variable of the same meaning.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::bail;
use bounded_serve::Limits;
use clap::Parser;
use wkp1_function::FunctionConfig;
use wkp1_function::settings::FunctionSettings;
pub use wkp1_function::settings::LogFormat;
use wkp1_protocol::KeyRing;

/// Self-hosted WKP-1 function: restore, persist and flush over a local directory or any
/// S3-compatible store.
#[derive(Debug, Clone, Parser)]
#[command(name = "wkp1-selfhosted", version)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "WKP1_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Where state is kept: file:///path, s3://bucket/prefix or memory://.
    #[arg(long, env = "WKP1_STORE")]
    pub store: String,

    #[command(flatten)]
    pub function: FunctionSettings,

    /// Seconds to let in-flight requests finish after SIGTERM.
    #[arg(long, env = "WKP1_SHUTDOWN_SECONDS", default_value_t = 60)]
    pub shutdown_seconds: u64,

    #[command(flatten)]
    pub clients: ClientLimits,

    /// Log format.
    #[arg(long, env = "WKP1_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// What one client may cost the server (see `bounded_serve::Limits`).
#[derive(Debug, Clone, clap::Args)]
pub struct ClientLimits {
    /// Connections served at once; one more is answered 503 and closed.
    #[arg(long, env = "WKP1_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    pub max_connections: usize,

    /// Largest request head (request line and headers) in bytes; larger is answered 431.
    #[arg(long, env = "WKP1_MAX_HEADER_BYTES", default_value_t = Limits::default().max_header_bytes)]
    pub max_header_bytes: usize,

    /// Seconds a client has to send a request head (idle keep-alive connections included).
    #[arg(long, env = "WKP1_HEADER_TIMEOUT_SECONDS", default_value_t = Limits::default().header_timeout.as_secs())]
    pub header_timeout_seconds: u64,

    /// Seconds of waiting over which a request body must arrive at --min-body-rate; a body
    /// that stalls or trickles is answered 408.
    #[arg(long, env = "WKP1_BODY_TIMEOUT_SECONDS", default_value_t = Limits::default().body_timeout.as_secs())]
    pub body_timeout_seconds: u64,

    /// Slowest request body accepted, in bytes per second.
    #[arg(long, env = "WKP1_MIN_BODY_RATE", default_value_t = Limits::default().min_body_rate)]
    pub min_body_rate: u64,
}

impl ClientLimits {
    /// The limits these flags describe; errors name the flag.
    pub fn limits(&self) -> anyhow::Result<Limits> {
        let limits = Limits {
            max_connections: self.max_connections,
            max_header_bytes: self.max_header_bytes,
            header_timeout: Duration::from_secs(self.header_timeout_seconds),
            body_timeout: Duration::from_secs(self.body_timeout_seconds),
            min_body_rate: self.min_body_rate,
        };
        limits.check().map_err(|e| anyhow::anyhow!("client limits (--max-connections, --max-header-bytes, --header-timeout-seconds, --body-timeout-seconds): {e}"))?;
        Ok(limits)
    }
}

impl Settings {
    /// The key ring from `--keys-file` and/or `--keys`. Errors name the source, never a secret.
    pub fn key_ring(&self) -> anyhow::Result<KeyRing> {
        match self.function.local_key_ring()? {
            Some(keys) => Ok(keys),
            None => bail!(
                "no keys configured: pass --keys-file FILE (WKP1_KEYS_FILE) or --keys (WKP1_KEYS)"
            ),
        }
    }

    /// The function configuration these flags describe, on top of `store_prefix`.
    pub fn function_config(&self, store_prefix: &str) -> anyhow::Result<FunctionConfig> {
        Ok(self.function.function_config(FunctionConfig::default(), store_prefix)?)
    }
}
