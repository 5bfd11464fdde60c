//! What the Lambda tests share: the S3 servers the test command started, clients for them, and
//! the real `wkp1-lambda` binary behind the local runtime.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use wkp1_client::{Client, ClientConfig};
use wkp1_protocol::{KeyId, KeyRing};
use wkp1_testkit::lambda::LocalLambda;
use wkp1_testkit::{self as testing, Backend};

/// An S3-compatible server on loopback and a fresh prefix of its test bucket.
#[derive(Debug, Clone)]
pub struct S3 {
    pub name: String,
    pub endpoint: String,
    pub bucket: String,
    pub prefix: String,
    access_key_id: String,
    secret_access_key: String,
}

impl S3 {
    /// The server the test command started as `name` (skips, or fails under
    /// `WKP1_REQUIRE_S3=1`, as the self-hosted tests do).
    pub fn server(name: &str) -> Option<Self> {
        let backend = if name == "minio" { Backend::minio() } else { Backend::s3(name)? };
        let (bucket, prefix) = backend.bucket_and_prefix().expect("s3://bucket/prefix");
        Some(Self {
            name: name.into(),
            endpoint: backend.s3.endpoint.clone().expect("endpoint"),
            bucket: bucket.into(),
            prefix: prefix.into(),
            access_key_id: backend.s3.access_key_id.clone().expect("access key"),
            secret_access_key: backend.s3.secret_access_key.clone().expect("secret key"),
        })
    }

    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
                Credentials::new(&self.access_key_id, &self.secret_access_key, None, None, "test"),
            ))
            .build()
    }

    /// An S3 client for this server, as the store crate builds one for S3-compatible servers.
    pub fn client(&self) -> aws_sdk_s3::Client {
        wkp1_aws_s3::compatible_client(&self.endpoint, &self.access_key_id, &self.secret_access_key)
    }

    /// The environment of a `wkp1-lambda` process storing here, keys inline.
    pub fn lambda_env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let keys = keys_text().trim().replace('\n', ";");
        let mut env: Vec<(String, String)> = [
            ("WKP1_BUCKET", self.bucket.as_str()),
            ("WKP1_PREFIX", self.prefix.as_str()),
            ("WKP1_KEYS", keys.as_str()),
            ("WKP1_S3_FORCE_PATH_STYLE", "true"),
            ("WKP1_LOG_FORMAT", "text"),
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", self.access_key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.as_str()),
            ("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required"),
            ("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (name, value) in extra {
            env.retain(|(k, _)| k != name);
            env.push(((*name).to_owned(), (*value).to_owned()));
        }
        env
    }

    /// The real binary behind the local runtime, `instances` warm instances of it.
    pub async fn lambda(&self, extra: &[(&str, &str)], instances: usize) -> LocalLambda {
        LocalLambda::start(
            std::path::Path::new(env!("CARGO_BIN_EXE_wkp1-lambda")),
            &self.lambda_env(extra),
            instances,
        )
        .await
        .unwrap()
    }
}

/// A WKP-1 client of the function at `url`, for replica `replica`.
pub fn client(url: &str, replica: &str, key_id: &str) -> Client {
    let secret =
        if key_id == testing::KEY_ID { testing::secret() } else { testing::second_secret() };
    let mut config = ClientConfig::new(
        url.parse().unwrap(),
        testing::subtree(replica),
        KeyId::new(key_id).unwrap(),
        secret,
    );
    config.request_timeout = Duration::from_secs(60);
    Client::new(config).unwrap()
}

/// The tests' two keys, in the keys-file format.
pub fn keys_text() -> String {
    format!(
        "{} {}\n{} {}\n",
        testing::KEY_ID,
        testing::secret().to_base64(),
        testing::SECOND_KEY_ID,
        testing::second_secret().to_base64()
    )
}

pub fn both_keys() -> KeyRing {
    KeyRing::parse(&keys_text()).unwrap()
}

/// Declares one test per S3 server for each scenario, all running the same body.
#[macro_export]
macro_rules! for_every_s3 {
    ($($scenario:ident),* $(,)?) => {
        $crate::for_every_s3!(@server moto; $($scenario),*);
        $crate::for_every_s3!(@server s3s; $($scenario),*);
        $crate::for_every_s3!(@minio $($scenario),*);
    };
    // Ignored, so a run without MinIO reports them skipped: there is no skipping at run time.
    (@minio $($scenario:ident),*) => {
        mod minio {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs an S3 server of your own at WKP1_TEST_S3_ENDPOINT (MinIO)"]
                async fn $scenario() {
                    let s3 = $crate::common::S3::server("minio").expect("MinIO is configured");
                    super::$scenario(s3).await;
                }
            )*
        }
    };
    (@server $name:ident; $($scenario:ident),*) => {
        mod $name {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(s3) = $crate::common::S3::server(stringify!($name)) {
                        super::$scenario(s3).await;
                    }
                }
            )*
        }
    };
}
