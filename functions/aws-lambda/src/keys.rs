//! Where the HMAC key ring comes from: the environment, a Secrets Manager secret, or an SSM
//! Parameter Store parameter (a `SecureString`). A remote ring is read at cold start and again
//! once the cached copy is older than the refresh interval, so a rotation reaches warm
//! instances without a redeploy, and most invocations make no call for it.

use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use sha2::{Digest, Sha256};
use wkp1_protocol::KeyRing;

/// A key ring and the moment it was read.
#[derive(Debug)]
pub struct Loaded {
    pub keys: KeyRing,
    /// SHA-256 of the stored text, to tell a rotation from a re-read of the same keys without
    /// keeping the secrets' text around (or in any `Debug` output).
    pub digest: [u8; 32],
    pub at: Instant,
}

/// A service that stores the keys as text, one `KEY_ID SECRET` line each.
#[derive(Debug)]
pub enum Remote {
    SecretsManager { client: aws_sdk_secretsmanager::Client, secret_id: String },
    Parameter { client: aws_sdk_ssm::Client, name: String },
}

/// Where keys come from.
#[derive(Debug)]
pub enum KeySource {
    /// `WKP1_KEYS` / `WKP1_KEYS_FILE`: fixed for the life of the deployment.
    Static(KeyRing),
    /// Read from a service, and again every `refresh`.
    Remote { remote: Remote, refresh: Duration },
}

impl Remote {
    /// What the variable names, for messages.
    fn describe(&self) -> String {
        match self {
            Self::SecretsManager { secret_id, .. } => format!("Secrets Manager secret {secret_id}"),
            Self::Parameter { name, .. } => format!("SSM parameter {name}"),
        }
    }

    /// The stored text. Errors name the source, never its contents.
    async fn fetch(&self) -> anyhow::Result<String> {
        let text = match self {
            Self::SecretsManager { client, secret_id } => {
                client
                    .get_secret_value()
                    .secret_id(secret_id)
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))?
                    .secret_string
            }
            Self::Parameter { client, name } => client
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))?
                .parameter
                .and_then(|p| p.value),
        };
        text.ok_or_else(|| anyhow::anyhow!("it holds no text"))
    }
}

impl KeySource {
    /// Reads the key ring. Errors name the source, never its contents.
    pub async fn load(&self) -> anyhow::Result<Loaded> {
        let remote = match self {
            Self::Static(keys) => {
                return Ok(Loaded { keys: keys.clone(), digest: [0; 32], at: Instant::now() });
            }
            Self::Remote { remote, .. } => remote,
        };
        let source = remote.describe();
        let text =
            remote.fetch().await.map_err(|e| anyhow::anyhow!("read keys from {source}: {e}"))?;
        let keys = KeyRing::parse(&text).map_err(|e| {
            anyhow::anyhow!("parse keys of {source} (one `KEY_ID SECRET` line per key): {e}")
        })?;
        anyhow::ensure!(!keys.is_empty(), "{source} has no keys");
        Ok(Loaded { keys, digest: Sha256::digest(text.as_bytes()).into(), at: Instant::now() })
    }

    /// Whether keys read at `at` are due for a re-read.
    pub fn is_stale(&self, at: Instant) -> bool {
        match self {
            Self::Static(_) => false,
            Self::Remote { refresh, .. } => at.elapsed() >= *refresh,
        }
    }
}
