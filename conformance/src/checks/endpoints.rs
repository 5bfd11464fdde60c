//! Routes, methods, query strictness, response headers and versioning (SPEC.md sections 3, 4, 15).

use bytes::Bytes;
use http::Method;
use wkp1_protocol::Endpoint;

use crate::check::{Check, CheckResult};
use crate::session::{Request, Session};
use crate::{check, fail};

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            endpoints_unknown_route_is_404,
            "endpoints",
            Must,
            ["EP-1"],
            "Only the three endpoints exist under /v1/."
        ),
        check!(
            endpoints_wrong_method_is_405,
            "endpoints",
            Must,
            ["EP-2"],
            "Restore is GET, persist and flush are POST; anything else is 405 with Allow."
        ),
        check!(
            endpoints_malformed_query_values_are_400,
            "endpoints",
            Must,
            ["EP-3", "EP-4"],
            "A lenient parser reads `claim=yes` or an upper-case id as something the client never sent."
        ),
        check!(
            endpoints_head_is_405_without_a_body,
            "endpoints",
            Must,
            ["EP-2", "ERR-1"],
            "HEAD is not restore: a framework that answers HEAD for GET routes leaks plans."
        ),
        check!(
            endpoints_malformed_request_id_is_not_echoed,
            "endpoints",
            Must,
            ["EP-5"],
            "A request id outside its form would be written into logs and answers verbatim."
        ),
        check!(
            endpoints_request_id_is_generated,
            "endpoints",
            Should,
            ["EP-5"],
            "An answer without a request id cannot be matched with the function's logs."
        ),
        check!(
            endpoints_unknown_query_parameter_is_400,
            "endpoints",
            Must,
            ["EP-4"],
            "A parameter the function does not know must not be silently ignored."
        ),
        check!(
            endpoints_answers_carry_version_and_request_id,
            "endpoints",
            Must,
            ["EP-5"],
            "Every answer names the function's version and echoes the request id."
        ),
        check!(
            versioning_missing_version_is_400,
            "versioning",
            Must,
            ["VER-1"],
            "wkp-version is required on every request."
        ),
        check!(
            versioning_other_major_path_is_404,
            "versioning",
            Must,
            ["VER-2"],
            "A v1 function answers /v2/ with a clear unsupported_version."
        ),
        check!(
            versioning_other_major_header_is_400,
            "versioning",
            Must,
            ["VER-3"],
            "wkp-version 2.0 on a v1 path is refused, naming the version."
        ),
        check!(
            versioning_newer_minor_is_accepted,
            "versioning",
            Must,
            ["VER-3", "VER-4"],
            "A 1.x client works with a 1.0 function."
        ),
    ]
}

fn plan_request(s: &mut Session) -> Request {
    let subtree = s.replica();
    Request::new(Endpoint::Restore, &subtree, "", Bytes::new())
}

async fn endpoints_unknown_route_is_404(s: &mut Session) -> CheckResult {
    let mut request = plan_request(s);
    request.path = request.path.replacen("/v1/restore/", "/v1/compact/", 1);
    let response = s.send(s.sign(request)).await?;
    s.expect("GET /v1/compact/...", &response, 404, Some("not_found"))
}

async fn endpoints_wrong_method_is_405(s: &mut Session) -> CheckResult {
    let mut request = plan_request(s);
    request.method = Method::POST;
    let response = s.send(s.sign(request)).await?;
    s.expect("POST to restore", &response, 405, Some("method_not_allowed"))?;
    match response.headers.get("allow").and_then(|v| v.to_str().ok()) {
        Some(allow) if allow.contains("GET") => Ok(()),
        other => fail!("405 without `Allow: GET` (got {other:?})"),
    }
}

async fn endpoints_unknown_query_parameter_is_400(s: &mut Session) -> CheckResult {
    let mut request = plan_request(s);
    request.query = "from_the_future=1".into();
    let response = s.send(s.sign(request)).await?;
    s.expect("restore with an unknown query parameter", &response, 400, Some("invalid_request"))
}

async fn endpoints_answers_carry_version_and_request_id(s: &mut Session) -> CheckResult {
    let request = plan_request(s).header("wkp-request-id", "conformance-req-42");
    let ok = s.send(s.sign(request)).await?;
    s.expect("restore plan", &ok, 200, None)?;
    let mut bad = plan_request(s).header("wkp-request-id", "conformance-req-43");
    bad.query = "bogus=1".into();
    let refused = s.send(s.sign(bad)).await?;
    for (response, id) in [(&ok, "conformance-req-42"), (&refused, "conformance-req-43")] {
        let version = response.headers.get("wkp-version").and_then(|v| v.to_str().ok());
        if !version.is_some_and(|v| v.starts_with("1.")) {
            fail!("answer {} carries wkp-version {version:?}, expected 1.x", response.status);
        }
        let echoed = response.headers.get("wkp-request-id").and_then(|v| v.to_str().ok());
        if echoed != Some(id) {
            fail!("answer {} echoes wkp-request-id {echoed:?}, expected {id:?}", response.status);
        }
    }
    Ok(())
}

async fn versioning_missing_version_is_400(s: &mut Session) -> CheckResult {
    let request = plan_request(s);
    let mut request = s.sign(request);
    request.headers.remove("wkp-version");
    let response = s.send(request).await?;
    s.expect("restore without wkp-version", &response, 400, Some("invalid_request"))
}

async fn versioning_other_major_path_is_404(s: &mut Session) -> CheckResult {
    let mut request = plan_request(s);
    request.path = request.path.replacen("/v1/", "/v2/", 1);
    let request = s.sign(request.header("wkp-version", "2.0"));
    let response = s.send(request).await?;
    s.expect("GET /v2/restore/...", &response, 404, Some("unsupported_version"))
}

async fn versioning_other_major_header_is_400(s: &mut Session) -> CheckResult {
    let request = plan_request(s).header("wkp-version", "2.0");
    let request = s.sign(request);
    let response = s.send(request).await?;
    s.expect("restore with wkp-version 2.0", &response, 400, Some("unsupported_version"))
}

async fn versioning_newer_minor_is_accepted(s: &mut Session) -> CheckResult {
    let request = plan_request(s).header("wkp-version", "1.9");
    let request = s.sign(request);
    let response = s.send(request).await?;
    s.expect("restore with wkp-version 1.9", &response, 200, None)
}

async fn endpoints_head_is_405_without_a_body(s: &mut Session) -> CheckResult {
    let mut request = plan_request(s);
    request.method = Method::HEAD;
    let response = s.send(s.sign(request)).await?;
    if response.status != 405 {
        fail!("HEAD on restore: expected 405, got {}", response.status);
    }
    match response.headers.get("allow").and_then(|v| v.to_str().ok()) {
        Some(allow) if allow.contains("GET") => Ok(()),
        other => fail!("HEAD answered 405 without `Allow: GET` (got {other:?})"),
    }
}

async fn endpoints_malformed_request_id_is_not_echoed(s: &mut Session) -> CheckResult {
    let long = "r".repeat(129);
    let request = plan_request(s).header("wkp-request-id", &long);
    let response = s.send(s.sign(request)).await?;
    s.expect("restore plan with a 129-character request id", &response, 200, None)?;
    let echoed = response.headers.get("wkp-request-id").and_then(|v| v.to_str().ok());
    if echoed == Some(long.as_str()) {
        fail!("a 129-character wkp-request-id was echoed; the limit is 128");
    }
    Ok(())
}

async fn endpoints_request_id_is_generated(s: &mut Session) -> CheckResult {
    let request = plan_request(s);
    let response = s.send(s.sign(request)).await?;
    s.expect("restore plan", &response, 200, None)?;
    match response.headers.get("wkp-request-id").and_then(|v| v.to_str().ok()) {
        Some(id) if !id.is_empty() => Ok(()),
        _ => fail!("the answer to a request without wkp-request-id carries none"),
    }
}

async fn endpoints_malformed_query_values_are_400(s: &mut Session) -> CheckResult {
    let id = "ab".repeat(32);
    let upper = id.to_uppercase();
    let queries = [
        "claim=yes".to_owned(),
        "claim=TRUE".to_owned(),
        format!("length=1&offset=0&segment={upper}"),
        format!("length=1&offset=-1&segment={id}"),
        format!("length=1&offset=1e3&segment={id}"),
        format!("length=1&offset=%30&segment={id}"),
        format!("length=1&offset=0&offset=0&segment={id}"),
        format!("length=1&offset=0&segment={}", &id[..63]),
    ];
    for query in queries {
        let mut request = plan_request(s);
        request.query = query.clone();
        let response = s.send(s.sign(request)).await?;
        s.expect(&format!("restore with ?{query}"), &response, 400, Some("invalid_request"))?;
    }
    Ok(())
}
