//! One signed request, and the retry loop around it (`CLI-1`, `CLI-3`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use url::Url;
use wkp1_protocol::manifest::{Limits, PresignedRequest};
use wkp1_protocol::signing::{Signer, sha256_hex};
use wkp1_protocol::{Endpoint, ErrorBody, WkpPath, headers};

use crate::config::{ClientConfig, RetryPolicy};
use crate::error::ClientError;

/// A request body, re-creatable for every attempt.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    Empty,
    Bytes {
        bytes: Bytes,
        media_type: &'static str,
    },
    /// `length` bytes of a file from `offset`, whose SHA-256 is already known.
    File {
        path: PathBuf,
        offset: u64,
        length: u64,
        sha256: String,
    },
}

impl Payload {
    fn sha256_hex(&self) -> String {
        match self {
            Payload::Empty => sha256_hex(b""),
            Payload::Bytes { bytes, .. } => sha256_hex(bytes),
            Payload::File { sha256, .. } => sha256.clone(),
        }
    }

    fn len(&self) -> u64 {
        match self {
            Payload::Empty => 0,
            Payload::Bytes { bytes, .. } => bytes.len() as u64,
            Payload::File { length, .. } => *length,
        }
    }

    fn media_type(&self) -> Option<&'static str> {
        match self {
            Payload::Empty => None,
            Payload::Bytes { media_type, .. } => Some(media_type),
            Payload::File { .. } => Some(headers::SEGMENT_MEDIA_TYPE),
        }
    }

    async fn body(&self) -> Result<reqwest::Body, ClientError> {
        Ok(match self {
            Payload::Empty => reqwest::Body::from(Bytes::new()),
            Payload::Bytes { bytes, .. } => reqwest::Body::from(bytes.clone()),
            Payload::File { path, offset, length, .. } => {
                let mut file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| ClientError::io(format!("open {}", path.display()), e))?;
                file.seek(std::io::SeekFrom::Start(*offset))
                    .await
                    .map_err(|e| ClientError::io(format!("seek {}", path.display()), e))?;
                let reader = file.take(*length);
                reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                    reader,
                    256 << 10,
                ))
            }
        })
    }
}

/// One logical request: retried as a whole, re-signed every time.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) endpoint: Endpoint,
    pub(crate) query: String,
    pub(crate) generation: Option<u64>,
    pub(crate) payload: Payload,
    /// Bytes expected back, to size the timeout of large downloads.
    pub(crate) expect_bytes: u64,
}

impl Call {
    pub(crate) fn new(endpoint: Endpoint, query: String) -> Self {
        Self { endpoint, query, generation: None, payload: Payload::Empty, expect_bytes: 0 }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Transport {
    http: reqwest::Client,
    config: ClientConfig,
    signer: Signer,
    /// The function's limits, as last advertised (`LARGE-1`).
    limits: Arc<Mutex<Option<Limits>>>,
    /// The manifest version of the last answer, sent back as a hint on writes (`PER-3`); 0
    /// until one arrives.
    manifest_version: Arc<AtomicU64>,
}

impl Transport {
    pub(crate) fn new(config: ClientConfig) -> Result<Self, ClientError> {
        if !matches!(config.base_url.scheme(), "http" | "https") {
            return Err(ClientError::Config(format!(
                "base URL {} is not http(s)",
                config.base_url
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.io_timeout)
            .build()
            .map_err(|e| ClientError::Config(format!("build HTTP client: {e}")))?;
        let signer = Signer::new(config.key_id.clone(), config.secret.clone());
        Ok(Self { http, config, signer, limits: Arc::default(), manifest_version: Arc::default() })
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub(crate) fn limits(&self) -> Option<Limits> {
        *self.limits.lock().expect("limits lock")
    }

    pub(crate) fn learn_limits(&self, limits: Limits) {
        *self.limits.lock().expect("limits lock") = Some(limits);
    }

    pub(crate) fn learn_manifest_version(&self, version: u64) {
        self.manifest_version.store(version, Ordering::Relaxed);
    }

    fn url(&self, wkp_path: &str, query: &str) -> Url {
        let mut url = self.config.base_url.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}{wkp_path}"));
        url.set_query((!query.is_empty()).then_some(query));
        url
    }

    /// Sends `call` once; a non-2xx answer becomes [`ClientError::Refused`].
    async fn send_once(&self, call: &Call) -> Result<reqwest::Response, ClientError> {
        let endpoint = call.endpoint.as_str();
        let wkp_path = WkpPath::new(call.endpoint, self.config.subtree.clone()).to_path();
        let method = call.endpoint.method();
        let mut headers = HeaderMap::new();
        if let Some(generation) = call.generation {
            headers.insert(
                HeaderName::from_static(headers::GENERATION),
                HeaderValue::from(generation),
            );
            let hint = self.manifest_version.load(Ordering::Relaxed);
            if hint > 0 {
                headers.insert(
                    HeaderName::from_static(headers::MANIFEST_VERSION),
                    HeaderValue::from(hint),
                );
            }
        }
        self.signer
            .sign(
                &method,
                &wkp_path,
                &call.query,
                &mut headers,
                &call.payload.sha256_hex(),
                self.config.clock.now(),
            )
            .map_err(|e| ClientError::Config(format!("sign request: {e}")))?;
        if let Some(media_type) = call.payload.media_type() {
            headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(media_type));
        }
        if method == Method::POST {
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(call.payload.len()));
        }
        // Large transfers get time in proportion to their size, at a floor of 1 MiB/s.
        let bytes = call.payload.len().max(call.expect_bytes);
        let timeout = self.config.request_timeout + Duration::from_secs(bytes >> 20);
        let response = self
            .http
            .request(method, self.url(&wkp_path, &call.query))
            .headers(headers)
            .timeout(timeout)
            .body(call.payload.body().await?)
            .send()
            .await
            .map_err(|e| transport_error(endpoint, e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(refusal(endpoint, response).await)
    }

    /// Sends `call`, retrying retryable failures with exponential backoff and jitter.
    pub(crate) async fn send(&self, call: &Call) -> Result<reqwest::Response, ClientError> {
        self.retrying(call.endpoint.as_str(), || self.send_once(call)).await
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retry policy gives up.
    pub(crate) async fn retrying<T, F, Fut>(&self, what: &str, attempt: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        attempt
            .retry(backoff(&self.config.retry))
            .sleep(tokio::time::sleep)
            .when(ClientError::is_retryable)
            .adjust(|err, delay| delay.map(|d| err.retry_after().map_or(d, |after| after.max(d))))
            .notify(|err, delay| tracing::warn!(what, ?delay, "retrying after: {err}"))
            .await
    }

    /// Sends a presigned request straight to the object store (`LARGE-4`, `LARGE-7`).
    pub(crate) async fn presigned(
        &self,
        request: &PresignedRequest,
        payload: &Payload,
    ) -> Result<reqwest::Response, ClientError> {
        let what = "presigned";
        let method = Method::from_bytes(request.method.as_bytes())
            .map_err(|_| ClientError::Config(format!("presigned method {:?}", request.method)))?;
        let mut builder = self
            .http
            .request(method, &request.url)
            .timeout(self.config.request_timeout + Duration::from_secs(payload.len() >> 20));
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if !matches!(payload, Payload::Empty) {
            builder = builder.header(http::header::CONTENT_LENGTH, payload.len());
        }
        let response = builder
            .body(payload.body().await?)
            .send()
            .await
            .map_err(|e| transport_error(what, e))?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(response);
        }
        if status == 429 || status >= 500 {
            return Err(ClientError::Transport {
                endpoint: what,
                message: format!(
                    "object store answered HTTP {status} to a presigned {}",
                    request.method
                ),
                retryable: true,
            });
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(ClientError::PresignedRefused {
            endpoint: what,
            method: request.method.clone(),
            status,
            detail: store_error_detail(&body),
        })
    }

    /// Sends `call` and decodes its JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: &Call) -> Result<T, ClientError> {
        let endpoint = call.endpoint.as_str();
        let response = self.send(call).await?;
        let bytes = response.bytes().await.map_err(|e| transport_error(endpoint, e))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Transport {
            endpoint,
            message: format!("answer is not the expected JSON: {e}"),
            retryable: false,
        })
    }
}

/// The `Code` and `Message` of an object store's XML error body (S3, GCS and Azure alike), as
/// `": Code: Message"`, or nothing. Only those two elements: other parts of such bodies (S3's
/// `CanonicalRequest`, for one) repeat the presigned query, credentials included.
fn store_error_detail(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    let element = |name: &str| {
        let start = text.find(&format!("<{name}>"))? + name.len() + 2;
        let end = start + text[start..].find(&format!("</{name}>"))?;
        let value: String = text[start..end].chars().take(200).collect();
        Some(value)
    };
    [element("Code"), element("Message")]
        .into_iter()
        .flatten()
        .fold(String::new(), |out, part| format!("{out}: {part}"))
}

fn transport_error(endpoint: &'static str, err: reqwest::Error) -> ClientError {
    let retryable = err.is_timeout() || err.is_connect() || err.is_request() || err.is_body();
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    ClientError::Transport { endpoint, message, retryable }
}

async fn refusal(endpoint: &'static str, response: reqwest::Response) -> ClientError {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(ErrorBody { error }) => {
            ClientError::Refused { endpoint, status, error: Box::new(error), retry_after }
        }
        Err(_) => ClientError::Transport {
            endpoint,
            message: format!(
                "HTTP {status} without a WKP-1 error body: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
            retryable: status == 429 || status >= 500,
        },
    }
}

/// Exponential backoff with jitter drawn from a fresh seed. backon without its `std` feature
/// seeds every jitter generator alike, so every client of every engine would wait the same
/// delays and a restarted function would meet all its clients' retries at once.
fn backoff(retry: &RetryPolicy) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(retry.min_delay)
        .with_max_delay(retry.max_delay)
        .with_max_times(retry.max_retries)
        .with_total_delay(Some(retry.max_total_delay))
        .with_jitter()
        .with_jitter_seed(rand::random())
}

#[cfg(test)]
mod tests {
    use backon::BackoffBuilder;

    use super::*;

    #[test]
    fn clients_do_not_retry_in_step() {
        let retry = RetryPolicy::default();
        let schedule = || backoff(&retry).build().take(4).collect::<Vec<_>>();
        let (first, second) = (schedule(), schedule());
        assert_eq!(first.len(), 4);
        assert_ne!(first, second, "two clients drew the same jittered delays");
    }
}
