//! One invocation: a Function URL (or API Gateway HTTP API) event, decoded by `lambda_http`,
//! through the function core, back as a response `lambda_http` encodes.
//!
//! Bodies are binary both ways: a request body arrives base64-decoded, and a segment response
//! goes out as [`Body::Binary`] (base64 in the response event, `isBase64Encoded: true`), so no
//! byte is ever read as text. JSON answers go out as text.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use lambda_http::{Body, Request, Response};
use tokio::sync::Mutex;
use wkp1_function::{Function, FunctionConfig};
use wkp1_protocol::headers::{JSON_MEDIA_TYPE, SEGMENT_MEDIA_TYPE};
use wkp1_protocol::{ErrorCode, ProtocolError};

use crate::keys::{KeySource, Loaded};
use crate::s3::S3Store;

/// The function of this Lambda instance, kept across warm invocations and rebuilt when the
/// keys rotate.
#[derive(Debug)]
pub struct LambdaFunction {
    store: S3Store,
    config: FunctionConfig,
    keys: KeySource,
    current: Mutex<Current>,
}

#[derive(Debug)]
struct Current {
    function: Arc<Function<S3Store>>,
    loaded: Loaded,
}

impl LambdaFunction {
    /// Reads the keys and builds the function; run once per cold start.
    pub async fn new(
        store: S3Store,
        config: FunctionConfig,
        keys: KeySource,
    ) -> anyhow::Result<Self> {
        let loaded = keys.load().await?;
        let function = build(&store, &config, &loaded)?;
        Ok(Self { store, config, keys, current: Mutex::new(Current { function, loaded }) })
    }

    /// The function to serve with: the cached one, or, once its keys are stale, one with the
    /// keys read again. A failed re-read keeps the cached keys (logged) rather than failing
    /// requests: the keys only change on rotation, and the old ones stay valid through it.
    async fn function(&self) -> Arc<Function<S3Store>> {
        let mut current = self.current.lock().await;
        if self.keys.is_stale(current.loaded.at) {
            match self.keys.load().await {
                Ok(loaded) if loaded.digest == current.loaded.digest => {
                    current.loaded.at = loaded.at;
                }
                Ok(loaded) => match build(&self.store, &self.config, &loaded) {
                    Ok(function) => {
                        tracing::info!(keys = loaded.keys.len(), "key ring rotated");
                        *current = Current { function, loaded };
                    }
                    Err(err) => {
                        tracing::error!("keeping the previous keys: {err:#}");
                        current.loaded.at = loaded.at;
                    }
                },
                Err(err) => {
                    // Try again after another interval, not on every request while the
                    // service is down.
                    tracing::error!("keeping the previous keys: {err:#}");
                    current.loaded.at = std::time::Instant::now();
                }
            }
        }
        current.function.clone()
    }

    /// Serves one request.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let function = self.function().await;
        let (parts, body) = request.into_parts();
        let body = match body {
            Body::Empty => Bytes::new(),
            Body::Text(text) => Bytes::from(text),
            Body::Binary(bytes) => Bytes::from(bytes),
            // `Body` is non-exhaustive; whatever comes later still derefs to its bytes.
            other => Bytes::copy_from_slice(&other),
        };
        let response = function.handle(http::Request::from_parts(parts, Full::new(body))).await;
        let (mut parts, body) = response.into_parts();
        // The Lambda front end sets the length of what it sends, after decoding base64.
        parts.headers.remove(http::header::CONTENT_LENGTH);
        let bytes = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(err) => {
                // A segment stream broke off mid-way: the status line is already decided, so
                // the only honest answer is a failure the client retries.
                tracing::error!("response body failed: {err}");
                let request_id = parts
                    .headers
                    .get(wkp1_protocol::headers::REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let error = ProtocolError::new(
                    ErrorCode::StoreUnavailable,
                    "the segment could not be read from the store; retry",
                )
                .request_id(&request_id);
                parts.status = http::StatusCode::from_u16(error.status())
                    .unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE);
                parts.headers.insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(JSON_MEDIA_TYPE),
                );
                parts
                    .headers
                    .insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
                let body = serde_json::to_string(&error.to_body()).unwrap_or_default();
                return Response::from_parts(parts, Body::Text(body));
            }
        };
        let binary = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(SEGMENT_MEDIA_TYPE.as_bytes()));
        let body = if bytes.is_empty() {
            Body::Empty
        } else if binary {
            Body::Binary(Vec::from(bytes))
        } else {
            match String::from_utf8(Vec::from(bytes)) {
                Ok(text) => Body::Text(text),
                Err(err) => Body::Binary(err.into_bytes()),
            }
        };
        Response::from_parts(parts, body)
    }
}

fn build(
    store: &S3Store,
    config: &FunctionConfig,
    loaded: &Loaded,
) -> anyhow::Result<Arc<Function<S3Store>>> {
    Ok(Arc::new(Function::new(store.clone(), loaded.keys.clone(), config.clone())?))
}
