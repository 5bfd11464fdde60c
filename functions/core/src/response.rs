//! Building responses: JSON bodies, segment byte streams, error bodies, common headers.

use bytes::Bytes;
use futures::TryStreamExt;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde::Serialize;
use wkp1_protocol::headers::{JSON_MEDIA_TYPE, SEGMENT_MEDIA_TYPE};
use wkp1_protocol::{ProtocolError, headers, version};

use crate::parts::BoxError;
use crate::store::ByteStream;

/// The body of every response the core produces: buffered JSON or a streamed segment.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

fn full(bytes: Bytes) -> ResponseBody {
    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

fn base(
    status: StatusCode,
    content_type: &'static str,
    request_id: &str,
) -> http::response::Builder {
    let builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(headers::VERSION, version::CURRENT.to_string());
    match HeaderValue::from_str(request_id) {
        Ok(id) => builder.header(headers::REQUEST_ID, id),
        Err(_) => builder,
    }
}

pub(crate) fn json<T: Serialize>(
    status: StatusCode,
    body: &T,
    request_id: &str,
) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(body).expect("response bodies serialize");
    base(status, JSON_MEDIA_TYPE, request_id)
        .header(header::CONTENT_LENGTH, bytes.len())
        .body(full(Bytes::from(bytes)))
        .expect("valid response")
}

pub(crate) fn error(err: &ProtocolError, request_id: &str) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = err.clone().request_id(request_id).to_body();
    let mut response = json(status, &body, request_id);
    if err.code.is_retryable() {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// `EP-2`: a known endpoint asked with the wrong method, with the one method it accepts.
pub(crate) fn method_not_allowed(
    err: &ProtocolError,
    allow: &http::Method,
    request_id: &str,
) -> Response<ResponseBody> {
    let mut response = error(err, request_id);
    let allow = HeaderValue::from_str(allow.as_str()).expect("a method is a valid header value");
    response.headers_mut().insert(header::ALLOW, allow);
    response
}

pub(crate) fn segment_bytes(
    stream: ByteStream,
    length: u64,
    request_id: &str,
) -> Response<ResponseBody> {
    let frames = stream.map_ok(http_body::Frame::data).map_err(|e| -> BoxError { Box::new(e) });
    base(StatusCode::OK, SEGMENT_MEDIA_TYPE, request_id)
        .header(header::CONTENT_LENGTH, length)
        .body(StreamBody::new(frames).boxed_unsync())
        .expect("valid response")
}
