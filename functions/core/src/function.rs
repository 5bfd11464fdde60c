//! The function: route, authenticate, validate, dispatch, log — for every adapter alike.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::BodyExt;
use rand::Rng;
use tracing::Instrument;
use wkp1_protocol::endpoint::{RestoreQuery, WriteQuery, route};
use wkp1_protocol::signing::{KeyRing, Verifier};
use wkp1_protocol::{Endpoint, ErrorCode, ProtocolError, headers};

use crate::config::{ConfigError, FunctionConfig};
use crate::ctx::Ctx;
use crate::layout::Layout;
use crate::manifests::ManifestCache;
use crate::parts::RequestBody;
use crate::response::{self, ResponseBody};
use crate::store::Store;
use crate::{persist, restore};

/// A WKP-1 function over store `S`. Cheap to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct Function<S> {
    store: Arc<S>,
    verifier: Verifier,
    config: FunctionConfig,
    cache: ManifestCache,
}

impl<S: Store> Function<S> {
    /// Checks the configuration and builds the function.
    pub fn new(store: S, keys: KeyRing, config: FunctionConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let limits = &config.limits;
        if (limits.presign_upload || limits.presign_download) && !store.capabilities().presign {
            return Err(ConfigError::PresignUnsupported);
        }
        if keys.is_empty() {
            return Err(ConfigError::NoKeys);
        }
        Ok(Self {
            store: Arc::new(store),
            verifier: Verifier::new(keys),
            config,
            cache: ManifestCache::new(1024),
        })
    }

    pub fn config(&self) -> &FunctionConfig {
        &self.config
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Serves one request. Never fails: errors become WKP-1 error responses (`ERR-1`).
    pub async fn handle<B: RequestBody>(&self, request: Request<B>) -> Response<ResponseBody> {
        let started = Instant::now();
        let request_id = request
            .headers()
            .get(headers::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
            .map_or_else(|| format!("{:016x}", rand::rng().random::<u64>()), str::to_owned);
        let span = tracing::info_span!(
            "wkp1",
            request_id = %request_id,
            method = %request.method(),
            endpoint = tracing::field::Empty,
            subtree = tracing::field::Empty,
        );
        let bytes_in = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        async move {
            let response = match self.dispatch(request, &request_id).await {
                Ok(response) => response,
                Err(err) => response::error(&err, &request_id),
            };
            let status = response.status().as_u16();
            let bytes_out = response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("0")
                .to_owned();
            let elapsed_ms = started.elapsed().as_millis() as u64;
            if status < 400 {
                tracing::info!(status, bytes_in, bytes_out, elapsed_ms, "request served");
            } else {
                tracing::warn!(status, bytes_in, bytes_out, elapsed_ms, "request refused");
            }
            response
        }
        .instrument(span)
        .await
    }

    /// Serves one request and reads the whole answer, for runtimes that cannot stream one
    /// (AWS Lambda's buffered invocations). A segment that breaks off while it is read becomes
    /// a retryable `store_unavailable` error: no byte was sent yet, so the client is told so
    /// instead of getting a truncated segment.
    pub async fn handle_buffered<B: RequestBody>(&self, request: Request<B>) -> Response<Bytes> {
        let (parts, body) = self.handle(request).await.into_parts();
        match body.collect().await {
            Ok(collected) => Response::from_parts(parts, collected.to_bytes()),
            Err(err) => {
                tracing::error!("response body failed: {err}");
                let request_id = parts
                    .headers
                    .get(headers::REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let error = ProtocolError::new(
                    ErrorCode::StoreUnavailable,
                    "the segment could not be read from the store; retry",
                );
                let (parts, body) = response::error(&error, request_id).into_parts();
                let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                Response::from_parts(parts, bytes)
            }
        }
    }

    async fn dispatch<B: RequestBody>(
        &self,
        request: Request<B>,
        request_id: &str,
    ) -> Result<Response<ResponseBody>, ProtocolError> {
        let (parts, body) = request.into_parts();
        let full_path = parts.uri.path();
        let wkp_path =
            full_path.strip_prefix(self.config.path_prefix.as_str()).unwrap_or(full_path);
        let route = route(wkp_path)?;
        let span = tracing::Span::current();
        span.record("endpoint", route.endpoint.as_str());
        if parts.method != route.endpoint.method() {
            let allow = route.endpoint.method();
            let err = ProtocolError::new(
                ErrorCode::MethodNotAllowed,
                format!("{} accepts only {allow}", route.endpoint),
            )
            .requirement("EP-2")
            .details(serde_json::json!({"allow": allow.as_str()}));
            return Ok(response::method_not_allowed(&err, &allow, request_id));
        }
        let now = self.config.clock.now();
        let query = parts.uri.query().unwrap_or("");
        // Authentication comes before anything else that could touch the store (`AUTH-10`).
        let auth = self.verifier.verify(&parts.method, wkp_path, query, &parts.headers, now)?;
        let subtree = route.validate()?.subtree;
        span.record("subtree", tracing::field::display(&subtree));
        let mut ctx = Ctx {
            store: &self.store,
            config: &self.config,
            cache: &self.cache,
            layout: Layout::new(&self.config.prefix, &subtree),
            subtree,
            auth,
            request_id: request_id.to_owned(),
            now,
            manifest_hint: None,
        };
        match route.endpoint {
            Endpoint::Restore => restore::handle(&ctx, RestoreQuery::parse(query)?, body).await,
            endpoint => {
                let query = WriteQuery::parse(query)?;
                ctx.manifest_hint = persist::manifest_hint(&parts.headers)?;
                persist::handle(&ctx, endpoint, query, &parts.headers, body).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wkp1_protocol::KeyRing;

    use super::*;
    use crate::store::object_store::ObjectStoreBackend;

    #[test]
    fn presigned_limits_need_a_store_that_presigns() {
        let store =
            || ObjectStoreBackend::new(Arc::new(object_store::memory::InMemory::new()), false);
        let keys = KeyRing::parse("k1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        for (upload, download) in [(true, false), (false, true)] {
            let mut config = FunctionConfig::default();
            config.limits.presign_upload = upload;
            config.limits.presign_download = download;
            let err = Function::new(store(), keys.clone(), config).unwrap_err();
            assert!(matches!(err, ConfigError::PresignUnsupported), "{err}");
        }
        assert!(Function::new(store(), keys, FunctionConfig::default()).is_ok());
    }
}
