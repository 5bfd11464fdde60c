//! The HTTP surface: DynamoDB on `POST /`, health and readiness, and the loopback-only admin
//! endpoints of the persistence agent.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::dynamo::sigv4::{self, Credentials};
use crate::dynamo::{DynamoError, Kind, Service};
use crate::persist::{Agent, PersistError};

/// DynamoDB's request size limit.
const MAX_REQUEST_BYTES: usize = 16 << 20;

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// Set once boot (and restore) finished.
    pub service: OnceLock<Arc<Service>>,
    pub agent: Option<Arc<Agent>>,
    pub credentials: Vec<Credentials>,
    ready: AtomicBool,
    /// What the server is doing while not ready: "starting", "restoring", "shutting down".
    phase: Mutex<&'static str>,
}

impl AppState {
    pub fn new(agent: Option<Arc<Agent>>, credentials: Vec<Credentials>) -> Self {
        Self {
            service: OnceLock::new(),
            agent,
            credentials,
            ready: AtomicBool::new(false),
            phase: Mutex::new("starting"),
        }
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    pub fn set_unready(&self, phase: &'static str) {
        *self.phase.lock().expect("phase lock") = phase;
        self.ready.store(false, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// A newer writer owns the subtree. Writes accepted from now on could never be persisted,
    /// so they are refused, and readiness fails so the orchestrator replaces this process.
    pub async fn fence(&self, err: &PersistError) {
        tracing::error!("{err}; refusing writes from now on");
        self.set_unready("fenced");
        if let Some(service) = self.service.get().cloned() {
            let _ = tokio::task::spawn_blocking(move || service.close_writes()).await;
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", post(dynamo))
        .route("/healthz", get(|| async { json_response(StatusCode::OK, json!({"status": "ok"})) }))
        .route("/ready", get(ready))
        .route("/_admin/persist", get(persist_status).post(persist_now))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.is_ready() {
        json_response(StatusCode::OK, json!({"status": "ready"}))
    } else {
        let phase = *state.phase.lock().expect("phase lock");
        json_response(StatusCode::SERVICE_UNAVAILABLE, json!({"status": phase}))
    }
}

fn request_id() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes).to_uppercase()
}

async fn dynamo(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let id = request_id();
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return with_request_id(body_refused(rejection), &id),
    };
    let result = async {
        if !state.credentials.is_empty() {
            sigv4::verify(
                &state.credentials,
                method.as_str(),
                uri.path(),
                uri.query().unwrap_or(""),
                &headers,
                &body,
                std::time::SystemTime::now(),
            )?;
        }
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                DynamoError::new(Kind::UnknownOperation, "the X-Amz-Target header is missing")
            })?
            .to_owned();
        let service = state.service.get().cloned().ok_or_else(|| {
            let phase = *state.phase.lock().expect("phase lock");
            DynamoError::new(Kind::Unavailable, format!("the server is not ready: {phase}"))
        })?;
        tokio::task::spawn_blocking(move || service.call(&target, &body))
            .await
            .map_err(|e| DynamoError::internal(format!("request task: {e}")))?
    }
    .await;
    let response = match result {
        Ok(body) => {
            (StatusCode::OK, [("content-type", "application/x-amz-json-1.0")], body.to_string())
                .into_response()
        }
        Err(err) => err.into_response(),
    };
    with_request_id(response, &id)
}

fn with_request_id(mut response: Response, id: &str) -> Response {
    if let Ok(value) = id.parse() {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    response
}

/// A body the server would not read whole: past DynamoDB's request limit, or cut off.
fn body_refused(rejection: BytesRejection) -> Response {
    if rejection.status() != StatusCode::PAYLOAD_TOO_LARGE {
        let message = format!("read request body: {}", rejection.body_text());
        return DynamoError::new(Kind::Serialization, message).into_response();
    }
    // DynamoError has no 413; SDKs read both the status and the type.
    let body = json!({
        "__type": "com.amazon.coral.validate#ValidationException",
        "message": format!("read request body: larger than the {MAX_REQUEST_BYTES}-byte request limit"),
    });
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [("content-type", "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response()
}

fn admin_allowed(peer: &SocketAddr) -> Result<(), Box<Response>> {
    if peer.ip().is_loopback() {
        return Ok(());
    }
    Err(Box::new(json_response(
        StatusCode::FORBIDDEN,
        json!({"error": "the admin endpoints answer only on loopback"}),
    )))
}

async fn persist_status(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if let Err(refused) = admin_allowed(&peer) {
        return *refused;
    }
    let Some(agent) = &state.agent else {
        return json_response(StatusCode::OK, json!({"mode": "disabled"}));
    };
    let mut status = serde_json::to_value(agent.status()).expect("status serializes");
    if let Some(service) = state.service.get() {
        status["last_seq"] = json!(service.database().last_seq());
    }
    json_response(StatusCode::OK, status)
}

/// Persists now instead of at the next scheduled tick.
async fn persist_now(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if let Err(refused) = admin_allowed(&peer) {
        return *refused;
    }
    let (Some(agent), Some(service)) = (&state.agent, state.service.get()) else {
        return json_response(
            StatusCode::CONFLICT,
            json!({"error": "persistence is disabled or the server is not ready"}),
        );
    };
    match agent.tick(service.database()).await {
        Ok(pushed) => json_response(StatusCode::OK, json!({"pushed": pushed})),
        Err(e) => {
            if matches!(e, PersistError::Fenced { .. }) {
                state.fence(&e).await;
            }
            json_response(StatusCode::BAD_GATEWAY, json!({"error": e.to_string()}))
        }
    }
}
