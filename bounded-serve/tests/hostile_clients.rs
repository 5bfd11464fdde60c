//! Each bound of `bounded_serve::serve`, tried by a hostile client on raw TCP while an ordinary
//! client is served beside it (issue 11, "Hostile clients").

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::routing::{get, post};
use bounded_serve::Limits;
use bounded_serve::testing::{self, exchange, trickle};
use tokio::sync::{Notify, oneshot};

/// The crate's tight limits, with a head limit small enough to trip with a few headers.
const TIGHT: Limits = Limits { max_header_bytes: 2048, ..testing::TIGHT };

struct Server {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Told when the `/wait` handler starts waiting.
    entered: Arc<Notify>,
    /// Wakes the `/wait` handler.
    release: Arc<Notify>,
}

async fn start(limits: Limits) -> Server {
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let router = Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route("/echo", post(|body: Bytes| async move { body.len().to_string() }))
        .route(
            "/wait",
            get({
                let (entered, release) = (entered.clone(), release.clone());
                move || async move {
                    entered.notify_one();
                    release.notified().await;
                    "released"
                }
            }),
        )
        .layer(DefaultBodyLimit::max(1 << 20));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel();
    let served = tokio::spawn(bounded_serve::serve(listener, router, limits, async move {
        let _ = stopped.await;
    }));
    Server { address, stop: Some(stop), served, entered, release }
}

fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n").into_bytes()
}

/// An ordinary client: one request at full speed, answered 200.
async fn served(server: &Server) -> bool {
    let answer = exchange(server.address, &get_request("/")).await;
    testing::status(&answer) == Some(200) && testing::body(&answer) == "ok"
}

/// Forty clients each sending their request head one byte every 100 ms: every one is dropped
/// once the 1 s header timeout runs out (not before, and well before they finish), and an
/// ordinary client is served meanwhile.
#[tokio::test]
async fn slow_headers_are_dropped_at_the_header_timeout_while_others_are_served() {
    let server = start(TIGHT).await;
    let head = b"GET / HTTP/1.1\r\nhost: test\r\nx-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let clients: Vec<_> = (0..40)
        .map(|_| {
            tokio::spawn(trickle(
                server.address,
                Vec::new(),
                head.to_vec(),
                Duration::from_millis(100),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(served(&server).await, "an ordinary client was not served beside slow ones");
    for client in clients {
        let dropped = client.await.unwrap();
        assert!(dropped.sent < head.len(), "a slow client got its whole head in: {dropped:?}");
        assert!(
            dropped.after >= Duration::from_millis(900) && dropped.after < Duration::from_secs(3),
            "dropped after {:?}, the header timeout is 1 s",
            dropped.after
        );
    }
}

/// A connection that sends nothing at all holds no slot for longer than the header timeout.
#[tokio::test]
async fn idle_connections_are_closed_at_the_header_timeout() {
    let server = start(TIGHT).await;
    let dropped = trickle(server.address, Vec::new(), Vec::new(), Duration::from_millis(100)).await;
    assert!(dropped.after < Duration::from_secs(3), "idle for {:?}", dropped.after);
    assert!(served(&server).await);
}

#[tokio::test]
async fn oversized_headers_are_answered_431_and_others_are_served() {
    let server = start(TIGHT).await;
    let big = format!(
        "GET / HTTP/1.1\r\nhost: test\r\nx-big: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(4096)
    );
    let answer = exchange(server.address, big.as_bytes()).await;
    assert_eq!(testing::status(&answer), Some(431), "{}", String::from_utf8_lossy(&answer));
    // Just under the limit is fine.
    let fits = format!(
        "GET / HTTP/1.1\r\nhost: test\r\nx-big: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(1500)
    );
    assert_eq!(testing::status(&exchange(server.address, fits.as_bytes()).await), Some(200));
    assert!(served(&server).await);
}

/// A body trickling at 10 bytes/s against a floor of 100 bytes/s is cut after one 1 s window
/// with a 408 that says why, and the connection is closed.
#[tokio::test]
async fn trickling_bodies_are_answered_408_and_closed() {
    let server = start(TIGHT).await;
    let head = b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 1000\r\n\r\n";
    let body = vec![b'x'; 1000];
    let clients: Vec<_> = (0..10)
        .map(|_| {
            tokio::spawn(trickle(
                server.address,
                head.to_vec(),
                body.clone(),
                Duration::from_millis(100),
            ))
        })
        .collect();
    assert!(served(&server).await);
    for client in clients {
        let dropped = client.await.unwrap();
        assert_eq!(dropped.status(), Some(408), "{}", String::from_utf8_lossy(&dropped.answer));
        let message = testing::body(&dropped.answer);
        assert!(message.contains("read request body: fewer than 100 bytes arrived"), "{message}");
        assert!(dropped.after < Duration::from_secs(3), "cut after {:?}", dropped.after);
        assert!(dropped.sent < body.len() / 2, "{} of {} bytes went in", dropped.sent, body.len());
    }
}

/// A body that comes at full speed, as large as the router allows, is read whole.
#[tokio::test]
async fn fast_bodies_are_read_whole() {
    let server = start(TIGHT).await;
    let body = vec![b'x'; 1 << 20];
    let mut request = format!(
        "POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let answer = exchange(server.address, &request).await;
    assert_eq!(testing::status(&answer), Some(200));
    assert_eq!(testing::body(&answer), (1 << 20).to_string());
}

/// At the cap a new connection is told 503 at once; when the held ones close, new clients are
/// served again.
#[tokio::test]
async fn connections_over_the_cap_are_answered_503_until_others_close() {
    let server = start(Limits { max_connections: 4, ..TIGHT }).await;
    let (held, answer) = testing::hold_until_refused(server.address, 4, || get_request("/")).await;
    assert_eq!(testing::status(&answer), Some(503), "{}", String::from_utf8_lossy(&answer));
    assert!(testing::body(&answer).contains("too many connections"), "{answer:?}");
    drop(held);
    // The server frees the slots when it sees the clients hang up.
    let mut tries = 0;
    while !served(&server).await {
        tries += 1;
        assert!(tries < 100, "still refused after the held connections closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Handlers see who connected, as `axum::serve` with connect info provided it.
#[tokio::test]
async fn handlers_see_the_peer_address() {
    let server = start(TIGHT).await;
    let answer = exchange(server.address, &get_request("/peer")).await;
    assert!(testing::body(&answer).starts_with("127.0.0.1:"), "{answer:?}");
}

/// After the shutdown signal no connection is accepted, and the request in flight still gets
/// its answer before `serve` returns.
#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish() {
    let mut server = start(TIGHT).await;
    let address = server.address;
    let in_flight = tokio::spawn(async move { exchange(address, &get_request("/wait")).await });
    server.entered.notified().await;
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!server.served.is_finished(), "serve returned with a request in flight");
    assert!(tokio::net::TcpStream::connect(server.address).await.is_err(), "still accepting");
    server.release.notify_one();
    let answer = in_flight.await.unwrap();
    assert_eq!(testing::body(&answer), "released");
    tokio::time::timeout(Duration::from_secs(5), server.served).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn limits_that_refuse_everyone_are_refused() {
    for limits in [
        Limits { max_connections: 0, ..TIGHT },
        Limits { max_header_bytes: 10, ..TIGHT },
        Limits { body_timeout: Duration::ZERO, ..TIGHT },
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err =
            bounded_serve::serve(listener, Router::new(), limits, async {}).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{limits:?}");
    }
}
