//! Runs a `weftkit-kv` server in-process on loopback, and real DynamoDB clients against it.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials as AwsCredentials, Region};
use weftkit_kv::{Mode, SyncMode};
use weftkit_kv_server::dynamo::sigv4::Credentials;
use weftkit_kv_server::persist::PersistConfig;
use weftkit_kv_server::server::{Exit, ServerConfig, run};

pub const ACCESS_KEY: &str = "AKIDWEFTKITTEST";
pub const SECRET_KEY: &str = "weftkit-test-secret-access-key";

/// A CreateTable request for `table` with a string hash key `pk`, whose attribute definition
/// names `defined` (`"pk"` unless a test wants it wrong); billing mode and more keys are the
/// caller's.
pub fn hash_key_table(
    client: &Client,
    table: &str,
    defined: &str,
) -> aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    client
        .create_table()
        .table_name(table)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(defined)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
}

/// A server running in this process until stopped.
pub struct Engine {
    pub address: SocketAddr,
    pub data: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<Exit>>>,
    _dir: Option<tempfile::TempDir>,
}

pub fn config(data: &Path) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data: data.to_path_buf(),
        mode: Mode::Lsm,
        sync: SyncMode::Buffered,
        region: "us-east-1".into(),
        credentials: Vec::new(),
        persist: None,
        limits: bounded_serve::Limits::default(),
    }
}

pub fn with_credentials(mut config: ServerConfig) -> ServerConfig {
    config.credentials = vec![Credentials {
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
    }];
    config
}

pub fn with_persist(mut config: ServerConfig, persist: PersistConfig) -> ServerConfig {
    config.persist = Some(persist);
    config
}

impl Engine {
    /// A server without persistence on a fresh volume.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut engine = Self::start_with(config(dir.path())).await;
        engine._dir = Some(dir);
        engine
    }

    /// Starts a server and waits until it is ready (or has stopped).
    pub async fn start_with(config: ServerConfig) -> Self {
        let engine = Self::spawn(config).await;
        engine.wait_ready().await;
        engine
    }

    /// Starts a server without waiting for its boot: its HTTP side answers at once.
    pub async fn spawn(config: ServerConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let data = config.data.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(run(config, listener, async move {
            let _ = stopped.await;
        }));
        Self { address, data, stop: Some(stop), task: Some(task), _dir: None }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Waits for `/ready`, or for the server to end (a failed boot).
    pub async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        for _ in 0..600 {
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                return;
            }
            if let Ok(r) = http.get(format!("{}/ready", self.url())).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the server did not become ready");
    }

    /// Whether the server stopped on its own (a failed boot).
    pub fn has_stopped(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Sends the shutdown signal and waits for the exit.
    pub async fn stop(mut self) -> anyhow::Result<Exit> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().unwrap().await.unwrap()
    }

    pub fn client(&self) -> Client {
        client_for(&self.url(), ACCESS_KEY, SECRET_KEY)
    }

    pub async fn admin(&self, method: reqwest::Method) -> serde_json::Value {
        let response = reqwest::Client::new()
            .request(method, format!("{}/_admin/persist", self.url()))
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
    }
}

pub fn client_for(url: &str, access_key: &str, secret_key: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(Region::new("us-east-1"))
        .credentials_provider(AwsCredentials::new(access_key, secret_key, None, None, "test"))
        .build();
    Client::from_conf(config)
}
