//! Authentication: every request signed, the signature covering what it should, the clock
//! window, key ids and rotation (SPEC.md section 5).

use bytes::Bytes;
use http::HeaderValue;
use wkp1_protocol::endpoint::WriteQuery;
use wkp1_protocol::segment::SegmentHeader;
use wkp1_protocol::{Endpoint, KeyId, Secret, Subtree};

use crate::check::{Check, CheckError, CheckResult};
use crate::session::{Request, Session, segment, segment_id};
use crate::{check, fail};

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            auth_missing_signature_is_401,
            "auth",
            Must,
            ["AUTH-1", "AUTH-10"],
            "An unsigned write must be refused before it reaches the store."
        ),
        check!(
            auth_restore_requires_signature,
            "auth",
            Must,
            ["AUTH-1"],
            "Restore reveals state: it is signed like every other request."
        ),
        check!(
            auth_wrong_signature_is_401,
            "auth",
            Must,
            ["AUTH-1", "AUTH-5"],
            "A signature that does not match must be refused."
        ),
        check!(
            auth_stale_timestamp_is_401,
            "auth",
            Must,
            ["AUTH-6"],
            "A request signed 10 minutes ago is outside the 300 s window."
        ),
        check!(
            auth_future_timestamp_is_401,
            "auth",
            Must,
            ["AUTH-6"],
            "A request signed 10 minutes ahead is outside the 300 s window."
        ),
        check!(
            auth_unknown_key_is_401,
            "auth",
            Must,
            ["AUTH-4"],
            "A key id the function does not hold must be refused."
        ),
        check!(
            auth_tampered_body_is_401,
            "auth",
            Must,
            ["AUTH-3"],
            "A body changed after signing no longer matches wkp-content-sha256."
        ),
        check!(
            auth_tampered_path_is_401,
            "auth",
            Must,
            ["AUTH-2"],
            "A request signed for one replica must not write another."
        ),
        check!(
            auth_tampered_query_is_401,
            "auth",
            Must,
            ["AUTH-2"],
            "A query parameter added after signing (a claim) must be refused."
        ),
        check!(
            auth_tampered_header_is_401,
            "auth",
            Must,
            ["AUTH-2"],
            "wkp-generation is signed: changing it after signing must be refused."
        ),
        check!(
            auth_timestamp_just_outside_the_window_is_401,
            "auth",
            Must,
            ["AUTH-6"],
            "330 s off is outside any allowed window, though a wider window lets it through."
        ),
        check!(
            auth_signature_is_compared_in_full,
            "auth",
            Must,
            ["AUTH-1", "AUTH-5"],
            "Upper case, a prefix or a signature with more characters is not the signature."
        ),
        check!(
            auth_query_is_canonicalised_not_taken_as_sent,
            "auth",
            Must,
            ["AUTH-2"],
            "Parameters sent in another order than the canonical one still verify."
        ),
        check!(
            auth_unknown_wkp_headers_are_signed,
            "auth",
            Must,
            ["AUTH-2", "VER-4"],
            "A wkp- header a later minor version adds is covered by the signature."
        ),
        check!(
            auth_second_signature_header_is_400,
            "auth",
            Must,
            ["AUTH-2"],
            "Two signatures are one too many: no function may pick one of them."
        ),
        check!(
            auth_rotated_key_is_accepted,
            "auth",
            Must,
            ["AUTH-7"],
            "During rotation both keys in the ring must work."
        ),
    ]
}

/// A claimed replica and a signed persist of a first delta, ready to be tampered with.
async fn signed_persist(s: &mut Session) -> Result<(Subtree, Request), CheckError> {
    let (subtree, generation) = s.claimed_replica().await?;
    let body = segment(SegmentHeader::delta(0, 1), b"put conformance/key value");
    let request =
        s.sign(Request::new(Endpoint::Persist, &subtree, "", body).generation(generation));
    Ok((subtree, request))
}

/// A refused request must have committed nothing.
async fn nothing_committed(s: &mut Session, subtree: &Subtree) -> CheckResult {
    let plan = s.plan(subtree, false).await?;
    if plan.last_seq != 0 || !plan.chain.is_empty() {
        fail!("a refused request was committed: the replica is now at state {}", plan.last_seq);
    }
    Ok(())
}

async fn refused(
    s: &mut Session,
    subtree: &Subtree,
    request: Request,
    what: &str,
    code: &str,
) -> CheckResult {
    let response = s.send(request).await?;
    s.expect(what, &response, 401, Some(code))?;
    nothing_committed(s, subtree).await
}

async fn auth_missing_signature_is_401(s: &mut Session) -> CheckResult {
    let (subtree, mut request) = signed_persist(s).await?;
    request.headers.remove("wkp-signature");
    refused(s, &subtree, request, "persist without wkp-signature", "missing_authentication").await
}

async fn auth_restore_requires_signature(s: &mut Session) -> CheckResult {
    let subtree = s.replica();
    let mut request = s.sign(Request::new(Endpoint::Restore, &subtree, "", Bytes::new()));
    request.headers.remove("wkp-signature");
    let response = s.send(request).await?;
    s.expect("restore without wkp-signature", &response, 401, Some("missing_authentication"))
}

async fn auth_wrong_signature_is_401(s: &mut Session) -> CheckResult {
    let (subtree, mut request) = signed_persist(s).await?;
    let good = request.headers["wkp-signature"].to_str().unwrap().to_owned();
    let flipped: String = good
        .chars()
        .enumerate()
        .map(|(i, c)| if i == 0 { if c == '0' { '1' } else { '0' } } else { c })
        .collect();
    request.headers.insert("wkp-signature", HeaderValue::from_str(&flipped).unwrap());
    refused(s, &subtree, request, "persist with a wrong signature", "signature_mismatch").await
}

async fn auth_stale_timestamp_is_401(s: &mut Session) -> CheckResult {
    let (subtree, request) = signed_persist(s).await?;
    let target = s.target.clone();
    let request = request.signed_with(&target.key_id, &target.secret, s.now() - 600);
    refused(s, &subtree, request, "persist signed 600 s ago", "timestamp_out_of_range").await
}

async fn auth_future_timestamp_is_401(s: &mut Session) -> CheckResult {
    let (subtree, request) = signed_persist(s).await?;
    let target = s.target.clone();
    let request = request.signed_with(&target.key_id, &target.secret, s.now() + 600);
    refused(s, &subtree, request, "persist signed 600 s ahead", "timestamp_out_of_range").await
}

async fn auth_unknown_key_is_401(s: &mut Session) -> CheckResult {
    let (subtree, request) = signed_persist(s).await?;
    let key = KeyId::new("wkp1-conformance-unknown-key").unwrap();
    let secret = Secret::from_bytes(b"a secret no function was given!!".to_vec()).unwrap();
    let request = request.signed_with(&key, &secret, s.now());
    refused(s, &subtree, request, "persist signed with an unknown key", "unknown_key").await
}

async fn auth_tampered_body_is_401(s: &mut Session) -> CheckResult {
    let (subtree, mut request) = signed_persist(s).await?;
    let mut body = request.body.to_vec();
    let last = body.len() - 1;
    body[last] ^= 0x01;
    request.body = Bytes::from(body);
    refused(
        s,
        &subtree,
        request,
        "persist whose body changed after signing",
        "content_hash_mismatch",
    )
    .await
}

async fn auth_tampered_path_is_401(s: &mut Session) -> CheckResult {
    let (signed_for, request) = signed_persist(s).await?;
    let (other, _) = s.claimed_replica().await?;
    let moved = Request {
        path: request.path.replace(signed_for.replica.as_str(), other.replica.as_str()),
        ..request
    };
    refused(s, &other, moved, "persist signed for another replica", "signature_mismatch").await?;
    nothing_committed(s, &signed_for).await
}

async fn auth_tampered_query_is_401(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let mut request = s.sign(Request::new(Endpoint::Restore, &subtree, "", Bytes::new()));
    request.query = "claim=true".into();
    let response = s.send(request).await?;
    s.expect(
        "restore with claim=true added after signing",
        &response,
        401,
        Some("signature_mismatch"),
    )?;
    let plan = s.plan(&subtree, false).await?;
    if plan.generation != generation {
        fail!(
            "the tampered claim took effect: generation {} became {}",
            generation,
            plan.generation
        );
    }
    Ok(())
}

async fn auth_tampered_header_is_401(s: &mut Session) -> CheckResult {
    let (subtree, mut request) = signed_persist(s).await?;
    let generation: u64 = request.headers["wkp-generation"].to_str().unwrap().parse().unwrap();
    request.headers.insert("wkp-generation", HeaderValue::from(generation + 1));
    refused(
        s,
        &subtree,
        request,
        "persist whose wkp-generation changed after signing",
        "signature_mismatch",
    )
    .await
}

async fn auth_rotated_key_is_accepted(s: &mut Session) -> CheckResult {
    let Some((key_id, secret)) = s.target.second_key.clone() else {
        return Err(CheckError::Skip(
            "no second key given (--second-key-id, --second-secret-file)".into(),
        ));
    };
    let subtree = s.replica();
    let request = Request::new(Endpoint::Restore, &subtree, "claim=true", Bytes::new())
        .signed_with(&key_id, &secret, s.now());
    let response = s.send(request).await?;
    s.expect("claim signed with the second key", &response, 200, None)?;
    let generation = response.json::<wkp1_protocol::manifest::RestorePlan>("claim")?.generation;
    let body = segment(SegmentHeader::delta(0, 1), b"rotated");
    let request =
        s.sign(Request::new(Endpoint::Persist, &subtree, "", body).generation(generation));
    let response = s.send(request).await?;
    s.expect(
        "persist signed with the first key after a claim with the second",
        &response,
        200,
        None,
    )
}

async fn auth_timestamp_just_outside_the_window_is_401(s: &mut Session) -> CheckResult {
    // 330 s, not 301: the kit's clock and the function's may differ by a few seconds.
    for (offset, what) in [(-330i64, "330 s ago"), (330, "330 s ahead")] {
        let (subtree, request) = signed_persist(s).await?;
        let target = s.target.clone();
        let at = s.now().saturating_add_signed(offset);
        let request = request.signed_with(&target.key_id, &target.secret, at);
        refused(s, &subtree, request, &format!("persist signed {what}"), "timestamp_out_of_range")
            .await?;
    }
    Ok(())
}

async fn auth_signature_is_compared_in_full(s: &mut Session) -> CheckResult {
    let (subtree, good) = signed_persist(s).await?;
    let hex = good.headers["wkp-signature"].to_str().unwrap().to_owned();
    let wrong = [
        (hex.to_uppercase(), "in upper case"),
        (hex[..32].to_owned(), "cut to its first 32 characters"),
        (format!("{hex}0"), "with one character more"),
    ];
    for (signature, what) in wrong {
        let mut request = good.clone();
        request.headers.insert("wkp-signature", HeaderValue::from_str(&signature).unwrap());
        refused(s, &subtree, request, &format!("persist signed {what}"), "signature_mismatch")
            .await?;
    }
    let response = s.send(good).await?;
    s.expect("the same persist with its signature as computed", &response, 200, None)
}

async fn auth_query_is_canonicalised_not_taken_as_sent(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let bytes = segment(SegmentHeader::delta(0, 1), b"queried out of order");
    let id = segment_id(&bytes);
    // The canonical order is offset before segment; send segment first.
    let query = format!("segment={id}&offset=0");
    debug_assert_ne!(query, WriteQuery::Part { segment: id, offset: 0 }.to_query_string());
    let request = s.sign(
        Request::new(Endpoint::Persist, &subtree, query, Bytes::from(bytes.clone()))
            .generation(generation),
    );
    let response = s.send(request).await?;
    s.expect("part upload with its query as segment=..&offset=0", &response, 200, None)?;
    let query = format!("segment={id}&offset=0&length={}", bytes.len());
    let request = s.sign(Request::new(Endpoint::Restore, &subtree, query, Bytes::new()));
    let response = s.send(request).await?;
    // Nothing committed the segment, so it is not found; what must not happen is a 401.
    s.expect(
        "download with its query as segment=..&offset=..&length=..",
        &response,
        404,
        Some("segment_not_found"),
    )
}

async fn auth_unknown_wkp_headers_are_signed(s: &mut Session) -> CheckResult {
    const FUTURE: &str = "wkp-conformance-future";
    let (subtree, generation) = s.claimed_replica().await?;
    let body = segment(SegmentHeader::delta(0, 1), b"from a future minor version");
    let request = Request::new(Endpoint::Persist, &subtree, "", body.clone())
        .generation(generation)
        .header(FUTURE, "signed");
    let response = s.send(s.sign(request)).await?;
    s.expect(&format!("persist with {FUTURE} signed"), &response, 200, None)?;
    let next = segment(SegmentHeader::delta(1, 2), b"a header slipped in after signing");
    let mut request =
        s.sign(Request::new(Endpoint::Persist, &subtree, "", next).generation(generation));
    request.headers.insert(FUTURE, HeaderValue::from_static("added after signing"));
    let response = s.send(request).await?;
    s.expect(
        &format!("persist with {FUTURE} added after signing"),
        &response,
        401,
        Some("signature_mismatch"),
    )?;
    let plan = s.plan(&subtree, false).await?;
    if plan.last_seq != 1 {
        fail!("the replica is at state {}, expected 1", plan.last_seq);
    }
    Ok(())
}

async fn auth_second_signature_header_is_400(s: &mut Session) -> CheckResult {
    let (subtree, mut request) = signed_persist(s).await?;
    let signature = request.headers["wkp-signature"].clone();
    request.headers.append("wkp-signature", HeaderValue::from_static("0000"));
    let response = s.send(request.clone()).await?;
    s.expect(
        "persist with a second, wrong wkp-signature",
        &response,
        400,
        Some("invalid_request"),
    )?;
    request.headers.remove("wkp-signature");
    request.headers.append("wkp-signature", HeaderValue::from_static("0000"));
    request.headers.append("wkp-signature", signature);
    let response = s.send(request).await?;
    s.expect(
        "persist with a wrong wkp-signature, then the right one",
        &response,
        400,
        Some("invalid_request"),
    )?;
    nothing_committed(s, &subtree).await
}
