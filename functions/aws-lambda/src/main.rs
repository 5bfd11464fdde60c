//! `wkp1-lambda`, the Lambda bootstrap: configuration from the environment, then one event
//! at a time through [`LambdaFunction`].

use std::sync::Arc;

use lambda_http::{Request, service_fn};
use tracing_subscriber::EnvFilter;
use wkp1_aws_lambda::keys::{KeySource, Remote};
use wkp1_aws_lambda::s3::S3Store;
use wkp1_aws_lambda::settings::{LogFormat, Settings};
use wkp1_aws_lambda::{LambdaFunction, s3_client};
use wkp1_function::store::probe::{Atomicity, NOT_ATOMIC_WARNING, probe_create_only};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            // An init error: Lambda reports it and the client's request fails with 502.
            eprintln!("wkp1-lambda: invalid configuration: {err}");
            std::process::exit(2);
        }
    };
    init_logging(settings.log_format);
    let function = match start(&settings).await {
        Ok(function) => Arc::new(function),
        Err(err) => {
            tracing::error!("wkp1-lambda could not start: {err:#}");
            std::process::exit(1);
        }
    };
    lambda_http::run(service_fn(move |request: Request| {
        let function = function.clone();
        async move { Ok::<_, std::convert::Infallible>(function.handle(request).await) }
    }))
    .await
}

async fn start(settings: &Settings) -> anyhow::Result<LambdaFunction> {
    let config = settings.function_config()?;
    let sdk = aws_config::load_from_env().await;
    let store = S3Store::new(s3_client(&sdk, settings.s3_force_path_style), &settings.bucket);
    // Once per container: a bucket whose create-only writes overwrite is refused.
    if let Atomicity::NotAtomic { winners } = probe_create_only(&store, &config.prefix).await? {
        tracing::warn!(winners, bucket = %settings.bucket, "{NOT_ATOMIC_WARNING}");
    }
    let remote = match (&settings.keys_secret, &settings.keys_parameter) {
        (Some(secret_id), _) => Some(Remote::SecretsManager {
            client: aws_sdk_secretsmanager::Client::new(&sdk),
            secret_id: secret_id.clone(),
        }),
        (None, Some(name)) => {
            Some(Remote::Parameter { client: aws_sdk_ssm::Client::new(&sdk), name: name.clone() })
        }
        (None, None) => None,
    };
    let keys = match remote {
        Some(remote) => KeySource::Remote { remote, refresh: settings.keys_refresh() },
        None => match settings.function.local_key_ring()? {
            Some(keys) => KeySource::Static(keys),
            None => anyhow::bail!(
                "no keys configured: set WKP1_KEYS_SECRET (Secrets Manager), \
                 WKP1_KEYS_PARAMETER (SSM), WKP1_KEYS or WKP1_KEYS_FILE"
            ),
        },
    };
    let function = LambdaFunction::new(store, config, keys).await?;
    tracing::info!(
        bucket = %settings.bucket,
        prefix = %settings.function.prefix,
        presign = settings.presign,
        "wkp1-lambda ready"
    );
    Ok(function)
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // CloudWatch adds its own timestamps and shows no colours.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time();
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
