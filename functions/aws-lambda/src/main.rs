//! `wkp1-lambda`, the Lambda bootstrap: configuration from the environment, then one event
//! at a time through [`LambdaFunction`].

use std::sync::Arc;

use lambda_http::{Request, service_fn};
use wkp1_aws_lambda::keys;
use wkp1_aws_lambda::settings::Settings;
use wkp1_aws_lambda::{LambdaFunction, s3_client};
use wkp1_aws_s3::S3Store;
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
    // CloudWatch adds its own timestamps and shows no colours.
    weftkit_logging::init(settings.log_format, weftkit_logging::Timestamps::Host);
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
    let probe = std::time::Instant::now();
    if let Atomicity::NotAtomic { winners } = probe_create_only(&store, &config.prefix).await? {
        tracing::warn!(winners, bucket = %settings.bucket, "{NOT_ATOMIC_WARNING}");
    }
    let keys = keys::source(settings, &sdk)?;
    let function = LambdaFunction::new(store, config, keys).await?;
    tracing::info!(
        bucket = %settings.bucket,
        prefix = %settings.function.prefix,
        presign = settings.presign,
        probe_ms = probe.elapsed().as_millis() as u64,
        "wkp1-lambda ready"
    );
    Ok(function)
}
