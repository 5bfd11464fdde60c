//! Command-line flags, each with an environment variable of the same meaning.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use wkp1_function::FunctionConfig;
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

    /// File with one `KEY_ID SECRET` line per accepted key (several lines rotate keys).
    #[arg(long, env = "WKP1_KEYS_FILE")]
    pub keys_file: Option<PathBuf>,

    /// The keys themselves, in the keys-file format (lines, or pairs separated by ';').
    #[arg(long, env = "WKP1_KEYS", hide_env_values = true)]
    pub keys: Option<String>,

    /// Extra store prefix, after the one in the store URL.
    #[arg(long, env = "WKP1_PREFIX", default_value = "")]
    pub prefix: String,

    /// URL path the endpoints are mounted under (e.g. /api); empty for none.
    #[arg(long, env = "WKP1_PATH_PREFIX", default_value = "")]
    pub path_prefix: String,

    /// Largest request body (inline segment or part), in bytes.
    #[arg(long, env = "WKP1_MAX_INLINE_BYTES")]
    pub max_inline_bytes: Option<u64>,

    /// Largest segment download response, in bytes.
    #[arg(long, env = "WKP1_MAX_RESPONSE_BYTES")]
    pub max_response_bytes: Option<u64>,

    /// Largest segment accepted, in bytes.
    #[arg(long, env = "WKP1_MAX_SEGMENT_BYTES")]
    pub max_segment_bytes: Option<u64>,

    /// Size of the objects segments are stored as, in bytes.
    #[arg(long, env = "WKP1_PART_SIZE")]
    pub part_size: Option<u64>,

    /// Retention grace period in seconds (at least 900).
    #[arg(long, env = "WKP1_GRACE_SECONDS")]
    pub grace_seconds: Option<u64>,

    /// Seconds to let in-flight requests finish after SIGTERM.
    #[arg(long, env = "WKP1_SHUTDOWN_SECONDS", default_value_t = 60)]
    pub shutdown_seconds: u64,

    /// Log format.
    #[arg(long, env = "WKP1_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Settings {
    /// The key ring from `--keys-file` and/or `--keys`. Errors name the source, never a secret.
    pub fn key_ring(&self) -> anyhow::Result<KeyRing> {
        let mut text = String::new();
        if let Some(path) = &self.keys_file {
            text = std::fs::read_to_string(path)
                .with_context(|| format!("read keys file {}", path.display()))?;
            text.push('\n');
        }
        if let Some(inline) = &self.keys {
            text.push_str(&inline.replace(';', "\n"));
        }
        if text.trim().is_empty() {
            bail!(
                "no keys configured: pass --keys-file FILE (WKP1_KEYS_FILE) or --keys (WKP1_KEYS)"
            );
        }
        KeyRing::parse(&text).context("parse keys (--keys-file / --keys)")
    }

    /// The function configuration these flags describe, on top of `store_prefix`.
    pub fn function_config(&self, store_prefix: &str) -> anyhow::Result<FunctionConfig> {
        let prefix = [store_prefix.trim_matches('/'), self.prefix.trim_matches('/')]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        let mut config = FunctionConfig {
            prefix,
            path_prefix: self.path_prefix.clone(),
            ..FunctionConfig::default()
        };
        let limits = &mut config.limits;
        limits.max_inline_bytes = self.max_inline_bytes.unwrap_or(limits.max_inline_bytes);
        limits.max_response_bytes = self.max_response_bytes.unwrap_or(limits.max_response_bytes);
        limits.max_segment_bytes = self.max_segment_bytes.unwrap_or(limits.max_segment_bytes);
        config.part_size = self.part_size.unwrap_or(config.part_size).min(limits.max_inline_bytes);
        config.grace_seconds = self.grace_seconds.unwrap_or(config.grace_seconds);
        config.validate().map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
        Ok(config)
    }
}
