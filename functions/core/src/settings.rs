//! The settings every deployment of the function shares (keys, prefixes, limits, retention),
//! as flags with an environment variable each, for binaries to flatten into their own.

use std::path::PathBuf;

use wkp1_protocol::KeyRing;

use crate::FunctionConfig;
use crate::config::ConfigError;

/// Settings common to every function binary.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FunctionSettings {
    /// File with one `KEY_ID SECRET` line per accepted key (several lines rotate keys).
    #[arg(long, env = "WKP1_KEYS_FILE")]
    pub keys_file: Option<PathBuf>,

    /// The keys themselves, in the keys-file format (lines, or pairs separated by ';').
    #[arg(long, env = "WKP1_KEYS", hide_env_values = true)]
    pub keys: Option<String>,

    /// Extra store prefix, after the one the store itself names.
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
}

pub use weftkit_logging::LogFormat;

impl FunctionSettings {
    /// The key ring from `--keys-file` and/or `--keys`, or `None` when neither is set. Errors
    /// name the source, never a secret.
    pub fn local_key_ring(&self) -> Result<Option<KeyRing>, ConfigError> {
        let mut text = String::new();
        if let Some(path) = &self.keys_file {
            text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::KeysFile { path: path.clone(), source })?;
            text.push('\n');
        }
        if let Some(inline) = &self.keys {
            text.push_str(&inline.replace(';', "\n"));
        }
        if text.trim().is_empty() {
            return Ok(None);
        }
        KeyRing::parse(&text)
            .map(Some)
            .map_err(|source| ConfigError::Keys { origin: "WKP1_KEYS_FILE / WKP1_KEYS", source })
    }

    /// The function configuration these settings describe on top of `base` (a deployment's
    /// own defaults), under `store_prefix`; checked against SPEC.md's bounds.
    pub fn function_config(
        &self,
        base: FunctionConfig,
        store_prefix: &str,
    ) -> Result<FunctionConfig, ConfigError> {
        let prefix = [store_prefix.trim_matches('/'), self.prefix.trim_matches('/')]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        let mut config = FunctionConfig { prefix, path_prefix: self.path_prefix.clone(), ..base };
        let limits = &mut config.limits;
        limits.max_inline_bytes = self.max_inline_bytes.unwrap_or(limits.max_inline_bytes);
        limits.max_response_bytes = self.max_response_bytes.unwrap_or(limits.max_response_bytes);
        match self.max_segment_bytes {
            Some(bytes) => limits.max_segment_bytes = bytes,
            None => config.fit_segment_limit(),
        }
        config.part_size =
            self.part_size.unwrap_or(config.part_size).min(config.limits.max_inline_bytes);
        config.grace_seconds = self.grace_seconds.unwrap_or(config.grace_seconds);
        config.validate()?;
        Ok(config)
    }
}

/// Parses settings from the environment alone, for functions that have no command line
/// (AWS Lambda, Azure Functions). Errors name the environment variables, not the flags clap
/// would print.
pub fn from_env_only<T: clap::Parser>(name: &str) -> Result<T, String> {
    T::try_parse_from([name]).map_err(|err| {
        let rendered = err.to_string();
        let mut message = rendered.split("\n\n").next().unwrap_or_default().trim().to_owned();
        let command = T::command();
        let mut args: Vec<_> = command
            .get_arguments()
            .filter_map(|arg| Some((arg, arg.get_long()?, arg.get_env()?)))
            .collect();
        // Longest first, so that `--keys` does not rewrite the start of `--keys-secret`.
        args.sort_by_key(|(_, long, _)| std::cmp::Reverse(long.len()));
        for (arg, long, env) in args {
            let env = env.to_string_lossy();
            for value in arg.get_value_names().unwrap_or_default() {
                message = message.replace(&format!("--{long} <{value}>"), &env);
            }
            message = message.replace(&format!("--{long}"), &env);
        }
        message.trim_start_matches("error: ").to_owned()
    })
}
