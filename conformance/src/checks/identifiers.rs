//! Identifiers: the grammar, exactly as received, refused before the store (SPEC.md section 2).

use bytes::Bytes;
use http::Method;
use wkp1_protocol::Endpoint;

use crate::check::{Check, CheckResult};
use crate::session::{Request, Session};
use crate::{check, fail};

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            ids_traversal_is_400,
            "ids",
            Must,
            ["ID-1", "ID-2", "ADDR-1"],
            "No identifier may name a parent directory or smuggle a separator."
        ),
        check!(
            ids_dot_segments_never_reach_a_subtree,
            "ids",
            Must,
            ["ID-2", "ADDR-1"],
            "Raw `..` and `%2e%2e` segments must be refused, never resolved."
        ),
        check!(
            ids_malformed_are_400,
            "ids",
            Must,
            ["ID-1"],
            "Upper case, too long, empty and non-ASCII identifiers break the grammar."
        ),
        check!(
            ids_every_character_is_checked,
            "ids",
            Must,
            ["ID-1", "ID-2"],
            "The grammar holds for every character, not just the first."
        ),
        check!(
            ids_longest_is_accepted,
            "ids",
            Must,
            ["ID-1"],
            "63 characters is the longest valid identifier and must work."
        ),
    ]
}

/// A signed claim for `replica` written into the path verbatim (it may be invalid).
fn claim_for(s: &Session, replica: &str) -> Request {
    let t = &s.target;
    let request = Request {
        method: Method::GET,
        path: format!("/v1/{}/{}/{}/{replica}", Endpoint::Restore, t.engine, t.instance),
        query: "claim=true".into(),
        headers: http::HeaderMap::new(),
        body: Bytes::new(),
    };
    s.sign(request)
}

async fn each_is_400(s: &mut Session, replicas: &[&str]) -> CheckResult {
    for replica in replicas {
        let response = s.send(claim_for(s, replica)).await?;
        s.expect(
            &format!("claim for replica {replica:?}"),
            &response,
            400,
            Some("invalid_identifier"),
        )?;
    }
    Ok(())
}

async fn ids_traversal_is_400(s: &mut Session) -> CheckResult {
    each_is_400(s, &["a..b", "..a", "a%2Fb", "a%2fb", "a%5Cb", "a.b"]).await
}

async fn ids_dot_segments_never_reach_a_subtree(s: &mut Session) -> CheckResult {
    for raw in ["..", "%2e%2e", "%2E%2E", "."] {
        let request = claim_for(s, raw);
        let path = request.path.clone();
        let status = s.send_raw_path(&format!("{path}?claim=true"), &request.headers).await?;
        // A front end may resolve the segment before the function sees it (then the route or
        // the signature no longer matches); what must never happen is a successful claim.
        if !matches!(status, 400 | 401 | 404) {
            fail!(
                "claim for replica {raw:?} sent byte for byte: expected 400 (or 401/404 if a proxy resolved it), got {status}"
            );
        }
    }
    Ok(())
}

async fn ids_malformed_are_400(s: &mut Session) -> CheckResult {
    let long = "a".repeat(64);
    each_is_400(s, &["Replica-0", &long, "", "caf%C3%A9", "a%20b", "-lead", "_lead"]).await
}

async fn ids_longest_is_accepted(s: &mut Session) -> CheckResult {
    let replica = format!("z{}", "9".repeat(62));
    let response = s.send(claim_for(s, &replica)).await?;
    s.expect("claim for a 63-character replica", &response, 200, None)
}

async fn ids_every_character_is_checked(s: &mut Session) -> CheckResult {
    each_is_400(s, &["abC", "ab.", "a.b0", "ab%2e", "ab%2F", "abc%C3%A9", "ab%20", "a_b~", "ab+"])
        .await
}
