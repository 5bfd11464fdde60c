//! Configuration of the real binary: keys from Secrets Manager (moto's, on loopback) with
//! rotation reaching a warm instance, and start-up errors that name the variable at fault.

#[macro_use]
mod common;

use std::process::Command;
use std::time::Duration;

use common::{S3, client};
use wkp1_client::ClientError;
use wkp1_testkit as testing;
use wkp1_testkit::lambda::LocalLambda;

/// A place the keys are stored, in moto's server.
#[derive(Debug, Clone, Copy)]
enum Store {
    SecretsManager,
    Parameter,
}

impl Store {
    /// The variable that names the place.
    fn variable(self) -> &'static str {
        match self {
            Self::SecretsManager => "WKP1_KEYS_SECRET",
            Self::Parameter => "WKP1_KEYS_PARAMETER",
        }
    }

    /// Creates the place `name` holding `text`, or replaces its text.
    async fn put(self, s3: &S3, name: &str, text: String, create: bool) {
        let sdk = s3.sdk_config();
        match self {
            Self::SecretsManager => {
                let client = aws_sdk_secretsmanager::Client::new(&sdk);
                if create {
                    client.create_secret().name(name).secret_string(text).send().await.unwrap();
                } else {
                    client
                        .put_secret_value()
                        .secret_id(name)
                        .secret_string(text)
                        .send()
                        .await
                        .unwrap();
                }
            }
            Self::Parameter => {
                aws_sdk_ssm::Client::new(&sdk)
                    .put_parameter()
                    .name(name)
                    .value(text)
                    .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                    .overwrite(!create)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

impl Store {
    /// Deletes the place `name`, so the next read of the keys fails.
    async fn delete(self, s3: &S3, name: &str) {
        let sdk = s3.sdk_config();
        match self {
            Self::SecretsManager => {
                aws_sdk_secretsmanager::Client::new(&sdk)
                    .delete_secret()
                    .secret_id(name)
                    .force_delete_without_recovery(true)
                    .send()
                    .await
                    .unwrap();
            }
            Self::Parameter => {
                aws_sdk_ssm::Client::new(&sdk).delete_parameter().name(name).send().await.unwrap();
            }
        }
    }
}

fn key_line(key_id: &str) -> String {
    let secret =
        if key_id == testing::KEY_ID { testing::secret() } else { testing::second_secret() };
    format!("{key_id} {}\n", secret.to_base64())
}

async fn refused_with(url: &str, key_id: &str) -> Option<u16> {
    match client(url, "keys", key_id).plan(false).await {
        Ok(_) => None,
        Err(ClientError::Refused { status, .. }) => Some(status),
        Err(other) => panic!("unexpected failure: {other}"),
    }
}

/// One warm instance whose keys (the first test key only) live in `store` and are re-read
/// every second; it has just accepted that key. Only moto's server speaks Secrets Manager and
/// SSM.
async fn warm_instance_reading(store: &Store) -> Option<(S3, String, LocalLambda)> {
    let s3 = S3::server("moto")?;
    let name = format!("wkp1-keys-{:08x}", rand::random::<u32>());
    store.put(&s3, &name, key_line(testing::KEY_ID), true).await;
    let lambda = s3
        .lambda(
            &[("WKP1_KEYS", ""), (store.variable(), &name), ("WKP1_KEYS_REFRESH_SECONDS", "1")],
            1,
        )
        .await;
    assert_eq!(refused_with(&lambda.url, testing::KEY_ID).await, None);
    Some((s3, name, lambda))
}

async fn rotation_reaches_a_warm_instance(store: Store) {
    let Some((s3, name, mut lambda)) = warm_instance_reading(&store).await else { return };
    assert_eq!(refused_with(&lambda.url, testing::SECOND_KEY_ID).await, Some(401));

    // Rotate: the new key only. The warm instance picks it up after the refresh interval.
    store.put(&s3, &name, key_line(testing::SECOND_KEY_ID), false).await;
    until_accepted(&lambda.url, testing::SECOND_KEY_ID).await;
    assert_eq!(refused_with(&lambda.url, testing::KEY_ID).await, Some(401));
    assert!(lambda.running(), "the same instance served throughout");

    let logs = lambda.logs();
    assert!(logs.contains("key ring rotated"), "{logs}");
    for secret in [testing::secret(), testing::second_secret()] {
        assert!(!logs.contains(&secret.to_base64()), "a secret reached the logs");
    }
}

/// Asks the function until it accepts `key_id`: the rotation is an event, not a moment.
async fn until_accepted(url: &str, key_id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while refused_with(url, key_id).await.is_some() {
        assert!(std::time::Instant::now() < deadline, "{key_id} not accepted after 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_failed_refresh_keeps_the_keys_of_a_warm_instance(store: Store) {
    let Some((s3, name, mut lambda)) = warm_instance_reading(&store).await else { return };

    // The keys' source goes away: every refresh from now on fails. Requests go on meanwhile,
    // and each is served with the keys the instance has.
    store.delete(&s3, &name).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !lambda.logs().contains("keeping the previous keys") {
        assert!(std::time::Instant::now() < deadline, "no failed refresh after 30 s");
        assert_eq!(refused_with(&lambda.url, testing::KEY_ID).await, None);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refused_with(&lambda.url, testing::KEY_ID).await, None, "the keys are kept");
    assert_eq!(refused_with(&lambda.url, testing::SECOND_KEY_ID).await, Some(401));
    assert!(lambda.running(), "the same instance served throughout");
    let logs = lambda.logs();
    assert!(logs.contains(&name), "the failure names the source: {logs}");
    for secret in [testing::secret(), testing::second_secret()] {
        assert!(!logs.contains(&secret.to_base64()), "a secret reached the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_from_secrets_manager_keeps_the_keys_of_a_warm_instance() {
    a_failed_refresh_keeps_the_keys_of_a_warm_instance(Store::SecretsManager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_from_ssm_keeps_the_keys_of_a_warm_instance() {
    a_failed_refresh_keeps_the_keys_of_a_warm_instance(Store::Parameter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_secrets_manager_rotate_into_a_warm_instance() {
    rotation_reaches_a_warm_instance(Store::SecretsManager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_ssm_parameter_store_rotate_into_a_warm_instance() {
    rotation_reaches_a_warm_instance(Store::Parameter).await;
}

/// Starts the binary with the test environment, minus `unset`, plus `set`; it must stop
/// before asking the runtime API for work.
fn start_binary(s3: &S3, unset: Option<&str>, set: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wkp1-lambda"))
        .env_clear()
        .envs(s3.lambda_env(set).into_iter().filter(|(k, _)| Some(k.as_str()) != unset))
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_stops_the_start_naming_what_is_wrong() {
    let Some(s3) = S3::server("moto") else { return };
    // (variable unset, variables set, exit code, what the message must name)
    type Case<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], i32, &'a str);
    let cases: [Case<'_>; 7] = [
        (Some("WKP1_BUCKET"), &[], 2, "WKP1_BUCKET"),
        (None, &[("WKP1_PRESIGN", "sometimes")], 2, "WKP1_PRESIGN"),
        (None, &[("WKP1_KEYS", "")], 1, "WKP1_KEYS_SECRET"),
        (None, &[("WKP1_KEYS", "k1 not-base64!")], 1, "WKP1_KEYS"),
        (
            None,
            &[("WKP1_KEYS", ""), ("WKP1_KEYS_SECRET", "wkp1-no-such-secret")],
            1,
            "wkp1-no-such-secret",
        ),
        (
            None,
            &[("WKP1_KEYS", ""), ("WKP1_KEYS_PARAMETER", "wkp1-no-such-parameter")],
            1,
            "wkp1-no-such-parameter",
        ),
        (
            None,
            &[("WKP1_KEYS_SECRET", "a"), ("WKP1_KEYS_PARAMETER", "b")],
            2,
            "WKP1_KEYS_PARAMETER",
        ),
    ];
    for (unset, set, code, named) in cases {
        let output = start_binary(&s3, unset, set);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{unset:?} {set:?}: {stderr}");
        assert!(stderr.contains(named), "{unset:?} {set:?} must name {named}: {stderr}");
        assert!(!stderr.contains(&testing::secret().to_base64()), "a secret reached the logs");
    }
}
