//! Where the key ring comes from: `WKP1_KEYS` / `WKP1_KEYS_FILE`, a Secrets Manager secret, or
//! an SSM Parameter Store parameter (a `SecureString`). The core re-reads a remote ring while
//! the instance is warm ([`wkp1_function::rotation`]).

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use wkp1_function::rotation::KeyService;
pub use wkp1_function::rotation::KeySource;

use crate::settings::Settings;

/// A service that stores the keys as text, one `KEY_ID SECRET` line each.
#[derive(Debug)]
pub enum Remote {
    SecretsManager { client: aws_sdk_secretsmanager::Client, secret_id: String },
    Parameter { client: aws_sdk_ssm::Client, name: String },
}

impl KeyService for Remote {
    fn describe(&self) -> String {
        match self {
            Self::SecretsManager { secret_id, .. } => format!("Secrets Manager secret {secret_id}"),
            Self::Parameter { name, .. } => format!("SSM parameter {name}"),
        }
    }

    async fn fetch(&self) -> Result<String, String> {
        let text = match self {
            Self::SecretsManager { client, secret_id } => {
                let request = client.get_secret_value().secret_id(secret_id);
                request.send().await.map_err(|e| DisplayErrorContext(&e).to_string())?.secret_string
            }
            Self::Parameter { client, name } => {
                let request = client.get_parameter().name(name).with_decryption(true);
                let output =
                    request.send().await.map_err(|e| DisplayErrorContext(&e).to_string())?;
                output.parameter.and_then(|p| p.value)
            }
        };
        text.ok_or_else(|| "it holds no text".into())
    }
}

/// The key source the settings name: a secret, a parameter, or keys in the environment.
pub fn source(
    settings: &Settings,
    sdk: &aws_config::SdkConfig,
) -> anyhow::Result<KeySource<Remote>> {
    let refresh = settings.keys_refresh();
    if let Some(secret_id) = &settings.keys_secret {
        let client = aws_sdk_secretsmanager::Client::new(sdk);
        let service = Remote::SecretsManager { client, secret_id: secret_id.clone() };
        return Ok(KeySource::Service { service, refresh });
    }
    if let Some(name) = &settings.keys_parameter {
        let client = aws_sdk_ssm::Client::new(sdk);
        return Ok(KeySource::Service {
            service: Remote::Parameter { client, name: name.clone() },
            refresh,
        });
    }
    match settings.function.local_key_ring()? {
        Some(keys) => Ok(KeySource::Static(keys)),
        None => anyhow::bail!(
            "no keys configured: set WKP1_KEYS_SECRET (Secrets Manager), WKP1_KEYS_PARAMETER \
             (SSM), WKP1_KEYS or WKP1_KEYS_FILE"
        ),
    }
}
