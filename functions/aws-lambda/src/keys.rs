//! Where the HMAC key ring comes from: the environment, or AWS Secrets Manager, read at cold
//! start and again once the cached copy is older than the refresh interval, so a rotation
//! reaches warm instances without a redeploy and most invocations cost no Secrets Manager call.

use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use wkp1_protocol::KeyRing;

/// A key ring and the moment it was read.
#[derive(Debug)]
pub struct Loaded {
    pub keys: KeyRing,
    /// The secret's text, to tell a rotation from a re-read of the same keys.
    pub text: String,
    pub at: Instant,
}

/// Where keys come from.
#[derive(Debug)]
pub enum KeySource {
    /// `WKP1_KEYS` / `WKP1_KEYS_FILE`: fixed for the life of the deployment.
    Static(KeyRing),
    /// A Secrets Manager secret whose `SecretString` is in the keys-file format.
    SecretsManager { client: aws_sdk_secretsmanager::Client, secret_id: String, refresh: Duration },
}

impl KeySource {
    pub fn secrets_manager(
        client: aws_sdk_secretsmanager::Client,
        secret_id: impl Into<String>,
        refresh: Duration,
    ) -> Self {
        Self::SecretsManager { client, secret_id: secret_id.into(), refresh }
    }

    /// Reads the key ring. Errors name the secret, never its contents.
    pub async fn load(&self) -> anyhow::Result<Loaded> {
        match self {
            Self::Static(keys) => {
                Ok(Loaded { keys: keys.clone(), text: String::new(), at: Instant::now() })
            }
            Self::SecretsManager { client, secret_id, .. } => {
                let output =
                    client.get_secret_value().secret_id(secret_id).send().await.map_err(|e| {
                        anyhow::anyhow!(
                            "read keys from Secrets Manager secret {secret_id}: {}",
                            DisplayErrorContext(&e)
                        )
                    })?;
                let text = output.secret_string().ok_or_else(|| {
                    anyhow::anyhow!(
                        "Secrets Manager secret {secret_id} has no SecretString; store the keys as \
                         text, one `KEY_ID SECRET` line each"
                    )
                })?;
                let keys = KeyRing::parse(text).map_err(|e| {
                    anyhow::anyhow!("parse keys of Secrets Manager secret {secret_id}: {e}")
                })?;
                anyhow::ensure!(!keys.is_empty(), "Secrets Manager secret {secret_id} has no keys");
                Ok(Loaded { keys, text: text.to_owned(), at: Instant::now() })
            }
        }
    }

    /// Whether keys read at `at` are due for a re-read.
    pub fn is_stale(&self, at: Instant) -> bool {
        match self {
            Self::Static(_) => false,
            Self::SecretsManager { refresh, .. } => at.elapsed() >= *refresh,
        }
    }
}
