//! The HTTP application of a function served by axum (self-hosted, the sidecar, Cloud Run):
//! `/healthz` for the orchestrator and everything else to [`Function::handle`].

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::{Function, Store};

/// `/healthz` and the three WKP-1 endpoints.
pub fn router<S: Store>(function: Arc<Function<S>>) -> Router {
    Router::new().route("/healthz", get(healthz)).fallback(handle).with_state(function)
}

async fn healthz() -> impl IntoResponse {
    ([("content-type", "application/json")], r#"{"status":"ok"}"#)
}

async fn handle<S: Store>(State(function): State<Arc<Function<S>>>, request: Request) -> Response {
    function.handle(request).await.map(Body::new)
}
