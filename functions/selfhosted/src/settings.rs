//! Command-line flags, each with an environment variable of the same meaning.

use std::net::SocketAddr;

use anyhow::bail;
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

    /// Log format.
    #[arg(long, env = "WKP1_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Settings {
    /// The key ring from `--keys-file` and/or `--keys`. Errors name the source, never a secret.
    pub fn key_ring(&self) -> anyhow::Result<KeyRing> {
        match self.function.local_key_ring().map_err(anyhow::Error::msg)? {
            Some(keys) => Ok(keys),
            None => bail!(
                "no keys configured: pass --keys-file FILE (WKP1_KEYS_FILE) or --keys (WKP1_KEYS)"
            ),
        }
    }

    /// The function configuration these flags describe, on top of `store_prefix`.
    pub fn function_config(&self, store_prefix: &str) -> anyhow::Result<FunctionConfig> {
        self.function
            .function_config(FunctionConfig::default(), store_prefix)
            .map_err(anyhow::Error::msg)
    }
}
