//! # wkp1-testkit
//!
//! Test support shared by the workspace's tests (a dev-dependency only): a real WKP-1 function
//! on 127.0.0.1 over a chosen store — the core's [`Function`] behind its router and
//! `bounded-serve`, as the self-hosted function serves it — with clients for it, raw signed
//! requests for the negative cases, a fingerprint of the store's contents, and the backend
//! matrix [`for_every_backend!`]. [`lambda`] runs a function binary as AWS Lambda does;
//! [`counting`] counts what a request costs the store.
//!
//! S3 backends come from the test command, which starts real S3-compatible servers and sets
//! `WKP1_TEST_S3_<NAME>=http://127.0.0.1:PORT`. Without them the S3 variants skip, loudly,
//! unless `WKP1_REQUIRE_S3=1` says they must run (the test command sets it). The variants for a
//! user's own MinIO (`WKP1_TEST_S3_ENDPOINT`) are `#[ignore]`d, so the test report counts them
//! as skipped; the test command runs them with `--run-ignored only` when it has one.

pub mod counting;
pub mod lambda;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use bounded_serve::Limits;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use rand::Rng;
use sha2::{Digest, Sha256};
use wkp1_client::{Client, ClientConfig, SegmentFile};
use wkp1_function::router::router;
use wkp1_function::store::object_store::ObjectStoreBackend;
use wkp1_function::store::probe::{Atomicity, probe_create_only};
pub use wkp1_function::store::url::S3Options;
use wkp1_function::store::url::open_with;
use wkp1_function::{Clock, Function, FunctionConfig, Store};
use wkp1_protocol::segment::{SegmentHeader, encode_segment};
use wkp1_protocol::signing::Signer;
use wkp1_protocol::{Endpoint, ErrorBody, KeyId, KeyRing, Secret, Subtree};

/// Why the MinIO variants are ignored; `scripts/test.sh` runs them when it has a MinIO.
pub const MINIO_SKIP: &str = "needs an S3 server of your own at WKP1_TEST_S3_ENDPOINT (MinIO)";

pub const KEY_ID: &str = "k-test";
/// A second key in every test server's ring, for rotation checks.
pub const SECOND_KEY_ID: &str = "k-rotated";

pub fn secret() -> Secret {
    Secret::from_bytes(b"wkp1 test secret, 32 bytes long!".to_vec()).unwrap()
}

pub fn second_secret() -> Secret {
    Secret::from_bytes(b"wkp1 second test secret, rotated".to_vec()).unwrap()
}

/// Where a test's server keeps its data.
#[derive(Debug)]
pub struct Backend {
    pub name: String,
    url: String,
    pub s3: S3Options,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    pub fn memory() -> Option<Self> {
        Some(Self {
            name: "memory".into(),
            url: "memory://".into(),
            s3: S3Options::default(),
            _dir: None,
        })
    }

    pub fn file() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        Some(Self { name: "file".into(), url, s3: S3Options::default(), _dir: Some(dir) })
    }

    /// A local directory another backend may share: two functions over one store.
    pub fn file_at(dir: &std::path::Path) -> Self {
        let url = format!("file://{}", dir.display());
        Self { name: "file".into(), url, s3: S3Options::default(), _dir: None }
    }

    /// The S3 server the test command started as `name`, in a fresh prefix of the test bucket.
    pub fn s3(name: &str) -> Option<Self> {
        let var = format!("WKP1_TEST_S3_{}", name.to_ascii_uppercase());
        let Ok(endpoint) = std::env::var(&var) else {
            if std::env::var("WKP1_REQUIRE_S3").is_ok_and(|v| v == "1") {
                panic!("{var} is not set but WKP1_REQUIRE_S3=1: the {name} server did not start");
            }
            eprintln!("SKIPPED: {var} is not set; run ./scripts/test.sh to test against {name}");
            return None;
        };
        let bucket = std::env::var("WKP1_TEST_S3_BUCKET").unwrap_or_else(|_| "wkp1-test".into());
        let prefix = format!("t{:016x}", rand::rng().random::<u64>());
        let s3 = S3Options {
            endpoint: Some(endpoint),
            access_key_id: Some(
                std::env::var("WKP1_TEST_S3_ACCESS_KEY").unwrap_or_else(|_| "wkp1test".into()),
            ),
            secret_access_key: Some(
                std::env::var("WKP1_TEST_S3_SECRET_KEY")
                    .unwrap_or_else(|_| "wkp1test-secret".into()),
            ),
            region: Some("us-east-1".into()),
            ..S3Options::default()
        };
        Some(Self { name: name.into(), url: format!("s3://{bucket}/{prefix}"), s3, _dir: None })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bucket and the fresh prefix of an S3 backend.
    pub fn bucket_and_prefix(&self) -> Option<(&str, &str)> {
        self.url.strip_prefix("s3://")?.split_once('/')
    }

    /// A user's own S3-compatible server (MinIO), from `WKP1_TEST_S3_ENDPOINT`. The tests that
    /// use it are `#[ignore]`d, so a run without one reports them skipped rather than passed;
    /// run explicitly without one, they fail and say why.
    pub fn minio() -> Self {
        if std::env::var("WKP1_TEST_S3_ENDPOINT").is_err() {
            panic!("{MINIO_SKIP}: it is not set, so this MinIO test cannot run");
        }
        Self::s3("endpoint").expect("WKP1_TEST_S3_ENDPOINT is set")
    }
}

type Fingerprint = Arc<dyn Fn() -> BoxFuture<'static, BTreeMap<String, String>> + Send + Sync>;

/// A running function on 127.0.0.1, stopped when dropped.
pub struct Server {
    pub url: url::Url,
    /// Seconds added to the system clock, for the function and for signing.
    pub skew: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
    pub backend: Backend,
    pub config: FunctionConfig,
    fingerprint: Fingerprint,
    /// What the start-up probe found about racing create-only writes.
    pub atomicity: Atomicity,
    /// Where the server listens.
    pub address: std::net::SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("url", &self.url)
            .field("backend", &self.backend.name)
            .finish()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut FunctionConfig)) -> Self {
        Self::start_custom(backend, configure, |store| store, router).await
    }

    /// A server whose clients are held to `limits` instead of the defaults.
    pub async fn start_limited(
        backend: Backend,
        limits: Limits,
        configure: impl FnOnce(&mut FunctionConfig),
    ) -> Self {
        Self::start_custom_limited(backend, configure, |store| store, router, limits).await
    }

    /// The general form: `wrap_store` may put a broken store around the real one, `route` may
    /// put a broken router around the function (the conformance kit's tests do both).
    pub async fn start_custom<S: Store>(
        backend: Backend,
        configure: impl FnOnce(&mut FunctionConfig),
        wrap_store: impl FnOnce(ObjectStoreBackend) -> S,
        route: impl FnOnce(Arc<Function<S>>) -> Router,
    ) -> Self {
        Self::start_custom_limited(backend, configure, wrap_store, route, Limits::default()).await
    }

    async fn start_custom_limited<S: Store>(
        backend: Backend,
        configure: impl FnOnce(&mut FunctionConfig),
        wrap_store: impl FnOnce(ObjectStoreBackend) -> S,
        route: impl FnOnce(Arc<Function<S>>) -> Router,
        limits: Limits,
    ) -> Self {
        let opened = open_with(&backend.url, &backend.s3).expect("open store");
        let skew = Arc::new(AtomicU64::new(0));
        let clock_skew = skew.clone();
        let mut config = FunctionConfig {
            prefix: opened.prefix.clone(),
            clock: Clock::from_fn(move || {
                wkp1_protocol::signing::unix_now() + clock_skew.load(Ordering::SeqCst)
            }),
            ..FunctionConfig::default()
        };
        configure(&mut config);
        // A test that lowers the inline limit means the default segment limit to follow.
        config.fit_segment_limit();
        let atomicity = probe_create_only(&opened.store, &config.prefix)
            .await
            .expect("store honours create-only writes");
        let mut keys = KeyRing::new();
        keys.insert(KeyId::new(KEY_ID).unwrap(), secret());
        keys.insert(KeyId::new(SECOND_KEY_ID).unwrap(), second_secret());
        let function = Arc::new(
            Function::new(wrap_store(opened.store), keys, config.clone()).expect("valid config"),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let url = format!("http://{address}").parse().unwrap();
        let router = route(function.clone());
        let task = tokio::spawn(async move {
            bounded_serve::serve(listener, router, limits, std::future::pending()).await.unwrap();
        });
        let fingerprint: Fingerprint = Arc::new(move || {
            let function = function.clone();
            Box::pin(async move {
                let store = function.store();
                let prefix = function.config().prefix.clone();
                let mut out = BTreeMap::new();
                for meta in store.list(&prefix).await.unwrap() {
                    let bytes = store.get(&meta.key).await.unwrap().unwrap_or_default();
                    out.insert(meta.key, hex::encode(Sha256::digest(&bytes)));
                }
                out
            })
        });
        Self { url, skew, task, backend, config, fingerprint, atomicity, address }
    }

    pub fn now(&self) -> u64 {
        self.config.clock.now()
    }

    /// Moves the function's clock (and the clients' signing clock) forward.
    pub fn advance(&self, seconds: u64) {
        self.skew.fetch_add(seconds, Ordering::SeqCst);
    }

    pub fn clock(&self) -> Clock {
        let skew = self.skew.clone();
        Clock::from_fn(move || wkp1_protocol::signing::unix_now() + skew.load(Ordering::SeqCst))
    }

    pub fn client(&self, replica: &str) -> Client {
        let mut config = ClientConfig::new(
            self.url.clone(),
            subtree(replica),
            KeyId::new(KEY_ID).unwrap(),
            secret(),
        );
        config.clock = self.clock();
        config.retry.max_retries = 3;
        config.retry.min_delay = std::time::Duration::from_millis(20);
        Client::new(config).unwrap()
    }

    /// Every object under the function's prefix, with the SHA-256 of its bytes.
    pub async fn fingerprint(&self) -> BTreeMap<String, String> {
        (self.fingerprint)().await
    }
}

pub fn subtree(replica: &str) -> Subtree {
    Subtree::new("kv", "orders", replica).unwrap()
}

/// A segment on disk, kept alive with its directory.
#[derive(Debug)]
pub struct TestSegment {
    pub file: SegmentFile,
    pub bytes: Vec<u8>,
    pub payload: Vec<u8>,
    _dir: tempfile::TempDir,
}

pub async fn segment(header: SegmentHeader, payload: &[u8]) -> TestSegment {
    let bytes = encode_segment(header, payload).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("segment.wkp");
    std::fs::File::create(&path).unwrap().write_all(&bytes).unwrap();
    let file = SegmentFile::open(&path).await.unwrap();
    TestSegment { file, bytes, payload: payload.to_vec(), _dir: dir }
}

/// Pseudo-random bytes that compress poorly, so sizes on the wire are predictable (the same
/// bytes the conformance kit sends).
pub use wkp1_conformance::session::noise;

/// A request signed by hand, to be tampered with before sending.
#[derive(Debug)]
pub struct Raw {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Raw {
    pub fn new(
        endpoint: Endpoint,
        replica_path: &str,
        query: &str,
        body: impl Into<Bytes>,
    ) -> Self {
        let path = format!("/v1/{endpoint}/{replica_path}");
        Self {
            method: endpoint.method(),
            path,
            query: query.into(),
            headers: HeaderMap::new(),
            body: body.into(),
        }
    }

    pub fn for_subtree(
        endpoint: Endpoint,
        replica: &str,
        query: &str,
        body: impl Into<Bytes>,
    ) -> Self {
        Self::new(endpoint, &subtree(replica).path(), query, body)
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.insert(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap());
        self
    }

    pub fn generation(self, generation: u64) -> Self {
        self.header("wkp-generation", &generation.to_string())
    }

    /// Signs with the test key at `timestamp`.
    pub fn signed_at(mut self, timestamp: u64) -> Self {
        self.sign_with(KEY_ID, &secret(), timestamp);
        self
    }

    pub fn sign_with(&mut self, key_id: &str, secret: &Secret, timestamp: u64) {
        let signer = Signer::new(KeyId::new(key_id).unwrap(), secret.clone());
        let hash = hex::encode(Sha256::digest(&self.body));
        signer
            .sign(&self.method, &self.path, &self.query, &mut self.headers, &hash, timestamp)
            .unwrap();
    }

    pub fn signed(self, server: &Server) -> Self {
        let now = server.now();
        self.signed_at(now)
    }

    pub async fn send(self, server: &Server) -> (u16, Bytes) {
        let mut url = server.url.clone();
        url.set_path(&self.path);
        url.set_query((!self.query.is_empty()).then_some(self.query.as_str()));
        let response = reqwest::Client::new()
            .request(self.method, url)
            .headers(self.headers)
            .body(self.body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.bytes().await.unwrap())
    }

    /// Sends and returns the status and the error code, if any.
    pub async fn send_for_code(self, server: &Server) -> (u16, Option<String>) {
        let (status, body) = self.send(server).await;
        let code =
            serde_json::from_slice::<ErrorBody>(&body).ok().map(|b| b.error.code.to_string());
        (status, code)
    }
}

/// Declares one `#[tokio::test]` per backend for each listed scenario, all running the same body.
#[macro_export]
macro_rules! for_every_backend {
    ($($scenario:ident),* $(,)?) => {
        $crate::for_every_backend!(@backend memory, $crate::Backend::memory(); $($scenario),*);
        $crate::for_every_backend!(@backend file, $crate::Backend::file(); $($scenario),*);
        $crate::for_every_backend!(@backend moto, $crate::Backend::s3("moto"); $($scenario),*);
        $crate::for_every_backend!(@backend s3s, $crate::Backend::s3("s3s"); $($scenario),*);
        $crate::for_every_backend!(@minio $($scenario),*);
    };
    // Ignored, so a run without MinIO reports them skipped: there is no skipping at run time.
    (@minio $($scenario:ident),*) => {
        mod minio {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs an S3 server of your own at WKP1_TEST_S3_ENDPOINT (MinIO)"]
                async fn $scenario() {
                    super::$scenario($crate::Backend::minio()).await;
                }
            )*
        }
    };
    (@backend $module:ident, $make:expr; $($scenario:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(backend) = $make {
                        super::$scenario(backend).await;
                    }
                }
            )*
        }
    };
}
