//! # wkp1-aws-lambda
//!
//! The WKP-1 function on AWS Lambda, behind a Function URL or an API Gateway HTTP API, storing
//! in S3. Everything WKP-1 requires lives in [`wkp1_function`] and the S3 store in
//! [`wkp1_aws_s3`]; this crate is the Lambda trigger, its settings and its keys.
//!
//! # Layout
//!
//! - [`settings`]: environment variables.
//! - [`keys`]: the key ring from the environment, Secrets Manager or SSM (re-read while warm by
//!   the core's `rotation`).
//! - [`handler`]: one event through the core, binary bodies intact both ways.
//!
//! Its tests drive the real binary through the local Lambda runtime of `wkp1-testkit`.

pub mod handler;
pub mod keys;
pub mod settings;

pub use handler::LambdaFunction;

/// An S3 client from the environment (the Lambda's role, region and, for tests,
/// `AWS_ENDPOINT_URL_S3`).
pub fn s3_client(sdk: &aws_config::SdkConfig, force_path_style: bool) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk).force_path_style(force_path_style).build();
    aws_sdk_s3::Client::from_conf(config)
}
