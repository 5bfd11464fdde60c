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
//! - `testing` (feature `testing`): real servers on loopback over any store, for tests of this
//!   crate and of the crates that test against it.

pub mod settings;
pub mod stores;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
pub use bounded_serve::Limits;
use wkp1_function::store::object_store::ObjectStoreBackend;
use wkp1_function::{Function, Store};

/// The function this server runs.
pub type SelfHosted = Function<ObjectStoreBackend>;

/// Serves `function` on `listener` within `limits` until `shutdown` completes, then lets
/// in-flight requests finish (uploads included).
pub async fn serve<S: Store>(
    listener: tokio::net::TcpListener,
    function: Arc<Function<S>>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, app(function), limits, shutdown).await
}

/// Serves any router like [`serve`] does (bounded clients, TCP_NODELAY, graceful shutdown).
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    bounded_serve::serve(listener, router, limits, shutdown).await
}

/// The HTTP application: `/healthz` and the three WKP-1 endpoints.
pub fn app<S: Store>(function: Arc<Function<S>>) -> Router {
    Router::new().route("/healthz", get(healthz)).fallback(handle).with_state(function)
}

async fn healthz() -> impl IntoResponse {
    ([("content-type", "application/json")], r#"{"status":"ok"}"#)
}

async fn handle<S: Store>(State(function): State<Arc<Function<S>>>, request: Request) -> Response {
    function.handle(request).await.map(Body::new)
}
