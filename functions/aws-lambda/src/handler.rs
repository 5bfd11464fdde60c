//! One invocation: a Function URL (or API Gateway HTTP API) event, decoded by `lambda_http`,
//! through the function core, back as a response `lambda_http` encodes.
//!
//! Bodies are binary both ways: a request body arrives base64-decoded, and a segment response
//! goes out as [`Body::Binary`] (base64 in the response event, `isBase64Encoded: true`), so no
//! byte is ever read as text. JSON answers go out as text.

use bytes::Bytes;
use http_body_util::Full;
use lambda_http::{Body, Request, Response};
use wkp1_function::FunctionConfig;
use wkp1_function::rotation::{KeySource, KeysError, RotatingFunction};
use wkp1_protocol::headers::SEGMENT_MEDIA_TYPE;

use crate::keys::Remote;
use wkp1_aws_s3::S3Store;

/// The function of this Lambda instance, kept across warm invocations and rebuilt when the
/// keys rotate.
#[derive(Debug)]
pub struct LambdaFunction(RotatingFunction<S3Store, Remote>);

impl LambdaFunction {
    /// Reads the keys and builds the function; run once per cold start.
    pub async fn new(
        store: S3Store,
        config: FunctionConfig,
        keys: KeySource<Remote>,
    ) -> Result<Self, KeysError> {
        RotatingFunction::new(store, config, keys).await.map(Self)
    }

    /// Serves one request.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let body = match body {
            Body::Empty => Bytes::new(),
            Body::Text(text) => Bytes::from(text),
            Body::Binary(bytes) => Bytes::from(bytes),
            // `Body` is non-exhaustive; whatever comes later still derefs to its bytes.
            other => Bytes::copy_from_slice(&other),
        };
        let request = http::Request::from_parts(parts, Full::new(body));
        let (mut parts, bytes) =
            self.0.function().await.handle_buffered(request).await.into_parts();
        // The Lambda front end sets the length of what it sends, after decoding base64.
        parts.headers.remove(http::header::CONTENT_LENGTH);
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
