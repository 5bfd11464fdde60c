//! The client against a function stand-in that misbehaves on purpose: 503s, 429 with
//! Retry-After, hangs, refusals that must not be retried, and a 413 that switches to parts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::json;
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};
use wkp1_client::{Client, ClientConfig, ClientError, SegmentFile};
use wkp1_protocol::manifest::{Limits, RestorePlan, Retention};
use wkp1_protocol::segment::{SegmentHeader, encode_segment};
use wkp1_protocol::signing::Verifier;
use wkp1_protocol::{Clock, ErrorCode, KeyId, KeyRing, Secret, Subtree};

const PLAN_PATH: &str = "/base/v1/restore/kv/orders/replica-0";

fn secret() -> Secret {
    Secret::from_bytes(vec![7; 32]).unwrap()
}

/// A client whose clock ticks one second per reading, so every attempt is signed anew.
fn client(server: &MockServer, io_timeout: Duration) -> Client {
    let url = format!("{}/base", server.uri()).parse().unwrap();
    let mut config = ClientConfig::new(
        url,
        Subtree::new("kv", "orders", "replica-0").unwrap(),
        KeyId::new("k1").unwrap(),
        secret(),
    );
    let tick = Arc::new(AtomicU64::new(1_767_225_600));
    config.clock = Clock::from_fn(move || tick.fetch_add(1, Ordering::SeqCst));
    config.retry.min_delay = Duration::from_millis(10);
    config.retry.max_delay = Duration::from_millis(50);
    config.retry.max_retries = 3;
    config.request_timeout = io_timeout;
    config.io_timeout = io_timeout;
    Client::new(config).unwrap()
}

fn limits(max_inline_bytes: u64) -> Limits {
    Limits {
        max_inline_bytes,
        max_response_bytes: 1 << 20,
        max_segment_bytes: 1 << 30,
        max_parts: 100,
        presign_upload: false,
        presign_download: false,
    }
}

fn plan() -> serde_json::Value {
    let plan = RestorePlan {
        wkp_version: "1.0".into(),
        subtree: Subtree::new("kv", "orders", "replica-0").unwrap(),
        manifest_version: 0,
        generation: 1,
        claimed: true,
        previous_writer_closed: true,
        last_seq: 0,
        chain: vec![],
        superseded: vec![],
        limits: limits(1 << 20),
        retention: Retention { grace_seconds: 3600 },
        valid_until: 1_767_229_200,
    };
    serde_json::to_value(plan).unwrap()
}

fn error(code: &str) -> serde_json::Value {
    json!({"error": {"code": code, "message": "injected"}})
}

/// Every request the stand-in saw must verify under the client's key, at its own timestamp.
fn assert_all_signed(requests: &[Request]) {
    let mut ring = KeyRing::new();
    ring.insert(KeyId::new("k1").unwrap(), secret());
    let verifier = Verifier::new(ring);
    for r in requests {
        let mut headers = HeaderMap::new();
        for (name, value) in &r.headers {
            headers.append(
                HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(),
                HeaderValue::from_bytes(value.as_bytes()).unwrap(),
            );
        }
        let timestamp: u64 = headers["wkp-timestamp"].to_str().unwrap().parse().unwrap();
        let wkp_path = r.url.path().strip_prefix("/base").unwrap();
        let method: Method = r.method.as_str().parse().unwrap();
        let auth = verifier
            .verify(&method, wkp_path, r.url.query().unwrap_or(""), &headers, timestamp)
            .unwrap();
        auth.check_body(&Sha256::digest(&r.body).into()).unwrap();
    }
}

#[tokio::test]
async fn retries_503_with_a_fresh_signature_each_time() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PLAN_PATH))
        .respond_with(ResponseTemplate::new(503).set_body_json(error("store_unavailable")))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(PLAN_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(plan()))
        .mount(&server)
        .await;
    let got = client(&server, Duration::from_secs(5)).plan(true).await.unwrap();
    assert_eq!(got.generation, 1);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    let stamps: std::collections::HashSet<_> =
        requests.iter().map(|r| r.headers["wkp-timestamp"].to_str().unwrap().to_owned()).collect();
    assert_eq!(stamps.len(), 3, "each attempt is signed with a new timestamp");
    assert_all_signed(&requests);
    assert!(requests.iter().all(|r| r.url.query() == Some("claim=true")));
}

#[tokio::test]
async fn does_not_retry_a_refusal() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(409).set_body_json(error("generation_fenced")))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.wkp");
    std::fs::write(&path, encode_segment(SegmentHeader::delta(0, 1), b"x").unwrap()).unwrap();
    let segment = SegmentFile::open(&path).await.unwrap();
    let err = client(&server, Duration::from_secs(5)).persist(3, &segment).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::GenerationFenced));
    assert!(matches!(err, ClientError::Refused { status: 409, .. }));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].headers["wkp-generation"], "3");
    assert_eq!(requests[0].body, std::fs::read(&path).unwrap());
    assert_all_signed(&requests);
}

#[tokio::test]
async fn honours_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(error("rate_limited")),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(plan()))
        .mount(&server)
        .await;
    let started = Instant::now();
    client(&server, Duration::from_secs(5)).plan(false).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "waited only {:?}", started.elapsed());
}

#[tokio::test]
async fn a_hanging_function_fails_within_the_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(plan()).set_delay(Duration::from_secs(30)),
        )
        .mount(&server)
        .await;
    let started = Instant::now();
    let err = client(&server, Duration::from_millis(300)).plan(false).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(matches!(err, ClientError::Transport { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        4,
        "first attempt and three retries"
    );
}

#[tokio::test]
async fn a_413_with_limits_switches_to_parts_then_commits() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.wkp");
    let payload: Vec<u8> =
        (0..50_000u32).flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()).collect();
    std::fs::write(&path, encode_segment(SegmentHeader::snapshot(9), &payload).unwrap()).unwrap();
    let segment = SegmentFile::open(&path).await.unwrap();
    let size = segment.descriptor.size;
    let id = segment.descriptor.id.to_hex();
    let inline_limit = 64 << 10;
    Mock::given(method("POST"))
        .and(query_param("commit", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "wkp_version": "1.0", "outcome": "committed", "manifest_version": 2, "generation": 1,
            "last_seq": 9, "chain_length": 1, "chain_bytes": size, "snapshot_advised": false,
            "writer_closed": false, "limits": limits(inline_limit)})))
        .mount(&server)
        .await;
    Mock::given(method("POST")).and(query_param("segment", id.as_str()))
        .respond_with(|r: &Request| {
            let offset: u64 = r.url.query_pairs().find(|(k, _)| k == "offset").unwrap().1.parse().unwrap();
            ResponseTemplate::new(200).set_body_json(json!({"wkp_version": "1.0", "segment": r.url.query_pairs().find(|(k, _)| k == "segment").unwrap().1, "offset": offset, "length": r.body.len(), "already_stored": false}))
        })
        .mount(&server).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(413).set_body_json(json!({"error": {"code": "payload_too_large", "message": "too big", "details": {"limits": limits(inline_limit)}}})))
        .mount(&server).await;

    let response = client(&server, Duration::from_secs(5)).persist(1, &segment).await.unwrap();
    assert_eq!(response.last_seq, 9);
    let requests = server.received_requests().await.unwrap();
    assert_all_signed(&requests);
    let bytes = std::fs::read(&path).unwrap();
    let mut parts: Vec<(u64, Vec<u8>)> = requests
        .iter()
        .filter(|r| r.url.query().is_some_and(|q| q.contains("offset=")))
        .map(|r| {
            (
                r.url.query_pairs().find(|(k, _)| k == "offset").unwrap().1.parse().unwrap(),
                r.body.clone(),
            )
        })
        .collect();
    parts.sort();
    assert_eq!(parts.len() as u64, size.div_ceil(inline_limit));
    assert!(parts.iter().all(|(_, body)| body.len() as u64 <= inline_limit));
    assert_eq!(
        parts.iter().flat_map(|(_, b)| b.clone()).collect::<Vec<u8>>(),
        bytes,
        "parts reassemble the segment"
    );
    let commit =
        requests.iter().find(|r| r.url.query().is_some_and(|q| q.contains("commit=true"))).unwrap();
    let body: serde_json::Value = serde_json::from_slice(&commit.body).unwrap();
    assert_eq!(body["segment"]["id"], id);
    assert_eq!(
        body["parts"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        size
    );
}
