//! A restore that outlives its presigned URLs (`LARGE-7`, `REST-6`): the real function, over a
//! local directory whose presigned GETs expire the way S3's do. Time jumps past the URLs' 15
//! minutes half-way through the restore; the client must fetch a new plan, keep what it already
//! verified, and download only the rest.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::StatusCode;
use wkp1_client::{Client, ClientError};
use wkp1_function::store::object_store::ObjectStoreBackend;
use wkp1_function::store::{ByteStream, Capabilities};
use wkp1_function::{Function, ObjectMeta, PutMode, Store, StoreError};
use wkp1_protocol::manifest::PresignedRequest;
use wkp1_protocol::segment::SegmentHeader;
use wkp1_testkit::{Backend, Server, TestSegment, noise, segment};

/// The presigned "host": serves objects of the store while their URL has not expired.
#[derive(Debug, Default)]
struct Host {
    /// The function server's URL, known once it listens.
    base: OnceLock<String>,
    /// The function server's clock skew: the host reads time from it, and moves it.
    skew: OnceLock<Arc<AtomicU64>>,
    /// After this many objects served, an hour passes at once.
    hour_passes_after: usize,
    /// Refuse every URL, expired or not.
    refuse_all: bool,
    /// Keys served in full, in order.
    served: Mutex<Vec<String>>,
    /// Presigned GETs answered 403.
    refused: AtomicUsize,
}

impl Host {
    fn now(&self) -> u64 {
        wkp1_protocol::signing::unix_now()
            + self.skew.get().expect("skew set").load(Ordering::SeqCst)
    }

    fn served(&self) -> Vec<String> {
        self.served.lock().unwrap().clone()
    }
}

/// A local-directory store that presigns GETs to the [`Host`].
#[derive(Debug)]
struct PresigningStore {
    inner: ObjectStoreBackend,
    host: Arc<Host>,
}

impl Store for PresigningStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.inner.get(key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<ByteStream, StoreError> {
        self.inner.get_range(key, range).await
    }

    async fn put(&self, key: &str, body: Bytes, mode: PutMode) -> Result<(), StoreError> {
        self.inner.put(key, body, mode).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { presign: true, ..self.inner.capabilities() }
    }

    async fn presign_get(
        &self,
        key: &str,
        expires_in_secs: u64,
    ) -> Result<Option<PresignedRequest>, StoreError> {
        let expires_at = self.host.now() + expires_in_secs;
        let base = self.host.base.get().expect("base set");
        Ok(Some(PresignedRequest {
            method: "GET".into(),
            url: format!("{base}/presigned/{key}?expires={expires_at}"),
            headers: Default::default(),
            expires_at,
        }))
    }
}

type Hosted = (Arc<Function<PresigningStore>>, Arc<Host>);

/// Answers like S3 does: 403 `AccessDenied` once the URL expired.
async fn serve_presigned(State((function, host)): State<Hosted>, request: Request) -> Response {
    let key = request.uri().path().trim_start_matches("/presigned/").to_owned();
    let expires: u64 = request
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("expires="))
        .and_then(|e| e.parse().ok())
        .expect("expires in the URL");
    if host.refuse_all || host.now() > expires {
        host.refused.fetch_add(1, Ordering::SeqCst);
        let body = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>\
                    <Message>Request has expired</Message><X-Amz-Expires>900</X-Amz-Expires>\
                    </Error>";
        return (StatusCode::FORBIDDEN, body).into_response();
    }
    let Some(bytes) = function.store().inner.get(&key).await.unwrap() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut served = host.served.lock().unwrap();
    served.push(key);
    if served.len() == host.hour_passes_after {
        host.skew.get().unwrap().fetch_add(3600, Ordering::SeqCst);
    }
    bytes.into_response()
}

/// A function offering presigned downloads over a local directory, and its host.
async fn start(host: Host) -> (Server, Arc<Host>) {
    let host = Arc::new(host);
    let store_host = host.clone();
    let route_host = host.clone();
    let server = Server::start_custom(
        Backend::file().unwrap(),
        |config| config.limits.presign_download = true,
        move |inner| PresigningStore { inner, host: store_host },
        move |function| {
            wkp1_function::router::router(function.clone()).merge(
                Router::new()
                    .route("/presigned/{*key}", get(serve_presigned))
                    .with_state((function, route_host)),
            )
        },
    )
    .await;
    host.base.set(server.url.as_str().trim_end_matches('/').to_owned()).unwrap();
    host.skew.set(server.skew.clone()).unwrap();
    (server, host)
}

/// One segment at a time, so "half-way" is a well-defined point.
fn sequential_client(server: &Server) -> Client {
    let mut config = server.client("replica-0").config().clone();
    config.concurrency = 1;
    Client::new(config).unwrap()
}

/// A snapshot and five deltas, persisted; returned in chain order.
async fn persist_chain(server: &Server) -> Vec<TestSegment> {
    let writer = server.client("replica-0");
    let generation = writer.plan(true).await.unwrap().generation;
    let mut chain = vec![segment(SegmentHeader::snapshot(100), &noise(64 << 10, 1)).await];
    for i in 0..5u64 {
        let header = SegmentHeader::delta(100 + i * 10, 110 + i * 10);
        chain.push(segment(header, &noise(16 << 10, 2 + i)).await);
    }
    for s in &chain {
        writer.persist(generation, &s.file).await.unwrap();
    }
    chain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_outliving_its_urls_resumes_from_a_new_plan_without_downloading_twice() {
    let (server, host) = start(Host { hour_passes_after: 3, ..Host::default() }).await;
    let chain = persist_chain(&server).await;
    let dir = tempfile::tempdir().unwrap();

    let restored = sequential_client(&server).restore(false, dir.path()).await.unwrap();

    // The URLs did expire half-way: one download was refused, and the restore went on.
    assert_eq!(host.refused.load(Ordering::SeqCst), 1, "the fourth segment's URL expired");
    let served = host.served();
    assert_eq!(served.len(), chain.len(), "every segment downloaded once: {served:?}");
    let mut distinct = served.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), served.len(), "a verified segment was downloaded again");
    // The bytes restored are exactly the bytes persisted, in chain order.
    assert_eq!(restored.plan.last_seq, 150);
    assert_eq!(restored.segments.len(), chain.len());
    for (got, want) in restored.segments.iter().zip(&chain) {
        assert_eq!(got.descriptor, want.file.descriptor);
        assert!(std::fs::read(&got.path).unwrap() == want.bytes, "{} differs", got.path.display());
    }
    // Nothing else is left in the download directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), chain.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_whose_urls_never_work_gives_up_after_a_bounded_number_of_plans() {
    let (server, host) = start(Host { refuse_all: true, ..Host::default() }).await;
    persist_chain(&server).await;
    let dir = tempfile::tempdir().unwrap();

    let err = sequential_client(&server).restore(false, dir.path()).await.unwrap_err();

    assert!(matches!(err, ClientError::Integrity(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("gave up after 3 new plans"), "{message}");
    assert!(message.contains("HTTP 403: AccessDenied: Request has expired"), "{message}");
    assert!(!message.contains("expires="), "the URL must stay out of errors: {message}");
    // The first plan and three new ones, each refused once.
    assert_eq!(host.refused.load(Ordering::SeqCst), 4);
    assert!(host.served().is_empty());
}
