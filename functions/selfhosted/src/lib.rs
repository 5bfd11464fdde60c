//! # wkp1-selfhosted
//!
//! The self-hosted WKP-1 function: an axum server around [`wkp1_function::Function`], storing
//! through the `object_store` crate. It is also the long-running sidecar of the `container`
//! deployment mode.
//!
//! # Layout
//!
//! - [`settings`]: flags and environment variables.
//! - [`stores`]: store URLs (`file://`, `s3://`, `memory://`) and the start-up probe that
//!   refuses stores without create-only writes.
//! - [`app`]: the router (`/healthz`, everything else to the function).

pub mod settings;
pub mod stores;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use wkp1_function::Function;
use wkp1_function::store::object_store::ObjectStoreBackend;

/// The function this server runs.
pub type SelfHosted = Function<ObjectStoreBackend>;

/// Serves `function` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish (uploads included).
pub async fn serve(
    listener: tokio::net::TcpListener,
    function: Arc<SelfHosted>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Small JSON answers must not wait for delayed ACKs (Nagle).
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!(%err, "set TCP_NODELAY");
        }
    });
    axum::serve(listener, app(function)).with_graceful_shutdown(shutdown).await
}

/// The HTTP application: `/healthz` and the three WKP-1 endpoints.
pub fn app(function: Arc<SelfHosted>) -> Router {
    Router::new().route("/healthz", get(healthz)).fallback(handle).with_state(function)
}

async fn healthz() -> impl IntoResponse {
    ([("content-type", "application/json")], r#"{"status":"ok"}"#)
}

async fn handle(State(function): State<Arc<SelfHosted>>, request: Request) -> Response {
    function.handle(request).await.map(Body::new)
}
