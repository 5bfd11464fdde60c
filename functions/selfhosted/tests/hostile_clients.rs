//! Clients that try to hold the function: slow and idle connections, oversized heads and
//! bodies, too many connections, deeply nested JSON. Each gets a clear answer (or is dropped
//! at its timeout), nothing is stored, and an engine persisting and restoring beside them is
//! served (issue 11, "Hostile clients").

use std::time::Duration;

use bounded_serve::testing::{self, TIGHT, exchange, trickle};
use wkp1_protocol::segment::SegmentHeader;
use wkp1_protocol::{Endpoint, ErrorBody};
use wkp1_selfhosted::Limits;
use wkp1_testkit::{Backend, Raw, Server, noise, segment};

async fn start(limits: Limits) -> Server {
    Server::start_limited(Backend::memory().unwrap(), limits, |c| {
        c.limits.max_inline_bytes = 64 << 10;
        c.part_size = 16 << 10;
    })
    .await
}

/// The request line and headers of `raw`, as sent on the wire; `length` None sends the body
/// chunked.
fn head(raw: &Raw, length: Option<usize>) -> Vec<u8> {
    let target =
        if raw.query.is_empty() { raw.path.clone() } else { format!("{}?{}", raw.path, raw.query) };
    let mut head =
        format!("{} {target} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n", raw.method);
    for (name, value) in &raw.headers {
        head += &format!("{name}: {}\r\n", value.to_str().unwrap());
    }
    match length {
        Some(length) => head += &format!("content-length: {length}\r\n"),
        None => head += "transfer-encoding: chunked\r\n",
    }
    head += "\r\n";
    head.into_bytes()
}

fn error_code(body: &str) -> String {
    serde_json::from_str::<ErrorBody>(body).map(|b| b.error.code.to_string()).unwrap_or_default()
}

/// Persists a snapshot and restores it through the real client: the function still serves.
async fn persist_and_restore(server: &Server, replica: &str, payload: &[u8]) {
    let client = server.client(replica);
    let generation = client.plan(true).await.unwrap().generation;
    let snapshot = segment(SegmentHeader::snapshot(1), payload).await;
    client.persist(generation, &snapshot.file).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let restored = client.restore(false, dir.path()).await.unwrap();
    assert_eq!(restored.plan.last_seq, 1);
    assert_eq!(std::fs::read(&restored.segments[0].path).unwrap(), snapshot.bytes);
}

/// Forty connections trickling request heads and ten trickling a signed segment, one byte
/// every 100 ms: the heads are dropped at the 1 s header timeout, the segments get 408 and are
/// not stored, and an engine persists and restores meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_dropped_while_an_engine_persists_and_restores() {
    let server = start(TIGHT).await;
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    let before = server.fingerprint().await;
    let slow_segment = segment(SegmentHeader::snapshot(1), &noise(2000, 1)).await;
    let raw = Raw::for_subtree(Endpoint::Persist, "replica-0", "", slow_segment.bytes.clone())
        .generation(generation)
        .signed(&server);
    let slow_head = head(&raw, Some(slow_segment.bytes.len()));
    let every = Duration::from_millis(100);
    let heads: Vec<_> = (0..40)
        .map(|_| tokio::spawn(trickle(server.address, Vec::new(), slow_head.clone(), every)))
        .collect();
    let bodies: Vec<_> = (0..10)
        .map(|_| {
            tokio::spawn(trickle(
                server.address,
                slow_head.clone(),
                slow_segment.bytes.clone(),
                every,
            ))
        })
        .collect();

    persist_and_restore(&server, "replica-1", b"served beside slow clients").await;

    for dropped in heads {
        let dropped = dropped.await.unwrap();
        assert!(dropped.sent < slow_head.len(), "a slow head got in whole: {dropped:?}");
        assert!(dropped.after < Duration::from_secs(3), "dropped after {:?}", dropped.after);
    }
    for dropped in bodies {
        let dropped = dropped.await.unwrap();
        assert_eq!(dropped.status(), Some(408), "{}", String::from_utf8_lossy(&dropped.answer));
        assert!(testing::body(&dropped.answer).contains("read request body: fewer than"));
        assert!(dropped.sent < slow_segment.bytes.len() / 2, "{} bytes went in", dropped.sent);
    }
    let after = server.fingerprint().await;
    let replica_0 = |f: &std::collections::BTreeMap<String, String>| {
        f.iter()
            .filter(|(k, _)| k.contains("/replica-0/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(replica_0(&before), replica_0(&after), "a cut upload left something behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_answered_431() {
    let server = start(TIGHT).await;
    let raw = Raw::for_subtree(Endpoint::Restore, "replica-0", "", Vec::new())
        .header("x-padding", &"a".repeat(8192))
        .signed(&server);
    let answer = exchange(server.address, &head(&raw, Some(0))).await;
    assert_eq!(testing::status(&answer), Some(431), "{}", String::from_utf8_lossy(&answer));
    persist_and_restore(&server, "replica-0", b"still served").await;
}

/// A body over `max_inline_bytes` without a length up front (chunked) is cut at the limit with
/// 413 `payload_too_large`, and the parts already written are removed. (The body is one byte
/// over, so the server has read all of it when it answers: closing on unread bytes would reset
/// the connection and could lose the answer.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_chunked_body_is_413_and_stores_nothing() {
    let big = segment(SegmentHeader::snapshot(1), &noise(100 << 10, 2)).await;
    let server = Server::start_limited(Backend::memory().unwrap(), TIGHT, |c| {
        c.limits.max_inline_bytes = big.bytes.len() as u64 - 1;
        c.part_size = 16 << 10;
    })
    .await;
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    let before = server.fingerprint().await;
    let raw = Raw::for_subtree(Endpoint::Persist, "replica-0", "", big.bytes.clone())
        .generation(generation)
        .signed(&server);
    let mut request = head(&raw, None);
    for chunk in big.bytes.chunks(8 << 10) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = exchange(server.address, &request).await;
    let body = testing::body(&answer);
    assert_eq!(testing::status(&answer), Some(413), "{}", String::from_utf8_lossy(&answer));
    assert!(body.contains("payload_too_large"), "{body}");
    assert_eq!(before, server.fingerprint().await);
    persist_and_restore(&server, "replica-1", b"still served").await;
}

/// At the cap a new connection is told 503 at once; once the held ones close, the engine is
/// served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_answered_503_until_others_close() {
    let server = start(Limits { max_connections: 3, ..TIGHT }).await;
    let (held, answer) = testing::hold_until_refused(server.address, 3, || {
        let raw = Raw::for_subtree(Endpoint::Restore, "replica-0", "", Vec::new()).signed(&server);
        head(&raw, Some(0))
    })
    .await;
    assert_eq!(testing::status(&answer), Some(503), "{}", String::from_utf8_lossy(&answer));
    assert!(testing::body(&answer).contains("too many connections"));
    drop(held);
    let mut tries = 0;
    loop {
        let raw = Raw::for_subtree(Endpoint::Restore, "replica-0", "", Vec::new()).signed(&server);
        if testing::status(&exchange(server.address, &head(&raw, Some(0))).await) == Some(200) {
            break;
        }
        tries += 1;
        assert!(tries < 100, "still refused after the held connections closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    persist_and_restore(&server, "replica-0", b"served again").await;
}

/// The function's only JSON request body is a commit (at most 1 MiB). Nested 20 000 deep, in
/// a typed field or in one it ignores, it is a 400 that says what is wrong, never a stack
/// overflow: typed fields refuse a nested array at its first level, and serde_json skips an
/// unknown value without recursing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_commit_json_is_400_and_changes_nothing() {
    let server = start(TIGHT).await;
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    let before = server.fingerprint().await;
    let depth = 20_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let query = format!("commit=true&segment={}", "ab".repeat(32));
    for (body, says) in [
        (format!(r#"{{"parts":{nested}}}"#), "invalid type: sequence"),
        (format!(r#"{{"extra":{nested}}}"#), "missing field `segment`"),
    ] {
        let raw = Raw::for_subtree(Endpoint::Persist, "replica-0", &query, body)
            .generation(generation)
            .signed(&server);
        let (status, body) = raw.send(&server).await;
        let body = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 400, "{body}");
        assert_eq!(error_code(&body), "invalid_request", "{body}");
        assert!(
            body.contains("commit body is not a commit request") && body.contains(says),
            "{body}"
        );
    }
    assert_eq!(before, server.fingerprint().await);
    persist_and_restore(&server, "replica-1", b"still served").await;
}
