//! Clients that try to hold the server: slow and idle connections, oversized heads and bodies,
//! too many connections. Each gets a clear answer (or is dropped at its timeout), nothing is
//! stored, and a DynamoDB client beside them is served (issue 11, "Hostile clients").
//! Nesting depth of attribute values is DynamoDB's own rule, tested with the operations.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as AV;
use bounded_serve::Limits;
use bounded_serve::testing::{self, TIGHT, exchange, trickle};
use common::Engine;

/// A server held to `limits`, with an empty table `items` (created over a connection the
/// client closes after).
async fn start(limits: Limits) -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.limits = limits;
    let engine = Engine::start_with(config).await;
    let table = r#"{"TableName":"items","KeySchema":[{"AttributeName":"pk","KeyType":"HASH"}],"AttributeDefinitions":[{"AttributeName":"pk","AttributeType":"S"}],"BillingMode":"PAY_PER_REQUEST"}"#;
    let answer = exchange(engine.address, &request("CreateTable", table.as_bytes())).await;
    assert_eq!(testing::status(&answer), Some(200), "{}", String::from_utf8_lossy(&answer));
    (engine, dir)
}

/// A raw DynamoDB request (the server runs without credentials, so unsigned).
fn request(operation: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-type: application/x-amz-json-1.0\r\nx-amz-target: DynamoDB_20120810.{operation}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

fn put_item(pk: &str) -> Vec<u8> {
    format!(
        r#"{{"TableName":"items","Item":{{"pk":{{"S":"{pk}"}},"v":{{"S":"{}"}}}}}}"#,
        "x".repeat(500)
    )
    .into_bytes()
}

/// Writes `pk` and reads it back through the AWS SDK: the server still serves.
async fn put_and_get(engine: &Engine, pk: &str) {
    let client = engine.client();
    client.put_item().table_name("items").item("pk", AV::S(pk.into())).send().await.unwrap();
    let got =
        client.get_item().table_name("items").key("pk", AV::S(pk.into())).send().await.unwrap();
    assert_eq!(got.item.unwrap()["pk"], AV::S(pk.into()));
}

async fn keys(engine: &Engine) -> Vec<String> {
    let scan = engine.client().scan().table_name("items").send().await.unwrap();
    let mut keys: Vec<String> =
        scan.items().iter().map(|i| i["pk"].as_s().unwrap().clone()).collect();
    keys.sort();
    keys
}

/// Forty connections trickling request heads and ten trickling a PutItem body, one byte every
/// 100 ms: the heads are dropped at the 1 s header timeout, the bodies get 408 and write
/// nothing, and an SDK client writes and reads meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_dropped_while_an_sdk_client_is_served() {
    let (engine, _dir) = start(TIGHT).await;
    let every = Duration::from_millis(100);
    let put = request("PutItem", &put_item("slow"));
    let split = put.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let (head, body) = (put[..split].to_vec(), put[split..].to_vec());
    let heads: Vec<_> = (0..40)
        .map(|_| tokio::spawn(trickle(engine.address, Vec::new(), put.clone(), every)))
        .collect();
    let bodies: Vec<_> = (0..10)
        .map(|_| tokio::spawn(trickle(engine.address, head.clone(), body.clone(), every)))
        .collect();

    put_and_get(&engine, "served").await;

    for dropped in heads {
        let dropped = dropped.await.unwrap();
        assert!(dropped.sent < split, "a slow head got in whole: {dropped:?}");
        assert!(dropped.after < Duration::from_secs(3), "dropped after {:?}", dropped.after);
    }
    for dropped in bodies {
        let dropped = dropped.await.unwrap();
        assert_eq!(dropped.status(), Some(408), "{}", String::from_utf8_lossy(&dropped.answer));
        assert!(testing::body(&dropped.answer).contains("read request body: fewer than"));
        assert!(dropped.sent < body.len() / 2, "{} bytes went in", dropped.sent);
    }
    assert_eq!(keys(&engine).await, ["served"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_answered_431() {
    let (engine, _dir) = start(TIGHT).await;
    let mut put = request("PutItem", &put_item("big-head"));
    let padding = format!("x-padding: {}\r\n", "a".repeat(8192));
    // After the request line, "POST / HTTP/1.1\r\n".
    put.splice(17..17, padding.into_bytes());
    let answer = exchange(engine.address, &put).await;
    assert_eq!(testing::status(&answer), Some(431), "{}", String::from_utf8_lossy(&answer));
    put_and_get(&engine, "served").await;
    assert_eq!(keys(&engine).await, ["served"]);
}

/// One byte over DynamoDB's 16 MB request limit is a 413 that names the limit. (Exactly one
/// byte over, so the server has read all of it when it answers: closing on unread bytes would
/// reset the connection and could lose the answer.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_request_limit_is_413() {
    let (engine, _dir) = start(TIGHT).await;
    let mut item = put_item("huge");
    let pad = (16 << 20) + 1 - item.len();
    let at = item.len() - 4; // inside the value of "v"
    item.splice(at..at, std::iter::repeat_n(b'x', pad));
    assert_eq!(item.len(), (16 << 20) + 1);
    let answer = exchange(engine.address, &request("PutItem", &item)).await;
    let body = testing::body(&answer);
    assert_eq!(
        testing::status(&answer),
        Some(413),
        "{}",
        String::from_utf8_lossy(&answer[..200.min(answer.len())])
    );
    assert!(
        body.contains("ValidationException") && body.contains("16777216-byte request limit"),
        "{body}"
    );
    put_and_get(&engine, "served").await;
    assert_eq!(keys(&engine).await, ["served"]);
}

/// At the cap a new connection is told 503 at once; once the held ones close, the SDK client
/// is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_answered_503_until_others_close() {
    const CAP: usize = 3;
    let (engine, _dir) = start(Limits { max_connections: CAP, ..TIGHT }).await;
    let (held, answer) =
        testing::hold_until_refused(engine.address, CAP, || request("ListTables", b"{}")).await;
    assert_eq!(testing::status(&answer), Some(503), "{}", String::from_utf8_lossy(&answer));
    assert!(testing::body(&answer).contains("too many connections"));
    drop(held);
    let mut tries = 0;
    while testing::status(&exchange(engine.address, &request("ListTables", b"{}")).await)
        != Some(200)
    {
        tries += 1;
        assert!(tries < 100, "still refused after the held connections closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    put_and_get(&engine, "served").await;
}
