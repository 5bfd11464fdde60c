//! The accept loop: one hyper HTTP/1.1 connection per client, at most
//! [`Limits::max_connections`] at once, with graceful shutdown.
//!
//! `axum::serve` cannot bound the request head's time or size, which is why this loop exists.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use http::{Request, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::Limits;
use crate::body_rate::{MinRateBody, TooSlow};

/// How long a refused connection may take to be told so.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then stops
/// accepting and lets in-flight requests finish. Handlers see the peer as
/// `ConnectInfo<SocketAddr>`; every connection has TCP_NODELAY, so small answers do not wait
/// for delayed ACKs.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    limits.check().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Refusals are cheap but not free: beyond this many at once, excess connections are
    // closed without an answer.
    let refusals = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::warn!(%err, "set TCP_NODELAY");
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "too many connections: refusing one");
            if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse_busy(stream, limits.max_connections).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |request| {
            handle(router.clone(), limits, peer, request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, %err, "connection closed");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn handle(
    router: Router,
    limits: Limits,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response, Infallible> {
    let too_slow =
        TooSlow { min_bytes: limits.min_bytes_per_window(), window: limits.body_timeout };
    let tripped = Arc::new(AtomicBool::new(false));
    let mut request =
        request.map(|body| Body::new(MinRateBody::new(body, too_slow, tripped.clone())));
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = router.oneshot(request).await?;
    if tripped.load(Ordering::SeqCst) {
        tracing::warn!(%peer, "{too_slow}; closing the connection");
        // Whatever the handler made of its failed read, the client is told why.
        return Ok(error(StatusCode::REQUEST_TIMEOUT, &too_slow.to_string()));
    }
    Ok(response)
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = format!(r#"{{"message":{message:?}}}"#);
    (status, [(header::CONTENT_TYPE, "application/json"), (header::CONNECTION, "close")], body)
        .into_response()
}

/// Tells a client over the connection cap to come back later, without reading its request.
async fn refuse_busy(mut stream: TcpStream, max_connections: usize) {
    let body = format!(
        r#"{{"message":"too many connections: this server serves {max_connections} at once; retry later"}}"#
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Closing with the request unread would reset the connection, and the client could
        // lose the answer; read until it hangs up (bounded by REFUSAL_TIME).
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        std::io::Result::Ok(())
    })
    .await;
}

/// Per-connection failures are the client's; anything else (out of file descriptors) is
/// logged and the loop pauses so it does not spin.
async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(err.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(%err, "accept a connection; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
