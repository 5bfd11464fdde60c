//! Store faults a real server will not produce on demand: 503s, timeouts, a response lost after
//! a successful create-only write, and a concurrent writer winning the manifest race.
//!
//! A wiremock server stands in front of moto's real S3 server and forwards every request,
//! except where a test's rule injects a fault. Each test ends in success or in a clear error,
//! and the committed state is intact either way.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};
use wkp1_protocol::manifest::Outcome;
use wkp1_protocol::segment::SegmentHeader;
use wkp1_protocol::{ErrorCode, SegmentKind};
use wkp1_testkit::{Backend, Server, noise, segment};

/// Builds a competing object's body from the intercepted one.
type MakeBody = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// What to do to a matching request.
#[derive(Clone)]
enum Fault {
    /// Answer with this status without forwarding.
    Status(u16),
    /// Answer 200 after this long, without forwarding: the client times out.
    Hang(Duration),
    /// Forward (the store applies it), then answer only after this long: the response is lost.
    ForwardThenHang(Duration),
    /// First write this body (made from the intercepted one) to the same key, then forward.
    Compete(MakeBody),
    /// Forward without the create-only condition: a store that ignores `If-None-Match`.
    DropCondition,
}

struct Rule {
    method: &'static str,
    path_contains: &'static str,
    remaining: usize,
    fault: Fault,
}

/// Forwards to the real S3 server, applying the first rule that matches.
struct Proxy {
    upstream: String,
    agent: ureq::Agent,
    rules: Mutex<Vec<Rule>>,
    /// (method, path, fault applied?) of every request, for assertions.
    seen: Mutex<Vec<(String, String, bool)>>,
}

impl Proxy {
    fn new(upstream: &str) -> Arc<Self> {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        Arc::new(Self {
            upstream: upstream.to_owned(),
            agent,
            rules: Mutex::default(),
            seen: Mutex::default(),
        })
    }

    fn rule(&self, method: &'static str, path_contains: &'static str, times: usize, fault: Fault) {
        self.rules.lock().unwrap().push(Rule { method, path_contains, remaining: times, fault });
    }

    fn faults_applied(&self) -> usize {
        self.seen.lock().unwrap().iter().filter(|(_, _, fault)| *fault).count()
    }

    fn forward(&self, request: &Request, body: &[u8]) -> ResponseTemplate {
        self.forward_without(request, body, "")
    }

    fn forward_without(
        &self,
        request: &Request,
        body: &[u8],
        drop_header: &str,
    ) -> ResponseTemplate {
        let mut url = format!("{}{}", self.upstream, request.url.path());
        if let Some(query) = request.url.query() {
            url = format!("{url}?{query}");
        }
        let mut builder = http::Request::builder().method(request.method.as_str()).uri(url);
        for (name, value) in &request.headers {
            if name != "host" && name != "content-length" && name.as_str() != drop_header {
                builder = builder.header(name, value);
            }
        }
        let response =
            self.agent.run(builder.body(body.to_vec()).unwrap()).expect("upstream S3 answers");
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(n, _)| {
                !matches!(n.as_str(), "content-length" | "transfer-encoding" | "connection")
            })
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = response.into_body().read_to_vec().unwrap();
        let mut template = ResponseTemplate::new(status).set_body_raw(bytes, &content_type);
        for (name, value) in headers {
            template = template.insert_header(name.as_str(), value.as_str());
        }
        template
    }
}

/// The wiremock responder: a handle on the shared proxy.
struct Forwarder(Arc<Proxy>);

impl Respond for Forwarder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let proxy = &self.0;
        // Rules match the path and query: list requests are `GET /bucket?list-type=2&...`.
        let path = match request.url.query() {
            Some(query) => format!("{}?{query}", request.url.path()),
            None => request.url.path().to_owned(),
        };
        let method = request.method.to_string();
        let fault = proxy
            .rules
            .lock()
            .unwrap()
            .iter_mut()
            .find(|r| r.remaining > 0 && r.method == method && path.contains(r.path_contains))
            .map(|r| {
                r.remaining -= 1;
                r.fault.clone()
            });
        proxy.seen.lock().unwrap().push((method, path, fault.is_some()));
        match fault {
            None => proxy.forward(request, &request.body),
            Some(Fault::Status(status)) => ResponseTemplate::new(status)
                .set_body_string("<Error><Code>SlowDown</Code></Error>"),
            Some(Fault::Hang(delay)) => ResponseTemplate::new(200).set_delay(delay),
            Some(Fault::ForwardThenHang(delay)) => {
                proxy.forward(request, &request.body).set_delay(delay)
            }
            Some(Fault::DropCondition) => {
                proxy.forward_without(request, &request.body, "if-none-match")
            }
            Some(Fault::Compete(make)) => {
                let competitor = http::Request::builder()
                    .method("PUT")
                    .uri(format!("{}{}", proxy.upstream, request.url.path()))
                    .header("if-none-match", "*")
                    .header("content-type", "application/json")
                    .body(make(&request.body))
                    .unwrap();
                let landed = proxy.agent.run(competitor).unwrap().status().as_u16();
                assert_eq!(landed, 200, "the competing write lands first");
                proxy.forward(request, &request.body)
            }
        }
    }
}

/// The S3 client's timeout in the timeout tests: far above what a request to a busy shared
/// moto takes, so only the injected hangs time out.
const STORE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an injected hang lasts: well past the timeout, so it always fires.
const HANG: Duration = Duration::from_secs(10);

/// A server whose S3 store sits behind the proxy, with a short S3 timeout and few retries.
async fn proxied(timeout: Duration) -> Option<(Server, Arc<Proxy>, MockServer)> {
    let mut backend = Backend::s3("moto")?;
    let upstream = backend.s3.endpoint.clone().unwrap();
    let proxy = Proxy::new(&upstream);
    let mock = MockServer::start().await;
    Mock::given(any()).respond_with(Forwarder(proxy.clone())).mount(&mock).await;
    backend.s3.endpoint = Some(mock.uri());
    backend.s3.timeout = Some(timeout);
    backend.s3.max_retries = Some(3);
    let server = Server::start(backend).await;
    Some((server, proxy, mock))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_503s_on_put_are_retried_to_success() {
    let Some((server, proxy, _mock)) = proxied(Duration::from_secs(5)).await else { return };
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    proxy.rule("PUT", "/segments/", 2, Fault::Status(503));
    proxy.rule("PUT", "/manifest/", 1, Fault::Status(503));
    let snap = segment(SegmentHeader::snapshot(4), &noise(50_000, 1)).await;
    let response = client.persist(generation, &snap.file).await.unwrap();
    assert_eq!(response.outcome, Outcome::Committed);
    assert_eq!(proxy.faults_applied(), 3);
    let plan = client.plan(false).await.unwrap();
    assert_eq!((plan.last_seq, plan.chain.len()), (4, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_that_keeps_failing_gives_a_clear_503_and_keeps_the_committed_state() {
    let Some((server, proxy, _mock)) = proxied(Duration::from_secs(5)).await else { return };
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    client
        .persist(generation, &segment(SegmentHeader::snapshot(1), b"committed").await.file)
        .await
        .unwrap();
    proxy.rule("PUT", "/manifest/", usize::MAX, Fault::Status(503));
    let err = client
        .persist(generation, &segment(SegmentHeader::delta(1, 2), b"next").await.file)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::StoreUnavailable), "{err}");
    assert!(!err.to_string().contains("127.0.0.1"), "store internals leaked: {err}");
    proxy.rules.lock().unwrap().clear();
    let plan = client.plan(false).await.unwrap();
    assert_eq!((plan.last_seq, plan.generation), (1, generation));
    // Once the store recovers, the same persist goes through.
    let retried = client
        .persist(generation, &segment(SegmentHeader::delta(1, 2), b"next").await.file)
        .await
        .unwrap();
    assert_eq!(retried.last_seq, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_timeouts_on_get_are_retried_to_success() {
    let Some((server, proxy, _mock)) = proxied(STORE_TIMEOUT).await else { return };
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    let snap = segment(SegmentHeader::snapshot(9), &noise(10_000, 2)).await;
    client.persist(generation, &snap.file).await.unwrap();
    // Manifests are cached once read, so the listing is what a restore reads from the store.
    proxy.rule("GET", "list-type=2", 2, Fault::Hang(HANG));
    proxy.rule("GET", "/segments/", 1, Fault::Hang(HANG));
    let dir = tempfile::tempdir().unwrap();
    let restored = client.restore(false, dir.path()).await.unwrap();
    assert_eq!(restored.segments.len(), 1);
    assert_eq!(std::fs::read(&restored.segments[0].path).unwrap(), snap.bytes);
    assert!(proxy.faults_applied() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_response_after_a_successful_create_only_put_is_resolved() {
    let Some((server, proxy, _mock)) = proxied(STORE_TIMEOUT).await else { return };
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    // The part and the manifest both land, but their answers never arrive: the S3 client
    // retries, finds the objects present, and the function must recognise its own writes.
    proxy.rule("PUT", "/segments/", 1, Fault::ForwardThenHang(HANG));
    proxy.rule("PUT", "/manifest/", 1, Fault::ForwardThenHang(HANG));
    let snap = segment(SegmentHeader::snapshot(5), &noise(30_000, 3)).await;
    let response = client.persist(generation, &snap.file).await.unwrap();
    assert_eq!(response.outcome, Outcome::Committed);
    assert_eq!(proxy.faults_applied(), 2);
    let plan = client.plan(false).await.unwrap();
    assert_eq!((plan.manifest_version, plan.last_seq), (response.manifest_version, 5));
    let manifests = server.fingerprint().await.keys().filter(|k| k.contains("/manifest/")).count();
    assert_eq!(manifests as u64, plan.manifest_version, "one manifest per version, none doubled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claim_winning_the_manifest_race_fences_the_commit() {
    let Some((server, proxy, _mock)) = proxied(Duration::from_secs(5)).await else { return };
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    client
        .persist(generation, &segment(SegmentHeader::snapshot(10), b"base").await.file)
        .await
        .unwrap();
    // Between the function's read of the manifest and its write, a new task claims: its
    // manifest takes the very version number this commit was about to write.
    let claim = Arc::new(|ours: &[u8]| {
        let mut m: serde_json::Value = serde_json::from_slice(ours).unwrap();
        let chain = m["chain"].as_array().unwrap().clone();
        m["chain"] = serde_json::Value::Array(chain[..chain.len() - 1].to_vec());
        m["last_seq"] = 10.into();
        m["generation"] = (m["generation"].as_u64().unwrap() + 1).into();
        m["put_id"] = "competing-claim".into();
        serde_json::to_vec(&m).unwrap()
    });
    proxy.rule("PUT", "/manifest/", 1, Fault::Compete(claim));
    let late = segment(SegmentHeader::delta(10, 11), b"lost the race").await;
    let err = client.persist(generation, &late.file).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::GenerationFenced), "{err}");
    let plan = client.plan(false).await.unwrap();
    assert_eq!((plan.generation, plan.last_seq), (generation + 1, 10));
    assert_eq!(plan.chain.len(), 1);
    assert_eq!(plan.chain[0].segment.kind, SegmentKind::Snapshot);
    assert_eq!(plan.superseded.len(), 1, "the fenced writer's data is kept");
    assert_eq!(plan.superseded[0].segment.id, late.file.descriptor.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_ignores_create_only_writes_is_refused_at_start() {
    let Some(mut backend) = Backend::s3("moto") else { return };
    let proxy = Proxy::new(backend.s3.endpoint.as_deref().unwrap());
    let mock = MockServer::start().await;
    Mock::given(any()).respond_with(Forwarder(proxy.clone())).mount(&mock).await;
    proxy.rule("PUT", ".wkp1-probe", usize::MAX, Fault::DropCondition);
    backend.s3.endpoint = Some(mock.uri());
    let opened = wkp1_function::store::url::open_with(backend.url(), &backend.s3).unwrap();
    let err = wkp1_function::store::probe::probe_create_only(&opened.store, &opened.prefix)
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("If-None-Match") && message.contains("refusing to start"),
        "{message}"
    );
}
