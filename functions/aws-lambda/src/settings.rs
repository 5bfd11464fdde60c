//! Configuration, from environment variables only (a Lambda has no command line).

use std::time::Duration;

use clap::{ArgAction, Parser};
use wkp1_function::FunctionConfig;
use wkp1_function::settings::FunctionSettings;
pub use wkp1_function::settings::LogFormat;

/// The Lambda's inline limit: 6 MB of invocation payload carries about 4.5 MB of binary after
/// base64 (4/3) and the event's envelope (`LARGE-1`).
pub const LAMBDA_INLINE_BYTES: u64 = 4_500_000;

/// WKP-1 function for AWS Lambda, storing in S3. Every setting is an environment variable.
#[derive(Debug, Clone, Parser)]
#[command(name = "wkp1-lambda", version)]
pub struct Settings {
    /// The bucket state is kept in.
    #[arg(long, env = "WKP1_BUCKET")]
    pub bucket: String,

    #[command(flatten)]
    pub function: FunctionSettings,

    /// Secrets Manager secret (name or ARN) holding the keys, one `KEY_ID SECRET` line each;
    /// instead of WKP1_KEYS / WKP1_KEYS_FILE.
    #[arg(long, env = "WKP1_KEYS_SECRET", conflicts_with = "keys_parameter")]
    pub keys_secret: Option<String>,

    /// SSM Parameter Store parameter (name or ARN, a `SecureString`) holding the keys, in the
    /// same format; instead of WKP1_KEYS / WKP1_KEYS_FILE.
    #[arg(long, env = "WKP1_KEYS_PARAMETER")]
    pub keys_parameter: Option<String>,

    /// Seconds a warm instance keeps the keys read from Secrets Manager or SSM before reading
    /// them again (rotation reaches warm instances within this).
    #[arg(long, env = "WKP1_KEYS_REFRESH_SECONDS", default_value_t = 300)]
    pub keys_refresh_seconds: u64,

    /// Presigned S3 URLs for large segments, both ways (`LARGE-4`, `LARGE-7`); with `false`
    /// they go through the function in parts of at most WKP1_MAX_INLINE_BYTES.
    #[arg(long, env = "WKP1_PRESIGN", default_value_t = true, action = ArgAction::Set)]
    pub presign: bool,

    /// Path-style S3 addressing (`endpoint/bucket/key`), for S3-compatible servers.
    #[arg(long, env = "WKP1_S3_FORCE_PATH_STYLE", default_value_t = false, action = ArgAction::Set)]
    pub s3_force_path_style: bool,

    /// Log format; CloudWatch reads JSON.
    #[arg(long, env = "WKP1_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

impl Settings {
    /// Reads the environment; errors name the variables.
    pub fn from_env() -> Result<Self, String> {
        wkp1_function::settings::from_env_only("wkp1-lambda")
    }

    pub fn keys_refresh(&self) -> Duration {
        Duration::from_secs(self.keys_refresh_seconds)
    }

    /// The function configuration: Lambda's limits, then the shared settings on top.
    pub fn function_config(&self) -> anyhow::Result<FunctionConfig> {
        let mut base = FunctionConfig::default();
        base.limits.max_inline_bytes = LAMBDA_INLINE_BYTES;
        base.limits.max_response_bytes = LAMBDA_INLINE_BYTES;
        base.limits.presign_upload = self.presign;
        base.limits.presign_download = self.presign;
        base.part_size = LAMBDA_INLINE_BYTES;
        Ok(self.function.function_config(base, "")?)
    }
}
